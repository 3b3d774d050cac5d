//! `ApiError`: every failure of the API as one status and one JSON shape,
//! `{"error": {"code", "message", "details"}}`.

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

use crate::{dataflow::ValidationErrors, worker::ApplyError};

/// A failed API request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No token, or one this node does not accept.
    #[error("missing or invalid token: send `Authorization: Bearer <token>`")]
    Unauthorized,
    /// The token is valid but may not do this.
    #[error("this token may not {0}; use the admin token")]
    Forbidden(&'static str),
    /// Nothing at this path.
    #[error("{0}")]
    NotFound(String),
    /// The request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// The dataflow document is invalid: every problem with its path.
    #[error("the dataflow is invalid: {} problem(s)", .0.0.len())]
    InvalidDataflow(ValidationErrors),
    /// The dataflow is valid but could not start.
    #[error(transparent)]
    Apply(#[from] ApplyError),
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::InvalidDataflow(_) => (StatusCode::BAD_REQUEST, "invalid_dataflow"),
            ApiError::Apply(_) => (StatusCode::UNPROCESSABLE_ENTITY, "apply_failed"),
        }
    }

    fn details(&self) -> Value {
        match self {
            ApiError::InvalidDataflow(errors) => json!(errors.0),
            ApiError::Apply(failure) => json!([{
                "dataflow": failure.name,
                "revision": failure.revision,
                "previous_kept": failure.previous_kept,
            }]),
            _ => json!([]),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let body = json!({"error": {"code": code, "message": self.to_string(), "details": self.details()}});
        (status, Json(body)).into_response()
    }
}
