//! Checks of single request fields: text, e-mail addresses, dates, and an optional JSON body.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use kit::ApiError;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// Maximum length of a text field, in characters.
pub const MAX_TEXT_CHARS: usize = 200;

/// Deserializes a field of a partial update: absent is `None`, `null` is `Some(None)`.
/// Use it with `#[serde(default, deserialize_with = "nullable")]`.
pub fn nullable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// Deserializes a field of a partial update that cannot be cleared: absent is `None`, and
/// `null` is rejected. Use it with `#[serde(default, deserialize_with = "non_null")]`.
pub fn non_null<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// Trims a required text field and rejects it when empty or too long.
pub fn required_text(field: &str, value: &str) -> Result<String, ApiError> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(ApiError::unprocessable(
            field,
            format!("{field} must not be empty"),
        ));
    }
    check_length(field, trimmed)?;
    Ok(trimmed.to_owned())
}

/// Trims an optional text field; an empty value becomes `None`.
pub fn optional_text(field: &str, value: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(trimmed) = value.map(str::trim).filter(|text| !text.is_empty()) else {
        return Ok(None);
    };
    check_length(field, trimmed)?;
    Ok(Some(trimmed.to_owned()))
}

/// Checks an optional e-mail address for the form `local@domain` without spaces.
pub fn optional_email(field: &str, value: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(email) = optional_text(field, value)? else {
        return Ok(None);
    };

    let well_formed = match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !email.contains(char::is_whitespace)
        }
        None => false,
    };
    if !well_formed {
        return Err(ApiError::bad_request(
            field,
            format!("{field} must be an e-mail address of the form name@domain"),
        ));
    }
    Ok(Some(email))
}

/// Parses a calendar date in strict `YYYY-MM-DD` form and returns it in that form.
pub fn date(field: &str, value: &str) -> Result<String, ApiError> {
    let shape_ok = value.len() == 10
        && value.bytes().enumerate().all(|(index, byte)| match index {
            4 | 7 => byte == b'-',
            _ => byte.is_ascii_digit(),
        });
    match kit::clock::parse_date(value) {
        Some(parsed) if shape_ok => Ok(parsed.format("%Y-%m-%d").to_string()),
        _ => Err(ApiError::bad_request(
            field,
            format!("{field} must be a date in YYYY-MM-DD form, got {value:?}"),
        )),
    }
}

/// Parses an optional date field; an empty value becomes `None`.
pub fn optional_date(field: &str, value: Option<&str>) -> Result<Option<String>, ApiError> {
    match value.map(str::trim).filter(|text| !text.is_empty()) {
        Some(text) => date(field, text).map(Some),
        None => Ok(None),
    }
}

/// Parses a JSON body that may be empty, returning the value and the document that an
/// idempotency key is bound to. An empty body counts as `{}`.
pub fn optional_json_body<T>(body: Result<Bytes, BytesRejection>) -> Result<(T, Value), ApiError>
where
    T: DeserializeOwned + Default,
{
    let bytes = body.map_err(body_rejection)?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok((T::default(), Value::Object(serde_json::Map::new())));
    }
    let document = kit::extract::parse_json::<Value>(&bytes)?;
    let value = kit::extract::parse_json::<T>(&bytes)?;
    Ok((value, document))
}

fn check_length(field: &str, value: &str) -> Result<(), ApiError> {
    let chars = value.chars().count();
    if chars > MAX_TEXT_CHARS {
        return Err(ApiError::unprocessable(
            field,
            format!("{field} must be at most {MAX_TEXT_CHARS} characters, got {chars}"),
        ));
    }
    Ok(())
}

/// Maps a failure to read the body like `kit::extract::Json` does, which keeps its own
/// mapping private.
fn body_rejection(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge {
            limit: kit::server::body_limit(),
        }
    } else {
        ApiError::BadRequest {
            field: None,
            detail: format!("cannot read the request body: {rejection}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_accepts_only_strict_calendar_dates() {
        assert_eq!(date("date", "2024-02-29").unwrap(), "2024-02-29");
        for bad in [
            "2024-13-01",
            "2023-02-29",
            "yesterday",
            "2024-1-01",
            "+2024-01-01",
            "",
        ] {
            assert!(date("date", bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn email_needs_local_part_and_domain() {
        assert!(optional_email("email", Some("a@example.org")).is_ok());
        for bad in ["a", "@example.org", "a@", "a b@example.org", "a@b@c"] {
            assert!(
                optional_email("email", Some(bad)).is_err(),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn empty_optional_text_becomes_none() {
        assert_eq!(optional_text("ort", Some("  ")).unwrap(), None);
    }
}
