#!/usr/bin/env bash
# it_gw_protected.sh - protected mode of the standalone datasync-gateway
# (DESIGN §11): datasyncd on ipc:// without --auth passes its own protected
# mode, so the gateway must not serve it to the network. A non-loopback
# --http in front of an upstream that does not require tokens exits 2
# naming the listener, the reason and both ways out; so does one whose
# upstream cannot be asked. --insecure-no-auth, a loopback --http, or an
# upstream with --auth serve.
source "$(dirname "$0")/it_lib.sh"

[[ -n ${DATASYNC_GATEWAY:-} ]] || { echo "FAIL: DATASYNC_GATEWAY is not set" >&2; exit 1; }

GW_PID=
GW_PORT=
gw_kill() {
  if [[ -n $GW_PID ]] && kill -0 "$GW_PID" 2>/dev/null; then
    kill -TERM "$GW_PID" 2>/dev/null || true
    wait "$GW_PID" 2>/dev/null || true
  fi
  GW_PID=
}
trap 'gw_kill; it_cleanup' EXIT

# gw_refused DESC ARGS...: the gateway exits at start; OUT/ERR/RC.
gw_refused() {
  local desc=$1
  shift
  RC=0
  OUT=$(timeout 30 "$DATASYNC_GATEWAY" "$@" 2>"$IT_DIR/gw.err") || RC=$?
  ERR=$(cat "$IT_DIR/gw.err")
  expect_rc 2 "$desc: exit code"
  expect_err_has "protected mode" "$desc"
  [[ $OUT != *"listening on"* ]] || it_fail "$desc: it listened anyway"
  [[ $(wc -l <"$IT_DIR/gw.err") -eq 1 ]] || it_fail "$desc: one line on stderr"
}

# gw_serves DESC ARGS...: the gateway starts (port 0: it says which) and
# answers GET /v1/records/k on 127.0.0.1 with HTTP $WANT; then stops.
gw_serves() {
  local desc=$1
  shift
  "$DATASYNC_GATEWAY" "$@" >"$IT_DIR/gw.log" 2>&1 &
  GW_PID=$!
  for _ in $(seq 1 500); do
    grep -q "listening on" "$IT_DIR/gw.log" && break
    kill -0 "$GW_PID" 2>/dev/null || break
    sleep 0.02
  done
  OUT=$(cat "$IT_DIR/gw.log"); ERR=""; RC=
  GW_PORT=$(sed -n 's/.*listening on https\?:\/\/.*:\([0-9]\+\)\/$/\1/p' "$IT_DIR/gw.log")
  if [[ -z $GW_PORT ]]; then
    it_fail "$desc: the gateway did not start"
    gw_kill
    return 0
  fi
  local code
  code=$(curl -sS -o /dev/null -w '%{http_code}' \
    "http://127.0.0.1:$GW_PORT/v1/records/k" 2>"$IT_DIR/curl.err") || true
  [[ $code == "$WANT" ]] || it_fail "$desc: GET answered $code, expected $WANT"
  kill -TERM "$GW_PID"
  RC=0
  wait "$GW_PID" || RC=$?
  GW_PID=
  expect_rc 0 "$desc: stops cleanly"
}

# --- an upstream without --auth ----------------------------------------------
it_start
NOSOCK="ipc://$IT_DIR/nobody.sock"

gw_refused "open upstream, 0.0.0.0" --upstream "$IT_IPC" --http 0.0.0.0:0
expect_err_has "--http 0.0.0.0:0" "open upstream: names the listener"
expect_err_has "upstream $IT_IPC does not require tokens (auth_required is false)" \
  "open upstream: the reason"
expect_err_has "run datasyncd with --auth" "open upstream: way out 1"
expect_err_has "add --insecure-no-auth here" "open upstream: way out 2"

gw_refused "open upstream over tcp, [::]" --upstream "$IT_TCP" --http '[::]:0'
expect_err_has "does not require tokens" "open upstream over tcp: the reason"

gw_refused "unreachable upstream, 0.0.0.0" --upstream "$NOSOCK" --http 0.0.0.0:0
expect_err_has "cannot verify that upstream $NOSOCK requires tokens" \
  "unreachable upstream: the reason"
expect_err_has "--insecure-no-auth" "unreachable upstream: the way out"

WANT=404
gw_serves "open upstream with --insecure-no-auth" \
  --upstream "$IT_IPC" --http 0.0.0.0:0 --insecure-no-auth
gw_serves "open upstream, loopback" --upstream "$IT_IPC" --http 127.0.0.1:0
gw_serves "open upstream, localhost" --upstream "$IT_IPC" --http localhost:0
# Loopback needs no upstream at all (nothing is asked).
WANT=504
gw_serves "unreachable upstream, loopback" --upstream "$NOSOCK" --http 127.0.0.1:0 \
  --timeout-ms 300
it_stop || it_fail "datasyncd (no auth) did not stop cleanly"

# --- an upstream with --auth -------------------------------------------------
it_start --bootstrap-token-file "$IT_DIR/boot.token"
WANT=401
gw_serves "auth upstream, 0.0.0.0" --upstream "$IT_IPC" --http 0.0.0.0:0
gw_serves "auth upstream over tcp, 0.0.0.0" --upstream "$IT_TCP" --http 0.0.0.0:0
# Every upstream is asked: one that cannot be is refused.
gw_refused "auth upstream and an unreachable one" \
  --upstream "$IT_IPC" --upstream "$NOSOCK" --http 0.0.0.0:0
expect_err_has "cannot verify that upstream $NOSOCK" "second upstream: named"
it_stop || it_fail "datasyncd (auth) did not stop cleanly"

it_done
