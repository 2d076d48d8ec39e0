#!/usr/bin/env python3
"""Generates charts/rollguard/README.md from Chart.yaml and values.yaml.

Every value in values.yaml is documented by a `# -- description` comment on the lines
above it (continued on further `#` lines). A documented key whose value is a block (a
nested map) becomes one row with the whole block as its default; an undocumented map is
descended into. A leaf value without a description is an error, so a new value cannot be
added without documenting it.

    python3 charts/rollguard/gen-readme.py          # rewrite README.md
    python3 charts/rollguard/gen-readme.py --check  # exit 1 when README.md is stale

Standard library only. It reads the small YAML subset values.yaml is written in (maps,
scalars, flow lists and maps such as `[]`, `{}`, `[ALL]`) and refuses anything else.
"""

import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
VALUES = HERE / "values.yaml"
CHART = HERE / "Chart.yaml"
README = HERE / "README.md"

KEY_RE = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_./-]+):(?: (?P<value>.*))?$")


class ValuesError(Exception):
    pass


def scalar(text, where):
    """A plain or flow YAML scalar of the subset values.yaml uses, as a Python value."""
    t = text.strip()
    if t == "":
        return None
    if t.startswith('"'):
        return json.loads(t)
    if t.startswith("'") and t.endswith("'"):
        return t[1:-1].replace("''", "'")
    if t in ("true", "false"):
        return t == "true"
    if t in ("null", "~"):
        return None
    if re.fullmatch(r"-?[0-9]+", t):
        return int(t)
    if t.startswith("[") and t.endswith("]"):
        inner = t[1:-1].strip()
        return [scalar(x, where) for x in inner.split(",")] if inner else []
    if t.startswith("{") and t.endswith("}"):
        inner = t[1:-1].strip()
        if inner:
            raise ValuesError(f"{where}: non-empty flow maps are not supported; use a block map")
        return {}
    if "#" in t:
        raise ValuesError(f"{where}: inline comments are not supported; put the comment above")
    if t[0] in "&*!|>%@`-":
        raise ValuesError(f"{where}: unsupported YAML syntax {t!r}")
    return t


def parse(lines):
    """Returns a list of (path, value, description, line number) for every key, in order,
    and the nested values as a dict."""
    root = {}
    stack = [(-1, root, [])]  # (indent, container, path)
    entries = []
    desc = None  # lines of the pending `# --` description
    for n, raw in enumerate(lines, 1):
        line = raw.rstrip("\n")
        stripped = line.strip()
        if not stripped:
            desc = None
            continue
        if stripped.startswith("#"):
            body = stripped[1:]
            if body.startswith(" -- ") or body == " --":
                desc = [body[4:].strip()]
            elif desc is not None:
                desc.append(body.strip())
            continue
        if stripped.startswith("- "):
            raise ValuesError(f"values.yaml:{n}: block lists are not supported; use a flow list [a, b]")
        m = KEY_RE.match(line)
        if not m:
            raise ValuesError(f"values.yaml:{n}: cannot read {line!r}")
        indent = len(m.group("indent"))
        while stack[-1][0] >= indent:
            stack.pop()
        parent_indent, container, path = stack[-1]
        key = m.group("key")
        value_text = m.group("value")
        full = path + [key]
        description = " ".join(d for d in desc if d) if desc else None
        desc = None
        if value_text is None or value_text.strip() == "":
            child = {}
            container[key] = child
            stack.append((indent, child, full))
            entries.append((full, child, description, n))
        else:
            value = scalar(value_text, f"values.yaml:{n}")
            container[key] = value
            entries.append((full, value, description, n))
    return root, entries


def rows(entries):
    """The table rows: documented keys, with nothing under a documented key repeated."""
    out = []
    covered = []
    for path, value, description, n in entries:
        if any(path[: len(c)] == c for c in covered):
            continue
        if description:
            out.append((".".join(path), value, description))
            covered.append(path)
        elif not isinstance(value, dict) or not value:
            raise ValuesError(
                f"values.yaml:{n}: {'.'.join(path)} has no `# --` description"
            )
    return out


def type_name(v):
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, list):
        return "list"
    if isinstance(v, dict):
        return "object"
    return "string"


def cell(text):
    return text.replace("|", "\\|")


def chart_field(name):
    for line in CHART.read_text().splitlines():
        if line.startswith(f"{name}:"):
            return scalar(line.split(":", 1)[1], f"Chart.yaml {name}")
    raise ValuesError(f"Chart.yaml has no {name}")


def render():
    _, entries = parse(VALUES.read_text().splitlines())
    version = chart_field("version")
    app_version = chart_field("appVersion")
    kube_version = chart_field("kubeVersion")
    description = chart_field("description")
    table = ["| Key | Type | Default | Description |", "|-----|------|---------|-------------|"]
    for key, value, desc in rows(entries):
        default = json.dumps(value, separators=(", ", ": "))
        table.append(f"| `{key}` | {type_name(value)} | `{cell(default)}` | {cell(desc)} |")
    return f"""<!-- Generated by gen-readme.py from Chart.yaml and values.yaml: do not edit by hand.
     Run `python3 charts/rollguard/gen-readme.py` after changing values.yaml. -->
# rollguard

![Version: {version}](https://img.shields.io/badge/Version-{version}-informational)
![AppVersion: {app_version}](https://img.shields.io/badge/AppVersion-{app_version}-informational)

{description}.

Requires Kubernetes `{kube_version}` (the approval guard is a ValidatingAdmissionPolicy,
admissionregistration.k8s.io/v1).

## Install

Build the operator image and push it to your registry (`make image-push`, which writes
`build/image/values.yaml` with the image's digest), then:

```sh
helm install rollguard charts/rollguard --namespace rollguard-system --create-namespace \\
  -f build/image/values.yaml
helm test rollguard --namespace rollguard-system
```

Then apply a RolloutPolicy (see `deploy/examples/`) and watch runs with
`kubectl get rolloutruns -A`. The release notes printed by Helm list the next steps.

## What the chart installs

- The CRDs `rolloutpolicies.rollguard.dev` and `rolloutruns.rollguard.dev`, as templates
  annotated `helm.sh/resource-policy: keep`: `helm upgrade` updates their schema, and
  `helm uninstall` leaves them (and every policy and run) in place.
- The operator Deployment (`replicaCount` replicas), non-root (uid 65532), read-only root
  filesystem, no privilege escalation, all capabilities dropped, RuntimeDefault seccomp,
  probes on `/healthz` and `/readyz`.
- A ServiceAccount and least-privilege RBAC: a ClusterRole (a Role in `watchNamespace`
  when set) listing each verb with its reason, no wildcards, no Secrets unless
  `rbac.secretNamespaces` names namespaces; a Role for the leader-election Lease in the
  release namespace. See `docs/operations/rbac.md`.
- The ValidatingAdmissionPolicy `<fullname>-approvals` and its binding: approvals and
  commands on a RolloutRun must name the user who sends them.
- A PodDisruptionBudget (with more than one replica) and a metrics Service.
- ClusterRoles for people: `<fullname>-view` and `<fullname>-edit`, aggregated into the
  built-in `view`, `edit` and `admin`, and `<fullname>-approver` for `kubectl rollguard
  approve` (`rbac.aggregateRoles`).
- Optionally: a prometheus-operator ServiceMonitor, a PrometheusRule with the alert rules of
  `docs/operations/alert-rules.yaml`, the Grafana dashboard as a ConfigMap for the dashboard
  sidecar, a NetworkPolicy, and any `extraObjects`.
- A `helm test` hook: `rollguard check-install` in the operator image checks the CRDs are
  Established and the operator ready.

## Upgrade and uninstall

```sh
helm upgrade rollguard charts/rollguard --namespace rollguard-system   # CRDs included
helm uninstall rollguard --namespace rollguard-system                  # CRDs kept
kubectl delete crd rolloutpolicies.rollguard.dev rolloutruns.rollguard.dev  # only to remove all data
```

The full story, including the plain-manifest alternative (`deploy/rollguard.yaml`), is in
`docs/operations/install.md`.

## Values

{chr(10).join(table)}
"""


def main():
    check = "--check" in sys.argv[1:]
    try:
        text = render()
    except ValuesError as e:
        print(f"gen-readme.py: {e}", file=sys.stderr)
        return 2
    if check:
        current = README.read_text() if README.exists() else ""
        if current != text:
            print(
                "charts/rollguard/README.md is stale: run `python3 charts/rollguard/gen-readme.py`",
                file=sys.stderr,
            )
            return 1
        return 0
    README.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
