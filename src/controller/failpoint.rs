//! Test-only fault points, compiled in only with the `e2e` feature (the release binary and
//! the image have none), each read once from the environment when the operator starts:
//!
//! - `ROLLGUARD_FAIL_AFTER=<phase>:<write>[:<n>]` makes it abort right after the `n`th
//!   (default first) write named `<write>` that actually reached the API server in a pass
//!   whose run status is `<phase>`, e.g. `RolledBack:delete-canary`, `Succeeded:deployment`
//!   or `Progressing:canary:2` (the canary grown for the second step, before the status
//!   says so). The e2e crash and HA tests use it to kill the operator between two side
//!   effects of one transition. `<write>` is one of [`super::outcome::Write::name`].
//! - `ROLLGUARD_STOP_BEFORE=<phase>:run-status` makes the process stop itself (SIGSTOP) right
//!   before the first run status write of such a pass that changes the status: a leader
//!   stalled in the middle of a write sequence, for the fencing test, which continues it
//!   with SIGCONT.

/// Where to abort.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailPoint {
    pub phase: String,
    pub write: String,
    /// At the how-manyth such write (from 1).
    pub nth: u32,
}

impl FailPoint {
    /// Parses `<phase>:<write>[:<n>]` (read only in e2e builds; tested in every build).
    #[cfg_attr(not(feature = "e2e"), allow(dead_code))]
    pub fn parse(s: &str) -> Option<FailPoint> {
        let mut parts = s.trim().split(':');
        let (phase, write) = (parts.next()?, parts.next()?);
        let nth = match parts.next() {
            Some(n) => n.parse().ok().filter(|n| *n > 0)?,
            None => 1,
        };
        (!phase.is_empty() && !write.is_empty() && parts.next().is_none()).then(|| FailPoint {
            phase: phase.into(),
            write: write.into(),
            nth,
        })
    }
}

#[cfg(feature = "e2e")]
fn read(var: &str) -> Option<FailPoint> {
    let p = FailPoint::parse(&std::env::var(var).ok()?);
    tracing::warn!(point = ?p, "test fault point {var} is set");
    p
}

/// The fail point set for this process, read once.
#[cfg(feature = "e2e")]
pub fn configured() -> Option<&'static FailPoint> {
    static POINT: std::sync::OnceLock<Option<FailPoint>> = std::sync::OnceLock::new();
    POINT.get_or_init(|| read("ROLLGUARD_FAIL_AFTER")).as_ref()
}

/// The stop point set for this process, read once.
#[cfg(feature = "e2e")]
fn stop_point() -> Option<&'static FailPoint> {
    static POINT: std::sync::OnceLock<Option<FailPoint>> = std::sync::OnceLock::new();
    POINT.get_or_init(|| read("ROLLGUARD_STOP_BEFORE")).as_ref()
}

/// Without the `e2e` feature there is no fail point.
#[cfg(not(feature = "e2e"))]
pub fn configured() -> Option<&'static FailPoint> {
    None
}

#[cfg(not(feature = "e2e"))]
fn stop_point() -> Option<&'static FailPoint> {
    None
}

/// Stops the process (SIGSTOP to itself) the first time `write` is about to go out in a
/// pass whose run status is `phase` and that is the configured stop point; it goes on from
/// here when continued (SIGCONT).
pub fn before(phase: Option<&str>, write: &str) {
    static STOPPED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if let (Some(p), Some(phase)) = (stop_point(), phase)
        && p.phase == phase
        && p.write == write
        && !STOPPED.swap(true, std::sync::atomic::Ordering::SeqCst)
    {
        tracing::warn!(
            phase,
            write,
            "stop point reached: stopping (ROLLGUARD_STOP_BEFORE)"
        );
        let _ = std::process::Command::new("kill")
            .args(["-STOP", &std::process::id().to_string()])
            .status();
        // The stop reaches every thread of the process, this one included, but not always
        // before `kill` has returned here: a full run once saw this thread go on for 2 ms and
        // pass the fence check of the very write the stop must come before (ha.rs). Staying
        // here a while makes the stop land inside the stop point.
        std::thread::sleep(std::time::Duration::from_millis(500));
        tracing::warn!(phase, write, "continued after the stop point");
    }
}

/// Aborts the process when `write`, just done in a pass whose run status is `phase`, is the
/// configured fail point.
pub fn after(phase: Option<&str>, write: &str) {
    static SEEN: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    if let (Some(p), Some(phase)) = (configured(), phase)
        && p.phase == phase
        && p.write == write
        && SEEN.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 == p.nth
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
                write: "delete-canary".into(),
                nth: 1,
            })
        );
        assert_eq!(
            FailPoint::parse("Progressing:canary:2").map(|p| p.nth),
            Some(2)
        );
        assert_eq!(FailPoint::parse("RolledBack"), None);
        assert_eq!(FailPoint::parse(":weights"), None);
        assert_eq!(FailPoint::parse("Progressing:canary:0"), None);
        assert_eq!(FailPoint::parse("Progressing:canary:2:3"), None);
    }
}
