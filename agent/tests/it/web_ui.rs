//! The Web UI in a real headless Chromium, against a real manager with two
//! real workers on loopback: log in (and a refused token), the dashboard's
//! counts, create a group, assign a worker to it, save a dataflow with an
//! error and see the error at its path, fix it and watch the worker run
//! it, see its graph, restore an older revision, search an event set, log
//! out; and, on the enrollment page, make an enrollment token (its secret
//! shown once), see it listed and revoke it. The browser's console must
//! stay free of errors. On failure a test keeps its directory with a
//! screenshot and the console log, and prints where.

use std::{sync::Arc, time::Duration};

use serde_json::{Value, json};

use crate::support::{
    self, ADMIN, Api, ENROLL,
    browser::{Browser, ENTER},
    eventually, home, ingest, ndjson, start_manager, worker,
};

const WAIT: Duration = Duration::from_secs(30);

/// The dataflow the test edits: a demo source into a blackhole sink that
/// takes `input`.
fn web_flow(input: &str, interval_secs: f64) -> String {
    serde_json::to_string_pretty(&json!({
        "name": "web_flow",
        "sources": [{"name": "gen", "type": "demo", "conf": {"interval_secs": interval_secs}}],
        "sinks": [{"name": "out", "type": "blackhole", "inputs": [input]}]
    }))
    .unwrap()
}

/// Replaces the text of the dataflow editor, as typing would.
async fn set_document(browser: &Browser, text: &str) {
    browser
        .execute(
            "const area = document.getElementById('document');
             area.value = arguments[0];
             area.dispatchEvent(new Event('input'));",
            json!([text]),
        )
        .await;
}

/// The text of every element matching `css`, in order.
async fn texts(browser: &Browser, css: &str) -> Vec<String> {
    let mut found = Vec::new();
    for element in browser.all(css).await {
        found.push(element.text().await.unwrap_or_default());
    }
    found
}

/// Console entries that are errors, except the answers the test provokes
/// on purpose: 401 for the refused token, 400 for the invalid dataflow.
fn unexpected_errors(console: &[Value]) -> Vec<&Value> {
    console
        .iter()
        .filter(|entry| entry["level"] == "SEVERE")
        .filter(|entry| {
            let message = entry["message"].as_str().unwrap_or_default();
            let provoked = entry["source"] == "network"
                && ((message.contains("/api/v1/overview ") && message.contains("status of 401"))
                    || (message.contains("/api/v1/dataflows/validate ")
                        && message.contains("status of 400")));
            !provoked
        })
        .collect()
}

/// Stores `events` in the event set `set`.
async fn store(api: &Api, set: &str, events: &[Value]) {
    let answer = ingest(api, set, ndjson(events), &[]).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_runs_the_cluster_from_the_web_ui() {
    let mut dir = home();
    let manager = start_manager(&dir.path().join("manager"), &[]);
    let api = Api::with_token(&manager, ADMIN);
    let created = api
        .post(
            "/api/v1/groups",
            &json!({"name": "another_group", "description": "the second group"}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let put = api
        .put(
            "/api/v1/groups/default/dataflows/default_dataflow",
            &serde_json::from_str(&web_flow("gen", 0.5).replace("web_flow", "default_dataflow"))
                .unwrap(),
        )
        .await;
    assert_eq!(put.status, 201, "{}", put.body);
    let _worker1 = worker(
        &dir.path().join("w1"),
        "worker1",
        &manager,
        "default",
        ENROLL,
    );
    let _worker2 = worker(
        &dir.path().join("w2"),
        "worker2",
        &manager,
        "another_group",
        ENROLL,
    );
    // 30 events, one a second, the newest with the highest number.
    let events: Vec<Value> = (0..30)
        .map(|n| {
            json!({"timestamp": format!("2026-11-23T10:00:{n:02}Z"), "host": "worker1",
                   "message": format!("login failed for user{n}"), "n": n})
        })
        .collect();
    store(&api, "web_events", &events).await;
    store(
        &api,
        "web_events",
        &[json!({"timestamp": "2026-11-23T10:01:00Z", "host": "worker2", "message": "all good"})],
    )
    .await;

    let browser = Arc::new(Browser::start(1366, 768).await);
    let ui = format!("http://{}", manager.ui.expect("a manager serves the UI"));
    let result = tokio::spawn({
        let browser = browser.clone();
        let api = Api::with_token(&manager, ADMIN);
        async move { scenario(&browser, &ui, &api).await }
    })
    .await;
    keep_evidence_of(result, &browser, &mut dir).await;
}

/// On a failed scenario, keeps `dir` with a screenshot and the console
/// log, says where, and fails the test.
async fn keep_evidence_of(
    result: Result<(), tokio::task::JoinError>,
    browser: &Browser,
    dir: &mut tempfile::TempDir,
) {
    if let Err(failure) = result {
        dir.disable_cleanup(true);
        let kept = dir.path();
        let screenshot = browser.keep_evidence(kept).await;
        eprintln!(
            "The Web UI test failed; its screenshot is {} and the console log {}.",
            screenshot.display(),
            kept.join("console.json").display()
        );
        std::panic::resume_unwind(failure.into_panic());
    }
}

async fn scenario(browser: &Browser, ui: &str, api: &Api) {
    let mut console = Vec::new();

    // Log in: a wrong token is refused and says so; the admin token, typed
    // and submitted with Enter, opens the dashboard.
    browser.goto(ui).await;
    let token = browser.find("#token").await;
    token.type_text(&format!("not-the-token{ENTER}")).await;
    browser.text_with("#login-error", &["refused"]).await;
    token.type_text(&format!("{ADMIN}{ENTER}")).await;

    // The dashboard: one manager, two online workers, two groups, one
    // dataflow of two components.
    browser.text_with("#stat-workers", &["2", "2 online"]).await;
    for (stat, value) in [
        ("#stat-managers", "1"),
        ("#stat-groups", "2"),
        ("#stat-dataflows", "1"),
        ("#stat-components", "2"),
    ] {
        let text = browser.text_with(stat, &[]).await;
        let shown = text.lines().nth(1).unwrap_or_default();
        assert_eq!(shown, value, "{stat}: {text}");
    }
    browser.text_with("#top-cpu", &["worker1", "worker2"]).await;
    console.extend(browser.console().await);

    // Create a group from the groups page, submitting with Enter.
    browser.click("nav a[href='#/groups']").await;
    browser.find("#group-name").await.type_text("edge").await;
    browser
        .find("#group-description")
        .await
        .type_text(&format!("edge routers{ENTER}"))
        .await;
    browser.text_with("main h1", &["Group edge"]).await;
    let edge = api.get("/api/v1/groups/edge").await;
    assert_eq!(edge.body["description"], "edge routers", "{}", edge.body);

    // Assign worker2 to `edge` as well, from the workers page.
    browser.click("nav a[href='#/workers']").await;
    browser
        .click("tr[data-worker='worker2'] td:last-child button:first-child")
        .await;
    browser.click("dialog input[value='edge']").await;
    browser.click("dialog button[value='assign']").await;
    browser
        .text_with(
            "tr[data-worker='worker2'] td:nth-child(3)",
            &["another_group, edge", "assigned on the manager"],
        )
        .await;

    // A new dataflow with an input that names nothing: the server's error
    // is listed with its path and marks the line of that input.
    browser.goto(&format!("{ui}/#/groups/edge/new")).await;
    browser.find("#document").await;
    let broken = web_flow("nowhere", 0.2);
    set_document(browser, &broken).await;
    browser.click("#save").await;
    let problem = browser
        .text_with(
            "#problems li[data-path='sinks[0].inputs[0]']",
            &["no component named `nowhere`"],
        )
        .await;
    let line = broken
        .lines()
        .position(|l| l.contains("\"nowhere\""))
        .unwrap()
        + 1;
    assert!(problem.contains(&format!("line {line}")), "{problem}");
    let marked = texts(browser, ".editor .gutter .marked").await;
    assert_eq!(marked, [line.to_string()]);
    assert!(browser.all("dialog").await.is_empty(), "nothing to review");

    // Fixed, reviewed and created: worker2 runs it.
    set_document(browser, &web_flow("gen", 0.2)).await;
    browser.click("#save").await;
    browser
        .text_with("dialog .diff", &["+   \"name\": \"web_flow\""])
        .await;
    browser.click("dialog button[value='save']").await;
    browser.at("#/groups/edge/dataflows/web_flow").await;
    let first = eventually(WAIT, "web_flow stored", || async {
        api.get("/api/v1/groups/edge/dataflows/web_flow").await.body["revision"].as_u64()
    })
    .await;
    browser.click("nav a[href='#/workers']").await;
    let running = browser
        .text_with(
            "tr[data-worker='worker2'] li[data-dataflow='edge/web_flow']",
            &["running", &format!("rev {first}")],
        )
        .await;
    assert!(!running.contains("wanted"), "{running}");
    assert!(
        browser
            .all("tr[data-worker='worker1'] li[data-dataflow='edge/web_flow']")
            .await
            .is_empty(),
        "worker1 is not in edge"
    );

    // A second revision, saved after its diff, then the first restored
    // from the history.
    browser
        .goto(&format!("{ui}/#/groups/edge/dataflows/web_flow"))
        .await;
    browser
        .text_with("#revision", &[&format!("revision {first}")])
        .await;

    // Its graph: the source, an arrow, the sink, and the one worker that
    // reports it.
    browser.click("#tab-graph").await;
    browser.text_with("#graph-caption", &["1 worker(s)"]).await;
    assert_eq!(
        texts(browser, "#panel-graph .node .name").await,
        ["gen", "out"]
    );
    assert_eq!(browser.all("#panel-graph path.edge").await.len(), 1);
    browser.click("#tab-editor").await;
    set_document(browser, &web_flow("gen", 0.3)).await;
    browser.click("#save").await;
    browser.text_with("dialog .diff", &["0.3"]).await;
    browser.click("dialog button[value='save']").await;
    let saved = browser.text_with("#saved", &["Saved as revision"]).await;
    let second = api.get("/api/v1/groups/edge/dataflows/web_flow").await;
    let second_revision = second.body["revision"].as_u64().unwrap();
    assert!(saved.contains(&second_revision.to_string()), "{saved}");
    assert_eq!(
        second.body["document"]["sources"][0]["conf"]["interval_secs"],
        0.3
    );
    browser.click("#tab-history").await;
    browser
        .click(&format!("tr[data-revision='{first}'] button"))
        .await;
    browser.text_with("dialog .diff", &["0.2"]).await;
    browser.click("dialog button[value='restore']").await;
    browser
        .text_with("#panel-history", &[&format!("restore of revision {first}")])
        .await;
    let restored = api.get("/api/v1/groups/edge/dataflows/web_flow").await.body;
    assert_eq!(
        restored["document"]["sources"][0]["conf"]["interval_secs"],
        0.2
    );
    assert!(restored["revision"].as_u64().unwrap() > second_revision);
    let editor = browser
        .execute(
            "return document.getElementById('document').value;",
            json!([]),
        )
        .await;
    assert!(editor.as_str().unwrap().contains("0.2"), "{editor}");
    console.extend(browser.console().await);

    // Search an event set: matching events newest first, a page at a
    // time; an event expands to its JSON.
    browser.click("nav a[href='#/events']").await;
    browser.find("#set option[value='web_events']").await;
    browser
        .execute(
            "document.getElementById('from').value = ''; document.getElementById('limit').value = '20';",
            json!([]),
        )
        .await;
    browser
        .find("#query")
        .await
        .type_text(&format!("failed{ENTER}"))
        .await;
    browser
        .text_with("#results", &["Page 1: 20 event(s)"])
        .await;
    let summaries = texts(browser, "#results tr.event td.summary").await;
    assert_eq!(summaries.len(), 20);
    assert_eq!(summaries[0], "login failed for user29");
    assert_eq!(summaries[19], "login failed for user10");
    browser.click("#results tr.event button").await;
    browser
        .text_with("#results tr.detail:not([hidden]) pre", &["\"n\": 29"])
        .await;
    browser.click("#next-page").await;
    browser
        .text_with("#results", &["Page 2: 10 event(s)"])
        .await;
    let summaries = texts(browser, "#results tr.event td.summary").await;
    assert_eq!(summaries.first().unwrap(), "login failed for user9");
    assert_eq!(summaries.last().unwrap(), "login failed for user0");
    assert!(browser.all("#next-page").await.is_empty(), "the last page");

    // Watch the dataflow's source live, from its page: worker2's events
    // arrive through the manager, newest on top, until stopped.
    let workers = api.get("/api/v1/workers").await.body;
    let worker2 = workers
        .as_array()
        .unwrap()
        .iter()
        .find(|worker| worker["hostname"] == "worker2")
        .and_then(|worker| worker["id"].as_str())
        .unwrap()
        .to_owned();
    browser
        .goto(&format!("{ui}/#/groups/edge/dataflows/web_flow"))
        .await;
    browser.click("#open-tap").await;
    browser.at("#/tap/edge/web_flow").await;
    browser.find("#tap-component option[value='gen']").await;
    browser.click("#tap-start").await;
    browser
        .text_with(
            "#tap-status",
            &["Watching edge/web_flow/gen", "event(s) so far"],
        )
        .await;
    let shown_by = texts(browser, "#tap-events tr.tapped td:nth-child(2)").await;
    assert!(
        !shown_by.is_empty() && shown_by.iter().all(|worker| *worker == worker2),
        "{shown_by:?}"
    );
    browser.click("#tap-stop").await;
    browser.text_with("#tap-status", &["Stopped."]).await;
    console.extend(browser.console().await);

    // Log out: the token is forgotten.
    browser.click("#logout").await;
    browser.find("#token").await;
    let kept = browser
        .execute("return sessionStorage.length;", json!([]))
        .await;
    assert_eq!(kept, 0);

    console.extend(browser.console().await);
    let errors = unexpected_errors(&console);
    assert!(errors.is_empty(), "console errors: {errors:#?}");
}

/// A process as this test saw it: its id, and when it started, so that
/// another process given the same id later (the other tests of the binary
/// start processes all the time) is not taken for it.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Process {
    pid: u32,
    /// Clock ticks after boot (field 22 of `/proc/<pid>/stat`).
    started: u64,
}

impl Process {
    /// Process `pid` and its parent, while it runs; none once it has
    /// exited (or is a zombie waiting to be reaped).
    fn running(pid: u32) -> Option<(Self, u32)> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The fields after the command name, from the third (the state) on.
        let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split(' ').collect();
        if *fields.first()? == "Z" {
            return None;
        }
        let parent = fields.get(1)?.parse().ok()?;
        let started = fields.get(19)?.parse().ok()?;
        Some((Self { pid, started }, parent))
    }

    /// Whether this very process still runs.
    fn runs(&self) -> bool {
        Self::running(self.pid).is_some_and(|(now, _)| now == *self)
    }
}

/// The processes below `root`, children first found first: only those
/// `root` started, however many other processes run.
fn descendants(root: Process) -> Vec<Process> {
    let parents: Vec<(Process, u32)> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(Process::running)
        .collect();
    let mut found = vec![root];
    let mut next = 0;
    while next < found.len() {
        let parent = found[next].pid;
        found.extend(
            parents
                .iter()
                .filter(|(_, of)| *of == parent)
                .map(|(child, _)| *child),
        );
        next += 1;
    }
    found.split_off(1)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_closed_browser_leaves_no_process_behind() {
    let browser = Browser::start(800, 600).await;
    browser.goto("about:blank").await;
    let (driver, _) = Process::running(browser.driver_pid()).expect("chromedriver runs");
    let chromium = descendants(driver);
    assert!(!chromium.is_empty(), "chromedriver started no browser");
    drop(browser);
    support::wait_until(WAIT, "exit of every browser process", || {
        chromium
            .iter()
            .chain([&driver])
            .all(|process| !process.runs())
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_makes_and_revokes_an_enrollment_token_in_the_web_ui() {
    let mut dir = home();
    let manager = start_manager(&dir.path().join("manager"), &[]);
    let api = Api::with_token(&manager, ADMIN);
    let created = api.post("/api/v1/groups", &json!({"name": "edge"})).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let browser = Arc::new(Browser::start(1366, 768).await);
    let ui = format!("http://{}", manager.ui.expect("a manager serves the UI"));
    let result = tokio::spawn({
        let browser = browser.clone();
        let api = Api::with_token(&manager, ADMIN);
        async move { enrollment_scenario(&browser, &ui, &api).await }
    })
    .await;
    keep_evidence_of(result, &browser, &mut dir).await;
}

async fn enrollment_scenario(browser: &Browser, ui: &str, api: &Api) {
    browser.goto(ui).await;
    browser
        .find("#token")
        .await
        .type_text(&format!("{ADMIN}{ENTER}"))
        .await;
    browser.find("#stat-workers").await;
    browser.click("nav a[href='#/enrollment']").await;
    browser
        .text_with("main", &["No enrollment token yet"])
        .await;

    // A token for `edge`, for at most 3 workers: its secret is shown once.
    browser.click("#token-group-edge").await;
    browser.find("#token-max-uses").await.type_text("3").await;
    browser
        .find("#token-description")
        .await
        .type_text("edge racks")
        .await;
    browser.click("#create-token-button").await;
    let secret = browser.text_with("#new-token-secret", &["dse_"]).await;
    let tokens = api.get("/api/v1/enrollment_tokens").await.body;
    let id = tokens[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(tokens[0]["groups"], json!(["edge"]), "{tokens}");
    assert_eq!(tokens[0]["max_uses"], 3, "{tokens}");
    let row = browser
        .text_with(
            &format!("tr[data-token='{id}']"),
            &["edge racks", "0 of 3", "active"],
        )
        .await;
    assert!(row.contains("edge") && row.contains("never"), "{row}");
    // The secret the page showed enrolls a worker of `edge`.
    let identity = json!({"id": "w-web", "hostname": "web", "version": "1.0.0",
                          "groups": ["edge"], "address": "127.0.0.1:1"});
    let by_secret = Api {
        base: api.base.clone(),
        token: secret.trim().to_owned(),
        client: reqwest::Client::new(),
    };
    let enrolled = by_secret.post("/api/v1/workers/enroll", &identity).await;
    assert_eq!(enrolled.status, 201, "{}", enrolled.body);
    // Back on the page, the use is counted, and the secret is gone.
    browser.click("nav a[href='#/workers']").await;
    browser.at("#/workers").await;
    browser.click("nav a[href='#/enrollment']").await;
    browser
        .text_with(&format!("tr[data-token='{id}']"), &["1 of 3"])
        .await;
    assert!(
        browser.all("#new-token-secret").await.is_empty(),
        "the secret is not shown again"
    );

    // Revoked from its row.
    browser
        .click(&format!("tr[data-token='{id}'] button"))
        .await;
    browser.click("dialog button[value='yes']").await;
    browser
        .text_with("main", &["No enrollment token yet"])
        .await;
    assert_eq!(api.get("/api/v1/enrollment_tokens").await.body, json!([]));
    let errors: Vec<Value> = browser
        .console()
        .await
        .into_iter()
        .filter(|entry| entry["level"] == "SEVERE")
        .collect();
    assert!(errors.is_empty(), "console errors: {errors:#?}");
}
