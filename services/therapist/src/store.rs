//! SQL of the therapists table. Every function takes the connection of the caller's
//! transaction, because SQLite runs with a single pooled connection.

use kit::db::Dialect;
use sqlx::AnyConnection;

use crate::therapists::{Therapist, TherapistFields, TherapistStatus};

/// Columns of a `Therapist`, in the order of its fields.
macro_rules! therapist_columns {
    () => {
        "id, anrede, titel, vorname, nachname, email, telefon, strasse, plz, ort, status, \
         sperrgrund, gesperrt_seit, created_at, updated_at"
    };
}

/// Inserts a therapist and returns it with its id.
pub async fn insert(
    conn: &mut AnyConnection,
    fields: &TherapistFields,
    now: &str,
) -> Result<Therapist, sqlx::Error> {
    sqlx::query_as(concat!(
        "INSERT INTO therapists (anrede, titel, vorname, nachname, email, telefon, strasse, \
         plz, ort, status, sperrgrund, gesperrt_seit, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13) \
         RETURNING ",
        therapist_columns!()
    ))
    .bind(fields.anrede.clone())
    .bind(fields.titel.clone())
    .bind(fields.vorname.clone())
    .bind(fields.nachname.clone())
    .bind(fields.email.clone())
    .bind(fields.telefon.clone())
    .bind(fields.strasse.clone())
    .bind(fields.plz.clone())
    .bind(fields.ort.clone())
    .bind(fields.status.as_str())
    .bind(fields.sperrgrund.clone())
    .bind(fields.gesperrt_seit.clone())
    .bind(now)
    .fetch_one(conn)
    .await
}

/// Returns the therapist with `id`, if any.
pub async fn find(conn: &mut AnyConnection, id: i64) -> Result<Option<Therapist>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        therapist_columns!(),
        " FROM therapists WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Returns the therapist with `id` and locks its row until the transaction ends. SQLite has
/// no row locks, but its single connection serialises every transaction anyway.
pub async fn find_for_update(
    conn: &mut AnyConnection,
    dialect: Dialect,
    id: i64,
) -> Result<Option<Therapist>, sqlx::Error> {
    let sql = match dialect {
        Dialect::Postgres => concat!(
            "SELECT ",
            therapist_columns!(),
            " FROM therapists WHERE id = $1 FOR UPDATE"
        ),
        Dialect::Sqlite => concat!(
            "SELECT ",
            therapist_columns!(),
            " FROM therapists WHERE id = $1"
        ),
    };

    sqlx::query_as(sql).bind(id).fetch_optional(conn).await
}

/// Returns up to `limit` therapists with an id greater than `after`, in id order.
pub async fn list(
    conn: &mut AnyConnection,
    status: Option<TherapistStatus>,
    after: i64,
    limit: i64,
) -> Result<Vec<Therapist>, sqlx::Error> {
    match status {
        Some(status) => {
            sqlx::query_as(concat!(
                "SELECT ",
                therapist_columns!(),
                " FROM therapists WHERE status = $1 AND id > $2 ORDER BY id LIMIT $3"
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
                therapist_columns!(),
                " FROM therapists WHERE id > $1 ORDER BY id LIMIT $2"
            ))
            .bind(after)
            .bind(limit)
            .fetch_all(conn)
            .await
        }
    }
}

/// Writes all writable fields of therapist `id` and returns the stored therapist.
pub async fn update(
    conn: &mut AnyConnection,
    id: i64,
    fields: &TherapistFields,
    now: &str,
) -> Result<Option<Therapist>, sqlx::Error> {
    sqlx::query_as(concat!(
        "UPDATE therapists SET anrede = $2, titel = $3, vorname = $4, nachname = $5, \
         email = $6, telefon = $7, strasse = $8, plz = $9, ort = $10, status = $11, \
         sperrgrund = $12, gesperrt_seit = $13, updated_at = $14 WHERE id = $1 RETURNING ",
        therapist_columns!()
    ))
    .bind(id)
    .bind(fields.anrede.clone())
    .bind(fields.titel.clone())
    .bind(fields.vorname.clone())
    .bind(fields.nachname.clone())
    .bind(fields.email.clone())
    .bind(fields.telefon.clone())
    .bind(fields.strasse.clone())
    .bind(fields.plz.clone())
    .bind(fields.ort.clone())
    .bind(fields.status.as_str())
    .bind(fields.sperrgrund.clone())
    .bind(fields.gesperrt_seit.clone())
    .bind(now)
    .fetch_optional(conn)
    .await
}

/// Deletes therapist `id` and returns whether it existed.
pub async fn delete(conn: &mut AnyConnection, id: i64) -> Result<bool, sqlx::Error> {
    let result = sqlx::query("DELETE FROM therapists WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(result.rows_affected() > 0)
}
