//! The dataflow routes served by the local worker of a standalone node:
//! `GET|PUT|DELETE /api/v1/groups/{group}/dataflows[/{name}]` and
//! `POST /api/v1/dataflows/validate`. A PUT starts or replaces the dataflow
//! at once; the groups are the local worker's own.

use std::sync::Arc;

use axum::{
    Extension, Json, Router,
    body::Bytes,
    extract::{Path, State},
    http::StatusCode,
    routing::{get, post},
};
use serde_json::{Value, json};

use super::{ApiError, ApiState};
use crate::{
    auth::Role,
    dataflow::{self, Dataflow, ValidationError, ValidationErrors},
    worker::{Applied, DataflowStatus, LocalWorker},
};

/// The dataflow routes, for a node that runs a local worker.
pub fn router() -> Router<ApiState> {
    Router::new()
        .route("/api/v1/dataflows/validate", post(validate))
        .route("/api/v1/groups/{group}/dataflows", get(list))
        .route(
            "/api/v1/groups/{group}/dataflows/{name}",
            get(show).put(put).delete(remove),
        )
}

fn require_admin(role: Role, action: &'static str) -> Result<(), ApiError> {
    match role {
        Role::Admin => Ok(()),
        Role::Worker => Err(ApiError::Forbidden(action)),
    }
}

/// The local worker, when `group` is one of its groups.
fn worker_of<'a>(state: &'a ApiState, group: &str) -> Result<&'a Arc<LocalWorker>, ApiError> {
    let worker = state
        .worker
        .as_ref()
        .ok_or_else(|| ApiError::NotFound("this node runs no worker".to_owned()))?;
    if state.node.worker_groups.iter().any(|known| known == group) {
        Ok(worker)
    } else {
        Err(ApiError::NotFound(format!(
            "no group named `{group}`; this node runs: {}",
            state.node.worker_groups.join(", ")
        )))
    }
}

fn no_dataflow(name: &str, group: &str) -> ApiError {
    ApiError::NotFound(format!("no dataflow named `{name}` in group `{group}`"))
}

/// Parses and validates a body; the name in the document, when given, must
/// be the one in the path.
fn parse_body(body: &[u8], name: Option<&str>) -> Result<Dataflow, ApiError> {
    let mut document: Value = serde_json::from_slice(body)
        .map_err(|err| ApiError::BadRequest(format!("the body is not valid JSON: {err}")))?;
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
    dataflow::parse(&document).map_err(ApiError::InvalidDataflow)
}

async fn validate(body: Bytes) -> Result<Json<Value>, ApiError> {
    let dataflow = parse_body(&body, None)?;
    let (sources, pipelines, sinks) = dataflow.counts();
    Ok(Json(json!({
        "valid": true,
        "name": dataflow.name,
        "components": {"sources": sources, "pipelines": pipelines, "sinks": sinks},
    })))
}

async fn list(
    State(state): State<ApiState>,
    Path(group): Path<String>,
) -> Result<Json<Vec<DataflowStatus>>, ApiError> {
    Ok(Json(worker_of(&state, &group)?.statuses().await))
}

async fn show(
    State(state): State<ApiState>,
    Path((group, name)): Path<(String, String)>,
) -> Result<Json<DataflowStatus>, ApiError> {
    worker_of(&state, &group)?
        .status(&name)
        .await
        .map(Json)
        .ok_or_else(|| no_dataflow(&name, &group))
}

async fn put(
    State(state): State<ApiState>,
    Extension(role): Extension<Role>,
    Path((group, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    require_admin(role, "change dataflows")?;
    let worker = worker_of(&state, &group)?;
    let dataflow = parse_body(&body, Some(&name))?;
    let (applied, revision) = worker.apply(dataflow).await?;
    let status = match applied {
        Applied::Started => StatusCode::CREATED,
        Applied::Restarted | Applied::Unchanged => StatusCode::OK,
    };
    Ok((
        status,
        Json(json!({"name": name, "group": group, "revision": revision, "applied": applied})),
    ))
}

async fn remove(
    State(state): State<ApiState>,
    Extension(role): Extension<Role>,
    Path((group, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    require_admin(role, "delete dataflows")?;
    match worker_of(&state, &group)?.remove(&name).await {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(no_dataflow(&name, &group)),
    }
}
