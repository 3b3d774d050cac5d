//! `/api/v1/groups[/{group}]`: list, create, read, create-or-replace and
//! delete groups of workers.

use axum::{
    Extension, Json,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::IntoResponse,
};
use datascale_http::{ApiError, ApiJson, ApiPath, ApiQuery, ErrorBody, GroupName, auth::Caller};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    AdminErrors, BodyErrors, GroupPath, ManagerState, etag, precondition, schema::IfNoneMatch,
};
use crate::store::{Change, Group, Outcome, Precondition, StoreError};

pub(super) fn router() -> OpenApiRouter<ManagerState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, replace, remove))
}

/// Body of `POST /api/v1/groups`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewGroup {
    /// Letters, digits, `_`, `-` and `.`, starting with a letter or digit;
    /// at most 64 characters.
    #[schema(value_type = String, pattern = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    name: GroupName,
    /// Free text for people.
    #[serde(default)]
    description: String,
}

/// Body of `PUT /api/v1/groups/{group}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct GroupBody {
    /// Optional; when given, the name in the path.
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    name: Option<String>,
    /// Free text for people.
    #[serde(default)]
    description: String,
}

/// Query of `DELETE /api/v1/groups/{group}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct DeleteGroup {
    /// Delete the group's dataflows with it.
    #[serde(default)]
    force: bool,
}

fn no_group(name: &str) -> ApiError {
    ApiError::NotFound(format!("no group named `{name}`"))
}

/// A group after a write, and what the write did.
#[derive(Debug, Serialize, ToSchema)]
struct WrittenGroup {
    #[serde(flatten)]
    group: Group,
    outcome: Outcome,
}

/// The answer to a deletion.
#[derive(Debug, Serialize, ToSchema)]
struct DeletedGroup {
    /// The group's name.
    deleted: String,
    /// The revision of the deletion.
    revision: u64,
}

fn written(group: Group, outcome: Outcome) -> impl IntoResponse {
    let status = match outcome {
        Outcome::Created => StatusCode::CREATED,
        Outcome::Updated | Outcome::Unchanged => StatusCode::OK,
    };
    let revision = group.revision;
    (
        status,
        etag(revision),
        Json(WrittenGroup { group, outcome }),
    )
}

/// Every group, by name.
#[utoipa::path(
    get,
    path = "/api/v1/groups",
    operation_id = "list_groups",
    tag = "groups",
    responses(
        (status = 200, description = "The groups", body = Vec<Group>),
        AdminErrors
    )
)]
async fn list(State(state): State<ManagerState>) -> Result<Json<Vec<Group>>, ApiError> {
    Ok(Json(state.store.groups().await?))
}

/// Creates a group.
#[utoipa::path(
    post,
    path = "/api/v1/groups",
    operation_id = "create_group",
    tag = "groups",
    request_body = NewGroup,
    responses(
        (status = 201, description = "Created; the ETag is its revision", body = WrittenGroup),
        (status = 400, description = "Bad name or body", body = ErrorBody),
        AdminErrors,
        (status = 409, description = "A group of that name exists", body = ErrorBody),
        BodyErrors
    )
)]
async fn create(
    State(state): State<ManagerState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<NewGroup>,
) -> Result<impl IntoResponse, ApiError> {
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

/// One group.
#[utoipa::path(
    get,
    path = "/api/v1/groups/{group}",
    operation_id = "get_group",
    tag = "groups",
    params(GroupPath),
    responses(
        (status = 200, description = "The group; the ETag is its revision", body = Group),
        (status = 400, description = "Bad name", body = ErrorBody),
        AdminErrors,
        (status = 404, description = "No such group", body = ErrorBody)
    )
)]
async fn show(
    State(state): State<ManagerState>,
    ApiPath(GroupPath { group: name }): ApiPath<GroupPath>,
) -> Result<impl IntoResponse, ApiError> {
    let group = state
        .store
        .group(&name)
        .await?
        .ok_or_else(|| no_group(&name))?;
    Ok((etag(group.revision), Json(group)))
}

/// Creates or changes a group.
#[utoipa::path(
    put,
    path = "/api/v1/groups/{group}",
    operation_id = "put_group",
    tag = "groups",
    params(
        GroupPath,
        ("If-Match" = Option<String>, Header, nullable = false, pattern = r#"^(\*|[0-9]{1,19}|(W/)?"[0-9]{1,19}")$"#, description = "The ETag the change is based on (`\"12\"`, or weak, `W/\"12\"`, or the bare revision, `12`), or * for any revision"),
        ("If-None-Match" = inline(Option<IfNoneMatch>), Header, nullable = false, description = "* to create only")
    ),
    request_body = GroupBody,
    responses(
        (status = 200, description = "Changed, or unchanged (no new revision)", body = WrittenGroup),
        (status = 201, description = "Created", body = WrittenGroup),
        (status = 400, description = "Bad name, body or If-Match", body = ErrorBody),
        AdminErrors,
        (status = 412, description = "Not at the revision of If-Match; nothing changed", body = ErrorBody),
        BodyErrors
    )
)]
async fn replace(
    State(state): State<ManagerState>,
    Extension(caller): Extension<Caller>,
    ApiPath(GroupPath { group: name }): ApiPath<GroupPath>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<GroupBody>,
) -> Result<impl IntoResponse, ApiError> {
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

/// Deletes a group; one that holds dataflows only with `force`.
#[utoipa::path(
    delete,
    path = "/api/v1/groups/{group}",
    operation_id = "delete_group",
    tag = "groups",
    params(
        GroupPath,
        DeleteGroup,
        ("If-Match" = Option<String>, Header, nullable = false, pattern = r#"^(\*|[0-9]{1,19}|(W/)?"[0-9]{1,19}")$"#, description = "The ETag the deletion is based on (`\"12\"`, or weak, `W/\"12\"`, or the bare revision, `12`), or * for any revision")
    ),
    responses(
        (status = 200, description = "Deleted", body = DeletedGroup),
        (status = 400, description = "Bad name, query or If-Match", body = ErrorBody),
        AdminErrors,
        (status = 404, description = "No such group", body = ErrorBody),
        (status = 409, description = "It holds dataflows and force is not set", body = ErrorBody),
        (status = 412, description = "Not at the revision of If-Match; nothing changed", body = ErrorBody)
    )
)]
async fn remove(
    State(state): State<ManagerState>,
    Extension(caller): Extension<Caller>,
    ApiPath(GroupPath { group: name }): ApiPath<GroupPath>,
    ApiQuery(query): ApiQuery<DeleteGroup>,
    headers: HeaderMap,
) -> Result<Json<DeletedGroup>, ApiError> {
    let revision = state
        .store
        .delete_group(
            &name,
            precondition(&headers)?,
            query.force,
            &Change::by(&caller.name),
        )
        .await?;
    Ok(Json(DeletedGroup {
        deleted: name.into(),
        revision,
    }))
}
