//! The manager: the control plane. It owns the store of groups,
//! dataflows and collectors (`store/`), the collectors' packages
//! (`collectors`), the workers it knows and their liveness
//! (`workers/`), live taps passed from workers to people (`taps`), the
//! REST API over them (`api/`), the audit log (`audit`),
//! and the Web UI's assets, served on `service.ui_address` beside
//! the same API, so the UI calls the API on its own origin.

pub mod api;
pub mod audit;
pub mod collectors;
pub mod event_sets;
pub mod store;
pub mod taps;
pub mod workers;

use axum::{Router, response::Html, routing::get};

const INDEX_HTML: &str = include_str!("ui/index.html");

/// The Web UI: its pages, and the API under `/api/v1` on the same origin.
pub fn ui_router(api: Router) -> Router {
    Router::new()
        .route("/", get(|| async { Html(INDEX_HTML) }))
        .merge(api)
}
