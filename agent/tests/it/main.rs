//! The integration tests, in one binary: each module below tests one area
//! through the real `datascale` binary, which `support` starts and drives.
//! Every test runs in this one process, on parallel threads: what the
//! process has (its environment, current directory and limits) every test
//! has, and tests that must not overlap take a lock of `support`.

mod support;

mod ansible_lint;
mod ansible_rollout;
mod cli_manage;
mod cluster;
mod collectors;
mod connection_limits;
mod crash_repeats;
mod dataflow_cli;
mod disk_buffer;
mod enrollment;
mod event_sets;
mod exec_source;
mod file_source;
mod http_server_source;
mod http_sink;
mod manager_api;
mod metrics_sources;
mod node;
mod openapi;
mod packaging;
mod pipelines;
mod resources;
mod run;
mod service_render;
mod service_systemd;
mod standalone_dataflows;
mod syslog_source;
mod tap;
mod web_ui;
