//! The registry over HTTP: a local hyper server serves a registry directory on 127.0.0.1:0.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rust_ai_ide_plugins::{
    MarketplaceConfig, PluginId, PluginMarketplace, PluginRegistry, PluginSearchQuery,
    RegistryError, RegistrySource, SearchError, Version,
};

use crate::fixture::{Env, uppercase};

/// Serves files under `root` (GET only, 404 otherwise) until the test's runtime ends.
async fn serve(root: PathBuf) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let root = root.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let path = root.join(req.uri().path().trim_start_matches("/reg/"));
                    async move {
                        let resp = match std::fs::read(&path) {
                            Ok(b) => Response::new(Full::new(Bytes::from(b))),
                            Err(_) => {
                                let mut r =
                                    Response::new(Full::new(Bytes::from_static(b"not found")));
                                *r.status_mut() = StatusCode::NOT_FOUND;
                                r
                            }
                        };
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn search_download_and_install_from_an_http_registry() {
    let env = Env::new();
    let publisher = PluginRegistry::local(env.registry_dir()).expect("registry");
    let scanner = env.market().security_scanner().clone();
    publisher
        .publish(&uppercase("1.0.0", "http:"), &scanner)
        .expect("publish");
    publisher
        .publish(&uppercase("1.1.0", "http2:"), &scanner)
        .expect("publish");
    let addr = serve(env.registry_dir()).await;

    let mut config: MarketplaceConfig = env.config();
    config.registry = RegistrySource::Remote(format!("http://{addr}/reg"));
    let market = PluginMarketplace::new(config).expect("marketplace");
    let hits = market
        .search_plugins(PluginSearchQuery {
            text: Some("selected text".into()),
            ..PluginSearchQuery::default()
        })
        .await
        .expect("search");
    assert_eq!(hits.len(), 1);
    assert_eq!(
        hits[0].version,
        Version::new(1, 1, 0),
        "newest version per plugin"
    );
    let id = PluginId::new("uppercase").expect("id");
    let pkg = market
        .download_plugin(&id, &Version::new(1, 0, 0))
        .await
        .expect("download");
    market.install_plugin(pkg).await.expect("install");
    assert_eq!(
        market
            .plugin(&id)
            .expect("installed")
            .transform("x")
            .expect("runs"),
        "http:X"
    );
    assert!(matches!(
        market.update_plugin(&id).await.expect("update"),
        rust_ai_ide_plugins::UpdateResult::Updated { .. }
    ));
    assert_eq!(
        market
            .plugin(&id)
            .expect("updated")
            .transform("x")
            .expect("runs"),
        "http2:X"
    );
    assert_eq!(market.registry_stats().available_versions, 2);
}

#[tokio::test]
async fn http_errors_name_the_url_and_status() {
    let env = Env::new();
    let addr = serve(env.dir.path().join("empty")).await;
    let mut config = env.config();
    config.registry = RegistrySource::Remote(format!("http://{addr}/reg"));
    let market = PluginMarketplace::new(config).expect("marketplace");
    let err = market
        .search_plugins(PluginSearchQuery::default())
        .await
        .expect_err("404");
    assert!(
        matches!(
            err,
            SearchError::Registry(RegistryError::Http { status: 404, .. })
        ),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains(&format!("http://{addr}/reg/index.json")),
        "{err}"
    );
}
