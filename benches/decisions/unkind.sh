#!/usr/bin/env bash
# The built-in AI tier in a simulated world as unkind as the real one (issue 16, point 6):
# Prometheus' increase() extrapolation, a lazily created error series, routing and rollback
# delays, each alone and all together, for a healthy (0.1%) and a bad (1%) canary at 100 and
# 1,000 requests/s, stable at 0.1%.
#
#   benches/decisions/unkind.sh [runs]     # default 1000 runs per cell, seed 16
#
# ROLLGUARD=<binary> picks the build.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
runs=${1:-1000}
bin=${ROLLGUARD:-${CARGO_TARGET_DIR:-$here/../../target}/release/rollguard}
policy=$here/builtin-ai.yaml
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

worlds=(
  ""
  "extrapolate: true"
  "lazyErrorSeries: true"
  $'routingDelay: 5s\nrollbackDelay: 15s'
  $'extrapolate: true\nlazyErrorSeries: true\nroutingDelay: 5s\nrollbackDelay: 15s'
)
for rps in 100 1000; do
  for canary in 0.1% 1%; do
    for world in "${worlds[@]}"; do
      cat > "$tmp/s.yaml" <<YAML
duration: 3h
rps: $rps
scrapeInterval: 15s
stable: {errorRate: "0.1%"}
canary: {errorRate: "$canary"}
revision: {annotations: {rollguard.dev/change-origin: ai-assisted}}
$world
YAML
      "$bin" simulate --policy "$policy" --scenario "$tmp/s.yaml" --runs "$runs" --seed 16 --aggregate-only |
        jq -r --arg n "$rps rps, canary $canary, [$(echo "$world" | tr '\n' ' ')]" '.aggregate as $a |
          [$n,
           "rolledBack \(($a.rolledBack / $a.runs * 1000 | round) / 10)%",
           "promoted \(($a.promoted / $a.runs * 1000 | round) / 10)%",
           "errors \($a.canaryErrors.mean * 10 | round / 10) (after the decision \($a.errorsAfterDecision.mean * 10 | round / 10))",
           (if $a.timeToDecisionSeconds.p50 then "decided in \($a.timeToDecisionSeconds.p50 / 60 | round)m (p50)" else "none decided" end)] | join("  ")'
    done
  done
done
