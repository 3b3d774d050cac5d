//! Event sets on a real manager: ingest NDJSON (plain and gzip) with the
//! worker token, search by text, field, time range and pages, refuse bad
//! requests whole, and keep every acknowledged event across a SIGKILL.

use std::{io::Write, time::Duration};

use flate2::{Compression, write::GzEncoder};
use serde_json::{Value, json};

use crate::support::{self, ADMIN, Api, ENROLL, Node, home, ingest, ndjson, start, start_manager};

/// A manager that takes request bodies of up to 1 MB into its event sets.
fn small_body_manager(dir: &std::path::Path) -> Node {
    start_manager(dir, &[("DATASCALE_EVENT_SETS_MAX_BODY_MB", "1")])
}

fn event(n: u64, host: &str) -> Value {
    json!({
        "timestamp": format!("2026-11-23T10:{:02}:{:02}Z", n / 60, n % 60),
        "host": host,
        "dataflow": "collect",
        "message": if n.is_multiple_of(2) { format!("request {n} served") } else { format!("request {n} failed") },
    })
}

async fn search(api: &Api, query: &str) -> Value {
    let answer = api
        .get(&format!(
            "/api/v1/event_sets/my_datascale_cluster/events?{query}"
        ))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.body
}

#[tokio::test(flavor = "multi_thread")]
async fn events_are_ingested_and_found_by_text_field_time_and_page() {
    let dir = home();
    let node = small_body_manager(dir.path());
    let worker = Api::with_token(&node, ENROLL);
    let admin = Api::with_token(&node, ADMIN);
    let first: Vec<Value> = (0..60).map(|n| event(n, "worker1")).collect();
    let answer = ingest(&worker, "my_datascale_cluster", ndjson(&first), &[]).await;
    assert_eq!(
        (answer.status, &answer.body["accepted"]),
        (200, &json!(60)),
        "{}",
        answer.body
    );
    let second: Vec<Value> = (60..120).map(|n| event(n, "worker2")).collect();
    let mut gzip = GzEncoder::new(Vec::new(), Compression::fast());
    gzip.write_all(&ndjson(&second)).unwrap();
    let answer = ingest(
        &worker,
        "my_datascale_cluster",
        gzip.finish().unwrap(),
        &[("Content-Encoding", "gzip")],
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);

    let failed = search(&admin, "q=failed&limit=1000").await;
    assert_eq!(failed["events"].as_array().unwrap().len(), 60);
    assert_eq!(failed["events"][0], event(119, "worker2"), "newest first");
    let by_host = search(&admin, "q=failed%20host:worker1&limit=1000").await;
    assert_eq!(by_host["events"].as_array().unwrap().len(), 30);
    let window = search(
        &admin,
        "from=2026-11-23T10:01:00Z&to=2026-11-23T10:01:10Z&limit=1000",
    )
    .await;
    let numbers: Vec<_> = window["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            e["message"]
                .as_str()
                .unwrap()
                .split(' ')
                .nth(1)
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        numbers,
        (60..70).rev().map(|n| n.to_string()).collect::<Vec<_>>()
    );

    // Pages of 50 walk every event once.
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = search(&admin, &format!("limit=50{cursor}")).await;
        seen.extend(page["events"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 120);
    assert_eq!(seen.last().unwrap(), &event(0, "worker1"));

    let kept = admin
        .put(
            "/api/v1/event_sets/my_datascale_cluster/retention",
            &json!({"max_age_days": 90}),
        )
        .await;
    assert_eq!(kept.status, 200, "{}", kept.body);
    let sets = admin.get("/api/v1/event_sets").await.body;
    assert_eq!(sets[0]["retention"]["max_age_days"], 90);
    assert_eq!(
        sets[0]["retention"]["max_size_mb"], 1024,
        "from [event_sets]"
    );
    assert_eq!(sets[0]["name"], "my_datascale_cluster");
    assert_eq!(sets[0]["events"], 120);
    assert!(sets[0]["size_bytes"].as_u64().unwrap() > 0);
    assert_eq!(sets[0]["newest"], "2026-11-23T10:01:59.000Z");
    node.terminate(Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_are_refused_whole() {
    let dir = home();
    let node = small_body_manager(dir.path());
    let worker = Api::with_token(&node, ENROLL);
    let admin = Api::with_token(&node, ADMIN);
    ingest(&worker, "logs", ndjson(&[event(1, "a")]), &[]).await;

    let mut body = ndjson(&[event(2, "a"), event(3, "a")]);
    body.extend_from_slice(b"{\"broken\": \n");
    let answer = ingest(&worker, "logs", body, &[]).await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    let message = answer.body["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("line 3:"), "{message}");
    let page = admin.get("/api/v1/event_sets/logs/events").await.body;
    assert_eq!(
        page["events"].as_array().unwrap().len(),
        1,
        "nothing of it was stored"
    );

    // Small on the wire, over the limit once inflated.
    let mut bomb = GzEncoder::new(Vec::new(), Compression::best());
    bomb.write_all(&vec![b' '; 2 * 1024 * 1024]).unwrap();
    let answer = ingest(
        &worker,
        "logs",
        bomb.finish().unwrap(),
        &[("Content-Encoding", "gzip")],
    )
    .await;
    assert_eq!(answer.status, 413, "{}", answer.body);
    assert_eq!(
        ingest(&worker, "bad name", ndjson(&[event(1, "a")]), &[])
            .await
            .status,
        400
    );
    assert_eq!(
        ingest(
            &worker,
            "logs",
            b"a,b\n".to_vec(),
            &[("Content-Type", "text/csv")]
        )
        .await
        .status,
        415
    );
    assert_eq!(
        Api::with_token(&node, "nope")
            .get("/api/v1/event_sets")
            .await
            .status,
        401
    );
    assert_eq!(
        worker.get("/api/v1/event_sets/logs/events").await.status,
        403
    );
    assert_eq!(
        admin.get("/api/v1/event_sets/missing/events").await.status,
        404
    );
    assert_eq!(
        admin
            .get("/api/v1/event_sets/logs/events?from=yesterday")
            .await
            .status,
        400
    );
    assert_eq!(
        admin
            .get("/api/v1/event_sets/logs/events?limit=10001")
            .await
            .status,
        400
    );
    node.terminate(Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sigkill_loses_no_acknowledged_event() {
    let dir = home();
    let mut node = small_body_manager(dir.path());
    let worker = std::sync::Arc::new(Api::with_token(&node, ENROLL));
    let mut writers = tokio::task::JoinSet::new();
    for writer in 0..4u64 {
        let worker = worker.clone();
        writers.spawn(async move {
            let mut acknowledged = 0u64;
            for batch in 0.. {
                let events: Vec<Value> = (0..100)
                    .map(|n| json!({"writer": writer, "batch": batch, "n": n, "message": "burst"}))
                    .collect();
                let sent = worker
                    .client
                    .post(format!("{}/api/v1/event_sets/burst/events", worker.base))
                    .bearer_auth(&worker.token)
                    .header("Content-Type", "application/x-ndjson")
                    .body(ndjson(&events))
                    .send()
                    .await;
                match sent {
                    Ok(response) if response.status().is_success() => acknowledged += 100,
                    _ => return acknowledged,
                }
            }
            acknowledged
        });
    }
    // Let the writers get going, then kill the manager mid-burst.
    let admin = Api::with_token(&node, ADMIN);
    support::eventually(Duration::from_secs(20), "a few thousand events", || async {
        let sets = admin.get("/api/v1/event_sets").await.body;
        (sets[0]["events"].as_u64()? >= 2_000).then_some(())
    })
    .await;
    node.child.kill().unwrap();
    node.child.wait().unwrap();
    let acknowledged: u64 = writers.join_all().await.into_iter().sum();

    let node = small_body_manager(dir.path());
    let admin = Api::with_token(&node, ADMIN);
    let sets = admin.get("/api/v1/event_sets").await.body;
    let stored = sets[0]["events"].as_u64().unwrap();
    assert!(
        stored >= acknowledged,
        "{stored} stored, {acknowledged} acknowledged"
    );
    assert_eq!(stored % 100, 0, "batches are stored whole");
    node.terminate(Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_standalone_nodes_yh_sink_writes_to_its_own_event_set() {
    let dir = home();
    let node = start(
        dir.path(),
        &[("DATASCALE_SERVICE_MANAGER_ADMIN_TOKEN", ADMIN)],
    );
    let admin = Api::with_token(&node, ADMIN);
    let document = json!({
        "name": "to_set",
        "sources": [{"name": "gen", "type": "demo", "conf": {"count": 25, "interval_secs": 0.01}}],
        "sinks": [{"name": "out", "type": "yh", "inputs": ["gen"],
                   "conf": {"event_set": "local"}}]
    });
    let answer = admin
        .put("/api/v1/groups/default/dataflows/to_set", &document)
        .await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    let events = support::eventually(Duration::from_secs(20), "25 events", || async {
        let page = admin.get("/api/v1/event_sets/local/events").await.body;
        let events = page["events"].as_array()?.clone();
        (events.len() == 25).then_some(events)
    })
    .await;
    assert!(
        events
            .iter()
            .all(|e| e["dataflow"] == "to_set" && e["source"] == "gen")
    );
    // The sink counts what the manager accepted.
    let sent = "datascale_component_sent_events_total{dataflow=\"to_set\",component=\"out\",component_type=\"yh\",group=\"default\"} 25";
    support::eventually(Duration::from_secs(20), "the sink's count", || async {
        let metrics = reqwest::get(node.api_url("/metrics"))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        metrics.contains(sent).then_some(())
    })
    .await;
    node.terminate(Duration::from_secs(10));
}
