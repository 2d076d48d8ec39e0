-- rollguard: the health of a RolloutPolicy (docs/gitops.md, "Argo CD"), from its conditions
-- about its current generation. Ready=False (the policy cannot be used) and Conflict=True (a
-- selected Deployment is left alone) are Degraded; Ready=True is Healthy.
local hs = {}
local status = obj.status or {}
local generation = obj.metadata.generation or 0
if obj.status == nil or (status.observedGeneration or 0) < generation then
  hs.status = "Progressing"
  hs.message = "the operator has not looked at generation " .. generation .. " yet"
  return hs
end
local ready = nil
local conflict = nil
for _, c in ipairs(status.conditions or {}) do
  if c.type == "Ready" then
    ready = c
  elseif c.type == "Conflict" then
    conflict = c
  end
end
if ready == nil then
  hs.status = "Progressing"
  hs.message = "no Ready condition yet"
elseif ready.status ~= "True" then
  hs.status = "Degraded"
  hs.message = (ready.reason or "") .. ": " .. (ready.message or "")
elseif conflict ~= nil and conflict.status == "True" then
  hs.status = "Degraded"
  hs.message = (conflict.reason or "") .. ": " .. (conflict.message or "")
else
  hs.status = "Healthy"
  hs.message = ready.message or ""
end
return hs
