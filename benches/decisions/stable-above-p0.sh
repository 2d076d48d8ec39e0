#!/usr/bin/env bash
# The StableAboveP0 warning (issue 16, point 4), measured with `rollguard simulate`: a
# sequential tier on a fixed p0 of 0.1% (fixed-p0.yaml) over a service whose stable and canary
# both fail 0.1% (no warning is due) or 0.3% (the warning is due, and the fixed p0 rolls the
# healthy canary back). One run per seed (the timeline has the Events), 1 hour each.
#
#   benches/decisions/stable-above-p0.sh [runs]     # default 200 runs per cell, seeds 1..runs
#
# ROLLGUARD=<binary> picks the build.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
runs=${1:-200}
bin=${ROLLGUARD:-${CARGO_TARGET_DIR:-$here/../../target}/release/rollguard}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for rps in 100 1000; do
  for rate in 0.1% 0.3%; do
    cat > "$tmp/s.yaml" <<YAML
duration: 1h
rps: $rps
scrapeInterval: 15s
stable: {errorRate: "$rate"}
canary: {errorRate: "$rate"}
YAML
    warned=0 rolled=0 times=()
    for seed in $(seq 1 "$runs"); do
      out=$("$bin" simulate --policy "$here/fixed-p0.yaml" --scenario "$tmp/s.yaml" --runs 1 --seed "$seed")
      t=$(jq '[.runs[0].timeline[] | select(.kind == "event" and .reason == "StableAboveP0") | .atSeconds] | first // empty' <<<"$out")
      [[ $(jq -r '.runs[0].outcome' <<<"$out") == RolledBack ]] && rolled=$((rolled + 1))
      if [[ -n $t ]]; then warned=$((warned + 1)); times+=("$t"); fi
    done
    median=-
    if ((${#times[@]})); then
      median=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)] "s"}')
    fi
    echo "$rps rps, stable and canary at $rate: warned in $warned/$runs runs (median first warning $median after the start), rolled back $rolled/$runs"
  done
done
