//! The background task that sends queued contact reports to the coordinator.
//!
//! Each round claims the due reports with a lease. On PostgreSQL the claim uses `FOR UPDATE
//! SKIP LOCKED`, so that several instances share the work. The round then sends the reports
//! without holding a connection and records each outcome. Any 2xx delivers a report, and a
//! 4xx other than 408 and 429 rejects it for good. Anything else schedules a retry with
//! exponential backoff and jitter. The task wakes on a `Notify` after a commit that queued a
//! report, and otherwise every poll interval.

use std::sync::Arc;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use kit::db::{Database, Dialect};
use reqwest::StatusCode;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use crate::metrics::{CONTACT_OUTBOX_PENDING, CONTACT_REPORTS_TOTAL};
use crate::Settings;

/// Time limit of one request to the coordinator.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Number of reports claimed per round.
const BATCH_SIZE: i64 = 10;

/// How long a claimed report stays hidden from other rounds: long enough to send a whole
/// batch when every request times out. A report whose deliverer died is retried after it.
const LEASE: Duration = Duration::from_secs(60);

/// Delay before the first retry. It doubles with each failed attempt up to the maximum.
const FIRST_RETRY_DELAY: Duration = Duration::from_secs(1);
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5 * 60);

/// Longest stored `last_error`, in characters.
const MAX_ERROR_CHARS: usize = 1000;

/// A warning is logged for the first failure in a row and then for every this many.
const WARN_EVERY_FAILURES: u64 = 10;

const RECORD_CONTACT_PATH: &str = "/api/v1/commands/record-patient-contact";

/// Errors while starting the deliverer.
#[derive(Debug, thiserror::Error)]
pub enum StartDelivererError {
    #[error("cannot build the HTTP client of the outbox deliverer: {0}")]
    Client(#[from] reqwest::Error),
}

/// Starts the deliverer. It stops when `stop` turns true or when every sender of `stop` is
/// dropped, after the report it is sending.
pub(crate) fn spawn_outbox_deliverer(
    db: Database,
    settings: &Settings,
    wake: Arc<Notify>,
    stop: watch::Receiver<bool>,
) -> Result<JoinHandle<()>, StartDelivererError> {
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()?;

    let base = settings.coordinator_url.as_str().trim_end_matches('/');
    let deliverer = Deliverer {
        db,
        client,
        endpoint: format!("{base}{RECORD_CONTACT_PATH}"),
        poll_interval: Duration::from_millis(settings.outbox_poll_interval_ms),
        failures_in_a_row: 0,
        database_failures_in_a_row: 0,
    };

    Ok(tokio::spawn(deliverer.run(wake, stop)))
}

struct Deliverer {
    db: Database,
    client: reqwest::Client,
    endpoint: String,
    poll_interval: Duration,
    /// Attempts in a row that got no definite response from the coordinator.
    failures_in_a_row: u64,
    /// Rounds in a row that failed on the database.
    database_failures_in_a_row: u64,
}

/// A claimed report.
#[derive(Debug, sqlx::FromRow)]
struct DueReport {
    id: i64,
    patient_id: i64,
    contact_date: String,
    channel: String,
    source_id: String,
    attempts: i64,
}

/// Effect of the coordinator's response on a report.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Delivered,
    /// A definite no. The text contains the status and the response body.
    Rejected(String),
    /// No definite response. The text describes the failure.
    Retry(String),
}

impl Deliverer {
    async fn run(mut self, wake: Arc<Notify>, mut stop: watch::Receiver<bool>) {
        tracing::info!(coordinator.endpoint = %self.endpoint, "outbox deliverer started");

        loop {
            if *stop.borrow() {
                break;
            }
            let batch_was_full = match self.deliver_due().await {
                Ok(claimed) => {
                    self.database_failures_in_a_row = 0;
                    claimed >= BATCH_SIZE
                }
                Err(error) => {
                    self.database_failures_in_a_row += 1;
                    if is_warning_due(self.database_failures_in_a_row) {
                        tracing::warn!(
                            error = %error,
                            failures_in_a_row = self.database_failures_in_a_row,
                            "outbox deliverer cannot read or update the outbox; retrying"
                        );
                    }
                    false
                }
            };
            self.record_pending_gauge().await;
            if batch_was_full {
                continue;
            }

            let stopped = tokio::select! {
                changed = stop.changed() => changed.is_err() || *stop.borrow(),
                () = wake.notified() => false,
                () = tokio::time::sleep(self.poll_interval) => false,
            };
            if stopped {
                break;
            }
        }

        tracing::info!("outbox deliverer stopped");
    }

    /// Claims the due reports, sends each one and records its outcome. Returns how many
    /// reports were claimed.
    async fn deliver_due(&mut self) -> Result<i64, sqlx::Error> {
        let now = Utc::now();
        let lease_until = now + LEASE;
        let mut reports: Vec<DueReport> = sqlx::query_as(claim_statement(self.db.dialect))
            .bind(timestamp(lease_until))
            .bind(timestamp(now))
            .bind(BATCH_SIZE)
            .fetch_all(&self.db.pool)
            .await?;
        reports.sort_by_key(|report| report.id);

        let claimed = i64::try_from(reports.len()).unwrap_or(i64::MAX);
        for report in &reports {
            let outcome = self.send(report).await;
            self.record(report, outcome).await?;
        }
        Ok(claimed)
    }

    async fn send(&self, report: &DueReport) -> Outcome {
        let body = serde_json::json!({
            "patient_id": report.patient_id,
            "date": report.contact_date,
            "channel": report.channel,
            "source_id": report.source_id,
        });
        let sent = self
            .client
            .post(&self.endpoint)
            .header("Idempotency-Key", &report.source_id)
            .header("Prefer", "respond-async")
            .json(&body)
            .send()
            .await;

        match sent {
            Ok(response) => {
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                classify(status, &text)
            }
            Err(error) if error.is_timeout() => Outcome::Retry(format!(
                "request to the coordinator timed out after {} s",
                REQUEST_TIMEOUT.as_secs()
            )),
            Err(error) => Outcome::Retry(format!("request to the coordinator failed: {error}")),
        }
    }

    async fn record(&mut self, report: &DueReport, outcome: Outcome) -> Result<(), sqlx::Error> {
        let now = timestamp(Utc::now());

        match outcome {
            Outcome::Delivered => {
                sqlx::query(
                    "UPDATE contact_outbox
                     SET state = 'delivered', attempts = attempts + 1, delivered_at = $2,
                         last_error = NULL
                     WHERE id = $1 AND state = 'pending'",
                )
                .bind(report.id)
                .bind(&now)
                .execute(&self.db.pool)
                .await?;

                metrics::counter!(CONTACT_REPORTS_TOTAL, "outcome" => "delivered").increment(1);
                self.note_coordinator_responded();
                tracing::info!(
                    outbox.id = report.id,
                    source.id = %report.source_id,
                    patient.id = report.patient_id,
                    "contact report delivered"
                );
            }
            Outcome::Rejected(error) => {
                sqlx::query(
                    "UPDATE contact_outbox
                     SET state = 'rejected', attempts = attempts + 1, last_error = $2
                     WHERE id = $1 AND state = 'pending'",
                )
                .bind(report.id)
                .bind(&error)
                .execute(&self.db.pool)
                .await?;

                metrics::counter!(CONTACT_REPORTS_TOTAL, "outcome" => "rejected").increment(1);
                self.note_coordinator_responded();
                tracing::warn!(
                    outbox.id = report.id,
                    source.id = %report.source_id,
                    patient.id = report.patient_id,
                    error = %error,
                    "coordinator rejected a contact report; it will not be retried"
                );
            }
            Outcome::Retry(error) => {
                let attempts = report.attempts + 1;
                let delay = retry_delay(attempts, fastrand::f64());
                let next_attempt_at = Utc::now() + delay;

                sqlx::query(
                    "UPDATE contact_outbox
                     SET attempts = $2, next_attempt_at = $3, last_error = $4
                     WHERE id = $1 AND state = 'pending'",
                )
                .bind(report.id)
                .bind(attempts)
                .bind(timestamp(next_attempt_at))
                .bind(&error)
                .execute(&self.db.pool)
                .await?;

                metrics::counter!(CONTACT_REPORTS_TOTAL, "outcome" => "retried").increment(1);
                self.note_failure(report, attempts, delay, &error);
            }
        }

        Ok(())
    }

    fn note_coordinator_responded(&mut self) {
        if self.failures_in_a_row > 0 {
            tracing::info!(
                failures_in_a_row = self.failures_in_a_row,
                "coordinator responds to contact reports again"
            );
            self.failures_in_a_row = 0;
        }
    }

    fn note_failure(&mut self, report: &DueReport, attempts: i64, delay: Duration, error: &str) {
        self.failures_in_a_row += 1;

        if is_warning_due(self.failures_in_a_row) {
            tracing::warn!(
                outbox.id = report.id,
                source.id = %report.source_id,
                attempts,
                retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                failures_in_a_row = self.failures_in_a_row,
                error,
                "contact report not delivered; it will be retried"
            );
        } else {
            tracing::debug!(
                outbox.id = report.id,
                attempts,
                error,
                "contact report not delivered; it will be retried"
            );
        }
    }

    async fn record_pending_gauge(&self) {
        let pending: Result<i64, sqlx::Error> =
            sqlx::query_scalar("SELECT COUNT(*) FROM contact_outbox WHERE state = 'pending'")
                .fetch_one(&self.db.pool)
                .await;
        match pending {
            Ok(pending) => metrics::gauge!(CONTACT_OUTBOX_PENDING).set(pending as f64),
            Err(error) => tracing::debug!(error = %error, "counting pending reports failed"),
        }
    }
}

/// Returns the statement that claims up to `$3` reports due at `$2` until `$1`.
fn claim_statement(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Postgres => {
            "UPDATE contact_outbox SET next_attempt_at = $1
             WHERE id IN (
                 SELECT id FROM contact_outbox
                 WHERE state = 'pending' AND next_attempt_at <= $2
                 ORDER BY next_attempt_at, id
                 LIMIT $3
                 FOR UPDATE SKIP LOCKED)
             RETURNING id, patient_id, contact_date, channel, source_id, attempts"
        }
        // SQLite has no row locks; its single pooled connection runs one claim at a time.
        Dialect::Sqlite => {
            "UPDATE contact_outbox SET next_attempt_at = $1
             WHERE id IN (
                 SELECT id FROM contact_outbox
                 WHERE state = 'pending' AND next_attempt_at <= $2
                 ORDER BY next_attempt_at, id
                 LIMIT $3)
             RETURNING id, patient_id, contact_date, channel, source_id, attempts"
        }
    }
}

/// Maps the coordinator's status to an outcome: 2xx delivers; 408, 429 and 5xx are retried;
/// any other status is a definite rejection.
fn classify(status: StatusCode, body: &str) -> Outcome {
    if status.is_success() {
        return Outcome::Delivered;
    }
    let error = truncate(&format!("HTTP {}: {}", status.as_u16(), body.trim()));
    let retryable = status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS;
    if retryable || !status.is_client_error() {
        Outcome::Retry(error)
    } else {
        Outcome::Rejected(error)
    }
}

/// Returns the delay before the next attempt after `attempts` failed ones. The backoff is the
/// first retry delay doubled per earlier failure, capped at the maximum. The delay keeps half
/// of it plus a random share (`jitter` in 0..1) of the other half, so that reports queued
/// together spread out.
fn retry_delay(attempts: i64, jitter: f64) -> Duration {
    let doublings = u32::try_from(attempts.saturating_sub(1).clamp(0, 20)).unwrap_or(20);
    let backoff = FIRST_RETRY_DELAY
        .saturating_mul(1_u32 << doublings)
        .min(MAX_RETRY_DELAY);
    backoff / 2 + (backoff / 2).mul_f64(jitter.clamp(0.0, 1.0))
}

/// Returns true for the first failure in a row and every `WARN_EVERY_FAILURES`th.
fn is_warning_due(failures_in_a_row: u64) -> bool {
    failures_in_a_row == 1 || failures_in_a_row % WARN_EVERY_FAILURES == 0
}

fn truncate(text: &str) -> String {
    match text.char_indices().nth(MAX_ERROR_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

fn timestamp(time: chrono::DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_doubles_per_attempt() {
        assert_eq!(retry_delay(1, 1.0), Duration::from_secs(1));
        assert_eq!(retry_delay(2, 1.0), Duration::from_secs(2));
        assert_eq!(retry_delay(3, 1.0), Duration::from_secs(4));
        assert_eq!(retry_delay(6, 1.0), Duration::from_secs(32));
    }

    #[test]
    fn retry_delay_stops_at_five_minutes() {
        assert_eq!(retry_delay(9, 1.0), Duration::from_secs(256));
        assert_eq!(retry_delay(10, 1.0), MAX_RETRY_DELAY);
        assert_eq!(retry_delay(1_000, 1.0), MAX_RETRY_DELAY);
    }

    #[test]
    fn retry_delay_jitter_keeps_at_least_half() {
        assert_eq!(retry_delay(3, 0.0), Duration::from_secs(2));
        assert_eq!(retry_delay(3, 0.5), Duration::from_secs(3));
    }

    #[test]
    fn success_statuses_deliver() {
        assert_eq!(classify(StatusCode::OK, ""), Outcome::Delivered);
        assert_eq!(classify(StatusCode::ACCEPTED, ""), Outcome::Delivered);
    }

    #[test]
    fn client_errors_reject_except_timeout_and_rate_limit() {
        let rejected = classify(StatusCode::UNPROCESSABLE_ENTITY, "{\"detail\":\"no\"}");
        let timeout = classify(StatusCode::REQUEST_TIMEOUT, "");
        let rate_limited = classify(StatusCode::TOO_MANY_REQUESTS, "");

        assert_eq!(
            rejected,
            Outcome::Rejected("HTTP 422: {\"detail\":\"no\"}".to_owned())
        );
        assert!(matches!(timeout, Outcome::Retry(_)));
        assert!(matches!(rate_limited, Outcome::Retry(_)));
    }

    #[test]
    fn server_errors_are_retried() {
        assert!(matches!(
            classify(StatusCode::SERVICE_UNAVAILABLE, ""),
            Outcome::Retry(_)
        ));
        assert!(matches!(
            classify(StatusCode::INTERNAL_SERVER_ERROR, ""),
            Outcome::Retry(_)
        ));
    }

    #[test]
    fn long_errors_are_cut() {
        let cut = truncate(&"x".repeat(MAX_ERROR_CHARS + 50));

        assert_eq!(cut.chars().count(), MAX_ERROR_CHARS + 1);
    }

    #[test]
    fn warnings_are_rate_limited() {
        let warned: Vec<u64> = (1..=30).filter(|n| is_warning_due(*n)).collect();

        assert_eq!(warned, vec![1, 10, 20, 30]);
    }
}
