//! Custom collectors on the manager: the packages themselves, one file per
//! package under `data_dir/collectors/`, named by its SHA-256 (their
//! metadata is in the store, so an upload is a revision like any change),
//! and which collector versions a set of dataflows runs.

use std::{
    collections::BTreeSet,
    fs, io,
    path::{Path, PathBuf},
};

use datascale_core::durable;
use datascale_dataflow::collector;
use datascale_protocol::DesiredCollector;
use serde_json::Value;

use super::store::StoredCollector;

/// The package files, in one directory.
#[derive(Debug, Clone)]
pub struct PackageFiles {
    dir: PathBuf,
}

impl PackageFiles {
    /// The packages kept in `dir`.
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
        }
    }

    fn path(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}.tar.gz"))
    }

    /// Keeps a package (crash-safe: whole or absent).
    pub fn save(&self, sha256: &str, bytes: &[u8]) -> io::Result<()> {
        fs::create_dir_all(&self.dir)?;
        durable::write_atomic(&self.path(sha256), bytes, 0o644)
    }

    /// The package of that SHA-256.
    pub fn read(&self, sha256: &str) -> io::Result<Vec<u8>> {
        fs::read(self.path(sha256))
    }

    /// Removes a package; one already gone is fine.
    pub fn remove(&self, sha256: &str) -> io::Result<()> {
        match fs::remove_file(self.path(sha256)) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
            _ => Ok(()),
        }
    }
}

/// The collector versions that `documents` run, each once, with the
/// revision of the newest upload among them (0: none): a source that pins a
/// version runs it, one that names none runs the highest in `stored`.
pub fn desired_collectors<'a>(
    documents: impl IntoIterator<Item = &'a Value>,
    stored: &[StoredCollector],
) -> (Vec<DesiredCollector>, u64) {
    let mut wanted = BTreeSet::new();
    let mut revision = 0;
    for used in documents.into_iter().flat_map(collector::uses) {
        let versions = stored.iter().filter(|c| c.name == used.collector);
        let chosen = collector::resolve(
            versions.clone().map(|c| c.version.as_str()),
            used.version.as_deref(),
        );
        if let Some(found) = versions
            .into_iter()
            .find(|c| Some(c.version.as_str()) == chosen)
        {
            revision = revision.max(found.revision);
            wanted.insert(DesiredCollector {
                name: found.name.clone(),
                version: found.version.clone(),
                sha256: found.sha256.clone(),
            });
        }
    }
    (wanted.into_iter().collect(), revision)
}
