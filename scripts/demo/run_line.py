"""One line about the newest RolloutRun in a `kubectl get rolloutruns -o json` list: phase|text."""
import json
import sys

items = json.load(sys.stdin)["items"]
if not items:
    sys.exit(0)
r = items[-1]
s = r.get("status") or {}
sm = (s.get("samples") or [{}])[-1]
stat = ""
if sm.get("statistic"):
    stat = f"  LLR {sm['statistic']} (rollback at {sm.get('upperBound')})"
print(
    f"{s.get('phase', 'Pending')}|tier {r['spec']['tier']['name']}  step {s.get('stepDisplay', '-')}"
    f"  weight {s.get('weight', '0%'):>4}  canary {sm.get('requests', '-'):>5} requests"
    f" {sm.get('errors', '-'):>3} errors ({sm.get('rate', '-')}){stat}"
)
