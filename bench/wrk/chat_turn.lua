-- A chat turn for wrk, configured by the environment (bench/wrk.py sets it):
--   BENCH_TOKEN          API key sent as "Authorization: Bearer ..."
--   BENCH_SESSIONS_FILE  the sessions the turns go round, one id a line
--   BENCH_USER_BODY      the user's message; "@N@" becomes the turn's counter
--   BENCH_ASSISTANT_BODY the assistant's answer; "@N@" likewise
--   BENCH_CONTEXT_QUERY  the query string of the context read ("?max_messages=20")
--
-- A turn, on one session: append the user's message, read /context, append the assistant's
-- answer, each request sent once the answer before it has come, as a client does. wrk shows a
-- script no connection, only its thread, so wrk.py runs one connection a thread (-tN -cN):
-- a thread's state is its connection's. The turns go round the sessions, each thread from
-- its own place in the round, so two connections share a session only when they meet.
--
-- A turn's latency is measured here, from the moment its first request is made to the
-- moment the next turn's is (wrk asks for it as soon as the assistant's answer is in), on
-- the monotonic clock; done() adds its percentiles to the BENCH_JSON line ("turn_*_us"),
-- and the turns completed. wrk's own latencies stay a request's.

local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clock_id, bench_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local clock = ffi.new("bench_timespec")
local function now_us()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, clock)
  return tonumber(clock.tv_sec) * 1000000 + tonumber(clock.tv_nsec) / 1000
end

local token = os.getenv("BENCH_TOKEN")
local user_body = os.getenv("BENCH_USER_BODY")
local assistant_body = os.getenv("BENCH_ASSISTANT_BODY")
local context_query = os.getenv("BENCH_CONTEXT_QUERY") or ""

local sessions = {}
for line in io.lines(os.getenv("BENCH_SESSIONS_FILE")) do
  if line ~= "" then
    sessions[#sessions + 1] = line
  end
end

local post_headers = {
  ["Authorization"] = "Bearer " .. token,
  ["Content-Type"] = "application/json",
}
local get_headers = { ["Authorization"] = "Bearer " .. token }

local threads = {}
function setup(thread)
  threads[#threads + 1] = thread
  thread:set("tid", #threads)
end

-- This thread's (and so its connection's) turn: which, on which session, which step.
turn_us = {} -- the latency of each completed turn; read by done() through thread:get
local turn, step, started, base, counter = 0, 3, nil, nil, nil
local checked = false

function request()
  if not checked then
    checked = true
    -- wrk checks the script by calling this once on the first thread's state before the
    -- thread runs (script_verify_request): that request is never sent.
    if tid == 1 then
      return wrk.format("GET", "/health")
    end
  end
  if step == 3 then
    local now = now_us()
    if started ~= nil then
      turn_us[#turn_us + 1] = now - started
    end
    started, turn, step = now, turn + 1, 0
    local session = sessions[((tid or 1) * 997 + turn) % #sessions + 1]
    base = "/v1/sessions/" .. session
    counter = string.format("%d-%07d", tid or 0, turn)
  end
  step = step + 1
  if step == 1 then
    return wrk.format("POST", base .. "/messages", post_headers,
      (string.gsub(user_body, "@N@", counter)))
  elseif step == 2 then
    return wrk.format("GET", base .. "/context" .. context_query, get_headers)
  end
  return wrk.format("POST", base .. "/messages", post_headers,
    (string.gsub(assistant_body, "@N@", counter)))
end

dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "report.lua")

function done(summary, latency, requests)
  local all = {}
  for _, thread in ipairs(threads) do
    for _, us in ipairs(thread:get("turn_us") or {}) do
      all[#all + 1] = us
    end
  end
  table.sort(all)
  local function percentile(p)
    if #all == 0 then
      return 0
    end
    return all[math.max(1, math.ceil(#all * p / 100))]
  end
  io.write(bench_json(summary, latency, string.format(
    ',"turns":%d,"turn_p50_us":%d,"turn_p90_us":%d,"turn_p99_us":%d,"turn_max_us":%d',
    #all, percentile(50), percentile(90), percentile(99), all[#all] or 0)))
end
