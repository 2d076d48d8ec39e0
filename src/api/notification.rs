//! Notification sinks a RolloutPolicy declares: where to tell people that a run started,
//! reached a step, needs an approval, was rolled back or promoted. Only the shape lives
//! here; rendering and delivery are `crate::notify`.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

use super::policy::SecretKeyRef;
use super::quantity::DURATION_PATTERN;

/// One place notifications about this policy's runs are sent to.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NotificationSink {
    /// Sink name, unique in the policy; named in the policy's `NotificationsReady`
    /// condition. Lowercase letters, digits and dashes.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// `webhook`: a CloudEvents 1.0 JSON document (structured mode) POSTed to the URL.
    /// `slack`: a Slack-compatible incoming webhook body, `{"text": "..."}`.
    #[serde(rename = "type")]
    pub type_: SinkType,
    /// The Secret key (in the policy's namespace) holding the URL to POST to: `http` or
    /// `https`, with a host, no `user:password@`. Webhook URLs are credentials (whoever knows
    /// a Slack webhook URL can post to the channel), so the URL is read from a Secret and is
    /// never logged, recorded or sent anywhere but to itself. The operator must be allowed
    /// to read the Secret (`rbac.secretNames` in the chart).
    pub url_secret_ref: SecretKeyRef,
    /// Which notifications to send; all of them when empty or omitted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 5))]
    #[x_kube(validation = kube::core::Rule::new("self.all(e, self.exists_one(f, f == e))").message("spec.notifications[].events: list each event once"))]
    pub events: Vec<NotificationEvent>,
    /// How long one delivery attempt may take. A slower receiver counts as a failed attempt
    /// and is tried again with backoff; the run never waits for it.
    #[serde(default = "default_timeout")]
    #[schemars(length(max = 32), regex(pattern = DURATION_PATTERN))]
    pub timeout: String,
}

fn default_timeout() -> String {
    "5s".into()
}

/// The body a sink is sent.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub enum SinkType {
    /// A CloudEvents 1.0 JSON document (`Content-Type: application/cloudevents+json`).
    Webhook,
    /// A Slack-compatible incoming webhook: `{"text": "..."}`.
    Slack,
}

impl SinkType {
    /// The name used in the schema and as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            SinkType::Webhook => "webhook",
            SinkType::Slack => "slack",
        }
    }
}

/// A notification a run can send.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub enum NotificationEvent {
    /// A run started for a new revision.
    Started,
    /// The canary reached a step (a new share of traffic).
    StepReached,
    /// Every step passed and the tier requires an approval: carries the approve command.
    ApprovalNeeded,
    /// The run was rolled back: carries the reason and the evidence.
    RolledBack,
    /// The canary was promoted: the Deployment rolls out the new revision.
    Promoted,
}

impl NotificationEvent {
    /// Every event, in the order a run can send them.
    pub const ALL: [NotificationEvent; 5] = [
        NotificationEvent::Started,
        NotificationEvent::StepReached,
        NotificationEvent::ApprovalNeeded,
        NotificationEvent::RolledBack,
        NotificationEvent::Promoted,
    ];

    /// The last segment of the CloudEvents `type` (`dev.rollguard.run.<this>`).
    pub fn type_suffix(self) -> &'static str {
        match self {
            NotificationEvent::Started => "started",
            NotificationEvent::StepReached => "step",
            NotificationEvent::ApprovalNeeded => "approvalneeded",
            NotificationEvent::RolledBack => "rolledback",
            NotificationEvent::Promoted => "promoted",
        }
    }
}
