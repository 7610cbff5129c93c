//! The reverse proxy: a hyper HTTP/1.1 server that routes each request through the
//! balancer, forwards it to the chosen instance and feeds the outcome back.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderMap, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::balancer::IntelligentLoadBalancer;
use crate::error::ProxyError;
use crate::types::{GeoLocation, InstanceId, Request};

/// Header carrying the affinity key for consistent hashing.
pub const AFFINITY_HEADER: &str = "x-affinity-key";
/// Header carrying the client's zone; with `x-origin-lat` and `x-origin-lon` it is the origin.
pub const ORIGIN_ZONE_HEADER: &str = "x-origin-zone";
/// Header the proxy adds to each response: the instance that served it.
pub const UPSTREAM_HEADER: &str = "x-upstream-instance";

/// Settings of [`BalancerProxy`].
#[derive(Debug, Clone, PartialEq)]
pub struct ProxyConfig {
    /// Where to listen (`127.0.0.1:0` by default: a free loopback port).
    pub listen: SocketAddr,
    /// Time limit of one forwarded request, response body included (10 s).
    pub upstream_timeout: Duration,
    /// Further instances tried after a failed attempt (1); only idempotent methods and
    /// refused connections are retried.
    pub retries: u32,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            upstream_timeout: Duration::from_secs(10),
            retries: 1,
        }
    }
}

struct ProxyState {
    balancer: IntelligentLoadBalancer,
    client: Client<HttpConnector, Full<Bytes>>,
    config: ProxyConfig,
}

/// A running proxy; [`BalancerProxy::shutdown`] stops it.
#[derive(Debug)]
pub struct BalancerProxy {
    local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    accept: JoinHandle<()>,
}

impl BalancerProxy {
    /// Binds `config.listen` and serves on the current tokio runtime.
    pub async fn start(
        balancer: IntelligentLoadBalancer,
        config: ProxyConfig,
    ) -> Result<Self, ProxyError> {
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| ProxyError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let local_addr = listener.local_addr().map_err(|source| ProxyError::Bind {
            addr: config.listen,
            source,
        })?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        let state = Arc::new(ProxyState {
            balancer,
            client,
            config,
        });
        let (stop, stopped) = watch::channel(false);
        let accept = tokio::spawn(accept_loop(listener, state, stopped));
        Ok(Self {
            local_addr,
            stop,
            accept,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, lets open connections finish their current request, and returns.
    pub async fn shutdown(self) {
        // An error means every receiver is gone: nothing is left to stop.
        let _ = self.stop.send(true);
        if let Err(e) = self.accept.await {
            tracing::debug!("proxy accept loop ended abnormally: {e}");
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    state: Arc<ProxyState>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            _ = stopped.changed() => return,
            a = listener.accept() => a,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!("proxy accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!("set_nodelay failed: {e}");
        }
        let state = Arc::clone(&state);
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| handle(Arc::clone(&state), req));
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc);
            tokio::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                _ = stopped.changed() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!("proxy connection ended with an error: {e}");
            }
        });
    }
}

/// The routing inputs carried by a request's headers.
fn routing_request(headers: &HeaderMap) -> Request {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let coord = |name: &str| text(name).and_then(|v| v.parse::<f64>().ok());
    Request {
        affinity_key: text(AFFINITY_HEADER).map(str::to_owned),
        origin: text(ORIGIN_ZONE_HEADER).map(|zone| {
            GeoLocation::new(
                coord("x-origin-lat").unwrap_or(0.0),
                coord("x-origin-lon").unwrap_or(0.0),
                zone,
            )
        }),
    }
}

fn plain(status: StatusCode, text: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(text)));
    *r.status_mut() = status;
    r
}

async fn handle(
    state: Arc<ProxyState>,
    req: hyper::Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    // Buffered so that a failed attempt can be retried on another instance.
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return Ok(plain(
                StatusCode::BAD_REQUEST,
                format!("cannot read request body: {e}"),
            ));
        }
    };
    let route = routing_request(&parts.headers);
    let idempotent = matches!(
        parts.method,
        Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS
    );
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut exclude: Option<InstanceId> = None;
    let mut last_error = String::new();
    for _ in 0..=state.config.retries {
        let guard = match state
            .balancer
            .start_request_excluding(&route, exclude.as_ref())
        {
            Ok(g) => g,
            Err(e) => return Ok(plain(StatusCode::SERVICE_UNAVAILABLE, e.to_string())),
        };
        let id = guard.id().clone();
        let Some(addr) = guard.address() else {
            guard.complete(false);
            last_error = format!("instance {id} has no address");
            exclude = Some(id);
            continue;
        };
        let mut up = hyper::Request::builder()
            .method(parts.method.clone())
            .uri(format!("http://{addr}{path}"));
        for (name, value) in &parts.headers {
            if name != hyper::header::HOST {
                up = up.header(name, value);
            }
        }
        let up = match up.body(Full::new(body.clone())) {
            Ok(r) => r,
            Err(e) => {
                return Ok(plain(
                    StatusCode::BAD_REQUEST,
                    format!("cannot forward request: {e}"),
                ));
            }
        };
        let attempt = async {
            let resp = state
                .client
                .request(up)
                .await
                .map_err(|e| (e.is_connect(), e.to_string()))?;
            let (rp, rb) = resp.into_parts();
            let bytes = rb
                .collect()
                .await
                .map_err(|e| (false, e.to_string()))?
                .to_bytes();
            Ok::<_, (bool, String)>(Response::from_parts(rp, Full::new(bytes)))
        };
        match tokio::time::timeout(state.config.upstream_timeout, attempt).await {
            Ok(Ok(mut resp)) => {
                guard.complete(!resp.status().is_server_error());
                if let Ok(v) = HeaderValue::from_str(id.as_str()) {
                    resp.headers_mut().insert(UPSTREAM_HEADER, v);
                }
                return Ok(resp);
            }
            Ok(Err((refused, e))) => {
                guard.complete(false);
                last_error = format!("instance {id}: {e}");
                if !(idempotent || refused) {
                    break;
                }
                exclude = Some(id);
            }
            Err(_) => {
                guard.complete(false);
                return Ok(plain(
                    StatusCode::GATEWAY_TIMEOUT,
                    format!(
                        "instance {id} did not answer within {:?}",
                        state.config.upstream_timeout
                    ),
                ));
            }
        }
    }
    Ok(plain(
        StatusCode::BAD_GATEWAY,
        format!("upstream failed: {last_error}"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_become_routing_inputs() {
        let mut h = HeaderMap::new();
        h.insert(AFFINITY_HEADER, HeaderValue::from_static("session-7"));
        h.insert(ORIGIN_ZONE_HEADER, HeaderValue::from_static("eu"));
        h.insert("x-origin-lat", HeaderValue::from_static("48.8"));
        let r = routing_request(&h);
        assert_eq!(r.affinity_key.as_deref(), Some("session-7"));
        let origin = r.origin.expect("origin");
        assert_eq!(origin.zone, "eu");
        assert_eq!(origin.latitude, 48.8);
        assert_eq!(origin.longitude, 0.0);
        assert_eq!(routing_request(&HeaderMap::new()), Request::default());
    }
}
