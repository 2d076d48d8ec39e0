//! The Prometheus HTTP API client: one instant query, answered as a number, no data, or an
//! error whose category is stable enough to be a metric label; and the readers of instant and
//! range answers. Bearer tokens never appear in errors, logs or Debug output, a token is
//! never sent over plain `http://` unless the endpoint allows it, and no error repeats what
//! the server answered beyond Prometheus' own `errorType` and `error` fields: whatever the
//! address points at, its answers do not come back through status and Events.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

pub use super::address::{Address, AddressError};

/// Where and how to reach Prometheus.
#[derive(Clone)]
pub struct Endpoint {
    /// Base URL, e.g. `http://prometheus.monitoring:9090`.
    pub address: Address,
    /// Bearer token sent with every query.
    pub token: Option<String>,
    /// Per-query timeout.
    pub timeout: Duration,
    /// The token may go over plain `http://` (`spec.analysis.prometheus.insecure`); without
    /// it such a query is refused before anything is sent.
    pub insecure: bool,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("address", &self.address)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .field("insecure", &self.insecure)
            .finish()
    }
}

/// What a query answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// One number.
    Value(f64),
    /// An empty vector or NaN: nothing to judge.
    NoData(String),
}

impl Answer {
    /// What the `tag` query answered with `value` (`None`: an empty vector).
    pub fn of(tag: &str, value: Option<f64>) -> Answer {
        match value {
            None => Answer::NoData(format!("the {tag} query returned an empty vector")),
            Some(v) if v.is_nan() => Answer::NoData(format!("the {tag} query returned NaN")),
            Some(v) => Answer::Value(v),
        }
    }
}

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("Prometheus at {address} is unreachable: {message}")]
    Unreachable { address: String, message: String },
    #[error("Prometheus at {address} did not answer within {timeout:?}")]
    Timeout { address: String, timeout: Duration },
    #[error("Prometheus rejected the query ({error_type}): {message}")]
    Rejected { error_type: String, message: String },
    /// The body is not quoted: the address may point at something that is not Prometheus,
    /// and its answer must not come back through status and Events.
    #[error("Prometheus answered HTTP {status} {reason} (the body of the answer is not shown)")]
    Http { status: u16, reason: &'static str },
    #[error(
        "refusing to send the bearer token to {address} over plain http://, where anyone on the path can read it: use an https:// address, or allow it explicitly (spec.analysis.prometheus.insecure: true; backtest --insecure)"
    )]
    TokenOverHttp { address: String },
    #[error("the query returned {series} series; wrap it in sum(...) so it returns one number")]
    TooManySeries { series: usize },
    #[error("Prometheus sent an answer rollguard cannot read: {0}")]
    Malformed(String),
}

/// The most characters of text from an answer that an error quotes: the message ends up in
/// the run's status, a condition and an Event, which a huge answer must not blow up.
const QUOTED_CHARS: usize = 200;

/// `text`, cut to [`QUOTED_CHARS`] characters with a mark when it was longer.
fn clip(text: &str) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(QUOTED_CHARS).collect();
    if chars.next().is_some() {
        format!("{head}… (cut)")
    } else {
        head
    }
}

impl QueryError {
    /// An answer rollguard cannot read, described by `why` (cut to a bounded length).
    pub fn malformed(why: impl std::fmt::Display) -> QueryError {
        QueryError::Malformed(clip(&why.to_string()))
    }

    /// A short stable category for metrics and Event reasons.
    pub fn category(&self) -> &'static str {
        match self {
            QueryError::Unreachable { .. } => "prometheus_unreachable",
            QueryError::Timeout { .. } => "prometheus_timeout",
            QueryError::Rejected { .. } => "query_rejected",
            QueryError::Http { .. } => "prometheus_http",
            QueryError::TokenOverHttp { .. } => "prometheus_insecure",
            QueryError::TooManySeries { .. } => "query_shape",
            QueryError::Malformed(_) => "prometheus_malformed",
        }
    }
}

#[derive(Deserialize)]
struct ApiResponse {
    status: String,
    #[serde(default)]
    data: Option<ApiData>,
    #[serde(rename = "errorType", default)]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct ApiData {
    #[serde(rename = "resultType")]
    result_type: String,
    result: serde_json::Value,
}

/// One series of an instant query answer: its labels and value.
pub type Series = (BTreeMap<String, String>, f64);

/// What is wrong with an answer serde could not read, without serde's message, which quotes
/// the offending value.
fn unreadable(what: &str, e: &serde_json::Error) -> QueryError {
    let kind = match e.classify() {
        serde_json::error::Category::Data => "not in the shape of Prometheus' answer",
        _ => "not JSON",
    };
    // A value read from a parsed document has no position (line 0).
    let at = if e.line() > 0 {
        format!(" (line {}, column {})", e.line(), e.column())
    } else {
        String::new()
    };
    QueryError::malformed(format!("{what} is {kind}{at}"))
}

/// A result type named in a message: Prometheus' own, or a word that quotes nothing.
fn result_type_name(t: &str) -> &str {
    match t {
        "vector" | "scalar" | "matrix" | "string" => t,
        _ => "(not one of Prometheus')",
    }
}

/// Reads the Prometheus API envelope: the `resultType` and `result` of a success answer, or
/// the error Prometheus gave.
pub fn parse_result(body: &[u8]) -> Result<(String, serde_json::Value), QueryError> {
    let resp: ApiResponse =
        serde_json::from_slice(body).map_err(|e| unreadable("the answer", &e))?;
    if resp.status != "success" {
        return Err(QueryError::Rejected {
            error_type: clip(resp.error_type.as_deref().unwrap_or("unknown")),
            message: clip(resp.error.as_deref().unwrap_or_default()),
        });
    }
    let data = resp
        .data
        .ok_or_else(|| QueryError::malformed("no data in a success answer"))?;
    Ok((data.result_type, data.result))
}

/// Reads one sample value as Prometheus spells it (`NaN`, `+Inf`, `-Inf` included).
pub fn parse_value(s: &str) -> Result<f64, QueryError> {
    match s {
        "NaN" => Ok(f64::NAN),
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        _ => s
            .parse()
            .map_err(|_| QueryError::malformed("a sample value is not a number")),
    }
}

/// Reads the `data` of an instant query answer as a list of series (a scalar is one
/// series without labels).
pub fn parse_vector(body: &[u8]) -> Result<Vec<Series>, QueryError> {
    let (result_type, result) = parse_result(body)?;
    let value_of = |pair: &serde_json::Value| -> Result<f64, QueryError> {
        let s = pair
            .get(1)
            .and_then(|v| v.as_str())
            .ok_or_else(|| QueryError::malformed("a sample has no value"))?;
        parse_value(s)
    };
    match result_type.as_str() {
        "scalar" => Ok(vec![(BTreeMap::new(), value_of(&result)?)]),
        "vector" => {
            let series = result
                .as_array()
                .ok_or_else(|| QueryError::malformed("vector result is not a list"))?;
            series
                .iter()
                .map(|s| {
                    let labels = s
                        .get("metric")
                        .and_then(|m| serde_json::from_value(m.clone()).ok())
                        .unwrap_or_default();
                    Ok((
                        labels,
                        value_of(s.get("value").unwrap_or(&serde_json::Value::Null))?,
                    ))
                })
                .collect()
        }
        other => Err(QueryError::malformed(format!(
            "result type {}; the query must return an instant vector or a scalar",
            result_type_name(other)
        ))),
    }
}

/// One series of a range query: labels and `(unix seconds, value)` points.
pub type RangeSeries = (BTreeMap<String, String>, Vec<(f64, f64)>);

/// Reads the `data` of a range query answer (a matrix).
pub fn parse_matrix(body: &[u8]) -> Result<Vec<RangeSeries>, QueryError> {
    #[derive(serde::Deserialize)]
    struct Series {
        #[serde(default)]
        metric: BTreeMap<String, String>,
        #[serde(default)]
        values: Vec<(f64, String)>,
    }
    let (result_type, result) = parse_result(body)?;
    if result_type != "matrix" {
        return Err(QueryError::malformed(format!(
            "result type {}; a range query answers with a matrix",
            result_type_name(&result_type)
        )));
    }
    let series: Vec<Series> =
        serde_json::from_value(result).map_err(|e| unreadable("the matrix", &e))?;
    series
        .into_iter()
        .map(|s| {
            let points = s
                .values
                .into_iter()
                .map(|(t, v)| Ok((t, parse_value(&v)?)))
                .collect::<Result<Vec<_>, QueryError>>()?;
            Ok((s.metric, points))
        })
        .collect()
}

/// The label that tells the parts of a combined query apart.
pub const PART_LABEL: &str = "rollguard_part";

/// Combines several single-number queries into one, so one analysis costs one request:
/// each part is tagged with [`PART_LABEL`] and the parts are joined with `or`. Each part
/// ends with a line break, so a `#` comment in a template ends with its part instead of
/// swallowing the rest of the combined query.
pub fn combine(parts: &[(&str, &str)]) -> String {
    parts
        .iter()
        .map(|(tag, q)| format!("label_replace(({q}\n), \"{PART_LABEL}\", \"{tag}\", \"\", \"\")"))
        .collect::<Vec<_>>()
        .join(" or ")
}

/// Whether a series of a combined query's answer belongs to the part tagged `tag`.
pub fn is_part(labels: &BTreeMap<String, String>, tag: &str) -> bool {
    labels.get(PART_LABEL).map(String::as_str) == Some(tag)
}

/// The values of the part tagged `tag` in a combined query's answer.
pub fn values_of(series: &[Series], tag: &str) -> Vec<f64> {
    series
        .iter()
        .filter(|(l, _)| is_part(l, tag))
        .map(|(_, v)| *v)
        .collect()
}

/// Splits the answer of a combined query into one [`Answer`] per part. A part with no
/// series is `NoData`; a part with several is an error (the template lacks a `sum`).
pub fn split(series: &[Series], tags: &[&str]) -> Result<BTreeMap<String, Answer>, QueryError> {
    let mut out = BTreeMap::new();
    for tag in tags {
        let mine = values_of(series, tag);
        let answer = match mine.as_slice() {
            [] => Answer::of(tag, None),
            [v] => Answer::of(tag, Some(*v)),
            many => {
                return Err(QueryError::TooManySeries { series: many.len() });
            }
        };
        out.insert((*tag).to_string(), answer);
    }
    Ok(out)
}

/// A reusable HTTP client for Prometheus queries.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
}

impl Client {
    /// A client that verifies TLS against the system roots plus `extra_ca` (PEM), unless
    /// `insecure` is set.
    pub fn new(extra_ca: Option<&[u8]>, insecure: bool) -> Result<Client, String> {
        let mut b = reqwest::Client::builder()
            .user_agent(concat!("rollguard/", env!("CARGO_PKG_VERSION")))
            .danger_accept_invalid_certs(insecure);
        if let Some(pem) = extra_ca {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| format!("the CA bundle is not valid PEM: {e}"))?;
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        let http = b.build().map_err(|e| e.to_string())?;
        Ok(Client { http })
    }

    /// Runs one instant query and returns its series.
    pub async fn query(&self, ep: &Endpoint, promql: &str) -> Result<Vec<Series>, QueryError> {
        post(
            &self.http,
            ep,
            "query",
            &[("query", promql.to_string())],
            parse_vector,
        )
        .await
    }
}

/// Posts a form to one of Prometheus's HTTP API endpoints (`query`, `query_range`) with the
/// endpoint's token and timeout, and reads a successful answer with `read`. An error answer
/// becomes `Rejected` when Prometheus explains it in JSON (400/422), else `Http`; a failed
/// send becomes `Timeout` or `Unreachable`. A token bound for plain `http://` is refused
/// before anything is sent, unless the endpoint is `insecure`.
pub async fn post<T>(
    http: &reqwest::Client,
    ep: &Endpoint,
    path: &str,
    form: &[(&str, String)],
    read: fn(&[u8]) -> Result<T, QueryError>,
) -> Result<T, QueryError> {
    if ep.token.is_some() && ep.address.is_plain_http() && !ep.insecure {
        return Err(QueryError::TokenOverHttp {
            address: ep.address.to_string(),
        });
    }
    let url = ep.address.api(path);
    let mut req = http.post(url).timeout(ep.timeout).form(form);
    if let Some(t) = &ep.token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.map_err(|e| send_error(ep, e))?;
    let status = resp.status();
    let body = resp.bytes().await.map_err(|e| send_error(ep, e))?;
    if !status.is_success() {
        if let Err(e @ QueryError::Rejected { .. }) = read(&body) {
            return Err(e);
        }
        return Err(QueryError::Http {
            status: status.as_u16(),
            reason: status.canonical_reason().unwrap_or("(no standard reason)"),
        });
    }
    read(&body)
}

fn send_error(ep: &Endpoint, e: reqwest::Error) -> QueryError {
    if e.is_timeout() {
        return QueryError::Timeout {
            address: ep.address.to_string(),
            timeout: ep.timeout,
        };
    }
    // The URL in reqwest's message carries no credentials: the token is a header, and the
    // address has no userinfo (`Address::parse`).
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        message = format!("{message}: {s}");
        source = s.source();
    }
    QueryError::Unreachable {
        address: ep.address.to_string(),
        message,
    }
}

#[cfg(test)]
mod fuzz;

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(body: &[u8]) -> Result<BTreeMap<String, Answer>, QueryError> {
        split(&parse_vector(body)?, &["requests", "errors"])
    }

    #[test]
    fn answers_are_read_as_value_no_data_or_error() {
        let ok = br#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"rollguard_part":"requests"},"value":[1.5,"42.5"]},
            {"metric":{"rollguard_part":"errors"},"value":[1.5,"2"]}]}}"#;
        let p = parts(ok).expect("ok");
        assert_eq!(p["requests"], Answer::Value(42.5));
        assert_eq!(p["errors"], Answer::Value(2.0));
        let partial = br#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"rollguard_part":"requests"},"value":[1,"NaN"]}]}}"#;
        let p = parts(partial).expect("partial");
        assert!(matches!(&p["requests"], Answer::NoData(m) if m.contains("NaN")));
        assert!(matches!(&p["errors"], Answer::NoData(m) if m.contains("empty")));
        let two = br#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"rollguard_part":"errors","code":"500"},"value":[1,"1"]},
            {"metric":{"rollguard_part":"errors","code":"503"},"value":[1,"2"]}]}}"#;
        let e = parts(two).expect_err("two series");
        assert_eq!(e.category(), "query_shape");
        assert!(e.to_string().contains("sum("), "{e}");
        let bad = br#"{"status":"error","errorType":"bad_data","error":"parse error at char 5"}"#;
        let e = parse_vector(bad).expect_err("rejected");
        assert_eq!(
            e.to_string(),
            "Prometheus rejected the query (bad_data): parse error at char 5"
        );
        assert!(parse_vector(b"<html>").is_err());
        let matrix = br#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
        assert!(parse_vector(matrix).is_err());
        let scalar = br#"{"status":"success","data":{"resultType":"scalar","result":[1,"3"]}}"#;
        assert_eq!(parse_vector(scalar).expect("scalar")[0].1, 3.0);
    }

    #[test]
    fn combined_queries_tag_each_part() {
        let q = combine(&[("requests", "sum(a)"), ("errors", "sum(b)")]);
        assert_eq!(
            q,
            "label_replace((sum(a)\n), \"rollguard_part\", \"requests\", \"\", \"\") or label_replace((sum(b)\n), \"rollguard_part\", \"errors\", \"\", \"\")"
        );
    }

    #[test]
    fn a_comment_in_a_template_ends_with_its_part() {
        // Templates may carry `#` comments; combined on one line, the first comment used to
        // swallow the rest of the query, and Prometheus refused every analysis.
        let q = combine(&[
            ("requests", "sum(a) # all requests"),
            ("errors", "sum(b) # 5xx only"),
        ]);
        let literals = crate::analysis::query::string_literals(&q).expect("lexes");
        assert_eq!(
            literals,
            [
                "rollguard_part",
                "requests",
                "",
                "",
                "rollguard_part",
                "errors",
                "",
                ""
            ]
        );
    }

    #[test]
    fn errors_quote_a_bounded_part_of_the_answer() {
        // A huge answer (a proxy's error page, a misbehaving server) once went whole into the
        // error, and from there into the run's status and Events.
        let big = "x".repeat(100_000);
        let answers = [
            serde_json::json!({"status": "error", "errorType": big, "error": big}),
            serde_json::json!({"status": "success", "data": {"resultType": big, "result": []}}),
            serde_json::json!({"status": "success", "data": {"resultType": "vector", "result": [{"value": [1, big]}]}}),
            serde_json::json!({"status": "success", "data": {"resultType": "vector", "result": [{"value": [big]}]}}),
        ];
        for (i, a) in answers.into_iter().enumerate() {
            let e = parse_vector(a.to_string().as_bytes()).expect_err("refused");
            let m = e.to_string();
            assert!(m.chars().count() < 600, "{} chars", m.chars().count());
            // Prometheus' own error is quoted, cut; nothing else of an answer is.
            assert_eq!(m.contains("xxx"), i == 0, "{m}");
            assert_eq!(m.contains("(cut)"), i == 0, "{m}");
        }
        assert_eq!(clip("short"), "short");
    }

    #[test]
    fn the_token_is_never_printed() {
        let ep = Endpoint {
            address: Address::parse("http://p").expect("valid"),
            token: Some("s3cr3t".into()),
            timeout: Duration::from_secs(1),
            insecure: false,
        };
        assert!(!format!("{ep:?}").contains("s3cr3t"));
    }

    #[test]
    fn answers_are_not_repeated_beyond_prometheus_own_error() {
        // The address may point at any service the operator can reach (read-back SSRF): what
        // it answers must not come back through the run's status and Events. Only the
        // envelope's `errorType` and `error`, Prometheus' own explanation, are quoted.
        let answers: &[&[u8]] = &[
            b"<html>hunter2</html>",
            br#"{"hunter2": 1"#,
            br#"{"status": "hunter2"}"#,
            br#"{"status": ["hunter2"]}"#,
            br#"{"status": "success", "data": "hunter2"}"#,
            br#"{"status": "success", "data": {"resultType": "hunter2", "result": []}}"#,
            br#"{"status": "success", "data": {"resultType": "vector", "result": "hunter2"}}"#,
            br#"{"status": "success", "data": {"resultType": "vector", "result": [{"value": [1, "hunter2"]}]}}"#,
            br#"{"status": "success", "data": {"resultType": "vector", "result": [{"value": ["hunter2"]}]}}"#,
            br#"{"status": "success", "data": {"resultType": "vector", "result": [{"metric": {"a": "hunter2"}}]}}"#,
            br#"{"status": "success", "data": {"resultType": "scalar", "result": {"hunter2": 1}}}"#,
        ];
        for a in answers {
            for e in [parse_vector(a).err(), parse_matrix(a).err()]
                .into_iter()
                .flatten()
            {
                let m = e.to_string();
                assert!(
                    !m.contains("hunter2"),
                    "{}: {m}",
                    String::from_utf8_lossy(a)
                );
            }
        }
        let matrix = br#"{"status": "success", "data": {"resultType": "matrix", "result": [{"values": [[1, "hunter2"]]}]}}"#;
        let m = parse_matrix(matrix).expect_err("not a number").to_string();
        assert!(!m.contains("hunter2"), "{m}");
        let bad =
            br#"{"status": "success", "data": {"resultType": "matrix", "result": {"hunter2": 1}}}"#;
        let m = parse_matrix(bad).expect_err("not a list").to_string();
        assert_eq!(
            m,
            "Prometheus sent an answer rollguard cannot read: the matrix is not in the shape of Prometheus' answer"
        );
        let m = parse_vector(br#"{"status": "success", "data": "hunter2"}"#)
            .expect_err("no data object")
            .to_string();
        assert!(
            m.ends_with("is not in the shape of Prometheus' answer (line 1, column 39)"),
            "{m}"
        );
        // Prometheus' own explanation is kept (cut short).
        let own =
            br#"{"status": "error", "errorType": "bad_data", "error": "parse error: hunter2"}"#;
        let m = parse_vector(own).expect_err("rejected").to_string();
        assert!(m.contains("parse error: hunter2"), "{m}");
    }

    /// A server on 127.0.0.1 that answers every connection with `answer` and counts them.
    async fn serve(
        answer: &'static str,
    ) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let seen = std::sync::Arc::new(AtomicUsize::new(0));
        let count = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(answer.as_bytes()).await;
                let _ = s.shutdown().await;
            }
        });
        (format!("http://{addr}"), seen)
    }

    #[tokio::test]
    async fn a_non_2xx_body_is_not_repeated() {
        let (address, _) = serve(
            "HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/html\r\ncontent-length: 27\r\nconnection: close\r\n\r\n<p>internal: hunter2</p>\n\n\n",
        )
        .await;
        let ep = Endpoint {
            address: Address::parse(&address).expect("valid"),
            token: None,
            timeout: Duration::from_secs(5),
            insecure: false,
        };
        let e = Client::new(None, false)
            .expect("client")
            .query(&ep, "up")
            .await
            .expect_err("502");
        assert_eq!(e.category(), "prometheus_http");
        assert_eq!(
            e.to_string(),
            "Prometheus answered HTTP 502 Bad Gateway (the body of the answer is not shown)"
        );
    }

    #[tokio::test]
    async fn a_token_is_not_sent_over_plain_http_unless_allowed() {
        use std::sync::atomic::Ordering;
        let ok = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 68\r\nconnection: close\r\n\r\n{\"status\":\"success\",\"data\":{\"resultType\":\"scalar\",\"result\":[1,\"3\"]}}";
        let (address, seen) = serve(ok).await;
        let client = Client::new(None, false).expect("client");
        let mut ep = Endpoint {
            address: Address::parse(&address).expect("valid"),
            token: Some("s3cr3t".into()),
            timeout: Duration::from_secs(5),
            insecure: false,
        };
        let e = client.query(&ep, "up").await.expect_err("refused");
        assert_eq!(e.category(), "prometheus_insecure");
        assert!(
            e.to_string().contains("spec.analysis.prometheus.insecure")
                && !e.to_string().contains("s3cr3t"),
            "{e}"
        );
        assert_eq!(seen.load(Ordering::SeqCst), 0, "nothing was sent");
        // Without a token, or with `insecure`, the query goes out.
        ep.insecure = true;
        let got = client.query(&ep, "up").await.expect("allowed");
        assert_eq!(got[0].1, 3.0);
        ep.insecure = false;
        ep.token = None;
        client.query(&ep, "up").await.expect("no token");
        assert_eq!(seen.load(Ordering::SeqCst), 2);
    }
}
