//! DataScale: a data-collection agent and the control plane of its fleet.
//!
//! One binary runs as a manager, a worker, or both (standalone). What every
//! layer shares (events, acknowledgements, the component API, metrics,
//! durable state, disk buffers) is the `datascale-core` crate; what
//! managers and workers exchange, `datascale-protocol`; the limits on the
//! connections every server holds open, `datascale-connections`; the Web
//! UI's assets, `datascale-ui`. The modules here are the concerns:
//! `config` (datascale.toml and its overrides), `cli`, `cluster` (the
//! protocol between workers and managers), `collector` (custom collectors:
//! manifest, packages, what a worker unpacked), `node` (start-up and
//! shutdown of a process), `api` (HTTP plumbing every node shares),
//! `auth` (tokens), `manager` (the
//! control plane), `logging`, `metrics` (`/metrics` in the Prometheus text
//! format), `resources` (cgroup limits), `runtime` (running dataflows),
//! `service` (the systemd unit), `worker` (the dataflows a node runs,
//! changed one at a time) and `standalone` (what ties a node's own manager
//! and worker together: the one module that knows both).

pub mod cli;

pub mod config;
pub mod logging;
pub mod node;
pub mod resources;
pub mod service;
pub mod standalone;
