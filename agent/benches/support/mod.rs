//! What the benchmarks read of a process they started: its CPU time and
//! memory, from `/proc`.

#![allow(
    dead_code,
    reason = "each benchmark uses a different part of these functions"
)]

/// Fields of `/proc/PID/stat` after the command name.
pub fn stat_fields(stat: &str) -> Vec<&str> {
    stat.rfind(')')
        .map_or(Vec::new(), |end| stat[end + 2..].split(' ').collect())
}

/// User and system CPU seconds of a process (USER_HZ is 100 on Linux).
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields = stat_fields(&stat);
    let ticks = |at: usize| {
        fields
            .get(at)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// A `kB` line of `/proc/PID/status`, such as `VmHWM:`.
pub fn status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}
