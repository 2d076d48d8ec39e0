-- rollguard: what Argo CD offers on a RolloutRun, under the same rules as the CLI
-- (src/cli/control.rs): abort while the run is in flight and not aborted already, pause only
-- while it is Progressing and not paused, resume while paused. There is no approve: an
-- approval must be given by the approver (kubectl rollguard approve), not by Argo CD.
local actions = {}
local status = obj.status or {}
local control = (obj.spec or {}).control or {}
local phase = status.phase or "Progressing"
local ended = phase == "Succeeded" or phase == "RolledBack" or phase == "Aborted" or phase == "Superseded"
actions["abort"] = {
  ["disabled"] = ended or control.abort ~= nil,
  ["iconClass"] = "fa fa-fw fa-stop-circle"
}
actions["pause"] = {
  ["disabled"] = phase ~= "Progressing" or control.pause ~= nil,
  ["iconClass"] = "fa fa-fw fa-pause-circle"
}
actions["resume"] = {
  ["disabled"] = control.pause == nil,
  ["iconClass"] = "fa fa-fw fa-play-circle"
}
return actions
