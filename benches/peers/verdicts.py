"""Each controller's verdict on one change, read from its objects as the watches delivered them
(never from its logs or metrics), and the canary's share as the traffic simulator routes it.

A verdict is (outcome, unix time of the watch event that showed it): outcome `rolled back` or
`promoted`. The time is when the state reached this process, at most a watch's latency after
the API server stored it.
"""

ROLLED_BACK = "rolled back"
PROMOTED = "promoted"
UNDECIDED = "undecided"
# A late onset's change rolled back while it was still healthy.
ROLLED_BACK_BEFORE_ONSET = "rolled back before the onset"


def flagger(watches, ns, t_change, _state):
    """Canary web: Failed after a Progressing seen since the change = rolled back; Promoting
    (then Finalising, Succeeded) = promoted."""
    progressing = False
    for t, o in watches["canaries.flagger.app"].since(ns, "web", t_change):
        phase = (o.get("status") or {}).get("phase")
        if phase == "Progressing":
            progressing = True
        elif progressing and phase == "Failed":
            return ROLLED_BACK, t
        elif progressing and phase in ("Promoting", "Finalising", "Succeeded"):
            return PROMOTED, t
    return None


def flagger_idle(watches, ns):
    o = watches["canaries.flagger.app"].latest(ns, "web")
    return o is not None and (o.get("status") or {}).get("phase") in ("Initialized", "Succeeded", "Failed")


def argo(watches, ns, t_change, state):
    """Rollout web: the new revision is the first currentPodHash other than the stable one
    after the change; `status.abort` on it = rolled back; stableRS equal to it = promoted."""
    for t, o in watches["rollouts.argoproj.io"].since(ns, "web", t_change):
        st = o.get("status") or {}
        current, stable = st.get("currentPodHash"), st.get("stableRS")
        # The first hash other than the ones before the change (an aborted revision stays
        # current until the new template is seen).
        if "new_hash" not in state and current and current not in state["before"]:
            state["new_hash"] = current
        new = state.get("new_hash")
        if not new or current != new:
            continue
        if st.get("abort"):
            return ROLLED_BACK, t
        if stable == new:
            return PROMOTED, t
    return None


def argo_idle(watches, ns):
    o = watches["rollouts.argoproj.io"].latest(ns, "web")
    st = (o or {}).get("status") or {}
    return bool(st.get("abort")) or (st.get("phase") == "Healthy" and st.get("stableRS") == st.get("currentPodHash"))


def argo_prepare(watches, ns, state):
    st = (watches["rollouts.argoproj.io"].latest(ns, "web") or {}).get("status") or {}
    state["before"] = {st.get("stableRS"), st.get("currentPodHash")}


def rollguard(watches, ns, t_change, _state):
    """A RolloutRun first seen after the change: RolledBack = rolled back; Promoting or
    Succeeded = promoted."""
    w = watches["rolloutruns.rollguard.dev"]
    with w.lock:
        new_runs = [key for key, evs in w.events.items() if key[0] == ns and evs[0][0] >= t_change]
    for _, name in new_runs:
        for t, o in w.since(ns, name, t_change):
            phase = (o.get("status") or {}).get("phase")
            if phase == "RolledBack":
                return ROLLED_BACK, t
            if phase in ("Promoting", "Succeeded"):
                return PROMOTED, t
    return None


def rollguard_idle(watches, ns):
    """No run of the namespace is in flight: every RolloutRun seen is in a final phase."""
    w = watches["rolloutruns.rollguard.dev"]
    with w.lock:
        keys = [key for key in w.events if key[0] == ns]
    for key in keys:
        o = w.latest(*key)
        if (o.get("status") or {}).get("phase") not in ("Succeeded", "RolledBack", "Aborted", "Superseded"):
            return False
    return True


def route_shares(watches, ns, t0, t1):
    """The canary's shares in HTTPRoute web from t0 until before t1: the route as it was at t0,
    then every version the watch delivered."""
    w = watches["httproutes.gateway.networking.k8s.io"]
    with w.lock:
        evs = list(w.events.get((ns, "web"), []))
    at_t0 = [o for t, o in evs if t < t0][-1:]
    return [route_share(o) for o in at_t0] + [route_share(o) for t, o in evs if t0 <= t < t1]


def route_share(o):
    """The canary's share of an HTTPRoute's first rule (the backend named *-canary)."""
    refs = ((o.get("spec") or {}).get("rules") or [{}])[0].get("backendRefs") or []
    total = sum(r.get("weight", 1) for r in refs)
    canary = sum(r.get("weight", 1) for r in refs if r.get("name", "").endswith("-canary"))
    return canary / total if total else 0.0


def pod_share(rows, new_keys):
    """The new revision's share of the ready pods behind the Service: its ready pods over all
    ready pods the traffic simulator counts in the namespace."""
    total = sum(r["ready_pods"] for r in rows.values())
    new = sum(rows[k]["ready_pods"] for k in new_keys if k in rows)
    return new / total if total else 0.0
