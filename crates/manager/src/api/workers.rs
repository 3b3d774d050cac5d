//! Workers on the manager. For workers themselves: enrollment (with an
//! enrollment token; a worker renews its credential with its current one),
//! heartbeats and the long-polled sync of their desired state (with their
//! own credential). For admins: the list of workers with their liveness and
//! status, assigning groups, revoking and deleting.

use std::time::Duration;

use axum::{
    Extension, Json,
    extract::State,
    http::{StatusCode, header::CONTENT_TYPE},
    response::{IntoResponse, Response},
};
use datascale_core::names::check_name;
use datascale_http::{
    ApiError, ApiJson, ApiPath, ApiQuery, ErrorBody, GroupName, WorkerId, auth::Caller,
};
use datascale_protocol::{
    DesiredState, Enrolled, Heartbeat, HeartbeatReply, Identity, Name, SYNC_WAIT_SECS,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{AdminErrors, BodyErrors, ManagerState};
use crate::{
    audit::AuditSubject,
    store::{Change, Grant},
    workers::WorkerView,
};

/// The route workers enroll with.
pub(super) fn enrollment_router() -> OpenApiRouter<ManagerState> {
    OpenApiRouter::new().routes(routes!(enroll))
}

/// The routes enrolled workers call.
pub(super) fn worker_router() -> OpenApiRouter<ManagerState> {
    OpenApiRouter::new()
        .routes(routes!(heartbeat))
        .routes(routes!(sync))
}

/// The routes admins call.
pub(super) fn admin_router() -> OpenApiRouter<ManagerState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(show, remove))
        .routes(routes!(assign))
        .routes(routes!(revoke))
        .routes(routes!(rotate_enrollment_token))
}

/// The answer to a rotation of the enrollment token.
#[derive(Debug, Serialize, ToSchema)]
struct NewEnrollmentToken {
    /// The new enrollment token, shown once; new workers enroll with it.
    token: String,
}

/// The path of a worker.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct WorkerPath {
    /// The worker's id.
    #[param(value_type = String, pattern = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    id: WorkerId,
}

/// Query of `GET /api/v1/sync`. Revisions, epochs and tap versions are
/// kept as SQLite integers, so none is above `i64::MAX`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct SyncQuery {
    /// The asking worker's id.
    #[param(pattern = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    worker_id: String,
    /// The revision of the desired state it runs (0: none yet).
    #[serde(default)]
    #[param(maximum = 9223372036854775807_u64)]
    revision: u64,
    /// The store epoch of that state; another epoch is answered at once.
    #[param(maximum = 9223372036854775807_u64)]
    epoch: Option<u64>,
    /// The version of the live taps the worker knows (0: none yet); with
    /// it, the answer carries the open taps, and comes at once when they
    /// are not of this version.
    #[param(maximum = 9223372036854775807_u64)]
    taps: Option<u64>,
}

impl SyncQuery {
    /// Refuses a number above what the store keeps, as the document does.
    fn checked(self) -> Result<Self, ApiError> {
        for (name, value) in [
            ("revision", Some(self.revision)),
            ("epoch", self.epoch),
            ("taps", self.taps),
        ] {
            if let Some(value) = value.filter(|&value| i64::try_from(value).is_err()) {
                return Err(ApiError::BadRequest(format!(
                    "{name} {value} is out of range: 0 to {}",
                    i64::MAX
                )));
            }
        }
        Ok(self)
    }
}

/// Body of `PUT /api/v1/workers/{id}/groups`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Assignment {
    /// The groups it runs from now on, at least one; null: back to its own
    /// configuration's.
    #[schema(value_type = Option<Vec<Name>>, min_items = 1)]
    groups: Option<Vec<GroupName>>,
}

/// The answer to a deletion.
#[derive(Debug, Serialize, ToSchema)]
struct DeletedWorker {
    /// The worker's id.
    deleted: String,
}

/// Checks that the caller presents the own credential of worker `id`.
fn own_worker(caller: &Caller, id: &str) -> Result<(), ApiError> {
    match caller.worker_id.as_deref() {
        Some(own) if own == id => Ok(()),
        Some(own) => Err(ApiError::Refused(format!(
            "this is the credential of worker `{own}`, not of `{id}`"
        ))),
        None => Err(ApiError::NotEnrolled(
            "present the worker's own credential; enroll first (POST /api/v1/workers/enroll with the enrollment token)"
                .to_owned(),
        )),
    }
}

/// What was found of worker `id` (its record, or a way to follow it), or
/// the error that tells it to enroll again.
fn enrolled<T>(found: Option<T>, id: &str) -> Result<T, ApiError> {
    found.ok_or_else(|| {
        ApiError::NotEnrolled(format!(
            "worker `{id}` is not enrolled here (deleted, or expired); enroll again"
        ))
    })
}

/// Checks the names a worker gives for itself, in the identity the
/// protocol carries as text: its id and its groups.
fn checked_identity(identity: &Identity) -> Result<(), ApiError> {
    WorkerId::new(identity.id.clone()).map_err(ApiError::BadRequest)?;
    for group in &identity.groups {
        GroupName::new(group.clone()).map_err(ApiError::BadRequest)?;
    }
    Ok(())
}

async fn view_of(state: &ManagerState, id: &str) -> Result<WorkerView, ApiError> {
    state
        .workers
        .views()
        .await?
        .into_iter()
        .find(|view| view.record.id == id)
        .ok_or_else(|| ApiError::NotFound(format!("no worker with id `{id}`")))
}

/// Enrolls a worker: takes an enrollment token (the built-in one, any
/// group; or one made through the API, only its groups, while it has not
/// expired nor been used up), answers the worker's own credential. A worker
/// of an id already enrolled renews its credential the same way, presenting
/// its current one; nothing else may (an admin resets it by deleting it).
/// Every attempt is written to the audit log, with the worker's id.
#[utoipa::path(
    post,
    path = "/api/v1/workers/enroll",
    operation_id = "enroll_worker",
    tag = "cluster",
    request_body = Identity,
    responses(
        (status = 201, description = "Enrolled, or the credential renewed; the credential is shown once", body = Enrolled),
        (status = 400, description = "Bad identity", body = ErrorBody),
        (status = 401, description = "Not an enrollment token or a worker's credential, or an enrollment token that expired, was used up or was revoked", body = ErrorBody),
        (status = 403, description = "Groups the enrollment token does not allow, a revoked worker, or another worker's credential", body = ErrorBody),
        (status = 409, description = "A worker of this id is enrolled: only its own credential renews it", body = ErrorBody),
        BodyErrors
    )
)]
async fn enroll(
    State(state): State<ManagerState>,
    Extension(caller): Extension<Caller>,
    ApiJson(identity): ApiJson<Identity>,
) -> Response {
    let subject = check_name(&identity.id)
        .is_ok()
        .then(|| AuditSubject(format!("worker {}", identity.id)));
    let mut response = enroll_as(&state, &caller, &identity).await.into_response();
    if let Some(subject) = subject {
        response.extensions_mut().insert(subject);
    }
    response
}

/// Enrolls the worker of `identity` with the token `caller` presents, or
/// renews its credential when that is its own.
async fn enroll_as(
    state: &ManagerState,
    caller: &Caller,
    identity: &Identity,
) -> Result<(StatusCode, Json<Enrolled>), ApiError> {
    checked_identity(identity)?;
    let enrolled = match (&caller.worker_id, &caller.enrollment_token) {
        (Some(_), _) => {
            own_worker(caller, &identity.id)?;
            state.workers.renew(identity).await?
        }
        (None, Some(token)) => {
            let grant = Grant::Token(token.clone());
            state.workers.enroll(identity, &grant).await?
        }
        (None, None) => state.workers.enroll(identity, &Grant::BuiltIn).await?,
    };
    Ok((StatusCode::CREATED, Json(enrolled)))
}

/// A worker's heartbeat: how it is doing. The answer says what it should run.
#[utoipa::path(
    post,
    path = "/api/v1/heartbeat",
    operation_id = "heartbeat",
    tag = "cluster",
    request_body = Heartbeat,
    responses(
        (status = 200, description = "Recorded", body = HeartbeatReply),
        (status = 400, description = "Bad body", body = ErrorBody),
        (status = 401, description = "Not a worker credential, or the worker is not enrolled", body = ErrorBody),
        (status = 403, description = "Another worker's credential, a revoked worker, or own groups its enrollment token did not allow", body = ErrorBody),
        BodyErrors
    )
)]
async fn heartbeat(
    State(state): State<ManagerState>,
    Extension(caller): Extension<Caller>,
    ApiJson(beat): ApiJson<Heartbeat>,
) -> Result<Json<HeartbeatReply>, ApiError> {
    let id = beat.identity.id.clone();
    own_worker(&caller, &id)?;
    checked_identity(&beat.identity)?;
    let record = enrolled(state.workers.heartbeat(beat).await?, &id)?;
    Ok(Json(HeartbeatReply {
        revision: state.workers.desired_revision(&record).await?,
        groups: record.groups().to_vec(),
    }))
}

/// Long poll for a worker's desired state: answers at once when it differs
/// from `revision` (or comes from another store `epoch`, or the live taps
/// are not of version `taps`), else as soon as it changes, else after 30 s
/// with 304.
#[utoipa::path(
    get,
    path = "/api/v1/sync",
    operation_id = "sync",
    tag = "cluster",
    params(SyncQuery),
    responses(
        (status = 200, description = "The worker's desired state", body = DesiredState),
        (status = 304, description = "No change within the wait"),
        (status = 400, description = "Bad query", body = ErrorBody),
        (status = 401, description = "Not a worker credential, or the worker is not enrolled", body = ErrorBody),
        (status = 403, description = "Another worker's credential", body = ErrorBody)
    )
)]
async fn sync(
    State(state): State<ManagerState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(query): ApiQuery<SyncQuery>,
) -> Result<Response, ApiError> {
    let query = query.checked()?;
    own_worker(&caller, &query.worker_id)?;
    // The store announces new revisions; the registry, changes to this
    // worker's record (an assignment is in both, the registry's copy a
    // moment later).
    let mut changes = state.store.subscribe();
    let mut taps = state.taps.subscribe();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(SYNC_WAIT_SECS);
    loop {
        changes.borrow_and_update();
        let mut own = enrolled(state.workers.follow(&query.worker_id), &query.worker_id)?;
        let record = own.borrow_and_update().clone();
        let same_epoch = query.epoch == Some(state.store.epoch());
        let taps_changed = query
            .taps
            .is_some_and(|known| known != *taps.borrow_and_update());
        if !same_epoch
            || taps_changed
            || state.workers.desired_revision(&record).await? != query.revision
        {
            let taps = query.taps.map(|_| state.taps.requests());
            let desired = state.workers.desired_body(&record, taps).await?;
            return Ok(([(CONTENT_TYPE, "application/json")], desired).into_response());
        }
        tokio::select! {
            changed = changes.changed() => if changed.is_err() {
                return Ok(StatusCode::NOT_MODIFIED.into_response());
            },
            // Closed when the worker is forgotten: the next round tells it.
            _ = own.changed() => {},
            // Lives as long as the manager.
            _ = taps.changed(), if query.taps.is_some() => {},
            () = tokio::time::sleep_until(deadline) => {
                return Ok(StatusCode::NOT_MODIFIED.into_response());
            }
        }
    }
}

/// Every worker: liveness, groups, revisions and what it reported.
#[utoipa::path(
    get,
    path = "/api/v1/workers",
    operation_id = "list_workers",
    tag = "cluster",
    responses(
        (status = 200, description = "The workers, by id", body = Vec<WorkerView>),
        AdminErrors
    )
)]
async fn list(State(state): State<ManagerState>) -> Result<Json<Vec<WorkerView>>, ApiError> {
    Ok(Json(state.workers.views().await?))
}

/// One worker.
#[utoipa::path(
    get,
    path = "/api/v1/workers/{id}",
    operation_id = "get_worker",
    tag = "cluster",
    params(WorkerPath),
    responses(
        (status = 200, description = "The worker", body = WorkerView),
        (status = 400, description = "Bad id", body = ErrorBody),
        AdminErrors,
        (status = 404, description = "No such worker", body = ErrorBody)
    )
)]
async fn show(
    State(state): State<ManagerState>,
    ApiPath(WorkerPath { id }): ApiPath<WorkerPath>,
) -> Result<Json<WorkerView>, ApiError> {
    Ok(Json(view_of(&state, &id).await?))
}

/// Assigns a worker's groups on the manager; they win over its own
/// configuration's, across restarts of both.
#[utoipa::path(
    put,
    path = "/api/v1/workers/{id}/groups",
    operation_id = "assign_worker_groups",
    tag = "cluster",
    params(WorkerPath),
    request_body = Assignment,
    responses(
        (status = 200, description = "Assigned", body = WorkerView),
        (status = 400, description = "Bad id or group names", body = ErrorBody),
        AdminErrors,
        (status = 404, description = "No such worker", body = ErrorBody),
        BodyErrors
    )
)]
async fn assign(
    State(state): State<ManagerState>,
    Extension(caller): Extension<Caller>,
    ApiPath(WorkerPath { id }): ApiPath<WorkerPath>,
    ApiJson(assignment): ApiJson<Assignment>,
) -> Result<Json<WorkerView>, ApiError> {
    if assignment.groups.as_ref().is_some_and(Vec::is_empty) {
        return Err(ApiError::BadRequest(
            "a worker needs at least one group; send null to go back to its own".to_owned(),
        ));
    }
    state
        .workers
        .assign(
            &id,
            assignment
                .groups
                .map(|groups| groups.into_iter().map(String::from).collect()),
            &Change::by(&caller.name),
        )
        .await?;
    Ok(Json(view_of(&state, &id).await?))
}

/// Revokes a worker's credential: it is refused from now on, and may not
/// enroll again until deleted. Other workers are not touched.
#[utoipa::path(
    post,
    path = "/api/v1/workers/{id}/revoke",
    operation_id = "revoke_worker",
    tag = "cluster",
    params(WorkerPath),
    responses(
        (status = 200, description = "Revoked", body = WorkerView),
        (status = 400, description = "Bad id", body = ErrorBody),
        AdminErrors,
        (status = 404, description = "No such worker", body = ErrorBody)
    )
)]
async fn revoke(
    State(state): State<ManagerState>,
    ApiPath(WorkerPath { id }): ApiPath<WorkerPath>,
) -> Result<Json<WorkerView>, ApiError> {
    state.workers.revoke(&id).await?;
    Ok(Json(view_of(&state, &id).await?))
}

/// Replaces the enrollment token. Enrolled workers keep their own
/// credentials; only workers that enroll from now on need the new token.
#[utoipa::path(
    post,
    path = "/api/v1/workers/enrollment_token/rotate",
    operation_id = "rotate_enrollment_token",
    tag = "cluster",
    responses(
        (status = 200, description = "The new token", body = NewEnrollmentToken),
        AdminErrors,
        (status = 409, description = "The token is set by service.manager.worker_token", body = ErrorBody)
    )
)]
async fn rotate_enrollment_token(
    State(state): State<ManagerState>,
) -> Result<Json<NewEnrollmentToken>, ApiError> {
    let rotated = state
        .api
        .tokens
        .rotate_enrollment_token()
        .map_err(|err| ApiError::Internal(err.to_string()))?;
    let token = rotated.ok_or_else(|| {
        ApiError::Conflict(
            "the enrollment token is set by service.manager.worker_token; change it there and restart the manager (enrolled workers are not affected)"
                .to_owned(),
        )
    })?;
    Ok(Json(NewEnrollmentToken { token }))
}

/// Forgets a worker; with an enrollment token it may enroll again. This is
/// how an admin resets a worker that lost its credential.
#[utoipa::path(
    delete,
    path = "/api/v1/workers/{id}",
    operation_id = "delete_worker",
    tag = "cluster",
    params(WorkerPath),
    responses(
        (status = 200, description = "Deleted", body = DeletedWorker),
        (status = 400, description = "Bad id", body = ErrorBody),
        AdminErrors,
        (status = 404, description = "No such worker", body = ErrorBody)
    )
)]
async fn remove(
    State(state): State<ManagerState>,
    ApiPath(WorkerPath { id }): ApiPath<WorkerPath>,
) -> Result<Json<DeletedWorker>, ApiError> {
    state.workers.delete(&id).await?;
    Ok(Json(DeletedWorker { deleted: id.into() }))
}
