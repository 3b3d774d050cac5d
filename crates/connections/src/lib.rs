//! The connections a server holds open and their limits, shared by the
//! API and Web UI, the `http_server` source and the `syslog` source (TCP):
//! how many may be open at once, how long one may wait without a request,
//! and how long a request (or a syslog message) may take to arrive once it
//! has begun.
//!
//! A [`ConnectionTable`] admits each accepted connection as a
//! [`Connection`], which is in one of three phases: *idle* (nothing of the
//! next request has arrived; the idle timeout runs), *reading* (part of a
//! request has arrived; the read timeout runs) or *busy* (a request is in
//! progress, such as a long-polled sync; no timeout runs). At the cap, the
//! connection that has gone longest without a request in progress is
//! closed to admit the new one; when every connection is busy, the new one
//! is refused at once. Busy connections are never closed.
//!
//! The timeouts are kept by the connection's socket itself, a
//! [`TimedStream`]: a read or a write that waits past the deadline of the
//! phase fails, which ends the connection. A connection costs one small
//! shared record, one entry in the table's idle order and one timer, and
//! the table needs no task of its own.
//!
//! The cap is never more than the process's open-file limit less
//! [`RESERVED_FILES`], so that the table closes connections before the
//! process runs out of descriptors.

mod http;
mod stream;

use std::{
    collections::BTreeMap,
    io,
    net::SocketAddr,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use futures_util::task::AtomicWaker;
use tokio::{
    net::{TcpListener, TcpStream},
    sync::Notify,
    time::Instant,
};
use tokio_util::sync::CancellationToken;
use tracing::{error, warn};

pub use http::{BodyTimedOut, body_timeout_in, serve};
pub use stream::TimedStream;

/// Open files kept for everything but the connections of one server
/// (stores, logs, buffers, tailed files, outgoing connections) when its
/// cap comes from the open-file limit.
pub const RESERVED_FILES: u64 = 256;

/// Connections that may still be closing, beyond the cap, after being
/// closed to make room; past it new ones are refused until they are gone.
const CLOSING_SLACK: usize = 64;

/// The least time between two log lines about the cap being reached.
const REPORT_INTERVAL: Duration = Duration::from_secs(10);

/// The deadline of a busy connection.
const NEVER: u64 = u64::MAX;

/// The limits of one server's connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// The most connections open at once.
    pub max_connections: usize,
    /// How long a connection may wait for the first byte of a request.
    pub idle_timeout: Duration,
    /// How long a request may take to arrive once its first byte has (for
    /// HTTP: its head, the body has its own timeout).
    pub read_timeout: Duration,
}

/// The open connections of one server (or of several that share their
/// limits); cloning it gives another handle on the same table.
#[derive(Debug, Clone)]
pub struct ConnectionTable {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    /// The server, as log lines name it.
    server: String,
    /// The limits, with the cap within the open-file limit.
    limits: ConnectionLimits,
    /// The instant the deadlines and idle times count from.
    epoch: Instant,
    state: Mutex<State>,
    /// Told when the last connection is gone.
    emptied: Notify,
}

#[derive(Debug, Default)]
struct State {
    /// Connections admitted and not yet gone, those closing included.
    open: usize,
    /// The connections without a request in progress, in the order they
    /// became so: the first one goes first.
    idle: BTreeMap<u64, Arc<Slot>>,
    /// The key of the next connection to join `idle`.
    next_key: u64,
    /// Connections closed to make room and refused since the last log line.
    closed_for_room: u64,
    refused: u64,
    last_report: Option<Instant>,
}

/// The phase of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Phase {
    Idle,
    Reading,
    Busy,
}

/// What the table, the socket and the requests of one connection share.
#[derive(Debug)]
struct Slot {
    table: Arc<Shared>,
    /// A [`Phase`].
    phase: AtomicU8,
    /// Requests in progress.
    busy: AtomicUsize,
    /// The key of this connection in the idle order while not busy.
    idle_key: AtomicU64,
    /// When the timeout of the phase runs out, in milliseconds since the
    /// epoch; [`NEVER`] while busy.
    deadline: AtomicU64,
    /// Closed to make room for a new connection.
    evicted: AtomicBool,
    /// Told when `evicted` is set.
    eviction: Notify,
    /// The task of the last read or write that waited on the socket, woken
    /// when a deadline begins outside it (a request's end).
    socket_waiter: AtomicWaker,
}

/// An admitted connection; dropping it removes it from its table.
#[derive(Debug)]
pub struct Connection {
    slot: Arc<Slot>,
}

/// A request in progress on a connection: while it lives, the connection
/// is busy. Dropping it makes the connection idle again.
#[derive(Debug)]
pub struct Busy {
    slot: Arc<Slot>,
}

impl ConnectionTable {
    /// A table for `server` (as log lines name it) with `limits`; a cap
    /// above the open-file limit less [`RESERVED_FILES`] is lowered to it,
    /// and the log says so.
    pub fn new(server: impl Into<String>, mut limits: ConnectionLimits) -> Self {
        let server = server.into();
        if let Some((open_files, room)) = open_file_room()
            && room < limits.max_connections
        {
            warn!(
                server = %server,
                max_connections = limits.max_connections,
                open_file_limit = open_files,
                serving = room,
                "The open-file limit leaves room for fewer connections than max_connections; serving fewer."
            );
            limits.max_connections = room;
        }
        Self {
            shared: Arc::new(Shared {
                server,
                limits,
                epoch: Instant::now(),
                state: Mutex::new(State::default()),
                emptied: Notify::new(),
            }),
        }
    }

    /// The next connection `listener` accepts, or `None` once `shutdown`
    /// is cancelled. After an accept error other than a client giving up,
    /// such as running out of file descriptors, it logs and waits a second,
    /// so that the loop does not spin while the cause lasts.
    pub async fn accept(
        &self,
        listener: &TcpListener,
        shutdown: &CancellationToken,
    ) -> Option<(TcpStream, SocketAddr)> {
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => return Some(accepted),
                    Err(err) if gave_up(&err) => {}
                    Err(err) => {
                        error!(server = %self.shared.server, error = %err, "Cannot accept a connection; trying again in a second.");
                        tokio::select! {
                            () = tokio::time::sleep(Duration::from_secs(1)) => {}
                            () = shutdown.cancelled() => return None,
                        }
                    }
                },
                () = shutdown.cancelled() => return None,
            }
        }
    }

    /// Admits a new connection, idle: at the cap, the connection without a
    /// request in progress for the longest is closed to make room; `None`
    /// when every connection is busy, and the caller refuses it.
    pub async fn admit(&self) -> Option<Connection> {
        let (admitted, made_room, report) = self.shared.admit();
        self.shared.report(report);
        if made_room {
            // The connection closed to make room goes before the next one
            // is accepted, so that a flood does not pile up closing ones.
            tokio::task::yield_now().await;
        }
        admitted
    }

    /// Waits until every connection of the table is gone.
    pub async fn closed(&self) {
        loop {
            let emptied = self.shared.emptied.notified();
            if self.shared.lock().open == 0 {
                return;
            }
            emptied.await;
        }
    }
}

/// Whether an accept error only means that a client gave up on its
/// connection before it was accepted.
fn gave_up(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// The process's soft open-file limit and the connections one server may
/// hold under it, if it has a limit.
fn open_file_room() -> Option<(u64, usize)> {
    let open_files = rustix::process::getrlimit(rustix::process::Resource::Nofile).current?;
    let room = open_files
        .saturating_sub(RESERVED_FILES)
        .max(open_files / 2);
    Some((open_files, usize::try_from(room).unwrap_or(usize::MAX)))
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(NEVER - 1)
}

impl Shared {
    /// See [`ConnectionTable::admit`]: the connection, whether another was
    /// closed to make room for it, and the counts to log, if due.
    fn admit(self: &Arc<Self>) -> (Option<Connection>, bool, Option<(u64, u64)>) {
        let mut state = self.lock();
        let max = self.limits.max_connections;
        let mut made_room = false;
        let mut report = None;
        if state.open >= max {
            let oldest = match state.open < max + CLOSING_SLACK {
                true => state.idle.pop_first(),
                false => None,
            };
            made_room = oldest.map(|(_, slot)| slot.evict()).is_some();
            match made_room {
                true => state.closed_for_room += 1,
                false => state.refused += 1,
            }
            report = state.report_due();
            if !made_room {
                return (None, false, report);
            }
        }
        let now = self.now();
        let slot = Arc::new(Slot {
            table: Arc::clone(self),
            phase: AtomicU8::new(Phase::Idle as u8),
            busy: AtomicUsize::new(0),
            idle_key: AtomicU64::new(0),
            deadline: AtomicU64::new(now + millis(self.limits.idle_timeout)),
            evicted: AtomicBool::new(false),
            eviction: Notify::new(),
            socket_waiter: AtomicWaker::new(),
        });
        state.open += 1;
        state.join_idle(&slot);
        (Some(Connection { slot }), made_room, report)
    }

    /// Milliseconds since the epoch.
    fn now(&self) -> u64 {
        millis(self.epoch.elapsed())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Logs what [`State::report_due`] counted.
    fn report(&self, counts: Option<(u64, u64)>) {
        if let Some((closed_idle, refused)) = counts {
            warn!(
                server = %self.server,
                max_connections = self.limits.max_connections,
                closed_idle,
                refused,
                "At the connection limit: closed idle connections to admit new ones, and refused new ones while every connection was busy."
            );
        }
    }
}

impl State {
    /// Puts `slot` last in the idle order.
    fn join_idle(&mut self, slot: &Arc<Slot>) {
        slot.idle_key.store(self.next_key, Ordering::Relaxed);
        self.idle.insert(self.next_key, Arc::clone(slot));
        self.next_key += 1;
    }

    /// The connections closed to make room and refused since the last
    /// report, when one is due (at most one every [`REPORT_INTERVAL`]).
    fn report_due(&mut self) -> Option<(u64, u64)> {
        let now = Instant::now();
        if self
            .last_report
            .is_some_and(|last| now.duration_since(last) < REPORT_INTERVAL)
        {
            return None;
        }
        self.last_report = Some(now);
        Some((
            std::mem::take(&mut self.closed_for_room),
            std::mem::take(&mut self.refused),
        ))
    }
}

impl Slot {
    fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Relaxed) {
            0 => Phase::Idle,
            1 => Phase::Reading,
            _ => Phase::Busy,
        }
    }

    /// Enters `phase`, whose timeout runs from now.
    fn enter(&self, phase: Phase, timeout: Duration) {
        self.phase.store(phase as u8, Ordering::Relaxed);
        self.deadline
            .store(self.table.now() + millis(timeout), Ordering::Relaxed);
    }

    /// The deadline of the current phase, if it has one.
    fn deadline(&self) -> Option<Instant> {
        match self.deadline.load(Ordering::Relaxed) {
            NEVER => None,
            at => Some(self.table.epoch + Duration::from_millis(at)),
        }
    }

    /// Part of a request has arrived on an idle connection.
    fn reading(&self) {
        if self.phase() != Phase::Busy {
            self.enter(Phase::Reading, self.table.limits.read_timeout);
        }
    }

    /// No request is in progress and nothing of the next one has arrived.
    fn idle(self: &Arc<Self>) {
        let was_busy = self.phase() == Phase::Busy;
        if was_busy && !self.evicted.load(Ordering::Relaxed) {
            self.table.lock().join_idle(self);
        }
        self.enter(Phase::Idle, self.table.limits.idle_timeout);
        if was_busy {
            // A read may be waiting with no deadline: let it take this one.
            self.socket_waiter.wake();
        }
    }

    /// A request has begun: the connection leaves the idle order.
    fn busy(self: &Arc<Self>) -> Busy {
        if self.busy.fetch_add(1, Ordering::Relaxed) == 0 {
            let key = self.idle_key.load(Ordering::Relaxed);
            self.table.lock().idle.remove(&key);
            self.phase.store(Phase::Busy as u8, Ordering::Relaxed);
            self.deadline.store(NEVER, Ordering::Relaxed);
        }
        Busy {
            slot: Arc::clone(self),
        }
    }

    /// Tells the connection to close, to make room.
    fn evict(&self) {
        self.evicted.store(true, Ordering::Release);
        self.eviction.notify_one();
    }
}

impl Connection {
    /// `stream`, the connection's socket, under the timeouts of its phase.
    pub fn stream<S>(&self, stream: S) -> TimedStream<S> {
        TimedStream::new(stream, Arc::clone(&self.slot))
    }

    /// A request (or a message) has begun to arrive: its read timeout runs
    /// from now. An HTTP server calls it on a new connection, whose first
    /// request is expected at once.
    pub fn reading(&self) {
        self.slot.reading();
    }

    /// Nothing of the next request (or message) has arrived: the idle
    /// timeout runs from now.
    pub fn idle(&self) {
        self.slot.idle();
    }

    /// Marks a request in progress until the returned guard is dropped.
    pub fn busy(&self) -> Busy {
        self.slot.busy()
    }

    /// Whether part of a request has arrived and no request is in progress.
    pub fn is_reading(&self) -> bool {
        self.slot.phase() == Phase::Reading
    }

    /// Whether a request is in progress.
    pub fn is_busy(&self) -> bool {
        self.slot.phase() == Phase::Busy
    }

    /// Completes when the table closes this connection to make room.
    pub async fn evicted(&self) {
        loop {
            let woken = self.slot.eviction.notified();
            if self.slot.evicted.load(Ordering::Acquire) {
                return;
            }
            woken.await;
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        let table = &self.slot.table;
        let mut state = table.lock();
        state
            .idle
            .remove(&self.slot.idle_key.load(Ordering::Relaxed));
        state.open -= 1;
        if state.open == 0 {
            table.emptied.notify_waiters();
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        if self.slot.busy.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.slot.idle();
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    fn table(max_connections: usize) -> ConnectionTable {
        ConnectionTable::new(
            "test",
            ConnectionLimits {
                max_connections,
                idle_timeout: Duration::from_millis(300),
                read_timeout: Duration::from_millis(100),
            },
        )
    }

    fn is_evicted(connection: &Connection) -> bool {
        connection.slot.evicted.load(Ordering::Acquire)
    }

    #[tokio::test]
    async fn at_the_cap_the_longest_idle_goes_and_busy_ones_stay() {
        let table = table(2);
        let first = table.admit().await.unwrap();
        let second = table.admit().await.unwrap();
        let request = first.busy();
        let third = table.admit().await.unwrap();
        assert!(is_evicted(&second) && !is_evicted(&first));
        drop(second);

        // Idle again, `first` has been idle less long than `third`.
        drop(request);
        let fourth = table.admit().await.unwrap();
        assert!(is_evicted(&third) && !is_evicted(&first));
        drop(third);

        let _requests = (first.busy(), fourth.busy());
        assert!(table.admit().await.is_none(), "every connection is busy");
        assert_eq!(
            table.shared.lock().refused,
            1,
            "counted for the next log line"
        );
    }

    #[tokio::test]
    async fn connections_still_closing_count_until_the_slack_is_used_up() {
        let table = table(1);
        let mut closing = vec![table.admit().await.unwrap()];
        for _ in 0..CLOSING_SLACK {
            closing.push(table.admit().await.unwrap());
        }
        assert!(closing.iter().rev().skip(1).all(is_evicted));
        assert!(table.admit().await.is_none(), "the slack is used up");
        closing.clear();
        assert!(table.admit().await.is_some());
    }

    #[tokio::test]
    async fn closed_waits_for_the_last_connection() {
        let table = table(4);
        let connection = table.admit().await.unwrap();
        let waiting = tokio::spawn({
            let table = table.clone();
            async move { table.closed().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(connection);
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("closed() returns once the table is empty")
            .unwrap();
    }

    #[test]
    fn the_cap_stays_within_the_open_file_limit() {
        let table = table(usize::MAX);
        let (open_files, room) = open_file_room().expect("the tests run under an open-file limit");
        assert_eq!(table.shared.limits.max_connections, room);
        assert!(
            room as u64
                <= open_files
                    .saturating_sub(RESERVED_FILES)
                    .max(open_files / 2)
        );
    }

    #[tokio::test]
    async fn the_socket_keeps_the_idle_and_read_timeouts_but_not_while_busy() {
        let table = table(4);
        let (client, server) = tokio::io::duplex(64);
        let (mut client, mut server) = (client, table.admit().await.unwrap().stream(server));
        let mut byte = [0u8; 1];

        // Idle: the idle timeout runs; a byte starts the read timeout.
        let started = Instant::now();
        client.write_all(b"x").await.unwrap();
        server.read_exact(&mut byte).await.unwrap();
        let err = server.read_exact(&mut byte).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(100) && waited < Duration::from_millis(300),
            "the read timeout, not the idle one: {waited:?}"
        );

        // Busy: nothing times out; idle again, the idle timeout runs.
        let connection = table.admit().await.unwrap();
        let (_client, server) = tokio::io::duplex(64);
        let mut server = connection.stream(server);
        let request = connection.busy();
        let read = tokio::time::timeout(Duration::from_millis(500), server.read(&mut byte)).await;
        assert!(read.is_err(), "a busy connection waits: {read:?}");
        let started = Instant::now();
        drop(request);
        let err = server.read(&mut byte).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(300));
    }
}
