//! A TCP proxy that holds every connection for a while before passing it on: the real
//! Prometheus behind a slow network.

use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

/// Listens on a free loopback port and forwards each connection to `upstream` (host:port)
/// after `delay`. Returns the proxy's `http://` address; it runs until the test ends.
pub async fn start(upstream: String, delay: Duration) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((mut client, _)) = listener.accept().await else {
                return;
            };
            let upstream = upstream.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                if let Ok(mut server) = TcpStream::connect(&upstream).await {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                }
            });
        }
    });
    format!("http://{addr}")
}
