#!/usr/bin/env bash
# `make deny`: every cargo-deny check of deny.toml (advisories, licenses, bans, sources), offline.
# The RustSec advisory database cannot be fetched from GitHub here, so it comes from a snapshot
# (a git bundle): cloned afresh into the directory deny.toml's db-path names, its commit and date
# printed, and its age judged by deny.toml's maximum-db-staleness from the snapshot's own date.
#
#   ROLLGUARD_ADVISORY_BUNDLE  the snapshot (default: the newest
#                              advisory-db-YYYY-MM-DD.bundle in <repo>/../shared/advisory-db/,
#                              else in ~/.cache/rollguard/advisory-db/, where every snapshot
#                              found beside the repo is kept, so a clone elsewhere on the
#                              machine, such as CI's, finds it too)
#   ROLLGUARD_ADVISORY_DBS     where it is cloned, read by deny.toml's db-path (default:
#                              ${CARGO_TARGET_DIR:-<repo>/target}/advisory-dbs)
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
say() { printf '[deny %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

kept=${ROLLGUARD_CACHE:-$HOME/.cache/rollguard}/advisory-db
newest() { # the date is in the name, so the last in sort order is the newest snapshot
  { find "$1" -maxdepth 1 -name 'advisory-db-*.bundle' 2>/dev/null || true; } | sort | tail -1
}
bundle=${ROLLGUARD_ADVISORY_BUNDLE:-}
if [ -z "$bundle" ]; then
  beside=$(newest "$REPO/../shared/advisory-db")
  if [ -n "$beside" ]; then
    mkdir -p "$kept"
    [ -f "$kept/$(basename "$beside")" ] || cp "$beside" "$kept/"
  fi
  bundle=$(newest "$kept")
fi
[ -n "$bundle" ] && [ -f "$bundle" ] \
  || die "no RustSec advisory database snapshot: set ROLLGUARD_ADVISORY_BUNDLE to an advisory-db-YYYY-MM-DD.bundle (the default looks in $REPO/../shared/advisory-db/ and $kept/)"

dbs=${ROLLGUARD_ADVISORY_DBS:-${CARGO_TARGET_DIR:-$REPO/target}/advisory-dbs}
mkdir -p "$dbs"
dbs=$(cd "$dbs" && pwd)
export ROLLGUARD_ADVISORY_DBS=$dbs
# The directory cargo-deny derives from the database URL (https://github.com/RustSec/advisory-db:
# its last path segment and a hash of the URL); a wrong name fails the check as "not found".
db=$dbs/advisory-db-3157b0e258782691
t0=$(date +%s.%N)
rm -rf "$db"
git bundle verify -q "$bundle" >/dev/null 2>&1 || die "$bundle is not a valid git bundle"
git clone -q --branch main "$bundle" "$db"
commit=$(git -C "$db" rev-parse HEAD)
subject=$(git -C "$db" log -1 --format=%s HEAD)
date=$(git -C "$db" show -s --format=%cI HEAD)
# cargo-deny dates a database by FETCH_HEAD, else by the newer of the HEAD commit and the HEAD
# file's mtime: a fresh clone would look fetched just now. Give HEAD the snapshot's own date so
# that maximum-db-staleness judges the snapshot, not the clone.
rm -f "$db/.git/FETCH_HEAD"
touch -d "$date" "$db/.git/HEAD"
age=$(( ($(date +%s) - $(date -d "$date" +%s)) / 86400 ))
say "RustSec advisory database: $(basename "$bundle"), commit $commit ($subject), dated $date ($age days old), cloned into $db in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')s"
[ "$age" -le 90 ] || say "WARNING: the advisory database is $age days old: advisories published since $date are not checked; bring a newer snapshot (deny.toml's maximum-db-staleness fails the check beyond its limit)"

# cargo-deny reads the whole graph, every platform's crates included (deny.toml's [graph]), and
# runs offline below: fetch what a build on this platform did not (crates.io is reachable).
t0=$(date +%s.%N)
cargo fetch --locked --quiet
say "crates of every platform fetched in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')s"
cargo deny --locked --offline check "$@"
