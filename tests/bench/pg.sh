#!/usr/bin/env bash
# pg.sh - issue 12's benchmark: datasync on PostgreSQL through 1, 2 and 3
# nodes next to pgbench on the same server in the same run, and next to
# the SQLite single node.
#
#   tests/bench/pg.sh          (or: cmake --build build --target bench-pg)
#
# Builds nothing: it uses $BUILD_DIR (default build/). In a temporary
# directory it starts ONE private PostgreSQL (tests/support/pgserver.sh)
# with fsync, full_page_writes and synchronous_commit ON (durable, as
# datasyncd's --durability full on SQLite), max_connections raised for
# 256 pgbench clients, then:
#   - pgbench -i (scale $BENCH_PG_SCALE) in a database of its own, then
#     pgbench -N (simple-update) and -S (select-only) at each client count
#     (-j 2, -T $BENCH_SECONDS, -n);
#   - three datasyncd nodes on the database "datasync" (tcp://, no
#     gateway); `datasync bench --op update` and `--op get` through 1, 2
#     and 3 of them (--url repeated: nng spreads the calls) at each
#     in-flight count, on $BENCH_KEYS keys of $BENCH_VALUE_BYTES bytes;
#   - the saturated case again (update, 3 nodes, the largest count) under
#     `perf record -a -g` and with pg_stat_activity sampled every 0.1 s:
#     where the CPU goes by process and by symbol, and what the server's
#     backends wait for;
#   - the SQLite single node (datasyncd --db FILE, --durability full) the
#     same way.
# It prints one table: config, in flight, ops/s, and the ratio to pgbench
# at the same client count (-N for Update, -S for Get). Target (issue
# 12): Update through 3 nodes >= 50 % of pgbench -N.
#
# Environment:
#   BUILD_DIR          where datasyncd and datasync are (default build/)
#   BENCH_SECONDS      measured seconds per point (default 5)
#   BENCH_WARMUP       warmup seconds per datasync point (default 1)
#   BENCH_CLIENTS      client / in-flight counts (default "64 256")
#   BENCH_KEYS         datasync keys (default 10000)
#   BENCH_VALUE_BYTES  datasync value size (default 100)
#   BENCH_PG_SCALE     pgbench -i scale: 100,000 accounts each (default 1)
#   BENCH_NO_PROFILE=1 skip the profiled run
#   DS_KEEP_TMP=1      keep the temporary directory (logs, raw results)
# The table also shows fdatasync calls per second during each window and
# ops per call: how many durable writes share one flush.
# Needs: jq; perf for the profile and the flush counts (skipped without).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
SECS=${BENCH_SECONDS:-5}
WARM=${BENCH_WARMUP:-1}
CLIENTS=${BENCH_CLIENTS:-"64 256"}
KEYS=${BENCH_KEYS:-10000}
VB=${BENCH_VALUE_BYTES:-100}
SCALE=${BENCH_PG_SCALE:-1}
DS=$BUILD_DIR/datasync
DSD=$BUILD_DIR/datasyncd
PGSERVER=$ROOT/tests/support/pgserver.sh
readonly NODES=3
# 256 pgbench clients, three nodes' connections and psql.
readonly PG_MAX_CONNECTIONS=400
# pg_stat_activity samples during the profiled run (0.1 s apart).
readonly WAIT_SAMPLES=30

die() { echo "bench-pg: $*" >&2; exit 1; }
log() { echo "bench-pg: $*" >&2; }

[[ -x $DS && -x $DSD ]] ||
  die "no $DS or $DSD: build first (or set BUILD_DIR)"
command -v jq >/dev/null || die "jq is needed to read the results"

TMP=$(mktemp -d /tmp/dsbpg.XXXXXX)
# As root the server runs as nobody, who must reach its directory.
chmod 755 "$TMP"
PGDIR=$TMP/pg
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  bash "$PGSERVER" destroy "$PGDIR" >/dev/null 2>&1 || true
  if [[ -n ${DS_KEEP_TMP:-} ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

free_port() {
  local p
  for p in $(shuf -i 20000-32767 -n 50); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"; return 0
    fi
  done
  return 1
}

# --- the server ---

PGBIN=$(dirname "$(ls -d /usr/lib/postgresql/*/bin/pgbench 2>/dev/null | sort -V | tail -1)")
[[ -x $PGBIN/pgbench ]] || die "no pgbench (Debian: postgresql-contrib is part of postgresql 15)"
log "starting PostgreSQL in $PGDIR (fsync on)"
URI=$(PGSERVER_FSYNC=on bash "$PGSERVER" start "$PGDIR")
psql_() { "$PGBIN/psql" -X -q -A -t -h "$PGDIR" -p 5432 -U datasync "$@"; }
psql_ -d datasync -c "ALTER SYSTEM SET max_connections = $PG_MAX_CONNECTIONS" >/dev/null
bash "$PGSERVER" restart "$PGDIR" fast
[[ $(psql_ -d datasync -c "SHOW fsync") == on &&
   $(psql_ -d datasync -c "SHOW synchronous_commit") == on ]] ||
  die "the server is not durable (fsync / synchronous_commit off)"
psql_ -d datasync -c "CREATE DATABASE pgbench" >/dev/null

pgb() { "$PGBIN/pgbench" -h "$PGDIR" -p 5432 -U datasync "$@" pgbench; }
log "pgbench -i -s $SCALE"
pgb -i -s "$SCALE" -q >"$TMP/pgbench-init.log" 2>&1 ||
  { cat "$TMP/pgbench-init.log" >&2; die "pgbench -i failed"; }

declare -A TPS
RESULTS=$TMP/results.tsv
: >"$RESULTS"
# row CONFIG CLIENTS OPS_PER_SEC BASELINE_KEY WAL_SYNCS_PER_S OPS_PER_SYNC
row() { printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RESULTS"; }
# Durable commits that share one WAL flush share one fdatasync (group
# commit): count them with perf stat attached to our server's processes
# (or to the SQLite node) for part of each window; other work on this
# machine syncs too, so a system-wide count would not do.
HAVE_PERF=; command -v perf >/dev/null && HAVE_PERF=1
# sync_start OFFSET DURATION [PID]: count from OFFSET seconds into the
# point for DURATION seconds the syncs of PID, default the postmaster's
# children as they are at OFFSET (the sessions of the point are up by
# then). sync_rate OPS: SYNC_COLS is "syncs/s<TAB>ops per sync" (call it
# in this shell: it waits for perf).
sync_start() {
  SYNC_PID=
  SYNC_SECS=$2
  [[ -n $HAVE_PERF ]] || return 0
  local who=${3:-}
  rm -f "$TMP/syncs.csv"
  (
    sleep "$1"
    if [[ -z $who ]]; then
      who=$(ps -o pid= --ppid "$(head -1 "$PGDIR/data/postmaster.pid")" |
        tr -s ' \n' ',' | sed 's/^,//; s/,$//')
    fi
    exec perf stat -e syscalls:sys_enter_fdatasync,syscalls:sys_enter_fsync \
      -p "$who" -x, -o "$TMP/syncs.csv" -- sleep "$SYNC_SECS"
  ) >/dev/null 2>&1 &
  SYNC_PID=$!
}
sync_rate() {
  local n
  SYNC_COLS=$'-\t-'
  [[ -n $SYNC_PID ]] && wait "$SYNC_PID" && [[ -s $TMP/syncs.csv ]] || return 0
  n=$(awk -F, '$3 ~ /sys_enter_f/ {n += $1} END {print n + 0}' "$TMP/syncs.csv")
  SYNC_COLS=$(awk -v o="$1" -v n="$n" -v t="$SYNC_SECS" 'BEGIN {
    printf "%.0f\t%s", n / t, (n > 0 ? sprintf("%.1f", o * t / n) : "-") }')
}

for c in $CLIENTS; do
  for mode in N S; do
    log "pgbench -$mode -c $c -j 2 -T $SECS"
    # pgbench's clients connect before its -T clock starts.
    sync_start 1 "$(awk -v s="$SECS" 'BEGIN {print s - 1.5}')"
    pgb -$mode -n -c "$c" -j 2 -T "$SECS" >"$TMP/pgbench-$mode-$c.log" 2>&1 ||
      { cat "$TMP/pgbench-$mode-$c.log" >&2; die "pgbench -$mode failed"; }
    tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p' \
      "$TMP/pgbench-$mode-$c.log")
    [[ -n $tps ]] || die "no tps in $TMP/pgbench-$mode-$c.log"
    TPS[$mode$c]=$tps
    sync_rate "$tps"
    row "pgbench -$mode" "$c" "$tps" "$mode" "$SYNC_COLS"
  done
done

# --- datasync nodes ---

# start_node LOG ARGS...: a datasyncd on a free tcp:// port; sets NODE_URL
# and NODE_PID.
start_node() {
  local logf=$1 port
  shift
  port=$(free_port)
  NODE_URL=tcp://127.0.0.1:$port
  "$DSD" --listen "$NODE_URL" --http off --quiet "$@" >"$logf" 2>&1 &
  NODE_PID=$!
  PIDS+=("$NODE_PID")
  for _ in $(seq 1 600); do
    grep -q "listening on $NODE_URL" "$logf" 2>/dev/null && return 0
    kill -0 "$NODE_PID" 2>/dev/null || break
    sleep 0.1
  done
  cat "$logf" >&2
  die "datasyncd did not start ($logf)"
}

# bench NAME OP CLIENTS URL...: one `datasync bench` point; prints ops/s.
bench() {
  local name=$1 op=$2 c=$3 out urls=() u extra=()
  shift 3
  for u in "$@"; do urls+=(--url "$u"); done
  # Gets need no version cache: the keys exist from the first preload.
  [[ $op != get ]] || extra=(--no-preload)
  out=$TMP/bench-$name-$op-$c.json
  "$DS" bench "${urls[@]}" --op "$op" --concurrency "$c" \
    --duration "${SECS}s" --warmup "${WARM}s" --keys "$KEYS" \
    --value-bytes "$VB" "${extra[@]}" \
    --json >"$out" 2>"$TMP/bench-$name-$op-$c.err" ||
    { cat "$TMP/bench-$name-$op-$c.err" >&2; die "datasync bench $name $op $c failed"; }
  jq -r '"\(.ops_per_sec) \(.errors) \(.conflicts)"' "$out"
}

# point CONFIG OP CLIENTS URL...: bench and record a row.
point() {
  local cfg=$1 op=$2 c=$3 ops errs confl
  shift 3
  sync_start "$((WARM + 1))" "$((SECS - 1))" ${SYNC_WHO:-}
  read -r ops errs confl < <(bench "${cfg// /_}" "$op" "$c" "$@")
  log "$cfg $op $c: $ops ops/s ($errs errors, $confl conflicts)"
  ((errs == 0)) || log "WARNING: $errs errors in $cfg $op $c (see $TMP)"
  sync_rate "$ops"
  row "$cfg $op" "$c" "$ops" "$([[ $op == get ]] && echo S || echo N)" "$SYNC_COLS"
}

URLS=()
NPIDS=()
for ((i = 1; i <= NODES; i++)); do
  start_node "$TMP/node-$i.log" --db "$URI"
  URLS+=("$NODE_URL")
  NPIDS+=("$NODE_PID")
done
log "preloading $KEYS keys"
"$DS" bench --url "${URLS[0]}" --preload-only --keys "$KEYS" --value-bytes "$VB" \
  --concurrency 64 >/dev/null 2>"$TMP/preload.err" ||
  { cat "$TMP/preload.err" >&2; die "preload failed"; }

for c in $CLIENTS; do
  for n in 1 2 3; do
    point "postgresql, $n node$([[ $n == 1 ]] || echo s)" update "$c" "${URLS[@]:0:n}"
  done
  for n in 1 2 3; do
    point "postgresql, $n node$([[ $n == 1 ]] || echo s)" get "$c" "${URLS[@]:0:n}"
  done
done

# --- the profile: update through 3 nodes at the largest count ---

PROFILE=$TMP/profile.txt
: >"$PROFILE"
if [[ -z ${BENCH_NO_PROFILE:-} ]]; then
  for cp in $CLIENTS; do
    log "profiling update, 3 nodes, $cp in flight"
    "$DS" bench "${URLS[@]/#/--url=}" --op update --concurrency "$cp" \
      --duration "$((SECS + 2))s" --warmup 1s --keys "$KEYS" --value-bytes "$VB" \
      --json >"$TMP/profile-bench-$cp.json" 2>/dev/null &
    bpid=$!
    sleep 1.5
    if command -v perf >/dev/null; then
      perf record -a -g -o "$TMP/perf-$cp.data" -- sleep 3 >/dev/null 2>&1 ||
        log "perf record failed (see perf_event_paranoid)"
    fi
    : >"$TMP/waits-$cp.tsv"
    for ((s = 0; s < WAIT_SAMPLES; s++)); do
      psql_ -d datasync -F $'\t' -c "SELECT coalesce(wait_event_type,'CPU'),
          coalesce(wait_event,'running'), state FROM pg_stat_activity
          WHERE backend_type = 'client backend' AND datname = 'datasync'
            AND pid <> pg_backend_pid()" >>"$TMP/waits-$cp.tsv" || true
      sleep 0.1
    done
    wait "$bpid" || true
    {
      echo "#### update, 3 nodes, $cp in flight: $(jq -r .ops_per_sec "$TMP/profile-bench-$cp.json" 2>/dev/null) ops/s under the profiler"
      echo
      echo "The nodes' server backends over $WAIT_SAMPLES samples of pg_stat_activity"
      echo "(idle = waiting for the node; the rest by wait event):"
      echo
      awk -F'\t' '{ t++; if ($3 == "idle") k = "idle (ClientRead)"; else k = $1 " " $2 " (" $3 ")"; n[k]++ }
        END { for (k in n) printf "    %5.1f %%  %s\n", 100 * n[k] / t, k }' \
        "$TMP/waits-$cp.tsv" | sort -rn
      if [[ -s $TMP/perf-$cp.data ]]; then
        echo
        echo "CPU by process (perf record -a -g, 3 s, both CPUs; swapper = idle):"
        echo
        perf report -i "$TMP/perf-$cp.data" --no-children --sort comm --stdio \
          -g none 2>/dev/null | grep -E '^ +[0-9]' | head -8 | sed 's/^/    /' || true
        echo
        echo "Top symbols (self):"
        echo
        perf report -i "$TMP/perf-$cp.data" --no-children --sort comm,dso,sym \
          --stdio -g none 2>/dev/null | grep -E '^ +[0-9]' | head -20 |
          sed 's/^/    /' || true
      fi
      echo
    } >>"$PROFILE"
  done
fi

# --- the SQLite single node ---

start_node "$TMP/node-sqlite.log" --db "$TMP/sqlite.db" --durability full
SQLITE_URL=$NODE_URL
SYNC_WHO=$NODE_PID
"$DS" bench --url "$SQLITE_URL" --preload-only --keys "$KEYS" --value-bytes "$VB" \
  --concurrency 64 >/dev/null 2>"$TMP/preload-sqlite.err" ||
  { cat "$TMP/preload-sqlite.err" >&2; die "SQLite preload failed"; }
for c in $CLIENTS; do
  point "sqlite, 1 node" update "$c" "$SQLITE_URL"
  point "sqlite, 1 node" get "$c" "$SQLITE_URL"
done

# --- the table ---

{
  echo "PostgreSQL $(psql_ -d datasync -c 'SHOW server_version') (fsync, full_page_writes, synchronous_commit on), pgbench scale $SCALE; datasync: $KEYS keys of $VB bytes over tcp://; ${SECS} s per point; $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
  echo
  echo "| config | clients / in flight | ops/s | % of pgbench at the same clients | WAL fsyncs/s | ops per fsync |"
  echo "|---|---:|---:|---:|---:|---:|"
  while IFS=$'\t' read -r cfg c ops base syncs per; do
    ref=${TPS[$base$c]}
    if [[ $cfg == pgbench* ]]; then
      pct="(baseline)"
    else
      pct=$(awk -v a="$ops" -v b="$ref" 'BEGIN {printf "%.0f %% of -%s", 100*a/b, "'"$base"'"}')
    fi
    printf '| %s | %s | %.0f | %s | %s | %s |\n' "$cfg" "$c" "$ops" "$pct" "$syncs" "$per"
  done <"$RESULTS"
  for c in $CLIENTS; do
    u=$(awk -F'\t' -v c="$c" '$1 == "postgresql, 3 nodes update" && $2 == c {print $3}' "$RESULTS")
    awk -v a="$u" -v b="${TPS[N$c]}" -v c="$c" 'BEGIN {
      r = 100 * a / b
      printf "\nTarget: Update through 3 nodes >= 50 %% of pgbench -N at %s clients: %.0f %% (%s)\n",
        c, r, (r >= 50 ? "met" : "MISSED") }'
  done
  if [[ -s $PROFILE ]]; then
    echo
    cat "$PROFILE"
  fi
} | tee "$TMP/table.md"
