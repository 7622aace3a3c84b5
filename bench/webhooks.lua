-- wrk script for POST /webhooks/linear: one signed body (the signature covers the body only),
-- a unique Linear-Delivery per request, so every request is a new verified delivery.
--   BODY_FILE  the body; SIG_FILE  its lowercase hex HMAC-SHA256; PREFIX  delivery id prefix
--   RESULT_FILE  where done() appends one JSON line (requests, rps, p50/p99, non-2xx)
local function read(p)
  local f = assert(io.open(p, "rb")); local s = f:read("*a"); f:close(); return s
end
local body = read(os.getenv("BODY_FILE"))
local sig = read(os.getenv("SIG_FILE")):gsub("%s+", "")
local prefix = os.getenv("PREFIX") or "bench"
local counter = 0
local headers = {
  ["Content-Type"] = "application/json; charset=utf-8",
  ["Linear-Signature"] = sig,
  ["Linear-Event"] = "Issue",
}
local threads = {}
function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end
function init(args)
  prefix = prefix .. "-t" .. (tid or 1)
end
function request()
  counter = counter + 1
  headers["Linear-Delivery"] = prefix .. "-" .. counter
  return wrk.format("POST", wrk.path, headers, body)
end
function done(summary, latency, requests)
  local e = summary.errors
  local line = string.format(
    '{"requests":%d,"rps":%.1f,"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f,' ..
    '"non2xx":%d,"err_connect":%d,"err_read":%d,"err_write":%d,"err_timeout":%d}',
    summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, e.status, e.connect, e.read, e.write, e.timeout)
  local rf = os.getenv("RESULT_FILE")
  if rf and rf ~= "" then local f = assert(io.open(rf, "a")); f:write(line, "\n"); f:close() end
  io.write(line, "\n")
end
