#!/usr/bin/env bash
# The decision cells of issue 16, measured with `rollguard simulate` (the operator's own run
# machine in virtual time) against the built-in AI tier with the product's defaults.
#
#   benches/decisions/run.sh [runs] [cell-filter]     # default 1000 runs per cell
#
# Prints one line per cell: the cell, then rolled back / promoted / undecided rates and the
# mean canary errors (errors above stable's rate in brackets) until the decision.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
runs=${1:-1000}
filter=${2:-}
bin=${ROLLGUARD:-${CARGO_TARGET_DIR:-$here/../../target}/release/rollguard}
policy=${POLICY:-$here/builtin-ai.yaml}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# cell NAME DURATION RPS STABLE CANARY [EXTRA]: STABLE and CANARY are YAML values.
cell() {
  local name=$1 duration=$2 rps=$3 stable=$4 canary=$5 extra=${6:-} policy=${7:-$policy}
  [[ -n $filter && $name != *$filter* ]] && return 0
  cat > "$tmp/s.yaml" <<YAML
duration: $duration
rps: $rps
scrapeInterval: 15s
stable: $stable
canary: $canary
revision: {annotations: {rollguard.dev/change-origin: ai-assisted}}
$extra
YAML
  "$bin" simulate --policy "$policy" --scenario "$tmp/s.yaml" --runs "$runs" --seed 16 --aggregate-only |
    jq -r --arg name "$name" '.aggregate as $a |
      [$name,
       "rolledBack \(($a.rolledBack / $a.runs * 1000 | round) / 10)%",
       "promoted \(($a.promoted / $a.runs * 1000 | round) / 10)%",
       "undecided \(($a.undecided / $a.runs * 1000 | round) / 10)%",
       "errors \($a.canaryErrors.mean * 10 | round / 10) (p95 \($a.canaryErrors.p95)) [above stable \($a.errorsAboveBaseline.mean * 10 | round / 10)]",
       (if $a.timeToDecisionSeconds.p50 then "decided in \($a.timeToDecisionSeconds.p50 / 60 | round)m (p50)" else "none decided" end)] | join("  ")'
}

sched() { # sched RATE0 AT RATE1: a schedule changing from RATE0 to RATE1 at AT.
  echo "{schedule: [{at: 0s, errorRate: \"$1\"}, {at: $2, errorRate: \"$3\"}]}"
}

for rps in 100 1000; do
  # 1. An incident on both revisions from minute M (healthy canary).
  for m in 1m 5m 10m 20m 25m 33m; do
    cell "1 incident 2% both from $m, $rps rps" 3h $rps "$(sched 0.1% $m 2%)" "$(sched 0.1% $m 2%)"
  done
  # 2. A canary that turns 1% bad at minute M; reference: bad from the start.
  cell "2 bad 1% from the start, $rps rps" 3h $rps '{errorRate: "0.1%"}' '{errorRate: "1%"}'
  for m in 10m 25m 33m; do
    cell "2 bad 1% from $m, $rps rps" 3h $rps '{errorRate: "0.1%"}' "$(sched 0.1% $m 1%)"
  done
  # The same canary bad from the start of a single 10% or 50% slice: the from-the-start case
  # at the slice where those late regressions start (10% at minute 10, 50% from minute 25
  # when the slices keep to their pauses).
  for w in 10 50; do
    cell "2 bad 1% from the start of a $w% slice, $rps rps" 3h $rps '{errorRate: "0.1%"}' '{errorRate: "1%"}' '' "$here/one-slice-$w.yaml"
  done
done
# 3. Beta at low traffic: a canary at exactly p1 (0.5%), and a healthy one.
for rps in 0.2 1 2; do
  cell "3 at p1 0.5%, $rps rps" 6h $rps '{errorRate: "0.1%"}' '{errorRate: "0.5%"}'
  cell "3 healthy 0.1%, $rps rps" 6h $rps '{errorRate: "0.1%"}' '{errorRate: "0.1%"}'
done
for rps in 100 1000; do
  # 4. A healthy service whose normal error rate is not 0.1%; clumped errors.
  cell "4 healthy at 0.3% normal, $rps rps" 3h $rps '{errorRate: "0.3%"}' '{errorRate: "0.3%"}'
  cell "4 healthy at 0.01% normal, $rps rps" 3h $rps '{errorRate: "0.01%"}' '{errorRate: "0.01%"}'
  cell "4 healthy 0.1% clumps of 3, $rps rps" 3h $rps '{errorRate: "0.1%"}' '{errorRate: "0.1%"}' 'errorClump: 3'
  cell "4 bad 1% clumps of 3, $rps rps" 3h $rps '{errorRate: "0.1%"}' '{errorRate: "1%"}' 'errorClump: 3'
done
