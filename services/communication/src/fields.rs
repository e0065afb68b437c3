//! Checks of request fields shared by emails and phone calls.

use chrono::{DateTime, SecondsFormat, Utc};
use kit::ApiError;

/// Largest length of `betreff`, in characters.
pub const MAX_SUBJECT_CHARS: usize = 500;

/// Checks that an id, when present, is a positive integer.
pub fn check_optional_id(field: &str, id: Option<i64>) -> Result<(), ApiError> {
    match id {
        Some(id) if id <= 0 => Err(ApiError::bad_request(
            field,
            format!("{field} must be a positive integer, got {id}"),
        )),
        _ => Ok(()),
    }
}

/// Checks that a contact names a patient, a therapist or both, with positive ids.
pub fn check_parties(patient_id: Option<i64>, therapist_id: Option<i64>) -> Result<(), ApiError> {
    check_optional_id("patient_id", patient_id)?;
    check_optional_id("therapist_id", therapist_id)?;
    if patient_id.is_none() && therapist_id.is_none() {
        return Err(ApiError::bad_request(
            "patient_id",
            "patient_id or therapist_id is required; give at least one of them",
        ));
    }
    Ok(())
}

/// Checks that a text field is not blank and not longer than `max_chars`.
pub fn check_text(field: &str, text: &str, max_chars: Option<usize>) -> Result<(), ApiError> {
    if text.trim().is_empty() {
        return Err(ApiError::bad_request(
            field,
            format!("{field} must not be empty"),
        ));
    }

    if let Some(max_chars) = max_chars {
        let chars = text.chars().count();
        if chars > max_chars {
            return Err(ApiError::unprocessable(
                field,
                format!("{field} must have at most {max_chars} characters, got {chars}"),
            ));
        }
    }

    Ok(())
}

/// Parses an RFC 3339 timestamp and returns it in UTC in the stored form, so that text order
/// is time order.
pub fn parse_timestamp(field: &str, text: &str) -> Result<String, ApiError> {
    DateTime::parse_from_rfc3339(text)
        .map(|time| {
            time.with_timezone(&Utc)
                .to_rfc3339_opts(SecondsFormat::Micros, true)
        })
        .map_err(|_| {
            ApiError::bad_request(
                field,
                format!(
                    "{field} must be an RFC 3339 timestamp such as 2026-03-01T09:30:00+01:00, \
                     got {text:?}"
                ),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_is_stored_in_utc() {
        let stored = parse_timestamp("geplant_fuer", "2026-03-01T09:30:00+01:00").unwrap();

        assert_eq!(stored, "2026-03-01T08:30:00.000000Z");
    }

    #[test]
    fn timestamp_without_offset_is_rejected() {
        let error = parse_timestamp("geplant_fuer", "2026-03-01 09:30").unwrap_err();

        assert_eq!(error.problem().field.as_deref(), Some("geplant_fuer"));
    }

    #[test]
    fn contact_needs_a_party() {
        assert!(check_parties(None, None).is_err());
        assert!(check_parties(Some(1), None).is_ok());
        assert!(check_parties(None, Some(2)).is_ok());
        assert!(check_parties(Some(0), Some(2)).is_err());
    }

    #[test]
    fn blank_text_is_rejected() {
        assert!(check_text("betreff", "  ", None).is_err());
        assert!(check_text("betreff", "Termin", Some(6)).is_ok());
        assert!(check_text("betreff", "Termine", Some(6)).is_err());
    }
}
