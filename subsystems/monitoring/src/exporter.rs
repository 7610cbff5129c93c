//! The Prometheus text exposition format (0.0.4) and a hyper server that serves it at `/metrics`.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::error::MonitoringError;
use crate::monitoring::MonitoringSystem;
use crate::recorder::FastRecorder;
use crate::snapshot::{Kind, Sample};

/// The content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A running `/metrics` endpoint. Every scrape collects a fresh snapshot. Dropping the
/// handle stops the server (connections in flight finish on their own).
#[derive(Debug)]
pub struct PrometheusExporter {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl PrometheusExporter {
    pub(crate) async fn start(
        system: Arc<MonitoringSystem>,
        addr: SocketAddr,
    ) -> Result<Self, MonitoringError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| MonitoringError::Exporter(format!("bind {addr}: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| MonitoringError::Exporter(e.to_string()))?;
        let (tx, mut rx) = oneshot::channel();
        let task = tokio::spawn(async move {
            loop {
                let stream = tokio::select! {
                    _ = &mut rx => return,
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => stream,
                        Err(e) => {
                            tracing::warn!(error = %e, "prometheus exporter: accept failed");
                            continue;
                        }
                    },
                };
                let system = Arc::clone(&system);
                tokio::spawn(async move {
                    let service = service_fn(move |req| handle(Arc::clone(&system), req));
                    if let Err(e) = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await
                    {
                        tracing::debug!(error = %e, "prometheus exporter: connection ended");
                    }
                });
            }
        });
        Ok(Self {
            addr,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// The address it listens on (the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting connections and waits for the accept loop to end.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for PrometheusExporter {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

async fn handle(
    system: Arc<MonitoringSystem>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let response = |status, ctype: &str, body: String| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        if let Ok(v) = ctype.parse() {
            r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
        }
        Ok(r)
    };
    if req.uri().path() != "/metrics" {
        return response(StatusCode::NOT_FOUND, "text/plain", "not found\n".into());
    }
    match system.collect_metrics().await {
        Ok(snapshot) => response(
            StatusCode::OK,
            CONTENT_TYPE,
            render(&snapshot.samples(), system.recorder()),
        ),
        Err(e) => response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            format!("{e}\n"),
        ),
    }
}

/// Renders samples in the text exposition format: per family a `# HELP` (when described
/// through the recorder) and a `# TYPE` line, then its samples. Invalid characters in names
/// become `_`; label values are escaped.
pub(crate) fn render(samples: &[Sample], recorder: &FastRecorder) -> String {
    let mut families: Vec<(&str, Kind, Vec<&Sample>)> = Vec::new();
    for s in samples {
        match families.iter_mut().find(|f| f.0 == s.family) {
            Some(f) => f.2.push(s),
            None => families.push((&s.family, s.kind, vec![s])),
        }
    }
    let mut out = String::new();
    for (family, kind, members) in families {
        let name = sanitize(family, true);
        if let Some((_, help)) = recorder.description(family) {
            let help = help.replace('\\', "\\\\").replace('\n', "\\n");
            let _ = writeln!(out, "# HELP {name} {help}");
        }
        let kind = match kind {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
            Kind::Summary => "summary",
        };
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for s in members {
            out.push_str(&sanitize(&s.name, true));
            if !s.labels.is_empty() {
                out.push('{');
                for (i, (k, v)) in s.labels.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let v = v
                        .replace('\\', "\\\\")
                        .replace('"', "\\\"")
                        .replace('\n', "\\n");
                    let _ = write!(out, "{}=\"{v}\"", sanitize(k, false));
                }
                out.push('}');
            }
            let _ = writeln!(out, " {}", format_value(s.value));
        }
    }
    out
}

fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        v.to_string()
    }
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*` for metric names, the same without `:` for label names.
fn sanitize(name: &str, metric: bool) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || (metric && c == ':') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_families_escapes_and_sanitizes() {
        let rec = FastRecorder::new();
        metrics::with_local_recorder(&rec, || {
            metrics::describe_counter!("http.requests", "requests\nserved");
        });
        let s = |family: &str, kind, name: &str, labels: Vec<(&str, &str)>, value| Sample {
            family: family.into(),
            kind,
            name: name.into(),
            labels: labels
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            value,
        };
        let text = render(
            &[
                s(
                    "http.requests",
                    Kind::Counter,
                    "http.requests",
                    vec![("path", "/a\"b")],
                    3.0,
                ),
                s("up", Kind::Gauge, "up", vec![], f64::INFINITY),
                s(
                    "http.requests",
                    Kind::Counter,
                    "http.requests",
                    vec![("path", "/c")],
                    1.0,
                ),
            ],
            &rec,
        );
        assert_eq!(
            text,
            "# HELP http_requests requests\\nserved\n# TYPE http_requests counter\n\
             http_requests{path=\"/a\\\"b\"} 3\nhttp_requests{path=\"/c\"} 1\n\
             # TYPE up gauge\nup +Inf\n"
        );
        assert_eq!(sanitize("9lives", true), "_9lives");
        assert_eq!(sanitize("a:b", false), "a_b");
    }
}
