#!/usr/bin/env bash
# writer_cost.sh [BUILD_DIR]: callgrind instructions on the writer per CAS
# Update (store_apply_batch, writes prepared as the RPC handlers do), for
# 100 B, 1 KiB (batches of 64) and 1 MiB (batches of 16) values. Needs
# valgrind and `cmake --build build --target writer_cost`.
set -euo pipefail
B=${1:-build}
BIN=$B/tests/writer_cost
[[ -x $BIN ]] || { echo "writer_cost.sh: build $BIN first" >&2; exit 1; }
T=$(mktemp -d /tmp/writer_cost.XXXXXX)
trap 'rm -rf "$T"' EXIT
ir() {  # ir VALUE_BYTES BATCHES BATCH: Ir inside store_apply_batch
  rm -f "$T"/db* "$T/cg.out"
  valgrind --tool=callgrind --toggle-collect=store_apply_batch \
    --callgrind-out-file="$T/cg.out" "$BIN" "$T/db" "$@" >/dev/null 2>"$T/vg.err" ||
    { cat "$T/vg.err" >&2; exit 1; }
  awk '/^(summary|totals):/ {print $2; exit}' "$T/cg.out"
}
for spec in "100 10 64" "1024 10 64" "1048576 4 16"; do
  read -r vb n bs <<<"$spec"
  base=$(ir "$vb" 0 "$bs"); all=$(ir "$vb" "$n" "$bs")
  echo "value $vb B: $(( (all - base) / (n * bs) )) instructions per Update on the writer"
done
