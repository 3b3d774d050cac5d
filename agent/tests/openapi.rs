//! The OpenAPI document at `/api/v1/openapi.json`: it validates as OpenAPI 3
//! (`openapi-spec-validator`), every route it lists is served with exactly
//! the methods it lists, and schemathesis, fuzzing the API from it, gets no
//! 5xx (`schemathesis_hooks.py` tells it how to send NDJSON). The Python
//! tools come from `agent/tests/requirements.txt`, which
//! `scripts/test.sh` installs and points `TEST_TOOLS_BIN` at.

mod support;

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use support::{Api, home, run_tool, run_tool_successfully, start, tool};

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

#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_no_server_error() {
    let dir = home();
    let node = start(dir.path(), &[]);
    let api = Api::admin(&node, dir.path());
    let mut schemathesis = tool("schemathesis");
    schemathesis
        .current_dir(dir.path())
        .args(["run", &node.api_url("/api/v1/openapi.json")])
        .args(["--header", &format!("Authorization: Bearer {}", api.token)])
        .args(["--checks", "not_a_server_error"])
        .args(["--max-examples", "25"])
        .env("NO_COLOR", "1")
        .env(
            "SCHEMATHESIS_HOOKS",
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/schemathesis_hooks.py"),
        );
    let output = run_tool(schemathesis);
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{report}");
    // Every operation schemathesis read from the document was fuzzed.
    let count = |label: &str| {
        let line = report.lines().find(|line| line.trim().starts_with(label));
        line.and_then(|line| line.rsplit(' ').next())
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("no `{label}` in {report}"))
    };
    let selected = count("Selected:");
    let tested = count("Tested:");
    let (chosen, total) = selected.split_once('/').unwrap();
    assert_eq!((chosen, tested.as_str()), (total, total), "{report}");
    node.terminate(Duration::from_secs(10));
}
