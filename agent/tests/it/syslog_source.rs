//! The `syslog` source over real sockets: RFC 3164 and 5424 over UDP and
//! TCP with their fields parsed, octet counting, garbage kept whole, a
//! 1 MB line truncated, a flood of garbage counted rather than logged line
//! by line, and the limits on TCP connections (a message sent a byte a
//! second, `max_connections`).

use std::{
    io::Write,
    net::{SocketAddr, TcpStream, UdpSocket},
    path::Path,
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::support::{
    self, Api, Running,
    connections::{SLACK, assert_cut_off_after, closed_within, open},
    home, series_value,
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
    let address = support::free_udp_address();
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

/// 100,000 one-byte datagrams are 100,000 invalid messages: the warning
/// about them is written a few times and then summarised, every suppressed
/// line is counted on `/metrics`, and no log line repeats a key.
#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_garbage_writes_a_few_log_lines_and_counts_the_rest() {
    let dir = home();
    let node = support::start(
        dir.path(),
        &[
            ("DATASCALE_LOG_REPEAT_LIMIT", "5"),
            ("DATASCALE_LOG_REPEAT_INTERVAL_SECS", "1"),
        ],
    );
    let api = Api::admin(&node, dir.path());
    let address = support::free_udp_address();
    let document = json!({
        "name": "garbage",
        "sources": [{"name": "flooded", "type": "syslog",
                     "conf": {"address": address.to_string(), "mode": "udp"}}],
        "sinks": [{"name": "out", "type": "blackhole", "inputs": ["flooded"]}]
    });
    let answer = api
        .put("/api/v1/groups/default/dataflows/garbage", &document)
        .await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    for _ in 0..100_000 {
        socket.send_to(b"x", address).unwrap();
    }
    let errors = |metrics: &str| {
        series_value(
            metrics,
            "datascale_component_errors_total",
            &["component=\"flooded\""],
        )
        .unwrap_or(0)
    };
    let suppressed = |metrics: &str| {
        series_value(
            metrics,
            "datascale_log_suppressed_total",
            &["component=\"flooded\""],
        )
        .unwrap_or(0)
    };
    // UDP may drop datagrams: wait until the source has counted most of
    // them and the count has stopped moving.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = 0;
    let metrics = loop {
        assert!(
            Instant::now() < deadline,
            "the flood was not counted: {seen}"
        );
        let metrics = api.get("/metrics").await.body.as_str().unwrap().to_owned();
        let now = errors(&metrics);
        if now >= 10_000 && now == seen {
            break metrics;
        }
        seen = now;
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let invalid = errors(&metrics);
    // In each interval the flood lasted, five lines were written and the
    // rest suppressed.
    let counted = suppressed(&metrics);
    assert!(
        counted + 5 * 60 >= invalid && counted < invalid,
        "{counted} of {invalid} invalid messages suppressed"
    );
    // The log holds the summary, within about an interval.
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !lines.iter().any(|line: &String| {
        line.contains("Suppressed repeats of a log line") && line.contains("flooded")
    }) {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = node
            .stdout
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no summary of the suppressed lines: {lines:#?}"));
        lines.push(line);
    }
    lines.extend(node.stdout.try_iter());
    let bytes: usize = lines.iter().map(String::len).sum();
    for line in &lines {
        support::assert_unique_keys(line);
    }
    node.terminate(Duration::from_secs(10));
    assert!(
        bytes < 50_000,
        "{bytes} bytes of log for {invalid} invalid messages"
    );
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
