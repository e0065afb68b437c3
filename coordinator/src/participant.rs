//! HTTP calls to participant services: retries with exponential backoff and jitter
//! (reqwest-retry), per-participant timeouts, `Retry-After`, one metric per attempt, and a
//! record of every attempt so the engine can tell "never delivered" from "unknown".

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::Extensions;
use reqwest::{Method, Request, Response, StatusCode};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware, Middleware, Next};
use reqwest_retry::policies::ExponentialBackoff;
use reqwest_retry::{Jitter, RetryTransientMiddleware};
use serde_json::Value;

use crate::metrics;
use crate::saga::Participant;
use crate::settings::{EngineSettings, ParticipantUrls};

/// Longest `Retry-After` the client waits for before its next attempt.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// One call to a participant.
#[derive(Debug, Clone)]
pub struct Call<'a> {
    pub participant: Participant,
    /// Path template, used as the `endpoint` label of metrics.
    pub endpoint: &'static str,
    pub method: &'a str,
    pub path: String,
    pub body: Option<Value>,
    pub idempotency_key: Option<String>,
    pub saga_id: Option<String>,
    pub step: Option<&'static str>,
    pub traceparent: Option<String>,
}

/// Final result of a call after its retries.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The participant responded with this status. `body` is the JSON body, or the text as a
    /// JSON string when it is not JSON.
    Answered { status: StatusCode, body: Value },
    /// No response, or only 5xx, 408 or 429 responses, until the retries were spent.
    NoAnswer {
        /// Description of how the attempts ended.
        error: String,
        /// The last attempt's error or response.
        source: String,
    },
}

/// A call's outcome with what its attempts tell.
#[derive(Debug, Clone)]
pub struct Report {
    pub outcome: Outcome,
    pub attempts: u32,
    /// Whether any attempt may have reached the participant. False only when every attempt
    /// failed to connect, so the participant certainly changed nothing.
    pub possibly_applied: bool,
    pub duration: Duration,
}

impl Report {
    /// Returns whether an attempt before the last one had an unknown outcome.
    pub fn had_unknown_attempt(&self) -> bool {
        self.possibly_applied && self.attempts > 1
    }
}

/// Result of one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AttemptResult {
    ConnectFailed,
    NoAnswer,
    Status(u16),
}

/// The attempts of one call, filled in by [`AttemptObserver`] for each try.
#[derive(Debug, Clone, Default)]
struct AttemptLog(Arc<Mutex<Vec<AttemptResult>>>);

/// The `service` and `endpoint` labels of a call's metrics.
#[derive(Debug, Clone)]
struct CallLabels {
    service: &'static str,
    endpoint: &'static str,
}

/// Clients for each participant with their own timeout and retry budget.
#[derive(Clone)]
pub struct ParticipantClient {
    urls: ParticipantUrls,
    patient: ClientWithMiddleware,
    therapist: ClientWithMiddleware,
    matching: ClientWithMiddleware,
    timeouts: [Duration; 3],
}

impl ParticipantClient {
    pub fn new(urls: ParticipantUrls, engine: &EngineSettings) -> Self {
        let build = |participant: Participant| {
            let policy = ExponentialBackoff::builder()
                .retry_bounds(
                    Duration::from_millis(engine.retry_min_interval_ms),
                    Duration::from_millis(engine.retry_max_interval_ms.max(1)),
                )
                .jitter(Jitter::Bounded)
                .build_with_max_retries(engine.max_retries(participant));

            let http = reqwest::Client::builder()
                .connect_timeout(engine.timeout(participant).min(Duration::from_secs(2)))
                .pool_idle_timeout(Duration::from_secs(30))
                .build()
                .unwrap_or_default();

            ClientBuilder::new(http)
                .with(
                    RetryTransientMiddleware::new_with_policy(policy)
                        .with_retry_log_level(tracing::Level::DEBUG),
                )
                .with(AttemptObserver)
                .build()
        };

        Self {
            patient: build(Participant::Patient),
            therapist: build(Participant::Therapist),
            matching: build(Participant::Matching),
            timeouts: [
                engine.timeout(Participant::Patient),
                engine.timeout(Participant::Therapist),
                engine.timeout(Participant::Matching),
            ],
            urls,
        }
    }

    fn client(&self, participant: Participant) -> (&ClientWithMiddleware, Duration) {
        match participant {
            Participant::Patient => (&self.patient, self.timeouts[0]),
            Participant::Therapist => (&self.therapist, self.timeouts[1]),
            Participant::Matching => (&self.matching, self.timeouts[2]),
        }
    }

    /// Sends a call with retries and reports its outcome. It never fails: a transport error
    /// after the last retry is an [`Outcome::NoAnswer`].
    pub async fn send(&self, call: Call<'_>) -> Report {
        let started = Instant::now();
        let (client, timeout) = self.client(call.participant);
        let url = format!("{}{}", self.urls.base_url(call.participant), call.path);
        let method = Method::from_bytes(call.method.as_bytes()).unwrap_or(Method::GET);

        let log = AttemptLog::default();
        let mut request = client
            .request(method, &url)
            .timeout(timeout)
            .with_extension(log.clone())
            .with_extension(CallLabels {
                service: call.participant.as_str(),
                endpoint: call.endpoint,
            });
        if let Some(body) = &call.body {
            request = request.json(body);
        }
        for (name, value) in [
            ("idempotency-key", call.idempotency_key.as_deref()),
            ("x-saga-id", call.saga_id.as_deref()),
            ("x-saga-step", call.step),
            ("traceparent", call.traceparent.as_deref()),
        ] {
            if let Some(value) = value {
                request = request.header(name, value);
            }
        }

        let outcome = match request.send().await {
            Ok(response) => {
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
                if is_transient(status) {
                    Outcome::NoAnswer {
                        error: String::new(),
                        source: format!("{status}: {}", preview(&body)),
                    }
                } else {
                    Outcome::Answered { status, body }
                }
            }
            Err(error) => Outcome::NoAnswer {
                error: String::new(),
                source: error.to_string(),
            },
        };

        let attempts = log.0.lock().map(|log| log.clone()).unwrap_or_default();
        let outcome = match outcome {
            Outcome::NoAnswer { source, .. } => Outcome::NoAnswer {
                error: describe_failure(&attempts, &source),
                source,
            },
            answered => answered,
        };
        if matches!(outcome, Outcome::NoAnswer { .. }) {
            metrics::retries_exhausted(call.participant.as_str(), call.endpoint);
        }
        Report {
            outcome,
            attempts: u32::try_from(attempts.len().max(1)).unwrap_or(u32::MAX),
            possibly_applied: attempts
                .iter()
                .any(|attempt| *attempt != AttemptResult::ConnectFailed),
            duration: started.elapsed(),
        }
    }
}

fn is_transient(status: StatusCode) -> bool {
    status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
}

/// Describes how a call's attempts failed, from the last one.
fn describe_failure(attempts: &[AttemptResult], source: &str) -> String {
    let count = attempts.len().max(1);

    match attempts.last() {
        Some(AttemptResult::ConnectFailed) => {
            format!("connection refused or unreachable ({count} attempts)")
        }
        Some(AttemptResult::NoAnswer) => {
            format!("no answer in time or connection reset ({count} attempts): {source}")
        }
        Some(AttemptResult::Status(status)) => {
            format!("answered {status} ({count} attempts): {source}")
        }
        None => format!("request failed: {source}"),
    }
}

/// Returns at most 200 characters of a response body for error messages.
pub fn preview(body: &Value) -> String {
    let text = match body {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    text.chars().take(200).collect()
}

/// Middleware inside the retry layer that observes each attempt. It records the result,
/// counts it in `api_calls_total`, and waits out a `Retry-After` before the next attempt.
struct AttemptObserver;

#[async_trait::async_trait]
impl Middleware for AttemptObserver {
    async fn handle(
        &self,
        request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let labels = extensions.get::<CallLabels>().cloned();
        let log = extensions.get::<AttemptLog>().cloned();

        let result = next.run(request, extensions).await;

        let attempt = match &result {
            Ok(response) => AttemptResult::Status(response.status().as_u16()),
            Err(reqwest_middleware::Error::Reqwest(error)) if error.is_connect() => {
                AttemptResult::ConnectFailed
            }
            Err(_) => AttemptResult::NoAnswer,
        };
        if let Some(log) = log {
            if let Ok(mut entries) = log.0.lock() {
                entries.push(attempt);
            }
        }
        if let Some(labels) = labels {
            let status = match attempt {
                AttemptResult::Status(code) => code.to_string(),
                AttemptResult::ConnectFailed => "connect_error".to_owned(),
                AttemptResult::NoAnswer => "no_answer".to_owned(),
            };
            metrics::api_call(labels.service, labels.endpoint, status);
        }

        if let Ok(response) = &result {
            if let Some(wait) = retry_after(response) {
                tokio::time::sleep(wait).await;
            }
        }
        result
    }
}

/// Returns the wait a 429 or 503 response requests, when it is given in seconds and short
/// enough to wait for.
fn retry_after(response: &Response) -> Option<Duration> {
    let status = response.status();
    if status != StatusCode::TOO_MANY_REQUESTS && status != StatusCode::SERVICE_UNAVAILABLE {
        return None;
    }

    let seconds: u64 = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;

    Some(Duration::from_secs(seconds).min(MAX_RETRY_AFTER))
}
