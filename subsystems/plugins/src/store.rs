//! The install directory: `<root>/<id>/<version>/` holds the unpacked package and
//! `<root>/<id>/current` names the active version. Every change is atomic: files are written
//! into a staging directory, fsynced and renamed into place, and `current` is replaced by
//! rename, so a crash leaves either the old plugin or the new one, never a mix.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use semver::Version;

use crate::error::IoFailure;
use crate::manifest::PluginId;
use crate::package::{MANIFEST_ENTRY, MODULE_ENTRY, PluginPackage, SIGNATURE_ENTRY};

/// The file naming the active version of a plugin.
const CURRENT: &str = "current";

/// One installed plugin as read from disk: its package and version directory, or the path
/// that could not be read and why.
pub(crate) type Loaded = Result<(PluginPackage, PathBuf), (PathBuf, String)>;

/// The install directory.
#[derive(Debug, Clone)]
pub(crate) struct InstallStore {
    root: PathBuf,
}

impl InstallStore {
    pub(crate) fn open(root: PathBuf) -> Result<Self, IoFailure> {
        fs::create_dir_all(&root).map_err(IoFailure::at("create install directory", &root))?;
        Ok(Self { root })
    }

    /// Writes `package` unpacked to `<id>/<version>/` (staged, fsynced, renamed); does not
    /// make it current.
    pub(crate) fn write_version(&self, package: &PluginPackage) -> Result<PathBuf, IoFailure> {
        let m = package.manifest();
        let plugin_dir = self.root.join(m.id.as_str());
        fs::create_dir_all(&plugin_dir)
            .map_err(IoFailure::at("create plugin directory", &plugin_dir))?;
        let stage = tempfile::Builder::new()
            .prefix(".stage-")
            .tempdir_in(&plugin_dir)
            .map_err(IoFailure::at("create staging directory", &plugin_dir))?;
        for (name, bytes) in [
            (MANIFEST_ENTRY, package.manifest_bytes().to_vec()),
            (MODULE_ENTRY, package.module().to_vec()),
            (SIGNATURE_ENTRY, package.signature_bytes()),
        ] {
            let path = stage.path().join(name);
            let mut f = File::create(&path).map_err(IoFailure::at("create", &path))?;
            f.write_all(&bytes).map_err(IoFailure::at("write", &path))?;
            f.sync_all().map_err(IoFailure::at("fsync", &path))?;
        }
        sync_dir(stage.path())?;
        let target = plugin_dir.join(m.version.to_string());
        if target.exists() {
            // Left over by an interrupted install of this very version; never the current one
            // (the caller refuses to reinstall the installed version).
            fs::remove_dir_all(&target).map_err(IoFailure::at("remove stale version", &target))?;
        }
        let staged = stage.keep();
        fs::rename(&staged, &target).map_err(|e| {
            let _ = fs::remove_dir_all(&staged);
            IoFailure::at("rename staging directory", &target)(e)
        })?;
        sync_dir(&plugin_dir)?;
        Ok(target)
    }

    /// Makes `version` the active version of `id` (temporary file, fsync, rename).
    pub(crate) fn set_current(&self, id: &PluginId, version: &Version) -> Result<(), IoFailure> {
        let plugin_dir = self.root.join(id.as_str());
        let path = plugin_dir.join(CURRENT);
        let mut tmp = tempfile::NamedTempFile::new_in(&plugin_dir)
            .map_err(IoFailure::at("create temporary file", &plugin_dir))?;
        tmp.write_all(version.to_string().as_bytes())
            .map_err(IoFailure::at("write", &path))?;
        tmp.as_file()
            .sync_all()
            .map_err(IoFailure::at("fsync", &path))?;
        tmp.persist(&path)
            .map_err(|e| IoFailure::at("rename", &path)(e.error))?;
        sync_dir(&plugin_dir)
    }

    /// Removes one version directory.
    pub(crate) fn remove_version(&self, id: &PluginId, version: &Version) -> Result<(), IoFailure> {
        let dir = self.root.join(id.as_str()).join(version.to_string());
        fs::remove_dir_all(&dir).map_err(IoFailure::at("remove version directory", &dir))
    }

    /// Removes a plugin: its directory is first renamed out of the way (atomic: from then on
    /// it is not installed), then deleted.
    pub(crate) fn uninstall(&self, id: &PluginId) -> Result<(), IoFailure> {
        let dir = self.root.join(id.as_str());
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let trash = self.root.join(format!(".trash-{id}-{nanos}"));
        fs::rename(&dir, &trash).map_err(IoFailure::at("rename plugin directory", &dir))?;
        sync_dir(&self.root)?;
        fs::remove_dir_all(&trash).map_err(IoFailure::at("remove plugin directory", &trash))
    }

    /// Every installed plugin's active package, or why it could not be read (the files are
    /// left as they are).
    pub(crate) fn load_all(&self) -> Result<Vec<Loaded>, IoFailure> {
        let mut out = Vec::new();
        let entries = fs::read_dir(&self.root)
            .map_err(IoFailure::at("read install directory", &self.root))?;
        for entry in entries {
            let entry = entry.map_err(IoFailure::at("read install directory", &self.root))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with('.') {
                // Staging or trash left by a crash: never an installed plugin.
                continue;
            }
            let current = entry.path().join(CURRENT);
            if !current.exists() {
                continue;
            }
            out.push(load_one(&entry.path(), &current));
        }
        Ok(out)
    }
}

fn load_one(plugin_dir: &Path, current: &Path) -> Loaded {
    let err = |p: &Path, e: String| (p.to_path_buf(), e);
    let version = fs::read_to_string(current).map_err(|e| err(current, e.to_string()))?;
    let dir = plugin_dir.join(version.trim());
    let read = |name: &str| {
        let p = dir.join(name);
        fs::read(&p).map_err(|e| err(&p, e.to_string()))
    };
    let signature = PluginPackage::parse_signature(&read(SIGNATURE_ENTRY)?)
        .map_err(|e| err(&dir, e.to_string()))?;
    let package = PluginPackage::from_parts(read(MANIFEST_ENTRY)?, read(MODULE_ENTRY)?, signature)
        .map_err(|e| err(&dir, e.to_string()))?;
    Ok((package, dir))
}

fn sync_dir(dir: &Path) -> Result<(), IoFailure> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(IoFailure::at("fsync directory", dir))
}
