//! The `/metrics` endpoint on loopback, scraped with a hyper client and parsed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rust_ai_ide_monitoring::{CONTENT_TYPE, MonitoringConfig, MonitoringSystem};

/// GETs `path` and returns the status, content type and body.
async fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let req = hyper::Request::get(path)
        .header("host", addr.to_string())
        .body(Empty::<Bytes>::new())
        .expect("request");
    let resp = sender.send_request(req).await.expect("response");
    let status = resp.status().as_u16();
    let ctype = resp
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (
        status,
        ctype,
        String::from_utf8(body.to_vec()).expect("utf-8"),
    )
}

/// Samples by `(name, sorted labels)`.
type Samples = HashMap<(String, Vec<(String, String)>), f64>;

/// Parses the text format: the samples, and the `# TYPE` of each family.
fn parse(text: &str) -> (Samples, HashMap<String, String>) {
    let mut samples = HashMap::new();
    let mut types = HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("type line");
            assert!(
                types.insert(name.to_owned(), kind.to_owned()).is_none(),
                "{name} typed twice"
            );
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("sample line");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series.to_owned(), Vec::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').expect("closing brace");
                let mut labels: Vec<(String, String)> = body
                    .split("\",")
                    .map(|pair| {
                        let (k, v) = pair.split_once("=\"").expect("label pair");
                        (k.to_owned(), v.trim_end_matches('"').to_owned())
                    })
                    .collect();
                labels.sort();
                (name.to_owned(), labels)
            }
        };
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "{name}"
        );
        samples.insert((name, labels), value);
    }
    (samples, types)
}

#[tokio::test]
async fn serves_the_text_format_on_loopback() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let system = Arc::new(MonitoringSystem::new(MonitoringConfig::default()).expect("system"));
        metrics::with_local_recorder(system.recorder(), || {
            metrics::describe_counter!("requests_total", "requests served");
            metrics::counter!("requests_total", "route" => "/complete").increment(7);
            for v in [0.01, 0.02, 0.03, 0.5] {
                metrics::histogram!("request_seconds").record(v);
            }
            metrics::gauge!("ide.open.buffers").set(4.0);
        });
        let exporter = system
            .serve_prometheus("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("exporter");
        let addr = exporter.local_addr();
        assert!(addr.ip().is_loopback());

        let (status, ctype, body) = get(addr, "/metrics").await;
        assert_eq!(status, 200);
        assert_eq!(ctype, CONTENT_TYPE);
        assert!(body.contains("# HELP requests_total requests served\n"));
        let (samples, types) = parse(&body);
        let key = |name: &str, labels: &[(&str, &str)]| {
            let mut l: Vec<(String, String)> = labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            l.sort();
            (name.to_owned(), l)
        };
        assert_eq!(
            samples[&key("requests_total", &[("route", "/complete")])],
            7.0
        );
        assert_eq!(types["requests_total"], "counter");
        assert_eq!(types["request_seconds"], "summary");
        assert_eq!(samples[&key("request_seconds_count", &[])], 4.0);
        assert!((samples[&key("request_seconds_sum", &[])] - 0.56).abs() < 1e-9);
        let p99 = samples[&key("request_seconds", &[("quantile", "0.99")])];
        assert!((p99 - 0.5).abs() / 0.5 < 0.04, "{p99}");
        assert_eq!(samples[&key("ide_open_buffers", &[])], 4.0);
        assert!(samples[&key("system_memory_total_bytes", &[])] > 0.0);
        assert!(samples[&key("process_resident_memory_bytes", &[])] > 0.0);
        assert_eq!(types["system_load1"], "gauge");

        // Each scrape collects afresh: a counter bumped in between shows up.
        metrics::with_local_recorder(system.recorder(), || {
            metrics::counter!("requests_total", "route" => "/complete").increment(1);
        });
        let (_, _, body) = get(addr, "/metrics").await;
        assert_eq!(
            parse(&body).0[&key("requests_total", &[("route", "/complete")])],
            8.0
        );

        let (status, _, _) = get(addr, "/other").await;
        assert_eq!(status, 404);
        exporter.shutdown().await;
        // The exporter no longer answers on `addr`. A connect there can still succeed: the
        // kernel may pick `addr`'s port as the client's own (a socket connected to itself),
        // or another process may bind the freed port (both seen in CI). Neither is this
        // exporter, which would still serve this test's counter at 8.
        if let Ok(stream) = tokio::net::TcpStream::connect(addr).await {
            let to_itself = stream.local_addr().ok() == stream.peer_addr().ok();
            drop(stream);
            if !to_itself {
                let answer = tokio::time::timeout(
                    Duration::from_secs(2),
                    tokio::spawn(get(addr, "/metrics")),
                )
                .await;
                if let Ok(Ok((200, _, body))) = answer {
                    let ours = key("requests_total", &[("route", "/complete")]);
                    assert_ne!(
                        parse(&body).0.get(&ours),
                        Some(&8.0),
                        "the exporter still answers on {addr} after shutdown"
                    );
                }
            }
        }
    })
    .await
    .expect("exporter test finished in time");
}
