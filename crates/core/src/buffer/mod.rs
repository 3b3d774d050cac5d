//! Disk buffers: a sink whose `buffer.type` is `disk` takes its events from
//! files below `data_dir/buffers/` instead of straight from its inputs.
//!
//! Two tasks stand between the inputs and the sink. The writer appends each
//! batch to the buffer's segments, fsyncs, and only then acknowledges the
//! batch to its source, so a source moves its checkpoint (or answers its
//! client) once the events are on disk. When the buffer holds `max_size`
//! bytes, the writer waits (`block`) or discards new batches
//! (`drop_newest`). The reader reads the records back in order, sends them
//! to the sink as batches of their own, and saves the read position over
//! what the sink acknowledged as soon as it moved and the save before is
//! done (a save waits for no disk, but one at most every 250 ms and the
//! last are fsynced); a batch the sink did not deliver is read and sent
//! again, with the ones sent after it. What is on disk outlives the process: a sink down
//! for hours, a restart or a crash loses nothing, and since the reader
//! sends at most [`MAX_UNSAVED_EVENTS`] events past the saved position, a
//! crash makes it send at most those again.

mod config;
mod segments;

use std::{
    collections::VecDeque,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use tokio::sync::{Notify, mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use vrl::value::Value;

pub use self::config::{BufferConfig, BufferType, MIN_DISK_BUFFER_BYTES, WhenFull};
use self::segments::{Position, Record, SegmentReader, SegmentWriter};
use crate::{
    ack::{Delivery, DeliveryReceipt, DeliveryToken},
    backoff::Backoff,
    component::{
        self, ComponentTask, FIRST_RESTART_BACKOFF, Input, MAX_BATCH_EVENTS, MAX_RESTART_BACKOFF,
    },
    durable::StateFile,
    event::{Batch, Event},
    metrics::ComponentMetrics,
    saving::{MAX_UNSAVED_EVENTS, Saver},
};

/// Batches read back and not yet acknowledged by the sink, at most: enough
/// for the largest request an `http` sink gathers from batches of 256.
const MAX_IN_FLIGHT: usize = 16;

/// Batches the writer takes from its input before one fsync covers them.
const BATCHES_PER_SYNC: usize = 16;

/// A disk buffer opened for one sink.
pub struct DiskBuffer {
    dir: PathBuf,
    writer: SegmentWriter,
    reader: SegmentReader,
    ledger: Arc<Ledger>,
    config: BufferConfig,
}

/// What the writer and the reader share.
struct Ledger {
    /// Bytes of the segment files.
    bytes: AtomicU64,
    /// Events written and not yet acknowledged by the sink.
    events: AtomicU64,
    /// Signalled when the reader frees space.
    freed: Notify,
    metrics: Arc<ComponentMetrics>,
}

impl Ledger {
    fn add(&self, events: u64, bytes: u64) {
        let events = self.events.fetch_add(events, Ordering::AcqRel) + events;
        let bytes = self.bytes.fetch_add(bytes, Ordering::AcqRel) + bytes;
        self.show(events, bytes);
    }

    fn remove(&self, events: u64, bytes: u64) {
        let events = self.events.fetch_sub(events, Ordering::AcqRel) - events;
        let bytes = self.bytes.fetch_sub(bytes, Ordering::AcqRel) - bytes;
        self.show(events, bytes);
        self.freed.notify_waiters();
    }

    fn show(&self, events: u64, bytes: u64) {
        self.metrics
            .disk_buffer_events
            .store(events, Ordering::Relaxed);
        self.metrics
            .disk_buffer_bytes
            .store(bytes, Ordering::Relaxed);
    }

    /// Whether `bytes` more fit below `max`. When nothing is waiting for the
    /// sink, what is left on disk is read already and about to go, so one
    /// record may pass the bound rather than wait forever.
    fn has_room(&self, bytes: u64, max: u64) -> bool {
        self.bytes.load(Ordering::Acquire) + bytes <= max
            || self.events.load(Ordering::Acquire) == 0
    }
}

/// How far the writer got: what is durable, and whether it has finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Written {
    durable: Position,
    finished: bool,
}

impl DiskBuffer {
    /// Opens the buffer in `dir` (creating it), and shows its size in `metrics`.
    pub fn open(
        dir: &Path,
        config: &BufferConfig,
        metrics: Arc<ComponentMetrics>,
    ) -> std::io::Result<Self> {
        let segment_bytes = (config.max_size / 8).clamp(64 << 10, 32 << 20);
        let opened = segments::open(dir, segment_bytes)?;
        metrics
            .disk_buffer_max_bytes
            .store(config.max_size, Ordering::Relaxed);
        let ledger = Arc::new(Ledger {
            bytes: AtomicU64::new(0),
            events: AtomicU64::new(0),
            freed: Notify::new(),
            metrics,
        });
        ledger.add(opened.events, opened.bytes);
        if opened.events > 0 {
            info!(dir = %dir.display(), events = opened.events, "A disk buffer holds events from before; the sink gets them first.");
        }
        Ok(Self {
            dir: dir.to_owned(),
            writer: opened.writer,
            reader: opened.reader,
            ledger,
            config: config.clone(),
        })
    }

    /// The two tasks: the writer takes batches from `input` until it ends;
    /// the reader feeds `sink` until the writer has finished and the sink
    /// has acknowledged everything, or, once `shutdown` is cancelled, until
    /// the batches in flight are settled (the rest waits on disk).
    pub fn tasks(
        self,
        name: &str,
        input: Input,
        sink: mpsc::Sender<Batch>,
        shutdown: CancellationToken,
    ) -> [ComponentTask; 2] {
        let durable = self.writer.position();
        let (written, progress) = watch::channel(Written {
            durable,
            finished: false,
        });
        let store = Store {
            name: name.to_owned(),
            writer: self.writer,
            ledger: self.ledger.clone(),
            config: self.config,
            written,
        };
        let feed = Feed {
            name: name.to_owned(),
            dir: self.dir,
            reader: self.reader,
            ledger: self.ledger,
            progress,
            sink,
            shutdown,
        };
        [
            Box::pin(async move {
                store.run(input).await;
                Ok(())
            }),
            Box::pin(async move {
                feed.run().await;
                Ok(())
            }),
        ]
    }
}

/// The writing side.
struct Store {
    name: String,
    writer: SegmentWriter,
    ledger: Arc<Ledger>,
    config: BufferConfig,
    written: watch::Sender<Written>,
}

impl Store {
    async fn run(mut self, mut input: Input) {
        while let Some(first) = input.recv().await {
            let mut batches = vec![first];
            while batches.len() < BATCHES_PER_SYNC {
                match input.try_recv() {
                    Some(batch) => batches.push(batch),
                    None => break,
                }
            }
            let mut settled: Vec<(Batch, u64)> = Vec::new();
            for batch in batches {
                let payload = encode(&batch.events);
                // Appended and not yet committed counts too.
                let appended: u64 = settled.iter().map(|(_, bytes)| bytes).sum();
                let needed = appended + payload.len() as u64 + segments::HEADER_BYTES;
                if !self.ledger.has_room(needed, self.config.max_size) {
                    if self.config.when_full == WhenFull::DropNewest {
                        self.ledger.metrics.discard(batch.events.len());
                        batch.finish(Delivery::Dropped);
                        continue;
                    }
                    // What is appended already goes out before the wait.
                    self.commit(std::mem::take(&mut settled));
                    let needed = needed - appended;
                    while !self.ledger.has_room(needed, self.config.max_size) {
                        let freed = self.ledger.freed.notified();
                        if self.ledger.has_room(needed, self.config.max_size) {
                            break;
                        }
                        freed.await;
                    }
                }
                let events = batch.events.len();
                match component::blocking(|| self.writer.append(events as u32, &payload)) {
                    Ok(bytes) => settled.push((batch, bytes)),
                    Err(err) => {
                        warn!(component = %self.name, error = %err, "Cannot write to the disk buffer; the batch is not acknowledged and its source sends it again.");
                        self.ledger.metrics.error(1);
                        batch.finish(Delivery::Failed);
                    }
                }
            }
            self.commit(settled);
        }
        let durable = self.writer.position();
        self.written.send_replace(Written {
            durable,
            finished: true,
        });
    }

    /// Syncs what was appended, then acknowledges those batches to their
    /// sources and tells the reader; if the sync fails, they are cut off
    /// again and fail, so their sources send them again.
    fn commit(&mut self, appended: Vec<(Batch, u64)>) {
        if appended.is_empty() {
            return;
        }
        let before = self.written.borrow().durable;
        let synced = component::blocking(|| {
            let synced = self.writer.sync();
            if synced.is_err() {
                let _ = self.writer.cut_back(before);
            }
            synced
        });
        let outcome = match synced {
            Ok(()) => Delivery::Delivered,
            Err(err) => {
                warn!(component = %self.name, error = %err, "Cannot sync the disk buffer; its batches are not acknowledged and their sources send them again.");
                self.ledger.metrics.error(1);
                Delivery::Failed
            }
        };
        if outcome == Delivery::Delivered {
            let events = appended.iter().map(|(b, _)| b.events.len() as u64).sum();
            let bytes = appended.iter().map(|(_, bytes)| bytes).sum();
            self.ledger.add(events, bytes);
            let durable = self.writer.position();
            self.written
                .send_modify(|written| written.durable = durable);
        }
        for (batch, _) in appended {
            batch.finish(outcome);
        }
    }
}

/// The reading side.
struct Feed {
    name: String,
    dir: PathBuf,
    reader: SegmentReader,
    ledger: Arc<Ledger>,
    progress: watch::Receiver<Written>,
    sink: mpsc::Sender<Batch>,
    shutdown: CancellationToken,
}

/// A record sent to the sink, waiting for its acknowledgement.
struct InFlight {
    receipt: DeliveryReceipt,
    start: Position,
    end: Position,
    events: u32,
}

/// The read position as saved, and the save in progress.
struct Saved {
    file: Arc<StateFile>,
    saver: Saver<u64>,
    /// What the last save that ended covered.
    position: Position,
    /// What the save in progress covers.
    saving: Position,
    /// Events read past `position`, at most [`MAX_UNSAVED_EVENTS`].
    unsaved: usize,
    /// Events the save in progress covers.
    covered: usize,
    /// Events acknowledged since it began.
    acknowledged: usize,
}

impl Feed {
    async fn run(mut self) {
        let mut in_flight: VecDeque<InFlight> = VecDeque::new();
        let mut acknowledged = self.reader.position();
        let mut saved = Saved {
            file: Arc::new(segments::position_file(&self.dir)),
            saver: Saver::default(),
            position: acknowledged,
            saving: acknowledged,
            unsaved: 0,
            covered: 0,
            acknowledged: 0,
        };
        let mut backoff = Backoff::new(FIRST_RESTART_BACKOFF, MAX_RESTART_BACKOFF);
        // Set when the writer went away without saying it finished (aborted).
        let mut writer_gone = false;
        loop {
            if acknowledged != saved.saving && !saved.saver.is_running() {
                self.save(&mut saved, acknowledged, false);
            }
            let written = *self.progress.borrow_and_update();
            let finished = written.finished || writer_gone;
            let stopping = self.shutdown.is_cancelled() && finished;
            let unread = self.reader.position() < written.durable;
            if in_flight.is_empty() && (stopping || finished && !unread) {
                break;
            }
            let may_send = unread
                && !stopping
                && in_flight.len() < MAX_IN_FLIGHT
                && saved.unsaved + MAX_BATCH_EVENTS <= MAX_UNSAVED_EVENTS;
            let durable_due = saved.saver.durable_due();
            tokio::select! {
                // Saved again, durably since it is due.
                () = tokio::time::sleep_until(durable_due.unwrap_or_else(tokio::time::Instant::now)), if durable_due.is_some() => {
                    self.save(&mut saved, acknowledged, false);
                }
                freed = saved.saver.finished(), if saved.saver.is_running() => {
                    self.saved(&mut saved, freed);
                }
                outcome = async { (&mut in_flight.front_mut().expect("not empty").receipt).await }, if !in_flight.is_empty() => {
                    let settled = in_flight.pop_front().expect("not empty");
                    if outcome == Delivery::Failed {
                        // They are read and sent again.
                        saved.unsaved -= settled.events as usize;
                        for later in in_flight.drain(..) {
                            later.receipt.abandon();
                            saved.unsaved -= later.events as usize;
                        }
                        self.reader.rewind(settled.start);
                        let wait = backoff.next_wait();
                        warn!(component = %self.name, retry_in_ms = wait.as_millis() as u64, "The sink did not deliver a batch from its disk buffer; sending it again after a pause.");
                        tokio::select! {
                            () = tokio::time::sleep(wait) => {}
                            () = self.shutdown.cancelled() => {}
                        }
                        continue;
                    }
                    backoff.reset();
                    acknowledged = settled.end;
                    saved.acknowledged += settled.events as usize;
                    self.ledger.remove(u64::from(settled.events), 0);
                }
                permit = self.sink.reserve(), if may_send => {
                    let Ok(permit) = permit else { break };
                    match component::blocking(|| self.reader.next(written.durable)) {
                        Ok(Some(record)) => {
                            let (batch, flight) = self.batch_of(record);
                            permit.send(batch);
                            saved.unsaved += flight.events as usize;
                            in_flight.push_back(flight);
                        }
                        Ok(None) => {}
                        Err(err) => {
                            warn!(component = %self.name, error = %err, "Cannot read the disk buffer; trying again after a pause.");
                            self.ledger.metrics.error(1);
                            tokio::time::sleep(backoff.next_wait()).await;
                        }
                    }
                }
                changed = self.progress.changed(), if !may_send && !finished => {
                    writer_gone = changed.is_err();
                }
                () = self.shutdown.cancelled(), if !self.shutdown.is_cancelled() => {}
            }
        }
        if saved.saver.is_running() {
            let freed = saved.saver.finished().await;
            self.saved(&mut saved, freed);
        }
        if acknowledged != saved.position || saved.saver.durable_due().is_some() {
            self.save(&mut saved, acknowledged, true);
            let freed = saved.saver.finished().await;
            self.saved(&mut saved, freed);
        }
    }

    /// A batch of the record's events, with a token of its own.
    fn batch_of(&self, record: Record) -> (Batch, InFlight) {
        let Record {
            events: count,
            payload,
            start,
            end,
        } = record;
        let events: Vec<Event> = payload
            .split(|&byte| byte == b'\n')
            .filter(|line| !line.is_empty())
            .filter_map(|line| match serde_json::from_slice::<Value>(line) {
                Ok(value) => Some(Event { value }),
                Err(err) => {
                    warn!(component = %self.name, error = %err, "An event in the disk buffer cannot be decoded; skipping it.");
                    self.ledger.metrics.error(1);
                    None
                }
            })
            .collect();
        let (token, receipt) = DeliveryToken::new();
        let batch = Batch {
            events,
            delivery: Some(token),
        };
        let flight = InFlight {
            receipt,
            start,
            end,
            events: count,
        };
        (batch, flight)
    }

    /// Starts saving `position` as the read position (durably when it is
    /// `durable` or due), then deleting the segments it has passed.
    fn save(&self, saved: &mut Saved, position: Position, durable: bool) {
        let file = saved.file.clone();
        // Rare, and the only part of a save that allocates.
        let passed_a_segment = position.segment > saved.position.segment;
        saved.saver.start(
            durable,
            |bytes| segments::encode_position(position, bytes),
            move |bytes, durable| {
                file.write_newest(bytes)?;
                if durable {
                    file.write(bytes)?;
                }
                match file.path().parent().filter(|_| passed_a_segment) {
                    Some(dir) => segments::delete_before(dir, position),
                    None => Ok(0),
                }
            },
        );
        saved.saving = position;
        saved.covered = std::mem::take(&mut saved.acknowledged);
    }

    /// Takes the outcome of a save: what it covers is unsaved no more. A
    /// save that failed is tried again with the next acknowledgement.
    fn saved(&self, saved: &mut Saved, freed: std::io::Result<u64>) {
        saved.unsaved -= std::mem::take(&mut saved.covered);
        match freed {
            Ok(freed) => {
                saved.position = saved.saving;
                self.ledger.remove(0, freed);
            }
            Err(err) => {
                warn!(component = %self.name, error = %err, "Cannot save the disk buffer's read position; it is tried again with the next acknowledgement.");
            }
        }
    }
}

/// The events as JSON lines, as a `json` sink writes them.
fn encode(events: &[Event]) -> Vec<u8> {
    // Most events of a log take a few hundred bytes as JSON.
    let mut payload = Vec::with_capacity(events.len() * 256);
    for event in events {
        event.write_json_line(&mut payload);
    }
    payload
}
