//! The management commands (`overview`, `group`, `dataflow`, `worker`)
//! against a real manager, and for `worker` a real worker process: what they
//! print, what `-o json` gives scripts, their exit codes, their effect
//! through the API, and where they find the node and its token (flags,
//! `DATASCALE_URL` and `DATASCALE_TOKEN`, or the local configuration and
//! data directory).

use std::{
    io::Write,
    path::Path,
    process::{Output, Stdio},
    time::Duration,
};

use serde_json::{Value, json};

use crate::support::{self, Node, home, run, start, wait_for};

/// How long a change may take to reach a worker and back.
const WAIT: Duration = Duration::from_secs(20);

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
        let token = support::token(dir.path(), "admin");
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

    /// The answer of `datascale ARGS -o json`, which must succeed.
    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        json_of(&self.datascale(&all))
    }

    /// Starts a worker process in `dir` that enrolls with this manager,
    /// configured as an operator would: mode, manager address, groups and
    /// the manager's worker (enrollment) token.
    fn worker(&self, dir: &Path, hostname: &str, groups: &str) -> Node {
        let token = support::token(self.home(), "worker");
        support::worker(dir, hostname, &self.node, groups, &token)
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

#[test]
fn groups_are_updated_and_deleted_only_at_the_expected_revision() {
    let manager = Manager::start();
    let created = manager.json(&["group", "create", "edge"]);
    let first = created["revision"].as_u64().unwrap();
    assert_eq!(created["outcome"], "created");

    let updated = succeeded(&manager.datascale(&[
        "group",
        "update",
        "edge",
        "--description",
        "edge routers",
    ]));
    assert_eq!(
        updated,
        format!("updated group `edge` (revision {})\n", first + 1)
    );
    let group = manager.json(&["group", "get", "edge"]);
    assert_eq!(
        (&group["description"], &group["revision"]),
        (&json!("edge routers"), &json!(first + 1))
    );
    let same = manager.datascale(&["group", "update", "edge", "--description", "edge routers"]);
    assert_eq!(
        succeeded(&same),
        format!("unchanged group `edge` (revision {})\n", first + 1)
    );

    // A change based on a revision that is not the current one is refused
    // with the server's message, and changes nothing.
    let first_text = first.to_string();
    let stale = manager.datascale(&[
        "group",
        "update",
        "edge",
        "--description",
        "stale",
        "--if-match",
        &first_text,
    ]);
    let stderr = failed(&stale, 5);
    assert!(
        stderr.starts_with("error: ")
            && stderr.contains(&format!("at revision {}", first + 1))
            && stderr.contains(&format!("expected revision {first}")),
        "{stderr}"
    );
    assert_eq!(
        manager.json(&["group", "get", "edge"])["description"],
        "edge routers"
    );
    let current = (first + 1).to_string();
    let based = manager.datascale(&[
        "group",
        "update",
        "edge",
        "--description",
        "edge hosts",
        "--if-match",
        &current,
    ]);
    assert!(succeeded(&based).starts_with("updated group `edge`"));

    // `update` changes a group, it never creates one.
    let missing = manager.datascale(&["group", "update", "nope", "--description", "x"]);
    assert_eq!(failed(&missing, 4), "error: no group named `nope`\n");
    let names = manager.json(&["group", "list"]);
    assert_eq!(names.as_array().unwrap().len(), 2, "{names}");
    failed(&manager.datascale(&["group", "update", "edge"]), 2);

    let stale = manager.datascale(&["group", "delete", "edge", "--if-match", &current]);
    assert!(failed(&stale, 5).contains("expected revision"));
    assert_eq!(manager.json(&["group", "get", "edge"])["name"], "edge");
    let current = (first + 2).to_string();
    let deleted = manager.datascale(&["group", "delete", "edge", "--if-match", &current]);
    assert!(succeeded(&deleted).starts_with("deleted group `edge`"));
    failed(&manager.datascale(&["group", "get", "edge"]), 4);
}

#[test]
fn dataflows_are_created_shown_by_revision_and_changed_only_at_the_expected_revision() {
    let manager = Manager::start();
    let dir = manager.home();
    let write = |name: &str, count: u64| {
        let (yaml, json) = flow_yaml("tail", count);
        let path = dir.join(name);
        std::fs::write(&path, yaml).unwrap();
        (path.to_str().unwrap().to_owned(), json)
    };
    let (first_file, first) = write("first.yaml", 1);
    let (second_file, second) = write("second.yaml", 2);
    let (third_file, _) = write("third.yaml", 3);

    let created = succeeded(&manager.datascale(&["dataflow", "create", "-f", &first_file]));
    let first_revision = revision_in(&created, "created dataflow `tail` in group `default`");
    let again = manager.datascale(&["dataflow", "create", "-f", &second_file]);
    assert!(
        failed(&again, 5).starts_with("error: a dataflow named `tail` already exists"),
        "create never replaces"
    );
    assert_eq!(
        json_of(&manager.datascale(&["dataflow", "get", "tail"])),
        first
    );
    let nowhere = manager.datascale(&["dataflow", "create", "-f", &first_file, "-g", "nope"]);
    failed(&nowhere, 4);

    let first_text = first_revision.to_string();
    let updated = succeeded(&manager.datascale(&[
        "dataflow",
        "apply",
        "-f",
        &second_file,
        "--if-match",
        &first_text,
    ]));
    let second_revision = revision_in(&updated, "updated dataflow `tail`");
    let stale = manager.datascale(&[
        "dataflow",
        "apply",
        "-f",
        &third_file,
        "--if-match",
        &first_text,
    ]);
    assert!(
        failed(&stale, 5).contains(&format!("expected revision {first_revision}")),
        "a stale --if-match is refused"
    );
    assert_eq!(
        json_of(&manager.datascale(&["dataflow", "get", "tail"])),
        second
    );

    // One revision's document, ready to apply again; its whole entry in JSON.
    let old = manager.datascale(&["dataflow", "revision", "tail", &first_text]);
    assert_eq!(json_of(&old), first);
    let entry = manager.json(&["dataflow", "revision", "tail", &first_text]);
    assert_eq!(
        (&entry["revision"], &entry["action"], &entry["document"]),
        (&json!(first_revision), &json!("create"), &first)
    );
    let none = manager.datascale(&["dataflow", "revision", "tail", "999"]);
    assert!(failed(&none, 4).contains("has no revision 999"));

    let stale = manager.datascale(&["dataflow", "delete", "tail", "--if-match", &first_text]);
    failed(&stale, 5);
    assert_eq!(
        json_of(&manager.datascale(&["dataflow", "get", "tail"])),
        second
    );
    let second_text = second_revision.to_string();
    let deleted =
        succeeded(&manager.datascale(&["dataflow", "delete", "tail", "--if-match", &second_text]));
    let deletion = revision_in(&deleted, "deleted dataflow `tail` from group `default`");
    let gone = manager.datascale(&["dataflow", "revision", "tail", &deletion.to_string()]);
    assert!(failed(&gone, 1).contains("it has no document"));

    // A restore may be based on a revision too: the dataflow is gone, so
    // nothing is at revision 2.
    let stale = manager.datascale(&[
        "dataflow",
        "restore",
        "tail",
        &first_text,
        "--if-match",
        &second_text,
    ]);
    failed(&stale, 5);
    failed(&manager.datascale(&["dataflow", "get", "tail"]), 4);
}

#[test]
fn the_manager_validates_dataflows_like_the_offline_check() {
    let manager = Manager::start();
    let dir = manager.home();
    let good = dir.join("good.yaml");
    std::fs::write(&good, flow_yaml("good", 1).0).unwrap();
    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        "name: bad
sources: [{name: gen, type: demo}]
sinks: [{name: out, type: blackhole, inputs: [nope]}]
",
    )
    .unwrap();
    let files = [
        "-f",
        good.to_str().unwrap(),
        "-f",
        bad.to_str().unwrap(),
        "-f",
        "missing.yaml",
    ];
    let validate = |extra: &[&str]| {
        let mut args = vec!["dataflow", "validate"];
        args.extend(files);
        args.extend(extra);
        manager.datascale(&args)
    };

    let remote = validate(&["--remote"]);
    failed(&remote, 1);
    let stdout = String::from_utf8(remote.stdout.clone()).unwrap();
    let lines: Vec<_> = stdout.lines().collect();
    assert_eq!(
        lines[0],
        format!(
            "{}: dataflow `good` is valid (1 source(s), 0 pipeline(s), 1 sink(s))",
            good.display()
        )
    );
    assert_eq!(lines[1], format!("{}: 1 problem(s)", bad.display()));
    assert!(lines[2].starts_with("  sinks[0].inputs[0]: "), "{stdout}");
    assert!(
        lines[3].starts_with("missing.yaml: 1 problem(s)"),
        "{stdout}"
    );
    assert_eq!(
        stdout,
        String::from_utf8(validate(&[]).stdout).unwrap(),
        "the manager finds what the offline check finds"
    );

    let results = validate(&["--remote", "--json"]);
    failed(&results, 1);
    let results: Value = serde_json::from_slice(&results.stdout).unwrap();
    let valid: Vec<_> = results
        .as_array()
        .unwrap()
        .iter()
        .map(|result| &result["valid"])
        .collect();
    assert_eq!(valid, [&json!(true), &json!(false), &json!(false)]);
    assert_eq!(results[1]["errors"][0]["path"], "sinks[0].inputs[0]");

    let only_good = manager.datascale(&[
        "dataflow",
        "validate",
        "--remote",
        "-f",
        good.to_str().unwrap(),
    ]);
    assert!(succeeded(&only_good).contains("is valid"));
    let url = format!("http://{}", support::free_address());
    let unreachable = run(
        dir,
        &[
            "dataflow",
            "validate",
            "--remote",
            "-f",
            good.to_str().unwrap(),
            "--url",
            &url,
            "--token",
            "x",
        ],
        &[],
    );
    assert!(failed(&unreachable, 3).contains("cannot reach"));
}

#[test]
fn the_overview_counts_groups_dataflows_and_components() {
    let manager = Manager::start();
    let dir = manager.home();
    succeeded(&manager.datascale(&["group", "create", "edge"]));
    for (group, name) in [("default", "one"), ("edge", "two")] {
        let file = dir.join(format!("{name}.yaml"));
        std::fs::write(&file, flow_yaml(name, 1).0).unwrap();
        let file = file.to_str().unwrap();
        succeeded(&manager.datascale(&["dataflow", "apply", "-f", file, "-g", group]));
    }
    let overview = succeeded(&manager.datascale(&["overview"]));
    let lines: Vec<_> = overview.lines().collect();
    assert!(
        lines[0].starts_with("cluster     datascale at revision "),
        "{overview}"
    );
    assert_eq!(
        lines[1],
        format!(
            "managers    {} (manager {})",
            manager.node.api,
            env!("CARGO_PKG_VERSION")
        )
    );
    assert_eq!(
        lines[2..],
        [
            "workers     0: 0 online, 0 suspect, 0 offline",
            "groups      2",
            "dataflows   2",
            "components  2 source(s), 0 pipeline(s), 2 sink(s): blackhole 2, demo 2",
        ]
    );
    let answer = manager.json(&["overview"]);
    assert_eq!(
        (
            &answer["groups"],
            &answer["dataflows"],
            &answer["components"]["by_type"]
        ),
        (&json!(2), &json!(2), &json!({"blackhole": 2, "demo": 2}))
    );
}

/// The worker of `hostname` in `datascale worker list -o json`, once it is
/// online and `ready` holds.
fn listed_worker(manager: &Manager, hostname: &str, ready: impl Fn(&Value) -> bool) -> Value {
    wait_for(WAIT, &format!("{hostname} online and ready"), || {
        let workers = manager.json(&["worker", "list"]);
        let worker = workers
            .as_array()?
            .iter()
            .find(|worker| worker["hostname"] == hostname)?;
        (worker["state"] == "online" && ready(worker)).then(|| worker.clone())
    })
}

/// The names of the dataflows a worker reported, once they are `names`.
fn reported(manager: &Manager, id: &str, names: &[&str]) {
    wait_for(WAIT, &format!("worker {id} to run {names:?}"), || {
        let worker = manager.json(&["worker", "show", id]);
        let dataflows = worker["status"]["dataflows"].as_array()?;
        let running: Vec<_> = dataflows
            .iter()
            .filter(|dataflow| dataflow["state"] == "running")
            .map(|dataflow| dataflow["name"].as_str().unwrap_or_default())
            .collect();
        (running == names && dataflows.len() == names.len()).then_some(())
    });
}

#[test]
fn workers_are_listed_shown_assigned_revoked_and_deleted() {
    let manager = Manager::start();
    let dir = manager.home();
    succeeded(&manager.datascale(&["group", "create", "another_group"]));
    for (group, name) in [("default", "tail"), ("another_group", "other")] {
        let file = dir.join(format!("{name}.yaml"));
        std::fs::write(&file, flow_yaml(name, 1).0).unwrap();
        let file = file.to_str().unwrap();
        succeeded(&manager.datascale(&["dataflow", "apply", "-f", file, "-g", group]));
    }
    let worker_home = support::home();
    let worker = manager.worker(worker_home.path(), "worker1", "default");

    let listed = listed_worker(&manager, "worker1", |worker| {
        worker["status"]["applied_revision"] == worker["desired_revision"]
    });
    let id = listed["id"].as_str().unwrap().to_owned();
    reported(&manager, &id, &["tail"]);
    let table = succeeded(&manager.datascale(&["worker", "list"]));
    let rows: Vec<Vec<&str>> = table
        .lines()
        .map(|line| line.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0],
        [
            "ID",
            "HOSTNAME",
            "STATE",
            "GROUPS",
            "APPLIED/DESIRED",
            "LAST",
            "HEARTBEAT"
        ]
    );
    let revisions = format!("{0}/{0}", listed["desired_revision"]);
    assert_eq!(
        rows[1][..5],
        [
            id.as_str(),
            "worker1",
            "online",
            "default",
            revisions.as_str()
        ]
    );
    assert_eq!(rows.len(), 2, "{table}");

    let shown = succeeded(&manager.datascale(&["worker", "show", &id]));
    assert!(shown.contains("\nhostname        worker1\n"), "{shown}");
    assert!(
        shown.contains("\ngroups          default (its own)\n"),
        "{shown}"
    );
    let dataflows: Vec<Vec<&str>> = shown
        .lines()
        .skip_while(|line| !line.starts_with("GROUP "))
        .map(|line| line.split_whitespace().take(3).collect())
        .collect();
    assert_eq!(
        dataflows,
        [
            vec!["GROUP", "NAME", "STATE"],
            vec!["default", "tail", "running"]
        ],
        "{shown}"
    );
    let overview = succeeded(&manager.datascale(&["overview"]));
    assert!(
        overview.contains("\nworkers     1: 1 online, 0 suspect, 0 offline\n"),
        "{overview}"
    );

    // Assigned groups win over the worker's own; --own goes back to those.
    let assigned = manager.datascale(&["worker", "assign", &id, "--groups", "another_group"]);
    assert_eq!(
        succeeded(&assigned),
        format!("worker `{id}` now runs groups another_group (assigned; its own: default)\n")
    );
    reported(&manager, &id, &["other"]);
    let own = manager.datascale(&["worker", "assign", &id, "--own"]);
    assert_eq!(
        succeeded(&own),
        format!("worker `{id}` now runs groups default (its own)\n")
    );
    let record = manager.json(&["worker", "show", &id]);
    assert_eq!(
        (&record["groups"], &record["assigned_groups"]),
        (&json!(["default"]), &Value::Null)
    );
    reported(&manager, &id, &["tail"]);
    let both = manager.datascale(&["worker", "assign", &id, "--own", "--groups", "default"]);
    failed(&both, 2);
    let nobody = manager.datascale(&["worker", "assign", "w-nobody", "--groups", "default"]);
    failed(&nobody, 4);

    // A revoked worker is refused from then on.
    let revoked = succeeded(&manager.datascale(&["worker", "revoke", &id]));
    assert!(
        revoked.starts_with(&format!("revoked worker `{id}` (worker1): ")),
        "{revoked}"
    );
    assert_eq!(manager.json(&["worker", "show", &id])["revoked"], true);
    support::wait_for_output(&worker, WAIT, &["refused this worker's token"]);
    let table = succeeded(&manager.datascale(&["worker", "list"]));
    assert!(
        table.lines().nth(1).unwrap().contains(" (revoked)"),
        "{table}"
    );

    // Deleted, it may enroll again, under the same id.
    let deleted = succeeded(&manager.datascale(&["worker", "delete", &id]));
    assert_eq!(
        deleted,
        format!("deleted worker `{id}`; with the enrollment token it may enroll again\n")
    );
    let again = listed_worker(&manager, "worker1", |worker| worker["revoked"] == false);
    assert_eq!(again["id"], id);

    // A worker that is gone stays deleted.
    worker.terminate(WAIT);
    succeeded(&manager.datascale(&["worker", "delete", &id]));
    for command in ["show", "delete", "revoke"] {
        let missing = manager.datascale(&["worker", command, &id]);
        assert_eq!(
            failed(&missing, 4),
            format!("error: no worker with id `{id}`\n")
        );
    }
    assert_eq!(manager.json(&["worker", "list"]), json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn events_are_searched_and_sets_listed() {
    let manager = Manager::start();
    let worker_token = support::token(manager.home(), "worker");
    let body: String = (0..30)
        .map(|n| {
            let level = if n % 3 == 0 { "error" } else { "info" };
            format!(
                "{}\n",
                json!({"timestamp": format!("2026-11-23T10:00:{n:02}Z"),
                       "host": format!("worker{}", n % 2 + 1), "message": format!("{level} {n}")})
            )
        })
        .collect();
    let stored = reqwest::Client::new()
        .post(
            manager
                .node
                .api_url("/api/v1/event_sets/my_datascale_cluster/events"),
        )
        .bearer_auth(&worker_token)
        .header("Content-Type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(stored.status(), 200);

    let found = manager.datascale(&[
        "events",
        "search",
        "my_datascale_cluster",
        "error host:worker1",
    ]);
    let text = succeeded(&found);
    let messages: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap()["message"].clone())
        .collect();
    assert_eq!(
        messages,
        ["error 24", "error 18", "error 12", "error 6", "error 0"]
    );

    // Pages: the cursor printed after a page continues it.
    let first = manager.json(&["events", "search", "my_datascale_cluster", "--limit", "20"]);
    assert_eq!(first["events"].as_array().unwrap().len(), 20);
    let cursor = first["next_cursor"].as_str().unwrap();
    let rest = manager.json(&[
        "events",
        "search",
        "my_datascale_cluster",
        "--limit",
        "20",
        "--cursor",
        cursor,
    ]);
    assert_eq!(rest["events"].as_array().unwrap().len(), 10);
    let window = manager.json(&[
        "events",
        "search",
        "my_datascale_cluster",
        "--from",
        "2026-11-23T10:00:10Z",
        "--to",
        "2026-11-23T10:00:12Z",
    ]);
    assert_eq!(window["events"].as_array().unwrap().len(), 2);
    let recent = manager.json(&["events", "search", "my_datascale_cluster", "--from", "-15m"]);
    assert_eq!(
        recent["events"].as_array().unwrap().len(),
        0,
        "all are older"
    );

    let sets = manager.datascale(&["events", "sets"]);
    let text = succeeded(&sets);
    assert!(text.starts_with("NAME"), "{text}");
    assert!(
        text.contains("my_datascale_cluster") && text.contains(" 30 "),
        "{text}"
    );
    let missing = manager.datascale(&["events", "search", "nope"]);
    assert_eq!(missing.status.code(), Some(4));
    let bad_time =
        manager.datascale(&["events", "search", "my_datascale_cluster", "--from", "soon"]);
    assert_eq!(bad_time.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad_time.stderr).contains("`soon`"));
}
