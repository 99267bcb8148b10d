#!/usr/bin/env bash
# run_fuzzer.sh BINARY CORPUS SECONDS: run one libFuzzer harness for
# SECONDS on a scratch copy of CORPUS (the committed corpus only changes by
# hand, with a finding and its regression test). Fails on a crash, leak,
# timeout (10 s per input) or out-of-memory (2 GiB); the failing input is
# kept in build/fuzz/findings/.
set -euo pipefail
bin=$1 corpus=$2 secs=$3
name=$(basename "$bin")
work=$(mktemp -d "/tmp/${name}.XXXXXX")
findings=$(dirname "$bin")/findings
mkdir -p "$findings"
cp -r "$corpus"/. "$work"/
rc=0
"$bin" "$work" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
  -max_len=65536 -print_final_stats=1 -artifact_prefix="$findings/$name-" \
  2>"$work.log" || rc=$?
grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb|Done [0-9]+ runs' \
  "$work.log" | sed "s/^/$name: /" || true
if (( rc != 0 )); then
  echo "$name: FAILED (exit $rc); last lines of its log:" >&2
  tail -40 "$work.log" >&2
fi
rm -rf "$work" "$work.log"
exit $rc
