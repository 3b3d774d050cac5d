//! Event sets over HTTP: ingest (`POST /api/v1/event_sets/{name}/events`,
//! NDJSON, optionally gzip; workers and admins), search
//! (`GET …/events?q=&from=&to=&limit=&cursor=`) and the list of sets (admins).

use std::io::Read;

use axum::{
    Json,
    body::Bytes,
    extract::State,
    http::{
        HeaderMap,
        header::{CONTENT_ENCODING, CONTENT_TYPE},
    },
};
use chrono::Utc;
use datascale_http::{ApiBody, ApiError, ApiJson, ApiPath, ApiQuery, ErrorBody};
use flate2::read::GzDecoder;
use serde::{Deserialize, Serialize};
use utoipa::{
    IntoParams, ToSchema,
    openapi::schema::{Object, ObjectBuilder, Type},
};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{AdminErrors, BodyErrors, ManagerState, schema::EventLines};
use crate::event_sets::{
    EventSetError, MAX_LIMIT, Page, Retention, RetentionOverride, SetSummary, query,
};

/// The ingest route: for workers (their `yh` sinks) and admins.
pub(super) fn ingest_router() -> OpenApiRouter<ManagerState> {
    OpenApiRouter::new().routes(routes!(ingest))
}

/// The routes admins read event sets with.
pub(super) fn admin_router() -> OpenApiRouter<ManagerState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(search))
        .routes(routes!(set_retention))
}

/// The path of an event set.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct SetPath {
    /// The event set's name.
    #[param(pattern = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    name: String,
}

/// The query of a search.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct SearchQuery {
    /// What to look for: [`query_text`].
    #[param(schema_with = query_text)]
    q: Option<String>,
    /// Events at or after: [`since`].
    #[param(schema_with = since)]
    from: Option<String>,
    /// Events before: [`before`].
    #[param(schema_with = before)]
    to: Option<String>,
    /// Events per page: 100 when left out, at most 10,000.
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]{1,19}$")]
    cursor: Option<String>,
}

/// The schema of `q`: the words [`query::QUERY_PATTERN`] takes.
fn query_text() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(
            "Full-text terms and `field:value` filters, all of which must match; a filter's field is names of letters, digits, `_` and `-` joined by `.` (a path into nested objects).",
        ))
        .pattern(Some(query::QUERY_PATTERN))
        .build()
}

/// The schema of `from`.
fn since() -> Object {
    time("Events at or after")
}

/// The schema of `to`.
fn before() -> Object {
    time("Events before")
}

/// The schema of a time: what [`query::TIME_PATTERN`] takes.
fn time(which: &str) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(format!(
            "{which}: RFC 3339 (`2026-11-23T10:00:00Z`), or relative to now (`-15m`, `-2h`, `-7d`, `now`)."
        )))
        .min_length(Some(1))
        .pattern(Some(query::TIME_PATTERN))
        .build()
}

/// The answer to an ingest.
#[derive(Debug, Serialize, ToSchema)]
struct Ingested {
    /// How many events were stored.
    accepted: usize,
}

impl From<EventSetError> for ApiError {
    fn from(err: EventSetError) -> Self {
        match err {
            EventSetError::NotFound(_) => ApiError::NotFound(err.to_string()),
            EventSetError::BadLine { .. }
            | EventSetError::NoEvents
            | EventSetError::BadName { .. }
            | EventSetError::BadCursor(_) => ApiError::BadRequest(err.to_string()),
            EventSetError::Backend(message) => ApiError::Internal(message),
        }
    }
}

/// The body as sent, inflated when gzip, refused beyond `limit` bytes.
fn decoded(headers: &HeaderMap, body: Bytes, limit: u64) -> Result<Vec<u8>, ApiError> {
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("application/x-ndjson");
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    if !matches!(
        essence,
        "application/x-ndjson" | "application/jsonl" | "application/json" | "text/plain"
    ) {
        return Err(ApiError::UnsupportedMediaType(format!(
            "send events as NDJSON (`Content-Type: application/x-ndjson`), not `{content_type}`"
        )));
    }
    let encoding = headers
        .get(CONTENT_ENCODING)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("identity");
    match encoding {
        "identity" => Ok(body.to_vec()),
        "gzip" => {
            let mut inflated = Vec::new();
            GzDecoder::new(body.as_ref())
                .take(limit + 1)
                .read_to_end(&mut inflated)
                .map_err(|err| {
                    ApiError::BadRequest(format!("the gzip body cannot be read: {err}"))
                })?;
            if inflated.len() as u64 > limit {
                return Err(ApiError::PayloadTooLarge(format!(
                    "the body inflates to more than {limit} bytes (event_sets.max_body_mb)"
                )));
            }
            Ok(inflated)
        }
        other => Err(ApiError::UnsupportedMediaType(format!(
            "`Content-Encoding: {other}` is not supported; send gzip or nothing"
        ))),
    }
}

/// Stores events in an event set, created on first use: NDJSON, one JSON
/// object per line, all or nothing. Events without a `timestamp` get the
/// time of arrival. Durable when answered.
#[utoipa::path(
    post,
    path = "/api/v1/event_sets/{name}/events",
    operation_id = "ingest_events",
    tag = "event_sets",
    params(SetPath),
    request_body(content = EventLines, content_type = "application/x-ndjson", description = "One JSON object per line, at least one (the schema is of the lines); may be sent with Content-Encoding: gzip"),
    responses(
        (status = 200, description = "Stored", body = Ingested),
        (status = 400, description = "A line that is not a JSON object (named), no event at all, or a bad set name; nothing stored", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 413, description = "Body over event_sets.max_body_mb", body = ErrorBody),
        (status = 415, description = "Not NDJSON, or an unknown Content-Encoding", body = ErrorBody)
    )
)]
async fn ingest(
    State(state): State<ManagerState>,
    ApiPath(SetPath { name }): ApiPath<SetPath>,
    headers: HeaderMap,
    ApiBody(body): ApiBody,
) -> Result<Json<Ingested>, ApiError> {
    let body = decoded(&headers, body, state.ingest_limit)?;
    let accepted = state.event_sets.ingest(&name, body).await?;
    Ok(Json(Ingested { accepted }))
}

/// Every event set with its number of events, size and time span.
#[utoipa::path(
    get,
    path = "/api/v1/event_sets",
    operation_id = "list_event_sets",
    tag = "event_sets",
    responses(
        (status = 200, description = "The event sets, by name", body = Vec<SetSummary>),
        AdminErrors
    )
)]
async fn list(State(state): State<ManagerState>) -> Result<Json<Vec<SetSummary>>, ApiError> {
    Ok(Json(state.event_sets.list().await?))
}

/// Events of a set that match a query, newest first, a page at a time.
#[utoipa::path(
    get,
    path = "/api/v1/event_sets/{name}/events",
    operation_id = "search_events",
    tag = "event_sets",
    params(SetPath, SearchQuery),
    responses(
        (status = 200, description = "A page of events", body = Page),
        (status = 400, description = "A bad query, time, limit or cursor", body = ErrorBody),
        AdminErrors,
        (status = 404, description = "No such event set", body = ErrorBody)
    )
)]
async fn search(
    State(state): State<ManagerState>,
    ApiPath(SetPath { name }): ApiPath<SetPath>,
    ApiQuery(params): ApiQuery<SearchQuery>,
) -> Result<Json<Page>, ApiError> {
    let limit = params.limit.unwrap_or(100);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit {limit} is out of range: 1 to {MAX_LIMIT}"
        )));
    }
    let parsed = query::parse(
        params.q.as_deref(),
        params.from.as_deref(),
        params.to.as_deref(),
        Utc::now(),
    )
    .map_err(|err| ApiError::BadRequest(err.to_string()))?;
    let page = state
        .event_sets
        .search(&name, parsed, limit, params.cursor.as_deref())
        .await?;
    Ok(Json(page))
}

/// Sets how long and how much one event set keeps, over `[event_sets]`;
/// a field left out (or null) goes back to the configuration's value.
#[utoipa::path(
    put,
    path = "/api/v1/event_sets/{name}/retention",
    operation_id = "set_event_set_retention",
    tag = "event_sets",
    params(SetPath),
    request_body = RetentionOverride,
    responses(
        (status = 200, description = "What the set keeps now", body = Retention),
        (status = 400, description = "A bad name or body", body = ErrorBody),
        AdminErrors,
        BodyErrors
    )
)]
async fn set_retention(
    State(state): State<ManagerState>,
    ApiPath(SetPath { name }): ApiPath<SetPath>,
    ApiJson(retention): ApiJson<RetentionOverride>,
) -> Result<Json<Retention>, ApiError> {
    if let Some(problem) = retention.problem() {
        return Err(ApiError::BadRequest(problem));
    }
    Ok(Json(
        state.event_sets.set_retention(&name, retention).await?,
    ))
}

#[cfg(test)]
mod proptests;
