# rollguard: the two commands a newcomer needs are `make demo` and `make test`.
.PHONY: all build test unit lint fmt crds demo demo-down cluster-up cluster-down deps bench-scale

all: build

# Local control plane binaries (kube-apiserver & co. from Go modules, cached by version).
deps:
	tests/cluster/build.sh

build:
	cargo build --all-targets

# Unit tests, then end-to-end tests on a local control plane started and stopped here.
test:
	tests/run.sh

unit:
	cargo test --lib --bins --examples

lint:
	cargo fmt --all -- --check
	cargo clippy --all-targets --features e2e -- -D warnings

fmt:
	cargo fmt --all

# Regenerate the CRDs from the Rust types (a test fails when crds/ is stale).
crds:
	cargo run --quiet -- crd > crds/rollguard.yaml
	cargo run --quiet -- crd --reference > docs/reference.md

cluster-up:
	tests/cluster/cluster.sh up

cluster-down:
	tests/cluster/cluster.sh down

# The demo on a local control plane (or ROLLGUARD_KUBECONFIG's cluster); stays up for exploring.
demo:
	scripts/demo.sh up

demo-down:
	scripts/demo.sh down

# The scale benchmark (docs/operations/scale.md): its own local control plane, about 10 min
# for 1000 Deployments. Not part of `make test`.
DEPLOYMENTS ?= 1000
bench-scale:
	DEPLOYMENTS=$(DEPLOYMENTS) benches/scale/run.sh
