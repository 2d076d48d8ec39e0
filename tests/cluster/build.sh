#!/usr/bin/env bash
# Builds the local control plane's binaries from Go modules, cached by version.
# Usage: tests/cluster/build.sh [component...]   (default: all)
# Components: k8s etcd kwok helm gateway-api prometheus-operator-crds prometheus image-tools
#             flux (only when named: the Flux e2e's controllers)
#             flagger, argo-rollouts (only when named: the peer benchmark's controllers)
#             traefik (only when named: the real Gateway API data path, `make test-gateway`)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$HERE/versions.env"
CACHE=${ROLLGUARD_CACHE:-$HOME/.cache/rollguard}
BIN=$CACHE/bin
mkdir -p "$BIN" "$CACHE/work"
# One build at a time per cache: a second build.sh (e.g. from `cluster.sh up`) waits here, then
# finds the binaries cached, instead of wiping the work dir of the build in progress.
# `build.sh traefik` alone takes a lock of its own: its ~9 min cold build touches only its own
# work dir and files, and must not hold up a `cluster.sh up` that needs nothing from it.
LOCK=$CACHE/build.lock
[ "$*" = traefik ] && LOCK=$CACHE/build-traefik.lock
exec 8>"$LOCK"
if ! flock -n 8; then echo "[build] another build.sh holds $LOCK; waiting for it" >&2; flock 8; fi
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local

log() { printf '[build %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Module checksums are verified explicitly, whatever the environment or `go env -w` says: every
# module is checked against the public checksum database (sum.golang.org, which the module proxy
# serves at /sumdb/ where sum.golang.org itself is unreachable) and none is exempt. A module whose
# content differs from what the database recorded fails the build ("SECURITY ERROR"); the wrapper
# modules' go.sum is then checked against the module cache with `go mod verify`.
export GOSUMDB=sum.golang.org GONOSUMDB= GOPRIVATE= GONOPROXY= GOINSECURE=
for kv in "GOSUMDB=sum.golang.org" "GONOSUMDB=" "GOPRIVATE=" "GOINSECURE=" "GOFLAGS=-mod=mod"; do
  [ "$(go env "${kv%%=*}")" = "${kv#*=}" ] || die "go env ${kv%%=*} is '$(go env "${kv%%=*}")', want '${kv#*=}': module checksums would not be verified as build.sh means to"
done

# shellcheck source=hashes.sh
source "$HERE/hashes.sh"
# cached FILE...: every FILE is present and has the sha256 recorded when it was built. One that
# differs is moved aside (FILE.mismatch, kept for a look) and rebuilt; one without a record stops
# the build with what to do (hashes.sh).
cached() {
  local f rc
  for f in "$@"; do
    rc=0; check_hash "$f" || rc=$?
    case $rc in
      0) ;;
      1) log "$f differs from its recorded hash: moved to $f.mismatch, rebuilding"; mv -f "$f" "$f.mismatch"; return 1 ;;
      2) return 1 ;;
      *) die "$f is cached but unverified (see above)" ;;
    esac
  done
}

build_k8s() {
  local v=$K8S_VERSION; local staging="v0.${K8S_VERSION#1.}" minor
  minor=$(echo "$v" | cut -d. -f2)
  if cached "$BIN/kube-apiserver-$v" "$BIN/kube-controller-manager-$v" "$BIN/kube-scheduler-$v"; then
    log "kubernetes v$v: cached, hashes match"; return; fi
  log "kubernetes v$v: building kube-apiserver, kube-controller-manager, kube-scheduler (cold: ~30 min on 2 cores)"
  local w=$CACHE/work/k8s-$v; rm -rf "$w"; mkdir -p "$w"; cd "$w"
  local gomod
  gomod=$(go mod download -json "k8s.io/kubernetes@v$v" | python3 -c 'import json,sys;print(json.load(sys.stdin)["GoMod"])')
  local godebug
  godebug=$(grep -E '^godebug ' "$gomod" || true)
  local goline
  goline=$(grep -E '^go [0-9]' "$gomod")
  {
    echo "module local/k8s-build"; echo; echo "$goline"; echo
    [ -n "$godebug" ] && { echo "$godebug"; echo; }
    echo "require k8s.io/kubernetes v$v"; echo
    echo "replace ("
    # Every staging module k8s.io/X => ./staging/src/k8s.io/X becomes k8s.io/X => k8s.io/X v0.<minor>.<patch>.
    sed -n -E "s#^[[:space:]]*(k8s\.io/[A-Za-z0-9._-]+) => \./staging/src/.*#\t\1 => \1 $staging#p" "$gomod"
    echo ")"
  } > go.mod
  log "wrapper go.mod: $(grep -c '=> k8s.io' go.mod) staging replaces, $goline, ${godebug:-no godebug}"
  go get "k8s.io/kubernetes/cmd/kube-apiserver@v$v" >/dev/null
  go mod verify >&2
  local ldf="-s -w" date
  date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldf="$ldf -X $p.gitVersion=v$v -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean -X $p.buildDate=$date"
  done
  mkdir -p out
  go build -trimpath -ldflags "$ldf" -o out/ \
    k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler
  for b in kube-apiserver kube-controller-manager kube-scheduler; do
    mv "out/$b" "$BIN/$b-$v"; record_hash "$BIN/$b-$v"; done
  "$BIN/kube-apiserver-$v" --version >&2
}

build_etcd() {
  local v=$ETCD_VERSION
  if cached "$BIN/etcd-$v"; then log "etcd v$v: cached, hash matches"; return; fi
  log "etcd v$v: building"
  local w=$CACHE/work/etcd-$v; rm -rf "$w"; mkdir -p "$w"; cd "$w"
  printf 'module local/etcd-build\n\ngo 1.26.0\n' > go.mod
  go get "go.etcd.io/etcd/server/v3@v$v" >/dev/null
  go mod verify >&2
  mkdir -p out
  go build -trimpath -ldflags '-s -w' -o out/etcd go.etcd.io/etcd/server/v3
  mv out/etcd "$BIN/etcd-$v"; record_hash "$BIN/etcd-$v"
}

build_kwok() {
  local v=$KWOK_VERSION
  if cached "$BIN/kwok-$v" "$BIN/kwok-stages-$v.yaml"; then log "kwok v$v: cached, hashes match"; return; fi
  log "kwok v$v: building"
  local tmp=$CACHE/work/kwok-$v; rm -rf "$tmp"; mkdir -p "$tmp"
  GOBIN=$tmp go install -trimpath -ldflags '-s -w' "sigs.k8s.io/kwok/cmd/kwok@v$v"
  mv "$tmp/kwok" "$BIN/kwok-$v"; record_hash "$BIN/kwok-$v"
  # From 0.8 on kwok needs an explicit stage config: take the module's own stage files.
  local dir
  dir=$(go mod download -json "sigs.k8s.io/kwok@v$v" | python3 -c 'import json,sys;print(json.load(sys.stdin)["Dir"])')
  { for f in stage/node/fast/node-initialize.yaml stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
             stage/pod/fast/pod-ready.yaml stage/pod/fast/pod-complete.yaml stage/pod/fast/pod-delete.yaml; do
      echo '---'; cat "$dir/kustomize/$f"; done; } > "$BIN/kwok-stages-$v.yaml.tmp"
  mv "$BIN/kwok-stages-$v.yaml.tmp" "$BIN/kwok-stages-$v.yaml"; record_hash "$BIN/kwok-stages-$v.yaml"
}

build_helm() {
  local v=$HELM_VERSION minor
  minor=$(echo "$K8S_VERSION" | cut -d. -f2)
  if cached "$BIN/helm-$v"; then log "helm v$v: cached, hash matches"; return; fi
  log "helm v$v: building"
  local tmp=$CACHE/work/helm-$v; rm -rf "$tmp"; mkdir -p "$tmp"
  GOBIN=$tmp go install -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=v$v -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$minor" \
    "helm.sh/helm/v3/cmd/helm@v$v"
  mv "$tmp/helm" "$BIN/helm-$v"; record_hash "$BIN/helm-$v"
}

# Flux's source-controller and kustomize-controller, for the Flux e2e (`make test-gitops`; not
# built by `make test`: cold, each costs ~6-7 min of CPU). Built from each module's own source
# with its own go.mod (its replace directives need that), with two changes: the nested ./api
# module the go.mod replaces is not in the module zip, so the published api module of the
# same version is used; and fluxcd/pkg/artifact, which the module proxy here does not serve at
# the version source-controller asks for, is taken at FLUX_ARTIFACT_VERSION.
build_flux() {
  local v=$FLUX_VERSION c dir w
  local crds=$BIN/flux-crds-$v.yaml
  if cached "$BIN/source-controller-$v" "$BIN/kustomize-controller-$v" "$crds"; then
    log "flux v$v controllers: cached, hashes match"; return; fi
  : >"$crds.tmp"
  for c in source-controller kustomize-controller; do
    log "flux $c v$v: building from the module source"
    dir=$(go mod download -json "github.com/fluxcd/$c@v$v" | python3 -c 'import json,sys;print(json.load(sys.stdin)["Dir"])')
    w=$CACHE/work/$c-$v; rm -rf "$w"; cp -r "$dir" "$w"; chmod -R u+w "$w"; cd "$w"
    go mod edit -dropreplace "github.com/fluxcd/$c/api"
    if [ "$c" = source-controller ]; then
      go mod edit -replace "github.com/fluxcd/pkg/artifact=github.com/fluxcd/pkg/artifact@v$FLUX_ARTIFACT_VERSION"
    fi
    go build -trimpath -ldflags '-s -w' -o "out/$c" .
    mv "out/$c" "$BIN/$c-$v"; record_hash "$BIN/$c-$v"
    for f in config/crd/bases/*.yaml; do echo '---'; cat "$f"; done >>"$crds.tmp"
  done
  mv "$crds.tmp" "$crds"; record_hash "$crds"
}

# Flagger, for the benchmark against the real peers (#20, `make bench-peers`; only when named,
# never by `make test`). v1.36.1 is the one version the module proxy serves; its go.mod has no
# replace directives, so it is built from its own module source like Flux. Its CRDs are the
# module's artifacts/flagger/crd.yaml.
build_flagger() {
  local v=$FLAGGER_VERSION dir w
  local crds=$BIN/flagger-crds-$v.yaml
  if cached "$BIN/flagger-$v" "$crds"; then log "flagger v$v: cached, hashes match"; return; fi
  log "flagger v$v: building from the module source"
  dir=$(go mod download -json "github.com/fluxcd/flagger@v$v" | python3 -c 'import json,sys;print(json.load(sys.stdin)["Dir"])')
  w=$CACHE/work/flagger-$v; rm -rf "$w"; cp -r "$dir" "$w"; chmod -R u+w "$w"; cd "$w"
  go build -trimpath -ldflags '-s -w' -o out/flagger ./cmd/flagger
  mv out/flagger "$BIN/flagger-$v"; record_hash "$BIN/flagger-$v"
  cp artifacts/flagger/crd.yaml "$crds.tmp"; mv "$crds.tmp" "$crds"; record_hash "$crds"
}

# Argo Rollouts' controller, for the same benchmark (only when named). Its go.mod has replace
# directives (`go install` refuses them), so it is built in a writable copy of its module source,
# with the version stamped as its Makefile does. Its CRDs (manifests/crds/) are too large for a
# client-side apply: apply them server-side.
build_argo_rollouts() {
  local v=$ARGO_ROLLOUTS_VERSION dir w
  local crds=$BIN/argo-rollouts-crds-$v.yaml
  if cached "$BIN/rollouts-controller-$v" "$crds"; then log "argo-rollouts v$v: cached, hashes match"; return; fi
  log "argo-rollouts v$v: building the controller from the module source"
  dir=$(go mod download -json "github.com/argoproj/argo-rollouts@v$v" | python3 -c 'import json,sys;print(json.load(sys.stdin)["Dir"])')
  w=$CACHE/work/argo-rollouts-$v; rm -rf "$w"; cp -r "$dir" "$w"; chmod -R u+w "$w"; cd "$w"
  go build -trimpath -ldflags "-s -w -X github.com/argoproj/argo-rollouts/utils/version.version=$v" \
    -o out/rollouts-controller ./cmd/rollouts-controller
  mv out/rollouts-controller "$BIN/rollouts-controller-$v"; record_hash "$BIN/rollouts-controller-$v"
  for f in manifests/crds/*-crd.yaml; do echo '---'; cat "$f"; done >"$crds.tmp"
  mv "$crds.tmp" "$crds"; record_hash "$crds"
}

# Traefik, the Gateway API implementation of the real data path (#22, `make test-gateway`; only
# when named, never by `make test`: cold it costs ~9 min and ~3.2 GB). v3.6.12: v3.7's module zip
# lacks a nested module its go.mod replaces to, and the module proxy refuses some of its ACME
# dependencies (docs/testing.md). Its go.mod replace directives rule out `go install`, so it is
# built in a writable copy of its module source, with its version stamped as its Makefile does.
build_traefik() {
  local v=$TRAEFIK_VERSION dir w
  if cached "$BIN/traefik-$v"; then log "traefik v$v: cached, hash matches"; return; fi
  log "traefik v$v: building from the module source (cold: ~9 min, ~3.2 GB peak on 2 cores)"
  dir=$(go mod download -json "github.com/traefik/traefik/v3@v$v" | python3 -c 'import json,sys;print(json.load(sys.stdin)["Dir"])')
  w=$CACHE/work/traefik-$v; rm -rf "$w"; cp -r "$dir" "$w"; chmod -R u+w "$w"; cd "$w"
  go build -trimpath -ldflags "-s -w -X github.com/traefik/traefik/v3/pkg/version.Version=$v" \
    -o out/traefik ./cmd/traefik
  mv out/traefik "$BIN/traefik-$v"; record_hash "$BIN/traefik-$v"
  "$BIN/traefik-$v" version >&2
}

build_gateway_api() {
  local v=$GATEWAY_API_VERSION; local out=$BIN/gateway-api-standard-$v.yaml
  if cached "$out"; then log "gateway-api v$v CRDs: cached, hash matches"; return; fi
  log "gateway-api v$v: fetching the standard-channel CRDs from the module"
  local dir
  dir=$(go mod download -json "sigs.k8s.io/gateway-api@v$v" | python3 -c 'import json,sys;print(json.load(sys.stdin)["Dir"])')
  { for f in "$dir"/config/crd/standard/*.yaml; do echo '---'; cat "$f"; done; } > "$out.tmp"
  mv "$out.tmp" "$out"; record_hash "$out"
}

build_prometheus_operator_crds() {
  local v=$PROMETHEUS_OPERATOR_VERSION; local out=$BIN/prometheus-operator-crds-$v.yaml
  if cached "$out"; then log "prometheus-operator v$v CRDs: cached, hash matches"; return; fi
  log "prometheus-operator v$v: fetching the ServiceMonitor and PrometheusRule CRDs from the module"
  local dir
  dir=$(go mod download -json "github.com/prometheus-operator/prometheus-operator@v$v" | python3 -c 'import json,sys;print(json.load(sys.stdin)["Dir"])')
  { for f in servicemonitors prometheusrules; do
      echo '---'; cat "$dir/example/prometheus-operator-crd/monitoring.coreos.com_$f.yaml"; done; } > "$out.tmp"
  mv "$out.tmp" "$out"; record_hash "$out"
}

build_prometheus() {
  if command -v prometheus >/dev/null; then log "prometheus: $(command -v prometheus)"; return; fi
  log "prometheus: installing Debian's package"
  if [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus) >&2
    # The package starts a system service on some hosts; we run our own instance only. Stop that
    # service by its unit, never by process name: that would also kill the test clusters' own.
    (systemctl disable --now prometheus 2>/dev/null || service prometheus stop 2>/dev/null) >/dev/null 2>&1 || true
  else
    log "prometheus missing and not root: install Debian's 'prometheus' package"; return 1
  fi
}

# The operator image's tools (scripts/image.sh, the image and chart e2e tests): Debian's buildah (builds
# with no daemon), docker-registry (the test registry on 127.0.0.1) and binutils (readelf,
# strip). Cold: 14 s for the install (apt's history log), after `apt-get update`.
build_image_tools() {
  local missing=()
  command -v buildah >/dev/null || missing+=(buildah)
  command -v docker-registry >/dev/null || missing+=(docker-registry)
  command -v readelf >/dev/null || missing+=(binutils)
  if [ ${#missing[@]} -eq 0 ]; then log "image tools: buildah, docker-registry, binutils present"; return; fi
  [ "$(id -u)" = 0 ] || { log "missing ${missing[*]} and not root: install Debian's packages"; return 1; }
  log "image tools: installing Debian's ${missing[*]}"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}") >&2
}

comps=("$@"); [ ${#comps[@]} -eq 0 ] && comps=(prometheus image-tools gateway-api prometheus-operator-crds etcd kwok helm k8s)
start=$(date +%s)
for c in "${comps[@]}"; do
  case $c in
    k8s) build_k8s ;; etcd) build_etcd ;; kwok) build_kwok ;; helm) build_helm ;;
    gateway-api) build_gateway_api ;; prometheus) build_prometheus ;; flux) build_flux ;; flagger) build_flagger ;;
    argo-rollouts) build_argo_rollouts ;; traefik) build_traefik ;;
    prometheus-operator-crds) build_prometheus_operator_crds ;; image-tools) build_image_tools ;;
    *) log "unknown component $c"; exit 2 ;;
  esac
done
log "done in $(( $(date +%s) - start ))s"
