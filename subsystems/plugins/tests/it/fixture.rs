//! Shared fixtures: a signing key, sample packages, a local registry and a marketplace.

use std::path::{Path, PathBuf};

use rust_ai_ide_plugins::{
    MarketplaceConfig, PluginManifest, PluginMarketplace, PluginPackage, RegistrySource,
    SigningKey, Version, samples,
};

pub const GROWER_WAT: &str = include_str!("plugins/grower.wat");
pub const FORBIDDEN_WAT: &str = include_str!("plugins/forbidden.wat");

/// The publisher's key (seeded: tests are deterministic).
pub fn key() -> SigningKey {
    SigningKey::from_bytes(&[42; 32])
}

/// A registry directory and an install directory in one temporary folder.
pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn registry_dir(&self) -> PathBuf {
        self.dir.path().join("registry")
    }

    pub fn install_dir(&self) -> PathBuf {
        self.dir.path().join("installed")
    }

    pub fn config(&self) -> MarketplaceConfig {
        let mut c = MarketplaceConfig::new(
            self.install_dir(),
            RegistrySource::Local(self.registry_dir()),
        );
        c.trusted_keys = vec![key().verifying_key().to_bytes()];
        c.runtime.pooling_slots = Some(8);
        c.runtime.call_budget_ticks = 50;
        c
    }

    pub fn market(&self) -> PluginMarketplace {
        PluginMarketplace::new(self.config()).expect("marketplace")
    }
}

/// The uppercase sample at `version` with default setting `prefix`.
pub fn uppercase(version: &str, prefix: &str) -> PluginPackage {
    let mut m = samples::uppercase_manifest();
    m.version = Version::parse(version).expect("version");
    m.config.insert("prefix".into(), prefix.into());
    PluginPackage::build(&m, samples::UPPERCASE_WAT, &key()).expect("package")
}

/// A text_transform-only manifest named `id` with `memory_bytes` of memory.
pub fn manifest(id: &str, memory_bytes: u64) -> PluginManifest {
    let mut m = samples::runaway_manifest();
    m.id = rust_ai_ide_plugins::PluginId::new(id).expect("id");
    m.limits.memory_bytes = memory_bytes;
    m
}

/// Every file under `dir` with its bytes, to prove that nothing changed.
pub fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("readable") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.clone(), std::fs::read(&p).expect("file")));
            }
        }
    }
    out.sort();
    out
}

/// A tar archive with raw entry names, as a hostile publisher would write it.
pub fn raw_archive(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in entries {
        let mut h = tar::Header::new_gnu();
        let gnu = h.as_gnu_mut().expect("gnu header");
        gnu.name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        b.append(&h, *data).expect("append");
    }
    b.into_inner().expect("archive")
}
