-- etcd_put.lua - etcd v3 JSON gateway: unconditional put of a random key.
-- Args: KEYS PREFIX VALUE_BYTES.
dofile((os.getenv("BENCH_LUA_DIR") or ".") .. "/wrk_common.lua")

local bodies = {}

function init(args)
  bench.args(args)
  math.randomseed(os.time() + thread_index)
  local v = bench.base64(bench.value)
  for i = 0, bench.keys - 1 do
    bodies[i] = '{"key":"' .. bench.base64(bench.key(i)) ..
      '","value":"' .. v .. '"}'
  end
end

function request()
  return wrk.format("POST", "/v3/kv/put",
    { ["Content-Type"] = "application/json" },
    bodies[math.random(0, bench.keys - 1)])
end

function response(status, headers, body)
  if status == 200 then
    ok = ok + 1
  else
    errors = errors + 1
  end
end
