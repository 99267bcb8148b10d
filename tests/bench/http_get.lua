-- http_get.lua - GET /v1/records/{key} of a random key (gateway), or the
-- same path on nng's static handler. Args: KEYS PREFIX.
dofile((os.getenv("BENCH_LUA_DIR") or ".") .. "/wrk_common.lua")

function init(args)
  bench.args(args)
  math.randomseed(os.time() + thread_index)
end

function request()
  local k = bench.key(math.random(0, bench.keys - 1))
  return wrk.format("GET", "/v1/records/" .. k)
end

function response(status, headers, body)
  if status == 200 then
    ok = ok + 1
  else
    errors = errors + 1
  end
end
