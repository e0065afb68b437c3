//! Settings every participant service shares. Each one is a flag with an environment variable
//! of the same name, so a missing or invalid value stops start-up with a message naming it.

use std::net::SocketAddr;

use clap::{Args, ValueEnum};

/// Settings shared by the patient, therapist, matching and communication services. Their
/// `Debug` form hides the database password.
#[derive(Clone, Args)]
pub struct ServiceSettings {
    /// Database URL: `postgres://...` or `sqlite://path/to/file.db`.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,

    /// Address and port the HTTP server binds to; each service has its own default port on
    /// 127.0.0.1.
    #[arg(long, env = "BIND_ADDR")]
    pub bind_addr: Option<SocketAddr>,

    /// Largest request body accepted, in bytes; larger bodies get 413.
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 64 * 1024)]
    pub max_body_bytes: usize,

    /// Log output format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Stop when standard input closes. The `dev` supervisor sets this so that its children
    /// stop with it, also when it is killed.
    #[arg(long, env = "EXIT_WITH_PARENT", default_value_t = false)]
    pub exit_with_parent: bool,
}

impl std::fmt::Debug for ServiceSettings {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ServiceSettings")
            .field("database_url", &crate::db::redact_url(&self.database_url))
            .field("bind_addr", &self.bind_addr)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("log_format", &self.log_format)
            .field("exit_with_parent", &self.exit_with_parent)
            .finish()
    }
}

impl ServiceSettings {
    /// Returns the bind address, or 127.0.0.1 with `default_port`.
    pub fn bind_addr_or(&self, default_port: u16) -> SocketAddr {
        self.bind_addr
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], default_port)))
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_database_password() {
        let settings = ServiceSettings {
            database_url: "postgres://app:secret@db/patient".to_owned(),
            bind_addr: None,
            max_body_bytes: 1,
            log_format: LogFormat::Text,
            exit_with_parent: false,
        };

        let text = format!("{settings:?}");

        assert!(!text.contains("secret"), "{text}");
        assert!(text.contains("postgres://app:***@db/patient"), "{text}");
    }
}
