#!/usr/bin/env bash
# rollguard's scale benchmark (issue #9): on the local control plane with kwok nodes, create
# DEPLOYMENTS Deployments in 20 namespaces under 20 policies, let the operator (release build, a
# separate process, User-Agent rollguard/<version>) adopt them, then start 50 rollouts at once
# (half of them bad changes) with the traffic simulator serving their counters, and measure
# memory, CPU, adoption time, reconcile latency, API requests (kube-apiserver audit log),
# Prometheus queries and step delay. Results: docs/operations/scale.md.
#
#   make bench-scale DEPLOYMENTS=100
#   DEPLOYMENTS=1000 benches/scale/run.sh
#
# Environment:
#   DEPLOYMENTS            how many (default 1000; at least 50)
#   BENCH_OUT              where the report and raw data go (default target/bench-scale/<N>)
#   BENCH_IDLE_SECONDS     the idle window (default 90)
#   ROLLGUARD_CLUSTER_DIR  the cluster dir (default <repo>/.cluster-scale); the benchmark starts
#                          its own cluster there (with the audit log) and stops it at the end
#   BENCH_KEEP_CLUSTER=1   leave the cluster up afterwards (tests/cluster/cluster.sh down stops it)
#
# Exits non-zero, with the component logs, when anything fails or a run ends unexpectedly.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
N=${DEPLOYMENTS:-1000}
[[ $N =~ ^[0-9]+$ ]] && [ "$N" -ge 50 ] || { echo "DEPLOYMENTS must be a number >= 50" >&2; exit 2; }
OUT=${BENCH_OUT:-$REPO/target/bench-scale/$N}
export ROLLGUARD_CLUSTER_DIR=${ROLLGUARD_CLUSTER_DIR:-$REPO/.cluster-scale}
CLUSTER=$REPO/tests/cluster/cluster.sh
say() { printf '[bench-scale %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

if [ -f "$ROLLGUARD_CLUSTER_DIR/pids" ] && "$CLUSTER" status | grep -q ' running$'; then
  say "ERROR: a cluster is already up in $ROLLGUARD_CLUSTER_DIR; the benchmark needs its own (stop it with: $CLUSTER down)"
  exit 1
fi

say "building the release binaries"
cargo build --locked --release --manifest-path "$REPO/Cargo.toml" --bin rollguard --example trafficsim
TARGET_DIR=$(cargo metadata --locked --format-version 1 --no-deps --manifest-path "$REPO/Cargo.toml" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
ROLLGUARD_BIN=$TARGET_DIR/release/rollguard
SIM_BIN=$TARGET_DIR/release/examples/trafficsim

rm -rf "$OUT"; mkdir -p "$OUT"
# Room for every pod, the canaries and the rolling updates' surge (kwok nodes hold 250 pods).
NODES=$(( (N * 2 * 3 / 2 + 249) / 250 + 2 ))

finish() {
  local rc=$?
  if [ $rc -ne 0 ]; then
    say "FAILED (exit $rc); component logs:"
    "$CLUSTER" logs 30 >&2 || true
    cp -r "$ROLLGUARD_CLUSTER_DIR/logs" "$OUT/cluster-logs" 2>/dev/null || true
  fi
  if [ "${BENCH_KEEP_CLUSTER:-0}" = 1 ]; then
    say "leaving the cluster up: source $ROLLGUARD_CLUSTER_DIR/env ($CLUSTER down stops it)"
  else
    "$CLUSTER" down >&2 || true
  fi
  [ $rc -eq 0 ] && say "report: $OUT/report.md"
  exit $rc
}
trap finish EXIT

{
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "commit: $(git -C "$REPO" rev-parse --short HEAD)$(git -C "$REPO" diff --quiet HEAD -- src examples || echo ' (modified)')"
  echo "machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
  echo "kernel: $(uname -r)"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "command: DEPLOYMENTS=$N $0"
} | tee "$OUT/machine.txt" >&2

say "starting the local control plane with the audit log and $NODES kwok nodes"
ROLLGUARD_AUDIT_LOG=1 ROLLGUARD_NODES=$NODES "$CLUSTER" up
# shellcheck disable=SC1091
source "$ROLLGUARD_CLUSTER_DIR/env"
[ -n "${ROLLGUARD_AUDIT_LOG_FILE:-}" ] || { say "ERROR: the cluster has no audit log"; exit 1; }
kubectl apply --server-side -f "$REPO/crds/rollguard.yaml" >/dev/null
kubectl wait --for=condition=Established --timeout=60s crd/rolloutpolicies.rollguard.dev crd/rolloutruns.rollguard.dev >/dev/null

python3 "$HERE/bench.py" --deployments "$N" --out "$OUT" --rollguard "$ROLLGUARD_BIN" \
  --trafficsim "$SIM_BIN" --idle-seconds "${BENCH_IDLE_SECONDS:-90}"
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/machine.txt" >&2
