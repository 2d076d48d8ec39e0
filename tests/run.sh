#!/usr/bin/env bash
# The whole test suite: unit tests, then the end-to-end tests against a local control plane
# and Prometheus that this script starts (binaries built once and cached) and always stops.
#
#   tests/run.sh                 everything
#   tests/run.sh FILTER...       after the unit tests, only the e2e tests whose names contain a
#                                FILTER: a module (rollout::, chart::install::) or a test
#   ROLLGUARD_E2E_IGNORED=1 tests/run.sh argocd:: flux::
#                                the ignored Argo CD and Flux e2e tests (what `make test-gitops`
#                                runs, after building their harness and controllers)
#
# With ROLLGUARD_KUBECONFIG set, the e2e tests run against that existing cluster instead
# (only Prometheus is started locally).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
cd "$REPO"
export ROLLGUARD_CLUSTER_DIR=${ROLLGUARD_CLUSTER_DIR:-$REPO/.cluster}
KUBECTL=${KUBECTL:-kubectl}
say() { printf '[test %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

start=$(date +%s)
# The cache's sha256 records (tests/cluster/hashes.sh), checked on a throwaway cache first.
tests/cluster/hashes_test.sh
say "building the local control plane's binaries (cached after the first run, checked against their recorded sha256)"
tests/cluster/build.sh
say "building the kstatus harness (tests/kstatus, cached by content hash)"
tests/kstatus/build.sh >/dev/null
say "building rollguard and its test tools"
cargo build --locked --all-targets --features e2e
# The operator image's binary (scripts/image.sh reuses it; the image and chart e2e tests build
# the image from it in seconds).
say "building the operator image's binary (profile image: release with fat LTO)"
cargo build --profile image --locked --bin rollguard

say "unit tests"
cargo test --locked --lib --bins --examples

# A cluster that was already up (someone's own, for exploring) is used and left running.
ours=1
if tests/cluster/cluster.sh status 2>/dev/null | grep -q " running$"; then
  ours=0
fi
cleanup() {
  rc=$?
  if [ $rc -ne 0 ] && [ -f "$ROLLGUARD_CLUSTER_DIR/env" ]; then
    tests/cluster/cluster.sh logs 40 >&2 || true
  fi
  [ "$ours" = 1 ] && { tests/cluster/cluster.sh down || true; }
  say "finished in $(( $(date +%s) - start ))s (exit $rc)"
  exit $rc
}
trap cleanup EXIT
# The audit log is on: ha:: reads it to prove a stale leader writes nothing.
ROLLGUARD_AUDIT_LOG=${ROLLGUARD_AUDIT_LOG:-1} tests/cluster/cluster.sh up
# shellcheck disable=SC1091
source "$ROLLGUARD_CLUSTER_DIR/env"
$KUBECTL apply --server-side -f crds/rollguard.yaml >/dev/null
$KUBECTL wait --for=condition=Established crd/rolloutpolicies.rollguard.dev crd/rolloutruns.rollguard.dev --timeout=60s >/dev/null

say "end-to-end tests"
# One test binary (tests/e2e/) holds every e2e module. Each test works in its own namespace
# with its own operator process; a few at a time keep the 2-core machine responsive enough
# for timing-sensitive checks, and the few that disturb the cluster hold it alone
# (tests/support/claim.rs). Without a filter, `--test '*'` also runs the other integration
# tests (generated, readme).
threads="--test-threads=${ROLLGUARD_E2E_THREADS:-3}"
# ROLLGUARD_E2E_IGNORED=1 runs the ignored tests the filters name (the Argo CD and Flux e2e
# tests: make test-gitops).
ignored=(); [ "${ROLLGUARD_E2E_IGNORED:-}" = 1 ] && ignored=(--ignored)
if [ $# -gt 0 ]; then
  cargo test --locked --no-fail-fast --features e2e --test e2e -- "$threads" "${ignored[@]}" "$@"
else
  cargo test --locked --no-fail-fast --features e2e --test '*' -- "$threads"
fi
