"""What the peer benchmark sees from outside the controllers: Kubernetes watches (each event
stamped with the time it arrived) and the traffic simulator's /stats, polled every second.

Nothing here reads a controller's own metrics or logs: a verdict is the object state a watch
delivered, errors and first requests are what the traffic simulator counted.
"""

import json
import subprocess
import threading
import time
import urllib.request


class Watch:
    """`kubectl get KIND -A --watch` in a thread; keeps every event with its arrival time.

    The API server ends a watch after a while; the thread starts it again (a relist replays the
    current objects as ADDED, which is harmless: the verdicts look at state, not at event types).
    """

    def __init__(self, kind):
        self.kind = kind
        self.lock = threading.Lock()
        self.events = {}  # (namespace, name) -> [(unix time, object)]
        self.proc = None
        self.stopped = False
        self.thread = threading.Thread(target=self._run, daemon=True, name=f"watch-{kind}")
        self.thread.start()

    def _run(self):
        while not self.stopped:
            self.proc = subprocess.Popen(
                ["kubectl", "get", self.kind, "-A", "--watch", "--output-watch-events", "-o", "json"],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            decoder = json.JSONDecoder()
            buf = ""
            for line in self.proc.stdout:
                buf += line
                while True:
                    stripped = buf.lstrip()
                    if not stripped:
                        buf = ""
                        break
                    try:
                        event, end = decoder.raw_decode(stripped)
                    except json.JSONDecodeError:
                        break
                    buf = stripped[end:]
                    self._add(event)
            self.proc.wait()
            if not self.stopped:
                time.sleep(1)

    def _add(self, event):
        obj = event.get("object") or {}
        meta = obj.get("metadata") or {}
        key = (meta.get("namespace"), meta.get("name"))
        with self.lock:
            self.events.setdefault(key, []).append((time.time(), obj))

    def since(self, namespace, name, t0):
        """The [(time, object)] of namespace/name that arrived at or after t0."""
        with self.lock:
            return [(t, o) for t, o in self.events.get((namespace, name), []) if t >= t0]

    def latest(self, namespace, name):
        """The last object seen of namespace/name, or None."""
        with self.lock:
            evs = self.events.get((namespace, name))
            return evs[-1][1] if evs else None

    def in_namespace_since(self, namespace, t0):
        """The [(time, object)] of every object of the namespace that arrived at or after t0."""
        with self.lock:
            return sorted(((t, o) for (ns, _), evs in self.events.items() if ns == namespace
                           for t, o in evs if t >= t0), key=lambda e: e[0])

    def stop(self):
        self.stopped = True
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()


class Stats:
    """The traffic simulator's /stats, polled every second: per namespace, its rows keyed by
    (workload, track, pod_template_hash), each with requests, errors, ready pods and the first
    request's time."""

    def __init__(self, url):
        self.url = url
        self.lock = threading.Lock()
        self.rows = {}
        self.at = 0.0
        self.stopped = False
        self.thread = threading.Thread(target=self._run, daemon=True, name="stats")
        self.thread.start()

    def _run(self):
        while not self.stopped:
            started = time.time()
            try:
                with urllib.request.urlopen(self.url, timeout=5) as r:
                    doc = json.loads(r.read())
                rows = {}
                for w in doc["workloads"]:
                    key = (w["workload"], w["track"], w["pod_template_hash"])
                    rows.setdefault(w["namespace"], {})[key] = w
                with self.lock:
                    self.rows, self.at = rows, started
            except OSError:
                pass
            time.sleep(1)

    def namespace(self, ns):
        """{(workload, track, hash): row} of the namespace, as of the last poll."""
        return self.snapshot(ns)[1]

    def snapshot(self, ns):
        """(the last poll's start time, the namespace's rows in it)."""
        with self.lock:
            return self.at, dict(self.rows.get(ns, {}))

    def fresh(self, after):
        """Waits until a poll that started after `after` has landed."""
        while True:
            with self.lock:
                if self.at > after:
                    return
            time.sleep(0.2)

    def stop(self):
        self.stopped = True
