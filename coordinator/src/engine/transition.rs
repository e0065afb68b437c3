//! Every move of a saga's status, in one place. Each function changes the in-memory saga
//! and steps and writes them in one fenced transaction before the engine makes its next
//! call, so the store is always ahead of the participants.
//!
//! Moves: running → running (next step), running → completed, running → compensating,
//! running → skipped, running/compensating → needs_attention (retries spent or a broken
//! response), needs_attention → running/compensating (a later round succeeds),
//! compensating → compensated.

use std::time::Duration;

use kit::clock::now_rfc3339;
use reqwest::StatusCode;
use serde_json::Value;

use super::{missing_field, Engine, Run};
use crate::metrics;
use crate::participant::{preview, Outcome, Report};
use crate::redact;
use crate::saga::{CallTemplate, CompensationStatus, Phase, SagaStatus, SagaType, StepStatus};
use crate::store::{now_ms, SaveSagaError};

/// The engine's next action after a move.
#[derive(Debug)]
pub(super) enum Next {
    /// Go on with the next call at once.
    Continue,
    /// The saga is finished.
    Finished,
    /// Try again after this wait, holding the lease.
    RetryIn(Duration),
    /// The lease is released; the sweeper picks the saga up when it is due, or an
    /// operator retries it.
    Released,
}

/// Writes the saga and the listed steps, extending the lease when the saga keeps it, and
/// publishes the new status.
pub(super) async fn save(
    engine: &Engine,
    run: &mut Run<'_>,
    changed: &[usize],
    purpose: &'static str,
) -> Result<(), SaveSagaError> {
    run.saga.updated_at = now_rfc3339();
    if run.saga.lease_owner.is_some() {
        run.saga.lease_expires_at = Some(now_ms() + engine.settings.lease_duration_ms as i64);
    }

    let steps: Vec<_> = changed.iter().map(|&index| &run.steps[index]).collect();
    engine
        .store
        .save(&run.saga, &steps, &engine.replica_id, purpose)
        .await?;

    run.status.send_replace(super::SagaSnapshot {
        status: run.saga.status,
        records: Some(std::sync::Arc::new((run.saga.clone(), run.steps.clone()))),
    });

    Ok(())
}

fn record_answer(run: &mut Run<'_>, index: usize, status: StatusCode, body: &Value) {
    let step = &mut run.steps[index];
    step.last_status_code = Some(i64::from(status.as_u16()));
    step.last_answer = Some(redact::for_store(body));
    step.finished_at = Some(now_rfc3339());
}

/// Starts the next step after a successful forward call, or completes the saga.
pub(super) async fn forward_succeeded(
    engine: &Engine,
    run: &mut Run<'_>,
    index: usize,
    status: StatusCode,
    body: &Value,
) -> Result<Next, SaveSagaError> {
    record_answer(run, index, status, body);
    let step = &mut run.steps[index];
    step.status = StepStatus::Succeeded;
    step.last_error = None;
    tracing::info!(step = step.name, "step succeeded");
    if run.definition.step(index).participant == crate::saga::Participant::Matching {
        tracing::info!(step = step.name, "Cascade operation completed successfully");
    }

    let next_index = index + 1;
    if next_index == run.steps.len() {
        return finish(
            engine,
            run,
            SagaStatus::Completed,
            None,
            &[index],
            "complete",
        )
        .await;
    }

    run.saga.current_step = next_index;
    run.saga.failed_rounds = 0;
    if run.saga.status == SagaStatus::NeedsAttention {
        run.saga.outcome_reason = None;
    }
    run.saga.status = SagaStatus::Running;
    let next = &mut run.steps[next_index];
    next.status = StepStatus::Started;
    next.started_at = Some(now_rfc3339());
    save(engine, run, &[index, next_index], "advance").await?;
    Ok(Next::Continue)
}

/// Records a definite rejection of the forward call, which therefore changed nothing, and
/// compensates or parks the saga.
pub(super) async fn forward_refused(
    engine: &Engine,
    run: &mut Run<'_>,
    index: usize,
    status: StatusCode,
    body: &Value,
) -> Result<Next, SaveSagaError> {
    record_answer(run, index, status, body);
    let step = &mut run.steps[index];
    step.status = StepStatus::Failed;
    step.possibly_applied = false;
    step.last_error = Some(format!(
        "refused with {status}: {}",
        preview(&detail_of(body))
    ));
    let reason = format!(
        "{} refused {} with {status}: {}",
        step.participant,
        step.name,
        preview(&detail_of(body))
    );
    tracing::warn!(
        step = step.name,
        status = status.as_u16(),
        "step rejected by participant"
    );

    let has_compensation = run
        .definition
        .steps
        .iter()
        .any(|s| s.compensation.is_some());
    if index <= run.definition.pivot && has_compensation {
        return begin_compensation(engine, run, index, "refused", reason).await;
    }
    park(engine, run, index, "refused", reason, "park-refused").await
}

/// Handles a forward call whose retries are spent without a definite response.
pub(super) async fn forward_unanswered(
    engine: &Engine,
    run: &mut Run<'_>,
    index: usize,
    error: String,
) -> Result<Next, SaveSagaError> {
    let step = &mut run.steps[index];
    step.last_error = Some(error.clone());
    let participant = step.participant.clone();
    let name = step.name.clone();

    if index < run.definition.pivot {
        step.status = StepStatus::Failed;
        step.finished_at = Some(now_rfc3339());
        log_unavailable(run.saga.saga_type, &participant, &error);
        let reason = format!("{participant} did not answer {name}: {error}");
        return begin_compensation(engine, run, index, "unavailable", reason).await;
    }

    if run.saga.saga_type == SagaType::RecordPatientContact {
        tracing::warn!(error = %error, "Failed to update patient last contact; retrying later");
    }
    let reason = format!("{participant} did not answer {name}: {error}");
    retry_later(engine, run, &[index], reason).await
}

/// Ends the saga as skipped because its entity no longer exists.
pub(super) async fn skip(
    engine: &Engine,
    run: &mut Run<'_>,
    index: usize,
    status: StatusCode,
    body: &Value,
) -> Result<Next, SaveSagaError> {
    record_answer(run, index, status, body);
    run.steps[index].status = StepStatus::Failed;

    let reason = format!(
        "{} {} no longer exists",
        run.saga.entity.as_str(),
        run.saga.entity_id
    );

    finish(
        engine,
        run,
        SagaStatus::Skipped,
        Some(reason),
        &[index],
        "skip",
    )
    .await
}

/// Parks the saga because a 2xx response lacks a field the contract requires, instead of
/// guessing what the participant did.
pub(super) async fn park_for_contract(
    engine: &Engine,
    run: &mut Run<'_>,
    index: usize,
    status: StatusCode,
    body: &Value,
    missing: &str,
) -> Result<Next, SaveSagaError> {
    record_answer(run, index, status, body);
    let step = &mut run.steps[index];
    let error = format!("answer {status} lacks the field {missing:?} the contract requires");
    if run.saga.phase == Phase::Forward {
        step.last_error = Some(error.clone());
    } else {
        step.compensation_error = Some(error.clone());
    }

    tracing::error!(
        step = step.name,
        missing,
        "participant answer breaks the contract"
    );

    let reason = format!("{} {}: {error}", step.participant, step.name);
    park(
        engine,
        run,
        index,
        "contract_violation",
        reason,
        "park-contract",
    )
    .await
}

/// Turns the saga around: compensate from `index` down to the first step.
async fn begin_compensation(
    engine: &Engine,
    run: &mut Run<'_>,
    index: usize,
    failure_kind: &str,
    reason: String,
) -> Result<Next, SaveSagaError> {
    run.saga.status = SagaStatus::Compensating;
    run.saga.phase = Phase::Backward;
    run.saga.current_step = index;
    run.saga.failed_rounds = 0;
    run.saga.failure_kind = Some(failure_kind.to_owned());
    run.saga.outcome_reason = Some(reason);

    tracing::warn!(step = index, failure_kind, "compensation begins");
    save(engine, run, &[index], "begin-compensation").await?;

    Ok(Next::Continue)
}

/// Moves the compensation one step down. Returns true when the first step is done.
pub(super) fn compensation_moved_down(
    run: &mut Run<'_>,
    index: usize,
    changed: &mut Vec<usize>,
) -> bool {
    if !changed.contains(&index) {
        changed.push(index);
    }
    if index == 0 {
        return true;
    }
    run.saga.current_step = index - 1;
    false
}

/// Ends the saga as compensated once every step that needed it was undone.
pub(super) async fn compensated(
    engine: &Engine,
    run: &mut Run<'_>,
    changed: &[usize],
) -> Result<Next, SaveSagaError> {
    let reason = run.saga.outcome_reason.clone();

    finish(
        engine,
        run,
        SagaStatus::Compensated,
        reason,
        changed,
        "compensated",
    )
    .await
}

/// Handles the response to a compensating call.
pub(super) async fn compensation_answered(
    engine: &Engine,
    run: &mut Run<'_>,
    index: usize,
    report: Report,
    template: &CallTemplate,
) -> Result<Next, SaveSagaError> {
    let step = &mut run.steps[index];
    step.compensation_attempts = step.compensation_attempts.saturating_add(report.attempts);

    match report.outcome {
        Outcome::Answered { status, body } if status.is_success() => {
            if let Some(missing) = missing_field(template, &body) {
                return park_for_contract(engine, run, index, status, &body, missing).await;
            }
            let step = &mut run.steps[index];
            step.compensation_status = CompensationStatus::Succeeded;
            step.compensation_status_code = Some(i64::from(status.as_u16()));
            step.compensation_answer = Some(redact::for_store(&body));
            step.compensation_finished_at = Some(now_rfc3339());
            step.compensation_error = None;
            tracing::info!(step = step.name, "compensation succeeded");

            run.saga.failed_rounds = 0;
            if index == 0 {
                return compensated(engine, run, &[index]).await;
            }
            run.saga.current_step = index - 1;
            run.saga.status = SagaStatus::Compensating;
            save(engine, run, &[index], "compensation-done").await?;
            Ok(Next::Continue)
        }
        Outcome::Answered { status, body } => {
            let step = &mut run.steps[index];
            step.compensation_status_code = Some(i64::from(status.as_u16()));
            step.compensation_answer = Some(redact::for_store(&body));
            let error = format!(
                "compensation refused with {status}: {}",
                preview(&detail_of(&body))
            );
            step.compensation_error = Some(error.clone());
            tracing::error!(
                step = step.name,
                status = status.as_u16(),
                "compensation refused"
            );
            let reason = format!("{} {}: {error}", step.participant, step.name);
            retry_later(engine, run, &[index], reason).await
        }
        Outcome::NoAnswer { error, .. } => {
            let step = &mut run.steps[index];
            step.compensation_error = Some(error.clone());
            tracing::warn!(step = step.name, error = %error, "compensation got no response");
            let reason = format!(
                "{} did not answer the compensation of {}: {error}",
                step.participant, step.name
            );
            retry_later(engine, run, &[index], reason).await
        }
    }
}

/// Counts a spent round and schedules the next one with backoff. After enough rounds the
/// saga shows `needs_attention`, and it is still retried.
async fn retry_later(
    engine: &Engine,
    run: &mut Run<'_>,
    changed: &[usize],
    reason: String,
) -> Result<Next, SaveSagaError> {
    run.saga.failed_rounds = run.saga.failed_rounds.saturating_add(1);
    let wait = engine.round_backoff(run.saga.failed_rounds);
    run.saga.next_attempt_at = Some(now_ms() + i64::try_from(wait.as_millis()).unwrap_or(0));
    if run.saga.failed_rounds >= engine.settings.attention_after_rounds {
        if run.saga.status != SagaStatus::NeedsAttention {
            tracing::error!(
                rounds = run.saga.failed_rounds,
                reason = %reason,
                "saga needs attention; it keeps being retried"
            );
        }
        run.saga.status = SagaStatus::NeedsAttention;
        // While compensating, the reason for the compensation stays; the step's
        // compensation error shows the latest failure.
        if run.saga.phase == Phase::Forward {
            run.saga.outcome_reason = Some(reason);
        }
    } else {
        tracing::warn!(rounds = run.saga.failed_rounds, wait_ms = wait.as_millis() as u64,
            reason = %reason, "retries spent; the step is tried again later");
    }

    let keep_lease = wait <= engine.settings.sweep_interval();
    if !keep_lease {
        run.saga.lease_owner = None;
        run.saga.lease_expires_at = None;
    }
    save(engine, run, changed, "retry-later").await?;
    Ok(if keep_lease {
        Next::RetryIn(wait)
    } else {
        Next::Released
    })
}

/// Parks the saga for an operator: no automatic retry until `POST /sagas/{id}/retry`.
async fn park(
    engine: &Engine,
    run: &mut Run<'_>,
    index: usize,
    failure_kind: &str,
    reason: String,
    purpose: &'static str,
) -> Result<Next, SaveSagaError> {
    tracing::error!(
        failure_kind,
        reason = %reason,
        "saga needs attention; it waits for an operator to retry it"
    );

    run.saga.status = SagaStatus::NeedsAttention;
    run.saga.failure_kind = Some(failure_kind.to_owned());
    run.saga.outcome_reason = Some(reason);
    run.saga.next_attempt_at = None;
    run.saga.lease_owner = None;
    run.saga.lease_expires_at = None;

    save(engine, run, &[index], purpose).await?;
    Ok(Next::Released)
}

/// Ends the saga: releases its entity lock and lease.
async fn finish(
    engine: &Engine,
    run: &mut Run<'_>,
    status: SagaStatus,
    reason: Option<String>,
    changed: &[usize],
    purpose: &'static str,
) -> Result<Next, SaveSagaError> {
    run.saga.status = status;
    if reason.is_some() || status == SagaStatus::Completed {
        run.saga.outcome_reason = reason;
    }
    run.saga.finished_at = Some(now_rfc3339());
    run.saga.entity_lock = None;
    // A saga rolled back because a participant was unavailable changed nothing, so its
    // command may be sent again with the same key and then starts a new saga.
    if status == SagaStatus::Compensated && run.saga.failure_kind.as_deref() == Some("unavailable")
    {
        run.saga.idempotency_key = None;
    }
    run.saga.lease_owner = None;
    run.saga.lease_expires_at = None;
    run.saga.next_attempt_at = None;
    save(engine, run, changed, purpose).await?;

    metrics::saga_finished(run.saga.saga_type.as_str(), status.as_str());
    tracing::info!(status = status.as_str(), "saga finished");
    Ok(Next::Finished)
}

fn log_unavailable(saga_type: SagaType, participant: &str, error: &str) {
    match saga_type {
        SagaType::DeletePatient => tracing::error!(
            participant, error = %error,
            "Cannot delete patient: Matching service unavailable"
        ),
        SagaType::BlockTherapist => tracing::error!(
            participant, error = %error,
            "Cannot block therapist: Matching service error"
        ),
        SagaType::UnblockTherapist => tracing::error!(
            participant, error = %error,
            "Cannot unblock therapist: Matching service error"
        ),
        SagaType::RecordPatientContact => tracing::warn!(
            participant, error = %error,
            "Failed to update patient last contact"
        ),
    }
}

/// Returns the `detail` of a problem body, or the body itself.
fn detail_of(body: &Value) -> Value {
    body.get("detail").cloned().unwrap_or_else(|| body.clone())
}
