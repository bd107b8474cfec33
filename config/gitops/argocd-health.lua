-- Argo CD health check for auth.m2m.dev M2MClient and ScopePolicy (the same script serves both).
-- It reads the kstatus conditions the controller writes: Stalled=True is Degraded (waiting will
-- not cure it), Ready=True is Healthy (for a client with spec.disabled: true too: Git declared
-- it), anything else is Progressing. Install: docs/gitops.md.
local hs = {status = "Progressing", message = "waiting for the m2m controller"}
if obj.status == nil then
  return hs
end
if obj.metadata.generation ~= nil and obj.status.observedGeneration ~= nil and obj.status.observedGeneration < obj.metadata.generation then
  hs.message = "waiting for the m2m controller to observe generation " .. obj.metadata.generation
  return hs
end
if obj.status.conditions == nil then
  return hs
end
local ready = nil
for _, c in ipairs(obj.status.conditions) do
  if c.type == "Stalled" and c.status == "True" then
    hs.status = "Degraded"
    hs.message = c.reason .. ": " .. c.message
    return hs
  end
  if c.type == "Ready" then
    ready = c
  end
end
if ready ~= nil then
  if ready.status == "True" then
    hs.status = "Healthy"
  end
  hs.message = ready.reason .. ": " .. ready.message
end
return hs
