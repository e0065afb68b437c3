//! Compensation of a forward cascade call: restores what the call changed, field by field,
//! where the field still contains the value the cascade set.

use std::collections::BTreeSet;

use kit::db::Dialect;
use kit::extract::SagaContext;
use kit::idempotency::{cancel_forward, stored_operation, ForwardCall};
use kit::ApiError;
use sqlx::{Any, AnyConnection, Row, Transaction};

use super::changes::{
    claim_changes, count_changes, lock_clause, AusschlussRow, EntityKind, FieldValues,
    RecordedChange,
};
use super::{AusschlussKey, Cascade, CompensationAnswer, ForwardCallState, Skipped};
use crate::model::AnfrageStatus;

/// Undoes the forward call with `forward_key` of `cascade`, or cancels it if it never
/// arrived.
pub async fn compensate(
    tx: &mut Transaction<'static, Any>,
    dialect: Dialect,
    cascade: Cascade,
    forward_key: &str,
    context: &SagaContext,
) -> Result<CompensationAnswer, ApiError> {
    check_forward_path(tx, cascade, forward_key).await?;

    match cancel_forward(tx, forward_key, context).await? {
        ForwardCall::NeverArrived => {
            return Ok(CompensationAnswer::new(ForwardCallState::NeverArrived));
        }
        ForwardCall::Answered(status) if !status.is_success() => {
            return Ok(CompensationAnswer::new(ForwardCallState::NothingToUndo));
        }
        ForwardCall::Answered(_) => {}
    }

    let conn: &mut AnyConnection = tx;
    let changes = claim_changes(conn, forward_key, cascade).await?;
    if changes.is_empty() {
        let state = if count_changes(conn, forward_key, cascade).await? > 0 {
            ForwardCallState::AlreadyUndone
        } else {
            ForwardCallState::NothingToUndo
        };
        return Ok(CompensationAnswer::new(state));
    }

    let mut answer = CompensationAnswer::new(ForwardCallState::Undone);
    for change in &changes {
        match change.kind {
            EntityKind::Platzsuche => {
                restore_platzsuche(conn, dialect, change, &mut answer).await?
            }
            EntityKind::Therapeutenanfrage => {
                restore_anfrage(conn, dialect, change, &mut answer).await?;
            }
            EntityKind::Ausschluss => {
                restore_ausschluss(conn, dialect, change, &mut answer).await?
            }
        }
    }
    answer.restored.sort();
    Ok(answer)
}

/// Rejects a forward key that an earlier request used on another path, such as the key of
/// a patient-deleted call sent to the therapist-blocked compensation.
async fn check_forward_path(
    conn: &mut AnyConnection,
    cascade: Cascade,
    forward_key: &str,
) -> Result<(), ApiError> {
    let Some((method, path)) = stored_operation(conn, forward_key).await? else {
        return Ok(());
    };
    if method == "POST" && path == cascade.path() {
        return Ok(());
    }

    Err(ApiError::unprocessable(
        "forward_idempotency_key",
        format!(
            "forward_idempotency_key {forward_key:?} belongs to {method} {path}, not to POST {}; \
             send it to the compensation of that call",
            cascade.path()
        ),
    ))
}

/// Restores the status and notes of a Platzsuche that a cascade cancelled.
async fn restore_platzsuche(
    conn: &mut AnyConnection,
    dialect: Dialect,
    change: &RecordedChange,
    answer: &mut CompensationAnswer,
) -> Result<(), ApiError> {
    let id = parse_id(&change.entity_id)?;
    let (before, after) = change.values::<FieldValues>()?;
    let (Some(before), Some(after)) = (before, after) else {
        return Err(stored_shape_error(change));
    };

    let restored = restore_status_and_notizen(
        conn,
        dialect,
        Table::Platzsuchen,
        id,
        &before,
        &after,
        answer,
    )
    .await?;
    if restored {
        answer.restored.platzsuchen_abgebrochen.push(id);
    }
    Ok(())
}

/// Restores the status, notes and Platzsuchen of a Therapeutenanfrage.
async fn restore_anfrage(
    conn: &mut AnyConnection,
    dialect: Dialect,
    change: &RecordedChange,
    answer: &mut CompensationAnswer,
) -> Result<(), ApiError> {
    let id = parse_id(&change.entity_id)?;
    let (before, after) = change.values::<FieldValues>()?;
    let (Some(before), Some(after)) = (before, after) else {
        return Err(stored_shape_error(change));
    };
    if !anfrage_exists(conn, id).await? {
        let reason = "it was deleted since the cascade".to_owned();
        answer.skipped.push(Skipped::field(
            EntityKind::Therapeutenanfrage,
            id,
            None,
            reason,
        ));
        return Ok(());
    }

    let mut restored = restore_status_and_notizen(
        conn,
        dialect,
        Table::Therapeutenanfragen,
        id,
        &before,
        &after,
        answer,
    )
    .await?;
    if let (Some(before_ids), Some(after_ids)) = (&before.platzsuche_ids, &after.platzsuche_ids) {
        restored |= restore_links(conn, id, before_ids, after_ids, answer).await?;
    }

    if restored {
        if after.status.as_deref() == Some(AnfrageStatus::Storniert.as_str()) {
            answer.restored.anfragen_storniert.push(id);
        } else {
            answer.restored.anfragen_geaendert.push(id);
        }
    }
    Ok(())
}

/// Deletes an exclusion that a block added, or inserts again one that an unblock deleted.
async fn restore_ausschluss(
    conn: &mut AnyConnection,
    dialect: Dialect,
    change: &RecordedChange,
    answer: &mut CompensationAnswer,
) -> Result<(), ApiError> {
    match change.values::<AusschlussRow>()? {
        (None, Some(added)) => remove_added_ausschluss(conn, dialect, &added, answer).await,
        (Some(lifted), None) => reinsert_lifted_ausschluss(conn, &lifted, answer).await,
        _ => Err(stored_shape_error(change)),
    }
}

async fn remove_added_ausschluss(
    conn: &mut AnyConnection,
    dialect: Dialect,
    added: &AusschlussRow,
    answer: &mut CompensationAnswer,
) -> Result<(), ApiError> {
    let current = fetch_ausschluss(conn, dialect, added.platzsuche_id, added.therapist_id).await?;

    let reason = match current {
        None => "the exclusion was removed since the cascade".to_owned(),
        Some(current) if current == *added => {
            sqlx::query(
                "DELETE FROM platzsuche_ausschluesse \
                 WHERE platzsuche_id = $1 AND therapist_id = $2",
            )
            .bind(added.platzsuche_id)
            .bind(added.therapist_id)
            .execute(&mut *conn)
            .await?;
            answer
                .restored
                .ausschluesse_hinzugefuegt
                .push(key_of(added));
            return Ok(());
        }
        Some(current) => format!(
            "the exclusion was changed since the cascade (ausgeschlossen_von is now {})",
            current.ausgeschlossen_von
        ),
    };

    answer.skipped.push(Skipped::ausschluss(added, reason));
    Ok(())
}

async fn reinsert_lifted_ausschluss(
    conn: &mut AnyConnection,
    lifted: &AusschlussRow,
    answer: &mut CompensationAnswer,
) -> Result<(), ApiError> {
    if !platzsuche_exists(conn, lifted.platzsuche_id).await? {
        let reason = format!(
            "Platzsuche {} was deleted since the cascade",
            lifted.platzsuche_id
        );
        answer.skipped.push(Skipped::ausschluss(lifted, reason));
        return Ok(());
    }

    // ON CONFLICT leaves an exclusion that someone added since the cascade as it is.
    let inserted = sqlx::query(
        "INSERT INTO platzsuche_ausschluesse \
         (platzsuche_id, therapist_id, ausgeschlossen_von, grund, saga_id, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (platzsuche_id, therapist_id) DO NOTHING RETURNING platzsuche_id",
    )
    .bind(lifted.platzsuche_id)
    .bind(lifted.therapist_id)
    .bind(&lifted.ausgeschlossen_von)
    .bind(lifted.grund.clone())
    .bind(lifted.saga_id.clone())
    .bind(&lifted.created_at)
    .fetch_optional(&mut *conn)
    .await?;
    if inserted.is_some() {
        answer.restored.ausschluesse_aufgehoben.push(key_of(lifted));
    } else {
        let reason = "the therapist was excluded again since the cascade".to_owned();
        answer.skipped.push(Skipped::ausschluss(lifted, reason));
    }
    Ok(())
}

/// The two tables whose `status` and `notizen` a cascade changes.
#[derive(Debug, Clone, Copy)]
enum Table {
    Platzsuchen,
    Therapeutenanfragen,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Self::Platzsuchen => "platzsuchen",
            Self::Therapeutenanfragen => "therapeutenanfragen",
        }
    }

    fn entity(self) -> EntityKind {
        match self {
            Self::Platzsuchen => EntityKind::Platzsuche,
            Self::Therapeutenanfragen => EntityKind::Therapeutenanfrage,
        }
    }
}

/// Sets `status` and `notizen` back to `before` where they still hold `after`, and lists the
/// others as skipped. Returns whether it restored a field.
async fn restore_status_and_notizen(
    conn: &mut AnyConnection,
    dialect: Dialect,
    table: Table,
    id: i64,
    before: &FieldValues,
    after: &FieldValues,
    answer: &mut CompensationAnswer,
) -> Result<bool, ApiError> {
    if after.status.is_none() && after.notizen.is_none() {
        return Ok(false);
    }
    let sql = format!(
        "SELECT status, notizen FROM {} WHERE id = $1{}",
        table.name(),
        lock_clause(dialect)
    );
    let Some(row) = sqlx::query(&sql)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
    else {
        let reason = "it was deleted since the cascade".to_owned();
        answer
            .skipped
            .push(Skipped::field(table.entity(), id, None, reason));
        return Ok(false);
    };
    let current_status: String = row.try_get("status")?;
    let current_notizen: Option<String> = row.try_get("notizen")?;

    let mut status = current_status.clone();
    let mut notizen = current_notizen.clone();
    let mut restored = false;
    if let (Some(old), Some(set)) = (&before.status, &after.status) {
        if current_status == *set {
            status = old.clone();
            restored = true;
        } else {
            let reason = format!(
                "status is {current_status} now, not {set} as the cascade set it, so it stays"
            );
            answer
                .skipped
                .push(Skipped::field(table.entity(), id, Some("status"), reason));
        }
    }
    if let (Some(old), Some(set)) = (&before.notizen, &after.notizen) {
        if current_notizen == *set {
            notizen = old.clone();
            restored = true;
        } else {
            let reason = "notizen was changed since the cascade, so it stays".to_owned();
            answer
                .skipped
                .push(Skipped::field(table.entity(), id, Some("notizen"), reason));
        }
    }

    if restored {
        let sql = format!(
            "UPDATE {} SET status = $1, notizen = $2, updated_at = $3 WHERE id = $4",
            table.name()
        );
        sqlx::query(&sql)
            .bind(status)
            .bind(notizen)
            .bind(kit::clock::now_rfc3339())
            .bind(id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(restored)
}

/// Adds back the Platzsuchen a cascade removed from an inquiry, if its list is still what
/// the cascade left. Returns whether it restored a link.
async fn restore_links(
    conn: &mut AnyConnection,
    anfrage_id: i64,
    before_ids: &[i64],
    after_ids: &[i64],
    answer: &mut CompensationAnswer,
) -> Result<bool, ApiError> {
    let current: Vec<i64> = sqlx::query(
        "SELECT platzsuche_id FROM anfrage_platzsuchen WHERE anfrage_id = $1 \
         ORDER BY platzsuche_id",
    )
    .bind(anfrage_id)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|row| row.try_get("platzsuche_id"))
    .collect::<Result<_, _>>()?;
    if current != after_ids {
        let reason = "platzsuche_ids was changed since the cascade, so it stays".to_owned();
        answer.skipped.push(Skipped::field(
            EntityKind::Therapeutenanfrage,
            anfrage_id,
            Some("platzsuche_ids"),
            reason,
        ));
        return Ok(false);
    }

    let current: BTreeSet<i64> = current.into_iter().collect();
    let mut restored = false;
    for platzsuche_id in before_ids.iter().filter(|id| !current.contains(id)) {
        if !platzsuche_exists(conn, *platzsuche_id).await? {
            let reason = format!(
                "Platzsuche {platzsuche_id} was deleted since the cascade, so it stays out"
            );
            answer.skipped.push(Skipped::field(
                EntityKind::Therapeutenanfrage,
                anfrage_id,
                Some("platzsuche_ids"),
                reason,
            ));
            continue;
        }
        sqlx::query("INSERT INTO anfrage_platzsuchen (anfrage_id, platzsuche_id) VALUES ($1, $2)")
            .bind(anfrage_id)
            .bind(*platzsuche_id)
            .execute(&mut *conn)
            .await?;
        restored = true;
    }
    if restored {
        sqlx::query("UPDATE therapeutenanfragen SET updated_at = $1 WHERE id = $2")
            .bind(kit::clock::now_rfc3339())
            .bind(anfrage_id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(restored)
}

async fn fetch_ausschluss(
    conn: &mut AnyConnection,
    dialect: Dialect,
    platzsuche_id: i64,
    therapist_id: i64,
) -> Result<Option<AusschlussRow>, ApiError> {
    let sql = format!(
        "SELECT platzsuche_id, therapist_id, ausgeschlossen_von, grund, saga_id, created_at \
         FROM platzsuche_ausschluesse WHERE platzsuche_id = $1 AND therapist_id = $2{}",
        lock_clause(dialect)
    );

    let row = sqlx::query(&sql)
        .bind(platzsuche_id)
        .bind(therapist_id)
        .fetch_optional(&mut *conn)
        .await?;

    let Some(row) = row else {
        return Ok(None);
    };

    Ok(Some(AusschlussRow {
        platzsuche_id: row.try_get("platzsuche_id")?,
        therapist_id: row.try_get("therapist_id")?,
        ausgeschlossen_von: row.try_get("ausgeschlossen_von")?,
        grund: row.try_get("grund")?,
        saga_id: row.try_get("saga_id")?,
        created_at: row.try_get("created_at")?,
    }))
}

async fn platzsuche_exists(conn: &mut AnyConnection, id: i64) -> Result<bool, ApiError> {
    let row = sqlx::query("SELECT id FROM platzsuchen WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.is_some())
}

async fn anfrage_exists(conn: &mut AnyConnection, id: i64) -> Result<bool, ApiError> {
    let row = sqlx::query("SELECT id FROM therapeutenanfragen WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.is_some())
}

fn key_of(row: &AusschlussRow) -> AusschlussKey {
    AusschlussKey {
        platzsuche_id: row.platzsuche_id,
        therapist_id: row.therapist_id,
    }
}

fn parse_id(entity_id: &str) -> Result<i64, ApiError> {
    entity_id
        .parse()
        .map_err(|_| ApiError::Internal(anyhow::anyhow!("invalid entity_id {entity_id:?}")))
}

fn stored_shape_error(change: &RecordedChange) -> ApiError {
    ApiError::Internal(anyhow::anyhow!(
        "cascade_changes row {} has before or after values that do not fit its kind",
        change.id
    ))
}
