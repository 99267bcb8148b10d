#!/usr/bin/env bash
# watch.sh - issue 11's points: the change feed under load.
#
#   tests/bench/watch.sh        (run.sh runs it; BENCH_NO_WATCH=1 skips it)
#
# It starts, on temporary ipc:// paths and free ports, a datasyncd
# (temporary database, durability full) and a datasync-gateway in front
# of it for the SSE streams (datasyncd's own gateway has no
# --max-sse-streams flag and stops at 256 streams). Then:
#   - Update throughput (`datasync bench --op update`, 64 in flight,
#     ipc://, the settings of run.sh's update points) with no watcher,
#     then with 1000 idle RPC watchers parked (`watch_bench idle`): the
#     ratio, target >= 80 %;
#   - datasyncd's RSS before and with those 1000 parked RPC watchers, and
#     after the update run with them: KiB per parked watcher;
#   - datasyncd restarted (so memory freed by the RPC watchers is not
#     reused), then its RSS and the gateway's before and with 1000 idle
#     SSE streams: KiB per stream in each process;
#   - `watch_bench latency` with 1, 100 and 1000 watchers over RPC and
#     over SSE: sent -> delivered and sent -> acked (the commit).
# It prints the tables (markdown) on stdout, progress on stderr, and
# exits non-zero when a point failed (a watcher missing events is one).
#
# Environment: BUILD_DIR (default build/), BENCH_SECONDS (3),
# BENCH_WARMUP (1), BENCH_KEYS (1000), BENCH_VALUE_BYTES (100),
# BENCH_WATCH_WRITES (writes per latency point, 200),
# BENCH_WATCH_LEVELS (watchers per latency point, "1 100 1000"),
# BENCH_WATCH_IDLE (idle watchers and streams, 1000), DS_KEEP_TMP=1.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
SECS=${BENCH_SECONDS:-3}
WARM=${BENCH_WARMUP:-1}
KEYS=${BENCH_KEYS:-1000}
VB=${BENCH_VALUE_BYTES:-100}
WRITES=${BENCH_WATCH_WRITES:-200}
LEVELS=${BENCH_WATCH_LEVELS:-"1 100 1000"}
IDLE_N=${BENCH_WATCH_IDLE:-1000}
DS=$BUILD_DIR/datasync
DSD=$BUILD_DIR/datasyncd
GW=$BUILD_DIR/datasync-gateway
WB=$BUILD_DIR/tests/watch_bench
# How long datasyncd and the gateway get to exit after SIGTERM (they
# promise 10 s) before SIGKILL.
STOP_GRACE_S=12

die() { echo "watch: $*" >&2; exit 1; }
log() { echo "watch: $*" >&2; }

for b in "$DS" "$DSD" "$GW" "$WB"; do
  [[ -x $b ]] || die "no $b: build first (or set BUILD_DIR)"
done
command -v jq >/dev/null || die "jq is needed to read the results"
# 1000 sockets each in the tool, the gateway and datasyncd.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

TMP=$(mktemp -d /tmp/dswatch.XXXXXX)
PIDS=()
FAILED=0
cleanup() {
  local p
  exec 8>&- 2>/dev/null || true
  for p in "${PIDS[@]}"; do
    if kill -0 "$p" 2>/dev/null; then
      kill -KILL "$p" 2>/dev/null || true
      wait "$p" 2>/dev/null || true
    fi
  done
  if [[ -n ${DS_KEEP_TMP:-} ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

# free_port: as in run.sh, below the ephemeral range.
free_port() {
  local p
  for p in $(shuf -i 20000-32767 -n 50); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"; return 0
    fi
  done
  return 1
}

# wait_text FILE TEXT PID SECONDS: wait until TEXT is in FILE.
wait_text() {
  local i
  for i in $(seq 1 $(( $4 * 50 ))); do
    grep -q -- "$2" "$1" 2>/dev/null && return 0
    kill -0 "$3" 2>/dev/null || break
    sleep 0.02
  done
  return 1
}

# stop_pid PID NAME: SIGTERM, then SIGKILL after STOP_GRACE_S (noted:
# a hang at shutdown is a bug worth a line in the report).
stop_pid() {
  local i
  kill -TERM "$1" 2>/dev/null || return 0
  for i in $(seq 1 $(( STOP_GRACE_S * 10 ))); do
    kill -0 "$1" 2>/dev/null || { wait "$1" 2>/dev/null || true; return 0; }
    sleep 0.1
  done
  log "  $2 (pid $1) did not exit ${STOP_GRACE_S} s after SIGTERM: SIGKILL"
  STOP_HANGS="${STOP_HANGS:+$STOP_HANGS, }$2"
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
STOP_HANGS=

DS_IPC="ipc://$TMP/ds.sock"
DSD_PID=
start_dsd() {
  local port
  port=$(free_port)
  "$DSD" --db "$TMP/datasync.db" --listen "$DS_IPC" --http "127.0.0.1:$port" \
    --quiet >"$TMP/datasyncd.log" 2>&1 &
  DSD_PID=$!
  PIDS+=("$DSD_PID")
  wait_text "$TMP/datasyncd.log" "gateway and demo page on" "$DSD_PID" 10 ||
    { cat "$TMP/datasyncd.log" >&2; die "datasyncd did not start"; }
}
GW_PID=
# 4096 streams and connections: a stream whose client left stays open in
# the gateway until its next write (a heartbeat, 15 s), so the streams of
# the points before count against the caps too (1000 idle + 1 + 100 +
# 1000 in the default run).
start_gw() {
  GW_PORT=$(free_port)
  "$GW" --upstream "$DS_IPC" --http "127.0.0.1:$GW_PORT" \
    --max-sse-streams 4096 --http-max-connections 4096 \
    --http-max-per-ip 4096 --quiet >"$TMP/gateway.log" 2>&1 &
  GW_PID=$!
  PIDS+=("$GW_PID")
  wait_text "$TMP/gateway.log" "listening on" "$GW_PID" 10 ||
    { cat "$TMP/gateway.log" >&2; die "datasync-gateway did not start"; }
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# update_point: POINT = ops/s of `datasync bench --op update`, 64 in
# flight ("" when it failed).
POINT=
update_point() {
  local out
  POINT=
  if ! out=$("$DS" bench --json --concurrency 64 --duration "${SECS}s" \
      --warmup "${WARM}s" --url "$DS_IPC" --op update --keys "$KEYS" \
      --value-bytes "$VB" 2>>"$TMP/bench.log") ||
     ! jq -e .ops_per_sec >/dev/null 2>&1 <<<"$out"; then
    log "  update point failed: $(tail -1 "$TMP/bench.log")"
    FAILED=1; return 0
  fi
  POINT=$(jq -r '.ops_per_sec | floor' <<<"$out")
}

# start_idle TRANSPORT N: watch_bench idle, stdin a fifo held open on fd 8.
IDLE_PID=
start_idle() {
  rm -f "$TMP/idle.in"; mkfifo "$TMP/idle.in"
  "$WB" idle --url "$DS_IPC" --http "127.0.0.1:$GW_PORT" --transport "$1" \
    --watchers "$2" <"$TMP/idle.in" >"$TMP/idle.out" 2>"$TMP/idle.err" &
  IDLE_PID=$!
  PIDS+=("$IDLE_PID")
  exec 8>"$TMP/idle.in"
  if ! wait_text "$TMP/idle.out" ready "$IDLE_PID" 60; then
    log "  $2 idle $1 watchers not ready: $(tail -1 "$TMP/idle.err")"
    FAILED=1; stop_idle; return 1
  fi
}
# stop_idle: close its stdin; it exits 0 unless a watcher failed.
stop_idle() {
  local rc=0
  exec 8>&-
  wait "$IDLE_PID" || rc=$?
  if [[ $rc -ne 0 ]]; then
    log "  idle watchers exited $rc: $(tail -1 "$TMP/idle.err")"
    FAILED=1
  fi
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
T0=$(date +%s)
start_dsd
start_gw

# --- Update throughput with 0 and 1000 idle watchers; RSS per watcher ---
log "update ipc c=64, no watcher"
update_point; UPD0=$POINT
log "  ${UPD0:-FAILED} ops/s"
RSS0=$(rss_kib "$DSD_PID")
RSS1=; RSS1B=; RSS1C=; UPD1=
log "parking $IDLE_N idle RPC watchers"
if start_idle rpc "$IDLE_N"; then
  RSS1=$(rss_kib "$DSD_PID")
  log "  datasyncd RSS $RSS0 -> $RSS1 KiB"
  log "update ipc c=64, $IDLE_N idle RPC watchers"
  update_point; UPD1=$POINT
  RSS1B=$(rss_kib "$DSD_PID")
  log "  ${UPD1:-FAILED} ops/s, datasyncd RSS $RSS1B KiB"
  stop_idle
  RSS1C=$(rss_kib "$DSD_PID")
fi

# --- SSE streams: RSS per stream, datasyncd restarted ---
log "restarting datasyncd"
stop_pid "$DSD_PID" datasyncd
start_dsd
# One write, so the store and the gateway's connection are warm.
"$DS" --url "$DS_IPC" put sse/warm --force --value x >/dev/null ||
  log "  warm-up put failed"
RSS2=$(rss_kib "$DSD_PID"); GRSS2=$(rss_kib "$GW_PID")
RSS3=; GRSS3=
log "opening $IDLE_N idle SSE streams"
if start_idle sse "$IDLE_N"; then
  RSS3=$(rss_kib "$DSD_PID"); GRSS3=$(rss_kib "$GW_PID")
  log "  datasyncd RSS $RSS2 -> $RSS3 KiB, gateway $GRSS2 -> $GRSS3 KiB"
  stop_idle
fi

# --- latency ---
LAT_ROWS=
for tr in rpc sse; do
  for n in $LEVELS; do
    log "latency $tr, $n watchers, $WRITES writes"
    rc=0
    out=$("$WB" latency --url "$DS_IPC" --http "127.0.0.1:$GW_PORT" \
      --transport "$tr" --watchers "$n" --writes "$WRITES" \
      2>"$TMP/lat.err") || rc=$?
    if [[ $rc -ne 0 ]]; then
      FAILED=1
      log "  FAILED (exit $rc): $(tail -1 "$TMP/lat.err")"
      cat "$TMP/lat.err" >>"$TMP/bench.log"
    fi
    if [[ -z $out ]]; then
      LAT_ROWS+="| $tr | $n | FAILED | | | | | |"$'\n'
      continue
    fi
    log "  $out"
    # key=value pairs -> a row.
    LAT_ROWS+=$(awk -v fail="$rc" '{
      for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
      printf "| %s | %s | %s / %s%s | %.0f | %.0f | %.0f | %.0f | %.0f |",
        v["transport"], v["watchers"], v["events"], v["expected"],
        (fail != 0 ? " MISSING" : ""), v["deliver_p50_us"],
        v["deliver_p99_us"], v["deliver_max_us"], v["ack_p50_us"],
        v["ack_p99_us"]
    }' <<<"$out")$'\n'
  done
done

stop_pid "$GW_PID" datasync-gateway
stop_pid "$DSD_PID" datasyncd
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
ELAPSED=$(( $(date +%s) - T0 ))

# --- tables ---
ratio=; ok="?"
if [[ -n $UPD0 && -n $UPD1 ]]; then
  ratio=$(awk -v a="$UPD1" -v b="$UPD0" 'BEGIN {printf "%.1f", 100 * a / b}')
  ok=$(awk -v r="$ratio" 'BEGIN {print (r >= 80 ? "met" : "MISSED")}')
fi
per() { # A B N: (B - A) / N KiB, one decimal
  if [[ -n $1 && -n $2 ]]; then
    awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN {printf "%.1f", (b - a) / n}'
  else echo "?"; fi
}
echo "Watch latency: one writer, $WRITES CAS updates of one key about 5 ms"
echo "apart, every watcher on its prefix; sent -> delivered is from just"
echo "before the Update is sent to the event's arrival at each watcher,"
echo "sent -> acked the Update's own round trip (the commit, durability"
echo "full). SSE through datasync-gateway (ipc:// to datasyncd)."
echo
echo "| transport | watchers | events / expected | sent → delivered p50 µs | p99 µs | max µs | sent → acked p50 µs | p99 µs |"
echo "|---|--:|--:|--:|--:|--:|--:|--:|"
printf '%s' "$LAT_ROWS"
echo
echo "What $IDLE_N idle watchers cost ($ELAPSED s, load average $LOAD_BEFORE / $LOAD_AFTER):"
echo
echo "| what | figure | limit, same run | ratio | target | result |"
echo "|---|--:|---|--:|---|---|"
echo "| Update (ipc, 64 in flight) with $IDLE_N idle RPC watchers | ${UPD1:-FAILED}/s | no watcher ${UPD0:-FAILED}/s | ${ratio:-?} % | >= 80 % | $ok |"
echo "| datasyncd RSS, $IDLE_N parked RPC watchers | ${RSS1:-?} KiB | before ${RSS0:-?} KiB | $(per "$RSS0" "$RSS1" "$IDLE_N") KiB per watcher | | |"
echo "| datasyncd RSS with $IDLE_N watchers after the update run / after they left | ${RSS1B:-?} / ${RSS1C:-?} KiB | | | | |"
echo "| datasyncd RSS, $IDLE_N SSE streams (restarted) | ${RSS3:-?} KiB | before ${RSS2:-?} KiB | $(per "$RSS2" "$RSS3" "$IDLE_N") KiB per stream | | |"
echo "| datasync-gateway RSS, $IDLE_N SSE streams | ${GRSS3:-?} KiB | before ${GRSS2:-?} KiB | $(per "$GRSS2" "$GRSS3" "$IDLE_N") KiB per stream | | |"
if [[ -n $STOP_HANGS ]]; then
  echo
  echo "Did not exit within ${STOP_GRACE_S} s of SIGTERM (killed): $STOP_HANGS."
fi
exit "$FAILED"
