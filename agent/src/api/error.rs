//! `ApiError`: every failure of the API as one status and one JSON shape,
//! `{"error": {"code", "message", "details"}}`.

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::json;

/// A failed API request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No token, or one this node does not accept.
    #[error("missing or invalid token: send `Authorization: Bearer <token>`")]
    Unauthorized,
    /// Nothing at this path.
    #[error("{0}")]
    NotFound(String),
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let body = json!({"error": {"code": code, "message": self.to_string(), "details": []}});
        (status, Json(body)).into_response()
    }
}
