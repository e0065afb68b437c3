//! The durable saga store: one row per saga and one per step, on PostgreSQL or SQLite.
//!
//! Every write of a running saga is fenced by its lease: it applies only while the writing
//! replica still holds the lease, so a replica that lost its lease cannot overwrite the
//! progress of the one that took over.

mod list;
mod records;

use kit::clock::now_rfc3339;
use kit::db::{is_unique_violation, Database, Dialect};
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::metrics;
use crate::saga::{CompensationStatus, SagaDefinition, SagaStatus, StepStatus};

pub use list::{SagaFilter, SagaPage};
pub use records::{SagaRecord, StepRecord};

/// Errors of the saga store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("saga store query failed: {0}")]
    Database(#[from] sqlx::Error),
    #[error("stored saga {saga_id} is invalid: {detail}")]
    Corrupt { saga_id: String, detail: String },
}

/// Errors of inserting a new saga.
#[derive(Debug, thiserror::Error)]
pub enum InsertSagaError {
    #[error("saga {holder_id} ({holder_type}) is already running on {entity_lock}")]
    EntityLocked {
        entity_lock: String,
        holder_id: String,
        holder_type: String,
    },
    #[error("a saga with this idempotency key or source event exists already")]
    DuplicateKey,
    /// The saga holding the entity's lock finished between the insert and the check, so
    /// the insert may be tried again.
    #[error("the entity's lock was released while the saga was inserted")]
    LockReleased,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Errors of a fenced write.
#[derive(Debug, thiserror::Error)]
pub enum SaveSagaError {
    #[error("this replica no longer holds the lease of saga {0}")]
    LeaseLost(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for SaveSagaError {
    fn from(error: sqlx::Error) -> Self {
        Self::Store(StoreError::Database(error))
    }
}

impl From<sqlx::Error> for InsertSagaError {
    fn from(error: sqlx::Error) -> Self {
        Self::Store(StoreError::Database(error))
    }
}

/// Returns the current time in unix milliseconds, the unit of leases and due times.
pub fn now_ms() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis(),
    )
    .unwrap_or(i64::MAX)
}

/// Access to the saga tables.
#[derive(Debug, Clone)]
pub struct SagaStore {
    db: Database,
}

const SAGA_COLUMNS: &str = "id, saga_type, status, phase, entity_type, entity_id, entity_lock, \
     payload, idempotency_key, dedupe_key, request_hash, current_step, failed_rounds, \
     outcome_reason, failure_kind, next_attempt_at, lease_owner, lease_expires_at, trace_id, \
     created_at, updated_at, finished_at";

const STEP_COLUMNS: &str = "saga_id, step_index, name, participant, status, attempts, \
     possibly_applied, started_at, finished_at, duration_ms, last_status_code, last_answer, \
     last_error, compensation_status, compensation_attempts, compensation_started_at, \
     compensation_finished_at, compensation_status_code, compensation_answer, \
     compensation_error";

impl SagaStore {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Inserts a new saga with its steps, the first step already marked started, in one
    /// transaction: the command's first durable commit.
    pub async fn insert(
        &self,
        saga: &SagaRecord,
        steps: &[StepRecord],
    ) -> Result<(), InsertSagaError> {
        let mut tx = self.db.pool.begin().await?;

        let inserted = insert_saga_row(&mut tx, saga).await;
        if let Err(error) = inserted {
            tx.rollback().await?;
            return Err(self.classify_insert_error(error, saga).await);
        }
        insert_step_rows(&mut tx, steps).await?;

        tx.commit().await?;
        metrics::store_commit("insert");
        Ok(())
    }

    /// Tells which unique constraint a failed insert hit: a saga with the same key (a
    /// concurrent repeat of the command) or the entity's lock (another saga).
    async fn classify_insert_error(
        &self,
        error: sqlx::Error,
        saga: &SagaRecord,
    ) -> InsertSagaError {
        if !is_unique_violation(&error) {
            return InsertSagaError::Store(error.into());
        }

        if saga.idempotency_key.is_some() || saga.dedupe_key.is_some() {
            let existing = self
                .find_by_key(saga.idempotency_key.as_deref(), saga.dedupe_key.as_deref())
                .await;
            match existing {
                Ok(Some(_)) => return InsertSagaError::DuplicateKey,
                Ok(None) => {}
                Err(error) => return InsertSagaError::Store(error),
            }
        }

        let Some(lock) = &saga.entity_lock else {
            return InsertSagaError::DuplicateKey;
        };
        let holder = sqlx::query("SELECT id, saga_type FROM sagas WHERE entity_lock = $1")
            .bind(lock)
            .fetch_optional(&self.db.pool)
            .await;

        match holder {
            Ok(Some(row)) => InsertSagaError::EntityLocked {
                entity_lock: lock.clone(),
                holder_id: row.try_get("id").unwrap_or_default(),
                holder_type: row.try_get("saga_type").unwrap_or_default(),
            },
            Ok(None) => InsertSagaError::LockReleased,
            Err(error) => InsertSagaError::Store(error.into()),
        }
    }

    /// Writes the saga row and the given steps from memory in one transaction, if
    /// `owner` still holds the saga's lease.
    pub async fn save(
        &self,
        saga: &SagaRecord,
        steps: &[&StepRecord],
        owner: &str,
        purpose: &'static str,
    ) -> Result<(), SaveSagaError> {
        let mut tx = self.db.pool.begin().await?;

        let updated = update_saga_row(&mut tx, saga, owner).await?;
        if updated == 0 {
            tx.rollback().await?;
            return Err(SaveSagaError::LeaseLost(saga.id.clone()));
        }
        for step in steps {
            update_step_row(&mut tx, step).await?;
        }

        tx.commit().await?;
        metrics::store_commit(purpose);
        Ok(())
    }

    /// Loads a saga and its steps.
    pub async fn load(
        &self,
        saga_id: &str,
    ) -> Result<Option<(SagaRecord, Vec<StepRecord>)>, StoreError> {
        let row = sqlx::query(&format!("SELECT {SAGA_COLUMNS} FROM sagas WHERE id = $1"))
            .bind(saga_id)
            .fetch_optional(&self.db.pool)
            .await?;

        let Some(row) = row else {
            return Ok(None);
        };

        let saga = SagaRecord::from_row(&row)?;
        let steps = self.load_steps(saga_id).await?;
        Ok(Some((saga, steps)))
    }

    async fn load_steps(&self, saga_id: &str) -> Result<Vec<StepRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {STEP_COLUMNS} FROM saga_steps WHERE saga_id = $1 ORDER BY step_index"
        ))
        .bind(saga_id)
        .fetch_all(&self.db.pool)
        .await?;
        rows.iter().map(StepRecord::from_row).collect()
    }

    /// Returns the id of the saga created with an idempotency key or for a source event.
    pub async fn find_by_key(
        &self,
        idempotency_key: Option<&str>,
        dedupe_key: Option<&str>,
    ) -> Result<Option<String>, StoreError> {
        let row = sqlx::query(
            "SELECT id FROM sagas WHERE idempotency_key = $1 OR dedupe_key = $2 \
             ORDER BY id LIMIT 1",
        )
        .bind(idempotency_key)
        .bind(dedupe_key)
        .fetch_optional(&self.db.pool)
        .await?;

        Ok(row.map(|row| row.try_get("id")).transpose()?)
    }

    /// Takes the lease of up to `limit` unfinished sagas that are due and whose lease is
    /// free or expired.
    pub async fn claim_due(
        &self,
        owner: &str,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<ClaimedSaga>, StoreError> {
        let now = now_ms();
        let lock_clause = match self.db.dialect {
            Dialect::Postgres => "FOR UPDATE SKIP LOCKED",
            Dialect::Sqlite => "",
        };
        let mut tx = self.db.pool.begin().await?;

        let rows = sqlx::query(&format!(
            "SELECT id, lease_owner FROM sagas
             WHERE status IN ('running', 'compensating', 'needs_attention')
               AND next_attempt_at IS NOT NULL AND next_attempt_at <= $1
               AND (lease_owner IS NULL OR lease_expires_at < $1)
             ORDER BY next_attempt_at
             LIMIT $2
             {lock_clause}"
        ))
        .bind(now)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;

        let mut claimed = Vec::with_capacity(rows.len());
        for row in rows {
            let id: String = row.try_get("id")?;
            let holder: Option<String> = row.try_get("lease_owner")?;
            take_lease(&mut tx, &id, owner, now + lease_ms).await?;
            claimed.push(ClaimedSaga {
                id,
                from_expired_lease: holder.is_some(),
            });
        }

        tx.commit().await?;
        if !claimed.is_empty() {
            metrics::store_commit("claim");
        }
        Ok(claimed)
    }

    /// Takes the lease of one unfinished saga if it is free or expired.
    pub async fn claim(
        &self,
        saga_id: &str,
        owner: &str,
        lease_ms: i64,
    ) -> Result<Option<ClaimedSaga>, StoreError> {
        let now = now_ms();
        let lock_clause = match self.db.dialect {
            Dialect::Postgres => "FOR UPDATE",
            Dialect::Sqlite => "",
        };
        let mut tx = self.db.pool.begin().await?;

        let row = sqlx::query(&format!(
            "SELECT lease_owner FROM sagas
             WHERE id = $1 AND status IN ('running', 'compensating', 'needs_attention')
               AND (lease_owner IS NULL OR lease_expires_at < $2)
             {lock_clause}"
        ))
        .bind(saga_id)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(None);
        };
        let holder: Option<String> = row.try_get("lease_owner")?;
        take_lease(&mut tx, saga_id, owner, now + lease_ms).await?;

        tx.commit().await?;
        Ok(Some(ClaimedSaga {
            id: saga_id.to_owned(),
            from_expired_lease: holder.is_some(),
        }))
    }

    /// Extends the leases `owner` holds on the given sagas.
    pub async fn renew_leases(
        &self,
        owner: &str,
        saga_ids: &[String],
        lease_ms: i64,
    ) -> Result<(), StoreError> {
        let until = now_ms() + lease_ms;

        for chunk in saga_ids.chunks(200) {
            let placeholders: Vec<String> =
                (0..chunk.len()).map(|i| format!("${}", i + 3)).collect();
            let sql = format!(
                "UPDATE sagas SET lease_expires_at = $1 WHERE lease_owner = $2 AND id IN ({})",
                placeholders.join(", ")
            );
            let mut query = sqlx::query(&sql).bind(until).bind(owner);
            for id in chunk {
                query = query.bind(id);
            }
            query.execute(&self.db.pool).await?;
        }

        Ok(())
    }

    /// Expires the leases an earlier process with the same replica id left behind, so that
    /// this process resumes those sagas at once.
    pub async fn expire_own_leases(&self, owner: &str) -> Result<u64, StoreError> {
        let result = sqlx::query(
            "UPDATE sagas SET lease_expires_at = 0 WHERE lease_owner = $1 \
             AND status IN ('running', 'compensating', 'needs_attention')",
        )
        .bind(owner)
        .execute(&self.db.pool)
        .await?;
        Ok(result.rows_affected())
    }

    /// Makes a saga due now, also a parked one, and resets its spent rounds. Returns false
    /// when the saga does not exist or is finished.
    pub async fn make_due_now(&self, saga_id: &str) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE sagas SET next_attempt_at = $1, failed_rounds = 0, updated_at = $2 \
             WHERE id = $3 AND status IN ('running', 'compensating', 'needs_attention')",
        )
        .bind(now_ms())
        .bind(now_rfc3339())
        .bind(saga_id)
        .execute(&self.db.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Counts unfinished sagas by status.
    pub async fn count_unfinished(&self) -> Result<Vec<(SagaStatus, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT status, COUNT(*) AS n FROM sagas \
             WHERE status IN ('running', 'compensating', 'needs_attention') GROUP BY status",
        )
        .fetch_all(&self.db.pool)
        .await?;

        let mut counts = Vec::new();
        for row in rows {
            let status: String = row.try_get("status")?;
            let count: i64 = row.try_get("n")?;
            if let Some(status) = SagaStatus::parse(&status) {
                counts.push((status, count));
            }
        }

        Ok(counts)
    }

    /// Returns one page of sagas, newest first.
    pub async fn list(&self, filter: &SagaFilter) -> Result<SagaPage, StoreError> {
        list::list(&self.db, filter).await
    }
}

/// A saga whose lease this replica just took.
#[derive(Debug, Clone)]
pub struct ClaimedSaga {
    pub id: String,
    /// Whether another holder's lease had expired on it. That holder may have died during
    /// a participant call, so the current step may have been applied.
    pub from_expired_lease: bool,
}

async fn take_lease(
    tx: &mut Transaction<'static, Any>,
    saga_id: &str,
    owner: &str,
    until: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE sagas SET lease_owner = $1, lease_expires_at = $2 WHERE id = $3")
        .bind(owner)
        .bind(until)
        .bind(saga_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Builds the step rows of a new saga: the first step started, the rest pending.
pub fn initial_steps(saga_id: &str, definition: &SagaDefinition, now: &str) -> Vec<StepRecord> {
    definition
        .steps
        .iter()
        .enumerate()
        .map(|(index, step)| StepRecord {
            saga_id: saga_id.to_owned(),
            index,
            name: step.name.to_owned(),
            participant: step.participant.as_str().to_owned(),
            status: if index == 0 {
                StepStatus::Started
            } else {
                StepStatus::Pending
            },
            attempts: 0,
            possibly_applied: false,
            started_at: (index == 0).then(|| now.to_owned()),
            finished_at: None,
            duration_ms: None,
            last_status_code: None,
            last_answer: None,
            last_error: None,
            compensation_status: if step.compensation.is_some() {
                CompensationStatus::NotNeeded
            } else {
                CompensationStatus::None
            },
            compensation_attempts: 0,
            compensation_started_at: None,
            compensation_finished_at: None,
            compensation_status_code: None,
            compensation_answer: None,
            compensation_error: None,
        })
        .collect()
}

async fn insert_saga_row(
    tx: &mut Transaction<'static, Any>,
    saga: &SagaRecord,
) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "INSERT INTO sagas ({SAGA_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
         $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)"
    ))
    .bind(&saga.id)
    .bind(saga.saga_type.as_str())
    .bind(saga.status.as_str())
    .bind(saga.phase.as_str())
    .bind(saga.entity.as_str())
    .bind(saga.entity_id)
    .bind(saga.entity_lock.clone())
    .bind(saga.payload.to_string())
    .bind(saga.idempotency_key.clone())
    .bind(saga.dedupe_key.clone())
    .bind(&saga.request_hash)
    .bind(saga.current_step as i64)
    .bind(i64::from(saga.failed_rounds))
    .bind(saga.outcome_reason.clone())
    .bind(saga.failure_kind.clone())
    .bind(saga.next_attempt_at)
    .bind(saga.lease_owner.clone())
    .bind(saga.lease_expires_at)
    .bind(&saga.trace_id)
    .bind(&saga.created_at)
    .bind(&saga.updated_at)
    .bind(saga.finished_at.clone())
    .execute(&mut **tx)
    .await?;

    Ok(())
}

async fn update_saga_row(
    tx: &mut Transaction<'static, Any>,
    saga: &SagaRecord,
    owner: &str,
) -> Result<u64, sqlx::Error> {
    let result = sqlx::query(
        "UPDATE sagas SET status = $1, phase = $2, entity_lock = $3, current_step = $4,
             failed_rounds = $5, outcome_reason = $6, failure_kind = $7, next_attempt_at = $8,
             lease_owner = $9, lease_expires_at = $10, updated_at = $11, finished_at = $12,
             idempotency_key = $13
         WHERE id = $14 AND lease_owner = $15",
    )
    .bind(saga.status.as_str())
    .bind(saga.phase.as_str())
    .bind(saga.entity_lock.clone())
    .bind(saga.current_step as i64)
    .bind(i64::from(saga.failed_rounds))
    .bind(saga.outcome_reason.clone())
    .bind(saga.failure_kind.clone())
    .bind(saga.next_attempt_at)
    .bind(saga.lease_owner.clone())
    .bind(saga.lease_expires_at)
    .bind(&saga.updated_at)
    .bind(saga.finished_at.clone())
    .bind(saga.idempotency_key.clone())
    .bind(&saga.id)
    .bind(owner)
    .execute(&mut **tx)
    .await?;

    Ok(result.rows_affected())
}

/// Inserts all steps of a new saga in one statement, to save round trips.
async fn insert_step_rows(
    tx: &mut Transaction<'static, Any>,
    steps: &[StepRecord],
) -> Result<(), sqlx::Error> {
    const COLUMNS: usize = 20;
    let rows: Vec<String> = (0..steps.len())
        .map(|row| {
            let placeholders: Vec<String> = (1..=COLUMNS)
                .map(|column| format!("${}", row * COLUMNS + column))
                .collect();
            format!("({})", placeholders.join(", "))
        })
        .collect();
    let sql = format!(
        "INSERT INTO saga_steps ({STEP_COLUMNS}) VALUES {}",
        rows.join(", ")
    );

    let mut query = sqlx::query(&sql);
    for step in steps {
        query = query
            .bind(&step.saga_id)
            .bind(step.index as i64)
            .bind(&step.name)
            .bind(&step.participant)
            .bind(step.status.as_str())
            .bind(i64::from(step.attempts))
            .bind(i64::from(step.possibly_applied))
            .bind(step.started_at.clone())
            .bind(step.finished_at.clone())
            .bind(step.duration_ms)
            .bind(step.last_status_code)
            .bind(step.last_answer.as_ref().map(Value::to_string))
            .bind(step.last_error.clone())
            .bind(step.compensation_status.as_str())
            .bind(i64::from(step.compensation_attempts))
            .bind(step.compensation_started_at.clone())
            .bind(step.compensation_finished_at.clone())
            .bind(step.compensation_status_code)
            .bind(step.compensation_answer.as_ref().map(Value::to_string))
            .bind(step.compensation_error.clone());
    }
    query.execute(&mut **tx).await?;
    Ok(())
}

async fn update_step_row(
    tx: &mut Transaction<'static, Any>,
    step: &StepRecord,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE saga_steps SET status = $1, attempts = $2, possibly_applied = $3,
             started_at = $4, finished_at = $5, duration_ms = $6, last_status_code = $7,
             last_answer = $8, last_error = $9, compensation_status = $10,
             compensation_attempts = $11, compensation_started_at = $12,
             compensation_finished_at = $13, compensation_status_code = $14,
             compensation_answer = $15, compensation_error = $16
         WHERE saga_id = $17 AND step_index = $18",
    )
    .bind(step.status.as_str())
    .bind(i64::from(step.attempts))
    .bind(i64::from(step.possibly_applied))
    .bind(step.started_at.clone())
    .bind(step.finished_at.clone())
    .bind(step.duration_ms)
    .bind(step.last_status_code)
    .bind(step.last_answer.as_ref().map(Value::to_string))
    .bind(step.last_error.clone())
    .bind(step.compensation_status.as_str())
    .bind(i64::from(step.compensation_attempts))
    .bind(step.compensation_started_at.clone())
    .bind(step.compensation_finished_at.clone())
    .bind(step.compensation_status_code)
    .bind(step.compensation_answer.as_ref().map(Value::to_string))
    .bind(step.compensation_error.clone())
    .bind(&step.saga_id)
    .bind(step.index as i64)
    .execute(&mut **tx)
    .await?;

    Ok(())
}

/// Reads an optional JSON text column.
fn json_column(row: &AnyRow, column: &str) -> Result<Option<Value>, sqlx::Error> {
    let text: Option<String> = row.try_get(column)?;
    Ok(text.map(|text| serde_json::from_str(&text).unwrap_or(Value::String(text))))
}
