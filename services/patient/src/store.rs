//! SQL of the patients table. Every function takes the connection of the caller's
//! transaction, because SQLite runs with a single pooled connection.

use kit::db::Dialect;
use sqlx::AnyConnection;

use crate::patients::{Patient, PatientFields, PatientStatus};

/// Columns of a `Patient`, in the order of its fields.
macro_rules! patient_columns {
    () => {
        "id, anrede, vorname, nachname, geburtsdatum, email, telefon, strasse, plz, ort, \
         status, letzter_kontakt, created_at, updated_at"
    };
}

/// Inserts a patient and returns it with its id.
pub async fn insert(
    conn: &mut AnyConnection,
    fields: &PatientFields,
    now: &str,
) -> Result<Patient, sqlx::Error> {
    sqlx::query_as(concat!(
        "INSERT INTO patients (anrede, vorname, nachname, geburtsdatum, email, telefon, \
         strasse, plz, ort, status, letzter_kontakt, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12) \
         RETURNING ",
        patient_columns!()
    ))
    .bind(fields.anrede.clone())
    .bind(fields.vorname.clone())
    .bind(fields.nachname.clone())
    .bind(fields.geburtsdatum.clone())
    .bind(fields.email.clone())
    .bind(fields.telefon.clone())
    .bind(fields.strasse.clone())
    .bind(fields.plz.clone())
    .bind(fields.ort.clone())
    .bind(fields.status.as_str())
    .bind(fields.letzter_kontakt.clone())
    .bind(now)
    .fetch_one(conn)
    .await
}

/// Returns the patient with `id`, if any.
pub async fn find(conn: &mut AnyConnection, id: i64) -> Result<Option<Patient>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        patient_columns!(),
        " FROM patients WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Returns the patient with `id` and locks its row until the transaction ends. SQLite has
/// no row locks, but its single connection serialises every transaction anyway.
pub async fn find_for_update(
    conn: &mut AnyConnection,
    dialect: Dialect,
    id: i64,
) -> Result<Option<Patient>, sqlx::Error> {
    let sql = match dialect {
        Dialect::Postgres => concat!(
            "SELECT ",
            patient_columns!(),
            " FROM patients WHERE id = $1 FOR UPDATE"
        ),
        Dialect::Sqlite => concat!(
            "SELECT ",
            patient_columns!(),
            " FROM patients WHERE id = $1"
        ),
    };

    sqlx::query_as(sql).bind(id).fetch_optional(conn).await
}

/// Returns up to `limit` patients with an id greater than `after`, in id order.
pub async fn list(
    conn: &mut AnyConnection,
    status: Option<PatientStatus>,
    after: i64,
    limit: i64,
) -> Result<Vec<Patient>, sqlx::Error> {
    match status {
        Some(status) => {
            sqlx::query_as(concat!(
                "SELECT ",
                patient_columns!(),
                " FROM patients WHERE status = $1 AND id > $2 ORDER BY id LIMIT $3"
            ))
            .bind(status.as_str())
            .bind(after)
            .bind(limit)
            .fetch_all(conn)
            .await
        }
        None => {
            sqlx::query_as(concat!(
                "SELECT ",
                patient_columns!(),
                " FROM patients WHERE id > $1 ORDER BY id LIMIT $2"
            ))
            .bind(after)
            .bind(limit)
            .fetch_all(conn)
            .await
        }
    }
}

/// Writes all writable fields of patient `id` and returns the stored patient.
pub async fn update(
    conn: &mut AnyConnection,
    id: i64,
    fields: &PatientFields,
    now: &str,
) -> Result<Option<Patient>, sqlx::Error> {
    sqlx::query_as(concat!(
        "UPDATE patients SET anrede = $2, vorname = $3, nachname = $4, geburtsdatum = $5, \
         email = $6, telefon = $7, strasse = $8, plz = $9, ort = $10, status = $11, \
         letzter_kontakt = $12, updated_at = $13 WHERE id = $1 RETURNING ",
        patient_columns!()
    ))
    .bind(id)
    .bind(fields.anrede.clone())
    .bind(fields.vorname.clone())
    .bind(fields.nachname.clone())
    .bind(fields.geburtsdatum.clone())
    .bind(fields.email.clone())
    .bind(fields.telefon.clone())
    .bind(fields.strasse.clone())
    .bind(fields.plz.clone())
    .bind(fields.ort.clone())
    .bind(fields.status.as_str())
    .bind(fields.letzter_kontakt.clone())
    .bind(now)
    .fetch_optional(conn)
    .await
}

/// Deletes patient `id` and returns whether it existed.
pub async fn delete(conn: &mut AnyConnection, id: i64) -> Result<bool, sqlx::Error> {
    let result = sqlx::query("DELETE FROM patients WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(result.rows_affected() > 0)
}

/// Outcome of recording a contact for `letzter_kontakt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContactUpdate {
    /// The date moved forward to the recorded one.
    Moved(String),
    /// The stored date is the same or later and stays.
    Kept(String),
    /// No patient has this id.
    UnknownPatient,
}

/// Moves `letzter_kontakt` of patient `id` forward to `date` (`YYYY-MM-DD`), never back.
/// One conditional update decides, so concurrent calls cannot move the date backwards.
pub async fn record_contact(
    conn: &mut AnyConnection,
    id: i64,
    date: &str,
    now: &str,
) -> Result<ContactUpdate, sqlx::Error> {
    let moved: Option<(Option<String>,)> = sqlx::query_as(
        "UPDATE patients SET letzter_kontakt = $2, updated_at = $3 \
         WHERE id = $1 AND (letzter_kontakt IS NULL OR letzter_kontakt < $2) \
         RETURNING letzter_kontakt",
    )
    .bind(id)
    .bind(date)
    .bind(now)
    .fetch_optional(&mut *conn)
    .await?;
    if moved.is_some() {
        return Ok(ContactUpdate::Moved(date.to_owned()));
    }

    let stored: Option<(Option<String>,)> =
        sqlx::query_as("SELECT letzter_kontakt FROM patients WHERE id = $1")
            .bind(id)
            .fetch_optional(conn)
            .await?;
    Ok(match stored {
        Some((Some(kept),)) => ContactUpdate::Kept(kept),
        // The update above matches a row without a date, so `Some((None,))` cannot occur
        // inside one transaction. It is mapped to unknown to keep the match total.
        Some((None,)) | None => ContactUpdate::UnknownPatient,
    })
}
