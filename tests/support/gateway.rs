//! The real data path (`make test-gateway`, docs/testing.md): Traefik started by
//! `ROLLGUARD_GATEWAY=traefik tests/cluster/cluster.sh up`, the pod server (the `podserver`
//! example) answering on the pods' loopback IPs, and the load generator (the `loadgen` example)
//! sending users' requests through Traefik.
//!
//! The API server refuses loopback addresses in EndpointSlices, so the EndpointSlice controller
//! cannot publish the pods; the pod server publishes them (`--publish-endpoints`, see
//! `examples/podserver.rs`) and Traefik routes to those addresses.
//!
//! Traffic may only go to 127.0.0.0/8 on these machines: [`check_loopback`] refuses to go on
//! unless the cluster's pod range, every EndpointSlice address of the namespace and every server
//! Traefik routes to are loopback addresses, and the load generator checks Traefik's servers
//! again before its first request and every 500 ms after.

use std::net::IpAddr;
use std::process::{Command, Stdio};

use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Client;
use kube::api::{Api, ListParams};
use serde_json::Value;

use super::procs::{Proc, example_bin, first_line_of, listening_address, log_dir};

/// The Traefik the cluster script started, from the env file.
pub struct Gateway {
    /// Traefik's entry point, `http://127.0.0.1:<port>`.
    pub url: String,
    /// Traefik's API and `/metrics`, `http://127.0.0.1:<port>`.
    pub api: String,
    /// The Gateway routes attach to: (namespace, name).
    pub namespace: String,
    pub name: String,
}

fn var(name: &str) -> String {
    std::env::var(name).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| {
        panic!(
            "{name} is not set: the real-gateway tests need `make test-gateway` (or \
             ROLLGUARD_GATEWAY=traefik ROLLGUARD_POD_CIDR=127.244.0.0/16 tests/cluster/cluster.sh up)"
        )
    })
}

impl Gateway {
    pub fn from_env() -> Gateway {
        assert_eq!(var("ROLLGUARD_GATEWAY"), "traefik");
        let r = var("ROLLGUARD_GATEWAY_REF");
        let (namespace, name) = r.split_once('/').expect("ROLLGUARD_GATEWAY_REF is ns/name");
        Gateway {
            url: var("ROLLGUARD_GATEWAY_URL"),
            api: var("ROLLGUARD_TRAEFIK_API"),
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }
}

/// The Host a test namespace's route answers to.
pub fn host(namespace: &str) -> String {
    format!("{namespace}.rollguard.test")
}

fn in_loopback(ip: &str) -> bool {
    matches!(ip.parse::<IpAddr>(), Ok(IpAddr::V4(v4)) if v4.octets()[0] == 127)
}

/// Panics (before any request is sent) unless the pod range, every EndpointSlice address in
/// `namespace` and every server Traefik routes to are in 127.0.0.0/8. Returns how many
/// endpoint addresses and Traefik servers it checked.
pub async fn check_loopback(client: &Client, namespace: &str, gw: &Gateway) -> (usize, usize) {
    let cidr = var("ROLLGUARD_POD_CIDR");
    let base = cidr.split('/').next().unwrap_or_default();
    assert!(
        in_loopback(base) && cidr.split('/').nth(1).and_then(|p| p.parse::<u8>().ok()) >= Some(8),
        "refusing to start: the pod range ROLLGUARD_POD_CIDR={cidr} is not inside 127.0.0.0/8"
    );
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), namespace);
    let mut addresses = 0;
    for s in slices
        .list(&ListParams::default())
        .await
        .expect("EndpointSlices")
        .items
    {
        for e in s.endpoints.iter().flatten() {
            for a in &e.addresses {
                assert!(
                    in_loopback(a),
                    "refusing to start: EndpointSlice {namespace}/{:?} has address {a}, outside 127.0.0.0/8",
                    s.metadata.name
                );
                addresses += 1;
            }
        }
    }
    let services: Value = reqwest::get(format!("{}/api/http/services", gw.api))
        .await
        .expect("Traefik's API")
        .json()
        .await
        .expect("Traefik's services as JSON");
    let mut servers = 0;
    for s in services.as_array().into_iter().flatten() {
        for srv in s["loadBalancer"]["servers"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let url = srv["url"].as_str().unwrap_or_default();
            let host = reqwest::Url::parse(url)
                .ok()
                .and_then(|u| u.host_str().map(str::to_string))
                .unwrap_or_default();
            assert!(
                in_loopback(&host),
                "refusing to start: Traefik service {} routes to {url}, outside 127.0.0.0/8",
                s["name"]
            );
            servers += 1;
        }
    }
    (addresses, servers)
}

/// The weights Traefik applies to `namespace`'s route right now: (backend service, weight)
/// of its weighted round robin, from `/api/http/services`.
pub async fn traefik_weights(gw: &Gateway, namespace: &str) -> Vec<(String, i64)> {
    let services: Value = match reqwest::get(format!("{}/api/http/services", gw.api)).await {
        Ok(r) => r.json().await.unwrap_or_default(),
        Err(_) => return Vec::new(),
    };
    let prefix = format!("httproute-{namespace}-");
    services
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["name"].as_str().is_some_and(|n| n.starts_with(&prefix)))
        .flat_map(|s| {
            s["weighted"]["services"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|w| {
            (
                w["name"].as_str().unwrap_or_default().to_string(),
                w["weight"].as_i64().unwrap_or(1),
            )
        })
        .collect()
}

/// Starts the pod server for `namespace`.
pub fn start_podserver(namespace: &str) -> Proc {
    let log = log_dir().join(format!("{namespace}-podserver.log"));
    let file = std::fs::File::create(&log).expect("creating the pod server log");
    let mut child = Command::new(example_bin("podserver"))
        .args(["--namespace", namespace, "--listen", "127.0.0.1:0"])
        .arg("--publish-endpoints")
        .env("KUBECONFIG", super::kubeconfig_path())
        .stdout(Stdio::piped())
        .stderr(file)
        .spawn()
        .expect("starting the podserver example (cargo build --example podserver)");
    let addr = listening_address(&first_line_of(&mut child), "podserver");
    Proc::new(log, addr, child)
}

/// The pod server's counts: one row per pod it served.
pub async fn pod_counts(podserver: &Proc) -> Vec<Value> {
    let v: Value = reqwest::get(format!("http://{}/counts", podserver.addr))
        .await
        .expect("the pod server's /counts")
        .json()
        .await
        .expect("JSON");
    v["pods"].as_array().cloned().unwrap_or_default()
}

/// Requests served per track (`stable`, `canary`) and per revision.
pub async fn by_track(podserver: &Proc) -> (u64, u64) {
    let rows = pod_counts(podserver).await;
    let sum = |track: &str| {
        rows.iter()
            .filter(|r| r["track"] == track)
            .map(|r| r["requests"].as_u64().unwrap_or(0))
            .sum()
    };
    (sum("stable"), sum("canary"))
}

/// Starts the load generator through the gateway at `rps` until it is dropped (its `/stats` on
/// [`Proc::addr`]).
pub fn start_loadgen(gw: &Gateway, namespace: &str, rps: u32) -> Proc {
    let log = log_dir().join(format!("{namespace}-loadgen.log"));
    let file = std::fs::File::create(&log).expect("creating the load generator log");
    let mut child = Command::new(example_bin("loadgen"))
        .args(["--target", &gw.url, "--host", &host(namespace)])
        .args(["--rps", &rps.to_string(), "--traefik-api", &gw.api])
        .stdout(Stdio::piped())
        .stderr(file)
        .spawn()
        .expect("starting the loadgen example (cargo build --example loadgen)");
    let addr = listening_address(&first_line_of(&mut child), "loadgen");
    Proc::new(log, addr, child)
}

/// What the load generator counted so far.
pub async fn loadgen_stats(loadgen: &Proc) -> Value {
    reqwest::get(format!("http://{}/stats", loadgen.addr))
        .await
        .expect("the load generator's /stats")
        .json()
        .await
        .expect("JSON")
}

/// Sends `n` requests through the gateway at `rps` and returns what users saw.
pub async fn burst(gw: &Gateway, namespace: &str, n: u64, rps: u32) -> Value {
    let (url, api, host) = (gw.url.clone(), gw.api.clone(), host(namespace));
    let out = tokio::task::spawn_blocking(move || {
        Command::new(example_bin("loadgen"))
            .args(["--target", &url, "--host", &host, "--traefik-api", &api])
            .args(["--rps", &rps.to_string(), "--requests", &n.to_string()])
            .output()
            .expect("running the loadgen example")
    })
    .await
    .expect("the load generator");
    assert!(
        out.status.success(),
        "loadgen failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("loadgen's JSON line")
}
