//! Every metric the coordinator exports, named in one place and described at start.

use std::time::Duration;

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};

const API_CALLS: &str = "api_calls_total";
const RETRIES_EXHAUSTED: &str = "api_retries_exhausted_total";
const CASCADE_DURATION: &str = "cascade_operation_duration_seconds";
const SAGAS: &str = "sagas_total";
const SAGAS_ACTIVE: &str = "sagas_active";
const STEP_DURATION: &str = "saga_step_duration_seconds";
const STORE_COMMITS: &str = "saga_store_commits_total";

/// Registers the descriptions shown in `/metrics`.
pub fn describe() {
    describe_counter!(
        API_CALLS,
        "Attempts of participant calls by service, endpoint and status"
    );
    describe_counter!(
        RETRIES_EXHAUSTED,
        "Participant calls whose retries were spent without a definite answer"
    );
    describe_histogram!(
        CASCADE_DURATION,
        metrics::Unit::Seconds,
        "Duration of matching cascade calls, retries included"
    );
    describe_counter!(SAGAS, "Sagas that ended, by type and outcome");
    describe_gauge!(
        SAGAS_ACTIVE,
        "Unfinished sagas by status, read from the store"
    );
    describe_histogram!(
        STEP_DURATION,
        metrics::Unit::Seconds,
        "Duration of saga step calls by saga type, step and direction"
    );
    describe_counter!(
        STORE_COMMITS,
        "Saga store transactions committed, by purpose"
    );
}

pub fn api_call(service: &'static str, endpoint: &'static str, status: String) {
    counter!(API_CALLS, "service" => service, "endpoint" => endpoint, "status" => status)
        .increment(1);
}

pub fn retries_exhausted(service: &'static str, endpoint: &'static str) {
    counter!(RETRIES_EXHAUSTED, "service" => service, "endpoint" => endpoint).increment(1);
}

pub fn cascade_duration(operation: &'static str, duration: Duration) {
    histogram!(CASCADE_DURATION, "operation" => operation).record(duration.as_secs_f64());
}

pub fn step_duration(
    saga_type: &'static str,
    step: &'static str,
    direction: &'static str,
    duration: Duration,
) {
    histogram!(STEP_DURATION, "saga_type" => saga_type, "step" => step, "direction" => direction)
        .record(duration.as_secs_f64());
}

pub fn saga_finished(saga_type: &'static str, outcome: &'static str) {
    counter!(SAGAS, "saga_type" => saga_type, "outcome" => outcome).increment(1);
}

pub fn active_sagas(status: &'static str, count: i64) {
    gauge!(SAGAS_ACTIVE, "status" => status).set(count as f64);
}

pub fn store_commit(purpose: &'static str) {
    counter!(STORE_COMMITS, "purpose" => purpose).increment(1);
}
