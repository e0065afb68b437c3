//! The therapist resource: its stored form, the request bodies that create and change it, and
//! their validation.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::fields::{self, non_null, nullable};
use crate::status::{StatusChange, StatusChangeError};
use kit::ApiError;

/// Whether a therapist takes part in matching. `gesperrt` is set and left only through the
/// coordinator's block-therapist and unblock-therapist sagas.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TherapistStatus {
    #[default]
    Aktiv,
    Gesperrt,
    Inaktiv,
}

impl TherapistStatus {
    pub const ALL: [Self; 3] = [Self::Aktiv, Self::Gesperrt, Self::Inaktiv];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Aktiv => "aktiv",
            Self::Gesperrt => "gesperrt",
            Self::Inaktiv => "inaktiv",
        }
    }

    /// Parses a status as the API spells it, naming `field` when the value is unknown.
    pub fn parse(field: &str, text: &str) -> Result<Self, ApiError> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == text)
            .ok_or_else(|| {
                let allowed: Vec<_> = Self::ALL.iter().map(|status| status.as_str()).collect();
                ApiError::bad_request(
                    field,
                    format!(
                        "{field} must be one of {}, got {text:?}",
                        allowed.join(", ")
                    ),
                )
            })
    }
}

/// A therapist as stored and returned.
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, ToSchema)]
pub struct Therapist {
    pub id: i64,
    pub anrede: Option<String>,
    pub titel: Option<String>,
    pub vorname: String,
    pub nachname: String,
    pub email: Option<String>,
    pub telefon: Option<String>,
    pub strasse: Option<String>,
    pub plz: Option<String>,
    pub ort: Option<String>,
    #[schema(value_type = TherapistStatus)]
    pub status: String,
    /// Reason of the block; set only while the status is `gesperrt`.
    pub sperrgrund: Option<String>,
    /// RFC 3339 timestamp of the block; set only while the status is `gesperrt`.
    pub gesperrt_seit: Option<String>,
    /// RFC 3339 timestamp in UTC.
    pub created_at: String,
    /// RFC 3339 timestamp in UTC.
    pub updated_at: String,
}

/// Body of `POST /api/therapists`. Unknown and read-only fields are ignored.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct CreateTherapist {
    pub vorname: String,
    pub nachname: String,
    pub anrede: Option<String>,
    pub titel: Option<String>,
    pub email: Option<String>,
    pub telefon: Option<String>,
    pub strasse: Option<String>,
    pub plz: Option<String>,
    pub ort: Option<String>,
    /// `aktiv` when absent. `gesperrt` is rejected with 409: block an existing therapist
    /// through the coordinator.
    pub status: Option<TherapistStatus>,
}

/// Body of `PATCH /api/therapists/{id}`: any subset of the writable fields. `null` clears an
/// optional field; `vorname`, `nachname` and `status` cannot be cleared. `sperrgrund` is
/// accepted only together with `"status": "gesperrt"`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct UpdateTherapist {
    #[serde(default, deserialize_with = "non_null")]
    pub vorname: Option<String>,
    #[serde(default, deserialize_with = "non_null")]
    pub nachname: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub anrede: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub titel: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub email: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub telefon: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub strasse: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub plz: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub ort: Option<Option<String>>,
    #[serde(default, deserialize_with = "non_null")]
    pub status: Option<TherapistStatus>,
    /// Reason of a block, required with `"status": "gesperrt"`.
    pub sperrgrund: Option<String>,
}

/// The stored fields of a therapist after validation, as the store writes them.
#[derive(Debug, Clone, PartialEq)]
pub struct TherapistFields {
    pub anrede: Option<String>,
    pub titel: Option<String>,
    pub vorname: String,
    pub nachname: String,
    pub email: Option<String>,
    pub telefon: Option<String>,
    pub strasse: Option<String>,
    pub plz: Option<String>,
    pub ort: Option<String>,
    pub status: TherapistStatus,
    pub sperrgrund: Option<String>,
    pub gesperrt_seit: Option<String>,
}

impl CreateTherapist {
    /// Validates the body into the fields of a new therapist.
    pub fn validate(&self) -> Result<TherapistFields, ApiError> {
        let status = self.status.unwrap_or_default();
        if status == TherapistStatus::Gesperrt {
            return Err(StatusChangeError::CreateBlocked.into());
        }

        Ok(TherapistFields {
            anrede: fields::optional_text("anrede", self.anrede.as_deref())?,
            titel: fields::optional_text("titel", self.titel.as_deref())?,
            vorname: fields::required_text("vorname", &self.vorname)?,
            nachname: fields::required_text("nachname", &self.nachname)?,
            email: fields::optional_email("email", self.email.as_deref())?,
            telefon: fields::optional_text("telefon", self.telefon.as_deref())?,
            strasse: fields::optional_text("strasse", self.strasse.as_deref())?,
            plz: fields::optional_text("plz", self.plz.as_deref())?,
            ort: fields::optional_text("ort", self.ort.as_deref())?,
            status,
            sperrgrund: None,
            gesperrt_seit: None,
        })
    }
}

impl UpdateTherapist {
    /// Validates the changes and applies them, with the planned status change, to the
    /// stored therapist. `now` becomes `gesperrt_seit` of a new block.
    pub fn apply_to(
        &self,
        current: &Therapist,
        change: &StatusChange,
        now: &str,
    ) -> Result<TherapistFields, ApiError> {
        let current_status = TherapistStatus::parse("status", &current.status)?;
        let (status, sperrgrund, gesperrt_seit) = match change {
            StatusChange::Unchanged => (
                current_status,
                current.sperrgrund.clone(),
                current.gesperrt_seit.clone(),
            ),
            StatusChange::Block { sperrgrund } => (
                TherapistStatus::Gesperrt,
                Some(sperrgrund.clone()),
                Some(now.to_owned()),
            ),
            StatusChange::Unblock { to } | StatusChange::Set { to } => (*to, None, None),
        };

        Ok(TherapistFields {
            anrede: changed_text("anrede", &self.anrede, &current.anrede)?,
            titel: changed_text("titel", &self.titel, &current.titel)?,
            vorname: match &self.vorname {
                Some(vorname) => fields::required_text("vorname", vorname)?,
                None => current.vorname.clone(),
            },
            nachname: match &self.nachname {
                Some(nachname) => fields::required_text("nachname", nachname)?,
                None => current.nachname.clone(),
            },
            email: match &self.email {
                Some(value) => fields::optional_email("email", value.as_deref())?,
                None => current.email.clone(),
            },
            telefon: changed_text("telefon", &self.telefon, &current.telefon)?,
            strasse: changed_text("strasse", &self.strasse, &current.strasse)?,
            plz: changed_text("plz", &self.plz, &current.plz)?,
            ort: changed_text("ort", &self.ort, &current.ort)?,
            status,
            sperrgrund,
            gesperrt_seit,
        })
    }
}

/// Returns the new value of an optional text field, or the current one when absent.
fn changed_text(
    field: &str,
    change: &Option<Option<String>>,
    current: &Option<String>,
) -> Result<Option<String>, ApiError> {
    match change {
        Some(value) => fields::optional_text(field, value.as_deref()),
        None => Ok(current.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_parse_names_the_field() {
        let error = TherapistStatus::parse("status", "pausiert").unwrap_err();

        assert_eq!(error.problem().field.as_deref(), Some("status"));
    }

    #[test]
    fn create_as_gesperrt_is_a_conflict() {
        let body = CreateTherapist {
            vorname: "Max".into(),
            nachname: "Muster".into(),
            anrede: None,
            titel: None,
            email: None,
            telefon: None,
            strasse: None,
            plz: None,
            ort: None,
            status: Some(TherapistStatus::Gesperrt),
        };

        let error = body.validate().unwrap_err();

        assert_eq!(error.problem().status, 409);
    }
}
