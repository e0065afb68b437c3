//! Shared plumbing of the participant services: configuration, database access, the HTTP
//! error type, request extractors, the idempotency contract and the server with its health,
//! readiness and metrics routes.

pub mod clock;
pub mod config;
pub mod db;
pub mod error;
pub mod extract;
pub mod idempotency;
pub mod pagination;
pub mod server;
pub mod telemetry;
pub mod testing;

pub use error::ApiError;
