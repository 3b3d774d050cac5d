//! The OpenAPI document at `/api/v1/openapi.json`: it validates as OpenAPI 3
//! (`openapi-spec-validator`), every route it lists is served with exactly
//! the methods it lists, and the document and the server agree: schemathesis,
//! with every check on and with each kind of credential, finds no request
//! the document allows that the server refuses, none it forbids that the
//! server takes, no 5xx and no answer off the document. `schemathesis.toml`
//! holds the few operations whose bodies no schema fully describes, with
//! why; `schemathesis_hooks.py` tells it how to send NDJSON and packages.
//! The Python tools come from `agent/tests/requirements.txt`, which
//! `scripts/test.sh` installs and points `TEST_TOOLS_BIN` at.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{
    self, Api, home, run_tool, run_tool_successfully, start, token, tool, whole_machine,
};

async fn document(api: &Api) -> Value {
    let answer = api.get("/api/v1/openapi.json").await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.body
}

#[tokio::test(flavor = "multi_thread")]
async fn the_document_is_valid_openapi_3() {
    let dir = home();
    let node = start(dir.path(), &[]);
    let api = Api::admin(&node, dir.path());
    let document = document(&api).await;
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, document.to_string()).unwrap();
    let mut validator = tool("openapi-spec-validator");
    validator.arg(&file);
    run_tool_successfully(validator);
    node.terminate(Duration::from_secs(10));
}

/// Whether an answer came from a route rather than the router's fallbacks.
fn routed(answer: &support::Answer) -> bool {
    let message = answer.body["error"]["message"].as_str().unwrap_or("");
    answer.status != 405 && !(answer.status == 404 && message.starts_with("no route for"))
}

#[tokio::test(flavor = "multi_thread")]
async fn every_documented_route_is_served_with_exactly_its_methods() {
    let dir = home();
    let node = start(dir.path(), &[]);
    let api = Api::admin(&node, dir.path());
    let document = document(&api).await;
    let paths = document["paths"].as_object().unwrap();
    let expected = [
        "/api/v1/health",
        "/api/v1/status",
        "/api/v1/openapi.json",
        "/metrics",
        "/api/v1/groups",
        "/api/v1/groups/{group}",
        "/api/v1/groups/{group}/dataflows",
        "/api/v1/groups/{group}/dataflows/{name}",
        "/api/v1/groups/{group}/dataflows/{name}/revisions",
        "/api/v1/groups/{group}/dataflows/{name}/revisions/{revision}",
        "/api/v1/groups/{group}/dataflows/{name}/revisions/{revision}/restore",
        "/api/v1/dataflows/validate",
        "/api/v1/overview",
        "/api/v1/overview/rates",
        "/api/v1/workers",
        "/api/v1/workers/{id}",
        "/api/v1/workers/{id}/groups",
        "/api/v1/workers/{id}/revoke",
        "/api/v1/workers/enroll",
        "/api/v1/heartbeat",
        "/api/v1/sync",
        "/api/v1/workers/enrollment_token/rotate",
        "/api/v1/event_sets",
        "/api/v1/event_sets/{name}/events",
        "/api/v1/event_sets/{name}/retention",
        "/api/v1/groups/{group}/dataflows/{name}/components/{component}/tap",
        "/api/v1/taps/{id}/events",
        "/api/v1/collectors",
        "/api/v1/collectors/{name}",
        "/api/v1/collectors/{name}/{version}",
        "/api/v1/collectors/{name}/{version}/package",
    ];
    for path in expected {
        assert!(paths.contains_key(path), "{path} is not documented");
    }
    let methods = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
    ];
    for (template, operations) in paths {
        // Names that exist nowhere, so that a walk changes nothing.
        let path = template
            .replace("{group}", "walk-group")
            .replace("{name}", "walk-flow")
            .replace("{revision}", "1")
            .replace("{version}", "1.0.0")
            .replace("{component}", "walk-component")
            .replace("{id}", "walk-worker");
        for method in &methods {
            let documented =
                operations
                    .get(method.as_str().to_lowercase())
                    .is_some_and(|operation| {
                        assert!(
                            operation["responses"]
                                .as_object()
                                .is_some_and(|r| !r.is_empty()),
                            "{method} {template} documents no response"
                        );
                        true
                    });
            let body =
                matches!(*method, Method::POST | Method::PUT | Method::PATCH).then(|| json!({}));
            // A revision nothing has: no write of the walk can succeed.
            let stale = [("If-Match", "\"999999\"")];
            let answer = api.send(method.clone(), &path, body.as_ref(), &stale).await;
            assert_eq!(
                routed(&answer),
                documented,
                "{method} {path}: documented {documented}, answered {} {}",
                answer.status,
                answer.body
            );
        }
    }
    let groups = api.get("/api/v1/groups").await.body;
    assert_eq!(
        groups.as_array().unwrap().len(),
        1,
        "the walk changed nothing"
    );
    node.terminate(Duration::from_secs(10));
}

/// The seed of the schemathesis runs: fixed, so that a run is the same
/// everywhere; `SCHEMATHESIS_SEED` picks another to explore.
fn seed() -> String {
    std::env::var("SCHEMATHESIS_SEED").unwrap_or_else(|_| "1".to_owned())
}

/// The worker the runs enroll, whose id the operations of workers are
/// given (`FUZZ_WORKER_ID` in `schemathesis.toml`).
const WORKER_ID: &str = "fuzz-worker";

/// Who a schemathesis run is.
#[derive(Debug, Clone, Copy)]
enum Credential {
    /// The admin token: every operation.
    Admin,
    /// An enrolled worker's own credential.
    Worker,
    /// The enrollment token.
    Enrollment,
}

impl Credential {
    /// The operations this credential is for; none: all of them. The
    /// others refuse it before they read anything (`api::admit`).
    fn operations(self) -> &'static [&'static str] {
        match self {
            Credential::Admin => &[],
            Credential::Worker => &[
                "heartbeat",
                "sync",
                "tapped_events",
                "ingest_events",
                "download_collector_package",
            ],
            Credential::Enrollment => &[
                "enroll_worker",
                "heartbeat",
                "sync",
                "ingest_events",
                "download_collector_package",
            ],
        }
    }
}

/// Runs schemathesis with every check on against a node, as `credential`,
/// and fails with its report unless it finds nothing.
async fn schemathesis_finds_nothing_as(credential: Credential) {
    let _machine = whole_machine();
    let dir = home();
    let node = start(dir.path(), &[]);
    let admin = Api::admin(&node, dir.path());
    let enrollment = Api::with_token(&node, &token(dir.path(), "worker"));
    let identity = json!({
        "id": WORKER_ID,
        "hostname": "fuzz-host",
        "version": env!("CARGO_PKG_VERSION"),
        "groups": ["default"],
        "address": "127.0.0.1:7881",
    });
    let enrolled = enrollment.post("/api/v1/workers/enroll", &identity).await;
    assert_eq!(enrolled.status, 201, "{}", enrolled.body);
    let token = match credential {
        Credential::Admin => admin.token.clone(),
        Credential::Worker => enrolled.body["credential"].as_str().unwrap().to_owned(),
        Credential::Enrollment => enrollment.token.clone(),
    };
    let mut schemathesis = tool("schemathesis");
    schemathesis
        .current_dir(dir.path())
        .args([
            "--config-file",
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/schemathesis.toml"),
        ])
        .args(["run", &node.api_url("/api/v1/openapi.json")])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(["--checks", "all"])
        .args(["--max-examples", "50"])
        .args(["--seed", &seed()])
        .env("NO_COLOR", "1")
        .env("FUZZ_WORKER_ID", WORKER_ID)
        .env(
            "SCHEMATHESIS_HOOKS",
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/schemathesis_hooks.py"),
        );
    for operation in credential.operations() {
        schemathesis.args(["--include-operation-id", operation]);
    }
    let output = run_tool(schemathesis);
    let report = format!(
        "{credential:?}, seed {}:\n{}{}",
        seed(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{report}");
    // Every operation chosen was tested.
    let count = |label: &str| {
        let line = report.lines().find(|line| line.trim().starts_with(label));
        line.and_then(|line| line.rsplit(' ').next())
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("no `{label}` in {report}"))
    };
    let selected = count("Selected:");
    let tested = count("Tested:");
    let (chosen, total) = selected.split_once('/').unwrap();
    let expected = match credential.operations().len() {
        0 => total.to_owned(),
        some => some.to_string(),
    };
    assert_eq!(chosen, expected, "{report}");
    assert_eq!(tested, chosen, "{report}");
    node.terminate(Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_nothing_with_an_admin_token() {
    schemathesis_finds_nothing_as(Credential::Admin).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_nothing_with_a_worker_credential() {
    schemathesis_finds_nothing_as(Credential::Worker).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_nothing_with_the_enrollment_token() {
    schemathesis_finds_nothing_as(Credential::Enrollment).await;
}
