-- rollguard: pause the run at its current step, as `kubectl rollguard pause` does:
-- spec.control.pause with the user and the time (see abort/action.lua on the user).
local os = require("os")
local user = "system:serviceaccount:argocd:argocd-server"
local phase = (obj.status or {}).phase or "Progressing"
if obj.spec.control ~= nil and obj.spec.control.pause ~= nil then
  error("cannot pause run " .. obj.metadata.name .. ": " .. obj.spec.control.pause.user .. " paused it already; resume releases it", 0)
end
if phase ~= "Progressing" then
  error("cannot pause run " .. obj.metadata.name .. ": it is " .. phase .. ", and only a Progressing run moves by itself between steps", 0)
end
if obj.spec.control == nil then
  obj.spec.control = {}
end
obj.spec.control.pause = {
  user = user,
  time = os.date("!%Y-%m-%dT%H:%M:%SZ"),
  reason = "paused from Argo CD"
}
return obj
