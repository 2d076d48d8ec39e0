//! Generated artefacts stay in step with the code: `crds/` is what `rollguard crd` prints
//! (regenerate with `make crds`), and every copy of the CRDs in the chart and `deploy/`
//! carries the same schemas.

use std::path::Path;

fn read(rel: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

#[test]
fn crds_directory_matches_the_code() {
    let generated = rollguard::api::crds_yaml().expect("the CRDs serialise");
    let committed = read("crds/rollguard.yaml");
    assert!(
        generated == committed,
        "crds/rollguard.yaml is stale: run `make crds` and commit the result"
    );
}

#[test]
fn every_crd_field_is_documented() {
    // `kubectl explain` reads these descriptions: no field goes without one.
    let crds = rollguard::api::crds();
    fn walk(path: &str, schema: &serde_json::Value, missing: &mut Vec<String>, seen: &mut usize) {
        if let Some(props) = schema.get("properties").and_then(|p| p.as_object()) {
            for (name, sub) in props {
                let here = format!("{path}.{name}");
                *seen += 1;
                // metadata, apiVersion and kind are Kubernetes' own.
                let standard =
                    path.is_empty() && ["metadata", "apiVersion", "kind"].contains(&name.as_str());
                if !standard
                    && sub
                        .get("description")
                        .and_then(|d| d.as_str())
                        .is_none_or(str::is_empty)
                {
                    missing.push(here.clone());
                }
                walk(&here, sub, missing, seen);
            }
        }
        if let Some(items) = schema.get("items") {
            walk(&format!("{path}[]"), items, missing, seen);
        }
        if let Some(extra) = schema.get("additionalProperties").filter(|v| v.is_object()) {
            walk(&format!("{path}{{}}"), extra, missing, seen);
        }
    }
    let mut missing = Vec::new();
    let mut seen = 0;
    for crd in crds {
        let v = serde_json::to_value(&crd.spec.versions[0].schema).expect("schema");
        walk(
            &crd.spec.names.kind,
            &v["openAPIV3Schema"],
            &mut missing,
            &mut seen,
        );
    }
    assert!(
        seen > 100,
        "only {seen} fields walked: the schema was not read"
    );
    // LabelSelector's own fields come documented from k8s-openapi.
    assert!(
        missing.is_empty(),
        "fields without a description: {missing:#?}"
    );
}

#[test]
fn the_api_reference_matches_the_schemas() {
    let generated = rollguard::api::reference::markdown();
    let committed = read("docs/reference.md");
    assert!(
        generated == committed,
        "docs/reference.md is stale: run `make crds` and commit the result"
    );
    for field in [
        "spec.tiers[].steps[].weight",
        "spec.analysis.onNoData",
        "status.phase",
    ] {
        assert!(
            generated.contains(&format!("`{field}`")),
            "the reference lacks {field}"
        );
    }
}

#[test]
fn every_cargo_command_in_the_scripts_is_locked() {
    // CI and the tests build what Cargo.lock says, never a freshly resolved graph: every cargo
    // command that resolves dependencies carries `--locked` (cargo fmt resolves nothing).
    let command = regex::Regex::new(
        r"(?:^|&&\s*|\|\|\s*|;\s*|\$\(|\|\s*|\(\s*|then\s+|do\s+|@|\bexec\s+|\btime\s+|\bnice(?:\s+-n\s*\d+)?\s+)cargo\s+(build|test|run|clippy|bench|install|metadata|deny|check|doc|update)\b(.*)",
    )
    .expect("regex");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![
        root.join("Makefile"),
        root.join(".ci/run"),
        root.join("Containerfile"),
    ];
    for dir in [
        "tests",
        "tests/cluster",
        "scripts",
        "benches/scale",
        "benches/peers",
        "deploy",
    ] {
        for e in std::fs::read_dir(root.join(dir)).expect("a script dir") {
            let p = e.expect("entry").path();
            if p.extension().is_some_and(|x| x == "sh") {
                files.push(p);
            }
        }
    }
    let (mut seen, mut unlocked) = (0, vec![]);
    for f in &files {
        let Ok(text) = std::fs::read_to_string(f) else {
            continue;
        };
        // Continuation lines join the command they continue.
        let joined = text.replace("\\\n", " ");
        for line in joined.lines() {
            let code = line.trim_start();
            if code.starts_with('#') {
                continue;
            }
            for c in command.captures_iter(code) {
                let rest = &c[2];
                if rest.trim_start().starts_with("--version") {
                    continue;
                }
                seen += 1;
                // Cargo's own arguments: those before a `--` (after it, the tool's).
                if !rest
                    .split_whitespace()
                    .take_while(|w| *w != "--")
                    .any(|w| w == "--locked")
                {
                    unlocked.push(format!("{}: {}", f.display(), code.trim()));
                }
            }
        }
    }
    assert!(
        unlocked.is_empty(),
        "cargo without --locked:\n{}",
        unlocked.join("\n")
    );
    // The scan finds the commands it is about (tests/run.sh alone has five).
    assert!(seen >= 12, "only {seen} cargo commands found");
}
