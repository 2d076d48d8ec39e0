-- rollguard: retry the revision that was rolled back or aborted, as `kubectl rollguard retry`
-- does: the Deployment's rollguard.dev/failed-revision mark goes and the operator starts a
-- new run of the same template.
local annotations = obj.metadata.annotations or {}
if annotations["rollguard.dev/policy"] == nil then
  error("cannot retry Deployment " .. obj.metadata.name .. ": rollguard does not govern it", 0)
end
local verdict = annotations["rollguard.dev/verdict"] or "none"
local current = tonumber(annotations["rollguard.dev/verdict-generation"]) == (obj.metadata.generation or 0)
if not current or (verdict ~= "RolledBack" and verdict ~= "Aborted") then
  error("cannot retry Deployment " .. obj.metadata.name .. ": its template was not rolled back or aborted (rollguard's verdict: " .. verdict .. (current and "" or ", about an older generation") .. ")", 0)
end
if annotations["rollguard.dev/failed-revision"] == nil then
  error("nothing to retry for Deployment " .. obj.metadata.name .. ": no revision is marked failed", 0)
end
obj.metadata.annotations["rollguard.dev/failed-revision"] = nil
return obj
