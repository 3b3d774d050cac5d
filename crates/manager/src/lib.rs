//! The manager: the control plane. It owns the store of groups,
//! dataflows and collectors (`store/`), the collectors' packages
//! (`collectors`), the workers it knows and their liveness
//! (`workers/`), live taps passed from workers to people (`taps`), the
//! REST API over them (`api/`) and the audit log (`audit`). The Web UI
//! (the `datascale-ui` crate) is served on `service.ui_address` beside the
//! same API, so the UI calls the API on its own origin.

pub mod api;
pub mod audit;
pub mod collectors;
pub mod event_sets;
pub mod store;
pub mod taps;

pub mod workers;

pub use datascale_ui::ui_router;
