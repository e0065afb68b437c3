//! A saga and its steps as the engine keeps them in memory and the store persists them.

use serde::Serialize;
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::{json_column, StoreError};
use crate::saga::{CompensationStatus, EntityKind, Phase, SagaStatus, SagaType, StepStatus};

/// One saga row.
#[derive(Debug, Clone, Serialize)]
pub struct SagaRecord {
    pub id: String,
    pub saga_type: SagaType,
    pub status: SagaStatus,
    pub phase: Phase,
    pub entity: EntityKind,
    pub entity_id: i64,
    /// `patient:12` or `therapist:5` while the saga holds the entity's lock.
    pub entity_lock: Option<String>,
    /// The command's ids and values; no personal data.
    pub payload: Value,
    #[serde(skip)]
    pub idempotency_key: Option<String>,
    #[serde(skip)]
    pub dedupe_key: Option<String>,
    #[serde(skip)]
    pub request_hash: String,
    /// The step running forward, or being compensated.
    pub current_step: usize,
    /// Rounds of the current step whose retries were spent.
    pub failed_rounds: u32,
    pub outcome_reason: Option<String>,
    /// `unavailable`, `refused` or `contract_violation` when the saga did not complete.
    pub failure_kind: Option<String>,
    /// When the saga is due again, in unix milliseconds; empty when parked for an operator.
    pub next_attempt_at: Option<i64>,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<i64>,
    pub trace_id: String,
    pub created_at: String,
    pub updated_at: String,
    pub finished_at: Option<String>,
}

/// One step row: the forward call and its compensation.
#[derive(Debug, Clone, Serialize)]
pub struct StepRecord {
    #[serde(skip)]
    pub saga_id: String,
    pub index: usize,
    pub name: String,
    pub participant: String,
    pub status: StepStatus,
    pub attempts: u32,
    /// Whether an attempt may have reached the participant.
    pub possibly_applied: bool,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub duration_ms: Option<i64>,
    pub last_status_code: Option<i64>,
    /// The participant's last response, reduced to ids and statuses.
    pub last_answer: Option<Value>,
    pub last_error: Option<String>,
    pub compensation_status: CompensationStatus,
    pub compensation_attempts: u32,
    pub compensation_started_at: Option<String>,
    pub compensation_finished_at: Option<String>,
    pub compensation_status_code: Option<i64>,
    pub compensation_answer: Option<Value>,
    pub compensation_error: Option<String>,
}

fn corrupt(saga_id: &str, detail: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        saga_id: saga_id.to_owned(),
        detail: detail.into(),
    }
}

fn to_u32(value: i64) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

impl SagaRecord {
    pub(super) fn from_row(row: &AnyRow) -> Result<Self, StoreError> {
        let id: String = row.try_get("id")?;
        let saga_type: String = row.try_get("saga_type")?;
        let status: String = row.try_get("status")?;
        let phase: String = row.try_get("phase")?;
        let entity: String = row.try_get("entity_type")?;
        let payload: String = row.try_get("payload")?;
        let current_step: i64 = row.try_get("current_step")?;

        Ok(Self {
            saga_type: SagaType::parse(&saga_type)
                .ok_or_else(|| corrupt(&id, format!("unknown saga type {saga_type:?}")))?,
            status: SagaStatus::parse(&status)
                .ok_or_else(|| corrupt(&id, format!("unknown status {status:?}")))?,
            phase: Phase::parse(&phase)
                .ok_or_else(|| corrupt(&id, format!("unknown phase {phase:?}")))?,
            entity: EntityKind::parse(&entity)
                .ok_or_else(|| corrupt(&id, format!("unknown entity {entity:?}")))?,
            entity_id: row.try_get("entity_id")?,
            entity_lock: row.try_get("entity_lock")?,
            payload: serde_json::from_str(&payload)
                .map_err(|error| corrupt(&id, format!("payload is not JSON: {error}")))?,
            idempotency_key: row.try_get("idempotency_key")?,
            dedupe_key: row.try_get("dedupe_key")?,
            request_hash: row.try_get("request_hash")?,
            current_step: usize::try_from(current_step).unwrap_or(0),
            failed_rounds: to_u32(row.try_get("failed_rounds")?),
            outcome_reason: row.try_get("outcome_reason")?,
            failure_kind: row.try_get("failure_kind")?,
            next_attempt_at: row.try_get("next_attempt_at")?,
            lease_owner: row.try_get("lease_owner")?,
            lease_expires_at: row.try_get("lease_expires_at")?,
            trace_id: row.try_get("trace_id")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            finished_at: row.try_get("finished_at")?,
            id,
        })
    }
}

impl StepRecord {
    pub(super) fn from_row(row: &AnyRow) -> Result<Self, StoreError> {
        let saga_id: String = row.try_get("saga_id")?;
        let index: i64 = row.try_get("step_index")?;
        let status: String = row.try_get("status")?;
        let compensation_status: String = row.try_get("compensation_status")?;
        let possibly_applied: i64 = row.try_get("possibly_applied")?;

        Ok(Self {
            index: usize::try_from(index).unwrap_or(0),
            name: row.try_get("name")?,
            participant: row.try_get("participant")?,
            status: StepStatus::parse(&status)
                .ok_or_else(|| corrupt(&saga_id, format!("unknown step status {status:?}")))?,
            attempts: to_u32(row.try_get("attempts")?),
            possibly_applied: possibly_applied != 0,
            started_at: row.try_get("started_at")?,
            finished_at: row.try_get("finished_at")?,
            duration_ms: row.try_get("duration_ms")?,
            last_status_code: row.try_get("last_status_code")?,
            last_answer: json_column(row, "last_answer")?,
            last_error: row.try_get("last_error")?,
            compensation_status: CompensationStatus::parse(&compensation_status).ok_or_else(
                || {
                    corrupt(
                        &saga_id,
                        format!("unknown compensation {compensation_status:?}"),
                    )
                },
            )?,
            compensation_attempts: to_u32(row.try_get("compensation_attempts")?),
            compensation_started_at: row.try_get("compensation_started_at")?,
            compensation_finished_at: row.try_get("compensation_finished_at")?,
            compensation_status_code: row.try_get("compensation_status_code")?,
            compensation_answer: json_column(row, "compensation_answer")?,
            compensation_error: row.try_get("compensation_error")?,
            saga_id,
        })
    }
}
