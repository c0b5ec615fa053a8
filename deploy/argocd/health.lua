-- Argo CD health of EnMasse's AddressSpace, Address and MessagingUser, read from the status the
-- operator writes. Argo CD runs it with the object as `obj`; it returns `{status, message}`.
--
--   Progressing  no status yet, a generation the operator has not seen, Pending, Configuring,
--                Terminating, or an edit that waits for the address to drain
--   Healthy      Active, serving what the manifest says
--   Degraded     Failed, or Active on its previous plan because the new one was refused (an
--                address's Applied condition; a space's appliedPlan)
local hs = { status = "Progressing", message = "Waiting for the operator" }
local status = obj.status
if status == nil or status.phase == nil then
  return hs
end

local generation = obj.metadata ~= nil and obj.metadata.generation or nil
if generation ~= nil and status.observedGeneration ~= nil and status.observedGeneration < generation then
  hs.message = "Waiting for the operator to see generation " .. tostring(generation)
  return hs
end

-- Spaces and addresses give their reasons as `messages`, users as `message`.
local message = status.message
if message == nil and status.messages ~= nil and #status.messages > 0 then
  message = table.concat(status.messages, "; ")
end

local phase = status.phase
if phase == "Active" then
  for _, condition in ipairs(status.conditions or {}) do
    if condition.type == "Applied" and condition.status == "False" then
      if condition.reason == "Draining" then
        hs.status = "Progressing"
      else
        hs.status = "Degraded"
      end
      hs.message = condition.message or message or condition.reason
      return hs
    end
  end
  if status.appliedPlan ~= nil and obj.spec ~= nil and obj.spec.plan ~= nil and status.appliedPlan ~= obj.spec.plan then
    hs.status = "Degraded"
    hs.message = message or ("still on plan " .. status.appliedPlan .. ": plan " .. obj.spec.plan .. " was refused")
    return hs
  end
  hs.status = "Healthy"
  hs.message = message or "Active"
elseif phase == "Failed" then
  hs.status = "Degraded"
  hs.message = message or "Failed"
else
  hs.status = "Progressing"
  hs.message = message or phase
end
return hs
