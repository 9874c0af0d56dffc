-- wrk script for bench/load.py. BENCH_REQUESTS names a file of requests, one per line:
--   path <TAB> authorization header <TAB> JSON body
-- Each connection takes the next line in turn, so viewers rotate across requests.
local requests = {}
for line in io.lines(os.getenv("BENCH_REQUESTS")) do
  local path, authorization, body = line:match("^([^\t]*)\t([^\t]*)\t(.*)$")
  requests[#requests + 1] = wrk.format("POST", path, {
    ["Content-Type"] = "application/json",
    ["Authorization"] = authorization,
  }, body)
end
local next_request = 0

request = function()
  next_request = next_request % #requests + 1
  return requests[next_request]
end

done = function(summary, latency, _)
  local errors = summary.errors
  io.write(string.format(
    'WRK {"requests": %d, "duration_us": %d, "socket_errors": %d, "non_2xx": %d, ' ..
    '"p50_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration,
    errors.connect + errors.read + errors.write + errors.timeout, errors.status,
    latency:percentile(50), latency:percentile(99)))
end
