//! The patient resource: its stored form, the request bodies that create and change it, and
//! their validation.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::fields::{self, non_null, nullable};
use kit::ApiError;

/// Stage of a patient's search for a therapy place.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PatientStatus {
    #[default]
    Offen,
    AufDerSuche,
    InTherapie,
    Abgeschlossen,
}

impl PatientStatus {
    pub const ALL: [Self; 4] = [
        Self::Offen,
        Self::AufDerSuche,
        Self::InTherapie,
        Self::Abgeschlossen,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Offen => "offen",
            Self::AufDerSuche => "auf_der_suche",
            Self::InTherapie => "in_therapie",
            Self::Abgeschlossen => "abgeschlossen",
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

/// A patient as stored and returned.
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, ToSchema)]
pub struct Patient {
    pub id: i64,
    pub anrede: Option<String>,
    pub vorname: String,
    pub nachname: String,
    /// Date of birth, `YYYY-MM-DD`.
    pub geburtsdatum: Option<String>,
    pub email: Option<String>,
    pub telefon: Option<String>,
    pub strasse: Option<String>,
    pub plz: Option<String>,
    pub ort: Option<String>,
    #[schema(value_type = PatientStatus)]
    pub status: String,
    /// Date of the latest contact with the patient, `YYYY-MM-DD`.
    pub letzter_kontakt: Option<String>,
    /// RFC 3339 timestamp in UTC.
    pub created_at: String,
    /// RFC 3339 timestamp in UTC.
    pub updated_at: String,
}

/// Body of `POST /api/patients`. Unknown fields are ignored.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct CreatePatient {
    pub vorname: String,
    pub nachname: String,
    pub anrede: Option<String>,
    /// `YYYY-MM-DD`, not in the future.
    pub geburtsdatum: Option<String>,
    pub email: Option<String>,
    pub telefon: Option<String>,
    pub strasse: Option<String>,
    pub plz: Option<String>,
    pub ort: Option<String>,
    /// `offen` when absent.
    pub status: Option<PatientStatus>,
    /// `YYYY-MM-DD`.
    pub letzter_kontakt: Option<String>,
}

/// Body of `PATCH /api/patients/{id}`: any subset of the writable fields. `null` clears an
/// optional field; `vorname`, `nachname` and `status` cannot be cleared.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct UpdatePatient {
    #[serde(default, deserialize_with = "non_null")]
    pub vorname: Option<String>,
    #[serde(default, deserialize_with = "non_null")]
    pub nachname: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub anrede: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub geburtsdatum: Option<Option<String>>,
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
    pub status: Option<PatientStatus>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub letzter_kontakt: Option<Option<String>>,
}

/// The writable fields of a patient after validation, as the store writes them.
#[derive(Debug, Clone, PartialEq)]
pub struct PatientFields {
    pub anrede: Option<String>,
    pub vorname: String,
    pub nachname: String,
    pub geburtsdatum: Option<String>,
    pub email: Option<String>,
    pub telefon: Option<String>,
    pub strasse: Option<String>,
    pub plz: Option<String>,
    pub ort: Option<String>,
    pub status: PatientStatus,
    pub letzter_kontakt: Option<String>,
}

impl CreatePatient {
    /// Validates the body into the fields of a new patient.
    pub fn validate(&self) -> Result<PatientFields, ApiError> {
        Ok(PatientFields {
            anrede: fields::optional_text("anrede", self.anrede.as_deref())?,
            vorname: fields::required_text("vorname", &self.vorname)?,
            nachname: fields::required_text("nachname", &self.nachname)?,
            geburtsdatum: birth_date(self.geburtsdatum.as_deref())?,
            email: fields::optional_email("email", self.email.as_deref())?,
            telefon: fields::optional_text("telefon", self.telefon.as_deref())?,
            strasse: fields::optional_text("strasse", self.strasse.as_deref())?,
            plz: fields::optional_text("plz", self.plz.as_deref())?,
            ort: fields::optional_text("ort", self.ort.as_deref())?,
            status: self.status.unwrap_or_default(),
            letzter_kontakt: fields::optional_date(
                "letzter_kontakt",
                self.letzter_kontakt.as_deref(),
            )?,
        })
    }
}

impl UpdatePatient {
    /// Validates the changes and applies them to the stored patient.
    pub fn apply_to(&self, current: &Patient) -> Result<PatientFields, ApiError> {
        let status = match self.status {
            Some(status) => status,
            None => PatientStatus::parse("status", &current.status)?,
        };

        Ok(PatientFields {
            anrede: changed_text("anrede", &self.anrede, &current.anrede)?,
            vorname: match &self.vorname {
                Some(vorname) => fields::required_text("vorname", vorname)?,
                None => current.vorname.clone(),
            },
            nachname: match &self.nachname {
                Some(nachname) => fields::required_text("nachname", nachname)?,
                None => current.nachname.clone(),
            },
            geburtsdatum: match &self.geburtsdatum {
                Some(value) => birth_date(value.as_deref())?,
                None => current.geburtsdatum.clone(),
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
            letzter_kontakt: match &self.letzter_kontakt {
                Some(value) => fields::optional_date("letzter_kontakt", value.as_deref())?,
                None => current.letzter_kontakt.clone(),
            },
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

/// Parses a date of birth, which must not lie in the future.
fn birth_date(value: Option<&str>) -> Result<Option<String>, ApiError> {
    let parsed = fields::optional_date("geburtsdatum", value)?;
    if let Some(date) = &parsed {
        if *date > kit::clock::today() {
            return Err(ApiError::unprocessable(
                "geburtsdatum",
                format!("geburtsdatum must not be in the future, got {date:?}"),
            ));
        }
    }
    Ok(parsed)
}

/// Body of `PATCH /api/patients/{id}/last-contact`. An empty body means today.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct LastContact {
    /// Date of the contact, `YYYY-MM-DD`; today (UTC) when absent.
    pub date: Option<String>,
}

/// Response body of `PATCH /api/patients/{id}/last-contact`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LastContactRecorded {
    pub patient_id: i64,
    /// The stored date after the request, which is the requested one unless a later date
    /// was already stored.
    pub letzter_kontakt: String,
    /// Whether the request moved `letzter_kontakt` forward.
    pub changed: bool,
}

/// Response body of `DELETE /api/patients/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PatientDeleted {
    pub patient_id: i64,
    pub deleted: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_parse_names_the_field() {
        let error = PatientStatus::parse("status", "verschwunden").unwrap_err();

        assert_eq!(error.problem().field.as_deref(), Some("status"));
    }

    #[test]
    fn status_round_trips_through_its_text() {
        for status in PatientStatus::ALL {
            assert_eq!(
                PatientStatus::parse("status", status.as_str()).unwrap(),
                status
            );
        }
    }
}
