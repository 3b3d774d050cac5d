//! DataScale: a data-collection agent and the control plane of its fleet.
//!
//! One binary runs as a manager, a worker, or both (standalone). The crates
//! below it hold the layers (see docs/ARCHITECTURE.md): `datascale-core`,
//! `datascale-protocol`, `datascale-connections`, `datascale-dataflow`,
//! `datascale-http`, `datascale-manager`, `datascale-worker` and
//! `datascale-ui`. What only the binary knows is here: `cli` (the
//! commands), `config` (datascale.toml and its overrides, the one place the
//! configuration file exists), `node` (start-up and shutdown of a process:
//! each crate's settings made from the configuration, manager and worker
//! wired), `standalone` (a standalone node's manager and worker kept in
//! step, the one module that knows both), `resources` (cgroup limits),
//! `service` (the systemd unit) and `logging`.

pub mod cli;
pub mod config;
pub mod logging;
pub mod node;
pub mod resources;
pub mod service;
pub mod standalone;
