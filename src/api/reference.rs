//! The policy reference, generated from the CRD schemas: every field with its type,
//! default, validation and description. `rollguard crd --reference` prints it and a test
//! keeps `docs/reference.md` equal to it, so the docs cannot drift from the API.

use serde_json::Value;

use super::crds;

/// The reference for every CRD, as Markdown.
pub fn markdown() -> String {
    let mut out = String::from(
        "# API reference\n\n\
         Generated from the CRD schemas by `rollguard crd --reference` (a test fails when this\n\
         file is stale; regenerate it with `make crds`). Every field, its type, its default,\n\
         and the checks the API server applies. Percentages are strings such as `\"0.5%\"`,\n\
         durations strings such as `\"1m30s\"`.\n",
    );
    for crd in crds() {
        let kind = crd.spec.names.kind.clone();
        let v = serde_json::to_value(&crd.spec.versions[0].schema).unwrap_or_default();
        let root = &v["openAPIV3Schema"];
        out.push_str(&format!(
            "\n## {kind} ({}/{})\n\n{}\n\n",
            crd.spec.group,
            crd.spec.versions[0].name,
            root["description"].as_str().unwrap_or_default()
        ));
        out.push_str(
            "| Field | Type | Default | Validation | Description |\n|---|---|---|---|---|\n",
        );
        for part in ["spec", "status"] {
            if let Some(s) = root["properties"].get(part) {
                rules_row(&mut out, part, s);
                walk(&mut out, part, s);
            }
        }
    }
    out
}

fn ty(s: &Value) -> String {
    match s["type"].as_str() {
        Some("array") => format!("[]{}", ty(&s["items"])),
        Some("object") if s.get("additionalProperties").is_some_and(|a| a.is_object()) => {
            format!("map[string]{}", ty(&s["additionalProperties"]))
        }
        Some(t) => t.to_string(),
        None if s.get("x-kubernetes-int-or-string").is_some() => "int-or-string".into(),
        None => "object".into(),
    }
}

fn esc(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn checks(s: &Value) -> Vec<String> {
    let mut c = Vec::new();
    if let Some(p) = s["pattern"].as_str() {
        c.push(format!("pattern `{}`", p));
    }
    if let Some(e) = s["enum"].as_array() {
        let vals: Vec<String> = e
            .iter()
            .filter_map(|v| v.as_str())
            .map(|v| format!("`{v}`"))
            .collect();
        c.push(format!("one of {}", vals.join(", ")));
    }
    for (k, label) in [
        ("minimum", "min"),
        ("maximum", "max"),
        ("minLength", "min length"),
        ("maxLength", "max length"),
        ("minItems", "min items"),
        ("maxItems", "max items"),
    ] {
        if let Some(n) = s.get(k).and_then(|n| n.as_f64()) {
            c.push(format!("{label} {n}"));
        }
    }
    if let Some(rules) = s["x-kubernetes-validations"].as_array() {
        for r in rules {
            if let Some(m) = r["message"].as_str() {
                c.push(format!("rule: {m}"));
            }
        }
    }
    c
}

fn rules_row(out: &mut String, path: &str, s: &Value) {
    let c = checks(s);
    if !c.is_empty() {
        out.push_str(&format!(
            "| `{path}` | {} | | {} | {} |\n",
            ty(s),
            esc(&c.join("; ")),
            esc(s["description"].as_str().unwrap_or_default())
        ));
    }
}

fn walk(out: &mut String, path: &str, s: &Value) {
    let (props, required) = if s["type"] == "array" {
        (&s["items"]["properties"], &s["items"]["required"])
    } else {
        (&s["properties"], &s["required"])
    };
    let Some(props) = props.as_object() else {
        return;
    };
    let required: Vec<&str> = required
        .as_array()
        .map(|r| r.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    for (name, sub) in props {
        let here = if s["type"] == "array" {
            format!("{path}[].{name}")
        } else {
            format!("{path}.{name}")
        };
        let default = sub
            .get("default")
            .map(|d| format!("`{}`", d))
            .unwrap_or_default();
        let mut c = checks(sub);
        if required.contains(&name.as_str()) {
            c.insert(0, "required".into());
        }
        out.push_str(&format!(
            "| `{here}` | {} | {} | {} | {} |\n",
            ty(sub),
            esc(&default),
            esc(&c.join("; ")),
            esc(sub["description"].as_str().unwrap_or_default())
        ));
        // Kubernetes' own types (LabelSelector, Condition, Time) are documented upstream.
        if here.ends_with(".selector") || here.ends_with(".conditions") {
            continue;
        }
        walk(out, &here, sub);
    }
}
