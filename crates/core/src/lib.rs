//! The ground every other DataScale crate stands on: events and their
//! acknowledgements (`event`, `ack`), the API components are written
//! against (`component`), the counters every component keeps and the
//! registry they are read from (`metrics`), where a component can be
//! watched (`tap`), crash-safe state files and the saving of read
//! positions (`durable`, `saving`), disk buffers and their settings
//! (`buffer`), names (`names`) and the wait between retries (`backoff`).
//! It imports no other crate of the workspace.

pub mod ack;
pub mod backoff;
pub mod buffer;
pub mod component;
pub mod durable;
pub mod event;
pub mod metrics;
pub mod names;
pub mod saving;
pub mod tap;
