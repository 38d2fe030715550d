-- Argo CD health check for gemmaft.dev/GemmaFineTune (resource.customizations.health.gemmaft.dev_GemmaFineTune).
-- Reads the kstatus conditions the operator writes: Stalled or a Failed run is Degraded (never Healthy),
-- Succeeded is Healthy, a Running or Suspended run is Healthy/Suspended, everything else Progressing.
local hs = {status = "Progressing", message = "Waiting for the operator"}
if obj.status == nil or obj.status.conditions == nil then
  return hs
end
local generation = obj.metadata.generation
if obj.status.observedGeneration ~= nil and generation ~= nil and obj.status.observedGeneration < generation then
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end
local conditions = {}
for _, c in ipairs(obj.status.conditions) do
  conditions[c.type] = c
end
local function is_true(t)
  return conditions[t] ~= nil and conditions[t].status == "True"
end
local function message_of(t)
  return (conditions[t] and conditions[t].message) or obj.status.message or ""
end
if is_true("Failed") or is_true("Stalled") then
  hs.status = "Degraded"
  hs.message = message_of(is_true("Failed") and "Failed" or "Stalled")
elseif is_true("Succeeded") then
  hs.status = "Healthy"
  hs.message = message_of("Succeeded")
elseif is_true("Suspended") then
  hs.status = "Suspended"
  hs.message = message_of("Suspended")
elseif is_true("Ready") then
  hs.status = "Healthy"
  hs.message = message_of("Ready")
else
  hs.message = message_of("Reconciling")
end
return hs
