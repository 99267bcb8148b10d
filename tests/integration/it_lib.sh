# it_lib.sh - shared by the shell integration tests: start a datasyncd on
# a temporary ipc:// path and free ports, stop it on exit, and assertions
# that say what they expected.
#   source it_lib.sh; it_start [datasyncd flags...]
# Needs DATASYNCD and DATASYNC (paths of the binaries) in the environment.
set -euo pipefail

IT_DIR=$(mktemp -d /tmp/dsit.XXXXXX)
IT_PID=
IT_FAILS=0

it_cleanup() {
  if [[ -n $IT_PID ]] && kill -0 "$IT_PID" 2>/dev/null; then
    kill -TERM "$IT_PID" 2>/dev/null || true
    wait "$IT_PID" 2>/dev/null || true
  fi
  # A failed test shows what the daemon said: CI keeps no temp dir.
  if (( IT_FAILS > 0 )) && [[ -s $IT_DIR/datasyncd.log ]]; then
    echo "--- last lines of datasyncd's log:" >&2
    tail -n 40 "$IT_DIR/datasyncd.log" >&2 || true
  fi
  [[ -n ${DS_KEEP_TMP:-} ]] || rm -rf "$IT_DIR"
}
trap it_cleanup EXIT

it_free_port() {
  # A port nobody listens on, below Linux's ephemeral range (32768-60999)
  # so that other tests' outgoing connections do not take it; it_start
  # still tries others when the daemon finds it in use.
  local p
  for p in $(shuf -i 20000-32767 -n 20); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"; return 0
    fi
  done
  return 1
}

# it_spawn [datasyncd flags...]: start datasyncd and wait until its log
# shows every line of IT_READY; 0 = up, 1 = it exited or never got there.
it_spawn() {
  IT_IPC="ipc://$IT_DIR/ds.sock"
  IT_TCP_PORT=$(it_free_port)
  IT_TCP="tcp://127.0.0.1:$IT_TCP_PORT"
  IT_DB="$IT_DIR/datasync.db"
  "$DATASYNCD" --db "$IT_DB" --listen "$IT_IPC" --listen "$IT_TCP" \
    "$@" >"$IT_DIR/datasyncd.log" 2>&1 &
  IT_PID=$!
  for _ in $(seq 1 500); do
    if grep -q "listening on $IT_TCP" "$IT_DIR/datasyncd.log" 2>/dev/null &&
       { [[ -z ${IT_HTTP_PORT:-} ]] ||
         grep -q "gateway and demo page on" "$IT_DIR/datasyncd.log"; }; then
      return 0
    fi
    kill -0 "$IT_PID" 2>/dev/null || break
    sleep 0.02
  done
  return 1
}

# it_start [datasyncd flags...]: start datasyncd on a temporary ipc://
# path and a free tcp:// port (IT_IPC, IT_TCP, IT_DB); picks other ports
# when one was taken between choosing and binding it.
it_start() {
  local attempt
  for attempt in 1 2 3 4 5; do
    if [[ -n ${IT_HTTP_PORT:-} ]] && (( attempt > 1 )); then
      IT_HTTP_PORT=$(it_free_port)
      IT_HTTP="http://127.0.0.1:$IT_HTTP_PORT"
    fi
    if it_spawn "$@" ${IT_HTTP_PORT:+--http "127.0.0.1:$IT_HTTP_PORT"}; then
      return 0
    fi
    grep -q "Address in use" "$IT_DIR/datasyncd.log" || break
    wait "$IT_PID" 2>/dev/null || true
    echo "it_start: a port was taken; trying others" >&2
  done
  echo "datasyncd did not start:" >&2
  cat "$IT_DIR/datasyncd.log" >&2
  exit 1
}

# it_start_http [datasyncd flags...]: it_start with the HTTP gateway on a
# free port; sets IT_HTTP (http://127.0.0.1:PORT) and waits for it.
it_start_http() {
  IT_HTTP_PORT=$(it_free_port)
  IT_HTTP="http://127.0.0.1:$IT_HTTP_PORT"
  it_start "$@"
}

it_stop() {
  kill -TERM "$IT_PID"
  local rc=0
  wait "$IT_PID" || rc=$?
  IT_PID=
  return $rc
}

# ds ARGS...: the CLI against the test daemon; sets OUT, ERR and RC.
ds() {
  RC=0
  OUT=$("$DATASYNC" --url "$IT_IPC" "$@" 2>"$IT_DIR/stderr") || RC=$?
  ERR=$(cat "$IT_DIR/stderr")
}

it_fail() {
  echo "FAIL: $*" >&2
  echo "  stdout: ${OUT:-}" >&2
  echo "  stderr: ${ERR:-}" >&2
  echo "  exit:   ${RC:-}" >&2
  IT_FAILS=$((IT_FAILS + 1))
}

expect_rc() {   # expect_rc N description
  [[ $RC -eq $1 ]] || it_fail "$2: expected exit $1, got $RC"
}
expect_out() {  # expect_out STRING description
  [[ $OUT == "$1" ]] || it_fail "$2: expected stdout '$1'"
}
expect_err_has() {  # expect_err_has SUBSTRING description
  [[ $ERR == *"$1"* ]] || it_fail "$2: expected stderr to contain '$1'"
}

it_done() {
  if (( IT_FAILS > 0 )); then
    echo "$IT_FAILS check(s) failed" >&2
    exit 1
  fi
  echo "all checks passed"
}
