//! Rendering for people: the table of governed Deployments and the detailed view of one,
//! with colour and progress bars on a terminal and plain text when piped. Pure functions of
//! the assembled views and `now`, so the output is tested as snapshots.

use std::fmt::Write as _;
use std::io::IsTerminal as _;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

use super::view::{DeploymentRollouts, phase};
use crate::api::quantity::parse_duration;
use crate::api::run::{Phase, RolloutRun, Sample, Verdict};
use crate::run::condition;

/// How to draw: colour and bars only on a terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    /// ANSI colours.
    pub color: bool,
    /// Unicode progress bars.
    pub bars: bool,
}

impl Style {
    /// A terminal: colour and bars.
    pub const TERMINAL: Style = Style {
        color: true,
        bars: true,
    };
    /// Piped: plain text.
    pub const PLAIN: Style = Style {
        color: false,
        bars: false,
    };

    /// The style for stdout: bars on a terminal, colour too unless `NO_COLOR` is set or
    /// `TERM=dumb`.
    pub fn for_stdout() -> Style {
        let tty = std::io::stdout().is_terminal();
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
            || std::env::var("TERM").is_ok_and(|t| t == "dumb");
        Style {
            color: tty && !no_color,
            bars: tty,
        }
    }

    fn paint(self, code: &str, text: &str) -> String {
        if self.color && !code.is_empty() && !text.is_empty() {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
}

/// ANSI colour codes.
mod ansi {
    pub const RED: &str = "31";
    pub const GREEN: &str = "32";
    pub const YELLOW: &str = "33";
    pub const BLUE: &str = "34";
    pub const CYAN: &str = "36";
    pub const DIM: &str = "2";
    pub const BOLD: &str = "1";
}

/// The colour of a phase.
fn phase_color(p: Phase) -> &'static str {
    match p {
        Phase::Progressing => ansi::CYAN,
        Phase::AwaitingApproval => ansi::YELLOW,
        Phase::Promoting => ansi::BLUE,
        Phase::Succeeded => ansi::GREEN,
        Phase::RolledBack | Phase::Aborted => ansi::RED,
        Phase::Superseded => ansi::DIM,
    }
}

/// A duration the way kubectl shows ages: `45s`, `3m12s`, `25m`, `2h5m`, `3d4h`, `30d`.
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    let (m, h, days) = (s / 60, s / 3600, s / 86_400);
    let with = |big: u64, bu: &str, small: u64, su: &str| {
        if small == 0 {
            format!("{big}{bu}")
        } else {
            format!("{big}{bu}{small}{su}")
        }
    };
    if s < 60 {
        format!("{s}s")
    } else if s < 600 {
        with(m, "m", s % 60, "s")
    } else if s < 3600 {
        format!("{m}m")
    } else if s < 86_400 {
        with(h, "h", m % 60, "m")
    } else if days < 7 {
        with(days, "d", h % 24, "h")
    } else {
        format!("{days}d")
    }
}

/// How long ago `t` was (0s for the future).
pub fn ago(t: &Time, now: Timestamp) -> String {
    human_duration(since(t, now))
}

fn since(t: &Time, now: Timestamp) -> Duration {
    Duration::try_from(now.duration_since(t.0)).unwrap_or(Duration::ZERO)
}

/// A table cell: its visible text (for the layout) and what is printed on a terminal.
struct Cell {
    text: String,
    painted: Option<String>,
}

fn cell(text: impl Into<String>) -> Cell {
    Cell {
        text: text.into(),
        painted: None,
    }
}

fn colored(text: impl Into<String>, color: &'static str, style: Style) -> Cell {
    let text = text.into();
    let painted = style.color.then(|| style.paint(color, &text));
    Cell { text, painted }
}

/// Columns separated by two spaces, padded on the visible text; no trailing spaces.
fn table(headers: &[&str], rows: &[Vec<Cell>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, c) in row.iter().enumerate() {
            widths[i] = widths[i].max(c.text.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<Cell> = headers.iter().map(|h| cell(*h)).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, c) in row.iter().enumerate() {
            line.push_str(c.painted.as_deref().unwrap_or(&c.text));
            if i + 1 < row.len() {
                let pad = widths[i] - c.text.chars().count() + 2;
                line.push_str(&" ".repeat(pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The steps of a run: completed ones, the current one, those to go.
struct StepsView {
    weights: Vec<String>,
    /// 0-based current step.
    current: usize,
    /// Fraction of the current step's pause that has elapsed (1.0 when all are done).
    fraction: f64,
    /// Time left in the current step's pause, when it is counting.
    left: Option<Duration>,
    /// All steps are behind the run (awaiting approval, promoting, succeeded).
    all_done: bool,
}

fn steps_view(run: &RolloutRun, now: Timestamp) -> StepsView {
    let st = run.status.clone().unwrap_or_default();
    let plan = &run.spec.plan;
    let weights: Vec<String> = plan.steps.iter().map(|s| s.weight.clone()).collect();
    let pauses: Vec<Option<Duration>> = plan
        .steps
        .iter()
        .map(|s| parse_duration(&s.pause).ok())
        .collect();
    let n = weights.len().max(1);
    let current = (st.step.max(0) as usize).min(n - 1);
    let all_done = matches!(
        st.phase,
        Phase::AwaitingApproval | Phase::Promoting | Phase::Succeeded
    );
    let (fraction, left) = match (&st.step_started_at, pauses.get(current).copied().flatten()) {
        _ if all_done => (1.0, None),
        (Some(started), Some(pause)) if !st.phase.is_terminal() => {
            let gone = since(started, now);
            let frac = if pause.is_zero() {
                1.0
            } else {
                (gone.as_secs_f64() / pause.as_secs_f64()).min(1.0)
            };
            // Round up, so a step never shows "0s left" while it still holds.
            let left = pause.saturating_sub(gone);
            let left = Duration::from_secs(left.as_secs() + u64::from(left.subsec_nanos() > 0));
            (frac, Some(left))
        }
        _ => (0.0, None),
    };
    StepsView {
        weights,
        current,
        fraction,
        left,
        all_done,
    }
}

/// `▰▰▱▱▱`: one mark per step (for the table).
fn mini_bar(v: &StepsView, style: Style) -> String {
    let mut out = String::new();
    for i in 0..v.weights.len() {
        let done = v.all_done || i < v.current;
        let here = !v.all_done && i == v.current;
        let (mark, color) = if done {
            ("▰", ansi::GREEN)
        } else if here {
            ("▰", ansi::CYAN)
        } else {
            ("▱", ansi::DIM)
        };
        out.push_str(&style.paint(color, mark));
    }
    out
}

/// The step column of the table: `2/5`, with a bar on a terminal.
fn step_cell(run: &RolloutRun, now: Timestamp, style: Style) -> Cell {
    let v = steps_view(run, now);
    let plain = format!("{}/{}", v.current + 1, v.weights.len());
    if !style.bars {
        return cell(plain);
    }
    let bar: String = (0..v.weights.len())
        .map(|i| {
            if v.all_done || i <= v.current {
                '▰'
            } else {
                '▱'
            }
        })
        .collect();
    Cell {
        text: format!("{bar} {plain}"),
        painted: style
            .color
            .then(|| format!("{} {plain}", mini_bar(&v, style))),
    }
}

/// The latest sample's error rate against the limit: `0.13%/0.5%`.
fn rate_text(run: &RolloutRun) -> (String, &'static str) {
    let st = run.status.as_ref();
    let latest = st.and_then(|s| s.samples.last());
    let rate = st
        .and_then(|s| s.error_rate.clone())
        .unwrap_or_else(|| "-".into());
    let limit = latest
        .and_then(|s| s.threshold.clone())
        .unwrap_or_else(|| run.spec.plan.max_error_rate.clone());
    let color = match latest.map(|s| s.verdict) {
        Some(Verdict::Fail) => ansi::RED,
        Some(Verdict::NoData | Verdict::Error) => ansi::YELLOW,
        _ => "",
    };
    (format!("{rate}/{limit}"), color)
}

/// The table of governed Deployments: the run in flight and the last outcome of each.
pub fn render_table(
    views: &[DeploymentRollouts],
    all_namespaces: bool,
    now: Timestamp,
    style: Style,
) -> String {
    let mut headers = vec![];
    if all_namespaces {
        headers.push("NAMESPACE");
    }
    headers.extend([
        "DEPLOYMENT",
        "TIER",
        "PHASE",
        "STEP",
        "WEIGHT",
        "ERROR RATE",
        "AGE",
        "LAST",
    ]);
    let mut rows = vec![];
    for v in views {
        let mut row = vec![];
        if all_namespaces {
            row.push(cell(&v.namespace));
        }
        row.push(cell(&v.deployment));
        match &v.current {
            Some(run) => {
                let p = phase(run);
                let (rate, rate_color) = rate_text(run);
                let weight = run
                    .status
                    .as_ref()
                    .and_then(|s| s.weight)
                    .unwrap_or_default()
                    .to_string();
                row.push(cell(&run.spec.tier.name));
                row.push(colored(p.as_str(), phase_color(p), style));
                row.push(step_cell(run, now, style));
                row.push(cell(weight));
                row.push(colored(rate, rate_color, style));
                row.push(cell(
                    run.creation_timestamp()
                        .map(|t| ago(&t, now))
                        .unwrap_or_else(|| "-".into()),
                ));
            }
            None => {
                let (state, color) = idle_state(v);
                row.extend([
                    cell("-"),
                    colored(state, color, style),
                    cell("-"),
                    cell("-"),
                    cell("-"),
                    cell("-"),
                ]);
            }
        }
        row.push(last_cell(v, now, style));
        rows.push(row);
    }
    table(&headers, &rows)
}

/// The state of a Deployment with no run in flight.
fn idle_state(v: &DeploymentRollouts) -> (&'static str, &'static str) {
    let blocked = v.failed_revision.is_some() && v.failed_revision == v.template_revision;
    match v.policies.len() {
        0 => ("Released", ansi::DIM),
        n if n > 1 => ("Conflict", ansi::RED),
        _ if v.stable_revision.is_none() => ("Adopting", ansi::DIM),
        _ if blocked => ("Blocked", ansi::RED),
        _ => ("Steady", ""),
    }
}

fn last_cell(v: &DeploymentRollouts, now: Timestamp, style: Style) -> Cell {
    match v.last() {
        Some(r) => {
            let p = phase(r);
            let when = r
                .status
                .as_ref()
                .and_then(|s| s.ended_at.as_ref())
                .map(|t| format!(" {} ago", ago(t, now)))
                .unwrap_or_default();
            colored(format!("{}{when}", p.as_str()), phase_color(p), style)
        }
        None => cell("-"),
    }
}

/// One analysis sample in words: the counts, the rate against the threshold (or the test
/// statistic against its boundary), and the verdict.
pub fn sample_line(s: &Sample) -> String {
    let q = |v: &Option<String>| v.clone().unwrap_or_else(|| "?".into());
    let n = |v: Option<u64>| v.map_or_else(|| "?".into(), |n| n.to_string());
    match s.verdict {
        Verdict::NoData | Verdict::Error if s.requests.is_none() => format!(
            "{}: {}",
            s.verdict,
            s.message.as_deref().unwrap_or("no message")
        ),
        _ => {
            let counts = format!(
                "{} requests, {} errors, rate {}",
                n(s.requests),
                n(s.errors),
                s.rate.clone().unwrap_or_else(|| "n/a".into())
            );
            let judged = match &s.statistic {
                Some(stat) => format!(
                    "; statistic {stat} vs rollback boundary {}{} (p0 {}, p1 {})",
                    q(&s.upper_bound),
                    s.lower_bound
                        .as_ref()
                        .map(|l| format!(", accept boundary {l}"))
                        .unwrap_or_default(),
                    q(&s.baseline),
                    q(&s.threshold)
                ),
                None => format!(" vs threshold {}", q(&s.threshold)),
            };
            format!("{counts}{judged}: {}", s.verdict)
        }
    }
}

/// A sample's slow requests in words, as [`sample_line`] says its errors.
pub fn latency_line(l: &crate::api::run::LatencySample) -> String {
    let q = |v: &Option<String>| v.clone().unwrap_or_else(|| "?".into());
    let Some(requests) = l.requests else {
        return format!(
            "slower than {}: {}: {}",
            l.objective,
            l.verdict,
            l.message.as_deref().unwrap_or("no message")
        );
    };
    let judged = match &l.statistic {
        Some(stat) => format!(
            "; statistic {stat} vs rollback boundary {} (p0 {}, p1 {})",
            q(&l.upper_bound),
            q(&l.baseline),
            q(&l.threshold)
        ),
        None => format!(" vs maxSlowRate {}", q(&l.threshold)),
    };
    format!(
        "slower than {}: {} of {requests} requests, rate {}{judged}: {}",
        l.objective,
        l.slow.map_or_else(|| "?".into(), |n| n.to_string()),
        q(&l.rate),
        l.verdict
    )
}

fn verdict_color(v: Verdict) -> &'static str {
    match v {
        Verdict::Fail => ansi::RED,
        Verdict::NoData | Verdict::Error => ansi::YELLOW,
        Verdict::Pass | Verdict::AcceptGood => ansi::GREEN,
        Verdict::Continue | Verdict::NotEnoughRequests => "",
    }
}

const LABEL_WIDTH: usize = 12;

struct Lines {
    out: String,
    style: Style,
}

impl Lines {
    fn field(&mut self, label: &str, value: &str) {
        let label = format!("{label}:");
        let _ = writeln!(self.out, "{label:<LABEL_WIDTH$} {value}");
    }

    fn cont(&mut self, value: &str) {
        let _ = writeln!(self.out, "{:LABEL_WIDTH$} {value}", "");
    }

    fn paint(&self, code: &str, text: &str) -> String {
        self.style.paint(code, text)
    }
}

/// The steps as a bar per step with the weights under it (terminal), or as words.
fn steps_lines(l: &mut Lines, run: &RolloutRun, now: Timestamp) {
    let v = steps_view(run, now);
    let n = v.weights.len();
    let where_ = if v.all_done {
        format!("all {n} steps passed")
    } else {
        let left = v
            .left
            .map(|d| format!(", {} left", human_duration(d)))
            .unwrap_or_default();
        format!(
            "step {}/{n} at {}{left}",
            v.current + 1,
            v.weights[v.current]
        )
    };
    if l.style.bars {
        const SEG: usize = 8;
        let mut bar = String::new();
        let mut under = String::new();
        for (i, w) in v.weights.iter().enumerate() {
            let filled = if v.all_done || i < v.current {
                SEG
            } else if i == v.current {
                // At least one block, so the bar shows where the run is from the start.
                ((v.fraction * SEG as f64).floor() as usize).clamp(1, SEG)
            } else {
                0
            };
            let color = if v.all_done || i < v.current {
                ansi::GREEN
            } else {
                ansi::CYAN
            };
            bar.push_str(&l.paint(color, &"█".repeat(filled)));
            bar.push_str(&l.paint(ansi::DIM, &"░".repeat(SEG - filled)));
            bar.push(' ');
            let label = if i == v.current && !v.all_done {
                l.paint(ansi::BOLD, w)
            } else {
                w.clone()
            };
            under.push_str(&label);
            under.push_str(&" ".repeat((SEG + 1).saturating_sub(w.chars().count())));
        }
        l.field("Steps", &format!("{bar}{where_}"));
        l.cont(under.trim_end());
    } else {
        let done: Vec<&str> = v
            .weights
            .iter()
            .take(if v.all_done { n } else { v.current })
            .map(String::as_str)
            .collect();
        let next: Vec<&str> = if v.all_done {
            vec![]
        } else {
            v.weights
                .iter()
                .skip(v.current + 1)
                .map(String::as_str)
                .collect()
        };
        let mut parts = vec![];
        if !done.is_empty() {
            parts.push(format!("done {}", done.join(", ")));
        }
        if !next.is_empty() {
            parts.push(format!("next {}", next.join(", ")));
        }
        let tail = if parts.is_empty() {
            String::new()
        } else {
            format!(" ({})", parts.join("; "))
        };
        l.field("Steps", &format!("{where_}{tail}"));
    }
}

fn judge_text(run: &RolloutRun) -> String {
    let plan = &run.spec.plan;
    let decision = match plan.decision {
        crate::api::policy::Decision::Threshold => format!(
            "threshold: roll back once shown above {} error rate (alpha {}){}",
            plan.max_error_rate,
            plan.threshold.clone().unwrap_or_default().alpha,
            if plan.failure_limit > 0 {
                format!(" after {} failed samples", plan.failure_limit + 1)
            } else {
                String::new()
            }
        ),
        crate::api::policy::Decision::Sequential => format!(
            "sequential test: a good revision errs at {}, a bad one at {}",
            plan.sequential
                .as_ref()
                .and_then(|s| s.p0.clone())
                .unwrap_or_else(|| "0.1%".into()),
            plan.sequential
                .as_ref()
                .and_then(|s| s.p1.clone())
                .unwrap_or_else(|| plan.max_error_rate.clone())
        ),
    };
    let approval = if plan.require_approval {
        "; approval required"
    } else {
        ""
    };
    let latency = plan.latency.as_ref().map_or(String::new(), |l| {
        format!(
            "; and requests slower than {}: good at {}, bad at {}",
            l.objective, l.p0, l.max_slow_rate
        )
    });
    format!(
        "{decision}{latency}; every {}{approval}",
        run.spec.analysis.interval
    )
}

fn run_header(l: &mut Lines, label: &str, run: &RolloutRun, now: Timestamp) {
    let p = phase(run);
    let st = run.status.as_ref();
    let when = match st.and_then(|s| s.ended_at.as_ref()) {
        Some(t) => format!("ended {} ago", ago(t, now)),
        None => run
            .creation_timestamp()
            .map(|t| format!("started {} ago", ago(&t, now)))
            .unwrap_or_default(),
    };
    let phase = l.paint(phase_color(p), p.as_str());
    l.field(label, &format!("{}  {phase}  {when}", run.name_any()));
    l.field(
        "Revision",
        &format!(
            "{} -> {}",
            short(&run.spec.stable_revision),
            short(&run.spec.canary_revision)
        ),
    );
    l.field(
        "Tier",
        &format!("{} ({})", run.spec.tier.name, run.spec.tier.reason),
    );
}

fn short(rev: &str) -> &str {
    if rev.is_empty() { "-" } else { rev }
}

/// The analysis evidence of a run: the latest sample, or the one that decided a rollback,
/// with the queries as sent.
pub fn evidence_lines(run: &RolloutRun, now: Timestamp, style: Style) -> String {
    let mut l = Lines {
        out: String::new(),
        style,
    };
    evidence(&mut l, run, now, true);
    l.out
}

fn evidence(l: &mut Lines, run: &RolloutRun, now: Timestamp, with_queries: bool) {
    let Some(st) = run.status.as_ref() else {
        l.field("Analysis", "no samples yet");
        return;
    };
    let (label, sample) = match (&st.evidence, st.samples.last()) {
        (Some(e), _) => ("Evidence", Some(e)),
        (None, Some(s)) => ("Analysis", Some(s)),
        (None, None) => ("Analysis", None),
    };
    match sample {
        None => l.field("Analysis", "no samples yet"),
        Some(s) => {
            let body = sample_line(s);
            let body = match body.strip_suffix(s.verdict.as_str()) {
                Some(head) if l.style.color => {
                    format!(
                        "{head}{}",
                        l.paint(verdict_color(s.verdict), s.verdict.as_str())
                    )
                }
                _ => body,
            };
            let line = format!("{} ago, step {}: {body}", ago(&s.time, now), s.step + 1);
            let n = st.sample_count;
            let plural = if n == 1 { "" } else { "s" };
            l.field(label, &format!("{line} ({n} sample{plural})"));
            if let Some(lat) = &s.latency {
                l.cont(&latency_line(lat));
            }
            for c in &s.checks {
                l.cont(&format!(
                    "check {}: {} ({}): {}",
                    c.name,
                    c.value.as_deref().unwrap_or("no value"),
                    c.message.as_deref().unwrap_or(""),
                    c.verdict
                ));
            }
            if with_queries {
                if let Some(q) = &s.requests_query {
                    l.cont(&format!("requests: {q}"));
                }
                if let Some(q) = &s.errors_query {
                    l.cont(&format!("errors:   {q}"));
                }
                if let Some(q) = s.latency.as_ref().and_then(|l| l.query.as_ref()) {
                    l.cont(&format!("latency:  {q}"));
                }
                if let Some(m) = s.message.as_ref().filter(|_| s.requests.is_some()) {
                    l.cont(m);
                }
            }
        }
    }
}

fn current_run(l: &mut Lines, v: &DeploymentRollouts, run: &RolloutRun, now: Timestamp) {
    run_header(l, "Run", run, now);
    l.field("Judge", &judge_text(run));
    steps_lines(l, run, now);
    let st = run.status.clone().unwrap_or_default();
    l.field(
        "Weight",
        &format!("{} of traffic on the canary", st.weight.unwrap_or_default()),
    );
    evidence(l, run, now, false);
    if let Some(w) = st.conditions.iter().find(|c| c.type_ == condition::WAITING) {
        let text = format!("{}: {}", w.reason, w.message);
        let painted = l.paint(ansi::YELLOW, &text);
        l.field("Waiting", &painted);
    }
    for c in &st.conditions {
        if c.status == "False" && c.type_ != condition::WAITING {
            let text = format!("{} {}: {}", c.type_, c.reason, c.message);
            let painted = l.paint(ansi::YELLOW, &text);
            l.field("Problem", &painted);
        }
    }
    let approvals = &run.spec.approvals;
    if approvals.is_empty() {
        if run.spec.plan.require_approval {
            let text = format!(
                "required, none yet: kubectl rollguard approve {} -n {}",
                v.deployment, v.namespace
            );
            let text = if st.phase == Phase::AwaitingApproval {
                l.paint(ansi::YELLOW, &text)
            } else {
                text
            };
            l.field("Approvals", &text);
        }
    } else {
        for (i, a) in approvals.iter().enumerate() {
            let groups = if a.groups.is_empty() {
                String::new()
            } else {
                format!(" (groups {})", a.groups.join(", "))
            };
            let text = format!("{}{groups}, {} ago", a.user, ago(&a.time, now));
            if i == 0 {
                l.field("Approvals", &text);
            } else {
                l.cont(&text);
            }
        }
    }
    if let Some(c) = &run.spec.control {
        let mut first = true;
        let mut say = |l: &mut Lines, text: String| {
            if first {
                l.field("Commands", &text);
                first = false;
            } else {
                l.cont(&text);
            }
        };
        if let Some(p) = &c.pause {
            let why = p
                .reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default();
            say(
                l,
                format!("paused by {} {} ago{why}", p.user, ago(&p.time, now)),
            );
        }
        if let Some(p) = &c.promote {
            let what = if p.full {
                "all remaining steps".to_string()
            } else {
                format!("the pause of step {}", p.step + 1)
            };
            say(
                l,
                format!("{} skipped {what} {} ago", p.user, ago(&p.time, now)),
            );
        }
        if let Some(a) = &c.abort {
            let why = a
                .reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default();
            say(
                l,
                format!("aborted by {} {} ago{why}", a.user, ago(&a.time, now)),
            );
        }
    }
}

fn finished_run(l: &mut Lines, v: &DeploymentRollouts, run: &RolloutRun, now: Timestamp) {
    run_header(l, "Last run", run, now);
    let st = run.status.clone().unwrap_or_default();
    if let Some(m) = &st.message {
        let reason = st.reason.as_deref().unwrap_or("");
        l.field("Outcome", &format!("{reason}: {m}"));
    }
    if matches!(st.phase, Phase::RolledBack | Phase::Aborted) {
        evidence(l, run, now, true);
    }
    if let Some(a) = run.spec.approvals.first() {
        l.field("Approved by", &a.user);
    }
    if v.failed_revision.as_deref() == Some(run.spec.canary_revision.as_str())
        && v.template_revision.as_deref() == Some(run.spec.canary_revision.as_str())
    {
        l.field(
            "Retry",
            &format!(
                "revision {} is marked failed and is not retried until the template changes: kubectl rollguard retry {} -n {}",
                run.spec.canary_revision, v.deployment, v.namespace
            ),
        );
    }
}

fn history_table(v: &DeploymentRollouts, now: Timestamp, style: Style) -> String {
    let rows: Vec<Vec<Cell>> = v
        .history
        .iter()
        .map(|r| {
            let p = phase(r);
            let st = r.status.as_ref();
            vec![
                cell(r.name_any()),
                cell(short(&r.spec.canary_revision)),
                cell(&r.spec.tier.name),
                colored(p.as_str(), phase_color(p), style),
                cell(
                    st.and_then(|s| s.ended_at.as_ref())
                        .map(|t| format!("{} ago", ago(t, now)))
                        .unwrap_or_else(|| "-".into()),
                ),
                cell(
                    st.and_then(|s| s.reason.clone())
                        .unwrap_or_else(|| "-".into()),
                ),
            ]
        })
        .collect();
    table(
        &["RUN", "REVISION", "TIER", "OUTCOME", "ENDED", "REASON"],
        &rows,
    )
}

/// The detailed view of one Deployment: policy and revisions, the run in flight (tier and
/// why, steps, time left, latest sample, approvals, commands) or the last outcome with its
/// evidence, and the history of runs.
pub fn render_detail(v: &DeploymentRollouts, now: Timestamp, style: Style) -> String {
    let mut l = Lines {
        out: String::new(),
        style,
    };
    l.field("Deployment", &format!("{}/{}", v.namespace, v.deployment));
    let policy = match v.policies.as_slice() {
        [] => "none selects it (not governed)".to_string(),
        [p] => p.clone(),
        many => l.paint(
            ansi::RED,
            &format!(
                "conflict: selected by {}; rollguard leaves it alone",
                many.join(", ")
            ),
        ),
    };
    l.field("Policy", &policy);
    l.field(
        "Stable",
        v.stable_revision.as_deref().unwrap_or("not adopted yet"),
    );
    if let Some(f) = &v.failed_revision {
        l.field("Failed", f);
    }
    l.out.push('\n');
    match (&v.current, v.last()) {
        (Some(run), _) => current_run(&mut l, v, run, now),
        (None, Some(run)) => {
            l.field("Run", "none in flight");
            finished_run(&mut l, v, run, now);
        }
        (None, None) => l.field("Run", "none yet: a new pod template starts one"),
    }
    if !v.history.is_empty() {
        l.out.push('\n');
        l.out.push_str("History:\n");
        let t = history_table(v, now, style);
        l.out.push_str(&t);
    }
    l.out
}

#[cfg(test)]
mod tests;
