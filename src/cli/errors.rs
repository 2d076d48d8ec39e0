//! What can go wrong in `kubectl rollguard`, each as one line that says what is wrong and
//! what to do, and the exit code it maps to. API errors are classified here with the verb
//! and resource the CLI was attempting, so "permission denied" can say which.

use std::fmt;

/// Exit codes of `kubectl rollguard`; `wait` adds 10 to 13 for its verdicts.
pub mod exit {
    /// Success; for `wait`: the revision was promoted (or already is stable).
    pub const OK: u8 = 0;
    /// An error not covered below (the API server refused a write, git failed, ...).
    pub const OTHER: u8 = 1;
    /// Bad arguments (clap's own code).
    pub const USAGE: u8 = 2;
    /// No such Deployment.
    pub const NO_SUCH_DEPLOYMENT: u8 = 3;
    /// The Deployment is not governed by a policy (none, or two in conflict; or rollguard
    /// is not installed).
    pub const NOT_GOVERNED: u8 = 4;
    /// No run in flight.
    pub const NO_RUN: u8 = 5;
    /// The run is not in a state that allows the verb (not waiting for approval, promote
    /// while an approval is missing, nothing to retry, ...).
    pub const REFUSED: u8 = 6;
    /// Permission denied (or the credentials were not accepted).
    pub const FORBIDDEN: u8 = 7;
    /// The API server could not be reached.
    pub const UNREACHABLE: u8 = 8;
    /// `wait`: the run was rolled back by the analysis.
    pub const WAIT_ROLLED_BACK: u8 = 10;
    /// `wait`: someone aborted the run.
    pub const WAIT_ABORTED: u8 = 11;
    /// `wait`: a newer template (or a revert) replaced the revision before it was promoted.
    pub const WAIT_SUPERSEDED: u8 = 12;
    /// `wait`: `--timeout` elapsed before the run ended.
    pub const WAIT_TIMEOUT: u8 = 13;
}

/// An error of the CLI layer. `Display` is the one line printed after `error: `.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(
        "no Deployment {name} in namespace {namespace}: check the name and namespace (kubectl get deployments -n {namespace})"
    )]
    NoSuchDeployment { namespace: String, name: String },

    #[error("Deployment {namespace}/{name} is not governed by rollguard: {why}")]
    NotGoverned {
        namespace: String,
        name: String,
        why: String,
    },

    #[error("no run in flight for Deployment {namespace}/{name}{last}")]
    NoRunInFlight {
        namespace: String,
        name: String,
        /// `; ...` describing the last run, or empty.
        last: String,
    },

    #[error("run {run} is not waiting for approval: {why}")]
    NotAwaitingApproval { run: String, why: String },

    #[error("{0}")]
    Refused(String),

    #[error(
        "permission denied: {user} cannot {verb} {resource}{scope}; ask your cluster admin for a Role that allows it"
    )]
    PermissionDenied {
        user: String,
        verb: String,
        resource: String,
        /// ` in namespace X`, or empty for cluster-scoped requests.
        scope: String,
    },

    #[error(
        "the API server did not accept your credentials while trying to {action}: log in again or pick another context (kubectl config get-contexts)"
    )]
    Unauthorized { action: String },

    #[error(
        "cannot reach the Kubernetes API server{server} ({detail}): check the kubeconfig context and the network (kubectl cluster-info)"
    )]
    Unreachable { server: String, detail: String },

    #[error("cannot load a kubeconfig ({0}): set KUBECONFIG or pass --kubeconfig")]
    Config(String),

    #[error(
        "the rollguard CRDs are not installed in this cluster ({0}): install the rollguard chart or `kubectl apply -f crds/`"
    )]
    NotInstalled(String),

    #[error("the API server refused to {action}: {message}")]
    Api { action: String, message: String },

    #[error("{0}")]
    Usage(String),

    #[error("{0}")]
    Other(String),
}

impl CliError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::NoSuchDeployment { .. } => exit::NO_SUCH_DEPLOYMENT,
            CliError::NotGoverned { .. } | CliError::NotInstalled(_) => exit::NOT_GOVERNED,
            CliError::NoRunInFlight { .. } => exit::NO_RUN,
            CliError::NotAwaitingApproval { .. } | CliError::Refused(_) => exit::REFUSED,
            CliError::PermissionDenied { .. } | CliError::Unauthorized { .. } => exit::FORBIDDEN,
            CliError::Unreachable { .. } => exit::UNREACHABLE,
            CliError::Usage(_) => exit::USAGE,
            CliError::Config(_) | CliError::Api { .. } | CliError::Other(_) => exit::OTHER,
        }
    }
}

/// What the CLI was doing when a request failed: enough to say "cannot patch
/// rolloutruns.rollguard.dev in namespace shop".
#[derive(Debug, Clone)]
pub struct Attempt {
    /// The Kubernetes verb: get, list, watch, patch, create.
    pub verb: &'static str,
    /// The resource with its group, e.g. `rolloutruns.rollguard.dev`.
    pub resource: &'static str,
    /// The namespace, or `None` for all namespaces / cluster-scoped.
    pub namespace: Option<String>,
}

impl Attempt {
    /// A request in one namespace.
    pub fn new(verb: &'static str, resource: &'static str, namespace: &str) -> Attempt {
        Attempt {
            verb,
            resource,
            namespace: Some(namespace.to_string()),
        }
    }

    /// A request across all namespaces (or a cluster-scoped one).
    pub fn cluster(verb: &'static str, resource: &'static str) -> Attempt {
        Attempt {
            verb,
            resource,
            namespace: None,
        }
    }

    fn scope(&self) -> String {
        match &self.namespace {
            Some(ns) => format!(" in namespace {ns}"),
            None if self.resource.starts_with("selfsubject") => String::new(),
            None => " in all namespaces".to_string(),
        }
    }
}

impl fmt::Display for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}{}", self.verb, self.resource, self.scope())
    }
}

/// The resource names used in messages.
pub mod resource {
    pub const DEPLOYMENTS: &str = "deployments.apps";
    pub const RUNS: &str = "rolloutruns.rollguard.dev";
    pub const POLICIES: &str = "rolloutpolicies.rollguard.dev";
    pub const SELF_SUBJECT_REVIEWS: &str = "selfsubjectreviews.authentication.k8s.io";
}

/// Classifies a kube error for an attempt. 404s are left to the caller when they mean
/// something specific (no such Deployment); here a 404 on a rollguard resource means the
/// CRDs are missing.
pub fn classify(e: kube::Error, attempt: &Attempt) -> CliError {
    match e {
        kube::Error::Api(s) => match s.code {
            401 => CliError::Unauthorized {
                action: attempt.to_string(),
            },
            // An admission policy or webhook said no: its message is the explanation.
            403 if s.message.contains("denied request")
                || s.message.contains("denied the request") =>
            {
                CliError::Api {
                    action: attempt.to_string(),
                    message: s.message.clone(),
                }
            }
            403 => CliError::PermissionDenied {
                user: forbidden_user(&s.message).unwrap_or_else(|| "you".into()),
                verb: attempt.verb.to_string(),
                resource: attempt.resource.to_string(),
                scope: attempt.scope(),
            },
            404 if attempt.resource.ends_with(".rollguard.dev")
                && s.message
                    .contains("the server could not find the requested resource") =>
            {
                CliError::NotInstalled(format!("{} is not served", attempt.resource))
            }
            _ => CliError::Api {
                action: attempt.to_string(),
                message: if s.message.is_empty() {
                    s.reason.clone()
                } else {
                    s.message.clone()
                },
            },
        },
        kube::Error::HyperError(e) => CliError::Unreachable {
            server: String::new(),
            detail: root_cause(&e),
        },
        kube::Error::Service(e) => CliError::Unreachable {
            server: String::new(),
            detail: root_cause(e.as_ref()),
        },
        kube::Error::InferConfig(e) => CliError::Config(e.to_string()),
        kube::Error::InferKubeconfig(e) => CliError::Config(e.to_string()),
        kube::Error::Auth(e) => CliError::Unauthorized {
            action: format!("{attempt} ({e})"),
        },
        other => CliError::Other(format!("{attempt} failed: {other}")),
    }
}

/// Classifies an error from a watch (`get --watch`, `wait`).
pub fn classify_watch(e: kube::runtime::watcher::Error, attempt: &Attempt) -> CliError {
    use kube::runtime::watcher::Error as W;
    match e {
        W::InitialListFailed(e) | W::WatchStartFailed(e) | W::WatchFailed(e) => {
            classify(e, attempt)
        }
        W::WatchError(s) => classify(kube::Error::Api(s), attempt),
        W::NoResourceVersion => CliError::Other(format!(
            "{attempt}: the API server sent no resourceVersion; this resource cannot be watched"
        )),
    }
}

/// The innermost error's message: "Connection refused (os error 111)" rather than a chain
/// of wrappers.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// The user named in a Forbidden message: `User "alice" cannot patch resource ...`.
fn forbidden_user(message: &str) -> Option<String> {
    let rest = message.split("User \"").nth(1)?;
    let user = rest.split('"').next()?;
    (!user.is_empty()).then(|| user.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, message: &str) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status {
            code,
            message: message.into(),
            ..Default::default()
        }))
    }

    #[test]
    fn forbidden_names_the_user_verb_resource_and_namespace() {
        let e = classify(
            status(
                403,
                r#"rolloutruns.rollguard.dev "web-abc" is forbidden: User "system:serviceaccount:shop:ci" cannot patch resource "rolloutruns" in API group "rollguard.dev" in the namespace "shop""#,
            ),
            &Attempt::new("patch", resource::RUNS, "shop"),
        );
        assert_eq!(e.exit_code(), exit::FORBIDDEN);
        assert_eq!(
            e.to_string(),
            "permission denied: system:serviceaccount:shop:ci cannot patch rolloutruns.rollguard.dev in namespace shop; ask your cluster admin for a Role that allows it"
        );
    }

    #[test]
    fn an_admission_refusal_is_not_a_permission_problem() {
        let e = classify(
            status(
                403,
                "rolloutruns.rollguard.dev \"web-abc\" is forbidden: ValidatingAdmissionPolicy 'rollguard-approvals' with binding 'rollguard-approvals' denied request: forged approval",
            ),
            &Attempt::new("patch", resource::RUNS, "shop"),
        );
        assert_eq!(e.exit_code(), exit::OTHER);
        let text = e.to_string();
        assert!(
            text.starts_with(
                "the API server refused to patch rolloutruns.rollguard.dev in namespace shop: "
            ),
            "{text}"
        );
        assert!(text.ends_with("denied request: forged approval"), "{text}");
    }

    #[test]
    fn missing_crd_is_reported_as_not_installed() {
        let e = classify(
            status(404, "the server could not find the requested resource"),
            &Attempt::new("list", resource::RUNS, "shop"),
        );
        assert_eq!(e.exit_code(), exit::NOT_GOVERNED);
        assert!(e.to_string().contains("CRDs are not installed"), "{e}");
    }

    #[test]
    fn every_message_is_one_line() {
        let errors = [
            CliError::NoSuchDeployment {
                namespace: "shop".into(),
                name: "web".into(),
            },
            CliError::NotGoverned {
                namespace: "shop".into(),
                name: "web".into(),
                why: "no RolloutPolicy selects it".into(),
            },
            CliError::NoRunInFlight {
                namespace: "shop".into(),
                name: "web".into(),
                last: String::new(),
            },
            CliError::Unreachable {
                server: " at https://127.0.0.1:1".into(),
                detail: "Connection refused (os error 111)".into(),
            },
        ];
        let codes: Vec<u8> = errors.iter().map(CliError::exit_code).collect();
        assert_eq!(codes, vec![3, 4, 5, 8]);
        for e in errors {
            assert!(!e.to_string().contains('\n'), "{e}");
        }
    }
}
