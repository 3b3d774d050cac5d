//! The manager's REST API over the store: groups (`groups`), dataflows with
//! their history (`dataflows`), workers (`workers`: enrollment, heartbeats
//! and sync for workers; listing, assignment and revocation for admins),
//! enrollment tokens (`enrollment_tokens`, for admins), and the dashboard's
//! counts (`overview`), live taps (`taps`), and custom collectors
//! (`collectors`: uploads by admins, packages for workers). Admin routes
//! need an admin token and their changes are written to the audit log;
//! enrollment takes an enrollment token (or a worker's own credential, to
//! renew it) and every attempt is written to the audit log; the other
//! worker routes need the built-in enrollment token or a worker's own
//! credential; one layer (`api::admit`) checks both the token and the
//! declared body size. Bodies are limited to
//! `service.manager.max_body_bytes`; writes honour `If-Match` (412 when
//! stale) and answers carry the object's revision as its `ETag`.

mod collectors;
mod dataflows;
mod enrollment_tokens;
mod event_sets;
mod groups;
mod overview;
pub mod schema;
mod taps;
mod workers;

use std::sync::Arc;

use axum::{
    extract::DefaultBodyLimit,
    http::{
        HeaderMap, HeaderName, HeaderValue,
        header::{ETAG, IF_MATCH, IF_NONE_MATCH},
    },
    middleware,
};
use datascale_http::{
    Admission, ApiError, ApiState, Audience, BodyLimit, DataflowName, ErrorBody, GroupName, admit,
};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;

use super::{
    audit::{self, AuditLog},
    collectors::PackageFiles,
    event_sets::EventSets,
    store::{EnrollRefusal, Precondition, Store, StoreError},
    taps::TapHub,
    workers::{WorkerRegistry, enrollment::EnrollmentTokenRegistry},
};

/// What the manager's handlers share.
#[derive(Debug, Clone)]
pub struct ManagerState {
    /// The node's shared state (tokens, local worker, metrics).
    pub api: ApiState,
    /// The store of groups and dataflows.
    pub store: Arc<dyn Store>,
    /// The workers of this manager.
    pub workers: Arc<WorkerRegistry>,
    /// The enrollment tokens made through the API.
    pub enrollment: Arc<EnrollmentTokenRegistry>,
    /// The event sets workers send events to.
    pub event_sets: Arc<EventSets>,
    /// The largest ingest body, in bytes after decompression.
    pub ingest_limit: u64,
    /// The live taps open on this manager.
    pub taps: Arc<TapHub>,
    /// The custom collectors' packages.
    pub packages: PackageFiles,
    /// The largest collector package, in bytes, packed and unpacked.
    pub collector_limit: u64,
}

/// The manager's routes: the admin ones with their changes audited, the
/// workers' ones, with bodies limited to `max_body_bytes`; event ingest and
/// collector packages, for both, ingest with bodies limited to the state's
/// `ingest_limit`; and collector uploads, limited to `collector_limit`.
pub fn router(state: ManagerState, audit: Arc<AuditLog>, max_body_bytes: u64) -> OpenApiRouter {
    let api = state.api.clone();
    let limit = BodyLimit {
        bytes: max_body_bytes,
        key: "service.manager.max_body_bytes",
    };
    let ingest_limit = BodyLimit {
        bytes: state.ingest_limit,
        key: "event_sets.max_body_mb",
    };
    let collector_limit = BodyLimit {
        bytes: state.collector_limit,
        key: "service.manager.max_collector_mb",
    };
    let admin = OpenApiRouter::new()
        .merge(groups::router())
        .merge(dataflows::router())
        .merge(overview::router())
        .merge(workers::admin_router())
        .merge(enrollment_tokens::router())
        .merge(event_sets::admin_router())
        .merge(taps::admin_router())
        .merge(collectors::admin_router());
    let admin = only(admin, &api, Audience::Admins, limit).layer(middleware::from_fn_with_state(
        audit.clone(),
        audit::record_changes,
    ));
    let upload = only(
        collectors::upload_router(),
        &api,
        Audience::Admins,
        collector_limit,
    )
    .layer(middleware::from_fn_with_state(
        audit.clone(),
        audit::record_changes,
    ));
    let enrollment = only(
        workers::enrollment_router(),
        &api,
        Audience::Enrollment,
        limit,
    )
    .layer(middleware::from_fn_with_state(audit, audit::record_changes));
    let worker = workers::worker_router().merge(taps::worker_router());
    let worker = only(worker, &api, Audience::Workers, limit);
    let ingest = event_sets::ingest_router().merge(collectors::package_router());
    let ingest = only(ingest, &api, Audience::AnyToken, ingest_limit);
    admin
        .merge(enrollment)
        .merge(worker)
        .merge(ingest)
        .merge(upload)
        .with_state(state)
}

/// `router` behind [`admit`]: only valid tokens of `audience`, and only
/// bodies within `limit`.
fn only(
    router: OpenApiRouter<ManagerState>,
    api: &ApiState,
    audience: Audience,
    limit: BodyLimit,
) -> OpenApiRouter<ManagerState> {
    let admission = Admission {
        state: api.clone(),
        audience,
        body_limit: Some(limit),
    };
    router
        .route_layer(middleware::from_fn_with_state(admission, admit))
        .layer(DefaultBodyLimit::max(
            usize::try_from(limit.bytes).unwrap_or(usize::MAX),
        ))
}

/// How the store's refusals are answered.
impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound(message) => ApiError::NotFound(message),
            StoreError::Conflict(message) => ApiError::Conflict(message),
            StoreError::Enrollment(refusal) => {
                let message = refusal.to_string();
                match refusal {
                    EnrollRefusal::TokenGone(_)
                    | EnrollRefusal::Expired { .. }
                    | EnrollRefusal::UsedUp { .. } => ApiError::TokenRefused(message),
                    EnrollRefusal::OutOfScope { .. } | EnrollRefusal::Revoked(_) => {
                        ApiError::Refused(message)
                    }
                    EnrollRefusal::Taken(_) => ApiError::Conflict(message),
                    EnrollRefusal::NotEnrolled(_) => ApiError::NotEnrolled(message),
                }
            }
            failed @ StoreError::PreconditionFailed { .. } => {
                ApiError::PreconditionFailed(failed.to_string())
            }
            StoreError::Backend(message) => ApiError::Internal(message),
        }
    }
}

/// The errors every route here may answer, for the OpenAPI document.
#[derive(Debug, utoipa::IntoResponses)]
pub enum AdminErrors {
    /// No valid token.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// A valid token that is not an admin token.
    #[response(status = 403)]
    Forbidden(ErrorBody),
}

/// The errors a route that takes a JSON body may answer, besides its own 400.
#[derive(Debug, utoipa::IntoResponses)]
pub enum BodyErrors {
    /// The body is over `service.manager.max_body_bytes`.
    #[response(status = 413)]
    TooLarge(ErrorBody),
    /// The body is not sent as `application/json`.
    #[response(status = 415)]
    NotJson(ErrorBody),
}

/// The path of a group.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct GroupPath {
    /// The group's name.
    #[param(value_type = String, pattern = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    group: GroupName,
}

/// The path of a dataflow.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct DataflowPath {
    /// The group's name.
    #[param(value_type = String, pattern = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    group: GroupName,
    /// The dataflow's name.
    #[param(value_type = String, pattern = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    name: DataflowName,
}

/// The path of one revision of a dataflow.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct RevisionPath {
    /// The group's name.
    #[param(value_type = String, pattern = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    group: GroupName,
    /// The dataflow's name.
    #[param(value_type = String, pattern = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    name: DataflowName,
    /// A revision from the dataflow's history.
    #[param(minimum = 1, maximum = 9223372036854775807_u64)]
    revision: u64,
}

/// What a write expects, from `If-Match` (`*`, or a revision as its
/// `ETag` gives it: `"12"`, also taken weak, `W/"12"`, or bare, `12`) or
/// `If-None-Match: *`. Values are taken as written: exactly those the
/// schemas of these headers in the document allow.
fn precondition(headers: &HeaderMap) -> Result<Precondition, ApiError> {
    fn text<'a>(value: &'a HeaderValue, header: &str) -> Result<&'a str, ApiError> {
        value
            .to_str()
            .map_err(|_| ApiError::BadRequest(format!("{header} is not text")))
    }
    let if_match = headers
        .get(IF_MATCH)
        .map(|value| {
            let given = text(value, "If-Match")?;
            if given == "*" {
                return Ok(Precondition::Exists);
            }
            revision_tag(given).map(Precondition::Revision).ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "If-Match `{given}` is not a revision: send the ETag of the object, such as \"12\", or *"
                ))
            })
        })
        .transpose()?;
    let if_none_match = headers
        .get(IF_NONE_MATCH)
        .map(|value| match text(value, "If-None-Match")? {
            "*" => Ok(Precondition::Absent),
            _ => Err(ApiError::BadRequest(
                "a write takes only `If-None-Match: *` (create, never replace)".to_owned(),
            )),
        })
        .transpose()?;
    // With both, If-Match decides, as RFC 9110 evaluates it first.
    Ok(if_match.or(if_none_match).unwrap_or(Precondition::None))
}

/// The revision of an entity tag, `"12"` or `W/"12"`, or a bare `12`: at
/// most 19 digits, so that it always fits.
fn revision_tag(tag: &str) -> Option<u64> {
    let digits = match tag.strip_prefix("W/") {
        Some(weak) => weak.strip_prefix('"')?.strip_suffix('"')?,
        None => match tag.strip_prefix('"') {
            Some(quoted) => quoted.strip_suffix('"')?,
            None => tag,
        },
    };
    let fits = (1..=19).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit());
    fits.then(|| digits.parse().ok())?
}

/// The `ETag` header of an object at `revision`.
fn etag(revision: u64) -> [(HeaderName, HeaderValue); 1] {
    [(
        ETAG,
        HeaderValue::from_str(&format!("\"{revision}\"")).expect("a number is a header value"),
    )]
}

#[cfg(test)]
mod tests {
    use regex::Regex;
    use serde_json::Value;

    use super::*;

    #[test]
    fn the_documented_preconditions_are_exactly_those_taken() {
        let (_, document) = OpenApiRouter::<ManagerState>::new()
            .merge(groups::router())
            .merge(dataflows::router())
            .split_for_parts();
        let document = serde_json::to_value(document).unwrap();
        let candidates = [
            "*",
            "\"12\"",
            "W/\"12\"",
            "\"0\"",
            "\"1234567890123456789\"",
            "\"12345678901234567890\"",
            "12",
            "W/12",
            "\"12",
            "12\"",
            "\"\"",
            "W/\"\"",
            "",
            " *",
            "* ",
            "**",
            "W/*",
            "null",
            "\"+1\"",
            "\"-1\"",
            "\"1 \"",
            "w/\"1\"",
            "W/W/\"1\"",
            "\"1\", \"2\"",
            "\"\u{661}\"",
        ];
        let mut checked = Vec::new();
        for (path, operations) in document["paths"].as_object().unwrap() {
            for (method, operation) in operations.as_object().unwrap() {
                let parameters = operation["parameters"].as_array().into_iter().flatten();
                for parameter in parameters.filter(|p| p["in"] == "header") {
                    let header = parameter["name"].as_str().unwrap();
                    let at = format!("{method} {path} {header}");
                    assert_eq!(parameter["required"], Value::Bool(false), "{at}");
                    let schema = &parameter["schema"];
                    assert_eq!(schema["type"], "string", "{at}: {parameter}");
                    let allowed = |value: &str| match schema["enum"].as_array() {
                        Some(values) => values.iter().any(|allowed| allowed == value),
                        None => Regex::new(schema["pattern"].as_str().unwrap())
                            .unwrap()
                            .is_match(value),
                    };
                    for candidate in candidates {
                        let mut headers = HeaderMap::new();
                        headers.insert(
                            HeaderName::from_bytes(header.as_bytes()).unwrap(),
                            HeaderValue::from_bytes(candidate.as_bytes()).unwrap(),
                        );
                        assert_eq!(
                            allowed(candidate),
                            precondition(&headers).is_ok(),
                            "{at}: {candidate:?}"
                        );
                    }
                    checked.push(at);
                }
            }
        }
        // Both headers of the two PUTs, and If-Match of the two DELETEs
        // and of the restore.
        assert_eq!(checked.len(), 7, "{checked:?}");
    }

    #[test]
    fn with_both_headers_if_match_decides_and_both_are_checked() {
        let headers = |if_match: &str, if_none_match: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(IF_MATCH, HeaderValue::from_str(if_match).unwrap());
            headers.insert(IF_NONE_MATCH, HeaderValue::from_str(if_none_match).unwrap());
            headers
        };
        assert!(matches!(
            precondition(&headers("\"7\"", "*")),
            Ok(Precondition::Revision(7))
        ));
        assert!(precondition(&headers("*", "\"7\"")).is_err());
        assert!(precondition(&headers("W/7", "*")).is_err());
    }
}
