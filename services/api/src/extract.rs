//! Request extractors whose rejections are [`ApiError`] problems naming the
//! field, instead of axum's plain-text defaults.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON body. Rejects other content types (415), oversized bodies (413),
/// malformed JSON (400) and values of the wrong type (422, naming the field).
#[derive(Debug)]
pub(crate) struct ApiJson<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(';').next())
            .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"));
        if !is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        let body = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge
                } else {
                    ApiError::bad_request("the body could not be read")
                }
            })?;
        parse(&body).map(Self)
    }
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let deserializer = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let field = err.path().to_string();
        let inner = err.into_inner();
        // serde_json appends " at line L column C"; the field says where.
        let message = inner.to_string();
        let message = message
            .rsplit_once(" at line ")
            .map_or(message.as_str(), |(message, _)| message)
            .to_owned();
        if inner.is_data() {
            let field = if field == "." {
                unknown_field_name(&message).unwrap_or("body").to_owned()
            } else {
                field
            };
            ApiError::Validation(vec![crate::domain::FieldError { field, message }])
        } else {
            ApiError::bad_request(format!("the body is not valid JSON: {message}"))
        }
    })
}

/// The name in serde's "unknown field `x`, expected ..." message.
fn unknown_field_name(message: &str) -> Option<&str> {
    message.strip_prefix("unknown field `")?.split('`').next()
}

/// Parses a UUID path parameter, naming it when malformed.
pub(crate) fn uuid_param(name: &str, value: &str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::parse_str(value).map_err(|_| ApiError::bad_field(name, "must be a UUID"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::CreateGameRequest;

    fn field_errors(body: &str) -> Vec<(String, String)> {
        match parse::<CreateGameRequest>(body.as_bytes()) {
            Err(ApiError::Validation(errors)) => {
                errors.into_iter().map(|e| (e.field, e.message)).collect()
            }
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn a_value_of_the_wrong_type_names_its_field() {
        let errors = field_errors(r#"{"title": 7}"#);
        assert_eq!(errors[0].0, "title");
        assert!(
            errors[0].1.starts_with("invalid type: integer `7`"),
            "{errors:?}"
        );
    }

    #[test]
    fn a_bad_timestamp_names_its_field() {
        let errors = field_errors(r#"{"scheduled_at": "next friday"}"#);
        assert_eq!(errors[0].0, "scheduled_at");
    }

    #[test]
    fn an_unknown_field_is_named() {
        let errors = field_errors(r#"{"titel": "Catan"}"#);
        assert_eq!(errors[0].0, "titel");
    }

    #[test]
    fn malformed_json_is_a_bad_request() {
        assert!(matches!(
            parse::<CreateGameRequest>(b"{\"title\": "),
            Err(ApiError::BadRequest { .. })
        ));
    }

    #[test]
    fn path_ids_must_be_uuids() {
        assert!(uuid_param("id", "7f1c0f55-3d6d-4b8e-a5b3-0d1c6b2a9e10").is_ok());
        match uuid_param("id", "42") {
            Err(ApiError::BadRequest { field, .. }) => assert_eq!(field.as_deref(), Some("id")),
            other => panic!("{other:?}"),
        }
    }
}
