#!/usr/bin/env bash
# The benchmark against the real peers (issue #20): rollguard, Flagger and Argo Rollouts, each a
# real process on this machine, each governing its own copy of the same service in its own
# namespaces, on the same local control plane, the same Prometheus and the same simulated
# traffic; the same changes (healthy, bad at 1% and 5%, a late onset, low traffic) through each
# controller's documented configuration and its fastest one. Results: docs/analysis/peers.md.
#
#   make bench-peers
#   BENCH_MINUTES=20 benches/peers/run.sh
#
# Environment:
#   BENCH_MINUTES          how long the changes run, all namespaces side by side (default 35); a
#                          namespace starts another change only while time is left for it
#   BENCH_CONFIGS          comma-separated subset of the configurations (default: all; see bench.py)
#   BENCH_SCENARIOS        comma-separated subset of the scenarios (default: all)
#   BENCH_OUT              where the report, the raw records and the logs go
#                          (default target/bench-peers)
#   ROLLGUARD_CLUSTER_DIR  the cluster dir (default <repo>/.cluster-peers); the benchmark starts its
#                          own cluster there and stops it at the end
#   BENCH_KEEP_CLUSTER=1   leave the cluster up afterwards (tests/cluster/cluster.sh down stops it)
#
# Not part of `make test` or `.ci/run`. Traffic goes to 127.0.0.0/8 only: the controllers reach
# the API server and Prometheus on 127.0.0.1, and the traffic simulator invents the requests.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
OUT=${BENCH_OUT:-$REPO/target/bench-peers}
export ROLLGUARD_CLUSTER_DIR=${ROLLGUARD_CLUSTER_DIR:-$REPO/.cluster-peers}
CLUSTER=$REPO/tests/cluster/cluster.sh
CACHE=${ROLLGUARD_CACHE:-$HOME/.cache/rollguard}
# shellcheck source=../../tests/cluster/versions.env
source "$REPO/tests/cluster/versions.env"
say() { printf '[bench-peers %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
T0=$(date +%s)

if [ -f "$ROLLGUARD_CLUSTER_DIR/pids" ] && "$CLUSTER" status | grep -q ' running$'; then
  say "ERROR: a cluster is already up in $ROLLGUARD_CLUSTER_DIR; the benchmark needs its own (stop it with: $CLUSTER down)"
  exit 1
fi

say "building the peers (cached by version) and the release binaries"
"$REPO/tests/cluster/build.sh" flagger argo-rollouts
cargo build --locked --release --manifest-path "$REPO/Cargo.toml" --bin rollguard --example trafficsim
TARGET_DIR=$(cargo metadata --locked --format-version 1 --no-deps --manifest-path "$REPO/Cargo.toml" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')

rm -rf "$OUT"; mkdir -p "$OUT"
finish() {
  local rc=$?
  if [ $rc -ne 0 ]; then
    say "FAILED (exit $rc); component logs:"
    "$CLUSTER" logs 30 >&2 || true
  fi
  cp -r "$ROLLGUARD_CLUSTER_DIR/logs" "$OUT/cluster-logs" 2>/dev/null || true
  if [ "${BENCH_KEEP_CLUSTER:-0}" = 1 ]; then
    say "leaving the cluster up: source $ROLLGUARD_CLUSTER_DIR/env ($CLUSTER down stops it)"
  else
    "$CLUSTER" down >&2 || true
  fi
  [ $rc -eq 0 ] && say "done in $(( $(date +%s) - T0 )) s; report: $OUT/report.md"
  exit $rc
}
trap finish EXIT

{
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "commit: $(git -C "$REPO" rev-parse --short HEAD)$(git -C "$REPO" diff --quiet HEAD -- src examples benches/peers || echo ' (modified)')"
  echo "machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
  echo "versions: rollguard $(git -C "$REPO" describe --always --dirty), Flagger $FLAGGER_VERSION, Argo Rollouts $ARGO_ROLLOUTS_VERSION, Kubernetes $K8S_VERSION (kube-apiserver, kube-controller-manager, kube-scheduler; kwok $KWOK_VERSION), Gateway API $GATEWAY_API_VERSION, $(prometheus --version 2>&1 | head -1)"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "command: BENCH_MINUTES=${BENCH_MINUTES:-35} $0"
} | tee "$OUT/machine.txt" >&2

say "starting the local control plane (kwok nodes for every namespace's pods)"
ROLLGUARD_NODES=${ROLLGUARD_NODES:-6} "$CLUSTER" up
# shellcheck disable=SC1091
source "$ROLLGUARD_CLUSTER_DIR/env"
kubectl apply --server-side -f "$REPO/crds/rollguard.yaml" >/dev/null
kubectl apply --server-side -f "$CACHE/bin/flagger-crds-$FLAGGER_VERSION.yaml" >/dev/null
# Argo's CRDs are too large for client-side apply's last-applied annotation.
kubectl apply --server-side -f "$CACHE/bin/argo-rollouts-crds-$ARGO_ROLLOUTS_VERSION.yaml" >/dev/null
kubectl wait --for=condition=Established --timeout=60s crd --all >/dev/null

python3 "$HERE/bench.py" --out "$OUT" --minutes "${BENCH_MINUTES:-35}" \
  ${BENCH_CONFIGS:+--configs "$BENCH_CONFIGS"} ${BENCH_SCENARIOS:+--scenarios "$BENCH_SCENARIOS"} \
  --rollguard "$TARGET_DIR/release/rollguard" --trafficsim "$TARGET_DIR/release/examples/trafficsim" \
  --flagger "$CACHE/bin/flagger-$FLAGGER_VERSION" --argo "$CACHE/bin/rollouts-controller-$ARGO_ROLLOUTS_VERSION"
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/machine.txt" >&2
