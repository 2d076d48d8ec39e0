-- rollguard: the health of a RolloutRun (docs/gitops.md, "Argo CD"), from status.phase.
-- A run in flight is Progressing, or Suspended while it waits for a person (an approval, or a
-- pause someone gave it); a run that ended is Healthy when its revision was promoted or a
-- newer template replaced it, Degraded when it was rolled back or aborted.
local hs = {}
local status = obj.status or {}
local spec = obj.spec or {}
local control = spec.control or {}
local phase = status.phase or "Progressing"
local message = status.message or ""

if obj.status == nil then
  hs.status = "Progressing"
  hs.message = "the operator has not started the run yet"
elseif phase == "Progressing" then
  if control.abort ~= nil then
    hs.status = "Progressing"
    hs.message = "aborted by " .. (control.abort.user or "someone") .. "; the operator is rolling it back"
  elseif control.pause ~= nil then
    hs.status = "Suspended"
    hs.message = "paused by " .. (control.pause.user or "someone") .. "; resume releases it"
  else
    hs.status = "Progressing"
    hs.message = message
    if status.stepDisplay ~= nil then
      hs.message = "step " .. status.stepDisplay
      if message ~= "" then
        hs.message = hs.message .. ": " .. message
      end
    end
  end
elseif phase == "AwaitingApproval" then
  hs.status = "Suspended"
  hs.message = "waiting for an approval (kubectl rollguard approve " .. (spec.deployment or "") .. ")"
elseif phase == "Promoting" then
  hs.status = "Progressing"
  hs.message = message
elseif phase == "Succeeded" or phase == "Superseded" then
  hs.status = "Healthy"
  hs.message = message
elseif phase == "RolledBack" or phase == "Aborted" then
  hs.status = "Degraded"
  hs.message = message
else
  hs.status = "Unknown"
  hs.message = "unknown phase " .. phase
end
return hs
