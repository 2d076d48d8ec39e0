# rollguard: the two commands a newcomer needs are `make demo` and `make test`.
.PHONY: all build test test-gitops test-gateway unit lint fmt deny crds generate demo demo-down cluster-up cluster-down deps bench-scale bench-peers image image-push

all: build

# Local control plane binaries (kube-apiserver & co. from Go modules, cached by version).
deps:
	tests/cluster/build.sh

build:
	cargo build --locked --all-targets

# Unit tests, then end-to-end tests on a local control plane started and stopped here.
test:
	tests/run.sh

# The GitOps tools' own code (opt-in, not in `make test`: cold, the Argo CD harness takes ~20 min
# to build and Flux's two controllers ~7 min of CPU each; cached by version after that): Argo CD's
# Lua health checks and actions run by Argo CD's util/lua on live objects, and real Flux
# deploying through rollguard (docs/testing.md).
test-gitops:
	tests/argocd/build.sh test
	tests/cluster/build.sh flux
	ROLLGUARD_E2E_IGNORED=1 tests/run.sh argocd:: flux::

# The real data path (opt-in, not in `make test`: Traefik's cold build takes ~10 min and 3.3 GB):
# Traefik v3.6 routing real HTTP to the pod server on loopback pod IPs, load through it, and
# policies judging the canary from Traefik's own metrics (docs/testing.md, "make test-gateway").
# Traffic goes to 127.0.0.0/8 only: the cluster refuses to start otherwise.
test-gateway:
	tests/cluster/build.sh traefik
	ROLLGUARD_GATEWAY=traefik ROLLGUARD_POD_CIDR=127.244.0.0/16 ROLLGUARD_E2E_IGNORED=1 \
		ROLLGUARD_E2E_THREADS=$${ROLLGUARD_E2E_THREADS:-1} tests/run.sh gateway::

unit:
	cargo test --locked --lib --bins --examples

lint:
	cargo fmt --all -- --check
	cargo clippy --locked --all-targets --features e2e -- -D warnings

fmt:
	cargo fmt --all

# Dependency policy (deny.toml): RustSec advisories (offline, from the snapshot in
# ../shared/advisory-db/ or ROLLGUARD_ADVISORY_BUNDLE; scripts/deny.sh prints its date),
# licences, duplicate crates, crates.io only. Installs the pinned cargo-deny when missing
# (measured: 18 min on 2 busy cores, 5 min of CPU). See docs/testing.md.
CARGO_DENY_VERSION := 0.20.2
deny:
	@cargo deny --version 2>/dev/null | grep -qx 'cargo-deny $(CARGO_DENY_VERSION)' || \
		cargo install cargo-deny --version $(CARGO_DENY_VERSION) --locked
	scripts/deny.sh

# Regenerate the CRDs from the Rust types (a test fails when crds/ is stale).
crds:
	cargo run --locked --quiet -- crd > crds/rollguard.yaml
	cargo run --locked --quiet -- crd --reference > docs/reference.md

# Everything generated: the CRDs and the reference, then the chart's copy of the CRDs, its
# README and deploy/rollguard.yaml (tests fail when any is stale).
generate: crds
	deploy/render.sh

# The operator image, with buildah and no daemon (scripts/image.sh; Containerfile): prints its
# size and digest. IMAGE=<registry>/<repo> names it; image-push pushes it there and writes
# build/image/values.yaml, which pins that digest for `helm install -f`.
IMAGE ?= ghcr.io/rollguard/rollguard
image:
	IMAGE=$(IMAGE) scripts/image.sh

image-push:
	IMAGE=$(IMAGE) scripts/image.sh --push

cluster-up:
	tests/cluster/cluster.sh up

cluster-down:
	tests/cluster/cluster.sh down

# The demo on a local control plane (or ROLLGUARD_KUBECONFIG's cluster); stays up for exploring.
# GATEWAY=traefik: on the real data path (real Traefik, real HTTP on loopback pod IPs, real load),
# printing the counts the pods and the load generator really saw.
GATEWAY ?=
demo:
	GATEWAY=$(GATEWAY) scripts/demo.sh up

demo-down:
	scripts/demo.sh down

# The scale benchmark (docs/operations/scale.md): its own local control plane, about 10 min
# for 1000 Deployments. Not part of `make test`.
DEPLOYMENTS ?= 1000
bench-scale:
	DEPLOYMENTS=$(DEPLOYMENTS) benches/scale/run.sh

# The benchmark against the real peers (docs/analysis/peers.md): Flagger and Argo Rollouts built
# from their module sources (cached by version) and rollguard, each a real controller on its own
# local control plane's namespaces, the same changes and traffic. 38 min warm (BENCH_MINUTES=35
# of changes; plus ~4.5 min for rollguard's release build after a commit). Not part of `make test`.
BENCH_MINUTES ?= 35
bench-peers:
	BENCH_MINUTES=$(BENCH_MINUTES) benches/peers/run.sh
