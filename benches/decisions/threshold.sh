#!/usr/bin/env bash
# Threshold mode (issue 16, point 5), measured with `rollguard simulate`: false rollbacks of a
# healthy canary (0.1%) and of one at exactly maxErrorRate (0.5%, the worst case a false
# rollback can be charged for) over whole runs, also with errors in clumps of 3, and how soon bad canaries (1%, 5%, 50%) are
# rolled back: errors the canary served and time to rollback.
#
#   benches/decisions/threshold.sh [runs]        # default 1000 runs per cell
#
# ROLLGUARD=<binary> picks the build (e.g. one from before the change, to compare).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
runs=${1:-1000}
bin=${ROLLGUARD:-${CARGO_TARGET_DIR:-$here/../../target}/release/rollguard}
policy=${POLICY:-$here/threshold.yaml}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cell() { # cell NAME RPS CANARY-RATE [ERROR-CLUMP]
  cat > "$tmp/s.yaml" <<YAML
duration: 1h
rps: $2
scrapeInterval: 15s
stable: {errorRate: "0.1%"}
canary: {errorRate: "$3"}
errorClump: ${4:-1}
YAML
  "$bin" simulate --policy "$policy" --scenario "$tmp/s.yaml" --runs "$runs" --seed 16 --aggregate-only |
    jq -r --arg name "$1" '.aggregate as $a |
      [$name,
       "rolledBack \(($a.rolledBack / $a.runs * 1000 | round) / 10)%",
       "promoted \(($a.promoted / $a.runs * 1000 | round) / 10)%",
       "undecided \(($a.undecided / $a.runs * 1000 | round) / 10)%",
       (if $a.canary == "bad" then "errors \($a.canaryErrors.mean * 10 | round / 10) (p95 \($a.canaryErrors.p95))" else empty end),
       (if $a.timeToRollbackSeconds.p50 then "rollback in \($a.timeToRollbackSeconds.p50 | round)s (p50)" else empty end)] | join("  ")'
}

for rps in 10 100 1000; do
  cell "healthy 0.1%, $rps rps" $rps 0.1%
  cell "at maxErrorRate 0.5%, $rps rps" $rps 0.5%
  cell "healthy 0.1% in clumps of 3, $rps rps" $rps 0.1% 3
  cell "at maxErrorRate 0.5% in clumps of 3, $rps rps" $rps 0.5% 3
  for bad in 1% 5% 50%; do
    cell "bad $bad, $rps rps" $rps $bad
  done
done
