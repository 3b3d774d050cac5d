//! Properties of the collector manifest, versions and the package walker
//! (through `package`'s public functions): any manifest text is read or
//! refused; a generated manifest written as TOML reads back the same;
//! versions are in a total order; any bytes, and any archive of generated
//! entries, hostile ones among them, are checked or refused without a
//! panic and with little memory; a generated package directory packs,
//! checks, unpacks to the same tree and packs again to the same bytes.

use std::{
    fs,
    io::Write,
    os::unix::fs::{PermissionsExt, symlink},
    path::Path,
};

use flate2::{Compression, write::GzEncoder};
use proptest::{collection::vec, prelude::*, sample::select};
use tar::{EntryType, Header};

use super::{package::PackageError, *};
use datascale_testing as testing;

fn name() -> impl Strategy<Value = String> {
    "[a-z0-9][a-z0-9_.-]{0,30}".prop_filter("`.` and `..` are not names", |name| {
        !name.trim_matches('.').is_empty()
    })
}

fn version() -> impl Strategy<Value = String> {
    prop_oneof![
        vec(0..30u64, 1..4).prop_map(|parts| {
            parts
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(".")
        }),
        "[0-9a-z]{1,3}(\\.[0-9a-z]{1,3}){0,3}",
    ]
}

fn manifest() -> impl Strategy<Value = Manifest> {
    (
        name(),
        version(),
        "\\PC{0,40}",
        "(\\./)?[a-z]{1,8}(/[a-z]{1,8}){0,2}",
        select(vec![ExecMode::Scheduled, ExecMode::Streaming]),
        1..86_400u64,
        vec("\\PC{0,12}", 0..4),
        proptest::collection::btree_map("[A-Z_][A-Z0-9_]{0,12}", "\\PC{0,12}", 0..4),
        select(vec![Output::Lines, Output::Json]),
    )
        .prop_map(
            |(name, version, description, entrypoint, mode, interval_secs, args, env, output)| {
                Manifest {
                    name,
                    version,
                    description,
                    entrypoint,
                    mode,
                    interval_secs,
                    args,
                    env,
                    output,
                }
            },
        )
}

/// One entry of an archive, as a hostile or careless packer may write it.
#[derive(Debug, Clone)]
enum Kind {
    File { bytes: Vec<u8>, executable: bool },
    Directory,
    Symlink(String),
    HardLink(String),
    Device,
    Fifo,
}

/// A path inside a package, or one that tries to leave it.
fn entry_path() -> impl Strategy<Value = String> {
    let inside = vec("[a-z]{1,6}", 1..4).prop_map(|parts| parts.join("/"));
    prop_oneof![
        6 => inside.clone(),
        1 => inside.clone().prop_map(|path| format!("/{path}")),
        1 => inside.clone().prop_map(|path| format!("../{path}")),
        1 => inside.prop_map(|path| format!("{path}/../../x")),
        1 => Just("./".to_owned()),
        1 => Just(MANIFEST.to_owned()),
    ]
}

fn entry() -> impl Strategy<Value = (String, Kind)> {
    let kind = prop_oneof![
        4 => (vec(any::<u8>(), 0..2_000), any::<bool>())
            .prop_map(|(bytes, executable)| Kind::File { bytes, executable }),
        2 => Just(Kind::Directory),
        1 => entry_path().prop_map(Kind::Symlink),
        1 => entry_path().prop_map(Kind::HardLink),
        1 => Just(Kind::Device),
        1 => Just(Kind::Fifo),
    ];
    (entry_path(), kind)
}

/// A `.tar.gz` of `entries`, their names written as they are (the `tar`
/// crate's own setters refuse the hostile ones).
fn archive(entries: &[(String, Kind)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, kind) in entries {
        let mut header = Header::new_old();
        let name = path.as_bytes();
        header.as_old_mut().name[..name.len()].copy_from_slice(name);
        header.set_mode(0o644);
        header.set_size(0);
        let link = |header: &mut Header, target: &str| {
            let target = target.as_bytes();
            header.as_old_mut().linkname[..target.len()].copy_from_slice(target);
        };
        let bytes: &[u8] = match kind {
            Kind::File { bytes, executable } => {
                header.set_entry_type(EntryType::Regular);
                header.set_mode(if *executable { 0o755 } else { 0o644 });
                header.set_size(bytes.len() as u64);
                bytes
            }
            Kind::Directory => {
                header.set_entry_type(EntryType::Directory);
                &[]
            }
            Kind::Symlink(target) => {
                header.set_entry_type(EntryType::Symlink);
                link(&mut header, target);
                &[]
            }
            Kind::HardLink(target) => {
                header.set_entry_type(EntryType::Link);
                link(&mut header, target);
                &[]
            }
            Kind::Device => {
                header.set_entry_type(EntryType::Char);
                &[]
            }
            Kind::Fifo => {
                header.set_entry_type(EntryType::Fifo);
                &[]
            }
        };
        header.set_cksum();
        builder.append(&header, bytes).unwrap();
    }
    gzip(&builder.into_inner().unwrap())
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// Whether an entry may be in a package at all: inside it, and a file, a
/// directory or a link pointing down into it.
fn harmless((path, kind): &(String, Kind)) -> bool {
    let inside = |path: &str| !path.starts_with('/') && !path.split('/').any(|part| part == "..");
    inside(path)
        && match kind {
            Kind::File { .. } | Kind::Directory => true,
            Kind::Symlink(target) | Kind::HardLink(target) => inside(target),
            Kind::Device | Kind::Fifo => false,
        }
}

/// Files of a package directory: path, bytes, executable.
type Files = Vec<(String, Vec<u8>, bool)>;

/// Links of a package directory: path, target.
type Links = Vec<(String, String)>;

/// A package directory: the manifest, its executable entrypoint, and more
/// files, directories and links.
fn package_dir() -> impl Strategy<Value = (Manifest, Files, Links)> {
    (
        manifest(),
        vec(
            (
                "[a-z]{1,6}(/[a-z]{1,6}){0,2}",
                vec(any::<u8>(), 0..5_000),
                any::<bool>(),
            ),
            0..8,
        ),
        vec(("[a-z]{1,6}", "[a-z]{1,6}(/[a-z]{1,6}){0,2}"), 0..3),
    )
}

/// Writes a package directory; `None` when its paths collide (a file where
/// a directory goes), which a real directory cannot hold either.
fn write_dir(
    dir: &Path,
    manifest: &Manifest,
    files: &[(String, Vec<u8>, bool)],
    links: &[(String, String)],
) -> Option<()> {
    let entrypoint = package_path(&manifest.entrypoint).unwrap();
    let mut all: Vec<(&str, &[u8], bool)> = vec![(entrypoint.as_str(), b"#!/bin/sh\n", true)];
    all.extend(
        files
            .iter()
            .map(|(path, bytes, executable)| (path.as_str(), bytes.as_slice(), *executable)),
    );
    for (path, bytes, executable) in all {
        let full = dir.join(path);
        fs::create_dir_all(full.parent()?).ok()?;
        if full.exists() {
            continue;
        }
        fs::write(&full, bytes).ok()?;
        let mode = if executable { 0o755 } else { 0o644 };
        fs::set_permissions(&full, fs::Permissions::from_mode(mode)).ok()?;
    }
    for (path, target) in links {
        let full = dir.join(path);
        if full.symlink_metadata().is_ok() {
            continue;
        }
        symlink(target, &full).ok()?;
    }
    fs::write(dir.join(MANIFEST), toml::to_string(manifest).unwrap()).ok()
}

/// Every path below `dir` with what it is: a file's bytes and whether it
/// is executable, a directory, or a link's target.
fn tree(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
        let mut entries: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            let relative = path.strip_prefix(root).unwrap().display().to_string();
            let meta = fs::symlink_metadata(&path).unwrap();
            let what = if meta.file_type().is_symlink() {
                format!("link to {}", fs::read_link(&path).unwrap().display())
            } else if meta.is_dir() {
                walk(root, &path, out);
                "directory".to_owned()
            } else {
                let executable = meta.permissions().mode() & 0o100 != 0;
                format!("file {:?} {executable}", fs::read(&path).unwrap())
            };
            out.push((relative, what));
        }
    }
    walk(dir, dir, &mut out);
    out
}

proptest! {
    #![proptest_config(testing::cases(testing::CASES))]

    /// Any text: a manifest, or why not.
    #[test]
    fn any_manifest_text_is_read_or_refused(
        text in testing::text_or_tokens(&["name = ", "version = ", "entrypoint = ", "\"a\"", "\"1.0\"", "[", "]", "{", "}", "=", "\n", "[env]", "x"]),
    ) {
        if let Err(why) = Manifest::parse(&text) {
            prop_assert!(!why.is_empty());
        }
    }

    /// A generated manifest written as TOML reads back the same.
    #[test]
    fn a_manifest_round_trips(manifest in manifest()) {
        let text = toml::to_string(&manifest).unwrap();
        prop_assert_eq!(Manifest::parse(&text), Ok(manifest));
    }

    /// Versions are in a total order: each pair compares one way only, a
    /// version equals only itself, and the order is transitive, so that
    /// sorting them and picking the latest are well defined.
    #[test]
    fn versions_are_in_a_total_order(a in version(), b in version(), c in version()) {
        prop_assert_eq!(compare_versions(&a, &b), compare_versions(&b, &a).reverse());
        prop_assert_eq!(compare_versions(&a, &b) == Ordering::Equal, a == b);
        if compare_versions(&a, &b) != Ordering::Greater && compare_versions(&b, &c) != Ordering::Greater {
            prop_assert_ne!(compare_versions(&a, &c), Ordering::Greater, "{} <= {} <= {}", a, b, c);
        }
    }

    /// Any bytes, gzipped or not: refused, never a panic.
    #[test]
    fn any_bytes_are_refused(bytes in vec(any::<u8>(), 0..3_000), zipped in any::<bool>()) {
        let bytes = if zipped { gzip(&bytes) } else { bytes };
        prop_assert!(package::check(&bytes, 1 << 20).is_err());
    }
}

proptest! {
    #![proptest_config(testing::cases(64))]

    /// Any archive of generated entries is checked or refused with little
    /// memory; one with an entry outside the package, a device or a fifo
    /// is refused; unpacking writes nothing outside its directory.
    #[test]
    fn any_archive_is_checked_within_its_directory(
        manifest in manifest(),
        entries in vec(entry(), 0..12),
        with_manifest in any::<bool>(),
    ) {
        let mut entries = entries;
        if with_manifest {
            let text = toml::to_string(&manifest).unwrap().into_bytes();
            entries.insert(0, (MANIFEST.to_owned(), Kind::File { bytes: text, executable: false }));
        }
        let bytes = archive(&entries);
        let (checked, peak) = testing::peak_heap(|| package::check(&bytes, 1 << 20));
        prop_assert!(peak < 1 << 20, "checking held {} bytes", peak);
        if !entries.iter().all(harmless) {
            prop_assert!(matches!(checked, Err(PackageError::Refused(_))), "{:?}", checked.map(|c| c.manifest));
        }
        let parent = tempfile::tempdir().unwrap();
        let into = parent.path().join("unpacked");
        let unpacked = package::unpack(&bytes, 1 << 20, &into);
        prop_assert_eq!(checked.is_ok(), unpacked.is_ok());
        let outside: Vec<_> = fs::read_dir(parent.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        prop_assert_eq!(outside, vec![std::ffi::OsString::from("unpacked")]);
    }

    /// A package directory packs, checks with its manifest, unpacks to the
    /// same tree, and packs again to the same bytes.
    #[test]
    fn a_package_round_trips((manifest, files, links) in package_dir()) {
        let source = tempfile::tempdir().unwrap();
        prop_assume!(write_dir(source.path(), &manifest, &files, &links).is_some());
        let bytes = package::pack(source.path()).unwrap();
        let checked = package::check(&bytes, 16 << 20).map_err(|err| TestCaseError::fail(err.to_string()))?;
        prop_assert_eq!(&checked.manifest, &manifest);
        prop_assert_eq!(checked.sha256, package::sha256(&bytes));
        let out = tempfile::tempdir().unwrap();
        let into = out.path().join("unpacked");
        package::unpack(&bytes, 16 << 20, &into).unwrap();
        prop_assert_eq!(tree(&into), tree(source.path()));
        prop_assert_eq!(package::pack(&into).unwrap(), bytes);
    }
}

/// Found by `versions_are_in_a_total_order`: a number and a word compared
/// as text, so that `9` < `10` < `10a` < `9`; sorting versions so
/// ordered may panic, and the latest depended on the order of upload.
#[test]
fn numbers_and_words_in_versions_compare_consistently() {
    let mut versions = vec!["10a", "9", "10", "1.x", "1.10", "1.9", "01", "1"];
    versions.sort_by(|a, b| compare_versions(a, b));
    assert_eq!(
        versions,
        ["01", "1", "1.9", "1.10", "1.x", "9", "10", "10a"]
    );
}
