//! The Ansible toolkit against real hosts: three test host containers
//! (systemd, sshd; see `support::test_hosts`) become master1, worker1 and
//! worker2. `packaging/build.sh` packs the binary under test; the toolkit
//! bundle, unpacked with the agent tarball in `playbook/files/` as its
//! README says, then runs from this machine over SSH:
//!
//! - `site.yml --check` on the new hosts changes nothing;
//! - `site.yml` installs the cluster: the service is active everywhere, both
//!   workers are online in their groups, each runs the dataflows of its
//!   group, and the events of both reach the seeded event set;
//! - a second `site.yml` reports `changed=0`, as does `--check`;
//! - `upgrade.yml` with a rebuilt tarball restarts the workers one at a
//!   time, while lines keep being appended to the file a seeded dataflow
//!   follows, and every line reaches the manager;
//! - `uninstall.yml` leaves no unit, no process and no install directory.
//!
//! The Ansible it runs is `ansible-core` of `agent/tests/requirements.txt`.

use std::{
    collections::{BTreeSet, HashMap},
    path::{Path, PathBuf},
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::Duration,
};

use serde_json::{Value, json};

use crate::support::{
    Api, build_packages, checked, eventually, run_tool,
    test_hosts::{Host, Hosts, docker_available},
    tool,
};

const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The file the `lines` dataflows follow on each worker.
const LINES_FILE: &str = "/srv/rollout/lines.log";
/// The event set they send it to.
const LINES_SET: &str = "rollout_lines";

/// The unpacked toolkit, its inventory of the test hosts, and where
/// Ansible keeps its state.
struct Toolkit {
    dir: PathBuf,
    inventory: PathBuf,
    ansible_home: PathBuf,
}

/// Builds both tarballs of the binary under test into `out`, dated `epoch`
/// (so that two builds differ), and returns the agent tarball.
fn build(out: &Path, epoch: &str) -> PathBuf {
    build_packages(out, epoch);
    out.join(format!("datascale-{VERSION}-x86_64-linux.tar.gz"))
}

/// The toolkit as an operator has it: unpacked, the agent tarball in
/// `playbook/files/`, the test's own dataflows added to `config/`, and an
/// inventory of the test hosts.
fn unpack(work: &Path, out: &Path, agent: &Path, hosts: &Hosts) -> Toolkit {
    checked(
        Command::new("tar")
            .arg("-xzf")
            .arg(out.join(format!("datascale-ansible-{VERSION}.tar.gz")))
            .arg("-C")
            .arg(work),
    );
    let dir = work.join("datascale-ansible");
    std::fs::copy(
        agent,
        dir.join("playbook/files").join(agent.file_name().unwrap()),
    )
    .unwrap();
    for group in ["default", "another_group"] {
        let document = json!({
            "name": "lines",
            "sources": [{"name": "file", "type": "file",
                         "conf": {"include": [LINES_FILE], "read_from": "beginning",
                                  "glob_minimum_cooldown_ms": 200}}],
            "sinks": [{"name": "manager", "type": "yh", "inputs": ["file"],
                       "conf": {"event_set": LINES_SET}}]
        });
        std::fs::write(
            dir.join(format!("config/dataflows/{group}/lines.json")),
            document.to_string(),
        )
        .unwrap();
    }
    let address = |name: &str| &hosts.get(name).ip;
    let inventory = work.join("inventory");
    std::fs::write(
        &inventory,
        format!(
            "[manager]\n\
             master1 ansible_host={}\n\
             [worker]\n\
             worker1 ansible_host={} datascale_groups='[\"default\"]'\n\
             worker2 ansible_host={} datascale_groups='[\"another_group\"]'\n\
             [all:vars]\n\
             ansible_user=root\n\
             ansible_ssh_private_key_file={}\n\
             ansible_python_interpreter=/usr/bin/python3\n",
            address("master1"),
            address("worker1"),
            address("worker2"),
            hosts.key.display()
        ),
    )
    .unwrap();
    Toolkit {
        dir,
        inventory,
        ansible_home: work.join("ansible-home"),
    }
}

impl Toolkit {
    /// Runs `playbook/<playbook>` with `args`; fails the test when it
    /// fails, and returns its output.
    fn play(&self, playbook: &str, args: &[&str]) -> String {
        let mut command = tool("ansible-playbook");
        command
            .current_dir(&self.dir)
            .arg("-i")
            .arg(&self.inventory)
            .arg(format!("playbook/{playbook}"))
            .args(["-e", &format!("datascale_version={VERSION}")])
            .args(args)
            .env("ANSIBLE_HOME", &self.ansible_home)
            .env("ANSIBLE_HOST_KEY_CHECKING", "False")
            .env("ANSIBLE_PIPELINING", "True")
            .env("ANSIBLE_FORKS", "3")
            .env("ANSIBLE_NOCOLOR", "1")
            .env("ANSIBLE_RETRY_FILES_ENABLED", "False")
            .env(
                "ANSIBLE_SSH_ARGS",
                "-o ControlMaster=auto -o ControlPersist=30s -o UserKnownHostsFile=/dev/null",
            );
        let output = run_tool(command);
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "ansible-playbook {playbook} {args:?} failed ({}):\n{text}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        eprintln!(
            "ansible-playbook {playbook} {args:?}: {}",
            recap_text(&text)
        );
        text
    }
}

/// The PLAY RECAP of a play's output.
fn recap_text(output: &str) -> &str {
    output
        .rfind("PLAY RECAP")
        .map_or(output, |start| &output[start..])
}

/// `changed=` per host, from the PLAY RECAP.
fn changed(output: &str) -> HashMap<String, u32> {
    recap_text(output)
        .lines()
        .skip(1)
        .filter_map(|line| {
            let (host, counts) = line.split_once(':')?;
            let count = counts
                .split_whitespace()
                .find_map(|field| field.strip_prefix("changed="))?;
            Some((host.trim().to_owned(), count.parse().ok()?))
        })
        .collect()
}

/// The worker hosts the results of the play `play` name, in order, with
/// repeats of the same host in a row folded into one.
fn worker_turns(output: &str, play: &str) -> Vec<String> {
    let start = output
        .find(&format!("PLAY [{play}]"))
        .unwrap_or_else(|| panic!("no play {play:?} in:\n{output}"));
    let mut turns: Vec<String> = Vec::new();
    for line in output[start..].lines() {
        if line.starts_with("PLAY RECAP") {
            break;
        }
        let host = ["ok: [", "changed: [", "skipping: [", "fatal: ["]
            .iter()
            .find_map(|prefix| line.strip_prefix(prefix))
            .and_then(|rest| rest.split([']', ' ']).next());
        if let Some(host) = host
            && turns.last().is_none_or(|last| last != host)
        {
            turns.push(host.to_owned());
        }
    }
    turns
}

/// Appends `count` numbered lines, from `first` on, to the lines file of
/// `host`.
fn append_lines_on(host: &Host, first: u64, count: u64) {
    let last = first + count - 1;
    host.sh(&format!(
        "mkdir -p {dir} && seq -f '{name}-%g' {first} {last} >> {LINES_FILE}",
        dir = Path::new(LINES_FILE).parent().unwrap().display(),
        name = host.name
    ));
}

/// The main PID of the datascale service on `host`.
fn main_pid(host: &Host) -> String {
    host.sh("systemctl show datascale -p MainPID --value")
}

/// The messages of the events of `set` from `hostname`.
async fn messages(api: &Api, set: &str, hostname: &str) -> BTreeSet<String> {
    let answer = api
        .get(&format!(
            "/api/v1/event_sets/{set}/events?q=host:{hostname}&limit=10000"
        ))
        .await;
    if answer.status != 200 {
        return BTreeSet::new();
    }
    answer.body["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|event| event["message"].as_str().map(str::to_owned))
        .collect()
}

/// The manager's view of its workers, by host name.
async fn workers(api: &Api) -> HashMap<String, Value> {
    let answer = api.get("/api/v1/workers").await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|worker| {
            (
                worker["hostname"].as_str().unwrap().to_owned(),
                worker.clone(),
            )
        })
        .collect()
}

/// The dataflows a worker's last heartbeat reports running, as `group/name`.
fn running(worker: &Value) -> BTreeSet<String> {
    worker["status"]["dataflows"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|dataflow| dataflow["state"] == "running")
        .map(|dataflow| {
            format!(
                "{}/{}",
                dataflow["group"].as_str().unwrap(),
                dataflow["name"].as_str().unwrap()
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_toolkit_installs_upgrades_and_removes_a_cluster() {
    if !docker_available() {
        return;
    }
    let hosts = Hosts::start(&["master1", "worker1", "worker2"]);
    let (master1, worker1, worker2) = (
        hosts.get("master1"),
        hosts.get("worker1"),
        hosts.get("worker2"),
    );
    let work = tempfile::tempdir().unwrap();
    let first = work.path().join("first");
    let agent = build(&first, "1700000000");
    let toolkit = unpack(work.path(), &first, &agent, &hosts);

    // Check mode on new hosts: changes reported, nothing done.
    let check = toolkit.play("site.yml", &["--check"]);
    assert!(
        changed(&check).values().all(|&count| count > 0),
        "{}",
        recap_text(&check)
    );
    for host in &hosts.hosts {
        assert_eq!(
            host.sh("test -e /opt/datascale && echo present || echo absent"),
            "absent"
        );
    }

    const BEFORE: u64 = 100;
    for worker in [worker1, worker2] {
        append_lines_on(worker, 1, BEFORE);
    }
    toolkit.play("site.yml", &[]);
    for host in &hosts.hosts {
        assert_eq!(
            host.sh("systemctl is-active datascale"),
            "active",
            "{}",
            host.name
        );
        assert_eq!(
            host.sh("systemctl is-enabled datascale"),
            "enabled",
            "{}",
            host.name
        );
    }
    let api = Api {
        base: format!("http://{}:7881", master1.ip),
        token: master1.sh("cat /opt/datascale/data/secrets/admin.token"),
        client: reqwest::Client::new(),
    };
    let expected = [
        (
            "worker1",
            "default",
            ["default/default_dataflow", "default/lines"],
        ),
        (
            "worker2",
            "another_group",
            ["another_group/another_dataflow", "another_group/lines"],
        ),
    ];
    let api = &api;
    eventually(
        Duration::from_secs(60),
        "workers running their groups' dataflows",
        || async move {
            let workers = workers(api).await;
            expected
                .iter()
                .all(|(name, group, dataflows)| {
                    workers.get(*name).is_some_and(|worker| {
                        worker["state"] == "online"
                            && worker["groups"] == json!([group])
                            && running(worker) == dataflows.iter().map(|d| d.to_string()).collect()
                    })
                })
                .then_some(())
        },
    )
    .await;
    for worker in ["worker1", "worker2"] {
        eventually(
            Duration::from_secs(60),
            "events of the seeded dataflow",
            || async move {
                (!messages(api, "my_datascale_cluster", worker)
                    .await
                    .is_empty())
                .then_some(())
            },
        )
        .await;
    }

    // Nothing to do the second time, nor in check mode.
    let again = toolkit.play("site.yml", &[]);
    assert!(
        changed(&again).values().all(|&count| count == 0),
        "{}",
        recap_text(&again)
    );
    assert_eq!(changed(&again).len(), 3, "{}", recap_text(&again));
    let check = toolkit.play("site.yml", &["--check"]);
    assert!(
        changed(&check).values().all(|&count| count == 0),
        "{}",
        recap_text(&check)
    );

    // Upgrade to a rebuilt tarball while lines keep coming.
    let second = work.path().join("second");
    let rebuilt = build(&second, "1700000600");
    std::fs::copy(
        &rebuilt,
        toolkit
            .dir
            .join("playbook/files")
            .join(rebuilt.file_name().unwrap()),
    )
    .unwrap();
    let pids: Vec<String> = hosts.hosts.iter().map(main_pid).collect();
    let writing = Arc::new(AtomicBool::new(true));
    let writer = {
        let writing = writing.clone();
        let workers = [worker1.clone(), worker2.clone()];
        thread::spawn(move || {
            let mut next = BEFORE + 1;
            while writing.load(Ordering::SeqCst) {
                for worker in &workers {
                    append_lines_on(worker, next, 10);
                }
                next += 10;
                // Pace the writes; nothing waits on this.
                thread::sleep(Duration::from_millis(300));
            }
            next - 1
        })
    };
    let upgrade = toolkit.play("upgrade.yml", &[]);
    writing.store(false, Ordering::SeqCst);
    let written = writer.join().unwrap();
    assert_eq!(
        worker_turns(&upgrade, "Upgrade the DataScale workers, one at a time"),
        ["worker1", "worker2"],
        "the workers did not upgrade one after the other:\n{upgrade}"
    );
    for (host, before) in hosts.hosts.iter().zip(&pids) {
        assert_ne!(&main_pid(host), before, "{} was not restarted", host.name);
        assert_eq!(
            host.sh("systemctl is-active datascale"),
            "active",
            "{}",
            host.name
        );
    }
    for worker in ["worker1", "worker2"] {
        let all: BTreeSet<String> = (1..=written).map(|n| format!("{worker}-{n}")).collect();
        let all = &all;
        eventually(
            Duration::from_secs(90),
            "every line in the event set",
            || async move {
                let got = messages(api, LINES_SET, worker).await;
                all.is_subset(&got).then_some(())
            },
        )
        .await;
    }

    let uninstall = toolkit.play("uninstall.yml", &["-e", "datascale_uninstall_purge=true"]);
    assert!(
        changed(&uninstall).values().all(|&count| count > 0),
        "{}",
        recap_text(&uninstall)
    );
    for host in &hosts.hosts {
        assert_eq!(
            host.sh("systemctl list-unit-files datascale.service | tail -1"),
            "0 unit files listed.",
            "{}",
            host.name
        );
        assert_eq!(
            host.sh("pgrep -x datascale || echo none"),
            "none",
            "{}",
            host.name
        );
        assert_eq!(
            host.sh("test -e /opt/datascale && echo present || echo absent"),
            "absent",
            "{}",
            host.name
        );
    }
}
