"""The evidence of a rolled-back run, and how many users saw an error (from the simulator).

Usage: kubectl get rolloutrun NAME -o json | python3 evidence.py SIMULATOR_ADDR CANARY_WORKLOAD
"""
import datetime
import json
import sys
import urllib.request

run = json.load(sys.stdin)
s = run["status"]
e = s.get("evidence") or {}
stats = json.load(urllib.request.urlopen(f"http://{sys.argv[1]}/stats"))
canary = [w for w in stats["workloads"] if w["workload"] == sys.argv[2]]
print(f"  {s['phase']} ({s.get('reason')}): {s.get('message')}")
print(
    f"  evidence: {e.get('requests')} canary requests, {e.get('errors')} errors, rate {e.get('rate')},"
    f" p0 {e.get('baseline')}, p1 {e.get('threshold')}, statistic {e.get('statistic')} >= {e.get('upperBound')}"
)
firsts = [w["first_request_unix"] for w in canary if w.get("first_request_unix")]
if firsts and s.get("endedAt"):
    ended = datetime.datetime.fromisoformat(s["endedAt"].replace("Z", "+00:00")).timestamp()
    print(f"  time from the first canary request to rollback: {ended - min(firsts):.1f}s")
errors = sum(w["errors"] for w in canary)
served = sum(w["requests"] for w in canary)
print(f"  users who saw an error from the bad revision: {errors} (of {served} requests it served)")
