//! The Curavani saga coordinator: it receives commands that change patients and therapists
//! across services, runs each as a durable saga over the participant services, compensates
//! when a step fails for good, and shows every saga through a status API.

pub mod api;
pub mod app;
pub mod cli;
pub mod dev;
pub mod engine;
pub mod metrics;
pub mod participant;
pub mod recovery;
pub mod redact;
pub mod saga;
pub mod settings;
pub mod store;
