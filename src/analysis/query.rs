//! PromQL query templates for the `requests` and `errors` queries of an analysis policy.
//! Owns parsing `{{variable}}` placeholders, checking each one sits where it cannot inject PromQL,
//! rendering with values escaped as PromQL string literals, and a small PromQL string-literal lexer.

use crate::api::quantity::{prometheus_range, prometheus_range_within};
use std::collections::BTreeSet;
use std::error::Error;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Whether a variable is substituted as a string or as a duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VariableKind {
    /// Substituted, escaped, inside a double-quoted PromQL string literal.
    String,
    /// Substituted outside string literals as a PromQL duration in whole seconds ("300s").
    Duration,
}

/// A template variable, written `{{name}}` (or `{{ name }}`) in a query template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Variable {
    /// `namespace`: namespace of the governed Deployment.
    Namespace,
    /// `deployment`: name of the governed Deployment.
    Deployment,
    /// `canary`: name of the canary Deployment (`<deployment>-canary`).
    Canary,
    /// `stable`: name of the stable Deployment (the governed Deployment's name).
    Stable,
    /// `workload`: the Deployment being measured (canary or stable, depending on the query).
    Workload,
    /// `track`: `"canary"` or `"stable"`, the track being measured.
    Track,
    /// `service`: name of the Service in front of the Deployment.
    Service,
    /// `route`: name of the traffic route (e.g. an `HTTPRoute`).
    Route,
    /// `revision`: the `pod-template-hash` label of the pods being measured (the canary's
    /// for the canary query, the stable ReplicaSet's for the stable one), so a query can
    /// count only the revision on trial.
    Revision,
    /// `interval`: the analysis interval, as a duration.
    Interval,
    /// `elapsed`: time since the current step started, as a duration.
    Elapsed,
}

impl Variable {
    /// Every variable, in declaration order.
    pub const ALL: [Variable; 11] = [
        Variable::Namespace,
        Variable::Deployment,
        Variable::Canary,
        Variable::Stable,
        Variable::Workload,
        Variable::Track,
        Variable::Service,
        Variable::Route,
        Variable::Revision,
        Variable::Interval,
        Variable::Elapsed,
    ];

    /// The name used between the braces in a template.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Variable::Namespace => "namespace",
            Variable::Deployment => "deployment",
            Variable::Canary => "canary",
            Variable::Stable => "stable",
            Variable::Workload => "workload",
            Variable::Track => "track",
            Variable::Service => "service",
            Variable::Route => "route",
            Variable::Revision => "revision",
            Variable::Interval => "interval",
            Variable::Elapsed => "elapsed",
        }
    }

    /// Whether the variable is a string or a duration.
    #[must_use]
    pub const fn kind(self) -> VariableKind {
        match self {
            Variable::Interval | Variable::Elapsed => VariableKind::Duration,
            _ => VariableKind::String,
        }
    }

    /// Looks a variable up by its template name (case-sensitive).
    #[must_use]
    pub fn from_name(name: &str) -> Option<Variable> {
        Variable::ALL.into_iter().find(|v| v.name() == name)
    }
}

impl fmt::Display for Variable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The quoting of a PromQL string literal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Quote {
    /// `"..."`, with backslash escapes.
    Double,
    /// `'...'`, with backslash escapes.
    Single,
    /// `` `...` ``, raw, no escapes.
    Backtick,
}

impl Quote {
    /// The quote character.
    #[must_use]
    pub const fn as_char(self) -> char {
        match self {
            Quote::Double => '"',
            Quote::Single => '\'',
            Quote::Backtick => '`',
        }
    }

    const fn from_byte(b: u8) -> Option<Quote> {
        match b {
            b'"' => Some(Quote::Double),
            b'\'' => Some(Quote::Single),
            b'`' => Some(Quote::Backtick),
            _ => None,
        }
    }
}

impl fmt::Display for Quote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Quote::Double => "double-quoted string",
            Quote::Single => "single-quoted string",
            Quote::Backtick => "backtick raw string",
        })
    }
}

/// Errors from parsing a query template or lexing a rendered query.
/// Every variant names the offending variable or construct and its byte offset.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryError {
    /// The template is empty or only whitespace.
    Empty,
    /// `{{name}}` with a name that is not a known variable.
    UnknownVariable {
        /// The name between the braces, trimmed of spaces.
        name: String,
        /// Byte offset of the opening `{{`.
        offset: usize,
    },
    /// `{{` without a matching `}}` on the same line and in the same token.
    UnterminatedPlaceholder {
        /// Byte offset of the opening `{{`.
        offset: usize,
    },
    /// A string variable outside any string literal (in PromQL code or a comment),
    /// where its value could inject PromQL.
    StringVariableOutsideString {
        /// The variable.
        variable: Variable,
        /// Byte offset of the opening `{{`.
        offset: usize,
        /// Whether the placeholder is inside a `#` comment.
        in_comment: bool,
    },
    /// A string variable inside a single-quoted or backtick string; only double-quoted strings are supported.
    StringVariableInUnsupportedString {
        /// The variable.
        variable: Variable,
        /// Byte offset of the opening `{{`.
        offset: usize,
        /// The quoting of the enclosing literal.
        quote: Quote,
    },
    /// A duration variable inside a string literal.
    DurationVariableInString {
        /// The variable.
        variable: Variable,
        /// Byte offset of the opening `{{`.
        offset: usize,
        /// The quoting of the enclosing literal.
        quote: Quote,
    },
    /// A string literal without its closing quote (or, for `"` and `'`, with a raw newline).
    UnterminatedString {
        /// Byte offset of the opening quote.
        offset: usize,
        /// The quoting of the literal.
        quote: Quote,
    },
    /// A backslash escape that PromQL rejects.
    InvalidEscape {
        /// Byte offset of the backslash.
        offset: usize,
        /// The escape sequence as written, up to and including the offending character.
        sequence: String,
        /// Why it is invalid.
        reason: &'static str,
    },
    /// A string literal whose `\x` or octal escapes decode to invalid UTF-8.
    InvalidUtf8 {
        /// Byte offset of the opening quote.
        offset: usize,
    },
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("query template is empty"),
            Self::UnknownVariable { name, offset } => {
                write!(
                    f,
                    "unknown template variable {name:?} at byte {offset}; known variables: "
                )?;
                for (i, v) in Variable::ALL.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    f.write_str(v.name())?;
                }
                Ok(())
            }
            Self::UnterminatedPlaceholder { offset } => {
                write!(
                    f,
                    "unterminated \"{{{{\" at byte {offset}: expected \"}}}}\""
                )
            }
            Self::StringVariableOutsideString {
                variable,
                offset,
                in_comment,
            } => {
                let place = if *in_comment {
                    "in a comment"
                } else {
                    "outside a string literal"
                };
                write!(
                    f,
                    "string variable {{{{{variable}}}}} at byte {offset} is {place}; \
                     string variables may only appear inside double-quoted string literals, \
                     e.g. namespace=\"{{{{{variable}}}}}\""
                )
            }
            Self::StringVariableInUnsupportedString {
                variable,
                offset,
                quote,
            } => write!(
                f,
                "string variable {{{{{variable}}}}} at byte {offset} is inside a {quote}; \
                 only double-quoted string literals are supported"
            ),
            Self::DurationVariableInString {
                variable,
                offset,
                quote,
            } => write!(
                f,
                "duration variable {{{{{variable}}}}} at byte {offset} is inside a {quote}; \
                 duration variables must be used outside string literals, e.g. [{{{{{variable}}}}}]"
            ),
            Self::UnterminatedString { offset, quote } => {
                write!(f, "unterminated {quote} starting at byte {offset}")
            }
            Self::InvalidEscape {
                offset,
                sequence,
                reason,
            } => write!(
                f,
                "invalid escape sequence {sequence:?} at byte {offset}: {reason}"
            ),
            Self::InvalidUtf8 { offset } => write!(
                f,
                "string literal starting at byte {offset} decodes to invalid UTF-8"
            ),
        }
    }
}

impl Error for QueryError {}

/// The track a query measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Track {
    /// The canary Deployment.
    Canary,
    /// The stable Deployment (the baseline).
    Stable,
}

impl Track {
    /// `"canary"` or `"stable"`, the value of the `track` variable.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Track::Canary => "canary",
            Track::Stable => "stable",
        }
    }
}

/// Values for the template variables. String values are raw (unescaped);
/// [`Template::render`] escapes them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Vars {
    /// Value of `{{namespace}}`.
    pub namespace: String,
    /// Value of `{{deployment}}`.
    pub deployment: String,
    /// Value of `{{canary}}`.
    pub canary: String,
    /// Value of `{{stable}}`.
    pub stable: String,
    /// Value of `{{workload}}`.
    pub workload: String,
    /// Value of `{{track}}`.
    pub track: String,
    /// Value of `{{service}}`.
    pub service: String,
    /// Value of `{{route}}`.
    pub route: String,
    /// Value of `{{revision}}`: the measured pods' `pod-template-hash`.
    pub revision: String,
    /// Value of `{{interval}}`, rendered like [`prometheus_range`].
    pub interval: Duration,
    /// Value of `{{elapsed}}`, rendered like [`prometheus_range_within`] (rounded down, so
    /// the range stays inside the time it measures).
    pub elapsed: Duration,
}

impl Vars {
    /// Variables for measuring `track` of the Deployment `deployment` in `namespace`:
    /// `canary` is `<deployment>-canary`, `stable` is `deployment`, `workload` is the
    /// one of the two being measured and `track` is its name. `service`, `route`,
    /// `interval` and `elapsed` are left empty/zero for the caller to fill in.
    #[must_use]
    pub fn for_track(track: Track, namespace: &str, deployment: &str) -> Vars {
        let canary = crate::names::canary_name(deployment);
        let workload = match track {
            Track::Canary => canary.clone(),
            Track::Stable => deployment.to_owned(),
        };
        Vars {
            namespace: namespace.to_owned(),
            deployment: deployment.to_owned(),
            canary,
            stable: deployment.to_owned(),
            workload,
            track: track.as_str().to_owned(),
            ..Vars::default()
        }
    }

    /// The raw value of a string variable, or `None` for a duration variable.
    #[must_use]
    pub fn string(&self, variable: Variable) -> Option<&str> {
        let value = match variable {
            Variable::Namespace => &self.namespace,
            Variable::Deployment => &self.deployment,
            Variable::Canary => &self.canary,
            Variable::Stable => &self.stable,
            Variable::Workload => &self.workload,
            Variable::Track => &self.track,
            Variable::Service => &self.service,
            Variable::Route => &self.route,
            Variable::Revision => &self.revision,
            Variable::Interval | Variable::Elapsed => return None,
        };
        Some(value)
    }

    /// The value of a duration variable, or `None` for a string variable.
    #[must_use]
    pub fn duration(&self, variable: Variable) -> Option<Duration> {
        match variable {
            Variable::Interval => Some(self.interval),
            Variable::Elapsed => Some(self.elapsed),
            _ => None,
        }
    }

    /// A duration variable as a PromQL range: `{{interval}}` rounded up, `{{elapsed}}`
    /// rounded down (a canary's counts must not include what its series held before it
    /// started); `None` for a string variable.
    #[must_use]
    pub fn range(&self, variable: Variable) -> Option<String> {
        match variable {
            Variable::Interval => Some(prometheus_range(self.interval)),
            Variable::Elapsed => Some(prometheus_range_within(self.elapsed)),
            _ => None,
        }
    }
}

/// A piece of a template after parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// Template text copied verbatim.
    Text(String),
    /// A placeholder, already checked to be in a safe position for its kind.
    Var(Variable),
}

/// A parsed PromQL query template.
///
/// String variables may only appear inside double-quoted string literals, where
/// [`render`](Template::render) escapes their values; duration variables may only
/// appear outside string literals. Placeholders are expanded in a single pass, so
/// a value containing `{{...}}` is never expanded again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    segments: Vec<Segment>,
    variables: BTreeSet<Variable>,
}

impl Template {
    /// Parses and checks a template such as
    /// `sum(increase(http_requests_total{namespace="{{namespace}}",workload="{{workload}}"}[{{elapsed}}]))`.
    ///
    /// The template is tokenised as PromQL enough to find string literals
    /// (`"..."` and `'...'` with backslash escapes, `` `...` `` raw) and `#`
    /// comments; every `{{` starts a placeholder, wherever it appears.
    ///
    /// # Errors
    ///
    /// [`QueryError::Empty`] for an empty or whitespace-only template; a lexical
    /// error ([`QueryError::UnterminatedString`], [`QueryError::InvalidEscape`],
    /// [`QueryError::InvalidUtf8`]); or a placeholder error
    /// ([`QueryError::UnknownVariable`], [`QueryError::UnterminatedPlaceholder`],
    /// [`QueryError::StringVariableOutsideString`],
    /// [`QueryError::StringVariableInUnsupportedString`],
    /// [`QueryError::DurationVariableInString`]). Lexical errors are reported
    /// first, then the first placeholder error in source order.
    pub fn parse(src: &str) -> Result<Template, QueryError> {
        if src.trim().is_empty() {
            return Err(QueryError::Empty);
        }
        let mut segments = Vec::new();
        let mut variables = BTreeSet::new();
        let mut text = String::new();
        for piece in lex(src)? {
            // Scan the whole piece, quotes included: placeholders cannot contain quotes
            // (that would have ended or started the literal), so they lie inside the content.
            let mut pos = piece.start;
            while let Some(found) = src[pos..piece.end].find("{{") {
                let open = pos + found;
                text.push_str(&src[pos..open]);
                let (variable, close) = placeholder(src, open, piece.end)?;
                check_context(variable, open, piece.kind)?;
                if !text.is_empty() {
                    segments.push(Segment::Text(std::mem::take(&mut text)));
                }
                segments.push(Segment::Var(variable));
                variables.insert(variable);
                pos = close;
            }
            text.push_str(&src[pos..piece.end]);
        }
        if !text.is_empty() {
            segments.push(Segment::Text(text));
        }
        Ok(Template {
            source: src.to_owned(),
            segments,
            variables,
        })
    }

    /// The template source as given to [`parse`](Template::parse).
    #[must_use]
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The set of variables the template uses.
    #[must_use]
    pub fn variables(&self) -> &BTreeSet<Variable> {
        &self.variables
    }

    /// Renders the query: string variables are escaped for a PromQL double-quoted
    /// string (see [`escape_string`]), duration variables become whole seconds with a
    /// minimum of one second ("300s"; see [`Vars::range`] for the rounding).
    #[must_use]
    pub fn render(&self, vars: &Vars) -> String {
        let mut out = String::with_capacity(self.source.len() + 64);
        for segment in &self.segments {
            match segment {
                Segment::Text(text) => out.push_str(text),
                Segment::Var(variable) => {
                    if let Some(value) = vars.string(*variable) {
                        push_escaped(&mut out, value);
                    } else if let Some(value) = vars.range(*variable) {
                        out.push_str(&value);
                    }
                }
            }
        }
        out
    }
}

impl FromStr for Template {
    type Err = QueryError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Template::parse(s)
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// Parses the placeholder whose `{{` is at byte `open`, not looking past byte `limit`.
/// Returns the variable and the byte offset just after the closing `}}`.
fn placeholder(src: &str, open: usize, limit: usize) -> Result<(Variable, usize), QueryError> {
    let inner_start = open + 2;
    let rest = &src[inner_start..limit];
    // A placeholder ends at the first "}}"; another "{{" or a line break first means it is unterminated.
    let close = rest.find("}}");
    let stop = [rest.find("{{"), rest.find(['\n', '\r'])]
        .into_iter()
        .flatten()
        .min();
    let Some(close) = close.filter(|&c| stop.is_none_or(|s| c < s)) else {
        return Err(QueryError::UnterminatedPlaceholder { offset: open });
    };
    let name = rest[..close].trim_matches([' ', '\t']);
    let Some(variable) = Variable::from_name(name) else {
        return Err(QueryError::UnknownVariable {
            name: name.to_owned(),
            offset: open,
        });
    };
    Ok((variable, inner_start + close + 2))
}

/// Checks that `variable`, with its placeholder at byte `offset`, may appear in a piece of kind `kind`.
fn check_context(variable: Variable, offset: usize, kind: PieceKind) -> Result<(), QueryError> {
    match (variable.kind(), kind) {
        (VariableKind::String, PieceKind::Literal(Quote::Double))
        | (VariableKind::Duration, PieceKind::Code | PieceKind::Comment) => Ok(()),
        (VariableKind::String, PieceKind::Code | PieceKind::Comment) => {
            Err(QueryError::StringVariableOutsideString {
                variable,
                offset,
                in_comment: kind == PieceKind::Comment,
            })
        }
        (VariableKind::String, PieceKind::Literal(quote)) => {
            Err(QueryError::StringVariableInUnsupportedString {
                variable,
                offset,
                quote,
            })
        }
        (VariableKind::Duration, PieceKind::Literal(quote)) => {
            Err(QueryError::DurationVariableInString {
                variable,
                offset,
                quote,
            })
        }
    }
}

/// Escapes `value` for the inside of a PromQL double-quoted string literal
/// (without the surrounding quotes).
///
/// PromQL double-quoted strings follow Go's escape rules. This escapes `\` as
/// `\\`, `"` as `\"`, newline, carriage return and tab as `\n`, `\r`, `\t`, and
/// every other control character (U+0000–U+001F, U+007F–U+009F) as `\u00XX`;
/// everything else, including `'`, braces and non-ASCII text, is copied as is.
/// The result can never end the literal, and decodes back to exactly `value`.
#[must_use]
pub fn escape_string(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    push_escaped(&mut out, value);
    out
}

/// Appends `value`, escaped as by [`escape_string`], to `out`.
fn push_escaped(out: &mut String, value: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                // Control characters (Cc) are all below U+00A0: two hex digits suffice.
                let code = u32::from(c);
                out.push_str("\\u00");
                out.push(char::from(HEX[((code >> 4) & 0xf) as usize]));
                out.push(char::from(HEX[(code & 0xf) as usize]));
            }
            c => out.push(c),
        }
    }
}

/// Returns the decoded contents of every string literal in a PromQL query, in order.
///
/// Double- and single-quoted literals are unescaped with PromQL's (Go's) rules;
/// backtick literals are returned as written. Text in `#` comments is skipped.
/// Used to check that rendered queries contain exactly the intended literals.
///
/// # Errors
///
/// [`QueryError::UnterminatedString`], [`QueryError::InvalidEscape`] or
/// [`QueryError::InvalidUtf8`] if the query is not lexically valid PromQL.
pub fn string_literals(query: &str) -> Result<Vec<String>, QueryError> {
    lex(query)?
        .into_iter()
        .filter(|piece| matches!(piece.kind, PieceKind::Literal(_)))
        .map(|piece| {
            String::from_utf8(piece.value).map_err(|_| QueryError::InvalidUtf8 {
                offset: piece.start,
            })
        })
        .collect()
}

/// The lexical class of a [`Piece`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PieceKind {
    /// PromQL outside string literals and comments.
    Code,
    /// A `#` comment, up to (not including) the line break.
    Comment,
    /// A string literal, quotes included.
    Literal(Quote),
}

/// A span of a query, `start..end` in bytes; for literals, `value` holds the decoded bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Piece {
    kind: PieceKind,
    start: usize,
    end: usize,
    value: Vec<u8>,
}

/// Splits a query into code, comment and string-literal pieces that together cover it.
///
/// All delimiters are ASCII, so working on bytes never splits a UTF-8 character.
fn lex(src: &str) -> Result<Vec<Piece>, QueryError> {
    let bytes = src.as_bytes();
    let mut pieces = Vec::new();
    let mut code_start = 0;
    let mut i = 0;
    let flush_code = |pieces: &mut Vec<Piece>, start: usize, end: usize| {
        if end > start {
            pieces.push(Piece {
                kind: PieceKind::Code,
                start,
                end,
                value: Vec::new(),
            });
        }
    };
    while i < bytes.len() {
        if let Some(quote) = Quote::from_byte(bytes[i]) {
            flush_code(&mut pieces, code_start, i);
            let (end, value) = scan_literal(src, i, quote)?;
            pieces.push(Piece {
                kind: PieceKind::Literal(quote),
                start: i,
                end,
                value,
            });
            i = end;
            code_start = end;
        } else if bytes[i] == b'#' {
            flush_code(&mut pieces, code_start, i);
            // PromQL comments end at '\n' or '\r'.
            let end = src[i..].find(['\n', '\r']).map_or(bytes.len(), |n| i + n);
            pieces.push(Piece {
                kind: PieceKind::Comment,
                start: i,
                end,
                value: Vec::new(),
            });
            i = end;
            code_start = end;
        } else {
            i += 1;
        }
    }
    flush_code(&mut pieces, code_start, bytes.len());
    Ok(pieces)
}

/// Scans the literal whose opening quote is at byte `start`; returns the byte
/// offset just past its closing quote and its decoded contents.
fn scan_literal(src: &str, start: usize, quote: Quote) -> Result<(usize, Vec<u8>), QueryError> {
    let bytes = src.as_bytes();
    let unterminated = QueryError::UnterminatedString {
        offset: start,
        quote,
    };
    if quote == Quote::Backtick {
        let content = start + 1;
        return match src[content..].find('`') {
            Some(n) => Ok((content + n + 1, bytes[content..content + n].to_vec())),
            None => Err(unterminated),
        };
    }
    let quote_byte = bytes[start];
    let mut value = Vec::new();
    let mut i = start + 1;
    loop {
        match bytes.get(i) {
            None | Some(b'\n') => return Err(unterminated),
            Some(&b) if b == quote_byte => return Ok((i + 1, value)),
            Some(b'\\') => {
                if i + 1 >= bytes.len() {
                    return Err(unterminated);
                }
                i = decode_escape(src, i, quote_byte, &mut value)?;
            }
            Some(&b) => {
                value.push(b);
                i += 1;
            }
        }
    }
}

/// Decodes the escape sequence whose backslash is at byte `at`, appending its
/// bytes to `value`; returns the byte offset just past the sequence.
/// Follows PromQL's lexer and Go's `strconv.Unquote`.
fn decode_escape(
    src: &str,
    at: usize,
    quote: u8,
    value: &mut Vec<u8>,
) -> Result<usize, QueryError> {
    let bytes = src.as_bytes();
    let invalid = |upto: usize, reason: &'static str| {
        // Include the offending character, which may be multi-byte.
        let end = src
            .get(upto..)
            .and_then(|rest| rest.chars().next())
            .map_or(upto, |c| upto + c.len_utf8());
        QueryError::InvalidEscape {
            offset: at,
            sequence: src.get(at..end).unwrap_or_default().to_owned(),
            reason,
        }
    };
    let Some(&kind) = bytes.get(at + 1) else {
        return Err(invalid(at + 1, "escape sequence not terminated"));
    };
    let simple = match kind {
        b'a' => Some(0x07),
        b'b' => Some(0x08),
        b'f' => Some(0x0c),
        b'n' => Some(b'\n'),
        b'r' => Some(b'\r'),
        b't' => Some(b'\t'),
        b'v' => Some(0x0b),
        b'\\' => Some(b'\\'),
        q if q == quote => Some(q),
        _ => None,
    };
    if let Some(b) = simple {
        value.push(b);
        return Ok(at + 2);
    }
    let (digits_start, count, radix, max) = match kind {
        b'0'..=b'7' => (at + 1, 3, 8, 0xff),
        b'x' => (at + 2, 2, 16, 0xff),
        b'u' => (at + 2, 4, 16, 0x10_ffff),
        b'U' => (at + 2, 8, 16, 0x10_ffff),
        b'"' | b'\'' => {
            return Err(invalid(
                at + 1,
                "this quote does not need escaping in this kind of string",
            ));
        }
        _ => return Err(invalid(at + 1, "unknown escape sequence")),
    };
    let mut code: u32 = 0;
    for i in digits_start..digits_start + count {
        let digit = bytes
            .get(i)
            .and_then(|&b| char::from(b).to_digit(radix))
            .ok_or_else(|| invalid(i, "illegal character in escape sequence"))?;
        code = code * radix + digit;
    }
    let end = digits_start + count;
    if code > max || (0xd800..0xe000).contains(&code) {
        return Err(invalid(
            end - 1,
            "escape sequence is an invalid Unicode code point",
        ));
    }
    if max == 0xff {
        // \x and octal escapes are single bytes, which may be part of a UTF-8 sequence.
        value.push(u8::try_from(code).unwrap_or_default());
    } else if let Some(c) = char::from_u32(code) {
        let mut buf = [0; 4];
        value.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
    }
    Ok(end)
}

#[cfg(test)]
mod fuzz;

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic xorshift64* generator for property-style tests.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    const REQUESTS: &str = r#"sum(increase(http_requests_total{namespace="{{namespace}}",workload="{{workload}}"}[{{elapsed}}]))"#;
    const ERRORS: &str = r#"sum(increase(http_requests_total{namespace="{{namespace}}",workload="{{workload}}",code=~"5.."}[{{elapsed}}]))"#;

    /// Templates exercising every construct the lexer knows about.
    const TEMPLATES: &[&str] = &[
        REQUESTS,
        ERRORS,
        r#"sum(rate(x{ns="{{ namespace }}", d="{{deployment}}"}[{{ interval }}])) / sum(rate(y{c="{{canary}}",s="{{stable}}"}[{{interval}}]))"#,
        "# requests for {{elapsed}}, 'quoted' and \"quoted\" in a comment\nsum by (code) (rate(\n  x{t=\"{{track}}\", svc=\"{{service}}\", route=\"{{route}}\"}[{{elapsed}}] # trailing\r\n))",
        r#"x{a="pre-{{namespace}}-mid-{{namespace}}{{workload}}post", b="\\{{track}}\"", c='single \' "', d=`raw \ "`} offset {{interval}}"#,
        r#"label_replace(up{job=~"{{service}}|{{route}}"}, "dst", "$1", "src", "(.*)") and on() vector({{interval}} > 0)"#,
        r#"x{a="\u00e9\x41\101\a\b\f\n\r\t\v{{deployment}}"}"#,
    ];

    /// Sets every string variable to a sentinel made of private-use characters,
    /// which need no escaping and never occur in generated values.
    fn sentinel_vars(durations: &Vars) -> Vars {
        let mut vars = durations.clone();
        for (i, variable) in Variable::ALL.into_iter().enumerate() {
            let sentinel = format!("\u{E000}{i}\u{E001}");
            match variable {
                Variable::Namespace => vars.namespace = sentinel,
                Variable::Deployment => vars.deployment = sentinel,
                Variable::Canary => vars.canary = sentinel,
                Variable::Stable => vars.stable = sentinel,
                Variable::Workload => vars.workload = sentinel,
                Variable::Track => vars.track = sentinel,
                Variable::Service => vars.service = sentinel,
                Variable::Route => vars.route = sentinel,
                Variable::Revision => vars.revision = sentinel,
                Variable::Interval | Variable::Elapsed => {}
            }
        }
        vars
    }

    /// The query with every string literal replaced by a marker naming its quoting.
    fn code_outside_literals(query: &str) -> String {
        let pieces = lex(query).unwrap_or_else(|e| panic!("{e}: {query}"));
        pieces
            .iter()
            .map(|p| match p.kind {
                PieceKind::Literal(q) => format!("<{q}>"),
                _ => query[p.start..p.end].to_owned(),
            })
            .collect()
    }

    /// Replaces duration placeholders in text outside string literals.
    fn substitute_durations(text: &str, vars: &Vars) -> String {
        let mut out = text.to_owned();
        for variable in [Variable::Interval, Variable::Elapsed] {
            let d = vars.duration(variable).unwrap_or_default();
            // {{interval}} rounds up, {{elapsed}} down; both at least one second.
            let secs = if variable == Variable::Interval && d.subsec_nanos() > 0 {
                d.as_secs() + 1
            } else {
                d.as_secs()
            };
            let value = format!("{}s", secs.max(1));
            for form in [
                format!("{{{{{variable}}}}}"),
                format!("{{{{ {variable} }}}}"),
            ] {
                out = out.replace(&form, &value);
            }
        }
        out
    }

    /// Asserts properties (a) and (b) for one template and one set of values.
    fn check_render(template: &Template, vars: &Vars) {
        let rendered = template.render(vars);
        let literals =
            string_literals(&rendered).unwrap_or_else(|e| panic!("{e}: {rendered:?} {vars:?}"));

        // (a) The literals are the template's, with the raw values substituted.
        let sentinel = sentinel_vars(vars);
        let mut expected = string_literals(&template.render(&sentinel)).unwrap_or_default();
        for lit in &mut expected {
            for variable in Variable::ALL {
                if let (Some(s), Some(v)) = (sentinel.string(variable), vars.string(variable)) {
                    *lit = lit.replace(s, v);
                }
            }
        }
        assert_eq!(literals, expected, "{rendered:?}");

        // (b) Everything outside literals is the template's, with durations substituted.
        let expected_code = substitute_durations(&code_outside_literals(template.source()), vars);
        assert_eq!(
            code_outside_literals(&rendered),
            expected_code,
            "{rendered:?}"
        );
    }

    fn vars_with(value: &str) -> Vars {
        Vars {
            namespace: value.to_owned(),
            deployment: value.to_owned(),
            canary: value.to_owned(),
            stable: value.to_owned(),
            workload: value.to_owned(),
            track: value.to_owned(),
            service: value.to_owned(),
            route: value.to_owned(),
            revision: value.to_owned(),
            interval: Duration::from_secs(30),
            elapsed: Duration::from_millis(299_500),
        }
    }

    #[test]
    fn renders_the_example() {
        let t = Template::parse(ERRORS).unwrap_or_else(|e| panic!("{e}"));
        let vars = Vars {
            elapsed: Duration::from_secs(300),
            ..Vars::for_track(Track::Canary, "shop", "web")
        };
        assert_eq!(
            t.render(&vars),
            r#"sum(increase(http_requests_total{namespace="shop",workload="web-canary",code=~"5.."}[300s]))"#
        );
        // {{elapsed}} rounds down: the range never reaches back before the canary started.
        let stable = Vars {
            elapsed: Duration::from_millis(2_900),
            ..Vars::for_track(Track::Stable, "shop", "web")
        };
        assert_eq!(
            t.render(&stable),
            r#"sum(increase(http_requests_total{namespace="shop",workload="web",code=~"5.."}[2s]))"#
        );
        let expected: BTreeSet<_> = [Variable::Namespace, Variable::Workload, Variable::Elapsed]
            .into_iter()
            .collect();
        assert_eq!(t.variables(), &expected);
        assert_eq!(t.source(), ERRORS);
        assert_eq!(t.to_string(), ERRORS);
        assert_eq!(ERRORS.parse::<Template>(), Ok(t));
    }

    #[test]
    fn vars_for_track() {
        let canary = Vars::for_track(Track::Canary, "ns", "api");
        assert_eq!(canary.canary, "api-canary");
        assert_eq!(canary.stable, "api");
        assert_eq!(canary.deployment, "api");
        assert_eq!(canary.workload, "api-canary");
        assert_eq!(canary.track, "canary");
        let stable = Vars::for_track(Track::Stable, "ns", "api");
        assert_eq!(stable.workload, "api");
        assert_eq!(stable.track, "stable");
        assert_eq!(stable.string(Variable::Namespace), Some("ns"));
        assert_eq!(stable.string(Variable::Elapsed), None);
        assert_eq!(stable.duration(Variable::Interval), Some(Duration::ZERO));
        assert_eq!(stable.duration(Variable::Route), None);
    }

    #[test]
    fn variable_names_round_trip() {
        for v in Variable::ALL {
            assert_eq!(Variable::from_name(v.name()), Some(v));
            assert_eq!(v.to_string(), v.name());
        }
        assert_eq!(Variable::from_name("Namespace"), None);
        assert_eq!(Variable::Elapsed.kind(), VariableKind::Duration);
        assert_eq!(Variable::Route.kind(), VariableKind::String);
    }

    #[test]
    fn placeholders_allow_spaces_and_repeat() {
        let t =
            Template::parse(r#"x{a="{{ namespace }}{{namespace}}{{	namespace	}}"}[{{ elapsed }}]"#)
                .unwrap_or_else(|e| panic!("{e}"));
        let vars = Vars {
            elapsed: Duration::from_secs(60),
            ..vars_with("n")
        };
        assert_eq!(t.render(&vars), r#"x{a="nnn"}[60s]"#);
        assert_eq!(t.variables().len(), 2);
    }

    #[test]
    fn durations_render_in_whole_seconds() {
        let t = Template::parse("rate(x[{{interval}}]) offset {{elapsed}}")
            .unwrap_or_else(|e| panic!("{e}"));
        let mut vars = Vars::default();
        assert_eq!(t.render(&vars), "rate(x[1s]) offset 1s");
        vars.interval = Duration::from_millis(1_001);
        vars.elapsed = Duration::from_secs(3_600);
        assert_eq!(t.render(&vars), "rate(x[2s]) offset 3600s");
    }

    #[test]
    fn parse_errors() {
        use QueryError as E;
        let cases: Vec<(&str, QueryError)> = vec![
            ("", E::Empty),
            ("  \n\t ", E::Empty),
            (
                r#"x{a="{{nope}}"}"#,
                E::UnknownVariable {
                    name: "nope".into(),
                    offset: 5,
                },
            ),
            (
                r#"x{a="{{}}"}"#,
                E::UnknownVariable {
                    name: "".into(),
                    offset: 5,
                },
            ),
            (
                r#"x{a="{{Namespace}}"}"#,
                E::UnknownVariable {
                    name: "Namespace".into(),
                    offset: 5,
                },
            ),
            (
                r#"x{a="{{name space}}"}"#,
                E::UnknownVariable {
                    name: "name space".into(),
                    offset: 5,
                },
            ),
            (
                r#"x{a="{{namespace"}"#,
                E::UnterminatedPlaceholder { offset: 5 },
            ),
            (
                r#"x{a="{{namespace}"}"#,
                E::UnterminatedPlaceholder { offset: 5 },
            ),
            (
                r#"x{a="{{ {{namespace}}"}"#,
                E::UnterminatedPlaceholder { offset: 5 },
            ),
            ("x[{{elapsed", E::UnterminatedPlaceholder { offset: 2 }),
            ("x[{{elapsed\n}}]", E::UnterminatedPlaceholder { offset: 2 }),
            ("# {{ unclosed\nx", E::UnterminatedPlaceholder { offset: 2 }),
            (
                "x{a={{namespace}}}",
                E::StringVariableOutsideString {
                    variable: Variable::Namespace,
                    offset: 4,
                    in_comment: false,
                },
            ),
            (
                "x{a=\"b\"} or {{workload}}",
                E::StringVariableOutsideString {
                    variable: Variable::Workload,
                    offset: 12,
                    in_comment: false,
                },
            ),
            (
                "x # a=\"{{track}}\"",
                E::StringVariableOutsideString {
                    variable: Variable::Track,
                    offset: 7,
                    in_comment: true,
                },
            ),
            (
                "x{a='{{service}}'}",
                E::StringVariableInUnsupportedString {
                    variable: Variable::Service,
                    offset: 5,
                    quote: Quote::Single,
                },
            ),
            (
                "x{a=`{{route}}`}",
                E::StringVariableInUnsupportedString {
                    variable: Variable::Route,
                    offset: 5,
                    quote: Quote::Backtick,
                },
            ),
            (
                r#"x{a="{{interval}}"}"#,
                E::DurationVariableInString {
                    variable: Variable::Interval,
                    offset: 5,
                    quote: Quote::Double,
                },
            ),
            (
                "x{a=`{{ elapsed }}`}",
                E::DurationVariableInString {
                    variable: Variable::Elapsed,
                    offset: 5,
                    quote: Quote::Backtick,
                },
            ),
            (
                r#"x{a="{{namespace}}}"#,
                E::UnterminatedString {
                    offset: 4,
                    quote: Quote::Double,
                },
            ),
            (
                "x{a='b}",
                E::UnterminatedString {
                    offset: 4,
                    quote: Quote::Single,
                },
            ),
            (
                "x{a=`b}",
                E::UnterminatedString {
                    offset: 4,
                    quote: Quote::Backtick,
                },
            ),
            (
                "x{a=\"b\nc\"}",
                E::UnterminatedString {
                    offset: 4,
                    quote: Quote::Double,
                },
            ),
            (
                r#"x{a="b\"}"#,
                E::UnterminatedString {
                    offset: 4,
                    quote: Quote::Double,
                },
            ),
            (
                r#"x{a="\{{namespace}}"}"#,
                E::InvalidEscape {
                    offset: 5,
                    sequence: "\\{".into(),
                    reason: "unknown escape sequence",
                },
            ),
        ];
        for (src, expected) in cases {
            assert_eq!(Template::parse(src), Err(expected.clone()), "{src:?}");
        }
    }

    #[test]
    fn error_messages_name_the_input() {
        let message = |src: &str| match Template::parse(src) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("{src:?} parsed"),
        };
        let m = message(r#"x{a="{{nope}}"}"#);
        assert!(m.contains("\"nope\"") && m.contains("byte 5"), "{m}");
        for v in Variable::ALL {
            assert!(m.contains(v.name()), "{m}");
        }
        let m = message("x[{{elapsed");
        assert!(m.contains("unterminated") && m.contains("byte 2"), "{m}");
        let m = message("x{a={{namespace}}}");
        assert!(
            m.contains("{{namespace}}") && m.contains("byte 4") && m.contains("outside"),
            "{m}"
        );
        let m = message("x # {{track}}");
        assert!(m.contains("{{track}}") && m.contains("comment"), "{m}");
        let m = message("x{a='{{service}}'}");
        assert!(
            m.contains("{{service}}")
                && m.contains("single-quoted")
                && m.contains("only double-quoted"),
            "{m}"
        );
        let m = message("x{a=`{{route}}`}");
        assert!(m.contains("backtick") && m.contains("byte 5"), "{m}");
        let m = message(r#"x{a="{{interval}}"}"#);
        assert!(
            m.contains("{{interval}}") && m.contains("duration") && m.contains("byte 5"),
            "{m}"
        );
        let m = message(r#"x{a="b}"#);
        assert!(
            m.contains("unterminated double-quoted string") && m.contains("byte 4"),
            "{m}"
        );
        let m = message(r#"x{a="\q"}"#);
        assert!(m.contains(r#""\\q""#) && m.contains("byte 5"), "{m}");
        assert!(message(" ").contains("empty"));
    }

    #[test]
    fn escape_string_follows_go_rules() {
        let cases: &[(&str, &str)] = &[
            ("plain-name", "plain-name"),
            ("a\"b", "a\\\"b"),
            ("a\\b", "a\\\\b"),
            ("line\nbreak\r\ttab", "line\\nbreak\\r\\ttab"),
            (
                "\u{0}\u{1}\u{1b}\u{1f}\u{7f}\u{85}\u{9f}",
                "\\u0000\\u0001\\u001b\\u001f\\u007f\\u0085\\u009f",
            ),
            ("'single'", "'single'"),
            ("{{namespace}}", "{{namespace}}"),
            ("é中😀\u{a0}\u{2028}", "é中😀\u{a0}\u{2028}"),
            ("\"} or vector(1) #", "\\\"} or vector(1) #"),
            ("\u{7}\u{8}\u{b}\u{c}", "\\u0007\\u0008\\u000b\\u000c"),
        ];
        for &(raw, escaped) in cases {
            assert_eq!(escape_string(raw), escaped, "{raw:?}");
            let quoted = format!("\"{escaped}\"");
            assert_eq!(
                string_literals(&quoted),
                Ok(vec![raw.to_owned()]),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn string_literals_decodes_promql_escapes() {
        let ok: &[(&str, &[&str])] = &[
            (r#""a" 'b' `c`"#, &["a", "b", "c"]),
            (
                r#""\a\b\f\n\r\t\v\\\"""#,
                &["\u{7}\u{8}\u{c}\n\r\t\u{b}\\\""],
            ),
            (r"'\''", &["'"]),
            (r#"'"'"#, &["\""]),
            (r#""'""#, &["'"]),
            (
                "`raw \\n \\ \" '\nnext line`",
                &["raw \\n \\ \" '\nnext line"],
            ),
            (
                r#""\101\x41\u00e9\U0001F600\xc3\xa9\303\251\177""#,
                &["AAé😀éé\u{7f}"],
            ),
            ("x # \"not a string\"\n\"yes\"", &["yes"]),
            ("x # \"not a string\"\r'yes'", &["yes"]),
            ("# only a comment with ` and '", &[]),
            ("sum(rate(x[5m]))", &[]),
            (r#""""#, &[""]),
            (r##""#""##, &["#"]),
        ];
        for &(query, literals) in ok {
            let expected: Vec<String> = literals.iter().map(|s| (*s).to_owned()).collect();
            assert_eq!(string_literals(query), Ok(expected), "{query:?}");
        }
        let bad: &[(&str, &str)] = &[
            (r#""\q""#, "unknown escape"),
            (r#""\'""#, "does not need escaping"),
            (r#"'\"'"#, "does not need escaping"),
            (r#""\u12""#, "illegal character"),
            (r#""\x4""#, "illegal character"),
            (r#""\8""#, "unknown escape"),
            (r#""\18""#, "illegal character"),
            (r#""\uD800""#, "invalid Unicode"),
            (r#""\U00110000""#, "invalid Unicode"),
            (r#""\400""#, "invalid Unicode"),
            (r#""\é""#, "unknown escape"),
            (r#""abc"#, "unterminated"),
            ("\"a\nb\"", "unterminated"),
            ("'a", "unterminated"),
            ("`a", "unterminated"),
            ("\"a\\", "unterminated"),
            (r#""\xff""#, "invalid UTF-8"),
            (r#""\xc3""#, "invalid UTF-8"),
        ];
        for &(query, fragment) in bad {
            match string_literals(query) {
                Err(e) => assert!(e.to_string().contains(fragment), "{query:?}: {e}"),
                Ok(l) => panic!("{query:?} lexed as {l:?}"),
            }
        }
        assert_eq!(
            string_literals(r#"x "\é""#),
            Err(QueryError::InvalidEscape {
                offset: 3,
                sequence: "\\é".into(),
                reason: "unknown escape sequence"
            })
        );
    }

    #[test]
    fn hostile_values_stay_inside_their_literal() {
        let hostile = [
            "",
            "\"",
            "\\",
            "\\\"",
            "\"} or vector(0) #",
            "\"} or vector(1) #",
            "}",
            "} or vector(0)",
            "\"}) or vector(0) or sum(x{a=\"",
            "{{namespace}}",
            "{{ workload }}",
            "{{elapsed}}",
            "{{",
            "}}",
            "line\nbreak",
            "carriage\rreturn # comment?",
            "tab\tand\u{0}nul\u{7f}del",
            "`backtick` and 'single'",
            "é中😀\u{2028}\u{202e}\u{feff}",
            "\\n not a newline",
            "\\\\\"\\",
            "# {{route}}",
        ];
        let templates: Vec<Template> = TEMPLATES
            .iter()
            .map(|src| Template::parse(src).unwrap_or_else(|e| panic!("{e}: {src}")))
            .collect();
        for value in hostile {
            let vars = vars_with(value);
            for template in &templates {
                check_render(template, &vars);
            }
        }
        // Values are not re-expanded.
        let t = Template::parse(REQUESTS).unwrap_or_else(|e| panic!("{e}"));
        let vars = Vars {
            namespace: "{{workload}}".into(),
            workload: "w".into(),
            ..Vars::default()
        };
        assert_eq!(
            string_literals(&t.render(&vars)),
            Ok(vec!["{{workload}}".to_owned(), "w".to_owned()])
        );
        // A classic injection attempt becomes a harmless label value.
        let vars = Vars {
            namespace: "\"} or vector(1) #".into(),
            ..Vars::default()
        };
        let rendered = t.render(&vars);
        assert_eq!(
            rendered,
            r#"sum(increase(http_requests_total{namespace="\"} or vector(1) #",workload=""}[1s]))"#
        );
        assert_eq!(
            code_outside_literals(&rendered),
            "sum(increase(http_requests_total{namespace=<double-quoted string>,workload=<double-quoted string>}[1s]))"
        );
    }

    #[test]
    fn random_values_never_escape_their_literal() {
        const EXTRA: &[&str] = &[
            "é",
            "ß",
            "中",
            "😀",
            "𝔘",
            "\u{85}",
            "\u{9f}",
            "\u{a0}",
            "\u{200b}",
            "\u{2028}",
            "\u{2029}",
            "\u{202e}",
            "\u{feff}",
            "\u{fffd}",
            "\u{10ffff}",
            "{{namespace}}",
            "{{ elapsed }}",
            "\"} or vector(1) #",
            "\\\"",
            "\\u0022",
            "\\x22",
            "}}",
            "{{",
        ];
        let templates: Vec<Template> = TEMPLATES
            .iter()
            .map(|src| Template::parse(src).unwrap_or_else(|e| panic!("{e}: {src}")))
            .collect();
        let mut rng = Rng(0x5EED_0003);
        let random_value = |rng: &mut Rng| {
            let len = rng.below(24);
            let mut s = String::new();
            for _ in 0..len {
                if rng.below(5) == 0 {
                    s.push_str(EXTRA[rng.below(EXTRA.len())]);
                } else {
                    s.push(char::from(rng.below(128) as u8));
                }
            }
            s
        };
        for _ in 0..5_000 {
            let vars = Vars {
                namespace: random_value(&mut rng),
                deployment: random_value(&mut rng),
                canary: random_value(&mut rng),
                stable: random_value(&mut rng),
                workload: random_value(&mut rng),
                track: random_value(&mut rng),
                service: random_value(&mut rng),
                route: random_value(&mut rng),
                revision: random_value(&mut rng),
                interval: Duration::from_millis(rng.next() % 10_000_000),
                elapsed: Duration::from_millis(rng.next() % 10_000_000),
            };
            for template in &templates {
                check_render(template, &vars);
            }
            // Every value escapes and unescapes to itself.
            let quoted = format!("\"{}\"", escape_string(&vars.namespace));
            assert_eq!(string_literals(&quoted), Ok(vec![vars.namespace.clone()]));
        }
    }

    #[test]
    fn all_single_chars_round_trip_through_escaping() {
        let chars = (0u32..0x800)
            .chain(0xd7f0..0xe010)
            .chain(0xfff0..0x10100)
            .chain(0x10_fff0..=0x10_ffff)
            .filter_map(char::from_u32);
        for c in chars {
            let raw = c.to_string();
            let quoted = format!("\"{}\"", escape_string(&raw));
            assert_eq!(
                string_literals(&quoted),
                Ok(vec![raw]),
                "U+{:04X}",
                u32::from(c)
            );
            assert!(!quoted.contains('\n') && !quoted.contains('\r'));
        }
    }
}
