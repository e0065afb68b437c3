//! Status values, resource bodies and the input checks shared by the handlers.

use kit::ApiError;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

/// Longest `notizen` text accepted, in characters.
pub const MAX_NOTIZEN_CHARS: usize = 10_000;

/// Longest `grund` or cascade `reason` accepted, in characters.
pub const MAX_REASON_CHARS: usize = 1_000;

/// Status of a Platzsuche.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SucheStatus {
    Aktiv,
    Pausiert,
    Erfolgreich,
    Abgebrochen,
}

/// Status of a Therapeutenanfrage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AnfrageStatus {
    Offen,
    Gesendet,
    Angenommen,
    Abgelehnt,
    Storniert,
}

/// Origin of an exclusion: the patient, staff (`personal`) or a block (`sperre`, which only
/// the block cascade sets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AusgeschlossenVon {
    Patient,
    Personal,
    Sperre,
}

impl SucheStatus {
    pub const ALL: [Self; 4] = [
        Self::Aktiv,
        Self::Pausiert,
        Self::Erfolgreich,
        Self::Abgebrochen,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Aktiv => "aktiv",
            Self::Pausiert => "pausiert",
            Self::Erfolgreich => "erfolgreich",
            Self::Abgebrochen => "abgebrochen",
        }
    }
}

impl AnfrageStatus {
    pub const ALL: [Self; 5] = [
        Self::Offen,
        Self::Gesendet,
        Self::Angenommen,
        Self::Abgelehnt,
        Self::Storniert,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Offen => "offen",
            Self::Gesendet => "gesendet",
            Self::Angenommen => "angenommen",
            Self::Abgelehnt => "abgelehnt",
            Self::Storniert => "storniert",
        }
    }
}

impl AusgeschlossenVon {
    pub const ALL: [Self; 3] = [Self::Patient, Self::Personal, Self::Sperre];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Patient => "patient",
            Self::Personal => "personal",
            Self::Sperre => "sperre",
        }
    }
}

/// Parses a status text from a query string or a database column.
pub fn parse_enum<T: Copy>(all: &[T], name: impl Fn(T) -> &'static str, text: &str) -> Option<T> {
    all.iter().copied().find(|value| name(*value) == text)
}

/// Decodes a status column, failing with an internal error on a value the schema forbids.
pub fn stored_enum<T: Copy>(
    all: &[T],
    name: impl Fn(T) -> &'static str,
    column: &str,
    text: &str,
) -> Result<T, ApiError> {
    parse_enum(all, name, text).ok_or_else(|| {
        ApiError::Internal(anyhow::anyhow!(
            "column {column} contains the unknown value {text:?}"
        ))
    })
}

/// A Platzsuche as the API returns it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Platzsuche {
    pub id: i64,
    pub patient_id: i64,
    pub status: SucheStatus,
    pub notizen: Option<String>,
    pub ausschluesse: Vec<Ausschluss>,
    pub created_at: String,
    pub updated_at: String,
}

/// A therapist excluded from a Platzsuche, as returned inside it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Ausschluss {
    pub therapist_id: i64,
    pub ausgeschlossen_von: AusgeschlossenVon,
    pub grund: Option<String>,
    /// The saga that added the exclusion; set only for `sperre`.
    pub saga_id: Option<String>,
}

/// A Therapeutenanfrage as the API returns it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Therapeutenanfrage {
    pub id: i64,
    pub therapist_id: i64,
    /// The Platzsuchen the inquiry is sent for, in id order.
    pub platzsuche_ids: Vec<i64>,
    pub status: AnfrageStatus,
    /// Date the inquiry was sent, `YYYY-MM-DD`; null while unsent.
    pub gesendet_datum: Option<String>,
    pub notizen: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// Deserializes a field that may be absent (outer `None`) or null (inner `None`), for PATCH
/// bodies where null clears a value.
pub fn nullable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// Checks that a body id is a positive integer.
pub fn check_positive_id(field: &str, id: i64) -> Result<i64, ApiError> {
    if id > 0 {
        Ok(id)
    } else {
        Err(ApiError::bad_request(
            field,
            format!("{field} must be a positive integer, got {id}"),
        ))
    }
}

/// Checks the length of a free text.
pub fn check_text(
    field: &str,
    text: Option<String>,
    max_chars: usize,
) -> Result<Option<String>, ApiError> {
    let Some(text) = text else {
        return Ok(None);
    };

    let length = text.chars().count();
    if length > max_chars {
        return Err(ApiError::unprocessable(
            field,
            format!("{field} must be at most {max_chars} characters long, got {length}"),
        ));
    }

    Ok(Some(text))
}

/// Checks a `YYYY-MM-DD` date.
pub fn check_date(field: &str, text: Option<String>) -> Result<Option<String>, ApiError> {
    match text {
        None => Ok(None),
        Some(text) if kit::clock::parse_date(&text).is_some() => Ok(Some(text)),
        Some(text) => Err(ApiError::bad_request(
            field,
            format!("{field} must be a date in YYYY-MM-DD form, got {text:?}"),
        )),
    }
}

/// Appends `addition` to a note on a new line, or starts the note with it.
pub fn append_note(notizen: Option<&str>, addition: &str) -> String {
    match notizen {
        Some(existing) if !existing.is_empty() => format!("{existing}\n{addition}"),
        _ => addition.to_owned(),
    }
}

/// Parses a JSON body that the `Json<Value>` extractor has read, naming the field at fault.
pub fn parse_body<T: serde::de::DeserializeOwned>(raw: &serde_json::Value) -> Result<T, ApiError> {
    kit::extract::parse_json(raw.to_string().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_note_starts_an_empty_note() {
        assert_eq!(append_note(None, "Patient gelöscht"), "Patient gelöscht");
        assert_eq!(
            append_note(Some(""), "Patient gelöscht"),
            "Patient gelöscht"
        );
    }

    #[test]
    fn append_note_adds_a_line() {
        assert_eq!(append_note(Some("a"), "b"), "a\nb");
    }

    #[test]
    fn status_names_round_trip() {
        for status in SucheStatus::ALL {
            assert_eq!(
                parse_enum(&SucheStatus::ALL, SucheStatus::as_str, status.as_str()),
                Some(status)
            );
        }
        for status in AnfrageStatus::ALL {
            assert_eq!(
                parse_enum(&AnfrageStatus::ALL, AnfrageStatus::as_str, status.as_str()),
                Some(status)
            );
        }
    }

    #[test]
    fn text_over_the_limit_is_unprocessable() {
        let error = check_text("grund", Some("x".repeat(11)), 10).unwrap_err();

        assert_eq!(error.problem().status, 422);
    }
}
