//! `GET /api/v1/overview`: the counts the monitoring dashboard shows:
//! managers, workers by state, groups, dataflows, and components by kind
//! and type; and `GET /api/v1/overview/rates`: each group's events in and
//! out per second over the last hour, for its charts.

use std::collections::BTreeMap;

use axum::{Json, extract::State};
use chrono::Utc;
use datascale_http::{ApiError, VERSION};
use datascale_protocol::Mode;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{AdminErrors, ManagerState};
use crate::workers::{WorkerState, rates::RateSeries};

pub(super) fn router() -> OpenApiRouter<ManagerState> {
    OpenApiRouter::new()
        .routes(routes!(overview))
        .routes(routes!(rates))
}

/// Body of `GET /api/v1/overview`.
#[derive(Debug, Serialize, ToSchema)]
struct Overview {
    cluster_name: String,
    /// The store's cluster revision.
    revision: u64,
    managers: Vec<ManagerSummary>,
    workers: WorkerCounts,
    groups: usize,
    dataflows: usize,
    components: ComponentCounts,
}

#[derive(Debug, Serialize, ToSchema)]
struct ManagerSummary {
    address: String,
    mode: Mode,
    version: &'static str,
}

/// Workers by state.
#[derive(Debug, Default, Serialize, ToSchema)]
struct WorkerCounts {
    total: usize,
    online: usize,
    suspect: usize,
    offline: usize,
}

/// Components of every stored dataflow, by kind and by type.
#[derive(Debug, Default, Serialize, ToSchema)]
struct ComponentCounts {
    sources: usize,
    pipelines: usize,
    sinks: usize,
    by_type: BTreeMap<String, usize>,
}

/// The counts the monitoring dashboard shows.
#[utoipa::path(
    get,
    path = "/api/v1/overview",
    tag = "cluster",
    responses(
        (status = 200, description = "Managers, workers by state, groups, dataflows and components", body = Overview),
        AdminErrors
    )
)]
async fn overview(State(state): State<ManagerState>) -> Result<Json<Overview>, ApiError> {
    let node = &state.api.node;
    let groups = state.store.groups().await?;
    let dataflows = state.store.dataflows(None).await?;
    let mut components = ComponentCounts::default();
    for stored in &dataflows {
        for (kind, count) in [
            ("sources", &mut components.sources),
            ("pipelines", &mut components.pipelines),
            ("sinks", &mut components.sinks),
        ] {
            let listed = stored.document[kind].as_array().map(Vec::as_slice);
            for component in listed.unwrap_or_default() {
                *count += 1;
                let kind_type = component["type"].as_str().unwrap_or("unknown");
                *components.by_type.entry(kind_type.to_owned()).or_default() += 1;
            }
        }
    }
    // A standalone node's own worker is online while the node answers.
    let local = usize::from(state.api.worker.is_some());
    let mut workers = WorkerCounts {
        total: local,
        online: local,
        ..WorkerCounts::default()
    };
    for view in state.workers.views().await? {
        workers.total += 1;
        *match view.state {
            WorkerState::Online => &mut workers.online,
            WorkerState::Suspect => &mut workers.suspect,
            WorkerState::Offline => &mut workers.offline,
        } += 1;
    }
    Ok(Json(Overview {
        cluster_name: node.cluster_name.clone(),
        revision: state.store.revision().await?,
        managers: vec![ManagerSummary {
            address: node.api_address.to_string(),
            mode: node.mode,
            version: VERSION,
        }],
        workers,
        groups: groups.len(),
        dataflows: dataflows.len(),
        components,
    }))
}

/// Each group's events in and out per second over the last hour, in steps,
/// from the counters in workers' heartbeats (and a standalone node's own
/// worker).
#[utoipa::path(
    get,
    path = "/api/v1/overview/rates",
    operation_id = "overview_rates",
    tag = "cluster",
    responses(
        (status = 200, description = "The rates of each group that counted events in the last hour", body = RateSeries),
        AdminErrors
    )
)]
async fn rates(State(state): State<ManagerState>) -> Json<RateSeries> {
    Json(state.workers.rates().series(Utc::now()))
}
