-- wrk script for bench/scale.sh: POST sign-in with the bench user's credentials, each request from
-- its own client address (X-Forwarded-For, believed from HAProxy on 127.0.0.1 only), so every
-- request is rate-limit checked and none is refused: the check's cost, not the 429 path.
wrk.method = "POST"
wrk.body = '{"email":"bench@example.com","password":"bench-password-123"}'
wrk.headers["Content-Type"] = "application/json"
local n = 0
local tid = 0
function setup(thread) tid = tid + 1; thread:set("tid", tid) end
function request()
  n = n + 1
  local t = tid or 1
  wrk.headers["X-Forwarded-For"] = string.format("10.%d.%d.%d", t, math.floor(n / 256) % 256, n % 256)
  return wrk.format()
end
