//! Live taps over HTTP. For admins: watching a component of a stored
//! dataflow as a stream of server-sent events. For workers: the copies of
//! events they send to the watches (which they learn of with their sync).

use std::{convert::Infallible, time::Duration};

use crate::taps::{TapWatch, TappedEvent};
use axum::{
    Extension, Json,
    extract::State,
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
};
use datascale_core::tap::MAX_TAP_RATE;
use datascale_http::{
    ApiError, ApiJson, ApiPath, ApiQuery, DataflowName, ErrorBody, GroupName, auth::Caller,
};
use datascale_protocol::{TapDelivered, TappedEvents};
use futures_util::stream;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{AdminErrors, BodyErrors, ManagerState};

/// The routes admins call.
pub(super) fn admin_router() -> OpenApiRouter<ManagerState> {
    OpenApiRouter::new().routes(routes!(tap))
}

/// The routes workers call.
pub(super) fn worker_router() -> OpenApiRouter<ManagerState> {
    OpenApiRouter::new().routes(routes!(tapped_events))
}

/// The path of a component of a dataflow.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct ComponentPath {
    /// The group's name.
    #[param(value_type = String, pattern = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    group: GroupName,
    /// The dataflow's name.
    #[param(value_type = String, pattern = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    name: DataflowName,
    /// The component's name.
    #[param(pattern = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    component: String,
}

/// Query of the tap.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct TapQuery {
    /// The most events a second each worker sends (default 10).
    #[param(minimum = 1, maximum = 1000)]
    rate: Option<u32>,
}

/// The path of an open watch.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct TapPath {
    /// The watch's id.
    #[param(pattern = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    id: String,
}

/// Watches a component: copies of the events it puts out (a sink: takes
/// in) on every worker that runs the dataflow, at most `rate` a second from
/// each, as server-sent events named `event` whose data is
/// `{"worker": …, "event": {…}}`. The stream goes on until the client
/// closes it.
#[utoipa::path(
    get,
    path = "/api/v1/groups/{group}/dataflows/{name}/components/{component}/tap",
    operation_id = "tap_component",
    tag = "dataflows",
    params(ComponentPath, TapQuery),
    responses(
        (status = 200, description = "A stream of server-sent events", content_type = "text/event-stream", body = TappedEvent),
        (status = 400, description = "Bad name or rate", body = ErrorBody),
        AdminErrors,
        (status = 404, description = "No such dataflow, or no such component in it", body = ErrorBody)
    )
)]
async fn tap(
    State(state): State<ManagerState>,
    ApiPath(path): ApiPath<ComponentPath>,
    ApiQuery(query): ApiQuery<TapQuery>,
) -> Result<Response, ApiError> {
    let rate = query.rate.unwrap_or(10);
    if !(1..=MAX_TAP_RATE).contains(&rate) {
        return Err(ApiError::BadRequest(format!(
            "rate {rate}: give 1 to {MAX_TAP_RATE} events a second"
        )));
    }
    let stored = state
        .store
        .dataflow(&path.group, &path.name)
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "no dataflow `{}` in group `{}`",
                path.name, path.group
            ))
        })?;
    let components = datascale_dataflow::parse(&stored.document)
        .map(|parsed| parsed.component_names())
        .unwrap_or_default();
    if !components.contains(&path.component) {
        return Err(ApiError::NotFound(format!(
            "dataflow `{}` has no component `{}`; it has: {}",
            path.name,
            path.component,
            components.join(", ")
        )));
    }
    let watch = state
        .taps
        .open(&path.group, &path.name, &path.component, rate);
    let events = stream::unfold(watch, |mut watch: TapWatch| async move {
        let tapped = watch.next().await?;
        let event = Event::default()
            .event("event")
            .json_data(&tapped)
            .expect("a tapped event serializes");
        Some((Ok::<_, Infallible>(event), watch))
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

/// Copies of events a worker saw, for an open watch.
#[utoipa::path(
    post,
    path = "/api/v1/taps/{id}/events",
    operation_id = "tapped_events",
    tag = "cluster",
    params(TapPath),
    request_body = TappedEvents,
    responses(
        (status = 200, description = "How many the watcher had room for", body = TapDelivered),
        (status = 400, description = "Bad body", body = ErrorBody),
        (status = 401, description = "Not a worker's token", body = ErrorBody),
        (status = 403, description = "Not a worker's token", body = ErrorBody),
        (status = 404, description = "The watch is closed", body = ErrorBody),
        BodyErrors
    )
)]
async fn tapped_events(
    State(state): State<ManagerState>,
    Extension(caller): Extension<Caller>,
    ApiPath(TapPath { id }): ApiPath<TapPath>,
    ApiJson(copies): ApiJson<TappedEvents>,
) -> Result<Json<TapDelivered>, ApiError> {
    if let Some(index) = copies.events.iter().position(|event| !event.is_object()) {
        return Err(ApiError::BadRequest(format!(
            "events[{index}] is not a JSON object: every event is one"
        )));
    }
    let worker = caller.worker_id.as_deref().unwrap_or(&caller.name);
    state
        .taps
        .deliver(&id, worker, copies.events)
        .map(|accepted| Json(TapDelivered { accepted }))
        .ok_or_else(|| ApiError::NotFound(format!("no live tap `{id}` is open")))
}
