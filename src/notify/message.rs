//! What a sink is sent, rendered from a typed [`Notification`] with no I/O: a CloudEvents
//! 1.0 document in structured mode for `webhook` sinks, `{"text": ...}` for `slack` sinks.
//! Only run fields go in; the sink's URL never reaches this module.

use jiff::Timestamp;
use serde::Serialize;
use serde_json::{Value, json};

use crate::api::notification::{NotificationEvent, SinkType};

/// The media type of a structured-mode CloudEvent.
pub const CLOUDEVENTS_JSON: &str = "application/cloudevents+json";

/// One transition of one run, as people are told about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    pub event: NotificationEvent,
    /// Stable per transition (the same transition sent again has the same id), so a
    /// receiver can drop repeats.
    pub id: String,
    pub time: Timestamp,
    pub namespace: String,
    pub deployment: String,
    pub run: String,
    pub policy: String,
    /// The canary revision on trial.
    pub revision: String,
    pub stable_revision: String,
    pub tier: String,
    /// The step (1-based) and the number of steps, once the canary has reached one.
    pub step: Option<(i32, usize)>,
    /// The canary's share of traffic, e.g. `10%`.
    pub weight: Option<String>,
    /// Why the run ended (e.g. `ErrorRateAboveThreshold`).
    pub reason: Option<String>,
    /// The operator's sentence about the transition (the Event's note).
    pub summary: String,
    pub evidence: Option<Evidence>,
    /// `kubectl rollguard approve <deployment> -n <namespace>`, when an approval is needed.
    pub approve_command: Option<String>,
}

/// The analysis so far: the deciding sample for a rollback, else the newest one.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Evidence {
    pub verdict: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests: Option<u64>,
    /// Canary requests that got an error since the canary started: the requests of the
    /// users who saw errors (rollguard counts requests, not people).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub statistic: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upper_bound: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<String>,
    /// Samples taken in the run so far.
    pub samples: i32,
}

/// The content type and body for a sink of `kind`.
pub fn render(kind: SinkType, n: &Notification) -> (&'static str, Value) {
    match kind {
        SinkType::Webhook => (CLOUDEVENTS_JSON, cloud_event(n)),
        SinkType::Slack => ("application/json", json!({"text": slack_text(n)})),
    }
}

/// The CloudEvents `type` of a notification, e.g. `dev.rollguard.run.rolledback`.
pub fn event_type(e: NotificationEvent) -> String {
    format!("dev.rollguard.run.{}", e.type_suffix())
}

/// A CloudEvents 1.0 document, structured mode.
pub fn cloud_event(n: &Notification) -> Value {
    let mut data = json!({
        "event": n.event,
        "run": n.run,
        "policy": n.policy,
        "deployment": n.deployment,
        "namespace": n.namespace,
        "revision": n.revision,
        "stableRevision": n.stable_revision,
        "tier": n.tier,
        "message": n.summary,
    });
    if let Some((step, steps)) = n.step {
        data["step"] = json!(step);
        data["steps"] = json!(steps);
    }
    let optional = [
        ("weight", n.weight.as_ref()),
        ("reason", n.reason.as_ref()),
        ("approveCommand", n.approve_command.as_ref()),
    ];
    for (k, v) in optional {
        if let Some(v) = v {
            data[k] = json!(v);
        }
    }
    if let Some(e) = &n.evidence {
        data["evidence"] = json!(e);
        if n.event == NotificationEvent::RolledBack
            && let Some(errors) = e.errors
        {
            data["failedRequests"] = json!(errors);
        }
    }
    json!({
        "specversion": "1.0",
        "id": n.id,
        "source": format!("/apis/apps/v1/namespaces/{}/deployments/{}", n.namespace, n.deployment),
        "type": event_type(n.event),
        "time": n.time.to_string(),
        "subject": n.run,
        "datacontenttype": "application/json",
        "data": data,
    })
}

/// Slack's text must escape `&`, `<` and `>` (they start links and mentions).
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// One readable paragraph: what happened to which revision, where, and the evidence.
pub fn slack_text(n: &Notification) -> String {
    let what = match n.event {
        NotificationEvent::Started => "run started",
        NotificationEvent::StepReached => "step reached",
        NotificationEvent::ApprovalNeeded => "needs an approval",
        NotificationEvent::RolledBack => "rolled back",
        NotificationEvent::Promoted => "promoted",
    };
    let mut lines = vec![format!(
        "*rollguard: {}/{} {what}*: revision {} (tier {}, run {})",
        n.namespace, n.deployment, n.revision, n.tier, n.run
    )];
    if let Some((step, steps)) = n.step {
        let at = n
            .weight
            .as_deref()
            .map(|w| format!(" at {w}"))
            .unwrap_or_default();
        lines.push(format!("Step {step}/{steps}{at}."));
    }
    if let Some(r) = &n.reason {
        lines.push(format!("Reason: {r}."));
    }
    if !n.summary.is_empty() {
        lines.push(n.summary.clone());
    }
    if let Some(e) = &n.evidence {
        lines.push(evidence_line(e, n.event));
    }
    let mut text = escape(&lines.join("\n"));
    if let Some(cmd) = &n.approve_command {
        // Outside the escaped text: a code span, so it copies as typed.
        text.push_str(&format!("\nApprove with: `{}`", escape(cmd)));
    }
    text
}

fn evidence_line(e: &Evidence, event: NotificationEvent) -> String {
    let mut parts = Vec::new();
    match (e.errors, e.requests) {
        (Some(err), Some(req)) => parts.push(format!("{err} errors in {req} canary requests")),
        (None, Some(req)) => parts.push(format!("{req} canary requests")),
        _ => {}
    }
    if let Some(r) = &e.rate {
        let against = e
            .threshold
            .as_deref()
            .map(|t| format!(" (threshold {t})"))
            .unwrap_or_default();
        parts.push(format!("error rate {r}{against}"));
    }
    if let Some(s) = &e.statistic {
        let bound = e
            .upper_bound
            .as_deref()
            .map(|b| format!(" (rollback at {b})"))
            .unwrap_or_default();
        parts.push(format!("statistic {s}{bound}"));
    }
    parts.push(format!("verdict {} after {} samples", e.verdict, e.samples));
    let label = if event == NotificationEvent::ApprovalNeeded {
        "Evidence so far"
    } else {
        "Evidence"
    };
    let mut line = format!("{label}: {}.", parts.join(", "));
    if event == NotificationEvent::RolledBack
        && let Some(err) = e.errors
    {
        line.push_str(&format!(" {err} canary requests failed for users."));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notification(event: NotificationEvent) -> Notification {
        Notification {
            event,
            id: "shop/web-7f9c-1/rolledback".into(),
            time: "2026-12-07T02:00:00Z".parse().expect("time"),
            namespace: "shop".into(),
            deployment: "web".into(),
            run: "web-7f9c-1".into(),
            policy: "shop".into(),
            revision: "7f9c".into(),
            stable_revision: "5d2a".into(),
            tier: "ai-assisted".into(),
            step: Some((2, 5)),
            weight: Some("5%".into()),
            reason: None,
            summary: "canary 7f9c <b> & co".into(),
            evidence: Some(Evidence {
                verdict: "Fail".into(),
                requests: Some(1520),
                errors: Some(12),
                rate: Some("0.79%".into()),
                threshold: Some("0.5%".into()),
                statistic: None,
                upper_bound: None,
                baseline: None,
                samples: 7,
            }),
            approve_command: None,
        }
    }

    #[test]
    fn a_webhook_gets_a_structured_cloud_event() {
        let mut n = notification(NotificationEvent::RolledBack);
        n.reason = Some("ErrorRateAboveThreshold".into());
        let (ctype, body) = render(SinkType::Webhook, &n);
        assert_eq!(ctype, "application/cloudevents+json");
        assert_eq!(body["specversion"], "1.0");
        assert_eq!(body["id"], "shop/web-7f9c-1/rolledback");
        assert_eq!(body["type"], "dev.rollguard.run.rolledback");
        assert_eq!(
            body["source"],
            "/apis/apps/v1/namespaces/shop/deployments/web"
        );
        assert_eq!(body["subject"], "web-7f9c-1");
        assert_eq!(body["time"], "2026-12-07T02:00:00Z");
        assert_eq!(body["datacontenttype"], "application/json");
        let d = &body["data"];
        assert_eq!(d["event"], "rolledBack");
        assert_eq!(d["run"], "web-7f9c-1");
        assert_eq!(d["namespace"], "shop");
        assert_eq!(d["revision"], "7f9c");
        assert_eq!(d["tier"], "ai-assisted");
        assert_eq!(
            (d["step"].clone(), d["steps"].clone()),
            (json!(2), json!(5))
        );
        assert_eq!(d["weight"], "5%");
        assert_eq!(d["reason"], "ErrorRateAboveThreshold");
        assert_eq!(d["evidence"]["errors"], 12);
        assert_eq!(d["evidence"]["requests"], 1520);
        assert_eq!(d["evidence"]["samples"], 7);
        assert_eq!(d["failedRequests"], 12);
        assert!(d.get("approveCommand").is_none());
    }

    /// Every event's CloudEvents type, and the fields a started run does not have yet are
    /// left out rather than sent as null.
    #[test]
    fn each_event_has_its_own_type_and_no_empty_fields() {
        let types: Vec<String> = NotificationEvent::ALL
            .iter()
            .map(|e| event_type(*e))
            .collect();
        assert_eq!(
            types,
            [
                "dev.rollguard.run.started",
                "dev.rollguard.run.step",
                "dev.rollguard.run.approvalneeded",
                "dev.rollguard.run.rolledback",
                "dev.rollguard.run.promoted"
            ]
        );
        let mut n = notification(NotificationEvent::Started);
        n.step = None;
        n.weight = None;
        n.evidence = None;
        let body = cloud_event(&n);
        for k in [
            "step",
            "steps",
            "weight",
            "reason",
            "evidence",
            "failedRequests",
        ] {
            assert!(body["data"].get(k).is_none(), "{k}: {body}");
        }
    }

    #[test]
    fn slack_gets_one_readable_escaped_paragraph() {
        let table: &[(NotificationEvent, &[&str])] = &[
            (
                NotificationEvent::RolledBack,
                &[
                    "*rollguard: shop/web rolled back*: revision 7f9c (tier ai-assisted, run web-7f9c-1)",
                    "Step 2/5 at 5%.",
                    "Reason: ErrorRateAboveThreshold.",
                    "canary 7f9c &lt;b&gt; &amp; co",
                    "Evidence: 12 errors in 1520 canary requests, error rate 0.79% (threshold 0.5%), verdict Fail after 7 samples. 12 canary requests failed for users.",
                ],
            ),
            (
                NotificationEvent::ApprovalNeeded,
                &[
                    "needs an approval",
                    "Evidence so far: 12 errors in 1520",
                    "Approve with: `kubectl rollguard approve web -n shop`",
                ],
            ),
        ];
        for (event, want) in table {
            let mut n = notification(*event);
            if *event == NotificationEvent::RolledBack {
                n.reason = Some("ErrorRateAboveThreshold".into());
            } else {
                n.approve_command = Some("kubectl rollguard approve web -n shop".into());
            }
            let (ctype, body) = render(SinkType::Slack, &n);
            assert_eq!(ctype, "application/json");
            let text = body["text"].as_str().expect("text");
            for w in *want {
                assert!(text.contains(w), "{w:?} not in\n{text}");
            }
            assert_eq!(body.as_object().map(|o| o.len()), Some(1));
        }
    }
}
