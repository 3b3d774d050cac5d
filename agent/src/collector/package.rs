//! The package format: a gzip-compressed tar archive holding
//! `collector.toml` at its root. One walk through the archive both checks
//! it (every entry stays inside the package: no absolute path, no `..`, no
//! link pointing out, no device file or fifo; the unpacked size within a
//! limit; the manifest valid and its entrypoint an executable regular file)
//! and, when given a directory, unpacks it there; a refused package is
//! refused before anything is kept. Packing a directory makes a package the
//! same way every time (sorted, owned by 0:0, dated 0).

use std::{
    collections::BTreeMap,
    fs,
    io::{self, Read},
    os::unix::fs::{PermissionsExt, symlink},
    path::{Path, PathBuf},
};

use flate2::{Compression, read::GzDecoder, write::GzEncoder};
use sha2::{Digest, Sha256};
use tar::EntryType;

use super::{MANIFEST, Manifest, package_path};

/// The most entries a package may hold.
const MAX_ENTRIES: usize = 10_000;

/// The largest manifest, in bytes.
const MAX_MANIFEST_BYTES: u64 = 64 * 1024;

/// Why a package was refused or could not be unpacked.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// The package is not acceptable; the reason names the problem.
    #[error("the package is refused: {0}")]
    Refused(String),
    /// The package or its unpacked size is over the limit.
    #[error("the package is refused: {0}")]
    TooLarge(String),
    /// Unpacking failed on this side.
    #[error("cannot unpack into {path}: {source}")]
    Io {
        /// Where.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
}

/// A package that passed every check.
#[derive(Debug, Clone)]
pub struct Checked {
    /// Its manifest.
    pub manifest: Manifest,
    /// The SHA-256 of the package, in hex.
    pub sha256: String,
    /// Its size, in bytes.
    pub size: u64,
}

/// The SHA-256 of a package, in hex.
pub fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Checks a package of at most `limit` bytes, unpacked as well.
pub fn check(bytes: &[u8], limit: u64) -> Result<Checked, PackageError> {
    walk(bytes, limit, None)
}

/// Checks a package and unpacks it into `into`, a new directory.
pub fn unpack(bytes: &[u8], limit: u64, into: &Path) -> Result<Checked, PackageError> {
    walk(bytes, limit, Some(into))
}

/// What the walk has seen at a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    File { executable: bool },
    Directory,
    Link,
}

fn refused(message: String) -> PackageError {
    PackageError::Refused(message)
}

fn unreadable(err: io::Error) -> PackageError {
    refused(format!("it is not a readable .tar.gz ({err})"))
}

fn walk(bytes: &[u8], limit: u64, into: Option<&Path>) -> Result<Checked, PackageError> {
    let limit_mb = limit.div_ceil(1024 * 1024);
    if bytes.len() as u64 > limit {
        return Err(PackageError::TooLarge(format!(
            "it has {} bytes, more than the {limit_mb} MB allowed (service.manager.max_collector_mb)",
            bytes.len()
        )));
    }
    let local = |path: &Path| {
        let path = path.to_owned();
        move |source| PackageError::Io { path, source }
    };
    if let Some(root) = into {
        fs::create_dir(root).map_err(local(root))?;
    }
    let mut archive = tar::Archive::new(GzDecoder::new(bytes));
    let mut seen: BTreeMap<String, Seen> = BTreeMap::new();
    let mut unpacked = 0u64;
    let mut manifest_text = None;
    for (index, entry) in archive.entries().map_err(unreadable)?.enumerate() {
        if index >= MAX_ENTRIES {
            return Err(refused(format!("it holds more than {MAX_ENTRIES} entries")));
        }
        let mut entry = entry.map_err(unreadable)?;
        let kind = entry.header().entry_type();
        if kind == EntryType::XGlobalHeader {
            continue; // metadata for the whole archive, such as `git archive` writes
        }
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let Some(path) = package_path(&raw) else {
            if raw.starts_with('/') {
                return Err(refused(format!("entry `{raw}` is an absolute path")));
            }
            if raw.split('/').any(|part| part == "..") {
                return Err(refused(format!(
                    "entry `{raw}` climbs out of the package with `..`"
                )));
            }
            if kind == EntryType::Directory {
                continue; // `./`, the root itself
            }
            return Err(refused(format!("entry `{raw}` has no name")));
        };
        if seen.contains_key(&path) {
            return Err(refused(format!("entry `{path}` appears twice")));
        }
        if let Some(parent) = parent_not_directory(&seen, &path) {
            return Err(refused(format!(
                "entry `{path}` lies below `{parent}`, which is not a directory"
            )));
        }
        let target = into.map(|root| root.join(&path));
        let this = match kind {
            EntryType::Regular | EntryType::Continuous => {
                let size = entry.header().size().map_err(unreadable)?;
                unpacked = unpacked.saturating_add(size);
                if unpacked > limit {
                    return Err(PackageError::TooLarge(format!(
                        "it unpacks to more than the {limit_mb} MB allowed (service.manager.max_collector_mb)"
                    )));
                }
                let mode = entry.header().mode().map_err(unreadable)?;
                let executable = mode & 0o100 != 0;
                if path == MANIFEST {
                    let mut text = String::new();
                    (&mut entry)
                        .take(MAX_MANIFEST_BYTES + 1)
                        .read_to_string(&mut text)
                        .map_err(|err| refused(format!("{MANIFEST} is not UTF-8 text: {err}")))?;
                    if text.len() as u64 > MAX_MANIFEST_BYTES {
                        return Err(refused(format!(
                            "{MANIFEST} is larger than {MAX_MANIFEST_BYTES} bytes"
                        )));
                    }
                    if let Some(target) = &target {
                        write_file(target, &mut text.as_bytes(), false).map_err(local(target))?;
                    }
                    manifest_text = Some(text);
                } else if let Some(target) = &target {
                    write_file(target, &mut entry, executable).map_err(local(target))?;
                } else {
                    io::copy(&mut entry, &mut io::sink()).map_err(unreadable)?;
                }
                Seen::File { executable }
            }
            EntryType::Directory => {
                if let Some(target) = &target {
                    fs::create_dir_all(target).map_err(local(target))?;
                }
                Seen::Directory
            }
            EntryType::Symlink => {
                let link = entry.link_name_bytes().unwrap_or_default();
                let link = String::from_utf8_lossy(&link).into_owned();
                if link.is_empty()
                    || link.starts_with('/')
                    || link.split('/').any(|part| part == "..")
                {
                    return Err(refused(format!(
                        "entry `{path}` is a symlink to `{link}`, outside the package; links may only point down into it (no absolute path, no `..`)"
                    )));
                }
                if let Some(target) = &target {
                    make_parent(target).map_err(local(target))?;
                    symlink(&link, target).map_err(local(target))?;
                }
                Seen::Link
            }
            EntryType::Link => {
                let link = entry.link_name_bytes().unwrap_or_default();
                let link = String::from_utf8_lossy(&link).into_owned();
                let Some(Seen::File { executable }) =
                    package_path(&link).and_then(|inside| seen.get(&inside).copied())
                else {
                    return Err(refused(format!(
                        "entry `{path}` is a hard link to `{link}`, which is not a file earlier in the package"
                    )));
                };
                if let (Some(root), Some(target)) = (into, &target) {
                    let source = root.join(package_path(&link).unwrap_or_default());
                    make_parent(target).map_err(local(target))?;
                    fs::hard_link(source, target).map_err(local(target))?;
                }
                Seen::File { executable }
            }
            EntryType::Char | EntryType::Block => {
                return Err(refused(format!(
                    "entry `{path}` is a device file, which packages may not hold"
                )));
            }
            EntryType::Fifo => {
                return Err(refused(format!(
                    "entry `{path}` is a fifo, which packages may not hold"
                )));
            }
            other => {
                return Err(refused(format!(
                    "entry `{path}` is of a kind packages may not hold ({other:?}); use files, directories and links"
                )));
            }
        };
        seen.insert(path, this);
    }
    let text = manifest_text
        .ok_or_else(|| refused(format!("there is no {MANIFEST} at the package's root")))?;
    let manifest = Manifest::parse(&text).map_err(|why| refused(format!("{MANIFEST}: {why}")))?;
    let entrypoint = package_path(&manifest.entrypoint).unwrap_or_default();
    match seen.get(&entrypoint) {
        Some(Seen::File { executable: true }) => {}
        Some(Seen::File { executable: false }) => {
            return Err(refused(format!(
                "the entrypoint `{entrypoint}` is not executable: `chmod +x` it before packing"
            )));
        }
        Some(_) => {
            return Err(refused(format!(
                "the entrypoint `{entrypoint}` is not a regular file"
            )));
        }
        None => {
            return Err(refused(format!(
                "the entrypoint `{entrypoint}` named in {MANIFEST} is not in the package"
            )));
        }
    }
    Ok(Checked {
        manifest,
        sha256: sha256(bytes),
        size: bytes.len() as u64,
    })
}

/// The link or file that `path` would lie below, if any.
fn parent_not_directory(seen: &BTreeMap<String, Seen>, path: &str) -> Option<String> {
    let mut prefix = String::new();
    for part in path.split('/').collect::<Vec<_>>().split_last()?.1 {
        if !prefix.is_empty() {
            prefix.push('/');
        }
        prefix.push_str(part);
        if seen
            .get(&prefix)
            .is_some_and(|kind| *kind != Seen::Directory)
        {
            return Some(prefix);
        }
    }
    None
}

fn make_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(parent) => fs::create_dir_all(parent),
        None => Ok(()),
    }
}

/// Writes a file of the package: mode 0755 when it was executable, else 0644.
fn write_file(path: &Path, contents: &mut impl Read, executable: bool) -> io::Result<()> {
    make_parent(path)?;
    let mut file = fs::File::create_new(path)?;
    io::copy(contents, &mut file)?;
    let mode = if executable { 0o755 } else { 0o644 };
    file.set_permissions(fs::Permissions::from_mode(mode))
}

/// Packs the directory `dir` into a package: its files, directories and
/// links, sorted, owned by 0:0 and dated 0, so that the same directory
/// always makes the same bytes.
pub fn pack(dir: &Path) -> io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::default()));
    builder.follow_symlinks(false);
    let mut paths = Vec::new();
    collect(dir, Path::new(""), &mut paths)?;
    paths.sort();
    for relative in paths {
        let full = dir.join(&relative);
        let metadata = fs::symlink_metadata(&full)?;
        let mut header = tar::Header::new_gnu();
        header.set_metadata_in_mode(&metadata, tar::HeaderMode::Deterministic);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        if metadata.is_file() {
            builder.append_data(&mut header, &relative, fs::File::open(&full)?)?;
        } else if metadata.is_dir() {
            builder.append_data(&mut header, &relative, io::empty())?;
        } else if metadata.file_type().is_symlink() {
            builder.append_link(&mut header, &relative, fs::read_link(&full)?)?;
        } else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} is neither a file, a directory nor a link",
                    full.display()
                ),
            ));
        }
    }
    builder.into_inner()?.finish()
}

fn collect(root: &Path, relative: &Path, paths: &mut Vec<PathBuf>) -> io::Result<()> {
    for entry in fs::read_dir(root.join(relative))? {
        let entry = entry?;
        let path = relative.join(entry.file_name());
        let is_dir = entry.file_type()?.is_dir();
        paths.push(path.clone());
        if is_dir {
            collect(root, &path, paths)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn directory() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join(MANIFEST),
            "name = \"demo\"\nversion = \"1.0.0\"\nentrypoint = \"bin/run.sh\"\n",
        )
        .unwrap();
        fs::create_dir(dir.path().join("bin")).unwrap();
        let script = dir.path().join("bin/run.sh");
        fs::write(&script, "#!/bin/sh\necho hello\n").unwrap();
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        symlink("bin/run.sh", dir.path().join("run")).unwrap();
        dir
    }

    #[test]
    fn a_packed_directory_checks_unpacks_and_packs_the_same_again() {
        let dir = directory();
        let bytes = pack(dir.path()).unwrap();
        assert_eq!(bytes, pack(dir.path()).unwrap());
        let checked = check(&bytes, 1 << 20).unwrap();
        assert_eq!(checked.manifest.name, "demo");
        assert_eq!(checked.sha256, sha256(&bytes));
        let out = tempfile::tempdir().unwrap();
        let into = out.path().join("demo");
        unpack(&bytes, 1 << 20, &into).unwrap();
        let mode = fs::metadata(into.join("bin/run.sh")).unwrap().permissions();
        assert_eq!(mode.mode() & 0o777, 0o755);
        assert_eq!(
            fs::read_link(into.join("run")).unwrap(),
            Path::new("bin/run.sh")
        );
    }

    #[test]
    fn an_entry_below_a_link_or_a_file_is_refused() {
        for (parent, below) in [("run", "run/x"), ("bin/run.sh", "bin/run.sh/x")] {
            let mut archive = tar::Builder::new(Vec::new());
            let dir = directory();
            archive.append_dir_all(".", dir.path()).unwrap();
            // `tar`'s own setters refuse such names: write them as they are.
            let mut header = tar::Header::new_old();
            header.as_old_mut().name[..below.len()].copy_from_slice(below.as_bytes());
            header.set_entry_type(EntryType::Regular);
            header.set_mode(0o644);
            header.set_size(0);
            header.set_cksum();
            archive.append(&header, io::empty()).unwrap();
            let mut gzip = GzEncoder::new(Vec::new(), Compression::fast());
            io::Write::write_all(&mut gzip, &archive.into_inner().unwrap()).unwrap();
            let err = check(&gzip.finish().unwrap(), 1 << 20).unwrap_err();
            let expected = format!("lies below `{parent}`, which is not a directory");
            assert!(err.to_string().contains(&expected), "{err}");
        }
    }

    #[test]
    fn random_bytes_and_oversized_packages_are_refused() {
        let err = check(b"not a package", 1 << 20).unwrap_err();
        assert!(matches!(err, PackageError::Refused(_)), "{err}");
        let bytes = pack(directory().path()).unwrap();
        let err = check(&bytes, 10).unwrap_err();
        assert!(matches!(err, PackageError::TooLarge(_)), "{err}");
    }
}
