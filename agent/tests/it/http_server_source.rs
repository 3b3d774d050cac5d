//! The `http_server` source over real sockets: every codec, answers sent
//! only after the file sink wrote the events, all-or-nothing bodies, size
//! limit, failed deliveries, an address already in use, and the limits on
//! its connections (slow heads and bodies, `max_connections`).

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    thread,
    time::Duration,
};

use serde_json::{Value, json};

use crate::support::{
    self, Running,
    connections::{Busy, SLACK, http_cap_of_two, post, slow_sender_is_cut_off},
    home,
};

/// A running dataflow: an `http_server` source on `/ingest` into a file sink.
struct Server {
    _running: Running,
    address: SocketAddr,
    out: PathBuf,
}

/// Starts the dataflow with `codec`, writing to `out`, and waits until it
/// accepts connections.
fn serve(dir: &Path, codec: &str, out: PathBuf) -> Server {
    serve_with(dir, json!({"decoding": {"codec": codec}}), out)
}

/// Starts the dataflow with the source's `conf` (its address and path
/// added), writing to `out`, and waits until it accepts connections.
fn serve_with(dir: &Path, mut conf: Value, out: PathBuf) -> Server {
    let address = support::free_address();
    conf["address"] = json!(address.to_string());
    conf["path"] = json!("/ingest");
    let document = json!({
        "name": "http_test",
        "sources": [{"name": "intake", "type": "http_server", "conf": conf}],
        "sinks": [{"name": "out", "type": "file", "inputs": ["intake"],
                   "conf": {"path": out.display().to_string()}}]
    });
    let running = support::spawn_run(dir, &document);
    support::wait_for_listener(address);
    Server {
        _running: running,
        address,
        out,
    }
}

impl Server {
    /// Sends one request and returns the status and the body of the answer.
    fn request(&self, method: &str, body: &[u8]) -> (u16, String) {
        let head = format!(
            "{method} /ingest HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.address,
            body.len()
        );
        self.raw(head.as_bytes(), body)
    }

    /// Writes the request from another thread (a server may answer before
    /// reading all of it) and reads the answer until the server closes.
    fn raw(&self, head: &[u8], body: &[u8]) -> (u16, String) {
        let mut stream = TcpStream::connect(self.address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut writer = stream.try_clone().unwrap();
        let request = [head, body].concat();
        let writing = thread::spawn(move || {
            // The server may close early (413): a failed write is its answer.
            let _ = writer.write_all(&request);
        });
        let mut answer = Vec::new();
        let mut chunk = [0u8; 4096];
        while let Ok(read @ 1..) = stream.read(&mut chunk) {
            answer.extend_from_slice(&chunk[..read]);
        }
        writing.join().unwrap();
        let answer = String::from_utf8_lossy(&answer);
        let status = answer
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP answer: {answer}"));
        let body = answer
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_owned())
            .unwrap_or_default();
        (status, body)
    }

    fn events(&self) -> Vec<Value> {
        support::json_lines(&self.out)
    }
}

fn out(dir: &Path) -> PathBuf {
    dir.join("out.json")
}

#[test]
fn bytes_bodies_are_in_the_file_when_the_answer_arrives() {
    let dir = home();
    let server = serve(dir.path(), "bytes", out(dir.path()));
    assert_eq!(server.request("POST", b"hello world").0, 200);
    // No waiting: the answer is sent only once the sink has written.
    let events = server.events();
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0]["message"], "hello world");
    assert_eq!(events[0]["source"], "intake");
    assert_eq!(events[0]["dataflow"], "http_test");
    assert!(events[0]["host"].is_string() && events[0]["timestamp"].is_string());

    assert_eq!(server.request("PUT", b"second").0, 200);
    assert_eq!(server.events()[1]["message"], "second");
    let (status, _) = server.raw(
        b"GET /ingest HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n",
        b"",
    );
    assert_eq!(status, 405);
}

#[test]
fn json_objects_and_arrays_merge_their_fields_into_events() {
    let dir = home();
    let server = serve(dir.path(), "json", out(dir.path()));
    assert_eq!(
        server
            .request(
                "POST",
                br#"{"user": "ada", "n": 1, "nested": {"a": [1, 2]}}"#
            )
            .0,
        200
    );
    assert_eq!(
        server
            .request("POST", br#"[{"user": "bob"}, {"user": "eve"}]"#)
            .0,
        200
    );
    let events = server.events();
    let users: Vec<_> = events.iter().map(|e| e["user"].as_str().unwrap()).collect();
    assert_eq!(users, ["ada", "bob", "eve"]);
    assert_eq!(events[0]["nested"], json!({"a": [1, 2]}));
    assert!(events.iter().all(|e| e["source"] == "intake"));

    let (status, body) = server.request("POST", b"[1]");
    assert_eq!(status, 400);
    assert!(body.contains("item 0 of the array is a number"), "{body}");
}

#[test]
fn ndjson_is_all_or_nothing_and_names_the_bad_line() {
    let dir = home();
    let server = serve(dir.path(), "ndjson", out(dir.path()));
    assert_eq!(server.request("POST", b"{\"n\": 1}\n{\"n\": 2}\n").0, 200);
    let (status, body) = server.request("POST", b"{\"n\": 3}\n{\"n\": oops}\n{\"n\": 4}\n");
    assert_eq!(status, 400);
    let error: Value = serde_json::from_str(&body).unwrap();
    assert!(
        error["error"].as_str().unwrap().starts_with("line 2 "),
        "{body}"
    );
    assert_eq!(server.request("POST", b"{\"n\": 5}").0, 200);
    let numbers: Vec<_> = server.events().iter().map(|e| e["n"].clone()).collect();
    assert_eq!(numbers, [json!(1), json!(2), json!(5)]);
}

#[test]
fn a_body_over_the_limit_is_refused_with_413() {
    let dir = home();
    let server = serve(dir.path(), "bytes", out(dir.path()));
    let (status, _) = server.request("POST", &vec![b'x'; 11 * 1024 * 1024]);
    assert_eq!(status, 413);
    assert!(server.events().is_empty());
}

#[test]
fn an_undelivered_batch_is_answered_503() {
    let dir = home();
    // A directory where the file should be: the sink cannot write.
    let server = serve(dir.path(), "bytes", dir.path().to_owned());
    let (status, body) = server.request("POST", b"lost?");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("send them again"), "{body}");
}

#[test]
fn an_address_in_use_stops_the_run_naming_the_address() {
    let dir = home();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap();
    let document = json!({
        "name": "busy",
        "sources": [{"name": "intake", "type": "http_server", "conf": {"address": address.to_string()}}],
        "sinks": [{"name": "out", "type": "blackhole", "inputs": ["intake"]}]
    });
    let file = support::write_dataflow(dir.path(), &document);
    let output = support::run(dir.path(), &["run", "--dataflow", &file], &[]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on {address}")),
        "{stderr}"
    );
}

/// The `n`th request of the connection tests: the event `event n`.
fn event_request(n: usize) -> (Vec<u8>, Vec<u8>) {
    post("/ingest", &[], format!("event {n}").as_bytes())
}

#[test]
fn a_request_head_sent_a_byte_a_second_is_cut_off_after_header_read_timeout_secs() {
    let dir = home();
    let server = serve_with(
        dir.path(),
        json!({"header_read_timeout_secs": 2}),
        out(dir.path()),
    );
    slow_sender_is_cut_off(
        server.address,
        b"POST /ingest HTTP/1.1\r\nHost: test\r\nX-Padding: slow\r\n",
        Duration::from_secs(2),
    );
}

#[test]
fn a_body_sent_too_slowly_is_answered_408_after_body_read_timeout_secs() {
    let dir = home();
    let server = serve_with(
        dir.path(),
        json!({"body_read_timeout_secs": 2}),
        out(dir.path()),
    );
    let mut busy = Busy::start(server.address, event_request(1));
    let answer = busy.read_answer();
    assert_eq!(answer.status, 408, "{answer:?}");
    assert!(answer.body.contains("body_read_timeout_secs"), "{answer:?}");
    assert!(busy.closed_within(SLACK).is_some());
    assert!(server.events().is_empty(), "{:#?}", server.events());
}

#[test]
fn past_max_connections_the_oldest_idle_goes_and_requests_in_progress_stay() {
    let dir = home();
    let server = serve_with(dir.path(), json!({"max_connections": 2}), out(dir.path()));
    http_cap_of_two(server.address, event_request, 200);
    let mut messages: Vec<_> = server
        .events()
        .iter()
        .map(|event| event["message"].as_str().unwrap().to_owned())
        .collect();
    messages.sort();
    assert_eq!(messages, ["event 1", "event 2", "event 3"]);
}
