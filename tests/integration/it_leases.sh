#!/usr/bin/env bash
# it_leases.sh - leases under faults (DESIGN §4 rules 3-4), with real
# processes and a real clock:
#  1. a holder that is stopped (SIGSTOP) past its lease cannot write when
#     it resumes, even though nobody took the lock meanwhile;
#  2. a holder that dies keeps the record locked until the lease runs out;
#     then another client gets the lock, with a larger fencing token.
source "$(dirname "$0")/it_lib.sh"
it_start --http off

fence_of() {  # fence_of JSON: the fencingToken of a LockResponse
  sed -n 's/.*"fencingToken":"\([0-9]*\)".*/\1/p' <<<"$1"
}

# --- 1. the paused holder ---
ds put paused --if-absent --value "v1"
expect_rc 0 "create"
(
  T=$("$DATASYNC" --url "$IT_IPC" lock paused --owner sleeper --ttl 1s)
  echo "$T" >"$IT_DIR/token"
  kill -STOP "$BASHPID"          # paused here, holding the lease
  rc=0
  "$DATASYNC" --url "$IT_IPC" put paused --if-version 1 --value "late" \
    --lock-token "$T" 2>"$IT_DIR/late.err" || rc=$?
  echo "$rc" >"$IT_DIR/late.rc"
) &
HOLDER=$!
for _ in $(seq 1 200); do [[ -s $IT_DIR/token ]] && break; sleep 0.02; done
[[ -s $IT_DIR/token ]] || it_fail "the holder got a lock"
# While it sleeps, the lock is visible and refuses others.
ds lock paused --owner other
expect_rc 4 "lock held by the sleeper refuses others"
expect_err_has "sleeper" "refusal names the holder"
sleep 1.5                         # the lease runs out while it is stopped
kill -CONT "$HOLDER"
wait "$HOLDER"
RC=$(cat "$IT_DIR/late.rc"); ERR=$(cat "$IT_DIR/late.err"); OUT=""
expect_rc 4 "a resumed holder's write after expiry is refused"
expect_err_has "LOCK_EXPIRED" "refused as LOCK_EXPIRED"
ds get paused
expect_out "v1" "the late write changed nothing"

# --- 2. the dead holder ---
ds --json lock dead --owner ghost --ttl 1s
expect_rc 0 "ghost locks"
F1=$(fence_of "$OUT")
[[ -n $F1 ]] || it_fail "lock --json shows a fencing token"
# The ghost process has exited; its lease has not.
ds lock dead --owner heir
expect_rc 4 "the dead holder's lease still holds"
sleep 1.2
ds --json lock dead --owner heir --ttl 30s
expect_rc 0 "after expiry another client gets the lock"
F2=$(fence_of "$OUT")
(( F2 > F1 )) || it_fail "the new holder's fencing token ($F2) is larger than the old ($F1)"

it_stop || it_fail "datasyncd exits 0 on SIGTERM"
it_done
