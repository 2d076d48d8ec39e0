//! A Prometheus base address, parsed once where it enters (the policy, the run's copy, the
//! operator's `--prometheus-address`, `backtest --prometheus`): `http` or `https`, a host, an
//! optional base path, and nothing else. Credentials in the URL would be echoed in errors, and
//! a query or fragment would redirect the API path the operator appends; both are refused. The
//! API path is joined by path segments, so a base path such as `http://h/prom/` is kept.

use std::fmt;

use reqwest::Url;

/// The longest address accepted (the CRD's `maxLength` too).
pub const MAX_LEN: usize = 2048;

/// A Prometheus base URL that passed [`Address::parse`].
#[derive(Clone, PartialEq, Eq)]
pub struct Address {
    url: Url,
    /// The text it was parsed from, shown in messages (it holds no credentials).
    text: String,
}

/// Why an address is refused. The messages never quote the address: it may hold a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("is empty; give a URL such as http://prometheus.monitoring:9090")]
    Empty,
    #[error("is longer than {MAX_LEN} characters")]
    TooLong,
    #[error("contains whitespace or a control character")]
    Control,
    #[error("contains a backslash; write the URL with forward slashes")]
    Backslash,
    #[error("must start with http:// or https://, e.g. http://prometheus.monitoring:9090")]
    NoScheme,
    #[error("has scheme {0:?}; only http:// and https:// are allowed")]
    Scheme(String),
    #[error(
        "has credentials in it (user@ or user:password@), which would be repeated in every error; put a bearer token in spec.analysis.prometheus.bearerTokenSecret instead"
    )]
    UserInfo,
    #[error(
        "has a query (`?...`); give the base URL only, rollguard appends /api/v1/query and sends the query in the request body"
    )]
    Query,
    #[error("has a fragment (`#...`); give the base URL only")]
    Fragment,
    #[error("has no host")]
    NoHost,
    #[error("is not a valid URL: {0}")]
    Invalid(String),
}

impl Address {
    /// Parses a base URL: `http` or `https`, a host, an optional port and base path; no
    /// userinfo, query or fragment, no whitespace or backslash (which URL parsers read in
    /// different ways). What the API server's CEL rules refuse, this refuses too.
    pub fn parse(text: &str) -> Result<Address, AddressError> {
        if text.is_empty() {
            return Err(AddressError::Empty);
        }
        if text.len() > MAX_LEN {
            return Err(AddressError::TooLong);
        }
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(AddressError::Control);
        }
        if text.contains('\\') {
            return Err(AddressError::Backslash);
        }
        if text.contains('#') {
            return Err(AddressError::Fragment);
        }
        if text.contains('?') {
            return Err(AddressError::Query);
        }
        // `scheme://authority/path`, written out: the WHATWG parser would also take
        // `http:host` or `http:/host`, which other parsers (the API server's) read otherwise.
        let Some((scheme, rest)) = text.split_once("://") else {
            return Err(AddressError::NoScheme);
        };
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(
                if !scheme.is_empty()
                    && scheme
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
                {
                    AddressError::Scheme(scheme)
                } else {
                    AddressError::NoScheme
                },
            );
        }
        let authority = rest.split('/').next().unwrap_or_default();
        if authority.contains('@') {
            return Err(AddressError::UserInfo);
        }
        if authority.is_empty() {
            return Err(AddressError::NoHost);
        }
        let url = Url::parse(text).map_err(|e| AddressError::Invalid(e.to_string()))?;
        // Checked again on what the parser made of it.
        if !url.username().is_empty() || url.password().is_some() {
            return Err(AddressError::UserInfo);
        }
        if url.query().is_some() {
            return Err(AddressError::Query);
        }
        if url.fragment().is_some() {
            return Err(AddressError::Fragment);
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(AddressError::NoHost);
        }
        Ok(Address {
            url,
            text: text.to_string(),
        })
    }

    /// Parses an address given on the command line as `flag`. The error names the flag and
    /// not the value, which may hold a password (clap's own errors would repeat it).
    pub fn parse_flag(flag: &str, text: &str) -> Result<Address, String> {
        Address::parse(text).map_err(|e| format!("{flag}: the URL {e}"))
    }

    /// The URL of the Prometheus HTTP API endpoint `name` (`query`, `query_range`) under this
    /// base: its path segments, then `api`, `v1`, `name`.
    pub fn api(&self, name: &str) -> Url {
        let mut url = self.url.clone();
        // An http(s) URL always has a path to extend; the `else` cannot happen.
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().extend(["api", "v1", name]);
        }
        url
    }

    /// Whether requests go over plain `http://`.
    pub fn is_plain_http(&self) -> bool {
        self.url.scheme() == "http"
    }

    /// The address as given.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({:?})", self.text)
    }
}

impl std::str::FromStr for Address {
    type Err = AddressError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Address::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_parsed_strictly() {
        use AddressError::*;
        // (address, Ok(the query endpoint's URL) or the refusal)
        let table: &[(&str, Result<&str, AddressError>)] = &[
            (
                "http://prometheus.monitoring:9090",
                Ok("http://prometheus.monitoring:9090/api/v1/query"),
            ),
            (
                "https://prometheus.monitoring:9091/",
                Ok("https://prometheus.monitoring:9091/api/v1/query"),
            ),
            ("HTTP://P:9090", Ok("http://p:9090/api/v1/query")),
            ("http://h/prom/", Ok("http://h/prom/api/v1/query")),
            ("http://h/prom", Ok("http://h/prom/api/v1/query")),
            ("http://h/a/b/", Ok("http://h/a/b/api/v1/query")),
            (
                "http://10.0.0.7:9090",
                Ok("http://10.0.0.7:9090/api/v1/query"),
            ),
            ("http://[::1]:9090", Ok("http://[::1]:9090/api/v1/query")),
            // A dot segment cannot climb out of the base path's host.
            ("http://h/a/../../b", Ok("http://h/b/api/v1/query")),
            ("http://h/p%3Fq", Ok("http://h/p%3Fq/api/v1/query")),
            ("", Err(Empty)),
            ("prometheus:9090", Err(NoScheme)),
            ("prometheus.monitoring", Err(NoScheme)),
            ("ftp://h", Err(Scheme("ftp".into()))),
            ("file:///etc/passwd", Err(Scheme("file".into()))),
            ("http:h", Err(NoScheme)),
            ("http:/h", Err(NoScheme)),
            ("http://", Err(NoHost)),
            ("http:///x", Err(NoHost)),
            ("http://:9090", Err(Invalid("empty host".into()))),
            ("http://user:pw@h:9090", Err(UserInfo)),
            ("http://user@h", Err(UserInfo)),
            ("http://@h", Err(UserInfo)),
            ("http://h?x=1", Err(Query)),
            ("http://h/api/v1/query?query=up", Err(Query)),
            ("http://h/?", Err(Query)),
            ("http://h#frag", Err(Fragment)),
            ("http://h/#", Err(Fragment)),
            ("http://evil.example#@h", Err(Fragment)),
            ("http://h\\@evil", Err(Backslash)),
            ("http://h /x", Err(Control)),
            ("http://h\n", Err(Control)),
            (" http://h", Err(Control)),
            ("http://h:99999", Err(Invalid("invalid port number".into()))),
        ];
        let mut wrong = vec![];
        for (text, want) in table {
            let got = Address::parse(text).map(|a| a.api("query").to_string());
            if got.as_deref().map_err(Clone::clone) != *want {
                wrong.push(format!("{text:?}: got {got:?}, want {want:?}"));
            }
        }
        let long = format!("http://h/{}", "a".repeat(MAX_LEN));
        if Address::parse(&long) != Err(TooLong) {
            wrong.push("a long address is not refused".into());
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn refusals_never_quote_the_address() {
        for text in [
            "http://admin:hunter2@h",
            "http://h/?token=hunter2",
            "http://h/#hunter2",
            "gopher://hunter2",
        ] {
            let e = Address::parse(text).expect_err(text).to_string();
            assert!(!e.contains("hunter2"), "{text}: {e}");
        }
    }

    #[test]
    fn a_bad_flag_is_named_and_not_repeated() {
        let e = Address::parse_flag("--prometheus-address", "http://admin:hunter2@p:9090")
            .expect_err("credentials");
        assert!(
            e.starts_with("--prometheus-address: the URL has credentials")
                && !e.contains("hunter2"),
            "{e}"
        );
        let e =
            Address::parse_flag("--prometheus-address", "http://p:9090/?x=1").expect_err("query");
        assert!(
            e.starts_with("--prometheus-address: the URL has a query"),
            "{e}"
        );
        assert!(Address::parse_flag("--prometheus-address", "http://p:9090/prom/").is_ok());
    }

    #[test]
    fn range_queries_join_the_same_way() {
        let a = Address::parse("https://h:9091/prom/").expect("valid");
        assert_eq!(
            a.api("query_range").as_str(),
            "https://h:9091/prom/api/v1/query_range"
        );
        assert!(!a.is_plain_http());
        assert!(Address::parse("http://h").expect("valid").is_plain_http());
        assert_eq!(a.to_string(), "https://h:9091/prom/");
    }
}
