#!/usr/bin/env bash
# Runs one of the node tests of `moestream serve` (openai-client, browser, soak):
#   tests/server/run_node_tests.sh MOESTREAM_BIN SHARED_DIR ARTIFACT_DIR TEST
# Installs what it needs when missing: node and npm, Debian's chromium (for
# the browser test), and the npm packages pinned in node/package-lock.json
# into a cache outside the source tree (MOESTREAM_NODE_CACHE, default
# ~/.cache/moestream/node-tests). Exits 77 (CTest: skipped) with the reason
# only when one of those cannot be installed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=$1 shared=$2 artifacts=$3 name=$4

skip() { echo "SKIPPED: $*"; exit 77; }
apt_install() {
  local sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo -n"
  { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@"; } >/dev/null 2>&1
}

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  apt_install nodejs npm || skip "node and npm are not installed and could not be (apt-get install nodejs npm)"
fi
major=$(node -p 'process.versions.node.split(".")[0]')
((major >= 18)) || skip "node $(node --version) is too old: the openai client needs node 18 or later"
if [[ $name == browser ]]; then
  chromium=${CHROMIUM:-$(command -v chromium || true)}
  if [[ -z $chromium ]]; then
    apt_install chromium || skip "chromium is not installed and could not be (apt-get install chromium)"
    chromium=$(command -v chromium)
  fi
  export CHROMIUM=$chromium
fi

cache=${MOESTREAM_NODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/moestream/node-tests}
mkdir -p "$cache"
(
  # One install at a time: CTest may start the three tests together.
  flock 9
  if ! cmp -s "$here/node/package-lock.json" "$cache/package-lock.json" || [[ ! -d $cache/node_modules ]]; then
    cp "$here/node/package.json" "$here/node/package-lock.json" "$cache/"
    (cd "$cache" && npm ci --no-audit --no-fund --loglevel=error) ||
      { rm -f "$cache/package-lock.json"; exit 3; }
  fi
) 9>"$cache/.lock" || skip "npm could not install the test packages (openai, playwright-core) into $cache"

export MOESTREAM_BIN=$bin MOESTREAM_SHARED_DIR=$shared MOESTREAM_TEST_ARTIFACTS=$artifacts
export NODE_PATH=$cache/node_modules
# ES modules ignore NODE_PATH: link the packages next to the tests, in an ignored folder.
work=$artifacts/node-run-$name
rm -rf "$work" && mkdir -p "$work"
cp "$here"/node/*.mjs "$work/"
ln -s "$cache/node_modules" "$work/node_modules"
exec node --test-reporter=spec --test "$work/${name//-/_}_test.mjs"
