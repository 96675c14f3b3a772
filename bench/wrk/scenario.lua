-- One benchmark scenario for wrk, configured by the environment (bench/run.py sets it):
--   BENCH_METHOD  GET or POST (default GET); the URL given to wrk carries path and query
--   BENCH_TOKEN   API key sent as "Authorization: Bearer ..." (unset: no header)
--   BENCH_BODY    JSON body (sent with Content-Type: application/json)
--   BENCH_UNIQUE  when set, every "@N@" in the body becomes a per-request counter, so each
--                 request carries a different body (no Idempotency-Key is ever sent); the
--                 counter has a fixed width (payloads.counter), so every body is the same size
--   BENCH_DELAY_MS when set, each connection waits this long between its requests (a client
--                 that searches now and then, beside writers that never pause)
-- done() (report.lua) prints one line "BENCH_JSON {...}" with the figures run.py reads.

local method = os.getenv("BENCH_METHOD") or "GET"
local token = os.getenv("BENCH_TOKEN")
local body = os.getenv("BENCH_BODY")
local unique = os.getenv("BENCH_UNIQUE")
local delay_ms = tonumber(os.getenv("BENCH_DELAY_MS") or "")

local headers = {}
if token ~= nil and token ~= "" then
  headers["Authorization"] = "Bearer " .. token
end
if body ~= nil and body ~= "" then
  headers["Content-Type"] = "application/json"
else
  body = nil
end

local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

if unique ~= nil and unique ~= "" and body ~= nil then
  local counter = 0
  function request()
    counter = counter + 1
    local n = string.format("%d-%07d", tid or 0, counter)
    return wrk.format(method, wrk.path, headers, (string.gsub(body, "@N@", n)))
  end
else
  wrk.method = method
  wrk.body = body
  for name, value in pairs(headers) do
    wrk.headers[name] = value
  end
end

if delay_ms ~= nil and delay_ms > 0 then
  function delay()
    return delay_ms
  end
end

dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "report.lua")
