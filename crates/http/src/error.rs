//! `ApiError`: every failure of the API as one status and one JSON shape,
//! `{"error": {"code", "message", "details"}}`, and the rejections of the
//! extractors turned into it.

use std::{fmt, marker::PhantomData};

use axum::{
    Json,
    extract::{
        FromRequest, FromRequestParts,
        path::ErrorKind,
        rejection::{JsonRejection, PathRejection, QueryRejection},
    },
    http::StatusCode,
    response::{IntoResponse, Response},
};
use datascale_connections::{BodyTimedOut, body_timeout_in};
use serde::{
    Deserialize, Deserializer, Serialize,
    de::{DeserializeOwned, MapAccess, Visitor, value::MapAccessDeserializer},
};
use serde_json::{Value, json};
use tracing::error;
use utoipa::ToSchema;

/// A failed API request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No token, or one this node does not accept.
    #[error("missing or invalid token: send `Authorization: Bearer <token>`")]
    Unauthorized,
    /// A worker credential this manager does not know (any more).
    #[error("{0}")]
    NotEnrolled(String),
    /// A token this manager knows but accepts no more: an enrollment token
    /// that expired, was used up or was revoked meanwhile.
    #[error("{0}")]
    TokenRefused(String),
    /// The token is valid but may not do this.
    #[error("this token may not {0}; use an admin token")]
    Forbidden(&'static str),
    /// The caller is known but refused, for the reason given.
    #[error("{0}")]
    Refused(String),
    /// Nothing at this path.
    #[error("{0}")]
    NotFound(String),
    /// The path exists but not with this method.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// The request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// The dataflow document is invalid: every problem (its JSON path and
    /// what is wrong there), as the answer's `details`.
    #[error("the dataflow is invalid: {} problem(s)", .0.len())]
    InvalidDataflow(Vec<Value>),
    /// The request conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// The object is not at the revision the request expected (`If-Match`).
    #[error("{0}")]
    PreconditionFailed(String),
    /// The body did not arrive within `service.http.body_read_timeout_secs`.
    #[error("{0}")]
    RequestTimeout(String),
    /// The body is larger than the configured limit.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// The body is not of a type this route takes.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Something failed on this side; the message is logged too.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Unauthorized | ApiError::NotEnrolled(_) | ApiError::TokenRefused(_) => {
                (StatusCode::UNAUTHORIZED, "unauthorized")
            }
            ApiError::Forbidden(_) | ApiError::Refused(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::InvalidDataflow(_) => (StatusCode::BAD_REQUEST, "invalid_dataflow"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::PreconditionFailed(_) => {
                (StatusCode::PRECONDITION_FAILED, "precondition_failed")
            }
            ApiError::RequestTimeout(_) => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
            ApiError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    fn details(&self) -> Value {
        match self {
            ApiError::InvalidDataflow(problems) => json!(problems),
            _ => json!([]),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let ApiError::Internal(message) = &self {
            error!(error = %message, "A request failed on this side.");
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code,
                message: self.to_string(),
                details: self.details(),
            },
        };
        (status, Json(body)).into_response()
    }
}

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// What went wrong, for programs (`code`) and for people (`message`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable word: `bad_request`, `invalid_dataflow`, `unauthorized`,
    /// `forbidden`, `not_found`, `method_not_allowed`, `conflict`,
    /// `precondition_failed`, `request_timeout`, `payload_too_large`,
    /// `unsupported_media_type` or `internal`.
    pub code: &'static str,
    /// A sentence that names the problem and, where there is one, the fix.
    pub message: String,
    /// For an invalid dataflow, each problem with its JSON path.
    #[schema(value_type = Vec<Object>)]
    pub details: Value,
}

/// A JSON body that is a JSON object, with its rejections as [`ApiError`]s.
/// Every body the API takes is an object; serde would also fill a struct
/// from an array of its fields in order (`[null, null]`), which no schema
/// of the document allows.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let Json(JsonObject(value)) = Json::<JsonObject<T>>::from_request(request, state).await?;
        Ok(Self(value))
    }
}

/// A `T` read from a JSON object only: anything else is refused as a type
/// error (`invalid type: sequence, expected a JSON object`), with the
/// position and the path of the field as axum's `Json` reports them.
struct JsonObject<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for JsonObject<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Object<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for Object<T> {
            type Value = T;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map))
            }
        }

        deserializer
            .deserialize_map(Object(PhantomData))
            .map(JsonObject)
    }
}

/// Path parameters, with their rejections as [`ApiError`]s.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

/// Query parameters, with their rejections as [`ApiError`]s.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

/// A raw body, with its rejections (too large, unreadable) as [`ApiError`]s.
#[derive(Debug)]
pub struct ApiBody(pub axum::body::Bytes);

impl<S: Send + Sync> FromRequest<S> for ApiBody {
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        axum::body::Bytes::from_request(request, state)
            .await
            .map(Self)
            .map_err(|rejection| {
                if let Some(timeout) = body_timeout_in(&rejection) {
                    return timeout.into();
                }
                match rejection.status() {
                    StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge(
                        "the request body is larger than this route allows".to_owned(),
                    ),
                    _ => ApiError::BadRequest(format!(
                        "cannot read the body: {}",
                        rejection.body_text()
                    )),
                }
            })
    }
}

impl From<&BodyTimedOut> for ApiError {
    fn from(timeout: &BodyTimedOut) -> Self {
        ApiError::RequestTimeout(format!(
            "{timeout}; send it faster or raise service.http.body_read_timeout_secs"
        ))
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        if let Some(timeout) = body_timeout_in(&rejection) {
            return timeout.into();
        }
        match rejection {
            JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType(
                "send the body as JSON, with `Content-Type: application/json`".to_owned(),
            ),
            JsonRejection::JsonSyntaxError(err) => {
                ApiError::BadRequest(format!("the body is not valid JSON: {}", err.body_text()))
            }
            JsonRejection::JsonDataError(err) => {
                ApiError::BadRequest(format!("the body does not fit: {}", err.body_text()))
            }
            other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge(
                "the request body is larger than service.manager.max_body_bytes allows".to_owned(),
            ),
            other => ApiError::BadRequest(format!("cannot read the body: {}", other.body_text())),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        // A value the path's type refused says why itself (a bad name).
        if let PathRejection::FailedToDeserializePathParams(failed) = &rejection
            && let ErrorKind::Message(message) = failed.kind()
        {
            return ApiError::BadRequest(message.clone());
        }
        ApiError::BadRequest(format!("bad path: {}", rejection.body_text()))
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::BadRequest(format!("bad query: {}", rejection.body_text()))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// What the JSON log writes, kept in memory.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A body of two optional numbers, as many of the API's bodies are.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[expect(dead_code, reason = "only whether it is read matters here")]
    struct Limits {
        days: Option<u64>,
        size: Option<u64>,
    }

    /// What `ApiJson<Limits>` makes of `body` sent as `content_type`.
    async fn read(content_type: &str, body: &'static str) -> Result<(), (StatusCode, String)> {
        let request = axum::http::Request::post("/")
            .header(axum::http::header::CONTENT_TYPE, content_type)
            .body(axum::body::Body::from(body))
            .unwrap();
        match ApiJson::<Limits>::from_request(request, &()).await {
            Ok(_) => Ok(()),
            Err(err) => Err((err.status_and_code().0, err.to_string())),
        }
    }

    #[tokio::test]
    async fn a_json_body_is_an_object_and_nothing_else() {
        assert_eq!(read("application/json", r#"{"days": 7}"#).await, Ok(()));
        assert_eq!(read("application/json", " \n {}").await, Ok(()));
        // serde fills a struct from an array of its fields, in order.
        for body in ["[null, null]", "[7]", "[]", "null", "7", "\"days\""] {
            let (status, message) = read("application/json", body).await.unwrap_err();
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {message}");
            assert!(
                message.contains("expected a JSON object"),
                "{body}: {message}"
            );
        }
    }

    #[tokio::test]
    async fn a_json_body_keeps_its_content_type_check_and_its_messages() {
        let (status, _) = read("text/plain", "{}").await.unwrap_err();
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        // An integer field takes an integer, not a number with a fraction,
        // even a zero one.
        for (body, number) in [
            (r#"{"size": 242.5}"#, "242.5"),
            (r#"{"size": 242.0}"#, "242.0"),
        ] {
            let (status, message) = read("application/json", body).await.unwrap_err();
            assert_eq!(status, StatusCode::BAD_REQUEST);
            let expected = format!("size: invalid type: floating point `{number}`, expected u64");
            assert!(
                message.starts_with("the body does not fit:") && message.contains(&expected),
                "{message}"
            );
        }
        let (_, message) = read("application/json", r#"{"hours": 1}"#)
            .await
            .unwrap_err();
        assert!(message.contains("unknown field `hours`"), "{message}");
        let (_, message) = read("application/json", "{").await.unwrap_err();
        assert!(
            message.starts_with("the body is not valid JSON:"),
            "{message}"
        );
    }

    #[test]
    fn an_internal_error_is_logged_with_its_cause_beside_the_sentence() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let answer = ApiError::Internal("database or disk is full".into()).into_response();
            assert_eq!(answer.status(), StatusCode::INTERNAL_SERVER_ERROR);
        });
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let line: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(
            line["fields"],
            json!({"message": "A request failed on this side.", "error": "database or disk is full"}),
            "{text}"
        );
    }
}
