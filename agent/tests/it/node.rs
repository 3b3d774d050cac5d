//! A node as an operator runs it: each mode starts on loopback, answers
//! health, protects its API with tokens, and stops cleanly on SIGTERM.

use std::{os::unix::fs::PermissionsExt, time::Duration};

use crate::support::{self, home, repository, run, start, stderr, stdout, token_file};

async fn get_json(url: &str, token: Option<&str>) -> (u16, serde_json::Value) {
    let mut request = reqwest::Client::new().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn every_mode_serves_health_and_exits_0_on_sigterm() {
    let worker_env = [
        (
            "DATASCALE_SERVICE_WORKER_MANAGER_ADDRESS",
            "http://127.0.0.1:9",
        ),
        ("DATASCALE_SERVICE_WORKER_TOKEN", "enroll-secret"),
    ];
    for (mode, extra) in [
        ("standalone", &[][..]),
        ("manager", &[][..]),
        ("worker", &worker_env[..]),
    ] {
        let dir = home();
        let mut env = vec![("DATASCALE_SERVICE_MODE", mode)];
        env.extend_from_slice(extra);
        let node = start(dir.path(), &env);
        let (status, health) = get_json(&node.api_url("/api/v1/health"), None).await;
        assert_eq!(status, 200);
        assert_eq!(health["status"], "ok");
        assert_eq!(health["mode"], mode);
        assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(
            node.ui.is_some(),
            mode != "worker",
            "{mode}: UI only on a manager"
        );
        let (exit, took) = node.terminate(Duration::from_secs(10));
        assert!(exit.success(), "{mode}: exit {exit:?}");
        assert!(took < Duration::from_secs(5), "{mode}: took {took:?}");
    }
}

#[tokio::test]
async fn the_web_ui_answers_and_serves_the_api_on_its_own_origin() {
    let dir = home();
    let node = start(dir.path(), &[]);
    let ui = node.ui.expect("standalone serves the UI");
    let page = reqwest::get(format!("http://{ui}/")).await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(page.text().await.unwrap().contains("DataScale"));
    let (status, health) = get_json(&format!("http://{ui}/api/v1/health"), None).await;
    assert_eq!((status, health["mode"].as_str()), (200, Some("standalone")));
}

#[tokio::test]
async fn tokens_are_generated_once_as_0600_files_and_guard_the_api() {
    let dir = home();
    let node = start(dir.path(), &[]);
    let admin = std::fs::read_to_string(token_file(dir.path(), "admin")).unwrap();
    let admin = admin.trim().to_owned();
    let worker = std::fs::read_to_string(token_file(dir.path(), "worker")).unwrap();
    for kind in ["admin", "worker"] {
        let mode = std::fs::metadata(token_file(dir.path(), kind))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{kind} token file");
    }
    let shown = node.early_output.join("\n");
    assert!(
        shown.contains(&admin),
        "the admin token is shown once at its generation"
    );

    let status_url = node.api_url("/api/v1/status");
    let (status, body) = get_json(&status_url, None).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "unauthorized");
    assert_eq!(get_json(&status_url, Some("not-the-token")).await.0, 401);
    let (status, body) = get_json(&status_url, Some(&admin)).await;
    assert_eq!(status, 200);
    assert_eq!(body["mode"], "standalone");
    assert_eq!(body["worker"]["groups"][0], "default");

    let api = node.api;
    let (exit, _) = node.terminate(Duration::from_secs(10));
    assert!(exit.success());

    let again = start(dir.path(), &[]);
    assert!(
        !again.early_output.join("\n").contains(&admin),
        "a restart reuses the tokens without showing them again"
    );
    assert_eq!(
        std::fs::read_to_string(token_file(dir.path(), "admin"))
            .unwrap()
            .trim(),
        admin
    );
    assert_eq!(
        std::fs::read_to_string(token_file(dir.path(), "worker")).unwrap(),
        worker
    );
    assert_eq!(
        get_json(&again.api_url("/api/v1/status"), Some(&admin))
            .await
            .0,
        200
    );
    assert_ne!(api, again.api, "ephemeral ports");
}

#[test]
fn status_asks_the_local_node_with_the_stored_token() {
    let dir = home();
    let node = start(dir.path(), &[("DATASCALE_SERVICE_CLUSTER_NAME", "lab")]);
    let url = format!("http://{}", node.api);
    let output = run(dir.path(), &["status", "--url", &url], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.contains("running as standalone in cluster lab"),
        "{text}"
    );
    assert!(text.contains(&format!("pid {}", node.child.id())), "{text}");

    let output = run(dir.path(), &["status", "--url", &url, "-o", "json"], &[]);
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["cluster_name"], "lab");

    let output = run(
        dir.path(),
        &["status", "--url", &url, "--token", "wrong"],
        &[],
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("refused the token"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn status_says_when_no_node_is_running() {
    let dir = home();
    let output = run(
        dir.path(),
        &["status", "--url", "http://127.0.0.1:9", "--token", "x"],
        &[],
    );
    assert_eq!(output.status.code(), Some(3));
    assert!(stderr(&output).contains("cannot reach the DataScale API at http://127.0.0.1:9"));
}

#[test]
fn a_second_start_on_a_busy_port_names_the_address() {
    let dir = home();
    let node = start(dir.path(), &[]);
    let other = home();
    let busy = node.api.to_string();
    let output = support::command(other.path())
        .arg("start")
        .env("DATASCALE_SERVICE_ADDRESS", &busy)
        .env("DATASCALE_SERVICE_UI_ADDRESS", "127.0.0.1:0")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains(&format!("cannot listen on {busy} (service.address)")),
        "{err}"
    );
    assert!(err.contains("in use"), "{err}");
}

#[test]
fn the_manager_mode_of_the_issue_serves_health_on_its_address() {
    // DATASCALE_SERVICE_MODE=manager DATASCALE_SERVICE_ADDRESS=127.0.0.1:<port> datascale start
    let port = support::free_address().port();
    let address = format!("127.0.0.1:{port}");
    let dir = home();
    let node = start(
        dir.path(),
        &[
            ("DATASCALE_SERVICE_MODE", "manager"),
            ("DATASCALE_SERVICE_ADDRESS", &address),
        ],
    );
    assert_eq!(node.api.to_string(), address);
}

#[test]
fn config_check_shows_origins_and_refuses_unknown_variables() {
    let dir = home();
    std::fs::create_dir(dir.path().join("config")).unwrap();
    std::fs::write(
        dir.path().join("config/datascale.toml"),
        "[service]\nmode = \"manager\"\ncluster_name = \"file\"\n[resources]\ncpu_quota = 50\n[service.manager]\nadmin_token = \"s3cret-from-file\"\n",
    )
    .unwrap();
    let output = run(
        dir.path(),
        &["config", "check", "--set", "resources.cpu_quota=150"],
        &[
            ("DATASCALE_SERVICE_CLUSTER_NAME", "env"),
            ("DATASCALE_RESOURCES_CPU_QUOTA", "100"),
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    let row = |key: &str| {
        text.lines()
            .find(|line| line.split_whitespace().next() == Some(key))
            .unwrap_or_else(|| panic!("no row for {key} in\n{text}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        row("service.mode")[1..],
        [
            "manager",
            "file",
            &dir.path()
                .join("config/datascale.toml")
                .display()
                .to_string()
        ]
    );
    assert_eq!(
        row("service.cluster_name")[1..],
        ["env", "env", "DATASCALE_SERVICE_CLUSTER_NAME"]
    );
    assert_eq!(row("resources.cpu_quota")[1..3], ["150", "flag"]);
    assert_eq!(row("log.level")[1..], ["info", "default"]);
    assert_eq!(row("service.manager.admin_token")[1], "<redacted>");
    assert!(!text.contains("s3cret-from-file"));

    let output = run(
        dir.path(),
        &["config", "check"],
        &[("DATASCALE_SERVICE_NO_SUCH_KEY", "1")],
    );
    assert_eq!(output.status.code(), Some(78));
    assert!(stderr(&output).contains("unknown environment variable DATASCALE_SERVICE_NO_SUCH_KEY"));

    let output = run(
        dir.path(),
        &["start"],
        &[("DATASCALE_SERVICE_ADDRESS", "nowhere")],
    );
    assert_eq!(
        output.status.code(),
        Some(78),
        "start refuses a bad value before binding anything"
    );
    assert!(
        stderr(&output).contains("service.address = `nowhere` (env DATASCALE_SERVICE_ADDRESS)")
    );
}

#[test]
fn the_shipped_configuration_is_valid_and_documents_every_key() {
    let shipped = repository().join("config/datascale.toml");
    let dir = home();
    let output = run(
        dir.path(),
        &["config", "check", "--config", shipped.to_str().unwrap()],
        &[],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let text = std::fs::read_to_string(&shipped).unwrap();
    let keys = run(dir.path(), &["config", "keys"], &[]);
    for line in stdout(&keys).lines().skip(1) {
        let key = line.split_whitespace().next().unwrap();
        let leaf = key.rsplit('.').next().unwrap();
        assert!(
            text.contains(&format!("# {leaf} = ")),
            "{key} is not documented in config/datascale.toml"
        );
    }
}

#[test]
fn version_prints_the_crate_version() {
    let output = run(&std::env::temp_dir(), &["version"], &[]);
    assert_eq!(
        stdout(&output).trim(),
        format!("datascale {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn log_file_receives_the_log_named_by_date() {
    let dir = home();
    let port = support::free_address().port();
    let mut child = support::command(dir.path())
        .arg("start")
        .env("DATASCALE_SERVICE_ADDRESS", format!("127.0.0.1:{port}"))
        .env("DATASCALE_SERVICE_UI_ADDRESS", "127.0.0.1:0")
        .env("DATASCALE_LOG_FILE", "logs/datascale.log")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let logs = dir.path().join("logs");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let text = loop {
        let text: String = std::fs::read_dir(&logs)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|entry| {
                entry
                    .file_name()
                    .to_string_lossy()
                    .starts_with("datascale.log.")
            })
            .map(|entry| std::fs::read_to_string(entry.path()).unwrap_or_default())
            .collect();
        if text.contains("DataScale started.") {
            break text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no start line in {} within 30 s",
            logs.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = child.kill();
    let output = child.wait_with_output().unwrap();
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(!text.contains("\u{1b}["), "no terminal colours in a file");
    assert!(
        stderr(&output).contains("Logging to "),
        "{}",
        stderr(&output)
    );
}
