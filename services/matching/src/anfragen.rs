//! Therapeutenanfragen (inquiries to a therapist for one or more Platzsuchen): the HTTP
//! handlers and the queries behind them.

use std::collections::{BTreeSet, HashMap};

use axum::extract::State;
use axum::response::Response;
use kit::extract::{Json, PathId, Query, SagaContext};
use kit::idempotency::{self, Answer, Operation};
use kit::pagination::{Page, PageParams};
use kit::ApiError;
use serde::Deserialize;
use serde_json::{json, Value};
use sqlx::{AnyConnection, Row};
use utoipa::{IntoParams, ToSchema};

use crate::model::{
    check_date, check_positive_id, check_text, nullable, parse_body, parse_enum, stored_enum,
    AnfrageStatus, Therapeutenanfrage, MAX_NOTIZEN_CHARS,
};
use crate::platzsuchen::placeholders;
use crate::AppState;

/// Body of `POST /api/therapeutenanfragen`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAnfrage {
    pub therapist_id: i64,
    /// One or more existing Platzsuchen.
    pub platzsuche_ids: Vec<i64>,
    /// `YYYY-MM-DD`; absent or null while unsent.
    pub gesendet_datum: Option<String>,
    /// `offen` when unsent and `gesendet` when `gesendet_datum` is set, if absent.
    pub status: Option<AnfrageStatus>,
    pub notizen: Option<String>,
}

/// Body of `PATCH /api/therapeutenanfragen/{id}`: any subset of the writable fields. Setting
/// `gesendet_datum` on an `offen` inquiry without a `status` makes it `gesendet`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateAnfrage {
    pub therapist_id: Option<i64>,
    pub platzsuche_ids: Option<Vec<i64>>,
    /// Null marks the inquiry as unsent.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub gesendet_datum: Option<Option<String>>,
    pub status: Option<AnfrageStatus>,
    /// Null clears the notes.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub notizen: Option<Option<String>>,
}

/// Filters and paging of `GET /api/therapeutenanfragen`.
#[derive(Debug, Clone, Deserialize, IntoParams)]
pub struct AnfragenQuery {
    pub therapist_id: Option<i64>,
    /// One of `offen`, `gesendet`, `angenommen`, `abgelehnt`, `storniert`.
    pub status: Option<String>,
    /// Number of items per page, 1 to 500; 50 when absent.
    pub limit: Option<i64>,
    /// Return items whose id is greater than this one.
    pub after: Option<i64>,
}

/// Checks `platzsuche_ids` apart from existence, which needs the database, and returns
/// them sorted.
fn check_platzsuche_ids(ids: &[i64]) -> Result<Vec<i64>, ApiError> {
    if ids.is_empty() {
        return Err(ApiError::unprocessable(
            "platzsuche_ids",
            "platzsuche_ids must name at least one Platzsuche",
        ));
    }

    if let Some(bad) = ids.iter().find(|id| **id <= 0) {
        return Err(ApiError::unprocessable(
            "platzsuche_ids",
            format!("platzsuche_ids must contain positive ids, got {bad}"),
        ));
    }

    let unique: BTreeSet<i64> = ids.iter().copied().collect();
    if unique.len() != ids.len() {
        return Err(ApiError::unprocessable(
            "platzsuche_ids",
            "platzsuche_ids must name each Platzsuche once",
        ));
    }

    Ok(unique.into_iter().collect())
}

/// Checks that `status` fits `gesendet_datum`: an `offen` inquiry is unsent and a `gesendet`
/// one has a date.
fn check_status_fits_date(
    status: AnfrageStatus,
    gesendet_datum: Option<&str>,
) -> Result<(), ApiError> {
    match (status, gesendet_datum) {
        (AnfrageStatus::Offen, Some(date)) => Err(ApiError::unprocessable(
            "status",
            format!("status offen means unsent, but gesendet_datum is {date}"),
        )),
        (AnfrageStatus::Gesendet, None) => Err(ApiError::unprocessable(
            "gesendet_datum",
            "status gesendet needs gesendet_datum, the date the inquiry was sent",
        )),
        _ => Ok(()),
    }
}

/// Lists Therapeutenanfragen in id order.
#[utoipa::path(
    get,
    path = "/api/therapeutenanfragen",
    params(AnfragenQuery),
    responses((status = 200, description = "One page", body = Page<Therapeutenanfrage>))
)]
pub async fn list_anfragen(
    State(state): State<AppState>,
    Query(query): Query<AnfragenQuery>,
) -> Result<axum::Json<Page<Therapeutenanfrage>>, ApiError> {
    let paging = PageParams {
        limit: query.limit,
        after: query.after,
    };
    let limit = paging.limit()?;
    let after = paging.after()?;
    let therapist_id = query
        .therapist_id
        .map(|id| check_positive_id("therapist_id", id))
        .transpose()?;
    let status = query
        .status
        .as_deref()
        .map(|text| {
            parse_enum(&AnfrageStatus::ALL, AnfrageStatus::as_str, text).ok_or_else(|| {
                ApiError::bad_request(
                    "status",
                    format!(
                        "status must be one of offen, gesendet, angenommen, abgelehnt, \
                         storniert, got {text:?}"
                    ),
                )
            })
        })
        .transpose()?;

    let mut sql = "SELECT id, therapist_id, status, gesendet_datum, notizen, created_at, \
                   updated_at FROM therapeutenanfragen WHERE id > $1"
        .to_owned();
    let mut next = 2;
    if therapist_id.is_some() {
        sql.push_str(&format!(" AND therapist_id = ${next}"));
        next += 1;
    }
    if status.is_some() {
        sql.push_str(&format!(" AND status = ${next}"));
        next += 1;
    }
    sql.push_str(&format!(" ORDER BY id LIMIT ${next}"));

    let mut statement = sqlx::query(&sql).bind(after);
    if let Some(therapist_id) = therapist_id {
        statement = statement.bind(therapist_id);
    }
    if let Some(status) = status {
        statement = statement.bind(status.as_str());
    }
    let mut conn = state.db.pool.acquire().await?;
    let rows = statement.bind(limit + 1).fetch_all(&mut *conn).await?;
    let mut items = rows
        .iter()
        .map(anfrage_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    attach_platzsuche_ids(&mut conn, &mut items).await?;

    Ok(axum::Json(Page::from_rows(items, limit, |item| item.id)))
}

/// Creates a Therapeutenanfrage for one or more Platzsuchen.
#[utoipa::path(
    post,
    path = "/api/therapeutenanfragen",
    request_body = CreateAnfrage,
    responses(
        (status = 201, description = "The new inquiry", body = Therapeutenanfrage),
        (status = 400, description = "Invalid field", body = kit::error::Problem),
        (status = 422, description = "Unacceptable value", body = kit::error::Problem),
    )
)]
pub async fn create_anfrage(
    State(state): State<AppState>,
    context: SagaContext,
    Json(raw): Json<Value>,
) -> Result<Response, ApiError> {
    let body = parse_body::<CreateAnfrage>(&raw)?;
    let therapist_id = check_positive_id("therapist_id", body.therapist_id)?;
    let platzsuche_ids = check_platzsuche_ids(&body.platzsuche_ids)?;
    let gesendet_datum = check_date("gesendet_datum", body.gesendet_datum)?;
    let notizen = check_text("notizen", body.notizen, MAX_NOTIZEN_CHARS)?;
    let status = body.status.unwrap_or(if gesendet_datum.is_some() {
        AnfrageStatus::Gesendet
    } else {
        AnfrageStatus::Offen
    });
    check_status_fits_date(status, gesendet_datum.as_deref())?;
    let operation = Operation {
        method: "POST",
        path: "/api/therapeutenanfragen",
        body: &raw,
    };

    idempotency::run(&state.db, &context, operation, |tx| {
        let platzsuche_ids = platzsuche_ids.clone();
        let gesendet_datum = gesendet_datum.clone();
        let notizen = notizen.clone();
        Box::pin(async move {
            check_platzsuchen_exist(tx, &platzsuche_ids).await?;

            let now = kit::clock::now_rfc3339();
            let id: i64 = sqlx::query(
                "INSERT INTO therapeutenanfragen \
                 (therapist_id, status, gesendet_datum, notizen, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $5) RETURNING id",
            )
            .bind(therapist_id)
            .bind(status.as_str())
            .bind(gesendet_datum)
            .bind(notizen)
            .bind(&now)
            .fetch_one(&mut **tx)
            .await?
            .try_get("id")?;
            insert_links(tx, id, &platzsuche_ids).await?;

            let created = fetch_anfrage(tx, id)
                .await?
                .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("new inquiry not found")))?;
            Ok(Answer::created(serde_json::to_value(created)?))
        })
    })
    .await
}

/// Returns one Therapeutenanfrage.
#[utoipa::path(
    get,
    path = "/api/therapeutenanfragen/{id}",
    params(("id" = i64, Path, description = "Therapeutenanfrage id")),
    responses(
        (status = 200, description = "The inquiry", body = Therapeutenanfrage),
        (status = 404, description = "Unknown id", body = kit::error::Problem),
    )
)]
pub async fn get_anfrage(
    State(state): State<AppState>,
    PathId(id): PathId,
) -> Result<axum::Json<Therapeutenanfrage>, ApiError> {
    let mut conn = state.db.pool.acquire().await?;
    let found = fetch_anfrage(&mut conn, id)
        .await?
        .ok_or_else(|| ApiError::not_found("Therapeutenanfrage", id))?;
    Ok(axum::Json(found))
}

/// Changes the writable fields of a Therapeutenanfrage; `platzsuche_ids` replaces the list.
#[utoipa::path(
    patch,
    path = "/api/therapeutenanfragen/{id}",
    params(("id" = i64, Path, description = "Therapeutenanfrage id")),
    request_body = UpdateAnfrage,
    responses(
        (status = 200, description = "The changed inquiry", body = Therapeutenanfrage),
        (status = 404, description = "Unknown id", body = kit::error::Problem),
        (status = 422, description = "Unacceptable value", body = kit::error::Problem),
    )
)]
pub async fn update_anfrage(
    State(state): State<AppState>,
    PathId(id): PathId,
    context: SagaContext,
    Json(raw): Json<Value>,
) -> Result<Response, ApiError> {
    // Validate every field before the transaction opens.
    let mut update = parse_body::<UpdateAnfrage>(&raw)?;
    if let Some(therapist_id) = update.therapist_id {
        check_positive_id("therapist_id", therapist_id)?;
    }
    if let Some(ids) = update.platzsuche_ids.take() {
        update.platzsuche_ids = Some(check_platzsuche_ids(&ids)?);
    }
    if let Some(date) = update.gesendet_datum.take() {
        update.gesendet_datum = Some(check_date("gesendet_datum", date)?);
    }
    if let Some(notizen) = update.notizen.take() {
        update.notizen = Some(check_text("notizen", notizen, MAX_NOTIZEN_CHARS)?);
    }

    let path = format!("/api/therapeutenanfragen/{id}");
    let operation = Operation {
        method: "PATCH",
        path: &path,
        body: &raw,
    };

    idempotency::run(&state.db, &context, operation, |tx| {
        let update = update.clone();
        Box::pin(async move {
            // Load the inquiry and derive the status the update leaves it in.
            let current = fetch_anfrage(tx, id)
                .await?
                .ok_or_else(|| ApiError::not_found("Therapeutenanfrage", id))?;
            let gesendet_datum = update.gesendet_datum.unwrap_or(current.gesendet_datum);
            let status = match update.status {
                Some(status) => status,
                None if current.status == AnfrageStatus::Offen && gesendet_datum.is_some() => {
                    AnfrageStatus::Gesendet
                }
                None => current.status,
            };
            check_status_fits_date(status, gesendet_datum.as_deref())?;

            // Replace the links to Platzsuchen, then update the row.
            if let Some(ids) = &update.platzsuche_ids {
                check_platzsuchen_exist(tx, ids).await?;
                sqlx::query("DELETE FROM anfrage_platzsuchen WHERE anfrage_id = $1")
                    .bind(id)
                    .execute(&mut **tx)
                    .await?;
                insert_links(tx, id, ids).await?;
            }

            sqlx::query(
                "UPDATE therapeutenanfragen SET therapist_id = $1, status = $2, \
                 gesendet_datum = $3, notizen = $4, updated_at = $5 WHERE id = $6",
            )
            .bind(update.therapist_id.unwrap_or(current.therapist_id))
            .bind(status.as_str())
            .bind(gesendet_datum)
            .bind(update.notizen.unwrap_or(current.notizen))
            .bind(kit::clock::now_rfc3339())
            .bind(id)
            .execute(&mut **tx)
            .await?;

            let changed = fetch_anfrage(tx, id)
                .await?
                .ok_or_else(|| ApiError::not_found("Therapeutenanfrage", id))?;
            Ok(Answer::ok(serde_json::to_value(changed)?))
        })
    })
    .await
}

/// Deletes a Therapeutenanfrage with its links to Platzsuchen.
#[utoipa::path(
    delete,
    path = "/api/therapeutenanfragen/{id}",
    params(("id" = i64, Path, description = "Therapeutenanfrage id")),
    responses(
        (status = 200, description = "Deleted: {\"anfrage_id\", \"deleted\": true}"),
        (status = 404, description = "Unknown id", body = kit::error::Problem),
    )
)]
pub async fn delete_anfrage(
    State(state): State<AppState>,
    PathId(id): PathId,
    context: SagaContext,
) -> Result<Response, ApiError> {
    let path = format!("/api/therapeutenanfragen/{id}");
    let body = Value::Null;
    let operation = Operation {
        method: "DELETE",
        path: &path,
        body: &body,
    };

    idempotency::run(&state.db, &context, operation, |tx| {
        Box::pin(async move {
            sqlx::query("DELETE FROM anfrage_platzsuchen WHERE anfrage_id = $1")
                .bind(id)
                .execute(&mut **tx)
                .await?;
            let deleted = sqlx::query("DELETE FROM therapeutenanfragen WHERE id = $1")
                .bind(id)
                .execute(&mut **tx)
                .await?;
            if deleted.rows_affected() == 0 {
                return Err(ApiError::not_found("Therapeutenanfrage", id));
            }
            Ok(Answer::ok(json!({ "anfrage_id": id, "deleted": true })))
        })
    })
    .await
}

/// Fails with 422 naming `platzsuche_ids` unless every id is an existing Platzsuche.
async fn check_platzsuchen_exist(conn: &mut AnyConnection, ids: &[i64]) -> Result<(), ApiError> {
    let sql = format!(
        "SELECT id FROM platzsuchen WHERE id IN ({})",
        placeholders(1, ids.len())
    );
    let mut statement = sqlx::query(&sql);
    for id in ids {
        statement = statement.bind(*id);
    }
    let found: BTreeSet<i64> = statement
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|row| row.try_get("id"))
        .collect::<Result<_, _>>()?;

    let missing: Vec<i64> = ids
        .iter()
        .copied()
        .filter(|id| !found.contains(id))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(ApiError::unprocessable(
            "platzsuche_ids",
            format!("platzsuche_ids names Platzsuchen that do not exist: {missing:?}"),
        ))
    }
}

async fn insert_links(
    conn: &mut AnyConnection,
    anfrage_id: i64,
    ids: &[i64],
) -> Result<(), ApiError> {
    for platzsuche_id in ids {
        sqlx::query("INSERT INTO anfrage_platzsuchen (anfrage_id, platzsuche_id) VALUES ($1, $2)")
            .bind(anfrage_id)
            .bind(*platzsuche_id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Reads one Therapeutenanfrage with its Platzsuche ids.
pub async fn fetch_anfrage(
    conn: &mut AnyConnection,
    id: i64,
) -> Result<Option<Therapeutenanfrage>, ApiError> {
    let row = sqlx::query(
        "SELECT id, therapist_id, status, gesendet_datum, notizen, created_at, updated_at \
         FROM therapeutenanfragen WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };

    let mut items = vec![anfrage_from_row(&row)?];
    attach_platzsuche_ids(conn, &mut items).await?;
    Ok(items.pop())
}

fn anfrage_from_row(row: &sqlx::any::AnyRow) -> Result<Therapeutenanfrage, ApiError> {
    let status: String = row.try_get("status")?;

    Ok(Therapeutenanfrage {
        id: row.try_get("id")?,
        therapist_id: row.try_get("therapist_id")?,
        platzsuche_ids: Vec::new(),
        status: stored_enum(
            &AnfrageStatus::ALL,
            AnfrageStatus::as_str,
            "status",
            &status,
        )?,
        gesendet_datum: row.try_get("gesendet_datum")?,
        notizen: row.try_get("notizen")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Reads the Platzsuche ids of `items` in one query.
async fn attach_platzsuche_ids(
    conn: &mut AnyConnection,
    items: &mut [Therapeutenanfrage],
) -> Result<(), ApiError> {
    if items.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "SELECT anfrage_id, platzsuche_id FROM anfrage_platzsuchen WHERE anfrage_id IN ({}) \
         ORDER BY anfrage_id, platzsuche_id",
        placeholders(1, items.len())
    );
    let mut statement = sqlx::query(&sql);
    for item in items.iter() {
        statement = statement.bind(item.id);
    }
    let rows = statement.fetch_all(&mut *conn).await?;

    let mut by_anfrage: HashMap<i64, Vec<i64>> = HashMap::new();
    for row in &rows {
        by_anfrage
            .entry(row.try_get("anfrage_id")?)
            .or_default()
            .push(row.try_get("platzsuche_id")?);
    }
    for item in items.iter_mut() {
        item.platzsuche_ids = by_anfrage.remove(&item.id).unwrap_or_default();
    }
    Ok(())
}
