//! The manager's REST API over HTTP on a real node: the lifecycle of groups
//! and dataflows, revisions, ETags and `If-Match`, restore, every error
//! status, token roles, the audit log, concurrent writers, and a SIGKILL in
//! the middle of a burst of writes; the groups' event rates and the
//! workers' CPU use from heartbeats.

use std::{collections::BTreeMap, time::Duration};

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Answer, Api, assert_error, home, start, token};

const ALICE: &str = "alice:alice-secret-0123456789";

fn flow(name: &str, marker: u64) -> Value {
    json!({
        "name": name,
        "sources": [{"name": "gen", "type": "demo", "conf": {"count": marker, "interval_secs": 3600}}],
        "sinks": [{"name": "out", "type": "blackhole", "inputs": ["gen"]}]
    })
}

fn revision_of(answer: &Answer) -> u64 {
    answer.body["revision"]
        .as_u64()
        .unwrap_or_else(|| panic!("no revision in {}", answer.body))
}

#[tokio::test(flavor = "multi_thread")]
async fn groups_and_dataflows_live_through_the_api() {
    let dir = home();
    let node = start(dir.path(), &[("DATASCALE_SERVICE_MODE", "manager")]);
    let api = Api::admin(&node, dir.path());

    // Groups: the default one exists; create, conflict, read, change.
    let groups = api.get("/api/v1/groups").await;
    assert_eq!(groups.body[0]["name"], "default", "{}", groups.body);
    let created = api
        .post(
            "/api/v1/groups",
            &json!({"name": "edge", "description": "edge hosts"}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(
        created.etag(),
        Some(format!("\"{}\"", revision_of(&created)).as_str())
    );
    let again = api.post("/api/v1/groups", &json!({"name": "edge"})).await;
    assert_error(&again, 409, "conflict", &["edge", "already exists"]);
    let renamed = api
        .put(
            "/api/v1/groups/edge",
            &json!({"description": "edge routers"}),
        )
        .await;
    assert_eq!(
        (renamed.status, &renamed.body["outcome"]),
        (200, &json!("updated"))
    );
    let shown = api.get("/api/v1/groups/edge").await;
    assert_eq!(shown.body["description"], "edge routers");

    // Dataflows: create, conflict, identical PUT, changed PUT.
    let path = "/api/v1/groups/edge/dataflows/tail";
    let first = api
        .post("/api/v1/groups/edge/dataflows", &flow("tail", 1))
        .await;
    assert_eq!(first.status, 201, "{}", first.body);
    let first_revision = revision_of(&first);
    let duplicate = api
        .post("/api/v1/groups/edge/dataflows", &flow("tail", 1))
        .await;
    assert_error(&duplicate, 409, "conflict", &["tail", "already exists"]);
    let same = api.put(path, &flow("tail", 1)).await;
    assert_eq!(
        (same.status, &same.body["outcome"], revision_of(&same)),
        (200, &json!("unchanged"), first_revision),
        "an identical PUT makes no revision"
    );
    let overview = api.get("/api/v1/overview").await;
    assert_eq!(overview.body["revision"], first_revision);
    let changed = api.put(path, &flow("tail", 2)).await;
    assert_eq!(changed.body["outcome"], "updated");
    assert_eq!(revision_of(&changed), first_revision + 1);
    let read = api.get(path).await;
    assert_eq!(read.body["document"], flow("tail", 2));
    assert_eq!(read.body["updated_by"], "admin");
    assert_eq!(read.etag(), changed.etag());
    let listed = api.get("/api/v1/groups/edge/dataflows").await;
    assert_eq!(listed.body.as_array().unwrap().len(), 1);

    // History and restore.
    let history = api.get(&format!("{path}/revisions")).await;
    let revisions: Vec<_> = history
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| (entry["revision"].as_u64().unwrap(), entry["action"].clone()))
        .collect();
    assert_eq!(
        revisions,
        [
            (first_revision + 1, json!("update")),
            (first_revision, json!("create"))
        ]
    );
    let old = api.get(&format!("{path}/revisions/{first_revision}")).await;
    assert_eq!(old.body["document"], flow("tail", 1));
    let restored = api
        .send(
            Method::POST,
            &format!("{path}/revisions/{first_revision}/restore"),
            None,
            &[],
        )
        .await;
    assert_eq!(restored.status, 200, "{}", restored.body);
    assert_eq!(revision_of(&restored), first_revision + 2);
    assert_eq!(restored.body["document"], flow("tail", 1));
    let newest = &api.get(&format!("{path}/revisions")).await.body[0];
    assert_eq!(
        (&newest["action"], &newest["restored_from"]),
        (&json!("restore"), &json!(first_revision))
    );
    let missing = api.get(&format!("{path}/revisions/9999")).await;
    assert_error(&missing, 404, "not_found", &["9999"]);

    // A group that holds dataflows is deleted only by force.
    let refused = api.delete("/api/v1/groups/edge").await;
    assert_error(&refused, 409, "conflict", &["tail", "force"]);
    let deleted = api.delete("/api/v1/groups/edge?force=true").await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    assert_eq!(api.get(path).await.status, 404);
    assert_eq!(api.get("/api/v1/groups/edge").await.status, 404);
    let overview = api.get("/api/v1/overview").await.body;
    assert_eq!(
        (&overview["groups"], &overview["dataflows"]),
        (&json!(1), &json!(0))
    );
    node.terminate(Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stale_if_match_gets_412_and_changes_nothing() {
    let dir = home();
    let node = start(dir.path(), &[("DATASCALE_SERVICE_MODE", "manager")]);
    let api = Api::admin(&node, dir.path());
    let path = "/api/v1/groups/default/dataflows/tail";
    let first = api.put(path, &flow("tail", 1)).await;
    let first_tag = first.etag().unwrap().to_owned();
    // Operator A changes it with the tag they read.
    let by_a = api
        .send(
            Method::PUT,
            path,
            Some(&flow("tail", 2)),
            &[("If-Match", &first_tag)],
        )
        .await;
    assert_eq!(by_a.status, 200, "{}", by_a.body);
    // Operator B still holds the first tag: refused, nothing changes.
    let by_b = api
        .send(
            Method::PUT,
            path,
            Some(&flow("tail", 3)),
            &[("If-Match", &first_tag)],
        )
        .await;
    assert_error(
        &by_b,
        412,
        "precondition_failed",
        &[&format!("at revision {}", revision_of(&by_a))],
    );
    let delete = api
        .send(Method::DELETE, path, None, &[("If-Match", &first_tag)])
        .await;
    assert_eq!(delete.status, 412);
    let read = api.get(path).await;
    assert_eq!(read.body["document"], flow("tail", 2));
    assert_eq!(revision_of(&read), revision_of(&by_a));
    let create_only = api
        .send(
            Method::PUT,
            path,
            Some(&flow("tail", 4)),
            &[("If-None-Match", "*")],
        )
        .await;
    assert_eq!(create_only.status, 412);
    let bad_tag = api
        .send(
            Method::PUT,
            path,
            Some(&flow("tail", 4)),
            &[("If-Match", "soon")],
        )
        .await;
    assert_error(&bad_tag, 400, "bad_request", &["If-Match"]);
    let current = read.etag().unwrap();
    let delete = api
        .send(Method::DELETE, path, None, &[("If-Match", current)])
        .await;
    assert_eq!(delete.status, 200, "{}", delete.body);
    node.terminate(Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_get_the_right_status_and_change_nothing() {
    let dir = home();
    let node = start(
        dir.path(),
        &[
            ("DATASCALE_SERVICE_MODE", "manager"),
            ("DATASCALE_SERVICE_MANAGER_MAX_BODY_BYTES", "4096"),
        ],
    );
    let api = Api::admin(&node, dir.path());
    let path = "/api/v1/groups/default/dataflows/tail";
    let before = api.get("/api/v1/overview").await.body["revision"].clone();

    let nobody = Api::with_token(&node, "");
    assert_error(
        &nobody.put(path, &flow("tail", 1)).await,
        401,
        "unauthorized",
        &[],
    );
    let wrong = Api::with_token(&node, "not-a-token");
    assert_error(&wrong.get("/api/v1/groups").await, 401, "unauthorized", &[]);
    let worker = Api::with_token(&node, &token(dir.path(), "worker"));
    assert_error(
        &worker.put(path, &flow("tail", 1)).await,
        403,
        "forbidden",
        &[],
    );
    assert_error(&worker.get("/api/v1/groups").await, 403, "forbidden", &[]);

    let invalid = api
        .put(
            path,
            &json!({"sources": [{"name": "gen", "type": "demo"}],
                    "sinks": [{"name": "out", "type": "blackhole", "inputs": ["nope"]}]}),
        )
        .await;
    assert_error(&invalid, 400, "invalid_dataflow", &[]);
    assert_eq!(
        invalid.body["error"]["details"][0]["path"],
        "sinks[0].inputs[0]"
    );
    let renamed = api.put(path, &flow("other", 1)).await;
    assert_error(&renamed, 400, "invalid_dataflow", &[]);
    let bad_name = api
        .put("/api/v1/groups/default/dataflows/-bad", &flow("-bad", 1))
        .await;
    assert_error(&bad_name, 400, "bad_request", &["-bad"]);
    let bad_group = api.post("/api/v1/groups", &json!({"name": "a b"})).await;
    assert_error(&bad_group, 400, "bad_request", &["a b"]);
    let unknown_field = api
        .post("/api/v1/groups", &json!({"name": "ok", "colour": "red"}))
        .await;
    assert_error(&unknown_field, 400, "bad_request", &["colour"]);

    let as_text = api
        .client
        .put(format!("{}{path}", api.base))
        .bearer_auth(&api.token)
        .header("Content-Type", "text/plain")
        .body(flow("tail", 1).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(as_text.status(), 415);
    let not_json = api
        .client
        .put(format!("{}{path}", api.base))
        .bearer_auth(&api.token)
        .header("Content-Type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 400);
    let mut huge = flow("tail", 1);
    huge["sources"][0]["conf"]["format"] = json!("x".repeat(5000));
    let too_large = api.put(path, &huge).await;
    assert_error(&too_large, 413, "payload_too_large", &["4096"]);

    let elsewhere = api
        .send(
            Method::GET,
            "/api/v1/groups",
            None,
            &[("X-DataScale-Cluster", "staging")],
        )
        .await;
    assert_error(&elsewhere, 409, "conflict", &["datascale", "staging"]);
    assert_error(&api.get("/api/v1/nowhere").await, 404, "not_found", &[]);
    let wrong_method = api.send(Method::PATCH, "/api/v1/groups", None, &[]).await;
    assert_error(&wrong_method, 405, "method_not_allowed", &[]);
    assert_error(&api.get(path).await, 404, "not_found", &["tail"]);

    let after = api.get("/api/v1/overview").await.body["revision"].clone();
    assert_eq!(before, after, "no request above changed the store");
    node.terminate(Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread")]
async fn named_tokens_are_recorded_in_the_history_and_the_audit_log() {
    let dir = home();
    let node = start(
        dir.path(),
        &[
            ("DATASCALE_SERVICE_MODE", "manager"),
            ("DATASCALE_SERVICE_MANAGER_ADMIN_TOKENS", ALICE),
        ],
    );
    let alice = Api::with_token(&node, ALICE.split_once(':').unwrap().1);
    let path = "/api/v1/groups/default/dataflows/tail";
    let written = alice.put(path, &flow("tail", 1)).await;
    assert_eq!(written.status, 201, "{}", written.body);
    assert_eq!(written.body["updated_by"], "alice");
    let history = alice.get(&format!("{path}/revisions")).await.body;
    assert_eq!(history[0]["token"], "alice");
    let refused = Api::with_token(&node, "nope").delete(path).await;
    assert_eq!(refused.status, 401);

    let audit = std::fs::read_to_string(dir.path().join("data/audit.log")).unwrap();
    let entries: Vec<Value> = audit
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(entries.len(), 2, "{audit}");
    assert_eq!(
        (
            &entries[0]["token"],
            &entries[0]["method"],
            &entries[0]["path"],
            &entries[0]["status"]
        ),
        (&json!("alice"), &json!("PUT"), &json!(path), &json!(201))
    );
    assert_eq!(
        (&entries[1]["token"], &entries[1]["status"]),
        (&Value::Null, &json!(401))
    );
    assert!(
        !audit.contains("alice-secret"),
        "no secret in the audit log"
    );
    node.terminate(Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hundred_concurrent_puts_make_gap_free_revisions() {
    let dir = home();
    let node = start(dir.path(), &[("DATASCALE_SERVICE_MODE", "manager")]);
    let api = std::sync::Arc::new(Api::admin(&node, dir.path()));
    let start_revision = api.get("/api/v1/overview").await.body["revision"]
        .as_u64()
        .unwrap();
    let mut writers = tokio::task::JoinSet::new();
    for writer in 0..100u64 {
        let api = api.clone();
        writers.spawn(async move {
            // Half of them write the same dataflow, half their own.
            let name = match writer % 2 {
                0 => "shared".to_owned(),
                _ => format!("own{writer}"),
            };
            let answer = api
                .put(
                    &format!("/api/v1/groups/default/dataflows/{name}"),
                    &flow(&name, writer),
                )
                .await;
            assert!(answer.status < 300, "{}", answer.body);
            (name, writer, revision_of(&answer))
        });
    }
    let mut written = writers.join_all().await;
    written.sort_by_key(|(_, _, revision)| *revision);
    let revisions: Vec<u64> = written.iter().map(|(_, _, revision)| *revision).collect();
    let expected: Vec<u64> = (start_revision + 1..=start_revision + 100).collect();
    assert_eq!(revisions, expected, "one revision per write, no gaps");
    let overview = api.get("/api/v1/overview").await.body;
    assert_eq!(overview["revision"], start_revision + 100);
    assert_eq!(overview["dataflows"], 51);
    // The shared dataflow holds the last write, and its history every one.
    let (_, last_writer, last_revision) = written
        .iter()
        .rev()
        .find(|(name, _, _)| name == "shared")
        .unwrap();
    let shared = api.get("/api/v1/groups/default/dataflows/shared").await;
    assert_eq!(shared.body["document"], flow("shared", *last_writer));
    assert_eq!(revision_of(&shared), *last_revision);
    let history = api
        .get("/api/v1/groups/default/dataflows/shared/revisions")
        .await;
    assert_eq!(history.body.as_array().unwrap().len(), 50);
    node.terminate(Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sigkill_during_a_burst_of_writes_loses_nothing_acknowledged() {
    let dir = home();
    let mut node = start(dir.path(), &[("DATASCALE_SERVICE_MODE", "manager")]);
    let api = std::sync::Arc::new(Api::admin(&node, dir.path()));
    let (acknowledged_tx, mut acknowledged) = tokio::sync::mpsc::unbounded_channel();
    let mut writers = tokio::task::JoinSet::new();
    for writer in 0..8u64 {
        let (api, acknowledged) = (api.clone(), acknowledged_tx.clone());
        writers.spawn(async move {
            for round in 0.. {
                let name = format!("flow{writer}");
                let document = flow(&name, round);
                let sent = api
                    .client
                    .put(format!(
                        "{}/api/v1/groups/default/dataflows/{name}",
                        api.base
                    ))
                    .bearer_auth(&api.token)
                    .json(&document)
                    .send()
                    .await;
                let Ok(response) = sent else { return };
                if !response.status().is_success() {
                    return;
                }
                let Ok(body) = response.json::<Value>().await else {
                    return;
                };
                let revision = body["revision"].as_u64().unwrap();
                if acknowledged.send((name, revision, document)).is_err() {
                    return;
                }
            }
        });
    }
    drop(acknowledged_tx);
    // Let a few hundred writes be acknowledged, then kill the node mid-burst.
    let mut seen = Vec::new();
    while seen.len() < 300 {
        seen.push(acknowledged.recv().await.unwrap());
    }
    node.child.kill().unwrap();
    node.child.wait().unwrap();
    while let Some(write) = acknowledged.recv().await {
        seen.push(write);
    }
    writers.join_all().await;

    let node = start(dir.path(), &[("DATASCALE_SERVICE_MODE", "manager")]);
    let api = Api::admin(&node, dir.path());
    let mut latest: BTreeMap<String, u64> = BTreeMap::new();
    for (name, revision, document) in &seen {
        let entry = api
            .get(&format!(
                "/api/v1/groups/default/dataflows/{name}/revisions/{revision}"
            ))
            .await;
        assert_eq!(
            entry.status, 200,
            "acknowledged {name}@{revision} is missing"
        );
        assert_eq!(&entry.body["document"], document);
        let newest = latest.entry(name.clone()).or_default();
        *newest = (*newest).max(*revision);
    }
    for (name, revision) in latest {
        let stored = api
            .get(&format!("/api/v1/groups/default/dataflows/{name}"))
            .await;
        assert!(revision_of(&stored) >= revision, "{name}: {}", stored.body);
    }
    // The store goes on taking writes after the crash.
    let after = api
        .put("/api/v1/groups/default/dataflows/later", &flow("later", 1))
        .await;
    assert_eq!(after.status, 201, "{}", after.body);
    node.terminate(Duration::from_secs(10));
}

/// A heartbeat of `identity` whose dataflow in `group` counted `events_in`
/// and `events_out` so far, after `cpu_seconds` of CPU time; it also
/// reports the same counts for a group it does not run.
fn beat(identity: &Value, group: &str, counts: (u64, u64), cpu_seconds: f64) -> Value {
    let report = |group: &str| {
        json!({
            "group": group, "name": "tail", "state": "running", "revision": 1,
            "document_sha256": null, "wanted_revision": 1, "last_error": null,
            "restarting": 0, "events_in": counts.0, "events_out": counts.1, "errors": 0
        })
    };
    json!({
        "identity": identity,
        "applied_revision": 0,
        "dataflows": [report(group), report("not_its_group")],
        "cpu_seconds": cpu_seconds,
        "resident_bytes": 50_000_000,
        "load1": 0.5
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn heartbeats_feed_the_groups_event_rates_and_the_workers_cpu_use() {
    let dir = home();
    let node = start(dir.path(), &[("DATASCALE_SERVICE_MODE", "manager")]);
    let admin = Api::admin(&node, dir.path());
    let enrollment = Api::with_token(&node, &token(dir.path(), "worker"));
    let identity = json!({"id": "w-rates", "hostname": "rates.example", "version": "1.0.0",
                          "groups": ["default"], "address": "127.0.0.1:1"});
    let enrolled = enrollment.post("/api/v1/workers/enroll", &identity).await;
    assert_eq!(enrolled.status, 201, "{}", enrolled.body);
    let worker = Api::with_token(&node, enrolled.body["credential"].as_str().unwrap());

    // Nothing counted yet: no group to chart.
    let rates = admin.get("/api/v1/overview/rates").await;
    assert_eq!(rates.status, 200, "{}", rates.body);
    assert_eq!(rates.body, json!({"step_secs": 10, "groups": []}));

    // The first heartbeat only sets where counting starts: what its
    // counters held before is not a rate of now.
    for (counts, cpu) in [((1_000, 900), 10.0), ((1_500, 1_300), 10.5)] {
        let answer = worker
            .post(
                "/api/v1/heartbeat",
                &beat(&identity, "default", counts, cpu),
            )
            .await;
        assert_eq!(answer.status, 200, "{}", answer.body);
    }
    // Only the groups the worker runs are charted.
    let rates = admin.get("/api/v1/overview/rates").await.body;
    let groups = rates["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{rates}");
    assert_eq!(groups[0]["group"], "default");
    let counted: Vec<&Value> = groups[0]["points"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|point| point["events_in_per_sec"].as_f64().unwrap() > 0.0)
        .collect();
    // 500 in and 400 out, in the step of the second heartbeat.
    assert_eq!(counted.len(), 1, "{rates}");
    let (events_in, events_out) = (
        counted[0]["events_in_per_sec"].as_f64().unwrap(),
        counted[0]["events_out_per_sec"].as_f64().unwrap(),
    );
    assert!(events_in <= 500.0, "{rates}");
    assert!((events_in / events_out - 1.25).abs() < 1e-9, "{rates}");

    let workers = admin.get("/api/v1/workers").await.body;
    let cpu = workers[0]["cpu_percent"].as_f64().unwrap();
    assert!(cpu > 0.0, "{workers}");
    node.terminate(Duration::from_secs(10));
}
