//! Install, search, run, reopen, update (with rollback), yank and uninstall.

use rust_ai_ide_plugins::{
    InstallationError, PluginId, PluginPackage, PluginSearchQuery, SecurityLevel, SigningKey,
    UninstallError, UpdateError, UpdateResult, Version, VersionReq, samples,
};

use crate::fixture::{Env, key, uppercase};

fn id() -> PluginId {
    PluginId::new("uppercase").expect("id")
}

#[tokio::test]
async fn install_search_run_reopen_and_uninstall() {
    let env = Env::new();
    let market = env.market();
    let scanner = market.security_scanner().clone();
    market
        .registry()
        .publish(&uppercase("1.0.0", "> "), &scanner)
        .expect("publish");

    let hits = market
        .search_plugins(PluginSearchQuery {
            text: Some("upper".into()),
            tag: Some("TEXT".into()),
            compatible_only: true,
            ..PluginSearchQuery::default()
        })
        .await
        .expect("search");
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].security_rating.level, SecurityLevel::Trusted);
    let none = market
        .search_plugins(PluginSearchQuery {
            author: Some("someone else".into()),
            ..PluginSearchQuery::default()
        })
        .await
        .expect("search");
    assert!(none.is_empty());

    let pkg = market
        .download_plugin(&id(), &Version::new(1, 0, 0))
        .await
        .expect("download");
    let res = market.install_plugin(pkg.clone()).await.expect("install");
    assert!(res.replaced.is_none());
    assert!(res.timings.compile > std::time::Duration::ZERO);
    let plugin = market.plugin(&id()).expect("installed");
    assert_eq!(
        plugin.transform("fn main() {}").expect("runs"),
        "> FN MAIN() {}"
    );
    assert!(matches!(
        market.install_plugin(pkg).await,
        Err(InstallationError::AlreadyInstalled { .. })
    ));
    let stats = market.registry_stats();
    assert_eq!(
        (
            stats.installed,
            stats.downloads,
            stats.installs,
            stats.searches
        ),
        (1, 1, 1, 2)
    );
    drop(market);

    // Reopened from disk: verified and compiled again, same behaviour.
    let market = env.market();
    assert!(market.load_failures().is_empty());
    let plugin = market.plugin(&id()).expect("still installed");
    assert_eq!(plugin.transform("abc").expect("runs"), "> ABC");
    let dir = plugin.path().to_path_buf();
    drop(plugin);

    market.uninstall_plugin(&id()).await.expect("uninstall");
    assert!(market.plugin(&id()).is_none());
    assert!(!dir.exists());
    assert!(matches!(
        market.uninstall_plugin(&id()).await,
        Err(UninstallError::NotInstalled(_))
    ));
    drop(market);
    assert!(env.market().installed().is_empty());
}

#[tokio::test]
async fn update_is_atomic_and_picks_the_newest_compatible_version() {
    let env = Env::new();
    let market = env.market();
    let scanner = market.security_scanner().clone();
    let registry = market.registry();
    registry
        .publish(&uppercase("1.0.0", "v1:"), &scanner)
        .expect("publish");
    let v1 = market
        .download_plugin(&id(), &Version::new(1, 0, 0))
        .await
        .expect("download");
    market.install_plugin(v1).await.expect("install");
    let v1_dir = market
        .plugin(&id())
        .expect("installed")
        .path()
        .to_path_buf();
    let running = market.plugin(&id()).expect("handle");

    // 1.1.0 signed by a stranger: the update fails, 1.0.0 stays installed and running.
    let mut m = samples::uppercase_manifest();
    m.version = Version::new(1, 1, 0);
    let stranger = PluginPackage::build(
        &m,
        samples::UPPERCASE_WAT,
        &SigningKey::from_bytes(&[1; 32]),
    )
    .expect("package");
    registry.publish(&stranger, &scanner).expect("publish");
    let err = market
        .update_plugin(&id())
        .await
        .expect_err("untrusted update");
    assert!(
        matches!(err, UpdateError::Install { ref kept, .. } if *kept == Version::new(1, 0, 0)),
        "{err}"
    );
    assert!(err.to_string().contains("untrusted key"), "{err}");
    assert_eq!(
        market.plugin(&id()).expect("kept").metadata().version,
        Version::new(1, 0, 0)
    );
    assert_eq!(running.transform("a").expect("old handle runs"), "v1:A");
    assert!(v1_dir.exists());

    // 1.2.0 never returns from its trial run: rejected by the sandbox, 1.0.0 kept.
    let mut m = samples::runaway_manifest();
    m.id = id();
    m.version = Version::new(1, 2, 0);
    let runaway = PluginPackage::build(&m, samples::RUNAWAY_WAT, &key()).expect("package");
    registry.publish(&runaway, &scanner).expect("publish");
    let err = market
        .update_plugin(&id())
        .await
        .expect_err("runaway update");
    assert!(err.to_string().contains("cpu budget"), "{err}");
    assert_eq!(
        market
            .plugin(&id())
            .expect("kept")
            .transform("b")
            .expect("runs"),
        "v1:B"
    );

    // Yank the runaway, add a good 1.3.0, a yanked 1.4.0 and an incompatible 2.0.0.
    registry.yank(&id(), &Version::new(1, 2, 0)).expect("yank");
    registry.yank(&id(), &Version::new(1, 1, 0)).expect("yank");
    registry
        .publish(&uppercase("1.3.0", "v3:"), &scanner)
        .expect("publish");
    registry
        .publish(&uppercase("1.4.0", "v4:"), &scanner)
        .expect("publish");
    registry.yank(&id(), &Version::new(1, 4, 0)).expect("yank");
    let mut m = samples::uppercase_manifest();
    m.version = Version::new(2, 0, 0);
    m.compatibility.host_api = VersionReq::parse("^2").expect("req");
    registry
        .publish(
            &PluginPackage::build(&m, samples::UPPERCASE_WAT, &key()).expect("pkg"),
            &scanner,
        )
        .expect("publish");

    match market.update_plugin(&id()).await.expect("update") {
        UpdateResult::Updated {
            from,
            to,
            installation,
        } => {
            assert_eq!(
                (from, to.clone()),
                (Version::new(1, 0, 0), Version::new(1, 3, 0))
            );
            assert_eq!(installation.replaced, Some(Version::new(1, 0, 0)));
        }
        other => panic!("expected an update, got {other:?}"),
    }
    assert_eq!(
        market
            .plugin(&id())
            .expect("new")
            .transform("c")
            .expect("runs"),
        "v3:C"
    );
    assert!(!v1_dir.exists(), "the replaced version's files are removed");
    assert!(matches!(
        market.update_plugin(&id()).await,
        Ok(UpdateResult::UpToDate { .. })
    ));
    let stats = market.registry_stats();
    assert_eq!(
        (stats.updates, stats.failed_updates, stats.yanked_versions),
        (1, 2, 3)
    );
    assert!(matches!(
        market.download_plugin(&id(), &Version::new(1, 4, 0)).await,
        Err(rust_ai_ide_plugins::DownloadError::Yanked { .. })
    ));
    drop(market);
    let market = env.market();
    assert_eq!(
        market.plugin(&id()).expect("persisted").metadata().version,
        Version::new(1, 3, 0)
    );
}
