//! YAML loading whose errors name the file, the line and column, and the field: type errors,
//! missing and unknown fields while parsing, and (through [`locate`]) semantic errors found
//! after parsing, such as a step pause that does not parse as a duration.

use std::fmt;

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor,
};

/// An error in an input file, as precisely located as the YAML allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    /// The file as the user named it.
    pub file: String,
    /// 1-based line and column of the offending node, when known.
    pub position: Option<(usize, usize)>,
    /// The field, e.g. `spec.tiers[0].steps[1].pause` (empty for the whole document).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some((line, column)) = self.position {
            write!(f, ":{line}:{column}")?;
        }
        if self.field.is_empty() {
            write!(f, ": {}", self.message)
        } else {
            write!(f, ": {}: {}", self.field, self.message)
        }
    }
}

impl std::error::Error for FileError {}

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// A mapping key.
    Key(String),
    /// A sequence index.
    Index(usize),
}

/// Formats a path as `a.b[1].c`.
pub fn format_path(path: &[Segment]) -> String {
    let mut out = String::new();
    for s in path {
        match s {
            Segment::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Segment::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// Parses a path written `a.b[1].c` (keys must not contain `.` or `[`).
pub fn parse_path(s: &str) -> Vec<Segment> {
    let mut out = Vec::new();
    for part in s.split('.').filter(|p| !p.is_empty()) {
        let (key, mut rest) = part.split_once('[').map_or((part, ""), |(k, r)| (k, r));
        if !key.is_empty() {
            out.push(Segment::Key(key.to_string()));
        }
        while let Some((index, tail)) = rest.split_once(']') {
            if let Ok(i) = index.parse() {
                out.push(Segment::Index(i));
            }
            rest = tail.strip_prefix('[').unwrap_or(tail);
        }
    }
    out
}

/// Flow collections (`[...]`, `{...}`) nested deeper than this are refused before the YAML
/// parser sees them: its scanner takes time quadratic in the nesting depth (a 20,000-deep
/// `[[[...]]]` took 34 s to refuse), and the deserializer refuses more than 128 levels anyway.
pub const MAX_FLOW_DEPTH: usize = 128;

/// Refuses text whose brackets and braces nest deeper than [`MAX_FLOW_DEPTH`], naming the
/// line and column where it gets too deep. Brackets in quoted strings and comments count
/// too: harmless, no policy or scenario comes near the limit.
pub fn check_depth(text: &str, file: &str) -> Result<(), FileError> {
    let mut depth = 0usize;
    for (line, content) in text.lines().enumerate() {
        for (column, c) in content.chars().enumerate() {
            match c {
                '[' | '{' => depth += 1,
                ']' | '}' => depth = depth.saturating_sub(1),
                _ => continue,
            }
            if depth > MAX_FLOW_DEPTH {
                return Err(FileError {
                    file: file.to_string(),
                    position: Some((line + 1, column + 1)),
                    field: String::new(),
                    message: format!("nested deeper than {MAX_FLOW_DEPTH} levels"),
                });
            }
        }
    }
    Ok(())
}

/// Parses one YAML document into `T`. Type errors and missing fields name their line and
/// field; fields `T` does not know are errors too (as `kubectl apply --validate=strict` has
/// them), unless `allow_unknown` says which top-level paths may hold anything.
pub fn parse<T: DeserializeOwned>(
    text: &str,
    file: &str,
    allow_unknown: &dyn Fn(&[Segment]) -> bool,
) -> Result<T, FileError> {
    check_depth(text, file)?;
    let mut ignored: Vec<Vec<Segment>> = Vec::new();
    let mut track = serde_path_to_error::Track::new();
    let result = {
        let yaml = serde_yaml_ng::Deserializer::from_str(text);
        let mut record = |p: serde_ignored::Path| ignored.push(ignored_path(&p));
        let unknown = serde_ignored::Deserializer::new(yaml, &mut record);
        T::deserialize(serde_path_to_error::Deserializer::new(unknown, &mut track))
    };
    match result {
        Ok(v) => match ignored.into_iter().find(|p| !allow_unknown(p)) {
            None => Ok(v),
            Some(path) => {
                let (parent, name) = match path.split_last() {
                    Some((Segment::Key(k), parent)) => (parent.to_vec(), k.clone()),
                    _ => (path.clone(), String::new()),
                };
                Err(FileError {
                    file: file.to_string(),
                    position: locate(text, &path),
                    field: format_path(&parent),
                    message: format!("unknown field `{name}`"),
                })
            }
        },
        Err(e) => {
            let path = track.path().to_string();
            // The YAML position is the node being read when the error struck: for a value
            // checked after it was read, that is the enclosing mapping. The path's own node
            // lies inside it, so the later of the two positions is the more precise.
            let segments = parse_path(if path == "." { "" } else { &path });
            let position = e
                .location()
                .map(|l| (l.line(), l.column()))
                .max(locate(text, &segments));
            Err(FileError {
                file: file.to_string(),
                position,
                field: if path == "." {
                    String::new()
                } else {
                    path.clone()
                },
                message: bare_message(&e.to_string(), &path),
            })
        }
    }
}

fn ignored_path(p: &serde_ignored::Path) -> Vec<Segment> {
    let mut out = match p {
        serde_ignored::Path::Root => return Vec::new(),
        serde_ignored::Path::Seq { parent, .. }
        | serde_ignored::Path::Map { parent, .. }
        | serde_ignored::Path::Some { parent }
        | serde_ignored::Path::NewtypeStruct { parent }
        | serde_ignored::Path::NewtypeVariant { parent } => ignored_path(parent),
    };
    match p {
        serde_ignored::Path::Seq { index, .. } => out.push(Segment::Index(*index)),
        serde_ignored::Path::Map { key, .. } => out.push(Segment::Key(key.clone())),
        _ => {}
    }
    out
}

/// serde_yaml_ng's message without its own path prefix and position suffix (both are
/// reported separately).
fn bare_message(msg: &str, path: &str) -> String {
    let msg = match msg.rfind(" at line ") {
        Some(i) if msg[i..].contains(" column ") => &msg[..i],
        _ => msg,
    };
    match msg.split_once(": ") {
        Some((head, rest)) if !head.is_empty() && path.starts_with(head) => rest.to_string(),
        _ => msg.to_string(),
    }
}

/// The 1-based line and column of the node at `path` in `text`, or of the nearest
/// enclosing node that exists.
pub fn locate(text: &str, path: &[Segment]) -> Option<(usize, usize)> {
    let de = serde_yaml_ng::Deserializer::from_str(text);
    match Locate(path).deserialize(de) {
        Ok(()) => None,
        Err(e) => e.location().map(|l| (l.line(), l.column())),
    }
}

/// Walks down `path`, skipping everything else, and fails at the target so that the YAML
/// deserializer stamps the error with the target's position.
struct Locate<'p>(&'p [Segment]);

const HERE: &str = "located";

impl<'de> DeserializeSeed<'de> for Locate<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        match self.0.split_first() {
            None => d.deserialize_any(Here),
            Some((Segment::Key(k), rest)) => d.deserialize_map(InMap { key: k, rest }),
            Some((Segment::Index(i), rest)) => d.deserialize_seq(InSeq { index: *i, rest }),
        }
    }
}

struct Here;

impl<'de> Visitor<'de> for Here {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("anything")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(E::custom(HERE))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(E::custom(HERE))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(E::custom(HERE))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(E::custom(HERE))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(E::custom(HERE))
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(HERE))
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(HERE))
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(HERE))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(HERE))
    }
}

struct InMap<'p> {
    key: &'p str,
    rest: &'p [Segment],
}

impl<'de> Visitor<'de> for InMap<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a mapping")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(k) = map.next_key::<String>()? {
            if k == self.key {
                return map.next_value_seed(Locate(self.rest));
            }
            map.next_value::<IgnoredAny>()?;
        }
        // Not there: the mapping itself is the nearest position.
        Err(de::Error::custom(HERE))
    }
}

struct InSeq<'p> {
    index: usize,
    rest: &'p [Segment],
}

impl<'de> Visitor<'de> for InSeq<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a sequence")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        for _ in 0..self.index {
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Err(de::Error::custom(HERE));
            }
        }
        match seq.next_element_seed(Locate(self.rest))? {
            Some(()) => Ok(()),
            None => Err(de::Error::custom(HERE)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
spec:
  analysis:
    interval: 15s
  tiers:
  - name: a
    steps:
    - {weight: 1%, pause: 5m}
    - weight: 2%
      pause: soon
";

    #[test]
    fn locate_finds_nested_nodes() {
        let at = |p: &str| locate(DOC, &parse_path(p)).map(|(l, _)| l);
        assert_eq!(at("spec.analysis.interval"), Some(3));
        assert_eq!(at("spec.tiers[0].name"), Some(5));
        assert_eq!(at("spec.tiers[0].steps[0].pause"), Some(7));
        assert_eq!(at("spec.tiers[0].steps[1].pause"), Some(9));
        // A missing field points at its parent.
        assert!(at("spec.tiers[0].maxErrorRate").is_some());
    }

    #[test]
    fn deep_nesting_is_refused_before_parsing() {
        // 100,000 levels took minutes in the YAML scanner; now refused at once, with the place.
        let deep = format!("spec: {}{}", "[".repeat(100_000), "]".repeat(100_000));
        let started = std::time::Instant::now();
        let err = parse::<serde_yaml_ng::Value>(&deep, "s.yaml", &|_| true).expect_err("deep");
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        assert_eq!(
            err.to_string(),
            format!("s.yaml:1:{}: nested deeper than 128 levels", 6 + 129)
        );
        // Real documents, brackets in templates included, are far from the limit.
        let ok = format!(
            "a: {}1{}\nq: sum(x{{a=\"{{{{namespace}}}}\"}}[5m])\n",
            "[".repeat(100),
            "]".repeat(100)
        );
        assert!(parse::<serde_yaml_ng::Value>(&ok, "s.yaml", &|_| true).is_ok());
    }

    #[test]
    fn paths_round_trip() {
        for p in [
            "spec.tiers[1].steps[0].pause",
            "a",
            "a[0][1].b",
            "spec.analysis.requests",
        ] {
            assert_eq!(format_path(&parse_path(p)), p);
        }
    }
}
