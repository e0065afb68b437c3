//! Platzsuchen and their exclusions: the HTTP handlers and the queries behind them.

use std::collections::HashMap;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::Response;
use kit::extract::{parse_positive_id, Json, PathId, Query, SagaContext};
use kit::idempotency::{self, Answer, Operation};
use kit::pagination::{Page, PageParams};
use kit::ApiError;
use serde::Deserialize;
use serde_json::{json, Value};
use sqlx::{AnyConnection, Row};
use utoipa::{IntoParams, ToSchema};

use crate::model::{
    check_positive_id, check_text, nullable, parse_body, parse_enum, stored_enum,
    AusgeschlossenVon, Ausschluss, Platzsuche, SucheStatus, MAX_NOTIZEN_CHARS, MAX_REASON_CHARS,
};
use crate::AppState;

/// Body of `POST /api/platzsuchen`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePlatzsuche {
    pub patient_id: i64,
    /// `aktiv` when absent.
    pub status: Option<SucheStatus>,
    pub notizen: Option<String>,
    pub ausschluesse: Option<Vec<CreateAusschluss>>,
}

/// Body of `POST /api/platzsuchen/{id}/ausschluesse`, and one entry of `ausschluesse` when
/// a Platzsuche is created.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAusschluss {
    pub therapist_id: i64,
    /// `patient` or `personal`; `sperre` is set only by the block cascade.
    pub ausgeschlossen_von: AusgeschlossenVon,
    pub grund: Option<String>,
}

/// Body of `PATCH /api/platzsuchen/{id}`: any subset of the writable fields.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdatePlatzsuche {
    pub patient_id: Option<i64>,
    pub status: Option<SucheStatus>,
    /// Null clears the notes.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub notizen: Option<Option<String>>,
}

/// Filters and paging of `GET /api/platzsuchen`.
#[derive(Debug, Clone, Deserialize, IntoParams)]
pub struct PlatzsuchenQuery {
    pub patient_id: Option<i64>,
    /// One of `aktiv`, `pausiert`, `erfolgreich`, `abgebrochen`.
    pub status: Option<String>,
    /// Number of items per page, 1 to 500; 50 when absent.
    pub limit: Option<i64>,
    /// Return items whose id is greater than this one.
    pub after: Option<i64>,
}

/// A checked exclusion, ready to insert.
#[derive(Debug, Clone)]
struct NewAusschluss {
    therapist_id: i64,
    ausgeschlossen_von: AusgeschlossenVon,
    grund: Option<String>,
}

/// A checked Platzsuche, ready to insert.
#[derive(Debug, Clone)]
struct NewPlatzsuche {
    patient_id: i64,
    status: SucheStatus,
    notizen: Option<String>,
    ausschluesse: Vec<NewAusschluss>,
}

impl CreateAusschluss {
    /// Checks the exclusion; `prefix` locates it in the body, such as `ausschluesse[2].`.
    fn check(self, prefix: &str) -> Result<NewAusschluss, ApiError> {
        let therapist_id = check_positive_id(&format!("{prefix}therapist_id"), self.therapist_id)?;

        if self.ausgeschlossen_von == AusgeschlossenVon::Sperre {
            return Err(ApiError::unprocessable(
                format!("{prefix}ausgeschlossen_von"),
                "ausgeschlossen_von must be patient or personal: sperre is set only by the \
                 block-therapist saga",
            ));
        }

        Ok(NewAusschluss {
            therapist_id,
            ausgeschlossen_von: self.ausgeschlossen_von,
            grund: check_text(&format!("{prefix}grund"), self.grund, MAX_REASON_CHARS)?,
        })
    }
}

impl CreatePlatzsuche {
    fn check(self) -> Result<NewPlatzsuche, ApiError> {
        let patient_id = check_positive_id("patient_id", self.patient_id)?;
        let notizen = check_text("notizen", self.notizen, MAX_NOTIZEN_CHARS)?;

        let mut ausschluesse: Vec<NewAusschluss> = Vec::new();
        for (index, entry) in self
            .ausschluesse
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            let entry = entry.check(&format!("ausschluesse[{index}]."))?;
            if ausschluesse
                .iter()
                .any(|other| other.therapist_id == entry.therapist_id)
            {
                return Err(ApiError::unprocessable(
                    format!("ausschluesse[{index}].therapist_id"),
                    format!(
                        "therapist {} is excluded twice; list each therapist once",
                        entry.therapist_id
                    ),
                ));
            }
            ausschluesse.push(entry);
        }

        Ok(NewPlatzsuche {
            patient_id,
            status: self.status.unwrap_or(SucheStatus::Aktiv),
            notizen,
            ausschluesse,
        })
    }
}

/// Lists Platzsuchen in id order.
#[utoipa::path(
    get,
    path = "/api/platzsuchen",
    params(PlatzsuchenQuery),
    responses((status = 200, description = "One page of Platzsuchen", body = Page<Platzsuche>))
)]
pub async fn list_platzsuchen(
    State(state): State<AppState>,
    Query(query): Query<PlatzsuchenQuery>,
) -> Result<axum::Json<Page<Platzsuche>>, ApiError> {
    let paging = PageParams {
        limit: query.limit,
        after: query.after,
    };
    let limit = paging.limit()?;
    let after = paging.after()?;
    let patient_id = query
        .patient_id
        .map(|id| check_positive_id("patient_id", id))
        .transpose()?;
    let status = query
        .status
        .as_deref()
        .map(|text| {
            parse_enum(&SucheStatus::ALL, SucheStatus::as_str, text).ok_or_else(|| {
                ApiError::bad_request(
                    "status",
                    format!(
                        "status must be one of aktiv, pausiert, erfolgreich, abgebrochen, got \
                         {text:?}"
                    ),
                )
            })
        })
        .transpose()?;

    let mut sql = "SELECT id, patient_id, status, notizen, created_at, updated_at \
                   FROM platzsuchen WHERE id > $1"
        .to_owned();
    let mut next = 2;
    if patient_id.is_some() {
        sql.push_str(&format!(" AND patient_id = ${next}"));
        next += 1;
    }
    if status.is_some() {
        sql.push_str(&format!(" AND status = ${next}"));
        next += 1;
    }
    sql.push_str(&format!(" ORDER BY id LIMIT ${next}"));

    let mut statement = sqlx::query(&sql).bind(after);
    if let Some(patient_id) = patient_id {
        statement = statement.bind(patient_id);
    }
    if let Some(status) = status {
        statement = statement.bind(status.as_str());
    }
    let mut conn = state.db.pool.acquire().await?;
    let rows = statement.bind(limit + 1).fetch_all(&mut *conn).await?;
    let mut items = rows
        .iter()
        .map(platzsuche_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    attach_ausschluesse(&mut conn, &mut items).await?;

    Ok(axum::Json(Page::from_rows(items, limit, |item| item.id)))
}

/// Creates a Platzsuche with its exclusions.
#[utoipa::path(
    post,
    path = "/api/platzsuchen",
    request_body = CreatePlatzsuche,
    responses(
        (status = 201, description = "The new Platzsuche", body = Platzsuche),
        (status = 400, description = "Invalid field", body = kit::error::Problem),
        (status = 422, description = "Unacceptable value", body = kit::error::Problem),
    )
)]
pub async fn create_platzsuche(
    State(state): State<AppState>,
    context: SagaContext,
    Json(raw): Json<Value>,
) -> Result<Response, ApiError> {
    let input = parse_body::<CreatePlatzsuche>(&raw)?.check()?;
    let operation = Operation {
        method: "POST",
        path: "/api/platzsuchen",
        body: &raw,
    };

    idempotency::run(&state.db, &context, operation, |tx| {
        let input = input.clone();
        Box::pin(async move {
            let id = insert_platzsuche(tx, &input).await?;
            let created = fetch_platzsuche(tx, id)
                .await?
                .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("new Platzsuche not found")))?;
            Ok(Answer::created(serde_json::to_value(created)?))
        })
    })
    .await
}

/// Returns one Platzsuche with its exclusions.
#[utoipa::path(
    get,
    path = "/api/platzsuchen/{id}",
    params(("id" = i64, Path, description = "Platzsuche id")),
    responses(
        (status = 200, description = "The Platzsuche", body = Platzsuche),
        (status = 404, description = "Unknown id", body = kit::error::Problem),
    )
)]
pub async fn get_platzsuche(
    State(state): State<AppState>,
    PathId(id): PathId,
) -> Result<axum::Json<Platzsuche>, ApiError> {
    let mut conn = state.db.pool.acquire().await?;
    let found = fetch_platzsuche(&mut conn, id)
        .await?
        .ok_or_else(|| ApiError::not_found("Platzsuche", id))?;
    Ok(axum::Json(found))
}

/// Changes the writable fields of a Platzsuche.
#[utoipa::path(
    patch,
    path = "/api/platzsuchen/{id}",
    params(("id" = i64, Path, description = "Platzsuche id")),
    request_body = UpdatePlatzsuche,
    responses(
        (status = 200, description = "The changed Platzsuche", body = Platzsuche),
        (status = 404, description = "Unknown id", body = kit::error::Problem),
    )
)]
pub async fn update_platzsuche(
    State(state): State<AppState>,
    PathId(id): PathId,
    context: SagaContext,
    Json(raw): Json<Value>,
) -> Result<Response, ApiError> {
    let mut update = parse_body::<UpdatePlatzsuche>(&raw)?;
    if let Some(patient_id) = update.patient_id {
        check_positive_id("patient_id", patient_id)?;
    }
    if let Some(notizen) = update.notizen.take() {
        update.notizen = Some(check_text("notizen", notizen, MAX_NOTIZEN_CHARS)?);
    }
    let path = format!("/api/platzsuchen/{id}");
    let operation = Operation {
        method: "PATCH",
        path: &path,
        body: &raw,
    };

    idempotency::run(&state.db, &context, operation, |tx| {
        let update = update.clone();
        Box::pin(async move {
            let current = fetch_platzsuche(tx, id)
                .await?
                .ok_or_else(|| ApiError::not_found("Platzsuche", id))?;
            let notizen = match update.notizen {
                Some(notizen) => notizen,
                None => current.notizen,
            };

            sqlx::query(
                "UPDATE platzsuchen SET patient_id = $1, status = $2, notizen = $3, \
                 updated_at = $4 WHERE id = $5",
            )
            .bind(update.patient_id.unwrap_or(current.patient_id))
            .bind(update.status.unwrap_or(current.status).as_str())
            .bind(notizen)
            .bind(kit::clock::now_rfc3339())
            .bind(id)
            .execute(&mut **tx)
            .await?;

            let changed = fetch_platzsuche(tx, id)
                .await?
                .ok_or_else(|| ApiError::not_found("Platzsuche", id))?;
            Ok(Answer::ok(serde_json::to_value(changed)?))
        })
    })
    .await
}

/// Deletes a Platzsuche and its exclusions. A Platzsuche that Therapeutenanfragen still name
/// is kept, with 409.
#[utoipa::path(
    delete,
    path = "/api/platzsuchen/{id}",
    params(("id" = i64, Path, description = "Platzsuche id")),
    responses(
        (status = 200, description = "Deleted: {\"platzsuche_id\", \"deleted\": true}"),
        (status = 404, description = "Unknown id", body = kit::error::Problem),
        (
            status = 409,
            description = "Still named by Therapeutenanfragen",
            body = kit::error::Problem
        ),
    )
)]
pub async fn delete_platzsuche(
    State(state): State<AppState>,
    PathId(id): PathId,
    context: SagaContext,
) -> Result<Response, ApiError> {
    let path = format!("/api/platzsuchen/{id}");
    let body = Value::Null;
    let operation = Operation {
        method: "DELETE",
        path: &path,
        body: &body,
    };

    idempotency::run(&state.db, &context, operation, |tx| {
        Box::pin(async move {
            if fetch_platzsuche(tx, id).await?.is_none() {
                return Err(ApiError::not_found("Platzsuche", id));
            }
            let linked: Vec<i64> = sqlx::query(
                "SELECT anfrage_id FROM anfrage_platzsuchen WHERE platzsuche_id = $1 \
                 ORDER BY anfrage_id",
            )
            .bind(id)
            .fetch_all(&mut **tx)
            .await?
            .iter()
            .map(|row| row.try_get("anfrage_id"))
            .collect::<Result<_, _>>()?;
            if !linked.is_empty() {
                return Err(ApiError::conflict(format!(
                    "Platzsuche {id} is still named by Therapeutenanfragen {linked:?}; remove it \
                     from them first"
                )));
            }

            sqlx::query("DELETE FROM platzsuche_ausschluesse WHERE platzsuche_id = $1")
                .bind(id)
                .execute(&mut **tx)
                .await?;
            sqlx::query("DELETE FROM platzsuchen WHERE id = $1")
                .bind(id)
                .execute(&mut **tx)
                .await?;
            Ok(Answer::ok(json!({ "platzsuche_id": id, "deleted": true })))
        })
    })
    .await
}

/// Excludes a therapist from a Platzsuche.
#[utoipa::path(
    post,
    path = "/api/platzsuchen/{id}/ausschluesse",
    params(("id" = i64, Path, description = "Platzsuche id")),
    request_body = CreateAusschluss,
    responses(
        (status = 201, description = "The exclusion with its platzsuche_id"),
        (status = 404, description = "Unknown Platzsuche", body = kit::error::Problem),
        (status = 409, description = "Therapist already excluded", body = kit::error::Problem),
    )
)]
pub async fn create_ausschluss(
    State(state): State<AppState>,
    PathId(id): PathId,
    context: SagaContext,
    Json(raw): Json<Value>,
) -> Result<Response, ApiError> {
    let input = parse_body::<CreateAusschluss>(&raw)?.check("")?;
    let path = format!("/api/platzsuchen/{id}/ausschluesse");
    let operation = Operation {
        method: "POST",
        path: &path,
        body: &raw,
    };

    idempotency::run(&state.db, &context, operation, |tx| {
        let input = input.clone();
        Box::pin(async move {
            if fetch_platzsuche(tx, id).await?.is_none() {
                return Err(ApiError::not_found("Platzsuche", id));
            }
            if !insert_ausschluss(tx, id, &input).await? {
                return Err(ApiError::conflict(format!(
                    "therapist {} is already excluded from Platzsuche {id}",
                    input.therapist_id
                )));
            }
            Ok(Answer::created(json!({
                "platzsuche_id": id,
                "therapist_id": input.therapist_id,
                "ausgeschlossen_von": input.ausgeschlossen_von,
                "grund": input.grund,
                "saga_id": null,
            })))
        })
    })
    .await
}

/// Lifts the exclusion of a therapist from a Platzsuche. Exclusions from a block (`sperre`)
/// are lifted only by the unblock-therapist saga, so they get 409 here.
#[utoipa::path(
    delete,
    path = "/api/platzsuchen/{id}/ausschluesse/{therapist_id}",
    params(
        ("id" = i64, Path, description = "Platzsuche id"),
        ("therapist_id" = i64, Path, description = "Excluded therapist"),
    ),
    responses(
        (
            status = 200,
            description = "Lifted: {\"platzsuche_id\", \"therapist_id\", \"deleted\": true}"
        ),
        (status = 404, description = "Unknown Platzsuche or exclusion", body = kit::error::Problem),
        (status = 409, description = "Exclusion from a block", body = kit::error::Problem),
    )
)]
pub async fn delete_ausschluss(
    State(state): State<AppState>,
    ids: Result<Path<(String, String)>, PathRejection>,
    context: SagaContext,
) -> Result<Response, ApiError> {
    let Path((raw_id, raw_therapist_id)) =
        ids.map_err(|_| ApiError::bad_request("id", "the path must contain two ids"))?;
    let id = parse_positive_id("id", &raw_id)?;
    let therapist_id = parse_positive_id("therapist_id", &raw_therapist_id)?;
    let path = format!("/api/platzsuchen/{id}/ausschluesse/{therapist_id}");
    let body = Value::Null;
    let operation = Operation {
        method: "DELETE",
        path: &path,
        body: &body,
    };

    idempotency::run(&state.db, &context, operation, |tx| {
        Box::pin(async move {
            let found = fetch_platzsuche(tx, id)
                .await?
                .ok_or_else(|| ApiError::not_found("Platzsuche", id))?;
            let ausschluss = found
                .ausschluesse
                .iter()
                .find(|entry| entry.therapist_id == therapist_id)
                .ok_or_else(|| ApiError::not_found("Ausschluss", format!("{id}/{therapist_id}")))?;
            if ausschluss.ausgeschlossen_von == AusgeschlossenVon::Sperre {
                return Err(ApiError::conflict(format!(
                    "therapist {therapist_id} is excluded from Platzsuche {id} because of a \
                     block; POST /api/v1/commands/unblock-therapist on the coordinator lifts it"
                )));
            }

            sqlx::query(
                "DELETE FROM platzsuche_ausschluesse WHERE platzsuche_id = $1 \
                 AND therapist_id = $2",
            )
            .bind(id)
            .bind(therapist_id)
            .execute(&mut **tx)
            .await?;
            Ok(Answer::ok(json!({
                "platzsuche_id": id,
                "therapist_id": therapist_id,
                "deleted": true,
            })))
        })
    })
    .await
}

/// Inserts a Platzsuche and its exclusions and returns its id.
async fn insert_platzsuche(
    conn: &mut AnyConnection,
    input: &NewPlatzsuche,
) -> Result<i64, ApiError> {
    let now = kit::clock::now_rfc3339();
    let id: i64 = sqlx::query(
        "INSERT INTO platzsuchen (patient_id, status, notizen, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $4) RETURNING id",
    )
    .bind(input.patient_id)
    .bind(input.status.as_str())
    .bind(input.notizen.clone())
    .bind(&now)
    .fetch_one(&mut *conn)
    .await?
    .try_get("id")?;

    for ausschluss in &input.ausschluesse {
        insert_ausschluss(conn, id, ausschluss).await?;
    }
    Ok(id)
}

/// Inserts an exclusion chosen by a patient or staff; returns false when the therapist is
/// excluded from the Platzsuche already.
async fn insert_ausschluss(
    conn: &mut AnyConnection,
    platzsuche_id: i64,
    input: &NewAusschluss,
) -> Result<bool, ApiError> {
    let inserted = sqlx::query(
        "INSERT INTO platzsuche_ausschluesse \
         (platzsuche_id, therapist_id, ausgeschlossen_von, grund, saga_id, created_at) \
         VALUES ($1, $2, $3, $4, NULL, $5) \
         ON CONFLICT (platzsuche_id, therapist_id) DO NOTHING RETURNING platzsuche_id",
    )
    .bind(platzsuche_id)
    .bind(input.therapist_id)
    .bind(input.ausgeschlossen_von.as_str())
    .bind(input.grund.clone())
    .bind(kit::clock::now_rfc3339())
    .fetch_optional(&mut *conn)
    .await?;

    Ok(inserted.is_some())
}

/// Reads one Platzsuche with its exclusions.
pub async fn fetch_platzsuche(
    conn: &mut AnyConnection,
    id: i64,
) -> Result<Option<Platzsuche>, ApiError> {
    let row = sqlx::query(
        "SELECT id, patient_id, status, notizen, created_at, updated_at \
         FROM platzsuchen WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };

    let mut items = vec![platzsuche_from_row(&row)?];
    attach_ausschluesse(conn, &mut items).await?;
    Ok(items.pop())
}

fn platzsuche_from_row(row: &sqlx::any::AnyRow) -> Result<Platzsuche, ApiError> {
    let status: String = row.try_get("status")?;
    Ok(Platzsuche {
        id: row.try_get("id")?,
        patient_id: row.try_get("patient_id")?,
        status: stored_enum(&SucheStatus::ALL, SucheStatus::as_str, "status", &status)?,
        notizen: row.try_get("notizen")?,
        ausschluesse: Vec::new(),
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Reads the exclusions of `items` in one query, each list ordered by therapist id.
async fn attach_ausschluesse(
    conn: &mut AnyConnection,
    items: &mut [Platzsuche],
) -> Result<(), ApiError> {
    if items.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "SELECT platzsuche_id, therapist_id, ausgeschlossen_von, grund, saga_id \
         FROM platzsuche_ausschluesse WHERE platzsuche_id IN ({}) \
         ORDER BY platzsuche_id, therapist_id",
        placeholders(1, items.len())
    );
    let mut statement = sqlx::query(&sql);
    for item in items.iter() {
        statement = statement.bind(item.id);
    }
    let rows = statement.fetch_all(&mut *conn).await?;

    let mut by_search: HashMap<i64, Vec<Ausschluss>> = HashMap::new();
    for row in &rows {
        let von: String = row.try_get("ausgeschlossen_von")?;
        by_search
            .entry(row.try_get("platzsuche_id")?)
            .or_default()
            .push(Ausschluss {
                therapist_id: row.try_get("therapist_id")?,
                ausgeschlossen_von: stored_enum(
                    &AusgeschlossenVon::ALL,
                    AusgeschlossenVon::as_str,
                    "ausgeschlossen_von",
                    &von,
                )?,
                grund: row.try_get("grund")?,
                saga_id: row.try_get("saga_id")?,
            });
    }
    for item in items.iter_mut() {
        item.ausschluesse = by_search.remove(&item.id).unwrap_or_default();
    }
    Ok(())
}

/// Returns `count` placeholders starting at `$first`, separated by commas.
pub fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|index| format!("${index}"))
        .collect::<Vec<_>>()
        .join(", ")
}
