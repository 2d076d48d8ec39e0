"""The evidence of a rolled-back run, and how many users saw an error (from the simulator).

Usage: kubectl get rolloutrun NAME -o json |
         python3 evidence.py SIMULATOR_ADDR CANARY_WORKLOAD STATS_BEFORE.json

STATS_BEFORE.json is the simulator's /stats taken just before the change: the canary
workload's counters outlive one run, so what this run's canary served is the difference.
"""
import datetime
import json
import sys
import urllib.request


def canary_totals(stats, workload):
    rows = [w for w in stats["workloads"] if w["workload"] == workload]
    return sum(w["requests"] for w in rows), sum(w["errors"] for w in rows)


def parse_time(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


run = json.load(sys.stdin)
addr, workload, before_file = sys.argv[1:4]
s = run["status"]
e = s.get("evidence") or {}
print(f"  {s['phase']} ({s.get('reason')}): {s.get('message')}")
print(
    f"  evidence: {e.get('requests')} canary requests, {e.get('errors')} errors, rate {e.get('rate')},"
    f" p0 {e.get('baseline')}, p1 {e.get('threshold')}, statistic {e.get('statistic')} >= {e.get('upperBound')}"
)
if s.get("canaryStartedAt") and s.get("endedAt"):
    took = parse_time(s["endedAt"]) - parse_time(s["canaryStartedAt"])
    print(f"  time from the canary's first slice to rollback: {took:.0f}s (whole seconds, as the API stores them)")
with open(before_file) as f:
    before = canary_totals(json.load(f), workload)
after = canary_totals(json.load(urllib.request.urlopen(f"http://{addr}/stats")), workload)
served, errors = after[0] - before[0], after[1] - before[1]
print(f"  users who saw an error from the bad revision: {errors} (of {served} requests it served)")
