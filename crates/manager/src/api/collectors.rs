//! Custom collectors over HTTP: upload (`POST /api/v1/collectors`, a
//! `.tar.gz` package, admins), the list and one collector with its versions
//! and the dataflows that use it, deletion of a collector or of one version
//! (409 while a dataflow uses it), and the package of a version
//! (`GET /api/v1/collectors/{name}/{version}/package`, workers and admins).
//! A package is checked whole before anything is kept: a refused one leaves
//! nothing behind.

use axum::{
    Extension, Json,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode, header::CONTENT_TYPE},
    response::IntoResponse,
};
use datascale_dataflow::collector::{self, check_version, package};
use datascale_http::{ApiBody, ApiError, ApiPath, CollectorName, ErrorBody, auth::Caller};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{AdminErrors, ManagerState, schema::CollectorPackage};
use crate::store::{Change, Outcome, StoredCollector, StoredDataflow};

/// The upload route, with its own body limit.
pub(super) fn upload_router() -> OpenApiRouter<ManagerState> {
    OpenApiRouter::new().routes(routes!(upload))
}

/// The routes admins read and delete collectors with.
pub(super) fn admin_router() -> OpenApiRouter<ManagerState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(show, remove))
        .routes(routes!(remove_version))
}

/// The download route: for workers and admins.
pub(super) fn package_router() -> OpenApiRouter<ManagerState> {
    OpenApiRouter::new().routes(routes!(download))
}

/// The path of a collector.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct CollectorPath {
    /// The collector's name.
    #[param(value_type = String, pattern = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    name: CollectorName,
}

/// The path of one version of a collector.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct VersionPath {
    /// The collector's name.
    #[param(value_type = String, pattern = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    name: CollectorName,
    /// The version.
    #[param(pattern = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    version: String,
}

/// A collector: its versions and the dataflows that use it.
#[derive(Debug, Serialize, ToSchema)]
struct CollectorView {
    /// The collector's name.
    name: String,
    /// The description of its highest version.
    description: String,
    /// Its highest version: the one a source that names no version runs.
    latest: String,
    /// Its versions, from the lowest to the highest.
    versions: Vec<StoredCollector>,
    /// The dataflows whose sources use it.
    used_by: Vec<CollectorUse>,
}

/// A dataflow's use of a collector.
#[derive(Debug, Serialize, ToSchema)]
struct CollectorUse {
    /// The dataflow's group.
    group: String,
    /// The dataflow.
    dataflow: String,
    /// The version it pins; none: the latest.
    pinned: Option<String>,
    /// The version it runs; none when that version is not uploaded.
    runs: Option<String>,
}

/// The answer to an upload.
#[derive(Debug, Serialize, ToSchema)]
struct Uploaded {
    #[serde(flatten)]
    collector: StoredCollector,
    /// `created`, or `unchanged` when this very package was uploaded before.
    outcome: Outcome,
}

/// The answer to a deletion.
#[derive(Debug, Serialize, ToSchema)]
struct DeletedCollector {
    /// The collector's name.
    deleted: String,
    /// The versions deleted.
    versions: Vec<String>,
}

/// The collectors in `stored` (all versions, by name), with their users
/// among `dataflows`.
fn views(stored: Vec<StoredCollector>, dataflows: &[StoredDataflow]) -> Vec<CollectorView> {
    let mut views: Vec<CollectorView> = Vec::new();
    for version in stored {
        match views.last_mut() {
            Some(view) if view.name == version.name => view.versions.push(version),
            _ => views.push(CollectorView {
                name: version.name.clone(),
                description: String::new(),
                latest: String::new(),
                versions: vec![version],
                used_by: Vec::new(),
            }),
        }
    }
    for view in &mut views {
        let highest = view.versions.last().expect("a view has a version");
        view.latest = highest.version.clone();
        view.description = highest.manifest.description.clone();
        for dataflow in dataflows {
            for used in collector::uses(&dataflow.document) {
                if used.collector != view.name {
                    continue;
                }
                let versions = view.versions.iter().map(|v| v.version.as_str());
                let runs = collector::resolve(versions, used.version.as_deref());
                view.used_by.push(CollectorUse {
                    group: dataflow.group.clone(),
                    dataflow: dataflow.name.clone(),
                    runs: runs.map(str::to_owned),
                    pinned: used.version,
                });
            }
        }
    }
    views
}

fn checked_version(version: &str) -> Result<(), ApiError> {
    check_version(version).map_err(ApiError::BadRequest)
}

/// The answer to a package the walker refused or could not read.
fn package_refused(err: package::PackageError) -> ApiError {
    match err {
        package::PackageError::Refused(_) => ApiError::BadRequest(err.to_string()),
        package::PackageError::TooLarge(_) => ApiError::PayloadTooLarge(err.to_string()),
        package::PackageError::Io { .. } => ApiError::Internal(err.to_string()),
    }
}

/// Runs blocking file work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| ApiError::Internal(format!("a file operation panicked: {err}")))?
}

/// Uploads a collector package: a `.tar.gz` with `collector.toml` at its
/// root. It is checked whole (manifest, entrypoint, size, and no entry that
/// leaves the package) before anything is kept; its version must be new,
/// and workers whose dataflows run the collector's latest version get it.
#[utoipa::path(
    post,
    path = "/api/v1/collectors",
    operation_id = "upload_collector",
    tag = "collectors",
    request_body(content = CollectorPackage, content_type = "application/gzip", description = "The package: a .tar.gz with collector.toml at its root; also taken as application/octet-stream"),
    responses(
        (status = 201, description = "Stored: a new version", body = Uploaded),
        (status = 200, description = "This very package was stored before; nothing changed", body = Uploaded),
        (status = 400, description = "The package is refused; the message says why", body = ErrorBody),
        AdminErrors,
        (status = 409, description = "That version exists, from another package", body = ErrorBody),
        (status = 413, description = "Over service.manager.max_collector_mb, packed or unpacked", body = ErrorBody),
        (status = 415, description = "Not sent as application/gzip or application/octet-stream", body = ErrorBody)
    )
)]
async fn upload(
    State(state): State<ManagerState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    ApiBody(body): ApiBody,
) -> Result<impl IntoResponse, ApiError> {
    let content_type = headers
        .get(CONTENT_TYPE)
        .map(|value| value.to_str().unwrap_or("?"))
        .unwrap_or("application/octet-stream");
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    if !matches!(
        essence,
        "application/gzip" | "application/x-gzip" | "application/octet-stream"
    ) {
        return Err(ApiError::UnsupportedMediaType(format!(
            "send the package as `Content-Type: application/gzip` (or application/octet-stream), not `{content_type}`"
        )));
    }
    let limit = state.collector_limit;
    let files = state.packages.clone();
    let checked = blocking(move || {
        let checked = package::check(&body, limit).map_err(package_refused)?;
        files.save(&checked.sha256, &body).map_err(|err| {
            ApiError::Internal(format!("cannot keep the collector package: {err}"))
        })?;
        Ok(checked)
    })
    .await?;
    let stored = state
        .store
        .put_collector(&checked, &Change::by(&caller.name))
        .await;
    let written = match stored {
        Ok(written) => written,
        Err(err) => {
            // The file is this package's alone: no version of it is stored.
            let files = state.packages.clone();
            let sha256 = checked.sha256.clone();
            let _ = blocking(move || Ok(files.remove(&sha256))).await;
            return Err(err.into());
        }
    };
    let status = match written.outcome {
        Outcome::Created => StatusCode::CREATED,
        _ => StatusCode::OK,
    };
    Ok((
        status,
        Json(Uploaded {
            collector: written.value,
            outcome: written.outcome,
        }),
    ))
}

/// Every collector, with its versions and the dataflows that use it.
#[utoipa::path(
    get,
    path = "/api/v1/collectors",
    operation_id = "list_collectors",
    tag = "collectors",
    responses(
        (status = 200, description = "The collectors, by name", body = Vec<CollectorView>),
        AdminErrors
    )
)]
async fn list(State(state): State<ManagerState>) -> Result<Json<Vec<CollectorView>>, ApiError> {
    let stored = state.store.collectors().await?;
    let dataflows = state.store.dataflows(None).await?;
    Ok(Json(views(stored, &dataflows)))
}

/// One collector, with its versions and the dataflows that use it.
#[utoipa::path(
    get,
    path = "/api/v1/collectors/{name}",
    operation_id = "get_collector",
    tag = "collectors",
    params(CollectorPath),
    responses(
        (status = 200, description = "The collector", body = CollectorView),
        (status = 400, description = "Bad name", body = ErrorBody),
        AdminErrors,
        (status = 404, description = "No such collector", body = ErrorBody)
    )
)]
async fn show(
    State(state): State<ManagerState>,
    ApiPath(CollectorPath { name }): ApiPath<CollectorPath>,
) -> Result<Json<CollectorView>, ApiError> {
    let stored: Vec<_> = state
        .store
        .collectors()
        .await?
        .into_iter()
        .filter(|c| c.name == name)
        .collect();
    let dataflows = state.store.dataflows(None).await?;
    views(stored, &dataflows)
        .pop()
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no collector named `{name}`")))
}

/// Deletes `version` of `name` (every version when `None`) and its packages.
async fn delete(
    state: &ManagerState,
    caller: &Caller,
    name: String,
    version: Option<&str>,
) -> Result<Json<DeletedCollector>, ApiError> {
    let deleted = state
        .store
        .delete_collector(&name, version, &Change::by(&caller.name))
        .await?;
    let files = state.packages.clone();
    let hashes: Vec<String> = deleted.iter().map(|c| c.sha256.clone()).collect();
    blocking(move || {
        for sha256 in hashes {
            files.remove(&sha256).map_err(|err| {
                ApiError::Internal(format!("cannot remove the package {sha256}: {err}"))
            })?;
        }
        Ok(())
    })
    .await?;
    Ok(Json(DeletedCollector {
        deleted: name,
        versions: deleted.into_iter().map(|c| c.version).collect(),
    }))
}

/// Deletes a collector, every version; refused while a dataflow uses it.
#[utoipa::path(
    delete,
    path = "/api/v1/collectors/{name}",
    operation_id = "delete_collector",
    tag = "collectors",
    params(CollectorPath),
    responses(
        (status = 200, description = "Deleted, with its packages", body = DeletedCollector),
        (status = 400, description = "Bad name", body = ErrorBody),
        AdminErrors,
        (status = 404, description = "No such collector", body = ErrorBody),
        (status = 409, description = "Dataflows use it; the message names them", body = ErrorBody)
    )
)]
async fn remove(
    State(state): State<ManagerState>,
    Extension(caller): Extension<Caller>,
    ApiPath(CollectorPath { name }): ApiPath<CollectorPath>,
) -> Result<Json<DeletedCollector>, ApiError> {
    delete(&state, &caller, name.into(), None).await
}

/// Deletes one version of a collector; refused while a dataflow runs it
/// (pins it, or names no version and it is the highest).
#[utoipa::path(
    delete,
    path = "/api/v1/collectors/{name}/{version}",
    operation_id = "delete_collector_version",
    tag = "collectors",
    params(VersionPath),
    responses(
        (status = 200, description = "Deleted, with its package", body = DeletedCollector),
        (status = 400, description = "Bad name or version", body = ErrorBody),
        AdminErrors,
        (status = 404, description = "No such version", body = ErrorBody),
        (status = 409, description = "Dataflows run it; the message names them", body = ErrorBody)
    )
)]
async fn remove_version(
    State(state): State<ManagerState>,
    Extension(caller): Extension<Caller>,
    ApiPath(VersionPath { name, version }): ApiPath<VersionPath>,
) -> Result<Json<DeletedCollector>, ApiError> {
    checked_version(&version)?;
    delete(&state, &caller, name.into(), Some(&version)).await
}

/// The package of one version, for workers to unpack.
#[utoipa::path(
    get,
    path = "/api/v1/collectors/{name}/{version}/package",
    operation_id = "download_collector_package",
    tag = "collectors",
    params(VersionPath),
    responses(
        (status = 200, description = "The package as uploaded", body = CollectorPackage, content_type = "application/gzip"),
        (status = 400, description = "Bad name or version", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such version", body = ErrorBody)
    )
)]
async fn download(
    State(state): State<ManagerState>,
    ApiPath(VersionPath { name, version }): ApiPath<VersionPath>,
) -> Result<impl IntoResponse, ApiError> {
    checked_version(&version)?;
    let stored = state
        .store
        .collectors()
        .await?
        .into_iter()
        .find(|c| c.name == name && c.version == version)
        .ok_or_else(|| ApiError::NotFound(format!("no collector `{name}` version {version}")))?;
    let files = state.packages.clone();
    let bytes = blocking(move || {
        files.read(&stored.sha256).map_err(|err| {
            ApiError::Internal(format!(
                "cannot read the package of {name} {version}: {err}"
            ))
        })
    })
    .await?;
    Ok(([(CONTENT_TYPE, "application/gzip")], Bytes::from(bytes)))
}
