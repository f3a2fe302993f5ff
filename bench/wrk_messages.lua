-- wrk script of bench/bench_append.py: POST /v1/sessions/{id}/messages round-robin over a ring of
-- pre-created sessions, so concurrent requests land on distinct sessions (no version races).
-- Arguments (after `--`): <api key> <session id prefix> <ring size>; sessions are <prefix>-<i>,
-- i in [0, ring). done() prints one machine-readable line: `WRK_RESULT {json}`.

local ring, prefix, counter = 1, "s", 0
local body = '{"role":"assistant","content":"' .. string.rep("x", 200) .. '","agent":"bench"}'
local headers = {["Content-Type"] = "application/json"}
local threads, thread_count = {}, 0

function setup(thread)
  -- distinct offsets per wrk thread: two threads never start on the same session
  thread:set("offset", thread_count)
  thread_count = thread_count + 1
  table.insert(threads, thread)
end

function init(args)
  headers["Authorization"] = "Bearer " .. args[1]
  prefix = args[2]
  ring = tonumber(args[3])
  counter = offset * 7919
end

function request()
  local path = "/v1/sessions/" .. prefix .. "-" .. (counter % ring) .. "/messages"
  counter = counter + 1
  return wrk.format("POST", path, headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests":%d,"duration_us":%d,"non_2xx":%d,"socket_errors":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
