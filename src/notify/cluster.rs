//! Cluster-wide sinks: the chart's `notifications.sinks`, given to the operator as YAML or
//! JSON (`--cluster-notifications`), told about every policy's runs. Their Secrets are in
//! the operator's own namespace. The API server never sees this list, so the checks its
//! schema makes on a policy's sinks are made here, at start-up.

use std::collections::BTreeSet;

use crate::api::notification::NotificationSink;
use crate::api::quantity::parse_duration;

/// The policy name cluster-wide sinks are queued under: no policy can be named so.
pub const CLUSTER: &str = "(cluster)";

/// Sinks for every run, and the namespace of their Secrets.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClusterSinks {
    pub namespace: String,
    pub sinks: Vec<NotificationSink>,
}

impl ClusterSinks {
    /// Parses the list (empty text: none), refusing what a policy's schema would refuse,
    /// naming the entry.
    pub fn parse(text: &str, namespace: &str) -> Result<ClusterSinks, String> {
        let sinks: Vec<NotificationSink> = if text.trim().is_empty() {
            Vec::new()
        } else {
            serde_yaml_ng::from_str(text)
                .map_err(|e| format!("--cluster-notifications is not a list of sinks: {e}"))?
        };
        let mut names = BTreeSet::new();
        for (i, s) in sinks.iter().enumerate() {
            let at = format!("--cluster-notifications[{i}]");
            let name_ok = !s.name.is_empty()
                && s.name.len() <= 63
                && s.name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !s.name.starts_with('-')
                && !s.name.ends_with('-');
            if !name_ok {
                return Err(format!(
                    "{at}: name {:?} must be lowercase letters, digits and dashes (at most 63)",
                    s.name
                ));
            }
            if !names.insert(s.name.as_str()) {
                return Err(format!("{at}: sink name {} is used twice", s.name));
            }
            if s.url_secret_ref.name.is_empty() || s.url_secret_ref.key.is_empty() {
                return Err(format!(
                    "{at} ({}): urlSecretRef needs a name and a key",
                    s.name
                ));
            }
            parse_duration(&s.timeout)
                .map_err(|e| format!("{at} ({}): timeout {:?}: {e}", s.name, s.timeout))?;
            let events: std::collections::HashSet<_> = s.events.iter().collect();
            if events.len() != s.events.len() {
                return Err(format!("{at} ({}): list each event once", s.name));
            }
        }
        Ok(ClusterSinks {
            namespace: namespace.to_string(),
            sinks,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::ClusterSinks;
    use crate::api::notification::{NotificationEvent, SinkType};

    #[test]
    fn the_charts_list_is_read_as_json_or_yaml() {
        let json = r#"[{"name":"ops","type":"slack","urlSecretRef":{"name":"rollguard-notify","key":"slack"},"events":["rolledBack"]}]"#;
        let c = ClusterSinks::parse(json, "rollguard-system").expect("valid");
        assert_eq!(c.namespace, "rollguard-system");
        assert_eq!(c.sinks.len(), 1);
        assert_eq!(c.sinks[0].type_, SinkType::Slack);
        assert_eq!(c.sinks[0].events, [NotificationEvent::RolledBack]);
        assert_eq!(c.sinks[0].timeout, "5s");
        let yaml =
            "- name: audit\n  type: webhook\n  urlSecretRef: {name: s, key: url}\n  timeout: 2s\n";
        assert_eq!(
            ClusterSinks::parse(yaml, "ns").expect("valid").sinks[0].timeout,
            "2s"
        );
        assert_eq!(ClusterSinks::parse("", "ns").expect("none").sinks, []);
        assert_eq!(ClusterSinks::parse("[]", "ns").expect("none").sinks, []);
    }

    #[test]
    fn what_a_policys_schema_refuses_is_refused_naming_the_entry() {
        let sink = |name: &str, extra: &str| {
            format!(
                r#"{{"name":"{name}","type":"webhook","urlSecretRef":{{"name":"s","key":"url"}}{extra}}}"#
            )
        };
        let table = [
            (format!("[{}]", sink("Ops", "")), "[0]: name \"Ops\""),
            (
                format!("[{},{}]", sink("a", ""), sink("a", "")),
                "[1]: sink name a is used twice",
            ),
            (
                format!("[{}]", sink("a", r#","timeout":"soon""#)),
                "[0] (a): timeout \"soon\"",
            ),
            (
                format!("[{}]", sink("a", r#","events":["promoted","promoted"]"#)),
                "[0] (a): list each event once",
            ),
            (
                r#"[{"name":"a","type":"email"}]"#.to_string(),
                "is not a list of sinks",
            ),
        ];
        for (text, want) in table {
            let err = ClusterSinks::parse(&text, "ns").expect_err(&text);
            assert!(err.contains(want), "{err}");
        }
    }
}
