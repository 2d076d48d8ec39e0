-- rollguard: retry on a governed Deployment whose current template was rolled back or
-- aborted, as `kubectl rollguard retry` does. The verdict about the Deployment's current
-- generation tells that the template on it is the failed revision and no run is in flight.
-- Install with mergeBuiltinActions: true to keep Argo CD's own Deployment actions.
local actions = {}
local annotations = obj.metadata.annotations or {}
if annotations["rollguard.dev/policy"] ~= nil then
  local verdict = annotations["rollguard.dev/verdict"]
  local current = tonumber(annotations["rollguard.dev/verdict-generation"]) == (obj.metadata.generation or 0)
  local failed = current and (verdict == "RolledBack" or verdict == "Aborted")
  actions["retry"] = {
    ["disabled"] = not (failed and annotations["rollguard.dev/failed-revision"] ~= nil),
    ["iconClass"] = "fa fa-fw fa-redo"
  }
end
return actions
