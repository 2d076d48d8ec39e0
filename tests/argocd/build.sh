#!/usr/bin/env bash
# The Argo CD Lua harness (tests/argocd/README.md): built from this module, cached by the content
# of its sources, with the sha256 recorded like the control plane's binaries (tests/cluster/hashes.sh).
#
#   tests/argocd/build.sh            build when not cached; print the binary's path
#   tests/argocd/build.sh test       build, then `go test` the table cases and the argocd-cm checks
#   tests/argocd/build.sh configmap  print the argocd-cm rendered from deploy/argocd/resource_customizations
#
# The name is argocd-lua-<first 16 hex of the sha256 of go.mod, go.sum and the non-test *.go>: a change of
# any of them (a new Argo CD version in go.mod) builds a new binary.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CACHE=${ROLLGUARD_CACHE:-$HOME/.cache/rollguard}
BIN=$CACHE/bin
mkdir -p "$BIN"
# shellcheck source=../cluster/hashes.sh
source "$REPO/tests/cluster/hashes.sh"
log() { printf '[argocd-lua %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# Argo CD v3.6 needs Go 1.27: the toolchain go.mod names is fetched from the module proxy (the
# golang.org/toolchain module, checked against the checksum database like every module).
# Module checksums are verified as tests/cluster/build.sh verifies them; go.sum is committed and
# must be complete (-mod=readonly).
TOOLCHAIN=$(sed -n -E 's/^toolchain (go[0-9.]+)$/\1/p' "$HERE/go.mod")
export GOTOOLCHAIN=$TOOLCHAIN GOFLAGS=-mod=readonly CGO_ENABLED=0
export GOSUMDB=sum.golang.org GONOSUMDB= GOPRIVATE= GONOPROXY= GOINSECURE=

sum=$(cd "$HERE" && cat go.mod go.sum $(ls ./*.go | grep -v '_test\.go$' | sort) | sha256sum | cut -c1-16)
out=$BIN/argocd-lua-$sum

build() {
  local rc=0
  check_hash "$out" || rc=$?
  case $rc in
    0) return ;;
    1) log "$out differs from its recorded hash: moved to $out.mismatch, rebuilding"; mv -f "$out" "$out.mismatch" ;;
    2) ;;
    *) exit 1 ;;
  esac
  exec 9>"$CACHE/argocd-lua.lock"
  flock 9
  if check_hash "$out" 2>/dev/null; then return; fi
  log "building $(basename "$out") with $TOOLCHAIN (Argo CD's util/lua and gitops-engine's pkg/health; cold: see docs/testing.md)"
  local start=$SECONDS
  (cd "$HERE" && go mod verify >&2 && go build -ldflags '-s -w' -o "$out.tmp" .)
  mv "$out.tmp" "$out"
  record_hash "$out"
  log "built in $((SECONDS - start)) s"
}

case ${1:-path} in
  path) build; echo "$out" ;;
  # The same flags and environment as build() (no -trimpath, CGO_ENABLED=0): the test reuses every
  # package that build compiled instead of compiling them all again.
  test) build; (cd "$HERE" && go test -count=1 ./...) ;;
  configmap) build; cd "$REPO" && "$out" configmap ;;
  *) echo "usage: $0 [path|test|configmap]" >&2; exit 2 ;;
esac
