"""What really happened on the real data path (`make demo GATEWAY=traefik`), between two
snapshots: requests the pods answered per revision (the pod server's /counts) and what users
saw (the load generator's /stats), including the requests that failed.

Usage: python3 real_counts.py PODSERVER_ADDR LOADGEN_ADDR SNAPSHOT.json [save]
  without `save`: prints the counts since SNAPSHOT.json (and the run's evidence, when a
  RolloutRun is given on stdin); with `save`: writes the current counts to SNAPSHOT.json.
"""
import datetime
import json
import sys
import urllib.request


def get(addr, path):
    with urllib.request.urlopen(f"http://{addr}{path}", timeout=5) as r:
        return json.load(r)


def snapshot(pods_addr, load_addr):
    pods = {}
    for p in get(pods_addr, "/counts")["pods"]:
        key = f"{p['track']} {p['revision']}"
        c = pods.setdefault(key, {"requests": 0, "errors": 0, "first": None})
        c["requests"] += p["requests"]
        c["errors"] += p["errors"]
        if p.get("first_request") and (c["first"] is None or p["first_request"] < c["first"]):
            c["first"] = p["first_request"]
    return {"pods": pods, "users": get(load_addr, "/stats")}


pods_addr, load_addr, path = sys.argv[1:4]
now = snapshot(pods_addr, load_addr)
if len(sys.argv) > 4 and sys.argv[4] == "save":
    json.dump(now, open(path, "w"))
    sys.exit(0)
before = json.load(open(path))
run = None
if not sys.stdin.isatty():
    text = sys.stdin.read().strip()
    run = json.loads(text) if text else None
if run:
    s = run["status"]
    e = s.get("evidence") or {}
    print(f"  {s['phase']} ({s.get('reason')}): {s.get('message')}")
    if e:
        print(f"  evidence (Traefik's traefik_service_requests_total, via Prometheus): "
              f"{e.get('requests')} canary requests, {e.get('errors')} errors, rate {e.get('rate')}")
print("  real requests answered by the pods since the change (pod server):")
for key, c in sorted(now["pods"].items()):
    b = before["pods"].get(key, {"requests": 0, "errors": 0})
    n, err = c["requests"] - b["requests"], c["errors"] - b["errors"]
    if n:
        print(f"    {key:28} {n:7} requests, {err:4} errors")
u, ub = now["users"], before["users"]
sent, failed = u["sent"] - ub["sent"], u["failed"] - ub["failed"]
gw_errors = u["by_revision"].get("", {}).get("requests", 0) - ub["by_revision"].get("", {}).get("requests", 0)
print(f"  users (load generator): {sent} requests sent through Traefik, {failed} failed "
      f"({gw_errors} answered by Traefik itself, {u['failed_transport'] - ub['failed_transport']} transport errors)")
if run and run["status"].get("endedAt"):
    ended = datetime.datetime.fromisoformat(run["status"]["endedAt"].replace("Z", "+00:00")).timestamp()
    firsts = [c["first"] for k, c in now["pods"].items()
              if k.startswith("canary") and c.get("first") and k not in before["pods"]]
    if firsts:
        print(f"  the run ended {ended - min(firsts):.1f} s after its canary's first real request")
