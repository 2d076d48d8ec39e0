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
say "cargo build (rollguard and the traffic simulator)"
cargo build --locked --quiet --bin rollguard --example trafficsim
RG=$REPO/target/debug/rollguard
SIM=$REPO/target/debug/examples/trafficsim

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
sed "s|PROMETHEUS_URL|$ROLLGUARD_PROMETHEUS_URL|" scripts/demo/app.yaml | $KUBECTL -n $NS apply -f - | sed "s/^/  /"
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
"$SIM" --namespace $NS --listen 127.0.0.1:0 >"$DEMO/trafficsim.out" 2>"$DEMO/trafficsim.log" &
echo $! >>"$DEMO/pids"
for _ in $(seq 1 100); do [ -s "$DEMO/trafficsim.out" ] && break; sleep 0.1; done
SIM_ADDR=$(head -1 "$DEMO/trafficsim.out" | sed 's/^listening on //')
printf '[{"targets":["%s"],"labels":{"job":"trafficsim"}}]\n' "$SIM_ADDR" >"$ROLLGUARD_PROM_TARGETS_DIR/trafficsim.json"
say "operator and traffic simulator running (logs in $DEMO/)"
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
n=$(runs); template 0.001 example.com/checkout:2 human
follow none "$n"
"$RG" get -n $NS checkout | sed "s/^/  /"

step "2. An AI-assisted change (checkout:3) with a 5% error rate"
say "CI tagged it: rollguard.dev/change-origin=ai-assisted -> the ai-assisted tier, first slice 1%"
# The canary's counters carry change 1's traffic: the evidence counts from this snapshot.
curl -fsS "http://$SIM_ADDR/stats" >"$DEMO/stats-before-change-2.json"
n=$(runs); template 0.05 example.com/checkout:3 ai-assisted
follow none "$n"
RUN=$($KUBECTL -n $NS get rolloutruns -l rollguard.dev/deployment=checkout --sort-by=.metadata.creationTimestamp -o name | tail -1)
$KUBECTL -n $NS get "$RUN" -o json |
  python3 scripts/demo/evidence.py "$SIM_ADDR" checkout-canary "$DEMO/stats-before-change-2.json"
say "traffic is back on stable; the revision is marked failed and will not be retried until the template changes"

step "3. The fix (checkout:4), still AI-assisted: it needs an approval after its slices"
n=$(runs); template 0.001 example.com/checkout:4 ai-assisted
follow AwaitingApproval "$n"
say "four eyes: $DEV wrote the change, so $DEV's approval is refused"
set +e; "$RG" approve -n $NS checkout --as $DEV 2>&1 | sed "s/^/  /"; code=${PIPESTATUS[0]}; set -e
[ "$code" = 6 ] || { echo "${R}the author's own approval was not refused (exit $code)${N}"; exit 1; }
say "$LEAD approves, recorded as the user the API server authenticates (not a name typed on the command line)"
"$RG" approve -n $NS checkout --as $LEAD | sed "s/^/  /"
follow none "$n"
"$RG" get -n $NS checkout | sed "s/^/  /"

step "Summary"
$KUBECTL -n $NS get rolloutruns | sed "s/^/  /"
cat <<EOF

  Everything is still running. Try:
    source $ROLLGUARD_CLUSTER_DIR/env
    $RG get -n $NS                      # runs and outcomes (kubectl rollguard get, once linked)
    $RG get -n $NS checkout --watch     # then, in another terminal, change the template:
    kubectl -n $NS patch deploy checkout --type merge -p '{"spec":{"template":{"metadata":{"annotations":{"sim.rollguard.dev/error-rate":"0.2"}}}}}'
    kubectl -n $NS describe rolloutrun  # the audit record: plan, samples, evidence, approvals
    kubectl -n $NS get events --field-selector reason=RolledBack
    curl -s $ROLLGUARD_PROMETHEUS_URL/api/v1/query --data-urlencode 'query=sum by (workload) (rate(http_requests_total{namespace="$NS"}[1m]))'
  Logs: $DEMO/operator.log, $DEMO/trafficsim.log
  Stop everything: make demo-down
  Demo took $(( $(date +%s) - t0 ))s.
EOF
