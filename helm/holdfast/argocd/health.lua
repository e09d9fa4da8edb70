-- Argo CD health of Holdfast objects (BackupSet, StorageSet, Schedule, Restore), from the
-- kstatus conditions the controller writes: Ready, Reconciling, Stalled, each with the
-- generation it saw. The same reading as `kubectl wait --for=condition=Ready` and Flux.
-- Register it for each kind as resource.customizations.health.holdfast.io_<Kind>.
local hs = {}

local function condition(status, type)
  if status == nil or status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == type then
      return c
    end
  end
  return nil
end

local function said(c, fallback)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  if c ~= nil and c.reason ~= nil and c.reason ~= "" then
    return c.reason
  end
  return fallback
end

local status = obj.status
if status == nil or status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Holdfast controller"
  return hs
end

local generation = obj.metadata.generation
if generation ~= nil and status.observedGeneration ~= generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the controller to see generation " .. tostring(generation)
  return hs
end

if obj.kind == "BackupSet" and obj.spec ~= nil and obj.spec.suspend == true then
  hs.status = "Suspended"
  hs.message = "Suspended: no scheduled run starts"
  return hs
end

local stalled = condition(status, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = said(stalled, "Stalled")
  return hs
end

local ready = condition(status, "Ready")
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = said(ready, "Ready")
  return hs
end

local reconciling = condition(status, "Reconciling")
hs.status = "Progressing"
hs.message = said(reconciling, said(ready, "Reconciling"))
return hs
