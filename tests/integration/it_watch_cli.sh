#!/usr/bin/env bash
# it_watch_cli.sh - `datasync watch` and `datasync lock --wait` against a
# live datasyncd (DESIGN §9): every change under the prefix shows once, in
# order, with strictly increasing revisions, and nothing else; --after
# resumes without a repeat or a gap; the human line format; a lease that
# runs out shows as expire; SIGINT and SIGTERM end the watch with exit 0;
# a lock waiter gets the lock when the holder lets go.
source "$(dirname "$0")/it_lib.sh"
it_start --http off

# wait_lines FILE N: wait (up to 20 s) until FILE has at least N lines.
wait_lines() {
  local i
  for i in $(seq 1 400); do
    (( $(wc -l <"$1") >= $2 )) && return 0
    sleep 0.05
  done
  echo "wait_lines: $1 has $(wc -l <"$1") lines, wanted $2:" >&2
  cat "$1" >&2
  return 1
}
# stop_watch PID SIGNAL: send SIGNAL and set RC to the watcher's exit code.
stop_watch() {
  RC=0
  kill "-$2" "$1"
  wait "$1" || RC=$?
}
# events FILE: "TYPE REVISION KEY" per --json line (an Event's fields are
# encoded in field order: type, revision, record).
events() {
  sed -E 's/^\{"type":"([A-Z_]+)","revision":"([0-9]+)","record":\{"key":"([^"]*)".*/\1 \2 \3/' "$1"
}

# The cursor: the revision a List returns, so no write below can fall
# between "now" and the watch's first call.
ds put seed --if-absent --value s
ds --json list
START=$(printf '%s' "$OUT" | sed -E 's/.*"revision":"([0-9]+)"[^"]*$/\1/')
[[ $START =~ ^[0-9]+$ ]] || it_fail "list --json carries the revision (got '$START')"

"$DATASYNC" --url "$IT_IPC" watch --prefix t/ --after "$START" --json \
  >"$IT_DIR/w.json" 2>"$IT_DIR/w.err" &
WJSON=$!
"$DATASYNC" --url "$IT_IPC" watch --key t/1 --after "$START" --values \
  >"$IT_DIR/w.txt" 2>"$IT_DIR/w.txt.err" &
WTXT=$!

ds put t/1 --if-absent --value one --author alice
expect_rc 0 "create t/1"
ds put other/x --if-absent --value x        # outside the prefix
ds put t/1 --if-version 1 --value two --author alice
expect_rc 0 "update t/1"
ds lock t/1 --owner bob --ttl 30s
expect_rc 0 "bob locks t/1"; T=$OUT
ds unlock t/1 --lock-token "$T"
expect_rc 0 "bob unlocks t/1"
ds put t/2 --if-absent --value 'a b' --author carol
ds delete t/1 --if-version 2 --author alice
expect_rc 0 "delete t/1"

wait_lines "$IT_DIR/w.json" 6 || it_fail "the prefix watcher printed 6 events"
wait_lines "$IT_DIR/w.txt" 5 || it_fail "the key watcher printed 5 events"
stop_watch "$WJSON" INT
expect_rc 0 "watch --json exits 0 on SIGINT"
stop_watch "$WTXT" TERM
expect_rc 0 "watch exits 0 on SIGTERM"
[[ ! -s $IT_DIR/w.err ]] || it_fail "watch --json wrote to stderr: $(cat "$IT_DIR/w.err")"

events "$IT_DIR/w.json" >"$IT_DIR/ev"
OUT=$(cut -d' ' -f1,3 "$IT_DIR/ev" | tr '\n' ,)
[[ $OUT == "EVENT_PUT t/1,EVENT_PUT t/1,EVENT_LOCK t/1,EVENT_UNLOCK t/1,EVENT_PUT t/2,EVENT_DELETE t/1," ]] ||
  it_fail "the prefix watcher saw every change under t/ in order, and nothing else"
prev=$START
REVS=()
while read -r _ rev _; do
  (( rev > prev )) || it_fail "revision $rev follows $prev: not strictly increasing"
  prev=$rev
  REVS+=("$rev")
done <"$IT_DIR/ev"
grep -q '"updatedBy":"alice"' "$IT_DIR/w.json" || it_fail "--json events carry updatedBy"
grep -q '"value"' "$IT_DIR/w.json" && it_fail "without --values no event carries a value"

# The human lines, for the one key.
OUT=$(cat "$IT_DIR/w.txt")
mapfile -t L <"$IT_DIR/w.txt"
[[ ${L[0]} == "rev ${REVS[0]} put t/1 v1 by alice value one" ]] || it_fail "put line: '${L[0]}'"
[[ ${L[1]} == "rev ${REVS[1]} put t/1 v2 by alice value two" ]] || it_fail "second put line: '${L[1]}'"
[[ ${L[2]} =~ ^"rev ${REVS[2]} lock t/1 by bob until "[0-9]{4}-[0-9]{2}-[0-9]{2}T ]] || it_fail "lock line: '${L[2]}'"
[[ ${L[3]} == "rev ${REVS[3]} unlock t/1" ]] || it_fail "unlock line: '${L[3]}'"
[[ ${L[4]} == "rev ${REVS[5]} delete t/1 v3 by alice" ]] || it_fail "delete line: '${L[4]}'"
(( ${#L[@]} == 5 )) || it_fail "the key watcher saw only t/1's 5 changes"

# Resume from the third event: exactly the ones after it, no repeat.
"$DATASYNC" --url "$IT_IPC" watch --prefix t/ --after "${REVS[2]}" --json \
  >"$IT_DIR/w2.json" 2>"$IT_DIR/w2.err" &
W2=$!
wait_lines "$IT_DIR/w2.json" 3 || it_fail "the resumed watcher printed 3 events"
ds put t/3 --if-absent --value three     # and it keeps going
wait_lines "$IT_DIR/w2.json" 4 || it_fail "the resumed watcher saw a new write"
stop_watch "$W2" INT
expect_rc 0 "resumed watch exits 0"
events "$IT_DIR/w2.json" >"$IT_DIR/ev2"
OUT=$(cut -d' ' -f1,3 "$IT_DIR/ev2" | tr '\n' ,)
[[ $OUT == "EVENT_UNLOCK t/1,EVENT_PUT t/2,EVENT_DELETE t/1,EVENT_PUT t/3," ]] ||
  it_fail "--after resumes right after the given revision"
[[ $(sed -n 1p "$IT_DIR/ev2" | cut -d' ' -f2) == "${REVS[3]}" ]] ||
  it_fail "the first resumed event is the one after --after"

# A lease that runs out is an expire event (the server's sweeper).
ds --json list --prefix lease/
"$DATASYNC" --url "$IT_IPC" watch --key lease/1 --after "$(printf '%s' "$OUT" | sed -E 's/.*"revision":"([0-9]+)"[^"]*$/\1/')" \
  >"$IT_DIR/w3.txt" 2>"$IT_DIR/w3.err" &
W3=$!
ds lock lease/1 --owner dave --ttl 1s
expect_rc 0 "dave locks lease/1 for 1 s"
wait_lines "$IT_DIR/w3.txt" 2 || it_fail "the lease's lock and expiry were watched"
stop_watch "$W3" TERM
expect_rc 0 "lease watcher exits 0"
mapfile -t L <"$IT_DIR/w3.txt"
[[ ${L[0]} == *" lock lease/1 by dave until "* ]] || it_fail "lock line: '${L[0]}'"
[[ ${L[1]} == *" expire lease/1" ]] || it_fail "expire line: '${L[1]}'"

# lock --wait: erin queues behind frank and gets the lock when he unlocks.
ds lock q/1 --owner frank --ttl 30s
expect_rc 0 "frank locks q/1"; TF=$OUT
ds --json list --prefix q/
QREV=$(printf '%s' "$OUT" | sed -E 's/.*"revision":"([0-9]+)"[^"]*$/\1/')
"$DATASYNC" --url "$IT_IPC" lock q/1 --owner erin --wait 0 2>"$IT_DIR/l0.err" >/dev/null && RC=0 || RC=$?
expect_rc 4 "lock --wait 0 fails LOCKED at once"
"$DATASYNC" --url "$IT_IPC" lock q/1 --owner erin --wait 30s \
  >"$IT_DIR/erin.out" 2>"$IT_DIR/erin.err" &
WE=$!
ds unlock q/1 --lock-token "$TF"
expect_rc 0 "frank unlocks"
RC=0; wait "$WE" || RC=$?
OUT=$(cat "$IT_DIR/erin.out"); ERR=$(cat "$IT_DIR/erin.err")
expect_rc 0 "the waiting locker gets the lock"
[[ $OUT =~ ^[0-9a-f]{32}$ ]] || it_fail "lock --wait prints the token"
ds put q/1 --if-absent --value by-erin --lock-token "$OUT"
expect_rc 0 "erin writes with the token she waited for"
"$DATASYNC" --url "$IT_IPC" watch --key q/1 --after "$QREV" >"$IT_DIR/w4.txt" 2>&1 &
W4=$!
wait_lines "$IT_DIR/w4.txt" 3 || it_fail "q/1: unlock, lock, put"
stop_watch "$W4" INT
mapfile -t L <"$IT_DIR/w4.txt"
[[ ${L[0]} == *" unlock q/1" && ${L[1]} == *" lock q/1 by erin until "* && ${L[2]} == *" put q/1 v1"* ]] ||
  it_fail "q/1's changes: frank's unlock, erin's lock, her write: ${L[*]}"

# Usage errors, and help that documents the exit codes.
ds watch --prefix a --key b
expect_rc 2 "--prefix and --key together"
ds watch somekey
expect_rc 2 "a positional key"
ds lock k --owner x --wait 61s
expect_rc 2 "--wait over 60 s"
RC=0; OUT=$("$DATASYNC" watch --help) || RC=$?
expect_rc 0 "watch --help"
[[ $OUT == *"--after"* && $OUT == *"REVISION_COMPACTED"* && $OUT == *"SIGINT"* ]] ||
  it_fail "watch --help documents --after, REVISION_COMPACTED and the signals"

it_stop || it_fail "datasyncd exits 0 on SIGTERM"

# A cursor older than the change log keeps: exit 3, REVISION_COMPACTED,
# saying what to do. The log compacts as writes go on (at most once a
# second): each round writes and tries again; a watch that is not refused
# keeps running and is interrupted.
DSD_HELP=$("$DATASYNCD" --help 2>&1 || true)   # not a pipe: see it_watch_http.sh
if grep -q -- '--watch-retain-time' <<<"$DSD_HELP"; then
  it_start --http off --watch-retain 5 --watch-retain-time 0
  for i in $(seq 1 20); do ds put old/k --force --value "v$i"; done
  RC=running
  for round in $(seq 1 40); do
    "$DATASYNC" --url "$IT_IPC" watch --after 1 >"$IT_DIR/c.out" 2>"$IT_DIR/c.err" &
    CW=$!
    for _ in $(seq 1 20); do kill -0 "$CW" 2>/dev/null || break; sleep 0.05; done
    if ! kill -0 "$CW" 2>/dev/null; then
      RC=0; wait "$CW" || RC=$?
      break
    fi
    kill -INT "$CW"; wait "$CW" || true
    ds put old/k --force --value "more $round"
  done
  OUT=$(cat "$IT_DIR/c.out"); ERR=$(cat "$IT_DIR/c.err")
  expect_rc 3 "a compacted cursor"
  expect_err_has "REVISION_COMPACTED" "the compacted reason"
  expect_err_has "watch with --after that revision" "what to do next"
  [[ $ERR =~ "the oldest a watch may start from is now "[0-9]+ ]] || it_fail "the oldest revision named"
  it_stop || it_fail "datasyncd exits 0 on SIGTERM"
else
  echo "SKIP: REVISION_COMPACTED (datasyncd has no --watch-retain-time)"
fi
it_done
