//! The `syslog` source over real sockets: RFC 3164 and 5424 over UDP and
//! TCP with their fields parsed, octet counting, garbage kept whole, a
//! 1 MB line truncated, and the limits on TCP connections (a message sent
//! a byte a second, `max_connections`).

mod support;

use std::{
    io::Write,
    net::{SocketAddr, TcpStream, UdpSocket},
    path::Path,
    time::Duration,
};

use serde_json::{Value, json};
use support::{
    Running,
    connections::{SLACK, assert_cut_off_after, closed_within, open},
    home,
};

const BSD: &str = "<34>Oct 11 22:14:15 mymachine su: 'su root' failed on /dev/pts/8";
const IETF: &str = r#"<165>1 2003-10-11T22:14:15.003Z web1.example.com evntslog 1234 ID47 [origin@32473 ip="192.0.2.1"] An application event"#;

/// Starts a `syslog` source in `mode` on `address` into a file sink.
fn listen(dir: &Path, mode: &str, address: SocketAddr) -> Running {
    listen_with(dir, json!({"mode": mode}), address)
}

/// Starts a `syslog` source with `conf` (its address added) on `address`
/// into a file sink.
fn listen_with(dir: &Path, mut conf: Value, address: SocketAddr) -> Running {
    let out = dir.join("out.json");
    conf["address"] = json!(address.to_string());
    let document = json!({
        "name": "syslog_test",
        "sources": [{"name": "logs", "type": "syslog", "conf": conf}],
        "sinks": [{"name": "out", "type": "file", "inputs": ["logs"],
                   "conf": {"path": out.display().to_string()}}]
    });
    support::spawn_run(dir, &document)
}

fn events(dir: &Path) -> Vec<Value> {
    support::json_lines(&dir.join("out.json"))
}

fn find<'a>(events: &'a [Value], appname: &str) -> Option<&'a Value> {
    events.iter().find(|e| e["appname"] == appname)
}

fn assert_parsed(events: &[Value]) {
    let bsd = find(events, "su").unwrap_or_else(|| panic!("{events:#?}"));
    assert_eq!(bsd["hostname"], "mymachine");
    assert_eq!(bsd["facility"], "auth");
    assert_eq!(bsd["severity"], "crit");
    assert_eq!(bsd["message"], "'su root' failed on /dev/pts/8");
    assert_eq!(bsd["source"], "logs");

    let ietf = find(events, "evntslog").unwrap_or_else(|| panic!("{events:#?}"));
    assert_eq!(ietf["hostname"], "web1.example.com");
    assert_eq!(ietf["facility"], "local4");
    assert_eq!(ietf["severity"], "notice");
    assert_eq!(ietf["procid"], 1234);
    assert_eq!(ietf["msgid"], "ID47");
    assert_eq!(ietf["message"], "An application event");
    assert_eq!(ietf["origin@32473"]["ip"], "192.0.2.1");
    assert!(
        ietf["timestamp"]
            .as_str()
            .unwrap()
            .starts_with("2003-10-11T22:14:15.003")
    );
    assert_eq!(ietf["dataflow"], "syslog_test");
}

#[test]
fn udp_datagrams_in_both_formats_are_parsed() {
    let dir = home();
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let address = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let running = listen(dir.path(), "udp", address);
    // UDP has no handshake: send until the first messages come through.
    support::wait_until(Duration::from_secs(30), "UDP messages", || {
        socket.send_to(BSD.as_bytes(), address).unwrap();
        socket.send_to(IETF.as_bytes(), address).unwrap();
        let events = events(dir.path());
        find(&events, "su").is_some() && find(&events, "evntslog").is_some()
    });
    assert_parsed(&events(dir.path()));
    running.stop();
}

#[test]
fn tcp_lines_and_octet_counted_frames_are_parsed_and_long_lines_cut() {
    let dir = home();
    let address = support::free_address();
    let running = listen(dir.path(), "tcp", address);
    support::wait_for_listener(address);
    let mut stream = TcpStream::connect(address).unwrap();
    let long = format!(
        "<13>Oct 11 22:14:15 myhost big: {}\n",
        "x".repeat(1_000_000)
    );
    let counted = "<14>Oct 11 22:14:16 myhost counted: in a frame";
    write!(
        stream,
        "{BSD}\n{IETF}\nthis is not syslog\n{long}{} {counted}",
        counted.len()
    )
    .unwrap();
    stream.flush().unwrap();
    drop(stream);
    support::wait_until(Duration::from_secs(30), "TCP messages", || {
        events(dir.path()).len() >= 5
    });
    let events = events(dir.path());
    assert_parsed(&events);
    assert!(
        events.iter().any(|e| e["message"] == "this is not syslog"),
        "{events:#?}"
    );
    let big = find(&events, "big").unwrap();
    let message = big["message"].as_str().unwrap();
    assert!(
        message.len() < 102_400 && message.len() > 100_000 && message.bytes().all(|b| b == b'x'),
        "{}",
        message.len()
    );
    assert_eq!(find(&events, "counted").unwrap()["message"], "in a frame");
    running.stop();
}

/// Starts a `syslog` source over TCP with `limits` added to its `conf`, on
/// a free address, and waits until it accepts connections.
fn listen_tcp(dir: &Path, mut limits: Value) -> (Running, SocketAddr) {
    let address = support::free_address();
    limits["mode"] = json!("tcp");
    let running = listen_with(dir, limits, address);
    support::wait_for_listener(address);
    (running, address)
}

/// Sends one RFC 3164 message from `appname` on `stream` and waits until it
/// is in the file.
fn deliver(dir: &Path, stream: &mut TcpStream, appname: &str) {
    writeln!(stream, "<13>Oct 11 22:14:15 myhost {appname}: hello").unwrap();
    support::wait_until(Duration::from_secs(30), appname, || {
        find(&events(dir), appname).is_some()
    });
}

#[test]
fn a_tcp_message_sent_a_byte_a_second_is_cut_off_after_message_read_timeout_secs() {
    let dir = home();
    let (running, address) = listen_tcp(dir.path(), json!({"message_read_timeout_secs": 2}));
    let mut stream = open(address);
    deliver(dir.path(), &mut stream, "before");
    assert_cut_off_after(
        &mut stream,
        b"<13>Oct 11 22:14:15 myhost slow: a message that never ends",
        Duration::from_secs(2),
    );
    assert!(find(&events(dir.path()), "slow").is_none());
    running.stop();
}

#[test]
fn past_max_connections_the_oldest_idle_tcp_connection_goes() {
    let dir = home();
    let (running, address) = listen_tcp(dir.path(), json!({"max_connections": 2}));
    let mut first = open(address);
    deliver(dir.path(), &mut first, "first");
    let mut second = open(address);
    deliver(dir.path(), &mut second, "second");
    let mut third = open(address);
    deliver(dir.path(), &mut third, "third");
    assert!(
        closed_within(&mut first, SLACK).is_some(),
        "the oldest idle connection is closed to admit a new one"
    );
    assert!(
        closed_within(&mut second, Duration::from_secs(1)).is_none(),
        "the other one stays"
    );
    deliver(dir.path(), &mut second, "second_again");
    running.stop();
}
