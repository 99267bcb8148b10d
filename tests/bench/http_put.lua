-- http_put.lua - PUT /v1/records/{key} with a real If-Match: a CAS.
-- Thread i of T writes the keys i, i+T, i+2T, ... (T = the THREADS
-- argument) and keeps the version of each from the ETag of every reply,
-- so a thread's cache goes stale only through its own connections racing
-- on one key. A 412 carries the current record (its ETag, and the key in
-- the body's "current"), so the next write of that key uses the fresh
-- version: the conflict is counted and retried by a later request. The
-- first write of a key in a thread uses If-Match: * (any version) to
-- learn its version. Args: KEYS PREFIX VALUE_BYTES THREADS.
dofile((os.getenv("BENCH_LUA_DIR") or ".") .. "/wrk_common.lua")

local versions = {}
local nthreads, share

function init(args)
  bench.args(args)
  nthreads = tonumber(args[4] or "") or 1
  share = math.max(1, math.floor((bench.keys - 1 - thread_index) /
    nthreads) + 1)
  math.randomseed(os.time() + thread_index)
end

function request()
  local i = (thread_index + nthreads * math.random(0, share - 1)) %
    bench.keys
  local k = bench.key(i)
  local v = versions[k]
  return wrk.format("PUT", "/v1/records/" .. k,
    { ["If-Match"] = v and ('"' .. v .. '"') or "*",
      ["Content-Type"] = "application/octet-stream" }, bench.value)
end

function response(status, headers, body)
  -- The reply names the key: the record (200) or the current one (412).
  local k = body:match('"key":"([^"]*)"')
  local etag = headers["ETag"] or headers["Etag"] or headers["etag"]
  local v = etag and tonumber(etag:match("%d+"))
  if k and v then
    versions[k] = v
  end
  if status == 200 or status == 201 then
    ok = ok + 1
  elseif status == 412 then
    conflicts = conflicts + 1
  else
    errors = errors + 1
  end
end
