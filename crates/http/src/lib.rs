//! The HTTP plumbing every node shares: JSON errors and extractors (names
//! checked as they are read), the tokens a node accepts and the bearer-token
//! check (`auth`), the cluster-name check, admission by audience, the routes
//! every node answers (`/api/v1/health`, `/api/v1/status`, `/metrics` in the
//! Prometheus text format, `/api/v1/openapi.json`), the OpenAPI document
//! built from the routes' own annotations, and the one door to the worker of
//! the same process (`LocalDataflows`). It takes settings, never the
//! configuration file, and knows neither the manager nor the worker.

pub mod auth;
mod error;
mod local;
mod names;
mod prometheus;

use std::{net::SocketAddr, sync::Arc, time::Instant};

use axum::{
    Extension, Json, Router,
    extract::{Request, State},
    http::{
        HeaderValue,
        header::{AUTHORIZATION, CONTENT_LENGTH},
    },
    middleware::{self, Next},
    response::Response,
};
use serde::{Deserialize, Serialize};
use utoipa::{
    Modify, OpenApi, ToSchema,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};
use utoipa_axum::{router::OpenApiRouter, routes};

use datascale_core::metrics::Registry;
use datascale_dataflow::status::DataflowStatus;
use datascale_protocol::{CLUSTER_HEADER, EffectiveLimits, Mode};
pub use error::{ApiBody, ApiError, ApiJson, ApiPath, ApiQuery, ErrorBody};
pub use local::LocalDataflows;
pub use names::{CheckedName, CollectorName, DataflowName, GroupName, NameKind, WorkerId};

use crate::auth::{Caller, Role, Tokens};

/// The version of this build.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What the shared routes know about the node.
#[derive(Debug)]
pub struct NodeInfo {
    /// The configured mode.
    pub mode: Mode,
    /// `service.cluster_name`.
    pub cluster_name: String,
    /// The address the API listens on.
    pub api_address: SocketAddr,
    /// The address the Web UI listens on, when this node serves it.
    pub ui_address: Option<SocketAddr>,
    /// The groups of the local worker, when this node runs one.
    pub worker_groups: Vec<String>,
    /// The managers a worker reports to.
    pub manager_addresses: Vec<String>,
    /// When the node started.
    pub started: Instant,
    /// How the process came under its resource limits.
    pub resources: Arc<dyn LimitsProbe>,
}

/// Reads the resource limits the process runs under, whenever asked, so
/// that limits changed after the start show too.
pub trait LimitsProbe: Send + Sync + std::fmt::Debug {
    /// The limits in force now.
    fn effective_limits(&self) -> EffectiveLimits;
}

/// Limits known once and for all.
impl LimitsProbe for EffectiveLimits {
    fn effective_limits(&self) -> EffectiveLimits {
        self.clone()
    }
}

/// State shared by the handlers of the shared routes.
#[derive(Debug, Clone)]
pub struct ApiState {
    /// Facts about this node.
    pub node: Arc<NodeInfo>,
    /// The tokens this node accepts.
    pub tokens: Arc<Tokens>,
    /// The dataflows this node runs, when it runs a worker.
    pub worker: Option<Arc<dyn LocalDataflows>>,
    /// The counters `/metrics` shows.
    pub metrics: Arc<Registry>,
}

/// Body of `GET /api/v1/health`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok` when the node answers.
    pub status: &'static str,
    /// `manager`, `worker` or `standalone`.
    pub mode: Mode,
    /// The version of this build.
    pub version: &'static str,
}

/// Body of `GET /api/v1/status`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Status {
    /// `manager`, `worker` or `standalone`.
    pub mode: Mode,
    /// The version of this build.
    pub version: String,
    /// `service.cluster_name`.
    pub cluster_name: String,
    /// The process id.
    pub pid: u32,
    /// Seconds since the node started.
    pub uptime_secs: u64,
    /// The address the API listens on.
    #[schema(value_type = String)]
    pub api_address: SocketAddr,
    /// The address of the Web UI, when this node serves it.
    #[schema(value_type = Option<String>)]
    pub ui_address: Option<SocketAddr>,
    /// The local worker, when this node runs one.
    pub worker: Option<WorkerStatus>,
    /// The CPU and memory limits the process runs under, read from its
    /// cgroups; absent from nodes older than this field.
    #[serde(default)]
    pub resources: Option<EffectiveLimits>,
}

/// The local worker's part of [`Status`].
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WorkerStatus {
    /// Groups whose dataflows it runs.
    pub groups: Vec<String>,
    /// Managers it reports to; empty in standalone mode.
    pub manager_address: Vec<String>,
    /// The revision of the desired state it has applied.
    #[serde(default)]
    pub applied_revision: u64,
    /// Each dataflow it runs, with its state.
    #[serde(default, skip_deserializing)]
    pub dataflows: Vec<DataflowStatus>,
}

/// The URL at which a node listening on `address` answers on this host: a
/// wildcard listen address is reached on loopback.
pub fn local_url(address: SocketAddr) -> String {
    let host = match address.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".to_owned(),
        ip if ip.is_unspecified() => "[::1]".to_owned(),
        ip if ip.is_ipv6() => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    format!("http://{host}:{}", address.port())
}

/// The OpenAPI document's frame; the paths come from the routes.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "DataScale REST API",
        description = "Groups, dataflows and their history, workers and the cluster's state. Every route but `/api/v1/health`, `/api/v1/openapi.json` and `/metrics` needs `Authorization: Bearer <token>`; errors are `{\"error\": {\"code\", \"message\", \"details\"}}`."
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    components(schemas(ErrorBody))
)]
struct ApiDoc;

/// Declares the bearer-token scheme the routes refer to.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The routes every node serves, with `/api/v1/status` behind a token, and
/// the manager's routes when this node runs one; `/api/v1/openapi.json`
/// describes exactly the routes served.
pub fn node_router(state: ApiState, manager: Option<OpenApiRouter>) -> Router {
    let admission = Admission {
        state: state.clone(),
        audience: Audience::AnyToken,
        body_limit: None,
    };
    let protected = OpenApiRouter::new()
        .routes(routes!(status))
        .route_layer(middleware::from_fn_with_state(admission, admit));
    let open = OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(prometheus))
        .routes(routes!(openapi))
        .route_layer(middleware::from_fn_with_state(state.clone(), check_cluster));
    let (router, document) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(open)
        .merge(protected)
        .with_state(state.clone())
        .merge(manager.unwrap_or_default())
        .split_for_parts();
    router
        .layer(Extension(Arc::new(document)))
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
}

/// The OpenAPI 3 document of this node's API.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "node",
    security(()),
    responses((status = 200, description = "The OpenAPI 3 document of every route this node serves", body = Object))
)]
async fn openapi(
    Extension(document): Extension<Arc<utoipa::openapi::OpenApi>>,
) -> Json<utoipa::openapi::OpenApi> {
    Json(document.as_ref().clone())
}

/// Whether the node answers, its mode and version.
#[utoipa::path(
    get,
    path = "/api/v1/health",
    tag = "node",
    security(()),
    responses((status = 200, description = "The node answers", body = Health))
)]
async fn health(State(state): State<ApiState>) -> Json<Health> {
    Json(Health {
        status: "ok",
        mode: state.node.mode,
        version: VERSION,
    })
}

/// Every counter of this node in Prometheus text.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "node",
    security(()),
    responses((status = 200, description = "Prometheus text format 0.0.4", body = String, content_type = "text/plain"))
)]
async fn prometheus(State(state): State<ApiState>) -> impl axum::response::IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        prometheus::render(&state.metrics, &state.node.resources.effective_limits()),
    )
}

/// What this node is and does.
#[utoipa::path(
    get,
    path = "/api/v1/status",
    tag = "node",
    responses(
        (status = 200, description = "The node's state", body = Status),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "A worker's token on a manager", body = ErrorBody)
    )
)]
async fn status(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Status>, ApiError> {
    let node = &state.node;
    // On a manager, worker credentials only heartbeat, sync and ingest.
    if node.mode.runs_manager() && caller.role != Role::Admin {
        return Err(ApiError::Forbidden("read the node's status"));
    }
    let mut worker = node.mode.runs_worker().then(|| WorkerStatus {
        groups: node.worker_groups.clone(),
        manager_address: node.manager_addresses.clone(),
        applied_revision: 0,
        dataflows: Vec::new(),
    });
    if let (Some(shown), Some(local)) = (worker.as_mut(), &state.worker) {
        shown.applied_revision = local.applied_revision();
        shown.dataflows = local.statuses().await;
    }
    Ok(Json(Status {
        mode: node.mode,
        version: VERSION.to_owned(),
        cluster_name: node.cluster_name.clone(),
        pid: std::process::id(),
        uptime_secs: node.started.elapsed().as_secs(),
        api_address: node.api_address,
        ui_address: node.ui_address,
        worker,
        resources: Some(node.resources.effective_limits()),
    }))
}

async fn not_found(request: Request) -> ApiError {
    ApiError::NotFound(format!(
        "no route for {} {}",
        request.method(),
        request.uri().path()
    ))
}

async fn method_not_allowed(request: Request) -> ApiError {
    ApiError::MethodNotAllowed(format!(
        "{} does not take {}",
        request.uri().path(),
        request.method()
    ))
}

/// Refuses a request meant for another cluster: one whose
/// `X-DataScale-Cluster` names another than `service.cluster_name`. The
/// routes behind [`admit`] are checked there; this layer serves the open ones.
async fn check_cluster(
    State(state): State<ApiState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    same_cluster(&state, &request)?;
    Ok(next.run(request).await)
}

/// Whether a request is for this node's cluster (or names none).
fn same_cluster(state: &ApiState, request: &Request) -> Result<(), ApiError> {
    let ours = state.node.cluster_name.as_str();
    match request
        .headers()
        .get(CLUSTER_HEADER)
        .map(HeaderValue::to_str)
    {
        None => Ok(()),
        Some(Ok(theirs)) if theirs == ours => Ok(()),
        Some(theirs) => Err(ApiError::Conflict(format!(
            "this node belongs to cluster `{ours}`, but the request is for cluster `{}` ({CLUSTER_HEADER}); check service.cluster_name on both sides",
            theirs.unwrap_or("<not text>")
        ))),
    }
}

/// Which tokens the routes behind [`admit`] take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Any valid token.
    AnyToken,
    /// Admin tokens only.
    Admins,
    /// The built-in enrollment token and workers' own credentials only.
    Workers,
    /// Any enrollment token (the built-in one, or one made through the
    /// API) and workers' own credentials: enrollment itself.
    Enrollment,
}

/// The most bytes a request body may declare, and the key that sets it.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit {
    /// The limit.
    pub bytes: u64,
    /// The configuration key that sets it, for the error message.
    pub key: &'static str,
}

/// The state of [`admit`]: the tokens, who may pass, and with how large a
/// body.
#[derive(Debug, Clone)]
pub struct Admission {
    /// The node's shared state, with its tokens.
    pub state: ApiState,
    /// Who may pass.
    pub audience: Audience,
    /// The largest body a request may declare, if the routes take bodies.
    pub body_limit: Option<BodyLimit>,
}

/// Lets a request through only when it is for this cluster (409, as
/// [`check_cluster`]), the body it declares is within the limit (413
/// before reading it; a body without a declared length is cut off when
/// read, by `DefaultBodyLimit`), and it carries a valid `Authorization:
/// Bearer` token of the audience (401 without one, 403 for another role).
/// It records the [`Caller`] in the request's extensions and in the
/// response's, where the audit log finds it. One layer does all of this,
/// since a long-polled request holds every layer's future while it waits.
pub async fn admit(
    State(admission): State<Admission>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    same_cluster(&admission.state, &request)?;
    if let Some(BodyLimit { bytes: limit, key }) = admission.body_limit {
        let declared = request
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|text| text.parse::<u64>().ok());
        if let Some(length) = declared.filter(|&length| length > limit) {
            return Err(ApiError::PayloadTooLarge(format!(
                "the request body has {length} bytes; {key} allows {limit}"
            )));
        }
    }
    let presented = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim);
    let caller: Caller = presented
        .and_then(|token| admission.state.tokens.identify(token))
        .ok_or(ApiError::Unauthorized)?;
    match (admission.audience, caller.role) {
        (Audience::Admins, Role::Worker | Role::Enrollment) => {
            return Err(ApiError::Forbidden("manage the cluster"));
        }
        (Audience::Workers | Audience::Enrollment, Role::Admin) => {
            return Err(ApiError::Refused(
                "this route is for workers: present the enrollment token or a worker's credential"
                    .to_owned(),
            ));
        }
        (Audience::Workers | Audience::AnyToken, Role::Enrollment) => {
            return Err(ApiError::Refused(
                "an enrollment token only enrolls workers (POST /api/v1/workers/enroll); present the worker's own credential"
                    .to_owned(),
            ));
        }
        _ => {}
    }
    request.extensions_mut().insert(caller.clone());
    let mut response = next.run(request).await;
    response.extensions_mut().insert(caller);
    Ok(response)
}

#[cfg(test)]
mod tests {
    use axum::{
        body::Body,
        http::{Request, StatusCode},
    };
    use tower::ServiceExt;

    use super::*;

    fn no_limits() -> EffectiveLimits {
        EffectiveLimits {
            source: datascale_protocol::LimitSource::None,
            cgroup_version: None,
            cpu_cgroup: None,
            memory_cgroup: None,
            cpu_quota_percent: 0.0,
            memory_limit_bytes: 0,
        }
    }

    fn router() -> Router {
        let node = NodeInfo {
            mode: Mode::Worker,
            cluster_name: "datascale".into(),
            api_address: "127.0.0.1:7881".parse().unwrap(),
            ui_address: None,
            worker_groups: vec!["default".into()],
            manager_addresses: vec!["http://m1:7881".into()],
            started: Instant::now(),
            resources: Arc::new(no_limits()),
        };
        node_router(
            ApiState {
                node: Arc::new(node),
                tokens: Arc::new(Tokens::for_worker("worker-secret")),
                worker: None,
                metrics: Registry::new(),
            },
            None,
        )
    }

    async fn call(path: &str, token: Option<&str>) -> (StatusCode, serde_json::Value) {
        call_with(Request::get(path), token).await
    }

    async fn call_with(
        mut request: axum::http::request::Builder,
        token: Option<&str>,
    ) -> (StatusCode, serde_json::Value) {
        if let Some(token) = token {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        let response = router()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn health_is_open_and_names_the_mode() {
        let (status, body) = call("/api/v1/health", None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["status"], "ok");
        assert_eq!(body["mode"], "worker");
        assert_eq!(body["version"], VERSION);
    }

    #[tokio::test]
    async fn status_needs_a_valid_token() {
        let (status, body) = call("/api/v1/status", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["error"]["code"], "unauthorized");
        let (status, _) = call("/api/v1/status", Some("wrong")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, body) = call("/api/v1/status", Some("worker-secret")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["worker"]["groups"][0], "default");
        assert_eq!(body["ui_address"], serde_json::Value::Null);
    }

    #[tokio::test]
    async fn unknown_routes_get_a_json_404() {
        let (status, body) = call("/api/v1/nope", None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["error"]["code"], "not_found");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("/api/v1/nope")
        );
    }

    #[tokio::test]
    async fn a_request_for_another_cluster_gets_409_naming_both() {
        let request = Request::get("/api/v1/health").header(CLUSTER_HEADER, "other");
        let (status, body) = call_with(request, None).await;
        assert_eq!(status, StatusCode::CONFLICT);
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("`datascale`") && message.contains("`other`"),
            "{message}"
        );
        let request = Request::get("/api/v1/health").header(CLUSTER_HEADER, "datascale");
        assert_eq!(call_with(request, None).await.0, StatusCode::OK);
    }

    #[tokio::test]
    async fn a_wrong_method_gets_a_json_405() {
        let (status, body) = call_with(Request::delete("/api/v1/health"), None).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(body["error"]["code"], "method_not_allowed");
    }
}
