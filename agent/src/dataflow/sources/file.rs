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
//! Receipts are awaited in the order batches were sent, so a checkpoint never
//! passes a batch still in flight; checkpoints are written atomically at most
//! every [`CHECKPOINT_EVERY`] and once more at shutdown.

use std::{
    collections::{BTreeMap, BTreeSet, VecDeque},
    fs::File,
    io::{self, Read, Seek, SeekFrom},
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    time::{Duration, Instant, SystemTime},
};

use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::{FileConfig, OversizeLines, ReadFrom, lines};
use crate::{
    durable,
    event::{Batch, Event, Origin},
    runtime::{
        self, ComponentError, MAX_BATCH_EVENTS, SourceContext,
        ack::{Delivery, DeliveryReceipt, DeliveryToken},
    },
};

/// Longest wait between two checkpoint writes while lines are acknowledged.
pub const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// Bytes read from one file in one go.
const READ_CHUNK: usize = 64 * 1024;

/// Wait between two reads when no file had anything new.
const IDLE_POLL: Duration = Duration::from_millis(100);

/// The compiled `include` and `exclude` globs.
#[derive(Debug, Clone)]
pub struct Patterns {
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
        self.generation = generation;
        Ok(())
    }

    /// Reads what the file has past its position, up to [`READ_CHUNK`]
    /// bytes, and turns the complete lines into events. A line read whole
    /// in this chunk shares the chunk's memory instead of being copied.
    fn read(
        &mut self,
        config: &FileConfig,
        origin: &Origin,
        chunk: &mut BytesMut,
    ) -> io::Result<Option<Lines>> {
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
        let max = config.max_line_bytes;
        let mut events = Vec::new();
        let mut oversize = 0;
        let mut pos = 0;
        while let Some(found) = memchr::memchr(b'\n', &data[pos..]) {
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
pub async fn run(
    config: FileConfig,
    patterns: Patterns,
    context: SourceContext,
) -> Result<(), ComponentError> {
    let checkpoint_path = context
        .state_dir
        .join(format!("{}.checkpoints.json", context.origin.source()));
    let checkpoints = load_checkpoints(&checkpoint_path);
    let resume: BTreeMap<FileKey, u64> = checkpoints.iter().map(|c| (c.key, c.offset)).collect();
    let (pending, acknowledged) = mpsc::unbounded_channel();
    let (rewind_sender, mut rewinds) = mpsc::unbounded_channel();
    let acker = tokio::spawn(acknowledge(
        acknowledged,
        rewind_sender,
        checkpoint_path,
        checkpoints,
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
            runtime::blocking(|| {
                loop {
                    match watcher.read(&config, &context.origin, &mut chunk) {
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
/// checkpoint over what was delivered, and writes the checkpoints. A batch
/// that failed makes the reader go back to its first line.
async fn acknowledge(
    mut pending: mpsc::UnboundedReceiver<Pending>,
    rewinds: mpsc::UnboundedSender<Rewind>,
    path: PathBuf,
    checkpoints: Vec<Checkpoint>,
) {
    let mut offsets: BTreeMap<FileKey, Checkpoint> =
        checkpoints.into_iter().map(|c| (c.key, c)).collect();
    let mut generations: BTreeMap<FileKey, u64> = BTreeMap::new();
    let mut backlog: VecDeque<Pending> = VecDeque::new();
    let mut unsaved = false;
    let mut ticker = tokio::time::interval(CHECKPOINT_EVERY);
    loop {
        let batch = match backlog.pop_front() {
            Some(batch) => batch,
            None => tokio::select! {
                next = pending.recv() => match next {
                    Some(batch) => batch,
                    None => break,
                },
                _ = ticker.tick(), if unsaved => {
                    save_checkpoints(&path, &offsets);
                    unsaved = false;
                    continue;
                }
            },
        };
        let generation = generations.entry(batch.key).or_default();
        if batch.generation < *generation {
            // Sent before a rewind: its lines are read and sent again.
            batch.receipt.abandon();
            continue;
        }
        let (key, start) = (batch.key, batch.start);
        match batch.receipt.outcome().await {
            Delivery::Failed => {
                *generation += 1;
                let generation = *generation;
                // What was sent after it from this file is sent again too.
                while let Ok(queued) = pending.try_recv() {
                    if queued.key == key {
                        queued.receipt.abandon();
                    }
                    backlog.push_back(queued);
                }
                let _ = rewinds.send(Rewind {
                    key,
                    offset: start,
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
                unsaved = true;
            }
        }
    }
    if unsaved {
        save_checkpoints(&path, &offsets);
    }
}

fn load_checkpoints(path: &Path) -> Vec<Checkpoint> {
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

fn save_checkpoints(path: &Path, offsets: &BTreeMap<FileKey, Checkpoint>) {
    let file = CheckpointFile {
        files: offsets.values().cloned().collect(),
    };
    let bytes = serde_json::to_vec_pretty(&file).expect("checkpoints serialize");
    let written = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| durable::write_atomic(path, &bytes, 0o600));
    if let Err(err) = written {
        warn!(path = %path.display(), error = %err, "Cannot write the checkpoints; they are tried again with the next acknowledgement.");
    }
}

#[cfg(test)]
mod proptests;
