//! Load generator for rollguard's real data path (`make test-gateway`): users' requests sent
//! through the gateway at a fixed rate, counted as users see them.
//!
//! It sends `GET /` to `--target` (which must be a 127.x.y.z address: traffic on these machines
//! may only go to loopback) with `--host` as the Host header, `--rps` requests a second, and
//! counts each answer by the revision that gave it (the `x-rollguard-revision` and
//! `x-rollguard-track` headers the pod server sets) and each failure (a 5xx, another non-2xx, a
//! transport error or a timeout). It never queues: a request that would exceed `--max-in-flight`
//! is counted as `skipped`, so the rate it reports is the rate it sent.
//!
//! The network rule is checked before the first request and every 500 ms after: with
//! `--traefik-api`, every server URL in Traefik's `/api/http/services` must be a 127.x.y.z
//! address; one that is not stops the load at once (exit status 3), before another request is
//! sent.
//!
//! With `--requests N` it sends N requests, waits for their answers, prints the counts as one
//! JSON line on stdout and exits. Without it, it runs until SIGTERM; the first line on stdout is
//! `listening on <addr>` and `/stats` on `--listen` serves the counts so far.
//!
//! ```text
//! cargo run --example loadgen -- --target http://127.0.0.1:8000 --host web.demo.test --rps 200
//! ```

#[path = "common/process.rs"]
mod process;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use clap::Parser;
use serde::Serialize;
use tokio::sync::Semaphore;
use tracing::{error, info};

/// Command line of the load generator.
#[derive(Debug, Parser)]
#[command(
    name = "loadgen",
    about = "Requests at a fixed rate through a gateway on 127.0.0.1, counted by revision"
)]
struct Args {
    /// Base URL of the gateway's entry point, e.g. `http://127.0.0.1:8000` (loopback only).
    #[arg(long)]
    target: String,
    /// Host header of the requests (selects the HTTPRoute).
    #[arg(long)]
    host: Option<String>,
    /// Requests per second.
    #[arg(long, default_value_t = 200.0)]
    rps: f64,
    /// Send this many requests, print the counts and exit.
    #[arg(long)]
    requests: Option<u64>,
    /// Per-request timeout in milliseconds.
    #[arg(long, default_value_t = 5000)]
    timeout_ms: u64,
    /// Requests in flight at most (more are skipped, and counted).
    #[arg(long, default_value_t = 2048)]
    max_in_flight: usize,
    /// Traefik's API (`http://127.0.0.1:<port>`): its servers are checked to be loopback
    /// addresses before the first request and every 500 ms after.
    #[arg(long)]
    traefik_api: Option<String>,
    /// Where to serve /stats when running until SIGTERM.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
}

/// Whether `url`'s host is an IPv4 address in 127.0.0.0/8 (names are refused: they could
/// resolve anywhere).
fn loopback_url(url: &str) -> Result<(), String> {
    let u = reqwest::Url::parse(url).map_err(|e| format!("{url:?}: {e}"))?;
    let host = u.host_str().ok_or_else(|| format!("{url:?} has no host"))?;
    let ip: IpAddr = host
        .parse()
        .map_err(|_| format!("{url:?}: host {host:?} is not an IP address"))?;
    match ip {
        IpAddr::V4(v4) if v4.octets()[0] == 127 => Ok(()),
        _ => Err(format!("{url:?}: {ip} is outside 127.0.0.0/8")),
    }
}

/// Every server URL in Traefik's `/api/http/services` answer (weighted services have none of
/// their own; their children are listed too).
fn traefik_server_urls(services: &serde_json::Value) -> Vec<String> {
    services
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| {
            s["loadBalancer"]["servers"]
                .as_array()
                .into_iter()
                .flatten()
        })
        .filter_map(|s| s["url"].as_str().map(str::to_string))
        .collect()
}

/// Checks Traefik's servers: `Ok(n)` with how many, all loopback; `Err` names the first that
/// is not (or why the API could not be read).
async fn check_traefik(http: &reqwest::Client, api: &str) -> Result<usize, String> {
    let services: serde_json::Value = http
        .get(format!("{}/api/http/services", api.trim_end_matches('/')))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .map_err(|e| format!("Traefik's API: {e}"))?
        .json()
        .await
        .map_err(|e| format!("Traefik's API: {e}"))?;
    let urls = traefik_server_urls(&services);
    for u in &urls {
        loopback_url(u).map_err(|e| format!("Traefik routes to a server outside loopback: {e}"))?;
    }
    Ok(urls.len())
}

/// Counts of one revision's answers.
#[derive(Serialize, Default, Clone, Debug, PartialEq)]
struct Answers {
    track: String,
    requests: u64,
    /// 5xx answers.
    errors: u64,
    /// Unix time of its first answer, in seconds.
    first: f64,
}

/// What users saw.
#[derive(Serialize, Default, Clone, Debug)]
struct Stats {
    sent: u64,
    /// Not sent: `--max-in-flight` requests were already waiting.
    skipped: u64,
    /// 2xx answers.
    ok: u64,
    /// Everything else: 5xx and other non-2xx answers, transport errors, timeouts.
    failed: u64,
    failed_5xx: u64,
    failed_other_status: u64,
    failed_transport: u64,
    /// Answers by revision (`pod-template-hash`; `""` for an answer without the header, such
    /// as the gateway's own 5xx).
    by_revision: BTreeMap<String, Answers>,
    /// Why the load stopped early, when it did (the network rule).
    #[serde(skip_serializing_if = "Option::is_none")]
    stopped: Option<String>,
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Records one outcome: the answer's status and revision headers, or a transport error.
fn record(stats: &Mutex<Stats>, outcome: Result<(u16, String, String), ()>) {
    let mut s = stats.lock().unwrap_or_else(|e| e.into_inner());
    match outcome {
        Err(()) => {
            s.failed += 1;
            s.failed_transport += 1;
        }
        Ok((code, revision, track)) => {
            let a = s.by_revision.entry(revision).or_insert_with(|| Answers {
                track,
                first: unix_now(),
                ..Answers::default()
            });
            a.requests += 1;
            if code >= 500 {
                a.errors += 1;
            }
            if (200..300).contains(&code) {
                s.ok += 1;
            } else {
                s.failed += 1;
                if code >= 500 {
                    s.failed_5xx += 1;
                } else {
                    s.failed_other_status += 1;
                }
            }
        }
    }
}

async fn one(
    http: reqwest::Client,
    url: String,
    host: Option<String>,
) -> Result<(u16, String, String), ()> {
    let mut req = http.get(url);
    if let Some(h) = host {
        req = req.header(reqwest::header::HOST, h);
    }
    let r = req
        .send()
        .await
        .map_err(|e| tracing::warn!(error = %e, "request failed"))?;
    let header = |k: &str| {
        r.headers()
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let out = (
        r.status().as_u16(),
        header("x-rollguard-revision"),
        header("x-rollguard-track"),
    );
    // A failure the gateway made itself (no pod answered) is logged with its time: the log
    // says when users saw one.
    if out.0 >= 500 && out.1.is_empty() {
        tracing::warn!(status = out.0, "the gateway answered, no pod did");
    }
    // Read the body so the connection goes back to the pool.
    let _ = r.bytes().await;
    Ok(out)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let args = Args::parse();
    process::init_logging();
    if let Err(e) = loopback_url(&args.target) {
        error!("refusing to send: {e}");
        std::process::exit(3);
    }
    if args.rps.is_nan() || args.rps <= 0.0 {
        return Err("--rps must be greater than 0".into());
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_millis(args.timeout_ms))
        .pool_max_idle_per_host(args.max_in_flight)
        .build()?;
    let stop = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(Mutex::new(Stats::default()));
    if let Some(api) = &args.traefik_api {
        if let Err(e) = loopback_url(api) {
            error!("refusing to read Traefik's API: {e}");
            std::process::exit(3);
        }
        match check_traefik(&http, api).await {
            Ok(n) => info!("{n} Traefik servers, all in 127.0.0.0/8"),
            Err(e) => {
                error!("refusing to send: {e}");
                std::process::exit(3);
            }
        }
        let (http, api, stop, stats) = (http.clone(), api.clone(), stop.clone(), stats.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                // An unreadable API is not a violation; a non-loopback server is.
                if let Err(e) = check_traefik(&http, &api).await
                    && e.starts_with("Traefik routes")
                {
                    stop.store(true, Ordering::SeqCst);
                    error!("stopping the load: {e}");
                    stats.lock().unwrap_or_else(|p| p.into_inner()).stopped = Some(e);
                    return;
                }
            }
        });
    }
    let url = format!("{}/", args.target.trim_end_matches('/'));
    let limit = Arc::new(Semaphore::new(args.max_in_flight));
    let until_n = args.requests;
    if until_n.is_none() {
        let listener = tokio::net::TcpListener::bind(args.listen).await?;
        println!("listening on {}", listener.local_addr()?);
        let app = Router::new()
            .route(
                "/stats",
                get(|State(s): State<Arc<Mutex<Stats>>>| async move {
                    let body = serde_json::to_string(&*s.lock().unwrap_or_else(|e| e.into_inner()))
                        .unwrap_or_default();
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        body,
                    )
                }),
            )
            .with_state(stats.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
    }
    let start = Instant::now();
    let mut sent: u64 = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let shutdown = process::shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = &mut shutdown => break,
        }
        if stop.load(Ordering::SeqCst) {
            break;
        }
        // Due: the requests of the time elapsed so far, at the fixed rate.
        let mut due = (start.elapsed().as_secs_f64() * args.rps) as u64;
        if let Some(n) = until_n {
            due = due.min(n);
        }
        while sent < due {
            sent += 1;
            let Ok(permit) = limit.clone().try_acquire_owned() else {
                stats.lock().unwrap_or_else(|e| e.into_inner()).skipped += 1;
                continue;
            };
            stats.lock().unwrap_or_else(|e| e.into_inner()).sent += 1;
            let (http, url, host, stats) =
                (http.clone(), url.clone(), args.host.clone(), stats.clone());
            tokio::spawn(async move {
                let outcome = one(http, url, host).await;
                record(&stats, outcome);
                drop(permit);
            });
        }
        if until_n.is_some_and(|n| sent >= n) {
            break;
        }
    }
    // Wait for the answers in flight.
    let _ = limit.acquire_many(args.max_in_flight as u32).await;
    let s = stats.lock().unwrap_or_else(|e| e.into_inner()).clone();
    info!(
        sent = s.sent,
        ok = s.ok,
        failed = s.failed,
        seconds = start.elapsed().as_secs_f64(),
        "done"
    );
    println!("{}", serde_json::to_string(&s)?);
    if s.stopped.is_some() {
        std::process::exit(3);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_loopback_ip_addresses_are_targets() {
        assert!(loopback_url("http://127.0.0.1:8000").is_ok());
        assert!(loopback_url("http://127.244.3.9:8080/x").is_ok());
        for bad in [
            "http://10.244.0.5:8080",
            "http://10.0.0.12:80",
            "http://localhost:8000",
            "http://[::1]:8000",
            "http://192.168.1.1",
            "not a url",
        ] {
            assert!(loopback_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_traefik_server_is_checked() {
        let services = json!([
            {"name": "wrr@kubernetesgateway", "weighted": {"services": [{"name": "a", "weight": 995}]}},
            {"name": "ns-web-stable-http-80@kubernetesgateway",
             "loadBalancer": {"servers": [{"url": "http://127.244.0.3:8080"}, {"url": "http://127.244.0.4:8080"}]}},
            {"name": "ns-web-canary-http-80@kubernetesgateway",
             "loadBalancer": {"servers": [{"url": "http://10.244.0.9:8080"}]}}
        ]);
        let urls = traefik_server_urls(&services);
        assert_eq!(urls.len(), 3);
        let bad: Vec<_> = urls.iter().filter(|u| loopback_url(u).is_err()).collect();
        assert_eq!(bad, vec!["http://10.244.0.9:8080"]);
    }

    #[test]
    fn answers_are_counted_by_revision_and_failures_by_kind() {
        let s = Mutex::new(Stats::default());
        record(&s, Ok((200, "aaa".into(), "stable".into())));
        record(&s, Ok((500, "bbb".into(), "canary".into())));
        record(&s, Ok((502, String::new(), String::new())));
        record(&s, Ok((404, String::new(), String::new())));
        record(&s, Err(()));
        let s = s.into_inner().expect("stats");
        assert_eq!(
            (
                s.ok,
                s.failed,
                s.failed_5xx,
                s.failed_other_status,
                s.failed_transport
            ),
            (1, 4, 2, 1, 1)
        );
        assert_eq!(s.by_revision["bbb"].errors, 1);
        assert_eq!(s.by_revision[""].requests, 2);
    }
}
