#!/usr/bin/env bash
# run.sh MODE: the JavaScript tests, as ctest runs them.
#   unit       clients/js/test/*.test.js: datasync.js without a browser
#              or server (merge3, error decoding, locks on a fake fetch)
#   typecheck  tsc --checkJs over datasync.js and the demo's app.js
#   browser    FILE...: the given *.test.js here in headless Chromium
#              against a real datasyncd (DATASYNCD=path/to/datasyncd)
# A missing prerequisite fails the test with how to install it: these
# tests never skip.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
mode=${1:-}
shift || true

fail() { echo "FAIL: $*" >&2; exit 1; }
need_node() {
  command -v node >/dev/null 2>&1 ||
    fail "node is not installed: apt-get install nodejs npm (Node.js >= 20)"
  local major
  major=$(node -p 'process.versions.node.split(".")[0]')
  (( major >= 20 )) || fail "Node.js >= 20 needed, found $(node --version)"
}
need_modules() {
  local m
  for m in "$@"; do
    [[ -d $here/node_modules/$m ]] ||
      fail "tests/browser/node_modules/$m is missing: run 'npm ci --prefix tests/browser' (or scripts/test, which does)"
  done
}

case $mode in
unit)
  need_node
  cd "$repo/clients/js"
  exec node --test test/
  ;;
typecheck)
  need_node
  need_modules typescript
  cd "$here"
  node node_modules/typescript/bin/tsc -p tsconfig.json
  echo "typecheck: 1 passed, 0 failed"
  ;;
browser)
  need_node
  need_modules playwright-core
  chromium=${CHROMIUM:-/usr/bin/chromium}
  [[ -x $chromium ]] ||
    fail "Chromium not found at $chromium: apt-get install chromium (or set CHROMIUM)"
  [[ -n ${DATASYNCD:-} && -x $DATASYNCD ]] ||
    fail "DATASYNCD must name the datasyncd binary (got '${DATASYNCD:-}')"
  (( $# > 0 )) || set -- *.test.js
  cd "$here"
  exec node --test "$@"
  ;;
*)
  echo "usage: run.sh unit|typecheck|browser [FILE.test.js...]" >&2
  exit 2
  ;;
esac
