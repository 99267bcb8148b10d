-- http_lock.lua - lock cycles through the gateway: POST lock, PUT with
-- the Lock-Token (If-Match: the version the lock reply gives), DELETE
-- lock. Needs one connection per thread (wrk -t N -c N): wrk does not say
-- which connection a response belongs to, so the cycle's state lives in
-- the thread. Thread i cycles over the keys i, i+T, i+2T, ... (T = the
-- THREADS argument), so threads never contend for a lock.
-- Args: KEYS PREFIX VALUE_BYTES THREADS.
dofile((os.getenv("BENCH_LUA_DIR") or ".") .. "/wrk_common.lua")

local state = "lock"
local key, token, version, failed
local step, nthreads

function init(args)
  bench.args(args)
  nthreads = tonumber(args[4] or "") or 1
  key = thread_index % bench.keys
  step = 0
end

local function next_key()
  step = step + 1
  key = (thread_index + step * nthreads) % bench.keys
end

function request()
  local path = "/v1/records/" .. bench.key(key)
  if state == "lock" then
    return wrk.format("POST", path .. "/lock",
      { ["Content-Type"] = "application/json" },
      '{"owner":"wrk-bench","ttlMs":10000}')
  elseif state == "put" then
    local h = { ["Lock-Token"] = token,
                ["Content-Type"] = "application/octet-stream" }
    if version > 0 then
      h["If-Match"] = '"' .. version .. '"'
    else
      h["If-None-Match"] = "*"
    end
    return wrk.format("PUT", path, h, bench.value)
  else
    return wrk.format("DELETE", path .. "/lock", { ["Lock-Token"] = token })
  end
end

function response(status, headers, body)
  if state == "lock" then
    if status == 200 then
      token = headers["Lock-Token"] or headers["lock-token"]
      version = tonumber(body:match('"version":"(%d+)"') or "0")
      failed = false
      state = token and "put" or "lock"
      if not token then
        errors = errors + 1
        next_key()
      end
    else
      if status == 423 then
        conflicts = conflicts + 1
      else
        errors = errors + 1
      end
      next_key()
    end
  elseif state == "put" then
    if status ~= 200 and status ~= 201 then
      errors = errors + 1
      failed = true
    end
    state = "unlock"
  else
    if status == 204 or status == 200 then
      if not failed then
        ok = ok + 1
      end
    else
      errors = errors + 1
    end
    state = "lock"
    next_key()
  end
end
