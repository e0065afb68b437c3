//! The coordinator's settings: flags with one environment variable each, so that a missing
//! or invalid value stops start-up with a message naming it.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;
use kit::config::LogFormat;

use crate::saga::Participant;

/// Settings of `coordinator serve`. Their `Debug` form hides the database password.
#[derive(Clone, Args)]
pub struct Settings {
    /// Saga store URL: `postgres://...` or `sqlite://path/to/file.db`.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,

    /// Address and port the HTTP server binds to.
    #[arg(long, env = "BIND_ADDR", default_value = "127.0.0.1:8080")]
    pub bind_addr: SocketAddr,

    #[command(flatten)]
    pub participants: ParticipantUrls,

    #[command(flatten)]
    pub engine: EngineSettings,

    /// How long a command waits for its saga's outcome before it responds with 202,
    /// in milliseconds. `Prefer: wait=N` overrides it per request.
    #[arg(long, env = "COMMAND_WAIT_MS", default_value_t = 5000)]
    pub command_wait_ms: u64,

    /// Largest request body accepted, in bytes.
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 64 * 1024)]
    pub max_body_bytes: usize,

    /// Log output format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Stop when standard input closes (set by `coordinator dev` for its children).
    #[arg(long, env = "EXIT_WITH_PARENT", default_value_t = false, hide = true)]
    pub exit_with_parent: bool,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Settings")
            .field("database_url", &kit::db::redact_url(&self.database_url))
            .field("bind_addr", &self.bind_addr)
            .field("participants", &self.participants)
            .field("engine", &self.engine)
            .field("command_wait_ms", &self.command_wait_ms)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("log_format", &self.log_format)
            .field("exit_with_parent", &self.exit_with_parent)
            .finish()
    }
}

/// Base URLs of the participant services.
#[derive(Debug, Clone, Args)]
pub struct ParticipantUrls {
    /// Base URL of the patient service.
    #[arg(
        long,
        env = "PATIENT_SERVICE_URL",
        default_value = "http://127.0.0.1:8081"
    )]
    pub patient_service_url: String,

    /// Base URL of the therapist service.
    #[arg(
        long,
        env = "THERAPIST_SERVICE_URL",
        default_value = "http://127.0.0.1:8082"
    )]
    pub therapist_service_url: String,

    /// Base URL of the matching service.
    #[arg(
        long,
        env = "MATCHING_SERVICE_URL",
        default_value = "http://127.0.0.1:8083"
    )]
    pub matching_service_url: String,
}

/// Engine settings: leases, sweeps, timeouts and retry budgets.
#[derive(Debug, Clone, Args)]
pub struct EngineSettings {
    /// Name of this coordinator process in leases. Defaults to a random id. Give each
    /// replica a stable one (the pod name), so that a restarted process resumes its own
    /// sagas at once instead of after the lease expires.
    #[arg(long, env = "REPLICA_ID")]
    pub replica_id: Option<String>,

    /// How long a replica's claim on a saga lasts without renewal, in milliseconds. Another
    /// replica takes over a saga whose lease expired.
    #[arg(long, env = "LEASE_DURATION_MS", default_value_t = 15_000)]
    pub lease_duration_ms: u64,

    /// How often each replica looks for unfinished sagas that are due, in milliseconds.
    #[arg(long, env = "SWEEP_INTERVAL_MS", default_value_t = 2_000)]
    pub sweep_interval_ms: u64,

    /// Timeout of one call to the patient service, in milliseconds.
    #[arg(long, env = "PATIENT_TIMEOUT_MS", default_value_t = 5_000)]
    pub patient_timeout_ms: u64,

    /// Timeout of one call to the therapist service, in milliseconds.
    #[arg(long, env = "THERAPIST_TIMEOUT_MS", default_value_t = 5_000)]
    pub therapist_timeout_ms: u64,

    /// Timeout of one call to the matching service, in milliseconds.
    #[arg(long, env = "MATCHING_TIMEOUT_MS", default_value_t = 5_000)]
    pub matching_timeout_ms: u64,

    /// Retries of one call to the patient service after the first attempt.
    #[arg(long, env = "PATIENT_MAX_RETRIES", default_value_t = 3)]
    pub patient_max_retries: u32,

    /// Retries of one call to the therapist service after the first attempt.
    #[arg(long, env = "THERAPIST_MAX_RETRIES", default_value_t = 3)]
    pub therapist_max_retries: u32,

    /// Retries of one call to the matching service after the first attempt.
    #[arg(long, env = "MATCHING_MAX_RETRIES", default_value_t = 3)]
    pub matching_max_retries: u32,

    /// Minimum wait between two attempts of one call, in milliseconds.
    #[arg(long, env = "RETRY_MIN_INTERVAL_MS", default_value_t = 100)]
    pub retry_min_interval_ms: u64,

    /// Maximum wait between two attempts of one call, in milliseconds.
    #[arg(long, env = "RETRY_MAX_INTERVAL_MS", default_value_t = 2_000)]
    pub retry_max_interval_ms: u64,

    /// First wait after a step's retries are spent, before the step is tried again, in
    /// milliseconds; it doubles each time up to `--round-backoff-max-ms`.
    #[arg(long, env = "ROUND_BACKOFF_BASE_MS", default_value_t = 2_000)]
    pub round_backoff_base_ms: u64,

    /// Maximum wait between two rounds of a step, in milliseconds.
    #[arg(long, env = "ROUND_BACKOFF_MAX_MS", default_value_t = 300_000)]
    pub round_backoff_max_ms: u64,

    /// Spent rounds after which a saga shows `needs_attention` (it is still retried).
    #[arg(long, env = "ATTENTION_AFTER_ROUNDS", default_value_t = 3)]
    pub attention_after_rounds: u32,
}

impl EngineSettings {
    pub fn timeout(&self, participant: Participant) -> Duration {
        Duration::from_millis(match participant {
            Participant::Patient => self.patient_timeout_ms,
            Participant::Therapist => self.therapist_timeout_ms,
            Participant::Matching => self.matching_timeout_ms,
        })
    }

    pub fn max_retries(&self, participant: Participant) -> u32 {
        match participant {
            Participant::Patient => self.patient_max_retries,
            Participant::Therapist => self.therapist_max_retries,
            Participant::Matching => self.matching_max_retries,
        }
    }

    pub fn lease_duration(&self) -> Duration {
        Duration::from_millis(self.lease_duration_ms)
    }

    pub fn sweep_interval(&self) -> Duration {
        Duration::from_millis(self.sweep_interval_ms.max(10))
    }

    /// Returns the wait before round `round` (1 for the first repeat) of a step, with
    /// jitter of up to a quarter of the wait.
    pub fn round_backoff(&self, round: u32) -> Duration {
        let exponent = round.saturating_sub(1).min(20);
        let base = self.round_backoff_base_ms.saturating_mul(1 << exponent);
        let capped = base.min(self.round_backoff_max_ms);
        let jitter = fastrand::u64(0..=capped / 4);
        Duration::from_millis(capped - capped / 8 + jitter / 2)
    }
}

impl ParticipantUrls {
    pub fn base_url(&self, participant: Participant) -> &str {
        let url = match participant {
            Participant::Patient => &self.patient_service_url,
            Participant::Therapist => &self.therapist_service_url,
            Participant::Matching => &self.matching_service_url,
        };
        url.trim_end_matches('/')
    }
}
