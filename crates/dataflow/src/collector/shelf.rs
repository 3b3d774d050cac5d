//! The collectors unpacked on a worker, under `service.collectors_dir`:
//! each version in `<name>/<version>/`, with its package's SHA-256 kept
//! beside it in `<name>/.<version>.sha256`, which marks it as installed by
//! DataScale (other directories there are left alone). A package is
//! verified against its SHA-256, unpacked into a staging directory and
//! renamed into place, so a version is either absent or complete.

use std::{
    collections::BTreeSet,
    fs, io,
    path::{Path, PathBuf},
};

use datascale_core::durable;
use datascale_protocol::DesiredCollector;
use tracing::{info, warn};

use super::package::{self, PackageError};

/// Staging directories start with this.
const STAGING: &str = ".staging-";

/// The collectors unpacked in one directory.
#[derive(Debug, Clone)]
pub struct Shelf {
    dir: PathBuf,
}

impl Shelf {
    /// The collectors below `dir`.
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
        }
    }

    /// Where version `version` of `name` is unpacked.
    pub fn package_dir(&self, name: &str, version: &str) -> PathBuf {
        self.dir.join(name).join(version)
    }

    fn marker(&self, name: &str, version: &str) -> PathBuf {
        self.dir.join(name).join(format!(".{version}.sha256"))
    }

    /// Whether `collector` is unpacked here, from the same package.
    pub fn has(&self, collector: &DesiredCollector) -> bool {
        fs::read_to_string(self.marker(&collector.name, &collector.version))
            .is_ok_and(|sha256| sha256.trim() == collector.sha256)
            && self
                .package_dir(&collector.name, &collector.version)
                .is_dir()
    }

    /// Unpacks `bytes`, the package of `collector`, after checking that it
    /// is that package; replaces an unpacked version of another package.
    pub fn install(&self, collector: &DesiredCollector, bytes: &[u8]) -> Result<(), PackageError> {
        let sha256 = package::sha256(bytes);
        if sha256 != collector.sha256 {
            return Err(PackageError::Refused(format!(
                "the package of {} {} has SHA-256 {sha256}, not {}",
                collector.name, collector.version, collector.sha256
            )));
        }
        let io_error = |path: &Path| {
            let path = path.to_owned();
            move |source| PackageError::Io { path, source }
        };
        fs::create_dir_all(&self.dir).map_err(io_error(&self.dir))?;
        let staging = self.dir.join(format!(
            "{STAGING}{}-{}-{}",
            collector.name,
            collector.version,
            std::process::id()
        ));
        remove_dir(&staging).map_err(io_error(&staging))?;
        let unpacked = package::unpack(bytes, u64::MAX, &staging).and_then(|checked| {
            let manifest = &checked.manifest;
            match (manifest.name == collector.name) && (manifest.version == collector.version) {
                true => Ok(()),
                false => Err(PackageError::Refused(format!(
                    "the package of {} {} holds {} {}",
                    collector.name, collector.version, manifest.name, manifest.version
                ))),
            }
        });
        if let Err(err) = unpacked {
            let _ = remove_dir(&staging);
            return Err(err);
        }
        let place = self.package_dir(&collector.name, &collector.version);
        let marker = self.marker(&collector.name, &collector.version);
        let result = (|| {
            fs::create_dir_all(self.dir.join(&collector.name))?;
            remove_file(&marker)?;
            remove_dir(&place)?;
            fs::rename(&staging, &place)?;
            durable::write_atomic(&marker, format!("{sha256}\n").as_bytes(), 0o644)
        })();
        if let Err(source) = result {
            let _ = remove_dir(&staging);
            return Err(PackageError::Io {
                path: place,
                source,
            });
        }
        info!(collector = %collector.name, version = %collector.version, path = %place.display(), "Collector installed.");
        Ok(())
    }

    /// Removes every version installed here but not in `wanted`, and what
    /// staging left behind.
    pub fn keep_only(&self, wanted: &[DesiredCollector]) {
        let wanted: BTreeSet<(&str, &str)> = wanted
            .iter()
            .map(|c| (c.name.as_str(), c.version.as_str()))
            .collect();
        let Ok(names) = fs::read_dir(&self.dir) else {
            return;
        };
        for entry in names.flatten() {
            let file_name = entry.file_name();
            let Some(name) = file_name.to_str() else {
                continue;
            };
            if name.starts_with(STAGING) {
                let _ = remove_dir(&entry.path());
                continue;
            }
            if name.starts_with('.') || !entry.path().is_dir() {
                continue;
            }
            for version in self.installed_versions(name) {
                if !wanted.contains(&(name, version.as_str())) {
                    self.remove(name, &version);
                }
            }
            // Only empty now when every version was DataScale's.
            let _ = fs::remove_dir(entry.path());
        }
    }

    /// The versions of `name` installed by DataScale.
    fn installed_versions(&self, name: &str) -> Vec<String> {
        let Ok(files) = fs::read_dir(self.dir.join(name)) else {
            return Vec::new();
        };
        files
            .flatten()
            .filter_map(|file| {
                let file_name = file.file_name();
                let version = file_name
                    .to_str()?
                    .strip_prefix('.')?
                    .strip_suffix(".sha256")?;
                Some(version.to_owned())
            })
            .collect()
    }

    fn remove(&self, name: &str, version: &str) {
        let place = self.package_dir(name, version);
        match remove_file(&self.marker(name, version)).and_then(|()| remove_dir(&place)) {
            Ok(()) => {
                info!(collector = %name, version = %version, "Collector removed: no dataflow uses it any more.")
            }
            Err(err) => {
                warn!(collector = %name, version = %version, path = %place.display(), error = %err, "Cannot remove a collector no dataflow uses.")
            }
        }
    }
}

fn remove_dir(path: &Path) -> io::Result<()> {
    match fs::remove_dir_all(path) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
        _ => Ok(()),
    }
}

fn remove_file(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::collector::package::tests::{gnu_header, package_of};

    /// The directory of version `version` of `probe`.
    fn probe(version: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let manifest = format!("name = \"probe\"\nversion = \"{version}\"\nentrypoint = \"run\"\n");
        fs::write(dir.path().join(super::super::MANIFEST), manifest).unwrap();
        fs::write(dir.path().join("run"), "#!/bin/sh\n").unwrap();
        fs::set_permissions(dir.path().join("run"), fs::Permissions::from_mode(0o755)).unwrap();
        dir
    }

    /// `bytes` as the package of `probe` version `version`.
    fn desired(version: &str, bytes: &[u8]) -> DesiredCollector {
        DesiredCollector {
            name: "probe".into(),
            version: version.into(),
            sha256: package::sha256(bytes),
        }
    }

    fn packaged(version: &str) -> (DesiredCollector, Vec<u8>) {
        let bytes = package::pack(probe(version).path()).unwrap();
        (desired(version, &bytes), bytes)
    }

    #[test]
    fn versions_are_installed_verified_and_swept_and_other_files_stay() {
        let dir = tempfile::tempdir().unwrap();
        let shelf = Shelf::new(dir.path());
        fs::create_dir_all(dir.path().join("examples/disk_usage")).unwrap();
        let (one, one_bytes) = packaged("1.0.0");
        let (two, two_bytes) = packaged("2.0.0");
        assert!(!shelf.has(&one));
        let wrong = shelf.install(&one, &two_bytes).unwrap_err();
        assert!(wrong.to_string().contains("SHA-256"), "{wrong}");
        shelf.install(&one, &one_bytes).unwrap();
        shelf.install(&two, &two_bytes).unwrap();
        assert!(shelf.has(&one) && shelf.has(&two));
        assert!(shelf.package_dir("probe", "1.0.0").join("run").is_file());
        shelf.keep_only(std::slice::from_ref(&two));
        assert!(!shelf.package_dir("probe", "1.0.0").exists());
        assert!(shelf.has(&two));
        shelf.keep_only(&[]);
        assert!(!dir.path().join("probe").exists());
        assert!(dir.path().join("examples/disk_usage").is_dir());
    }

    #[test]
    fn a_package_with_a_header_bomb_is_refused_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let shelf = Shelf::new(dir.path());
        // As a manager that checked less might have accepted them: 32 MiB
        // headers, which a worker must not read into memory.
        let huge = vec![b'a'; 32 << 20];
        for (kind, what) in [
            (tar::EntryType::GNULongName, "a GNU long-name header"),
            (tar::EntryType::XHeader, "a pax header"),
        ] {
            let bytes = package_of(probe("1.0.0").path(), |archive| {
                let header = gnu_header("././@LongLink", kind, huge.len() as u64);
                archive.append(&header, huge.as_slice()).unwrap();
                let header = gnu_header("extra.txt", tar::EntryType::Regular, 0);
                archive.append(&header, io::empty()).unwrap();
            });
            let collector = desired("1.0.0", &bytes);
            let err = shelf.install(&collector, &bytes).unwrap_err().to_string();
            let expected = format!(
                "{what} (`././@LongLink`), holds 33554432 bytes, more than the 65536 bytes an entry header may hold"
            );
            let start: String = err.chars().take(300).collect();
            assert!(err.contains(&expected), "{start}");
            assert!(!shelf.has(&collector));
            let left: Vec<_> = fs::read_dir(dir.path()).unwrap().flatten().collect();
            assert!(left.is_empty(), "left behind: {left:?}");
        }
    }
}
