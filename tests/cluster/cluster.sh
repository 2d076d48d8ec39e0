#!/usr/bin/env bash
# rollguard's local Kubernetes control plane and Prometheus, on loopback only.
#
#   tests/cluster/cluster.sh up [--nodes N]   start etcd, kube-apiserver, kube-controller-manager,
#                                             kube-scheduler, kwok (N fake nodes) and Prometheus
#   tests/cluster/cluster.sh down             stop the recorded PIDs and remove the cluster dir
#   tests/cluster/cluster.sh logs [N]         last N (50) lines of every component log
#   tests/cluster/cluster.sh env              path and content of the env file to source
#   tests/cluster/cluster.sh stop|start|restart COMPONENT   (kube-apiserver, prometheus, ...)
#   tests/cluster/cluster.sh status           recorded components and whether they are alive
#
# Environment:
#   ROLLGUARD_CLUSTER_DIR  cluster dir (default <repo>/.cluster)
#   ROLLGUARD_CACHE        binary cache (default ~/.cache/rollguard), filled by build.sh
#   ROLLGUARD_NODES        number of kwok nodes (default 3)
#   ROLLGUARD_{ETCD,ETCD_PEER,ETCD_METRICS,APISERVER,KCM,SCHEDULER,PROMETHEUS}_PORT
#                          fixed ports; unset ones are picked free at `up`
#   ROLLGUARD_KUBECONFIG   at `up`: use this existing cluster (kind, k3d, ...) instead of starting
#                          a control plane; only Prometheus is started locally
#   ROLLGUARD_AUDIT_LOG    at `up`, set to 1: kube-apiserver writes a Metadata-level audit log
#                          (JSON lines, no rotation) to <dir>/audit/audit.log, exported as
#                          ROLLGUARD_AUDIT_LOG_FILE (benches/scale counts the operator's requests)
#   ROLLGUARD_POD_CIDR     at `up`: the range kwok assigns pod IPs from (default 10.244.0.0/16)
#   ROLLGUARD_GATEWAY      at `up`, set to traefik: the real data path (docs/testing.md): Traefik
#                          (build.sh traefik) beside the control plane, GatewayClass `traefik` and
#                          Gateway rollguard-gateway/public on 127.0.0.1, scraped by Prometheus.
#                          Needs ROLLGUARD_POD_CIDR inside 127.0.0.0/8 (refused otherwise): the
#                          only range traffic may go to on these machines
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
# shellcheck source=versions.env
source "$HERE/versions.env"
CACHE=${ROLLGUARD_CACHE:-$HOME/.cache/rollguard}
BIN=$CACHE/bin
DIR=${ROLLGUARD_CLUSTER_DIR:-$REPO/.cluster}
case $DIR in /*) ;; *) DIR=$PWD/$DIR ;; esac
MARKER=.rollguard-cluster
LOCAL_KUBECONFIG_TAG='# rollguard-local-control-plane'
KUBECTL=${KUBECTL:-kubectl}

ETCD=$BIN/etcd-$ETCD_VERSION
APISERVER=$BIN/kube-apiserver-$K8S_VERSION
KCM=$BIN/kube-controller-manager-$K8S_VERSION
SCHEDULER=$BIN/kube-scheduler-$K8S_VERSION
KWOK=$BIN/kwok-$KWOK_VERSION
KWOK_STAGES=$BIN/kwok-stages-$KWOK_VERSION.yaml
GATEWAY_CRDS=$BIN/gateway-api-standard-$GATEWAY_API_VERSION.yaml
TRAEFIK=$BIN/traefik-$TRAEFIK_VERSION
POD_CIDR=${ROLLGUARD_POD_CIDR:-10.244.0.0/16}
GATEWAY=${ROLLGUARD_GATEWAY:-}
# The real gateway's namespace and Gateway (one for every test; routes attach from any namespace).
GATEWAY_NS=rollguard-gateway
GATEWAY_NAME=public
# shellcheck source=hashes.sh
source "$HERE/hashes.sh"

say() { printf '[cluster %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }
now() { echo "${EPOCHREALTIME/,/.}"; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}'; }

# --- pid bookkeeping ----------------------------------------------------------------------------
# A recorded PID counts as ours only while its command line mentions the cluster dir: every
# component gets a flag pointing into it, so a recycled PID is never signalled.
ours() { [ -r "/proc/$1/cmdline" ] && tr '\0' ' ' <"/proc/$1/cmdline" | grep -qF -- "$DIR/"; }
pid_of() { [ -f "$DIR/pids" ] && awk -v n="$1" '$1==n{print $2}' "$DIR/pids" | tail -1; }
record_pid() {
  local tmp=$DIR/pids.tmp
  { [ -f "$DIR/pids" ] && awk -v n="$1" '$1!=n' "$DIR/pids"; [ -n "${2:-}" ] && echo "$1 $2"; } >"$tmp" || true
  mv "$tmp" "$DIR/pids"
}
live_pids() {
  [ -f "$DIR/pids" ] || return 0
  local name pid
  while read -r name pid; do ours "$pid" && echo "$name $pid"; done <"$DIR/pids"
}
lock() { mkdir -p "$DIR"; exec 9>"$DIR/.lock"; flock 9; }

# --- processes ----------------------------------------------------------------------------------
# write_cmd NAME ARGV...: keep the exact command line in cmd/NAME so `start` re-runs it.
write_cmd() {
  local name=$1; shift
  { echo '#!/usr/bin/env bash'; printf 'exec'; printf ' %q' "$@"; echo; } >"$DIR/cmd/$name"
  chmod +x "$DIR/cmd/$name"
}
# launch NAME: start cmd/NAME in its own session, log to logs/NAME.log, record the PID.
launch() {
  local name=$1 pid
  [ -f "$DIR/cmd/$name" ] || die "no command recorded for '$name' in $DIR/cmd"
  printf '\n===== %s start %s =====\n' "$name" "$(date -Is)" >>"$DIR/logs/$name.log"
  # setsid execs in place (we are not a group leader), so $! is the component's own PID.
  setsid bash "$DIR/cmd/$name" </dev/null >>"$DIR/logs/$name.log" 2>&1 9>&- &
  pid=$!
  record_pid "$name" "$pid"
}
# stop_pids "name pid"...: TERM, then KILL whatever is left after ${STOP_GRACE:-5} s.
stop_pids() {
  local line pids=() names=() name pid i
  for line in "$@"; do
    read -r name pid <<<"$line"
    ours "$pid" && { kill -TERM "$pid" 2>/dev/null || true; pids+=("$pid"); names+=("$name"); }
  done
  [ ${#pids[@]} -eq 0 ] && return 0
  local tries=$(( ${STOP_GRACE:-5} * 10 ))
  while [ "$tries" -gt 0 ]; do
    local alive=0; for pid in "${pids[@]}"; do ours "$pid" && alive=1; done
    [ $alive = 0 ] && return 0
    sleep 0.1; tries=$((tries - 1))
  done
  for i in "${!pids[@]}"; do
    ours "${pids[$i]}" || continue
    say "${names[$i]} (pid ${pids[$i]}) still running ${STOP_GRACE:-5} s after TERM: KILL"
    kill -KILL "${pids[$i]}" 2>/dev/null || true
  done
  tries=20
  while [ "$tries" -gt 0 ]; do
    local alive=0; for pid in "${pids[@]}"; do ours "$pid" && alive=1; done
    [ $alive = 0 ] && return 0
    sleep 0.1; tries=$((tries - 1))
  done
  return 0
}

# wait_for COMPONENT TIMEOUT_S DESCRIPTION CMD...: poll CMD until it succeeds. On timeout, or when
# the component's process has died, name it and print the tail of its log, then fail.
wait_for() {
  local comp=$1 timeout=$2 what=$3; shift 3
  local deadline=$(( $(date +%s) + timeout )) pid
  while :; do
    if "$@" >/dev/null 2>&1; then return 0; fi
    pid=$(pid_of "$comp" || true)
    if [ -n "$pid" ] && ! ours "$pid"; then fail_component "$comp" "$what: process $pid exited"; fi
    if [ "$(date +%s)" -ge "$deadline" ]; then fail_component "$comp" "$what: not within ${timeout}s"; fi
    sleep 0.2
  done
}
fail_component() {
  say "ERROR: $1: $2"
  if [ -f "$DIR/logs/$1.log" ]; then
    echo "----- last 40 lines of $DIR/logs/$1.log -----" >&2; tail -n 40 "$DIR/logs/$1.log" >&2
    echo "-----" >&2
  fi
  FAILED=1; exit 1
}

k() { "$KUBECTL" --kubeconfig "$DIR/kubeconfig" --request-timeout=15s "$@"; }

free_ports() {
  python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# --- up -----------------------------------------------------------------------------------------
# verified FILE...: each FILE is present and has the sha256 build.sh recorded when it built it
# (tests/cluster/hashes.sh). A missing or differing one is (re)built by build.sh; one without a
# record stops `up` with what to do.
verified() {
  local f rc
  for f in "$@"; do
    rc=0; check_hash "$f" || rc=$?
    case $rc in
      0) ;;
      1|2) return 1 ;;
      *) die "refusing to run $f unverified (see above)" ;;
    esac
  done
}

ensure_binaries() {
  local missing=() t
  t=$(now)
  if [ "${1:-}" != existing ]; then
    verified "$APISERVER" "$KCM" "$SCHEDULER" || missing+=(k8s)
    verified "$ETCD" || missing+=(etcd)
    verified "$KWOK" "$KWOK_STAGES" || missing+=(kwok)
  fi
  verified "$GATEWAY_CRDS" || missing+=(gateway-api)
  [ "$GATEWAY" != traefik ] || verified "$TRAEFIK" || missing+=(traefik)
  say "cached binaries checked against their recorded sha256 in $(elapsed "$t")s"
  command -v prometheus >/dev/null || missing+=(prometheus)
  [ ${#missing[@]} -eq 0 ] && return 0
  say "building missing components: ${missing[*]} (see tests/cluster/build.sh)"
  "$HERE/build.sh" "${missing[@]}"
}

gen_pki() {
  local p=$DIR/pki
  mkdir -p "$p"
  ( cd "$p"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
      -subj "/CN=rollguard-local-ca" -keyout ca.key -out ca.crt \
      -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=kube-apiserver" \
      -keyout apiserver.key -out apiserver.csr
    printf '%s\n' \
      'subjectAltName=DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:10.0.0.1' \
      'basicConstraints=critical,CA:FALSE' 'keyUsage=critical,digitalSignature,keyEncipherment' \
      'extendedKeyUsage=serverAuth' >apiserver.ext
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile apiserver.ext -out apiserver.crt
    # Front-proxy client cert: fills the requestheader CA that kube-controller-manager and
    # kube-scheduler look up (and lets aggregated API servers work).
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=front-proxy-client" \
      -keyout front-proxy-client.key -out front-proxy-client.csr
    printf '%s\n' 'keyUsage=critical,digitalSignature' 'extendedKeyUsage=clientAuth' >client.ext
    openssl x509 -req -in front-proxy-client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile client.ext -out front-proxy-client.crt
    openssl genrsa -out sa.key 2048
    openssl rsa -in sa.key -pubout -out sa.pub
    echo "$(openssl rand -hex 24),rollguard-admin,rollguard-admin,\"system:masters\"" >tokens.csv
  ) >"$DIR/logs/pki.log" 2>&1 || { tail -20 "$DIR/logs/pki.log" >&2; die "openssl failed"; }
  chmod 600 "$p"/*.key "$p/tokens.csv"
}

write_kubeconfig() {
  local token; token=$(cut -d, -f1 "$DIR/pki/tokens.csv")
  cat >"$DIR/kubeconfig" <<EOF
$LOCAL_KUBECONFIG_TAG (generated by tests/cluster/cluster.sh; removed by 'down')
apiVersion: v1
kind: Config
clusters:
- name: rollguard-local
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority-data: $(base64 -w0 <"$DIR/pki/ca.crt")
users:
- name: rollguard-admin
  user:
    token: $token
contexts:
- name: rollguard-local
  context: {cluster: rollguard-local, user: rollguard-admin, namespace: default}
current-context: rollguard-local
EOF
  chmod 600 "$DIR/kubeconfig"
}

write_env() {
  local ca=$1 existing=$2
  {
    echo "# rollguard test cluster: source this file (written by tests/cluster/cluster.sh up)"
    printf 'export KUBECONFIG=%q\n' "$DIR/kubeconfig"
    printf 'export ROLLGUARD_KUBECONFIG=%q\n' "$DIR/kubeconfig"
    printf 'export ROLLGUARD_PROMETHEUS_URL=%q\n' "http://127.0.0.1:$PROMETHEUS_PORT"
    printf 'export ROLLGUARD_PROM_TARGETS_DIR=%q\n' "$DIR/prometheus/targets"
    printf 'export ROLLGUARD_CLUSTER_DIR=%q\n' "$DIR"
    printf 'export ROLLGUARD_CA_FILE=%q\n' "$ca"
    printf 'export ROLLGUARD_EXISTING_CLUSTER=%q\n' "$existing"
    [ -z "${AUDIT_LOG:-}" ] || printf 'export ROLLGUARD_AUDIT_LOG_FILE=%q\n' "$AUDIT_LOG"
    [ "$existing" = 1 ] || printf 'export ROLLGUARD_POD_CIDR=%q\n' "$POD_CIDR"
    if [ "$GATEWAY" = traefik ]; then
      printf 'export ROLLGUARD_GATEWAY=traefik\n'
      printf 'export ROLLGUARD_GATEWAY_URL=%q\n' "http://127.0.0.1:$TRAEFIK_WEB_PORT"
      printf 'export ROLLGUARD_GATEWAY_REF=%q\n' "$GATEWAY_NS/$GATEWAY_NAME"
      printf 'export ROLLGUARD_TRAEFIK_API=%q\n' "http://127.0.0.1:$TRAEFIK_API_PORT"
    fi
  } >"$DIR/env"
}

prepare_prometheus() {
  mkdir -p "$DIR/prometheus/targets" "$DIR/prometheus/data"
  cat >"$DIR/prometheus/prometheus.yml" <<EOF
# Written by tests/cluster/cluster.sh. Add scrape targets by writing file_sd JSON files to
# $DIR/prometheus/targets/<name>.json, e.g. [{"targets":["127.0.0.1:8080"],"labels":{"job":"demo"}}]
global:
  scrape_interval: 1s
  evaluation_interval: 1s
  scrape_timeout: 1s
scrape_configs:
- job_name: prometheus
  static_configs:
  - targets: ["127.0.0.1:$PROMETHEUS_PORT"]
- job_name: file_sd
  file_sd_configs:
  - files: ["$DIR/prometheus/targets/*.json"]
    refresh_interval: 1s
EOF
  write_cmd prometheus "$(command -v prometheus)" \
    --config.file="$DIR/prometheus/prometheus.yml" \
    --storage.tsdb.path="$DIR/prometheus/data" \
    --storage.tsdb.retention.time=1d \
    --web.listen-address="127.0.0.1:$PROMETHEUS_PORT" \
    --web.enable-lifecycle
}

prometheus_ready() { curl -fsS -m 2 "http://127.0.0.1:$PROMETHEUS_PORT/-/ready"; }
etcd_healthy() { curl -fsS -m 2 "http://127.0.0.1:$ETCD_PORT/health" | grep -q '"health":"true"'; }
apiserver_ready() {
  curl -fsS -m 3 --cacert "$DIR/pki/ca.crt" -H "Authorization: Bearer $(cut -d, -f1 "$DIR/pki/tokens.csv")" \
    "https://127.0.0.1:$APISERVER_PORT/readyz"
}
scheduler_healthy() { curl -fsSk -m 2 "https://127.0.0.1:$SCHEDULER_PORT/healthz"; }
kcm_healthy() { curl -fsSk -m 2 "https://127.0.0.1:$KCM_PORT/healthz"; }
nodes_ready() {
  local n; n=$(k get nodes -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c '^True$')
  [ "$n" -ge "$NODES" ]
}
default_sa() { k -n default get serviceaccount default; }

# Apply the Gateway API standard CRDs (and their admission policy) and wait until Established.
install_gateway_api() {
  local out crds
  out=$(k apply --server-side --force-conflicts -f "$GATEWAY_CRDS" -o name) || return 1
  crds=$(grep '^customresourcedefinition' <<<"$out" || true)
  # shellcheck disable=SC2086
  [ -z "$crds" ] || k wait --for=condition=Established --timeout=60s $crds
}

node_manifest() {
  local i
  for ((i = 0; i < NODES; i++)); do cat <<EOF
---
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$i
  annotations: {node.alpha.kubernetes.io/ttl: "0", kwok.x-k8s.io/node: fake}
  labels: {kubernetes.io/hostname: kwok-node-$i, kubernetes.io/os: linux, kubernetes.io/arch: amd64, type: kwok}
spec: {}
status:
  capacity: {cpu: "64", memory: 512Gi, pods: "250"}
  allocatable: {cpu: "64", memory: 512Gi, pods: "250"}
EOF
  done
}

assign_ports() {
  local names=(ETCD ETCD_PEER ETCD_METRICS APISERVER KCM SCHEDULER PROMETHEUS TRAEFIK_WEB TRAEFIK_API) free i=0 n var
  read -r -a free <<<"$(free_ports ${#names[@]})"
  for n in "${names[@]}"; do
    var=ROLLGUARD_${n}_PORT
    printf -v "${n}_PORT" '%s' "${!var:-${free[$i]}}"
    i=$((i + 1))
  done
  for n in "${names[@]}"; do var=${n}_PORT; echo "${n}_PORT=${!var}"; done >"$DIR/ports"
}

cleanup_failed_up() {
  if [ "${FAILED:-0}" = 1 ] || [ "${UP_DONE:-0}" != 1 ]; then
    mapfile -t started < <(live_pids)
    if [ ${#started[@]} -gt 0 ]; then
      say "up failed: stopping what it started; logs kept in $DIR/logs ('$0 down' removes the dir)"
      STOP_GRACE=3 stop_pids "${started[@]}"
    fi
    rm -f "$DIR/pids"
  fi
}

cmd_up() {
  NODES=${ROLLGUARD_NODES:-3}
  while [ $# -gt 0 ]; do
    case $1 in
      --nodes) NODES=$2; shift 2 ;;
      --nodes=*) NODES=${1#*=}; shift ;;
      *) die "up: unknown argument $1" ;;
    esac
  done
  [[ $NODES =~ ^[0-9]+$ ]] || die "--nodes must be a number"
  case $GATEWAY in
    '') ;;
    traefik)
      [ -z "${ROLLGUARD_KUBECONFIG:-}" ] || die "ROLLGUARD_GATEWAY=traefik needs the local control plane (its pod IPs must be loopback addresses), not ROLLGUARD_KUBECONFIG"
      in_loopback "$POD_CIDR" || die "ROLLGUARD_GATEWAY=traefik: ROLLGUARD_POD_CIDR=$POD_CIDR is not inside 127.0.0.0/8; refusing to start a gateway that would send traffic there (use e.g. 127.244.0.0/16)" ;;
    *) die "ROLLGUARD_GATEWAY must be traefik or unset, not '$GATEWAY'" ;;
  esac
  local t0; t0=$(now)

  # An existing cluster (kind, k3d, ...) given by the user. A kubeconfig we generated ourselves
  # (left in the environment by sourcing an env file) does not count.
  local existing=${ROLLGUARD_KUBECONFIG:-}
  if [ -n "$existing" ]; then
    if [ -f "$existing" ] && head -1 "$existing" | grep -qF "$LOCAL_KUBECONFIG_TAG"; then existing=
    elif [ ! -e "$existing" ] && [ "$existing" = "$DIR/kubeconfig" ]; then existing=
    elif [ ! -f "$existing" ]; then die "ROLLGUARD_KUBECONFIG=$existing does not exist (unset it to start a local control plane)"
    fi
    [ -n "$existing" ] || say "ignoring ROLLGUARD_KUBECONFIG=${ROLLGUARD_KUBECONFIG} (a local cluster's own kubeconfig)"
  fi

  if [ -d "$DIR" ]; then
    lock
    if [ -n "$(live_pids)" ]; then
      say "cluster already up in $DIR (source $DIR/env)"; return 0
    fi
    [ -f "$DIR/$MARKER" ] || [ -z "$(find "$DIR" -mindepth 1 -maxdepth 1 ! -name .lock -print -quit)" ] \
      || die "$DIR exists and is not a rollguard cluster dir; refusing to reuse it"
    say "removing stale cluster dir $DIR (no live processes)"
    find "$DIR" -mindepth 1 -maxdepth 1 ! -name .lock -exec rm -rf {} +
  fi
  lock
  touch "$DIR/$MARKER"
  mkdir -p "$DIR/logs" "$DIR/cmd"
  trap cleanup_failed_up EXIT

  ensure_binaries ${existing:+existing}
  assign_ports

  if [ -n "$existing" ]; then
    up_existing "$existing"
  else
    up_local
  fi
  UP_DONE=1
  say "ready in $(elapsed "$t0")s: source $DIR/env"
}

up_existing() {
  local src=$1 ca=
  say "using the existing cluster in ROLLGUARD_KUBECONFIG=$src; starting only Prometheus"
  mkdir -p "$DIR/pki"
  { echo "# rollguard: flattened copy of $src (current context)"
    "$KUBECTL" --kubeconfig "$src" config view --raw --minify --flatten; } >"$DIR/kubeconfig"
  chmod 600 "$DIR/kubeconfig"
  if k config view --raw -o jsonpath='{.clusters[0].cluster.certificate-authority-data}' | base64 -d >"$DIR/pki/ca.crt" 2>/dev/null \
     && [ -s "$DIR/pki/ca.crt" ]; then ca=$DIR/pki/ca.crt; else rm -f "$DIR/pki/ca.crt"; fi
  prepare_prometheus
  launch prometheus
  write_env "$ca" 1
  wait_for kube-apiserver 30 "existing cluster /readyz" k get --raw /readyz
  install_gateway_api >"$DIR/logs/gateway-api.log" 2>&1 || fail_component gateway-api "installing the Gateway API CRDs failed"
  wait_for prometheus 30 "Prometheus /-/ready" prometheus_ready
}

# Opt-in audit log (ROLLGUARD_AUDIT_LOG=1): every request at Metadata level (user, user agent,
# verb, resource; no bodies), from ResponseStarted on, so a watch is logged when it opens.
# Writes the policy and sets AUDIT_FLAGS and AUDIT_LOG.
AUDIT_FLAGS=()
audit_flags() {
  case ${ROLLGUARD_AUDIT_LOG:-} in
    ''|0|false) return 0 ;;
    1|true) ;;
    *) die "ROLLGUARD_AUDIT_LOG must be 1 or unset, not '$ROLLGUARD_AUDIT_LOG'" ;;
  esac
  mkdir -p "$DIR/audit"
  printf '%s\n' 'apiVersion: audit.k8s.io/v1' 'kind: Policy' 'omitStages: [RequestReceived]' \
    'rules:' '- level: Metadata' >"$DIR/audit/policy.yaml"
  AUDIT_LOG=$DIR/audit/audit.log
  # maxsize in MB: large enough that the log never rotates during a benchmark.
  AUDIT_FLAGS=(--audit-policy-file="$DIR/audit/policy.yaml" --audit-log-path="$AUDIT_LOG"
    --audit-log-format=json --audit-log-maxsize=100000 --audit-log-maxbackup=0)
}

up_local() {
  gen_pki
  write_kubeconfig
  local P=$DIR/pki
  audit_flags
  prepare_prometheus
  write_env "$P/ca.crt" 0
  launch prometheus

  mkdir -p "$DIR/etcd"
  write_cmd etcd "$ETCD" --name=rollguard --data-dir="$DIR/etcd" \
    --listen-client-urls="http://127.0.0.1:$ETCD_PORT" --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster="rollguard=http://127.0.0.1:$ETCD_PEER_PORT" \
    --listen-metrics-urls="http://127.0.0.1:$ETCD_METRICS_PORT" \
    --auto-compaction-retention=1 --quota-backend-bytes=2147483648 --unsafe-no-fsync=true --log-level=warn
  launch etcd

  # A /16 Service range: room for the thousand Services of benches/scale (a /24 holds 254).
  write_cmd kube-apiserver "$APISERVER" \
    --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$APISERVER_PORT" \
    --endpoint-reconciler-type=none \
    --cert-dir="$P/apiserver" --tls-cert-file="$P/apiserver.crt" --tls-private-key-file="$P/apiserver.key" \
    --client-ca-file="$P/ca.crt" --token-auth-file="$P/tokens.csv" \
    --requestheader-client-ca-file="$P/ca.crt" --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="$P/front-proxy-client.crt" --proxy-client-key-file="$P/front-proxy-client.key" \
    --authorization-mode=RBAC \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$P/sa.pub" --service-account-signing-key-file="$P/sa.key" \
    --service-cluster-ip-range=10.0.0.0/16 \
    --allow-privileged=true "${AUDIT_FLAGS[@]}"
  local admin=$DIR/kubeconfig
  write_cmd kube-controller-manager "$KCM" \
    --kubeconfig="$admin" --authentication-kubeconfig="$admin" --authorization-kubeconfig="$admin" \
    --bind-address=127.0.0.1 --secure-port="$KCM_PORT" --cert-dir="$P/kcm" \
    --authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics \
    --leader-elect=false --controllers='*' \
    --service-account-private-key-file="$P/sa.key" --root-ca-file="$P/ca.crt" \
    --cluster-signing-cert-file="$P/ca.crt" --cluster-signing-key-file="$P/ca.key" \
    --use-service-account-credentials=false
  cat >"$DIR/scheduler.yaml" <<EOF
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection: {kubeconfig: "$admin"}
leaderElection: {leaderElect: false}
EOF
  write_cmd kube-scheduler "$SCHEDULER" --config="$DIR/scheduler.yaml" \
    --authentication-kubeconfig="$admin" --authorization-kubeconfig="$admin" \
    --bind-address=127.0.0.1 --secure-port="$SCHEDULER_PORT" --cert-dir="$P/scheduler" \
    --authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics
  # No --server-address/--node-port: kwok then opens no listener at all.
  write_cmd kwok "$KWOK" --kubeconfig="$admin" --config="$KWOK_STAGES" --manage-all-nodes=true \
    --cidr="$POD_CIDR" --node-lease-duration-seconds=40

  wait_for etcd 30 "etcd /health" etcd_healthy
  launch kube-apiserver
  wait_for kube-apiserver 120 "kube-apiserver /readyz" apiserver_ready
  launch kube-controller-manager
  launch kube-scheduler
  launch kwok
  node_manifest | k apply -f - >"$DIR/logs/nodes.log" 2>&1 || fail_component nodes "creating the kwok nodes failed"
  install_gateway_api >"$DIR/logs/gateway-api.log" 2>&1 || fail_component gateway-api "installing the Gateway API CRDs failed"
  wait_for kwok 60 "$NODES kwok nodes Ready" nodes_ready
  wait_for kube-controller-manager 60 "ServiceAccount default/default (kube-controller-manager)" default_sa
  wait_for kube-controller-manager 30 "kube-controller-manager /healthz" kcm_healthy
  wait_for kube-scheduler 30 "kube-scheduler /healthz" scheduler_healthy
  wait_for prometheus 30 "Prometheus /-/ready" prometheus_ready
  [ "$GATEWAY" != traefik ] || up_traefik
}

# in_loopback CIDR: the whole range is inside 127.0.0.0/8.
in_loopback() {
  python3 -c 'import ipaddress,sys; n=ipaddress.ip_network(sys.argv[1], strict=False); sys.exit(0 if n.subnet_of(ipaddress.ip_network("127.0.0.0/8")) else 1)' "$1" 2>/dev/null
}

# Traefik as the Gateway API implementation of the real data path (#22). It reads the cluster
# with a ServiceAccount token bound to what its kubernetesgateway provider needs, routes to
# EndpointSlice addresses (its default; never to Service cluster IPs, which are not loopback
# here), listens on 127.0.0.1 only, and Prometheus scrapes its /metrics (job traefik).
up_traefik() {
  local token
  k apply -f - >"$DIR/logs/traefik-setup.log" 2>&1 <<EOF || fail_component traefik-setup "creating Traefik's namespace, RBAC and Gateway failed"
apiVersion: v1
kind: Namespace
metadata: {name: $GATEWAY_NS}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: traefik, namespace: $GATEWAY_NS}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: rollguard-test-traefik}
rules:
- apiGroups: [""]
  resources: [services, secrets, namespaces, configmaps]
  verbs: [get, list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [get, list, watch]
- apiGroups: [gateway.networking.k8s.io]
  resources: [gatewayclasses, gateways, httproutes, grpcroutes, referencegrants, backendtlspolicies]
  verbs: [get, list, watch]
- apiGroups: [gateway.networking.k8s.io]
  resources: [gatewayclasses/status, gateways/status, httproutes/status, grpcroutes/status, backendtlspolicies/status]
  verbs: [update, patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: rollguard-test-traefik}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: rollguard-test-traefik}
subjects: [{kind: ServiceAccount, name: traefik, namespace: $GATEWAY_NS}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: traefik}
spec: {controllerName: traefik.io/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: $GATEWAY_NAME, namespace: $GATEWAY_NS}
spec:
  gatewayClassName: traefik
  listeners:
  - {name: web, protocol: HTTP, port: $TRAEFIK_WEB_PORT, allowedRoutes: {namespaces: {from: All}}}
EOF
  token=$(k -n "$GATEWAY_NS" create token traefik --duration=48h) || fail_component traefik-setup "a token for Traefik's ServiceAccount"
  printf '%s' "$token" >"$DIR/pki/traefik.token"; chmod 600 "$DIR/pki/traefik.token"
  # The token is given as a file (Traefik's FileOrContent), so it is not on the command line.
  # The version check is off: it would call update.traefik.io, and traffic may only go to
  # 127.0.0.0/8 here (anonymous usage stats are off by default; said explicitly).
  write_cmd traefik "$TRAEFIK" \
    --providers.kubernetesgateway=true \
    --providers.kubernetesgateway.endpoint="https://127.0.0.1:$APISERVER_PORT" \
    --providers.kubernetesgateway.token="$DIR/pki/traefik.token" \
    --providers.kubernetesgateway.certauthfilepath="$DIR/pki/ca.crt" \
    --entrypoints.web.address="127.0.0.1:$TRAEFIK_WEB_PORT" \
    --entrypoints.traefik.address="127.0.0.1:$TRAEFIK_API_PORT" \
    --api=true --api.insecure=true --ping=true \
    --metrics.prometheus=true --log.level=INFO \
    --global.checknewversion=false --global.sendanonymoususage=false
  launch traefik
  wait_for traefik 60 "Traefik /ping" curl -fsS -m 2 "http://127.0.0.1:$TRAEFIK_API_PORT/ping"
  wait_for traefik 60 "Gateway $GATEWAY_NS/$GATEWAY_NAME Programmed" \
    k -n "$GATEWAY_NS" wait --for=condition=Programmed --timeout=2s "gateway/$GATEWAY_NAME"
  printf '[{"targets":["127.0.0.1:%s"],"labels":{"job":"traefik"}}]\n' "$TRAEFIK_API_PORT" \
    >"$DIR/prometheus/targets/.traefik.json.tmp"
  mv "$DIR/prometheus/targets/.traefik.json.tmp" "$DIR/prometheus/targets/traefik.json"
  say "Traefik v$TRAEFIK_VERSION: entry point http://127.0.0.1:$TRAEFIK_WEB_PORT, API and /metrics on 127.0.0.1:$TRAEFIK_API_PORT, pod IPs from $POD_CIDR"
}

# --- other subcommands --------------------------------------------------------------------------
cmd_down() {
  local t0; t0=$(now)
  if [ ! -d "$DIR" ]; then say "no cluster at $DIR"; return 0; fi
  [ -f "$DIR/$MARKER" ] || die "$DIR is not a rollguard cluster dir; not touching it"
  lock
  local lines; mapfile -t lines < <(live_pids)
  # The cluster is thrown away: a short grace. (kube-apiserver waits up to 60 s for open
  # connections on TERM, and etcd for the apiserver's watch streams.)
  [ ${#lines[@]} -gt 0 ] && STOP_GRACE=${STOP_GRACE:-3} stop_pids "${lines[@]}"
  rm -rf "$DIR"
  say "down in $(elapsed "$t0")s (stopped ${#lines[@]} processes, removed $DIR)"
}

cmd_logs() {
  local n=${1:-50} f
  [ -d "$DIR/logs" ] || { echo "no logs: no cluster at $DIR"; return 0; }
  for f in "$DIR"/logs/*.log; do
    [ -e "$f" ] || continue
    printf '\n===== %s (last %s lines of %s) =====\n' "$(basename "$f" .log)" "$n" "$f"
    tail -n "$n" "$f"
  done
}

cmd_env() {
  [ -f "$DIR/env" ] || die "no env file: no cluster at $DIR (run: $0 up)"
  echo "# $DIR/env"
  cat "$DIR/env"
}

cmd_status() {
  [ -f "$DIR/pids" ] || { echo "no cluster at $DIR"; return 0; }
  local name pid
  while read -r name pid; do
    if ours "$pid"; then echo "$name $pid running"; else echo "$name $pid dead"; fi
  done <"$DIR/pids"
  for name in "$DIR"/cmd/*; do
    name=$(basename "$name"); grep -q "^$name " "$DIR/pids" || echo "$name - stopped"
  done
}

load_ports() {
  [ -f "$DIR/ports" ] || die "no cluster at $DIR"
  # shellcheck disable=SC1091
  source "$DIR/ports"
}

component_ready() {
  case $1 in
    kube-apiserver) wait_for kube-apiserver 120 "kube-apiserver /readyz" apiserver_ready ;;
    prometheus) wait_for prometheus 60 "Prometheus /-/ready" prometheus_ready ;;
    etcd) wait_for etcd 30 "etcd /health" etcd_healthy ;;
    kube-scheduler) wait_for kube-scheduler 30 "kube-scheduler /healthz" scheduler_healthy ;;
    kube-controller-manager) wait_for kube-controller-manager 30 "kube-controller-manager /healthz" kcm_healthy ;;
    *) sleep 1; local p; p=$(pid_of "$1"); ours "$p" || fail_component "$1" "exited right after start" ;;
  esac
}

known_component() {
  [ -f "$DIR/cmd/$1" ] && return 0
  local f have=(); for f in "$DIR"/cmd/*; do [ -e "$f" ] && have+=("${f##*/}"); done
  die "unknown component '$1' (have: ${have[*]})"
}

cmd_stop() {
  local c=${1:?usage: stop COMPONENT}; load_ports; lock
  known_component "$c"
  local pid; pid=$(pid_of "$c" || true)
  if [ -n "$pid" ] && ours "$pid"; then stop_pids "$c $pid"; say "stopped $c (pid $pid)"
  else say "$c was not running"; fi
  record_pid "$c" ""
}

cmd_start() {
  local c=${1:?usage: start COMPONENT}; load_ports; lock
  known_component "$c"
  local pid t0; pid=$(pid_of "$c" || true); t0=$(now)
  if [ -n "$pid" ] && ours "$pid"; then say "$c already running (pid $pid)"; return 0; fi
  launch "$c"
  component_ready "$c"
  say "started $c (pid $(pid_of "$c")), ready in $(elapsed "$t0")s"
}

usage() { sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'; }

sub=${1:-}; [ $# -gt 0 ] && shift
case $sub in
  up) cmd_up "$@" ;;
  down) cmd_down ;;
  logs) cmd_logs "$@" ;;
  env) cmd_env ;;
  status) cmd_status ;;
  stop) cmd_stop "$@" ;;
  start) cmd_start "$@" ;;
  restart) cmd_stop "$@"; cmd_start "$@" ;;
  -h|--help|help) usage ;;
  *) usage >&2; exit 2 ;;
esac
