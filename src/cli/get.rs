//! `get`: the table of governed Deployments (runs in flight, last outcome) or the detailed
//! view of one, once or live (`--watch`, from watches: redrawn in place on a terminal,
//! appended when piped), or as JSON/YAML for scripts.

use std::io::Write as _;
use std::time::Duration;

use jiff::Timestamp;

use super::cluster::{KubeArgs, Scope, Session};
use super::errors::CliError;
use super::feed::{Feed, FeedScope};
use super::render::{Style, render_detail, render_table};
use super::view::{self, DeploymentRollouts};

/// Machine-readable output.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Json,
    Yaml,
}

/// `get` arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct GetArgs {
    /// One Deployment, shown in detail (default: a table of all governed Deployments).
    pub deployment: Option<String>,
    /// List governed Deployments in all namespaces.
    #[arg(short = 'A', long, conflicts_with = "deployment")]
    pub all_namespaces: bool,
    /// Keep watching and redraw on every change.
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// Print JSON or YAML instead of text.
    #[arg(short = 'o', long = "output", value_enum)]
    pub output: Option<Output>,
    #[command(flatten)]
    pub kube: KubeArgs,
}

/// What one frame shows.
enum Frame {
    One(Box<DeploymentRollouts>),
    Many(Vec<DeploymentRollouts>),
}

/// Drops `metadata.managedFields` (as kubectl does unless asked): noise for scripts.
fn without_managed_fields(mut v: DeploymentRollouts) -> DeploymentRollouts {
    for r in v.current.iter_mut().chain(v.history.iter_mut()) {
        r.metadata.managed_fields = None;
    }
    v
}

fn encode<T: serde::Serialize>(value: &T, output: Output) -> Result<String, CliError> {
    match output {
        Output::Json => serde_json::to_string_pretty(value)
            .map(|s| s + "\n")
            .map_err(|e| CliError::Other(format!("encoding JSON: {e}"))),
        Output::Yaml => serde_yaml_ng::to_string(value)
            .map(|s| format!("---\n{s}"))
            .map_err(|e| CliError::Other(format!("encoding YAML: {e}"))),
    }
}

fn draw(
    frame: &Frame,
    args: &GetArgs,
    namespace: &str,
    now: Timestamp,
    style: Style,
) -> Result<String, CliError> {
    match (frame, args.output) {
        (Frame::One(v), Some(o)) => encode(&without_managed_fields((**v).clone()), o),
        (Frame::Many(vs), Some(o)) => {
            let vs: Vec<DeploymentRollouts> =
                vs.iter().cloned().map(without_managed_fields).collect();
            encode(&vs, o)
        }
        (Frame::One(v), None) => Ok(render_detail(v, now, style)),
        (Frame::Many(vs), None) if vs.is_empty() => Ok(if args.all_namespaces {
            "No governed Deployments found in any namespace.\n".to_string()
        } else {
            format!("No governed Deployments found in namespace {namespace}.\n")
        }),
        (Frame::Many(vs), None) => Ok(render_table(vs, args.all_namespaces, now, style)),
    }
}

/// A frame drawn over the previous one: the first clears the screen; later ones go home
/// and overwrite line by line, clearing each line's tail and what is left below, so the
/// view updates in place without flicker.
fn redraw(text: &str, first: bool) -> String {
    let mut out = String::from(if first { "\x1b[H\x1b[2J" } else { "\x1b[H" });
    for line in text.lines() {
        out.push_str(line);
        out.push_str("\x1b[K\n");
    }
    out.push_str("\x1b[J");
    out
}

/// Runs `get`.
pub async fn run(session: &Session, args: &GetArgs) -> Result<(), CliError> {
    let style = Style::for_stdout();
    let ns = session.namespace.clone();
    // The first frame comes from plain reads, so the errors are the specific ones (no such
    // Deployment, not governed) before any watch starts.
    let first = match &args.deployment {
        Some(name) => Frame::One(Box::new(session.rollouts(name).await?.1)),
        None => {
            let scope = if args.all_namespaces {
                Scope::All
            } else {
                Scope::Namespace(ns.clone())
            };
            let ds = session.deployments(&scope).await?;
            let ps = session.policies(&scope).await?;
            let rs = session.runs(&scope, None).await?;
            Frame::Many(view::assemble(&ds, &ps, &rs))
        }
    };
    if !args.watch {
        print!("{}", draw(&first, args, &ns, Timestamp::now(), style)?);
        return Ok(());
    }
    watch(session, args, style).await
}

async fn watch(session: &Session, args: &GetArgs, style: Style) -> Result<(), CliError> {
    let ns = session.namespace.clone();
    let scope = FeedScope {
        namespace: (!args.all_namespaces).then(|| ns.clone()),
        deployment: args.deployment.clone(),
    };
    let mut feed = Feed::start(session, &scope);
    feed.changed().await?;
    // On a terminal, redraw every second too: the time left in a step counts down.
    let in_place = style.bars && args.output.is_none();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last = String::new();
    loop {
        let frame = match &args.deployment {
            Some(name) => match feed.view_of(&ns, name) {
                Some(v) => Frame::One(Box::new(v)),
                None => {
                    return Err(CliError::NoSuchDeployment {
                        namespace: ns.clone(),
                        name: name.clone(),
                    });
                }
            },
            None => Frame::Many(feed.views()),
        };
        let text = draw(&frame, args, &ns, Timestamp::now(), style)?;
        if text != last {
            let mut out = std::io::stdout().lock();
            let written = if in_place {
                write!(out, "{}", redraw(&text, last.is_empty()))
            } else if last.is_empty() || args.output.is_some() {
                write!(out, "{text}")
            } else {
                write!(out, "\n{text}")
            };
            if written.and_then(|_| out.flush()).is_err() {
                // The reader went away (e.g. `| head`): nothing more to do.
                return Ok(());
            }
            last = text;
        }
        tokio::select! {
            changed = feed.changed() => changed?,
            _ = tick.tick(), if in_place => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_redrawn_in_place() {
        assert_eq!(
            redraw("a\nbb\n", true),
            "\x1b[H\x1b[2Ja\x1b[K\nbb\x1b[K\n\x1b[J"
        );
        assert_eq!(redraw("a\n", false), "\x1b[Ha\x1b[K\n\x1b[J");
    }
}
