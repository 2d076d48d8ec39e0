-- rollguard: abort the run, as `kubectl rollguard abort` does: spec.control.abort with the
-- user and the time. Argo CD patches the run as its own identity (the API server's user of
-- the Argo CD server, below): rollguard's approval guard requires the recorded user to be the
-- one that sends the write, so change `user` if Argo CD runs as another account.
local os = require("os")
local user = "system:serviceaccount:argocd:argocd-server"
local phase = (obj.status or {}).phase or "Progressing"
if phase == "Succeeded" or phase == "RolledBack" or phase == "Aborted" or phase == "Superseded" then
  error("cannot abort run " .. obj.metadata.name .. ": it ended " .. phase, 0)
end
if obj.spec.control ~= nil and obj.spec.control.abort ~= nil then
  error("cannot abort run " .. obj.metadata.name .. ": " .. obj.spec.control.abort.user .. " aborted it already; the operator is rolling it back", 0)
end
if obj.spec.control == nil then
  obj.spec.control = {}
end
obj.spec.control.abort = {
  user = user,
  time = os.date("!%Y-%m-%dT%H:%M:%SZ"),
  reason = "aborted from Argo CD"
}
return obj
