//! Where a change came from, read from its commit trailers: a `Co-authored-by:`,
//! `Assisted-by:` or `Generated-by:` trailer naming a known AI assistant makes the change
//! `ai-assisted` (or `ai-generated`). Only trailers count, found the way git finds them (the
//! last paragraph, never the subject), so an assistant mentioned in the body or a human who
//! shares an assistant's first name does not tag a change. Pure; `tag` runs git.
//!
//! The block rule is git's with the three credit keys configured as trailers
//! (`trailer.<key>.key`): a last paragraph counts when all its lines are trailers, or when
//! at least a quarter are and one of them is git-generated (`Signed-off-by`) or a credit.

use std::fmt;

/// The `rollguard.dev/change-origin` values, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub enum Origin {
    /// No trailer names an assistant.
    #[serde(rename = "human")]
    Human,
    /// An assistant co-authored or assisted.
    #[serde(rename = "ai-assisted")]
    AiAssisted,
    /// An assistant generated the change.
    #[serde(rename = "ai-generated")]
    AiGenerated,
}

impl Origin {
    /// The annotation value.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Human => "human",
            Origin::AiAssisted => "ai-assisted",
            Origin::AiGenerated => "ai-generated",
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One trailer, continuation lines unfolded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Trailer {
    pub key: String,
    pub value: String,
}

/// Git's own trailers and the credit keys, which let a paragraph with some prose still
/// count as trailers (as git does for trailers configured with `trailer.<key>.key`).
const RECOGNISED: &[&str] = &[
    "signed-off-by:",
    "(cherry picked from commit ",
    "co-authored-by:",
    "assisted-by:",
    "generated-by:",
];

/// The trailers of a commit message, as `git interpret-trailers --parse` finds them: the
/// last paragraph, if it is not the subject and consists of `Key: value` lines (with
/// indented continuation lines), or at least a quarter of them with a recognised one.
pub fn trailers(message: &str) -> Vec<Trailer> {
    let lines: Vec<&str> = message.lines().filter(|l| !l.starts_with('#')).collect();
    // Drop trailing blank lines; the subject paragraph ends at the first blank line.
    let end = lines
        .iter()
        .rposition(|l| !l.trim().is_empty())
        .map_or(0, |i| i + 1);
    let subject_end = lines
        .iter()
        .position(|l| l.trim().is_empty())
        .unwrap_or(lines.len());
    if end <= subject_end {
        return vec![];
    }
    let start = lines[..end]
        .iter()
        .rposition(|l| l.trim().is_empty())
        .map_or(0, |i| i + 1);
    if start <= subject_end {
        return vec![];
    }
    let block = &lines[start..end];
    let mut out: Vec<Trailer> = vec![];
    let (mut trailer_lines, mut other_lines, mut recognised) = (0usize, 0usize, false);
    let mut last_was_trailer = false;
    for line in block {
        if line.starts_with([' ', '\t']) && last_was_trailer {
            if let Some(t) = out.last_mut() {
                t.value.push(' ');
                t.value.push_str(line.trim());
            }
            continue;
        }
        let lower = line.to_ascii_lowercase();
        if RECOGNISED.iter().any(|p| lower.starts_with(p)) {
            recognised = true;
        }
        match split_trailer(line) {
            Some(t) => {
                trailer_lines += 1;
                out.push(t);
                last_was_trailer = true;
            }
            None => {
                other_lines += 1;
                last_was_trailer = false;
            }
        }
    }
    let is_block =
        trailer_lines > 0 && (other_lines == 0 || (recognised && trailer_lines * 3 >= other_lines));
    if is_block { out } else { vec![] }
}

/// `Key: value` with a key of letters, digits and dashes (spaces allowed before the colon).
fn split_trailer(line: &str) -> Option<Trailer> {
    let (key, value) = line.split_once(':')?;
    let key = key.trim_end();
    let ok = !key.is_empty()
        && !key.starts_with('-')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    ok.then(|| Trailer {
        key: key.to_string(),
        value: value.trim().to_string(),
    })
}

/// The trailer keys that credit an assistant, and what they mean.
fn key_origin(key: &str) -> Option<Origin> {
    match key.to_ascii_lowercase().as_str() {
        "co-authored-by" | "assisted-by" => Some(Origin::AiAssisted),
        "generated-by" => Some(Origin::AiGenerated),
        _ => None,
    }
}

/// The built-in assistants. An entry with `@` matches the trailer's email, any other entry
/// its name; `*` matches any run of characters; case is ignored. Emails are the
/// assistants' own no-reply or bot addresses, so a person at the same company is not
/// mistaken for one; names only judge trailers that carry no email
/// (`Assisted-by: Claude:claude-opus-4`, `Generated-by: GitHub Copilot`).
///
/// GitHub accounts are listed by their exact login in the older no-reply form,
/// `login@users.noreply.github.com`; the newer `ID+login@users.noreply.github.com` matches
/// the same entry (see [`email_candidates`]). No wildcard: a person whose login merely
/// contains an assistant's (`copilot-fan`, `cursor` without `[bot]`) is a person.
pub const DEFAULT_ASSISTANTS: &[&str] = &[
    // Emails.
    "noreply@anthropic.com",
    "copilot@users.noreply.github.com",
    "copilot-swe-agent[bot]@users.noreply.github.com",
    "devin-ai-integration[bot]@users.noreply.github.com",
    "chatgpt-codex-connector[bot]@users.noreply.github.com",
    "google-labs-jules[bot]@users.noreply.github.com",
    "gemini-code-assist[bot]@users.noreply.github.com",
    "amazon-q-developer[bot]@users.noreply.github.com",
    "cursor[bot]@users.noreply.github.com",
    "cursoragent@cursor.com",
    "*@aider.chat",
    // Names, for trailers without an email.
    "claude",
    "claude code",
    "claude opus*",
    "claude sonnet*",
    "claude haiku*",
    "claude-*",
    "copilot",
    "github copilot",
    "copilot agent",
    "chatgpt",
    "openai codex",
    "codex",
    "gpt-*",
    "gemini",
    "gemini code assist",
    "gemini-*",
    "jules",
    "cursor",
    "cursor agent",
    "devin",
    "aider",
    "amazon q",
    "amazon q developer",
    "windsurf",
    "codeium",
    "tabnine",
    "sourcegraph cody",
    "junie",
];

/// The environment variable that replaces the assistant list (`tag --assistants`).
pub const ASSISTANTS_ENV: &str = "ROLLGUARD_AI_ASSISTANTS";

/// Which identities count as AI assistants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assistants {
    patterns: Vec<String>,
}

impl Default for Assistants {
    fn default() -> Self {
        Assistants {
            patterns: DEFAULT_ASSISTANTS.iter().map(|p| p.to_string()).collect(),
        }
    }
}

impl Assistants {
    /// Parses a comma-separated list; the entry `default` stands for the built-in list, so
    /// `default,*@ai.example.com` extends it.
    pub fn parse(list: &str) -> Result<Assistants, String> {
        let mut patterns = vec![];
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if entry.eq_ignore_ascii_case("default") {
                patterns.extend(DEFAULT_ASSISTANTS.iter().map(|p| p.to_string()));
            } else if entry.chars().all(|c| c == '*' || c == '@') {
                return Err(format!(
                    "assistant pattern {entry:?} would match everyone: name an email or a name"
                ));
            } else {
                patterns.push(entry.to_string());
            }
        }
        if patterns.is_empty() {
            return Err("the assistant list is empty: give patterns, or `default`".into());
        }
        Ok(Assistants { patterns })
    }

    /// The pattern naming this trailer value's identity, if any.
    pub fn matching(&self, value: &str) -> Option<&str> {
        let (name, email) = identity(value);
        match email {
            Some(email) => {
                let candidates = email_candidates(&email);
                self.patterns
                    .iter()
                    .filter(|p| p.contains('@'))
                    .find(|p| candidates.iter().any(|c| glob(p, c)))
            }
            None => {
                let candidates = name_candidates(&name);
                self.patterns
                    .iter()
                    .filter(|p| !p.contains('@'))
                    .find(|p| candidates.iter().any(|c| glob(p, c)))
            }
        }
        .map(String::as_str)
    }
}

/// `Name <email>` into its parts; a bare address is an email.
fn identity(value: &str) -> (String, Option<String>) {
    if let Some((name, rest)) = value.split_once('<')
        && let Some((email, _)) = rest.split_once('>')
    {
        return (name.trim().to_string(), Some(email.trim().to_lowercase()));
    }
    let v = value.trim();
    if v.contains('@') && !v.contains(char::is_whitespace) {
        (String::new(), Some(v.to_lowercase()))
    } else {
        (v.to_string(), None)
    }
}

/// GitHub's no-reply domain, lowercase: a commit made on github.com credits
/// `ID+login@users.noreply.github.com` (accounts since July 2017) or
/// `login@users.noreply.github.com` (older ones).
pub const GITHUB_NOREPLY: &str = "@users.noreply.github.com";

/// The (lowercase) email as written and, for a GitHub no-reply address in its
/// `ID+login@` form, the same account's `login@` form, so that one entry per account
/// matches both. The ID must be digits: `abc+copilot@` is not GitHub's and stays as it is.
fn email_candidates(email: &str) -> Vec<String> {
    let mut out = vec![email.to_string()];
    if let Some(local) = email.strip_suffix(GITHUB_NOREPLY)
        && let Some((id, login)) = local.split_once('+')
        && !id.is_empty()
        && id.bytes().all(|b| b.is_ascii_digit())
        && !login.is_empty()
    {
        out.push(format!("{login}{GITHUB_NOREPLY}"));
    }
    out
}

/// The name as written, and without a model suffix: `Claude:claude-opus-4` and
/// `aider (gpt-4o)` are Claude and aider.
fn name_candidates(name: &str) -> Vec<String> {
    let full = name.trim().to_lowercase();
    let mut out = vec![full.clone()];
    let base = full
        .split([':', '('])
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    if !base.is_empty() && base != full {
        out.push(base);
    }
    if let Some((_, model)) = full.split_once(':') {
        out.push(model.trim().to_string());
    }
    out
}

/// Case-insensitive whole-string match with `*` for any run of characters.
fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let t: Vec<char> = text.to_lowercase().chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && p[pi] != '*' && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// A trailer that credits an assistant.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Credit {
    pub trailer: Trailer,
    /// The pattern that recognised the assistant.
    pub assistant: String,
    pub origin: Origin,
}

/// The origin of one commit message and the trailers that decided it.
pub fn classify(message: &str, assistants: &Assistants) -> (Origin, Vec<Credit>) {
    let credits: Vec<Credit> = trailers(message)
        .into_iter()
        .filter_map(|t| {
            let origin = key_origin(&t.key)?;
            let assistant = assistants.matching(&t.value)?.to_string();
            Some(Credit {
                trailer: t,
                assistant,
                origin,
            })
        })
        .collect();
    let origin = credits
        .iter()
        .map(|c| c.origin)
        .max()
        .unwrap_or(Origin::Human);
    (origin, credits)
}

#[cfg(test)]
mod tests;
