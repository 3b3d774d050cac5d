//! The connection limits of the API (and the Web UI, which shares them)
//! over real sockets: a request head sent a byte a second is cut off after
//! `service.http.header_read_timeout_secs`, a kept-alive connection without
//! a request is closed after `idle_timeout_secs` while one with a request
//! in progress is not, a slow body is answered 408 after
//! `body_read_timeout_secs`, and past `max_connections` the oldest idle
//! connection makes room and busy ones are never closed. Under an
//! open-file limit of 1024, thousands of idle and slow connections still
//! leave room for an authenticated request.

use std::{
    io::Write,
    net::TcpStream,
    time::{Duration, Instant},
};

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

use crate::support::{
    ADMIN,
    connections::{
        Busy, SLACK, assert_cut_off_after, closed_within, exchange, http_cap_of_two, open, post,
        slow_sender_is_cut_off,
    },
    home, rss_kib, start, start_with_open_files, whole_machine,
};

/// A complete request for the open health route, kept alive.
const HEALTH: &[u8] = b"GET /api/v1/health HTTP/1.1\r\nHost: test\r\n\r\n";

/// A head that never ends: one more header line after another.
const ENDLESS_HEAD: &[u8] = b"GET /api/v1/health HTTP/1.1\r\nHost: test\r\nX-Padding: slow\r\n";

/// The environment of a node with the admin token [`ADMIN`] and these
/// `service.http` settings.
fn env<'a>(http: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![("DATASCALE_SERVICE_MANAGER_ADMIN_TOKEN", ADMIN)];
    env.extend_from_slice(http);
    env
}

/// The `n`th request that creates a group, as an admin; answered 201.
fn create_group(n: usize) -> (Vec<u8>, Vec<u8>) {
    post(
        "/api/v1/groups",
        &[
            &format!("Authorization: Bearer {ADMIN}"),
            "Content-Type: application/json",
        ],
        format!(r#"{{"name": "group-{n}"}}"#).as_bytes(),
    )
}

#[test]
fn a_request_head_sent_a_byte_a_second_is_cut_off_after_the_header_timeout() {
    let dir = home();
    let timeout = Duration::from_secs(2);
    let node = start(
        dir.path(),
        &env(&[("DATASCALE_SERVICE_HTTP_HEADER_READ_TIMEOUT_SECS", "2")]),
    );
    slow_sender_is_cut_off(node.api, ENDLESS_HEAD, timeout);
    let ui = node.ui.expect("a standalone node serves the Web UI");
    slow_sender_is_cut_off(ui, ENDLESS_HEAD, timeout);

    // On a kept-alive connection the next head has as long, not the idle timeout.
    let mut kept = open(node.api);
    assert_eq!(exchange(&mut kept, HEALTH).status, 200);
    assert_cut_off_after(&mut kept, ENDLESS_HEAD, timeout);
}

#[test]
fn a_kept_alive_connection_without_a_request_is_closed_after_the_idle_timeout() {
    let dir = home();
    let idle = Duration::from_secs(2);
    let node = start(
        dir.path(),
        &env(&[("DATASCALE_SERVICE_HTTP_IDLE_TIMEOUT_SECS", "2")]),
    );
    let mut kept = open(node.api);
    assert_eq!(exchange(&mut kept, HEALTH).status, 200);
    let closed = closed_within(&mut kept, idle + SLACK)
        .unwrap_or_else(|| panic!("an idle connection is still open after {:?}", idle + SLACK));
    assert!(
        closed + Duration::from_millis(200) >= idle,
        "closed after {closed:?}, before the idle timeout"
    );

    // A request in progress is never idle, however long it takes.
    let mut busy = Busy::start(node.api, create_group(1));
    assert!(
        busy.closed_within(idle * 2).is_none(),
        "a connection with a request in progress was closed"
    );
    let (_, answer) = busy.finish();
    assert_eq!(answer.status, 201, "{answer:?}");
}

#[test]
fn a_request_body_sent_too_slowly_is_answered_408_after_the_body_timeout() {
    let dir = home();
    let node = start(
        dir.path(),
        &env(&[("DATASCALE_SERVICE_HTTP_BODY_READ_TIMEOUT_SECS", "2")]),
    );
    let mut busy = Busy::start(node.api, create_group(1));
    let started = Instant::now();
    let answer = busy.read_answer();
    let took = started.elapsed();
    assert_eq!(answer.status, 408, "{answer:?}");
    assert!(
        answer.body.contains("body_read_timeout_secs"),
        "the answer names the setting: {answer:?}"
    );
    assert!(
        took + Duration::from_millis(200) >= Duration::from_secs(2),
        "answered after {took:?}, before the timeout"
    );
    assert!(
        busy.closed_within(SLACK).is_some(),
        "the connection is closed after the 408"
    );
}

#[test]
fn past_max_connections_the_oldest_idle_goes_and_requests_in_progress_stay() {
    let dir = home();
    let node = start(
        dir.path(),
        &env(&[("DATASCALE_SERVICE_HTTP_MAX_CONNECTIONS", "2")]),
    );
    http_cap_of_two(node.api, create_group, 201);
}

/// The open-file limit this process had before [`raise_open_files`]
/// raised it, if it did; set again when dropped.
struct OpenFilesRaised {
    before: Option<Rlimit>,
}

/// Raises this process's soft open-file limit to at least `needed` until
/// the value returned is dropped. The limit is the whole test process's:
/// the nodes other tests start meanwhile inherit it, which only raises the
/// caps of their connections (none counts on the default), and the node
/// under attack runs under a limit of its own.
fn raise_open_files(needed: u64) -> OpenFilesRaised {
    let limit = getrlimit(Resource::Nofile);
    let hard = limit.maximum.unwrap_or(u64::MAX);
    assert!(
        hard >= needed,
        "this test opens thousands of connections: it needs a hard open-file limit of at least {needed}, not {hard} (`ulimit -Hn`)"
    );
    if limit.current.is_none_or(|soft| soft >= needed) {
        return OpenFilesRaised { before: None };
    }
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(needed),
            maximum: limit.maximum,
        },
    )
    .expect("the soft open-file limit can be raised up to the hard one");
    OpenFilesRaised {
        before: Some(limit),
    }
}

impl Drop for OpenFilesRaised {
    fn drop(&mut self) {
        if let Some(before) = self.before
            && let Err(err) = setrlimit(Resource::Nofile, before)
        {
            eprintln!("cannot set the open-file limit back: {err}");
        }
    }
}

/// The `n`th connection of an attack on `address`: an idle one (even `n`)
/// or one that sends the start of a head and never finishes it (odd).
fn attack(address: std::net::SocketAddr, n: usize) -> TcpStream {
    let stream = TcpStream::connect_timeout(&address, Duration::from_secs(5))
        .unwrap_or_else(|err| panic!("attacking connection {n} was not taken: {err}"));
    if n % 2 == 1 {
        // A connection already closed refuses the write: the server's answer.
        let _ = (&stream).write_all(b"GET /api/v1/status HTTP/1.1\r\nHost: test\r\n");
    }
    stream
}

#[test]
fn five_thousand_idle_and_slow_connections_leave_room_for_an_authenticated_request() {
    const OPEN_FILES: u64 = 1024;
    const ATTACKERS: usize = 5_000;
    let _machine = whole_machine();
    let _open_files = raise_open_files(ATTACKERS as u64 + 1_024);
    let dir = home();
    let node = start_with_open_files(dir.path(), &env(&[]), OPEN_FILES);
    let idle_rss = rss_kib(node.child.id());

    // Half of them send nothing, half the start of a head they never finish.
    let opening = Instant::now();
    let attackers: Vec<TcpStream> = (0..ATTACKERS).map(|n| attack(node.api, n)).collect();
    let opened_in = opening.elapsed();
    let attacked_rss = rss_kib(node.child.id());

    let asked = Instant::now();
    let mut client = open(node.api);
    let request = format!(
        "GET /api/v1/status HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {ADMIN}\r\nConnection: close\r\n\r\n"
    );
    let answer = exchange(&mut client, request.as_bytes());
    let latency = asked.elapsed();
    assert_eq!(answer.status, 200, "{answer:?}");
    println!(
        "With {ATTACKERS} idle and slow connections opened (in {:.2} s) at an open-file limit of \
         {OPEN_FILES}, an authenticated GET /api/v1/status answered 200 in {:.1} ms; the node's \
         RSS went from {idle_rss} KiB to {attacked_rss} KiB.",
        opened_in.as_secs_f64(),
        latency.as_secs_f64() * 1000.0
    );
    assert!(
        latency < Duration::from_secs(2),
        "the authenticated request took {latency:?}"
    );
    let accept_errors: Vec<String> = node
        .stdout
        .try_iter()
        .filter(|line| line.contains("Cannot accept"))
        .collect();
    assert!(
        accept_errors.is_empty(),
        "the cap keeps the node below its open-file limit: {accept_errors:#?}"
    );
    drop(attackers);
}
