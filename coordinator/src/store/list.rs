//! Listing sagas with filters and cursor paging, newest first. Saga ids are UUIDv7, whose
//! text order is creation order, so the cursor is the last id of a page.

use kit::db::Database;
use serde::Serialize;

use super::{SagaRecord, StoreError, SAGA_COLUMNS};

/// Filters of `GET /api/v1/sagas`; every one is optional.
#[derive(Debug, Clone, Default)]
pub struct SagaFilter {
    pub status: Option<String>,
    pub saga_type: Option<String>,
    pub patient_id: Option<i64>,
    pub therapist_id: Option<i64>,
    /// RFC 3339 bounds on `created_at`: from (inclusive) and to (exclusive).
    pub created_from: Option<String>,
    pub created_to: Option<String>,
    /// Return sagas older than this id.
    pub cursor: Option<String>,
    pub limit: i64,
}

/// One page of sagas without their steps.
#[derive(Debug, Clone, Serialize)]
pub struct SagaPage {
    pub items: Vec<SagaRecord>,
    /// The `cursor` of the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

pub(super) async fn list(db: &Database, filter: &SagaFilter) -> Result<SagaPage, StoreError> {
    let mut conditions: Vec<String> = Vec::new();
    let mut texts: Vec<String> = Vec::new();
    let mut numbers: Vec<(String, i64)> = Vec::new();
    let mut next_placeholder = 1;
    let mut placeholder = || {
        let text = format!("${next_placeholder}");
        next_placeholder += 1;
        text
    };

    // Text filters first, then numbers, so that binding follows placeholder order.
    for (column, operator, value) in [
        ("status", "=", &filter.status),
        ("saga_type", "=", &filter.saga_type),
        ("created_at", ">=", &filter.created_from),
        ("created_at", "<", &filter.created_to),
        ("id", "<", &filter.cursor),
    ] {
        if let Some(value) = value {
            conditions.push(format!("{column} {operator} {}", placeholder()));
            texts.push(value.clone());
        }
    }
    for (entity, value) in [
        ("patient", filter.patient_id),
        ("therapist", filter.therapist_id),
    ] {
        if let Some(id) = value {
            conditions.push(format!(
                "entity_type = '{entity}' AND entity_id = {}",
                placeholder()
            ));
            numbers.push((entity.to_owned(), id));
        }
    }
    let limit_placeholder = placeholder();

    let where_clause = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    let sql = format!(
        "SELECT {SAGA_COLUMNS} FROM sagas {where_clause} ORDER BY id DESC LIMIT {limit_placeholder}"
    );

    let mut query = sqlx::query(&sql);
    for text in &texts {
        query = query.bind(text);
    }
    for (_, number) in &numbers {
        query = query.bind(*number);
    }
    let rows = query.bind(filter.limit + 1).fetch_all(&db.pool).await?;

    let mut items = rows
        .iter()
        .map(SagaRecord::from_row)
        .collect::<Result<Vec<_>, _>>()?;
    let limit = usize::try_from(filter.limit).unwrap_or(usize::MAX);
    let has_more = items.len() > limit;
    items.truncate(limit);
    let next_cursor = if has_more {
        items.last().map(|saga| saga.id.clone())
    } else {
        None
    };
    Ok(SagaPage { items, next_cursor })
}
