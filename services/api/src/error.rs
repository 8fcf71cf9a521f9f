//! The one error type of the HTTP API, answered as `application/problem+json`
//! (RFC 9457). Client mistakes say what to fix and name the field; server
//! failures say nothing about internals and are logged with their cause.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use telemetry::db::DbError as _;
use utoipa::ToSchema;

use crate::domain::FieldError;

/// `Retry-After` of a 503, in seconds: a restarting PostgreSQL usually takes
/// connections again within a second or two.
const RETRY_AFTER_SECONDS: &str = "1";

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    /// Well-formed request, invalid values (422).
    #[error("the request has invalid fields")]
    Validation(Vec<FieldError>),
    /// Malformed request: unparseable JSON, a bad id in the path (400).
    #[error("{detail}")]
    BadRequest {
        /// What is wrong.
        detail: String,
        /// The field or path parameter at fault, if one is.
        field: Option<String>,
    },
    /// The body is not JSON (415).
    #[error("the body must be application/json")]
    UnsupportedMediaType,
    /// The body is larger than the API accepts (413).
    #[error("the body is too large")]
    PayloadTooLarge,
    /// The game or participant does not exist (404).
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the game's state (409).
    #[error("{0}")]
    Conflict(String),
    /// PostgreSQL is restarting or unreachable (503 with `Retry-After`).
    /// The cause is logged by kind, never sent.
    #[error("the service is briefly unavailable; retry after the Retry-After delay")]
    Unavailable(#[source] sqlx::Error),
    /// Something failed on our side (500). The cause is logged, never sent.
    #[error("internal error")]
    Internal(#[source] sqlx::Error),
}

impl ApiError {
    /// A malformed request, no one field at fault.
    pub(crate) fn bad_request(detail: impl Into<String>) -> Self {
        Self::BadRequest {
            detail: detail.into(),
            field: None,
        }
    }

    /// A malformed path parameter or body, naming the field.
    pub(crate) fn bad_field(field: &str, detail: impl Into<String>) -> Self {
        Self::BadRequest {
            detail: detail.into(),
            field: Some(field.to_owned()),
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        if err.is_transient() {
            Self::Unavailable(err)
        } else {
            Self::Internal(err)
        }
    }
}

/// An RFC 9457 problem document.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Problem {
    /// `about:blank`: the status code says it all.
    #[serde(rename = "type")]
    #[schema(example = "about:blank")]
    pub kind: &'static str,
    /// The status code's reason phrase.
    #[schema(example = "Unprocessable Entity")]
    pub title: String,
    /// The HTTP status code.
    #[schema(example = 422)]
    pub status: u16,
    /// What went wrong, for a human.
    #[schema(example = "the request has invalid fields")]
    pub detail: String,
    /// One entry per invalid field (validation and malformed input).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        // The only place the cause is written down: the log line, in the
        // request's trace. The client learns nothing of it, and the log only
        // what cannot name a server or hold a credential.
        match &self {
            Self::Unavailable(cause) => tracing::warn!(
                error.type = %cause.error_type(),
                error = %cause.describe(),
                "database unavailable; answered 503"
            ),
            Self::Internal(cause) => tracing::error!(
                error.type = %cause.error_type(),
                error = %cause.describe(),
                "request failed"
            ),
            _ => {}
        }
        let errors = match &self {
            Self::Validation(errors) => errors.clone(),
            Self::BadRequest {
                detail,
                field: Some(field),
            } => vec![FieldError {
                field: field.clone(),
                message: detail.clone(),
            }],
            _ => Vec::new(),
        };
        let problem = Problem {
            kind: "about:blank",
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: self.to_string(),
            errors,
        };
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let content_type = [(header::CONTENT_TYPE, "application/problem+json")];
        let retry_after = matches!(self, Self::Unavailable(_))
            .then_some([(header::RETRY_AFTER, RETRY_AFTER_SECONDS)]);
        (status, content_type, retry_after, body).into_response()
    }
}

/// Answers routes that do not exist with a problem document.
pub(crate) async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".into())
}
