#!/usr/bin/env bash
# Builds the kstatus harness (tests/kstatus/main.go) and caches it by content hash:
# ${ROLLGUARD_CACHE:-~/.cache/rollguard}/bin/kstatus-<sha256 of main.go, go.mod, go.sum, first 16 hex>,
# its sha256 recorded like tests/cluster/build.sh's binaries. Prints the binary's path.
# A changed harness or dependency gets a new name; a present binary that matches its record is used.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${ROLLGUARD_CACHE:-$HOME/.cache/rollguard}
BIN=$CACHE/bin
mkdir -p "$BIN"
# shellcheck source=../cluster/hashes.sh
source "$HERE/../cluster/hashes.sh"
key=$(cat "$HERE/main.go" "$HERE/go.mod" "$HERE/go.sum" | sha256sum | cut -c1-16)
out=$BIN/kstatus-$key
rc=0; check_hash "$out" || rc=$?
case $rc in
  0) echo "$out"; exit 0 ;;
  1) mv -f "$out" "$out.mismatch"; echo "[kstatus] $out differs from its record: moved aside, rebuilding" >&2 ;;
  2) ;;
  *) exit 1 ;;
esac
# Module checksums verified against the public checksum database, as tests/cluster/build.sh does.
export CGO_ENABLED=0 GOFLAGS=-mod=readonly GOTOOLCHAIN=local GOSUMDB=sum.golang.org GONOSUMDB= GOPRIVATE= GONOPROXY= GOINSECURE=
cd "$HERE"
go mod download
go mod verify >&2
go build -trimpath -ldflags '-s -w' -o "$out.tmp" .
mv "$out.tmp" "$out"; record_hash "$out"
echo "[kstatus] built $out" >&2
echo "$out"
