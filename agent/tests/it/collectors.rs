//! Custom collectors end to end, on a manager and a separate worker
//! process: the example collector uploaded, run by a dataflow of group
//! `default` and its events written by the worker; a new version replacing
//! the old one on the worker while another dataflow runs on; deletion
//! refused while a dataflow uses it, then accepted, and the worker's copy
//! removed; malicious packages refused with their reason and nothing kept;
//! header bombs (huge GNU long names and pax headers) refused without the
//! manager's memory growing; and a worker offline during an upload
//! catching up when it is back.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use flate2::{Compression, write::GzEncoder};
use serde_json::{Value, json};

use crate::support::{
    self, ADMIN, Answer, Api, ENROLL, Node, eventually, home, json_lines, repository, start,
    start_manager, start_worker, stderr, stdout,
};

const WAIT: Duration = Duration::from_secs(30);

/// A manager in `dir` that takes packages of up to 1 MB, and its admin client.
fn small_manager(dir: &Path) -> (Node, Api) {
    let manager = start_manager(dir, &[("DATASCALE_SERVICE_MANAGER_MAX_COLLECTOR_MB", "1")]);
    let api = Api::with_token(&manager, ADMIN);
    (manager, api)
}

/// worker1, in group `default`, which unpacks collectors into `dir/unpacked`.
fn unpacking_worker(dir: &Path, manager: &Node) -> Node {
    let collectors = dir.join("unpacked");
    let collectors = collectors.to_str().unwrap();
    start_worker(
        dir,
        "worker1",
        &manager.api_url(""),
        "default",
        ENROLL,
        &[("DATASCALE_SERVICE_COLLECTORS_DIR", collectors)],
    )
}

/// One entry of a package under test.
enum Entry<'a> {
    File(&'a str, &'a [u8], u32),
    Symlink(&'a str, &'a str),
    Hardlink(&'a str, &'a str),
    Special(&'a str, tar::EntryType),
    /// An extension header (GNU long name or link, pax) named `.0` that
    /// holds `.2`, written before the entry it describes.
    Header(&'a str, tar::EntryType, &'a [u8]),
    /// A pax header of these records, as `tar` writes one.
    Pax(&'a [(&'a str, &'a [u8])]),
}

/// Writes `name` into a header as is: `tar`'s own setters refuse the
/// names that malicious packages hold.
fn raw_header(name: &str, kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
    let mut header = tar::Header::new_old();
    header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    header.set_entry_type(kind);
    header.set_size(size);
    header.set_mode(mode);
    header.set_mtime(0);
    header
}

/// A `.tar.gz` of `entries`.
fn package(entries: &[Entry<'_>]) -> Vec<u8> {
    let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
    for entry in entries {
        match entry {
            Entry::File(name, contents, mode) => {
                let mut header =
                    raw_header(name, tar::EntryType::Regular, contents.len() as u64, *mode);
                header.set_cksum();
                builder.append(&header, *contents).unwrap();
            }
            Entry::Symlink(name, target) | Entry::Hardlink(name, target) => {
                let kind = match entry {
                    Entry::Symlink(..) => tar::EntryType::Symlink,
                    _ => tar::EntryType::Link,
                };
                let mut header = raw_header(name, kind, 0, 0o777);
                header.as_old_mut().linkname[..target.len()].copy_from_slice(target.as_bytes());
                header.set_cksum();
                builder.append(&header, std::io::empty()).unwrap();
            }
            Entry::Special(name, kind) => {
                let mut header = raw_header(name, *kind, 0, 0o644);
                header.set_cksum();
                builder.append(&header, std::io::empty()).unwrap();
            }
            Entry::Header(name, kind, contents) => {
                // A GNU header: `tar` reads extensions only from GNU and
                // ustar headers, not from the old format's.
                let mut header = tar::Header::new_gnu();
                header.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
                header.set_entry_type(*kind);
                header.set_size(contents.len() as u64);
                header.set_mode(0o644);
                header.set_cksum();
                builder.append(&header, *contents).unwrap();
            }
            Entry::Pax(records) => builder
                .append_pax_extensions(records.iter().copied())
                .unwrap(),
        }
    }
    builder.into_inner().unwrap().finish().unwrap()
}

fn manifest(version: &str) -> String {
    format!(
        "name = \"disk_usage\"\nversion = \"{version}\"\nentrypoint = \"bin/disk_usage.sh\"\noutput = \"json\"\nenv = {{ LC_ALL = \"C\" }}\n"
    )
}

/// The example collector of the repository: its directory.
fn example_dir() -> PathBuf {
    repository().join("collectors/examples/disk_usage")
}

/// The example collector of the repository, as a package.
fn example() -> Vec<u8> {
    let root = example_dir();
    let manifest = std::fs::read(root.join("collector.toml")).unwrap();
    let script = std::fs::read(root.join("bin/disk_usage.sh")).unwrap();
    package(&[
        Entry::File("collector.toml", &manifest, 0o644),
        Entry::File("bin/disk_usage.sh", &script, 0o755),
    ])
}

/// Version `version` of `disk_usage`: a script that says which version it is.
fn version_saying(version: &str) -> Vec<u8> {
    let script =
        format!("#!/bin/sh\necho '{{\"version\":\"{version}\",\"lang\":\"'\"$LC_ALL\"'\"}}'\n");
    package(&[
        Entry::File("collector.toml", manifest(version).as_bytes(), 0o644),
        Entry::File("bin/disk_usage.sh", script.as_bytes(), 0o755),
    ])
}

async fn upload(api: &Api, bytes: Vec<u8>) -> Answer {
    let gzip = [("Content-Type", "application/gzip")];
    api.post_bytes("/api/v1/collectors", bytes, &gzip).await
}

/// A dataflow that runs the `disk_usage` collector (latest version) every
/// second and writes its events to `out`.
fn disk_dataflow(out: &Path) -> Value {
    json!({
        "name": "disk",
        "sources": [{"name": "usage", "type": "collector",
                     "conf": {"collector": "disk_usage", "interval_secs": 1, "args": ["/"]}}],
        "sinks": [{"name": "out", "type": "file", "inputs": ["usage"],
                   "conf": {"path": out.display().to_string()}}]
    })
}

/// The events of `out` once one matches `wanted`.
async fn event_where(out: &Path, what: &str, wanted: impl Fn(&Value) -> bool) -> Value {
    eventually(WAIT, what, || async {
        json_lines(out).into_iter().find(|event| wanted(event))
    })
    .await
}

/// The `events_in` a worker reported for dataflow `name`.
async fn events_in(api: &Api, name: &str) -> Option<u64> {
    let workers = api.get("/api/v1/workers").await.body;
    let dataflows = workers[0]["status"]["dataflows"].as_array()?.clone();
    dataflows
        .iter()
        .find(|d| d["name"] == name)
        .and_then(|d| d["events_in"].as_u64())
}

fn unpacked(dir: &Path, version: &str) -> PathBuf {
    dir.join("w1/unpacked/disk_usage").join(version)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_collector_goes_from_upload_to_a_workers_events_and_away_again() {
    let dir = home();
    let manager = start_manager(&dir.path().join("m"), &[]);
    let api = Api::with_token(&manager, ADMIN);
    let worker = unpacking_worker(&dir.path().join("w1"), &manager);
    let out = dir.path().join("out");

    // A dataflow naming a collector nobody uploaded is refused.
    let refused = api
        .put(
            "/api/v1/groups/default/dataflows/disk",
            &disk_dataflow(&out.join("disk.json")),
        )
        .await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert_eq!(
        refused.body["error"]["details"][0]["path"],
        "sources[0].conf.collector"
    );

    let uploaded = upload(&api, example()).await;
    assert_eq!(uploaded.status, 201, "{}", uploaded.body);
    assert_eq!(uploaded.body["version"], "1.0.0");
    assert_eq!(uploaded.body["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(upload(&api, example()).await.body["outcome"], "unchanged");

    // Another dataflow on the same worker, which must run on throughout.
    let other = json!({
        "name": "other",
        "sources": [{"name": "gen", "type": "demo", "conf": {"interval_secs": 0.05}}],
        "sinks": [{"name": "out", "type": "blackhole", "inputs": ["gen"]}]
    });
    let created = api
        .put("/api/v1/groups/default/dataflows/other", &other)
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let created = api
        .put(
            "/api/v1/groups/default/dataflows/disk",
            &disk_dataflow(&out.join("disk.json")),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);

    let event = event_where(&out.join("disk.json"), "disk usage of /", |event| {
        event["mount"] == "/"
    })
    .await;
    assert!(event["used_percent"].is_number(), "{event}");
    assert_eq!(event["host"], "worker1");
    assert!(
        unpacked(dir.path(), "1.0.0")
            .join("collector.toml")
            .is_file()
    );
    let shown = api.get("/api/v1/collectors/disk_usage").await.body;
    assert_eq!(shown["latest"], "1.0.0");
    assert_eq!(shown["used_by"][0]["dataflow"], "disk");
    assert_eq!(shown["used_by"][0]["runs"], "1.0.0");

    // A new version replaces the old one on the worker; `other` runs on.
    let before = eventually(WAIT, "events of `other`", || async {
        events_in(&api, "other").await.filter(|count| *count > 0)
    })
    .await;
    let uploaded = upload(&api, version_saying("2.0.0")).await;
    assert_eq!(uploaded.status, 201, "{}", uploaded.body);
    let event = event_where(&out.join("disk.json"), "events of version 2", |event| {
        event["version"] == "2.0.0"
    })
    .await;
    assert_eq!(event["lang"], "C", "the manifest's env reaches the program");
    eventually(WAIT, "version 1.0.0 removed from the worker", || async {
        (!unpacked(dir.path(), "1.0.0").exists()).then_some(())
    })
    .await;
    assert!(unpacked(dir.path(), "2.0.0").is_dir());
    let after = events_in(&api, "other").await.unwrap();
    assert!(
        after >= before,
        "`other` was restarted: {after} events after, {before} before"
    );

    // Deletion is refused while a dataflow runs it, and names the dataflow.
    let in_use = api.delete("/api/v1/collectors/disk_usage").await;
    assert_eq!(in_use.status, 409, "{}", in_use.body);
    let message = in_use.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("default/disk"), "{message}");
    let latest = api.delete("/api/v1/collectors/disk_usage/2.0.0").await;
    assert_eq!(latest.status, 409, "{}", latest.body);
    // Version 1.0.0 is used by no dataflow any more.
    let old = api.delete("/api/v1/collectors/disk_usage/1.0.0").await;
    assert_eq!(old.status, 200, "{}", old.body);

    let removed = api.delete("/api/v1/groups/default/dataflows/disk").await;
    assert_eq!(removed.status, 200, "{}", removed.body);
    let deleted = api.delete("/api/v1/collectors/disk_usage").await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    assert_eq!(deleted.body["versions"], json!(["2.0.0"]));
    eventually(WAIT, "the worker's copy removed", || async {
        (!dir.path().join("w1/unpacked/disk_usage").exists()).then_some(())
    })
    .await;
    let kept = std::fs::read_dir(dir.path().join("m/data/collectors")).unwrap();
    assert_eq!(kept.count(), 0, "the manager keeps no package");
    assert_eq!(api.get("/api/v1/collectors").await.body, json!([]));
    worker.terminate(Duration::from_secs(10));
    manager.terminate(Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread")]
async fn malicious_and_broken_packages_are_refused_with_their_reason() {
    let dir = home();
    let (manager, api) = small_manager(&dir.path().join("m"));
    let outside = dir.path().join("outside");
    let script: &[u8] = b"#!/bin/sh\necho '{}'\n";
    let good_manifest = manifest("1.0.0");
    let good = |extra| {
        vec![
            Entry::File("collector.toml", good_manifest.as_bytes(), 0o644),
            Entry::File("bin/disk_usage.sh", script, 0o755),
            extra,
        ]
    };
    let absolute = format!("{}/evil.sh", outside.display());
    // A small package that unpacks to more than the 1 MB allowed. (One
    // whose own size is over the limit is refused from its Content-Length
    // before it is read, which leaves the client writing into a closed
    // connection.)
    let zeros = vec![0u8; 2 * 1024 * 1024];
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "path traversal",
            package(&good(Entry::File("../evil.sh", script, 0o755))),
            400,
            "climbs out of the package",
        ),
        (
            "absolute path",
            package(&good(Entry::File(&absolute, script, 0o755))),
            400,
            "absolute path",
        ),
        (
            "symlink out",
            package(&good(Entry::Symlink("bin/passwd", "../../etc/passwd"))),
            400,
            "outside the package",
        ),
        (
            "absolute symlink",
            package(&good(Entry::Symlink("bin/passwd", "/etc/passwd"))),
            400,
            "outside the package",
        ),
        (
            "hardlink out",
            package(&good(Entry::Hardlink("bin/passwd", "/etc/passwd"))),
            400,
            "hard link",
        ),
        (
            "fifo",
            package(&good(Entry::Special("bin/pipe", tar::EntryType::Fifo))),
            400,
            "fifo",
        ),
        (
            "device",
            package(&good(Entry::Special("bin/tty", tar::EntryType::Char))),
            400,
            "device file",
        ),
        (
            "oversized",
            package(&good(Entry::File("data.bin", &zeros, 0o644))),
            413,
            "unpacks to more than the 1 MB allowed (service.manager.max_collector_mb)",
        ),
        (
            "missing entrypoint",
            package(&[Entry::File(
                "collector.toml",
                good_manifest.as_bytes(),
                0o644,
            )]),
            400,
            "entrypoint `bin/disk_usage.sh`",
        ),
        (
            "entrypoint not executable",
            package(&[
                Entry::File("collector.toml", good_manifest.as_bytes(), 0o644),
                Entry::File("bin/disk_usage.sh", script, 0o644),
            ]),
            400,
            "chmod +x",
        ),
        (
            "missing manifest",
            package(&[Entry::File("bin/disk_usage.sh", script, 0o755)]),
            400,
            "no collector.toml",
        ),
        (
            "invalid manifest",
            package(&[
                Entry::File("collector.toml", b"name = \"disk_usage\"\n", 0o644),
                Entry::File("bin/disk_usage.sh", script, 0o755),
            ]),
            400,
            "collector.toml",
        ),
        (
            "random bytes",
            b"this is not a package".to_vec(),
            400,
            "not a readable .tar.gz",
        ),
    ];
    for (what, bytes, status, reason) in cases {
        upload_refused(&api, what, bytes, status, reason).await;
    }
    assert_eq!(api.get("/api/v1/collectors").await.body, json!([]));
    assert!(
        !outside.exists(),
        "a refused package wrote outside the store"
    );
    assert!(!dir.path().join("m/evil.sh").exists());
    assert!(!dir.path().join("m/data/evil.sh").exists());
    let kept = std::fs::read_dir(dir.path().join("m/data/collectors"))
        .map(Iterator::count)
        .unwrap_or(0);
    assert_eq!(kept, 0, "a refused package was kept");
    manager.terminate(Duration::from_secs(10));
}

/// A valid package of `disk_usage` `version` with `extra` after its files.
fn valid_with(version: &str, extra: Vec<Entry<'_>>) -> Vec<u8> {
    let manifest = manifest(version);
    let mut entries = vec![
        Entry::File("collector.toml", manifest.as_bytes(), 0o644),
        Entry::File("bin/disk_usage.sh", b"#!/bin/sh\necho '{}'\n", 0o755),
    ];
    entries.extend(extra);
    package(&entries)
}

/// Uploads `bytes`, a small package, and asserts that it is refused with
/// `status` and a message holding `reason`.
async fn upload_refused(api: &Api, what: &str, bytes: Vec<u8>, status: u16, reason: &str) {
    assert!(
        bytes.len() < 1 << 20,
        "{what}: {} bytes packed",
        bytes.len()
    );
    let answer = upload(api, bytes).await;
    let message = answer.body["error"]["message"].as_str().unwrap_or("");
    // A message with a huge name in it is cut short here.
    let start: String = message.chars().take(300).collect();
    assert_eq!(answer.status, status, "{what}: {start}");
    assert!(message.contains(reason), "{what}: {start}");
}

#[tokio::test(flavor = "multi_thread")]
async fn header_bombs_are_refused_naming_the_header_and_the_manager_stays_small() {
    let dir = home();
    let (manager, api) = small_manager(&dir.path().join("m"));
    // One upload first, so that the idle figure includes what checking a
    // package needs at all.
    let uploaded = upload(&api, version_saying("0.9.0")).await;
    assert_eq!(uploaded.status, 201, "{}", uploaded.body);
    let idle = support::peak_rss_kib(manager.child.id());

    // 32 MiB each: a few hundred KiB once compressed, and far over the bound.
    let huge = vec![b'a'; 32 << 20];
    let bombs = [
        (
            tar::EntryType::GNULongName,
            "././@LongLink",
            "a GNU long-name header",
        ),
        (
            tar::EntryType::GNULongLink,
            "././@LongLink",
            "a GNU long-link header",
        ),
        (tar::EntryType::XHeader, "PaxHeaders/extra", "a pax header"),
        (
            tar::EntryType::XGlobalHeader,
            "pax_global_header",
            "a global pax header",
        ),
    ];
    for (n, (kind, name, what)) in bombs.into_iter().enumerate() {
        // The entry it describes: `extra`, as a file or a link.
        let described = match kind {
            tar::EntryType::GNULongLink => Entry::Symlink("extra", "bin/disk_usage.sh"),
            _ => Entry::File("extra", b"x", 0o644),
        };
        let version = format!("1.0.{n}");
        let bytes = valid_with(&version, vec![Entry::Header(name, kind, &huge), described]);
        let reason = format!(
            "{what} (`{name}`), holds {} bytes, more than the 65536 bytes an entry header may hold",
            huge.len()
        );
        upload_refused(&api, what, bytes, 400, &reason).await;
    }

    // Headers under the bound, which add up to more than the 1 MB allowed.
    let medium = vec![b'm'; 60 << 10];
    let medium_records = [("comment", medium.as_slice())];
    let names: Vec<String> = (0..20).map(|n| format!("data/{n}.txt")).collect();
    let mut many_medium = Vec::new();
    for name in &names {
        many_medium.push(Entry::Pax(&medium_records));
        many_medium.push(Entry::File(name, b"x", 0o644));
    }
    let reason =
        "unpacks to more than the 1 MB allowed (service.manager.max_collector_mb) at entry";
    let bytes = valid_with("1.1.0", many_medium);
    upload_refused(&api, "many medium pax headers", bytes, 413, reason).await;

    let peak = support::peak_rss_kib(manager.child.id());
    eprintln!("manager's peak RSS: {idle} KiB idle, {peak} KiB after the header bombs");
    assert!(
        peak.saturating_sub(idle) < 16 * 1024,
        "checking header bombs raised the manager's peak RSS from {idle} KiB to {peak} KiB"
    );
    let versions = &api.get("/api/v1/collectors/disk_usage").await.body["versions"];
    assert_eq!(versions.as_array().map(Vec::len), Some(1), "{versions}");
    manager.terminate(Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_offline_during_an_upload_gets_the_collector_when_it_is_back() {
    let dir = home();
    let manager = start_manager(&dir.path().join("m"), &[]);
    let api = Api::with_token(&manager, ADMIN);
    let out = dir.path().join("out/disk.json");
    assert_eq!(upload(&api, version_saying("1.0.0")).await.status, 201);
    let created = api
        .put(
            "/api/v1/groups/default/dataflows/disk",
            &disk_dataflow(&out),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let first = unpacking_worker(&dir.path().join("w1"), &manager);
    event_where(&out, "events of version 1", |event| {
        event["version"] == "1.0.0"
    })
    .await;
    first.terminate(Duration::from_secs(10));

    assert_eq!(upload(&api, version_saying("1.1.0")).await.status, 201);
    let back = unpacking_worker(&dir.path().join("w1"), &manager);
    event_where(&out, "events of version 1.1.0", |event| {
        event["version"] == "1.1.0"
    })
    .await;
    assert!(unpacked(dir.path(), "1.1.0").is_dir());
    eventually(WAIT, "version 1.0.0 removed", || async {
        (!unpacked(dir.path(), "1.0.0").exists()).then_some(())
    })
    .await;
    back.terminate(Duration::from_secs(10));
    manager.terminate(Duration::from_secs(10));
}

#[test]
fn the_example_collector_prints_json_lines() {
    let root = example_dir();
    let output = std::process::Command::new(root.join("bin/disk_usage.sh"))
        .arg("/")
        .env("LC_ALL", "C")
        .output()
        .unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    let event: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(event["mount"], "/");
    assert!(event["available_kb"].is_number(), "{event}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_installs_a_directory_that_a_standalone_node_runs_and_removes() {
    let dir = home();
    let node = start(dir.path(), &[]);
    let api = Api::admin(&node, dir.path());
    let url = node.api_url("");
    let client = [
        ("DATASCALE_URL", url.as_str()),
        ("DATASCALE_TOKEN", api.token.as_str()),
    ];
    let cli = |args: &[&str]| {
        let output = support::run(dir.path(), args, &client);
        (output.status.code(), stdout(&output), stderr(&output))
    };
    let example = example_dir();
    let example = example.to_str().unwrap();

    let (code, out, err) = cli(&["collector", "install", example]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.starts_with("installed collector `disk_usage` version 1.0.0"),
        "{out}"
    );
    let (_, out, _) = cli(&["collector", "install", example]);
    assert!(out.starts_with("already installed"), "{out}");
    let (code, out, _) = cli(&["collector", "list"]);
    assert_eq!(code, Some(0));
    assert!(
        out.lines().nth(1).unwrap().starts_with("disk_usage  1.0.0"),
        "{out}"
    );

    // The standalone node's own worker runs it, unpacked in the install
    // directory's collectors/.
    let events = dir.path().join("out/disk.json");
    let created = api
        .put(
            "/api/v1/groups/default/dataflows/disk",
            &disk_dataflow(&events),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    event_where(&events, "disk usage of /", |event| event["mount"] == "/").await;
    let unpacked = dir
        .path()
        .join("collectors/disk_usage/1.0.0/bin/disk_usage.sh");
    assert!(unpacked.is_file());

    let (code, _, err) = cli(&["collector", "remove", "disk_usage"]);
    assert_eq!(code, Some(5), "{err}");
    assert!(err.contains("default/disk"), "{err}");
    let (code, _, _) = cli(&["collector", "remove", "disk_usage", "--version", "9.9.9"]);
    assert_eq!(code, Some(4));
    assert_eq!(
        api.delete("/api/v1/groups/default/dataflows/disk")
            .await
            .status,
        200
    );
    let (code, out, err) = cli(&["collector", "remove", "disk_usage"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("1.0.0"), "{out}");
    eventually(WAIT, "the unpacked copy removed", || async {
        (!dir.path().join("collectors/disk_usage").exists()).then_some(())
    })
    .await;
    let (code, _, _) = cli(&["collector", "show", "disk_usage"]);
    assert_eq!(code, Some(4));
    node.terminate(Duration::from_secs(10));
}
