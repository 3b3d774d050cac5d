//! The `file` source: tails the files matching its globs, follows rotation
//! (rename and copy-truncate) and moves its checkpoints only over lines that
//! every sink has acknowledged. When a batch is not delivered, the file is
//! read again from that batch's first line, and the batches sent after it
//! are abandoned, so nothing is lost and repeats stay within a batch or two.
//!
//! Files are known by device and inode, so a file renamed away by rotation
//! is read to its end while the new file at its path starts from the
//! beginning. Only complete lines are sent; a line longer than
//! `max_line_bytes` is truncated or skipped without being buffered whole.
//! Batches hold at most [`MAX_BATCH_EVENTS`] lines, however short.
//! Receipts are awaited in the order batches were sent, so a checkpoint never
//! passes a batch still in flight; checkpoints are written atomically as
//! soon as they moved and the write before is done, off the async thread,
//! and the source waits while [`MAX_UNSAVED_EVENTS`] lines are past the
//! saved checkpoints: after a crash, it sends at most those again. Those
//! writes wait for no disk; one at most every 250 ms, and the last, is
//! fsynced too, for a power loss.
//!
//! [`MAX_UNSAVED_EVENTS`]: datascale_core::saving::MAX_UNSAVED_EVENTS
//!
//! Here too: the `file` `conf`, with its defaults, its checks and its build.

use std::{
    collections::{BTreeMap, BTreeSet, VecDeque},
    fs::File,
    io::{self, Read, Seek, SeekFrom},
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use bytes::{Bytes, BytesMut};
use datascale_core::{
    ack::{Delivery, DeliveryReceipt, DeliveryToken},
    component::{self, BuildError, ComponentError, ComponentTask, MAX_BATCH_EVENTS, SourceContext},
    durable::StateFile,
    event::{Batch, Event, Origin},
    saving::{Saver, Unsaved},
};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::{OversizeLines, SourceBuild, SourceType, default_max_line_bytes, lines};
use crate::{Problems, TypeConf, invalid};

/// `file`: tails the files matching `include`, following rotation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Glob patterns of the files to read.
    pub include: Vec<String>,
    /// Glob patterns of files to leave out.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Where to start in a file seen for the first time.
    #[serde(default)]
    pub read_from: ReadFrom,
    /// Leave out files not modified for this many seconds.
    #[serde(default)]
    pub ignore_older_secs: Option<u64>,
    /// Longest line, in bytes; see `oversize_lines` for longer ones.
    #[serde(default = "default_max_line_bytes")]
    pub max_line_bytes: usize,
    /// What to do with a line longer than `max_line_bytes`: `truncate` or `skip`. Both are counted.
    #[serde(default)]
    pub oversize_lines: OversizeLines,
    /// Milliseconds between two scans of the globs for new files.
    #[serde(default = "default_glob_minimum_cooldown_ms")]
    pub glob_minimum_cooldown_ms: u64,
}

/// Where the `file` source starts in a new file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadFrom {
    /// From the first byte.
    #[default]
    Beginning,
    /// From the end: only lines written from now on.
    End,
}

fn default_glob_minimum_cooldown_ms() -> u64 {
    1_000
}

impl SourceType for FileConfig {
    fn build(&self, build: SourceBuild<'_>) -> Result<ComponentTask, BuildError> {
        let patterns = Patterns::new(self).map_err(invalid(build.name))?;
        Ok(Box::pin(run(self.clone(), patterns, build.context)))
    }
}

impl TypeConf for FileConfig {
    fn check(&self, problems: &mut Problems) {
        if self.include.is_empty() {
            problems.add(
                "include",
                "name at least one file or glob pattern, such as /var/log/*.log",
            );
        }
        if self.max_line_bytes == 0 {
            problems.add("max_line_bytes", "must be at least 1");
        }
    }
}

/// Bytes read from one file in one go.
const READ_CHUNK: usize = 64 * 1024;

/// Wait between two reads when no file had anything new.
const IDLE_POLL: Duration = Duration::from_millis(100);

/// The compiled `include` and `exclude` globs.
#[derive(Debug, Clone)]
struct Patterns {
    include: Vec<String>,
    exclude: Vec<glob::Pattern>,
}

impl Patterns {
    /// Compiles the globs; a bad one is named with the reason.
    pub fn new(config: &FileConfig) -> Result<Self, String> {
        let compile = |pattern: &String| {
            glob::Pattern::new(pattern)
                .map_err(|err| format!("the glob `{pattern}` is invalid: {err}"))
        };
        for pattern in &config.include {
            compile(pattern)?;
        }
        let exclude = config
            .exclude
            .iter()
            .map(compile)
            .collect::<Result<_, _>>()?;
        Ok(Self {
            include: config.include.clone(),
            exclude,
        })
    }

    /// The regular files matching now, not excluded, and not older than `ignore_older`.
    fn scan(&self, ignore_older: Option<Duration>) -> BTreeSet<PathBuf> {
        let now = SystemTime::now();
        self.include
            .iter()
            .filter_map(|pattern| glob::glob(pattern).ok())
            .flatten()
            .flatten()
            .filter(|path| {
                !self
                    .exclude
                    .iter()
                    .any(|exclude| exclude.matches_path(path))
            })
            .filter(|path| {
                std::fs::metadata(path).is_ok_and(|meta| {
                    meta.is_file()
                        && ignore_older.is_none_or(|limit| {
                            meta.modified()
                                .ok()
                                .and_then(|modified| now.duration_since(modified).ok())
                                .is_none_or(|age| age <= limit)
                        })
                })
            })
            .collect()
    }
}

/// A file's identity, kept across renames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct FileKey {
    dev: u64,
    ino: u64,
}

impl FileKey {
    fn of(meta: &std::fs::Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

/// Where reading a file resumes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Checkpoint {
    #[serde(flatten)]
    key: FileKey,
    /// The path it was last read at, for people reading the file.
    path: PathBuf,
    /// Bytes acknowledged: the offset of the next line to send.
    offset: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct CheckpointFile {
    files: Vec<Checkpoint>,
}

/// One file being read.
struct Watcher {
    path: PathBuf,
    key: FileKey,
    file: File,
    /// Offset just past the last complete line read.
    consumed: u64,
    /// The kept part (at most `max_line_bytes` and a `\r`) of the line being read.
    partial: Vec<u8>,
    /// The whole length in the file of the line being read.
    partial_len: u64,
    /// The rest of the last chunk read, when a batch filled up before its
    /// end: it comes before what the file holds past the read position.
    unparsed: Bytes,
    /// The path now names another file, or none: read to the end, then let go.
    rotated: bool,
    /// How many times reading went back over lines not delivered.
    generation: u64,
}

/// Lines read from one file in one go, and the offset just past them.
struct Lines {
    events: Vec<Event>,
    end: u64,
    /// Lines longer than `max_line_bytes` among them (cut or skipped).
    oversize: usize,
}

impl Watcher {
    fn open(path: &Path, start: u64) -> io::Result<Self> {
        let mut file = File::open(path)?;
        let key = FileKey::of(&file.metadata()?);
        file.seek(SeekFrom::Start(start))?;
        Ok(Self {
            path: path.to_owned(),
            key,
            file,
            consumed: start,
            partial: Vec::new(),
            partial_len: 0,
            unparsed: Bytes::new(),
            rotated: false,
            generation: 0,
        })
    }

    /// Goes back to `offset`, the start of a line, for read generation `generation`.
    fn rewind(&mut self, offset: u64, generation: u64) -> io::Result<()> {
        self.file.seek(SeekFrom::Start(offset))?;
        self.consumed = offset;
        self.partial.clear();
        self.partial_len = 0;
        self.unparsed = Bytes::new();
        self.generation = generation;
        Ok(())
    }

    /// Turns up to `room` complete lines into events: first what is left
    /// of the last chunk read, else what the file has past its position, up
    /// to [`READ_CHUNK`] bytes. A line read whole in one chunk shares the
    /// chunk's memory instead of being copied.
    fn read(
        &mut self,
        config: &FileConfig,
        origin: &Origin,
        chunk: &mut BytesMut,
        room: usize,
    ) -> io::Result<Option<Lines>> {
        let data = if self.unparsed.is_empty() {
            let size = self.file.metadata()?.len();
            if size < self.consumed + self.partial_len {
                info!(path = %self.path.display(), "File was truncated; reading it from the start.");
                self.file.seek(SeekFrom::Start(0))?;
                self.consumed = 0;
                self.partial.clear();
                self.partial_len = 0;
            }
            chunk.resize(READ_CHUNK, 0);
            let read = self.file.read(chunk)?;
            chunk.truncate(read);
            let data = chunk.split().freeze();
            if read == 0 {
                return Ok(None);
            }
            data
        } else {
            std::mem::take(&mut self.unparsed)
        };
        let max = config.max_line_bytes;
        let mut events = Vec::new();
        let mut oversize = 0;
        let mut pos = 0;
        while let Some(found) = memchr::memchr(b'\n', &data[pos..]) {
            if events.len() == room {
                self.unparsed = data.slice(pos..);
                return Ok(Some(Lines {
                    events,
                    end: self.consumed,
                    oversize,
                }));
            }
            let line_end = pos + found;
            let line_len = self.partial_len + found as u64;
            let last = match found {
                0 => self.partial.last().copied(),
                _ => Some(data[line_end - 1]),
            };
            let content = lines::content_len(line_len, last);
            let cut = content > max as u64;
            if cut {
                oversize += 1;
                warn!(path = %self.path.display(), bytes = content, max_line_bytes = max, action = ?config.oversize_lines, "A line is longer than max_line_bytes.");
            }
            if !(cut && config.oversize_lines == OversizeLines::Skip) {
                let kept = content.min(max as u64) as usize;
                let message = if self.partial_len == 0 {
                    data.slice(pos..pos + kept)
                } else {
                    lines::keep(&mut self.partial, &data[pos..line_end], max);
                    Bytes::copy_from_slice(&self.partial[..kept])
                };
                events.push(Event::from_message(message, origin));
            }
            self.consumed += line_len + 1;
            self.partial.clear();
            self.partial_len = 0;
            pos = line_end + 1;
        }
        lines::keep(&mut self.partial, &data[pos..], max);
        self.partial_len += (data.len() - pos) as u64;
        Ok(Some(Lines {
            events,
            end: self.consumed,
            oversize,
        }))
    }
}

/// A batch in flight and the offset its acknowledgement moves the checkpoint to.
struct Pending {
    key: FileKey,
    path: PathBuf,
    /// Where its first line starts: where reading starts again if it fails.
    start: u64,
    end: u64,
    /// The file's read generation when it was sent; see [`Rewind`].
    generation: u64,
    /// What it counts in the window of unsaved lines.
    unsaved: usize,
    receipt: DeliveryReceipt,
}

/// Read a file again from `offset`: a batch starting there was not
/// delivered. Batches of earlier generations still in flight are ignored by
/// the checkpoint writer, since their lines are read and sent again.
struct Rewind {
    key: FileKey,
    offset: u64,
    generation: u64,
}

/// Pause after a rewind before reading again, so that a sink that fails at
/// once does not make the source spin.
const REWIND_PAUSE: Duration = Duration::from_secs(1);

/// Tails the files until the source is stopped, then waits for the
/// acknowledgements of what it sent and writes its checkpoints.
async fn run(
    config: FileConfig,
    patterns: Patterns,
    context: SourceContext,
) -> Result<(), ComponentError> {
    let checkpoint_path = context
        .state_dir
        .join(format!("{}.checkpoints.json", context.origin.source()));
    let checkpoint_file =
        StateFile::new(&checkpoint_path, 0o600).expect("a checkpoint file has a name");
    let checkpoints = load_checkpoints(&checkpoint_file);
    let resume: BTreeMap<FileKey, u64> = checkpoints.iter().map(|c| (c.key, c.offset)).collect();
    let (pending, acknowledged) = mpsc::unbounded_channel();
    let (rewind_sender, mut rewinds) = mpsc::unbounded_channel();
    let unsaved = Unsaved::default();
    let acker = tokio::spawn(acknowledge(
        acknowledged,
        rewind_sender,
        checkpoint_file,
        checkpoints,
        unsaved.clone(),
    ));

    let ignore_older = config.ignore_older_secs.map(Duration::from_secs);
    let cooldown = Duration::from_millis(config.glob_minimum_cooldown_ms);
    let mut watchers: BTreeMap<FileKey, Watcher> = BTreeMap::new();
    let mut chunk = BytesMut::with_capacity(READ_CHUNK);
    let mut last_scan: Option<Instant> = None;
    'tail: while !context.shutdown.is_cancelled() {
        if last_scan.is_none_or(|at| at.elapsed() >= cooldown) {
            discover(
                &config,
                &patterns,
                ignore_older,
                &resume,
                last_scan.is_none(),
                &mut watchers,
            );
            last_scan = Some(Instant::now());
        }
        let mut rewound = false;
        while let Ok(rewind) = rewinds.try_recv() {
            rewound = true;
            if let Some(watcher) = watchers.get_mut(&rewind.key) {
                warn!(path = %watcher.path.display(), offset = rewind.offset, "A batch was not delivered; reading the file again from its first line.");
                if let Err(err) = watcher.rewind(rewind.offset, rewind.generation) {
                    warn!(path = %watcher.path.display(), error = %err, "Cannot read the file again; its lines are read at the next start.");
                }
            }
        }
        if rewound {
            tokio::select! {
                () = tokio::time::sleep(REWIND_PAUSE) => {}
                () = context.shutdown.cancelled() => break,
            }
        }
        let mut read_any = false;
        let mut finished = Vec::new();
        for watcher in watchers.values_mut() {
            let mut events = Vec::new();
            let start = watcher.consumed;
            let mut end = start;
            // One hand-over of the worker thread for the whole batch: each
            // `block_in_place` may start a thread, and threads cost memory.
            component::blocking(|| {
                loop {
                    let room = MAX_BATCH_EVENTS - events.len();
                    match watcher.read(&config, &context.origin, &mut chunk, room) {
                        Ok(Some(read)) => {
                            read_any = true;
                            events.extend(read.events);
                            match config.oversize_lines {
                                OversizeLines::Skip => context.metrics.discard(read.oversize),
                                OversizeLines::Truncate => context.metrics.error(read.oversize),
                            }
                            context
                                .metrics
                                .received(0, read.end.saturating_sub(end) as usize);
                            end = read.end;
                            if events.len() >= MAX_BATCH_EVENTS {
                                break;
                            }
                        }
                        Ok(None) => {
                            if watcher.rotated {
                                finished.push(watcher.key);
                            }
                            break;
                        }
                        Err(err) => {
                            warn!(path = %watcher.path.display(), error = %err, "Cannot read the file; leaving it.");
                            finished.push(watcher.key);
                            break;
                        }
                    }
                }
            });
            if events.is_empty() {
                continue;
            }
            let unsaved = tokio::select! {
                counted = unsaved.reserve(events.len()) => counted,
                () = context.shutdown.cancelled() => break 'tail,
            };
            let (token, receipt) = DeliveryToken::new();
            let batch = Batch {
                events,
                delivery: Some(token),
            };
            let _ = pending.send(Pending {
                key: watcher.key,
                path: watcher.path.clone(),
                start,
                end,
                generation: watcher.generation,
                unsaved,
                receipt,
            });
            tokio::select! {
                sent = context.output.send(batch) => if sent.is_err() { break 'tail },
                () = context.shutdown.cancelled() => break 'tail,
            }
        }
        for key in finished {
            if let Some(watcher) = watchers.remove(&key) {
                info!(path = %watcher.path.display(), "Finished a rotated or deleted file.");
            }
        }
        if !read_any {
            tokio::select! {
                () = tokio::time::sleep(IDLE_POLL) => {}
                () = context.shutdown.cancelled() => break,
            }
        }
    }
    drop(pending);
    acker.await.expect("the checkpoint writer does not panic");
    Ok(())
}

/// Opens files that newly match, and marks watched files whose path now
/// names another file (or none) as rotated.
fn discover(
    config: &FileConfig,
    patterns: &Patterns,
    ignore_older: Option<Duration>,
    resume: &BTreeMap<FileKey, u64>,
    first_scan: bool,
    watchers: &mut BTreeMap<FileKey, Watcher>,
) {
    let matching = patterns.scan(ignore_older);
    for watcher in watchers.values_mut() {
        let still_here =
            std::fs::metadata(&watcher.path).is_ok_and(|meta| FileKey::of(&meta) == watcher.key);
        watcher.rotated = !still_here;
    }
    for path in matching {
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        let key = FileKey::of(&meta);
        if watchers.contains_key(&key) {
            continue;
        }
        let start = match resume.get(&key) {
            Some(offset) if *offset <= meta.len() => *offset,
            Some(_) => 0,
            None if first_scan && config.read_from == ReadFrom::End => meta.len(),
            None => 0,
        };
        match Watcher::open(&path, start) {
            Ok(watcher) => {
                info!(path = %path.display(), offset = start, "Reading a file.");
                watchers.insert(key, watcher);
            }
            Err(err) => warn!(path = %path.display(), error = %err, "Cannot open the file."),
        }
    }
}

/// Awaits receipts in the order batches were sent, moves each file's
/// checkpoint over what was delivered, and writes the checkpoints as soon
/// as they moved and the write before is done; a write gives back to the
/// window the lines it covers. A batch that failed makes the reader go back
/// to its first line.
async fn acknowledge(
    mut pending: mpsc::UnboundedReceiver<Pending>,
    rewinds: mpsc::UnboundedSender<Rewind>,
    file: StateFile,
    checkpoints: Vec<Checkpoint>,
    unsaved: Unsaved,
) {
    let file = Arc::new(file);
    let mut offsets: BTreeMap<FileKey, Checkpoint> =
        checkpoints.into_iter().map(|c| (c.key, c)).collect();
    let mut generations: BTreeMap<FileKey, u64> = BTreeMap::new();
    let mut backlog: VecDeque<Pending> = VecDeque::new();
    let mut waiting: Option<Pending> = None;
    let mut saver = Saver::default();
    // Lines delivered since the write in progress began, and those it covers.
    let mut delivered = 0;
    let mut writing = 0;
    let mut moved = false;
    let mut open = true;
    loop {
        if moved && !saver.is_running() {
            save_checkpoints(&mut saver, &file, &offsets, !open);
            writing = std::mem::take(&mut delivered);
            moved = false;
        }
        if waiting.is_none() {
            waiting = backlog.pop_front();
        }
        let stale = |batch: &mut Pending| {
            batch.generation < generations.get(&batch.key).copied().unwrap_or_default()
        };
        if let Some(batch) = waiting.take_if(stale) {
            // Sent before a rewind: its lines are read and sent again.
            batch.receipt.abandon();
            unsaved.release(batch.unsaved);
            continue;
        }
        if waiting.is_none() && !open && !saver.is_running() {
            break;
        }
        let durable_due = saver.durable_due();
        tokio::select! {
            // Saved again, durably since it is due.
            () = tokio::time::sleep_until(durable_due.unwrap_or_else(tokio::time::Instant::now)), if durable_due.is_some() => moved = true,
            written = saver.finished(), if saver.is_running() => {
                if let Err(err) = written {
                    warn!(path = %file.path().display(), error = %err, "Cannot write the checkpoints; they are tried again with the next acknowledgement.");
                }
                unsaved.release(std::mem::take(&mut writing));
            }
            outcome = async { (&mut waiting.as_mut().expect("a batch is waiting").receipt).await }, if waiting.is_some() => {
                let batch = waiting.take().expect("a batch is waiting");
                let key = batch.key;
                match outcome {
                    Delivery::Failed => {
                        let generation = generations.entry(key).or_default();
                        *generation += 1;
                        let generation = *generation;
                        unsaved.release(batch.unsaved);
                        // What was sent after it from this file is sent again too.
                        while let Ok(queued) = pending.try_recv() {
                            if queued.key == key {
                                queued.receipt.abandon();
                            }
                            backlog.push_back(queued);
                        }
                        let _ = rewinds.send(Rewind {
                            key,
                            offset: batch.start,
                            generation,
                        });
                    }
                    Delivery::Delivered | Delivery::Dropped => {
                        offsets.insert(
                            key,
                            Checkpoint {
                                key,
                                path: batch.path,
                                offset: batch.end,
                            },
                        );
                        delivered += batch.unsaved;
                        moved = true;
                    }
                }
            }
            next = pending.recv(), if waiting.is_none() && open => match next {
                Some(batch) => waiting = Some(batch),
                None => open = false,
            },
        }
    }
    if saver.durable_due().is_some() {
        save_checkpoints(&mut saver, &file, &offsets, true);
        if let Err(err) = saver.finished().await {
            warn!(path = %file.path().display(), error = %err, "Cannot write the checkpoints; their newest copy is read at the next start.");
        }
    }
}

/// The newest copy of the checkpoints, else (a power loss cut it) the
/// durable file.
fn load_checkpoints(file: &StateFile) -> Vec<Checkpoint> {
    let newest = std::fs::read(file.newest_path())
        .ok()
        .and_then(|bytes| serde_json::from_slice::<CheckpointFile>(&bytes).ok());
    if let Some(newest) = newest {
        return newest.files;
    }
    let path = file.path();
    match std::fs::read(path) {
        Ok(bytes) => match serde_json::from_slice::<CheckpointFile>(&bytes) {
            Ok(file) => file.files,
            Err(err) => {
                warn!(path = %path.display(), error = %err, "The checkpoint file is unreadable; files are read as if seen for the first time.");
                Vec::new()
            }
        },
        Err(err) if err.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(err) => {
            warn!(path = %path.display(), error = %err, "Cannot read the checkpoint file; files are read as if seen for the first time.");
            Vec::new()
        }
    }
}

/// Starts writing the checkpoints (in their directory, made if missing):
/// their newest copy, and the durable file when it is `durable` or due.
fn save_checkpoints(
    saver: &mut Saver<()>,
    file: &Arc<StateFile>,
    offsets: &BTreeMap<FileKey, Checkpoint>,
    durable: bool,
) {
    let checkpoints = CheckpointFile {
        files: offsets.values().cloned().collect(),
    };
    let file = file.clone();
    saver.start(
        durable,
        |bytes| serde_json::to_writer_pretty(bytes, &checkpoints).expect("checkpoints serialize"),
        move |bytes, durable| {
            if let Some(dir) = file.path().parent() {
                std::fs::create_dir_all(dir)?;
            }
            file.write_newest(bytes)?;
            if durable {
                file.write(bytes)?;
            }
            Ok(())
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use datascale_core::event::text_of;

    #[test]
    fn a_chunk_of_short_lines_makes_batches_of_at_most_the_room_given() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("short.log");
        let lines: Vec<String> = (0..1_000).map(|n| n.to_string()).collect();
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        let config: FileConfig =
            serde_json::from_value(serde_json::json!({"include": [path.display().to_string()]}))
                .unwrap();
        let origin = Origin::new("host", "dataflow", "logs");
        let mut watcher = Watcher::open(&path, 0).unwrap();
        let mut chunk = BytesMut::new();
        let mut messages = Vec::new();
        let mut batches = 0;
        while let Some(read) = watcher.read(&config, &origin, &mut chunk, 256).unwrap() {
            assert!(read.events.len() <= 256, "{} lines", read.events.len());
            messages.extend(
                read.events
                    .iter()
                    .map(|event| text_of(event.field("message").unwrap()).into_owned()),
            );
            let bytes: usize = messages.iter().map(|message| message.len() + 1).sum();
            assert_eq!(
                read.end, bytes as u64,
                "the offset is past the last line read"
            );
            batches += 1;
        }
        assert_eq!(messages, lines);
        assert_eq!(batches, 4, "one 64 KiB chunk, in batches of 256");
    }
}

#[cfg(test)]
mod proptests;
