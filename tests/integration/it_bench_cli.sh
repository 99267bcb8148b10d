#!/usr/bin/env bash
# it_bench_cli.sh - `datasync bench ...` runs the load generator, which is
# a program of its own (tools/bench, datasync-bench) found next to the
# datasync executable: --help, a short run against a live datasyncd and a
# SQLite baseline through the CLI; the error naming the path when the
# program is missing; and that the datasync binary itself no longer links
# what only the bench needs (SQLite, libmicrohttpd).
source "$(dirname "$0")/it_lib.sh"
it_start --http off

# bench ARGS...: `datasync bench ARGS...`; sets OUT, ERR and RC.
bench() {
  RC=0
  OUT=$("$DATASYNC" bench "$@" 2>"$IT_DIR/stderr") || RC=$?
  ERR=$(cat "$IT_DIR/stderr")
}

bench --help
expect_rc 0 "bench --help"
[[ $OUT == "usage: datasync bench "* ]] || it_fail "bench --help prints the bench usage"
[[ $OUT == *"--baseline sqlite"* && $OUT == *"--echo-server URL"* ]] ||
  it_fail "bench --help lists the baselines"

bench --op nonsense
expect_rc 2 "an unknown op is a usage error"
expect_err_has "nonsense" "the usage error names the value"

# A short real run through the CLI: ops done, no errors, JSON on stdout.
bench --url "$IT_IPC" --op update --concurrency 4 --keys 20 \
  --duration 1s --warmup 0s --json
expect_rc 0 "bench update run"
[[ $(jq -r .op <<<"$OUT") == update ]] || it_fail "the run reports its op"
[[ $(jq -r '.ops_per_sec > 0 and .errors == 0' <<<"$OUT") == true ]] ||
  it_fail "the run completed updates without errors"
bench --url "$IT_IPC" --op update-hot --concurrency 4 --duration 1s \
  --warmup 0s --json
expect_rc 0 "bench update-hot run (exit 1 if an increment was lost)"
[[ $ERR != *"LOST INCREMENTS"* ]] || it_fail "no increment lost"
[[ $(jq -r '.ops_per_sec > 0' <<<"$OUT") == true ]] || it_fail "update-hot did increments"
[[ $(jq -r '.increments.final == .increments.start + .increments.acknowledged
  and .increments.unknown == 0' <<<"$OUT") == true ]] ||
  it_fail "the JSON result shows final version == start + acknowledged increments"

bench --baseline sqlite --db "$IT_DIR/baseline.db" --keys 20 \
  --duration 1s --warmup 0s --json
expect_rc 0 "sqlite baseline through the CLI"
[[ $(jq -r '.ops_per_sec > 0' <<<"$OUT") == true ]] || it_fail "the baseline did updates"

# The CLI alone, without datasync-bench next to it: a clear error.
mkdir "$IT_DIR/alone"
cp "$DATASYNC" "$IT_DIR/alone/datasync"
RC=0
OUT=$("$IT_DIR/alone/datasync" bench --help 2>"$IT_DIR/stderr") || RC=$?
ERR=$(cat "$IT_DIR/stderr")
expect_rc 1 "bench without datasync-bench fails"
expect_err_has "BENCH_NOT_FOUND" "the error has a reason"
expect_err_has "$IT_DIR/alone/datasync-bench" "the error names the path it looked at"
[[ -z $OUT ]] || it_fail "nothing on stdout when the bench is missing"

# The user-facing binary does not link the bench's baselines.
LIBS=$(ldd "$DATASYNC")
RC=0; OUT=$LIBS; ERR=
[[ $LIBS != *libsqlite3* ]] || it_fail "datasync links SQLite"
[[ $LIBS != *libmicrohttpd* ]] || it_fail "datasync links libmicrohttpd"

it_done
