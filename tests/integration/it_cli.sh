#!/usr/bin/env bash
# it_cli.sh - the `datasync` command against a live datasyncd: the
# README's session (create, conflict, lock, locked write, unlock), every
# exit code of DESIGN §7, stdout discipline, --json and --help.
source "$(dirname "$0")/it_lib.sh"
it_start --http off

# create, read back raw
ds put greeting --if-absent --value "hello"
expect_rc 0 "create"; expect_out "greeting: version 1" "create output"
ds get greeting
expect_rc 0 "get"; expect_out "hello" "get prints the raw value only"

# value from stdin, binary-safe
printf 'line1\nline2\0bin' | { RC=0; "$DATASYNC" --url "$IT_IPC" put blob --if-absent \
   >"$IT_DIR/out" 2>"$IT_DIR/stderr" || RC=$?; echo $RC >"$IT_DIR/rc"; }
RC=$(cat "$IT_DIR/rc"); OUT=$(cat "$IT_DIR/out"); ERR=$(cat "$IT_DIR/stderr")
expect_rc 0 "put from stdin"
"$DATASYNC" --url "$IT_IPC" get blob >"$IT_DIR/blob"
printf 'line1\nline2\0bin' | cmp -s - "$IT_DIR/blob" || it_fail "stdin value round trip"

# optimistic update, then a stale one: exit 3 with the current version
ds put greeting --if-version 1 --value "hello, world"
expect_rc 0 "update v1"; expect_out "greeting: version 2" "update output"
ds put greeting --if-version 1 --value "stale"
expect_rc 3 "stale write is a conflict"
expect_err_has "VERSION_CONFLICT" "conflict reason"
expect_err_has "current version 2" "conflict shows the current version"
[[ -z $OUT ]] || it_fail "nothing on stdout on error"

# no precondition: usage error before any call
ds put greeting --value "x"
expect_rc 2 "missing precondition is a usage error"
expect_err_has "precondition" "usage names the precondition"

# lock: the token alone on stdout
ds lock greeting --owner alice --ttl 30s
expect_rc 0 "lock"
TOKEN=$OUT
[[ $TOKEN =~ ^[0-9a-f]{32}$ ]] || it_fail "lock prints a 32-hex token, got '$TOKEN'"

# a write without the token: exit 4, holder named
ds put greeting --if-version 2 --value "sneaky"
expect_rc 4 "locked write"
expect_err_has "LOCKED" "locked reason"
expect_err_has "alice" "locked names the holder"
ds lock greeting --owner bob
expect_rc 4 "second locker is refused"

# the holder writes with its token, then unlocks
ds put greeting --if-version 2 --value "edited under lock" --lock-token "$TOKEN"
expect_rc 0 "holder writes"; expect_out "greeting: version 3" "holder write output"
ds unlock greeting --lock-token 0123456789abcdef0123456789abcdef
expect_rc 1 "unlock with a wrong token"
expect_err_has "LOCK_TOKEN_MISMATCH" "wrong token reason"
ds unlock greeting --lock-token "$TOKEN"
expect_rc 0 "unlock"; expect_out "greeting: unlocked" "unlock output"

# not found: exit 5
ds get nothing-here
expect_rc 5 "missing key"; expect_err_has "NOT_FOUND" "not found reason"

# history
ds get greeting --version 1
expect_rc 0 "old version"; expect_out "hello" "version 1 from history"

# delete, and the version is not reused
ds delete greeting --if-version 3
expect_rc 0 "delete"; expect_out "greeting: deleted (tombstone version 4)" "delete output"
ds put greeting --if-absent --value "again"
expect_rc 0 "re-create"; expect_out "greeting: version 5" "re-create continues the version"

# --json: proto3 JSON of the reply (64-bit integers as strings)
ds --json get greeting
expect_rc 0 "get --json"
[[ $OUT == *'"version":"5"'* ]] || it_fail "get --json has version as a string"
[[ $OUT == *'"value":"YWdhaW4="'* ]] || it_fail "get --json has the value in base64"

# list
for k in a b c; do ds put "list/$k" --force --value "$k"; done
ds list --prefix list/
expect_rc 0 "list"
[[ $(printf '%s\n' "$OUT" | wc -l) -eq 3 ]] || it_fail "list shows 3 keys"
[[ $(printf '%s\n' "$OUT" | cut -f1 | tr '\n' ' ') == "list/a list/b list/c " ]] \
  || it_fail "list is in key order"
ds list --prefix list/ --page-size 2
expect_err_has "--page-token" "a partial page names the next token"
ds list --prefix list/ --page-size 2 --all
[[ $(printf '%s\n' "$OUT" | wc -l) -eq 3 ]] || it_fail "list --all follows pages"

# usage errors and help
ds frobnicate x
expect_rc 2 "unknown command"
ds put
expect_rc 2 "put without a key"
ds --timeout soon get x
expect_rc 2 "bad duration"
RC=0; OUT=$("$DATASYNC" put --help) || RC=$?
expect_rc 0 "put --help"
[[ $OUT == *"--if-version"* ]] || it_fail "put --help documents --if-version"

# an unreachable server: a clear error, exit 1
RC=0; OUT=$("$DATASYNC" --url "ipc://$IT_DIR/nobody.sock" --timeout 300ms get x 2>"$IT_DIR/stderr") || RC=$?
ERR=$(cat "$IT_DIR/stderr")
expect_rc 1 "unreachable server"
[[ $ERR == *"DEADLINE_EXCEEDED"* || $ERR == *"UNAVAILABLE"* ]] || it_fail "unreachable names the reason"

it_stop || it_fail "datasyncd exits 0 on SIGTERM"
it_done
