#!/usr/bin/env python3
"""The peer benchmark (issue #20), the part that runs against a cluster that is up.

benches/peers/run.sh builds the binaries, starts the local control plane with Prometheus and
calls this. It starts the traffic simulator and the three controllers as processes on this
machine (rollguard, Flagger with the gatewayapi:v1 provider, Argo Rollouts), gives every
(configuration, scenario) pair a namespace of its own with the same service in it (the manifests
in benches/peers/manifests/), and in each namespace makes one change after another until the
time is up: it writes a new pod template, watches the controller's verdict, and counts what the
users saw. Results: report.md and results.json in --out.

Measured from outside the controllers:
  errors users saw   requests the new revision failed (every workload and track of the pod
                     template hash the change made: canary, and after a promotion the promoted
                     pods), from the traffic simulator's /stats, until the rollback (for a late
                     onset: until the rollback or the end of the watch after the onset)
  time to rollback   from the new revision's first request (the simulator's first_request_unix,
                     also exported as sim_first_request_timestamp_seconds) to the watch event that
                     showed the rollback
  largest share      Gateway API: the canary backend's weight in the HTTPRoute, from its watch;
                     replica routers: the new revision's ready pods over all ready pods behind the
                     Service, from /stats; sampled every second until the verdict
  false rollbacks    rollbacks of healthy changes
"""

import argparse
import json
import os
import signal
import socket
import string
import subprocess
import sys
import threading
import time

import observe
import report
import verdicts
from report import fmt_s

HERE = os.path.dirname(os.path.abspath(__file__))
REPLICAS = 5
ONSET_S = 60          # late onset: the new revision starts failing this long after its first request
LATE_WATCH_S = 180    # ... and its errors are counted until this long after the onset
HEALTHY_RATE = "0.001"
# Between one verdict and the next change: longer than the longest query window of the fastest
# configurations (1m), so no check of a change reads the previous revision's requests (Flagger's
# built-in queries select the target's pods by name, whatever their revision).
SETTLE_S = 75

# name (its manifest is manifests/<name>.yaml) -> controller, router, longest wait for one verdict (s),
# most changes per namespace
CONFIGS = {
    "rollguard-gateway-defaults": ("rollguard", "gateway", 25 * 60, 4),
    "rollguard-gateway-fastest": ("rollguard", "gateway", 5 * 60, 10),
    "rollguard-replicas-defaults": ("rollguard", "replicas", 25 * 60, 4),
    "rollguard-replicas-fastest": ("rollguard", "replicas", 5 * 60, 10),
    "flagger-defaults": ("flagger", "gateway", 25 * 60, 3),
    "flagger-fastest": ("flagger", "gateway", 5 * 60, 10),
    "argo-defaults": ("argo", "replicas", 30 * 60, 1),
    "argo-fastest": ("argo", "replicas", 5 * 60, 10),
}

# name -> requests/s, the new revision's error rate (before the onset for late), after the onset
SCENARIOS = {
    "healthy": (50, HEALTHY_RATE, None),
    "bad-1%": (50, "0.01", None),
    "bad-5%": (50, "0.05", None),
    "late-5%": (50, HEALTHY_RATE, "0.05"),
    "low-bad-5%": (1, "0.05", None),
    "low-healthy": (1, HEALTHY_RATE, None),
}

VERDICT = {"rollguard": verdicts.rollguard, "flagger": verdicts.flagger, "argo": verdicts.argo}
IDLE = {"rollguard": verdicts.rollguard_idle, "flagger": verdicts.flagger_idle, "argo": verdicts.argo_idle}
WORKLOAD_KIND = {"rollguard": "deployment", "flagger": "deployment", "argo": "rollout.argoproj.io"}


class BenchError(Exception):
    pass


def log(msg):
    print(f"[bench-peers {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def kubectl(*args, input=None):
    r = subprocess.run(["kubectl", "--request-timeout=30s", *args], input=input,
                       capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise BenchError(f"kubectl {' '.join(args[:4])}: {r.stderr.strip()[:500]}")
    return r.stdout


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# --- processes ----------------------------------------------------------------------------------
class Procs:
    """The processes this benchmark starts, each logging to --out/<name>.log, stopped at the end."""

    def __init__(self, out):
        self.out = out
        self.procs = {}

    def start(self, name, argv, **kw):
        log_file = open(os.path.join(self.out, f"{name}.log"), "w")
        self.procs[name] = subprocess.Popen(argv, stdout=kw.pop("stdout", log_file), stderr=log_file,
                                            start_new_session=True, **kw)
        return self.procs[name]

    def check(self):
        for name, p in self.procs.items():
            if p.poll() is not None:
                raise BenchError(f"{name} exited with {p.returncode} (see {self.out}/{name}.log)")

    def stop(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


def start_everything(args, procs):
    kubeconfig = os.environ["KUBECONFIG"]
    prom = os.environ["ROLLGUARD_PROMETHEUS_URL"]
    sim = procs.start("trafficsim", [args.trafficsim, "--listen", "127.0.0.1:0", "--all-namespaces",
                                     "--tick", "100ms", "--seed", "20"],
                      stdout=subprocess.PIPE, text=True)
    first = sim.stdout.readline().strip()
    if not first.startswith("listening on "):
        raise BenchError(f"trafficsim said {first!r}")
    sim_addr = first.removeprefix("listening on ")
    threading.Thread(target=lambda: sim.stdout.read(), daemon=True).start()
    targets = os.path.join(os.environ["ROLLGUARD_PROM_TARGETS_DIR"], "peers-trafficsim.json")
    with open(targets + ".tmp", "w") as f:
        json.dump([{"targets": [sim_addr], "labels": {"job": "trafficsim"}}], f)
    os.rename(targets + ".tmp", targets)
    procs.start("rollguard", [args.rollguard, "controller", "--metrics-addr", f"127.0.0.1:{free_port()}",
                              "--prometheus-address", prom, "--log-level", "info"],
                env={**os.environ, "POD_NAME": "rollguard-bench-peers"})
    # Flagger: leader election is off by default (-enable-leader-election); every Canary in
    # every namespace; its HTTP server (metrics, health) on a free port (it binds all interfaces).
    procs.start("flagger", [args.flagger, "-kubeconfig", kubeconfig, "-mesh-provider", "gatewayapi:v1",
                            "-metrics-server", prom, "-port", str(free_port()), "-log-level", "info"])
    # Argo Rollouts: leader election off; its metrics and health servers on free ports (it binds
    # all interfaces).
    procs.start("argo-rollouts", [args.argo, "--kubeconfig", kubeconfig, "--leader-elect=false",
                                  "--metricsPort", str(free_port()), "--healthzPort", str(free_port())])
    return f"http://{sim_addr}/stats"


# --- one namespace ------------------------------------------------------------------------------
def render(config, ns, scenario):
    rps, _, _ = SCENARIOS[scenario]
    with open(os.path.join(HERE, "manifests", f"{config}.yaml")) as f:
        text = f.read()
    return string.Template(text).substitute(
        NS=ns, RPS=str(rps), REPLICAS=str(REPLICAS), STABLE_ERROR_RATE=HEALTHY_RATE,
        PROMETHEUS_URL=os.environ["ROLLGUARD_PROMETHEUS_URL"])


def change(controller, ns, rev, error_rate):
    """A new pod template: revision label `rev`, the simulator's error rate `error_rate`."""
    patch = {"spec": {"template": {"metadata": {
        "labels": {"bench.rollguard.dev/rev": str(rev)},
        "annotations": {"sim.rollguard.dev/error-rate": error_rate}}}}}
    kubectl("-n", ns, "patch", WORKLOAD_KIND[controller], "web", "--type=merge", "-p", json.dumps(patch))


def wait_until(what, predicate, timeout, procs):
    deadline = time.time() + timeout
    while not predicate():
        procs.check()
        if time.time() > deadline:
            raise BenchError(f"{what}: not within {timeout} s")
        time.sleep(1)


def one_change(ctx, ns, controller, router, scenario, rev, timeout):
    """Makes change number `rev` and watches it to its verdict; returns the measured record."""
    watches, stats, procs = ctx["watches"], ctx["stats"], ctx["procs"]
    _, rate, late_rate = SCENARIOS[scenario]
    state = {}
    if controller == "argo":
        verdicts.argo_prepare(watches, ns, state)
    stats.fresh(time.time())
    before = set(stats.namespace(ns))
    t_change = time.time()
    change(controller, ns, rev, rate)
    pod_shares, verdict, last_annotated, first = [], None, None, None
    while True:
        procs.check()
        now = time.time()
        at, rows = stats.snapshot(ns)
        new = [k for k in rows if k not in before]
        firsts = [rows[k]["first_request_unix"] for k in new if rows[k]["first_request_unix"]]
        first = min(firsts) if firsts else None
        if verdict is None:
            pod_shares.append((at, verdicts.pod_share(rows, new)))
            verdict = VERDICT[controller](watches, ns, t_change, state)
        if late_rate and first and now >= first + ONSET_S and now >= (last_annotated or 0) + 5:
            # The new revision starts failing, wherever its pods run (canary, or promoted): every
            # 5 s, for the pods it started since.
            try:
                kubectl("-n", ns, "annotate", "pods", "-l", f"bench.rollguard.dev/rev={rev}", "--overwrite",
                        f"sim.rollguard.dev/error-rate={late_rate}")
            except BenchError as e:
                # A pod deleted between the list and the write (a rollback, a rolling update):
                # the next round annotates the ones left.
                log(f"{ns}: {e}")
            last_annotated = now
        done_late = not late_rate or (verdict and verdict[0] == verdicts.ROLLED_BACK) or \
            (last_annotated and now >= first + ONSET_S + LATE_WATCH_S)
        if verdict and done_late:
            break
        if now > t_change + timeout:
            break
        time.sleep(1)
    # The largest share before the verdict (a promotion then moves everything to the new revision).
    t_verdict = verdict[1] if verdict else time.time()
    if router == "gateway":
        shares = verdicts.route_shares(watches, ns, t_change, t_verdict)
    else:
        shares = [s for t, s in pod_shares if t < t_verdict]
    max_share = max(shares, default=0.0)
    # Errors until the verdict (late onset: until the end of its watch): a poll after it.
    t_end = verdict[1] if verdict and not late_rate else time.time()
    stats.fresh(t_end + 1)
    rows = stats.namespace(ns)
    new = [k for k in rows if k not in before]
    outcome = verdict[0] if verdict else verdicts.UNDECIDED
    if late_rate and outcome == verdicts.ROLLED_BACK and first and verdict[1] < first + ONSET_S:
        outcome = verdicts.ROLLED_BACK_BEFORE_ONSET
    return {
        "namespace": ns, "rev": rev, "scenario": scenario,
        "outcome": outcome,
        "verdict_after_first_request_s": (verdict[1] - first) if verdict and first else None,
        "verdict_after_onset_s": (verdict[1] - first - ONSET_S) if verdict and first and late_rate else None,
        "first_request_after_change_s": (first - t_change) if first else None,
        "errors": sum(rows[k]["errors"] for k in new),
        "requests": sum(rows[k]["requests"] for k in new),
        "max_share": max_share,
        "watched_s": time.time() - t_change,
        "change_unix": t_change,
    }


def run_namespace(ctx, config, scenario, deadline, results):
    controller, router, timeout, most = CONFIGS[config]
    ns = f"{config}-{scenario.replace('%', '').replace('.', '')}"
    procs, watches = ctx["procs"], ctx["watches"]
    try:
        wait_until(f"{ns}: {controller} ready", lambda: IDLE[controller](watches, ns) and
                   (controller != "rollguard" or adopted(ns)), 600, procs)
        for rev in range(1, most + 1):
            left = deadline - time.time()
            if left < 60 or (rev > 1 and left < timeout / 2):
                break
            rec = one_change(ctx, ns, controller, router, scenario, rev, min(timeout, left))
            rec["config"] = config
            # Watched for less than its own limit because the benchmark's time was up.
            rec["cut_by_deadline"] = left < timeout and rec["watched_s"] >= left - 2
            results.append(rec)
            log(f"{ns} #{rev}: {rec['outcome']}, {rec['errors']} errors of {rec['requests']}, "
                f"share {rec['max_share']:.3f}, verdict {fmt_s(rec['verdict_after_first_request_s'])} "
                "after the first request")
            if rec["outcome"] == verdicts.UNDECIDED:
                break
            wait_until(f"{ns}: {controller} idle after change {rev}", lambda: IDLE[controller](watches, ns),
                       600, procs)
            time.sleep(SETTLE_S)
    except BenchError as e:
        ctx["errors"].append(f"{ns}: {e}")
        log(f"ERROR {ns}: {e}")


def adopted(ns):
    out = kubectl("-n", ns, "get", "deployment", "web", "-o",
                  "jsonpath={.metadata.annotations.rollguard\\.dev/stable-revision}")
    return bool(out.strip())


# --- main ---------------------------------------------------------------------------------------
def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--rollguard", required=True)
    ap.add_argument("--trafficsim", required=True)
    ap.add_argument("--flagger", required=True)
    ap.add_argument("--argo", required=True)
    ap.add_argument("--minutes", type=float, default=35)
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    args = ap.parse_args()
    configs = [c for c in args.configs.split(",") if c]
    scenarios = [s for s in args.scenarios.split(",") if s]
    procs = Procs(args.out)
    watches = {}
    try:
        stats_url = start_everything(args, procs)
        ctx = {"procs": procs, "stats": observe.Stats(stats_url), "errors": [],
               "watches": {k: observe.Watch(k) for k in (
                   "canaries.flagger.app", "rollouts.argoproj.io", "rolloutruns.rollguard.dev",
                   "httproutes.gateway.networking.k8s.io")}}
        watches = ctx["watches"]
        docs = []
        for config in configs:
            for scenario in scenarios:
                ns = f"{config}-{scenario.replace('%', '').replace('.', '')}"
                docs.append(f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n---\n"
                            + render(config, ns, scenario))
        kubectl("apply", "-f", "-", input="\n---\n".join(docs))
        log(f"{len(docs)} namespaces created; waiting for the controllers to take them")
        t0 = time.time()
        deadline = t0 + args.minutes * 60
        results = []
        threads = [threading.Thread(target=run_namespace, args=(ctx, c, s, deadline, results), daemon=True)
                   for c in configs for s in scenarios]
        for t in threads:
            t.start()
        for t in threads:
            while t.is_alive():
                t.join(1)
        with open(os.path.join(args.out, "results.json"), "w") as f:
            json.dump({"results": results, "errors": ctx["errors"], "seconds": time.time() - t0}, f, indent=1)
        text = report.render(results, ctx["errors"], configs, scenarios)
        with open(os.path.join(args.out, "report.md"), "w") as f:
            f.write(text)
        print(text)
        if ctx["errors"]:
            raise BenchError(f"{len(ctx['errors'])} namespaces failed (above)")
    finally:
        for w in watches.values():
            w.stop()
        procs.stop()


if __name__ == "__main__":
    # SIGTERM unwinds like ctrl-c, so the controllers and the simulator are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        main()
    except BenchError as e:
        log(f"ERROR: {e}")
        sys.exit(1)
