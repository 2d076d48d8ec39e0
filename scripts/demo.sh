#!/usr/bin/env bash
# rollguard's demo: a local control plane, Prometheus, the traffic simulator and the operator,
# then three changes to one service behind a Gateway API HTTPRoute:
#   1. a human change, promoted through 10% and 50%;
#   2. an AI-tagged change with a 5% error rate: a 1% slice, rolled back automatically;
#   3. the same change fixed: promoted after an approval.
# It leaves everything running for exploring; `make demo-down` stops it.
#
# Against an existing cluster: ROLLGUARD_KUBECONFIG=~/.kube/config make demo (only Prometheus,
# the simulator and the operator run locally).
#
# GATEWAY=traefik (make demo GATEWAY=traefik): the real data path instead of the simulator:
# Traefik (built once, ~10 min) routes real HTTP from the load generator to the pod server on
# the pods' loopback IPs (ROLLGUARD_POD_CIDR=127.245.0.0/16), the policy reads Traefik's own
# metrics, and each change prints what the pods and the users really counted.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
cd "$REPO"
DEMO=${ROLLGUARD_DEMO_DIR:-$REPO/.demo}
export ROLLGUARD_CLUSTER_DIR=$DEMO/cluster
NS=demo
KUBECTL=${KUBECTL:-kubectl}
source tests/cluster/versions.env
HELM=${ROLLGUARD_HELM:-${ROLLGUARD_CACHE:-$HOME/.cache/rollguard}/bin/helm-$HELM_VERSION}
GATEWAY=${GATEWAY:-}
case $GATEWAY in
  '') ;;
  traefik)
    [ -z "${ROLLGUARD_KUBECONFIG:-}" ] || { echo "GATEWAY=traefik runs on the local control plane only" >&2; exit 2; }
    # Its own loopback range, so it can run beside `make test-gateway` (127.244.0.0/16): the
    # pod server binds each pod IP.
    export ROLLGUARD_GATEWAY=traefik ROLLGUARD_POD_CIDR=127.245.0.0/16 ;;
  *) echo "GATEWAY must be traefik or empty, not '$GATEWAY'" >&2; exit 2 ;;
esac

if [ -t 1 ]; then B=$'\e[1m'; G=$'\e[32m'; R=$'\e[31m'; Y=$'\e[33m'; D=$'\e[2m'; N=$'\e[0m'; else B= G= R= Y= D= N=; fi
t0=$(date +%s)
say() { printf '%s[demo %3ss]%s %s\n' "$D" "$(( $(date +%s) - t0 ))" "$N" "$*"; }
step() { printf '\n%s== %s ==%s\n' "$B" "$*" "$N"; }

case "${1:-up}" in
  down)
    if [ -f "$DEMO/pids" ]; then
      while read -r pid; do kill "$pid" 2>/dev/null || true; done <"$DEMO/pids"
    fi
    tests/cluster/cluster.sh down || true
    rm -rf "$DEMO"
    echo "demo stopped"
    exit 0 ;;
  up) ;;
  *) echo "usage: scripts/demo.sh [up|down]" >&2; exit 2 ;;
esac

mkdir -p "$DEMO"
step "Building (first run: ~20 min for the Kubernetes binaries and ~5 min for rollguard on 2 cores; cached afterwards)"
tests/cluster/build.sh 2>&1 | sed "s/^/  /"
if [ "$GATEWAY" = traefik ]; then
  step "Building Traefik (first run: ~10 min, 3.3 GB; cached afterwards)"
  tests/cluster/build.sh traefik 2>&1 | sed "s/^/  /"
fi
say "cargo build (rollguard, the traffic simulator, the pod server and the load generator)"
cargo build --locked --quiet --bin rollguard --example trafficsim --example podserver --example loadgen
TARGET=${CARGO_TARGET_DIR:-$REPO/target}
RG=$TARGET/debug/rollguard
SIM=$TARGET/debug/examples/trafficsim

step "Starting the local control plane and Prometheus"
tests/cluster/cluster.sh up 2>&1 | sed "s/^/  /"
# shellcheck disable=SC1091
source "$ROLLGUARD_CLUSTER_DIR/env"
$KUBECTL apply --server-side -f crds/rollguard.yaml >/dev/null
$KUBECTL wait --for=condition=Established crd/rolloutpolicies.rollguard.dev crd/rolloutruns.rollguard.dev >/dev/null
say "CRDs installed"

# The operator runs as a local process, but with the chart's ServiceAccount and RBAC: the
# demo proves the least-privilege rules are enough.
$KUBECTL create namespace rollguard-system --dry-run=client -o yaml | $KUBECTL apply -f - >/dev/null
"$HELM" template rollguard charts/rollguard --namespace rollguard-system \
  --show-only templates/serviceaccount.yaml --show-only templates/rbac.yaml \
  --show-only templates/pause-gate.yaml --show-only templates/approval-policy.yaml \
  --show-only templates/aggregate-roles.yaml \
  --api-versions admissionregistration.k8s.io/v1/MutatingAdmissionPolicy \
  | $KUBECTL apply -f - >/dev/null
TOKEN=$($KUBECTL -n rollguard-system create token rollguard --duration=24h)
SERVER=$($KUBECTL config view --minify -o jsonpath='{.clusters[0].cluster.server}')
CA_DATA=$(base64 -w0 <"$ROLLGUARD_CA_FILE")
cat >"$DEMO/operator.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters: [{name: demo, cluster: {server: "$SERVER", certificate-authority-data: "$CA_DATA"}}]
users: [{name: rollguard, user: {token: "$TOKEN"}}]
contexts: [{name: demo, context: {cluster: demo, user: rollguard, namespace: rollguard-system}}]
current-context: demo
EOF
say "installed the chart's ServiceAccount, RBAC, pause gate and approval policy; the operator uses its token"

step "The service: Deployment checkout (3 pods), its Service, an HTTPRoute taking 2000 requests/s"
$KUBECTL create namespace $NS --dry-run=client -o yaml | $KUBECTL apply -f - >/dev/null
# On the real data path the route attaches to Traefik's Gateway with its own host, and the policy
# reads Traefik's counters through the traefik preset (one Traefik service per backendRef,
# <ns>-<Service>-http-<port>): the templates give way to `preset: traefik`.
real_path() {
  if [ "$GATEWAY" = traefik ]; then
    sed -e "s|parentRefs: \[{name: public-gateway}\]|parentRefs: [{name: public, namespace: rollguard-gateway}]\n  hostnames: [checkout.$NS.test]|" \
      -e 's|^    requests: .*|    preset: traefik|' \
      -e '/^    errors: .*/d'
  else cat; fi
}
sed "s|PROMETHEUS_URL|$ROLLGUARD_PROMETHEUS_URL|" scripts/demo/app.yaml | real_path | $KUBECTL -n $NS apply -f - | sed "s/^/  /"
# Two people: dev@example.com changes the Deployment (and may approve runs too), lead@example.com
# approves. The demo's admin acts as each of them (kubectl --as).
DEV=dev@example.com LEAD=lead@example.com
{
  $KUBECTL -n $NS create role deployer --verb=get,list,watch,patch --resource=deployments.apps --dry-run=client -o yaml
  echo ---
  $KUBECTL -n $NS create rolebinding deployer --role=deployer --user=$DEV --dry-run=client -o yaml
  echo ---
  $KUBECTL -n $NS create rolebinding approvers --clusterrole=rollguard-approver --user=$DEV --user=$LEAD --dry-run=client -o yaml
} | $KUBECTL apply -f - >/dev/null
say "$DEV deploys (a Role to patch Deployments) and, like $LEAD, holds the chart's rollguard-approver role"

: >"$DEMO/pids"
KUBECONFIG=$DEMO/operator.kubeconfig "$RG" controller --metrics-addr 127.0.0.1:0 \
  --prometheus-address "$ROLLGUARD_PROMETHEUS_URL" --log-text >"$DEMO/operator.log" 2>&1 &
echo $! >>"$DEMO/pids"
if [ "$GATEWAY" = traefik ]; then
  "$TARGET/debug/examples/podserver" --namespace $NS --publish-endpoints --listen 127.0.0.1:0 \
    >"$DEMO/podserver.out" 2>"$DEMO/podserver.log" &
  echo $! >>"$DEMO/pids"
  for _ in $(seq 1 100); do [ -s "$DEMO/podserver.out" ] && break; sleep 0.1; done
  PODS_ADDR=$(head -1 "$DEMO/podserver.out" | sed 's/^listening on //')
  say "operator and pod server running (real HTTP on each pod's loopback IP; logs in $DEMO/)"
else
  "$SIM" --namespace $NS --listen 127.0.0.1:0 >"$DEMO/trafficsim.out" 2>"$DEMO/trafficsim.log" &
  echo $! >>"$DEMO/pids"
  for _ in $(seq 1 100); do [ -s "$DEMO/trafficsim.out" ] && break; sleep 0.1; done
  SIM_ADDR=$(head -1 "$DEMO/trafficsim.out" | sed 's/^listening on //')
  printf '[{"targets":["%s"],"labels":{"job":"trafficsim"}}]\n' "$SIM_ADDR" >"$ROLLGUARD_PROM_TARGETS_DIR/trafficsim.json"
  say "operator and traffic simulator running (logs in $DEMO/)"
fi
OP_PID=$(head -1 "$DEMO/pids")
gate() { $KUBECTL -n $NS get rolloutpolicy shop -o jsonpath='{.status.conditions[?(@.type=="PauseGate")].status}' 2>/dev/null; }
for _ in $(seq 1 100); do
  [ -n "$($KUBECTL -n $NS get deploy checkout -o jsonpath='{.metadata.annotations.rollguard\.dev/stable-revision}')" ] \
    && [ "$(gate)" = "True" ] \
    && [ "$($KUBECTL -n $NS get deploy checkout -o jsonpath='{.spec.paused}')" != "true" ] && break
  kill -0 "$OP_PID" 2>/dev/null || { echo "${R}the operator stopped:${N}"; tail -5 "$DEMO/operator.log"; exit 1; }
  sleep 0.3
done
say "checkout is governed: on its stable revision, left unpaused (the pause gate pauses a new template at admission), traffic split by the HTTPRoute"
if [ "$GATEWAY" = traefik ]; then
  stable_servers() {
    curl -fsS "$ROLLGUARD_TRAEFIK_API/api/http/services/$NS-checkout-stable-http-80@kubernetesgateway" 2>/dev/null |
      python3 -c 'import json,sys; print(len(json.load(sys.stdin)["loadBalancer"]["servers"]))' 2>/dev/null || echo 0
  }
  for _ in $(seq 1 100); do [ "$(stable_servers)" = 3 ] && break; sleep 0.3; done
  # The network rule: every endpoint address is a loopback address before a request is sent
  # (the load generator checks Traefik's servers itself, before and during the load).
  bad=$($KUBECTL -n $NS get endpointslices -o jsonpath='{range .items[*].endpoints[*]}{.addresses[0]}{"\n"}{end}' | grep -v '^127\.' | grep . || true)
  [ -z "$bad" ] || { echo "${R}refusing to send: endpoint addresses outside 127.0.0.0/8: $bad${N}"; exit 1; }
  "$TARGET/debug/examples/loadgen" --target "$ROLLGUARD_GATEWAY_URL" --host "checkout.$NS.test" --rps 800 \
    --traefik-api "$ROLLGUARD_TRAEFIK_API" --listen 127.0.0.1:0 >"$DEMO/loadgen.out" 2>"$DEMO/loadgen.log" &
  echo $! >>"$DEMO/pids"
  for _ in $(seq 1 100); do [ -s "$DEMO/loadgen.out" ] && break; sleep 0.1; done
  LOAD_ADDR=$(head -1 "$DEMO/loadgen.out" | sed 's/^listening on //')
  say "Traefik routes checkout.$NS.test to the 3 stable pods (all endpoint addresses in 127.0.0.0/8); the load generator sends 800 requests/s through it"
  counts() { python3 scripts/demo/real_counts.py "$PODS_ADDR" "$LOAD_ADDR" "$DEMO/counts-$1.json" "${@:2}"; }
fi
sleep 3

runs() { $KUBECTL -n $NS get rolloutruns -l rollguard.dev/deployment=checkout -o name | wc -l; }

# Prints the newest run's progress, one line per change, until it ends or reaches $1.
# $2: how many runs existed before the change (waits for the new one).
follow() {
  local until=$1 before=$2 last="" line phase
  for _ in $(seq 1 100); do [ "$(runs)" -gt "$before" ] && break; sleep 0.3; done
  for _ in $(seq 1 900); do
    line=$($KUBECTL -n $NS get rolloutruns -l rollguard.dev/deployment=checkout \
      --sort-by=.metadata.creationTimestamp -o json | python3 scripts/demo/run_line.py 2>/dev/null || true)
    phase=${line%%|*}
    if [ -n "$line" ] && [ "$line" != "$last" ]; then printf '  %-17s %s\n' "$phase" "${line#*|}"; last=$line; fi
    case "$phase" in Succeeded|RolledBack|Aborted|Superseded) return 0 ;; esac
    [ "$phase" = "$until" ] && return 0
    sleep 0.5
  done
}

template() {  # error rate, image, origin; made by $DEV
  $KUBECTL -n $NS --as $DEV patch deploy checkout --type merge -p "{\"spec\":{\"template\":{\"metadata\":{\"annotations\":{\"sim.rollguard.dev/error-rate\":\"$1\",\"rollguard.dev/change-origin\":\"$3\"}},\"spec\":{\"containers\":[{\"name\":\"app\",\"image\":\"$2\"}]}}}}" >/dev/null
}

step "1. A human change (checkout:2) rolls out through 10% and 50%"
[ "$GATEWAY" != traefik ] || counts 1 save
n=$(runs); template 0.001 example.com/checkout:2 human
follow none "$n"
[ "$GATEWAY" != traefik ] || counts 1 </dev/null
"$RG" get -n $NS checkout | sed "s/^/  /"

step "2. An AI-assisted change (checkout:3) with a 5% error rate"
say "CI tagged it: rollguard.dev/change-origin=ai-assisted -> the ai-assisted tier, first slice 1%"
# The canary's counters carry change 1's traffic: the evidence counts from this snapshot.
if [ "$GATEWAY" = traefik ]; then counts 2 save; else curl -fsS "http://$SIM_ADDR/stats" >"$DEMO/stats-before-change-2.json"; fi
n=$(runs); template 0.05 example.com/checkout:3 ai-assisted
follow none "$n"
RUN=$($KUBECTL -n $NS get rolloutruns -l rollguard.dev/deployment=checkout --sort-by=.metadata.creationTimestamp -o name | tail -1)
if [ "$GATEWAY" = traefik ]; then
  sleep 3  # Traefik applies the route's 100:0 after its providers' throttle (2 s)
  $KUBECTL -n $NS get "$RUN" -o json | counts 2
else
  $KUBECTL -n $NS get "$RUN" -o json |
    python3 scripts/demo/evidence.py "$SIM_ADDR" checkout-canary "$DEMO/stats-before-change-2.json"
fi
say "traffic is back on stable; the revision is marked failed and will not be retried until the template changes"

step "3. The fix (checkout:4), still AI-assisted: it needs an approval after its slices"
[ "$GATEWAY" != traefik ] || counts 3 save
n=$(runs); template 0.001 example.com/checkout:4 ai-assisted
follow AwaitingApproval "$n"
say "four eyes: $DEV wrote the change, so $DEV's approval is refused"
set +e; "$RG" approve -n $NS checkout --as $DEV 2>&1 | sed "s/^/  /"; code=${PIPESTATUS[0]}; set -e
[ "$code" = 6 ] || { echo "${R}the author's own approval was not refused (exit $code)${N}"; exit 1; }
say "$LEAD approves, recorded as the user the API server authenticates (not a name typed on the command line)"
"$RG" approve -n $NS checkout --as $LEAD | sed "s/^/  /"
follow none "$n"
"$RG" get -n $NS checkout | sed "s/^/  /"
[ "$GATEWAY" != traefik ] || counts 3 </dev/null

step "Summary"
$KUBECTL -n $NS get rolloutruns | sed "s/^/  /"
if [ "$GATEWAY" = traefik ]; then
  QUERY="sum by (service, code) (rate(traefik_service_requests_total{service=~\"$NS-.*\"}[1m]))"
  LOGS="$DEMO/operator.log, $DEMO/podserver.log, $DEMO/loadgen.log, $ROLLGUARD_CLUSTER_DIR/logs/traefik.log"
else
  QUERY="sum by (workload) (rate(http_requests_total{namespace=\"$NS\"}[1m]))"
  LOGS="$DEMO/operator.log, $DEMO/trafficsim.log"
fi
cat <<EOF

  Everything is still running. Try:
    source $ROLLGUARD_CLUSTER_DIR/env
    $RG get -n $NS                      # runs and outcomes (kubectl rollguard get, once linked)
    $RG get -n $NS checkout --watch     # then, in another terminal, change the template:
    kubectl -n $NS patch deploy checkout --type merge -p '{"spec":{"template":{"metadata":{"annotations":{"sim.rollguard.dev/error-rate":"0.2"}}}}}'
    kubectl -n $NS describe rolloutrun  # the audit record: plan, samples, evidence, approvals
    kubectl -n $NS get events --field-selector reason=RolledBack
    curl -s $ROLLGUARD_PROMETHEUS_URL/api/v1/query --data-urlencode 'query=$QUERY'
  Logs: $LOGS
  Stop everything: make demo-down
  Demo took $(( $(date +%s) - t0 ))s.
EOF
