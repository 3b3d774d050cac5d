//! Built-in resource limits with real `datascale start` processes: the node
//! in cgroups of its own on the host's cgroup v1 hierarchies, reported by
//! `datascale status` and `/metrics`; a command of a dataflow killed by the
//! kernel beyond the memory limit while the node lives on; cgroup v2 on a
//! cgroup2 filesystem the test mounts itself; and the message without root.
//!
//! Making cgroups needs root and a writable cgroup filesystem: where either
//! is missing, a test prints why on standard error and checks nothing.
//! Every cgroup a test makes has a name of its own and is removed at its
//! end, also when it fails.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    thread,
    time::{Duration, Instant},
};

use serde_json::json;

use crate::support::{
    Api, home, json_lines, root_for, run, start, stderr, stdout, unprivileged, wait_until,
};

const MIB: u64 = 1024 * 1024;

/// A cgroup name for one test of this run alone.
fn unique_name(test: &str) -> String {
    format!("datascale-test-{}-{test}", std::process::id())
}

/// Where the cgroup v1 hierarchy bound to `controller` is mounted.
fn v1_mount(controller: &str) -> Option<PathBuf> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").ok()?;
    mountinfo.lines().find_map(|line| {
        let (mount, filesystem) = line.split_once(" - ")?;
        let mut filesystem = filesystem.split(' ');
        let bound = filesystem.next()? == "cgroup"
            && filesystem.nth(1)?.split(',').any(|o| o == controller);
        if bound {
            mount.split(' ').nth(4).map(PathBuf::from)
        } else {
            None
        }
    })
}

/// Cgroups a test's node makes, removed when dropped: whatever still runs
/// in them is killed first, since a cgroup with processes cannot go.
struct Cgroups(Vec<PathBuf>);

impl Drop for Cgroups {
    fn drop(&mut self) {
        for dir in self.0.iter().filter(|dir| dir.exists()) {
            let procs = || fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
            let deadline = Instant::now() + Duration::from_secs(10);
            while !procs().trim().is_empty() && Instant::now() < deadline {
                for pid in procs().split_whitespace() {
                    let _ = Command::new("kill").args(["-KILL", pid]).status();
                }
                thread::sleep(Duration::from_millis(20));
            }
            if let Err(err) = fs::remove_dir(dir) {
                eprintln!("cannot remove the test cgroup {}: {err}", dir.display());
            }
        }
    }
}

/// The cgroup v1 cgroups `name` (cpu, memory) a node of this test may
/// make; `None`, saying why, when this host does not let it.
fn v1_cgroups(name: &str) -> Option<Cgroups> {
    let skip = |why: String| {
        eprintln!("skipped: {why}");
        None
    };
    if !root_for("making cgroups") {
        return None;
    }
    let (Some(cpu), Some(memory)) = (v1_mount("cpu"), v1_mount("memory")) else {
        return skip("no cgroup v1 cpu and memory hierarchies are mounted here".into());
    };
    let dirs = vec![cpu.join(name), memory.join(name)];
    for dir in &dirs {
        // A probe: the node must make the cgroup itself.
        if let Err(err) = fs::create_dir(dir).and_then(|()| fs::remove_dir(dir)) {
            return skip(format!("cannot make the cgroup {}: {err}", dir.display()));
        }
    }
    Some(Cgroups(dirs))
}

fn read(dir: &Path, file: &str) -> String {
    let path = dir.join(file);
    fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("{}: {err}", path.display()))
        .trim()
        .to_owned()
}

/// The cgroup of process `pid` in the hierarchy of `controller` (`""`: the
/// unified one), from `/proc/<pid>/cgroup`.
fn cgroup_of(pid: u32, controller: &str) -> String {
    let lines = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    lines
        .lines()
        .find_map(|line| {
            let mut fields = line.splitn(3, ':');
            let controllers = fields.nth(1)?;
            let bound = match controller {
                "" => controllers.is_empty(),
                name => controllers.split(',').any(|c| c == name),
            };
            if bound { fields.next() } else { None }
        })
        .unwrap_or_else(|| panic!("no `{controller}` line in {lines}"))
        .to_owned()
}

#[tokio::test]
async fn the_node_runs_in_cgroups_of_its_own_with_the_limits_and_reports_them() {
    let name = unique_name("v1");
    let Some(cgroups) = v1_cgroups(&name) else {
        return;
    };
    let dir = home();
    let node = start(
        dir.path(),
        &[
            ("DATASCALE_RESOURCES_CPU_QUOTA", "50"),
            ("DATASCALE_RESOURCES_MEMORY_LIMIT", "256"),
            ("DATASCALE_RESOURCES_CGROUP_NAME", &name),
        ],
    );
    let pid = node.child.id();
    for controller in ["cpu", "memory"] {
        assert_eq!(cgroup_of(pid, controller), format!("/{name}"));
    }
    let [cpu, memory] = &cgroups.0[..] else {
        unreachable!("a cpu and a memory cgroup")
    };
    assert_eq!(read(cpu, "cpu.cfs_period_us"), "100000");
    assert_eq!(read(cpu, "cpu.cfs_quota_us"), "50000");
    assert_eq!(
        read(memory, "memory.limit_in_bytes"),
        (256 * MIB).to_string()
    );

    let url = format!("http://{}", node.api);
    let output = run(dir.path(), &["status", "--url", &url], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let shown = stdout(&output);
    let expected = format!(
        "  limits  CPU 50% of one core, memory 256 MiB (set by DataScale; cgroup v1 {}, {})\n",
        cpu.display(),
        memory.display()
    );
    assert!(shown.contains(&expected), "{shown}");
    let output = run(dir.path(), &["status", "--url", &url, "-o", "json"], &[]);
    let status: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        status["resources"],
        json!({
            "source": "cgroup",
            "cgroup_version": "v1",
            "cpu_cgroup": cpu,
            "memory_cgroup": memory,
            "cpu_quota_percent": 50.0,
            "memory_limit_bytes": 256 * MIB,
        })
    );

    let metrics = reqwest::get(node.api_url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for series in [
        "datascale_resources_cpu_quota_percent{source=\"cgroup\"} 50\n",
        "datascale_resources_memory_limit_bytes{source=\"cgroup\"} 268435456\n",
    ] {
        assert!(metrics.contains(series), "{series} missing from {metrics}");
    }
    let (status, _) = node.terminate(Duration::from_secs(20));
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn a_command_beyond_the_memory_limit_is_killed_and_the_node_lives_on() {
    let name = unique_name("oom");
    let Some(cgroups) = v1_cgroups(&name) else {
        return;
    };
    let dir = home();
    let mut node = start(
        dir.path(),
        &[
            ("DATASCALE_RESOURCES_MEMORY_LIMIT", "64"),
            ("DATASCALE_RESOURCES_CGROUP_NAME", &name),
        ],
    );
    let memory = &cgroups.0[1];
    // The command shares the node's 64 MiB and keeps 256 MiB of zeros in
    // `tail`. Its shell gives itself and its children the highest OOM
    // score, so that the kernel's choice in the cgroup is `tail` however
    // much the node itself uses; the shell then prints how `tail` ended.
    let out = dir.path().join("out.json");
    let document = json!({
        "name": "oom",
        "sources": [{"name": "hog", "type": "exec", "conf": {
            "command": "echo 1000 > /proc/self/oom_score_adj; head -c 256M /dev/zero | tail -c 256M > /dev/null; echo \"tail exited $?\"",
            "mode": "streaming",
            "streaming": {"respawn_on_exit": false}
        }}],
        "sinks": [{"name": "out", "type": "file", "inputs": ["hog"],
                   "conf": {"path": out.display().to_string()}}]
    });
    let api = Api::admin(&node, dir.path());
    let answer = api
        .put("/api/v1/groups/default/dataflows/oom", &document)
        .await;
    assert!(answer.status < 300, "{}", answer.body);

    let mut ended = None;
    wait_until(Duration::from_secs(60), "end of the command", || {
        ended = json_lines(&out).iter().find_map(|event| {
            let message = event["message"].as_str()?;
            message
                .starts_with("tail exited")
                .then(|| message.to_owned())
        });
        ended.is_some()
    });
    assert_eq!(
        ended.as_deref(),
        Some("tail exited 137"),
        "killed by SIGKILL (128 + 9)"
    );
    let oom_kills: u64 = read(memory, "memory.oom_control")
        .lines()
        .find_map(|line| line.strip_prefix("oom_kill "))
        .expect("memory.oom_control counts OOM kills")
        .parse()
        .unwrap();
    assert!(
        oom_kills >= 1,
        "the kernel's OOM killer acted in the cgroup"
    );
    assert!(read(memory, "memory.failcnt").parse::<u64>().unwrap() > 0);

    assert!(node.child.try_wait().unwrap().is_none(), "the node runs");
    assert_eq!(api.get("/api/v1/health").await.status, 200);
    let members = read(memory, "cgroup.procs");
    assert!(
        members
            .lines()
            .any(|pid| pid == node.child.id().to_string()),
        "the node is still in its cgroup: {members}"
    );
    let (status, _) = node.terminate(Duration::from_secs(20));
    assert!(status.success(), "{status:?}");
}

/// A filesystem the test mounted, unmounted when dropped.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let unmounted = Command::new("umount").arg(&self.0).status();
        if !unmounted.is_ok_and(|status| status.success()) {
            eprintln!("cannot unmount {}", self.0.display());
        }
    }
}

/// cgroup v2 on a cgroup2 filesystem mounted by the test, chosen with
/// `resources.cgroup_root`. Where the host's kernel binds cpu and memory to
/// cgroup v1 (as on hybrid hosts), no cgroup v2 mount can offer them, a
/// container's included, since it shares the kernel: the test then checks
/// that start refuses and names what the v2 hierarchy lacks.
#[test]
fn cgroup_v2_limits_on_a_cgroup2_filesystem_or_the_reason_it_lacks_them() {
    if !root_for("mounting a cgroup2 filesystem") {
        return;
    }
    let mount_dir = tempfile::tempdir().unwrap();
    let root = mount_dir.path().to_owned();
    let mount = Command::new("mount")
        .args(["-t", "cgroup2", "none"])
        .arg(&root)
        .output()
        .unwrap();
    if !mount.status.success() {
        eprintln!(
            "skipped: cannot mount a cgroup2 filesystem: {}",
            stderr(&mount)
        );
        return;
    }
    let _mounted = Mounted(root.clone());
    let name = unique_name("v2");
    let own = root.join(&name);
    let _cgroups = Cgroups(vec![own.clone()]);
    let env = [
        ("DATASCALE_RESOURCES_CPU_QUOTA", "50"),
        ("DATASCALE_RESOURCES_MEMORY_LIMIT", "256"),
        ("DATASCALE_RESOURCES_CGROUP_NAME", name.as_str()),
        ("DATASCALE_RESOURCES_CGROUP_ROOT", root.to_str().unwrap()),
    ];
    let offered = read(&root, "cgroup.controllers");
    let dir = home();
    if offered.split(' ').any(|c| c == "cpu") && offered.split(' ').any(|c| c == "memory") {
        let node = start(dir.path(), &env);
        assert_eq!(cgroup_of(node.child.id(), ""), format!("/{name}"));
        assert_eq!(read(&own, "cpu.max"), "50000 100000");
        assert_eq!(read(&own, "memory.max"), (256 * MIB).to_string());
        let url = format!("http://{}", node.api);
        let output = run(dir.path(), &["status", "--url", &url, "-o", "json"], &[]);
        let status: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(status["resources"]["cgroup_version"], "v2");
        assert_eq!(status["resources"]["memory_cgroup"], json!(own));
        assert_eq!(status["resources"]["cpu_quota_percent"], 50.0);
        return;
    }
    eprintln!(
        "cgroup v2 here offers `{offered}`, not cpu and memory (bound to cgroup v1): checking the refusal"
    );
    let output = run(dir.path(), &["start"], &env);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    let offered = if offered.is_empty() { "none" } else { &offered };
    let reason = format!(
        "(no cgroup hierarchy offers the cpu controller: the cgroup v1 cpu controller is not mounted, and the cgroup v2 hierarchy at {} does not offer it (its cgroup.controllers: {offered}) at or below {} (resources.cgroup_root))",
        root.display(),
        root.display()
    );
    assert!(message.contains(&reason), "{message}");
    assert!(!own.exists(), "nothing is made when the controllers lack");
}

#[test]
fn without_root_start_says_what_a_limit_needs_and_how_to_turn_it_off() {
    let dir = home();
    let name = unique_name("unprivileged");
    let output = unprivileged(dir.path())
        .arg("start")
        .env_clear()
        .envs([
            ("DATASCALE_SERVICE_ADDRESS", "127.0.0.1:0"),
            ("DATASCALE_SERVICE_UI_ADDRESS", "127.0.0.1:0"),
            ("DATASCALE_RESOURCES_MEMORY_LIMIT", "256"),
            ("DATASCALE_RESOURCES_CGROUP_NAME", &name),
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(
        message.starts_with(
            "error: setting [resources] memory_limit = 256 needs root and a writable cgroup filesystem ("
        ) && message.trim_end().ends_with(
                "run as root, install the systemd unit with `datascale service install`, or set memory_limit = 0"
            ),
        "{message}"
    );
}
