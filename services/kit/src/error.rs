//! The one error type of the participant services' HTTP layer and its mapping to RFC 9457
//! problem responses. Client errors name the field at fault; server errors get a generic
//! body, and their cause goes to the log inside the request span.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An error that a handler returns and that becomes a problem response.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed: bad JSON, wrong type, unparsable value.
    #[error("{detail}")]
    BadRequest {
        field: Option<String>,
        detail: String,
    },
    /// The request is well-formed but a value is not acceptable.
    #[error("{detail}")]
    Unprocessable {
        field: Option<String>,
        detail: String,
    },
    #[error("{resource} {id} not found")]
    NotFound { resource: &'static str, id: String },
    /// The request conflicts with the current state; retrying the same request will not help.
    #[error("{detail}")]
    Conflict { detail: String },
    #[error("request body exceeds the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("{detail}")]
    UnsupportedMediaType { detail: String },
    /// The database did not respond in time, so the request changed nothing and may be retried.
    #[error("database unavailable")]
    Unavailable(#[source] sqlx::Error),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

/// An RFC 9457 problem body.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    pub fn bad_request(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::BadRequest {
            field: Some(field.into()),
            detail: detail.into(),
        }
    }

    pub fn unprocessable(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::Unprocessable {
            field: Some(field.into()),
            detail: detail.into(),
        }
    }

    pub fn not_found(resource: &'static str, id: impl ToString) -> Self {
        Self::NotFound {
            resource,
            id: id.to_string(),
        }
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::Conflict {
            detail: detail.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Returns the problem body of this error.
    pub fn problem(&self) -> Problem {
        let status = self.status();
        let field = match self {
            Self::BadRequest { field, .. } | Self::Unprocessable { field, .. } => field.clone(),
            _ => None,
        };
        let detail = match self {
            Self::Unavailable(_) => {
                "The database is temporarily unavailable. Nothing was changed; retry later."
                    .to_owned()
            }
            Self::Internal(_) => "An internal error occurred. It has been logged.".to_owned(),
            other => other.to_string(),
        };
        Problem {
            problem_type: "about:blank".to_owned(),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail,
            field,
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        if crate::db::is_unavailable(&error) {
            Self::Unavailable(error)
        } else {
            Self::Internal(error.into())
        }
    }
}

impl From<serde_json::Error> for ApiError {
    fn from(error: serde_json::Error) -> Self {
        Self::Internal(error.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            Self::Internal(cause) => tracing::error!(error = ?cause, "request failed"),
            Self::Unavailable(cause) => tracing::warn!(error = %cause, "database unavailable"),
            _ => {}
        }
        let mut response = problem_response(&self.problem());
        if matches!(self, Self::Unavailable(_)) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
        }
        response
    }
}

/// Builds a response with a problem body and the `application/problem+json` content type.
pub fn problem_response(problem: &Problem) -> Response {
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::to_vec(problem).unwrap_or_default();
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        )],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_maps_to_its_status() {
        let cases = [
            (ApiError::bad_request("id", "x"), StatusCode::BAD_REQUEST),
            (
                ApiError::unprocessable("date", "x"),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (ApiError::not_found("patient", 4), StatusCode::NOT_FOUND),
            (ApiError::conflict("x"), StatusCode::CONFLICT),
            (
                ApiError::PayloadTooLarge { limit: 1 },
                StatusCode::PAYLOAD_TOO_LARGE,
            ),
            (
                ApiError::Unavailable(sqlx::Error::PoolTimedOut),
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            (
                ApiError::Internal(anyhow::anyhow!("x")),
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
        ];
        for (error, status) in cases {
            assert_eq!(error.status(), status, "{error:?}");
        }
    }

    #[test]
    fn internal_error_hides_its_cause() {
        let problem = ApiError::Internal(anyhow::anyhow!("password=hunter2")).problem();

        assert!(!problem.detail.contains("hunter2"));
    }

    #[test]
    fn client_error_names_the_field() {
        let problem = ApiError::bad_request("date", "invalid date").problem();

        assert_eq!(problem.field.as_deref(), Some("date"));
        assert_eq!(problem.status, 400);
    }
}
