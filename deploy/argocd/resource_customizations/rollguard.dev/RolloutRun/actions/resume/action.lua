-- rollguard: release a paused run, as `kubectl rollguard resume` does: spec.control.pause goes.
if obj.spec.control == nil or obj.spec.control.pause == nil then
  error("cannot resume run " .. obj.metadata.name .. ": it is not paused", 0)
end
obj.spec.control.pause = nil
return obj
