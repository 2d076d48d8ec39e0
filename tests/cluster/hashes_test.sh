#!/usr/bin/env bash
# Checks tests/cluster/hashes.sh on a throwaway cache: a recorded file verifies, a changed one
# does not, one without a record is refused unless adopted. Run by tests/run.sh (milliseconds).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=$(mktemp -d)
trap 'rm -rf "$CACHE"' EXIT
# shellcheck source=hashes.sh
source "$HERE/hashes.sh"
fail() { echo "hashes_test: FAIL: $*" >&2; exit 1; }
expect() { # expect CODE FILE
  local rc=0; check_hash "$2" 2>"$CACHE/err" || rc=$?
  [ "$rc" = "$1" ] || fail "check_hash $2 returned $rc, want $1: $(cat "$CACHE/err")"
}

mkdir -p "$CACHE/bin"
f=$CACHE/bin/kube-apiserver-0.0.0
printf 'a binary\n' >"$f"
expect 2 "$CACHE/bin/absent"
expect 3 "$f"
grep -q "ROLLGUARD_CACHE_ADOPT=1" "$CACHE/err" || fail "the refusal does not say how to adopt"
record_hash "$f"
expect 0 "$f"
printf 'x' >>"$f"
expect 1 "$f"
grep -q "does not match the sha256 recorded" "$CACHE/err" || fail "the mismatch is not explained"
# Same size, one byte changed.
printf 'a binarY\n' >"$f"
expect 1 "$f"
g=$CACHE/bin/etcd-0.0.0
printf 'another\n' >"$g"
ROLLGUARD_CACHE_ADOPT=1 expect 0 "$g"
expect 0 "$g"
echo "hashes_test: ok"
