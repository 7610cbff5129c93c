//! Every hostile plugin of the issue is rejected or stopped with an error naming the problem;
//! the host keeps running and the installed good plugin is untouched and still works.

use std::collections::BTreeMap;

use rust_ai_ide_plugins::{
    DownloadError, InstallationError, PackageError, PackageLimits, PluginError, PluginId,
    PluginMarketplace, PluginPackage, Version, VersionReq, samples,
};

use crate::fixture::{
    Env, FORBIDDEN_WAT, GROWER_WAT, key, manifest, raw_archive, snapshot, uppercase,
};

/// Installs the good plugin; returns the marketplace.
async fn with_good_plugin(env: &Env) -> PluginMarketplace {
    let market = env.market();
    market
        .install_plugin(uppercase("1.0.0", "ok:"))
        .await
        .expect("good plugin installs");
    market
}

/// The good plugin still runs and its files are byte-for-byte what they were.
fn assert_undamaged(
    env: &Env,
    market: &PluginMarketplace,
    before: &[(std::path::PathBuf, Vec<u8>)],
) {
    let good = market
        .plugin(&PluginId::new("uppercase").expect("id"))
        .expect("still installed");
    assert_eq!(
        good.transform("still here").expect("good plugin runs"),
        "ok:STILL HERE"
    );
    assert_eq!(market.installed().len(), 1);
    assert_eq!(snapshot(&env.install_dir()), before);
}

#[tokio::test]
async fn infinite_loop_is_stopped_by_the_epoch_deadline() {
    let env = Env::new();
    let market = with_good_plugin(&env).await;
    let before = snapshot(&env.install_dir());
    let pkg = PluginPackage::build(&samples::runaway_manifest(), samples::RUNAWAY_WAT, &key())
        .expect("pkg");
    let err = market
        .install_plugin(pkg.clone())
        .await
        .expect_err("trial run stopped");
    assert!(
        matches!(
            err,
            InstallationError::Sandbox {
                source: PluginError::Timeout { .. },
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("runaway") && err.to_string().contains("cpu budget"),
        "{err}"
    );
    // Run directly in the sandbox too: stopped at call time.
    let compiled = market
        .runtime()
        .compile(pkg.manifest(), pkg.module(), BTreeMap::new())
        .expect("compiles");
    let err = compiled.transform("spin").expect_err("stopped");
    assert!(
        matches!(
            err,
            PluginError::Timeout {
                budget_ticks: 50,
                ..
            }
        ),
        "{err}"
    );
    assert_undamaged(&env, &market, &before);
}

#[tokio::test]
async fn memory_grower_is_stopped_at_its_limit() {
    let env = Env::new();
    let market = with_good_plugin(&env).await;
    let before = snapshot(&env.install_dir());
    let pkg = PluginPackage::build(&manifest("grower", 2 << 20), GROWER_WAT, &key()).expect("pkg");
    let err = market.install_plugin(pkg).await.expect_err("stopped");
    assert!(
        matches!(
            err,
            InstallationError::Sandbox {
                source: PluginError::MemoryLimit { limit: 2097152, .. },
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("over its limit of 2097152"),
        "{err}"
    );
    assert_undamaged(&env, &market, &before);
}

#[tokio::test]
async fn forbidden_import_is_rejected_by_the_scan() {
    let env = Env::new();
    let market = with_good_plugin(&env).await;
    let before = snapshot(&env.install_dir());
    let pkg =
        PluginPackage::build(&manifest("forbidden", 64 << 10), FORBIDDEN_WAT, &key()).expect("pkg");
    let err = market.install_plugin(pkg).await.expect_err("rejected");
    assert!(matches!(err, InstallationError::Rejected { .. }), "{err}");
    assert!(
        err.to_string().contains("wasi_snapshot_preview1.path_open"),
        "{err}"
    );
    assert_eq!(market.registry_stats().rejected, 1);
    assert_undamaged(&env, &market, &before);
}

#[tokio::test]
async fn tampered_packages_are_rejected() {
    let env = Env::new();
    let market = with_good_plugin(&env).await;
    let before = snapshot(&env.install_dir());
    // The module swapped after signing (a registry or mirror that was compromised).
    let good = uppercase("1.1.0", "ok:");
    let swapped = wat::parse_str(samples::RUNAWAY_WAT).expect("wat");
    let tampered =
        PluginPackage::from_parts(good.manifest_bytes().to_vec(), swapped, *good.signature())
            .expect("parts");
    let err = market.install_plugin(tampered).await.expect_err("rejected");
    assert!(
        err.to_string().contains("signature does not match"),
        "{err}"
    );

    // An archive altered in the registry after publishing: the index hash catches it.
    let scanner = market.security_scanner().clone();
    let entry = market.registry().publish(&good, &scanner).expect("publish");
    let path = env.registry_dir().join(&entry.path);
    let mut bytes = std::fs::read(&path).expect("archive");
    let last = bytes.len() - 2000;
    bytes[last] ^= 0xff;
    std::fs::write(&path, bytes).expect("tamper");
    let err = market
        .download_plugin(&entry.id, &entry.version)
        .await
        .expect_err("integrity");
    assert!(
        matches!(err, DownloadError::IntegrityMismatch { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("integrity check failed"), "{err}");
    assert_eq!(market.registry_stats().integrity_failures, 1);
    assert_undamaged(&env, &market, &before);
}

#[tokio::test]
async fn path_traversal_entry_is_rejected() {
    let env = Env::new();
    let market = with_good_plugin(&env).await;
    let before = snapshot(&env.install_dir());
    let good = uppercase("1.2.0", "ok:");
    let archive = raw_archive(&[
        ("manifest.toml", good.manifest_bytes()),
        ("plugin.wasm", good.module()),
        ("../../installed/uppercase/current", b"9.9.9"),
    ]);
    let err =
        PluginPackage::from_archive(&archive, &PackageLimits::default()).expect_err("rejected");
    assert!(matches!(err, PackageError::PathTraversal { .. }), "{err}");
    // Served by a registry whose index vouches for it: still rejected, nothing written.
    let scanner = market.security_scanner().clone();
    let mut entry = market.registry().publish(&good, &scanner).expect("publish");
    std::fs::write(env.registry_dir().join(&entry.path), &archive).expect("replace archive");
    entry.sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&archive));
    market
        .registry()
        .replace_entry(entry.clone())
        .expect("index");
    let err = market
        .download_plugin(&entry.id, &entry.version)
        .await
        .expect_err("rejected");
    assert!(
        err.to_string()
            .contains("../../installed/uppercase/current"),
        "{err}"
    );
    assert!(err.to_string().contains("path traversal"), "{err}");
    assert_undamaged(&env, &market, &before);
}

#[tokio::test]
async fn incompatible_host_range_is_rejected() {
    let env = Env::new();
    let market = with_good_plugin(&env).await;
    let before = snapshot(&env.install_dir());
    let mut m = samples::uppercase_manifest();
    m.id = PluginId::new("future").expect("id");
    m.compatibility.host_api = VersionReq::parse(">=2.0.0, <3").expect("req");
    let pkg = PluginPackage::build(&m, samples::UPPERCASE_WAT, &key()).expect("pkg");
    let err = market.install_plugin(pkg).await.expect_err("incompatible");
    assert!(matches!(err, InstallationError::Incompatible(_)), "{err}");
    assert!(
        err.to_string()
            .contains("requires host api >=2.0.0, <3, this host provides 1.0.0"),
        "{err}"
    );
    assert_eq!(
        market.compatibility_checker().host_api(),
        &Version::new(1, 0, 0)
    );
    assert_undamaged(&env, &market, &before);
}

#[tokio::test]
async fn downgrade_is_refused() {
    let env = Env::new();
    let market = with_good_plugin(&env).await;
    let before = snapshot(&env.install_dir());
    let err = market
        .install_plugin(uppercase("0.9.0", "old:"))
        .await
        .expect_err("downgrade");
    assert!(matches!(err, InstallationError::Downgrade { .. }), "{err}");
    assert_undamaged(&env, &market, &before);
}
