#!/usr/bin/env bash
# tests/support/mkcerts.sh DIR: make the certificates the TLS tests use,
# at test time (none is committed): in DIR
#   ca.pem ca.key              a test CA
#   other-ca.pem               a CA that signed nothing of ours
#   server.pem server.key      signed by ca, for localhost and 127.0.0.1
#   expired.pem                the same key, signed by ca, already expired
#   client.pem client.key      signed by ca, for client authentication
# ECDSA P-256 keys (fast to make; mbed TLS and GnuTLS both take them).
set -euo pipefail
dir=${1:?usage: mkcerts.sh DIR}
mkdir -p "$dir"
cd "$dir"
ec=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
q() { "$@" >/dev/null 2>&1 || { echo "mkcerts.sh: failed: $*" >&2; "$@"; exit 1; }; }
q openssl req -x509 "${ec[@]}" -keyout ca.key -out ca.pem -days 30 \
  -subj "/CN=datasync test CA" -addext basicConstraints=critical,CA:TRUE \
  -addext keyUsage=critical,keyCertSign,cRLSign
q openssl req -x509 "${ec[@]}" -keyout other-ca.key -out other-ca.pem \
  -days 30 -subj "/CN=another CA" -addext basicConstraints=critical,CA:TRUE \
  -addext keyUsage=critical,keyCertSign,cRLSign
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' \
  >server.ext
printf 'extendedKeyUsage=clientAuth\n' >client.ext
q openssl req "${ec[@]}" -keyout server.key -out server.csr -subj "/CN=localhost"
q openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
  -out server.pem -days 30 -extfile server.ext
# -days -1: valid until a day before it was made, i.e. expired.
q openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
  -out expired.pem -days -1 -extfile server.ext
q openssl req "${ec[@]}" -keyout client.key -out client.csr -subj "/CN=test client"
q openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
  -out client.pem -days 30 -extfile client.ext
rm -f ./*.csr ./*.ext ./*.srl
