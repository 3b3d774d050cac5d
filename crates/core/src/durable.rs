//! Durable writes of small state files: a temp file beside the target,
//! fsync, rename over the target, fsync of the directory. A crash at any
//! moment leaves either the old file or the new one, never a torn one.
//! A state file written very often also has a newest copy, renamed into
//! place without waiting for the disk: it survives a crash of the process,
//! and when a power loss leaves it unreadable, the durable file is there.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Write},
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

/// Replaces `path` with `contents` atomically and durably, with the given
/// permission bits (applied before any byte is written).
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    StateFile::new(path, mode)?.write(contents)
}

/// A state file written again and again (a checkpoint, a read position):
/// its temp files and directory are worked out once, so that a write
/// allocates nothing and may run on a blocking thread that never did.
#[derive(Debug, Clone)]
pub struct StateFile {
    path: PathBuf,
    temp: PathBuf,
    /// The newest copy, `<name>.newest`, and its temp file.
    newest: PathBuf,
    newest_temp: PathBuf,
    dir: PathBuf,
    mode: u32,
}

impl StateFile {
    /// The file at `path`, written with the permission bits `mode`.
    pub fn new(path: &Path, mode: u32) -> io::Result<Self> {
        let dir = path
            .parent()
            .filter(|dir| !dir.as_os_str().is_empty())
            .unwrap_or_else(|| Path::new("."));
        let name = path.file_name().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "a state file needs a name")
        })?;
        let name = name.to_string_lossy();
        let temp = |name: &str| dir.join(format!(".{name}.tmp-{}", std::process::id()));
        let newest_name = format!("{name}.newest");
        Ok(Self {
            path: path.to_owned(),
            temp: temp(&name),
            newest: dir.join(&newest_name),
            newest_temp: temp(&newest_name),
            dir: dir.to_owned(),
            mode,
        })
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where its newest copy is: read it first, and the file itself when
    /// the copy is missing or unreadable.
    pub fn newest_path(&self) -> &Path {
        &self.newest
    }

    /// Replaces the file with `contents` atomically and durably.
    pub fn write(&self, contents: &[u8]) -> io::Result<()> {
        self.replace(&self.temp, &self.path, contents, true)
    }

    /// Replaces the newest copy with `contents` atomically, without
    /// waiting for the disk: a crash of the process keeps it, a power loss
    /// may not.
    pub fn write_newest(&self, contents: &[u8]) -> io::Result<()> {
        self.replace(&self.newest_temp, &self.newest, contents, false)
    }

    fn replace(&self, temp: &Path, path: &Path, contents: &[u8], sync: bool) -> io::Result<()> {
        let result = (|| {
            let mut file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(self.mode)
                .open(temp)?;
            file.write_all(contents)?;
            if sync {
                file.sync_all()?;
            }
            fs::rename(temp, path)?;
            if sync {
                File::open(&self.dir)?.sync_all()?;
            }
            Ok(())
        })();
        if result.is_err() {
            let _ = fs::remove_file(temp);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn replaces_the_file_with_the_given_mode_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        write_atomic(&path, b"one", 0o600).unwrap();
        write_atomic(&path, b"two", 0o600).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("state.json")]);
    }
}
