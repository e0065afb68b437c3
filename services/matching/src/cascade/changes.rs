//! The log of what each cascade changed, in the table `cascade_changes`, which compensation
//! reads to undo exactly those changes.

use kit::db::Dialect;
use kit::ApiError;
use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, Row};

use super::Cascade;
use crate::model::nullable;

/// The kind of row a change touched, stored in `entity_kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntityKind {
    Platzsuche,
    Therapeutenanfrage,
    Ausschluss,
}

impl EntityKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Platzsuche => "platzsuche",
            Self::Therapeutenanfrage => "therapeutenanfrage",
            Self::Ausschluss => "ausschluss",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [Self::Platzsuche, Self::Therapeutenanfrage, Self::Ausschluss]
            .into_iter()
            .find(|kind| kind.as_str() == text)
    }
}

/// Values of a Platzsuche or Therapeutenanfrage before or after a cascade. Only the fields
/// the cascade changed are present; `notizen` may be present and null.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FieldValues {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub notizen: Option<Option<String>>,
    /// The Platzsuchen an inquiry names, in id order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platzsuche_ids: Option<Vec<i64>>,
}

/// A whole row of `platzsuche_ausschluesse`, as a cascade added or deleted it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AusschlussRow {
    pub platzsuche_id: i64,
    pub therapist_id: i64,
    pub ausgeschlossen_von: String,
    pub grund: Option<String>,
    pub saga_id: Option<String>,
    pub created_at: String,
}

impl AusschlussRow {
    /// Returns the value of `entity_id` for this row.
    pub fn entity_id(&self) -> String {
        format!("{}/{}", self.platzsuche_id, self.therapist_id)
    }
}

/// Records the changes of one forward cascade call.
#[derive(Debug, Clone)]
pub struct ChangeLog {
    pub forward_key: String,
    pub saga_id: Option<String>,
    pub saga_step: Option<String>,
    pub cascade: Cascade,
}

impl ChangeLog {
    /// Stores one change. `before` is `None` for a row the cascade inserted and `after` is
    /// `None` for a row it deleted.
    pub async fn record<T: Serialize>(
        &self,
        conn: &mut AnyConnection,
        kind: EntityKind,
        entity_id: String,
        before: Option<&T>,
        after: Option<&T>,
    ) -> Result<(), ApiError> {
        let before = before.map(serde_json::to_string).transpose()?;
        let after = after.map(serde_json::to_string).transpose()?;

        sqlx::query(
            "INSERT INTO cascade_changes (forward_key, saga_id, saga_step, cascade_name, \
             entity_kind, entity_id, before_values, after_values, created_at, undone_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL)",
        )
        .bind(&self.forward_key)
        .bind(self.saga_id.clone())
        .bind(self.saga_step.clone())
        .bind(self.cascade.name())
        .bind(kind.as_str())
        .bind(entity_id)
        .bind(before)
        .bind(after)
        .bind(kit::clock::now_rfc3339())
        .execute(&mut *conn)
        .await?;

        Ok(())
    }
}

/// One stored change, as compensation reads it.
#[derive(Debug, Clone)]
pub struct RecordedChange {
    pub id: i64,
    pub kind: EntityKind,
    pub entity_id: String,
    pub before: Option<String>,
    pub after: Option<String>,
}

impl RecordedChange {
    /// Parses the stored values before and after the change.
    pub fn values<T: serde::de::DeserializeOwned>(
        &self,
    ) -> Result<(Option<T>, Option<T>), ApiError> {
        let parse = |text: &Option<String>| {
            text.as_deref()
                .map(serde_json::from_str::<T>)
                .transpose()
                .map_err(ApiError::from)
        };
        Ok((parse(&self.before)?, parse(&self.after)?))
    }
}

/// Marks the changes of a forward call that are not undone yet as undone and returns them,
/// newest first. The conditional UPDATE claims them, so of two concurrent compensations
/// only one receives the rows.
pub async fn claim_changes(
    conn: &mut AnyConnection,
    forward_key: &str,
    cascade: Cascade,
) -> Result<Vec<RecordedChange>, ApiError> {
    let rows = sqlx::query(
        "UPDATE cascade_changes SET undone_at = $1 \
         WHERE forward_key = $2 AND cascade_name = $3 AND undone_at IS NULL \
         RETURNING id, entity_kind, entity_id, before_values, after_values",
    )
    .bind(kit::clock::now_rfc3339())
    .bind(forward_key)
    .bind(cascade.name())
    .fetch_all(&mut *conn)
    .await?;

    let mut changes = Vec::with_capacity(rows.len());
    for row in &rows {
        let kind: String = row.try_get("entity_kind")?;
        changes.push(RecordedChange {
            id: row.try_get("id")?,
            kind: EntityKind::parse(&kind).ok_or_else(|| {
                ApiError::Internal(anyhow::anyhow!("unknown entity_kind {kind:?}"))
            })?,
            entity_id: row.try_get("entity_id")?,
            before: row.try_get("before_values")?,
            after: row.try_get("after_values")?,
        });
    }
    changes.sort_by_key(|change| std::cmp::Reverse(change.id));
    Ok(changes)
}

/// Counts the changes a forward call recorded, undone or not.
pub async fn count_changes(
    conn: &mut AnyConnection,
    forward_key: &str,
    cascade: Cascade,
) -> Result<i64, ApiError> {
    let count: i64 = sqlx::query(
        "SELECT COUNT(*) AS changes FROM cascade_changes \
         WHERE forward_key = $1 AND cascade_name = $2",
    )
    .bind(forward_key)
    .bind(cascade.name())
    .fetch_one(&mut *conn)
    .await?
    .try_get("changes")?;

    Ok(count)
}

/// Returns the clause that locks the selected rows until the transaction ends. SQLite has
/// none and needs none: its single pooled connection serialises every transaction.
pub fn lock_clause(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Postgres => " FOR UPDATE",
        Dialect::Sqlite => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_values_keep_null_notizen_apart_from_absent() {
        let values = FieldValues {
            status: Some("aktiv".to_owned()),
            notizen: Some(None),
            platzsuche_ids: None,
        };

        let text = serde_json::to_string(&values).unwrap();
        let parsed: FieldValues = serde_json::from_str(&text).unwrap();

        assert_eq!(text, r#"{"status":"aktiv","notizen":null}"#);
        assert_eq!(parsed, values);
    }
}
