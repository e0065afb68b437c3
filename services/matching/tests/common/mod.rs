//! Test harness: the matching service on a fresh database, served on a free port, with
//! typed request helpers.

#![allow(dead_code)]

use clap::Parser;
use kit::testing::{create_postgres_database, spawn, TestServer};
use matching_service::{build_app, Settings};
use reqwest::StatusCode;
use serde_json::{json, Value};

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    settings: Settings,
}

/// A running matching service and the URL of its database.
pub struct TestApp {
    pub server: TestServer,
    pub database_url: String,
    pub client: reqwest::Client,
}

/// A response's status, headers and JSON body.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

/// Starts the service on its own new PostgreSQL database.
pub async fn spawn_postgres() -> TestApp {
    let url = create_postgres_database("matching_test")
        .await
        .expect("create the test database");
    spawn_with(url).await
}

/// Starts the service on a new SQLite file in the temporary folder.
pub async fn spawn_sqlite() -> TestApp {
    let path = std::env::temp_dir().join(format!("matching-{}.db", uuid::Uuid::new_v4()));
    spawn_with(format!("sqlite://{}", path.display())).await
}

async fn spawn_with(database_url: String) -> TestApp {
    if std::env::var_os("TEST_LOG").is_some() {
        kit::telemetry::init(kit::config::LogFormat::Text);
    }
    let cli = Cli::parse_from(["matching-service", "--database-url", &database_url]);
    let app = build_app(&cli.settings).await.expect("build the app");
    let server = spawn(app).await.expect("serve the app");
    TestApp {
        server,
        database_url,
        client: reqwest::Client::new(),
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.base_url)
    }

    /// Sends a request with an optional JSON body and headers.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut request = self.client.request(method, self.url(path));
        if let Some(body) = body {
            request = request.json(body);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }

        let response = request.send().await.expect("send the request");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("read the body");

        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };

        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(reqwest::Method::GET, path, None, &[]).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.send(reqwest::Method::POST, path, Some(body), &[])
            .await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Reply {
        self.send(reqwest::Method::PATCH, path, Some(body), &[])
            .await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send(reqwest::Method::DELETE, path, None, &[]).await
    }

    /// Posts to a cascade or compensation endpoint with the coordinator's headers.
    pub async fn saga_post(&self, path: &str, body: &Value, key: &str, saga_id: &str) -> Reply {
        self.send(
            reqwest::Method::POST,
            path,
            Some(body),
            &[
                ("Idempotency-Key", key),
                ("X-Saga-Id", saga_id),
                ("X-Saga-Step", "cascade"),
            ],
        )
        .await
    }

    /// Creates a Platzsuche and returns its id.
    pub async fn create_platzsuche(&self, body: Value) -> i64 {
        let reply = self.post("/api/platzsuchen", &body).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        reply.body["id"].as_i64().expect("id")
    }

    /// Creates a Therapeutenanfrage and returns its id.
    pub async fn create_anfrage(&self, body: Value) -> i64 {
        let reply = self.post("/api/therapeutenanfragen", &body).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        reply.body["id"].as_i64().expect("id")
    }

    /// Returns every Platzsuche and Therapeutenanfrage as the API shows them, without
    /// `updated_at`, which compensation sets anew.
    pub async fn snapshot(&self) -> Value {
        let mut snapshot = json!({});
        for path in ["/api/platzsuchen", "/api/therapeutenanfragen"] {
            let reply = self.get(&format!("{path}?limit=500")).await;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
            let mut items = reply.body["items"].as_array().expect("items").clone();
            for item in &mut items {
                item.as_object_mut().expect("object").remove("updated_at");
            }
            snapshot[path] = Value::Array(items);
        }
        snapshot
    }
}

/// Returns the exclusions of a Platzsuche body as (therapist_id, ausgeschlossen_von) pairs.
pub fn exclusions(platzsuche: &Value) -> Vec<(i64, String)> {
    platzsuche["ausschluesse"]
        .as_array()
        .expect("ausschluesse")
        .iter()
        .map(|entry| {
            (
                entry["therapist_id"].as_i64().expect("therapist_id"),
                entry["ausgeschlossen_von"]
                    .as_str()
                    .expect("ausgeschlossen_von")
                    .to_owned(),
            )
        })
        .collect()
}
