//! The README cannot rot: the files and make targets it names exist, and its first policy
//! is a valid RolloutPolicy (the e2e suite also sends it to the real API server).

use std::path::Path;

fn repo(rel: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

/// The YAML blocks of the README that hold a RolloutPolicy.
pub fn readme_policies() -> Vec<String> {
    let readme = repo("README.md");
    readme
        .split("```yaml\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .filter(|b| b.contains("kind: RolloutPolicy"))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_files_and_targets_the_readme_names_exist() {
    let readme = repo("README.md");
    let mut named = 0;
    for word in
        readme.split(|c: char| c == '`' || c.is_whitespace() || c == ',' || c == '(' || c == ')')
    {
        let w = word.trim_end_matches(['.', ':', ';']);
        if (w.starts_with("docs/")
            || w.starts_with("deploy/")
            || w.starts_with("charts/")
            || w.starts_with("tests/")
            || w.starts_with("scripts/"))
            && !w.contains('*')
        {
            let (file, anchor) = w.split_once('#').unwrap_or((w, ""));
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
            assert!(path.exists(), "README names {w}, which does not exist");
            if !anchor.is_empty() {
                let text = std::fs::read_to_string(&path).expect("the linked file");
                assert!(
                    headings(&text).iter().any(|h| h == anchor),
                    "README links {w}, but {file} has no heading #{anchor}"
                );
            }
            named += 1;
        }
    }
    assert!(named >= 8, "only {named} paths found in the README");
    let makefile = repo("Makefile");
    for target in [
        "demo:",
        "demo-down:",
        "test:",
        "test-gateway:",
        "image:",
        "image-push:",
    ] {
        assert!(
            makefile.contains(&format!("\n{target}")),
            "the Makefile lacks {target}"
        );
    }
    // `make demo GATEWAY=traefik`: the Makefile passes it on and the demo takes it.
    assert!(makefile.contains("GATEWAY=$(GATEWAY) scripts/demo.sh up"));
    assert!(repo("scripts/demo.sh").contains("\n  traefik)\n"));
    assert!(
        repo(".ci/run").contains("make test"),
        ".ci/run must run the README's test command"
    );
}

#[test]
fn the_readme_policy_is_valid() {
    let policies = readme_policies();
    assert!(!policies.is_empty(), "no RolloutPolicy in the README");
    for text in policies {
        let p: rollguard::api::RolloutPolicy =
            serde_yaml_ng::from_str(&text).expect("the README's policy parses");
        rollguard::controller::policy_validate(&p)
            .expect("the README's policy passes the operator's checks");
    }
}

/// The anchors of a Markdown file's headings, as GitHub makes them: lower case, spaces to
/// `-`, punctuation other than `-` and `_` dropped.
fn headings(markdown: &str) -> Vec<String> {
    markdown
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .map(|h| {
            h.trim_start_matches('#')
                .trim()
                .to_lowercase()
                .chars()
                .filter_map(|c| match c {
                    ' ' => Some('-'),
                    c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                    _ => None,
                })
                .collect()
        })
        .collect()
}
