//! The dataflows of a group and their history:
//! `/api/v1/groups/{group}/dataflows[/{name}]`, `…/{name}/revisions[/{n}]`,
//! `…/revisions/{n}/restore`, and `POST /api/v1/dataflows/validate`. Every
//! document is validated before it is stored; on a node with a local worker
//! in the group, answers also carry that worker's status of the dataflow.

use std::time::Duration;

use axum::{
    Extension, Json, Router,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::IntoResponse,
    routing::{get, post},
};
use serde::Serialize;
use serde_json::{Value, json};

use super::{ManagerState, checked_name, etag, precondition};
use crate::{
    api::{ApiError, ApiJson, ApiPath},
    auth::Caller,
    dataflow::{self, ValidationError, ValidationErrors},
    manager::store::{Change, HistoryEntry, Outcome, Precondition, StoreError, StoredDataflow},
    worker::DataflowStatus,
};

pub(super) fn router() -> Router<ManagerState> {
    Router::new()
        .route("/api/v1/dataflows/validate", post(validate))
        .route("/api/v1/groups/{group}/dataflows", get(list).post(create))
        .route(
            "/api/v1/groups/{group}/dataflows/{name}",
            get(show).put(replace).delete(remove),
        )
        .route(
            "/api/v1/groups/{group}/dataflows/{name}/revisions",
            get(revisions),
        )
        .route(
            "/api/v1/groups/{group}/dataflows/{name}/revisions/{revision}",
            get(revision),
        )
        .route(
            "/api/v1/groups/{group}/dataflows/{name}/revisions/{revision}/restore",
            post(restore),
        )
}

/// A stored dataflow as the API shows it.
#[derive(Debug, Serialize)]
struct DataflowView {
    #[serde(flatten)]
    stored: StoredDataflow,
    /// What the write did, on answers to writes.
    #[serde(skip_serializing_if = "Option::is_none")]
    outcome: Option<Outcome>,
    /// The local worker's status of it, on a node that runs one in its group.
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<DataflowStatus>,
}

/// How long the answer to a write waits for the local worker to apply it.
const APPLY_WAIT: Duration = Duration::from_secs(10);

/// The view of a stored dataflow; after a write (`outcome` given), with the
/// local worker's status once it has applied the write, so that the answer
/// says whether the new revision runs.
async fn view(
    state: &ManagerState,
    stored: StoredDataflow,
    outcome: Option<Outcome>,
) -> DataflowView {
    let runs_group = state.api.node.worker_groups.contains(&stored.group);
    let status = match (&state.api.worker, runs_group) {
        (Some(worker), true) => {
            if outcome.is_some() {
                let revision = state.store.revision().await.unwrap_or(stored.revision);
                worker.wait_applied(revision, APPLY_WAIT).await;
            }
            worker.status(&stored.name).await
        }
        _ => None,
    };
    DataflowView {
        stored,
        outcome,
        status,
    }
}

fn written(view: DataflowView) -> impl IntoResponse {
    let status = match view.outcome {
        Some(Outcome::Created) => StatusCode::CREATED,
        _ => StatusCode::OK,
    };
    (status, etag(view.stored.revision), Json(view))
}

fn no_dataflow(group: &str, name: &str) -> ApiError {
    ApiError::NotFound(format!("no dataflow named `{name}` in group `{group}`"))
}

fn checked_names(group: &str, name: &str) -> Result<(), ApiError> {
    checked_name("group", group)?;
    checked_name("dataflow", name)
}

/// Validates a document; the name in it, when given, must be the one in the
/// path, and is filled in from the path when missing.
fn validated(mut document: Value, name: Option<&str>) -> Result<Value, ApiError> {
    if let (Some(name), Some(fields)) = (name, document.as_object_mut()) {
        match fields.get("name") {
            None => {
                fields.insert("name".to_owned(), json!(name));
            }
            Some(given) if given != name => {
                return Err(ApiError::InvalidDataflow(ValidationErrors(vec![
                    ValidationError {
                        path: "name".to_owned(),
                        message: format!(
                            "the document is named {given} but the path names `{name}`"
                        ),
                    },
                ])));
            }
            Some(_) => {}
        }
    }
    dataflow::parse(&document).map_err(ApiError::InvalidDataflow)?;
    Ok(document)
}

async fn validate(ApiJson(document): ApiJson<Value>) -> Result<Json<Value>, ApiError> {
    let dataflow = dataflow::parse(&document).map_err(ApiError::InvalidDataflow)?;
    let (sources, pipelines, sinks) = dataflow.counts();
    Ok(Json(json!({
        "valid": true,
        "name": dataflow.name,
        "components": {"sources": sources, "pipelines": pipelines, "sinks": sinks},
    })))
}

async fn list(
    State(state): State<ManagerState>,
    ApiPath(group): ApiPath<String>,
) -> Result<Json<Vec<DataflowView>>, ApiError> {
    checked_name("group", &group)?;
    if state.store.group(&group).await?.is_none() {
        return Err(ApiError::NotFound(format!("no group named `{group}`")));
    }
    let mut views = Vec::new();
    for stored in state.store.dataflows(Some(&group)).await? {
        views.push(view(&state, stored, None).await);
    }
    Ok(Json(views))
}

async fn create(
    State(state): State<ManagerState>,
    Extension(caller): Extension<Caller>,
    ApiPath(group): ApiPath<String>,
    ApiJson(document): ApiJson<Value>,
) -> Result<impl IntoResponse, ApiError> {
    checked_name("group", &group)?;
    let document = validated(document, None)?;
    let name = document["name"].as_str().unwrap_or_default().to_owned();
    let result = state
        .store
        .put_dataflow(
            &group,
            &name,
            &document,
            Precondition::Absent,
            &Change::by(&caller.name),
        )
        .await;
    match result {
        Ok(done) => Ok(written(view(&state, done.value, Some(done.outcome)).await)),
        Err(StoreError::PreconditionFailed { .. }) => Err(ApiError::Conflict(format!(
            "a dataflow named `{name}` already exists in group `{group}`; PUT /api/v1/groups/{group}/dataflows/{name} replaces it"
        ))),
        Err(err) => Err(err.into()),
    }
}

async fn show(
    State(state): State<ManagerState>,
    ApiPath((group, name)): ApiPath<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    checked_names(&group, &name)?;
    let stored = state
        .store
        .dataflow(&group, &name)
        .await?
        .ok_or_else(|| no_dataflow(&group, &name))?;
    let revision = stored.revision;
    Ok((etag(revision), Json(view(&state, stored, None).await)))
}

async fn replace(
    State(state): State<ManagerState>,
    Extension(caller): Extension<Caller>,
    ApiPath((group, name)): ApiPath<(String, String)>,
    headers: HeaderMap,
    ApiJson(document): ApiJson<Value>,
) -> Result<impl IntoResponse, ApiError> {
    checked_names(&group, &name)?;
    let document = validated(document, Some(&name))?;
    let done = state
        .store
        .put_dataflow(
            &group,
            &name,
            &document,
            precondition(&headers)?,
            &Change::by(&caller.name),
        )
        .await?;
    Ok(written(view(&state, done.value, Some(done.outcome)).await))
}

async fn remove(
    State(state): State<ManagerState>,
    Extension(caller): Extension<Caller>,
    ApiPath((group, name)): ApiPath<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    checked_names(&group, &name)?;
    let revision = state
        .store
        .delete_dataflow(
            &group,
            &name,
            precondition(&headers)?,
            &Change::by(&caller.name),
        )
        .await?;
    Ok(Json(
        json!({"deleted": name, "group": group, "revision": revision}),
    ))
}

async fn revisions(
    State(state): State<ManagerState>,
    ApiPath((group, name)): ApiPath<(String, String)>,
) -> Result<Json<Vec<HistoryEntry>>, ApiError> {
    checked_names(&group, &name)?;
    let history = state.store.history(&group, &name).await?;
    if history.is_empty() {
        return Err(ApiError::NotFound(format!(
            "no dataflow named `{name}` was ever stored in group `{group}`"
        )));
    }
    Ok(Json(history))
}

async fn history_entry(
    state: &ManagerState,
    group: &str,
    name: &str,
    revision: u64,
) -> Result<HistoryEntry, ApiError> {
    checked_names(group, name)?;
    state
        .store
        .history_entry(group, name, revision)
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "dataflow `{name}` of group `{group}` has no revision {revision}; GET …/revisions lists them"
            ))
        })
}

async fn revision(
    State(state): State<ManagerState>,
    ApiPath((group, name, revision)): ApiPath<(String, String, u64)>,
) -> Result<Json<HistoryEntry>, ApiError> {
    Ok(Json(history_entry(&state, &group, &name, revision).await?))
}

async fn restore(
    State(state): State<ManagerState>,
    Extension(caller): Extension<Caller>,
    ApiPath((group, name, revision)): ApiPath<(String, String, u64)>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    let entry = history_entry(&state, &group, &name, revision).await?;
    let document = entry.document.ok_or_else(|| {
        ApiError::Conflict(format!(
            "revision {revision} deleted dataflow `{name}`; restore a revision that stored it"
        ))
    })?;
    let document = validated(document, Some(&name))?;
    let change = Change {
        token: caller.name,
        restored_from: Some(revision),
    };
    let done = state
        .store
        .put_dataflow(&group, &name, &document, precondition(&headers)?, &change)
        .await?;
    Ok(written(view(&state, done.value, Some(done.outcome)).await))
}
