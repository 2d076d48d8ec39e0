//! A test-only crash point, compiled in only with the `e2e` feature (the release binary and
//! the image have none): `ROLLGUARD_FAIL_AFTER=<phase>:<write>`, read once when the operator
//! starts, makes it abort right after the first write named `<write>` that actually reached
//! the API server in a pass whose run status is `<phase>`, e.g. `RolledBack:delete-canary`
//! or `Succeeded:deployment`. The e2e crash tests use it to kill the operator between two
//! side effects of one transition. `<write>` is one of [`super::outcome::Write::name`].

/// Where to abort.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailPoint {
    pub phase: String,
    pub write: String,
}

impl FailPoint {
    /// Parses `<phase>:<write>`.
    pub fn parse(s: &str) -> Option<FailPoint> {
        let (phase, write) = s.trim().split_once(':')?;
        (!phase.is_empty() && !write.is_empty()).then(|| FailPoint {
            phase: phase.into(),
            write: write.into(),
        })
    }
}

/// The fail point set for this process, read once.
#[cfg(feature = "e2e")]
pub fn configured() -> Option<&'static FailPoint> {
    static POINT: std::sync::OnceLock<Option<FailPoint>> = std::sync::OnceLock::new();
    POINT
        .get_or_init(|| {
            let v = std::env::var("ROLLGUARD_FAIL_AFTER").ok()?;
            let p = FailPoint::parse(&v);
            tracing::warn!(point = ?p, "test fail point ROLLGUARD_FAIL_AFTER is set");
            p
        })
        .as_ref()
}

/// Without the `e2e` feature there is no fail point.
#[cfg(not(feature = "e2e"))]
pub fn configured() -> Option<&'static FailPoint> {
    None
}

/// Aborts the process when `write`, just done in a pass whose run status is `phase`, is the
/// configured fail point.
pub fn after(phase: Option<&str>, write: &str) {
    if let (Some(p), Some(phase)) = (configured(), phase)
        && p.phase == phase
        && p.write == write
    {
        tracing::error!(
            phase,
            write,
            "fail point reached: aborting (ROLLGUARD_FAIL_AFTER)"
        );
        eprintln!("rollguard: fail point {phase}:{write} reached; aborting");
        std::process::abort();
    }
}

#[cfg(test)]
mod tests {
    use super::FailPoint;

    #[test]
    fn parses_phase_and_write() {
        assert_eq!(
            FailPoint::parse("RolledBack:delete-canary"),
            Some(FailPoint {
                phase: "RolledBack".into(),
                write: "delete-canary".into()
            })
        );
        assert_eq!(FailPoint::parse("RolledBack"), None);
        assert_eq!(FailPoint::parse(":weights"), None);
    }
}
