//! The dataflows of a group and their history:
//! `/api/v1/groups/{group}/dataflows[/{name}]`, `…/{name}/revisions[/{n}]`,
//! `…/revisions/{n}/restore`, and `POST /api/v1/dataflows/validate`. Every
//! document is validated before it is stored; on a node with a local worker
//! in the group, answers also carry that worker's status of the dataflow.
//! Validation here knows the custom collectors installed, so a source that
//! names an unknown one is refused.

use std::{collections::BTreeMap, time::Duration};

use axum::{
    Extension, Json,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::IntoResponse,
};
use datascale_dataflow::{
    ValidationContext, ValidationError, ValidationErrors, status::DataflowStatus,
};
use datascale_http::{ApiError, ApiJson, ApiPath, ErrorBody, auth::Caller};
use datascale_protocol::DataflowKey;
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    AdminErrors, BodyErrors, DataflowPath, GroupPath, ManagerState, RevisionPath, etag,
    precondition,
    schema::{DataflowDocument, DataflowDocumentAtPath, IfNoneMatch},
};
use crate::store::{Change, HistoryEntry, Outcome, Precondition, StoreError, StoredDataflow};

pub(super) fn router() -> OpenApiRouter<ManagerState> {
    OpenApiRouter::new()
        .routes(routes!(validate))
        .routes(routes!(list, create))
        .routes(routes!(show, replace, remove))
        .routes(routes!(revisions))
        .routes(routes!(revision))
        .routes(routes!(restore))
}

/// A stored dataflow as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
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
            worker
                .status(&DataflowKey::new(&stored.group, &stored.name))
                .await
        }
        _ => None,
    };
    DataflowView {
        stored,
        outcome,
        status,
    }
}

/// The answer to a deletion.
#[derive(Debug, Serialize, ToSchema)]
struct DeletedDataflow {
    /// The dataflow's name.
    deleted: String,
    /// Its group.
    group: String,
    /// The revision of the deletion.
    revision: u64,
}

/// The answer to a valid document.
#[derive(Debug, Serialize, ToSchema)]
struct Valid {
    /// Always true: an invalid document gets 400.
    valid: bool,
    /// The dataflow's name.
    name: String,
    /// How many components of each kind it has.
    components: ComponentsByKind,
}

/// Components of a dataflow by kind.
#[derive(Debug, Serialize, ToSchema)]
struct ComponentsByKind {
    sources: usize,
    pipelines: usize,
    sinks: usize,
}

fn written(view: DataflowView) -> impl IntoResponse {
    let status = match view.outcome {
        Some(Outcome::Created) => StatusCode::CREATED,
        _ => StatusCode::OK,
    };
    (status, etag(view.stored.revision), Json(view))
}

/// The answer to an invalid dataflow document: every problem, with its path.
fn invalid(errors: ValidationErrors) -> ApiError {
    ApiError::InvalidDataflow(errors.0.iter().map(|problem| json!(problem)).collect())
}

fn no_dataflow(group: &str, name: &str) -> ApiError {
    ApiError::NotFound(format!("no dataflow named `{name}` in group `{group}`"))
}

/// What validation knows on this manager: the collectors installed.
async fn context(state: &ManagerState) -> Result<ValidationContext, ApiError> {
    let mut collectors: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for stored in state.store.collectors().await? {
        collectors
            .entry(stored.name)
            .or_default()
            .push(stored.version);
    }
    Ok(ValidationContext {
        collectors: Some(collectors),
    })
}

/// Validates a document; the name in it, when given, must be the one in the
/// path, and is filled in from the path when missing.
async fn validated(
    state: &ManagerState,
    mut document: Value,
    name: Option<&str>,
) -> Result<Value, ApiError> {
    if let (Some(name), Some(fields)) = (name, document.as_object_mut()) {
        match fields.get("name") {
            None => {
                fields.insert("name".to_owned(), json!(name));
            }
            Some(given) if given != name => {
                return Err(invalid(ValidationErrors(vec![ValidationError {
                    path: "name".to_owned(),
                    message: format!("the document is named {given} but the path names `{name}`"),
                }])));
            }
            Some(_) => {}
        }
    }
    datascale_dataflow::parse_in(&document, &context(state).await?).map_err(invalid)?;
    Ok(document)
}

/// Checks a dataflow document without storing it.
#[utoipa::path(
    post,
    path = "/api/v1/dataflows/validate",
    operation_id = "validate_dataflow",
    tag = "dataflows",
    request_body = DataflowDocument,
    responses(
        (status = 200, description = "The document is valid", body = Valid),
        (status = 400, description = "Every problem with its JSON path in details", body = ErrorBody),
        AdminErrors,
        BodyErrors
    )
)]
async fn validate(
    State(state): State<ManagerState>,
    ApiJson(document): ApiJson<Value>,
) -> Result<Json<Valid>, ApiError> {
    let dataflow =
        datascale_dataflow::parse_in(&document, &context(&state).await?).map_err(invalid)?;
    let (sources, pipelines, sinks) = dataflow.counts();
    Ok(Json(Valid {
        valid: true,
        name: dataflow.name,
        components: ComponentsByKind {
            sources,
            pipelines,
            sinks,
        },
    }))
}

/// The dataflows of a group.
#[utoipa::path(
    get,
    path = "/api/v1/groups/{group}/dataflows",
    operation_id = "list_dataflows",
    tag = "dataflows",
    params(GroupPath),
    responses(
        (status = 200, description = "Its dataflows, by name", body = Vec<DataflowView>),
        (status = 400, description = "Bad name", body = ErrorBody),
        AdminErrors,
        (status = 404, description = "No such group", body = ErrorBody)
    )
)]
async fn list(
    State(state): State<ManagerState>,
    ApiPath(GroupPath { group }): ApiPath<GroupPath>,
) -> Result<Json<Vec<DataflowView>>, ApiError> {
    if state.store.group(&group).await?.is_none() {
        return Err(ApiError::NotFound(format!("no group named `{group}`")));
    }
    let mut views = Vec::new();
    for stored in state.store.dataflows(Some(&group)).await? {
        views.push(view(&state, stored, None).await);
    }
    Ok(Json(views))
}

/// Creates a dataflow; the document names it.
#[utoipa::path(
    post,
    path = "/api/v1/groups/{group}/dataflows",
    operation_id = "create_dataflow",
    tag = "dataflows",
    params(GroupPath),
    request_body = DataflowDocument,
    responses(
        (status = 201, description = "Created; the ETag is its revision", body = DataflowView),
        (status = 400, description = "Bad name, or every problem of the document with its JSON path", body = ErrorBody),
        AdminErrors,
        (status = 404, description = "No such group", body = ErrorBody),
        (status = 409, description = "A dataflow of that name exists", body = ErrorBody),
        BodyErrors
    )
)]
async fn create(
    State(state): State<ManagerState>,
    Extension(caller): Extension<Caller>,
    ApiPath(GroupPath { group }): ApiPath<GroupPath>,
    ApiJson(document): ApiJson<Value>,
) -> Result<impl IntoResponse, ApiError> {
    let document = validated(&state, document, None).await?;
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

/// One dataflow.
#[utoipa::path(
    get,
    path = "/api/v1/groups/{group}/dataflows/{name}",
    operation_id = "get_dataflow",
    tag = "dataflows",
    params(DataflowPath),
    responses(
        (status = 200, description = "The dataflow; the ETag is its revision", body = DataflowView),
        (status = 400, description = "Bad name", body = ErrorBody),
        AdminErrors,
        (status = 404, description = "No such dataflow", body = ErrorBody)
    )
)]
async fn show(
    State(state): State<ManagerState>,
    ApiPath(DataflowPath { group, name }): ApiPath<DataflowPath>,
) -> Result<impl IntoResponse, ApiError> {
    let stored = state
        .store
        .dataflow(&group, &name)
        .await?
        .ok_or_else(|| no_dataflow(&group, &name))?;
    let revision = stored.revision;
    Ok((etag(revision), Json(view(&state, stored, None).await)))
}

/// Creates or replaces a dataflow; the same document again changes nothing.
#[utoipa::path(
    put,
    path = "/api/v1/groups/{group}/dataflows/{name}",
    operation_id = "put_dataflow",
    tag = "dataflows",
    params(
        DataflowPath,
        ("If-Match" = Option<String>, Header, nullable = false, pattern = r#"^(\*|[0-9]{1,19}|(W/)?"[0-9]{1,19}")$"#, description = "The ETag the change is based on (`\"12\"`, or weak, `W/\"12\"`, or the bare revision, `12`), or * for any revision"),
        ("If-None-Match" = inline(Option<IfNoneMatch>), Header, nullable = false, description = "* to create only")
    ),
    request_body = DataflowDocumentAtPath,
    responses(
        (status = 200, description = "Replaced, or unchanged (no new revision)", body = DataflowView),
        (status = 201, description = "Created", body = DataflowView),
        (status = 400, description = "Bad name or If-Match, or every problem of the document with its JSON path", body = ErrorBody),
        AdminErrors,
        (status = 404, description = "No such group", body = ErrorBody),
        (status = 412, description = "Not at the revision of If-Match; nothing changed", body = ErrorBody),
        BodyErrors
    )
)]
async fn replace(
    State(state): State<ManagerState>,
    Extension(caller): Extension<Caller>,
    ApiPath(DataflowPath { group, name }): ApiPath<DataflowPath>,
    headers: HeaderMap,
    ApiJson(document): ApiJson<Value>,
) -> Result<impl IntoResponse, ApiError> {
    let document = validated(&state, document, Some(&name)).await?;
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

/// Deletes a dataflow; its history stays.
#[utoipa::path(
    delete,
    path = "/api/v1/groups/{group}/dataflows/{name}",
    operation_id = "delete_dataflow",
    tag = "dataflows",
    params(
        DataflowPath,
        ("If-Match" = Option<String>, Header, nullable = false, pattern = r#"^(\*|[0-9]{1,19}|(W/)?"[0-9]{1,19}")$"#, description = "The ETag the deletion is based on (`\"12\"`, or weak, `W/\"12\"`, or the bare revision, `12`), or * for any revision")
    ),
    responses(
        (status = 200, description = "Deleted", body = DeletedDataflow),
        (status = 400, description = "Bad name or If-Match", body = ErrorBody),
        AdminErrors,
        (status = 404, description = "No such dataflow", body = ErrorBody),
        (status = 412, description = "Not at the revision of If-Match; nothing changed", body = ErrorBody)
    )
)]
async fn remove(
    State(state): State<ManagerState>,
    Extension(caller): Extension<Caller>,
    ApiPath(DataflowPath { group, name }): ApiPath<DataflowPath>,
    headers: HeaderMap,
) -> Result<Json<DeletedDataflow>, ApiError> {
    let revision = state
        .store
        .delete_dataflow(
            &group,
            &name,
            precondition(&headers)?,
            &Change::by(&caller.name),
        )
        .await?;
    Ok(Json(DeletedDataflow {
        deleted: name.into(),
        group: group.into(),
        revision,
    }))
}

/// The history of a dataflow, newest first, without the documents.
#[utoipa::path(
    get,
    path = "/api/v1/groups/{group}/dataflows/{name}/revisions",
    operation_id = "list_dataflow_revisions",
    tag = "dataflows",
    params(DataflowPath),
    responses(
        (status = 200, description = "Its history", body = Vec<HistoryEntry>),
        (status = 400, description = "Bad name", body = ErrorBody),
        AdminErrors,
        (status = 404, description = "No dataflow of that name was ever stored there", body = ErrorBody)
    )
)]
async fn revisions(
    State(state): State<ManagerState>,
    ApiPath(DataflowPath { group, name }): ApiPath<DataflowPath>,
) -> Result<Json<Vec<HistoryEntry>>, ApiError> {
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

/// One revision of a dataflow, with its document.
#[utoipa::path(
    get,
    path = "/api/v1/groups/{group}/dataflows/{name}/revisions/{revision}",
    operation_id = "get_dataflow_revision",
    tag = "dataflows",
    params(RevisionPath),
    responses(
        (status = 200, description = "The revision", body = HistoryEntry),
        (status = 400, description = "Bad name or revision", body = ErrorBody),
        AdminErrors,
        (status = 404, description = "No such revision of that dataflow", body = ErrorBody)
    )
)]
async fn revision(
    State(state): State<ManagerState>,
    ApiPath(RevisionPath {
        group,
        name,
        revision,
    }): ApiPath<RevisionPath>,
) -> Result<Json<HistoryEntry>, ApiError> {
    Ok(Json(history_entry(&state, &group, &name, revision).await?))
}

/// Brings back an earlier revision's document, as a new revision.
#[utoipa::path(
    post,
    path = "/api/v1/groups/{group}/dataflows/{name}/revisions/{revision}/restore",
    operation_id = "restore_dataflow_revision",
    tag = "dataflows",
    params(
        RevisionPath,
        ("If-Match" = Option<String>, Header, nullable = false, pattern = r#"^(\*|[0-9]{1,19}|(W/)?"[0-9]{1,19}")$"#, description = "The ETag the restore is based on (`\"12\"`, or weak, `W/\"12\"`, or the bare revision, `12`), or * for any revision")
    ),
    responses(
        (status = 200, description = "Restored, or unchanged when it is the current document", body = DataflowView),
        (status = 201, description = "Restored a deleted dataflow", body = DataflowView),
        (status = 400, description = "Bad name, revision or If-Match, or the old document is not valid any more", body = ErrorBody),
        AdminErrors,
        (status = 404, description = "No such revision, or its group is gone", body = ErrorBody),
        (status = 409, description = "That revision deleted the dataflow", body = ErrorBody),
        (status = 412, description = "Not at the revision of If-Match; nothing changed", body = ErrorBody)
    )
)]
async fn restore(
    State(state): State<ManagerState>,
    Extension(caller): Extension<Caller>,
    ApiPath(RevisionPath {
        group,
        name,
        revision,
    }): ApiPath<RevisionPath>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    let entry = history_entry(&state, &group, &name, revision).await?;
    let document = entry.document.ok_or_else(|| {
        ApiError::Conflict(format!(
            "revision {revision} deleted dataflow `{name}`; restore a revision that stored it"
        ))
    })?;
    let document = validated(&state, document, Some(&name)).await?;
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
