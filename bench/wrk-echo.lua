-- wrk script for bench/run-proxy-bench: POST a small AllTypes JSON to TestService.Echo
-- (POST /v1/echo, body "*"). Keep the body in sync with the gRPC message the bench encodes.
-- No per-response callback: that would make wrk run Lua per request and steal load-generator CPU.
wrk.method = "POST"
wrk.body = '{"fString":"hello","fInt64":"42","rString":["a","b"]}'
wrk.headers["Content-Type"] = "application/json"

-- One machine-readable line for the bench script (latencies in microseconds).
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"non2xx":%d,"connect_errors":%d,' ..
    '"read_errors":%d,"write_errors":%d,"timeouts":%d,"p50_us":%d,"p90_us":%d,' ..
    '"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
