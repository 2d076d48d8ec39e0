-- rollguard: the health of a Deployment (docs/gitops.md, "Argo CD").
-- A Deployment rollguard governs (annotation rollguard.dev/policy) reads rollguard's verdict,
-- which is about one generation of it: a verdict about an older generation reads Progressing.
-- Any other Deployment gets exactly what Argo CD's built-in check says (gitops-engine
-- pkg/health, getAppsv1DeploymentHealth), so this override changes nothing for it; the
-- tests under tests/argocd run both on the same objects.
-- Written for Argo CD's default Lua environment (no string library).
local hs = {}
local annotations = {}
if obj.metadata.annotations ~= nil then
  annotations = obj.metadata.annotations
end
local generation = obj.metadata.generation or 0

if annotations["rollguard.dev/policy"] ~= nil then
  local verdict = annotations["rollguard.dev/verdict"]
  local about = tonumber(annotations["rollguard.dev/verdict-generation"])
  local message = annotations["rollguard.dev/verdict-message"] or ""
  if verdict == nil then
    hs.status = "Progressing"
    hs.message = "rollguard has not given a verdict on this Deployment yet"
  elseif about ~= generation then
    hs.status = "Progressing"
    hs.message = "rollguard has not looked at generation " .. generation .. " yet (its verdict " .. verdict .. " is about generation " .. (annotations["rollguard.dev/verdict-generation"] or "none") .. ")"
  elseif verdict == "Steady" then
    hs.status = "Healthy"
    hs.message = message
  elseif verdict == "Progressing" then
    hs.status = "Progressing"
    hs.message = message
  elseif verdict == "AwaitingApproval" then
    hs.status = "Suspended"
    hs.message = message
  elseif verdict == "RolledBack" or verdict == "Aborted" then
    hs.status = "Degraded"
    hs.message = message
  else
    hs.status = "Unknown"
    hs.message = "unknown rollguard verdict " .. verdict .. ": " .. message
  end
  return hs
end

-- Not governed: Argo CD's built-in Deployment check, step for step.
local spec = obj.spec or {}
local status = obj.status or {}
if spec.paused == true then
  hs.status = "Suspended"
  hs.message = "Deployment is paused"
  return hs
end
if generation <= (status.observedGeneration or 0) then
  local progressing = nil
  if status.conditions ~= nil then
    for _, c in ipairs(status.conditions) do
      if c.type == "Progressing" then
        progressing = c
        break
      end
    end
  end
  local updated = status.updatedReplicas or 0
  local replicas = status.replicas or 0
  local available = status.availableReplicas or 0
  if progressing ~= nil and progressing.reason == "ProgressDeadlineExceeded" then
    hs.status = "Degraded"
    hs.message = "Deployment \"" .. obj.metadata.name .. "\" exceeded its progress deadline"
    return hs
  elseif spec.replicas ~= nil and updated < spec.replicas then
    hs.status = "Progressing"
    hs.message = "Waiting for rollout to finish: " .. updated .. " out of " .. spec.replicas .. " new replicas have been updated..."
    return hs
  elseif replicas > updated then
    hs.status = "Progressing"
    hs.message = "Waiting for rollout to finish: " .. (replicas - updated) .. " old replicas are pending termination..."
    return hs
  elseif available < updated then
    hs.status = "Progressing"
    hs.message = "Waiting for rollout to finish: " .. available .. " of " .. updated .. " updated replicas are available..."
    return hs
  end
else
  hs.status = "Progressing"
  hs.message = "Waiting for rollout to finish: observed deployment generation less than desired generation"
  return hs
end
hs.status = "Healthy"
return hs
