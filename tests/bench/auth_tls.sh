#!/usr/bin/env bash
# auth_tls.sh - the cost of authentication and of TLS on Get and Update at
# 64 in flight, in one run: two datasyncd (one with --auth, one without),
# each on tcp://127.0.0.1 and tls+tcp://localhost, driven in turn by
# datasync-bench (the same binary, --token and --tls-ca), each case twice
# in ABBA order so that drift on a shared machine hits both sides alike.
#
#   tests/bench/auth_tls.sh [DURATION]     (per case, default 3s)
#
# Environment: BUILD_DIR (default build/). Prints one line per case and
# the ratios.
set -euo pipefail
dur=${1:-3s}
build=${BUILD_DIR:-build}
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT
bash "$here/../support/mkcerts.sh" "$tmp/certs" >/dev/null
port() { shuf -i 20000-32767 -n 1; }
start() { # start NAME [flags]: sets ${NAME}_TCP, ${NAME}_TLS
  local name=$1; shift
  local p1 p2
  p1=$(port); p2=$(port)
  "$build/datasyncd" --db "$tmp/$name.db" --http off --quiet \
    --listen "tcp://127.0.0.1:$p1" --listen "tls+tcp://127.0.0.1:$p2" \
    --tls-cert "$tmp/certs/server.pem" --tls-key "$tmp/certs/server.key" \
    "$@" >"$tmp/$name.log" 2>&1 &
  pids+=($!)
  printf -v "${name}_TCP" '%s' "tcp://127.0.0.1:$p1"
  printf -v "${name}_TLS" '%s' "tls+tcp://localhost:$p2"
}
start off
start on --bootstrap-token-file "$tmp/admin.token"
for _ in $(seq 1 200); do [[ -s $tmp/admin.token ]] && break; sleep 0.05; done
sleep 0.5
TOKEN=$(cat "$tmp/admin.token")

run() { # run OP URL [token]: ops/s
  local op=$1 url=$2 tok=${3:-}
  DATASYNC_TOKEN=$tok "$build/datasync-bench" --url "$url" --op "$op" \
    --concurrency 64 --duration "$dur" --warmup 1s --tls-ca "$tmp/certs/ca.pem" \
    --json 2>/dev/null | sed -n 's/.*"ops_per_sec": *\([0-9.]*\).*/\1/p'
}
declare -A sum
for op in get update; do
  for rep in 1 2; do
    order=("off tcp" "on tcp" "off tls" "on tls")
    [[ $rep == 2 ]] && order=("on tls" "off tls" "on tcp" "off tcp")
    for c in "${order[@]}"; do
      set -- $c
      v=${1}_${2^^}; url=${!v}
      r=$(run "$op" "$url" "$([[ $1 == on ]] && echo "$TOKEN")")
      echo "$op auth=$1 transport=$2 rep=$rep: $r ops/s"
      sum[$op.$1.$2]=$(echo "${sum[$op.$1.$2]:-0} + ${r:-0}" | bc -l)
    done
  done
done
echo
for op in get update; do
  for t in tcp tls; do
    off=${sum[$op.off.$t]}; on=${sum[$op.on.$t]}
    printf '%-6s %-3s  auth off %8.0f  on %8.0f ops/s  auth costs %5.1f %%\n' \
      "$op" "$t" "$(echo "$off/2" | bc -l)" "$(echo "$on/2" | bc -l)" \
      "$(echo "(1 - $on/$off) * 100" | bc -l)"
  done
  printf '%-6s tls vs tcp (auth on): %5.1f %% slower\n' "$op" \
    "$(echo "(1 - ${sum[$op.on.tls]}/${sum[$op.on.tcp]}) * 100" | bc -l)"
done
