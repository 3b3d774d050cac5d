//! Enrollment against a real manager, with real worker processes where a
//! worker's own behaviour matters: an enrolled worker's id cannot be taken
//! over with an enrollment token (the real worker keeps its credential,
//! the attempt is in the audit log), a worker that lost its credential
//! enrolls again once an admin resets it, and enrollment tokens made
//! through the API enroll only in their groups, until they expire, are used
//! up or revoked, across restarts of the manager; the built-in token goes
//! on enrolling for any group. Also `datascale enrollment-token`.

use std::{path::Path, time::Duration};

use chrono::{SecondsFormat, Utc};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{
    self, ADMIN, Api, ENROLL, Node, assert_error, eventually, home, listed_worker, run,
    start_manager, wait_for_output, worker,
};

const WAIT: Duration = Duration::from_secs(20);

/// A manager in `dir` on `address` (`127.0.0.1:0`: any port).
fn manager_at(dir: &Path, address: &str) -> Node {
    start_manager(dir, &[("DATASCALE_SERVICE_ADDRESS", address)])
}

/// An identity to enroll with, as a worker sends it.
fn identity(id: &str, groups: &[&str]) -> Value {
    json!({"id": id, "hostname": format!("{id}.example"), "version": "1.0.0",
           "groups": groups, "address": "127.0.0.1:1"})
}

/// A heartbeat of `identity` that reports nothing running.
fn beat(identity: &Value) -> Value {
    json!({"identity": identity, "applied_revision": 0, "dataflows": [],
           "cpu_seconds": 1.0, "resident_bytes": 1_000_000, "load1": 0.1})
}

/// The text of a file in a worker's data directory, trimmed.
fn kept(home: &Path, file: &str) -> String {
    std::fs::read_to_string(home.join("data").join(file))
        .unwrap_or_else(|err| panic!("{file}: {err}"))
        .trim()
        .to_owned()
}

/// The worker `id` as `GET /api/v1/workers` lists it, once it holds.
async fn listed(api: &Api, id: &str, holds: impl Fn(&Value) -> bool) -> Value {
    let what = format!("worker {id} listed so");
    listed_worker(api, WAIT, &what, |worker| {
        worker["id"] == id && holds(worker)
    })
    .await
}

/// Waits for another heartbeat of worker `id` than the last one seen.
async fn heartbeats_go_on(api: &Api, id: &str) {
    let before =
        listed(api, id, |w| !w["last_heartbeat"].is_null()).await["last_heartbeat"].clone();
    listed(api, id, |w| w["last_heartbeat"] != before).await;
}

/// The lines of the manager's audit log.
fn audit(manager_home: &Path) -> Vec<Value> {
    std::fs::read_to_string(manager_home.join("data/audit.log"))
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// The audit lines of enrollments of worker `id`.
fn enrollments_of(manager_home: &Path, id: &str) -> Vec<Value> {
    let subject = json!(format!("worker {id}"));
    audit(manager_home)
        .into_iter()
        .filter(|entry| entry["path"] == "/api/v1/workers/enroll" && entry["subject"] == subject)
        .collect()
}

/// A dataflow of group `group`, whose sink holds a secret.
fn guarded(name: &str) -> Value {
    json!({
        "name": name,
        "sources": [{"name": "gen", "type": "demo", "conf": {"interval_secs": 3600}}],
        "sinks": [{"name": "out", "type": "http", "inputs": ["gen"],
                   "conf": {"uri": "http://127.0.0.1:9/ingest",
                            "headers": {"Authorization": "Bearer sink-secret"}}}]
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn an_enrolled_worker_id_cannot_be_taken_over_with_the_enrollment_token() {
    let dir = home();
    let manager_home = dir.path().join("manager");
    let manager = manager_at(&manager_home, "127.0.0.1:0");
    let admin = Api::with_token(&manager, ADMIN);
    let put = admin
        .put(
            "/api/v1/groups/default/dataflows/guarded",
            &guarded("guarded"),
        )
        .await;
    assert_eq!(put.status, 201, "{}", put.body);
    let worker_home = dir.path().join("w1");
    let worker1 = worker(&worker_home, "worker1", &manager, "default", ENROLL);
    let credential = eventually(WAIT, "the worker's credential", || async {
        std::fs::read_to_string(worker_home.join("data/secrets/worker.credential")).ok()
    })
    .await;
    let id = kept(&worker_home, "worker.id");
    heartbeats_go_on(&admin, &id).await;

    // Someone with the enrollment token and the worker's id asks for a
    // credential of that id: refused, saying how an admin resets it.
    let intruder = Api::with_token(&manager, ENROLL);
    let takeover = intruder
        .post("/api/v1/workers/enroll", &identity(&id, &["default"]))
        .await;
    assert_error(
        &takeover,
        409,
        "conflict",
        &["is taken", &id, &format!("DELETE /api/v1/workers/{id}")],
    );
    // The enrollment token alone reads nothing of the worker's.
    let sync = intruder
        .get(&format!("/api/v1/sync?worker_id={id}&revision=0"))
        .await;
    assert_eq!(sync.status, 401, "{}", sync.body);
    assert!(!sync.body.to_string().contains("sink-secret"));

    // The real worker's credential is unchanged and still works.
    assert_eq!(
        kept(&worker_home, "secrets/worker.credential"),
        credential.trim()
    );
    let real = Api::with_token(&manager, credential.trim());
    let desired = real
        .get(&format!("/api/v1/sync?worker_id={id}&revision=0"))
        .await;
    assert_eq!(desired.status, 200, "{}", desired.body);
    assert_eq!(desired.body["dataflows"][0]["name"], "guarded");
    heartbeats_go_on(&admin, &id).await;
    let shown = listed(&admin, &id, |_| true).await;
    assert_eq!(shown["hostname"], "worker1", "{shown}");

    // The refused attempt is in the audit log, with the worker's id.
    let attempts = enrollments_of(&manager_home, &id);
    let statuses: Vec<&Value> = attempts.iter().map(|entry| &entry["status"]).collect();
    assert_eq!(statuses, [&json!(201), &json!(409)], "{attempts:#?}");
    assert_eq!(attempts[1]["token"], "worker");
    assert_eq!(attempts[1]["method"], "POST");
    drop(worker1);
    manager.terminate(Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_keeps_its_credential_and_after_losing_it_enrolls_again_once_reset() {
    let dir = home();
    let manager_home = dir.path().join("manager");
    let manager = manager_at(&manager_home, "127.0.0.1:0");
    let admin = Api::with_token(&manager, ADMIN);
    let worker_home = dir.path().join("w1");
    let worker1 = worker(&worker_home, "worker1", &manager, "default", ENROLL);
    let credential_path = worker_home.join("data/secrets/worker.credential");
    eventually(WAIT, "the worker's credential", || async {
        credential_path.exists().then_some(())
    })
    .await;
    let id = kept(&worker_home, "worker.id");
    let credential = kept(&worker_home, "secrets/worker.credential");
    heartbeats_go_on(&admin, &id).await;

    // Restarted, it goes on with the credential it keeps.
    worker1.terminate(Duration::from_secs(10));
    let worker1 = worker(&worker_home, "worker1", &manager, "default", ENROLL);
    heartbeats_go_on(&admin, &id).await;
    assert_eq!(kept(&worker_home, "secrets/worker.credential"), credential);
    assert_eq!(enrollments_of(&manager_home, &id).len(), 1);

    // Its credential lost, it may not enroll again under its id...
    worker1.terminate(Duration::from_secs(10));
    std::fs::remove_file(&credential_path).unwrap();
    let worker1 = worker(&worker_home, "worker1", &manager, "default", ENROLL);
    let line = wait_for_output(&worker1, WAIT, &["is taken", &id]);
    assert!(line.contains("DELETE /api/v1/workers/"), "{line}");
    assert!(!credential_path.exists());

    // ...until an admin resets it: then it enrolls by itself.
    let deleted = admin.delete(&format!("/api/v1/workers/{id}")).await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    wait_for_output(&worker1, WAIT, &["Enrolled with the manager"]);
    heartbeats_go_on(&admin, &id).await;
    let renewed = kept(&worker_home, "secrets/worker.credential");
    assert_ne!(renewed, credential);
    let statuses: Vec<Value> = enrollments_of(&manager_home, &id)
        .into_iter()
        .map(|entry| entry["status"].clone())
        .collect();
    assert_eq!(statuses.first(), Some(&json!(201)), "{statuses:?}");
    assert_eq!(statuses.last(), Some(&json!(201)), "{statuses:?}");
    assert!(statuses.contains(&json!(409)), "{statuses:?}");
    drop(worker1);
    manager.terminate(Duration::from_secs(10));
}

/// Makes an enrollment token as `body` asks; returns the answer, with the secret.
async fn create(admin: &Api, body: Value) -> Value {
    let created = admin.post("/api/v1/enrollment_tokens", &body).await;
    assert_eq!(created.status, 201, "{}", created.body);
    created.body
}

/// The enrollment token `id` as listed.
async fn token_listed(admin: &Api, id: &str) -> Option<Value> {
    let tokens = admin.get("/api/v1/enrollment_tokens").await;
    assert_eq!(tokens.status, 200, "{}", tokens.body);
    tokens
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|token| token["id"] == id)
        .cloned()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_enrollment_token_enrolls_only_in_its_groups_until_used_up_or_revoked() {
    let dir = home();
    let manager_home = dir.path().join("manager");
    let manager = manager_at(&manager_home, "127.0.0.1:0");
    let admin = Api::with_token(&manager, ADMIN);
    let edge = create(
        &admin,
        json!({"groups": ["edge"], "max_uses": 2, "description": "edge racks"}),
    )
    .await;
    let secret = edge["token"].as_str().unwrap().to_owned();
    let edge_id = edge["id"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("dse_"), "{edge}");
    assert_eq!(
        (
            &edge["groups"],
            &edge["max_uses"],
            &edge["uses"],
            &edge["expires_at"],
            &edge["state"]
        ),
        (
            &json!(["edge"]),
            &json!(2),
            &json!(0),
            &Value::Null,
            &json!("active")
        ),
        "{edge}"
    );
    // Listed without its secret.
    let shown = token_listed(&admin, &edge_id).await.unwrap();
    assert_eq!(shown["description"], "edge racks");
    let listing = admin
        .get("/api/v1/enrollment_tokens")
        .await
        .body
        .to_string();
    assert!(
        !listing.contains(&secret) && !listing.contains("\"token\""),
        "{listing}"
    );

    // A real worker enrolls with it in its group; one that asks for
    // another group too is refused, naming it, and uses nothing up.
    let inside_home = dir.path().join("inside");
    let inside = worker(&inside_home, "inside", &manager, "edge", &secret);
    let inside_id = eventually(WAIT, "the worker's id", || async {
        std::fs::read_to_string(inside_home.join("data/worker.id")).ok()
    })
    .await;
    let enrolled = listed(&admin, inside_id.trim(), |w| !w["last_heartbeat"].is_null()).await;
    assert_eq!(enrolled["enrollment_token"], json!(edge_id), "{enrolled}");
    assert_eq!(enrolled["allowed_groups"], json!(["edge"]), "{enrolled}");
    let outside = worker(
        &dir.path().join("outside"),
        "outside",
        &manager,
        "edge,web",
        &secret,
    );
    let line = wait_for_output(
        &outside,
        WAIT,
        &["allows only group(s) `edge`", "not `web`"],
    );
    assert!(line.contains(&edge_id), "{line}");
    drop(outside);
    let refused = Api::with_token(&manager, &secret)
        .post("/api/v1/workers/enroll", &identity("w-outside", &["web"]))
        .await;
    assert_error(&refused, 403, "forbidden", &["not `web`", &edge_id]);
    assert_eq!(token_listed(&admin, &edge_id).await.unwrap()["uses"], 1);

    // Its second use is its last.
    let by_token = Api::with_token(&manager, &secret);
    let me = identity("w-api", &["edge"]);
    let second = by_token.post("/api/v1/workers/enroll", &me).await;
    assert_eq!(second.status, 201, "{}", second.body);
    let used_up = by_token
        .post("/api/v1/workers/enroll", &identity("w-third", &["edge"]))
        .await;
    assert_error(&used_up, 401, "unauthorized", &["used up", &edge_id]);
    let shown = token_listed(&admin, &edge_id).await.unwrap();
    assert_eq!(
        (&shown["uses"], &shown["state"]),
        (&json!(2), &json!("used_up"))
    );

    // An enrollment token does nothing but enroll.
    for (method, path) in [
        (Method::GET, "/api/v1/workers"),
        (Method::GET, "/api/v1/status"),
        (Method::GET, "/api/v1/enrollment_tokens"),
        (Method::GET, "/api/v1/sync?worker_id=w-api&revision=0"),
        (Method::POST, "/api/v1/event_sets/anything/events"),
    ] {
        let answer = by_token.send(method.clone(), path, None, &[]).await;
        assert_eq!(answer.status, 403, "{method} {path}: {}", answer.body);
    }

    // The worker it enrolled may not step out of its groups by itself...
    let credential = second.body["credential"].as_str().unwrap().to_owned();
    let own = Api::with_token(&manager, &credential);
    let stepping_out = own
        .post(
            "/api/v1/heartbeat",
            &beat(&identity("w-api", &["edge", "web"])),
        )
        .await;
    assert_error(&stepping_out, 403, "forbidden", &["not `web`", "w-api"]);
    assert_eq!(own.post("/api/v1/heartbeat", &beat(&me)).await.status, 200);
    // ...but an admin may assign it any group, and it then runs that group.
    let put = admin
        .put(
            "/api/v1/groups/default/dataflows/guarded",
            &guarded("guarded"),
        )
        .await;
    assert_eq!(put.status, 201, "{}", put.body);
    let assigned = admin
        .put(
            "/api/v1/workers/w-api/groups",
            &json!({"groups": ["default"]}),
        )
        .await;
    assert_eq!(assigned.status, 200, "{}", assigned.body);
    let desired = own.get("/api/v1/sync?worker_id=w-api&revision=0").await;
    assert_eq!(desired.status, 200, "{}", desired.body);
    assert_eq!(desired.body["groups"], json!(["default"]));
    assert_eq!(desired.body["dataflows"][0]["name"], "guarded");
    // Its own credential, and only that, renews it.
    let of_another = own
        .post(
            "/api/v1/workers/enroll",
            &identity(inside_id.trim(), &["edge"]),
        )
        .await;
    assert_error(&of_another, 403, "forbidden", &["w-api"]);
    let renewed = own.post("/api/v1/workers/enroll", &me).await;
    assert_eq!(renewed.status, 201, "{}", renewed.body);
    let fresh = renewed.body["credential"].as_str().unwrap();
    assert_ne!(fresh, credential);
    assert_eq!(own.post("/api/v1/heartbeat", &beat(&me)).await.status, 401);
    let own = Api::with_token(&manager, fresh);
    assert_eq!(own.post("/api/v1/heartbeat", &beat(&me)).await.status, 200);

    // Revoked, a token enrolls nobody; the workers it enrolled stay.
    let any = create(&admin, json!({"groups": null})).await;
    let any_id = any["id"].as_str().unwrap();
    assert_eq!(any["groups"], Value::Null);
    let revoked = admin
        .delete(&format!("/api/v1/enrollment_tokens/{any_id}"))
        .await;
    assert_eq!(revoked.status, 200, "{}", revoked.body);
    assert_eq!(revoked.body, json!({"revoked": any_id}));
    let after = Api::with_token(&manager, any["token"].as_str().unwrap())
        .post("/api/v1/workers/enroll", &identity("w-late", &["edge"]))
        .await;
    assert_eq!(after.status, 401, "{}", after.body);
    let again = admin
        .delete(&format!("/api/v1/enrollment_tokens/{any_id}"))
        .await;
    assert_error(&again, 404, "not_found", &[any_id]);
    let bad = admin.delete("/api/v1/enrollment_tokens/not-a-token").await;
    assert_error(&bad, 400, "bad_request", &["not-a-token"]);
    assert!(token_listed(&admin, any_id).await.is_none());
    let workers = admin.get("/api/v1/workers").await.body;
    assert_eq!(workers.as_array().unwrap().len(), 2, "{workers}");

    // Only admins manage tokens; each change is audited, no secret is.
    let by_worker = own
        .post("/api/v1/enrollment_tokens", &json!({"groups": null}))
        .await;
    assert_eq!(by_worker.status, 403, "{}", by_worker.body);
    let entries = audit(&manager_home);
    let made: Vec<&Value> = entries
        .iter()
        .filter(|entry| entry["path"] == "/api/v1/enrollment_tokens" && entry["status"] == 201)
        .collect();
    assert_eq!(made.len(), 2, "{entries:#?}");
    assert_eq!(made[0]["token"], "admin");
    assert_eq!(
        made[0]["subject"],
        json!(format!("enrollment token {edge_id}"))
    );
    assert!(entries.iter().any(|entry| entry["method"] == "DELETE"
        && entry["path"] == json!(format!("/api/v1/enrollment_tokens/{any_id}"))
        && entry["status"] == 200));
    let text = std::fs::read_to_string(manager_home.join("data/audit.log")).unwrap();
    assert!(!text.contains("dse_") && !text.contains("dsc_"), "{text}");
    drop(inside);
    manager.terminate(Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_expire_survive_a_restart_and_the_built_in_token_enrolls_any_group() {
    let dir = home();
    let manager_home = dir.path().join("manager");
    let address = support::free_address().to_string();
    let first = manager_at(&manager_home, &address);
    let admin = Api::with_token(&first, ADMIN);

    // What a token may be made with, and what not.
    let soon =
        (Utc::now() + chrono::Duration::seconds(3)).to_rfc3339_opts(SecondsFormat::Secs, true);
    for (body, words) in [
        (json!({"max_uses": 1}), "groups"),
        (json!({"groups": []}), "groups is empty"),
        (json!({"groups": ["a b"]}), "`a b`"),
        (json!({"groups": null, "max_uses": 0}), "max_uses 0"),
        (json!({"groups": null, "max_uses": 1.5}), "max_uses"),
        (
            json!({"groups": null, "expires_at": "2001-01-01T00:00:00Z"}),
            "has passed",
        ),
        (
            json!({"groups": null, "expires_at": "next week"}),
            "`next week`",
        ),
        (json!({"groups": null, "uses": 3}), "unknown field"),
    ] {
        let refused = admin.post("/api/v1/enrollment_tokens", &body).await;
        assert_error(&refused, 400, "bad_request", &[words]);
    }
    assert_eq!(
        admin.get("/api/v1/enrollment_tokens").await.body,
        json!([]),
        "no refused request made a token"
    );

    let short_lived = create(&admin, json!({"groups": null, "expires_at": soon})).await;
    let short_lived_id = short_lived["id"].as_str().unwrap().to_owned();
    assert_eq!(short_lived["expires_at"], json!(soon));
    let by_short_lived = Api::with_token(&first, short_lived["token"].as_str().unwrap());
    let early = by_short_lived
        .post("/api/v1/workers/enroll", &identity("w-early", &["default"]))
        .await;
    assert_eq!(early.status, 201, "{}", early.body);
    let lasting = create(&admin, json!({"groups": ["default"], "max_uses": 3})).await;
    let lasting_id = lasting["id"].as_str().unwrap().to_owned();
    let lasting_secret = lasting["token"].as_str().unwrap().to_owned();
    let once = Api::with_token(&first, &lasting_secret)
        .post("/api/v1/workers/enroll", &identity("w-once", &["default"]))
        .await;
    assert_eq!(once.status, 201, "{}", once.body);

    // Once its time has passed, the short-lived one enrolls nobody.
    eventually(WAIT, "the token to expire", || async {
        let token = token_listed(&admin, &short_lived_id).await?;
        (token["state"] == "expired").then_some(())
    })
    .await;
    let late = by_short_lived
        .post("/api/v1/workers/enroll", &identity("w-late", &["default"]))
        .await;
    assert_error(&late, 401, "unauthorized", &["expired", &short_lived_id]);

    // The manager restarts: the tokens, their uses and their refusals stay.
    first.terminate(Duration::from_secs(10));
    let second = manager_at(&manager_home, &address);
    let admin = Api::with_token(&second, ADMIN);
    let kept_tokens = admin.get("/api/v1/enrollment_tokens").await.body;
    assert_eq!(kept_tokens.as_array().unwrap().len(), 2, "{kept_tokens}");
    let lasting_now = token_listed(&admin, &lasting_id).await.unwrap();
    assert_eq!(
        (&lasting_now["uses"], &lasting_now["state"]),
        (&json!(1), &json!("active"))
    );
    let twice = Api::with_token(&second, &lasting_secret)
        .post("/api/v1/workers/enroll", &identity("w-twice", &["default"]))
        .await;
    assert_eq!(twice.status, 201, "{}", twice.body);
    let still_late = Api::with_token(&second, short_lived["token"].as_str().unwrap())
        .post("/api/v1/workers/enroll", &identity("w-later", &["default"]))
        .await;
    assert_error(&still_late, 401, "unauthorized", &["expired"]);

    // The configured worker token enrolls for any group, as before.
    let built_in = Api::with_token(&second, ENROLL)
        .post(
            "/api/v1/workers/enroll",
            &identity("w-any", &["any-group", "another"]),
        )
        .await;
    assert_eq!(built_in.status, 201, "{}", built_in.body);
    let any = listed(&admin, "w-any", |_| true).await;
    assert_eq!(
        (&any["enrollment_token"], &any["allowed_groups"]),
        (&Value::Null, &Value::Null)
    );
    second.terminate(Duration::from_secs(10));
}

/// Runs `datascale ARGS` against `manager` with the admin token.
fn datascale(manager: &Node, home: &Path, args: &[&str]) -> std::process::Output {
    let url = manager.api_url("");
    let mut all = args.to_vec();
    all.extend(["--url", &url, "--token", ADMIN]);
    run(home, &all, &[])
}

fn stdout_of(output: &std::process::Output, code: i32) -> String {
    assert_eq!(
        output.status.code(),
        Some(code),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn enrollment_tokens_are_made_listed_and_revoked_from_the_command_line() {
    let dir = home();
    let manager_home = dir.path().join("manager");
    let manager = manager_at(&manager_home, "127.0.0.1:0");
    let home = dir.path();

    let printed = stdout_of(
        &datascale(
            &manager,
            home,
            &[
                "enrollment-token",
                "create",
                "--groups",
                "edge,web",
                "--max-uses",
                "2",
                "--description",
                "racks 1-4",
            ],
        ),
        0,
    );
    assert!(printed.contains("groups edge,web"), "{printed}");
    assert!(printed.contains("at most 2 use(s)"), "{printed}");
    let secret = printed
        .lines()
        .find_map(|line| line.strip_prefix("token: "))
        .unwrap_or_else(|| panic!("no secret in {printed}"))
        .to_owned();
    let created: Value = serde_json::from_str(&stdout_of(
        &datascale(
            &manager,
            home,
            &[
                "enrollment-token",
                "create",
                "--all-groups",
                "--expires-at",
                "2099-01-01T00:00:00Z",
                "-o",
                "json",
            ],
        ),
        0,
    ))
    .unwrap();
    let all_id = created["id"].as_str().unwrap();
    assert_eq!(created["groups"], Value::Null);
    assert_eq!(created["expires_at"], "2099-01-01T00:00:00Z");

    // The secret printed enrolls a worker in its groups.
    let enrolled = Api::with_token(&manager, &secret)
        .post("/api/v1/workers/enroll", &identity("w-cli", &["web"]))
        .await;
    assert_eq!(enrolled.status, 201, "{}", enrolled.body);

    let table = stdout_of(&datascale(&manager, home, &["enrollment-token", "list"]), 0);
    let header = table.lines().next().unwrap();
    for column in [
        "ID",
        "GROUPS",
        "USES",
        "EXPIRES",
        "STATE",
        "CREATED",
        "DESCRIPTION",
    ] {
        assert!(header.contains(column), "{table}");
    }
    let row = table
        .lines()
        .find(|line| line.contains("racks 1-4"))
        .unwrap();
    for cell in ["groups edge,web", "1/2", "never", "active"] {
        assert!(row.contains(cell), "`{cell}` not in {row}");
    }
    assert!(!table.contains(&secret), "{table}");
    let listed: Value = serde_json::from_str(&stdout_of(
        &datascale(&manager, home, &["enrollment-token", "list", "-o", "json"]),
        0,
    ))
    .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");

    let revoked = stdout_of(
        &datascale(&manager, home, &["enrollment-token", "revoke", all_id]),
        0,
    );
    assert!(
        revoked.contains(&format!("revoked enrollment token `{all_id}`")),
        "{revoked}"
    );
    // Revoked already: not found (4); not an id: refused (1); a token for
    // some groups and for all at once: wrong usage (2).
    stdout_of(
        &datascale(&manager, home, &["enrollment-token", "revoke", all_id]),
        4,
    );
    stdout_of(
        &datascale(&manager, home, &["enrollment-token", "revoke", "nope"]),
        1,
    );
    stdout_of(
        &datascale(
            &manager,
            home,
            &[
                "enrollment-token",
                "create",
                "--groups",
                "a",
                "--all-groups",
            ],
        ),
        2,
    );
    let past = datascale(
        &manager,
        home,
        &[
            "enrollment-token",
            "create",
            "--all-groups",
            "--expires-at",
            "2001-01-01T00:00:00Z",
        ],
    );
    stdout_of(&past, 1);
    assert!(String::from_utf8_lossy(&past.stderr).contains("has passed"));
    manager.terminate(Duration::from_secs(10));
}
