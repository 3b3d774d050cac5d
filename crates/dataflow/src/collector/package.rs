//! The package format: a gzip-compressed tar archive holding
//! `collector.toml` at its root. One walk through the archive both checks
//! it (every entry stays inside the package: no absolute path, no `..`, no
//! link pointing out, no device file or fifo; the unpacked size within a
//! limit; the manifest valid and its entrypoint an executable regular file)
//! and, when given a directory, unpacks it there; a refused package is
//! refused before anything is kept. Packing a directory makes a package the
//! same way every time (sorted, owned by 0:0, dated 0).
//!
//! The walk reads the archive's raw entries and handles the extension
//! headers itself (GNU long names and long links, pax headers of an entry
//! or of the whole archive): `tar` would read each of them whole into
//! memory, whatever its size, before the entry it describes is seen. Here
//! an extension header is refused from the size in its tar header when it
//! is over [`MAX_EXTENSION_BYTES`], before any of it is read, and its
//! bytes count towards the unpacked size.

use std::{
    collections::BTreeMap,
    fs,
    io::{self, Read},
    os::unix::fs::{PermissionsExt, symlink},
    path::{Path, PathBuf},
};

use flate2::{Compression, read::GzDecoder, write::GzEncoder};
use sha2::{Digest, Sha256};
use tar::{EntryType, Header, PaxExtensions};

use super::{MANIFEST, Manifest, package_path};

/// The most entries a package may hold.
const MAX_ENTRIES: usize = 10_000;

/// The largest manifest, in bytes.
const MAX_MANIFEST_BYTES: u64 = 64 * 1024;

/// The largest extension header (a GNU long name or long link, a pax
/// header of an entry or of the whole archive), in bytes: far more than
/// any real name or link needs, and at most one of each kind is held in
/// memory at a time.
pub const MAX_EXTENSION_BYTES: u64 = 64 * 1024;

/// The size of a tar header block; an extension header counts towards the
/// unpacked size with its block and its contents.
const BLOCK_BYTES: u64 = 512;

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
    let mut members = 0usize;
    let mut pending = Extensions::default();
    let raw_entries = archive.entries().map_err(unreadable)?.raw(true);
    for (index, entry) in raw_entries.enumerate() {
        let mut entry = entry.map_err(unreadable)?;
        let kind = entry.header().entry_type();
        let extension = Extension::of(kind);
        // The extension headers of an entry count with it.
        if extension.is_none_or(|extension| extension == Extension::GlobalPax) {
            members += 1;
            if members > MAX_ENTRIES {
                return Err(refused(format!("it holds more than {MAX_ENTRIES} entries")));
            }
        }
        if let Some(extension) = extension {
            let size = entry.header().entry_size().map_err(unreadable)?;
            let name = String::from_utf8_lossy(&entry.header().path_bytes()).into_owned();
            let header = extension.described(index + 1, &name);
            if size > MAX_EXTENSION_BYTES {
                return Err(refused(format!(
                    "{header}, holds {size} bytes, more than the {MAX_EXTENSION_BYTES} bytes an entry header may hold"
                )));
            }
            count(&mut unpacked, BLOCK_BYTES + size, limit, || header.clone())?;
            let mut contents = Vec::with_capacity(size as usize);
            entry.read_to_end(&mut contents).map_err(unreadable)?;
            pending.add(extension, contents, &header)?;
            continue;
        }
        let names = std::mem::take(&mut pending).apply(entry.header());
        let raw = String::from_utf8_lossy(&names.path).into_owned();
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
        let size = entry.header().entry_size().map_err(unreadable)?;
        if let Some(pax_size) = names.size.filter(|pax_size| *pax_size != size) {
            return Err(refused(format!(
                "entry `{path}`: its pax header gives its size as {pax_size} bytes, its tar header as {size}; the two must agree"
            )));
        }
        // Whatever its kind: bytes after a directory's or a link's header
        // are read through as well.
        count(&mut unpacked, size, limit, || format!("entry `{path}`"))?;
        let target = into.map(|root| root.join(&path));
        let this = match kind {
            EntryType::Regular | EntryType::Continuous => {
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
                let link = String::from_utf8_lossy(&names.link).into_owned();
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
                let link = String::from_utf8_lossy(&names.link).into_owned();
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
    if !pending.is_empty() {
        return Err(refused(
            "the archive ends with an extension header (GNU long name or link, pax) that describes no entry"
                .to_owned(),
        ));
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

/// Adds `bytes` to the unpacked size; past `limit`, refuses the package at
/// the entry `at` names.
fn count(
    unpacked: &mut u64,
    bytes: u64,
    limit: u64,
    at: impl FnOnce() -> String,
) -> Result<(), PackageError> {
    *unpacked = unpacked.saturating_add(bytes);
    if *unpacked <= limit {
        return Ok(());
    }
    Err(PackageError::TooLarge(format!(
        "it unpacks to more than the {} MB allowed (service.manager.max_collector_mb) at {}",
        limit.div_ceil(1024 * 1024),
        at()
    )))
}

/// The kinds of extension header: entries that describe the entry after
/// them, or the whole archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Extension {
    LongName,
    LongLink,
    Pax,
    GlobalPax,
}

impl Extension {
    fn of(kind: EntryType) -> Option<Self> {
        match kind {
            EntryType::GNULongName => Some(Self::LongName),
            EntryType::GNULongLink => Some(Self::LongLink),
            EntryType::XHeader => Some(Self::Pax),
            EntryType::XGlobalHeader => Some(Self::GlobalPax),
            _ => None,
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Self::LongName => "GNU long-name header",
            Self::LongLink => "GNU long-link header",
            Self::Pax => "pax header",
            Self::GlobalPax => "global pax header",
        }
    }

    /// How a refusal names the header: its place in the archive (from 1),
    /// its kind and its own name, when it has one.
    fn described(self, position: usize, name: &str) -> String {
        let noun = self.noun();
        match name.is_empty() {
            true => format!("entry {position} of the archive, a {noun}"),
            false => format!("entry {position} of the archive, a {noun} (`{name}`)"),
        }
    }
}

/// What the extension headers read so far say of the entry after them.
#[derive(Debug, Default)]
struct Extensions {
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
    pax: Option<Pax>,
}

/// The records of a pax header that the walk uses; the others (times,
/// owners, attributes) are left aside, as unpacking does not keep them.
#[derive(Debug, Default)]
struct Pax {
    path: Option<Vec<u8>>,
    link: Option<Vec<u8>>,
    size: Option<u64>,
}

/// An entry's path and link target, and the size its pax header gives.
struct Names {
    path: Vec<u8>,
    link: Vec<u8>,
    size: Option<u64>,
}

impl Extensions {
    /// Keeps what the walk uses of an extension header's `contents`
    /// (`header` names it); refuses a second one of the same kind for one
    /// entry.
    fn add(
        &mut self,
        extension: Extension,
        contents: Vec<u8>,
        header: &str,
    ) -> Result<(), PackageError> {
        let taken = match extension {
            Extension::LongName => self.long_name.replace(until_nul(contents)).is_some(),
            Extension::LongLink => self.long_link.replace(until_nul(contents)).is_some(),
            Extension::Pax => self.pax.replace(Pax::parse(&contents, header)?).is_some(),
            // Metadata for the whole archive, such as `git archive` writes;
            // nothing in it is used.
            Extension::GlobalPax => false,
        };
        if taken {
            let noun = extension.noun();
            return Err(refused(format!(
                "{header} follows another {noun} of the same entry; two {noun}s cannot describe one entry"
            )));
        }
        Ok(())
    }

    fn is_empty(&self) -> bool {
        self.long_name.is_none() && self.long_link.is_none() && self.pax.is_none()
    }

    /// The names of the entry of `header`: from its pax header, else from
    /// its GNU long name or link, else from the tar header itself.
    fn apply(self, header: &Header) -> Names {
        let pax = self.pax.unwrap_or_default();
        let path = pax
            .path
            .or(self.long_name)
            .unwrap_or_else(|| header.path_bytes().into_owned());
        let link = pax
            .link
            .or(self.long_link)
            .or_else(|| header.link_name_bytes().map(|link| link.into_owned()))
            .unwrap_or_default();
        Names {
            path,
            link,
            size: pax.size,
        }
    }
}

impl Pax {
    fn parse(contents: &[u8], header: &str) -> Result<Self, PackageError> {
        let malformed = || {
            refused(format!(
                "{header} is not a list of pax records (`<length> <key>=<value>` lines)"
            ))
        };
        let mut pax = Self::default();
        for record in PaxExtensions::new(contents) {
            let record = record.map_err(|_| malformed())?;
            match record.key_bytes() {
                b"path" => pax.path = Some(record.value_bytes().to_vec()),
                b"linkpath" => pax.link = Some(record.value_bytes().to_vec()),
                b"size" => {
                    let size = record.value().ok().and_then(|size| size.parse().ok());
                    pax.size = Some(size.ok_or_else(malformed)?);
                }
                _ => {}
            }
        }
        Ok(pax)
    }
}

/// A GNU long name or link: the bytes before the NUL that ends it.
fn until_nul(mut contents: Vec<u8>) -> Vec<u8> {
    if let Some(end) = contents.iter().position(|byte| *byte == 0) {
        contents.truncate(end);
    }
    contents
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
pub(crate) mod tests {
    use super::*;

    /// Gzips a tar archive.
    pub(crate) fn gzip(archive: &[u8]) -> Vec<u8> {
        let mut gzip = GzEncoder::new(Vec::new(), Compression::fast());
        io::Write::write_all(&mut gzip, archive).unwrap();
        gzip.finish().unwrap()
    }

    /// A GNU header (`tar` reads extensions from GNU and ustar headers
    /// only) of kind `kind` named `name`, for `size` bytes of contents.
    pub(crate) fn gnu_header(name: &str, kind: EntryType, size: u64) -> tar::Header {
        let mut header = tar::Header::new_gnu();
        header.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
        header.set_entry_type(kind);
        header.set_mode(0o644);
        header.set_size(size);
        header.set_cksum();
        header
    }

    /// The package of `dir` with the entries `extra` appends after its own.
    pub(crate) fn package_of(
        dir: &Path,
        extra: impl FnOnce(&mut tar::Builder<Vec<u8>>),
    ) -> Vec<u8> {
        let mut archive = tar::Builder::new(Vec::new());
        archive.append_dir_all(".", dir).unwrap();
        extra(&mut archive);
        gzip(&archive.into_inner().unwrap())
    }

    /// Appends the empty file `name`.
    fn append_empty(archive: &mut tar::Builder<Vec<u8>>, name: &str) {
        let header = gnu_header(name, EntryType::Regular, 0);
        archive.append(&header, io::empty()).unwrap();
    }

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
            // `tar`'s own setters refuse such names: write them as they are.
            let bytes = package_of(directory().path(), |archive| append_empty(archive, below));
            let err = check(&bytes, 1 << 20).unwrap_err();
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

    #[test]
    fn an_oversized_extension_header_is_refused_from_its_size_before_it_is_read() {
        let kinds = [
            (EntryType::GNULongName, "a GNU long-name header"),
            (EntryType::GNULongLink, "a GNU long-link header"),
            (EntryType::XHeader, "a pax header"),
            (EntryType::XGlobalHeader, "a global pax header"),
        ];
        for (kind, what) in kinds {
            // A header that claims 1 GiB, with nothing behind it to read.
            let header = gnu_header("././@LongLink", kind, 1 << 30);
            let err = check(&gzip(header.as_bytes()), u64::MAX).unwrap_err();
            let expected = format!(
                "entry 1 of the archive, {what} (`././@LongLink`), holds 1073741824 bytes, \
                 more than the 65536 bytes an entry header may hold"
            );
            assert!(matches!(err, PackageError::Refused(_)), "{err}");
            assert!(err.to_string().contains(&expected), "{err}");
        }
    }

    #[test]
    fn extension_headers_name_entries_and_count_against_the_unpacked_limit() {
        let dir = directory();
        let deep = format!("bin/{}/deep.txt", "d".repeat(120));
        fs::create_dir_all(dir.path().join(&deep).parent().unwrap()).unwrap();
        fs::write(dir.path().join(&deep), "deep").unwrap();
        let comment = vec![b'c'; 60 * 1024];
        let bytes = package_of(dir.path(), |archive| {
            // `tar` names a path over 100 bytes with a GNU long-name header.
            archive
                .append_pax_extensions([
                    ("path", b"bin/named-by-pax.txt".as_slice()),
                    ("comment", &comment),
                ])
                .unwrap();
            append_empty(archive, "placeholder");
        });
        let out = tempfile::tempdir().unwrap();
        let into = out.path().join("demo");
        let unpacked = unpack(&bytes, 1 << 20, &into).unwrap();
        assert_eq!(unpacked.manifest.name, "demo");
        assert_eq!(fs::read_to_string(into.join(&deep)).unwrap(), "deep");
        assert!(into.join("bin/named-by-pax.txt").is_file());
        assert!(!into.join("placeholder").exists());

        // The files hold less than 1 KiB; the pax header alone is 60 KiB.
        let err = check(&bytes, 32 * 1024).unwrap_err();
        assert!(matches!(err, PackageError::TooLarge(_)), "{err}");
        assert!(err.to_string().contains("a pax header"), "{err}");
    }

    #[test]
    fn extension_headers_that_describe_nothing_or_disagree_are_refused() {
        let pax = |archive: &mut tar::Builder<Vec<u8>>, key: &str, value: &[u8]| {
            archive.append_pax_extensions([(key, value)]).unwrap();
        };
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (
                package_of(directory().path(), |archive| {
                    pax(archive, "comment", b"last")
                }),
                "describes no entry",
            ),
            (
                package_of(directory().path(), |archive| {
                    pax(archive, "comment", b"one");
                    pax(archive, "comment", b"two");
                    append_empty(archive, "twice.txt");
                }),
                "two pax headers",
            ),
            (
                package_of(directory().path(), |archive| {
                    pax(archive, "size", b"3");
                    append_empty(archive, "sized.txt");
                }),
                "its pax header gives its size as 3 bytes, its tar header as 0",
            ),
            (
                package_of(directory().path(), |archive| {
                    let header = gnu_header("PaxHeaders/bad", EntryType::XHeader, 7);
                    archive.append(&header, b"garbage".as_slice()).unwrap();
                    append_empty(archive, "bad.txt");
                }),
                "is not a list of pax records",
            ),
        ];
        for (bytes, expected) in cases {
            let err = check(&bytes, 1 << 20).unwrap_err();
            assert!(matches!(err, PackageError::Refused(_)), "{err}");
            assert!(err.to_string().contains(expected), "{expected}: {err}");
        }
    }
}
