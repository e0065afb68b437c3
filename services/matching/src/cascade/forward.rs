//! The three forward cascades. Each runs inside the caller's transaction and records every
//! row it changes through the `ChangeLog`.

use std::collections::BTreeSet;

use kit::db::Dialect;
use kit::ApiError;
use sqlx::{AnyConnection, Row};

use super::changes::{lock_clause, AusschlussRow, ChangeLog, EntityKind, FieldValues};
use super::{AusschlussKey, CascadeChanges};
use crate::model::{append_note, AnfrageStatus, AusgeschlossenVon, SucheStatus};
use crate::platzsuchen::placeholders;

/// Cancels the patient's `aktiv` Platzsuchen and removes all of the patient's Platzsuchen
/// from unsent `offen` inquiries; an inquiry left without Platzsuchen becomes `storniert`.
pub async fn patient_deleted(
    conn: &mut AnyConnection,
    dialect: Dialect,
    log: &ChangeLog,
    patient_id: i64,
    reason: &str,
) -> Result<CascadeChanges, ApiError> {
    let mut changes = CascadeChanges::default();
    let now = kit::clock::now_rfc3339();

    // Cancel the running searches.
    let sql = format!(
        "SELECT id, notizen FROM platzsuchen WHERE patient_id = $1 AND status = $2 \
         ORDER BY id{}",
        lock_clause(dialect)
    );
    let rows = sqlx::query(&sql)
        .bind(patient_id)
        .bind(SucheStatus::Aktiv.as_str())
        .fetch_all(&mut *conn)
        .await?;
    for row in &rows {
        let id: i64 = row.try_get("id")?;
        let notizen: Option<String> = row.try_get("notizen")?;
        let new_notizen = append_note(notizen.as_deref(), reason);

        sqlx::query(
            "UPDATE platzsuchen SET status = $1, notizen = $2, updated_at = $3 WHERE id = $4",
        )
        .bind(SucheStatus::Abgebrochen.as_str())
        .bind(&new_notizen)
        .bind(&now)
        .bind(id)
        .execute(&mut *conn)
        .await?;

        let before = FieldValues {
            status: Some(SucheStatus::Aktiv.as_str().to_owned()),
            notizen: Some(notizen),
            platzsuche_ids: None,
        };
        let after = FieldValues {
            status: Some(SucheStatus::Abgebrochen.as_str().to_owned()),
            notizen: Some(Some(new_notizen)),
            platzsuche_ids: None,
        };
        log.record(
            conn,
            EntityKind::Platzsuche,
            id.to_string(),
            Some(&before),
            Some(&after),
        )
        .await?;
        changes.platzsuchen_abgebrochen.push(id);
    }

    // Take the patient out of the inquiries that have not been sent.
    let anfrage_ids: Vec<i64> = sqlx::query(
        "SELECT DISTINCT ap.anfrage_id FROM anfrage_platzsuchen ap \
         JOIN platzsuchen p ON p.id = ap.platzsuche_id \
         WHERE p.patient_id = $1 ORDER BY ap.anfrage_id",
    )
    .bind(patient_id)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|row| row.try_get("anfrage_id"))
    .collect::<Result<_, _>>()?;
    for anfrage_id in anfrage_ids {
        let outcome =
            remove_patient_from_anfrage(conn, dialect, log, anfrage_id, patient_id, reason, &now)
                .await?;
        match outcome {
            Some(true) => changes.anfragen_storniert.push(anfrage_id),
            Some(false) => changes.anfragen_geaendert.push(anfrage_id),
            None => {}
        }
    }

    Ok(changes)
}

/// Removes the patient's Platzsuchen from one inquiry if it is unsent and `offen`. Returns
/// `None` when the inquiry was left alone, otherwise whether it became `storniert`.
async fn remove_patient_from_anfrage(
    conn: &mut AnyConnection,
    dialect: Dialect,
    log: &ChangeLog,
    anfrage_id: i64,
    patient_id: i64,
    reason: &str,
    now: &str,
) -> Result<Option<bool>, ApiError> {
    let sql = format!(
        "SELECT status, gesendet_datum, notizen FROM therapeutenanfragen WHERE id = $1{}",
        lock_clause(dialect)
    );
    let row = sqlx::query(&sql)
        .bind(anfrage_id)
        .fetch_one(&mut *conn)
        .await?;
    let status: String = row.try_get("status")?;
    let gesendet_datum: Option<String> = row.try_get("gesendet_datum")?;
    let notizen: Option<String> = row.try_get("notizen")?;
    if status != AnfrageStatus::Offen.as_str() || gesendet_datum.is_some() {
        return Ok(None);
    }

    let links = sqlx::query(
        "SELECT ap.platzsuche_id, p.patient_id FROM anfrage_platzsuchen ap \
         JOIN platzsuchen p ON p.id = ap.platzsuche_id \
         WHERE ap.anfrage_id = $1 ORDER BY ap.platzsuche_id",
    )
    .bind(anfrage_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut before_ids = Vec::new();
    let mut remaining_ids = Vec::new();
    for link in &links {
        let platzsuche_id: i64 = link.try_get("platzsuche_id")?;
        let owner: i64 = link.try_get("patient_id")?;
        before_ids.push(platzsuche_id);
        if owner == patient_id {
            sqlx::query(
                "DELETE FROM anfrage_platzsuchen WHERE anfrage_id = $1 AND platzsuche_id = $2",
            )
            .bind(anfrage_id)
            .bind(platzsuche_id)
            .execute(&mut *conn)
            .await?;
        } else {
            remaining_ids.push(platzsuche_id);
        }
    }

    let storniert = remaining_ids.is_empty();
    let mut before = FieldValues {
        platzsuche_ids: Some(before_ids),
        ..FieldValues::default()
    };
    let mut after = FieldValues {
        platzsuche_ids: Some(remaining_ids),
        ..FieldValues::default()
    };
    if storniert {
        let new_notizen = append_note(notizen.as_deref(), reason);
        sqlx::query(
            "UPDATE therapeutenanfragen SET status = $1, notizen = $2, updated_at = $3 \
             WHERE id = $4",
        )
        .bind(AnfrageStatus::Storniert.as_str())
        .bind(&new_notizen)
        .bind(now)
        .bind(anfrage_id)
        .execute(&mut *conn)
        .await?;
        before.status = Some(status);
        before.notizen = Some(notizen);
        after.status = Some(AnfrageStatus::Storniert.as_str().to_owned());
        after.notizen = Some(Some(new_notizen));
    } else {
        sqlx::query("UPDATE therapeutenanfragen SET updated_at = $1 WHERE id = $2")
            .bind(now)
            .bind(anfrage_id)
            .execute(&mut *conn)
            .await?;
    }

    log.record(
        conn,
        EntityKind::Therapeutenanfrage,
        anfrage_id.to_string(),
        Some(&before),
        Some(&after),
    )
    .await?;
    Ok(Some(storniert))
}

/// Cancels the therapist's unsent `offen` inquiries and excludes the therapist from every
/// `aktiv` Platzsuche of the patients those inquiries were for, where no exclusion exists.
pub async fn therapist_blocked(
    conn: &mut AnyConnection,
    dialect: Dialect,
    log: &ChangeLog,
    therapist_id: i64,
    reason: &str,
) -> Result<CascadeChanges, ApiError> {
    let mut changes = CascadeChanges::default();
    let now = kit::clock::now_rfc3339();

    // Cancel the unsent inquiries.
    let sql = format!(
        "SELECT id, notizen FROM therapeutenanfragen \
         WHERE therapist_id = $1 AND status = $2 AND gesendet_datum IS NULL ORDER BY id{}",
        lock_clause(dialect)
    );
    let rows = sqlx::query(&sql)
        .bind(therapist_id)
        .bind(AnfrageStatus::Offen.as_str())
        .fetch_all(&mut *conn)
        .await?;
    for row in &rows {
        let id: i64 = row.try_get("id")?;
        let notizen: Option<String> = row.try_get("notizen")?;
        let new_notizen = append_note(notizen.as_deref(), reason);

        sqlx::query(
            "UPDATE therapeutenanfragen SET status = $1, notizen = $2, updated_at = $3 \
             WHERE id = $4",
        )
        .bind(AnfrageStatus::Storniert.as_str())
        .bind(&new_notizen)
        .bind(&now)
        .bind(id)
        .execute(&mut *conn)
        .await?;

        let before = FieldValues {
            status: Some(AnfrageStatus::Offen.as_str().to_owned()),
            notizen: Some(notizen),
            platzsuche_ids: None,
        };
        let after = FieldValues {
            status: Some(AnfrageStatus::Storniert.as_str().to_owned()),
            notizen: Some(Some(new_notizen)),
            platzsuche_ids: None,
        };
        log.record(
            conn,
            EntityKind::Therapeutenanfrage,
            id.to_string(),
            Some(&before),
            Some(&after),
        )
        .await?;
        changes.anfragen_storniert.push(id);
    }
    if changes.anfragen_storniert.is_empty() {
        return Ok(changes);
    }

    // Exclude the therapist from the running searches of the patients concerned.
    let sql = format!(
        "SELECT DISTINCT p.patient_id FROM anfrage_platzsuchen ap \
         JOIN platzsuchen p ON p.id = ap.platzsuche_id \
         WHERE ap.anfrage_id IN ({}) ORDER BY p.patient_id",
        placeholders(1, changes.anfragen_storniert.len())
    );
    let mut statement = sqlx::query(&sql);
    for id in &changes.anfragen_storniert {
        statement = statement.bind(*id);
    }
    let patient_ids: BTreeSet<i64> = statement
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|row| row.try_get("patient_id"))
        .collect::<Result<_, _>>()?;
    if patient_ids.is_empty() {
        return Ok(changes);
    }

    let sql = format!(
        "SELECT id FROM platzsuchen WHERE status = $1 AND patient_id IN ({}) ORDER BY id",
        placeholders(2, patient_ids.len())
    );
    let mut statement = sqlx::query(&sql).bind(SucheStatus::Aktiv.as_str());
    for id in &patient_ids {
        statement = statement.bind(*id);
    }
    let platzsuche_ids: Vec<i64> = statement
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|row| row.try_get("id"))
        .collect::<Result<_, _>>()?;
    for platzsuche_id in platzsuche_ids {
        let row = AusschlussRow {
            platzsuche_id,
            therapist_id,
            ausgeschlossen_von: AusgeschlossenVon::Sperre.as_str().to_owned(),
            grund: Some(reason.to_owned()),
            saga_id: log.saga_id.clone(),
            created_at: now.clone(),
        };
        // An exclusion that a patient or staff chose stays as it is.
        let inserted = sqlx::query(
            "INSERT INTO platzsuche_ausschluesse \
             (platzsuche_id, therapist_id, ausgeschlossen_von, grund, saga_id, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (platzsuche_id, therapist_id) DO NOTHING RETURNING platzsuche_id",
        )
        .bind(row.platzsuche_id)
        .bind(row.therapist_id)
        .bind(&row.ausgeschlossen_von)
        .bind(row.grund.clone())
        .bind(row.saga_id.clone())
        .bind(&row.created_at)
        .fetch_optional(&mut *conn)
        .await?;
        if inserted.is_none() {
            continue;
        }

        log.record(
            conn,
            EntityKind::Ausschluss,
            row.entity_id(),
            None,
            Some(&row),
        )
        .await?;
        changes.ausschluesse_hinzugefuegt.push(AusschlussKey {
            platzsuche_id,
            therapist_id,
        });
    }

    Ok(changes)
}

/// Deletes the exclusions of the therapist that a block added (`sperre`); exclusions chosen
/// by patients or staff stay.
pub async fn therapist_unblocked(
    conn: &mut AnyConnection,
    dialect: Dialect,
    log: &ChangeLog,
    therapist_id: i64,
) -> Result<CascadeChanges, ApiError> {
    let mut changes = CascadeChanges::default();

    let sql = format!(
        "SELECT platzsuche_id, therapist_id, ausgeschlossen_von, grund, saga_id, created_at \
         FROM platzsuche_ausschluesse WHERE therapist_id = $1 AND ausgeschlossen_von = $2 \
         ORDER BY platzsuche_id{}",
        lock_clause(dialect)
    );
    let rows = sqlx::query(&sql)
        .bind(therapist_id)
        .bind(AusgeschlossenVon::Sperre.as_str())
        .fetch_all(&mut *conn)
        .await?;
    for row in &rows {
        let lifted = AusschlussRow {
            platzsuche_id: row.try_get("platzsuche_id")?,
            therapist_id: row.try_get("therapist_id")?,
            ausgeschlossen_von: row.try_get("ausgeschlossen_von")?,
            grund: row.try_get("grund")?,
            saga_id: row.try_get("saga_id")?,
            created_at: row.try_get("created_at")?,
        };

        sqlx::query(
            "DELETE FROM platzsuche_ausschluesse WHERE platzsuche_id = $1 AND therapist_id = $2",
        )
        .bind(lifted.platzsuche_id)
        .bind(lifted.therapist_id)
        .execute(&mut *conn)
        .await?;

        log.record(
            conn,
            EntityKind::Ausschluss,
            lifted.entity_id(),
            Some(&lifted),
            None,
        )
        .await?;
        changes.ausschluesse_aufgehoben.push(AusschlussKey {
            platzsuche_id: lifted.platzsuche_id,
            therapist_id: lifted.therapist_id,
        });
    }

    Ok(changes)
}
