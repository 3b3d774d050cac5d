//! `/api/v1/enrollment_tokens[/{id}]`: the enrollment tokens admins make,
//! list and revoke, each limited to groups (or to none), with an optional
//! expiry and number of uses. A token's secret is in the answer to its
//! creation and nowhere else.

use std::collections::BTreeSet;

use axum::{Extension, Json, extract::State, http::StatusCode};
use chrono::{DateTime, SecondsFormat, Utc};
use datascale_http::{ApiError, ApiJson, ApiPath, ErrorBody, GroupName, auth::Caller};
use datascale_protocol::Name;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{AdminErrors, BodyErrors, ManagerState};
use crate::{
    audit::AuditSubject,
    store::{Change, EnrollRefusal, EnrollmentToken},
    workers::enrollment::TokenRequest,
};

/// The longest description of a token, in characters.
const MAX_DESCRIPTION: usize = 256;

pub(super) fn router() -> OpenApiRouter<ManagerState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(revoke))
}

/// Body of `POST /api/v1/enrollment_tokens`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewToken {
    /// Free text for people, such as what the token is for; at most 256
    /// characters.
    #[serde(default)]
    #[schema(max_length = 256)]
    description: String,
    /// The groups a worker enrolling with it may ask for, at least one;
    /// null: any group. Required, so that a token for every group is asked
    /// for on purpose.
    #[serde(deserialize_with = "present")]
    #[schema(required = true, min_items = 1, value_type = Option<Vec<Name>>)]
    groups: Option<Vec<GroupName>>,
    /// When it stops enrolling workers: an RFC 3339 time in the future;
    /// left out or null: never.
    #[schema(format = DateTime)]
    expires_at: Option<String>,
    /// How many workers it may enroll, at least 1; left out or null: any
    /// number.
    #[schema(minimum = 1, maximum = 9223372036854775807_u64)]
    max_uses: Option<u64>,
}

/// A field that must be given, though it may be null.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    Option::deserialize(deserializer)
}

/// Whether a token may still enroll workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum TokenState {
    /// It enrolls workers.
    Active,
    /// Its `expires_at` has passed.
    Expired,
    /// It enrolled its `max_uses` workers.
    UsedUp,
}

/// An enrollment token as the API shows it; never its secret.
#[derive(Debug, Serialize, ToSchema)]
struct TokenView {
    #[serde(flatten)]
    token: EnrollmentToken,
    /// Whether it may still enroll workers.
    state: TokenState,
}

impl From<EnrollmentToken> for TokenView {
    fn from(token: EnrollmentToken) -> Self {
        let state = match token.refusal(&[], Utc::now()) {
            Some(EnrollRefusal::Expired { .. }) => TokenState::Expired,
            Some(EnrollRefusal::UsedUp { .. }) => TokenState::UsedUp,
            _ => TokenState::Active,
        };
        Self { token, state }
    }
}

/// The answer to a creation: the token, and its secret, shown this once.
#[derive(Debug, Serialize, ToSchema)]
struct CreatedToken {
    #[serde(flatten)]
    view: TokenView,
    /// The secret workers enroll with (`service.worker.token`). Shown only
    /// in this answer; the manager keeps its SHA-256 alone.
    #[schema(pattern = "^dse_[0-9a-f]{64}$")]
    token: String,
}

/// The path of an enrollment token.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct TokenPath {
    /// The token's id.
    #[param(pattern = "^et-[0-9a-f]{16}$")]
    id: String,
}

/// The answer to a revocation.
#[derive(Debug, Serialize, ToSchema)]
struct RevokedToken {
    /// The token's id.
    #[schema(pattern = "^et-[0-9a-f]{16}$")]
    revoked: String,
}

/// Every enrollment token, by id, without their secrets.
#[utoipa::path(
    get,
    path = "/api/v1/enrollment_tokens",
    operation_id = "list_enrollment_tokens",
    tag = "cluster",
    responses(
        (status = 200, description = "The enrollment tokens, by id", body = Vec<TokenView>),
        AdminErrors
    )
)]
async fn list(State(state): State<ManagerState>) -> Result<Json<Vec<TokenView>>, ApiError> {
    let tokens = state.enrollment.list().await?;
    Ok(Json(tokens.into_iter().map(TokenView::from).collect()))
}

/// Makes an enrollment token. Its secret is in this answer only.
#[utoipa::path(
    post,
    path = "/api/v1/enrollment_tokens",
    operation_id = "create_enrollment_token",
    tag = "cluster",
    request_body = NewToken,
    responses(
        (status = 201, description = "Made; the secret is shown once", body = CreatedToken),
        (status = 400, description = "Bad groups, expiry, number of uses or description", body = ErrorBody),
        AdminErrors,
        BodyErrors
    )
)]
async fn create(
    State(state): State<ManagerState>,
    Extension(caller): Extension<Caller>,
    ApiJson(asked): ApiJson<NewToken>,
) -> Result<(StatusCode, Extension<AuditSubject>, Json<CreatedToken>), ApiError> {
    let request = checked(asked, Utc::now())?;
    let (token, secret) = state
        .enrollment
        .create(request, &Change::by(&caller.name))
        .await?;
    let subject = AuditSubject(format!("enrollment token {}", token.id));
    let created = CreatedToken {
        view: token.into(),
        token: secret,
    };
    Ok((StatusCode::CREATED, Extension(subject), Json(created)))
}

/// What `asked` asks for, checked as of `now`: group names, an expiry in
/// the future (kept in UTC), at least one use, a short description.
fn checked(asked: NewToken, now: DateTime<Utc>) -> Result<TokenRequest, ApiError> {
    if asked.description.chars().count() > MAX_DESCRIPTION {
        return Err(ApiError::BadRequest(format!(
            "the description has more than {MAX_DESCRIPTION} characters"
        )));
    }
    let groups = match asked.groups {
        Some(groups) if groups.is_empty() => {
            return Err(ApiError::BadRequest(
                "groups is empty: list the groups the token allows, or send null for any group"
                    .to_owned(),
            ));
        }
        Some(groups) => {
            let unique: BTreeSet<String> = groups.into_iter().map(String::from).collect();
            Some(unique.into_iter().collect())
        }
        None => None,
    };
    let expires_at = asked
        .expires_at
        .map(|text| {
            let at = DateTime::parse_from_rfc3339(&text).map_err(|err| {
                ApiError::BadRequest(format!(
                    "expires_at `{text}` is not an RFC 3339 time, such as 2030-01-31T12:00:00Z: {err}"
                ))
            })?;
            if at <= now {
                return Err(ApiError::BadRequest(format!(
                    "expires_at `{text}` has passed; give a time in the future, or leave it out for a token that does not expire"
                )));
            }
            Ok(at.to_utc().to_rfc3339_opts(SecondsFormat::AutoSi, true))
        })
        .transpose()?;
    if let Some(max_uses) = asked.max_uses
        && (max_uses == 0 || i64::try_from(max_uses).is_err())
    {
        return Err(ApiError::BadRequest(format!(
            "max_uses {max_uses} is out of range: from 1 to {}, or null for any number",
            i64::MAX
        )));
    }
    Ok(TokenRequest {
        description: asked.description,
        groups,
        expires_at,
        max_uses: asked.max_uses,
    })
}

/// Revokes an enrollment token: no worker enrolls with it from now on. The
/// workers it enrolled keep their own credentials.
#[utoipa::path(
    delete,
    path = "/api/v1/enrollment_tokens/{id}",
    operation_id = "revoke_enrollment_token",
    tag = "cluster",
    params(TokenPath),
    responses(
        (status = 200, description = "Revoked", body = RevokedToken),
        (status = 400, description = "Not an enrollment token's id", body = ErrorBody),
        AdminErrors,
        (status = 404, description = "No such token", body = ErrorBody)
    )
)]
async fn revoke(
    State(state): State<ManagerState>,
    Extension(caller): Extension<Caller>,
    ApiPath(TokenPath { id }): ApiPath<TokenPath>,
) -> Result<Json<RevokedToken>, ApiError> {
    if !is_token_id(&id) {
        return Err(ApiError::BadRequest(format!(
            "`{id}` is not an enrollment token's id: `et-` and 16 hexadecimal digits, as GET /api/v1/enrollment_tokens lists them"
        )));
    }
    let token = state
        .enrollment
        .revoke(&id, &Change::by(&caller.name))
        .await?;
    Ok(Json(RevokedToken { revoked: token.id }))
}

/// Whether `id` has the shape of a token's id: `et-` and 16 lower-case
/// hexadecimal digits.
fn is_token_id(id: &str) -> bool {
    id.strip_prefix("et-").is_some_and(|hex| {
        hex.len() == 16 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn asked(body: serde_json::Value) -> Result<NewToken, serde_json::Error> {
        serde_json::from_value(body)
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z")
            .unwrap()
            .to_utc()
    }

    fn refusal(body: serde_json::Value) -> String {
        match checked(asked(body).unwrap(), now()) {
            Err(ApiError::BadRequest(message)) => message,
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn groups_must_be_given_even_when_null() {
        let missing = asked(json!({"description": "x"})).unwrap_err();
        assert!(
            missing.to_string().contains("missing field `groups`"),
            "{missing}"
        );
        let any = checked(asked(json!({"groups": null})).unwrap(), now()).unwrap();
        assert_eq!(any.groups, None);
        let unknown = asked(json!({"groups": null, "group": "x"})).unwrap_err();
        assert!(unknown.to_string().contains("unknown field"), "{unknown}");
    }

    #[test]
    fn a_request_is_kept_in_normal_form() {
        let request = checked(
            asked(
                json!({"groups": ["web", "edge", "web"], "expires_at": "2030-01-01T02:00:00+02:00",
                         "max_uses": 3, "description": "racks 1-4"}),
            )
            .unwrap(),
            DateTime::parse_from_rfc3339("2029-12-31T23:00:00Z")
                .unwrap()
                .to_utc(),
        )
        .unwrap();
        assert_eq!(
            request,
            TokenRequest {
                description: "racks 1-4".to_owned(),
                groups: Some(vec!["edge".to_owned(), "web".to_owned()]),
                expires_at: Some("2030-01-01T00:00:00Z".to_owned()),
                max_uses: Some(3),
            }
        );
    }

    #[test]
    fn bad_values_are_refused_naming_them() {
        assert!(refusal(json!({"groups": []})).contains("groups is empty"));
        // A bad group name is refused as the body is read.
        let bad_group = asked(json!({"groups": ["no/slash"]})).unwrap_err();
        assert!(bad_group.to_string().contains("`no/slash`"), "{bad_group}");
        assert!(refusal(json!({"groups": null, "expires_at": "tomorrow"})).contains("`tomorrow`"));
        assert!(
            refusal(json!({"groups": null, "expires_at": "2029-12-31T23:59:59Z"}))
                .contains("has passed")
        );
        assert!(refusal(json!({"groups": null, "max_uses": 0})).contains("max_uses 0"));
        assert!(
            refusal(json!({"groups": null, "max_uses": 9_223_372_036_854_775_808_u64}))
                .contains("out of range")
        );
        assert!(
            refusal(json!({"groups": null, "description": "x".repeat(257)}))
                .contains("256 characters")
        );
        assert!(asked(json!({"groups": null, "max_uses": 1.5})).is_err());
    }

    #[test]
    fn token_ids_have_one_shape() {
        assert!(is_token_id("et-0123456789abcdef"));
        for bad in [
            "et-0123456789ABCDEF",
            "et-0123",
            "xx-0123456789abcdef",
            "walk-worker",
        ] {
            assert!(!is_token_id(bad), "{bad}");
        }
    }
}
