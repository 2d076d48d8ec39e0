//! A sink's URL, read from a Secret and checked before anything is sent: `http` or
//! `https`, a host, no `user:password@`. The URL is a credential (a Slack webhook URL lets
//! anyone post), so it is never shown: not by `Debug`, not in errors.

use std::fmt;

use reqwest::Url;

/// A sink URL that passed [`WebhookUrl::parse`].
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookUrl(Url);

impl fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookUrl(<redacted>)")
    }
}

/// Why a URL is refused. The messages never quote the URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("is empty")]
    Empty,
    #[error("is not UTF-8 text")]
    NotUtf8,
    #[error("contains whitespace or a control character inside it")]
    Control,
    #[error("must start with http:// or https://")]
    Scheme,
    #[error(
        "has credentials in it (user@ or user:password@); use a URL whose path or query carries the receiver's token"
    )]
    UserInfo,
    #[error("has no host")]
    NoHost,
    #[error("is not a valid URL")]
    Invalid,
}

impl WebhookUrl {
    /// Parses a Secret's value: surrounding whitespace (a trailing newline from `echo`) is
    /// ignored; a query is allowed, since many receivers take their token there.
    pub fn parse(raw: &[u8]) -> Result<WebhookUrl, UrlError> {
        let text = std::str::from_utf8(raw)
            .map_err(|_| UrlError::NotUtf8)?
            .trim();
        if text.is_empty() {
            return Err(UrlError::Empty);
        }
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(UrlError::Control);
        }
        let Some((scheme, _)) = text.split_once("://") else {
            return Err(UrlError::Scheme);
        };
        if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
            return Err(UrlError::Scheme);
        }
        // The parser's own error text can echo the input: only the category is kept.
        let url = Url::parse(text).map_err(|_| UrlError::Invalid)?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(UrlError::UserInfo);
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(UrlError::NoHost);
        }
        Ok(WebhookUrl(url))
    }

    pub(super) fn url(&self) -> &Url {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::{UrlError, WebhookUrl};

    #[test]
    fn sink_urls_are_checked_without_being_repeated() {
        let cases: &[(&str, Result<(), UrlError>)] = &[
            ("https://hooks.slack.com/services/T0/B0/secret", Ok(())),
            ("http://127.0.0.1:8080/hook?token=abc\n", Ok(())),
            ("HTTPS://example.com", Ok(())),
            ("", Err(UrlError::Empty)),
            ("  \n", Err(UrlError::Empty)),
            ("ftp://example.com/x", Err(UrlError::Scheme)),
            ("example.com/hook", Err(UrlError::Scheme)),
            ("https://user:hunter2@example.com/", Err(UrlError::UserInfo)),
            ("https://token@example.com/", Err(UrlError::UserInfo)),
            ("https://exa mple.com/", Err(UrlError::Control)),
            ("http://", Err(UrlError::Invalid)),
            ("http://[::1/", Err(UrlError::Invalid)),
        ];
        for (text, want) in cases {
            let got = WebhookUrl::parse(text.as_bytes()).map(|_| ());
            assert_eq!(&got, want, "{text:?}");
            if let Err(e) = got {
                assert!(!e.to_string().contains("hunter2"), "{e}");
            }
        }
        assert_eq!(
            WebhookUrl::parse(&[0xff, 0xfe]).map(|_| ()),
            Err(UrlError::NotUtf8)
        );
        let u = WebhookUrl::parse(b"https://example.com/secret-path").expect("valid");
        assert!(!format!("{u:?}").contains("secret"));
    }
}
