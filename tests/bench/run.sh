#!/usr/bin/env bash
# run.sh - the benchmark suite (DESIGN §8): datasync side by side with the
# limits of the same machine, measured in the same run.
#
#   tests/bench/run.sh            (or: cmake --build build --target bench)
#
# Builds nothing: it uses $BUILD_DIR (default build/) as the README's
# commands leave it. It starts, on temporary ipc:// paths and free ports:
# datasyncd (temporary database, --http), two raw nng echo servers
# (`datasync bench --echo-server`, ipc and tcp), libmicrohttpd's bare
# HTTP handler (`datasync bench --http-static`, the gateway's HTTP server
# with nothing behind it) and, when installed, etcd. Then:
#   - every op (get, update, update-hot, lock-cycle, mixed) at each
#     concurrency on ipc:// and tcp://, each group of ops preceded by the
#     raw echo at the same transport and concurrency, so drift in the
#     machine's load affects both;
#   - the SQLite baselines: CAS updates, 1 and 64 per transaction, full
#     and normal synchronous; point reads;
#   - the HTTP gateway with wrk: GET, PUT with If-Match, lock cycles, next
#     to libmicrohttpd's bare handler (GET) and etcd's JSON gateway (put,
#     range, CAS txn) with the same wrk settings;
#   - datasyncd's RSS at the end of a 256-in-flight run on 100,000 records;
#   - datasyncd restarted with --durability normal: echo, update,
#     update-hot and lock-cycle at 64 in flight over ipc://;
#   - bytes datasyncd writes per lock cycle of a 1 MiB value
#     (bytes_per_write.sh);
#   - issue 11, the change feed (watch.sh, its own datasyncd and
#     datasync-gateway, ~20 s): commit -> delivery latency to 1, 100 and
#     1000 watchers over RPC and SSE, Update throughput with 1000 idle
#     RPC watchers against none, and the RSS of a parked watcher and of an
#     SSE stream.
# It prints issue 10's target table (each target with its limit measured
# in this run, the ratio and met/MISSED) and one table of every point,
# each figure with its ratio to its limit, and writes them into
# BENCHMARKS.md between the markers (prose around them is kept) and a
# throughput plot into docs/bench-throughput.png (gnuplot).
#
# Environment:
#   BUILD_DIR            where datasyncd and datasync are (default build/)
#   BENCH_SECONDS        measured seconds per point (default 3)
#   BENCH_WARMUP         warmup seconds per nng point (default 1)
#   BENCH_CONCURRENCY    in-flight levels (default "1 8 64 256")
#   BENCH_CONNECTIONS    HTTP connection levels (default "1 16 64")
#   BENCH_KEYS           keys (default 1000); BENCH_VALUE_BYTES (default 100)
#   BENCH_RSS_KEYS       records for the RSS point (default 100000)
#   BENCH_OUTPUT         markdown file to update (default BENCHMARKS.md)
#   BENCH_PNG            plot (default docs/bench-throughput.png)
#   BENCH_NO_ETCD=1      skip etcd (and do not install it)
#   BENCH_BYTES_CYCLES   lock cycles for the bytes-per-write point (default 20)
#   BENCH_NO_WATCH=1     skip issue 11's watch points (watch.sh; its own
#                        BENCH_WATCH_* settings are listed there)
#   DS_KEEP_TMP=1        keep the temporary directory (logs, raw results)
# Needs: jq, wrk (HTTP points are skipped without it), gnuplot (no plot
# without it), etcd (Debian's etcd-server: installed here with apt-get
# when missing and run as root; etcd points skipped without it).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
SECS=${BENCH_SECONDS:-3}
WARM=${BENCH_WARMUP:-1}
CONCS=${BENCH_CONCURRENCY:-"1 8 64 256"}
CONNS=${BENCH_CONNECTIONS:-"1 16 64"}
KEYS=${BENCH_KEYS:-1000}
VB=${BENCH_VALUE_BYTES:-100}
RSS_KEYS=${BENCH_RSS_KEYS:-100000}
OUT_MD=${BENCH_OUTPUT:-$ROOT/BENCHMARKS.md}
PNG=${BENCH_PNG:-$ROOT/docs/bench-throughput.png}
DS=$BUILD_DIR/datasync
DSD=$BUILD_DIR/datasyncd
export BENCH_LUA_DIR=$HERE

die() { echo "bench: $*" >&2; exit 1; }
log() { echo "bench: $*" >&2; }

[[ -x $DS && -x $DSD ]] ||
  die "no $DS or $DSD: build first (or set BUILD_DIR)"
command -v jq >/dev/null || die "jq is needed to read the results"
HAVE_WRK=; command -v wrk >/dev/null && HAVE_WRK=1
HAVE_GNUPLOT=; command -v gnuplot >/dev/null && HAVE_GNUPLOT=1
# etcd is the limit of the gateway's PUT (issue 10: >= 3x etcd's JSON
# gateway put): install Debian's package here when it is missing, as
# nothing else in the project needs it (scripts/deps does not list it).
if [[ -z ${BENCH_NO_ETCD:-} ]] && ! command -v etcd >/dev/null; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    log "etcd not installed: apt-get install etcd-server"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q --no-install-recommends etcd-server \
        >/tmp/dsbench-apt.log 2>&1; then
      apt-get update -q >>/tmp/dsbench-apt.log 2>&1 || true
      apt-get install -y -q --no-install-recommends etcd-server \
        >>/tmp/dsbench-apt.log 2>&1 ||
        log "apt-get install etcd-server failed (see /tmp/dsbench-apt.log)"
    fi
  else
    log "etcd not installed (Debian: apt-get install etcd-server)"
  fi
fi
HAVE_ETCD=
if [[ -z ${BENCH_NO_ETCD:-} ]] && command -v etcd >/dev/null; then
  HAVE_ETCD=1
fi

TMP=$(mktemp -d /tmp/dsbench.XXXXXX)
RES=$TMP/results.jsonl
: >"$RES"
PIDS=()

cleanup() {
  local p
  for p in "${PIDS[@]}"; do
    if kill -0 "$p" 2>/dev/null; then
      kill -TERM "$p" 2>/dev/null || true
      wait "$p" 2>/dev/null || true
    fi
  done
  if [[ -n ${DS_KEEP_TMP:-} ]]; then
    log "kept $TMP"
  else
    rm -rf "$TMP"
  fi
}
trap cleanup EXIT

# free_port: a port nobody listens on, below Linux's ephemeral range
# (32768-60999), where the source ports of recent connections (in
# TIME_WAIT) would make the bind fail.
free_port() {
  local p
  for p in $(shuf -i 20000-32767 -n 50); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"; return 0
    fi
  done
  return 1
}

# wait_log FILE TEXT PID: wait until TEXT appears in FILE.
wait_log() {
  local i
  for i in $(seq 1 500); do
    grep -q -- "$2" "$1" 2>/dev/null && return 0
    kill -0 "$3" 2>/dev/null || break
    sleep 0.02
  done
  cat "$1" >&2
  die "$(basename "$1" .log) did not start"
}

stop_pid() {
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

DSD_PID=
# start_dsd [flags...]: datasyncd on fresh ipc/tcp/http addresses, the
# database in $TMP (kept across restarts).
start_dsd() {
  DS_IPC="ipc://$TMP/ds.sock"
  DS_TCP="tcp://127.0.0.1:$(free_port)"
  HTTP_PORT=$(free_port)
  DS_HTTP="http://127.0.0.1:$HTTP_PORT"
  "$DSD" --db "$TMP/datasync.db" --listen "$DS_IPC" --listen "$DS_TCP" \
    --http "127.0.0.1:$HTTP_PORT" --quiet "$@" >"$TMP/datasyncd.log" 2>&1 &
  DSD_PID=$!
  PIDS+=("$DSD_PID")
  wait_log "$TMP/datasyncd.log" "gateway and demo page on" "$DSD_PID"
}

start_servers() {
  ECHO_IPC="ipc://$TMP/echo.sock"
  ECHO_TCP="tcp://127.0.0.1:$(free_port)"
  "$DS" bench --echo-server "$ECHO_IPC" >"$TMP/echo-ipc.log" 2>&1 &
  PIDS+=("$!")
  wait_log "$TMP/echo-ipc.log" "echo server on" "$!"
  "$DS" bench --echo-server "$ECHO_TCP" >"$TMP/echo-tcp.log" 2>&1 &
  PIDS+=("$!")
  wait_log "$TMP/echo-tcp.log" "echo server on" "$!"
  STATIC_PORT=$(free_port)
  "$DS" bench --http-static "127.0.0.1:$STATIC_PORT" \
    >"$TMP/static.log" 2>&1 &
  PIDS+=("$!")
  wait_log "$TMP/static.log" "static HTTP" "$!"
}

ETCD_PID=
start_etcd() {
  local cport pport
  cport=$(free_port); pport=$(free_port)
  ETCD_URL="http://127.0.0.1:$cport"
  etcd --name bench --data-dir "$TMP/etcd" \
    --listen-client-urls "$ETCD_URL" --advertise-client-urls "$ETCD_URL" \
    --listen-peer-urls "http://127.0.0.1:$pport" \
    --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
    --initial-cluster "bench=http://127.0.0.1:$pport" \
    --log-level error >"$TMP/etcd.log" 2>&1 &
  ETCD_PID=$!
  PIDS+=("$ETCD_PID")
  local i
  for i in $(seq 1 100); do
    curl -sf "$ETCD_URL/health" >/dev/null 2>&1 && return 0
    kill -0 "$ETCD_PID" 2>/dev/null || break
    sleep 0.1
  done
  cat "$TMP/etcd.log" >&2
  log "etcd did not start: etcd points skipped"
  HAVE_ETCD=
}

# record NAME TRANSPORT CONC DUR LIMIT TARGET JSON: one result line. LIMIT
# is the id (name|transport|conc|dur) of the row it is compared with.
record() {
  jq -c --arg name "$1" --arg tr "$2" --argjson conc "$3" --arg dur "$4" \
    --arg limit "$5" --arg target "$6" \
    '{name: $name, transport: $tr, conc: $conc, dur: $dur,
      id: "\($name)|\($tr)|\($conc)|\($dur)", limit: $limit,
      target: $target} + .' <<<"$7" >>"$RES"
}

record_failed() {
  record "$1" "$2" "$3" "$4" "$5" "$6" '{"failed": true}'
}

# ds_point NAME TRANSPORT CONC DUR LIMIT TARGET ARGS...: one `datasync bench`
# point; its JSON goes into the results.
ds_point() {
  local name=$1 tr=$2 conc=$3 dur=$4 limit=$5 target=$6 out rc=0
  shift 6
  log "$name $tr c=$conc ($dur)"
  out=$("$DS" bench --json --concurrency "$conc" --duration "${SECS}s" \
    --warmup "${WARM}s" "$@" 2>"$TMP/point.err") || rc=$?
  cat "$TMP/point.err" >>"$TMP/bench.log"
  if [[ $rc -ne 0 && -z $out ]] || ! jq -e . >/dev/null 2>&1 <<<"$out"
  then
    log "  failed (exit $rc): $(tail -1 "$TMP/point.err")"
    record_failed "$name" "$tr" "$conc" "$dur" "$limit" "$target"
    return 0
  fi
  # update-hot: the final version must be the start version plus the
  # acknowledged increments (plus at most those of unknown outcome).
  if grep -q "LOST INCREMENTS\|EXTRA INCREMENTS" "$TMP/point.err" ||
     jq -e '.increments != null and (.increments.final <
       .increments.start + .increments.acknowledged or .increments.final >
       .increments.start + .increments.acknowledged + .increments.unknown)' \
       >/dev/null <<<"$out"; then
    out=$(jq -c '. + {lost: true}' <<<"$out")
    log "  $(grep "INCREMENTS" "$TMP/point.err")"
  fi
  record "$name" "$tr" "$conc" "$dur" "$limit" "$target" "$out"
  log "  $(jq -r '"\(.ops_per_sec|floor) ops/s, p99 \(.p99_us) us, errors \(.errors), conflicts \(.conflicts)"' <<<"$out")"
}

# wrk_point NAME CONC THREADS LIMIT TARGET URL SCRIPT ARGS...: one wrk point.
wrk_point() {
  local name=$1 conc=$2 threads=$3 limit=$4 target=$5 url=$6 script=$7 out
  shift 7
  log "$name http c=$conc"
  out=$(wrk -t "$threads" -c "$conc" -d "${SECS}s" --timeout 10s \
    -s "$HERE/$script" "$url" -- "$@" 2>>"$TMP/bench.log" |
    tee -a "$TMP/bench.log" | sed -n 's/^BENCH //p') || true
  if [[ -z $out ]]; then
    log "  failed: see $TMP/bench.log"
    record_failed "$name" http "$conc" full "$limit" "$target"
    return 0
  fi
  out=$(jq -c --arg url "$url" '. + {url: $url, concurrency: '"$conc"'}' \
    <<<"$out")
  record "$name" http "$conc" full "$limit" "$target" "$out"
  log "  $(jq -r '"\(.ops_per_sec|floor) ops/s, p99 \(.p99_us) us, errors \(.errors), conflicts \(.conflicts)"' <<<"$out")"
}

# rss_kib PID: resident set, and its peak, in KiB.
rss_kib() {
  awk '/^VmRSS:/ {r=$2} /^VmHWM:/ {h=$2} END {print r, h}' \
    "/proc/$1/status"
}

# --- machine ----------------------------------------------------------------
START_LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
T_START=$(date +%s)
CPU=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
NNG_V=$(dpkg-query -W -f '${Version}' libnng1 2>/dev/null || echo "?")
MHD_V=$(dpkg-query -W -f '${Version}' libmicrohttpd12 2>/dev/null ||
  echo "?")
SQLITE_V=$(dpkg-query -W -f '${Version}' libsqlite3-0 2>/dev/null ||
  echo "?")
ETCD_V="not installed"
if [[ -n $HAVE_ETCD ]]; then
  ETCD_V=$(etcd --version 2>/dev/null | awk '/etcd Version/ {print $3}')
fi
WRK_V="not installed"
if [[ -n $HAVE_WRK ]]; then
  # wrk -v prints its version and exits non-zero.
  WRK_V=$(wrk -v 2>&1 | awk 'NR == 1 {print $2}' || true)
fi
COMMIT=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo "?")
log "results in $TMP; ${SECS}s per point"

# --- nng: every op against the raw echo ------------------------------------
SQLITE_B1_FULL="sqlite-update-b1|file|1|full"
start_dsd
start_servers
for tr in ipc tcp; do
  if [[ $tr == ipc ]]; then url=$DS_IPC; echo_url=$ECHO_IPC
  else url=$DS_TCP; echo_url=$ECHO_TCP; fi
  for c in $CONCS; do
    lim="echo|$tr|$c|full"
    t=; [[ $tr == ipc && $c == 64 ]] && t=1
    ds_point echo "$tr" "$c" full "" "" --baseline echo --url "$echo_url" \
      --value-bytes "$VB"
    ds_point get "$tr" "$c" full "$lim" "${t:+ratio>=50,p99<=2}" --url "$url" \
      --op get --keys "$KEYS" --value-bytes "$VB"
    ds_point update "$tr" "$c" full "$lim" "${t:+ratio>=25}" --url "$url" \
      --op update --keys "$KEYS" --value-bytes "$VB"
    # update-hot's limit is SQLite's one write per commit (measured
    # below): a hot key commits at most once per batch.
    ds_point update-hot "$tr" "$c" full "$SQLITE_B1_FULL" "${t:+ratio>=50}" \
      --url "$url" --op update-hot --value-bytes "$VB"
    ds_point lock-cycle "$tr" "$c" full "$lim" "${t:+ratio>=12}" --url "$url" \
      --op lock-cycle --keys "$KEYS" --value-bytes "$VB"
    ds_point mixed "$tr" "$c" full "$lim" "" --url "$url" --op mixed \
      --keys "$KEYS" --value-bytes "$VB"
  done
done

# --- SQLite ------------------------------------------------------------------
for d in full normal; do
  for b in 1 64; do
    ds_point "sqlite-update-b$b" file 1 "$d" "" "" --baseline sqlite \
      --db "$TMP/sqlite-$d.db" --durability "$d" --batch "$b" \
      --keys "$KEYS" --value-bytes "$VB"
  done
done
ds_point sqlite-read file 1 full "" "" --baseline sqlite-read \
  --db "$TMP/sqlite-full.db" --keys "$KEYS" --value-bytes "$VB"

# --- HTTP ---------------------------------------------------------------------
if [[ -n $HAVE_WRK ]]; then
  [[ -n $HAVE_ETCD ]] && start_etcd
  for c in $CONNS; do
    t2=$(( c < 2 ? c : 2 ))
    t=; [[ $c == 64 ]] && t=1
    wrk_point mhd-static-get "$c" "$t2" "" "" "http://127.0.0.1:$STATIC_PORT" \
      http_get.lua "$KEYS" bench-
    wrk_point gateway-get "$c" "$t2" "mhd-static-get|http|$c|full" \
      "${t:+ratio>=50}" "$DS_HTTP" http_get.lua "$KEYS" bench-
    if [[ -n $HAVE_ETCD ]]; then
      wrk_point etcd-put "$c" "$t2" "" "" "$ETCD_URL" etcd_put.lua "$KEYS" \
        bench- "$VB"
      wrk_point etcd-range "$c" "$t2" "" "" "$ETCD_URL" etcd_range.lua \
        "$KEYS" bench-
      wrk_point etcd-txn "$c" "$c" "" "" "$ETCD_URL" etcd_txn.lua "$KEYS" \
        bench- "$VB"
    fi
    wrk_point gateway-put "$c" "$t2" "etcd-put|http|$c|full" "${t:+ratio>=300}" \
      "$DS_HTTP" http_put.lua "$KEYS" bench- "$VB" "$t2"
    # wrk stops mid-cycle and leaves up to c leases (10 s) behind: own
    # keys, so no other point meets them.
    wrk_point gateway-lock-cycle "$c" "$c" "etcd-txn|http|$c|full" \
      "${t:+ratio>=300}" "$DS_HTTP" http_lock.lua "$KEYS" lockbench- "$VB" \
      "$c"
  done
  if [[ -n $HAVE_ETCD ]]; then stop_pid "$ETCD_PID"; fi
else
  log "wrk not installed: HTTP points skipped"
fi

# --- RSS: 100,000 records, 256 in flight -------------------------------------
log "RSS: preloading $RSS_KEYS records, then mixed at 256 in flight"
"$DS" bench --url "$DS_IPC" --keys "$RSS_KEYS" --value-bytes "$VB" \
  --concurrency 256 --preload-only 2>>"$TMP/bench.log" ||
  log "  preload of $RSS_KEYS records failed"
RSS_MAX=0
(
  # Sample while the run goes on; the last sample is the end of the run.
  while kill -0 "$DSD_PID" 2>/dev/null; do
    rss_kib "$DSD_PID" >"$TMP/rss.now" 2>/dev/null || true
    sleep 0.25
  done
) &
SAMPLER=$!
ds_point mixed-100k ipc 256 full "" "" --url "$DS_IPC" --op mixed \
  --keys "$RSS_KEYS" --value-bytes "$VB"
read -r RSS_END RSS_HWM <"$TMP/rss.now" || true
kill "$SAMPLER" 2>/dev/null || true
wait "$SAMPLER" 2>/dev/null || true
read -r RSS_NOW RSS_HWM <<<"$(rss_kib "$DSD_PID")"
RSS_END=${RSS_END:-$RSS_NOW}
log "  datasyncd RSS ${RSS_END} KiB at the end of the run (peak ${RSS_HWM})"

# --- durability normal ---------------------------------------------------------
stop_pid "$DSD_PID"
start_dsd --durability normal
lim="echo|ipc|64|normal"
ds_point echo ipc 64 normal "" "" --baseline echo --url "$ECHO_IPC" \
  --value-bytes "$VB"
ds_point update ipc 64 normal "$lim" "ratio>=35" --url "$DS_IPC" --op update \
  --keys "$KEYS" --value-bytes "$VB"
ds_point update-hot ipc 64 normal "sqlite-update-b1|file|1|normal" "" \
  --url "$DS_IPC" --op update-hot \
  --value-bytes "$VB"
ds_point lock-cycle ipc 64 normal "$lim" "" --url "$DS_IPC" --op lock-cycle \
  --keys "$KEYS" --value-bytes "$VB"
stop_pid "$DSD_PID"

# --- bytes written per lock cycle of a 1 MiB value ----------------------------
# bytes_per_write.sh starts its own datasyncd (durability full) and reads
# wchar from /proc/PID/io around N lock cycles and N plain updates. Its
# limit is the value itself: 1 MiB is what one write of it costs.
BYTES_N=${BENCH_BYTES_CYCLES:-20}
log "bytes written per lock cycle / update of a 1 MiB value ($BYTES_N each)"
if BW_OUT=$(BUILD_DIR="$BUILD_DIR" bash "$HERE/bytes_per_write.sh" \
    "$BYTES_N" 2>>"$TMP/bench.log"); then
  log "  $(tr '\n' ';' <<<"$BW_OUT")"
  BW_CYCLE=$(sed -n 's/^lock cycle (1 MiB value): \([0-9.]*\) MiB.*/\1/p' \
    <<<"$BW_OUT")
  BW_UPDATE=$(sed -n 's/^update *(1 MiB value): \([0-9.]*\) MiB.*/\1/p' \
    <<<"$BW_OUT")
  record bytes-lock-cycle ipc 1 full "" "mib<=3" \
    "{\"kind\": \"bytes\", \"mib_per_op\": ${BW_CYCLE:-null}, \"ops\": $BYTES_N}"
  record bytes-update ipc 1 full "" "" \
    "{\"kind\": \"bytes\", \"mib_per_op\": ${BW_UPDATE:-null}, \"ops\": $BYTES_N}"
else
  log "  bytes_per_write.sh failed: see $TMP/bench.log"
  record bytes-lock-cycle ipc 1 full "" "mib<=3" \
    '{"kind": "bytes", "failed": true}'
fi

# --- issue 11: the change feed ------------------------------------------------
# watch.sh starts its own datasyncd and gateway and prints its tables
# (markdown) on stdout; its progress goes to stderr like the points above.
WATCH_MD=
if [[ -z ${BENCH_NO_WATCH:-} ]]; then
  log "issue 11: watchers (tests/bench/watch.sh)"
  wrc=0
  WATCH_MD=$(BUILD_DIR="$BUILD_DIR" BENCH_SECONDS="$SECS" \
    BENCH_WARMUP="$WARM" BENCH_KEYS="$KEYS" BENCH_VALUE_BYTES="$VB" \
    bash "$HERE/watch.sh") || wrc=$?
  if [[ $wrc -ne 0 ]]; then
    log "  watch.sh: a point failed (exit $wrc): see its table"
    WATCH_MD+=$'\n\n'"watch.sh exited $wrc: a point failed (see above)."
  fi
fi

END_LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
ELAPSED=$(( $(date +%s) - T_START ))

# --- the table ------------------------------------------------------------------
# One row per point: its figure, its limit and the ratio, and the target
# where DESIGN's issue sets one ("ratio>=N" in %, "p99<=N" times the
# limit's p99, "ops>=N" absolute).
TABLE=$(jq -rs '
  def r1: if . == null then "" else (. * 10 | round / 10 | tostring) end;
  def r0: if . == null then "" else (. | round | tostring) end;
  (map({key: .id, value: .}) | from_entries) as $by
  | def check($row; $lim):
      ($row.target // "") as $t
      | if $t == "" then ""
        else ($t | split(",") | map(
          capture("(?<k>[a-z0-9]+)(?<op>>=|<=)(?<v>[0-9.]+)") as $c
          | ($c.v | tonumber) as $v
          | (if $c.k == "ratio" then
               (if $lim == null or $lim.failed then null
                else 100 * $row.ops_per_sec / $lim.ops_per_sec end)
             elif $c.k == "p99" then
               (if $lim == null or $lim.failed then null
                else $row.p99_us / $lim.p99_us end)
             else $row.ops_per_sec end) as $m
          | (if $m == null then "?"
             elif ($c.op == ">=" and $m >= $v) or ($c.op == "<=" and $m <= $v)
             then "met" else "MISSED" end) as $ok
          | (if $c.k == "ratio" then ">= \($v) %"
             elif $c.k == "p99" then "p99 <= \($v)x"
             else ">= \($v)/s" end) + " " + $ok
          ) | join(", "))
          + (if $row.lost then ", LOST INCREMENTS"
             elif $row.increments != null then
               ", final v\($row.increments.final) = v\($row.increments.start) + \($row.increments.acknowledged) acked, none lost"
             elif $row.name == "update-hot" then ", none lost"
             else "" end)
        end;
  "| benchmark | transport | in flight | durability | ops/s | p50 µs | p99 µs | p99.9 µs | errors | conflicts | limit | ratio | p99 ratio | target |",
  "|---|---|--:|---|--:|--:|--:|--:|--:|--:|---|--:|--:|---|",
  (.[] | select(.kind != "bytes") | . as $row
   | ($by[$row.limit] // null) as $lim
   | if $row.failed then
       "| \($row.name) | \($row.transport) | \($row.conc) | \($row.dur) | FAILED | | | | | | | | | |"
     else
       "| \($row.name) | \($row.transport) | \($row.conc) | \($row.dur) | \($row.ops_per_sec | r0) | \($row.p50_us | r1) | \($row.p99_us | r1) | \($row.p999_us | r1) | \($row.errors) | \($row.conflicts) | "
       + (if $lim == null then "" else ($row.limit | split("|") | "\(.[0]) \(.[1])/\(.[2])") end)
       + " | "
       + (if $lim == null or $lim.failed then ""
          else (100 * $row.ops_per_sec / $lim.ops_per_sec | r1) + " %" end)
       + " | "
       + (if $lim == null or $lim.failed or ($lim.p99_us // 0) == 0 then ""
          else ($row.p99_us / $lim.p99_us * 100 | round / 100 | tostring) + "x" end)
       + " | " + check($row; $lim) + " |"
     end)
' "$RES")
# Issue 10's targets: each row with its limit measured in this run.
TARGETS=$(jq -rs '
  def r1: if . == null then "?" else (. * 10 | round / 10 | tostring) end;
  def r0: if . == null then "?" else (. | round | tostring) end;
  def ok($b): if $b == null then "?" elif $b then "met" else "MISSED" end;
  (map({key: .id, value: .}) | from_entries) as $by
  | def pt($id): ($by[$id] // null) | if . == null or .failed then null else . end;
    def ops($p): if $p == null then "FAILED or not run" else "\($p.ops_per_sec | r0)/s" end;
    def pct($a; $b): if $a == null or $b == null then null
                     else 100 * $a.ops_per_sec / $b.ops_per_sec end;
  (pt("update|ipc|64|full")) as $upd
  | (pt("get|ipc|64|full")) as $get
  | (pt("update-hot|ipc|64|full")) as $hot
  | (pt("lock-cycle|ipc|64|full")) as $lc
  | (pt("echo|ipc|64|full")) as $echo
  | (pt("sqlite-update-b1|file|1|full")) as $sq
  | (pt("bytes-lock-cycle|ipc|1|full")) as $bw
  | (pt("gateway-put|http|64|full")) as $gp
  | (pt("etcd-put|http|64|full")) as $ep
  | pct($upd; $echo) as $u | pct($get; $echo) as $g | pct($hot; $sq) as $h
  | pct($lc; $echo) as $l | pct($gp; $ep) as $p
  | (if $get == null or $echo == null then null
     else $get.p99_us / $echo.p99_us end) as $g99
  | ($hot != null and ($hot.lost | not) and $hot.increments != null
     and $hot.increments.final == $hot.increments.start + $hot.increments.acknowledged) as $nolost
  | "| what (ipc, 64 in flight, durability full) | datasync | limit, same run | ratio | target | result |",
    "|---|--:|---|--:|---|---|",
    "| Update (CAS, random keys) | \(ops($upd)) | raw echo \(ops($echo)) | \($u | r1) % | >= 25 % (stretch 35 %) | \(ok(if $u == null then null else $u >= 25 end))\(if $u != null and $u >= 35 then ", stretch met" else "" end) |",
    "| Get | \(ops($get)), p99 \($get.p99_us | r0) µs | raw echo \(ops($echo)), p99 \($echo.p99_us | r0) µs | \($g | r1) %, p99 \($g99 | . * 100 | round / 100 | tostring)x | >= 50 %, p99 <= 2x | \(ok(if $g == null then null else $g >= 50 end)), p99 \(ok(if $g99 == null then null else $g99 <= 2 end)) |",
    "| update-hot (64 CAS clients, one key) | \(ops($hot)) | SQLite one write per commit \(ops($sq)) | \($h | r1) % | >= 50 %, no increment lost | \(ok(if $h == null then null else $h >= 50 end)); \(if $hot == null then "?" elif $nolost then "none lost (final v\($hot.increments.final) = v\($hot.increments.start) + \($hot.increments.acknowledged) acknowledged)" else "LOST INCREMENTS" end) |",
    "| lock-cycle | \(ops($lc)) | raw echo \(ops($echo)) | \($l | r1) % | >= 12 % | \(ok(if $l == null then null else $l >= 12 end)) |",
    "| bytes written per lock cycle of a 1 MiB value | \(if $bw == null then "FAILED" else "\($bw.mib_per_op) MiB" end) | the value, 1 MiB | \(if $bw == null then "?" else "\($bw.mib_per_op)x" end) | <= 3 MiB | \(ok(if $bw == null then null else $bw.mib_per_op <= 3 end)) |",
    "| gateway PUT with If-Match, 64 connections (http) | \(ops($gp)) | etcd JSON gateway put \(ops($ep)) | \(if $p == null then "?" else ($p / 100 | . * 100 | round / 100 | tostring) + "x" end) | >= 3x | \(ok(if $p == null then null else $p >= 300 end)) |"
' "$RES")
RSS_LINE="datasyncd RSS at the end of the 256-in-flight mixed run on $RSS_KEYS records: $(( ${RSS_END:-0} / 1024 )) MiB (peak $(( ${RSS_HWM:-0} / 1024 )) MiB); target <= 64 MiB: $( (( ${RSS_END:-0} <= 65536 )) && echo met || echo MISSED)"

echo
echo "$TARGETS"
echo
echo "$TABLE"
echo
echo "$RSS_LINE"
if [[ -n $WATCH_MD ]]; then
  echo
  echo "$WATCH_MD"
fi

# --- the plot --------------------------------------------------------------------
PLOT_MD=
if [[ -n $HAVE_GNUPLOT ]]; then
  for tr in ipc tcp; do
    jq -rs --arg tr "$tr" '
      [.[] | select(.transport == $tr and .dur == "full" and (.failed | not))]
      | group_by(.conc)[]
      | (map({key: .name, value: .ops_per_sec}) | from_entries) as $m
      | [.[0].conc, ($m.echo // "NaN"), ($m.get // "NaN"),
         ($m.update // "NaN"), ($m."update-hot" // "NaN"),
         ($m."lock-cycle" // "NaN"), ($m.mixed // "NaN")]
      | @tsv' "$RES" >"$TMP/plot-$tr.tsv"
  done
  mkdir -p "$(dirname "$PNG")"
  if gnuplot -e "ipc='$TMP/plot-ipc.tsv'; tcp='$TMP/plot-tcp.tsv'; out='$PNG'" \
      "$HERE/throughput.gp" 2>>"$TMP/bench.log"; then
    PLOT_MD="![throughput against requests in flight]($(realpath --relative-to="$(dirname "$OUT_MD")" "$PNG"))"
    log "plot: $PNG"
  else
    log "gnuplot failed: see $TMP/bench.log"
  fi
fi

# --- BENCHMARKS.md -------------------------------------------------------------
BEGIN_MARK='<!-- bench:begin (generated by tests/bench/run.sh; edits inside are overwritten) -->'
END_MARK='<!-- bench:end -->'
GEN=$TMP/generated.md
{
  echo "$BEGIN_MARK"
  echo
  echo "Run of $(date -u +%Y-%m-%dT%H:%MZ) at \`$COMMIT\`, ${ELAPSED} s."
  echo
  echo "| machine | |"
  echo "|---|---|"
  echo "| CPUs (nproc) | $(nproc) |"
  echo "| CPU | $CPU |"
  echo "| kernel | $(uname -sr) |"
  echo "| nng | $NNG_V |"
  echo "| libmicrohttpd | $MHD_V |"
  echo "| SQLite | $SQLITE_V |"
  echo "| etcd | $ETCD_V |"
  echo "| wrk | $WRK_V |"
  echo "| load average before / after | $START_LOAD / $END_LOAD |"
  echo
  echo "Command: \`BENCH_SECONDS=$SECS tests/bench/run.sh\` (${SECS} s per"
  echo "point, ${WARM} s warmup for nng points, $KEYS keys, $VB-byte values)."
  echo
  echo "Issue 10's targets, each against its limit in this run:"
  echo
  echo "$TARGETS"
  echo
  echo "Every point:"
  echo
  echo "$TABLE"
  echo
  echo "$RSS_LINE."
  echo
  if [[ -n $WATCH_MD ]]; then
    echo "Issue 11, the change feed (tests/bench/watch.sh):"
    echo
    echo "$WATCH_MD"
    echo
  fi
  if [[ -n $PLOT_MD ]]; then
    echo "$PLOT_MD"
    echo
  fi
  echo "$END_MARK"
} >"$GEN"

if [[ -f $OUT_MD ]] && grep -qF -- "$END_MARK" "$OUT_MD"; then
  awk -v gen="$GEN" '
    index($0, "<!-- bench:begin") == 1 {
      while ((getline line < gen) > 0) print line
      skip = 1; next
    }
    skip && index($0, "<!-- bench:end -->") == 1 { skip = 0; next }
    !skip { print }' "$OUT_MD" >"$TMP/out.md"
  cp "$TMP/out.md" "$OUT_MD"
else
  {
    cat <<'EOF'
# Benchmarks

`tests/bench/run.sh` measures datasync next to the limits of the same
machine in the same run (DESIGN §8): a raw nng REQ/REP echo of the same
message size with the same aio-driven client, raw SQLite CAS loops with the
same durability, libmicrohttpd's bare HTTP handler and etcd's JSON gateway under the
same wrk settings. Ratios, not absolute numbers, are what carry over to
another machine.

How to read the table:

- **ops/s** is completed operations per second in the measured window. An
  update counts once however many VERSION_CONFLICT retries it needed; a
  lock cycle (Lock, Update with the token, Unlock) counts once; for the
  SQLite rows it is updates (or reads) per second.
- **limit / ratio**: Get, Update, lock-cycle and mixed are compared with
  the raw echo at the same transport and concurrency (measured just
  before them); update-hot with SQLite's one write per commit (the
  sqlite-update-b1 row of the same durability); the gateway's GET with libmicrohttpd's
  bare handler, its If-Match PUT with etcd's put, its lock cycles with etcd's
  CAS txn, at the same connection count.
- **update** is a CAS on a random key with a client-side version cache:
  one Update with `if_version` per op, retried against the version a
  conflict carries. **update-hot** is the same on one key; the run fails
  if the key's final version differs from the successful increments.
- Latency of the HTTP rows is per request (wrk); a lock cycle is three.
- The machine is shared with other engineers' builds and tests: the load
  average before and after the run is in the machine table; numbers move
  by tens of percent between runs.

EOF
    cat "$GEN"
    cat <<'EOF'

## Where the time goes

_To be filled in from a profile (`perf record -g` on datasyncd during a
run): the top functions per op and what bounds each ratio._
EOF
  } >"$OUT_MD"
fi
log "wrote $OUT_MD (${ELAPSED} s)"
