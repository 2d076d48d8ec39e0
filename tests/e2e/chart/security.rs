//! The rendered RBAC has no wildcards and no Secrets unless opted in, and the Deployment
//! is hardened.

use std::collections::BTreeMap;

use k8s_openapi::api::rbac::v1::PolicyRule;
use serde_json::Value;

use super::helm::{docs, of_kind, render, string_list};

pub(super) fn rbac_rules(role: &Value) -> Vec<PolicyRule> {
    serde_json::from_value(role["rules"].clone()).expect("rules")
}

pub(super) fn assert_no_wildcards(role: &Value) {
    let name = role["metadata"]["name"].as_str().unwrap_or_default();
    for rule in rbac_rules(role) {
        let fields = [
            ("verbs", rule.verbs.clone()),
            ("resources", rule.resources.clone().unwrap_or_default()),
            ("apiGroups", rule.api_groups.clone().unwrap_or_default()),
            (
                "resourceNames",
                rule.resource_names.clone().unwrap_or_default(),
            ),
        ];
        for (field, values) in fields {
            assert!(
                values.iter().all(|v| !v.contains('*')),
                "{name}: a wildcard in {field}: {rule:?}"
            );
        }
        assert!(
            rule.non_resource_urls.is_none(),
            "{name}: nonResourceURLs: {rule:?}"
        );
        assert!(!rule.verbs.is_empty(), "{name}: a rule without verbs");
    }
}

pub(super) fn grants(role: &Value, group: &str, resource: &str, verb: &str) -> bool {
    rbac_rules(role).iter().any(|r| {
        r.api_groups
            .as_deref()
            .unwrap_or_default()
            .iter()
            .any(|g| g == group)
            && r.resources
                .as_deref()
                .unwrap_or_default()
                .iter()
                .any(|x| x == resource)
            && r.verbs.iter().any(|v| v == verb)
    })
}

/// The operator's rules, as (group, resource) -> verbs.
pub(super) fn rule_table(role: &Value) -> BTreeMap<(String, String), Vec<String>> {
    let mut t: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for r in rbac_rules(role) {
        for g in r.api_groups.clone().unwrap_or_default() {
            for res in r.resources.clone().unwrap_or_default() {
                t.entry((g.clone(), res))
                    .or_default()
                    .extend(r.verbs.clone());
            }
        }
    }
    for v in t.values_mut() {
        v.sort();
    }
    t
}

#[test]
fn rendered_rbac_is_least_privilege() {
    let default = docs(&render(&[]));
    // The operator's ClusterRole (the others are the aggregated user roles and the helm test
    // hook's, checked in `checklist_objects_render_as_documented`).
    let all_cluster_roles = of_kind(&default, "ClusterRole");
    for role in &all_cluster_roles {
        assert_no_wildcards(role);
    }
    let cluster_roles: Vec<&Value> = all_cluster_roles
        .into_iter()
        .filter(|r| r["metadata"]["name"] == "rollguard")
        .collect();
    assert_eq!(cluster_roles.len(), 1, "one operator ClusterRole");
    let roles = of_kind(&default, "Role");
    for role in cluster_roles.iter().chain(roles.iter()) {
        assert_no_wildcards(role);
        assert!(
            !grants(role, "", "secrets", "get")
                && !grants(role, "", "secrets", "list")
                && !grants(role, "", "secrets", "watch"),
            "no Secrets access by default: {role}"
        );
    }
    // Exactly the operator's calls, nothing more.
    let table = rule_table(cluster_roles[0]);
    let expect: BTreeMap<(String, String), Vec<String>> = [
        (
            "apps",
            "deployments",
            vec!["create", "delete", "list", "patch", "watch"],
        ),
        ("apps", "deployments/finalizers", vec!["update"]),
        ("apps", "deployments/status", vec!["patch"]),
        ("apps", "replicasets", vec!["list", "watch"]),
        ("", "services", vec!["create", "list", "patch", "watch"]),
        ("discovery.k8s.io", "endpointslices", vec!["list", "watch"]),
        (
            "gateway.networking.k8s.io",
            "httproutes",
            vec!["list", "patch", "watch"],
        ),
        (
            "rollguard.dev",
            "rolloutpolicies",
            vec!["list", "patch", "watch"],
        ),
        ("rollguard.dev", "rolloutpolicies/status", vec!["patch"]),
        (
            "rollguard.dev",
            "rolloutruns",
            vec!["create", "delete", "list", "watch"],
        ),
        ("rollguard.dev", "rolloutruns/status", vec!["patch"]),
        ("events.k8s.io", "events", vec!["create", "patch"]),
    ]
    .into_iter()
    .map(|(g, r, v)| {
        (
            (g.to_string(), r.to_string()),
            v.into_iter().map(String::from).collect(),
        )
    })
    .collect();
    assert_eq!(table, expect, "the ClusterRole's rules");
    // The Lease Role: in the release namespace, get/update/patch only on the named Lease.
    let lease_role = roles
        .iter()
        .find(|r| r["metadata"]["name"] == "rollguard-leader-election")
        .expect("the leader-election Role");
    assert_eq!(lease_role["metadata"]["namespace"], "rollguard-system");
    for rule in rbac_rules(lease_role) {
        assert_eq!(rule.resources.as_deref(), Some(&["leases".to_string()][..]));
        if rule.verbs.iter().any(|v| v != "create") {
            assert_eq!(
                rule.resource_names.as_deref(),
                Some(&["rollguard-leader".to_string()][..])
            );
        }
    }

    // Every rule in the rendered ClusterRole says why, in a comment.
    let text = render(&[]);
    let cr_text = text
        .split("\n---\n")
        .find(|d| d.contains("\nkind: ClusterRole\n"))
        .expect("the ClusterRole text");
    let rules_text = cr_text.split("\nrules:\n").nth(1).expect("rules");
    for (i, rule) in rules_text.split("\n  - apiGroups:").enumerate().skip(1) {
        let before = rules_text
            .split("\n  - apiGroups:")
            .nth(i - 1)
            .unwrap_or_default();
        let commented = rule.contains('#')
            || before
                .lines()
                .last()
                .is_some_and(|l| l.trim_start().starts_with('#'));
        assert!(
            commented,
            "ClusterRole rule {i} has no comment saying why:\n{rule}"
        );
    }

    // Opt-in Secrets: get only, only in the listed namespaces, as Roles.
    let opted = docs(&render(&["rbac.secretNamespaces={team-a,team-b}"]));
    for cr in of_kind(&opted, "ClusterRole") {
        assert_no_wildcards(cr);
        assert!(
            !rule_table(cr).keys().any(|(_, r)| r == "secrets"),
            "no Secrets in the ClusterRole"
        );
    }
    let secret_roles: Vec<&Value> = of_kind(&opted, "Role")
        .into_iter()
        .filter(|r| rule_table(r).keys().any(|(_, res)| res == "secrets"))
        .collect();
    let mut namespaces: Vec<&str> = secret_roles
        .iter()
        .map(|r| r["metadata"]["namespace"].as_str().unwrap_or_default())
        .collect();
    namespaces.sort();
    assert_eq!(namespaces, ["team-a", "team-b"]);
    for r in &secret_roles {
        assert_no_wildcards(r);
        let t = rule_table(r);
        assert_eq!(t.len(), 1);
        assert_eq!(
            t[&(String::new(), "secrets".to_string())],
            ["get", "list", "watch"]
        );
    }

    // Named Secrets: list and watch of exactly those names, as a Role in that namespace, bound
    // to the operator's ServiceAccount (docs/operations/rbac.md; the e2e test
    // prometheus_auth::the_operator_reads_a_secret_granted_by_name_only shows such a Role
    // serves the operator's reader on the real API server).
    let named = docs(&render(&[
        "rbac.secretNames.team-c={prometheus-token,prometheus-ca}",
    ]));
    let named_roles: Vec<&Value> = of_kind(&named, "Role")
        .into_iter()
        .filter(|r| rule_table(r).keys().any(|(_, res)| res == "secrets"))
        .collect();
    assert_eq!(named_roles.len(), 1, "one Secrets Role");
    let role = named_roles[0];
    assert_eq!(role["metadata"]["namespace"], "team-c");
    assert_no_wildcards(role);
    let rules = rbac_rules(role);
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0].verbs, ["list", "watch"]);
    assert_eq!(
        rules[0].resource_names.as_deref(),
        Some(&["prometheus-token".to_string(), "prometheus-ca".to_string()][..])
    );
    let role_name = role["metadata"]["name"].as_str().unwrap_or_default();
    assert!(
        of_kind(&named, "RoleBinding").iter().any(|b| {
            b["metadata"]["namespace"] == "team-c" && b["roleRef"]["name"] == role_name
        }),
        "the named-Secrets Role is bound"
    );

    // watchNamespace: the same rules as a Role in that namespace, no ClusterRole at all.
    let scoped = docs(&render(&["watchNamespace=team-a"]));
    assert!(
        !of_kind(&scoped, "ClusterRole")
            .iter()
            .any(|r| r["metadata"]["name"] == "rollguard"),
        "no operator ClusterRole with watchNamespace"
    );
    assert!(
        !of_kind(&scoped, "ClusterRoleBinding")
            .iter()
            .any(|b| b["subjects"][0]["name"] == "rollguard"),
        "no ClusterRoleBinding for the operator with watchNamespace"
    );
    let role = of_kind(&scoped, "Role")
        .into_iter()
        .find(|r| r["metadata"]["name"] == "rollguard")
        .expect("the operator Role");
    assert_eq!(role["metadata"]["namespace"], "team-a");
    assert_eq!(rule_table(role), expect);
    let binding = of_kind(&scoped, "RoleBinding")
        .into_iter()
        .find(|r| r["metadata"]["name"] == "rollguard")
        .expect("the operator RoleBinding");
    assert_eq!(binding["metadata"]["namespace"], "team-a");
    assert_eq!(binding["subjects"][0]["namespace"], "rollguard-system");
    let args = string_list(
        &of_kind(&scoped, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["args"],
    );
    assert!(args.contains(&"--namespace=team-a".to_string()), "{args:?}");
}

#[test]
fn rendered_deployment_is_hardened() {
    let all = docs(&render(&[
        "prometheus.address=http://prometheus.monitoring:9090",
        "logging.level=debug",
    ]));
    let d = of_kind(&all, "Deployment")[0];
    assert_eq!(d["spec"]["replicas"], 2);
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "rollguard");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["runAsUser"], 65532);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let c = &pod["containers"][0];
    assert_eq!(c["image"], "ghcr.io/rollguard/rollguard:0.1.0");
    let sc = &c["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["runAsUser"], 65532);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(string_list(&sc["capabilities"]["drop"]), ["ALL"]);
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
    assert!(
        c["resources"]["requests"]["cpu"].is_string()
            && c["resources"]["limits"]["memory"].is_string()
    );
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["ports"][0]["containerPort"], 8080);
    let args = string_list(&c["args"]);
    assert_eq!(
        args,
        [
            "controller",
            "--metrics-addr=0.0.0.0:8080",
            "--log-level=debug",
            "--leader-elect",
            "--lease-name=rollguard-leader",
            "--lease-duration=15s",
            "--pause-gate-check-interval=30s",
            "--prometheus-address=http://prometheus.monitoring:9090"
        ]
    );
    assert_eq!(c["env"][0]["name"], "POD_NAME");
    assert_eq!(
        c["env"][0]["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.name"
    );
    // The image is overridable, by tag or digest.
    let d = docs(&render(&[
        "image.repository=registry.example/rg",
        "image.tag=dev",
    ]));
    assert_eq!(
        of_kind(&d, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.example/rg:dev"
    );
    let digest = format!("sha256:{}", "a".repeat(64));
    let d = docs(&render(&[&format!("image.digest={digest}")]));
    assert_eq!(
        of_kind(&d, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["image"],
        format!("ghcr.io/rollguard/rollguard@{digest}")
    );
    // Metrics Service; ServiceMonitor only when asked.
    assert_eq!(of_kind(&all, "Service").len(), 1);
    assert!(of_kind(&all, "ServiceMonitor").is_empty());
    let sm = docs(&render(&[
        "serviceMonitor.enabled=true",
        "serviceMonitor.labels.release=prom",
    ]));
    let sm = of_kind(&sm, "ServiceMonitor");
    assert_eq!(sm.len(), 1);
    assert_eq!(sm[0]["spec"]["endpoints"][0]["port"], "metrics");
    assert_eq!(sm[0]["metadata"]["labels"]["release"], "prom");
}
