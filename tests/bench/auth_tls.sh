#!/usr/bin/env bash
# auth_tls.sh - the cost of authentication and of TLS on Get and Update at
# 64 in flight, in one run: two datasyncd (one with --auth, one without),
# each on tcp://127.0.0.1 and tls+tcp://localhost, driven in turn by
# datasync-bench (the same binary, --token and --tls-ca), each case twice
# in ABBA order so that drift on a shared machine hits both sides alike.
# Besides throughput it prints the server's CPU time per call (utime +
# stime of the datasyncd process from /proc over the case, divided by the
# calls made), which other load on the machine disturbs far less.
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
  printf -v "${name}_PID" '%s' "$!"
  printf -v "${name}_TCP" '%s' "tcp://127.0.0.1:$p1"
  printf -v "${name}_TLS" '%s' "tls+tcp://localhost:$p2"
}
start off
start on --bootstrap-token-file "$tmp/admin.token"
for _ in $(seq 1 200); do [[ -s $tmp/admin.token ]] && break; sleep 0.05; done
sleep 0.5
TOKEN=$(cat "$tmp/admin.token")

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
wsec=1
dsec=${dur%s}
run() { # run OP URL [token]: ops/s
  local op=$1 url=$2 tok=${3:-}
  DATASYNC_TOKEN=$tok "$build/datasync-bench" --url "$url" --op "$op" \
    --concurrency 64 --duration "$dur" --warmup ${wsec}s --tls-ca "$tmp/certs/ca.pem" \
    --json 2>/dev/null | sed -n 's/.*"ops_per_sec": *\([0-9.]*\).*/\1/p'
}
declare -A sum cpu
for op in get update; do
  for rep in 1 2; do
    order=("off tcp" "on tcp" "off tls" "on tls")
    [[ $rep == 2 ]] && order=("on tls" "off tls" "on tcp" "off tcp")
    for c in "${order[@]}"; do
      set -- $c
      v=${1}_${2^^}; url=${!v}
      p=${1}_PID; pid=${!p}
      t0=$(cpu_ticks "$pid")
      r=$(run "$op" "$url" "$([[ $1 == on ]] && echo "$TOKEN")")
      t1=$(cpu_ticks "$pid")
      # calls made: the measured rate over warm-up and window (the
      # preload's reads of existing keys are a few hundred more)
      us=$(echo "($t1 - $t0) * 1000000 / $hz / (${r:-1} * ($dsec + $wsec))" | bc -l)
      printf '%s auth=%s transport=%s rep=%s: %.0f ops/s, server %.1f cpu-us/op\n' \
        "$op" "$1" "$2" "$rep" "${r:-0}" "$us"
      sum[$op.$1.$2]=$(echo "${sum[$op.$1.$2]:-0} + ${r:-0}" | bc -l)
      cpu[$op.$1.$2]=$(echo "${cpu[$op.$1.$2]:-0} + $us" | bc -l)
    done
  done
done
echo
for op in get update; do
  for t in tcp tls; do
    off=${sum[$op.off.$t]}; on=${sum[$op.on.$t]}
    printf '%-6s %-3s  auth off %8.0f  on %8.0f ops/s (%5.1f %% fewer); server cpu %6.1f vs %6.1f us/op (%+5.1f %%)\n' \
      "$op" "$t" "$(echo "$off/2" | bc -l)" "$(echo "$on/2" | bc -l)" \
      "$(echo "(1 - $on/$off) * 100" | bc -l)" \
      "$(echo "${cpu[$op.off.$t]}/2" | bc -l)" "$(echo "${cpu[$op.on.$t]}/2" | bc -l)" \
      "$(echo "(${cpu[$op.on.$t]}/${cpu[$op.off.$t]} - 1) * 100" | bc -l)"
  done
  printf '%-6s tls vs tcp (auth on): %5.1f %% slower\n' "$op" \
    "$(echo "(1 - ${sum[$op.on.tls]}/${sum[$op.on.tcp]}) * 100" | bc -l)"
done
