-- etcd_txn.lua - etcd v3 JSON gateway: compare-and-set transactions, the
-- etcd way to do a conditional write: compare the key's version, put on
-- success, read the current version on failure (so the next try uses
-- it). One connection per thread (wrk -t N -c N), each on a key of its
-- own (thread i writes key i): after the first try, which learns the
-- version (one conflict per thread), every CAS succeeds, as every write
-- of a gateway lock cycle does. Args: KEYS PREFIX VALUE_BYTES.
dofile((os.getenv("BENCH_LUA_DIR") or ".") .. "/wrk_common.lua")

local version = 0
local body_prefix, body_suffix

function init(args)
  bench.args(args)
  local k = bench.base64(bench.key(thread_index % bench.keys))
  body_prefix = '{"compare":[{"key":"' .. k .. '","target":"VERSION",' ..
    '"result":"EQUAL","version":"'
  body_suffix = '"}],"success":[{"requestPut":{"key":"' .. k ..
    '","value":"' .. bench.base64(bench.value) .. '"}}],' ..
    '"failure":[{"requestRange":{"key":"' .. k .. '"}}]}'
end

function request()
  return wrk.format("POST", "/v3/kv/txn",
    { ["Content-Type"] = "application/json" },
    body_prefix .. version .. body_suffix)
end

function response(status, headers, body)
  if status ~= 200 then
    errors = errors + 1
  elseif body:find('"succeeded":true', 1, true) then
    ok = ok + 1
    version = version + 1
  else
    conflicts = conflicts + 1
    version = tonumber(body:match('"version":"(%d+)"') or "0")
  end
end
