//! The cascade endpoints the saga coordinator calls, and their compensations.
//!
//! Each call runs in one database transaction through `kit::idempotency::run`, so a repeat
//! with the same `Idempotency-Key` returns the stored response and a failure midway changes
//! nothing. Every changed row is logged in `cascade_changes` under the call's key, and the
//! compensation restores from that log.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::State;
use axum::response::Response;
use kit::db::Dialect;
use kit::extract::{Json, SagaContext};
use kit::idempotency::{self, Answer, Operation, REPLAYED_HEADER};
use kit::ApiError;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::AnyConnection;
use utoipa::ToSchema;

use crate::model::{check_positive_id, check_text, parse_body, MAX_REASON_CHARS};
use crate::telemetry::{CASCADE_DURATION, CASCADE_OPERATIONS};
use crate::AppState;

mod changes;
mod compensate;
mod forward;

use changes::{ChangeLog, EntityKind};

/// Note appended to cancelled Platzsuchen when the patient-deleted call names no reason.
pub const DEFAULT_PATIENT_DELETED_REASON: &str = "Patient gelöscht";

/// Longest `forward_idempotency_key` accepted, as long as kit accepts in the header.
const MAX_KEY_CHARS: usize = 200;

/// The three cascades.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cascade {
    PatientDeleted,
    TherapistBlocked,
    TherapistUnblocked,
}

impl Cascade {
    /// Returns the name stored in `cascade_changes` and used as the metrics label.
    pub fn name(self) -> &'static str {
        match self {
            Self::PatientDeleted => "patient_deleted",
            Self::TherapistBlocked => "therapist_blocked",
            Self::TherapistUnblocked => "therapist_unblocked",
        }
    }

    /// Returns the metrics label of the compensation.
    pub fn compensate_name(self) -> &'static str {
        match self {
            Self::PatientDeleted => "patient_deleted_compensate",
            Self::TherapistBlocked => "therapist_blocked_compensate",
            Self::TherapistUnblocked => "therapist_unblocked_compensate",
        }
    }

    /// Returns the path of the forward call.
    pub fn path(self) -> &'static str {
        match self {
            Self::PatientDeleted => "/api/matching/cascade/patient-deleted",
            Self::TherapistBlocked => "/api/matching/cascade/therapist-blocked",
            Self::TherapistUnblocked => "/api/matching/cascade/therapist-unblocked",
        }
    }

    fn compensate_path(self) -> &'static str {
        match self {
            Self::PatientDeleted => "/api/matching/cascade/patient-deleted/compensate",
            Self::TherapistBlocked => "/api/matching/cascade/therapist-blocked/compensate",
            Self::TherapistUnblocked => "/api/matching/cascade/therapist-unblocked/compensate",
        }
    }
}

/// Body of `POST /api/matching/cascade/patient-deleted`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct PatientDeletedRequest {
    pub patient_id: i64,
    /// Note appended to cancelled Platzsuchen and inquiries; "Patient gelöscht" when absent,
    /// null or blank.
    pub reason: Option<String>,
}

/// Body of `POST /api/matching/cascade/therapist-blocked`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct TherapistBlockedRequest {
    pub therapist_id: i64,
    /// Reason for the block, appended to cancelled inquiries and stored as `grund`
    /// of the exclusions. Must not be blank.
    pub reason: String,
}

/// Body of `POST /api/matching/cascade/therapist-unblocked`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct TherapistUnblockedRequest {
    pub therapist_id: i64,
}

/// Body of every compensation endpoint.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct CompensateRequest {
    /// The `Idempotency-Key` of the forward call to undo.
    pub forward_idempotency_key: String,
}

/// One exclusion, by its Platzsuche and therapist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
pub struct AusschlussKey {
    pub platzsuche_id: i64,
    pub therapist_id: i64,
}

/// Rows a cascade changed, or rows its compensation restored. All five arrays are always
/// present.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CascadeChanges {
    pub platzsuchen_abgebrochen: Vec<i64>,
    pub anfragen_storniert: Vec<i64>,
    pub anfragen_geaendert: Vec<i64>,
    pub ausschluesse_hinzugefuegt: Vec<AusschlussKey>,
    pub ausschluesse_aufgehoben: Vec<AusschlussKey>,
}

impl CascadeChanges {
    fn sort(&mut self) {
        self.platzsuchen_abgebrochen.sort_unstable();
        self.anfragen_storniert.sort_unstable();
        self.anfragen_geaendert.sort_unstable();
        self.ausschluesse_hinzugefuegt.sort_unstable();
        self.ausschluesse_aufgehoben.sort_unstable();
    }

    fn counts(&self) -> [usize; 5] {
        [
            self.platzsuchen_abgebrochen.len(),
            self.anfragen_storniert.len(),
            self.anfragen_geaendert.len(),
            self.ausschluesse_hinzugefuegt.len(),
            self.ausschluesse_aufgehoben.len(),
        ]
    }
}

/// State of the forward call in the idempotency store when its compensation arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ForwardCallState {
    /// The forward call's changes were restored now.
    Undone,
    /// The forward call never arrived; it is cancelled and will get 409.
    NeverArrived,
    /// The forward call was rejected (4xx) or changed nothing.
    NothingToUndo,
    /// Another compensation restored the forward call's changes before.
    AlreadyUndone,
}

impl ForwardCallState {
    fn as_str(self) -> &'static str {
        match self {
            Self::Undone => "undone",
            Self::NeverArrived => "never_arrived",
            Self::NothingToUndo => "nothing_to_undo",
            Self::AlreadyUndone => "already_undone",
        }
    }
}

/// A field or row that compensation left as it is, because it changed since the cascade
/// or no longer exists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Skipped {
    /// `platzsuche`, `therapeutenanfrage` or `ausschluss`.
    pub entity: String,
    /// Id of the Platzsuche or Therapeutenanfrage.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    /// Platzsuche of the exclusion.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platzsuche_id: Option<i64>,
    /// Therapist of the exclusion.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub therapist_id: Option<i64>,
    /// The field left as it is; absent when the whole row was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub reason: String,
}

impl Skipped {
    fn field(entity: EntityKind, id: i64, field: Option<&str>, reason: String) -> Self {
        Self {
            entity: entity.as_str().to_owned(),
            id: Some(id),
            platzsuche_id: None,
            therapist_id: None,
            field: field.map(str::to_owned),
            reason,
        }
    }

    fn ausschluss(row: &changes::AusschlussRow, reason: String) -> Self {
        Self {
            entity: EntityKind::Ausschluss.as_str().to_owned(),
            id: None,
            platzsuche_id: Some(row.platzsuche_id),
            therapist_id: Some(row.therapist_id),
            field: None,
            reason,
        }
    }
}

/// Response body of a compensation endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CompensationAnswer {
    pub forward_call: ForwardCallState,
    pub restored: CascadeChanges,
    pub skipped: Vec<Skipped>,
}

impl CompensationAnswer {
    fn new(forward_call: ForwardCallState) -> Self {
        Self {
            forward_call,
            restored: CascadeChanges::default(),
            skipped: Vec::new(),
        }
    }
}

/// A checked forward cascade call.
#[derive(Debug, Clone)]
enum ForwardCommand {
    PatientDeleted { patient_id: i64, reason: String },
    TherapistBlocked { therapist_id: i64, reason: String },
    TherapistUnblocked { therapist_id: i64 },
}

impl ForwardCommand {
    /// Parses and checks the body of a forward call to `cascade`.
    fn parse(cascade: Cascade, raw: &Value) -> Result<Self, ApiError> {
        match cascade {
            Cascade::PatientDeleted => {
                let request = parse_body::<PatientDeletedRequest>(raw)?;
                let patient_id = check_positive_id("patient_id", request.patient_id)?;
                let reason = check_text("reason", request.reason, MAX_REASON_CHARS)?
                    .filter(|reason| !reason.trim().is_empty())
                    .unwrap_or_else(|| DEFAULT_PATIENT_DELETED_REASON.to_owned());
                Ok(Self::PatientDeleted { patient_id, reason })
            }
            Cascade::TherapistBlocked => {
                let request = parse_body::<TherapistBlockedRequest>(raw)?;
                let therapist_id = check_positive_id("therapist_id", request.therapist_id)?;
                let reason = check_text("reason", Some(request.reason), MAX_REASON_CHARS)?
                    .filter(|reason| !reason.trim().is_empty())
                    .ok_or_else(|| {
                        ApiError::unprocessable(
                            "reason",
                            "reason must say why the therapist is blocked",
                        )
                    })?;
                Ok(Self::TherapistBlocked {
                    therapist_id,
                    reason,
                })
            }
            Cascade::TherapistUnblocked => {
                let request = parse_body::<TherapistUnblockedRequest>(raw)?;
                let therapist_id = check_positive_id("therapist_id", request.therapist_id)?;
                Ok(Self::TherapistUnblocked { therapist_id })
            }
        }
    }

    async fn apply(
        &self,
        conn: &mut AnyConnection,
        dialect: Dialect,
        log: &ChangeLog,
    ) -> Result<CascadeChanges, ApiError> {
        match self {
            Self::PatientDeleted { patient_id, reason } => {
                forward::patient_deleted(conn, dialect, log, *patient_id, reason).await
            }
            Self::TherapistBlocked {
                therapist_id,
                reason,
            } => forward::therapist_blocked(conn, dialect, log, *therapist_id, reason).await,
            Self::TherapistUnblocked { therapist_id } => {
                forward::therapist_unblocked(conn, dialect, log, *therapist_id).await
            }
        }
    }
}

/// Cancels the patient's `aktiv` Platzsuchen and takes the patient out of unsent inquiries.
#[utoipa::path(
    post,
    path = "/api/matching/cascade/patient-deleted",
    request_body = PatientDeletedRequest,
    params((
        "Idempotency-Key" = String,
        Header,
        description = "Required: {saga_id}:{step}:forward"
    )),
    responses(
        (status = 200, description = "What the cascade changed", body = CascadeChanges),
        (status = 400, description = "Invalid body or missing key", body = kit::error::Problem),
        (status = 409, description = "Compensated before it arrived", body = kit::error::Problem),
        (status = 422, description = "Key used for another request", body = kit::error::Problem),
    )
)]
pub async fn patient_deleted(
    State(state): State<AppState>,
    context: SagaContext,
    Json(raw): Json<Value>,
) -> Result<Response, ApiError> {
    run_forward(&state, &context, Cascade::PatientDeleted, raw).await
}

/// Cancels the therapist's unsent inquiries and excludes the therapist from the running
/// Platzsuchen of the patients concerned.
#[utoipa::path(
    post,
    path = "/api/matching/cascade/therapist-blocked",
    request_body = TherapistBlockedRequest,
    params((
        "Idempotency-Key" = String,
        Header,
        description = "Required: {saga_id}:{step}:forward"
    )),
    responses(
        (status = 200, description = "What the cascade changed", body = CascadeChanges),
        (status = 400, description = "Invalid body or missing key", body = kit::error::Problem),
        (status = 409, description = "Compensated before it arrived", body = kit::error::Problem),
        (
            status = 422,
            description = "Blank reason, or key used for another request",
            body = kit::error::Problem
        ),
    )
)]
pub async fn therapist_blocked(
    State(state): State<AppState>,
    context: SagaContext,
    Json(raw): Json<Value>,
) -> Result<Response, ApiError> {
    run_forward(&state, &context, Cascade::TherapistBlocked, raw).await
}

/// Lifts the exclusions that blocks of the therapist added.
#[utoipa::path(
    post,
    path = "/api/matching/cascade/therapist-unblocked",
    request_body = TherapistUnblockedRequest,
    params((
        "Idempotency-Key" = String,
        Header,
        description = "Required: {saga_id}:{step}:forward"
    )),
    responses(
        (status = 200, description = "What the cascade changed", body = CascadeChanges),
        (status = 400, description = "Invalid body or missing key", body = kit::error::Problem),
        (status = 409, description = "Compensated before it arrived", body = kit::error::Problem),
        (status = 422, description = "Key used for another request", body = kit::error::Problem),
    )
)]
pub async fn therapist_unblocked(
    State(state): State<AppState>,
    context: SagaContext,
    Json(raw): Json<Value>,
) -> Result<Response, ApiError> {
    run_forward(&state, &context, Cascade::TherapistUnblocked, raw).await
}

/// Undoes a patient-deleted call.
#[utoipa::path(
    post,
    path = "/api/matching/cascade/patient-deleted/compensate",
    request_body = CompensateRequest,
    params((
        "Idempotency-Key" = String,
        Header,
        description = "Required: {saga_id}:{step}:compensate"
    )),
    responses((status = 200, description = "What was restored", body = CompensationAnswer))
)]
pub async fn patient_deleted_compensate(
    State(state): State<AppState>,
    context: SagaContext,
    Json(raw): Json<Value>,
) -> Result<Response, ApiError> {
    run_compensation(&state, &context, Cascade::PatientDeleted, &raw).await
}

/// Undoes a therapist-blocked call.
#[utoipa::path(
    post,
    path = "/api/matching/cascade/therapist-blocked/compensate",
    request_body = CompensateRequest,
    params((
        "Idempotency-Key" = String,
        Header,
        description = "Required: {saga_id}:{step}:compensate"
    )),
    responses((status = 200, description = "What was restored", body = CompensationAnswer))
)]
pub async fn therapist_blocked_compensate(
    State(state): State<AppState>,
    context: SagaContext,
    Json(raw): Json<Value>,
) -> Result<Response, ApiError> {
    run_compensation(&state, &context, Cascade::TherapistBlocked, &raw).await
}

/// Undoes a therapist-unblocked call.
#[utoipa::path(
    post,
    path = "/api/matching/cascade/therapist-unblocked/compensate",
    request_body = CompensateRequest,
    params((
        "Idempotency-Key" = String,
        Header,
        description = "Required: {saga_id}:{step}:compensate"
    )),
    responses((status = 200, description = "What was restored", body = CompensationAnswer))
)]
pub async fn therapist_unblocked_compensate(
    State(state): State<AppState>,
    context: SagaContext,
    Json(raw): Json<Value>,
) -> Result<Response, ApiError> {
    run_compensation(&state, &context, Cascade::TherapistUnblocked, &raw).await
}

/// Runs a forward cascade under the idempotency contract, with metrics and a log line. The
/// body is checked inside the contract, so that a rejected call is stored under its key and
/// its compensation finds nothing to undo.
async fn run_forward(
    state: &AppState,
    context: &SagaContext,
    cascade: Cascade,
    raw: Value,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let result = async {
        let log = ChangeLog {
            forward_key: require_key(context)?,
            saga_id: context.saga_id.clone(),
            saga_step: context.step.clone(),
            cascade,
        };
        let dialect = state.db.dialect;
        let completed: Arc<Mutex<Option<CascadeChanges>>> = Arc::default();
        let operation = Operation {
            method: "POST",
            path: cascade.path(),
            body: &raw,
        };

        let response = idempotency::run(&state.db, context, operation, |tx| {
            let raw = raw.clone();
            let log = log.clone();
            let completed = Arc::clone(&completed);
            Box::pin(async move {
                let command = ForwardCommand::parse(cascade, &raw)?;
                let mut changes = command.apply(tx, dialect, &log).await?;
                changes.sort();
                let body = serde_json::to_value(&changes)?;
                *completed
                    .lock()
                    .unwrap_or_else(|poison| poison.into_inner()) = Some(changes);
                Ok(Answer::ok(body))
            })
        })
        .await?;

        let changes = completed
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .take();
        if let Some(changes) = changes.filter(|_| is_fresh_success(&response)) {
            let [abgebrochen, storniert, geaendert, hinzugefuegt, aufgehoben] = changes.counts();
            tracing::info!(
                saga.id = context.saga_id.as_deref().unwrap_or(""),
                saga.step = context.step.as_deref().unwrap_or(""),
                operation = cascade.name(),
                platzsuchen_abgebrochen = abgebrochen,
                anfragen_storniert = storniert,
                anfragen_geaendert = geaendert,
                ausschluesse_hinzugefuegt = hinzugefuegt,
                ausschluesse_aufgehoben = aufgehoben,
                "Cascade operation completed successfully"
            );
        }
        Ok(response)
    }
    .await;
    observe(cascade.name(), started, &result);
    result
}

/// Runs a compensation under the idempotency contract, with metrics and a log line.
async fn run_compensation(
    state: &AppState,
    context: &SagaContext,
    cascade: Cascade,
    raw: &Value,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let result = async {
        require_key(context)?;
        let dialect = state.db.dialect;
        let completed: Arc<Mutex<Option<CompensationAnswer>>> = Arc::default();
        let operation = Operation {
            method: "POST",
            path: cascade.compensate_path(),
            body: raw,
        };

        let response = idempotency::run(&state.db, context, operation, |tx| {
            let raw = raw.clone();
            let context = context.clone();
            let completed = Arc::clone(&completed);
            Box::pin(async move {
                let request = parse_body::<CompensateRequest>(&raw)?;
                let forward_key = check_forward_key(request.forward_idempotency_key)?;
                let answer =
                    compensate::compensate(tx, dialect, cascade, &forward_key, &context).await?;
                let body = serde_json::to_value(&answer)?;
                *completed
                    .lock()
                    .unwrap_or_else(|poison| poison.into_inner()) = Some(answer);
                Ok(Answer::ok(body))
            })
        })
        .await?;

        let answer = completed
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .take();
        if let Some(answer) = answer.filter(|_| is_fresh_success(&response)) {
            let [abgebrochen, storniert, geaendert, hinzugefuegt, aufgehoben] =
                answer.restored.counts();
            tracing::info!(
                saga.id = context.saga_id.as_deref().unwrap_or(""),
                saga.step = context.step.as_deref().unwrap_or(""),
                operation = cascade.compensate_name(),
                forward_call = answer.forward_call.as_str(),
                platzsuchen_abgebrochen = abgebrochen,
                anfragen_storniert = storniert,
                anfragen_geaendert = geaendert,
                ausschluesse_hinzugefuegt = hinzugefuegt,
                ausschluesse_aufgehoben = aufgehoben,
                skipped = answer.skipped.len(),
                "Cascade operation completed successfully"
            );
        }
        Ok(response)
    }
    .await;
    observe(cascade.compensate_name(), started, &result);
    result
}

/// Returns the `Idempotency-Key`, which cascade calls need so that compensation finds them.
fn require_key(context: &SagaContext) -> Result<String, ApiError> {
    context.idempotency_key.clone().ok_or_else(|| {
        ApiError::bad_request(
            "Idempotency-Key",
            "cascade calls need an Idempotency-Key header, such as {saga_id}:{step}:forward, \
             so that their compensation can find them",
        )
    })
}

fn check_forward_key(key: String) -> Result<String, ApiError> {
    let length = key.chars().count();
    if key.trim().is_empty() || length > MAX_KEY_CHARS {
        return Err(ApiError::unprocessable(
            "forward_idempotency_key",
            format!(
                "forward_idempotency_key must be the Idempotency-Key of the forward call, 1 to \
                 {MAX_KEY_CHARS} characters, got {length} characters"
            ),
        ));
    }
    Ok(key.trim().to_owned())
}

/// Tells whether a response is a 2xx of work done now, not a replay of a stored response.
fn is_fresh_success(response: &Response) -> bool {
    response.status().is_success() && !response.headers().contains_key(REPLAYED_HEADER)
}

/// Records the duration and outcome of a cascade or compensation call.
fn observe(operation: &'static str, started: Instant, result: &Result<Response, ApiError>) {
    let outcome = match result {
        Ok(response) if response.headers().contains_key(REPLAYED_HEADER) => "replayed",
        Ok(response) if response.status().is_success() => "completed",
        Ok(response) if response.status().is_client_error() => "rejected",
        Ok(_) => "failed",
        Err(error) if error.status().is_client_error() => "rejected",
        Err(_) => "failed",
    };
    metrics::histogram!(CASCADE_DURATION, "operation" => operation)
        .record(started.elapsed().as_secs_f64());
    metrics::counter!(CASCADE_OPERATIONS, "operation" => operation, "outcome" => outcome)
        .increment(1);
}
