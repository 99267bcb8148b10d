#!/usr/bin/env bash
# it_tls.sh - datasyncd over TLS (DESIGN §11), certificates made at test
# time: a tls+tcp:// listener and the HTTPS gateway with the right CA
# work (CLI, curl); another CA, an expired server certificate, a
# plaintext client on the TLS port and plain HTTP on the HTTPS port fail
# clearly and leave the server serving the good clients; client
# certificates when --tls-client-ca asks; bad TLS flags are refused.
source "$(dirname "$0")/it_lib.sh"
CERTS="$IT_DIR/certs"
bash "$(dirname "$0")/../support/mkcerts.sh" "$CERTS"

# tls_start [flags...]: datasyncd with a TLS listener (by name: mbed TLS
# matches DNS names) and the HTTPS gateway; sets TLS_URL and HTTPS.
tls_start() {
  TLS_PORT=$(it_free_port)
  TLS_URL="tls+tcp://localhost:$TLS_PORT"
  it_start_http --listen "$TLS_URL" "$@"
  HTTPS="https://localhost:$IT_HTTP_PORT"
}

# tds ARGS...: the CLI against the TLS listener; sets OUT, ERR, RC.
tds() {
  RC=0
  OUT=$("$DATASYNC" --timeout 3s --url "$TLS_URL" "$@" 2>"$IT_DIR/stderr") ||
    RC=$?
  ERR=$(cat "$IT_DIR/stderr")
}

good_get() {  # the good client still works
  tds --tls-ca "$CERTS/ca.pem" get k
  expect_rc 0 "$1: the right CA still works"; expect_out "v1" "$1: value"
}

tls_start --tls-cert "$CERTS/server.pem" --tls-key "$CERTS/server.key"
grep -q "gateway and demo page on https://" "$IT_DIR/datasyncd.log" ||
  it_fail "the gateway says it serves HTTPS"

tds --tls-ca "$CERTS/ca.pem" put k --if-absent --value v1
expect_rc 0 "put over tls+tcp://"
good_get "first"
DATASYNC_TLS_CA="$CERTS/ca.pem" tds get k
expect_rc 0 "DATASYNC_TLS_CA is read"

tds --tls-ca "$CERTS/other-ca.pem" get k
expect_rc 1 "another CA fails"
expect_err_has "TLS_HANDSHAKE_FAILED" "another CA: reason"
expect_err_has "$TLS_URL" "another CA: names the URL"
tds get k
expect_rc 1 "no CA for a tls+tcp:// URL"
expect_err_has "tls_ca_file" "no CA: names the option"
expect_err_has "--tls-ca" "no CA: names the flag"
tds --tls-ca "$IT_DIR/missing.pem" get k
expect_rc 1 "a missing CA file"
expect_err_has "missing.pem" "missing CA: names the file"

# A plaintext SP client on the TLS port: its calls time out, others go on.
RC=0
OUT=$("$DATASYNC" --timeout 1s --url "tcp://127.0.0.1:$TLS_PORT" get k \
  2>"$IT_DIR/stderr") || RC=$?
ERR=$(cat "$IT_DIR/stderr")
[[ $RC -ne 0 ]] || it_fail "plaintext client on the TLS port must fail"
good_get "after a plaintext client"

# HTTPS: curl with the CA; plain HTTP and an untrusted CA fail.
RC=0
OUT=$(curl -sS --cacert "$CERTS/ca.pem" "$HTTPS/v1/records/k") || RC=$?
expect_rc 0 "GET over HTTPS"
[[ $OUT == v1 ]] || it_fail "HTTPS GET body: $OUT"
RC=0
curl -sS --max-time 3 -o /dev/null "http://127.0.0.1:$IT_HTTP_PORT/v1/records/k" \
  2>"$IT_DIR/stderr" || RC=$?
[[ $RC -ne 0 ]] || it_fail "plain HTTP on the HTTPS port must fail"
RC=0
curl -sS --max-time 3 --cacert "$CERTS/other-ca.pem" -o /dev/null \
  "$HTTPS/v1/records/k" 2>"$IT_DIR/stderr" || RC=$?
[[ $RC -eq 60 ]] || it_fail "untrusted HTTPS certificate: curl exit 60, got $RC"
# A write from the page's own origin, https:// (CSRF rule, DESIGN §11).
RC=0
CODE=$(curl -sS --cacert "$CERTS/ca.pem" -o /dev/null -w '%{http_code}' \
  -X PUT -H 'Content-Type: text/plain' -H "Origin: $HTTPS" \
  -H 'If-Match: "1"' --data-binary v2 "$HTTPS/v1/records/k") || RC=$?
[[ $CODE == 200 ]] || it_fail "same-origin https PUT: expected 200, got $CODE"
CODE=$(curl -sS --cacert "$CERTS/ca.pem" -o /dev/null -w '%{http_code}' \
  -X PUT -H 'Content-Type: text/plain' \
  -H "Origin: http://localhost:$IT_HTTP_PORT" \
  -H 'If-Match: "2"' --data-binary v3 "$HTTPS/v1/records/k") || true
[[ $CODE == 403 ]] || it_fail "http:// origin on the HTTPS gateway: expected 403, got $CODE"
RC=0
tds --tls-ca "$CERTS/ca.pem" put k --if-version 2 --value v1
expect_rc 0 "back to v1 over RPC"

# datasync-gateway in front of the TLS listener: HTTPS in, TLS upstream.
GW_PORT=$(it_free_port)
"$DATASYNC_GATEWAY" --upstream "$TLS_URL" --upstream-tls-ca "$CERTS/ca.pem" \
  --http "127.0.0.1:$GW_PORT" --tls-cert "$CERTS/server.pem" \
  --tls-key "$CERTS/server.key" >"$IT_DIR/gw.log" 2>&1 &
GW_PID=$!
for _ in $(seq 1 250); do
  grep -q "listening on https://" "$IT_DIR/gw.log" && break
  sleep 0.02
done
RC=0
OUT=$(curl -sS --cacert "$CERTS/ca.pem" "https://localhost:$GW_PORT/v1/records/k") || RC=$?
expect_rc 0 "datasync-gateway: HTTPS to a TLS upstream"
[[ $OUT == v1 ]] || it_fail "datasync-gateway: value '$OUT'"
kill -TERM "$GW_PID"; wait "$GW_PID" || it_fail "datasync-gateway stops cleanly"
RC=0
"$DATASYNC_GATEWAY" --upstream "$TLS_URL" --http "127.0.0.1:$(it_free_port)" \
  >"$IT_DIR/gw2.log" 2>&1 || RC=$?
[[ $RC -ne 0 ]] && grep -q "upstream-tls-ca\|tls_ca_file" "$IT_DIR/gw2.log" ||
  it_fail "a TLS upstream without a CA is refused naming it"
it_stop || it_fail "clean stop"

# An expired server certificate: refused by the client, clearly.
tls_start --tls-cert "$CERTS/expired.pem" --tls-key "$CERTS/server.key"
tds --tls-ca "$CERTS/ca.pem" get k
expect_rc 1 "expired server certificate"
expect_err_has "TLS_HANDSHAKE_FAILED" "expired: reason"
it_stop || it_fail "clean stop"

# Client certificates required.
tls_start --tls-cert "$CERTS/server.pem" --tls-key "$CERTS/server.key" \
  --tls-client-ca "$CERTS/ca.pem"
tds --tls-ca "$CERTS/ca.pem" get k
expect_rc 1 "no client certificate"
tds --tls-ca "$CERTS/ca.pem" --tls-cert "$CERTS/client.pem" \
  --tls-key "$CERTS/client.key" get k
expect_rc 0 "with a client certificate"; expect_out "v1" "client cert: value"
it_stop || it_fail "clean stop"

# Bad flags: refused at start, naming them.
RC=0
"$DATASYNCD" --db "$IT_DIR/x.db" --http off --listen "tls+tcp://localhost:$(it_free_port)" \
  >"$IT_DIR/bad.log" 2>&1 || RC=$?
[[ $RC -ne 0 ]] || it_fail "a tls+tcp:// listener without a certificate must not start"
grep -q -- "--tls-cert" "$IT_DIR/bad.log" || it_fail "names --tls-cert: $(cat "$IT_DIR/bad.log")"
RC=0
"$DATASYNCD" --db "$IT_DIR/x.db" --http off --tls-cert "$CERTS/server.pem" \
  >"$IT_DIR/bad.log" 2>&1 || RC=$?
[[ $RC -eq 2 ]] || it_fail "--tls-cert without --tls-key: usage error, got $RC"
RC=0
"$DATASYNCD" --db "$IT_DIR/x.db" --http off --listen "tls+tcp://localhost:$(it_free_port)" \
  --tls-cert "$IT_DIR/nope.pem" --tls-key "$CERTS/server.key" \
  >"$IT_DIR/bad.log" 2>&1 || RC=$?
[[ $RC -ne 0 ]] || it_fail "a missing certificate file must not start"
grep -q "nope.pem" "$IT_DIR/bad.log" || it_fail "names the missing file: $(cat "$IT_DIR/bad.log")"
it_done
