#!/usr/bin/env bash
# it_auth_cli.sh - authentication from the command line (DESIGN §11): a
# bootstrap token file made by datasyncd, token create/list/revoke over
# RPC and offline ("datasyncd token"), whoami, --token and
# DATASYNC_TOKEN, the exit codes, protected mode, and no secret in
# datasyncd's log.
source "$(dirname "$0")/it_lib.sh"

BOOT="$IT_DIR/bootstrap.token"
it_start --http off --bootstrap-token-file "$BOOT"
LOG="$IT_DIR/datasyncd.log"

# the file was made, mode 0600, holding one secret
[[ -f $BOOT ]] || it_fail "bootstrap file created"
[[ $(stat -c %a "$BOOT") == 600 ]] || it_fail "bootstrap file mode 0600, got $(stat -c %a "$BOOT")"
ADMIN=$(cat "$BOOT")
[[ $ADMIN =~ ^dst_[0-9a-f]{64}$ ]] || it_fail "bootstrap secret form, got '$ADMIN'"
grep -q "bootstrap" "$LOG" || it_fail "the log says the bootstrap token was made"

# no token: exit 6 with the reason
ds get docs/a
expect_rc 6 "no token"; expect_err_has "TOKEN_MISSING" "reason without a token"
ds --token "dst_nope" get docs/a
expect_rc 6 "malformed token"; expect_err_has "TOKEN_MALFORMED" "malformed reason"

# whoami, by flag and by environment
ds whoami
expect_rc 0 "whoami without a token"
[[ $OUT == *"auth required: yes"* && $OUT == *"token: none"* ]] || it_fail "whoami without a token says none"
ds --token "$ADMIN" whoami
expect_rc 0 "whoami as admin"
[[ $OUT == *"token: bootstrap"* && $OUT == *"grants: admin"* ]] || it_fail "whoami names bootstrap, admin"
RC=0; OUT=$(DATASYNC_TOKEN="$ADMIN" "$DATASYNC" --url "$IT_IPC" whoami 2>"$IT_DIR/stderr") || RC=$?
expect_rc 0 "whoami with DATASYNC_TOKEN"
[[ $OUT == *"token: bootstrap"* ]] || it_fail "DATASYNC_TOKEN is used"

# token create: the secret alone on stdout
ds --token "$ADMIN" token create ci --grant read:docs/ --grant write:docs/
expect_rc 0 "token create"
CI=$OUT
[[ $CI =~ ^dst_[0-9a-f]{64}$ ]] || it_fail "create prints the secret alone, got '$CI'"
expect_err_has "shown this once" "create says the secret is shown once"
ds --token "$ADMIN" token create ci --grant read:x/
expect_rc 1 "a name is never reused"; expect_err_has "TOKEN_EXISTS" "exists reason"
ds --token "$ADMIN" token create bad --grant fly:docs/
expect_rc 1 "bad grant"; expect_err_has "INVALID_ARGUMENT" "bad grant reason"
ds --token "$ADMIN" token create ci2
expect_rc 2 "create without --grant is a usage error"

# the new token: its rights and nothing more
ds --token "$CI" put docs/a --if-absent --value hello
expect_rc 0 "ci writes docs/a"
ds --token "$CI" get docs/a
expect_rc 0 "ci reads docs/a"; expect_out "hello" "value read back"
ds --token "$CI" --json get docs/a
[[ $OUT == *'"updatedBy": "ci"'* || $OUT == *'"updatedBy":"ci"'* ]] || it_fail "updated_by is the token name"
ds --token "$CI" put other/a --if-absent --value x
expect_rc 6 "ci may not write other/"; expect_err_has "PERMISSION_DENIED" "denied reason"
expect_err_has 'token "ci" has no write right' "denied message names token and right"
ds --token "$CI" lock docs/a --owner me
expect_rc 6 "ci has no lock right"
ds --token "$CI" list
expect_rc 6 "a list of every key needs read on every key"
ds --token "$CI" list --prefix docs/
expect_rc 0 "list docs/"
ds --token "$CI" token list
expect_rc 6 "token list needs admin"

# list and revoke
# with a token the lock's owner is the token: --owner may be left out,
# and another name given is not taken
ds --token "$ADMIN" put docs/owned --if-absent --value o
expect_rc 0 "admin writes docs/owned"
ds --token "$ADMIN" put docs/owned2 --if-absent --value o
expect_rc 0 "admin writes docs/owned2"
ds --token "$ADMIN" lock docs/owned --ttl 5s
expect_rc 0 "lock with a token and no --owner"
ds --token "$ADMIN" --json get docs/owned
[[ $OUT == *'"owner": "bootstrap"'* || $OUT == *'"owner":"bootstrap"'* ]] ||
  it_fail "the lock taken without --owner is the token's: $OUT"
ds --token "$ADMIN" lock docs/owned2 --owner mallory --ttl 5s
expect_rc 0 "lock with a token and another --owner"
ds --token "$ADMIN" --json get docs/owned2
[[ $OUT == *'"owner": "bootstrap"'* || $OUT == *'"owner":"bootstrap"'* ]] ||
  it_fail "--owner mallory does not name a token's lock: $OUT"
ds lock docs/owned3
expect_rc 2 "lock without a token needs --owner"
expect_err_has "lock needs --owner NAME" "the usage error names --owner"

ds --token "$ADMIN" token list
expect_rc 0 "token list"
[[ $OUT == *"bootstrap"*"active"* && $OUT == *"ci"*"active"*"read:docs/ write:docs/"* ]] || it_fail "token list shows both"
ds --token "$ADMIN" token revoke ci
expect_rc 0 "revoke"
ds --token "$CI" get docs/a
expect_rc 6 "revoked token refused"; expect_err_has "TOKEN_REVOKED" "revoked reason"
ds --token "$ADMIN" token revoke nobody
expect_rc 5 "revoking an unknown name"

# offline, on the database while the daemon runs and once it stopped
RC=0; OUT=$("$DATASYNCD" token create offline --grant read: --db "$IT_DB" 2>"$IT_DIR/stderr") || RC=$?
ERR=$(cat "$IT_DIR/stderr")
expect_rc 0 "offline create"
OFF=$OUT
[[ $OFF =~ ^dst_[0-9a-f]{64}$ ]] || it_fail "offline create prints the secret alone, got '$OFF'"
# the running daemon picks it up within its check interval
for _ in $(seq 1 100); do
  ds --token "$OFF" get docs/a
  [[ $RC -eq 0 ]] && break
  sleep 0.02
done
expect_rc 0 "a token made offline works on the running daemon"
it_stop
RC=0; OUT=$("$DATASYNCD" token list --db "$IT_DB" 2>"$IT_DIR/stderr") || RC=$?
ERR=$(cat "$IT_DIR/stderr")
expect_rc 0 "offline list"
[[ $OUT == *"offline"*"active"* && $OUT == *"ci"*"revoked"* ]] || it_fail "offline list shows states"
RC=0; OUT=$("$DATASYNCD" token revoke offline --db "$IT_DB" 2>"$IT_DIR/stderr") || RC=$?
ERR=$(cat "$IT_DIR/stderr")
expect_rc 0 "offline revoke"
RC=0; OUT=$("$DATASYNCD" token revoke nobody --db "$IT_DB" 2>"$IT_DIR/stderr") || RC=$?
ERR=$(cat "$IT_DIR/stderr")
expect_rc 5 "offline revoke of an unknown name"
RC=0; OUT=$("$DATASYNCD" token create x --db "$IT_DB" 2>"$IT_DIR/stderr") || RC=$?
ERR=$(cat "$IT_DIR/stderr")
expect_rc 2 "offline create without --grant"

# restart with the same file: the token is there, nothing new made
it_start --http off --bootstrap-token-file "$BOOT"
ds --token "$ADMIN" token list
expect_rc 0 "admin after a restart"
[[ $(grep -c '^bootstrap' <<<"$OUT") -eq 1 && $OUT != *"bootstrap-2"* ]] || it_fail "one bootstrap token after a restart"
ds --token "$OFF" get docs/a
expect_rc 6 "the offline revocation holds"
it_stop

# no secret ever reaches the log
for s in "$ADMIN" "$CI" "$OFF"; do
  if grep -qF "$s" "$LOG"; then it_fail "a secret is in datasyncd's log"; fi
done

# a file that is not one secret
echo "hello" >"$IT_DIR/bad.token"
chmod 600 "$IT_DIR/bad.token"
RC=0; "$DATASYNCD" --db "$IT_DB" --listen "ipc://$IT_DIR/b.sock" --http off \
  --bootstrap-token-file "$IT_DIR/bad.token" >"$IT_DIR/bad.log" 2>&1 || RC=$?
OUT=""; ERR=$(cat "$IT_DIR/bad.log")
expect_rc 2 "a malformed bootstrap file"; expect_err_has "bootstrap-token-file" "names the flag"

# a bootstrap file that group or other may read or write: refused at
# start (exit 2), one line naming the file, its mode and the fix
for mode in 644 620 604 640; do
  cp "$BOOT" "$IT_DIR/open.token"
  chmod "$mode" "$IT_DIR/open.token"
  RC=0; "$DATASYNCD" --db "$IT_DB" --listen "ipc://$IT_DIR/o.sock" --http off \
    --bootstrap-token-file "$IT_DIR/open.token" >"$IT_DIR/open.log" 2>&1 || RC=$?
  OUT=""; ERR=$(cat "$IT_DIR/open.log")
  expect_rc 2 "a bootstrap file of mode $mode"
  expect_err_has "$IT_DIR/open.token has mode 0$mode" "names the file and its mode"
  expect_err_has "chmod 600" "says chmod 600"
  [[ $(grep -c . "$IT_DIR/open.log") -eq 1 ]] || it_fail "mode $mode: one line"
  rm -f "$IT_DIR/open.token"
done

# protected mode
P=$(it_free_port)
RC=0; "$DATASYNCD" --db "$IT_DIR/p.db" --listen "tcp://0.0.0.0:$P" --http off \
  >"$IT_DIR/p.log" 2>&1 || RC=$?
OUT=""; ERR=$(cat "$IT_DIR/p.log")
expect_rc 2 "a non-loopback listener without auth"
expect_err_has "tcp://0.0.0.0:$P" "names the listener"
expect_err_has "--auth" "names --auth"; expect_err_has "--insecure-no-auth" "names --insecure-no-auth"
RC=0; "$DATASYNCD" --db "$IT_DIR/p.db" --listen "ipc://$IT_DIR/p.sock" --http "0.0.0.0:$P" \
  >"$IT_DIR/p.log" 2>&1 || RC=$?
OUT=""; ERR=$(cat "$IT_DIR/p.log")
expect_rc 2 "a non-loopback HTTP address without auth"; expect_err_has "0.0.0.0:$P" "names the address"
RC=0; "$DATASYNCD" --db "$IT_DIR/p.db" --listen "tls+tcp://10.0.0.1:$P" --http off \
  >"$IT_DIR/p.log" 2>&1 || RC=$?
OUT=""; ERR=$(cat "$IT_DIR/p.log")
expect_rc 2 "a tls+tcp listener beyond loopback without auth"
RC=0; "$DATASYNCD" --auth --insecure-no-auth --http off >"$IT_DIR/p.log" 2>&1 || RC=$?
expect_rc 2 "--auth with --insecure-no-auth"
# with --insecure-no-auth it serves, and so does loopback only (above)
it_start --http off --listen "tcp://0.0.0.0:$P" --insecure-no-auth
RC=0; OUT=$("$DATASYNC" --url "tcp://127.0.0.1:$P" whoami 2>"$IT_DIR/stderr") || RC=$?
ERR=$(cat "$IT_DIR/stderr")
expect_rc 0 "--insecure-no-auth serves"
[[ $OUT == *"auth required: no"* ]] || it_fail "whoami says auth is not required"
ds token list
expect_rc 1 "token management without --auth"; expect_err_has "AUTH_DISABLED" "reason"
it_stop
it_start --http off
ds put k --if-absent --value v
expect_rc 0 "without --auth, loopback: everything as before"
it_stop

# the failure limiter over tls+tcp:// (the peer's address from the TLS
# pipe): 10 unknown tokens, then 429 even for a good one
bash "$(dirname "$0")/../support/mkcerts.sh" "$IT_DIR/certs" >/dev/null
T=$(it_free_port)
it_start --http off --bootstrap-token-file "$BOOT" --listen "tls+tcp://127.0.0.1:$T" \
  --tls-cert "$IT_DIR/certs/server.pem" --tls-key "$IT_DIR/certs/server.key"
# (not ds: it adds --url ipc://, and the client would spread its calls)
dstls() {
  RC=0
  OUT=$("$DATASYNC" --url "tls+tcp://localhost:$T" --tls-ca "$IT_DIR/certs/ca.pem" \
    "$@" 2>"$IT_DIR/stderr") || RC=$?
  ERR=$(cat "$IT_DIR/stderr")
}
BAD=dst_$(printf '3%.0s' $(seq 1 64))
dstls --token "$ADMIN" whoami
expect_rc 0 "whoami over TLS"
for i in $(seq 1 10); do
  dstls --token "$BAD" whoami
  expect_rc 6 "unknown token over TLS ($i)"; expect_err_has "TOKEN_UNKNOWN" "reason ($i)"
done
dstls --token "$ADMIN" whoami
expect_rc 6 "the TLS peer is blocked"; expect_err_has "TOO_MANY_AUTH_FAILURES" "429 reason"
ds --token "$ADMIN" whoami
expect_rc 0 "ipc:// is not blocked"
it_stop

it_done
