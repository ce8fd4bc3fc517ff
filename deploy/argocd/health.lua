-- Argo CD health check for autoscaling.ballast.dev/CustomScalingPolicy.
-- Install it through argocd-cm (docs/gitops.md, "Health in Argo CD"):
--   resource.customizations.health.autoscaling.ballast.dev_CustomScalingPolicy
--
--   Progressing  Ballast has not evaluated this generation yet; or the target or
--                source does not exist yet (for less than a few poll intervals)
--   Degraded     the configuration cannot work until it changes (Stalled: an
--                invalid spec, a source that refuses the namespace, a target kind
--                without /scale); the target or source still missing after a few
--                poll intervals; or another writer fights Ballast over replicas
--   Suspended    spec.paused: Ballast writes nothing
--   Healthy      the configuration works. A metrics outage, a fallback or a
--                scale-down window is runtime state, not ill health: the message
--                says so, the status stays Healthy.
--
-- Lua 5.1 (Argo CD's gopher-lua); tests/argocd_health.rs runs it with Debian's
-- lua5.1 over status objects captured from e2e runs (tests/fixtures/argocd/).

local hs = {}

local function condition(type_)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == type_ then
      return c
    end
  end
  return nil
end

-- Seconds in a Go-style duration such as "15s", "1m30s", "500ms" (nil if not one).
local function seconds(d)
  if type(d) ~= "string" or d == "" then
    return nil
  end
  local total, rest = 0, d
  while rest ~= "" do
    local n, unit, tail = string.match(rest, "^(%d+%.?%d*)(%a+)(.*)$")
    if n == nil then
      return nil
    end
    local f = ({ ms = 0.001, s = 1, m = 60, h = 3600 })[unit]
    if f == nil then
      return nil
    end
    total = total + tonumber(n) * f
    rest = tail
  end
  return total
end

-- Unix seconds of an RFC 3339 UTC time ("2026-12-01T10:00:00Z"), or nil.
local function unix(t)
  if type(t) ~= "string" then
    return nil
  end
  local y, mo, d, h, mi, s = string.match(t, "^(%d+)-(%d+)-(%d+)T(%d+):(%d+):(%d+)")
  if y == nil then
    return nil
  end
  -- Days from the civil date (proleptic Gregorian), independent of the local zone.
  y, mo, d = tonumber(y), tonumber(mo), tonumber(d)
  if mo <= 2 then
    y = y - 1
  end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local mp = (mo + 9) % 12
  local doy = math.floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  local days = era * 146097 + doe - 719468
  return days * 86400 + tonumber(h) * 3600 + tonumber(mi) * 60 + tonumber(s)
end

if obj.metadata.deletionTimestamp ~= nil then
  hs.status = "Progressing"
  hs.message = "being deleted"
  return hs
end

local ready = condition("Ready")
local generation = obj.metadata.generation
local observed = obj.status ~= nil and obj.status.observedGeneration or nil
if ready == nil or observed == nil then
  hs.status = "Progressing"
  hs.message = "waiting for Ballast to evaluate the policy"
  return hs
end
if generation ~= nil and observed ~= generation then
  hs.status = "Progressing"
  hs.message = "generation " .. tostring(generation) .. " not evaluated yet (status is of " .. tostring(observed) .. ")"
  return hs
end

local stalled = condition("Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = stalled.reason .. ": " .. (stalled.message or "")
  return hs
end

if ready.status ~= "True" then
  -- Not Stalled: something that may appear by itself (the target, a source a
  -- sync creates a moment later). Degraded once it has lasted a few intervals.
  local interval = seconds(obj.spec.pollInterval) or 15
  local grace = math.max(3 * interval, 60)
  local since = unix(ready.lastTransitionTime)
  local now = os.time()
  if since ~= nil and now - since > grace then
    hs.status = "Degraded"
    hs.message = ready.reason .. " for more than " .. tostring(grace) .. "s: " .. (ready.message or "")
  else
    hs.status = "Progressing"
    hs.message = ready.reason .. ": " .. (ready.message or "")
  end
  return hs
end

if obj.spec.paused == true then
  hs.status = "Suspended"
  hs.message = "spec.paused: Ballast writes nothing"
  return hs
end

local owned = condition("ReplicasOwned")
if owned ~= nil and owned.status == "False" then
  hs.status = "Degraded"
  hs.message = owned.reason .. ": " .. (owned.message or "")
  return hs
end

hs.status = "Healthy"
local metrics = condition("MetricsAvailable")
if metrics ~= nil and metrics.status == "False" then
  hs.message = "runtime: " .. metrics.reason .. ": " .. (metrics.message or "")
else
  hs.message = ready.message or ""
end
return hs
