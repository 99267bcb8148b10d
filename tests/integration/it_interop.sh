#!/usr/bin/env bash
# it_interop.sh - datasync speaks plain protobuf over plain nng: a request
# encoded by Google's `protoc --encode`, sent by `nngcat` (nng-utils), gets
# a reply that `protoc --decode` reads. Nothing here links our code.
source "$(dirname "$0")/it_lib.sh"
PROTO_DIR=${PROTO_DIR:?PROTO_DIR must point at proto/}
command -v protoc >/dev/null || { echo "protoc missing (protobuf-compiler)"; exit 1; }
command -v nngcat >/dev/null || { echo "nngcat missing (nng-utils)"; exit 1; }
it_start --http off

# bytes_literal FILE: the file as a protobuf text-format string literal.
bytes_literal() {
  od -An -v -t o1 "$1" | tr -s ' \n' ' ' | sed -e 's/^ //' -e 's/ $//' \
    -e 's/ /\\/g' -e 's/^/\\/' -e 's/^\\$//'
}

# call METHOD REQUEST_TYPE TEXT REQUEST_ID: encode, envelope, send; the
# reply lands in $IT_DIR/reply.bin and its decoded envelope in $REPLY.
call() {
  local method=$1 type=$2 text=$3 rid=$4
  printf '%s\n' "$text" |
    protoc -I"$PROTO_DIR" --encode="$type" datasync/v1/datasync.proto \
      >"$IT_DIR/body.bin"
  printf 'method: "/datasync.v1.DataSync/%s"\nbody: "%s"\ntimeout_ms: 5000\nrequest_id: "%s"\nclient_name: "protoc+nngcat"\n' \
    "$method" "$(bytes_literal "$IT_DIR/body.bin")" "$rid" |
    protoc -I"$PROTO_DIR" --encode=nrpc.v1.Request nrpc/v1/rpc.proto \
      >"$IT_DIR/req.bin"
  # (--count trips a flaky "Cannot set recv timeout" in nngcat 1.5.2.)
  timeout 10 nngcat --req0 --dial "$IT_IPC" --raw --recv-timeout 5 \
    --file "$IT_DIR/req.bin" >"$IT_DIR/reply.bin"
  REPLY=$(protoc -I"$PROTO_DIR" --decode=nrpc.v1.Response nrpc/v1/rpc.proto \
    <"$IT_DIR/reply.bin")
}

# body_decoded TYPE: decode the reply's body with protoc. The body is
# field 2 of the Response; protoc --decode_raw can't give us the raw bytes,
# so re-encode the Response with only the body and strip its 1-3 byte tag
# and length prefix by decoding as a message that has the body at field 2.
body_decoded() {
  local type=$1
  # A GetResponse/UpdateResponse wrapper: field 2 of nrpc.v1.Response is
  # `bytes body`; reading the same bytes as a message whose field 2 is of
  # the body's type decodes it in one step.
  cat >"$IT_DIR/wrap.proto" <<PROTO
syntax = "proto3";
import "datasync/v1/datasync.proto";
message Wrap { $type body = 2; }
PROTO
  protoc -I"$PROTO_DIR" -I"$IT_DIR" --decode=Wrap wrap.proto <"$IT_DIR/reply.bin"
}

OUT=""; ERR=""; RC=0

# 1. Create a record with if_absent.
call Update datasync.v1.UpdateRequest \
  'key: "interop/k" value: "hello from protoc" content_type: "text/plain" precondition { if_absent: true }' \
  interop-1
[[ $REPLY != *"code:"* ]] || { OUT=$REPLY; it_fail "Update replied with an error status"; }
DEC=$(body_decoded datasync.v1.UpdateResponse)
[[ $DEC == *'key: "interop/k"'* ]] || { OUT=$DEC; it_fail "Update reply names the key"; }
[[ $DEC == *"version: 1"* ]] || { OUT=$DEC; it_fail "Update reply has version 1"; }
[[ $DEC == *'updated_by: "protoc+nngcat"'* ]] || { OUT=$DEC; it_fail "author from client_name"; }

# 2. Read it back the same way.
call Get datasync.v1.GetRequest 'key: "interop/k"' interop-2
DEC=$(body_decoded datasync.v1.GetResponse)
[[ $DEC == *'value: "hello from protoc"'* ]] || { OUT=$DEC; it_fail "Get returns the value"; }

# 3. The same create again (another request id): a conflict status with
#    reason and the current record as detail.
call Update datasync.v1.UpdateRequest \
  'key: "interop/k" value: "again" precondition { if_absent: true }' interop-3
[[ $REPLY == *"code: 10"* ]] || { OUT=$REPLY; it_fail "conflict is ABORTED (10)"; }
[[ $REPLY == *'reason: "VERSION_CONFLICT"'* ]] || { OUT=$REPLY; it_fail "conflict reason"; }
[[ $REPLY == *'detail_type: "datasync.v1.Record"'* ]] || { OUT=$REPLY; it_fail "conflict detail type"; }

# 4. A resend of request 1 (same request id, same bytes) is a replay.
call Update datasync.v1.UpdateRequest \
  'key: "interop/k" value: "hello from protoc" content_type: "text/plain" precondition { if_absent: true }' \
  interop-1
DEC=$(body_decoded datasync.v1.UpdateResponse)
[[ $DEC == *"replayed: true"* ]] || { OUT="$REPLY / $DEC"; it_fail "resend is replayed"; }

# 5. Our own CLI agrees.
ds get interop/k
expect_rc 0 "CLI reads what protoc wrote"; expect_out "hello from protoc" "value via CLI"

it_stop || it_fail "datasyncd exits 0 on SIGTERM"
it_done
