-- A chat turn for wrk, configured by the environment (bench/wrk.py sets it):
--   BENCH_TOKEN          API key sent as "Authorization: Bearer ..."
--   BENCH_SESSIONS_FILE  the sessions the turns go round, one id a line
--   BENCH_USER_BODY      the user's message; "@N@" becomes the turn's counter
--   BENCH_ASSISTANT_BODY the assistant's answer; "@N@" likewise
--   BENCH_CONTEXT_QUERY  the query string of the context read ("?max_messages=20")
--
-- Each turn, on the next session of the round: append the user's message, read /context,
-- append the assistant's answer. wrk keeps no state per connection that a script can see, so
-- a turn is sent as one pipeline of its three requests (as wrk's scripts/pipeline.lua): the
-- server answers a connection's requests one after the other (uvicorn starts the next only
-- once the answer before is sent), so the context read sees the user's message, and the
-- assistant's is appended after it. wrk then counts each of the three answers as a request
-- and records one latency per pipeline: a turn's, from sending its first request to its last
-- answer. Consecutive turns take consecutive sessions, so two connections share a session
-- only when a turn outlives a whole round.
--
-- done() (report.lua) prints one line "BENCH_JSON {...}" with the figures run.py reads.

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

local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

local turn = 0
function request()
  turn = turn + 1
  -- threads start at different places of the round
  local session = sessions[((tid or 0) * 7919 + turn) % #sessions + 1]
  local n = string.format("%d-%07d", tid or 0, turn)
  local base = "/v1/sessions/" .. session
  return wrk.format("POST", base .. "/messages", post_headers, (string.gsub(user_body, "@N@", n)))
    .. wrk.format("GET", base .. "/context" .. context_query, get_headers)
    .. wrk.format("POST", base .. "/messages", post_headers,
      (string.gsub(assistant_body, "@N@", n)))
end

dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "report.lua")
