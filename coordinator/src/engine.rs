//! The saga engine: drives one saga at a time per task through its steps, records each
//! step as started before its call and its outcome after, and compensates in reverse order
//! when a step before the pivot fails for good.
//!
//! Every move of a saga's status happens in [`transition`], and the functions here decide
//! which move to make from a participant's response.

mod registry;
mod transition;

use std::sync::Arc;
use std::time::Duration;

use kit::clock::now_rfc3339;
use serde_json::{json, Map, Value};
use tokio::sync::watch;
use tracing::{info_span, Instrument};

use crate::metrics;
use crate::participant::{Call, Outcome, ParticipantClient, Report};
use crate::saga::{
    definition, CallTemplate, CompensationStatus, NotFoundRule, Participant, Phase, SagaDefinition,
    StepDefinition, StepStatus, ValueSource,
};
use crate::settings::EngineSettings;
use crate::store::{SagaRecord, SagaStore, SaveSagaError, StepRecord};

pub use registry::{Registry, SagaSnapshot};
use transition::Next;

/// Drives sagas. One per process, shared by the API, the sweeper and every saga task.
pub struct Engine {
    pub store: SagaStore,
    pub client: ParticipantClient,
    pub settings: EngineSettings,
    pub replica_id: String,
    pub registry: Registry,
}

/// A saga's in-memory state while a task drives it.
struct Run<'a> {
    definition: &'static SagaDefinition,
    saga: SagaRecord,
    steps: Vec<StepRecord>,
    status: &'a watch::Sender<SagaSnapshot>,
}

impl Engine {
    /// Starts a task that drives the saga, unless this process drives it already. The
    /// caller must hold the saga's lease. `resumed` marks a saga taken over from an expired
    /// lease, whose current call may have been in flight when its holder stopped.
    pub fn spawn(
        self: &Arc<Self>,
        saga_id: String,
        resumed: bool,
    ) -> Option<watch::Receiver<SagaSnapshot>> {
        let status = self.registry.begin(&saga_id)?;
        let receiver = status.subscribe();
        let engine = Arc::clone(self);

        let span = info_span!(
            parent: None,
            "saga",
            saga.id = %saga_id,
            saga.type = tracing::field::Empty
        );

        tokio::spawn(
            async move {
                engine.drive(&saga_id, resumed, &status).await;
                engine.registry.end(&saga_id);
            }
            .instrument(span),
        );

        Some(receiver)
    }

    async fn drive(&self, saga_id: &str, resumed: bool, status: &watch::Sender<SagaSnapshot>) {
        let loaded = match self.store.load(saga_id).await {
            Ok(Some(loaded)) => loaded,
            Ok(None) => return,
            Err(error) => {
                tracing::error!(error = %error, "cannot load saga; the sweeper retries later");
                return;
            }
        };
        let (saga, mut steps) = loaded;
        tracing::Span::current().record("saga.type", saga.saga_type.as_str());
        status.send_replace(SagaSnapshot {
            status: saga.status,
            records: Some(Arc::new((saga.clone(), steps.clone()))),
        });
        if saga.status.is_finished() || saga.lease_owner.as_deref() != Some(&self.replica_id) {
            return;
        }

        // A step found started after a restart may have reached its participant before
        // the process stopped, so it counts as possibly applied.
        if resumed {
            if let Some(step) = steps.get_mut(saga.current_step) {
                if step.status == StepStatus::Started
                    || step.compensation_status == CompensationStatus::Started
                {
                    step.possibly_applied = true;
                }
            }
            tracing::info!(
                step = saga.current_step,
                status = saga.status.as_str(),
                "saga resumed after its holder's lease expired"
            );
        }

        let mut run = Run {
            definition: definition(saga.saga_type),
            saga,
            steps,
            status,
        };
        loop {
            let next = match run.saga.phase {
                Phase::Forward => self.run_forward_step(&mut run).await,
                Phase::Backward => self.run_compensation(&mut run).await,
            };
            match next {
                Ok(Next::Continue) => continue,
                Ok(Next::Finished) => return,
                Ok(Next::RetryIn(wait)) if wait <= self.settings.sweep_interval() => {
                    tokio::time::sleep(wait).await;
                }
                Ok(Next::RetryIn(_)) | Ok(Next::Released) => return,
                Err(SaveSagaError::LeaseLost(_)) => {
                    tracing::warn!("lease lost to another replica; it continues the saga");
                    return;
                }
                Err(SaveSagaError::Store(error)) => {
                    tracing::error!(
                        error = %error,
                        "cannot record saga progress; the saga resumes after its lease expires"
                    );
                    return;
                }
            }
        }
    }

    /// Sends the current forward step and moves the saga on from its response.
    async fn run_forward_step(&self, run: &mut Run<'_>) -> Result<Next, SaveSagaError> {
        let index = run.saga.current_step;
        let step_definition = run.definition.step(index);
        let unknown_before = run.steps[index].possibly_applied;

        let call = self.forward_call(&run.saga, step_definition);
        let report = self
            .send_step(
                run,
                step_definition,
                "forward",
                call,
                &step_definition.forward,
            )
            .await;

        let step = &mut run.steps[index];
        step.attempts = step.attempts.saturating_add(report.attempts);
        step.possibly_applied |= report.possibly_applied;
        step.duration_ms = Some(i64::try_from(report.duration.as_millis()).unwrap_or(i64::MAX));

        let had_unknown_attempt = report.had_unknown_attempt();
        match report.outcome {
            Outcome::Answered { status, body } if status.is_success() => {
                if let Some(missing) = missing_field(&step_definition.forward, &body) {
                    return transition::park_for_contract(self, run, index, status, &body, missing)
                        .await;
                }
                transition::forward_succeeded(self, run, index, status, &body).await
            }
            Outcome::Answered { status, body } if status == 404 => {
                let unknown = unknown_before || had_unknown_attempt;
                match step_definition.on_not_found {
                    NotFoundRule::DoneAfterUnknownAttempt if unknown => {
                        tracing::info!(
                            step = step_definition.name,
                            "404 after an attempt with unknown outcome: the earlier attempt \
                             deleted it, so the step is done"
                        );
                        transition::forward_succeeded(self, run, index, status, &body).await
                    }
                    NotFoundRule::SkipSaga => {
                        transition::skip(self, run, index, status, &body).await
                    }
                    _ => transition::forward_refused(self, run, index, status, &body).await,
                }
            }
            Outcome::Answered { status, body } => {
                transition::forward_refused(self, run, index, status, &body).await
            }
            Outcome::NoAnswer { error, .. } => {
                transition::forward_unanswered(self, run, index, error).await
            }
        }
    }

    /// Undoes steps from the current one down to the first, in reverse order.
    async fn run_compensation(&self, run: &mut Run<'_>) -> Result<Next, SaveSagaError> {
        let mut changed: Vec<usize> = Vec::new();
        loop {
            let index = run.saga.current_step;
            let step_definition = run.definition.step(index);
            let step = &mut run.steps[index];

            let Some(template) = &step_definition.compensation else {
                if transition::compensation_moved_down(run, index, &mut changed) {
                    return transition::compensated(self, run, &changed).await;
                }
                continue;
            };
            let needs_call = step.compensation_status != CompensationStatus::Succeeded
                && step.compensation_status != CompensationStatus::Skipped
                && step.possibly_applied;
            if !needs_call {
                if step.compensation_status != CompensationStatus::Succeeded {
                    step.compensation_status = CompensationStatus::Skipped;
                    changed.push(index);
                }
                if transition::compensation_moved_down(run, index, &mut changed) {
                    return transition::compensated(self, run, &changed).await;
                }
                continue;
            }

            if step.compensation_status != CompensationStatus::Started {
                step.compensation_status = CompensationStatus::Started;
                step.compensation_started_at = Some(now_rfc3339());
                changed.push(index);
                transition::save(self, run, &changed, "compensation-start").await?;
                changed.clear();
            }

            let call = self.compensation_call(&run.saga, step_definition, template);
            let report = self
                .send_step(run, step_definition, "compensation", call, template)
                .await;
            return transition::compensation_answered(self, run, index, report, template).await;
        }
    }

    /// Sends a call inside a span with the step's fields and times it.
    async fn send_step(
        &self,
        run: &Run<'_>,
        step: &'static StepDefinition,
        direction: &'static str,
        call: Call<'_>,
        template: &CallTemplate,
    ) -> Report {
        let attempt = match direction {
            "forward" => run.steps[run.saga.current_step].attempts + 1,
            _ => run.steps[run.saga.current_step].compensation_attempts + 1,
        };
        let span = info_span!(
            "step",
            step.name = step.name,
            step.direction = direction,
            participant = step.participant.as_str(),
            attempt,
        );
        let report = self.client.send(call).instrument(span).await;

        metrics::step_duration(
            run.saga.saga_type.as_str(),
            step.name,
            direction,
            report.duration,
        );
        if step.participant == Participant::Matching {
            metrics::cascade_duration(cascade_operation(template.path), report.duration);
        }
        report
    }

    fn forward_call(&self, saga: &SagaRecord, step: &'static StepDefinition) -> Call<'static> {
        let template = &step.forward;
        let mut body = Map::new();
        for field in template.body {
            let value = match field.value {
                ValueSource::Payload(key) => saga.payload.get(key).cloned().unwrap_or(Value::Null),
                ValueSource::Text(text) => Value::String(text.to_owned()),
            };
            if !value.is_null() {
                body.insert(field.name.to_owned(), value);
            }
        }

        Call {
            participant: step.participant,
            endpoint: template.path,
            method: template.method,
            path: fill_path(template.path, &saga.payload),
            body: (!template.body.is_empty()).then_some(Value::Object(body)),
            idempotency_key: Some(idempotency_key(&saga.id, step.name, "forward")),
            saga_id: Some(saga.id.clone()),
            step: Some(step.name),
            traceparent: Some(traceparent(&saga.trace_id)),
        }
    }

    fn compensation_call(
        &self,
        saga: &SagaRecord,
        step: &'static StepDefinition,
        template: &'static CallTemplate,
    ) -> Call<'static> {
        Call {
            participant: step.participant,
            endpoint: template.path,
            method: template.method,
            path: fill_path(template.path, &saga.payload),
            body: Some(json!({
                "forward_idempotency_key": idempotency_key(&saga.id, step.name, "forward")
            })),
            idempotency_key: Some(idempotency_key(&saga.id, step.name, "compensate")),
            saga_id: Some(saga.id.clone()),
            step: Some(step.name),
            traceparent: Some(traceparent(&saga.trace_id)),
        }
    }

    /// Takes the lease of a saga for this replica if it is free or expired.
    pub async fn claim(
        &self,
        saga_id: &str,
    ) -> Result<Option<crate::store::ClaimedSaga>, crate::store::StoreError> {
        self.store
            .claim(saga_id, &self.replica_id, self.lease_ms())
            .await
    }

    pub fn lease_ms(&self) -> i64 {
        i64::try_from(self.settings.lease_duration_ms).unwrap_or(i64::MAX)
    }

    /// Returns the wait before the next round of a step whose retries were spent.
    fn round_backoff(&self, rounds: u32) -> Duration {
        self.settings.round_backoff(rounds)
    }
}

/// Returns the one stable key of a saga's step in one direction.
pub fn idempotency_key(saga_id: &str, step: &str, direction: &str) -> String {
    format!("{saga_id}:{step}:{direction}")
}

/// Replaces `{field}` placeholders of a path with the payload's values.
fn fill_path(template: &str, payload: &Value) -> String {
    let mut path = template.to_owned();
    if let Value::Object(fields) = payload {
        for (key, value) in fields {
            let placeholder = format!("{{{key}}}");
            if path.contains(&placeholder) {
                let text = match value {
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                };
                path = path.replace(&placeholder, &text);
            }
        }
    }

    path
}

/// Returns a W3C `traceparent` in the saga's trace with a new parent span id.
fn traceparent(trace_id: &str) -> String {
    format!("00-{trace_id}-{:016x}-01", fastrand::u64(1..))
}

/// Returns the first field a 2xx response must have but lacks.
fn missing_field(template: &CallTemplate, body: &Value) -> Option<&'static str> {
    template
        .required_answer_fields
        .iter()
        .copied()
        .find(|field| body.get(field).is_none())
}

/// Returns the `operation` label of a matching cascade path.
fn cascade_operation(path: &str) -> &'static str {
    match path {
        "/api/matching/cascade/patient-deleted" => "patient_deleted",
        "/api/matching/cascade/patient-deleted/compensate" => "patient_deleted_compensate",
        "/api/matching/cascade/therapist-blocked" => "therapist_blocked",
        "/api/matching/cascade/therapist-blocked/compensate" => "therapist_blocked_compensate",
        "/api/matching/cascade/therapist-unblocked" => "therapist_unblocked",
        "/api/matching/cascade/therapist-unblocked/compensate" => "therapist_unblocked_compensate",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_path_uses_payload_ids() {
        let payload = json!({"patient_id": 12, "reason": "x"});

        assert_eq!(
            fill_path("/api/patients/{patient_id}", &payload),
            "/api/patients/12"
        );
    }

    #[test]
    fn keys_differ_by_direction() {
        assert_ne!(
            idempotency_key("s", "cancel", "forward"),
            idempotency_key("s", "cancel", "compensate")
        );
    }

    #[test]
    fn traceparent_keeps_the_trace_id() {
        let header = traceparent("0af7651916cd43dd8448eb211c80319c");

        assert!(header.starts_with("00-0af7651916cd43dd8448eb211c80319c-"));
        assert_eq!(header.len(), 55);
    }
}
