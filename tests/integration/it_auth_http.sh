#!/usr/bin/env bash
# it_auth_http.sh - authentication through the HTTP gateway (DESIGN §11,
# issue 13) against a live datasyncd started with --bootstrap-token-file:
# every route x {no token, malformed, unknown, revoked, right prefix but
# wrong right, wrong prefix, right} with its status; 401 carries
# WWW-Authenticate; the session cookie's flow and attributes; the
# per-peer 429 with Retry-After; a watch or list wider than the read
# right is 403; revoking a session's token ends its open event stream
# with no event after; no secret is ever echoed in a body; datasync-gateway (the
# standalone one, over ipc://) answers the same. Each route's refused
# credentials come from their own loopback address (curl --interface
# 127.0.0.N), so the failure limiter only trips where it is tested.
source "$(dirname "$0")/it_lib.sh"

BOOT="$IT_DIR/bootstrap.token"
IT_HTTP_PORT=$(it_free_port)
IT_HTTP="http://127.0.0.1:$IT_HTTP_PORT"
it_start --bootstrap-token-file "$BOOT"

[[ -f $BOOT ]] || { echo "FAIL: --bootstrap-token-file did not create $BOOT" >&2; exit 1; }
ADMIN=$(tr -d '\n' <"$BOOT")
[[ $ADMIN =~ ^dst_[0-9a-f]{64}$ ]] || { echo "FAIL: bootstrap secret is not dst_ + 64 hex" >&2; exit 1; }
grep -q "$ADMIN" "$IT_DIR/datasyncd.log" &&
  { echo "FAIL: the bootstrap secret is in the log" >&2; exit 1; }

SRC=127.0.0.1 # the address curl connects from (see the header)
SECRETS=()    # every secret: none may show up in a response body

# --- helpers ----------------------------------------------------------------

# http METHOD PATH [curl args...]: sets CODE and BODY; headers in $IT_DIR/h.
http() {
  local m=$1 p=$2
  shift 2
  rm -f "$IT_DIR/body" "$IT_DIR/h"
  CODE=$(curl -sS --path-as-is --interface "$SRC" -o "$IT_DIR/body" \
    -D "$IT_DIR/h" -w '%{http_code}' -X "$m" "$@" "$IT_HTTP$p" \
    2>"$IT_DIR/curl.err") || true
  BODY=$(cat "$IT_DIR/body" 2>/dev/null || true)
  local s
  for s in "${SECRETS[@]}"; do
    if [[ -n $s && $BODY == *"$s"* ]]; then
      OUT=$BODY; ERR=""; RC=$CODE
      it_fail "$m $p: a secret is echoed in the response body"
    fi
  done
}
hdr() {  # hdr NAME: the response header's value
  grep -i "^$1:" "$IT_DIR/h" | head -1 | sed -e 's/^[^:]*: *//' -e 's/\r$//'
}
hfail() {
  OUT=$BODY; ERR=$(cat "$IT_DIR/h" "$IT_DIR/curl.err" 2>/dev/null); RC=$CODE
  it_fail "$@"
}
expect_code() {  # expect_code STATUS description
  [[ $CODE == "$1" ]] || hfail "$2: expected HTTP $1, got $CODE"
}
NO_BODY=0 # set while checking HEAD: the reason is in no body
expect_reason() {  # expect_reason REASON description
  (( NO_BODY )) && return 0
  local r
  r=$(jq -r '.reason // empty' <<<"$BODY" 2>/dev/null || true)
  [[ $r == "$1" ]] || hfail "$2: expected reason $1, got '$r'"
}
bearer() { echo "Authorization: Bearer $1"; }

# rpc_admin METHOD JSON: /rpc/ as the bootstrap admin; BODY the reply.
rpc_admin() {
  http POST "/rpc/datasync.v1.DataSync/$1" -H "$(bearer "$ADMIN")" \
    -H 'Content-Type: application/json' --data-binary "$2"
  [[ $CODE == 200 ]] || { hfail "$1 as admin: HTTP $CODE"; exit 1; }
}
# mint NAME GRANT...: a new token; prints its secret.
mint() {
  local name=$1
  shift
  local grants
  grants=$(printf '%s\n' "$@" | jq -R . | jq -sc .)
  rpc_admin CreateToken "{\"name\":\"$name\",\"grants\":$grants}"
  jq -r '.secret' <<<"$BODY"
}

# --- tokens -----------------------------------------------------------------

http GET /v1/records/docs%2Fa
expect_code 401 "no token on an auth server"
[[ $(hdr WWW-Authenticate) == 'Bearer realm="datasync"' ]] ||
  hfail "401 without a token: WWW-Authenticate is '$(hdr WWW-Authenticate)'"

READER=$(mint reader read:docs/)
WRITER=$(mint writer read:docs/ write:docs/ lock:docs/)
WONLY=$(mint wonly write:docs/ lock:docs/)
OTHER=$(mint other read:other/ write:other/ lock:other/)
REVOKED=$(mint gone read:docs/ write:docs/ lock:docs/)
COOKIE_TOKEN=$(mint browser read:docs/ write:docs/)
MALFORMED="dst_not-a-token"
UNKNOWN="dst_$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
SECRETS=("$ADMIN" "$READER" "$WRITER" "$WONLY" "$OTHER" "$REVOKED" "$COOKIE_TOKEN" "$UNKNOWN")
for s in "$READER" "$WRITER" "$WONLY" "$OTHER" "$REVOKED"; do
  [[ $s =~ ^dst_[0-9a-f]{64}$ ]] || { echo "FAIL: CreateToken gave '$s'" >&2; exit 1; }
done
rpc_admin RevokeToken '{"name":"gone"}'
# Revocation reaches the gateway's node within a second: wait for it
# (bounded), not for a fixed time.
for _ in $(seq 1 50); do
  http GET /v1/records/docs%2Fa -H "$(bearer "$REVOKED")"
  [[ $CODE == 401 ]] && break
  sleep 0.1
done
expect_code 401 "the revoked token is refused"

# The records the routes work on.
http PUT /v1/records/docs%2Fa -H "$(bearer "$ADMIN")" -H 'If-None-Match: *' \
  --data-binary 'hello'
expect_code 201 "admin creates docs/a"
http PUT /v1/records/other%2Fx -H "$(bearer "$ADMIN")" -H 'If-None-Match: *' \
  --data-binary 'x'
expect_code 201 "admin creates other/x"

# --- the matrix -------------------------------------------------------------

# check ROUTE WRONG_RIGHT_TOKEN RIGHT_STATUS METHOD PATH [curl args...]:
# the seven credentials against one route, from the route's own address.
ROUTE_N=10
check() {
  local route=$1 wrong=$2 ok=$3
  shift 3
  SRC="127.0.0.$ROUTE_N"
  ROUTE_N=$((ROUTE_N + 1))
  NO_BODY=0
  [[ $1 == HEAD ]] && NO_BODY=1
  http "$@"
  expect_code 401 "$route, no token"
  expect_reason TOKEN_MISSING "$route, no token"
  [[ $(hdr WWW-Authenticate) == 'Bearer realm="datasync"' ]] ||
    hfail "$route, no token: WWW-Authenticate '$(hdr WWW-Authenticate)'"
  local what secret reason
  for what in malformed unknown revoked; do
    case $what in
    malformed) secret=$MALFORMED reason=TOKEN_MALFORMED ;;
    unknown) secret=$UNKNOWN reason=TOKEN_UNKNOWN ;;
    revoked) secret=$REVOKED reason=TOKEN_REVOKED ;;
    esac
    http "$@" -H "$(bearer "$secret")"
    expect_code 401 "$route, $what token"
    expect_reason "$reason" "$route, $what token"
    [[ $(hdr WWW-Authenticate) == 'Bearer realm="datasync", error="invalid_token"' ]] ||
      hfail "$route, $what token: WWW-Authenticate '$(hdr WWW-Authenticate)'"
  done
  http "$@" -H "$(bearer "$wrong")"
  expect_code 403 "$route, right prefix but not the right"
  expect_reason PERMISSION_DENIED "$route, right prefix but not the right"
  (( NO_BODY )) || [[ $(jq -r .message <<<"$BODY") == *'"docs/'* ]] ||
    hfail "$route: the 403 names the prefix"
  http "$@" -H "$(bearer "$OTHER")"
  expect_code 403 "$route, a token for another prefix"
  expect_reason PERMISSION_DENIED "$route, a token for another prefix"
  http "$@" -H "$(bearer "$WRITER")"
  expect_code "$ok" "$route, the right token"
  SRC=127.0.0.1
  NO_BODY=0
}

check get "$WONLY" 200 GET /v1/records/docs%2Fa
check head "$WONLY" 200 HEAD /v1/records/docs%2Fa --head
check put "$READER" 200 PUT /v1/records/docs%2Fa -H 'If-Match: *' --data-binary 'v2'
http GET /v1/records/docs%2Fa -H "$(bearer "$READER")"
[[ $(hdr Record-Updated-By) == writer ]] ||
  hfail "with auth on, updated_by is the token's name, not '$(hdr Record-Updated-By)'"
check list "$WONLY" 200 GET '/v1/records?prefix=docs/'
check watch "$WONLY" 200 GET '/v1/watch?prefix=docs/&timeout=1'
check events "$WONLY" 200 GET '/v1/events?prefix=docs/' --max-time 2
check rpc_get "$WONLY" 200 POST /rpc/datasync.v1.DataSync/Get \
  -H 'Content-Type: application/json' --data-binary '{"key":"docs/a"}'
check lock "$READER" 200 POST /v1/records/docs%2Fa/lock \
  -H 'Content-Type: application/json' --data-binary '{"ttlMs":60000}'
LOCK_TOKEN=$(jq -r '.lockToken // .lock.lockToken // empty' <<<"$BODY")
[[ -n $LOCK_TOKEN ]] || LOCK_TOKEN=$(hdr Lock-Token)
[[ -n $LOCK_TOKEN ]] || hfail "the lock reply carries its token"
http GET /v1/records/docs%2Fa -H "$(bearer "$READER")"
[[ $(hdr Lock-Owner) == writer ]] ||
  hfail "a reader sees the lock owner, the token's name: '$(hdr Lock-Owner)'"
check unlock "$READER" 204 DELETE /v1/records/docs%2Fa/lock -H "Lock-Token: $LOCK_TOKEN"
http PUT /v1/records/docs%2Fb -H "$(bearer "$ADMIN")" -H 'If-None-Match: *' \
  --data-binary 'b'
check delete "$READER" 204 DELETE /v1/records/docs%2Fb -H 'If-Match: *'

# Ranges: a read right on docs/ does not cover a wider prefix.
for p in '' do d; do
  http GET "/v1/watch?prefix=$p&timeout=1" -H "$(bearer "$READER")"
  expect_code 403 "watch on prefix '$p' wider than read:docs/"
  expect_reason PERMISSION_DENIED "watch on prefix '$p'"
  http GET "/v1/events?prefix=$p" -H "$(bearer "$READER")" --max-time 2
  expect_code 403 "event stream on prefix '$p' wider than read:docs/"
  http GET "/v1/records?prefix=$p" -H "$(bearer "$READER")"
  expect_code 403 "list of prefix '$p' wider than read:docs/"
done
http GET '/v1/watch?prefix=docs/sub/&timeout=1' -H "$(bearer "$READER")"
expect_code 200 "a watch on a narrower prefix"

# A conflict's 412 shows the current record only as far as the caller may
# read it: a write-only token gets the version to retry with, not the
# value it may not GET.
SECRET_VALUE=conflict-detail-secret
SECRET_B64=$(printf '%s' "$SECRET_VALUE" | base64)
http PUT /v1/records/docs%2Fsecret -H "$(bearer "$ADMIN")" -H 'If-None-Match: *' \
  --data-binary "$SECRET_VALUE"
expect_code 201 "admin creates docs/secret"
http PUT /v1/records/docs%2Fsecret -H "$(bearer "$WONLY")" -H 'If-None-Match: *' \
  --data-binary 'mine'
expect_code 412 "a write-only token's create of an existing record"
expect_reason VERSION_CONFLICT "a write-only token's create of an existing record"
[[ $BODY != *"$SECRET_VALUE"* && $BODY != *"$SECRET_B64"* ]] ||
  hfail "a write-only token's 412 carries the record's value"
[[ $(jq -r '.current.version // empty' <<<"$BODY") =~ ^[1-9][0-9]*$ ]] ||
  hfail "a write-only token's 412 carries the version to retry with"
http DELETE /v1/records/docs%2Fsecret -H "$(bearer "$WONLY")" -H 'If-Match: "99"'
expect_code 412 "a write-only token's delete at a wrong version"
[[ $BODY != *"$SECRET_VALUE"* && $BODY != *"$SECRET_B64"* ]] ||
  hfail "a write-only token's 412 (delete) carries the record's value"
http PUT /v1/records/docs%2Fsecret -H "$(bearer "$WRITER")" -H 'If-None-Match: *' \
  --data-binary 'mine'
expect_code 412 "a read+write token's create of an existing record"
[[ $BODY == *"$SECRET_VALUE"* || $BODY == *"$SECRET_B64"* ]] ||
  hfail "a read+write token's 412 carries the record's value"

# Token management needs admin.
http POST /rpc/datasync.v1.DataSync/ListTokens -H "$(bearer "$WRITER")" \
  -H 'Content-Type: application/json' --data-binary '{}'
expect_code 403 "ListTokens without admin"
http POST /rpc/datasync.v1.DataSync/ListTokens -H "$(bearer "$ADMIN")" \
  -H 'Content-Type: application/json' --data-binary '{}'
expect_code 200 "ListTokens as admin"

# --- the session cookie -----------------------------------------------------

ORIGIN="Origin: $IT_HTTP"
http GET /v1/session
expect_code 200 "GET /v1/session without a session"
[[ $(jq -c '[.authRequired, .authenticated, .token]' <<<"$BODY") == '[true,false,null]' ]] ||
  hfail "GET /v1/session without a session says auth required, not authenticated"

http POST /v1/session -H "$ORIGIN" -H 'Content-Type: application/json' \
  --data-binary "{\"token\":\"$UNKNOWN\"}"
expect_code 401 "sign in with an unknown token"
[[ -z $(hdr Set-Cookie) ]] || hfail "a refused sign-in sets no cookie"
[[ -n $(hdr WWW-Authenticate) ]] || hfail "a refused sign-in has WWW-Authenticate"

http POST /v1/session -H 'Origin: http://evil.test' \
  -H 'Content-Type: application/json' --data-binary "{\"token\":\"$COOKIE_TOKEN\"}"
expect_code 403 "sign in from another origin"
expect_reason ORIGIN_NOT_ALLOWED "sign in from another origin"
[[ -z $(hdr Set-Cookie) ]] || hfail "a cross-origin sign-in sets no cookie"

http POST /v1/session -H "$ORIGIN" -H 'Content-Type: text/plain' \
  --data-binary "{\"token\":\"$COOKIE_TOKEN\"}"
expect_code 415 "sign in with a form-like body"

http POST /v1/session -H "$ORIGIN" -H 'Content-Type: application/json' \
  --data-binary "{\"token\":\"$COOKIE_TOKEN\"}"
expect_code 200 "sign in"
COOKIE=$(hdr Set-Cookie)
[[ $COOKIE == "ds_session=$COOKIE_TOKEN;"* ]] || hfail "the cookie holds the session: '$COOKIE'"
for a in 'HttpOnly' 'SameSite=Strict' 'Path=/'; do
  [[ $COOKIE == *"; $a"* ]] || hfail "the cookie has $a: '$COOKIE'"
done
[[ $COOKIE != *Secure* ]] || hfail "no Secure over plain HTTP: '$COOKIE'"
[[ $(hdr Cache-Control) == no-store ]] || hfail "sign-in replies are not cached"
[[ $(jq -r .token.name <<<"$BODY") == browser ]] || hfail "sign-in says who"

JAR=(-H "Cookie: theme=dark; ds_session=$COOKIE_TOKEN")
http GET /v1/session "${JAR[@]}"
expect_code 200 "GET /v1/session with the cookie"
[[ $(jq -r '.authenticated' <<<"$BODY") == true &&
   $(jq -c '.token.grants' <<<"$BODY") == '["read:docs/","write:docs/"]' ]] ||
  hfail "GET /v1/session with the cookie names the token and its grants"
http GET /v1/records/docs%2Fa "${JAR[@]}"
expect_code 200 "a read with the cookie"
http PUT /v1/records/docs%2Fc "${JAR[@]}" -H "$ORIGIN" -H 'If-None-Match: *' \
  --data-binary 'c'
expect_code 201 "a write with the cookie"
http GET '/v1/events?prefix=docs/' "${JAR[@]}" --max-time 2
expect_code 200 "an event stream with the cookie (EventSource)"
# The header wins: OTHER has no right on docs/.
http GET /v1/records/docs%2Fa "${JAR[@]}" -H "$(bearer "$OTHER")"
expect_code 403 "Authorization wins over the cookie"
http PUT /v1/records/docs%2Fd "${JAR[@]}" -H 'Origin: http://evil.test' \
  -H 'If-None-Match: *' --data-binary 'd'
expect_code 403 "a cross-origin write with the cookie"

http DELETE /v1/session "${JAR[@]}" -H "$ORIGIN"
expect_code 204 "sign out"
[[ $(hdr Set-Cookie) == 'ds_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0' ]] ||
  hfail "sign out clears the cookie: '$(hdr Set-Cookie)'"

# A revoked session's cookie is refused, and cleared.
rpc_admin RevokeToken '{"name":"browser"}'
for _ in $(seq 1 50); do
  http GET /v1/records/docs%2Fa "${JAR[@]}"
  [[ $CODE == 401 ]] && break
  sleep 0.1
done
expect_code 401 "a revoked session"
expect_reason TOKEN_REVOKED "a revoked session"
[[ $(hdr Set-Cookie) == *'Max-Age=0'* ]] || hfail "a revoked session's cookie is cleared"

# --- revocation ends an open event stream -----------------------------------

STREAMER=$(mint streamer read:docs/)
SECRETS+=("$STREAMER")
SSE_RC=0
curl -sS -N --max-time 20 -H "Cookie: ds_session=$STREAMER" \
  "$IT_HTTP/v1/events?prefix=docs/" >"$IT_DIR/sse.out" 2>/dev/null &
SSE_PID=$!
for _ in $(seq 1 100); do
  grep -q '^retry:' "$IT_DIR/sse.out" 2>/dev/null && break
  sleep 0.05
done
grep -q '^retry:' "$IT_DIR/sse.out" || it_fail "the cookie's event stream opened"
rpc_admin RevokeToken '{"name":"streamer"}'
for _ in $(seq 1 50); do  # until the node's token cache has it (< 1 s)
  http GET /v1/records/docs%2Fa -H "$(bearer "$STREAMER")"
  [[ $CODE == 401 ]] && break
  sleep 0.05
done
expect_code 401 "the streamer's token is revoked"
# The stream's parked Watch is checked again when an event comes: make
# some until the stream ends (bounded; the stream's heartbeat is 15 s).
for i in $(seq 1 40); do
  kill -0 "$SSE_PID" 2>/dev/null || break
  http PUT "/v1/records/docs%2Fe$i" -H "$(bearer "$ADMIN")" -H 'If-None-Match: *' \
    --data-binary e
  sleep 0.25
done
wait "$SSE_PID" || SSE_RC=$?
[[ $SSE_RC == 0 ]] ||
  it_fail "a revoked session's event stream ends (curl exit $SSE_RC, 28 = still open at 20 s)"
grep -q 'TOKEN_REVOKED' "$IT_DIR/sse.out" ||
  { OUT=$(cat "$IT_DIR/sse.out"); it_fail "the stream's last comment names TOKEN_REVOKED"; }
if grep -q '"key":"docs/e' "$IT_DIR/sse.out"; then
  OUT=$(cat "$IT_DIR/sse.out")
  it_fail "no event reaches a revoked session"
fi

# --- the failure limiter ----------------------------------------------------

SRC=127.0.0.200
for i in $(seq 1 10); do
  http GET /v1/records/docs%2Fa -H "$(bearer "$UNKNOWN")"
  expect_code 401 "guess $i"
done
http GET /v1/records/docs%2Fa -H "$(bearer "$UNKNOWN")"
expect_code 429 "the 11th refused token from one address"
expect_reason TOO_MANY_AUTH_FAILURES "the 11th refused token"
RA=$(hdr Retry-After)
[[ $RA =~ ^[0-9]+$ ]] && (( RA >= 1 && RA <= 30 )) || hfail "429 Retry-After is '$RA'"
http GET /v1/records/docs%2Fa -H "$(bearer "$WRITER")"
expect_code 429 "even a good token from a blocked address"
http GET /healthz
expect_code 200 "a blocked address still gets what needs no token"
SRC=127.0.0.201
http GET /v1/records/docs%2Fa -H "$(bearer "$WRITER")"
expect_code 200 "another address is not blocked"
# A revoked token is a real token's secret, not a guess: it never blocks
# its address (else a revoked session's retries lock out everyone there).
SRC=127.0.0.202
for i in $(seq 1 11); do
  http GET /v1/records/docs%2Fa -H "$(bearer "$REVOKED")"
  expect_code 401 "revoked $i"
  expect_reason TOKEN_REVOKED "revoked $i"
done
http GET /v1/records/docs%2Fa -H "$(bearer "$WRITER")"
expect_code 200 "11 revoked-token requests do not block their address"
SRC=127.0.0.1

# --- the standalone gateway -------------------------------------------------

# datasync-gateway over the daemon's ipc:// listener: the same code, so
# the same answers (a short pass: 401, 403, 200, the cookie).
GW_PID=
if [[ -n ${DATASYNC_GATEWAY:-} ]]; then
  for _ in 1 2 3; do
    GW_PORT=$(it_free_port)
    "$DATASYNC_GATEWAY" --upstream "$IT_IPC" --http "127.0.0.1:$GW_PORT" \
      >"$IT_DIR/gateway.log" 2>&1 &
    GW_PID=$!
    for _ in $(seq 1 500); do
      grep -q "listening on" "$IT_DIR/gateway.log" && break
      kill -0 "$GW_PID" 2>/dev/null || break
      sleep 0.02
    done
    grep -q "listening on" "$IT_DIR/gateway.log" && break
    wait "$GW_PID" 2>/dev/null || true
    GW_PID=
  done
  [[ -n $GW_PID ]] || { cat "$IT_DIR/gateway.log" >&2; it_fail "datasync-gateway did not start"; }
  MAIN_HTTP=$IT_HTTP
  IT_HTTP="http://127.0.0.1:$GW_PORT"
  SRC=127.0.0.1
  http GET /v1/records/docs%2Fa
  expect_code 401 "standalone: no token"
  [[ $(hdr WWW-Authenticate) == 'Bearer realm="datasync"' ]] || hfail "standalone: WWW-Authenticate"
  http GET /v1/records/docs%2Fa -H "$(bearer "$REVOKED")"
  expect_code 401 "standalone: revoked"
  expect_reason TOKEN_REVOKED "standalone: revoked"
  http PUT /v1/records/docs%2Fa -H "$(bearer "$READER")" -H 'If-Match: *' --data-binary x
  expect_code 403 "standalone: no write right"
  http GET /v1/records/docs%2Fa -H "$(bearer "$READER")"
  expect_code 200 "standalone: the right token"
  http POST /v1/session -H "Origin: $IT_HTTP" -H 'Content-Type: application/json' \
    --data-binary "{\"token\":\"$READER\"}"
  expect_code 200 "standalone: sign in"
  [[ $(hdr Set-Cookie) == "ds_session=$READER; Path=/; HttpOnly; SameSite=Strict" ]] ||
    hfail "standalone: the cookie '$(hdr Set-Cookie)'"
  http GET '/v1/watch?prefix=docs/&timeout=1' -H "Cookie: ds_session=$READER"
  expect_code 200 "standalone: a watch with the cookie"
  kill -TERM "$GW_PID"
  wait "$GW_PID" || it_fail "datasync-gateway did not stop cleanly"
  grep -qE 'dst_[0-9a-f]{64}' "$IT_DIR/gateway.log" &&
    it_fail "a secret is in the gateway's log"
  IT_HTTP=$MAIN_HTTP
else
  echo "FAIL: DATASYNC_GATEWAY is not set" >&2
  IT_FAILS=$((IT_FAILS + 1))
fi

it_stop || it_fail "datasyncd did not stop cleanly"
grep -qE 'dst_[0-9a-f]{64}' "$IT_DIR/datasyncd.log" &&
  it_fail "a secret is in datasyncd's log"
it_done
