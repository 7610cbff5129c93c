//! The package format: one tar archive holding `manifest.toml`, `plugin.wasm` and
//! `signature.toml` (an ed25519 signature over the manifest bytes and the module's SHA-256).

use std::collections::BTreeMap;
use std::io::Read;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::error::PackageError;
use crate::manifest::PluginManifest;

/// Name of the manifest entry.
pub const MANIFEST_ENTRY: &str = "manifest.toml";
/// Name of the module entry.
pub const MODULE_ENTRY: &str = "plugin.wasm";
/// Name of the signature entry.
pub const SIGNATURE_ENTRY: &str = "signature.toml";

/// Domain separation for the signed message, so a package signature can never be replayed
/// as a signature over anything else the key signs.
const SIGNATURE_DOMAIN: &[u8] = b"perflab-plugin-package-v1\n";

/// Size limits applied while reading an archive, before any byte is trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackageLimits {
    /// Largest archive accepted.
    pub max_archive_bytes: u64,
    /// Largest manifest entry.
    pub max_manifest_bytes: u64,
    /// Largest module entry.
    pub max_module_bytes: u64,
    /// Largest signature entry.
    pub max_signature_bytes: u64,
}

impl Default for PackageLimits {
    fn default() -> Self {
        Self {
            max_archive_bytes: 16 << 20,
            max_manifest_bytes: 64 << 10,
            max_module_bytes: 8 << 20,
            max_signature_bytes: 1024,
        }
    }
}

/// The detached signature carried in `signature.toml`: the signer's public key and the
/// ed25519 signature, both hex.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackageSignature {
    /// The signer's ed25519 public key.
    pub public_key: [u8; 32],
    /// The signature over [`PluginPackage::signed_message`].
    pub signature: [u8; 64],
}

#[derive(serde::Serialize, serde::Deserialize)]
struct SignatureFile {
    key: String,
    signature: String,
}

impl PackageSignature {
    fn to_toml(self) -> String {
        let file = SignatureFile {
            key: hex::encode(self.public_key),
            signature: hex::encode(self.signature),
        };
        toml::to_string(&file).unwrap_or_else(|e| unreachable!("two strings serialize: {e}"))
    }

    fn from_toml(bytes: &[u8]) -> Result<Self, PackageError> {
        let bad = |m: String| PackageError::SignatureFormat(m);
        let text = std::str::from_utf8(bytes).map_err(|e| bad(e.to_string()))?;
        let file: SignatureFile = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        let mut public_key = [0u8; 32];
        hex::decode_to_slice(&file.key, &mut public_key).map_err(|e| bad(format!("key: {e}")))?;
        let mut signature = [0u8; 64];
        hex::decode_to_slice(&file.signature, &mut signature)
            .map_err(|e| bad(format!("signature: {e}")))?;
        Ok(Self {
            public_key,
            signature,
        })
    }

    /// Whether the signature verifies under its own public key (trust is the scanner's job).
    pub fn verifies(&self, message: &[u8]) -> bool {
        VerifyingKey::from_bytes(&self.public_key).is_ok_and(|k| {
            k.verify_strict(message, &Signature::from_bytes(&self.signature))
                .is_ok()
        })
    }
}

/// A plugin package: manifest, module and signature, as read from (or written to) an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginPackage {
    manifest: PluginManifest,
    manifest_bytes: Vec<u8>,
    module: Vec<u8>,
    module_sha256: [u8; 32],
    signature: PackageSignature,
}

impl PluginPackage {
    /// Builds and signs a package. `module` is a wasm binary or WebAssembly text (WAT).
    pub fn build(
        manifest: &PluginManifest,
        module: impl AsRef<[u8]>,
        key: &SigningKey,
    ) -> Result<Self, PackageError> {
        let module = wat::parse_bytes(module.as_ref())
            .map_err(|e| PackageError::ModuleText(e.to_string()))?
            .into_owned();
        let manifest_bytes = manifest.to_toml().into_bytes();
        let message = signed_message(&manifest_bytes, &Sha256::digest(&module).into());
        let signature = PackageSignature {
            public_key: key.verifying_key().to_bytes(),
            signature: key.sign(&message).to_bytes(),
        };
        Self::from_parts(manifest_bytes, module, signature)
    }

    /// Assembles a package from its three parts (as stored in an install directory). The
    /// signature is not checked here: that is the security scanner's job.
    pub fn from_parts(
        manifest_bytes: Vec<u8>,
        module: Vec<u8>,
        signature: PackageSignature,
    ) -> Result<Self, PackageError> {
        let manifest = PluginManifest::from_toml(&manifest_bytes)?;
        let module_sha256 = Sha256::digest(&module).into();
        Ok(Self {
            manifest,
            manifest_bytes,
            module,
            module_sha256,
            signature,
        })
    }

    /// Reads a package archive, rejecting path traversal, absolute paths, links, unknown,
    /// duplicate, missing and oversized entries before anything is parsed.
    pub fn from_archive(bytes: &[u8], limits: &PackageLimits) -> Result<Self, PackageError> {
        if bytes.len() as u64 > limits.max_archive_bytes {
            return Err(PackageError::ArchiveTooLarge {
                size: bytes.len() as u64,
                limit: limits.max_archive_bytes,
            });
        }
        let archive_err = |e: std::io::Error| PackageError::Archive(e.to_string());
        let mut archive = tar::Archive::new(bytes);
        let mut found: BTreeMap<&'static str, Vec<u8>> = BTreeMap::new();
        for entry in archive.entries().map_err(archive_err)? {
            let entry = entry.map_err(archive_err)?;
            let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let name = check_entry_path(&raw)?;
            if !entry.header().entry_type().is_file() {
                return Err(PackageError::NotAFile { path: raw });
            }
            let limit = match name {
                MANIFEST_ENTRY => limits.max_manifest_bytes,
                MODULE_ENTRY => limits.max_module_bytes,
                _ => limits.max_signature_bytes,
            };
            let size = entry.header().size().map_err(archive_err)?;
            if size > limit {
                return Err(PackageError::EntryTooLarge {
                    path: raw,
                    size,
                    limit,
                });
            }
            if found.contains_key(name) {
                return Err(PackageError::DuplicateEntry { path: raw });
            }
            // The header's size was checked; `take` also bounds a stream that lies about it.
            let mut data = Vec::with_capacity(size as usize);
            entry
                .take(limit + 1)
                .read_to_end(&mut data)
                .map_err(archive_err)?;
            if data.len() as u64 > limit {
                return Err(PackageError::EntryTooLarge {
                    path: raw,
                    size: data.len() as u64,
                    limit,
                });
            }
            found.insert(name, data);
        }
        let mut take =
            |name: &'static str| found.remove(name).ok_or(PackageError::MissingEntry(name));
        let manifest_bytes = take(MANIFEST_ENTRY)?;
        let module = take(MODULE_ENTRY)?;
        let signature = PackageSignature::from_toml(&take(SIGNATURE_ENTRY)?)?;
        Self::from_parts(manifest_bytes, module, signature)
    }

    /// The package as a tar archive (deterministic: fixed order, mode and mtime).
    pub fn to_archive(&self) -> Result<Vec<u8>, PackageError> {
        let mut builder = tar::Builder::new(Vec::new());
        let signature = self.signature.to_toml();
        for (name, data) in [
            (MANIFEST_ENTRY, self.manifest_bytes.as_slice()),
            (MODULE_ENTRY, self.module.as_slice()),
            (SIGNATURE_ENTRY, signature.as_bytes()),
        ] {
            let mut header = tar::Header::new_ustar();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_mtime(0);
            header.set_entry_type(tar::EntryType::Regular);
            builder
                .append_data(&mut header, name, data)
                .map_err(PackageError::Write)?;
        }
        builder.into_inner().map_err(PackageError::Write)
    }

    /// The parsed manifest.
    pub fn manifest(&self) -> &PluginManifest {
        &self.manifest
    }

    /// The manifest exactly as signed.
    pub fn manifest_bytes(&self) -> &[u8] {
        &self.manifest_bytes
    }

    /// The wasm module.
    pub fn module(&self) -> &[u8] {
        &self.module
    }

    /// SHA-256 of the module.
    pub fn module_sha256(&self) -> [u8; 32] {
        self.module_sha256
    }

    /// The detached signature.
    pub fn signature(&self) -> &PackageSignature {
        &self.signature
    }

    /// The signature entry's bytes (for storing the package unpacked).
    pub fn signature_bytes(&self) -> Vec<u8> {
        self.signature.to_toml().into_bytes()
    }

    /// The message the signature covers.
    pub fn signed_message(&self) -> Vec<u8> {
        signed_message(&self.manifest_bytes, &self.module_sha256)
    }

    /// Parses a signature entry.
    pub fn parse_signature(bytes: &[u8]) -> Result<PackageSignature, PackageError> {
        PackageSignature::from_toml(bytes)
    }
}

/// `domain || len(manifest) as u64 LE || manifest || sha256(module)`: the length prefix
/// keeps the split between manifest and hash unambiguous.
fn signed_message(manifest: &[u8], module_sha256: &[u8; 32]) -> Vec<u8> {
    let mut m = Vec::with_capacity(SIGNATURE_DOMAIN.len() + 8 + manifest.len() + 32);
    m.extend_from_slice(SIGNATURE_DOMAIN);
    m.extend_from_slice(&(manifest.len() as u64).to_le_bytes());
    m.extend_from_slice(manifest);
    m.extend_from_slice(module_sha256);
    m
}

/// Maps an entry path to one of the three entry names, or says what is wrong with it.
fn check_entry_path(raw: &str) -> Result<&'static str, PackageError> {
    if raw.starts_with('/') || raw.starts_with('\\') || raw.as_bytes().get(1) == Some(&b':') {
        return Err(PackageError::AbsolutePath { path: raw.into() });
    }
    if raw.split(['/', '\\']).any(|c| c == "..") {
        return Err(PackageError::PathTraversal { path: raw.into() });
    }
    let name = raw.strip_prefix("./").unwrap_or(raw);
    [MANIFEST_ENTRY, MODULE_ENTRY, SIGNATURE_ENTRY]
        .into_iter()
        .find(|n| *n == name)
        .ok_or_else(|| PackageError::UnexpectedEntry { path: raw.into() })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::samples;

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[7; 32])
    }

    /// A tar archive with raw entry names, bypassing the `tar` crate's own path checks.
    fn raw_archive(entries: &[(&str, &[u8])]) -> Vec<u8> {
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

    /// Raw archive entries and the error text they must produce.
    type Case<'a> = (&'a [(&'a str, &'a [u8])], &'a str);

    fn good() -> PluginPackage {
        PluginPackage::build(
            &samples::uppercase_manifest(),
            samples::UPPERCASE_WAT,
            &key(),
        )
        .expect("builds")
    }

    #[test]
    fn archive_round_trips_and_signature_verifies() {
        let pkg = good();
        let bytes = pkg.to_archive().expect("archive");
        let back = PluginPackage::from_archive(&bytes, &PackageLimits::default()).expect("reads");
        assert_eq!(back, pkg);
        assert!(back.signature().verifies(&back.signed_message()));
        assert_eq!(
            back.signature().public_key,
            key().verifying_key().to_bytes()
        );
    }

    #[test]
    fn hostile_entries_are_rejected_by_name() {
        let pkg = good();
        let m = pkg.manifest_bytes();
        let cases: [Case<'_>; 5] = [
            (&[("../manifest.toml", m)], "path traversal"),
            (&[("a/../../x", m)], "path traversal"),
            (&[("/etc/passwd", m)], "absolute path"),
            (&[("evil.sh", m)], "unexpected package entry"),
            (&[("manifest.toml", m), ("manifest.toml", m)], "duplicate"),
        ];
        for (entries, want) in cases {
            let err = PluginPackage::from_archive(&raw_archive(entries), &PackageLimits::default())
                .expect_err("rejected");
            assert!(err.to_string().contains(want), "{err} lacks {want}");
        }
    }

    #[test]
    fn oversized_and_missing_entries_are_rejected() {
        let pkg = good();
        let limits = PackageLimits {
            max_module_bytes: 16,
            ..PackageLimits::default()
        };
        let err = PluginPackage::from_archive(&pkg.to_archive().expect("archive"), &limits)
            .expect_err("module too large");
        assert!(
            matches!(err, PackageError::EntryTooLarge { ref path, .. } if path == MODULE_ENTRY)
        );
        let err = PluginPackage::from_archive(
            &raw_archive(&[(MANIFEST_ENTRY, pkg.manifest_bytes())]),
            &PackageLimits::default(),
        )
        .expect_err("missing");
        assert!(
            matches!(err, PackageError::MissingEntry(MODULE_ENTRY)),
            "{err}"
        );
        let tiny = PackageLimits {
            max_archive_bytes: 100,
            ..PackageLimits::default()
        };
        assert!(matches!(
            PluginPackage::from_archive(&pkg.to_archive().expect("archive"), &tiny),
            Err(PackageError::ArchiveTooLarge { .. })
        ));
    }

    proptest! {
        /// Any change to the module or the manifest breaks the signature.
        #[test]
        fn any_flipped_byte_breaks_the_signature(pos in any::<prop::sample::Index>(), bit in 0u8..8, in_module: bool) {
            let pkg = good();
            let mut manifest = pkg.manifest_bytes().to_vec();
            let mut module = pkg.module().to_vec();
            let target = if in_module { &mut module } else { &mut manifest };
            let i = pos.index(target.len());
            target[i] ^= 1 << bit;
            let sig = *pkg.signature();
            let message = signed_message(&manifest, &Sha256::digest(&module).into());
            prop_assert!(!sig.verifies(&message));
        }

        /// Entry paths with a `..` component are never accepted, whatever surrounds them.
        #[test]
        fn dotdot_components_never_pass(prefix in "[a-z]{0,3}", suffix in "[a-z.]{0,8}") {
            let path = if prefix.is_empty() { format!("../{suffix}") } else { format!("{prefix}/../{suffix}") };
            prop_assert!(check_entry_path(&path).is_err());
        }
    }
}
