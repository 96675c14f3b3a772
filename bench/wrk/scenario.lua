-- One benchmark scenario for wrk, configured by the environment (bench/run.py sets it):
--   BENCH_METHOD  GET or POST (default GET); the URL given to wrk carries path and query
--   BENCH_TOKEN   API key sent as "Authorization: Bearer ..." (unset: no header)
--   BENCH_BODY    JSON body (sent with Content-Type: application/json)
--   BENCH_UNIQUE  when set, every "@N@" in the body becomes a per-request counter, so each
--                 request carries a different body (no Idempotency-Key is ever sent); the
--                 counter has a fixed width (payloads.counter), so every body is the same size
--   BENCH_PATHS_FILE when set, the paths the requests go round (one a line), each thread from
--                 its own place in the round (the URL given to wrk is then the first)
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

local paths = nil
local paths_file = os.getenv("BENCH_PATHS_FILE")
if paths_file ~= nil and paths_file ~= "" then
  paths = {}
  for line in io.lines(paths_file) do
    if line ~= "" then
      paths[#paths + 1] = line
    end
  end
end

if paths ~= nil then
  local counter = 0
  function request()
    counter = counter + 1
    local path = paths[((tid or 1) * 997 + counter) % #paths + 1]
    return wrk.format(method, path, headers, body)
  end
elseif unique ~= nil and unique ~= "" and body ~= nil then
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
