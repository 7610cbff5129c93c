//! Loopback HTTP backends for the tests: hyper servers with a name, a delay and a health status.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// A backend that answers `hello from <name>` after `delay`, and `/health` with `health_status`.
pub struct Backend {
    pub addr: SocketAddr,
    pub served: Arc<AtomicU64>,
    pub health_status: Arc<AtomicU16>,
    task: JoinHandle<()>,
}

impl Backend {
    pub async fn start(name: &str, delay: Duration) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let served = Arc::new(AtomicU64::new(0));
        let health_status = Arc::new(AtomicU16::new(200));
        let (s, h, name) = (
            Arc::clone(&served),
            Arc::clone(&health_status),
            name.to_owned(),
        );
        let task = tokio::spawn(async move {
            // Owned here so that aborting the backend also drops every open connection.
            let mut conns = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (s, h, name) = (Arc::clone(&s), Arc::clone(&h), name.clone());
                conns.spawn(async move {
                    let svc = service_fn(move |req: hyper::Request<Incoming>| {
                        let (s, h, name) = (Arc::clone(&s), Arc::clone(&h), name.clone());
                        async move {
                            if req.uri().path() == "/health" {
                                let mut r = Response::new(Full::new(Bytes::from_static(b"ok")));
                                *r.status_mut() = StatusCode::from_u16(h.load(Ordering::Relaxed))
                                    .expect("status");
                                return Ok::<_, Infallible>(r);
                            }
                            tokio::time::sleep(delay).await;
                            s.fetch_add(1, Ordering::Relaxed);
                            Ok(Response::new(Full::new(Bytes::from(format!(
                                "hello from {name}"
                            )))))
                        }
                    });
                    let conn = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc);
                    // A client that hangs up mid-request is not a test failure.
                    let _ = conn.await;
                });
            }
        });
        Backend {
            addr,
            served,
            health_status,
            task,
        }
    }

    /// Kills the server and every open connection; its port refuses connections after.
    pub fn kill(&self) {
        self.task.abort();
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A listener that accepts connections and never answers: probes against it time out.
pub async fn black_hole() -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    (addr, task)
}

/// A loopback address with nothing listening: connections are refused.
pub async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("addr")
}

/// Sends `GET path` to `addr` with `headers`; returns the status, the body and the upstream header.
pub async fn get(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String, Option<String>) {
    use http_body_util::BodyExt;
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    let driver = tokio::spawn(conn);
    let mut req = hyper::Request::get(path).header(hyper::header::HOST, addr.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = sender
        .send_request(req.body(Full::new(Bytes::new())).expect("request"))
        .await
        .expect("send");
    let status = resp.status().as_u16();
    let upstream = resp
        .headers()
        .get(rust_ai_ide_balancer::UPSTREAM_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    driver.abort();
    (
        status,
        String::from_utf8_lossy(&body).into_owned(),
        upstream,
    )
}
