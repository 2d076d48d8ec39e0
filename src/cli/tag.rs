//! `tag`: prints the `rollguard.dev/change-origin` value of a change, derived from its
//! commit trailers, as a bare value or as a line CI can paste into Helm, kustomize or
//! kubectl. Reads commits with `git log`; the judging is in [`super::trailers`].

use std::io::Read as _;
use std::path::PathBuf;
use std::process::Command;

use serde::Serialize;

use super::errors::CliError;
use super::trailers::{ASSISTANTS_ENV, Assistants, Credit, Origin, classify};
use crate::names::CHANGE_ORIGIN;

/// What `tag` prints.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TagFormat {
    /// The value: `ai-assisted`.
    #[default]
    Value,
    /// `rollguard.dev/change-origin=ai-assisted`.
    Annotation,
    /// A Helm argument: `--set-string podAnnotations.rollguard\.dev/change-origin=ai-assisted`.
    Helm,
    /// A kustomize command: `kustomize edit add annotation --force rollguard.dev/change-origin:ai-assisted`.
    Kustomize,
    /// A JSON merge patch for the pod template (`kubectl patch --type merge -p ...`).
    Patch,
    /// The value with the commits and the trailers that decided it.
    Json,
}

/// `tag` arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct TagArgs {
    /// The commit (or range `A..B`: the strongest origin of its commits) to read.
    #[arg(long = "from-git", value_name = "REV", default_value = "HEAD")]
    pub from_git: String,
    /// Read one commit message from this file (`-` for stdin) instead of git.
    #[arg(long, value_name = "FILE", conflicts_with = "from_git")]
    pub message_file: Option<PathBuf>,
    /// The git repository (default: the current directory).
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub repo: PathBuf,
    /// Comma-separated assistant patterns (`*` wildcard; with `@` an email, else a name);
    /// `default` stands for the built-in list.
    #[arg(long, env = ASSISTANTS_ENV, value_name = "LIST")]
    pub assistants: Option<String>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = TagFormat::Value)]
    pub format: TagFormat,
    /// The Helm values path of the pod annotations (for `-o helm`).
    #[arg(long, default_value = "podAnnotations")]
    pub helm_path: String,
    /// Do not explain the result on stderr.
    #[arg(short, long)]
    pub quiet: bool,
}

/// One commit's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct CommitOrigin {
    pub commit: String,
    pub subject: String,
    pub origin: Origin,
    pub credits: Vec<Credit>,
}

/// The verdict over all commits read.
#[derive(Debug, Clone, Serialize)]
pub struct TagResult {
    pub origin: Origin,
    pub commits: Vec<CommitOrigin>,
}

/// Judges commit messages (`(id, message)`).
pub fn judge(messages: &[(String, String)], assistants: &Assistants) -> TagResult {
    let commits: Vec<CommitOrigin> = messages
        .iter()
        .map(|(id, msg)| {
            let (origin, credits) = classify(msg, assistants);
            CommitOrigin {
                commit: id.clone(),
                subject: msg.lines().next().unwrap_or_default().to_string(),
                origin,
                credits,
            }
        })
        .collect();
    let origin = commits
        .iter()
        .map(|c| c.origin)
        .max()
        .unwrap_or(Origin::Human);
    TagResult { origin, commits }
}

/// The line `tag` prints for a result.
pub fn format_line(
    result: &TagResult,
    format: TagFormat,
    helm_path: &str,
) -> Result<String, CliError> {
    let v = result.origin.as_str();
    Ok(match format {
        TagFormat::Value => v.to_string(),
        TagFormat::Annotation => format!("{CHANGE_ORIGIN}={v}"),
        TagFormat::Helm => {
            let key = CHANGE_ORIGIN.replace('.', "\\.");
            let path = helm_path.trim_end_matches('.');
            format!("--set-string {path}.{key}={v}")
        }
        TagFormat::Kustomize => {
            format!("kustomize edit add annotation --force {CHANGE_ORIGIN}:{v}")
        }
        TagFormat::Patch => serde_json::json!({
            "spec": {"template": {"metadata": {"annotations": {CHANGE_ORIGIN: v}}}}
        })
        .to_string(),
        TagFormat::Json => serde_json::to_string_pretty(result)
            .map_err(|e| CliError::Other(format!("encoding the result: {e}")))?,
    })
}

/// Why: one line naming the trailer that decided, for stderr.
pub fn explain(result: &TagResult) -> String {
    let decisive = result
        .commits
        .iter()
        .filter(|c| c.origin == result.origin)
        .find_map(|c| {
            c.credits
                .iter()
                .find(|k| k.origin == result.origin)
                .map(|k| (c, k))
        });
    match decisive {
        Some((c, k)) => format!(
            "{}: {} has the trailer `{}: {}` ({} matches {:?})",
            result.origin,
            if c.commit == "-" {
                "the message".to_string()
            } else {
                format!("commit {}", short(&c.commit))
            },
            k.trailer.key,
            k.trailer.value,
            k.trailer.value,
            k.assistant
        ),
        None => format!(
            "human: no Co-authored-by/Assisted-by/Generated-by trailer names a known AI assistant in {} commit(s)",
            result.commits.len()
        ),
    }
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// Runs `tag`.
pub fn run(args: &TagArgs) -> Result<(), CliError> {
    let assistants = match &args.assistants {
        Some(list) => {
            Assistants::parse(list).map_err(|e| CliError::Usage(format!("--assistants: {e}")))?
        }
        None => Assistants::default(),
    };
    let messages = match &args.message_file {
        Some(path) => vec![("-".to_string(), read_message(path)?)],
        None => git_messages(&args.repo, &args.from_git)?,
    };
    let result = judge(&messages, &assistants);
    println!("{}", format_line(&result, args.format, &args.helm_path)?);
    if !args.quiet && args.format != TagFormat::Json {
        eprintln!("{}", explain(&result));
    }
    Ok(())
}

fn read_message(path: &PathBuf) -> Result<String, CliError> {
    if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| CliError::Other(format!("reading the commit message from stdin: {e}")))?;
        Ok(s)
    } else {
        std::fs::read_to_string(path).map_err(|e| {
            CliError::Other(format!("reading {}: {e}; check the path", path.display()))
        })
    }
}

/// Commit messages from `git log`: one commit, or every commit of a range.
fn git_messages(repo: &PathBuf, rev: &str) -> Result<Vec<(String, String)>, CliError> {
    let mut cmd = Command::new("git");
    cmd.arg("-C")
        .arg(repo)
        .args(["log", "--format=%H%x00%B%x1e"]);
    if !rev.contains("..") {
        cmd.arg("-1");
    }
    let out = cmd.arg(rev).arg("--").output().map_err(|e| {
        CliError::Other(format!(
            "cannot run git ({e}): install git or pass --message-file"
        ))
    })?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(CliError::Other(format!(
            "git log {rev} failed in {}: {}; pass a commit that exists (--from-git REV) or --repo DIR",
            repo.display(),
            err.lines().next().unwrap_or("unknown error")
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let commits: Vec<(String, String)> = text
        .split('\x1e')
        .filter_map(|rec| {
            let (id, msg) = rec.trim_start_matches('\n').split_once('\0')?;
            Some((id.to_string(), msg.to_string()))
        })
        .collect();
    if commits.is_empty() {
        return Err(CliError::Other(format!(
            "git log {rev} found no commits; pass a commit or a non-empty range"
        )));
    }
    Ok(commits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(origin: Origin) -> TagResult {
        TagResult {
            origin,
            commits: vec![],
        }
    }

    #[test]
    fn formats_for_ci() {
        let r = result(Origin::AiAssisted);
        let line = |f| format_line(&r, f, "podAnnotations").unwrap_or_default();
        assert_eq!(line(TagFormat::Value), "ai-assisted");
        assert_eq!(
            line(TagFormat::Annotation),
            "rollguard.dev/change-origin=ai-assisted"
        );
        assert_eq!(
            line(TagFormat::Helm),
            r"--set-string podAnnotations.rollguard\.dev/change-origin=ai-assisted"
        );
        assert_eq!(
            line(TagFormat::Kustomize),
            "kustomize edit add annotation --force rollguard.dev/change-origin:ai-assisted"
        );
        assert_eq!(
            line(TagFormat::Patch),
            r#"{"spec":{"template":{"metadata":{"annotations":{"rollguard.dev/change-origin":"ai-assisted"}}}}}"#
        );
    }

    #[test]
    fn a_range_takes_the_strongest_origin() {
        let msgs = vec![
            (
                "a".to_string(),
                "Fix typo\n\nSigned-off-by: Ann <ann@example.com>\n".to_string(),
            ),
            (
                "b".to_string(),
                "Add flag\n\nCo-authored-by: Claude <noreply@anthropic.com>\n".to_string(),
            ),
            ("c".to_string(), "Docs\n".to_string()),
        ];
        let r = judge(&msgs, &Assistants::default());
        assert_eq!(r.origin, Origin::AiAssisted);
        assert_eq!(
            explain(&r),
            "ai-assisted: commit b has the trailer `Co-authored-by: Claude <noreply@anthropic.com>` (Claude <noreply@anthropic.com> matches \"noreply@anthropic.com\")"
        );
        let none = judge(&msgs[..1], &Assistants::default());
        assert_eq!(none.origin, Origin::Human);
    }
}
