-- The line every benchmark script ends with: "BENCH_JSON {...}", the figures bench/wrk.py
-- reads. Loaded by each script with dofile, from the script's own folder; `bench_json` takes
-- more fields (a JSON fragment) for a script that measures more (chat_turn.lua).

function bench_json(summary, latency, more)
  local e = summary.errors
  return string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"errors_connect":%d,' ..
    '"errors_read":%d,"errors_write":%d,"errors_status":%d,"errors_timeout":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d,"mean_us":%.1f%s}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9), latency.max, latency.mean, more or "")
end

function done(summary, latency, requests)
  io.write(bench_json(summary, latency))
end
