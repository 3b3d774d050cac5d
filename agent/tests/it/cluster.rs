//! The cluster on loopback, as the tutorial sets it up: one manager, worker1
//! in group `default` and worker2 in `another_group`, each a separate
//! process with its own `HOSTNAME` and data directory, configured only by
//! `service.worker.manager_address`, `service.worker.groups` and the token.

use std::{path::Path, time::Duration};

use serde_json::{Value, json};

use crate::support::{
    self, ADMIN, Api, ENROLL, Node, eventually, home, listed_worker, start, start_manager,
    start_worker, wait_for_output, worker,
};

const WAIT: Duration = Duration::from_secs(20);

/// A manager in `dir` on `address` (`127.0.0.1:0`: any port) that finds a
/// silent worker suspect, then offline, within seconds.
fn watchful_manager(dir: &Path, address: &str) -> Node {
    start_manager(
        dir,
        &[
            ("DATASCALE_SERVICE_ADDRESS", address),
            ("DATASCALE_SERVICE_MANAGER_PHI_MIN_STD_DEV_MS", "100"),
            ("DATASCALE_SERVICE_MANAGER_WORKER_OFFLINE_SECS", "4"),
        ],
    )
}

/// A worker like [`worker`], following the managers of `manager_url` (a
/// comma-separated list) as a node of the cluster named `cluster`.
fn worker_of_cluster(
    dir: &Path,
    hostname: &str,
    manager_url: &str,
    groups: &str,
    token: &str,
    cluster: &str,
) -> Node {
    let extra = [("DATASCALE_SERVICE_CLUSTER_NAME", cluster)];
    start_worker(dir, hostname, manager_url, groups, token, &extra)
}

/// worker1 and worker2 of the tutorial, in `dir/w1` and `dir/w2`, each in
/// its group of `groups`, enrolling with the enrollment token.
fn tutorial_workers(dir: &Path, manager: &Node, groups: [&str; 2]) -> (Node, Node) {
    let [first, second] = groups;
    (
        worker(&dir.join("w1"), "worker1", manager, first, ENROLL),
        worker(&dir.join("w2"), "worker2", manager, second, ENROLL),
    )
}

/// A dataflow that writes demo events into `<dir>/<prefix>-<host>.json`.
fn demo_to_file(name: &str, dir: &Path, prefix: &str) -> Value {
    json!({
        "name": name,
        "sources": [{"name": "gen", "type": "demo", "conf": {"interval_secs": 0.05}}],
        "sinks": [{"name": "out", "type": "file", "inputs": ["gen"],
                   "conf": {"path": format!("{}/{prefix}-{{{{ host }}}}.json", dir.display())}}]
    })
}

fn lines(path: &Path) -> usize {
    support::json_lines(path).len()
}

async fn grows(path: &Path, what: &str) {
    let before = lines(path);
    eventually(WAIT, what, || async {
        (lines(path) > before).then_some(())
    })
    .await;
}

/// The worker of `hostname` as `GET /api/v1/workers` shows it, once listed.
async fn listed(api: &Api, hostname: &str) -> Value {
    let what = format!("{hostname} in the worker list");
    listed_worker(api, WAIT, &what, |w| w["hostname"] == hostname).await
}

async fn state_of(api: &Api, hostname: &str) -> String {
    listed(api, hostname).await["state"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn each_worker_runs_its_groups_dataflows_and_follows_changes() {
    let dir = home();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let manager = watchful_manager(&dir.path().join("manager"), "127.0.0.1:0");
    let api = Api::with_token(&manager, ADMIN);
    let created = api
        .post("/api/v1/groups", &json!({"name": "another_group"}))
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let put = api
        .put(
            "/api/v1/groups/default/dataflows/default_dataflow",
            &demo_to_file("default_dataflow", &out, "default"),
        )
        .await;
    assert_eq!(put.status, 201, "{}", put.body);
    let put = api
        .put(
            "/api/v1/groups/another_group/dataflows/another_dataflow",
            &demo_to_file("another_dataflow", &out, "another"),
        )
        .await;
    assert_eq!(put.status, 201, "{}", put.body);

    let (worker1, worker2) = tutorial_workers(dir.path(), &manager, ["default", "another_group"]);
    grows(&out.join("default-worker1.json"), "worker1's events").await;
    grows(&out.join("another-worker2.json"), "worker2's events").await;
    assert!(!out.join("default-worker2.json").exists());
    assert!(!out.join("another-worker1.json").exists());
    // Each worker enrolled once and keeps its own credential.
    for home in ["w1", "w2"] {
        let credential = dir.path().join(home).join("data/secrets/worker.credential");
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&credential).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
    }

    let shown = listed(&api, "worker2").await;
    assert_eq!(shown["groups"], json!(["another_group"]));
    eventually(WAIT, "both workers online and in step", || async {
        let workers = api.get("/api/v1/workers").await.body;
        let workers = workers.as_array()?;
        (workers.len() == 2
            && workers.iter().all(|w| {
                w["state"] == "online"
                    && w["status"]["applied_revision"] == w["desired_revision"]
                    && w["status"]["dataflows"][0]["state"] == "running"
                    && w["status"]["dataflows"][0]["document_sha256"]
                        .as_str()
                        .is_some_and(|hash| hash.len() == 64)
            }))
        .then_some(())
    })
    .await;
    let overview = api.get("/api/v1/overview").await.body;
    assert_eq!(overview["workers"]["online"], 2, "{overview}");

    // Moving worker2 to `default` on the manager switches what it runs.
    let id = shown["id"].as_str().unwrap();
    let assigned = api
        .put(
            &format!("/api/v1/workers/{id}/groups"),
            &json!({"groups": ["default"]}),
        )
        .await;
    assert_eq!(assigned.status, 200, "{}", assigned.body);
    grows(
        &out.join("default-worker2.json"),
        "worker2's default events",
    )
    .await;
    let worker2_local = Api::with_token(&worker2, ENROLL);
    eventually(WAIT, "worker2 to stop another_dataflow", || async {
        let status = worker2_local.get("/api/v1/status").await.body;
        let names: Vec<_> = status["worker"]["dataflows"]
            .as_array()?
            .iter()
            .map(|d| d["name"].clone())
            .collect();
        (names == [json!("default_dataflow")]).then_some(())
    })
    .await;

    // Deleting a dataflow stops it on every worker.
    let deleted = api
        .delete("/api/v1/groups/default/dataflows/default_dataflow")
        .await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    let worker1_local = Api::with_token(&worker1, ENROLL);
    for local in [&worker1_local, &worker2_local] {
        eventually(WAIT, "the dataflow to stop", || async {
            let status = local.get("/api/v1/status").await.body;
            status["worker"]["dataflows"]
                .as_array()?
                .is_empty()
                .then_some(())
        })
        .await;
    }

    // A stopped worker turns suspect, then offline.
    worker1.terminate(Duration::from_secs(10));
    let deadline = std::time::Instant::now() + WAIT;
    let mut seen: Vec<String> = Vec::new();
    loop {
        let state = state_of(&api, "worker1").await;
        if seen.last() != Some(&state) {
            seen.push(state.clone());
        }
        if state == "offline" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "states seen: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(seen.contains(&"suspect".to_owned()), "{seen:?}");
    worker2.terminate(Duration::from_secs(10));
    manager.terminate(Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread")]
async fn workers_keep_running_while_the_manager_is_down() {
    let dir = home();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let address = support::free_address().to_string();
    let manager_home = dir.path().join("manager");
    let first = watchful_manager(&manager_home, &address);
    let api = Api::with_token(&first, ADMIN);
    api.put(
        "/api/v1/groups/default/dataflows/collect",
        &demo_to_file("collect", &out, "collect"),
    )
    .await;
    // The first manager listed never answers: the worker fails over.
    let url = format!("http://{},{}", support::free_address(), first.api_url(""));
    let worker_home = dir.path().join("w1");
    let worker1 = worker_of_cluster(
        &worker_home,
        "worker1",
        &url,
        "default",
        ENROLL,
        "datascale",
    );
    let output = out.join("collect-worker1.json");
    grows(&output, "events").await;

    // The manager is killed: the worker goes on collecting.
    drop(first);
    grows(&output, "events while the manager is down").await;
    // A worker restarted meanwhile runs the dataflows it kept.
    worker1.terminate(Duration::from_secs(10));
    let worker1 = worker_of_cluster(
        &worker_home,
        "worker1",
        &url,
        "default",
        ENROLL,
        "datascale",
    );
    grows(&output, "events of the restarted worker").await;

    // The manager is back: the worker resyncs and takes the next change.
    let second = watchful_manager(&manager_home, &address);
    let api = Api::with_token(&second, ADMIN);
    let changed = api
        .put(
            "/api/v1/groups/default/dataflows/collect",
            &demo_to_file("collect", &out, "changed"),
        )
        .await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    grows(&out.join("changed-worker1.json"), "events after the change").await;
    worker1.terminate(Duration::from_secs(10));
    second.terminate(Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_token_another_cluster_and_a_revoked_worker_are_refused() {
    let dir = home();
    let manager = watchful_manager(&dir.path().join("manager"), "127.0.0.1:0");
    let api = Api::with_token(&manager, ADMIN);

    let intruder = worker(
        &dir.path().join("bad"),
        "intruder",
        &manager,
        "default",
        "wrong",
    );
    wait_for_output(&intruder, WAIT, &["refused this worker's token"]);
    let stranger = worker_of_cluster(
        &dir.path().join("other"),
        "stranger",
        &manager.api_url(""),
        "default",
        ENROLL,
        "elsewhere",
    );
    let line = wait_for_output(&stranger, WAIT, &["service.cluster_name"]);
    assert!(
        line.contains("elsewhere") && line.contains("datascale"),
        "{line}"
    );

    let (worker1, worker2) = tutorial_workers(dir.path(), &manager, ["default", "default"]);
    let id = listed(&api, "worker1").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    listed(&api, "worker2").await;
    let revoked = api
        .send(
            reqwest::Method::POST,
            &format!("/api/v1/workers/{id}/revoke"),
            None,
            &[],
        )
        .await;
    assert_eq!(revoked.status, 200, "{}", revoked.body);
    wait_for_output(&worker1, WAIT, &["revoked"]);
    // The other worker is not touched.
    let before = listed(&api, "worker2").await["last_heartbeat"].clone();
    eventually(WAIT, "another heartbeat of worker2", || async {
        (listed(&api, "worker2").await["last_heartbeat"] != before).then_some(())
    })
    .await;
    let workers = api.get("/api/v1/workers").await.body;
    assert_eq!(workers.as_array().unwrap().len(), 2, "{workers}");
    drop((intruder, stranger, worker1, worker2));
    manager.terminate(Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread")]
async fn rotating_the_enrollment_token_leaves_enrolled_workers_alone() {
    let dir = home();
    let manager_home = dir.path().join("manager");
    std::fs::create_dir_all(&manager_home).unwrap();
    // The enrollment token is generated (not configured), so it may rotate.
    let manager = start(
        &manager_home,
        &[
            ("DATASCALE_SERVICE_MODE", "manager"),
            ("DATASCALE_SERVICE_MANAGER_ADMIN_TOKEN", ADMIN),
        ],
    );
    let api = Api::with_token(&manager, ADMIN);
    let first = std::fs::read_to_string(support::token_file(&manager_home, "worker")).unwrap();
    let worker1 = worker(
        &dir.path().join("w1"),
        "worker1",
        &manager,
        "default",
        first.trim(),
    );
    listed(&api, "worker1").await;
    let rotated = api
        .send(
            reqwest::Method::POST,
            "/api/v1/workers/enrollment_token/rotate",
            None,
            &[],
        )
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let second = rotated.body["token"].as_str().unwrap().to_owned();
    assert_ne!(second, first.trim());
    // The enrolled worker goes on heartbeating with its own credential.
    let before = listed(&api, "worker1").await["last_heartbeat"].clone();
    eventually(WAIT, "another heartbeat of worker1", || async {
        (listed(&api, "worker1").await["last_heartbeat"] != before).then_some(())
    })
    .await;
    // A new worker enrolls with the new token; the old one is refused.
    let worker2 = worker(
        &dir.path().join("w2"),
        "worker2",
        &manager,
        "default",
        &second,
    );
    listed(&api, "worker2").await;
    let late = worker(
        &dir.path().join("w3"),
        "worker3",
        &manager,
        "default",
        first.trim(),
    );
    wait_for_output(&late, WAIT, &["refused this worker's token"]);
    drop((worker1, worker2, late));
    manager.terminate(Duration::from_secs(10));
}

/// A dataflow that sends demo events to the event set `my_datascale_cluster`.
fn demo_to_event_set(name: &str) -> Value {
    json!({
        "name": name,
        "sources": [{"name": "gen", "type": "demo", "conf": {"interval_secs": 0.05}}],
        "sinks": [{"name": "out", "type": "yh", "inputs": ["gen"],
                   "conf": {"event_set": "my_datascale_cluster"}}]
    })
}

/// How many events of `my_datascale_cluster` match `q`.
async fn found(api: &Api, q: &str) -> usize {
    let answer = api
        .get(&format!(
            "/api/v1/event_sets/my_datascale_cluster/events?limit=10000&q={q}"
        ))
        .await;
    answer.body["events"].as_array().map_or(0, Vec::len)
}

#[tokio::test(flavor = "multi_thread")]
async fn both_workers_events_reach_the_event_set() {
    let dir = home();
    let manager = watchful_manager(&dir.path().join("manager"), "127.0.0.1:0");
    let api = Api::with_token(&manager, ADMIN);
    api.post("/api/v1/groups", &json!({"name": "another_group"}))
        .await;
    for group in ["default", "another_group"] {
        let answer = api
            .put(
                &format!("/api/v1/groups/{group}/dataflows/{group}_dataflow"),
                &demo_to_event_set(&format!("{group}_dataflow")),
            )
            .await;
        assert_eq!(answer.status, 201, "{}", answer.body);
    }
    let (worker1, worker2) = tutorial_workers(dir.path(), &manager, ["default", "another_group"]);
    for (host, dataflow) in [
        ("worker1", "default_dataflow"),
        ("worker2", "another_group_dataflow"),
    ] {
        eventually(WAIT, &format!("events of {host}"), || async {
            (found(&api, &format!("host:{host}%20dataflow:{dataflow}")).await > 3).then_some(())
        })
        .await;
    }
    drop((worker1, worker2));
    manager.terminate(Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread")]
async fn events_collected_while_the_manager_is_down_arrive_after() {
    let dir = home();
    let address = support::free_address().to_string();
    let manager_home = dir.path().join("manager");
    let first = watchful_manager(&manager_home, &address);
    let api = Api::with_token(&first, ADMIN);
    let log = dir.path().join("logs/app.log");
    let tail = json!({
        "name": "tail",
        "sources": [{"name": "logs", "type": "file",
                     "conf": {"include": [log.display().to_string()], "glob_minimum_cooldown_ms": 100}}],
        "sinks": [{"name": "out", "type": "yh", "inputs": ["logs"],
                   "conf": {"event_set": "my_datascale_cluster"}}]
    });
    assert_eq!(
        api.put("/api/v1/groups/default/dataflows/tail", &tail)
            .await
            .status,
        201
    );
    let lines = |range: std::ops::Range<u32>| range.map(|n| format!("line-{n}"));
    support::append_lines(&log, lines(0..100));
    let worker1 = worker(&dir.path().join("w1"), "worker1", &first, "default", ENROLL);
    eventually(WAIT, "the first lines", || async {
        (found(&api, "").await == 100).then_some(())
    })
    .await;

    // The manager is killed; the worker goes on reading.
    drop(first);
    support::append_lines(&log, lines(100..300));
    let second = watchful_manager(&manager_home, &address);
    let api = Api::with_token(&second, ADMIN);
    support::append_lines(&log, lines(300..400));
    let all = eventually(WAIT, "every line once the manager is back", || async {
        let answer = api
            .get("/api/v1/event_sets/my_datascale_cluster/events?limit=10000")
            .await;
        let events = answer.body["events"].as_array()?.clone();
        let mut seen: Vec<String> = events
            .iter()
            .map(|e| e["message"].as_str().unwrap().to_owned())
            .collect();
        seen.sort();
        seen.dedup();
        (seen.len() == 400).then_some(events.len())
    })
    .await;
    assert!(all >= 400, "{all}");
    drop(worker1);
    second.terminate(Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_follows_a_manager_whose_store_was_made_anew() {
    let dir = home();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let address = support::free_address().to_string();
    let first = watchful_manager(&dir.path().join("first"), &address);
    let api = Api::with_token(&first, ADMIN);
    // Push the first store's revision well past what the second will have.
    for marker in 0..10 {
        let mut document = demo_to_file("busy", &out, "busy");
        document["sources"][0]["conf"]["count"] = json!(1_000_000 + marker);
        api.put("/api/v1/groups/default/dataflows/busy", &document)
            .await;
    }
    let worker1 = worker(&dir.path().join("w1"), "worker1", &first, "default", ENROLL);
    grows(&out.join("busy-worker1.json"), "events of the first store").await;

    // Another manager at the same address, with a new, empty store.
    drop(first);
    let second = watchful_manager(&dir.path().join("second"), &address);
    let api = Api::with_token(&second, ADMIN);
    let answer = api
        .put(
            "/api/v1/groups/default/dataflows/fresh",
            &demo_to_file("fresh", &out, "fresh"),
        )
        .await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    grows(
        &out.join("fresh-worker1.json"),
        "events of the new store's dataflow",
    )
    .await;
    eventually(WAIT, "only the new store's dataflow to run", || async {
        let worker = listed(&api, "worker1").await;
        let dataflows = worker["status"]["dataflows"].as_array()?.clone();
        (dataflows.len() == 1 && dataflows[0]["name"] == "fresh").then_some(())
    })
    .await;
    drop(worker1);
    second.terminate(Duration::from_secs(10));
}

/// A sample of the worker's `/metrics`: `family` of component `component`.
async fn worker_gauge(worker: &Node, family: &str, component: &str) -> Option<u64> {
    let text = reqwest::get(worker.api_url("/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    support::series_value(&text, family, &[&format!("component=\"{component}\"")])
}

/// Sends `messages` to `address` as syslog datagrams, a few at a time, each
/// time waiting until the worker's source has received them, so that no
/// datagram is lost to a full socket buffer instead of to the sink.
async fn send_syslog(worker: &Node, address: &str, messages: std::ops::Range<u32>) {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let received = || worker_gauge(worker, "datascale_component_received_events_total", "in");
    let mut expected = received().await.unwrap_or(0);
    let numbers: Vec<u32> = messages.collect();
    for chunk in numbers.chunks(50) {
        for n in chunk {
            let datagram = format!("<13>Dec  2 10:00:00 worker1 app: line-{n}");
            socket.send_to(datagram.as_bytes(), address).unwrap();
        }
        expected += chunk.len() as u64;
        eventually(WAIT, "the source to receive the datagrams", || async {
            (received().await? >= expected).then_some(())
        })
        .await;
    }
}

/// Waits until the worker's syslog source at `address` receives: a probe
/// datagram a while until one arrives.
async fn listening(worker: &Node, address: &str) {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    eventually(WAIT, "the syslog source to listen", || async {
        socket
            .send_to(b"<13>Dec  2 10:00:00 worker1 app: probe", address)
            .unwrap();
        let received =
            worker_gauge(worker, "datascale_component_received_events_total", "in").await?;
        (received > 0).then_some(())
    })
    .await;
}

/// The distinct `line-N` messages in `my_datascale_cluster`.
async fn lines_stored(api: &Api) -> std::collections::BTreeSet<String> {
    let answer = api
        .get("/api/v1/event_sets/my_datascale_cluster/events?limit=10000")
        .await;
    answer.body["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|event| event["message"].as_str())
        .filter_map(|message| message.split_whitespace().find(|w| w.starts_with("line-")))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_disk_buffer_keeps_what_syslog_received_through_a_manager_outage_and_a_worker_restart() {
    let dir = home();
    let address = support::free_address().to_string();
    let manager_home = dir.path().join("manager");
    let first = watchful_manager(&manager_home, &address);
    let api = Api::with_token(&first, ADMIN);
    let syslog = support::free_udp_address().to_string();
    let document = json!({
        "name": "udp",
        "sources": [{"name": "in", "type": "syslog", "conf": {"address": syslog, "mode": "udp"}}],
        "sinks": [{"name": "out", "type": "yh", "inputs": ["in"],
                   "buffer": {"type": "disk", "max_size": 8 << 20},
                   "conf": {"event_set": "my_datascale_cluster"}}]
    });
    let answer = api
        .put("/api/v1/groups/default/dataflows/udp", &document)
        .await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    let worker_home = dir.path().join("w1");
    let worker1 = worker(&worker_home, "worker1", &first, "default", ENROLL);
    listening(&worker1, &syslog).await;
    send_syslog(&worker1, &syslog, 0..100).await;
    eventually(WAIT, "the first lines", || async {
        (lines_stored(&api).await.len() == 100).then_some(())
    })
    .await;

    // The manager is killed; what arrives meanwhile waits on the worker's disk.
    drop(first);
    send_syslog(&worker1, &syslog, 100..600).await;
    let waiting = || worker_gauge(&worker1, "datascale_component_disk_buffer_events", "out");
    eventually(WAIT, "500 events waiting in the disk buffer", || async {
        (waiting().await? >= 500).then_some(())
    })
    .await;

    // The worker is killed too, and starts again with no manager to ask.
    drop(worker1);
    let manager_url = format!("http://{address}");
    let worker1 = worker_of_cluster(
        &worker_home,
        "worker1",
        &manager_url,
        "default",
        ENROLL,
        "datascale",
    );
    listening(&worker1, &syslog).await;
    let waiting = worker_gauge(&worker1, "datascale_component_disk_buffer_events", "out")
        .await
        .unwrap();
    assert!(waiting >= 500, "{waiting} events left after the restart");
    send_syslog(&worker1, &syslog, 600..700).await;

    let second = watchful_manager(&manager_home, &address);
    let api = Api::with_token(&second, ADMIN);
    eventually(WAIT, "every line once the manager is back", || async {
        (lines_stored(&api).await.len() == 700).then_some(())
    })
    .await;
    eventually(WAIT, "the disk buffer to empty", || async {
        (worker_gauge(&worker1, "datascale_component_disk_buffer_events", "out").await? == 0)
            .then_some(())
    })
    .await;
    drop(worker1);
    second.terminate(Duration::from_secs(10));
}
