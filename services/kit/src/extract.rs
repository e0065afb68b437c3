//! Request extractors whose rejections are problem responses naming the field at fault.

use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::StatusCode;
use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Largest length of an `Idempotency-Key` or `X-Saga-Id` header value.
const MAX_HEADER_VALUE_LEN: usize = 200;

/// A JSON body. Unlike axum's extractor, a type error names the field path, such as
/// `platzsuche_ids[2]`.
#[derive(Debug, Clone)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = request
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(is_json_media_type);
        if !is_json {
            return Err(ApiError::UnsupportedMediaType {
                detail: "expected a JSON body with the header Content-Type: application/json"
                    .to_owned(),
            });
        }

        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(body_rejection)?;
        parse_json(&bytes).map(Json)
    }
}

/// Parses a JSON document, naming the path of the first value that does not fit `T`.
/// Every body must be a JSON object. serde would also accept an array for a struct, so a
/// body that starts with anything but `{` is rejected, and so is data after the object.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let first = bytes.iter().find(|byte| !byte.is_ascii_whitespace());
    if first.is_some_and(|byte| *byte != b'{') {
        return Err(ApiError::BadRequest {
            field: None,
            detail: "the request body must be a JSON object".to_owned(),
        });
    }

    let deserializer = &mut serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut *deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        let field = if path == "." || path == "?" {
            None
        } else {
            Some(path)
        };
        let detail = match (&field, inner.classify()) {
            (_, serde_json::error::Category::Syntax | serde_json::error::Category::Eof) => {
                format!("malformed JSON: {inner}")
            }
            (Some(field), _) => format!("invalid value for {field}: {inner}"),
            (None, _) => format!("invalid request body: {inner}"),
        };
        let field = field.or_else(|| missing_field_name(&inner.to_string()));
        ApiError::BadRequest { field, detail }
    })?;
    deserializer.end().map_err(|error| ApiError::BadRequest {
        field: None,
        detail: format!("malformed JSON: unexpected data after the object: {error}"),
    })?;
    Ok(value)
}

/// Returns true for `application/json` and `application/<subtype>+json`, with or without
/// parameters such as `charset`.
fn is_json_media_type(value: &str) -> bool {
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || essence
            .strip_prefix("application/")
            .is_some_and(|subtype| subtype.ends_with("+json"))
}

/// Pulls the field name out of serde's "missing field `x`" message.
fn missing_field_name(message: &str) -> Option<String> {
    let rest = message.strip_prefix("missing field `")?;
    Some(rest.split('`').next()?.to_owned())
}

fn body_rejection(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge {
            limit: crate::server::body_limit(),
        }
    } else {
        ApiError::BadRequest {
            field: None,
            detail: format!("cannot read the request body: {rejection}"),
        }
    }
}

/// Query parameters with problem responses for invalid values.
#[derive(Debug, Clone)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Query(value))
            .map_err(|rejection: QueryRejection| ApiError::BadRequest {
                field: None,
                detail: format!("invalid query string: {}", rejection.body_text()),
            })
    }
}

/// The single `{id}` path segment of a resource, which must be a positive integer.
#[derive(Debug, Clone, Copy)]
pub struct PathId(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(raw) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|_| ApiError::bad_request("id", "the path must contain one id"))?;
        parse_positive_id("id", &raw).map(PathId)
    }
}

/// Parses a positive 64-bit integer id.
pub fn parse_positive_id(field: &str, raw: &str) -> Result<i64, ApiError> {
    match raw.parse::<i64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(ApiError::bad_request(
            field,
            format!("{field} must be a positive integer, got {raw:?}"),
        )),
    }
}

/// The saga a coordinator call acts for, taken from the `Idempotency-Key`, `X-Saga-Id` and
/// `X-Saga-Step` headers. All three are optional here; handlers that need them check.
#[derive(Debug, Clone, Default)]
pub struct SagaContext {
    pub idempotency_key: Option<String>,
    pub saga_id: Option<String>,
    pub step: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for SagaContext {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let header = |name: &str| -> Result<Option<String>, ApiError> {
            let Some(value) = parts.headers.get(name) else {
                return Ok(None);
            };
            let text = value
                .to_str()
                .ok()
                .filter(|text| !text.trim().is_empty() && text.len() <= MAX_HEADER_VALUE_LEN)
                .ok_or_else(|| {
                    ApiError::bad_request(
                        name,
                        format!(
                            "header {name} must be visible ASCII text of 1 to \
                             {MAX_HEADER_VALUE_LEN} characters"
                        ),
                    )
                })?;
            Ok(Some(text.trim().to_owned()))
        };

        Ok(Self {
            idempotency_key: header("idempotency-key")?,
            saga_id: header("x-saga-id")?,
            step: header("x-saga-step")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Body {
        patient_id: i64,
        ids: Vec<i64>,
    }

    #[test]
    fn type_error_names_the_nested_field() {
        let error = parse_json::<Body>(br#"{"patient_id": 1, "ids": [1, "x"]}"#).unwrap_err();

        let problem = error.problem();
        assert_eq!(problem.status, 400);
        assert_eq!(problem.field.as_deref(), Some("ids[1]"));
    }

    #[test]
    fn missing_field_is_named() {
        let error = parse_json::<Body>(br#"{"ids": []}"#).unwrap_err();

        assert_eq!(error.problem().field.as_deref(), Some("patient_id"));
    }

    #[test]
    fn malformed_json_is_a_bad_request() {
        let error = parse_json::<Body>(b"{").unwrap_err();

        assert_eq!(error.problem().status, 400);
        assert!(error.problem().detail.starts_with("malformed JSON"));
    }

    #[test]
    fn trailing_data_is_rejected() {
        let error = parse_json::<Body>(br#"{"patient_id": 1, "ids": []} GARBAGE"#).unwrap_err();

        assert_eq!(error.problem().status, 400);
    }

    #[test]
    fn array_body_is_rejected() {
        let error = parse_json::<Body>(br#"[1, []]"#).unwrap_err();

        assert_eq!(error.problem().status, 400);
    }

    #[test]
    fn json_media_types_are_recognised() {
        assert!(is_json_media_type("application/json"));
        assert!(is_json_media_type("application/json; charset=utf-8"));
        assert!(is_json_media_type("application/merge-patch+json"));
        assert!(!is_json_media_type("application/jsonx"));
        assert!(!is_json_media_type("text/evil+json"));
    }

    #[test]
    fn ids_must_be_positive() {
        assert_eq!(parse_positive_id("id", "12").unwrap(), 12);
        assert!(parse_positive_id("id", "0").is_err());
        assert!(parse_positive_id("id", "-3").is_err());
        assert!(parse_positive_id("id", "abc").is_err());
    }
}
