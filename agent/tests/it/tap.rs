//! Live taps: watching one component of a running dataflow through the
//! manager's API (server-sent events) and with `datascale tap`, on a
//! standalone node and from a separate worker process.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{ADMIN, Api, ENROLL, eventually, home, run, start, start_manager, worker};

const WAIT: Duration = Duration::from_secs(20);

/// Stores dataflow `default/flow`: demo events, 100 a second, marked by a
/// remap, into a blackhole.
async fn put_marked_demo(api: &Api) {
    let dataflow = json!({
        "name": "flow",
        "sources": [{"name": "gen", "type": "demo", "conf": {"interval_secs": 0.01}}],
        "pipelines": [{"name": "mark", "type": "remap", "inputs": ["gen"],
                       "conf": {"source": ".marked = true"}}],
        "sinks": [{"name": "out", "type": "blackhole", "inputs": ["mark"]}]
    });
    let put = api
        .put("/api/v1/groups/default/dataflows/flow", &dataflow)
        .await;
    assert!(put.status < 300, "{}", put.body);
}

/// An open tap: the server-sent events of one watch.
struct Tap {
    response: reqwest::Response,
    pending: Vec<u8>,
}

impl Tap {
    async fn open(api: &Api, path: &str) -> Self {
        let response = api
            .client
            .get(format!("{}{path}", api.base))
            .bearer_auth(&api.token)
            .send()
            .await
            .expect("the manager answers");
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(
            response.headers()["content-type"],
            "text/event-stream",
            "{path}"
        );
        Self {
            response,
            pending: Vec::new(),
        }
    }

    /// The data of the next event, waiting up to `WAIT`.
    async fn next(&mut self) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(end) = find(&self.pending, b"\n\n") {
                let block: Vec<u8> = self.pending.drain(..end + 2).collect();
                let block = String::from_utf8(block).unwrap();
                let data: String = block
                    .lines()
                    .filter_map(|line| line.strip_prefix("data: "))
                    .collect();
                if !data.is_empty() {
                    assert!(block.contains("event: event"), "{block}");
                    return serde_json::from_str(&data).unwrap();
                }
                continue;
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .expect("a tapped event within the wait")
                .expect("the stream goes on")
                .expect("the stream is not closed");
            self.pending.extend_from_slice(&chunk);
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn tap_path(group: &str, dataflow: &str, component: &str, rate: u32) -> String {
    format!("/api/v1/groups/{group}/dataflows/{dataflow}/components/{component}/tap?rate={rate}")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_standalone_node_shows_a_components_events_live_at_most_at_the_rate_asked() {
    let dir = home();
    let node = start(
        dir.path(),
        &[
            ("HOSTNAME", "tapped-host"),
            ("DATASCALE_SERVICE_MANAGER_ADMIN_TOKEN", ADMIN),
        ],
    );
    let api = Api::with_token(&node, ADMIN);
    put_marked_demo(&api).await;

    // What the remap puts out carries its mark; the sink sees the same.
    for component in ["mark", "out"] {
        let mut tap = Tap::open(&api, &tap_path("default", "flow", component, 5)).await;
        let first = tap.next().await;
        assert_eq!(first["worker"], "tapped-host", "{first}");
        assert_eq!(first["event"]["marked"], true, "{first}");
        assert_eq!(first["event"]["dataflow"], "flow", "{first}");
    }
    // The source's events are not marked yet. 100 of them go by each
    // second; a watch of 5 a second gets no more than 5 in each second
    // since it opened (the last second begun counts whole).
    let opened = Instant::now();
    let mut tap = Tap::open(&api, &tap_path("default", "flow", "gen", 5)).await;
    assert_eq!(tap.next().await["event"].get("marked"), None);
    let mut received = 1;
    while opened.elapsed() < Duration::from_secs(3) {
        tap.next().await;
        received += 1;
    }
    let seconds = opened.elapsed().as_secs() + 1;
    assert!(
        (5..=5 * seconds).contains(&received),
        "{received} events in {seconds} s at 5 a second"
    );
    node.terminate(Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_component_or_dataflow_and_a_bad_rate_are_refused() {
    let dir = home();
    let node = start(
        dir.path(),
        &[("DATASCALE_SERVICE_MANAGER_ADMIN_TOKEN", ADMIN)],
    );
    let api = Api::with_token(&node, ADMIN);
    put_marked_demo(&api).await;

    let missing = api.get(&tap_path("default", "flow", "nope", 5)).await;
    assert_eq!(missing.status, 404);
    let message = missing.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("no component `nope`"), "{message}");
    assert!(message.contains("gen, mark, out"), "{message}");

    let no_dataflow = api.get(&tap_path("default", "other", "gen", 5)).await;
    assert_eq!(no_dataflow.status, 404, "{}", no_dataflow.body);

    let too_fast = api.get(&tap_path("default", "flow", "gen", 5_000)).await;
    assert_eq!(too_fast.status, 400, "{}", too_fast.body);

    let anonymous = Api::with_token(&node, "wrong");
    assert_eq!(
        anonymous
            .get(&tap_path("default", "flow", "gen", 5))
            .await
            .status,
        401
    );

    let url = node.api_url("");
    let cli = |component: &str| {
        run(
            dir.path(),
            &[
                "tap", component, "--limit", "3", "--url", &url, "--token", ADMIN,
            ],
            &[],
        )
    };
    let refused = cli("default/flow/nope");
    assert_eq!(refused.status.code(), Some(4), "{refused:?}");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("no component `nope`"));
    let wrong = cli("default/flow");
    assert_eq!(wrong.status.code(), Some(2), "{wrong:?}");
    node.terminate(Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_sends_its_tapped_events_through_the_manager_to_the_api_and_the_cli() {
    let dir = home();
    let manager = start_manager(&dir.path().join("manager"), &[]);
    let api = Api::with_token(&manager, ADMIN);
    api.post("/api/v1/groups", &json!({"name": "default"}))
        .await;
    put_marked_demo(&api).await;
    let worker = worker(
        &dir.path().join("worker1"),
        "worker1",
        &manager,
        "default",
        ENROLL,
    );
    let id = eventually(WAIT, "worker1 running the dataflow", || async {
        let workers = api.get("/api/v1/workers").await.body;
        let listed = workers
            .as_array()?
            .iter()
            .find(|w| w["hostname"] == "worker1")?;
        let running = listed["status"]["dataflows"]
            .as_array()?
            .iter()
            .any(|d| d["name"] == "flow" && d["state"] == "running");
        running.then(|| listed["id"].as_str().unwrap().to_owned())
    })
    .await;

    let mut tap = Tap::open(&api, &tap_path("default", "flow", "mark", 20)).await;
    let first = tap.next().await;
    assert_eq!(first["worker"], id.as_str(), "{first}");
    assert_eq!(first["event"]["host"], "worker1", "{first}");
    assert_eq!(first["event"]["marked"], true, "{first}");
    drop(tap);

    // The CLI prints one JSON object a line, and stops at --limit.
    let url = manager.api_url("");
    let output = run(
        dir.path(),
        &[
            "tap",
            "default/flow/out",
            "--limit",
            "3",
            "--url",
            &url,
            "--token",
            ADMIN,
        ],
        &[],
    );
    assert!(output.status.success(), "{output:?}");
    let lines: Vec<Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(
        lines
            .iter()
            .all(|line| line["event"]["marked"] == true && line["worker"] == id.as_str())
    );

    worker.terminate(Duration::from_secs(10));
    manager.terminate(Duration::from_secs(10));
}
