//! The management commands (`group`, `dataflow`, `worker`) against a real
//! manager: what they print, what `-o json` gives scripts, their exit codes,
//! and where they find the node and its token (flags, `DATASCALE_URL` and
//! `DATASCALE_TOKEN`, or the local configuration and data directory).

mod support;

use std::{
    io::Write,
    path::Path,
    process::{Output, Stdio},
};

use serde_json::{Value, json};
use support::{Node, home, run, start};

/// A manager started in a temporary install directory.
struct Manager {
    dir: tempfile::TempDir,
    node: Node,
    token: String,
}

impl Manager {
    fn start() -> Self {
        let dir = home();
        let node = start(dir.path(), &[("DATASCALE_SERVICE_MODE", "manager")]);
        let token = std::fs::read_to_string(support::token_file(dir.path(), "admin"))
            .unwrap()
            .trim()
            .to_owned();
        Self { dir, node, token }
    }

    fn url(&self) -> String {
        self.node.api_url("")
    }

    fn home(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `datascale ARGS --url … --token …` in the manager's home.
    fn datascale(&self, args: &[&str]) -> Output {
        let url = self.url();
        let mut all = args.to_vec();
        all.extend(["--url", &url, "--token", &self.token]);
        run(self.home(), &all, &[])
    }

    /// Runs `datascale ARGS --url … --token …` with `input` on standard input.
    fn datascale_with_input(&self, args: &[&str], input: &str) -> Output {
        let mut child = support::command(self.home())
            .args(args)
            .args(["--url", &self.url(), "--token", &self.token])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("datascale runs");
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input.as_bytes()).unwrap();
        drop(stdin);
        child.wait_with_output().unwrap()
    }
}

/// Standard output of a command that must succeed.
fn succeeded(output: &Output) -> String {
    assert!(
        output.status.success(),
        "exit {:?}; stderr: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

/// Standard error of a command that must exit with `code`.
fn failed(output: &Output, code: i32) -> String {
    let stderr = String::from_utf8(output.stderr.clone()).unwrap();
    assert_eq!(
        output.status.code(),
        Some(code),
        "stdout: {}\nstderr: {stderr}",
        String::from_utf8_lossy(&output.stdout)
    );
    stderr
}

fn json_of(output: &Output) -> Value {
    let stdout = succeeded(output);
    serde_json::from_str(&stdout).unwrap_or_else(|err| panic!("{err}: {stdout}"))
}

/// A dataflow document as YAML, and the same as JSON.
fn flow_yaml(name: &str, count: u64) -> (String, Value) {
    let yaml = format!(
        "name: {name}
sources:
  - name: gen
    type: demo
    conf: {{count: {count}, interval_secs: 3600}}
sinks:
  - name: out
    type: blackhole
    inputs: [gen]
"
    );
    let json = json!({
        "name": name,
        "sources": [{"name": "gen", "type": "demo", "conf": {"count": count, "interval_secs": 3600}}],
        "sinks": [{"name": "out", "type": "blackhole", "inputs": ["gen"]}]
    });
    (yaml, json)
}

/// `written` says `outcome` and names a revision; returns it.
fn revision_in(written: &str, outcome: &str) -> u64 {
    assert!(written.starts_with(outcome), "{written}");
    let (_, after) = written.split_once("(revision ").expect(written);
    after[..after.find(')').unwrap()].parse().unwrap()
}

#[test]
fn groups_are_created_listed_and_deleted() {
    let manager = Manager::start();
    let created =
        succeeded(&manager.datascale(&["group", "create", "edge", "--description", "edge hosts"]));
    assert!(
        created.starts_with("created group `edge` (revision "),
        "{created}"
    );

    let listed = succeeded(&manager.datascale(&["group", "list"]));
    let lines: Vec<_> = listed.lines().collect();
    assert!(
        lines[0].starts_with("NAME     DESCRIPTION  ")
            && lines[0].contains("  DATAFLOWS  REVISION  UPDATED"),
        "{listed}"
    );
    // Columns line up under their headers.
    let column = lines[0].find("DATAFLOWS").unwrap();
    assert!(lines[1].starts_with("default  "), "{listed}");
    assert_eq!(
        lines[2][..column + 1],
        format!("{:column$}0", "edge     edge hosts"),
        "{listed}"
    );
    assert_eq!(lines.len(), 3, "{listed}");

    let shown = succeeded(&manager.datascale(&["group", "get", "edge"]));
    assert!(
        shown.lines().nth(1).unwrap().contains("edge hosts"),
        "{shown}"
    );

    let duplicate = manager.datascale(&["group", "create", "edge"]);
    let stderr = failed(&duplicate, 5);
    assert!(
        stderr.starts_with("error: a group named `edge` already exists"),
        "{stderr}"
    );

    succeeded(&manager.datascale(&["group", "delete", "edge"]));
    let missing = manager.datascale(&["group", "delete", "edge"]);
    assert_eq!(failed(&missing, 4), "error: no group named `edge`\n");
    let missing = manager.datascale(&["group", "get", "edge", "-o", "json"]);
    failed(&missing, 4);
    assert_eq!(
        serde_json::from_slice::<Value>(&missing.stdout).unwrap()["error"]["code"],
        "not_found",
        "-o json prints the API's error too"
    );

    let groups = json_of(&manager.datascale(&["group", "list", "-o", "json"]));
    let names: Vec<_> = groups
        .as_array()
        .unwrap()
        .iter()
        .map(|g| &g["name"])
        .collect();
    assert_eq!(names, [&json!("default")]);
}

#[test]
fn dataflows_are_applied_read_revised_and_restored() {
    let manager = Manager::start();
    let dir = manager.home();
    let file = dir.join("tail.yaml");
    let file = file.to_str().unwrap();
    let (first_yaml, first) = flow_yaml("tail", 1);
    std::fs::write(file, first_yaml).unwrap();
    succeeded(&manager.datascale(&["group", "create", "edge"]));

    let created =
        succeeded(&manager.datascale(&["dataflow", "apply", "-f", file, "--group", "edge"]));
    let first_revision = revision_in(&created, "created dataflow `tail` in group `edge`");

    // `get` prints the document, which applies again unchanged.
    let got = manager.datascale(&["dataflow", "get", "tail", "--group", "edge"]);
    assert_eq!(json_of(&got), first);
    let copy = dir.join("copy.json");
    std::fs::write(&copy, &got.stdout).unwrap();
    let copy = copy.to_str().unwrap();
    let same = succeeded(&manager.datascale(&["dataflow", "apply", "-f", copy, "-g", "edge"]));
    assert_eq!(
        revision_in(&same, "unchanged dataflow `tail`"),
        first_revision
    );

    // `-f -` reads standard input.
    let (second_yaml, second) = flow_yaml("tail", 2);
    let updated = succeeded(&manager.datascale_with_input(
        &["dataflow", "apply", "-f", "-", "-g", "edge"],
        &second_yaml,
    ));
    assert_eq!(
        revision_in(&updated, "updated dataflow `tail`"),
        first_revision + 1
    );
    let got = manager.datascale(&["dataflow", "get", "tail", "-g", "edge"]);
    assert_eq!(json_of(&got), second);

    let listed = succeeded(&manager.datascale(&["dataflow", "list", "-g", "edge"]));
    let lines: Vec<_> = listed.lines().collect();
    assert!(lines[0].starts_with("NAME  REVISION  UPDATED"), "{listed}");
    assert!(
        lines[1].starts_with(&format!("tail  {}", first_revision + 1)),
        "{listed}"
    );
    assert_eq!(lines.len(), 2, "{listed}");
    let in_default = json_of(&manager.datascale(&["dataflow", "list", "-o", "json"]));
    assert_eq!(in_default, json!([]), "--group defaults to `default`");

    let history = succeeded(&manager.datascale(&["dataflow", "revisions", "tail", "-g", "edge"]));
    let rows: Vec<Vec<&str>> = history
        .lines()
        .map(|line| line.split_whitespace().take(3).collect())
        .collect();
    let (first_text, second_text) = (first_revision.to_string(), (first_revision + 1).to_string());
    assert_eq!(
        rows,
        [
            vec!["REVISION", "ACTION", "BY"],
            vec![second_text.as_str(), "update", "admin"],
            vec![first_text.as_str(), "create", "admin"],
        ]
    );

    let restored =
        succeeded(&manager.datascale(&["dataflow", "restore", "tail", &first_text, "-g", "edge"]));
    let prefix = format!("restored revision {first_revision}: updated dataflow `tail`");
    assert_eq!(revision_in(&restored, &prefix), first_revision + 2);
    let got = manager.datascale(&["dataflow", "get", "tail", "-g", "edge"]);
    assert_eq!(json_of(&got), first);
    let history = succeeded(&manager.datascale(&["dataflow", "revisions", "tail", "-g", "edge"]));
    assert!(
        history
            .lines()
            .nth(1)
            .unwrap()
            .contains(&format!("restore of {first_revision}")),
        "{history}"
    );

    // `-o json` is the API's whole answer.
    let answer =
        json_of(&manager.datascale(&["dataflow", "get", "tail", "-g", "edge", "-o", "json"]));
    assert_eq!(
        (&answer["document"], &answer["revision"], &answer["group"]),
        (&first, &json!(first_revision + 2), &json!("edge"))
    );

    // A group that holds dataflows is deleted only by force.
    let refused = manager.datascale(&["group", "delete", "edge"]);
    assert!(failed(&refused, 5).contains("force"));
    succeeded(&manager.datascale(&["dataflow", "delete", "tail", "-g", "edge"]));
    let gone = manager.datascale(&["dataflow", "get", "tail", "-g", "edge"]);
    assert_eq!(
        failed(&gone, 4),
        "error: no dataflow named `tail` in group `edge`\n"
    );
    succeeded(&manager.datascale(&["group", "delete", "edge", "--force"]));
}

#[test]
fn a_refused_dataflow_shows_every_problem_with_its_path() {
    let manager = Manager::start();
    let file = manager.home().join("bad.yaml");
    std::fs::write(
        &file,
        "name: bad
sources: [{name: gen, type: demo}]
sinks: [{name: out, type: blackhole, inputs: [nope]}]
",
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let refused = manager.datascale(&["dataflow", "apply", "-f", file]);
    let stderr = failed(&refused, 1);
    let lines: Vec<_> = stderr.lines().collect();
    assert!(
        lines[0].starts_with("error: the dataflow is invalid"),
        "{stderr}"
    );
    assert!(lines[1].starts_with("  sinks[0].inputs[0]: "), "{stderr}");
    assert!(lines[1].contains("nope"), "{stderr}");
    let missing = manager.datascale(&["dataflow", "get", "bad"]);
    failed(&missing, 4);

    std::fs::write(file, "name: [unclosed").unwrap();
    let unreadable = manager.datascale(&["dataflow", "apply", "-f", file]);
    assert!(failed(&unreadable, 1).contains("not valid JSON or YAML"));
    let unnamed = manager.home().join("unnamed.json");
    std::fs::write(&unnamed, r#"{"sources": []}"#).unwrap();
    let unnamed = manager.datascale(&["dataflow", "apply", "-f", unnamed.to_str().unwrap()]);
    assert!(failed(&unnamed, 1).contains("has no `name`"));

    let usage = manager.datascale(&["dataflow", "restore", "bad", "first"]);
    failed(&usage, 2);
}

#[test]
fn workers_are_asked_of_the_manager() {
    let manager = Manager::start();
    // No worker has that id (and the route may not exist at all): 404.
    let missing = manager.datascale(&["worker", "show", "no-such-worker"]);
    let stderr = failed(&missing, 4);
    assert!(
        stderr.starts_with("error: ") && stderr.len() > 8,
        "{stderr}"
    );
    let usage = manager.datascale(&["worker", "assign", "w1"]);
    assert!(failed(&usage, 2).contains("--groups"));
}

#[test]
fn the_environment_and_the_local_configuration_name_the_node() {
    let manager = Manager::start();
    let url = manager.url();
    let home = manager.home();

    // Both from the environment.
    let listed = run(
        home,
        &["group", "list"],
        &[("DATASCALE_URL", &url), ("DATASCALE_TOKEN", &manager.token)],
    );
    assert!(succeeded(&listed).contains("default"));
    let refused = run(
        home,
        &["group", "list"],
        &[("DATASCALE_URL", &url), ("DATASCALE_TOKEN", "wrong")],
    );
    assert!(failed(&refused, 1).contains("refused the token"));

    // The URL from the environment, the token from the data directory: the
    // configuration is loaded with DATASCALE_URL set and does not mind it.
    let listed = run(home, &["group", "list"], &[("DATASCALE_URL", &url)]);
    assert!(succeeded(&listed).contains("default"));
    let checked = run(home, &["config", "check"], &[("DATASCALE_URL", &url)]);
    succeeded(&checked);

    // Neither: service.address of the local configuration, and its token.
    let address = format!("service.address={}", manager.node.api);
    let listed = run(home, &["group", "list", "--set", &address], &[]);
    assert!(succeeded(&listed).contains("default"));
    let elsewhere = support::home();
    let no_token = run(elsewhere.path(), &["group", "list", "--set", &address], &[]);
    assert!(failed(&no_token, 1).contains("no admin token"));
}

#[test]
fn an_unreachable_node_exits_3() {
    let dir = home();
    let url = format!("http://{}", support::free_address());
    let output = run(
        dir.path(),
        &["group", "list", "--url", &url, "--token", "x"],
        &[],
    );
    let stderr = failed(&output, 3);
    assert!(
        stderr.contains(&format!("cannot reach the DataScale API at {url}")),
        "{stderr}"
    );
    let bad_url = run(dir.path(), &["group", "list", "--url", "master1:7881"], &[]);
    failed(&bad_url, 2);
}
