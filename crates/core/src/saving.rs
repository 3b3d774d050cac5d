//! Saving a position that acknowledgements move (a `file` source's
//! checkpoints, a disk buffer's read position), so that a crash repeats
//! little. A save starts as soon as something new is acknowledged and the
//! save before it is done; it runs on a blocking thread, so the dataflow
//! goes on meanwhile, and the next save covers what was acknowledged in
//! the meantime. The sender waits while [`MAX_UNSAVED_EVENTS`] events are
//! past the saved position: that is the most a crash of the process makes
//! it send again. A save writes the state file's newest copy, which waits
//! for no disk; at most every [`DURABLE_EVERY`], and at the end, it also
//! writes the durable file (fsynced), which a power loss keeps.

use std::{
    io,
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::{sync::Semaphore, task::JoinHandle};

/// Most events a `file` source, or a disk buffer, sends past the position
/// it saved last: after a crash (a SIGKILL, a power loss) it sends at most
/// these again. Large enough for the `file` sink to gather a full write
/// while it writes the one before.
pub const MAX_UNSAVED_EVENTS: usize = 4_096;

/// Most time between two durable saves while positions move (and after the
/// last one): what a power loss, rather than a crash of the process, may
/// make a sender send again on top of [`MAX_UNSAVED_EVENTS`].
pub const DURABLE_EVERY: Duration = Duration::from_millis(250);

/// The events sent past the saved position, shared by the task that sends
/// and the task that saves.
#[derive(Debug, Clone)]
pub struct Unsaved(Arc<Semaphore>);

impl Default for Unsaved {
    fn default() -> Self {
        Self(Arc::new(Semaphore::new(MAX_UNSAVED_EVENTS)))
    }
}

impl Unsaved {
    /// Waits until `events` more may be sent, and counts them; returns what
    /// to [`release`](Self::release) for them (a batch larger than the
    /// window takes all of it).
    pub async fn reserve(&self, events: usize) -> usize {
        let counted = events.min(MAX_UNSAVED_EVENTS);
        self.0
            .acquire_many(counted as u32)
            .await
            .expect("the window is never closed")
            .forget();
        counted
    }

    /// Events reserved before are past the saved position no more: a save
    /// covers them, or they are sent again.
    pub fn release(&self, counted: usize) {
        self.0.add_permits(counted);
    }
}

/// A save in progress: its outcome, and the bytes it wrote.
type Running<T> = JoinHandle<(io::Result<T>, Vec<u8>)>;

/// One save at a time, on a blocking thread. The bytes to write are
/// encoded here and come back with the outcome, so that writing them
/// allocates nothing there (a thread that allocates gets a malloc arena of
/// its own, and arenas cost memory).
#[derive(Debug)]
pub struct Saver<T> {
    running: Option<Running<T>>,
    /// Whether the save in progress is durable.
    running_durable: bool,
    spare: Vec<u8>,
    /// When the last durable save began.
    last_durable: Instant,
    /// Something was saved for a crash of the process only.
    behind: bool,
}

impl<T> Default for Saver<T> {
    fn default() -> Self {
        Self {
            running: None,
            running_durable: false,
            spare: Vec::new(),
            last_durable: Instant::now(),
            behind: false,
        }
    }
}

impl<T: Send + 'static> Saver<T> {
    /// Whether a save is in progress.
    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// Starts a save (none may be in progress): `encode` fills the bytes
    /// here, `write` stores them on a blocking thread, told whether to
    /// store them durably too: when `durable` asks it (the last save), or
    /// the last durable save began [`DURABLE_EVERY`] ago.
    pub fn start(
        &mut self,
        durable: bool,
        encode: impl FnOnce(&mut Vec<u8>),
        write: impl FnOnce(&[u8], bool) -> io::Result<T> + Send + 'static,
    ) {
        debug_assert!(self.running.is_none(), "one save at a time");
        let durable = durable || self.last_durable.elapsed() >= DURABLE_EVERY;
        if durable {
            self.last_durable = Instant::now();
        }
        self.behind = !durable;
        self.running_durable = durable;
        let mut bytes = std::mem::take(&mut self.spare);
        bytes.clear();
        encode(&mut bytes);
        self.running = Some(tokio::task::spawn_blocking(move || {
            let written = write(&bytes, durable);
            (written, bytes)
        }));
    }

    /// When a durable save is due for what was saved for a crash of the
    /// process only; `None` when everything saved is durable (or a save is
    /// in progress).
    pub fn durable_due(&self) -> Option<tokio::time::Instant> {
        (self.behind && self.running.is_none()).then(|| (self.last_durable + DURABLE_EVERY).into())
    }

    /// The outcome of the save in progress; never ready while none is.
    /// Waiting may be cancelled (in a `select!`) and taken up again.
    pub async fn finished(&mut self) -> io::Result<T> {
        let Some(running) = self.running.as_mut() else {
            return std::future::pending().await;
        };
        let (written, bytes) = running.await.expect("a save does not panic");
        self.running = None;
        self.spare = bytes;
        // A durable save that failed is due again.
        self.behind |= self.running_durable && written.is_err();
        written
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn the_sender_waits_once_the_window_is_full_until_a_save_releases_it() {
        let unsaved = Unsaved::default();
        let first = unsaved.reserve(MAX_UNSAVED_EVENTS - 10).await;
        let waiting = tokio::time::timeout(Duration::from_millis(50), unsaved.reserve(11)).await;
        assert!(waiting.is_err(), "11 more do not fit");
        unsaved.release(first);
        assert_eq!(unsaved.reserve(11).await, 11);
    }

    #[tokio::test]
    async fn a_batch_larger_than_the_window_takes_all_of_it() {
        let unsaved = Unsaved::default();
        assert_eq!(
            unsaved.reserve(MAX_UNSAVED_EVENTS * 3).await,
            MAX_UNSAVED_EVENTS
        );
    }

    #[tokio::test]
    async fn a_save_runs_off_the_task_and_hands_its_outcome_back() {
        let mut saver = Saver::default();
        assert!(!saver.is_running());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("position");
        let target = path.clone();
        saver.start(
            false,
            |bytes| bytes.extend_from_slice(b"42"),
            move |bytes, durable| {
                assert!(!durable, "the last durable save began just now");
                std::fs::write(&target, bytes).map(|()| bytes.len())
            },
        );
        assert!(saver.is_running());
        assert_eq!(saver.durable_due(), None, "a save is in progress");
        assert_eq!(saver.finished().await.unwrap(), 2);
        assert!(!saver.is_running());
        assert_eq!(std::fs::read(&path).unwrap(), b"42");
        assert!(
            saver.durable_due().is_some(),
            "what was saved is not durable"
        );
        saver.start(true, |_| {}, |_, durable| Ok(usize::from(durable)));
        assert_eq!(saver.finished().await.unwrap(), 1);
        assert_eq!(saver.durable_due(), None);
    }
}
