-- Argo CD health check for cloudnet.io WanMigration and Site (one script, both kinds).
--
-- Semantics follow kstatus: a status that does not yet describe the current spec
-- (no status, or status.observedGeneration < metadata.generation) is Progressing; Stalled=True is
-- Degraded; Ready=True is Healthy. WanMigration adds its phase: Failed is Degraded, Succeeded is
-- Healthy, AwaitingCutover (Manual cutover or a time window not yet open) and Aborted are Suspended.
-- A Site whose Ready condition is False (link down, kubeconfig unusable) is Degraded.
--
-- Written for Argo CD's sandbox (gopher-lua, Lua 5.1; only the base, table and os libraries, no
-- string library and no string methods): every field may be missing, strings are joined with `..`.
-- test/unit/argo-health.test.ts runs it with lua5.4 in an equivalent sandbox.

local function condition(status, ctype)
  if status == nil or type(status.conditions) ~= "table" then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if type(c) == "table" and c.type == ctype then
      return c
    end
  end
  return nil
end

local function isStatus(c, want)
  return c ~= nil and c.status == want
end

-- "Reason: message", or whichever of the two is present, or the fallback.
local function describe(c, fallback)
  if c == nil then
    return fallback
  end
  local reason, message = c.reason, c.message
  if type(message) == "string" and message ~= "" then
    if type(reason) == "string" and reason ~= "" then
      return reason .. ": " .. message
    end
    return message
  end
  if type(reason) == "string" and reason ~= "" then
    return reason
  end
  return fallback
end

-- The message alone (the reason when there is no message), for when a prefix already names the state.
local function messageOf(c, fallback)
  if c ~= nil and type(c.message) == "string" and c.message ~= "" then
    return c.message
  end
  return describe(c, fallback)
end

local function health(obj)
  local meta = obj.metadata
  if type(meta) ~= "table" then
    meta = {}
  end
  local status = obj.status
  if type(status) ~= "table" then
    status = nil
  end

  if meta.deletionTimestamp ~= nil then
    -- A deletion can get stuck (a target it cannot reach to clean up, a rollback that does not
    -- finish): the operator says so with Stalled, which must not read as progress forever.
    local stuck = condition(status, "Stalled")
    if isStatus(stuck, "True") then
      return "Degraded", "Deleting, stalled: " .. describe(stuck, "Stalled")
    end
    return "Progressing", "Deleting: the operator is cleaning up"
  end
  if status == nil or (status.observedGeneration == nil and status.phase == nil and status.conditions == nil) then
    return "Progressing", "Waiting for the operator to report status"
  end

  local generation = tonumber(meta.generation)
  local observed = tonumber(status.observedGeneration)
  if generation ~= nil and (observed == nil or observed < generation) then
    return "Progressing", "Waiting for the operator to observe generation " .. tostring(meta.generation)
  end

  local ready = condition(status, "Ready")
  local stalled = condition(status, "Stalled")
  local reconciling = condition(status, "Reconciling")
  local phase = status.phase

  if isStatus(stalled, "True") then
    return "Degraded", describe(stalled, "Stalled")
  end

  if obj.kind == "Site" then
    if isStatus(ready, "True") then
      return "Healthy", describe(ready, "Site is ready")
    end
    if isStatus(ready, "False") then
      return "Degraded", describe(ready, "Site is not ready")
    end
    return "Progressing", describe(condition(status, "LinkReady"), describe(reconciling, "Probing the site"))
  end

  if phase == "Failed" then
    return "Degraded", "Failed: " .. describe(ready, "migration failed")
  end
  if isStatus(ready, "True") or phase == "Succeeded" then
    return "Healthy", describe(ready, "Migration succeeded")
  end
  if phase == "AwaitingCutover" then
    -- The operator puts why it waits (approval, window) on Reconciling.
    local waiting = describe(condition(status, "CutoverComplete"), "Awaiting cutover approval (spec.cutover.approved) or the cutover window")
    return "Suspended", describe(reconciling, waiting)
  end
  if phase == "Aborted" then
    return "Suspended", "Aborted: " .. messageOf(ready, "the source VM keeps running")
  end

  local prefix = ""
  if type(phase) == "string" and phase ~= "" then
    prefix = phase .. ": "
  end
  return "Progressing", prefix .. messageOf(reconciling, messageOf(ready, "in progress"))
end

local hs = {}
hs.status, hs.message = health(obj)
return hs
