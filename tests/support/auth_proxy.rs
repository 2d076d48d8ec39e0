//! A TLS reverse proxy in front of the test Prometheus that wants `Authorization: Bearer
//! <token>`, as a Prometheus behind an authenticating gateway is reached in production. Its
//! certificate comes from a throwaway CA made here; it forwards every authorised request to
//! the real Prometheus unchanged and counts what it saw.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A CA and a server certificate for 127.0.0.1 and localhost signed by it.
pub struct Pki {
    /// The CA certificate, PEM: what a `caSecret` holds.
    pub ca_pem: String,
    cert: CertificateDer<'static>,
    key: Vec<u8>,
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("CA key")).expect("CA cert")
}

/// A fresh CA and a server certificate it signed.
pub fn throwaway_pki() -> Pki {
    let ca = ca("rollguard e2e throwaway CA");
    let key = KeyPair::generate().expect("server key");
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .expect("server params");
    params
        .distinguished_name
        .push(DnType::CommonName, "prometheus-gateway");
    let cert = params.signed_by(&key, &ca).expect("server cert");
    Pki {
        ca_pem: ca.pem(),
        cert: cert.der().clone(),
        key: key.serialize_der(),
    }
}

/// The PEM of another CA, which signed nothing the proxy serves.
pub fn unrelated_ca_pem() -> String {
    ca("an unrelated CA").pem()
}

/// The running proxy; stopped when dropped.
pub struct AuthProxy {
    /// `https://127.0.0.1:<port>`.
    pub url: String,
    counts: Arc<Counts>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct Counts {
    forwarded: AtomicUsize,
    refused: AtomicUsize,
    certificates_refused: AtomicUsize,
    /// What each refused request was: method, path, user agent, whether it had a header.
    refused_requests: std::sync::Mutex<Vec<String>>,
}

impl AuthProxy {
    /// Requests with the right token, forwarded to Prometheus.
    pub fn forwarded(&self) -> usize {
        self.counts.forwarded.load(Ordering::SeqCst)
    }
    /// Requests refused with 401 (no or wrong token).
    pub fn refused(&self) -> usize {
        self.counts.refused.load(Ordering::SeqCst)
    }
    /// Method, path, user agent and whether an `Authorization` header came, per refused
    /// request (never the header's value).
    pub fn refused_requests(&self) -> Vec<String> {
        self.counts
            .refused_requests
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default()
    }
    /// TLS handshakes the client broke off with an alert: it did not trust the certificate.
    pub fn certificates_refused(&self) -> usize {
        self.counts.certificates_refused.load(Ordering::SeqCst)
    }
}

impl Drop for AuthProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone)]
struct Upstream {
    url: String,
    expected: String,
    http: reqwest::Client,
    counts: Arc<Counts>,
}

/// Accepts TCP connections and completes their TLS handshakes; a handshake the client breaks
/// off because it does not trust the certificate is counted, and the next connection taken.
struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    counts: Arc<Counts>,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                continue;
            };
            let handshake = self.acceptor.accept(tcp);
            match tokio::time::timeout(Duration::from_secs(5), handshake).await {
                Ok(Ok(tls)) => return (tls, addr),
                // The client refused the certificate (it sends a fatal alert such as
                // UnknownCA); other failures, e.g. a client that timed out and hung up
                // mid-handshake on a busy machine, are not that.
                Ok(Err(e)) if refused_certificate(&e) => {
                    self.counts
                        .certificates_refused
                        .fetch_add(1, Ordering::SeqCst);
                }
                _ => {}
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

fn refused_certificate(e: &std::io::Error) -> bool {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<tokio_rustls::rustls::Error>())
        .is_some_and(|r| matches!(r, tokio_rustls::rustls::Error::AlertReceived(_)))
}

async fn forward(
    State(up): State<Upstream>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let authorised = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == up.expected);
    if !authorised {
        up.counts.refused.fetch_add(1, Ordering::SeqCst);
        let agent = headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-");
        let with = headers.contains_key(header::AUTHORIZATION);
        if let Ok(mut v) = up.counts.refused_requests.lock() {
            v.push(format!("{method} {uri} agent={agent} authorization={with}"));
        }
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "Unauthorized: a valid bearer token is required\n",
        )
            .into_response();
    }
    up.counts.forwarded.fetch_add(1, Ordering::SeqCst);
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut req = up
        .http
        .request(method, format!("{}{path}", up.url))
        .body(body);
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        req = req.header(header::CONTENT_TYPE, ct);
    }
    match req.send().await {
        Ok(resp) => {
            let status = resp.status();
            let ct = resp.headers().get(header::CONTENT_TYPE).cloned();
            let body = resp.bytes().await.unwrap_or_default();
            let mut out = (status, body).into_response();
            if let Some(ct) = ct {
                out.headers_mut().insert(header::CONTENT_TYPE, ct);
            }
            out
        }
        Err(e) => (StatusCode::BAD_GATEWAY, format!("upstream: {e}")).into_response(),
    }
}

/// Starts the proxy on 127.0.0.1 in front of `upstream`, serving `pki`'s certificate and
/// forwarding only requests that carry `Authorization: Bearer <token>`.
pub async fn start_auth_proxy(upstream: &str, token: &str, pki: &Pki) -> AuthProxy {
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki.key.clone()));
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(vec![pki.cert.clone()], key)
        .expect("server certificate");
    let tcp = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = tcp.local_addr().expect("local addr");
    let counts = Arc::new(Counts::default());
    let listener = TlsListener {
        tcp,
        acceptor: TlsAcceptor::from(Arc::new(config)),
        counts: counts.clone(),
    };
    let state = Upstream {
        url: upstream.trim_end_matches('/').to_string(),
        expected: format!("Bearer {token}"),
        http: reqwest::Client::new(),
        counts: counts.clone(),
    };
    let app = axum::Router::new().fallback(forward).with_state(state);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    AuthProxy {
        url: format!("https://{addr}"),
        counts,
        task,
    }
}
