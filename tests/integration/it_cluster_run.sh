#!/usr/bin/env bash
# it_cluster_run.sh - `scripts/run --cluster 3` (README "A cluster to
# try"): it starts its own PostgreSQL and three datasyncd nodes on free
# ports in a temporary directory; a record written through node 1's
# gateway is read back through node 3's; a stale If-Match on another node
# is refused with 412; `datasync bench` runs over all three URLs (--url
# repeated); the CLI given every node's URL still answers after node 1
# is gone; SIGINT to the launcher's process group (what Ctrl-C
# sends) stops every node and the server and leaves no process behind.
# Also datasync-gateway with every node as --upstream keeps serving
# through kill -9 of node 2 and loses no acknowledged write.
# Needs DATASYNCD, DATASYNC and DATASYNC_GATEWAY; the launcher runs $DATASYNCD (no build).
source "$(dirname "$0")/it_lib.sh"

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
readonly NODES=3
readonly START_ATTEMPTS=4
# The launcher starts the server (initdb on first use) and the nodes;
# generous, since CI runs this under ASan on a loaded machine.
readonly START_WAIT_S=120
readonly STOP_WAIT_S=60

RUN_PID=
GW_PID=
# As root the server runs as nobody, who must reach the data directory.
chmod 755 "$IT_DIR"
CL_DIR=$IT_DIR/cl

cluster_cleanup() {
  [[ -z $GW_PID ]] || kill -KILL "$GW_PID" 2>/dev/null || true
  if [[ -n $RUN_PID ]] && kill -0 "$RUN_PID" 2>/dev/null; then
    kill -TERM -- "-$RUN_PID" 2>/dev/null || true
    wait "$RUN_PID" 2>/dev/null || true
  fi
  bash "$ROOT/tests/support/pgserver.sh" destroy "$CL_DIR/pg" >/dev/null 2>&1 || true
  it_cleanup
}
trap cluster_cleanup EXIT

# free_base: a port P with P+1..P+NODES all free (see it_free_port).
free_base() {
  local p i ok
  for p in $(shuf -i 20000-32700 -n 50); do
    ok=1
    for ((i = 1; i <= NODES; i++)); do
      if (exec 3<>"/dev/tcp/127.0.0.1/$((p + i))") 2>/dev/null; then ok=; break; fi
    done
    [[ -z $ok ]] || { echo "$p"; return 0; }
  done
  return 1
}

# start_cluster: the launcher in its own process group (job control on,
# so that it receives SIGINT as it would from a terminal); 0 once it
# printed its ready line.
start_cluster() {
  local deadline=$((SECONDS + START_WAIT_S))
  RPC_BASE=$(free_base)
  HTTP_BASE=$(free_base)
  set -m
  DATASYNC_CLUSTER_DIR=$CL_DIR bash "$ROOT/scripts/run" --cluster "$NODES" \
    --rpc-port "$RPC_BASE" --http-port "$HTTP_BASE" >"$IT_DIR/run.out" 2>&1 &
  RUN_PID=$!
  set +m
  until grep -q "Ctrl-C stops" "$IT_DIR/run.out"; do
    if ! kill -0 "$RUN_PID" 2>/dev/null || ((SECONDS > deadline)); then
      return 1
    fi
    sleep 0.1
  done
}

started=
for _ in $(seq 1 "$START_ATTEMPTS"); do
  if start_cluster; then started=1; break; fi
  kill -TERM -- "-$RUN_PID" 2>/dev/null || true
  wait "$RUN_PID" 2>/dev/null || true
  RUN_PID=
  grep -q "Address in use" "$CL_DIR"/node-*.log 2>/dev/null || break
  echo "it_cluster_run: a port was taken; trying others" >&2
done
if [[ -z $started ]]; then
  echo "scripts/run --cluster did not start:" >&2
  cat "$IT_DIR/run.out" >&2
  tail -n 20 "$CL_DIR"/node-*.log >&2 || true
  exit 1
fi
OUT=$(cat "$IT_DIR/run.out") ERR='' RC=0

H1=http://127.0.0.1:$((HTTP_BASE + 1))
H2=http://127.0.0.1:$((HTTP_BASE + 2))
H3=http://127.0.0.1:$((HTTP_BASE + 3))
URLS=()
for ((i = 1; i <= NODES; i++)); do
  [[ $OUT == *"node $i: rpc tcp://127.0.0.1:$((RPC_BASE + i))  http://127.0.0.1:$((HTTP_BASE + i))/"* ]] ||
    it_fail "the launcher prints node $i's RPC and HTTP URLs"
  URLS+=(--url "tcp://127.0.0.1:$((RPC_BASE + i))")
done
[[ $OUT == *"Ctrl-C stops the nodes and the server."* ]] ||
  it_fail "the launcher says how to stop it"
NODE_PIDS=$(grep -o 'pid [0-9]*' "$IT_DIR/run.out" | cut -d' ' -f2 | tr '\n' ' ')
PG_PID=$(head -1 "$CL_DIR/pg/data/postmaster.pid")
[[ $(wc -w <<<"$NODE_PIDS") == "$NODES" && -n $PG_PID ]] ||
  it_fail "the launcher names $NODES node pids and the server runs"

# http METHOD URL [curl args...]: sets RC (the HTTP status), OUT (body)
# and ERR (headers).
http() {
  local m=$1 u=$2
  shift 2
  RC=$(curl -s -o "$IT_DIR/body" -D "$IT_DIR/headers" -w '%{http_code}' \
    -X "$m" "$u" "$@") || RC=curl-failed
  OUT=$(cat "$IT_DIR/body")
  ERR=$(cat "$IT_DIR/headers")
}
json() { curl_args=(-H 'Content-Type: application/json' -d "$1"); }

json '{"title":"printer on fire"}'
http PUT "$H1/v1/records/ticket%2F1" -H 'If-None-Match: *' "${curl_args[@]}"
expect_rc 201 "create through node 1"
[[ $ERR == *'ETag: "1"'* ]] || it_fail "the create is version 1"

http GET "$H3/v1/records/ticket%2F1"
expect_rc 200 "read through node 3"
expect_out '{"title":"printer on fire"}' "node 3 returns what node 1 wrote"
[[ $ERR == *'ETag: "1"'* ]] || it_fail "node 3 sees version 1"

json '{"title":"fixed"}'
http PUT "$H2/v1/records/ticket%2F1" -H 'If-Match: "1"' "${curl_args[@]}"
expect_rc 200 "update through node 2"
[[ $ERR == *'ETag: "2"'* ]] || it_fail "node 2's update is version 2"

json '{"title":"stale"}'
http PUT "$H3/v1/records/ticket%2F1" -H 'If-Match: "1"' "${curl_args[@]}"
expect_rc 412 "a stale If-Match through node 3 conflicts with node 2's write"
[[ $ERR == *'ETag: "2"'* ]] || it_fail "the 412 carries the current ETag"
[[ $OUT == *'"reason":"VERSION_CONFLICT"'* ]] || it_fail "the 412 says VERSION_CONFLICT"

http GET "$H1/v1/records/ticket%2F1"
expect_out '{"title":"fixed"}' "node 1 reads node 2's update, not the refused one"

# The load generator over every node (--url repeated): a short run.
RC=0
OUT=$("$DATASYNC" bench "${URLS[@]}" --op update --concurrency 6 --keys 20 \
  --duration 1s --warmup 0s --json 2>"$IT_DIR/stderr") || RC=$?
ERR=$(cat "$IT_DIR/stderr")
expect_rc 0 "datasync bench with three --url"
[[ $(jq -r '.ops_per_sec > 0 and .errors == 0' <<<"$OUT") == true ]] ||
  it_fail "the bench over three nodes completed updates without errors"
[[ $(jq -r '.url | split(",") | length' <<<"$OUT") == "$NODES" ]] ||
  it_fail "the bench reports the three URLs it spread the calls over"

# The standalone gateway in front of every node (--upstream repeated):
# kill -9 of node 2 while GW_WRITERS writers create records through it.
# Every create it acknowledged (201) is there afterwards; a call caught
# by the kill may fail only as a retryable 503 (UNAVAILABLE) or as 412
# when its create committed before the node died and a retry met it;
# writes after the kill all succeed through the nodes left.
readonly GW_WRITERS=4
readonly GW_WRITES=60      # per writer
readonly GW_KILL_AFTER=60  # answers in all before the kill
GW_UP=()
for ((i = 1; i <= NODES; i++)); do
  GW_UP+=(--upstream "tcp://127.0.0.1:$((RPC_BASE + i))")
done
"$DATASYNC_GATEWAY" "${GW_UP[@]}" --http 127.0.0.1:0 --timeout-ms 5000 \
  >"$IT_DIR/gw.log" 2>&1 &
GW_PID=$!
GW_PORT=
for _ in $(seq 1 500); do
  GW_PORT=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]\+\)\/$/\1/p' "$IT_DIR/gw.log")
  [[ -n $GW_PORT ]] && break
  kill -0 "$GW_PID" 2>/dev/null || break
  sleep 0.02
done
[[ -n $GW_PORT ]] || it_fail "datasync-gateway with three upstreams starts: $(cat "$IT_DIR/gw.log")"
G=http://127.0.0.1:$GW_PORT
# gw_writer N: creates gw/N-0.. in order, one line "KEY STATUS" each.
gw_writer() {
  local w code
  for ((w = 0; w < GW_WRITES; w++)); do
    code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT \
      "$G/v1/records/gw%2F$1-$w" -H 'If-None-Match: *' --data-binary "w$1-$w") ||
      code=curl-failed
    echo "$1-$w $code" >>"$IT_DIR/gw-$1.out"
  done
}
writers=()
for ((n = 0; n < GW_WRITERS; n++)); do
  gw_writer "$n" &
  writers+=($!)
done
node2=$(cut -d' ' -f2 <<<"$NODE_PIDS")
for _ in $(seq 1 600); do
  (($(cat "$IT_DIR"/gw-*.out 2>/dev/null | wc -l) >= GW_KILL_AFTER)) && break
  sleep 0.05
done
kill -KILL "$node2"
wait "${writers[@]}"
acked=() unavailable=0 other=()
while read -r key code; do
  case $code in
  201) acked+=("$key") ;;
  503) unavailable=$((unavailable + 1)) ;;
  412)
    http GET "$H3/v1/records/gw%2F$key"
    [[ $RC == 200 && $OUT == "w$key" ]] || other+=("$key:412 but $RC $OUT")
    ;;
  *) other+=("$key:$code") ;;
  esac
done < <(cat "$IT_DIR"/gw-*.out)
((${#other[@]} == 0)) ||
  it_fail "writes through the gateway while node 2 died: unexpected answers: ${other[*]}"
total=$((GW_WRITERS * GW_WRITES))
((${#acked[@]} + unavailable <= total && ${#acked[@]} >= total - 2 * GW_WRITERS)) ||
  it_fail "the gateway failed over: ${#acked[@]} of $total acknowledged, $unavailable 503"
lost=()
for w in "${acked[@]}"; do
  http GET "$H3/v1/records/gw%2F$w"
  [[ $RC == 200 && $OUT == "w$w" ]] || lost+=("$w:$RC")
done
((${#lost[@]} == 0)) || it_fail "acknowledged writes lost after kill -9 of node 2: ${lost[*]}"
echo "it_cluster_run: gateway over 3 nodes, $GW_WRITERS writers, node 2 killed" \
  "after $GW_KILL_AFTER answers: ${#acked[@]} of $total acknowledged (all read" \
  "back), $unavailable 503"
kill -TERM "$GW_PID"
RC=0
wait "$GW_PID" || RC=$?
GW_PID=
OUT='' ERR=$(tail -20 "$IT_DIR/gw.log")
expect_rc 0 "datasync-gateway stops cleanly (no leak) after its upstream was killed"

# Failover: node 1 gone, the CLI with every URL still reads and writes.
node1=${NODE_PIDS%% *}
kill -TERM "$node1"
for _ in $(seq 1 $((STOP_WAIT_S * 10))); do
  kill -0 "$node1" 2>/dev/null || break
  sleep 0.1
done
! kill -0 "$node1" 2>/dev/null || it_fail "node 1 stopped on SIGTERM"
RC=0
OUT=$("$DATASYNC" "${URLS[@]}" put ticket/2 --if-absent --value after-failover \
  2>"$IT_DIR/stderr") || RC=$?
ERR=$(cat "$IT_DIR/stderr")
expect_rc 0 "the CLI with all three URLs writes with node 1 down"
RC=0
OUT=$("$DATASYNC" "${URLS[@]}" get ticket/1 2>"$IT_DIR/stderr") || RC=$?
ERR=$(cat "$IT_DIR/stderr")
expect_rc 0 "the CLI with all three URLs reads with node 1 down"
expect_out '{"title":"fixed"}' "the CLI reads the record through a live node"
kill -0 "$RUN_PID" 2>/dev/null || it_fail "the cluster keeps running without node 1"

# Ctrl-C: SIGINT to the launcher's process group.
kill -INT -- "-$RUN_PID"
RC=0
for _ in $(seq 1 $((STOP_WAIT_S * 10))); do
  kill -0 "$RUN_PID" 2>/dev/null || break
  sleep 0.1
done
wait "$RUN_PID" || RC=$?
RUN_PID=
OUT=$(cat "$IT_DIR/run.out") ERR=''
expect_rc 130 "the launcher exits as interrupted by SIGINT"
[[ $OUT == *"stopped $NODES node(s) and the PostgreSQL server"* ]] ||
  it_fail "the launcher says it stopped the nodes and the server"
for pid in $NODE_PIDS $PG_PID; do
  ! kill -0 "$pid" 2>/dev/null || it_fail "process $pid still runs after SIGINT"
done
[[ ! -e $CL_DIR/pg/data/postmaster.pid ]] ||
  it_fail "the PostgreSQL server stopped cleanly (no postmaster.pid left)"
left=$(pgrep -f -- "$CL_DIR" || true)
[[ -z $left ]] || it_fail "no process of the cluster left (found: $left)"
grep -q "AddressSanitizer\|LeakSanitizer\|runtime error" "$CL_DIR"/node-*.log &&
  it_fail "a node's log has a sanitizer report: $(grep -h -A5 Sanitizer "$CL_DIR"/node-*.log | head -20)"

it_done
