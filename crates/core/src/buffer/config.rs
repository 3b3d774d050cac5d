//! A sink's `buffer` settings, as a dataflow document gives them.

use serde::{Deserialize, Serialize};

/// `buffer` of a sink: where its events wait until it has written them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BufferConfig {
    /// `memory` or `disk`.
    #[serde(rename = "type", default)]
    pub kind: BufferType,
    /// Most bytes a disk buffer keeps.
    #[serde(default = "default_disk_buffer_max_size")]
    pub max_size: u64,
    /// What happens to new events while a disk buffer is full.
    #[serde(default)]
    pub when_full: WhenFull,
}

impl Default for BufferConfig {
    fn default() -> Self {
        Self {
            kind: BufferType::Memory,
            max_size: default_disk_buffer_max_size(),
            when_full: WhenFull::Block,
        }
    }
}

/// Where a sink's events wait.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BufferType {
    /// In memory: a channel of a few batches; when it is full, upstream
    /// waits. Sources that can wait (files, commands) lose nothing; sources
    /// that cannot (UDP syslog) drop what arrives meanwhile.
    #[default]
    Memory,
    /// On disk, below `data_dir/buffers/`: a batch is acknowledged to its
    /// source once it is fsynced there, and it survives restarts and crashes
    /// of the process until the sink has written it.
    Disk,
}

/// What a full buffer does with new events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Upstream waits until the sink has written enough to make room.
    #[default]
    Block,
    /// New events are discarded (and counted) until there is room again.
    DropNewest,
}

/// The smallest `max_size` of a disk buffer: room for a few segments.
pub const MIN_DISK_BUFFER_BYTES: u64 = 1 << 20;

fn default_disk_buffer_max_size() -> u64 {
    256 << 20
}

impl BufferConfig {
    /// Problems the shape of `buffer` does not catch: (path below `buffer`, message).
    pub fn problems(&self) -> Vec<(String, String)> {
        let default = Self::default();
        let mut problems = Vec::new();
        match self.kind {
            BufferType::Disk if self.max_size < MIN_DISK_BUFFER_BYTES => problems.push((
                "max_size".to_owned(),
                format!(
                    "must be at least {MIN_DISK_BUFFER_BYTES} bytes (1 MiB); it is {}",
                    self.max_size
                ),
            )),
            BufferType::Disk => {}
            BufferType::Memory => {
                for (field, set) in [
                    ("max_size", self.max_size != default.max_size),
                    ("when_full", self.when_full != default.when_full),
                ] {
                    if set {
                        problems.push((
                            field.to_owned(),
                            "applies to disk buffers only; set `type` to `disk`".to_owned(),
                        ));
                    }
                }
            }
        }
        problems
    }
}
