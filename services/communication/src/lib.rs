//! The communication service: emails and phone calls with patients and therapists.
//!
//! When an email to a patient is sent or gets a reply, or a phone call with a patient is
//! completed, the service reports the contact to the saga coordinator. The report is written
//! to the `contact_outbox` table in the same transaction as the change, and a background task
//! delivers it, retrying with backoff until the coordinator accepts or rejects it. A change
//! never fails because the coordinator is down.

mod deliverer;
mod emails;
mod fields;
mod metrics;
mod outbox;
mod phone_calls;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::routing::get;
use axum::Router;
use kit::config::ServiceSettings;
use kit::db::{Database, Migrations};
use sqlx::migrate::Migrator;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use utoipa::OpenApi;

use deliverer::spawn_outbox_deliverer;

/// Port of the service when `BIND_ADDR` is not set.
pub const DEFAULT_PORT: u16 = 8084;

static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");
static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");

/// How long `run` waits for the outbox deliverer to finish its current batch at shutdown.
const DELIVERER_STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Settings of the communication service.
#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    #[command(flatten)]
    pub common: ServiceSettings,

    /// Base URL of the saga coordinator, which receives the patient contact reports.
    #[arg(long, env = "COORDINATOR_URL", default_value = "http://127.0.0.1:8080")]
    pub coordinator_url: reqwest::Url,

    /// Interval in milliseconds at which the outbox deliverer looks for reports that are due
    /// for a retry. A new report is sent at once, without waiting for this interval.
    #[arg(
        long,
        env = "OUTBOX_POLL_INTERVAL_MS",
        default_value_t = 1000,
        value_parser = clap::value_parser!(u64).range(1..=3_600_000)
    )]
    pub outbox_poll_interval_ms: u64,
}

/// State shared by the request handlers.
#[derive(Clone)]
pub(crate) struct AppState {
    pub db: Database,
    /// Wakes the outbox deliverer after a commit that added a report.
    pub wake_deliverer: Arc<Notify>,
    /// Kept only so that the deliverer stops when the last copy of the router is dropped.
    _deliverer_stop: Arc<watch::Sender<bool>>,
}

impl AppState {
    /// Wakes the deliverer when `added_report` is true.
    pub fn report_added(&self, added_report: bool) {
        if added_report {
            self.wake_deliverer.notify_one();
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Communication service",
        description = "Emails and phone calls; patient contacts are reported to the coordinator."
    ),
    paths(
        emails::create_email,
        emails::list_emails,
        emails::get_email,
        emails::update_email,
        emails::delete_email,
        phone_calls::create_phone_call,
        phone_calls::list_phone_calls,
        phone_calls::get_phone_call,
        phone_calls::update_phone_call,
        phone_calls::delete_phone_call,
        outbox::list_contact_outbox,
    ),
    components(schemas(kit::error::Problem))
)]
struct ApiDoc;

/// The router together with the handle of its outbox deliverer.
struct Assembled {
    router: Router,
    deliverer: tokio::task::JoinHandle<()>,
    stop: Arc<watch::Sender<bool>>,
}

/// Opens and migrates the database, starts the outbox deliverer and returns the service's
/// router. The deliverer stops when the last copy of the router is dropped.
pub async fn build_app(settings: &Settings) -> anyhow::Result<Router> {
    let assembled = assemble(settings).await?;
    Ok(assembled.router)
}

/// Serves the API until SIGTERM, Ctrl-C or, with `exit_with_parent`, the end of standard
/// input, then stops the outbox deliverer.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let Assembled {
        router,
        deliverer,
        stop,
    } = assemble(&settings).await?;

    let address = settings.common.bind_addr_or(DEFAULT_PORT);
    let listener = TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot bind {address}; set BIND_ADDR to a free address"))?;
    tracing::info!(bind.address = %address, "communication service listening");

    let exit_with_parent = settings.common.exit_with_parent;
    let shutdown_stop = stop.clone();
    let shutdown = async move {
        kit::server::shutdown_signal(exit_with_parent).await;
        let _ = shutdown_stop.send(true);
    };
    kit::server::serve(listener, router, shutdown).await?;

    let _ = stop.send(true);
    if tokio::time::timeout(DELIVERER_STOP_TIMEOUT, deliverer)
        .await
        .is_err()
    {
        tracing::warn!("outbox deliverer did not stop in time; pending reports stay queued");
    }
    tracing::info!("communication service stopped");
    Ok(())
}

async fn assemble(settings: &Settings) -> anyhow::Result<Assembled> {
    let db = Database::open(
        &settings.common.database_url,
        Migrations {
            postgres: &POSTGRES_MIGRATIONS,
            sqlite: &SQLITE_MIGRATIONS,
        },
    )
    .await?;
    kit::idempotency::ensure_table(&db)
        .await
        .context("cannot create the idempotency table")?;

    let wake = Arc::new(Notify::new());
    let (stop, stop_receiver) = watch::channel(false);
    let stop = Arc::new(stop);
    let deliverer = spawn_outbox_deliverer(db.clone(), settings, wake.clone(), stop_receiver)?;

    let state = AppState {
        db: db.clone(),
        wake_deliverer: wake,
        _deliverer_stop: stop.clone(),
    };
    let api = Router::new()
        .route(
            "/api/emails",
            get(emails::list_emails).post(emails::create_email),
        )
        .route(
            "/api/emails/{id}",
            get(emails::get_email)
                .patch(emails::update_email)
                .delete(emails::delete_email),
        )
        .route(
            "/api/phone-calls",
            get(phone_calls::list_phone_calls).post(phone_calls::create_phone_call),
        )
        .route(
            "/api/phone-calls/{id}",
            get(phone_calls::get_phone_call)
                .patch(phone_calls::update_phone_call)
                .delete(phone_calls::delete_phone_call),
        )
        .route("/api/contact-outbox", get(outbox::list_contact_outbox))
        .with_state(state);

    let router = kit::server::app(
        "communication",
        api,
        db,
        ApiDoc::openapi(),
        settings.common.max_body_bytes,
    );
    metrics::describe();

    Ok(Assembled {
        router,
        deliverer,
        stop,
    })
}
