//! Test harness: the service on a fresh database, and a fake coordinator that records the
//! contact reports it receives.

#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use communication_service::Settings;
use kit::config::{LogFormat, ServiceSettings};
use kit::testing::TestServer;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long a test waits for the service to reach an expected state.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// A running service with its HTTP client.
pub struct Service {
    pub server: TestServer,
    pub client: reqwest::Client,
}

impl Service {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.base_url)
    }

    pub async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .expect("POST reaches the service")
    }

    pub async fn patch(&self, path: &str, body: Value) -> reqwest::Response {
        self.client
            .patch(self.url(path))
            .json(&body)
            .send()
            .await
            .expect("PATCH reaches the service")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("GET reaches the service")
    }

    /// Creates a resource and returns its body, failing the test on any status but 201.
    pub async fn create(&self, path: &str, body: Value) -> Value {
        let response = self.post(path, body).await;
        assert_eq!(response.status(), 201, "create at {path}");
        response.json().await.expect("JSON body")
    }

    /// Returns every outbox row, in id order.
    pub async fn outbox(&self) -> Vec<Value> {
        let response = self.get("/api/contact-outbox?limit=500").await;
        assert_eq!(response.status(), 200);
        let page: Value = response.json().await.expect("JSON body");
        page["items"].as_array().cloned().unwrap_or_default()
    }

    /// Polls the outbox until `condition` holds for the row of `source_id`, and returns it.
    pub async fn wait_for_outbox_row(
        &self,
        source_id: &str,
        condition: impl Fn(&Value) -> bool,
    ) -> Value {
        let found = wait_until(|| async {
            self.outbox()
                .await
                .into_iter()
                .find(|row| row["source_id"] == source_id && condition(row))
        })
        .await;

        match found {
            Some(row) => row,
            None => panic!(
                "outbox row {source_id} did not reach the expected state; outbox: {:#?}",
                self.outbox().await
            ),
        }
    }
}

/// Builds settings for a service on `database_url` that reports to `coordinator_url`.
pub fn settings(database_url: String, coordinator_url: &str, poll_interval_ms: u64) -> Settings {
    Settings {
        common: ServiceSettings {
            database_url,
            bind_addr: None,
            max_body_bytes: 64 * 1024,
            log_format: LogFormat::Text,
            exit_with_parent: false,
        },
        coordinator_url: coordinator_url.parse().expect("valid coordinator URL"),
        outbox_poll_interval_ms: poll_interval_ms,
    }
}

/// Starts the service on a new PostgreSQL database.
pub async fn spawn_on_postgres(coordinator_url: &str, poll_interval_ms: u64) -> Service {
    let database_url = kit::testing::create_postgres_database("communication")
        .await
        .expect("test database created");
    spawn(settings(database_url, coordinator_url, poll_interval_ms)).await
}

/// Starts the service with `settings`.
pub async fn spawn(settings: Settings) -> Service {
    let app = communication_service::build_app(&settings)
        .await
        .expect("app builds");
    let server = kit::testing::spawn(app).await.expect("app serves");
    Service {
        server,
        client: reqwest::Client::new(),
    }
}

/// Calls `probe` until it returns a value or `DEADLINE` passes.
pub async fn wait_until<T, F, Fut>(probe: F) -> Option<T>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;

    loop {
        if let Some(value) = probe().await {
            return Some(value);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A request the fake coordinator received.
#[derive(Debug, Clone)]
pub struct ReceivedReport {
    pub idempotency_key: Option<String>,
    pub prefer: Option<String>,
    pub body: Value,
}

#[derive(Default)]
struct FakeState {
    received: Mutex<Vec<ReceivedReport>>,
    status: AtomicU16,
}

/// A coordinator stand-in on 127.0.0.1 that records `record-patient-contact` requests and
/// responds with a status the test sets. It can be stopped and started again on its port.
pub struct FakeCoordinator {
    pub address: SocketAddr,
    state: Arc<FakeState>,
    running: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
}

impl FakeCoordinator {
    /// Starts the fake on a free port. It responds with 202 until `answer_with` sets another
    /// status.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("fake coordinator binds");
        let address = listener.local_addr().expect("bound address");

        let state = Arc::new(FakeState {
            received: Mutex::new(Vec::new()),
            status: AtomicU16::new(202),
        });

        let mut fake = Self {
            address,
            state,
            running: None,
        };

        fake.serve(listener);
        fake
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Makes the fake respond to every later report with `status`.
    pub fn answer_with(&self, status: u16) {
        self.state.status.store(status, Ordering::SeqCst);
    }

    /// Returns the reports received so far.
    pub fn received(&self) -> Vec<ReceivedReport> {
        self.state.received.lock().expect("lock").clone()
    }

    /// Returns the reports received so far with this `source_id`.
    pub fn received_for(&self, source_id: &str) -> Vec<ReceivedReport> {
        self.received()
            .into_iter()
            .filter(|report| report.body["source_id"] == source_id)
            .collect()
    }

    /// Stops serving and closes the port and every open connection.
    pub async fn stop(&mut self) {
        if let Some((shutdown, task)) = self.running.take() {
            let _ = shutdown.send(());
            tokio::time::timeout(DEADLINE, task)
                .await
                .expect("fake coordinator stops")
                .expect("fake coordinator task ends cleanly");
        }
    }

    /// Serves again on the same port.
    pub async fn restart(&mut self) {
        self.stop().await;
        let listener = TcpListener::bind(self.address)
            .await
            .expect("fake coordinator binds its port again");
        self.serve(listener);
    }

    fn serve(&mut self, listener: TcpListener) {
        let app = Router::new()
            .route(
                "/api/v1/commands/record-patient-contact",
                post(record_contact),
            )
            .with_state(self.state.clone());

        let (shutdown, shutdown_received) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = shutdown_received.await;
                })
                .await;
        });

        self.running = Some((shutdown, task));
    }
}

async fn record_contact(
    State(state): State<Arc<FakeState>>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> (StatusCode, axum::Json<Value>) {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    state.received.lock().expect("lock").push(ReceivedReport {
        idempotency_key: header("idempotency-key"),
        prefer: header("prefer"),
        body,
    });

    let status = StatusCode::from_u16(state.status.load(Ordering::SeqCst))
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let answer = if status.is_success() {
        serde_json::json!({ "saga_id": "fake", "status": "accepted" })
    } else {
        serde_json::json!({ "title": "refused by the fake coordinator", "status": status.as_u16() })
    };
    (status, axum::Json(answer))
}
