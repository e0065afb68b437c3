//! Checks of single request fields: text and e-mail addresses.

use kit::ApiError;
use serde::{Deserialize, Deserializer};

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

#[cfg(test)]
mod tests {
    use super::*;

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
