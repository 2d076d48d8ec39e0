"""The peer benchmark's table, from the measured records (bench.py, which prints it at the end;
`python3 report.py results.json` prints it again from a run's raw records)."""

import json
import statistics
import sys

import verdicts


def fmt_s(s):
    if s is None:
        return "–"
    return f"{int(s // 60)}m{int(s % 60):02d}s" if s >= 60 else f"{s:.0f}s"


def spread(values, fmt):
    """median (min–max) of the values, or – without any."""
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    med = fmt(statistics.median(values))
    if len(values) == 1 or min(values) == max(values):
        return med
    return f"{med} ({fmt(min(values))}–{fmt(max(values))})"


def outcomes(recs):
    counts = {}
    for r in recs:
        counts[r["outcome"]] = counts.get(r["outcome"], 0) + 1
    return ", ".join(f"{n} {o}" for o, n in sorted(counts.items()))


def render(results, errors, configs, scenarios):
    cut = [r for r in results if r.get("cut_by_deadline")]
    results = [r for r in results if not r.get("cut_by_deadline")]
    lines = [
        "| configuration | scenario | changes | outcome | errors users saw, median (min–max) "
        "| first request → rollback (late: onset → rollback) | first request → promotion "
        "| largest canary share |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for config in configs:
        for scenario in scenarios:
            recs = [r for r in results if r["config"] == config and r["scenario"] == scenario]
            if not recs:
                lines.append(f"| {config} | {scenario} | 0 | (no change finished in time) | | | | |")
                continue
            # A late onset's rollback is timed from the onset.
            since = "verdict_after_onset_s" if scenario.startswith("late") else "verdict_after_first_request_s"
            rb = [r[since] for r in recs if r["outcome"] == verdicts.ROLLED_BACK]
            pr = [r["verdict_after_first_request_s"] for r in recs if r["outcome"] == verdicts.PROMOTED]
            lines.append(
                f"| {config} | {scenario} | {len(recs)} | {outcomes(recs)} "
                f"| {spread([r['errors'] for r in recs], lambda v: f'{v:g}')} "
                f"| {spread(rb, fmt_s)} | {spread(pr, fmt_s)} "
                f"| {max(r['max_share'] for r in recs) * 100:.1f}% |")
    lines += ["", "False rollbacks (healthy changes rolled back):", "",
              "| configuration | healthy, 50 requests/s | healthy, 1 request/s | late-5% before its onset |",
              "|---|---|---|---|"]
    for config in configs:
        cells = []
        for scenario in ("healthy", "low-healthy"):
            recs = [r for r in results if r["config"] == config and r["scenario"] == scenario]
            decided = [r for r in recs if r["outcome"] != verdicts.UNDECIDED]
            rb = sum(r["outcome"] == verdicts.ROLLED_BACK for r in recs)
            cells.append(f"{rb} of {len(recs)}" + (f" ({len(recs) - len(decided)} undecided)"
                                                    if len(decided) < len(recs) else ""))
        late = [r for r in results if r["config"] == config and r["scenario"] == "late-5%"]
        early = sum(r["outcome"] == verdicts.ROLLED_BACK_BEFORE_ONSET for r in late)
        lines.append(f"| {config} | {cells[0]} | {cells[1]} | {early} of {len(late)} |")
    if cut:
        lines += ["", f"Left out: {len(cut)} changes still being watched when the time was up: "
                  + ", ".join(f"{r['config']} {r['scenario']} #{r['rev']}" for r in cut) + "."]
    if errors:
        lines += ["", "Failures:", ""] + [f"- {e}" for e in errors]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        doc = json.load(f)
    recs = doc["results"]
    order = lambda key, known: sorted({r[key] for r in recs}, key=lambda k: known.index(k) if k in known else 99)
    import bench
    print(render(recs, doc["errors"], order("config", list(bench.CONFIGS)), order("scenario", list(bench.SCENARIOS))), end="")
