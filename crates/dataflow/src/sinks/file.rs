//! The `file` sink: appends events to files whose path may hold strftime
//! parts and `{{ field }}` parts. Each batch is written with one write per
//! file and fsynced before it is acknowledged; a file renamed or deleted
//! under the sink (log rotation) is reopened at its path.
//!
//! A regular file only ever ends in a whole line. The sink knows the
//! length of each file after its last write that succeeded (fsync
//! included); a write or fsync that fails (a full disk) is cut back to that
//! length before the batch is failed and sent again, so the retry does not
//! follow a fragment. A file that the sink opens, or finds at another
//! length than it left it (copy-truncate, another writer), and that does
//! not end in a newline has its unterminated last line cut off, as a write
//! torn by a crash leaves one, with a warning that says how many bytes.
//!
//! Here too: the `file` `conf`, with its defaults, its checks and its build.

use std::{
    borrow::Cow,
    collections::BTreeMap,
    fs::{File, OpenOptions},
    io::{self, Write},
    os::unix::fs::{FileExt, MetadataExt},
    path::{Path, PathBuf},
};

use chrono::format::{Item, StrftimeItems};
use datascale_core::{
    ack::Delivery,
    component::{BuildError, ComponentError, ComponentTask, SinkContext},
    event::{Batch, Event, text_of},
};
use serde::{Deserialize, Serialize};
use tracing::warn;

use super::{Codec, Encoding, SinkType};
use crate::{Problems, TypeConf, invalid};

/// `file`: writes events to files, one a line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSinkConfig {
    /// The file; may hold strftime parts (`%Y-%m-%d`) and `{{ field }}` parts taken from each event.
    pub path: String,
    /// How each event is written.
    #[serde(default)]
    pub encoding: Encoding,
}

impl SinkType for FileSinkConfig {
    fn build(&self, name: &str, context: SinkContext) -> Result<ComponentTask, BuildError> {
        let template = PathTemplate::parse(&self.path).map_err(invalid(name))?;
        Ok(Box::pin(run(template, self.encoding.codec, context)))
    }
}

impl TypeConf for FileSinkConfig {
    fn check(&self, problems: &mut Problems) {
        if self.path.trim().is_empty() {
            problems.add("path", "the path is empty");
        }
    }
}

/// A parsed `path`: literal text (with strftime parts) and event fields.
#[derive(Debug, Clone, PartialEq)]
struct PathTemplate {
    parts: Vec<Part>,
    /// The path, when it has neither fields nor strftime parts.
    fixed: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Literal(String),
    Field(String),
}

impl PathTemplate {
    /// Parses a path; refuses unknown strftime parts and unclosed `{{`.
    pub fn parse(path: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = path;
        while let Some(start) = rest.find("{{") {
            parts.push(Part::Literal(rest[..start].to_owned()));
            let end = rest[start..]
                .find("}}")
                .ok_or_else(|| format!("path `{path}`: `{{{{` without `}}}}`"))?;
            parts.push(Part::Field(rest[start + 2..start + end].trim().to_owned()));
            rest = &rest[start + end + 2..];
        }
        parts.push(Part::Literal(rest.to_owned()));
        for part in &parts {
            if let Part::Literal(text) = part
                && StrftimeItems::new(text).any(|item| matches!(item, Item::Error))
            {
                return Err(format!(
                    "path `{path}`: `{text}` has an unknown strftime part (such as %Y-%m-%d)"
                ));
            }
        }
        let fixed = match parts.as_slice() {
            [Part::Literal(text)] if !text.contains('%') => Some(PathBuf::from(text)),
            _ => None,
        };
        Ok(Self { parts, fixed })
    }

    /// The path of one event at time `now`; a missing field renders as `_`.
    fn render(&self, event: &Event, now: &chrono::DateTime<chrono::Utc>) -> Cow<'_, Path> {
        if let Some(path) = &self.fixed {
            return Cow::Borrowed(path);
        }
        let mut path = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(text) => path.push_str(&now.format(text).to_string()),
                Part::Field(name) => match event.field(name) {
                    Some(value) => path.push_str(&text_of(value).replace('/', "_")),
                    None => path.push('_'),
                },
            }
        }
        Cow::Owned(PathBuf::from(path))
    }
}

/// An open file and the inode it was opened at.
struct OpenFile {
    file: File,
    inode: u64,
    /// A regular file, which is fsynced and kept to whole lines; not a
    /// pipe or a device.
    regular: bool,
    /// For a regular file, its length after the last write that succeeded:
    /// the end of its last whole line.
    whole: u64,
}

impl OpenFile {
    /// Opens `path` to append to it, made if missing; a regular file is
    /// also opened to read, to find its last whole line.
    fn open(path: &Path) -> io::Result<Self> {
        let regular = std::fs::metadata(path).map_or(true, |meta| meta.is_file());
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(regular)
            .open(path)?;
        let meta = file.metadata()?;
        let mut open = Self {
            file,
            inode: meta.ino(),
            regular: regular && meta.file_type().is_file(),
            whole: 0,
        };
        if open.regular {
            open.whole = open.cut_torn_line(path, meta.len())?;
        }
        Ok(open)
    }

    /// Writes `bytes` and fsyncs them. When that fails, a regular file is
    /// cut back to its last whole line, so that nothing of `bytes` stays.
    fn append(&mut self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        // A pipe or a device has nothing to sync: what it accepted is delivered.
        if !self.regular {
            return self.file.write_all(bytes);
        }
        let len = self.file.metadata()?.len();
        if len != self.whole {
            // Changed by someone else since the last write (copy-truncate).
            self.whole = self.cut_torn_line(path, len)?;
        }
        let written = self.file.write_all(bytes);
        if let Err(err) = written.and_then(|()| self.file.sync_data()) {
            let cut = self
                .file
                .set_len(self.whole)
                .and_then(|()| self.file.sync_data());
            if let Err(cut) = cut {
                warn!(path = %path.display(), error = %cut, "Cannot cut a failed write off the file; it is cut when the file is opened again.");
            }
            return Err(err);
        }
        self.whole += bytes.len() as u64;
        Ok(())
    }

    /// Cuts the last line off the file, `len` bytes long, when it does not
    /// end in a newline; returns the length of the whole lines.
    fn cut_torn_line(&self, path: &Path, len: u64) -> io::Result<u64> {
        let whole = self.whole_lines(len)?;
        if whole < len {
            self.file.set_len(whole)?;
            self.file.sync_data()?;
            warn!(path = %path.display(), bytes = len - whole, "Cut off a last line without its newline, as a write torn by a crash or a full disk leaves it.");
        }
        Ok(whole)
    }

    /// The length of the file up to its last newline (0 when it has
    /// none), read backwards from `len`, a block at a time.
    fn whole_lines(&self, len: u64) -> io::Result<u64> {
        // On the stack: the writing thread allocates nothing.
        let mut block = [0u8; 8 * 1024];
        let mut end = len;
        while end > 0 {
            let start = end.saturating_sub(block.len() as u64);
            let chunk = &mut block[..(end - start) as usize];
            self.file.read_exact_at(chunk, start)?;
            if let Some(newline) = memchr::memrchr(b'\n', chunk) {
                return Ok(start + newline as u64 + 1);
            }
            end = start;
        }
        Ok(0)
    }
}

/// Most events written with one write and fsync per file.
const WRITE_EVENTS: usize = 4_096;

/// Events encoded for the next write, and the batches they came in, whose
/// events are let go once encoded: only their delivery tokens wait for the
/// fsync.
#[derive(Default)]
struct Gathered {
    buffers: BTreeMap<PathBuf, Vec<u8>>,
    batches: Vec<Batch>,
    events: usize,
}

impl Gathered {
    /// Encodes a batch's events into the buffers of their paths.
    fn add(&mut self, mut batch: Batch, template: &PathTemplate, codec: Codec) {
        let now = chrono::Utc::now();
        for event in &batch.events {
            let path = template.render(event, &now);
            let buffer = match self.buffers.get_mut(path.as_ref()) {
                Some(buffer) => buffer,
                None => self.buffers.entry(path.into_owned()).or_default(),
            };
            codec.encode_line(event, buffer);
        }
        self.events += batch.events.len();
        batch.events = Vec::new();
        self.batches.push(batch);
    }

    /// Empties the buffers, keeping their capacity for the paths that were
    /// written last time.
    fn reuse(mut buffers: BTreeMap<PathBuf, Vec<u8>>) -> Self {
        buffers.retain(|_, buffer| {
            let used = !buffer.is_empty();
            buffer.clear();
            used
        });
        Self {
            buffers,
            ..Self::default()
        }
    }
}

/// A write done on a blocking thread, and what it hands back.
type Written = (
    Result<(), (PathBuf, std::io::Error)>,
    BTreeMap<PathBuf, OpenFile>,
    Gathered,
);

/// Appends batches until the input ends. While one write and fsync runs on
/// a blocking thread, the batches that arrive are encoded for the next one,
/// so that a slow fsync makes the writes larger instead of holding the
/// dataflow. The blocking thread allocates nothing (the buffers come back
/// to be reused here): a thread that allocates gets a malloc arena of its
/// own, and arenas cost memory.
async fn run(
    template: PathTemplate,
    codec: Codec,
    mut context: SinkContext,
) -> Result<(), ComponentError> {
    let mut files = Some(BTreeMap::new());
    let mut next = Gathered::default();
    // The buffers of the last write, to gather the one after the next into.
    let mut spare = None;
    let mut writing: Option<tokio::task::JoinHandle<Written>> = None;
    let mut input_open = true;
    loop {
        if let Some(write) = writing.as_mut() {
            tokio::select! {
                done = write => {
                    writing = None;
                    let (written, open, gathered) = done.expect("the writer does not panic");
                    files = Some(open);
                    let buffers_len = gathered.buffers.values().map(Vec::len).sum();
                    let outcome = match written {
                        Ok(()) => {
                            context.metrics.sent(gathered.events, buffers_len);
                            Delivery::Delivered
                        }
                        Err(_) => Delivery::Failed,
                    };
                    for batch in gathered.batches {
                        batch.finish(outcome);
                    }
                    written.map_err(|(path, source)| ComponentError::Io {
                        context: format!("sink `{}` cannot write {}", context.name, path.display()),
                        source,
                    })?;
                    spare = Some(gathered.buffers);
                }
                batch = context.input.recv(), if input_open && next.events < WRITE_EVENTS => {
                    match batch {
                        Some(batch) => next.add(batch, &template, codec),
                        None => input_open = false,
                    }
                }
            }
            continue;
        }
        if next.events == 0 {
            if !input_open {
                return Ok(());
            }
            match context.input.recv().await {
                Some(batch) => next.add(batch, &template, codec),
                None => return Ok(()),
            }
        }
        // Batches already waiting are written with the same write and fsync.
        while next.events < WRITE_EVENTS {
            let Some(batch) = context.input.try_recv() else {
                break;
            };
            next.add(batch, &template, codec);
        }
        let gathered =
            std::mem::replace(&mut next, Gathered::reuse(spare.take().unwrap_or_default()));
        let mut open = files.take().expect("no write is running");
        writing = Some(tokio::task::spawn_blocking(move || {
            let written = write_all(&mut open, &gathered.buffers);
            (written, open, gathered)
        }));
    }
}

/// Writes and fsyncs every buffer to its file, reopening files that were
/// rotated away.
fn write_all(
    files: &mut BTreeMap<PathBuf, OpenFile>,
    buffers: &BTreeMap<PathBuf, Vec<u8>>,
) -> Result<(), (PathBuf, std::io::Error)> {
    for (path, bytes) in buffers.iter().filter(|(_, bytes)| !bytes.is_empty()) {
        let fail = |err| (path.clone(), err);
        let current_inode = std::fs::metadata(path).ok().map(|meta| meta.ino());
        let stale = files
            .get(path)
            .is_none_or(|open| Some(open.inode) != current_inode);
        if stale {
            if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(fail)?;
            }
            files.insert(path.clone(), OpenFile::open(path).map_err(fail)?);
        }
        let open = files.get_mut(path).expect("opened above");
        open.append(path, bytes).map_err(fail)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datascale_core::event::Origin;

    #[test]
    fn paths_render_fields_and_dates() {
        let template = PathTemplate::parse("out/%Y/{{ host }}-{{ nope }}.log").unwrap();
        let origin = Origin::new("web/1", "d", "s");
        let event = Event::from_message("x", &origin);
        let now = chrono::DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
            .unwrap()
            .to_utc();
        assert_eq!(
            template.render(&event, &now),
            Path::new("out/2026/web_1-_.log")
        );
    }

    #[test]
    fn a_torn_last_line_is_cut_off_before_the_next_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.json");
        std::fs::write(&path, "{\"n\":1}\n{\"n\":2}\n{\"n\":").unwrap();
        let mut files = BTreeMap::new();
        let buffers = BTreeMap::from([(path.clone(), b"{\"n\":3}\n".to_vec())]);
        write_all(&mut files, &buffers).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n");

        // Cut short under the sink (copy-truncate), in the middle of a line.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(12)
            .unwrap();
        write_all(&mut files, &buffers).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "{\"n\":1}\n{\"n\":3}\n");
    }

    #[test]
    fn bad_templates_are_refused_with_the_reason() {
        assert!(
            PathTemplate::parse("out/{{ host.log")
                .unwrap_err()
                .contains("without")
        );
        assert!(
            PathTemplate::parse("out/%Q.log")
                .unwrap_err()
                .contains("strftime")
        );
    }
}
