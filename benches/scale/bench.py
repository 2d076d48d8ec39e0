#!/usr/bin/env python3
"""rollguard's scale benchmark (issue #9), the part that runs against a cluster that is up.

benches/scale/run.sh starts the cluster (with the audit log), builds the release binaries and
calls this. It creates the Deployments, starts the traffic simulator and the operator, measures
adoption, an idle window and 50 simultaneous rollouts, and writes report.json, report.md and
the raw data into --out. Every failure raises: the benchmark never reports on a broken run.

Sources of each figure:
  RSS, CPU      /proc/<pid>/status (VmHWM, VmRSS), /proc/<pid>/stat (utime + stime)
  adoption      Deployments paused with rollguard.dev/stable-revision, polled every second
  reconcile     rollguard_reconcile_duration_seconds{controller="deployment"} (operator /metrics)
  API requests  the kube-apiserver audit log, events with userAgent rollguard/*, by verb
  queries       prometheus_http_requests_total{handler="/api/v1/query"} (Prometheus /metrics),
                rollguard_prometheus_queries_total, and the runs' own sample counts
  step delay    rollguard_step_delay_seconds (operator /metrics)
"""

import argparse
import concurrent.futures
import datetime as dt
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
NAMESPACES = 20
ROLLOUTS = 50
REPLICAS = 2
GATEWAY_POLICIES = 2  # of the 20 policies; the rest use the replicas router
INTERVAL_S = 2
PAUSE = "6s"
BAD_ERROR_RATE = "0.3"
GOOD_ERROR_RATE = "0.001"
SERVICE_RPS = "20"
ROUTE_RPS = "40"


class BenchError(Exception):
    pass


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def kubectl(*args, input=None, timeout=300):
    cmd = ["kubectl", "--request-timeout=60s", *args]
    r = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise BenchError(f"{' '.join(cmd[:6])}... failed ({r.returncode}): {r.stderr.strip()[:2000]}")
    return r.stdout


def kget_json(*args):
    return json.loads(kubectl("get", *args, "-o", "json", timeout=120))


def http_get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# --- process accounting -------------------------------------------------------------------------
def proc_stats(pid):
    """(rss_bytes, hwm_bytes, cpu_seconds) of a live process, from the kernel's accounting."""
    status = open(f"/proc/{pid}/status").read()
    kb = {}
    for key in ("VmRSS", "VmHWM"):
        m = re.search(rf"^{key}:\s+(\d+) kB", status, re.M)
        if not m:
            raise BenchError(f"/proc/{pid}/status has no {key}")
        kb[key] = int(m.group(1)) * 1024
    stat = open(f"/proc/{pid}/stat").read()
    # Fields after the command name (which may contain spaces) start at state (field 3).
    fields = stat[stat.rindex(")") + 2:].split()
    utime, stime = int(fields[11]), int(fields[12])
    return kb["VmRSS"], kb["VmHWM"], (utime + stime) / CLK_TCK


# --- Prometheus text format ---------------------------------------------------------------------
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)')


def parse_metrics(text):
    """[(name, {label: value}, float)]"""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        if not m:
            continue
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        out.append((m.group(1), labels, float(m.group(3))))
    return out


def metric_sum(samples, metric, **match):
    return sum(v for n, l, v in samples if n == metric and all(l.get(k) == w for k, w in match.items()))


def histogram(samples, metric, **match):
    """{le: cumulative count} (le as float, +Inf as inf)."""
    buckets = {}
    for n, l, v in samples:
        if n == f"{metric}_bucket" and all(l.get(k) == w for k, w in match.items()):
            buckets[float(l["le"])] = buckets.get(float(l["le"]), 0) + v
    return dict(sorted(buckets.items()))


def hist_diff(after, before):
    return {le: after[le] - before.get(le, 0) for le in after}


def quantile(buckets, q):
    """Linear interpolation inside the bucket, as Prometheus' histogram_quantile does. Returns
    (value, exact_bucket_bound_note)."""
    if not buckets:
        return None
    total = buckets.get(float("inf"), max(buckets.values()))
    if total <= 0:
        return None
    rank = q * total
    prev_le, prev_c = 0.0, 0.0
    for le, c in buckets.items():
        if c >= rank:
            if le == float("inf"):
                return prev_le  # above the last finite bound: report that bound (a floor)
            if c == prev_c:
                return le
            return prev_le + (le - prev_le) * (rank - prev_c) / (c - prev_c)
        prev_le, prev_c = le, c
    return prev_le


# --- the world ----------------------------------------------------------------------------------
def names(n):
    return [f"app-{i:04d}" for i in range(n)]


def ns_of(i):
    return f"bench-{i % NAMESPACES:02d}"


def gateway_ns(ns):
    return int(ns.split("-")[1]) < GATEWAY_POLICIES


def manifests(n, prometheus_url):
    docs = []
    for k in range(NAMESPACES):
        ns = f"bench-{k:02d}"
        docs.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    for k in range(NAMESPACES):
        ns = f"bench-{k:02d}"
        traffic = {"gatewayAPI": {}} if gateway_ns(ns) else {"replicas": {}}
        docs.append({
            "apiVersion": "rollguard.dev/v1alpha1", "kind": "RolloutPolicy",
            "metadata": {"name": f"policy-{k:02d}", "namespace": ns},
            "spec": {
                "selector": {"matchLabels": {"app.kubernetes.io/part-of": "bench"}},
                "traffic": traffic,
                "analysis": {
                    "interval": f"{INTERVAL_S}s",
                    "prometheus": {"address": prometheus_url, "timeout": "5s"},
                    "requests": 'sum(increase(http_requests_total{namespace="{{namespace}}",workload="{{workload}}"}[{{elapsed}}]))',
                    "errors": 'sum(increase(http_requests_total{namespace="{{namespace}}",workload="{{workload}}",code=~"5.."}[{{elapsed}}]))',
                    "minRequests": 20,
                },
                "tiers": [
                    {"name": "ai-assisted",
                     "match": {"annotations": {"rollguard.dev/change-origin": ["ai-assisted", "ai-generated"]}},
                     "steps": [{"weight": "10%", "pause": PAUSE}, {"weight": "25%", "pause": PAUSE},
                               {"weight": "50%", "pause": PAUSE}],
                     "maxErrorRate": "2%"},
                    {"name": "standard",
                     "steps": [{"weight": "25%", "pause": PAUSE}, {"weight": "50%", "pause": PAUSE}],
                     "maxErrorRate": "5%"},
                ],
            },
        })
    for i, name in enumerate(names(n)):
        ns = ns_of(i)
        gw = gateway_ns(ns)
        docs.append({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": ns, "labels": {"app.kubernetes.io/part-of": "bench"}},
            "spec": {
                "replicas": REPLICAS,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name},
                                 "annotations": {"sim.rollguard.dev/error-rate": GOOD_ERROR_RATE}},
                    "spec": {"containers": [{"name": "app", "image": "example.com/app:1"}]},
                },
            },
        })
        docs.append({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": ns,
                         "annotations": {} if gw else {"sim.rollguard.dev/rps": SERVICE_RPS}},
            "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]},
        })
        if gw:
            docs.append({
                "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
                "metadata": {"name": name, "namespace": ns, "annotations": {"sim.rollguard.dev/rps": ROUTE_RPS}},
                "spec": {"parentRefs": [{"name": "public"}],
                         "rules": [{"backendRefs": [{"name": f"{name}-stable", "port": 80, "weight": 100},
                                                    {"name": f"{name}-canary", "port": 80, "weight": 0}]}]},
            })
    return docs


def create_world(n, prometheus_url, out):
    path = os.path.join(out, "world.json")
    docs = manifests(n, prometheus_url)
    # Namespaces first (the rest needs them), then everything else in chunks.
    nss = [d for d in docs if d["kind"] == "Namespace"]
    rest = [d for d in docs if d["kind"] != "Namespace"]
    with open(path, "w") as f:
        json.dump({"apiVersion": "v1", "kind": "List", "items": docs}, f)
    kubectl("apply", "--server-side", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": nss}))
    chunk = 250
    parts = [rest[i:i + chunk] for i in range(0, len(rest), chunk)]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda p: kubectl("apply", "--server-side", "-f", "-",
                                        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": p}),
                                        timeout=600), parts))


def deployments():
    return [d for d in kget_json("deployments", "-A", "-l", "app.kubernetes.io/part-of=bench")["items"]]


def rolled_out(d):
    st = d.get("status", {})
    want = d["spec"].get("replicas", 1)
    return (st.get("observedGeneration", 0) >= d["metadata"].get("generation", 0)
            and st.get("updatedReplicas", 0) == want and st.get("availableReplicas", 0) == want
            and st.get("replicas", 0) == want)


def adopted(d):
    return (d["spec"].get("paused") is True
            and "rollguard.dev/stable-revision" in d["metadata"].get("annotations", {}))


def wait_until(what, timeout, check, every=1.0):
    start = time.time()
    while True:
        v = check()
        if v:
            return v
        if time.time() - start > timeout:
            raise BenchError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


# --- processes ----------------------------------------------------------------------------------
class Proc:
    def __init__(self, name, argv, log_path, env=None):
        self.name = name
        self.log_path = log_path
        self.log = open(log_path, "w")
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self.log, text=True,
                                  env={**os.environ, **(env or {})}, start_new_session=True)
        self.started = time.time()

    @property
    def pid(self):
        return self.p.pid

    def check_alive(self):
        if self.p.poll() is not None:
            tail = open(self.log_path).read()[-3000:]
            raise BenchError(f"{self.name} exited with {self.p.returncode}:\n{tail}")

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.log.close()


class Sampler(threading.Thread):
    """Every second: RSS, peak RSS and CPU of the operator and the simulator, and the operator's
    active runs; kept as a timeline with the current phase."""

    def __init__(self, procs, metrics_url):
        super().__init__(daemon=True)
        self.procs = procs
        self.metrics_url = metrics_url
        self.phase = "start"
        self.rows = []
        self.stop_flag = threading.Event()
        self.error = None

    def run(self):
        while not self.stop_flag.is_set():
            row = {"t": time.time(), "phase": self.phase}
            try:
                for name, p in self.procs.items():
                    rss, hwm, cpu = proc_stats(p.pid)
                    row[name] = {"rss": rss, "hwm": hwm, "cpu": cpu}
                try:
                    m = parse_metrics(http_get(self.metrics_url, 2))
                    row["active_runs"] = metric_sum(m, "rollguard_active_runs")
                except OSError:
                    row["active_runs"] = None
            except (OSError, BenchError) as e:
                self.error = e
                return
            self.rows.append(row)
            self.stop_flag.wait(1.0)

    def window(self, phases):
        return [r for r in self.rows if r["phase"] in phases]


# --- audit log ----------------------------------------------------------------------------------
def parse_ts(s):
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def audit_events(path, agent_prefix="rollguard/"):
    """(time, verb, resource, user_agent) of every request the operator issued: a watch counts
    when it opens (ResponseStarted), anything else when it completes (ResponseComplete)."""
    needle = f'"userAgent":"{agent_prefix}'
    out = []
    agents = set()
    with open(path) as f:
        for line in f:
            if needle not in line:
                continue
            e = json.loads(line)
            verb, stage = e.get("verb"), e.get("stage")
            if (verb == "watch") != (stage == "ResponseStarted"):
                continue
            if stage not in ("ResponseStarted", "ResponseComplete"):
                continue
            ref = e.get("objectRef") or {}
            res = ref.get("resource", e.get("requestURI", "?"))
            if ref.get("subresource"):
                res += "/" + ref["subresource"]
            agents.add(e.get("userAgent"))
            out.append((parse_ts(e["requestReceivedTimestamp"]), verb, res))
    return out, sorted(agents)


def per_minute(events, t0, t1):
    """{verb: requests per minute} and {verb/resource: count} in [t0, t1)."""
    minutes = (t1 - t0) / 60
    by_verb, by_res = {}, {}
    for t, verb, res in events:
        if t0 <= t < t1:
            by_verb[verb] = by_verb.get(verb, 0) + 1
            k = f"{verb} {res}"
            by_res[k] = by_res.get(k, 0) + 1
    return ({v: round(c / minutes, 1) for v, c in sorted(by_verb.items())},
            dict(sorted(by_res.items())))


# --- the benchmark ------------------------------------------------------------------------------
def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--deployments", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--rollguard", required=True)
    ap.add_argument("--trafficsim", required=True)
    ap.add_argument("--idle-seconds", type=int, default=90)
    ap.add_argument("--settle-seconds", type=int, default=20)
    ap.add_argument("--rollout-timeout", type=int, default=900)
    args = ap.parse_args()
    n = args.deployments
    if n < ROLLOUTS:
        raise BenchError(f"need at least {ROLLOUTS} Deployments")
    out = args.out
    os.makedirs(out, exist_ok=True)
    prom = os.environ["ROLLGUARD_PROMETHEUS_URL"].rstrip("/")
    audit = os.environ.get("ROLLGUARD_AUDIT_LOG_FILE")
    if not audit or not os.path.exists(audit):
        raise BenchError("no audit log: start the cluster with ROLLGUARD_AUDIT_LOG=1")
    report = {"deployments": n, "namespaces": NAMESPACES, "policies": NAMESPACES,
              "gateway_policies": GATEWAY_POLICIES, "replicas": REPLICAS, "rollouts": ROLLOUTS,
              "interval_s": INTERVAL_S, "pause": PAUSE}
    procs = {}
    try:
        run(args, n, out, prom, audit, report, procs)
    finally:
        for p in procs.values():
            p.stop()
    with open(os.path.join(out, "report.json"), "w") as f:
        json.dump(report, f, indent=2)
    md = render(report)
    with open(os.path.join(out, "report.md"), "w") as f:
        f.write(md)
    print(md)
    if report["failures"]:
        raise BenchError("the benchmark ran, but: " + "; ".join(report["failures"]))


def run(args, n, out, prom, audit, report, procs):
    t = time.time()
    log(f"creating {NAMESPACES} namespaces, {NAMESPACES} policies, {n} Deployments and Services")
    create_world(n, prom, out)
    report["create_s"] = round(time.time() - t, 1)
    log(f"waiting for {n} Deployments ({n * REPLICAS} pods on kwok) to roll out")
    wait_until("every Deployment rolled out", 1800,
               lambda: (lambda ds: len(ds) == n and all(rolled_out(d) for d in ds))(deployments()), every=3)
    report["rolled_out_s"] = round(time.time() - t, 1)

    # The traffic simulator for every namespace, scraped by Prometheus.
    sim = Proc("trafficsim", [args.trafficsim, "--all-namespaces", "--listen", "127.0.0.1:0", "--seed", "9"],
               os.path.join(out, "trafficsim.log"))
    procs["trafficsim"] = sim
    line = sim.p.stdout.readline().strip()
    threading.Thread(target=lambda: [None for _ in sim.p.stdout], daemon=True).start()
    if not line.startswith("listening on "):
        sim.check_alive()
        raise BenchError(f"unexpected first line from trafficsim: {line!r}")
    sim_addr = line.removeprefix("listening on ")
    targets = os.environ["ROLLGUARD_PROM_TARGETS_DIR"]
    tmp = os.path.join(targets, ".bench-sim.json.tmp")
    with open(tmp, "w") as f:
        json.dump([{"targets": [sim_addr], "labels": {"job": "bench-sim"}}], f)
    os.rename(tmp, os.path.join(targets, "bench-sim.json"))

    def sim_serving():
        sim.check_alive()
        try:
            body = http_get(f"http://{sim_addr}/metrics", 10)
        except OSError:
            return False
        return len(set(re.findall(r'sim_pods\{namespace="[^"]+",pod_template_hash="[^"]*",track="stable",workload="(app-\d+)"\} [1-9]', body))) == n
    wait_until("the simulator to serve every workload", 300, sim_serving, every=2)

    # Prometheus scraped the simulator (its own /metrics, so no query is counted).
    def scraped():
        m = parse_metrics(http_get(f"{prom}/metrics"))
        return metric_sum(m, "prometheus_sd_discovered_targets", config="file_sd") >= 1
    wait_until("Prometheus to discover the simulator", 60, scraped)
    time.sleep(5)

    # The operator: a separate process, all namespaces, release build.
    port = free_port()
    metrics_url = f"http://127.0.0.1:{port}/metrics"
    log("starting the operator")
    op = Proc("operator", [args.rollguard, "controller", "--metrics-addr", f"127.0.0.1:{port}",
                           "--prometheus-address", prom, "--log-level", "info"],
              os.path.join(out, "operator.log"))
    procs["operator"] = op
    t_start = op.started
    sampler = Sampler({"operator": op, "trafficsim": sim}, metrics_url)
    sampler.phase = "adoption"
    sampler.start()

    def ready():
        op.check_alive()
        try:
            return http_get(f"http://127.0.0.1:{port}/readyz", 2) == "ok"
        except OSError:
            return False
    wait_until("the operator's /readyz", 300, ready, every=0.2)
    report["ready_s"] = round(time.time() - t_start, 2)

    def all_adopted():
        op.check_alive()
        ds = deployments()
        done = sum(1 for d in ds if adopted(d))
        return done == n
    wait_until(f"all {n} Deployments adopted", 1800, all_adopted, every=0.5)
    t_adopted = time.time()
    report["adopt_s"] = round(t_adopted - t_start, 1)
    log(f"all {n} Deployments adopted {report['adopt_s']} s after the operator started")
    m_adopted = parse_metrics(http_get(metrics_url))

    # Idle: settle, then measure.
    sampler.phase = "settle"
    time.sleep(args.settle_seconds)
    sampler.phase = "idle"
    t_idle0 = time.time()
    m_idle0 = parse_metrics(http_get(metrics_url))
    time.sleep(args.idle_seconds)
    t_idle1 = time.time()
    m_idle1 = parse_metrics(http_get(metrics_url))
    op.check_alive()

    # 50 rollouts at once, spread over the namespaces (rollout k in namespace k mod 20, so 6
    # of them on the gatewayAPI router at any size), alternately a bad and a good change.
    per_ns = n // NAMESPACES
    spread = max(1, per_ns // ((ROLLOUTS + NAMESPACES - 1) // NAMESPACES))
    chosen = [k % NAMESPACES + NAMESPACES * spread * (k // NAMESPACES) for k in range(ROLLOUTS)]
    if len(set(chosen)) != ROLLOUTS or max(chosen) >= n:
        raise BenchError(f"cannot spread {ROLLOUTS} rollouts over {n} Deployments")
    plan = []
    for k, i in enumerate(chosen):
        bad = k % 2 == 0
        ai = k % 4 in (1, 2)
        plan.append({"ns": ns_of(i), "name": names(n)[i], "bad": bad, "ai": ai,
                     "router": "gatewayAPI" if gateway_ns(ns_of(i)) else "replicas"})
    report["rollout_mix"] = {
        "bad": sum(p["bad"] for p in plan), "good": sum(not p["bad"] for p in plan),
        "ai_tier": sum(p["ai"] for p in plan),
        "gatewayAPI": sum(p["router"] == "gatewayAPI" for p in plan)}
    prom_m0 = parse_metrics(http_get(f"{prom}/metrics"))
    m_roll0 = parse_metrics(http_get(metrics_url))
    sampler.phase = "rollouts"
    t_roll0 = time.time()
    log(f"starting {ROLLOUTS} rollouts ({report['rollout_mix']})")

    def patch(p):
        ann = {"sim.rollguard.dev/error-rate": BAD_ERROR_RATE if p["bad"] else "0",
               "rollguard.dev/change-origin": "ai-assisted" if p["ai"] else "human"}
        body = {"spec": {"template": {"metadata": {"annotations": ann},
                                      "spec": {"containers": [{"name": "app", "image": "example.com/app:2"}]}}}}
        kubectl("-n", p["ns"], "patch", "deployment", p["name"], "--type=strategic", "-p", json.dumps(body))
    with concurrent.futures.ThreadPoolExecutor(ROLLOUTS) as pool:
        list(pool.map(patch, plan))
    report["patch_s"] = round(time.time() - t_roll0, 2)

    wanted = {(p["ns"], p["name"]) for p in plan}

    def runs():
        items = kget_json("rolloutruns", "-A")["items"]
        return [r for r in items if (r["metadata"]["namespace"], r["spec"]["deployment"]) in wanted]

    def finished():
        op.check_alive()
        rs = runs()
        terminal = [r for r in rs if r.get("status", {}).get("phase") in
                    ("Succeeded", "RolledBack", "Aborted", "Superseded")]
        return rs if len(rs) == ROLLOUTS and len(terminal) == ROLLOUTS else None
    final = wait_until(f"{ROLLOUTS} runs to end", args.rollout_timeout, finished, every=2)
    t_roll1 = time.time()
    report["rollouts_s"] = round(t_roll1 - t_roll0, 1)
    log(f"all {ROLLOUTS} runs ended after {report['rollouts_s']} s")
    m_roll1 = parse_metrics(http_get(metrics_url))
    prom_m1 = parse_metrics(http_get(f"{prom}/metrics"))
    sampler.phase = "after"
    time.sleep(2)
    sampler.stop_flag.set()
    sampler.join()
    if sampler.error:
        raise BenchError(f"sampling failed: {sampler.error}")
    with open(os.path.join(out, "runs.json"), "w") as f:
        json.dump(final, f)
    with open(os.path.join(out, "timeline.json"), "w") as f:
        json.dump(sampler.rows, f)
    with open(os.path.join(out, "operator-metrics.txt"), "w") as f:
        f.write(http_get(metrics_url) if op.p.poll() is None else "")

    failures = []
    # Outcomes: bad changes rolled back, good ones promoted.
    by_key = {(r["metadata"]["namespace"], r["spec"]["deployment"]): r for r in final}
    outcomes = {}
    wrong = []
    for p in plan:
        phase = by_key[(p["ns"], p["name"])]["status"]["phase"]
        outcomes[phase] = outcomes.get(phase, 0) + 1
        if phase != ("RolledBack" if p["bad"] else "Succeeded"):
            wrong.append(f"{p['ns']}/{p['name']} ({'bad' if p['bad'] else 'good'}): {phase}")
    report["outcomes"] = outcomes
    report["wrong_outcomes"] = wrong
    if wrong:
        failures.append(f"{len(wrong)} runs ended unexpectedly: {', '.join(wrong[:5])}")

    # Memory and CPU.
    rows = sampler.rows

    def stat(name, phases, key):
        vals = [r[name][key] for r in rows if r["phase"] in phases]
        return vals

    def cpu_between(name, t0, t1):
        pts = [r for r in rows if name in r]
        a = min(pts, key=lambda r: abs(r["t"] - t0))
        b = min(pts, key=lambda r: abs(r["t"] - t1))
        return b[name]["cpu"] - a[name]["cpu"], b["t"] - a["t"]

    mib = 1024 * 1024
    for name in ("operator", "trafficsim"):
        idle_rss = stat(name, {"idle"}, "rss")
        roll_rss = stat(name, {"rollouts"}, "rss")
        c_adopt, s_adopt = cpu_between(name, t_start, t_adopted)
        c_idle, s_idle = cpu_between(name, t_idle0, t_idle1)
        c_roll, s_roll = cpu_between(name, t_roll0, t_roll1)
        report[name] = {
            "peak_rss_mib": round(max(r[name]["hwm"] for r in rows) / mib, 1),
            "steady_rss_mib": round(sorted(idle_rss)[len(idle_rss) // 2] / mib, 1),
            "rollout_rss_max_mib": round(max(roll_rss) / mib, 1),
            "cpu_s_total": round(rows[-1][name]["cpu"], 2),
            "cpu_s_adoption": round(c_adopt, 2),
            "cpu_s_idle": round(c_idle, 2),
            "cpu_s_rollouts": round(c_roll, 2),
            "cpu_pct_idle": round(100 * c_idle / s_idle, 2) if s_idle else None,
            "cpu_pct_rollouts": round(100 * c_roll / s_roll, 1) if s_roll else None,
        }

    # Reconcile latency.
    h = "rollguard_reconcile_duration_seconds"
    hists = {
        "adoption": histogram(m_adopted, h, controller="deployment"),
        "idle": hist_diff(histogram(m_idle1, h, controller="deployment"), histogram(m_idle0, h, controller="deployment")),
        "rollouts": hist_diff(histogram(m_roll1, h, controller="deployment"), histogram(m_roll0, h, controller="deployment")),
        "all": histogram(m_roll1, h, controller="deployment"),
        "policy_all": histogram(m_roll1, h, controller="policy"),
    }
    report["reconcile"] = {
        k: {"count": int(v.get(float("inf"), 0)),
            "p50_ms": round(1000 * quantile(v, 0.5), 2) if quantile(v, 0.5) is not None else None,
            "p99_ms": round(1000 * quantile(v, 0.99), 2) if quantile(v, 0.99) is not None else None}
        for k, v in hists.items()}

    # Step delay: the operator's histogram, and pause end -> next StepStarted Event.
    sd = histogram(m_roll1, "rollguard_step_delay_seconds")
    report["step_delay_metric"] = {
        "count": int(sd.get(float("inf"), 0)),
        "p50_s": round(quantile(sd, 0.5), 3) if sd and sd.get(float("inf")) else None,
        "p99_s": round(quantile(sd, 0.99), 3) if sd and sd.get(float("inf")) else None,
        "max_bucket_s": max((le for le, c in sd.items() if le != float("inf") and c < sd.get(float("inf"), 0)), default=None),
    }

    # Prometheus queries.
    q_handler = lambda m: metric_sum(m, "prometheus_http_requests_total", handler="/api/v1/query")
    prom_queries = q_handler(prom_m1) - q_handler(prom_m0)
    op_queries = metric_sum(m_roll1, "rollguard_prometheus_queries_total") - metric_sum(m_roll0, "rollguard_prometheus_queries_total")
    samples = sum(r["status"].get("sampleCount", 0) for r in final)
    minutes = (t_roll1 - t_roll0) / 60
    expected = 0.0
    for r in final:
        st = r["status"]
        if st.get("canaryStartedAt") and st.get("lastAnalysisAt"):
            expected += (parse_ts(st["lastAnalysisAt"]) - parse_ts(st["canaryStartedAt"])) / INTERVAL_S
    report["queries"] = {
        "prometheus_api_v1_query": int(prom_queries),
        "operator_counter": int(op_queries),
        "run_samples": samples,
        "per_minute": round(prom_queries / minutes, 1),
        "expected_from_run_time": round(expected, 1),
        "outcomes": {l.get("outcome"): int(v) for n_, l, v in m_roll1 if n_ == "rollguard_prometheus_queries_total"},
    }
    if int(prom_queries) != int(op_queries):
        failures.append(f"Prometheus served {int(prom_queries)} queries but the operator counted {int(op_queries)}")

    # API requests from the operator, from the audit log.
    events, agents = audit_events(audit)
    report["operator_user_agents"] = agents
    windows = {"adoption": (t_start, t_adopted), "idle": (t_idle0, t_idle1), "rollouts": (t_roll0, t_roll1)}
    report["api"] = {}
    for k, (a, b) in windows.items():
        rate, detail = per_minute(events, a, b)
        report["api"][k] = {"per_minute": rate, "requests": detail, "minutes": round((b - a) / 60, 2)}
    idle_non_watch = {k: v for k, v in report["api"]["idle"]["requests"].items() if not k.startswith("watch ")}
    report["idle_polling"] = idle_non_watch
    if not events:
        failures.append("the audit log has no request with a rollguard/ user agent")

    report["targets"] = {
        "steady_rss_under_64MiB": report["operator"]["steady_rss_mib"] < 64,
        "reconcile_p99_under_50ms": (report["reconcile"]["all"]["p99_ms"] or 0) < 50,
        "step_delay_p99_under_1s": (report["step_delay_metric"]["p99_s"] or 0) < 1,
        "zero_polling_idle": not idle_non_watch,
    }
    report["failures"] = failures
    report["date"] = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def render(r):
    o, s = r["operator"], r["trafficsim"]
    rc = r["reconcile"]
    lines = [
        f"## rollguard scale benchmark: {r['deployments']} Deployments ({r.get('date', '')})",
        "",
        "| figure | value |",
        "|---|---|",
        f"| operator peak RSS (VmHWM) | {o['peak_rss_mib']} MiB |",
        f"| operator steady RSS (VmRSS, idle median) | {o['steady_rss_mib']} MiB |",
        f"| operator RSS during rollouts (max) | {o['rollout_rss_max_mib']} MiB |",
        f"| operator CPU: adoption / idle / rollouts | {o['cpu_s_adoption']} s / {o['cpu_s_idle']} s ({o['cpu_pct_idle']}%) / {o['cpu_s_rollouts']} s ({o['cpu_pct_rollouts']}%) |",
        f"| time to adopt all (from process start; ready after {r['ready_s']} s) | {r['adopt_s']} s |",
        f"| reconcile p50 / p99, all (n={rc['all']['count']}) | {rc['all']['p50_ms']} / {rc['all']['p99_ms']} ms |",
        f"| reconcile p50 / p99, adoption | {rc['adoption']['p50_ms']} / {rc['adoption']['p99_ms']} ms |",
        f"| reconcile p50 / p99, rollouts | {rc['rollouts']['p50_ms']} / {rc['rollouts']['p99_ms']} ms |",
        f"| API requests/min idle, by verb | {fmt_verbs(r['api']['idle']['per_minute'])} |",
        f"| API requests/min during rollouts, by verb | {fmt_verbs(r['api']['rollouts']['per_minute'])} |",
        f"| API requests/min during adoption, by verb | {fmt_verbs(r['api']['adoption']['per_minute'])} |",
        f"| Prometheus queries/min during rollouts | {r['queries']['per_minute']} ({r['queries']['prometheus_api_v1_query']} served = {r['queries']['operator_counter']} sent = {r['queries']['run_samples']} run samples; {r['queries']['expected_from_run_time']} analysis intervals) |",
        f"| step delay p50 / p99, operator histogram (n={r['step_delay_metric']['count']}) | {r['step_delay_metric']['p50_s']} / {r['step_delay_metric']['p99_s']} s |",
        f"| 50 rollouts: outcomes, wall time | {r['outcomes']}, {r['rollouts_s']} s |",
        f"| traffic simulator: steady RSS, CPU during rollouts | {s['steady_rss_mib']} MiB, {s['cpu_pct_rollouts']}% of a core |",
        "",
        "targets: " + ", ".join(f"{k} {'met' if v else 'MISSED'}" for k, v in r["targets"].items()),
        f"idle non-watch requests: {r['idle_polling'] or 'none'}",
        "",
    ]
    return "\n".join(lines)


def fmt_verbs(d):
    return ", ".join(f"{k} {v}" for k, v in d.items()) or "none"


if __name__ == "__main__":
    try:
        main()
    except BenchError as e:
        log(f"FAILED: {e}")
        sys.exit(1)
