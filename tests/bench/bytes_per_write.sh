#!/usr/bin/env bash
# bytes_per_write.sh - bytes datasyncd writes per lock cycle (lock, write
# with the token, unlock) and per plain update of a 1 MiB value (issue 10:
# <= 3 MiB per lock cycle).
#
#   tests/bench/bytes_per_write.sh [N]     (N cycles of each, default 20)
#
# It starts datasyncd on a temporary database (--durability full,
# --http off), writes the key once, then reads `wchar` (bytes passed to
# write(2)/pwrite(2), WAL and checkpoints included) from /proc/PID/io
# before and after N cycles driven by the CLI, so the CLI's own writes
# are not counted. wchar also counts what datasyncd writes to its log and
# sockets; the value itself goes into the WAL once and into the database
# file once more when the checkpointer copies it. Environment: BUILD_DIR
# (default build/).
#
# Measured (2 shared cores, ext4, N=50): main at 0175b77 (schema 3)
# 8.49 MiB per lock cycle, 3.36 MiB per update; schema 4 2.03 and 2.12.
set -euo pipefail
n=${1:-20}
build=${BUILD_DIR:-build}
tmp=$(mktemp -d)
pid=
cleanup() { [[ -n $pid ]] && kill "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
url="ipc://$tmp/ds.sock"
head -c $((1024 * 1024)) /dev/urandom >"$tmp/value"
"$build/datasyncd" --listen "$url" --http off --db "$tmp/ds.db" \
  --durability full --quiet >"$tmp/log" 2>&1 &
pid=$!
for _ in $(seq 200); do [[ -S $tmp/ds.sock ]] && break; sleep 0.05; done
cli() { "$build/datasync" --url "$url" "$@"; }
wchar() { awk '/^wchar:/ { print $2 }' "/proc/$pid/io"; }

cli put k --force <"$tmp/value" >/dev/null
# A few rounds first, so the WAL and the free pages reach steady state.
for _ in 1 2 3; do cli put k --force <"$tmp/value" >/dev/null; done

w0=$(wchar)
for _ in $(seq "$n"); do
  tok=$(cli lock k --owner bench --ttl 30s)
  cli put k --force --lock-token "$tok" <"$tmp/value" >/dev/null
  cli unlock k --lock-token "$tok" >/dev/null
done
w1=$(wchar)
for _ in $(seq "$n"); do
  cli put k --force <"$tmp/value" >/dev/null
done
w2=$(wchar)
awk -v a="$w0" -v b="$w1" -v c="$w2" -v n="$n" 'BEGIN {
  mib = 1024 * 1024
  printf "lock cycle (1 MiB value): %.2f MiB written per cycle (%d cycles)\n", (b - a) / n / mib, n
  printf "update     (1 MiB value): %.2f MiB written per update (%d updates)\n", (c - b) / n / mib, n
}'
