#!/usr/bin/env bash
# it_http.sh - the HTTP + JSON gateway against a live datasyncd, with curl:
# every route and status of DESIGN §6 (service/gateway/README.md), ETags and
# preconditions, locks, CORS, static files and traversal, limits, /rpc/ for
# every method, /metrics, and a clean shutdown.
source "$(dirname "$0")/it_lib.sh"

WEB="$IT_DIR/web"
mkdir -p "$WEB/docs"
printf '<!doctype html><h1>demo</h1>\n' >"$WEB/index.html"
printf 'docs\n' >"$WEB/docs/index.html"
printf 'export const x = 1;\n' >"$WEB/datasync.js"
printf 'body{}\n' >"$WEB/site.css"
printf 'secret\n' >"$IT_DIR/secret.txt"
ln -s "$IT_DIR/secret.txt" "$WEB/leak.txt"

it_start_http --web-root "$WEB" --cors-origin https://app.example --history 3

# --- helpers ----------------------------------------------------------------

# http METHOD PATH [curl args...]: sets CODE and BODY; headers in $IT_DIR/h.
http() {
  local m=$1 p=$2
  shift 2
  local how=(-X "$m")
  [[ $m == HEAD ]] && how=(--head)
  rm -f "$IT_DIR/body" "$IT_DIR/h" # curl writes no file for an empty body
  CODE=$(curl -sS --path-as-is -o "$IT_DIR/body" -D "$IT_DIR/h" \
    -w '%{http_code}' "${how[@]}" "$@" "$IT_HTTP$p" 2>"$IT_DIR/curl.err") || true
  BODY=$(cat "$IT_DIR/body" 2>/dev/null || true)
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
expect_hdr() {  # expect_hdr NAME VALUE description
  local v; v=$(hdr "$1")
  [[ $v == "$2" ]] || hfail "$3: expected $1: '$2', got '$v'"
}
expect_no_hdr() {  # expect_no_hdr NAME description
  [[ -z $(hdr "$1") ]] || hfail "$2: expected no $1 header"
}
expect_body() {  # expect_body TEXT description
  [[ $BODY == "$1" ]] || hfail "$2: expected body '$1'"
}
expect_body_has() {  # expect_body_has TEXT description
  [[ $BODY == *"$1"* ]] || hfail "$2: expected the body to contain '$1'"
}
expect_json() {  # expect_json JQ-EXPR VALUE description
  local v; v=$(printf '%s' "$BODY" | jq -r "$1" 2>/dev/null || echo "(not JSON)")
  [[ $v == "$2" ]] || hfail "$3: expected $1 == '$2', got '$v'"
}
JSON='Content-Type: application/json'
expect_error() {  # expect_error STATUS CODE REASON description
  expect_code "$1" "$4"
  expect_hdr Content-Type application/json "$4 (content type)"
  expect_json .code "$2" "$4 (code)"
  expect_json .reason "$3" "$4 (reason)"
}

R=/v1/records

# --- liveness and static files -------------------------------------------

http GET /healthz
expect_code 200 "healthz"; expect_body "ok" "healthz body"

http GET /
expect_code 200 "index"; expect_body_has "<h1>demo</h1>" "index body"
expect_hdr Content-Type "text/html; charset=utf-8" "index content type"
http GET /site.css
expect_hdr Content-Type "text/css; charset=utf-8" "css content type"
http GET /datasync.js
expect_code 200 "datasync.js"
expect_hdr Content-Type "text/javascript; charset=utf-8" "js content type"
http GET /docs/
expect_code 200 "directory index"; expect_body "docs" "directory index body"
http HEAD /index.html
expect_code 200 "HEAD static"
expect_hdr Content-Type "text/html; charset=utf-8" "HEAD static content type"
http GET /missing.html
expect_code 404 "missing file"
http GET /../secret.txt
expect_code 400 "traversal with .."
http GET /%2e%2e/secret.txt
expect_code 400 "traversal with %2e%2e"
http GET /..%2fsecret.txt
expect_code 400 "traversal with ..%2f"
http GET '/a\..\secret.txt'
expect_code 400 "traversal with backslashes"
http GET /index.html%00.png
expect_code 400 "NUL in a path"
http GET /leak.txt
expect_code 404 "a symlink out of the web root"
[[ $BODY != *secret* ]] || hfail "the secret leaked"
http GET /.hidden
expect_code 404 "dotfiles are never served"
http PUT /index.html --data-binary x
expect_code 405 "PUT on a static file"; expect_hdr Allow "GET, HEAD, OPTIONS" "static Allow"

# --- create, read, ETags ----------------------------------------------------

http PUT $R/doc --data-binary v1
expect_error 428 FAILED_PRECONDITION PRECONDITION_REQUIRED "PUT without a precondition"

http PUT $R/doc -H 'If-None-Match: *' -H 'Content-Type: text/plain' \
  -H 'Author: J%C3%BCrgen' --data-binary 'hello'
expect_code 201 "create"
expect_hdr ETag '"1"' "create ETag"
expect_json .key doc "create body key"
expect_json .version 1 "create body version (a string)"
expect_json .contentType text/plain "create body content type"
expect_json .value null "the write's answer omits the value"
expect_hdr Record-Updated-By 'J%C3%BCrgen' "Author is stored, percent-encoded back"

http PUT $R/doc -H 'If-None-Match: *' --data-binary 'again'
expect_error 412 ABORTED VERSION_CONFLICT "create over an existing record"
expect_hdr ETag '"1"' "412 carries the current ETag"
expect_json .current.version 1 "412 carries the current record"
expect_json .current.value aGVsbG8= "412 current value in base64"

http GET $R/doc
expect_code 200 "get"; expect_body hello "get body is the raw value"
expect_hdr Content-Type text/plain "get content type"
expect_hdr ETag '"1"' "get ETag"
expect_hdr Cache-Control no-cache "get Cache-Control"
[[ -n $(hdr Record-Revision) ]] || hfail "Record-Revision"
[[ $(hdr Record-Updated-At) =~ ^[0-9]{13}$ ]] || hfail "Record-Updated-At in ms"
[[ $(hdr Record-Created-At) =~ ^[0-9]{13}$ ]] || hfail "Record-Created-At in ms"
expect_no_hdr Lock-Owner "an unlocked record has no Lock-Owner"

http HEAD $R/doc
expect_code 200 "HEAD record"
expect_hdr ETag '"1"' "HEAD ETag"; expect_hdr Content-Length 5 "HEAD Content-Length"
expect_hdr Record-Updated-By 'J%C3%BCrgen' "HEAD has the GET's headers"
# curl cannot show that nothing follows a HEAD's headers; a raw socket can.
exec 3<>"/dev/tcp/127.0.0.1/$IT_HTTP_PORT"
printf 'HEAD %s/doc HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$R" >&3
RAW=$(cat <&3 | tr -d '\r'); exec 3<&-
[[ $RAW == *$'ETag: "1"'* && $RAW != *hello* ]] \
  || { BODY=$RAW; hfail "HEAD sends headers and no body"; }

for inm in '"1"' 'W/"1"' '"0", "1"' '*'; do
  http GET $R/doc -H "If-None-Match: $inm"
  expect_code 304 "If-None-Match $inm"; expect_hdr ETag '"1"' "304 ETag ($inm)"
  expect_body "" "304 has no body"
done
http GET $R/doc -H 'If-None-Match: "0"'
expect_code 200 "If-None-Match miss"

http PUT $R/doc -H 'If-Match: "1"' --data-binary 'hello, world'
expect_code 200 "update v1"; expect_hdr ETag '"2"' "update ETag"
http PUT $R/doc -H 'If-Match: "1"' --data-binary 'stale'
expect_error 412 ABORTED VERSION_CONFLICT "stale If-Match"
expect_hdr ETag '"2"' "stale 412 ETag"
expect_json .current.version 2 "stale 412 current version"
expect_json .current.value "$(printf 'hello, world' | base64)" "stale 412 current value"
http PUT $R/doc -H 'If-Match: *' --data-binary 'three'
expect_code 200 "If-Match *"; expect_hdr ETag '"3"' "If-Match * ETag"
http PUT $R/doc -H 'If-Match: "1", "3"' --data-binary 'four'
expect_code 200 "If-Match list"; expect_hdr ETag '"4"' "If-Match list ETag"
http PUT $R/doc -H 'If-Match: "1", "2"' --data-binary 'x'
expect_error 412 ABORTED VERSION_CONFLICT "If-Match list without the current"
expect_hdr ETag '"4"' "list 412 ETag"
http PUT $R/doc -H 'If-Match: W/"4"' --data-binary 'x'
expect_error 412 ABORTED VERSION_CONFLICT "a weak ETag never matches If-Match"
http PUT $R/nothing -H 'If-Match: *' --data-binary 'x'
expect_error 412 ABORTED VERSION_CONFLICT "If-Match * on a missing record"
http PUT $R/doc -H 'If-Match: 4' --data-binary 'x'
expect_error 400 INVALID_ARGUMENT INVALID_ARGUMENT "an unquoted ETag"

# history (--history 3 keeps versions 2..4 of doc)
http GET "$R/doc?version=2"
expect_code 200 "a historical version"; expect_body "hello, world" "version 2 body"
expect_hdr ETag '"2"' "historical ETag"
http GET "$R/doc?version=1"
expect_error 410 OUT_OF_RANGE VERSION_COMPACTED "a compacted version"
http GET $R/nothing
expect_error 404 NOT_FOUND NOT_FOUND "a missing record"

# retries: the same Idempotency-Key is the same write, not a conflict
http PUT $R/idem -H 'If-None-Match: *' -H 'Idempotency-Key: k-1' --data-binary a
expect_code 201 "idempotent create"
http PUT $R/idem -H 'If-None-Match: *' -H 'Idempotency-Key: k-1' --data-binary a
expect_code 201 "the retried create is replayed"; expect_hdr ETag '"1"' "replay ETag"
http PUT $R/idem -H 'If-Match: "1"' -H 'Idempotency-Key: k-1' --data-binary b
expect_error 422 INVALID_ARGUMENT REQUEST_ID_REUSED "a key reused for another write"
# An If-Match list with a key: one Update whose precondition is the set
# (checked in the store), so the retry replays. It used to read the
# version first and CAS against it: the retry read 2, hashed differently
# and got 422 (or 412).
http PUT $R/idem-list -H 'If-None-Match: *' --data-binary v1
expect_code 201 "create for the If-Match list retry"
http PUT $R/idem-list -H 'If-Match: "1", "2"' -H 'Idempotency-Key: k-list' --data-binary v2
expect_code 200 "If-Match list with Idempotency-Key"; expect_hdr ETag '"2"' "If-Match list ETag"
http PUT $R/idem-list -H 'If-Match: "1", "2"' -H 'Idempotency-Key: k-list' --data-binary v2
expect_code 200 "the retried If-Match list write is replayed"
expect_hdr ETag '"2"' "the replay has the first answer's ETag"
http GET $R/idem-list
expect_hdr ETag '"2"' "the retry wrote nothing"

# --- locks ------------------------------------------------------------------

http POST $R/doc/lock -H "$JSON" --data '{"owner": "alice", "ttlMs": 30000}'
expect_code 200 "lock"
TOKEN=$(hdr Lock-Token)
[[ $TOKEN =~ ^[0-9a-f]{32}$ ]] || hfail "Lock-Token is 32 hex digits, got '$TOKEN'"
expect_json .lockToken "$TOKEN" "the body has the same token"
expect_json .lock.owner alice "lock body owner"
expect_hdr Lock-Owner alice "lock Lock-Owner"
expect_hdr Cache-Control no-store "a token is never cached"
FENCE=$(hdr Lock-Fencing-Token)

http POST $R/doc/lock -H "$JSON" --data '{"owner": "bob"}'
expect_error 423 FAILED_PRECONDITION LOCKED "a second locker"
expect_hdr Lock-Owner alice "423 names the holder"
[[ $(hdr Lock-Expires-At) =~ ^[0-9]{13}$ ]] || hfail "423 Lock-Expires-At"
RA=$(hdr Retry-After)
[[ $RA =~ ^[0-9]+$ ]] && (( RA >= 1 && RA <= 30 )) || hfail "423 Retry-After 1..30, got '$RA'"
expect_json .current.lock.owner alice "423 current.lock"

http PUT $R/doc -H 'If-Match: "4"' --data-binary 'sneaky'
expect_error 423 FAILED_PRECONDITION LOCKED "a write without the token"
expect_hdr Lock-Owner alice "locked write names the holder"
[[ -n $(hdr Retry-After) ]] || hfail "locked write Retry-After"

http GET $R/doc
expect_code 200 "reads are never blocked"
expect_hdr Lock-Owner alice "GET Lock-Owner"
expect_hdr Lock-Fencing-Token "$FENCE" "GET Lock-Fencing-Token"
[[ $(hdr Lock-Expires-At) =~ ^[0-9]{13}$ ]] || hfail "GET Lock-Expires-At"

http PUT $R/doc -H 'If-Match: "4"' -H "Lock-Token: $TOKEN" --data-binary 'mine'
expect_code 200 "the holder writes"; expect_hdr ETag '"5"' "holder write ETag"

http POST $R/doc/lock -H "$JSON" -H "Lock-Token: $TOKEN" --data '{"owner": "alice"}'
expect_code 200 "renew"; expect_json .renewed true "renewed"
expect_hdr Lock-Token "$TOKEN" "renewal keeps the token"

http DELETE $R/doc/lock -H 'Lock-Token: 0123456789abcdef0123456789abcdef'
expect_error 403 PERMISSION_DENIED LOCK_TOKEN_MISMATCH "unlock with a wrong token"
http DELETE $R/doc/lock
expect_error 400 INVALID_ARGUMENT INVALID_ARGUMENT "unlock without a token"
http DELETE $R/doc/lock -H "Lock-Token: $TOKEN"
expect_code 204 "unlock with the header"
http DELETE $R/doc/lock -H "Lock-Token: $TOKEN"
expect_error 409 FAILED_PRECONDITION NOT_LOCKED "unlock twice"

http POST $R/doc/lock -H "$JSON" --data '{"owner": "carol"}'
TOKEN=$(hdr Lock-Token)
http DELETE $R/doc/lock -H "$JSON" --data "{\"lockToken\": \"$TOKEN\"}"
expect_code 204 "unlock with the token in the body"
http POST $R/doc/lock -H "$JSON" --data '{"owner": "dave"}'
TOKEN=$(hdr Lock-Token)
# navigator.sendBeacon: POST, text/plain, no custom headers
http POST $R/doc/unlock -H 'Content-Type: text/plain;charset=UTF-8' \
  --data "{\"lockToken\": \"$TOKEN\"}"
expect_code 204 "unlock by POST .../unlock (sendBeacon)"
http GET $R/doc
expect_no_hdr Lock-Owner "unlocked again"
http POST $R/doc/lock -H "$JSON" --data '{"owner": '
expect_error 400 INVALID_ARGUMENT MALFORMED_JSON "a malformed lock body"
http POST $R/doc/lock -H "$JSON" --data '{"ownr": "x"}'
expect_error 400 INVALID_ARGUMENT UNKNOWN_FIELD "an unknown field in a lock body"
expect_json .field ownr "the unknown field is named"

# --- delete -----------------------------------------------------------------

http DELETE $R/doc
expect_error 428 FAILED_PRECONDITION PRECONDITION_REQUIRED "DELETE without a precondition"
http DELETE $R/doc -H 'If-Match: "4"'
expect_error 412 ABORTED VERSION_CONFLICT "a stale DELETE"
http DELETE $R/doc -H 'If-Match: "5"'
expect_code 204 "delete"; expect_hdr ETag '"6"' "the tombstone's ETag"
http GET $R/doc
expect_error 404 NOT_FOUND NOT_FOUND "a deleted record"
http PUT $R/doc -H 'If-None-Match: *' --data-binary 'reborn'
expect_code 201 "re-create"; expect_hdr ETag '"7"' "versions are never reused"

# --- keys in paths ----------------------------------------------------------

http PUT "$R/dir/sub%2Fname%20x" -H 'If-None-Match: *' --data-binary s
expect_code 201 "a key with an encoded slash and space"
expect_json .key "dir/sub/name x" "the key is decoded"
http GET "$R/dir/sub/name%20x"
expect_code 200 "the same key with a literal slash"; expect_body s "same record"
http PUT "$R/k%2Flock" -H 'If-None-Match: *' --data-binary l
expect_code 201 "a key ending in /lock, slash encoded"
http GET "$R/k%2Flock"
expect_code 200 "read it back"; expect_body l "its value"
http GET "$R/k/lock"
expect_code 405 "a literal /lock is the lock route"
expect_hdr Allow "POST, DELETE, OPTIONS" "lock route Allow"
for bad in 'a%zz' 'a%00b' '%FF' 'a%2'; do
  http GET "$R/$bad"
  expect_error 400 INVALID_ARGUMENT INVALID_ENCODING "bad encoding $bad"
done
http POST $R/doc --data x
expect_error 405 UNIMPLEMENTED METHOD_NOT_ALLOWED "POST on a record"
expect_hdr Allow "GET, HEAD, PUT, DELETE, OPTIONS" "record Allow"
http PATCH $R
expect_code 405 "PATCH on the list"; expect_hdr Allow "GET, HEAD, OPTIONS" "list Allow"
http GET /v1/nothing
expect_error 404 NOT_FOUND NOT_FOUND "an unknown API route"

# --- list -------------------------------------------------------------------

for k in a b c; do
  http PUT "$R/list/$k" -H 'If-None-Match: *' --data-binary "$k"
done
http GET "$R?prefix=list/&pageSize=2"
expect_code 200 "list page 1"
expect_json '.records | map(.key) | join(",")' "list/a,list/b" "page 1 keys"
NEXT=$(printf '%s' "$BODY" | jq -r .nextPageToken)
[[ -n $NEXT && $NEXT != null ]] || hfail "page 1 has a nextPageToken"
http GET "$R?prefix=list/&pageSize=2&pageToken=$(jq -rn --arg t "$NEXT" '$t|@uri')"
expect_json '.records | map(.key) | join(",")' "list/c" "page 2 keys"
expect_json .nextPageToken null "the last page has no token"
http GET "$R?pageSize=x"
expect_error 400 INVALID_ARGUMENT INVALID_ARGUMENT "a bad pageSize"

# --- limits -----------------------------------------------------------------

head -c 1048576 /dev/zero | tr '\0' v >"$IT_DIR/1m"
printf 'x' >>"$IT_DIR/1m.plus"; cat "$IT_DIR/1m" "$IT_DIR/1m.plus" >"$IT_DIR/1m1"
http PUT $R/big -H 'If-None-Match: *' -H 'Expect:' --data-binary @"$IT_DIR/1m"
expect_code 201 "a value of max_value_bytes"
http PUT $R/big -H 'If-Match: *' -H 'Expect:' --data-binary @"$IT_DIR/1m1"
expect_error 413 INVALID_ARGUMENT TOO_LARGE "max_value_bytes + 1"
head -c 2097152 /dev/zero >"$IT_DIR/2m"
http PUT $R/big -H 'If-Match: *' --data-binary @"$IT_DIR/2m"
expect_error 413 INVALID_ARGUMENT TOO_LARGE "a 2 MiB body"
expect_body_has "max_value_bytes (1048576)" "413 names the limit"
http GET /healthz
expect_code 200 "healthy after 413"
http GET $R/big
expect_code 200 "the big value is intact"
[[ ${#BODY} -eq 1048576 ]] || hfail "big value length ${#BODY}"
http PUT $R/big -H 'If-Match: *' -H 'Transfer-Encoding: chunked' --data-binary x
expect_code 411 "chunked bodies need a length"

# --- CORS -------------------------------------------------------------------

http OPTIONS $R/doc -H 'Origin: https://app.example' \
  -H 'Access-Control-Request-Method: PUT' \
  -H 'Access-Control-Request-Headers: if-match, content-type'
expect_code 204 "preflight from an allowed origin"
expect_hdr Access-Control-Allow-Origin https://app.example "preflight ACAO"
expect_hdr Access-Control-Allow-Methods "GET, HEAD, PUT, DELETE, OPTIONS" "preflight methods"
expect_hdr Access-Control-Allow-Headers \
  "Content-Type, If-Match, If-None-Match, Lock-Token, Idempotency-Key, Author, Last-Event-ID, Authorization" \
  "preflight headers"
expect_hdr Access-Control-Max-Age 600 "preflight max age"
http OPTIONS $R/doc -H 'Origin: https://evil.example' \
  -H 'Access-Control-Request-Method: PUT'
expect_error 403 PERMISSION_DENIED CORS_ORIGIN_DENIED "preflight from another origin"
expect_no_hdr Access-Control-Allow-Origin "denied preflight has no ACAO"
http GET $R/doc -H 'Origin: https://app.example'
expect_hdr Access-Control-Allow-Origin https://app.example "actual request ACAO"
expect_hdr Vary Origin "Vary: Origin"
[[ $(hdr Access-Control-Expose-Headers) == *"ETag, Lock-Token"*"Retry-After, WWW-Authenticate" ]] \
  || hfail "Expose-Headers lists ETag .. Retry-After"
http GET $R/doc -H 'Origin: https://evil.example'
expect_code 200 "a denied origin is still served"
expect_no_hdr Access-Control-Allow-Origin "but without CORS headers"
http OPTIONS $R/doc
expect_code 204 "plain OPTIONS"; expect_hdr Allow "GET, HEAD, PUT, DELETE, OPTIONS" "OPTIONS Allow"

S=/rpc/datasync.v1.DataSync; S_RPC=$S
# --- Host, Origin and Content-Type (DESIGN §11) -----------------------------

EVIL='Origin: https://evil.example'
http PUT $R/guard -H 'If-None-Match: *' --data-binary 'g1'
expect_code 201 "guard record"
# What a page on another site can send without a preflight:
http POST $R/guard/lock -H "$EVIL" -H 'Content-Type: text/plain' \
  --data '{"owner": "mallory", "ttlMs": 3600000}'
expect_error 403 PERMISSION_DENIED ORIGIN_NOT_ALLOWED "cross-origin lock"
expect_json .field Origin "the refusal names Origin"
http POST $S_RPC/Update -H "$EVIL" -H 'Content-Type: text/plain' \
  --data '{"key":"guard","value":"","precondition":{"unconditional":true}}'
expect_error 403 PERMISSION_DENIED ORIGIN_NOT_ALLOWED "cross-origin rpc Update"
http POST $S_RPC/Delete -H "$EVIL" -H 'Content-Type: application/x-www-form-urlencoded' \
  --data 'a=b'
expect_error 403 PERMISSION_DENIED ORIGIN_NOT_ALLOWED "cross-origin form post"
http PUT $R/guard -H "$EVIL" -H 'If-Match: *' --data-binary 'evil'
expect_error 403 PERMISSION_DENIED ORIGIN_NOT_ALLOWED "cross-origin PUT"
http DELETE $R/guard -H 'Origin: null' -H 'If-Match: *'
expect_error 403 PERMISSION_DENIED ORIGIN_NOT_ALLOWED "an opaque (null) origin"
http POST $R/guard/unlock -H "$EVIL" -H 'Content-Type: text/plain' \
  --data '{"lockToken": "x"}'
expect_error 403 PERMISSION_DENIED ORIGIN_NOT_ALLOWED "cross-origin beacon unlock"
http GET $R/guard
expect_code 200 "the guard record is still there"
expect_hdr ETag '"1"' "cross-origin writes changed nothing"
expect_body g1 "cross-origin writes left the value"
expect_no_hdr Lock-Owner "cross-origin lock took nothing"
# Without Origin (curl, services): JSON bodies must say so.
http POST $R/guard/lock -H 'Content-Type: text/plain' --data '{"owner": "x"}'
expect_error 415 INVALID_ARGUMENT UNSUPPORTED_MEDIA_TYPE "text/plain lock body"
expect_json .field Content-Type "415 names Content-Type"
http POST $S_RPC/Get --data '{"key":"guard"}'
expect_error 415 INVALID_ARGUMENT UNSUPPORTED_MEDIA_TYPE "form-encoded rpc body"
http POST $S_RPC/Get -H 'Content-Type: application/json; charset=utf-8' --data '{"key":"guard"}'
expect_code 200 "application/json with a charset"
# Same-origin and configured origins may write.
http PUT $R/guard -H "Origin: $IT_HTTP" -H 'If-Match: "1"' --data-binary 'g2'
expect_code 200 "same-origin PUT"
http PUT $R/guard -H 'Origin: https://app.example' -H 'If-Match: "2"' --data-binary 'g3'
expect_code 200 "PUT from a --cors-origin"
# DNS rebinding: a name that is not ours.
http GET $R/guard -H 'Host: evil.example'
expect_error 421 PERMISSION_DENIED HOST_NOT_ALLOWED "a rebound Host"
expect_json .field Host "421 names Host"
http PUT $R/guard -H "Host: evil.example:$IT_HTTP_PORT" -H "Origin: http://evil.example:$IT_HTTP_PORT" \
  -H 'If-Match: *' --data-binary 'rebound'
expect_error 421 PERMISSION_DENIED HOST_NOT_ALLOWED "a rebound same-origin write"
http GET $R/guard -H "Host: localhost:$IT_HTTP_PORT"
expect_code 200 "Host: localhost"; expect_body g3 "nothing was rebound"
http GET $R/guard -H "Host: [::1]:$IT_HTTP_PORT"
expect_code 200 "Host: [::1]"

# --- /rpc/ ------------------------------------------------------------------

http POST $S/Update -H "$JSON" --data '{"key":"rpc","value":"aGk=","contentType":"text/plain","precondition":{"ifAbsent":true}}'
expect_code 200 "rpc Update"; expect_json .record.version 1 "rpc Update version"
expect_json .record.value null "rpc Update's reply has no value by default"
http POST $S/Update -H "$JSON" --data '{"key":"rpc-rv","value":"aGk=","precondition":{"ifAbsent":true},"returnValue":true}'
expect_code 200 "rpc Update with returnValue"
expect_json .record.value aGk= "rpc Update with returnValue echoes the value"
http POST $S/Get -H "$JSON" --data '{"key":"rpc"}'
expect_code 200 "rpc Get"; expect_json .record.value aGk= "rpc Get value (base64)"
http POST $S/Update -H "$JSON" --data '{"key":"rpc","value":"eA==","precondition":{"ifVersion":"9"}}'
expect_error 409 ABORTED VERSION_CONFLICT "rpc conflict is 409"
expect_json .current.version 1 "rpc conflict current"
# pbjson is reflective: the set precondition needs no gateway code.
http POST $S/Update -H "$JSON" --data '{"key":"rpc-set","value":"aGk=","precondition":{"ifAbsent":true}}'
expect_code 200 "rpc Update for ifVersionIn"
http POST $S/Update -H "$JSON" --data '{"key":"rpc-set","value":"eA==","precondition":{"ifVersionIn":{"versions":["7","8"]}}}'
expect_error 409 ABORTED VERSION_CONFLICT "rpc ifVersionIn without the current"
http POST $S/Update -H "$JSON" --data '{"key":"rpc-set","value":"aGk=","precondition":{"ifVersionIn":{"versions":["7","1"]}}}'
expect_code 200 "rpc ifVersionIn"; expect_json .record.version 2 "rpc ifVersionIn version"
http POST $S/Update -H "$JSON" --data '{"key":"rpc-set","value":"aGk=","precondition":{"ifVersionIn":{"versions":[]}}}'
expect_error 400 INVALID_ARGUMENT INVALID_ARGUMENT "rpc empty ifVersionIn"
expect_json .field precondition.if_version_in "rpc empty ifVersionIn names the field"
http POST $S/Lock -H "$JSON" --data '{"key":"rpc","owner":"erin","ttlMs":"5000"}'
expect_code 200 "rpc Lock"; RTOK=$(printf '%s' "$BODY" | jq -r .lockToken)
http POST $S/Lock -H "$JSON" --data '{"key":"rpc","owner":"frank"}'
expect_error 423 FAILED_PRECONDITION LOCKED "rpc Lock held"
http POST $S/Unlock -H "$JSON" --data "{\"key\":\"rpc\",\"lock_token\":\"$RTOK\"}"
expect_code 200 "rpc Unlock (original field names)"
http POST $S/Delete -H "$JSON" --data '{"key":"rpc","precondition":{"ifVersion":"1"}}'
expect_code 200 "rpc Delete"; expect_json .version 2 "rpc Delete tombstone"
http POST $S/List -H "$JSON" --data '{"prefix":"list/","pageSize":10}'
expect_code 200 "rpc List"; expect_json '.records | length' 3 "rpc List count"
http POST $S/List
expect_code 200 "rpc with an empty body"
http POST $S/Get -H "$JSON" --data '{"key" "x"}'
expect_error 400 INVALID_ARGUMENT MALFORMED_JSON "rpc malformed JSON"
expect_body_has "position" "the error names the position"
expect_body_has "column" "the error names the column"
http POST $S/Get -H "$JSON" --data '{"key":"x","bogus":1}'
expect_error 400 INVALID_ARGUMENT UNKNOWN_FIELD "rpc unknown field"
expect_json .field bogus "the unknown field is named"
http POST $S/Frobnicate -H "$JSON" --data '{}'
expect_error 404 UNIMPLEMENTED UNKNOWN_METHOD "rpc unknown method"
http GET $S/Get
expect_code 405 "rpc GET"; expect_hdr Allow "POST, OPTIONS" "rpc Allow"

# --- concurrency: many clients at once, every answer well-formed ------------

http PUT $R/counter -H 'If-None-Match: *' --data-binary 0
pids=()
for i in $(seq 1 40); do
  curl -s -o /dev/null -w '%{http_code}\n' -X PUT -H 'If-Match: *' \
    --data-binary "$i" "$IT_HTTP$R/counter" >>"$IT_DIR/codes" &
  pids+=($!)
done
wait "${pids[@]}" # not a bare wait: datasyncd is a child too
[[ $(sort -u "$IT_DIR/codes" | tr '\n' ' ') == "200 " ]] \
  || { BODY=$(sort "$IT_DIR/codes" | uniq -c); hfail "40 parallel PUTs are all 200"; }
http GET $R/counter
expect_hdr ETag '"41"' "40 writes after the create"

# --- metrics ----------------------------------------------------------------

http GET /metrics
expect_code 200 "metrics"
[[ $(hdr Content-Type) == "text/plain; version=0.0.4"* ]] || hfail "metrics content type"
metric() { printf '%s\n' "$BODY" | awk -v m="$1" '$1 == m { print $2 }'; }
v=$(metric 'datasync_gateway_requests_total{route="record",method="PUT",code="201"}')
(( ${v:-0} >= 5 )) || hfail "PUT 201s are counted (got '$v')"
v=$(metric 'datasync_gateway_requests_total{route="healthz",method="GET",code="200"}')
(( ${v:-0} >= 2 )) || hfail "healthz is counted (got '$v')"
(( $(metric datasync_gateway_conflicts_total) >= 5 )) || hfail "conflicts counted"
(( $(metric datasync_gateway_lock_acquisitions_total) >= 4 )) || hfail "locks counted"
(( $(metric datasync_gateway_lock_renewals_total) >= 1 )) || hfail "renewals counted"
(( $(metric datasync_gateway_lock_refusals_total) >= 3 )) || hfail "lock refusals counted"
[[ $(metric datasync_gateway_requests_in_flight) == 1 ]] || hfail "in flight: this request only"
expect_body_has 'datasync_gateway_request_duration_seconds_bucket{route="record",le="+Inf"}' \
  "latency histogram"

# --- startup errors ---------------------------------------------------------

RC=0
"$DATASYNCD" --db "$IT_DIR/other.db" --listen "ipc://$IT_DIR/other.sock" \
  --http "127.0.0.1:$IT_HTTP_PORT" >"$IT_DIR/other.log" 2>&1 || RC=$?
OUT=$(cat "$IT_DIR/other.log"); ERR=
[[ $RC -eq 1 && $OUT == *"cannot listen on http://127.0.0.1:$IT_HTTP_PORT"* ]] \
  || it_fail "an HTTP port in use: exit 1 with the address"
RC=0
"$DATASYNCD" --db "$IT_DIR/other.db" --listen "ipc://$IT_DIR/other.sock" \
  --http 127.0.0.1:0 --web-root "$IT_DIR/nowhere" >"$IT_DIR/other.log" 2>&1 || RC=$?
OUT=$(cat "$IT_DIR/other.log")
[[ $RC -eq 1 && $OUT == *web_root* ]] || it_fail "a missing --web-root: exit 1 naming it"

# --- the standalone gateway, in front of the same datasyncd ------------------

GW_BIN="$(dirname "$DATASYNCD")/datasync-gateway"
if [[ -x $GW_BIN ]]; then
  RC=0; OUT=$("$GW_BIN" --help) || RC=$?
  [[ $RC -eq 0 && $OUT == *--upstream* ]] || it_fail "datasync-gateway --help"
  RC=0; "$GW_BIN" >/dev/null 2>&1 || RC=$?
  [[ $RC -eq 2 ]] || it_fail "datasync-gateway without --upstream: exit 2"
  GPORT=$(it_free_port)
  "$GW_BIN" --upstream "$IT_IPC" --upstream "$IT_TCP" --http "127.0.0.1:$GPORT" \
    --web-root "$WEB" >"$IT_DIR/gw.log" 2>&1 &
  GPID=$!
  for _ in $(seq 1 250); do
    grep -q "listening on" "$IT_DIR/gw.log" 2>/dev/null && break
    sleep 0.02
  done
  SAVED=$IT_HTTP; IT_HTTP="http://127.0.0.1:$GPORT"
  http GET $R/doc
  expect_code 200 "standalone gateway GET"; expect_body reborn "standalone body"
  http PUT $R/doc -H 'If-Match: "7"' --data-binary 'via the standalone gateway'
  expect_code 200 "standalone gateway PUT"; expect_hdr ETag '"8"' "standalone ETag"
  http GET /
  expect_code 200 "standalone gateway static"
  IT_HTTP=$SAVED
  http GET $R/doc
  expect_body 'via the standalone gateway' "both gateways see one store"
  kill -INT "$GPID"
  RC=0; wait "$GPID" || RC=$?
  OUT=$(cat "$IT_DIR/gw.log"); ERR=
  [[ $RC -eq 0 ]] || it_fail "datasync-gateway exits 0 on SIGINT"
else
  echo "note: $GW_BIN not built; standalone gateway checks skipped"
fi

it_stop || it_fail "datasyncd exits 0 on SIGTERM"
it_done
