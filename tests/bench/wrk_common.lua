-- wrk_common.lua - shared by the wrk scripts of the benchmark suite
-- (run.sh): script arguments, keys, a tiny base64, per-thread counters
-- and the one result line run.sh parses.
--
-- Script arguments (after wrk's "--"): KEYS PREFIX [VALUE_BYTES]. Keys
-- are PREFIX .. %06d, as `datasync bench --keys N` creates them.

bench = { keys = 1000, prefix = "bench-", value_bytes = 100 }

function bench.args(args)
  bench.keys = tonumber(args[1] or "") or bench.keys
  bench.prefix = args[2] or bench.prefix
  bench.value_bytes = tonumber(args[3] or "") or bench.value_bytes
  local t = {}
  for i = 0, bench.value_bytes - 1 do
    t[#t + 1] = string.char(97 + i % 26)
  end
  bench.value = table.concat(t)
end

function bench.key(i)
  return string.format("%s%06d", bench.prefix, i)
end

local b64chars =
  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

function bench.base64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local c1 = math.floor(n / 262144) % 64
    local c2 = math.floor(n / 4096) % 64
    local c3 = math.floor(n / 64) % 64
    local c4 = n % 64
    out[#out + 1] = b64chars:sub(c1 + 1, c1 + 1) ..
      b64chars:sub(c2 + 1, c2 + 1) ..
      (b and b64chars:sub(c3 + 1, c3 + 1) or "=") ..
      (c and b64chars:sub(c4 + 1, c4 + 1) or "=")
  end
  return table.concat(out)
end

-- Threads: setup() runs in the main Lua state once per wrk thread, before
-- they start; done() reads their counters back.
bench.threads = {}

function setup(thread)
  thread:set("thread_index", #bench.threads)
  bench.threads[#bench.threads + 1] = thread
end

-- Per-thread counters, read by done(): ok (successful operations, e.g.
-- lock cycles), conflicts (412 / failed compare), errors (anything else).
ok, conflicts, errors = 0, 0, 0

local function sum(name)
  local s = 0
  for _, t in ipairs(bench.threads) do
    s = s + (tonumber(t:get(name)) or 0)
  end
  return s
end

-- done prints one line: BENCH {json}. ops_per_sec counts the scripts'
-- successful operations (a lock cycle is one), latency is per request.
function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  local e = summary.errors
  local n_ok = sum("ok")
  io.write(string.format(
    'BENCH {"requests":%d,"seconds":%.3f,"ops":%d,"ops_per_sec":%.1f,' ..
    '"p50_us":%.1f,"p99_us":%.1f,"p999_us":%.1f,"errors":%d,' ..
    '"conflicts":%d,"socket_errors":%d}\n',
    summary.requests, secs, n_ok, n_ok / secs,
    latency:percentile(50), latency:percentile(99),
    latency:percentile(99.9), sum("errors"), sum("conflicts"),
    e.connect + e.read + e.write + e.timeout))
end

