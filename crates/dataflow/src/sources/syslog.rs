//! The `syslog` source: receives RFC 5424 and RFC 3164 messages over UDP
//! (one a datagram) or TCP (one a line, or octet-counted as in RFC 6587),
//! and parses them into Vector's field names. A message that does not parse
//! is kept whole as `message` and counted. TCP connections are under the
//! limits of the `conf` (see [`datascale_connections`]).
//!
//! Here too: the `syslog` `conf`, with its defaults, its checks and its build.

use std::{
    net::{SocketAddr, TcpListener, UdpSocket},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use chrono::{Datelike, Utc};
use datascale_connections::{Connection, ConnectionLimits, ConnectionTable};
use datascale_core::{
    component::{
        BuildError, ComponentError, ComponentTask, MAX_BATCH_EVENTS, Output, SourceContext,
    },
    event::{Batch, Event, Origin},
    metrics::ComponentMetrics,
};
use serde::{Deserialize, Serialize};
use syslog_loose::{IncompleteDate, Message, ProcId, Variant};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tracing::{debug, info, warn};
use vrl::value::{ObjectMap, Value};

use super::{
    SourceBuild, SourceType, bind, connection_limits, default_max_connections,
    default_max_line_bytes, lines::continue_line, zeros,
};
use crate::{Problems, TypeConf};

/// `syslog`: receives syslog messages (RFC 3164 and 5424).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogConfig {
    /// Address to listen on, such as 0.0.0.0:514.
    pub address: SocketAddr,
    /// `tcp` (one message a line) or `udp` (one message a datagram).
    pub mode: SyslogMode,
    /// Longest message, in bytes; longer ones are truncated and counted.
    #[serde(default = "default_max_line_bytes")]
    pub max_length: usize,
    /// TCP: seconds a message may take to arrive once its first byte has; a
    /// slower sender is disconnected and the part it sent dropped.
    #[serde(default = "default_message_read_timeout_secs")]
    pub message_read_timeout_secs: u64,
    /// TCP: seconds a connection may stay without a message before it is
    /// closed. Long, since a sender over plain TCP may lose the message it
    /// writes into a connection just closed.
    #[serde(default = "default_syslog_idle_timeout_secs")]
    pub idle_timeout_secs: u64,
    /// TCP: the most connections open at once; at most the open-file limit
    /// less 256. Past it, the connection quiet the longest is closed to
    /// admit a new one.
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
}

impl SyslogConfig {
    /// The limits on this source's TCP connections.
    pub fn connection_limits(&self) -> ConnectionLimits {
        connection_limits(
            self.max_connections,
            self.idle_timeout_secs,
            self.message_read_timeout_secs,
        )
    }
}

/// The transport of a `syslog` source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyslogMode {
    /// Messages over TCP, one a line.
    Tcp,
    /// Messages over UDP, one a datagram.
    Udp,
}

fn default_message_read_timeout_secs() -> u64 {
    10
}

fn default_syslog_idle_timeout_secs() -> u64 {
    3_600
}

impl SourceType for SyslogConfig {
    fn build(&self, build: SourceBuild<'_>) -> Result<ComponentTask, BuildError> {
        let socket = match self.mode {
            SyslogMode::Tcp => Socket::Tcp(bind(build.name, self.address, TcpListener::bind)?),
            SyslogMode::Udp => Socket::Udp(bind(build.name, self.address, UdpSocket::bind)?),
        };
        Ok(Box::pin(run(self.clone(), socket, build.context)))
    }
}

impl TypeConf for SyslogConfig {
    fn check(&self, problems: &mut Problems) {
        for field in zeros([
            ("max_length", self.max_length as u64),
            ("message_read_timeout_secs", self.message_read_timeout_secs),
            ("idle_timeout_secs", self.idle_timeout_secs),
            ("max_connections", u64::from(self.max_connections)),
        ]) {
            problems.add(field, "must be at least 1");
        }
    }
}

/// Largest UDP datagram.
const MAX_DATAGRAM: usize = 65_535;

/// Longest decimal length prefix of an octet-counted frame.
const MAX_LENGTH_DIGITS: usize = 9;

/// The socket a `syslog` source was built with.
#[derive(Debug)]
enum Socket {
    /// Listening for TCP connections.
    Tcp(TcpListener),
    /// Receiving datagrams.
    Udp(UdpSocket),
}

/// Counts kept for the source's log lines.
#[derive(Debug, Default)]
struct Counts {
    unparsed: AtomicU64,
    truncated: AtomicU64,
}

/// What every connection or datagram handler shares.
#[derive(Debug)]
struct Receiver {
    origin: Arc<Origin>,
    output: Output,
    max_length: usize,
    counts: Counts,
    metrics: Arc<ComponentMetrics>,
}

/// Receives messages until the source is stopped.
async fn run(
    config: SyslogConfig,
    socket: Socket,
    context: SourceContext,
) -> Result<(), ComponentError> {
    let listen_error = |source| ComponentError::Io {
        context: format!("cannot listen on {}", config.address),
        source,
    };
    let receiver = Arc::new(Receiver {
        origin: context.origin,
        output: context.output,
        max_length: config.max_length,
        counts: Counts::default(),
        metrics: context.metrics,
    });
    info!(address = %config.address, mode = ?config.mode, "Listening for syslog messages.");
    match socket {
        Socket::Udp(socket) => {
            let socket = socket
                .set_nonblocking(true)
                .and_then(|()| tokio::net::UdpSocket::from_std(socket))
                .map_err(listen_error)?;
            tokio::select! {
                received = receive_datagrams(&socket, &receiver) => received.map_err(listen_error),
                () = context.shutdown.cancelled() => Ok(()),
            }
        }
        Socket::Tcp(listener) => {
            let listener = listener
                .set_nonblocking(true)
                .and_then(|()| tokio::net::TcpListener::from_std(listener))
                .map_err(listen_error)?;
            let table = ConnectionTable::new(
                format!("syslog source `{}`", receiver.origin.source()),
                config.connection_limits(),
            );
            while let Some((stream, peer)) = table.accept(&listener, &context.shutdown).await {
                // Refused: every connection is busy; dropping it closes it.
                let Some(connection) = table.admit().await else {
                    continue;
                };
                let receiver = Arc::clone(&receiver);
                let shutdown = context.shutdown.clone();
                tokio::spawn(async move {
                    let reader = BufReader::new(connection.stream(stream));
                    tokio::select! {
                        () = receive_stream(reader, peer, &receiver, &connection) => {}
                        () = shutdown.cancelled() => {}
                    }
                });
            }
            table.closed().await;
            Ok(())
        }
    }
}

/// One message a datagram; datagrams already waiting travel in one batch.
async fn receive_datagrams(
    socket: &tokio::net::UdpSocket,
    receiver: &Receiver,
) -> std::io::Result<()> {
    let mut buffer = vec![0u8; MAX_DATAGRAM];
    loop {
        let (size, peer) = socket.recv_from(&mut buffer).await?;
        let mut events = vec![receiver.event(&buffer[..size], peer)];
        while events.len() < MAX_BATCH_EVENTS {
            match socket.try_recv_from(&mut buffer) {
                Ok((size, peer)) => events.push(receiver.event(&buffer[..size], peer)),
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(err) => return Err(err),
            }
        }
        if receiver.send(events).await.is_err() {
            return Ok(());
        }
    }
}

/// Messages of one TCP connection until it closes, times out or is closed
/// to make room; messages already buffered travel in one batch, and those
/// read are sent on whatever ends the connection.
async fn receive_stream<R: AsyncRead + Unpin>(
    mut reader: BufReader<R>,
    peer: SocketAddr,
    receiver: &Receiver,
    connection: &Connection,
) {
    let mut frame = Vec::new();
    let mut events = Vec::new();
    loop {
        let read = tokio::select! {
            read = read_frame(&mut reader, &mut frame, receiver.max_length) => read,
            () = connection.evicted() => break,
        };
        match read {
            Ok(Some(cut)) => {
                if cut {
                    receiver.truncated();
                }
                if !frame.is_empty() {
                    events.push(receiver.event(&frame, peer));
                }
            }
            Ok(None) => break,
            Err(err) => {
                debug!(peer = %peer, error = %err, "A syslog connection failed.");
                break;
            }
        }
        let batch_complete = events.len() >= MAX_BATCH_EVENTS || reader.buffer().is_empty();
        if batch_complete && !events.is_empty() {
            let _busy = connection.busy();
            if receiver.send(std::mem::take(&mut events)).await.is_err() {
                return;
            }
        }
        match reader.buffer().is_empty() {
            true => connection.idle(),
            false => connection.reading(),
        }
    }
    if !events.is_empty() {
        let _ = receiver.send(events).await;
    }
}

/// Reads the next message into `frame`, keeping at most `max` bytes: an
/// octet-counted frame (`LEN SP MSG`) when the stream starts with digits and
/// a space, else a line. Returns `None` at the end, else whether it was cut.
async fn read_frame<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    frame: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Option<bool>> {
    // The digits a frame starts with, read one by one, since they may
    // straddle two reads of the connection.
    let mut digits = [0u8; MAX_LENGTH_DIGITS + 1];
    let mut count = 0;
    let next = loop {
        let available = reader.fill_buf().await?;
        match available.first() {
            Some(&byte) if byte.is_ascii_digit() && count < digits.len() => {
                digits[count] = byte;
                count += 1;
                reader.consume(1);
            }
            other => break other.copied(),
        }
    };
    let digits = &digits[..count];
    let length = match next {
        Some(b' ') if count <= MAX_LENGTH_DIGITS => std::str::from_utf8(digits)
            .ok()
            .and_then(|text| text.parse::<usize>().ok()),
        _ => None,
    };
    let Some(length) = length else {
        return continue_line(reader, frame, digits, max).await;
    };
    reader.consume(1);
    let kept = length.min(max);
    frame.clear();
    frame.reserve_exact(kept);
    frame.resize(kept, 0);
    reader.read_exact(frame).await?;
    let rest = (length - kept) as u64;
    let skipped = tokio::io::copy(&mut (&mut *reader).take(rest), &mut tokio::io::sink()).await?;
    if skipped < rest {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(Some(length > max))
}

impl Receiver {
    /// The event of one message, cut at `max_length`.
    fn event(&self, message: &[u8], peer: SocketAddr) -> Event {
        let message = match message.len() > self.max_length {
            true => {
                self.truncated();
                &message[..self.max_length]
            }
            false => message,
        };
        let text = String::from_utf8_lossy(message);
        let text = text.trim_end_matches(['\r', '\n']);
        let mut fields = match syslog_loose::parse_message_with_year_exact(
            text,
            year_of,
            Variant::Either,
        ) {
            Ok(parsed) => parsed_fields(parsed),
            Err(_) => {
                self.metrics.error(1);
                let count = self.counts.unparsed.fetch_add(1, Ordering::Relaxed) + 1;
                warn!(source = %self.origin.source(), peer = %peer, unparsed_total = count, "A message is not valid syslog; kept whole as `message`.");
                let mut fields = ObjectMap::new();
                fields.insert("message".into(), Value::from(text));
                fields
            }
        };
        fields.insert("source_ip".into(), Value::from(peer.ip().to_string()));
        Event::from_fields(fields, &self.origin)
    }

    fn truncated(&self) {
        let count = self.counts.truncated.fetch_add(1, Ordering::Relaxed) + 1;
        warn!(source = %self.origin.source(), max_length = self.max_length, truncated_total = count, "Truncated a message longer than max_length.");
    }

    async fn send(
        &self,
        events: Vec<Event>,
    ) -> Result<(), datascale_core::component::OutputClosed> {
        self.output.send(Batch::unacknowledged(events)).await
    }
}

/// The fields of a parsed message, named as Vector names them; structured
/// data elements become objects named by their id.
fn parsed_fields(message: Message<&str>) -> ObjectMap {
    let mut fields = ObjectMap::new();
    for element in &message.structured_data {
        let params: ObjectMap = element
            .params()
            .map(|(name, value)| ((*name).into(), Value::from(value)))
            .collect();
        fields.insert(element.id.into(), Value::Object(params));
    }
    let mut text = |name: &str, value: Option<&str>| {
        if let Some(value) = value {
            fields.insert(name.into(), Value::from(value));
        }
    };
    text("hostname", message.hostname);
    text("appname", message.appname);
    text("msgid", message.msgid);
    text("facility", message.facility.map(|f| f.as_str()));
    text("severity", message.severity.map(|s| s.as_str()));
    match message.procid {
        Some(ProcId::PID(pid)) => {
            fields.insert("procid".into(), Value::from(i64::from(pid)));
        }
        Some(ProcId::Name(name)) => {
            fields.insert("procid".into(), Value::from(name));
        }
        None => {}
    }
    if let syslog_loose::Protocol::RFC5424(version) = message.protocol {
        fields.insert("version".into(), Value::from(i64::from(version)));
    }
    if let Some(time) = message.timestamp {
        fields.insert("timestamp".into(), Value::Timestamp(time.to_utc()));
    }
    fields.insert("message".into(), Value::from(message.msg));
    fields
}

/// The year of an RFC 3164 date, which has none: this year, or last year
/// for a December date received in January.
fn year_of((month, _, _, _, _): IncompleteDate) -> i32 {
    let now = Utc::now();
    if month == 12 && now.month() == 1 {
        now.year() - 1
    } else {
        now.year()
    }
}

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {
    use super::*;

    fn message_of(event: &Event) -> String {
        event.message().expect("every event has a message")
    }

    pub(super) fn receiver(max_length: usize) -> Receiver {
        Receiver {
            origin: Arc::new(Origin::new("h", "d", "s")),
            output: Output::default(),
            max_length,
            counts: Counts::default(),
            metrics: Default::default(),
        }
    }

    pub(super) fn peer() -> SocketAddr {
        "127.0.0.1:5000".parse().unwrap()
    }

    #[test]
    fn rfc5424_fields_and_structured_data_are_parsed() {
        let line = br#"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog 1234 ID47 [exampleSDID@32473 iut="3" eventSource="Application"] An application event"#;
        let event = receiver(1000).event(line, peer());
        assert_eq!(message_of(&event), "An application event");
        assert_eq!(
            event.field("hostname"),
            Some(&Value::from("mymachine.example.com"))
        );
        assert_eq!(event.field("facility"), Some(&Value::from("local4")));
        assert_eq!(event.field("severity"), Some(&Value::from("notice")));
        assert_eq!(event.field("procid"), Some(&Value::from(1234)));
        let Some(Value::Object(data)) = event.field("exampleSDID@32473") else {
            panic!("{event:?}")
        };
        assert_eq!(data.get("iut"), Some(&Value::from("3")));
    }

    #[test]
    fn garbage_is_kept_whole_and_long_messages_are_cut() {
        let lenient = receiver(1000);
        let event = lenient.event(b"\x00not syslog at all", peer());
        assert_eq!(message_of(&event), "\u{0}not syslog at all");
        assert_eq!(lenient.metrics.errors.load(Ordering::Relaxed), 1);
        let receiver = receiver(10);
        let event = receiver.event(&[b'x'; 100], peer());
        assert_eq!(message_of(&event).len(), 10);
        assert_eq!(receiver.counts.truncated.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn octet_counted_and_line_frames_mix() {
        let input: &[u8] = b"5 hello3 abc\nplain line\n12 cut";
        let mut reader = BufReader::new(input);
        let mut frame = Vec::new();
        assert_eq!(
            read_frame(&mut reader, &mut frame, 4).await.unwrap(),
            Some(true)
        );
        assert_eq!(frame, b"hell");
        assert_eq!(
            read_frame(&mut reader, &mut frame, 4).await.unwrap(),
            Some(false)
        );
        assert_eq!(frame, b"abc");
        assert_eq!(
            read_frame(&mut reader, &mut frame, 100).await.unwrap(),
            Some(false)
        );
        assert_eq!(frame, b"", "the newline after a counted frame");
        read_frame(&mut reader, &mut frame, 100).await.unwrap();
        assert_eq!(frame, b"plain line");
        assert!(read_frame(&mut reader, &mut frame, 100).await.is_err());
    }

    #[tokio::test]
    async fn an_octet_count_cut_by_a_read_still_counts() {
        // Found by `proptests::frames_of_a_stream_come_back_in_order`: the
        // count was looked for in what one read had buffered, so a count
        // split between two reads made the frame (and the rest of the
        // connection) be read as lines.
        let input: &[u8] = b"11 <13>a\nb c d5 <13>e";
        let mut reader = BufReader::with_capacity(1, input);
        let mut frame = Vec::new();
        for expected in [&b"<13>a\nb c d"[..], b"<13>e"] {
            assert_eq!(
                read_frame(&mut reader, &mut frame, 100).await.unwrap(),
                Some(false)
            );
            assert_eq!(frame, expected);
        }
        assert_eq!(
            read_frame(&mut reader, &mut frame, 100).await.unwrap(),
            None
        );
    }
}
