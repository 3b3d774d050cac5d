//! `/api/v1/groups[/{group}]`: list, create, read, create-or-replace and
//! delete groups of workers.

use axum::{
    Extension, Json, Router,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::IntoResponse,
    routing::get,
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ManagerState, checked_name, etag, precondition};
use crate::{
    api::{ApiError, ApiJson, ApiPath, ApiQuery},
    auth::Caller,
    manager::store::{Change, Group, Outcome, Precondition, StoreError},
};

pub(super) fn router() -> Router<ManagerState> {
    Router::new()
        .route("/api/v1/groups", get(list).post(create))
        .route(
            "/api/v1/groups/{group}",
            get(show).put(replace).delete(remove),
        )
}

/// Body of `POST /api/v1/groups`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewGroup {
    name: String,
    #[serde(default)]
    description: String,
}

/// Body of `PUT /api/v1/groups/{group}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupBody {
    /// Optional; when given, the name in the path.
    name: Option<String>,
    #[serde(default)]
    description: String,
}

/// Query of `DELETE /api/v1/groups/{group}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteGroup {
    /// Delete the group's dataflows with it.
    #[serde(default)]
    force: bool,
}

fn no_group(name: &str) -> ApiError {
    ApiError::NotFound(format!("no group named `{name}`"))
}

fn written(group: Group, outcome: Outcome) -> impl IntoResponse {
    let status = match outcome {
        Outcome::Created => StatusCode::CREATED,
        Outcome::Updated | Outcome::Unchanged => StatusCode::OK,
    };
    let revision = group.revision;
    let mut body = json!(group);
    body["outcome"] = json!(outcome);
    (status, etag(revision), Json(body))
}

async fn list(State(state): State<ManagerState>) -> Result<Json<Vec<Group>>, ApiError> {
    Ok(Json(state.store.groups().await?))
}

async fn create(
    State(state): State<ManagerState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<NewGroup>,
) -> Result<impl IntoResponse, ApiError> {
    checked_name("group", &body.name)?;
    let result = state
        .store
        .put_group(
            &body.name,
            &body.description,
            Precondition::Absent,
            &Change::by(&caller.name),
        )
        .await;
    match result {
        Ok(done) => Ok(written(done.value, done.outcome)),
        Err(StoreError::PreconditionFailed { .. }) => Err(ApiError::Conflict(format!(
            "a group named `{}` already exists; PUT /api/v1/groups/{} changes it",
            body.name, body.name
        ))),
        Err(err) => Err(err.into()),
    }
}

async fn show(
    State(state): State<ManagerState>,
    ApiPath(name): ApiPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    checked_name("group", &name)?;
    let group = state
        .store
        .group(&name)
        .await?
        .ok_or_else(|| no_group(&name))?;
    Ok((etag(group.revision), Json(group)))
}

async fn replace(
    State(state): State<ManagerState>,
    Extension(caller): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<GroupBody>,
) -> Result<impl IntoResponse, ApiError> {
    checked_name("group", &name)?;
    if let Some(given) = body.name.as_deref().filter(|given| *given != name) {
        return Err(ApiError::BadRequest(format!(
            "the body names the group `{given}` but the path names `{name}`"
        )));
    }
    let done = state
        .store
        .put_group(
            &name,
            &body.description,
            precondition(&headers)?,
            &Change::by(&caller.name),
        )
        .await?;
    Ok(written(done.value, done.outcome))
}

async fn remove(
    State(state): State<ManagerState>,
    Extension(caller): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(query): ApiQuery<DeleteGroup>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    checked_name("group", &name)?;
    let revision = state
        .store
        .delete_group(
            &name,
            precondition(&headers)?,
            query.force,
            &Change::by(&caller.name),
        )
        .await?;
    Ok(Json(json!({"deleted": name, "revision": revision})))
}
