//! The analysis request as the controller, `simulate` and `backtest` use it: rendered parts,
//! the combined query byte for byte, the answer split into counts, and fields that do not
//! resolve named.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;

use super::*;

/// Every template variable, a `#` comment, and an `{{interval}}` range in the errors query.
const REQUESTS: &str = r#"sum(increase(http_requests_total{namespace="{{namespace}}",workload="{{workload}}",track="{{track}}",pod_template_hash="{{revision}}",service="{{service}}",route="{{route}}",canary="{{canary}}",stable="{{stable}}",deployment="{{deployment}}"}[{{elapsed}}])) # all"#;
const ERRORS: &str =
    r#"sum(increase(http_requests_total{workload="{{workload}}",code=~"5.."}[{{interval}}]))"#;

fn spec(extra: serde_json::Value) -> AnalysisSpec {
    let mut v = json!({"interval": "30s", "requests": REQUESTS, "errors": ERRORS});
    if let (Some(v), Some(extra)) = (v.as_object_mut(), extra.as_object()) {
        v.extend(extra.clone());
    }
    serde_json::from_value(v).expect("an analysis spec")
}

fn sample() -> SampleVars {
    SampleVars {
        namespace: "shop".into(),
        deployment: "web".into(),
        service: "web-svc".into(),
        route: "web-route".into(),
        elapsed: Duration::from_millis(95_500),
        canary_revision: Some("abc123".into()),
        stable_revision: Some("def456".into()),
    }
}

fn request(stable_baseline: bool) -> AnalysisRequest {
    AnalysisRequest::new(&spec(json!({})), stable_baseline).expect("resolves")
}

/// What the controller's `measure` sent for `sample()` before the request had a module of
/// its own (captured from 07ad24f), canary parts first.
const CANARY_PARTS: &str = concat!(
    r#"label_replace((sum(increase(http_requests_total{namespace="shop",workload="web-canary",track="canary",pod_template_hash="abc123",service="web-svc",route="web-route",canary="web-canary",stable="web",deployment="web"}[95s])) # all"#,
    "\n",
    r#"), "rollguard_part", "requests", "", "") or label_replace((sum(increase(http_requests_total{workload="web-canary",code=~"5.."}[30s]))"#,
    "\n",
    r#"), "rollguard_part", "errors", "", "")"#,
);
const STABLE_PARTS: &str = concat!(
    r#" or label_replace((sum(increase(http_requests_total{namespace="shop",workload="web",track="stable",pod_template_hash="def456",service="web-svc",route="web-route",canary="web-canary",stable="web",deployment="web"}[95s])) # all"#,
    "\n",
    r#"), "rollguard_part", "stable_requests", "", "") or label_replace((sum(increase(http_requests_total{workload="web",code=~"5.."}[30s]))"#,
    "\n",
    r#"), "rollguard_part", "stable_errors", "", "")"#,
);

#[test]
fn a_threshold_tier_asks_for_the_canary_only() {
    let r = request(false);
    assert_eq!(r.interval(), Duration::from_secs(30));
    assert_eq!(r.parts(), &[Part::Requests, Part::Errors]);
    let q = r.render(&sample()).expect("renders");
    assert_eq!(
        q.requests,
        r#"sum(increase(http_requests_total{namespace="shop",workload="web-canary",track="canary",pod_template_hash="abc123",service="web-svc",route="web-route",canary="web-canary",stable="web",deployment="web"}[95s])) # all"#
    );
    assert_eq!(
        q.errors,
        r#"sum(increase(http_requests_total{workload="web-canary",code=~"5.."}[30s]))"#
    );
    assert_eq!(q.stable, None);
    assert_eq!(q.combined(), CANARY_PARTS);
}

#[test]
fn a_stable_baseline_asks_for_the_stable_revision_too() {
    let r = request(true);
    assert_eq!(r.parts(), &Part::ALL);
    let q = r.render(&sample()).expect("renders");
    let (sr, se) = q.stable.clone().expect("stable parts");
    // The same variables, but the stable workload, track and revision.
    assert!(
        sr.contains(r#"workload="web",track="stable",pod_template_hash="def456""#),
        "{sr}"
    );
    assert_eq!(
        se,
        r#"sum(increase(http_requests_total{workload="web",code=~"5.."}[30s]))"#
    );
    assert_eq!(q.combined(), format!("{CANARY_PARTS}{STABLE_PARTS}"));
}

#[test]
fn an_unknown_revision_is_refused_only_where_the_queries_need_it() {
    let no_canary = SampleVars {
        canary_revision: None,
        ..sample()
    };
    let no_stable = SampleVars {
        stable_revision: None,
        ..sample()
    };
    assert_eq!(
        request(false).render(&no_canary),
        Err(RevisionUnknown(Track::Canary))
    );
    assert_eq!(
        request(true).render(&no_stable),
        Err(RevisionUnknown(Track::Stable))
    );
    // A threshold tier never renders the stable revision's queries.
    assert!(request(false).render(&no_stable).is_ok());
    // Stable only checked (a fixed p0): without its revision the canary is measured alone,
    // and the answer has no stable counts.
    let check = request(true).stable_optional(true);
    let q = check.render(&no_stable).expect("the canary alone");
    assert_eq!(q.combined(), CANARY_PARTS);
    assert_eq!(q.stable, None);
    assert!(check.render(&sample()).expect("both").stable.is_some());
    assert_eq!(
        check
            .counts(&series(&[("requests", 100.0), ("errors", 1.0)]))
            .ok(),
        Some(Counts::Values {
            requests: 100.0,
            errors: 1.0,
            stable: None,
            latency: None,
            checks: vec![]
        })
    );
    // Templates without {{revision}} need none.
    let plain = AnalysisRequest::new(
        &spec(json!({"requests": "sum(rate(a[{{elapsed}}]))", "errors": "sum(b)"})),
        true,
    )
    .expect("resolves");
    let none = SampleVars {
        canary_revision: None,
        stable_revision: None,
        ..sample()
    };
    assert_eq!(
        plain.render(&none).map(|q| q.requests),
        Ok("sum(rate(a[95s]))".to_string())
    );
}

fn series(parts: &[(&str, f64)]) -> Vec<prometheus::Series> {
    parts
        .iter()
        .map(|(tag, v)| {
            (
                BTreeMap::from([(prometheus::PART_LABEL.to_string(), tag.to_string())]),
                *v,
            )
        })
        .collect()
}

#[test]
fn the_answer_is_split_into_counts() {
    let all = series(&[
        ("requests", 1520.0),
        ("errors", 3.0),
        ("stable_requests", 9000.0),
        ("stable_errors", 9.0),
    ]);
    assert_eq!(
        request(true).counts(&all).expect("counts"),
        Counts::Values {
            requests: 1520.0,
            errors: 3.0,
            stable: Some((9000.0, 9.0)),
            latency: None,
            checks: vec![]
        }
    );
    // A threshold tier reads the canary's parts only.
    assert_eq!(
        request(false).counts(&all).expect("counts"),
        Counts::Values {
            requests: 1520.0,
            errors: 3.0,
            stable: None,
            latency: None,
            checks: vec![]
        }
    );
    // A missing canary part is no data, and says which.
    assert_eq!(
        request(true)
            .counts(&series(&[("requests", 1520.0)]))
            .expect("counts"),
        Counts::NoData("the errors query returned an empty vector".into())
    );
    assert_eq!(
        request(false)
            .counts(&series(&[("requests", f64::NAN), ("errors", 0.0)]))
            .expect("counts"),
        Counts::NoData("the requests query returned NaN".into())
    );
    // A missing stable part leaves the baseline out, not the sample.
    assert_eq!(
        request(true)
            .counts(&series(&[
                ("requests", 10.0),
                ("errors", 0.0),
                ("stable_requests", 10.0)
            ]))
            .expect("counts"),
        Counts::Values {
            requests: 10.0,
            errors: 0.0,
            stable: None,
            latency: None,
            checks: vec![]
        }
    );
    let two = series(&[("errors", 1.0), ("errors", 2.0), ("requests", 5.0)]);
    let e = request(false).counts(&two).expect_err("two series");
    assert_eq!(e.category(), "query_shape");
}

#[test]
fn a_field_that_does_not_resolve_is_named() {
    let cases = [
        (
            json!({"requests": "sum(a{x=\"{{nope}}\"})"}),
            "spec.analysis.requests",
        ),
        (json!({"errors": "  "}), "spec.analysis.errors"),
        (json!({"interval": "soon"}), "spec.analysis.interval"),
        (
            json!({"prometheus": {"address": "http://p", "timeout": "99999999999999999999h"}}),
            "spec.analysis.prometheus.timeout",
        ),
        (
            json!({"prometheus": {"address": "http://p:9090/?x=1"}}),
            "spec.analysis.prometheus.address",
        ),
        (
            json!({"prometheus": {"address": "http://user:pw@p:9090"}}),
            "spec.analysis.prometheus.address",
        ),
        (
            json!({"prometheus": {"address": "http://p:9090#x"}}),
            "spec.analysis.prometheus.address",
        ),
        (
            json!({"prometheus": {"address": "p:9090"}}),
            "spec.analysis.prometheus.address",
        ),
        (
            json!({"prometheus": {"address": "http://p:9090", "bearerTokenSecret": {"name": "t", "key": "k"}}}),
            "spec.analysis.prometheus.bearerTokenSecret",
        ),
    ];
    for (extra, field) in cases {
        let e = AnalysisRequest::new(&spec(extra), false).expect_err(field);
        assert_eq!(e.field, field);
        assert!(e.to_string().starts_with(&format!("{field}: ")), "{e}");
    }
}

#[test]
fn the_endpoint_is_the_specs_prometheus_else_the_operators() {
    let own = AnalysisRequest::new(
        &spec(json!({"prometheus": {"address": "http://mine:9090", "timeout": "3s"}})),
        false,
    )
    .expect("resolves");
    let default = Address::parse("http://default:9090").expect("valid");
    let ep = own.endpoint(Some(&default)).expect("endpoint");
    assert_eq!(
        (ep.address.as_str(), ep.timeout, ep.token, ep.insecure),
        ("http://mine:9090", Duration::from_secs(3), None, false)
    );
    let ep = request(false).endpoint(Some(&default)).expect("endpoint");
    assert_eq!(
        (ep.address.as_str(), ep.timeout),
        ("http://default:9090", Duration::from_secs(10))
    );
    let e = request(false).endpoint(None).expect_err("no address");
    assert!(e.to_string().contains("--prometheus-address"), "{e}");
}

#[test]
fn a_token_goes_over_plain_http_only_when_the_policy_says_insecure() {
    let with = |address: &str, insecure: Option<bool>| {
        let mut p = json!({"address": address, "bearerTokenSecret": {"name": "t", "key": "k"}});
        if let Some(i) = insecure {
            p["insecure"] = json!(i);
        }
        AnalysisRequest::new(&spec(json!({ "prometheus": p })), false)
    };
    let e = with("http://p:9090", None).expect_err("plain http");
    assert_eq!(e.field, "spec.analysis.prometheus.bearerTokenSecret");
    assert!(e.message.contains("insecure: true"), "{e}");
    assert!(with("http://p:9090", Some(false)).is_err());
    assert!(
        with("HTTP://p:9090", None).is_err(),
        "the scheme's case does not matter"
    );
    let ep = with("http://p:9090", Some(true))
        .expect("allowed")
        .endpoint(None)
        .expect("endpoint");
    assert!(ep.insecure);
    let ep = with("https://p:9091/prom/", None)
        .expect("https")
        .endpoint(None)
        .expect("endpoint");
    assert_eq!(
        ep.address.api("query").as_str(),
        "https://p:9091/prom/api/v1/query"
    );
    // The operator's default address carries no token, so `insecure` never reaches it.
    let own = AnalysisRequest::new(
        &spec(json!({"prometheus": {"address": "http://mine:9090", "insecure": true}})),
        false,
    )
    .expect("resolves");
    assert!(own.endpoint(None).expect("endpoint").insecure);
    let default = Address::parse("http://default:9090").expect("valid");
    assert!(
        !request(false)
            .endpoint(Some(&default))
            .expect("endpoint")
            .insecure
    );
}

#[test]
fn the_window_follows_the_requests_range() {
    let window = |requests: &str| {
        AnalysisRequest::new(&spec(json!({ "requests": requests })), false)
            .expect("resolves")
            .window(&sample())
    };
    assert_eq!(
        window("sum(increase(a[{{elapsed}}]))"),
        QueryWindow::SinceStart
    );
    assert_eq!(
        window("sum(increase(a[{{interval}}]))"),
        QueryWindow::Last(Duration::from_secs(30))
    );
    assert_eq!(
        window("sum(increase(a[5m:30s]))"),
        QueryWindow::Last(Duration::from_secs(300))
    );
    assert_eq!(window("sum(a)"), QueryWindow::SinceStart);
}

/// The slow requests of one histogram answer, table-tested: the objective's bound is found
/// whatever the `le` spelling, and every answer that cannot be read says why.
#[test]
fn slow_requests_are_read_from_the_histograms_buckets() {
    let ms = Duration::from_millis;
    let buckets = |v: &[(&'static str, f64)]| -> Vec<(Option<&'static str>, f64)> {
        v.iter().map(|(le, n)| (Some(*le), *n)).collect()
    };
    let seconds = buckets(&[("0.1", 50.0), ("0.5", 90.0), ("1", 97.0), ("+Inf", 100.0)]);
    let read =
        |s: &[(Option<&str>, f64)], objective, unit| slow_requests(s, objective, unit, "canary's");
    assert_eq!(
        read(&seconds, ms(500), LatencyUnit::Seconds),
        Ok(Slow {
            requests: 100.0,
            slow: 10.0
        })
    );
    assert_eq!(
        read(&seconds, ms(1000), LatencyUnit::Seconds).map(|s| s.slow),
        Ok(3.0)
    );
    // Prometheus 3 writes `1.0` where an exporter wrote `1`: the same bound.
    let normalised = buckets(&[("0.5", 90.0), ("1.0", 97.0), ("+Inf", 100.0)]);
    assert_eq!(
        read(&normalised, ms(1000), LatencyUnit::Seconds).map(|s| s.slow),
        Ok(3.0)
    );
    // Milliseconds: `le="250"` is the 250ms bound.
    let millis = buckets(&[("100", 40.0), ("250", 80.0), ("+Inf", 100.0)]);
    assert_eq!(
        read(&millis, ms(250), LatencyUnit::Milliseconds).map(|s| s.slow),
        Ok(20.0)
    );
    let invalid = |r: Result<Slow, LatencyCounts>| match r {
        Err(LatencyCounts::Invalid(why)) => why,
        other => panic!("expected an invalid histogram, got {other:?}"),
    };
    let why = invalid(read(&seconds, ms(300), LatencyUnit::Seconds));
    assert_eq!(
        why,
        "the latency objective 0.3s is not a bucket bound of the canary's histogram, whose bounds are 0.1s, 0.5s, 1s: choose one of them"
    );
    // The right number in the wrong unit is not a bound either, and says so in its unit.
    let why = invalid(read(&millis, ms(250), LatencyUnit::Seconds));
    assert!(
        why.contains("0.25s is not a bucket bound") && why.contains("100s, 250s"),
        "{why}"
    );
    let why = invalid(read(
        &buckets(&[("0.5", 90.0)]),
        ms(500),
        LatencyUnit::Seconds,
    ));
    assert!(why.contains("no le=\"+Inf\" bucket"), "{why}");
    let why = invalid(read(&[(None, 3.0)], ms(500), LatencyUnit::Seconds));
    assert!(why.contains("sum by (le)"), "{why}");
    let why = invalid(read(
        &buckets(&[("fast", 1.0), ("+Inf", 2.0)]),
        ms(500),
        LatencyUnit::Seconds,
    ));
    assert!(why.contains("le=\"fast\""), "{why}");
    assert!(matches!(
        read(&[], ms(500), LatencyUnit::Seconds),
        Err(LatencyCounts::NoData(_))
    ));
    assert!(matches!(
        read(
            &buckets(&[("0.5", f64::NAN), ("+Inf", 1.0)]),
            ms(500),
            LatencyUnit::Seconds
        ),
        Err(LatencyCounts::NoData(_))
    ));
}

/// A plan with a latency objective adds the histogram to the one combined query, for the
/// canary and for stable, and reads the answer's buckets back by part.
#[test]
fn a_latency_objective_joins_the_combined_query() {
    use crate::api::policy::Tier;
    use crate::plan::Plan;
    let tier: Tier = serde_json::from_value(json!({
        "name": "t", "steps": [{"weight": "10%", "pause": "1m"}],
        "latency": {"objective": "250ms"}
    }))
    .expect("tier");
    let with = spec(json!({"latency": {
        "buckets": "sum by (le) (increase(lat_bucket{workload=\"{{workload}}\"}[{{elapsed}}]))",
        "unit": "milliseconds"
    }}));
    let plan = Plan::resolve(&tier, &with, "spec.tiers[0]").expect("plan");
    let r = AnalysisRequest::for_plan(&with, &plan).expect("request");
    let rendered = r.render(&sample()).expect("renders");
    let q = rendered.combined();
    assert!(
        q.contains(
            r#"label_replace((sum by (le) (increase(lat_bucket{workload="web-canary"}[95s]))"#
        ) && q.contains(r#""rollguard_part", "latency", "", "")"#)
            && q.contains(r#"lat_bucket{workload="web"}"#)
            && q.contains(r#""rollguard_part", "stable_latency", "", "")"#),
        "{q}"
    );
    let mut answer = series(&[
        ("requests", 1000.0),
        ("errors", 1.0),
        ("stable_requests", 9000.0),
        ("stable_errors", 9.0),
    ]);
    for (part, le, v) in [
        ("latency", "250", 900.0),
        ("latency", "+Inf", 1000.0),
        ("stable_latency", "250", 8910.0),
        ("stable_latency", "+Inf", 9000.0),
    ] {
        answer.push((
            BTreeMap::from([
                (prometheus::PART_LABEL.to_string(), part.to_string()),
                ("le".to_string(), le.to_string()),
            ]),
            v,
        ));
    }
    let Counts::Values { latency, .. } = r.counts(&answer).expect("counts") else {
        panic!("values expected");
    };
    assert_eq!(
        latency,
        Some(LatencyCounts::Values {
            canary: Slow {
                requests: 1000.0,
                slow: 100.0
            },
            stable: Some(Slow {
                requests: 9000.0,
                slow: 90.0
            }),
        })
    );
    // Without a histogram to read, the objective is refused naming the field.
    let e = AnalysisRequest::for_plan(&spec(json!({})), &plan).expect_err("no histogram");
    assert_eq!(e.field, "spec.analysis.latency.buckets");
    assert!(
        e.message
            .contains("istio, envoyGateway, linkerd, traefik, openTelemetry"),
        "{e}"
    );
}

/// Checks join the one combined query, each tagged with its name, and each answer is read
/// back as one number or as why it is not.
#[test]
fn checks_join_the_combined_query() {
    let with = spec(json!({"checks": [
        {"name": "cpu", "query": "max(rate(cpu{pod=~\"{{workload}}-.*\"}[{{interval}}]))", "max": 0.8},
        {"name": "orders", "query": "sum(rate(orders{workload=\"{{workload}}\"}[5m]))", "min": 1}
    ]}));
    let r = AnalysisRequest::new(&with, false).expect("request");
    let rendered = r.render(&sample()).expect("renders");
    assert_eq!(
        rendered.checks,
        [
            (
                "cpu".to_string(),
                r#"max(rate(cpu{pod=~"web-canary-.*"}[30s]))"#.to_string()
            ),
            (
                "orders".to_string(),
                r#"sum(rate(orders{workload="web-canary"}[5m]))"#.to_string()
            )
        ]
    );
    let q = rendered.combined();
    assert!(
        q.ends_with(concat!(
            r#" or label_replace((max(rate(cpu{pod=~"web-canary-.*"}[30s]))"#,
            "\n",
            r#"), "rollguard_part", "check:cpu", "", "") or label_replace((sum(rate(orders{workload="web-canary"}[5m]))"#,
            "\n",
            r#"), "rollguard_part", "check:orders", "", "")"#
        )),
        "{q}"
    );
    let mut answer = series(&[("requests", 100.0), ("errors", 0.0), ("check:cpu", 0.5)]);
    for pod in ["a", "b"] {
        answer.push((
            BTreeMap::from([
                (
                    prometheus::PART_LABEL.to_string(),
                    "check:orders".to_string(),
                ),
                ("pod".to_string(), pod.to_string()),
            ]),
            2.0,
        ));
    }
    let Counts::Values { checks, .. } = r.counts(&answer).expect("counts") else {
        panic!("values expected");
    };
    assert_eq!(checks[0].value, Ok(0.5));
    let orders = checks[1].value.clone().expect_err("two series");
    assert!(orders.contains("returned 2 series"), "{orders}");
    let e = AnalysisRequest::new(
        &spec(json!({"checks": [{"name": "x", "query": "sum(x{a=\"{{nope}}\"})", "max": 1}]})),
        false,
    )
    .expect_err("unknown variable");
    assert_eq!(e.field, "spec.analysis.checks[0].query");
}
