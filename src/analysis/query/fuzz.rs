//! Property tests of query rendering against a PromQL lexer written here, independently of
//! the renderer's escaping and of the module's own lexer: for any label values (quotes,
//! backslashes, braces, line breaks, `"} or vector(0)`, any Unicode) the rendered query
//! lexes to exactly the tokens the template's structure calls for, with every label value
//! decoding back to exactly its input. The same holds for the combined query the operator
//! sends, and for arbitrary templates that parse.

use proptest::prelude::*;

use super::*;
use crate::analysis::prometheus::{PART_LABEL, combine};
use crate::fuzz::config;

/// A PromQL token, as far as structure goes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    /// A string literal's quote and decoded value.
    Str(char, String),
    /// A name, keyword or function.
    Ident(String),
    /// A number or duration (`300s`).
    Num(String),
    /// An operator or punctuation.
    Op(String),
    /// A `#` comment's text.
    Comment(String),
}

/// Lexes PromQL the way Prometheus's lexer does for the constructs used here: `#` comments
/// to the end of the line, `"..."` and `'...'` with Go's escapes (no raw line feed),
/// `` `...` `` raw. Written from the PromQL and Go specifications, sharing no code with
/// the module under test.
fn lex_promql(q: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = q.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '#' => {
                let start = i + 1;
                while i < chars.len() && chars[i] != '\n' && chars[i] != '\r' {
                    i += 1;
                }
                out.push(Tok::Comment(chars[start..i].iter().collect()));
            }
            '`' => {
                let start = i + 1;
                let end = chars[start..]
                    .iter()
                    .position(|&c| c == '`')
                    .ok_or("unterminated raw string")?;
                out.push(Tok::Str('`', chars[start..start + end].iter().collect()));
                i = start + end + 1;
            }
            '"' | '\'' => {
                let (value, next) = unquote(&chars, i)?;
                out.push(Tok::Str(c, value));
                i = next;
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
                {
                    i += 1;
                }
                out.push(Tok::Ident(chars[start..i].iter().collect()));
            }
            c if c.is_ascii_digit() => {
                let start = i;
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
                out.push(Tok::Num(chars[start..i].iter().collect()));
            }
            _ => {
                let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
                if ["!=", "=~", "!~", "==", ">=", "<="].contains(&two.as_str()) {
                    out.push(Tok::Op(two));
                    i += 2;
                } else {
                    out.push(Tok::Op(c.to_string()));
                    i += 1;
                }
            }
        }
    }
    Ok(out)
}

/// Decodes the quoted string opening at `chars[open]`; returns it and the index after the
/// closing quote.
fn unquote(chars: &[char], open: usize) -> Result<(String, usize), String> {
    let quote = chars[open];
    let mut bytes: Vec<u8> = Vec::new();
    let mut i = open + 1;
    let digits = |from: usize, n: usize, radix: u32| -> Result<u32, String> {
        let s: String = chars
            .get(from..from + n)
            .ok_or("short escape")?
            .iter()
            .collect();
        if s.chars().all(|c| c.is_digit(radix)) {
            u32::from_str_radix(&s, radix).map_err(|e| e.to_string())
        } else {
            Err(format!("bad escape digits {s:?}"))
        }
    };
    loop {
        let Some(&c) = chars.get(i) else {
            return Err("unterminated string".into());
        };
        if c == quote {
            let value = String::from_utf8(bytes).map_err(|_| "invalid UTF-8")?;
            return Ok((value, i + 1));
        }
        match c {
            '\n' => return Err("line feed in a quoted string".into()),
            '\\' => {
                let e = *chars.get(i + 1).ok_or("unterminated escape")?;
                let simple = match e {
                    'a' => Some('\u{7}'),
                    'b' => Some('\u{8}'),
                    'f' => Some('\u{c}'),
                    'n' => Some('\n'),
                    'r' => Some('\r'),
                    't' => Some('\t'),
                    'v' => Some('\u{b}'),
                    '\\' => Some('\\'),
                    e if e == quote => Some(e),
                    _ => None,
                };
                if let Some(s) = simple {
                    bytes.extend(s.to_string().bytes());
                    i += 2;
                    continue;
                }
                let (code, len, is_byte) = match e {
                    '0'..='7' => (digits(i + 1, 3, 8)?, 4, true),
                    'x' => (digits(i + 2, 2, 16)?, 4, true),
                    'u' => (digits(i + 2, 4, 16)?, 6, false),
                    'U' => (digits(i + 2, 8, 16)?, 10, false),
                    _ => return Err(format!("unknown escape \\{e}")),
                };
                if is_byte {
                    bytes.push(u8::try_from(code).map_err(|_| "octal escape above 255")?);
                } else {
                    let ch = char::from_u32(code).ok_or("escape is not a Unicode scalar")?;
                    bytes.extend(ch.to_string().bytes());
                }
                i += len;
            }
            c => {
                bytes.extend(c.to_string().bytes());
                i += 1;
            }
        }
    }
}

/// A piece of a label value in a template: text (as written in the template, and decoded)
/// or a string variable.
#[derive(Debug, Clone)]
enum Part {
    Text(&'static str, &'static str),
    Var(Variable),
}

#[derive(Debug, Clone)]
struct Matcher {
    label: &'static str,
    op: &'static str,
    parts: Vec<Part>,
}

#[derive(Debug, Clone)]
struct Selector {
    metric: &'static str,
    matchers: Vec<Matcher>,
    range: Option<Variable>,
}

/// A template built from a structure: `sum(selector) <op> sum(selector) ...`.
#[derive(Debug, Clone)]
struct Model {
    selectors: Vec<Selector>,
    joins: Vec<&'static str>,
    comment: bool,
}

const STRING_VARS: [Variable; 9] = [
    Variable::Namespace,
    Variable::Deployment,
    Variable::Canary,
    Variable::Stable,
    Variable::Workload,
    Variable::Track,
    Variable::Service,
    Variable::Route,
    Variable::Revision,
];

fn part() -> impl Strategy<Value = Part> {
    prop_oneof![
        3 => prop::sample::select(STRING_VARS.to_vec()).prop_map(Part::Var),
        1 => prop::sample::select(vec![
            ("5..", "5.."),
            ("-", "-"),
            (r"\\", r"\"),
            (r#"\""#, "\""),
            (r"\n", "\n"),
            (r"\u00e9", "é"),
            (r"\x41", "A"),
            ("'", "'"),
            ("}", "}"),
            ("#", "#"),
        ])
        .prop_map(|(src, decoded)| Part::Text(src, decoded)),
    ]
}

fn model() -> impl Strategy<Value = Model> {
    let matcher = (
        prop::sample::select(vec!["namespace", "workload", "job", "code", "le"]),
        prop::sample::select(vec!["=", "!=", "=~", "!~"]),
        prop::collection::vec(part(), 1..4),
    )
        .prop_map(|(label, op, parts)| Matcher { label, op, parts });
    let selector = (
        prop::sample::select(vec![
            "http_requests_total",
            "up",
            "grpc_server_handled_total",
        ]),
        prop::collection::vec(matcher, 1..4),
        prop::option::of(prop::sample::select(vec![
            Variable::Elapsed,
            Variable::Interval,
        ])),
    )
        .prop_map(|(metric, matchers, range)| Selector {
            metric,
            matchers,
            range,
        })
        .boxed();
    (1usize..4, any::<bool>())
        .prop_flat_map(move |(n, comment)| {
            (
                prop::collection::vec(selector.clone(), n),
                prop::collection::vec(
                    prop::sample::select(vec!["or", "and", "+", "/", "unless"]),
                    n - 1,
                ),
                Just(comment),
            )
        })
        .prop_map(|(selectors, joins, comment)| Model {
            selectors,
            joins,
            comment,
        })
}

impl Model {
    /// The template's source text.
    fn source(&self) -> String {
        let mut out = String::new();
        for (i, s) in self.selectors.iter().enumerate() {
            if i > 0 {
                out.push_str(&format!(" {} ", self.joins[i - 1]));
            }
            let matchers: Vec<String> = s
                .matchers
                .iter()
                .map(|m| {
                    let value: String = m
                        .parts
                        .iter()
                        .map(|p| match p {
                            Part::Text(src, _) => (*src).to_owned(),
                            Part::Var(v) => format!("{{{{{v}}}}}"),
                        })
                        .collect();
                    format!("{}{}\"{value}\"", m.label, m.op)
                })
                .collect();
            let range = s
                .range
                .map(|v| format!("[{{{{{v}}}}}]"))
                .unwrap_or_default();
            out.push_str(&format!(
                "sum(increase({}{{{}}}{range}))",
                s.metric,
                matchers.join(",")
            ));
        }
        if self.comment {
            out.push_str(" # {{elapsed}} of \"requests\"");
        }
        out
    }

    /// The tokens the rendered query must lex to, computed from the structure and the raw
    /// values alone.
    fn expected(&self, vars: &Vars) -> Vec<Tok> {
        let op = |s: &str| Tok::Op(s.to_owned());
        let ident = |s: &str| Tok::Ident(s.to_owned());
        let mut out = Vec::new();
        for (i, s) in self.selectors.iter().enumerate() {
            if i > 0 {
                let j = self.joins[i - 1];
                out.push(if j.chars().all(char::is_alphabetic) {
                    ident(j)
                } else {
                    op(j)
                });
            }
            out.extend([
                ident("sum"),
                op("("),
                ident("increase"),
                op("("),
                ident(s.metric),
                op("{"),
            ]);
            for (k, m) in s.matchers.iter().enumerate() {
                if k > 0 {
                    out.push(op(","));
                }
                out.extend([ident(m.label), op(m.op)]);
                let value: String = m
                    .parts
                    .iter()
                    .map(|p| match p {
                        Part::Text(_, decoded) => (*decoded).to_owned(),
                        Part::Var(v) => raw(vars, *v).to_owned(),
                    })
                    .collect();
                out.push(Tok::Str('"', value));
            }
            out.push(op("}"));
            if let Some(v) = s.range {
                out.extend([op("["), Tok::Num(range(vars, v)), op("]")]);
            }
            out.extend([op(")"), op(")")]);
        }
        if self.comment {
            out.push(Tok::Comment(format!(
                " {} of \"requests\"",
                range(vars, Variable::Elapsed)
            )));
        }
        out
    }
}

fn raw(vars: &Vars, v: Variable) -> &str {
    match v {
        Variable::Namespace => &vars.namespace,
        Variable::Deployment => &vars.deployment,
        Variable::Canary => &vars.canary,
        Variable::Stable => &vars.stable,
        Variable::Workload => &vars.workload,
        Variable::Track => &vars.track,
        Variable::Service => &vars.service,
        Variable::Route => &vars.route,
        Variable::Revision => &vars.revision,
        Variable::Interval | Variable::Elapsed => "",
    }
}

/// A PromQL range in whole seconds, at least `1s`: `{{interval}}` rounded up, `{{elapsed}}`
/// rounded down (it must not reach back before the canary started).
fn range(vars: &Vars, v: Variable) -> String {
    let secs = if v == Variable::Interval {
        vars.interval.as_nanos().div_ceil(1_000_000_000)
    } else {
        u128::from(vars.elapsed.as_secs())
    };
    format!("{}s", secs.max(1))
}

/// Label values meant to break out of their string.
fn hostile() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(vec![
        "\"",
        "\\",
        "\\\"",
        "'",
        "`",
        "{",
        "}",
        "{{",
        "}}",
        "\n",
        "\r",
        "\t",
        "\u{0}",
        "#",
        "\"} or vector(0)",
        "\"} or vector(0) #",
        "} or vector(0)",
        "\"}) or on() vector(1) #",
        "{{namespace}}",
        "{{ elapsed }}",
        "\\u0022",
        "\\x22",
        "\\n",
        "é",
        "中",
        "😀",
        "\u{85}",
        "\u{2028}",
        "\u{202e}",
        "\u{feff}",
        "\u{10ffff}",
        "\u{7f}",
        "\u{1b}[31m",
    ]);
    prop_oneof![
        3 => prop::collection::vec(prop_oneof![piece.prop_map(String::from), "[a-z0-9-]{0,4}"], 0..8)
            .prop_map(|v| v.concat()),
        2 => any::<String>(),
        1 => "[\"\\\\{}#\n'`a-z ]{0,16}",
    ]
}

fn vars() -> impl Strategy<Value = Vars> {
    (
        prop::collection::vec(hostile(), 9),
        any::<u64>(),
        0u64..100_000_000,
    )
        .prop_map(|(v, interval_ns, elapsed_ms)| Vars {
            namespace: v[0].clone(),
            deployment: v[1].clone(),
            canary: v[2].clone(),
            stable: v[3].clone(),
            workload: v[4].clone(),
            track: v[5].clone(),
            service: v[6].clone(),
            route: v[7].clone(),
            revision: v[8].clone(),
            interval: Duration::from_nanos(interval_ns),
            elapsed: Duration::from_millis(elapsed_ms),
        })
}

/// The selectors (`{`) and label matchers in a token list.
fn shape(toks: &[Tok]) -> (usize, usize) {
    let mut depth = 0;
    let (mut selectors, mut matchers) = (0, 0);
    for t in toks {
        match t {
            Tok::Op(o) if o == "{" => {
                depth += 1;
                selectors += 1;
            }
            Tok::Op(o) if o == "}" => depth -= 1,
            Tok::Op(o) if depth > 0 && ["=", "!=", "=~", "!~"].contains(&o.as_str()) => {
                matchers += 1
            }
            _ => {}
        }
    }
    (selectors, matchers)
}

/// The tokens of the operator's combined query, from the tokens of its parts.
fn combined_tokens(parts: &[(&str, Vec<Tok>)]) -> Vec<Tok> {
    let op = |s: &str| Tok::Op(s.to_owned());
    let mut out = Vec::new();
    for (i, (tag, toks)) in parts.iter().enumerate() {
        if i > 0 {
            out.push(Tok::Ident("or".into()));
        }
        out.extend([Tok::Ident("label_replace".into()), op("("), op("(")]);
        out.extend(toks.iter().cloned());
        out.extend([op(")"), op(",")]);
        for (k, s) in [PART_LABEL, tag, "", ""].iter().enumerate() {
            if k > 0 {
                out.push(op(","));
            }
            out.push(Tok::Str('"', (*s).to_owned()));
        }
        out.push(op(")"));
    }
    out
}

/// Fragments of templates, hostile ones included.
fn template_soup() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            prop::sample::select(vec![
                "x{a=\"",
                "\"}",
                "\"",
                "'",
                "`",
                "{{namespace}}",
                "{{ workload }}",
                "{{elapsed}}",
                "{{interval}}",
                "{{",
                "}}",
                "{{nope}}",
                "[",
                "]",
                "\\",
                "\\\\",
                "\\\"",
                "\\n",
                "\\x41",
                "\\101",
                "\\u00e9",
                "#",
                "\n",
                "\r",
                " or ",
                "sum(",
                ")",
                ",b=~\"",
            ])
            .prop_map(String::from),
            "[a-z{}\"'`#\\\\\n ]{0,4}",
        ],
        1..14,
    )
    .prop_map(|v| v.concat())
}

/// Private-use sentinels, which need no escaping and occur in no generated value.
fn sentinels(vars: &Vars) -> Vars {
    let s = |i: usize| format!("\u{E000}{i}\u{E001}");
    Vars {
        namespace: s(0),
        deployment: s(1),
        canary: s(2),
        stable: s(3),
        workload: s(4),
        track: s(5),
        service: s(6),
        route: s(7),
        ..vars.clone()
    }
}

fn unsentinel(value: &str, vars: &Vars) -> String {
    let mut out = value.to_owned();
    for (i, v) in STRING_VARS.iter().enumerate() {
        out = out.replace(&format!("\u{E000}{i}\u{E001}"), raw(vars, *v));
    }
    out
}

proptest! {
    #![proptest_config(config(2_000))]

    #[test]
    fn prop_label_values_never_escape_their_string(m in model(), vars in vars()) {
        let template = Template::parse(&m.source()).map_err(|e| TestCaseError::fail(format!("{e}: {}", m.source())))?;
        let rendered = template.render(&vars);
        let toks = lex_promql(&rendered).map_err(|e| TestCaseError::fail(format!("{e}: {rendered:?}")))?;
        let expected = m.expected(&vars);
        prop_assert_eq!(&toks, &expected, "{}", rendered);
        let matchers: usize = m.selectors.iter().map(|s| s.matchers.len()).sum();
        prop_assert_eq!(shape(&toks), (m.selectors.len(), matchers));
        // The operator sends the parts combined into one query; each keeps its structure.
        let errors = template.render(&Vars { namespace: vars.route.clone(), ..vars.clone() });
        let combined = combine(&[("requests", &rendered), ("errors", &errors)]);
        let ctoks = lex_promql(&combined).map_err(|e| TestCaseError::fail(format!("{e}: {combined:?}")))?;
        let err_vars = Vars { namespace: vars.route.clone(), ..vars.clone() };
        prop_assert_eq!(
            ctoks,
            combined_tokens(&[("requests", expected), ("errors", m.expected(&err_vars))]),
            "{}",
            combined
        );
    }

    #[test]
    fn prop_any_template_is_parsed_without_panic_and_renders_safely(src in template_soup(), vars in vars()) {
        let Ok(template) = Template::parse(&src) else {
            return Ok(());
        };
        let rendered = template.render(&vars);
        let toks = lex_promql(&rendered).map_err(|e| TestCaseError::fail(format!("{e}: {src:?} -> {rendered:?}")))?;
        // Same tokens as with harmless sentinels, each literal with the raw values in place
        // of the sentinels: the values changed no structure and decoded exactly.
        let plain = lex_promql(&template.render(&sentinels(&vars))).map_err(TestCaseError::fail)?;
        let expected: Vec<Tok> = plain
            .into_iter()
            .map(|t| match t {
                Tok::Str(q, v) => Tok::Str(q, unsentinel(&v, &vars)),
                t => t,
            })
            .collect();
        prop_assert_eq!(toks, expected, "{:?} -> {:?}", src, rendered);
    }

    #[test]
    fn prop_any_text_is_parsed_without_panic(src in any::<String>()) {
        if let Ok(t) = Template::parse(&src) {
            let _ = t.render(&Vars::default());
        }
    }
}

#[test]
fn the_lexer_here_reads_promql_as_prometheus_does() {
    // The test's own lexer, checked on hand-written queries before it judges the renderer.
    let toks = lex_promql(r#"sum(x{a="\"} or vector(0)",b!~'\'',c=`\`}[300s]) # {"#).unwrap();
    assert_eq!(
        toks,
        vec![
            Tok::Ident("sum".into()),
            Tok::Op("(".into()),
            Tok::Ident("x".into()),
            Tok::Op("{".into()),
            Tok::Ident("a".into()),
            Tok::Op("=".into()),
            Tok::Str('"', "\"} or vector(0)".into()),
            Tok::Op(",".into()),
            Tok::Ident("b".into()),
            Tok::Op("!~".into()),
            Tok::Str('\'', "'".into()),
            Tok::Op(",".into()),
            Tok::Ident("c".into()),
            Tok::Op("=".into()),
            Tok::Str('`', "\\".into()),
            Tok::Op("}".into()),
            Tok::Op("[".into()),
            Tok::Num("300s".into()),
            Tok::Op("]".into()),
            Tok::Op(")".into()),
            Tok::Comment(" {".into()),
        ]
    );
    assert_eq!(
        lex_promql(r#""\u00e9\x41\101\a\\""#).unwrap(),
        vec![Tok::Str('"', "éAA\u{7}\\".into())]
    );
    // An unescaped quote ends the string: what follows is code.
    assert_eq!(
        shape(&lex_promql(r#"x{a=""} or vector(0) or y{b="c"}"#).unwrap()),
        (2, 2)
    );
    for bad in ["\"a\nb\"", "\"\\q\"", "'a", "\"\\xff\"", "\"\\400\""] {
        assert!(lex_promql(bad).is_err(), "{bad:?}");
    }
}
