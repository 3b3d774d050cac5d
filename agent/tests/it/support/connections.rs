//! Raw TCP clients that probe a server's connection limits: a sender that
//! trickles a request one byte a second, reading until the server closes
//! with a deadline, one HTTP/1.1 exchange on a kept-alive connection, and
//! the behaviour at a cap of two connections. The API, the `http_server`
//! source and the `syslog` source are all probed with these.

use std::{
    io::{ErrorKind, Read, Write},
    net::{SocketAddr, TcpStream},
    time::{Duration, Instant},
};

/// How long a client waits for the server to close a connection it should
/// close, beyond the timeout that closes it.
pub const SLACK: Duration = Duration::from_secs(4);

/// Connects to `address`.
pub fn open(address: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(address).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

/// Whether a read or write error means that the server closed the connection.
fn closed_by_server(err: &std::io::Error) -> bool {
    matches!(
        err.kind(),
        ErrorKind::ConnectionReset | ErrorKind::BrokenPipe | ErrorKind::ConnectionAborted
    )
}

/// Reads (and drops) whatever the server sends until it closes the
/// connection; returns how long that took, or `None` if it was still open
/// after `limit`.
pub fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let deadline = start + limit;
    let mut chunk = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut chunk) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => {}
            Err(err) if closed_by_server(&err) => return Some(start.elapsed()),
            Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(err) => panic!("reading from the server failed: {err}"),
        }
    }
}

/// Sends `pattern` over and over on `stream`, one byte a second, until the
/// server closes the connection; returns how long it kept it open. Fails
/// the test when it is still open after `limit`.
pub fn trickle_until_closed(stream: &mut TcpStream, pattern: &[u8], limit: Duration) -> Duration {
    let start = Instant::now();
    for byte in pattern.iter().cycle() {
        assert!(
            start.elapsed() < limit,
            "the server still takes a byte a second after {limit:?}"
        );
        if let Err(err) = stream.write_all(&[*byte]) {
            assert!(closed_by_server(&err), "writing failed: {err}");
            return start.elapsed();
        }
        // The pace: a read that waits a second for the server to close.
        if closed_within(stream, Duration::from_secs(1)).is_some() {
            return start.elapsed();
        }
    }
    unreachable!("the pattern cycles for ever")
}

/// Opens a connection and trickles `pattern` on it (see
/// [`trickle_until_closed`]), asserting that the server closes it after
/// `timeout` (not before) and within [`SLACK`] of it.
pub fn slow_sender_is_cut_off(address: SocketAddr, pattern: &[u8], timeout: Duration) {
    let mut stream = open(address);
    assert_cut_off_after(&mut stream, pattern, timeout);
}

/// Trickles `pattern` on `stream` and asserts that the server closes it
/// between `timeout` and `timeout` + [`SLACK`].
pub fn assert_cut_off_after(stream: &mut TcpStream, pattern: &[u8], timeout: Duration) {
    let open_for = trickle_until_closed(stream, pattern, timeout + SLACK);
    assert!(
        open_for + Duration::from_millis(200) >= timeout,
        "closed after {open_for:?}, before the timeout of {timeout:?}"
    );
}

/// An HTTP/1.1 answer: status and body.
#[derive(Debug)]
pub struct HttpAnswer {
    pub status: u16,
    pub body: String,
}

/// Reads one answer (with a `Content-Length`) from `stream`, leaving the
/// connection open; fails the test when none arrives within 10 s.
pub fn read_answer(stream: &mut TcpStream) -> HttpAnswer {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut received = Vec::new();
    let mut byte = [0u8; 1];
    while !received.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => received.push(byte[0]),
            other => panic!(
                "no complete answer head ({other:?}); got {:?}",
                String::from_utf8_lossy(&received)
            ),
        }
    }
    let head = String::from_utf8(received).unwrap();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {head}"));
    let length: usize = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).unwrap();
    HttpAnswer {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// Sends `request` on `stream` and reads the final answer (after any
/// `100 Continue`), keeping the connection.
pub fn exchange(stream: &mut TcpStream, request: &[u8]) -> HttpAnswer {
    stream.write_all(request).unwrap();
    loop {
        let answer = read_answer(stream);
        if answer.status >= 200 {
            return answer;
        }
    }
}

/// A POST of `body` to `path` with `Expect: 100-continue` and `headers`
/// (each a whole line without its CRLF): the head, then the body.
pub fn post(path: &str, headers: &[&str], body: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\nExpect: 100-continue\r\n",
        body.len()
    );
    for header in headers {
        head.push_str(header);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    (head.into_bytes(), body.to_vec())
}

/// A connection with a request in progress: its head is sent and the
/// server is reading its body (it has answered `100 Continue`), of which
/// only the first byte has arrived.
pub struct Busy {
    stream: TcpStream,
    rest: Vec<u8>,
}

impl Busy {
    /// Starts the request `(head, body)` on a new connection.
    pub fn start(address: SocketAddr, (head, body): (Vec<u8>, Vec<u8>)) -> Self {
        let mut stream = open(address);
        stream.write_all(&head).unwrap();
        let answer = read_answer(&mut stream);
        assert_eq!(answer.status, 100, "{answer:?}");
        stream.write_all(&body[..1]).unwrap();
        Self {
            stream,
            rest: body[1..].to_vec(),
        }
    }

    /// Reads an answer the server sends before the body is complete.
    pub fn read_answer(&mut self) -> HttpAnswer {
        read_answer(&mut self.stream)
    }

    /// See [`closed_within`].
    pub fn closed_within(&mut self, limit: Duration) -> Option<Duration> {
        closed_within(&mut self.stream, limit)
    }

    /// Sends the rest of the body and reads the answer; the connection
    /// stays open.
    pub fn finish(mut self) -> (TcpStream, HttpAnswer) {
        self.stream.write_all(&self.rest).unwrap();
        let answer = read_answer(&mut self.stream);
        (self.stream, answer)
    }
}

/// At a cap of two connections on the HTTP server at `address`, where
/// `request(n)` is the `n`th request (see [`post`]) and is answered `ok`:
/// while two requests are in progress a third connection is answered 503
/// at once, and once one of them is answered (so idle), a new connection
/// closes that one, the oldest idle, and is served; the request still in
/// progress is never closed.
pub fn http_cap_of_two(
    address: SocketAddr,
    request: impl Fn(usize) -> (Vec<u8>, Vec<u8>),
    ok: u16,
) {
    let first = Busy::start(address, request(1));
    let second = Busy::start(address, request(2));

    let mut refused = open(address);
    let asked = Instant::now();
    let answer = read_answer(&mut refused);
    let took = asked.elapsed();
    assert_eq!(answer.status, 503, "{answer:?}");
    assert!(
        took < Duration::from_secs(2),
        "the refusal took {took:?}, it should be at once"
    );
    assert!(
        closed_within(&mut refused, Duration::from_secs(2)).is_some(),
        "a refused connection is closed"
    );

    let (mut idle, answer) = first.finish();
    assert_eq!(answer.status, ok, "{answer:?}");
    let mut newcomer = open(address);
    let (head, body) = request(3);
    let answer = exchange(&mut newcomer, &[head, body].concat());
    assert_eq!(answer.status, ok, "{answer:?}");
    assert!(
        closed_within(&mut idle, SLACK).is_some(),
        "the oldest idle connection is closed to admit a new one"
    );
    let (_, answer) = second.finish();
    assert_eq!(answer.status, ok, "the request in progress is answered");
}
