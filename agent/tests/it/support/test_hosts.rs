//! Test hosts: Docker containers that boot like machines, with systemd as
//! PID 1 and sshd, on a private network of their own, reachable as root with
//! a key generated for the run. The image comes from
//! `scripts/test-hosts-image.sh` (debootstrap, cached by content hash).
//!
//! systemd needs, on top of an unprivileged container: `/run` and
//! `/run/lock` as tmpfs (it may not mount them itself), and the host's
//! cgroup hierarchy mounted read-write with the host's cgroup namespace
//! (Docker's own read-only view of cgroup v1 has no `name=systemd`
//! hierarchy where systemd could make `init.scope`, so it stops at boot);
//! `docker stop` sends it SIGRTMIN+3, its signal to shut down.
//!
//! Everything is removed when the [`Hosts`] value is dropped, also when the
//! test fails. One set of hosts runs at a time ([`ONE_SET`]): the tests that
//! boot them run in the same process, and would otherwise build the image
//! at the same time and boot their containers side by side.

use std::{
    io::Write,
    net::{SocketAddr, TcpStream},
    path::PathBuf,
    process::{Command, Output, Stdio},
    sync::{Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use super::{checked, repository};

/// How long a container may take to boot (systemd and sshd up).
const BOOT_LIMIT: Duration = Duration::from_secs(60);

/// The test hosts' image and the room for their containers: held by a
/// [`Hosts`] from before the image is built until its containers are gone.
static ONE_SET: Mutex<()> = Mutex::new(());

/// Standard output as text, trimmed.
fn trimmed_stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Whether Docker can run containers here. Where `CI` is set, a missing
/// Docker fails the test instead of skipping it.
pub fn docker_available() -> bool {
    let works = Command::new("docker")
        .arg("info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !works {
        assert!(
            std::env::var_os("CI").is_none(),
            "Docker is needed for the test hosts and does not answer (`docker info`)"
        );
        eprintln!("skipped: Docker does not answer (`docker info`); CI runs this test");
    }
    works
}

/// The test hosts' image, built when its tag is missing.
fn image() -> String {
    let output = checked(&mut Command::new(
        repository().join("scripts/test-hosts-image.sh"),
    ));
    trimmed_stdout(&output)
        .lines()
        .last()
        .unwrap_or_default()
        .to_owned()
}

/// One running test host.
#[derive(Debug, Clone)]
pub struct Host {
    /// Its host name, also its name on the network.
    pub name: String,
    /// The container's name.
    pub container: String,
    /// Its address on the network.
    pub ip: String,
}

impl Host {
    /// `docker exec` of `args` in the host.
    pub fn exec(&self, args: &[&str]) -> Output {
        Command::new("docker")
            .arg("exec")
            .arg(&self.container)
            .args(args)
            .output()
            .expect("docker runs")
    }

    /// Runs a shell command in the host; fails the test when it fails.
    pub fn sh(&self, script: &str) -> String {
        trimmed_stdout(&checked(Command::new("docker").args([
            "exec",
            &self.container,
            "sh",
            "-c",
            script,
        ])))
    }
}

/// Containers booted as hosts on a network of their own.
pub struct Hosts {
    pub hosts: Vec<Host>,
    /// The network, named after the run.
    pub network: String,
    /// The private key root logs in with (`key.pub` beside it).
    pub key: PathBuf,
    _keys: tempfile::TempDir,
    /// [`ONE_SET`], released after [`Drop`] removed the containers.
    _one_set: MutexGuard<'static, ()>,
}

impl Hosts {
    /// Boots one host per name and waits until systemd runs and sshd accepts
    /// connections on each.
    pub fn start(names: &[&str]) -> Self {
        // A test that failed holding it leaves nothing behind to wait for.
        let one_set = ONE_SET.lock().unwrap_or_else(PoisonError::into_inner);
        let image = image();
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let network = format!("datascale-test-{}-{nanos:x}", std::process::id());
        let keys = tempfile::tempdir().unwrap();
        let key = keys.path().join("key");
        checked(
            Command::new("ssh-keygen")
                .args([
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-C",
                    "datascale-test",
                    "-f",
                ])
                .arg(&key),
        );
        let mut hosts = Self {
            hosts: Vec::new(),
            network: network.clone(),
            key,
            _keys: keys,
            _one_set: one_set,
        };
        checked(Command::new("docker").args(["network", "create", &network]));
        for name in names {
            let container = format!("{network}-{name}");
            checked(Command::new("docker").args([
                "run",
                "--detach",
                "--name",
                &container,
                "--hostname",
                name,
                "--network",
                &network,
                "--network-alias",
                name,
                "--stop-signal",
                "SIGRTMIN+3",
                "--cgroupns=host",
                "--volume",
                "/sys/fs/cgroup:/sys/fs/cgroup:rw",
                "--tmpfs",
                "/run",
                "--tmpfs",
                "/run/lock",
                &image,
            ]));
            let ip = trimmed_stdout(&checked(Command::new("docker").args([
                "inspect",
                "--format",
                "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                &container,
            ])));
            hosts.hosts.push(Host {
                name: (*name).to_owned(),
                container,
                ip,
            });
        }
        let public_key = std::fs::read(hosts.key.with_extension("pub")).unwrap();
        for host in &hosts.hosts {
            host.wait_for_boot();
            let mut child = Command::new("docker")
                .args(["exec", "-i", &host.container, "sh", "-c"])
                .arg("cat > /root/.ssh/authorized_keys && chmod 0600 /root/.ssh/authorized_keys")
                .stdin(Stdio::piped())
                .spawn()
                .unwrap();
            child.stdin.take().unwrap().write_all(&public_key).unwrap();
            assert!(child.wait().unwrap().success());
        }
        hosts
    }

    /// The host named `name`.
    pub fn get(&self, name: &str) -> &Host {
        self.hosts
            .iter()
            .find(|host| host.name == name)
            .unwrap_or_else(|| panic!("no test host {name}"))
    }
}

impl Host {
    /// Waits until systemd has booted the host and sshd listens.
    fn wait_for_boot(&self) {
        let deadline = Instant::now() + BOOT_LIMIT;
        loop {
            let state = trimmed_stdout(&self.exec(&["systemctl", "is-system-running"]));
            let ssh: SocketAddr = format!("{}:22", self.ip).parse().unwrap();
            let booted = matches!(state.as_str(), "running" | "degraded");
            if booted && TcpStream::connect_timeout(&ssh, Duration::from_secs(1)).is_ok() {
                return;
            }
            if Instant::now() > deadline {
                let failed = trimmed_stdout(&self.exec(&["systemctl", "--failed", "--no-pager"]));
                panic!(
                    "{} did not boot within {BOOT_LIMIT:?} (systemd: {state:?}); failed units:\n{failed}",
                    self.name
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for host in &self.hosts {
            let _ = Command::new("docker")
                .args(["rm", "--force", "--volumes", &host.container])
                .output();
        }
        let _ = Command::new("docker")
            .args(["network", "rm", &self.network])
            .output();
    }
}
