//! End-to-end tests of the therapist API over real HTTP, each on its own database.

use std::collections::BTreeSet;

use kit::config::{LogFormat, ServiceSettings};
use kit::testing::TestServer;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use therapist_service::{build_app, Settings};

const BODY_LIMIT: usize = 64 * 1024;

/// A therapist service on its own database, with a client for it.
struct TestService {
    server: TestServer,
    client: reqwest::Client,
}

impl TestService {
    async fn on_postgres() -> Self {
        let url = kit::testing::create_postgres_database("therapist")
            .await
            .expect("create a test database");
        Self::on(url).await
    }

    async fn on_sqlite() -> Self {
        let path = std::env::temp_dir().join(format!("therapist-{}.db", uuid::Uuid::new_v4()));
        Self::on(format!("sqlite://{}", path.display())).await
    }

    async fn on(database_url: String) -> Self {
        if std::env::var_os("TEST_LOG").is_some() {
            kit::telemetry::init(LogFormat::Text);
        }

        let settings = Settings {
            common: ServiceSettings {
                database_url,
                bind_addr: None,
                max_body_bytes: BODY_LIMIT,
                log_format: LogFormat::Text,
                exit_with_parent: false,
            },
        };

        let app = build_app(&settings).await.expect("build the app");
        let server = kit::testing::spawn(app).await.expect("serve the app");
        Self {
            server,
            client: reqwest::Client::new(),
        }
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.server.base_url))
    }

    async fn create_therapist(&self, body: Value) -> Value {
        let response = self
            .request(Method::POST, "/api/therapists")
            .json(&body)
            .send()
            .await
            .expect("send create");
        assert_eq!(response.status(), StatusCode::CREATED, "create {body}");
        response.json().await.expect("therapist body")
    }

    async fn create_default_therapist(&self) -> i64 {
        let therapist = self
            .create_therapist(json!({"vorname": "Max", "nachname": "Muster", "titel": "Dr."}))
            .await;
        therapist["id"].as_i64().expect("therapist id")
    }

    async fn get_therapist(&self, id: i64) -> reqwest::Response {
        self.request(Method::GET, &format!("/api/therapists/{id}"))
            .send()
            .await
            .expect("send get")
    }

    async fn therapist(&self, id: i64) -> Value {
        let response = self.get_therapist(id).await;
        assert_eq!(response.status(), StatusCode::OK, "get therapist {id}");
        response.json().await.expect("therapist body")
    }

    async fn patch(
        &self,
        id: i64,
        saga: Option<&str>,
        key: Option<&str>,
        body: Value,
    ) -> reqwest::Response {
        let mut request = self
            .request(Method::PATCH, &format!("/api/therapists/{id}"))
            .json(&body);

        if let Some(saga) = saga {
            request = request.header("X-Saga-Id", saga);
        }
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }

        request.send().await.expect("send patch")
    }

    /// Blocks therapist `id` the way the block-therapist saga does.
    async fn block(&self, id: i64, saga: &str) -> reqwest::Response {
        let body = json!({"status": "gesperrt", "sperrgrund": "Beschwerde"});
        let key = format!("{saga}:set-status:forward");
        self.patch(id, Some(saga), Some(&key), body).await
    }

    async fn metrics(&self) -> String {
        self.request(Method::GET, "/metrics")
            .send()
            .await
            .expect("send metrics")
            .text()
            .await
            .expect("metrics text")
    }

    /// Returns every therapist, following the pages.
    async fn all_therapists(&self) -> Vec<Value> {
        let mut therapists = Vec::new();
        let mut after = 0;
        for _ in 0..1000 {
            let page: Value = self
                .request(
                    Method::GET,
                    &format!("/api/therapists?limit=500&after={after}"),
                )
                .send()
                .await
                .expect("send list")
                .json()
                .await
                .expect("page body");

            therapists.extend(page["items"].as_array().expect("items").iter().cloned());
            match page["next_after"].as_i64() {
                Some(next) => after = next,
                None => return therapists,
            }
        }
        panic!("the list did not end within 1000 pages");
    }
}

#[tokio::test]
async fn create_returns_therapist_with_defaults() {
    let service = TestService::on_postgres().await;

    let therapist = service
        .create_therapist(json!({"vorname": "Max", "nachname": "Muster", "titel": "Dr."}))
        .await;

    assert_eq!(therapist["status"], "aktiv");
    assert_eq!(therapist["titel"], "Dr.");
    assert_eq!(therapist["sperrgrund"], Value::Null);
    assert_eq!(therapist["gesperrt_seit"], Value::Null);
}

#[tokio::test]
async fn create_as_gesperrt_is_a_conflict() {
    let service = TestService::on_postgres().await;

    let response = service
        .request(Method::POST, "/api/therapists")
        .header("X-Saga-Id", "saga-0")
        .json(&json!({"vorname": "Max", "nachname": "Muster", "status": "gesperrt"}))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::CONFLICT);
    let problem: Value = response.json().await.unwrap();
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("POST /api/v1/commands/block-therapist"),
        "{detail}"
    );
    assert!(service.all_therapists().await.is_empty());
}

#[tokio::test]
async fn direct_block_is_a_conflict_and_changes_nothing() {
    let service = TestService::on_postgres().await;
    let id = service.create_default_therapist().await;
    let before = service.therapist(id).await;

    let response = service
        .patch(
            id,
            None,
            None,
            json!({"status": "gesperrt", "sperrgrund": "Beschwerde"}),
        )
        .await;

    assert_eq!(response.status(), StatusCode::CONFLICT);
    let problem: Value = response.json().await.unwrap();
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("POST /api/v1/commands/block-therapist"),
        "{detail}"
    );
    assert_eq!(service.therapist(id).await, before);
}

#[tokio::test]
async fn block_with_saga_sets_gesperrt_and_sperrgrund() {
    let service = TestService::on_postgres().await;
    let id = service.create_default_therapist().await;

    let response = service.block(id, "saga-1").await;

    assert_eq!(response.status(), StatusCode::OK);
    let therapist: Value = response.json().await.unwrap();
    assert_eq!(therapist["status"], "gesperrt");
    assert_eq!(therapist["sperrgrund"], "Beschwerde");
    assert!(therapist["gesperrt_seit"].as_str().is_some());
    assert_eq!(service.therapist(id).await, therapist);
}

#[tokio::test]
async fn block_without_sperrgrund_is_a_bad_request() {
    let service = TestService::on_postgres().await;
    let id = service.create_default_therapist().await;

    let response = service
        .patch(id, Some("saga-2"), None, json!({"status": "gesperrt"}))
        .await;

    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["field"], "sperrgrund");
    assert_eq!(service.therapist(id).await["status"], "aktiv");
}

#[tokio::test]
async fn block_of_gesperrt_therapist_changes_nothing() {
    let service = TestService::on_postgres().await;
    let id = service.create_default_therapist().await;
    let first: Value = service.block(id, "saga-3").await.json().await.unwrap();

    let response = service
        .patch(
            id,
            Some("saga-4"),
            Some("saga-4:set-status:forward"),
            json!({"status": "gesperrt", "sperrgrund": "Andere Beschwerde"}),
        )
        .await;

    assert_eq!(response.status(), StatusCode::OK);
    let therapist: Value = response.json().await.unwrap();
    assert_eq!(therapist["sperrgrund"], "Beschwerde");
    assert_eq!(therapist["gesperrt_seit"], first["gesperrt_seit"]);
}

#[tokio::test]
async fn repeated_block_replays_first_response() {
    let service = TestService::on_postgres().await;
    let id = service.create_default_therapist().await;
    let first: Value = service.block(id, "saga-5").await.json().await.unwrap();

    let repeat = service.block(id, "saga-5").await;

    assert_eq!(repeat.status(), StatusCode::OK);
    assert_eq!(
        repeat
            .headers()
            .get("idempotent-replayed")
            .and_then(|value| value.to_str().ok()),
        Some("true")
    );
    let repeat_body: Value = repeat.json().await.unwrap();
    assert_eq!(repeat_body, first);
}

#[tokio::test]
async fn same_key_with_another_body_is_unprocessable() {
    let service = TestService::on_postgres().await;
    let id = service.create_default_therapist().await;
    service.block(id, "saga-6").await;

    let response = service
        .patch(
            id,
            Some("saga-6"),
            Some("saga-6:set-status:forward"),
            json!({"status": "gesperrt", "sperrgrund": "Anderer Grund"}),
        )
        .await;

    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(service.therapist(id).await["sperrgrund"], "Beschwerde");
}

#[tokio::test]
async fn direct_unblock_is_a_conflict_and_changes_nothing() {
    let service = TestService::on_postgres().await;
    let id = service.create_default_therapist().await;
    service.block(id, "saga-7").await;
    let before = service.therapist(id).await;

    let response = service
        .patch(id, None, None, json!({"status": "aktiv"}))
        .await;

    assert_eq!(response.status(), StatusCode::CONFLICT);
    let problem: Value = response.json().await.unwrap();
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("POST /api/v1/commands/unblock-therapist"),
        "{detail}"
    );
    assert_eq!(service.therapist(id).await, before);
}

#[tokio::test]
async fn unblock_with_saga_clears_block() {
    let service = TestService::on_postgres().await;
    let id = service.create_default_therapist().await;
    service.block(id, "saga-8").await;

    let response = service
        .patch(
            id,
            Some("saga-9"),
            Some("saga-9:set-status:forward"),
            json!({"status": "aktiv"}),
        )
        .await;

    assert_eq!(response.status(), StatusCode::OK);
    let therapist: Value = response.json().await.unwrap();
    assert_eq!(therapist["status"], "aktiv");
    assert_eq!(therapist["sperrgrund"], Value::Null);
    assert_eq!(therapist["gesperrt_seit"], Value::Null);
}

#[tokio::test]
async fn plain_changes_need_no_saga() {
    let service = TestService::on_postgres().await;
    let id = service.create_default_therapist().await;

    let response = service
        .patch(
            id,
            None,
            None,
            json!({"status": "inaktiv", "telefon": "030 555", "titel": null}),
        )
        .await;

    assert_eq!(response.status(), StatusCode::OK);
    let therapist: Value = response.json().await.unwrap();
    assert_eq!(therapist["status"], "inaktiv");
    assert_eq!(therapist["telefon"], "030 555");
    assert_eq!(therapist["titel"], Value::Null);
}

#[tokio::test]
async fn status_changes_are_counted() {
    let service = TestService::on_postgres().await;
    let id = service.create_default_therapist().await;

    service.block(id, "saga-10").await;
    service.block(id, "saga-10").await;

    let metrics = service.metrics().await;
    let line = metrics
        .lines()
        .find(|line| line.starts_with("therapist_status_changes_total{to=\"gesperrt\"}"))
        .unwrap_or_default();
    assert!(line.ends_with(" 1"), "{metrics}");
}

#[tokio::test]
async fn patch_of_unknown_therapist_is_not_found() {
    let service = TestService::on_postgres().await;

    let response = service
        .patch(999_999, Some("saga-11"), None, json!({"status": "aktiv"}))
        .await;

    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn delete_removes_therapist() {
    let service = TestService::on_postgres().await;
    let id = service.create_default_therapist().await;

    let response = service
        .request(Method::DELETE, &format!("/api/therapists/{id}"))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        service.get_therapist(id).await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn delete_of_unknown_therapist_is_not_found() {
    let service = TestService::on_postgres().await;

    let response = service
        .request(Method::DELETE, "/api/therapists/999999")
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_inputs_get_problem_and_change_nothing() {
    let service = TestService::on_postgres().await;
    let id = service.create_default_therapist().await;
    let before = service.all_therapists().await;
    let therapist = format!("/api/therapists/{id}");
    let oversized = json!({"vorname": "x".repeat(BODY_LIMIT), "nachname": "y"}).to_string();
    let cases: Vec<(&str, Method, &str, Option<String>, StatusCode)> = vec![
        (
            "malformed JSON",
            Method::POST,
            "/api/therapists",
            Some(r#"{"vorname": "#.into()),
            StatusCode::BAD_REQUEST,
        ),
        (
            "vorname of wrong type",
            Method::POST,
            "/api/therapists",
            Some(r#"{"vorname": 5, "nachname": "M"}"#.into()),
            StatusCode::BAD_REQUEST,
        ),
        (
            "missing vorname",
            Method::POST,
            "/api/therapists",
            Some(r#"{"nachname": "M"}"#.into()),
            StatusCode::BAD_REQUEST,
        ),
        (
            "empty nachname",
            Method::POST,
            "/api/therapists",
            Some(r#"{"vorname": "M", "nachname": ""}"#.into()),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "unknown status",
            Method::POST,
            "/api/therapists",
            Some(r#"{"vorname": "M", "nachname": "M", "status": "pausiert"}"#.into()),
            StatusCode::BAD_REQUEST,
        ),
        (
            "bad email",
            Method::POST,
            "/api/therapists",
            Some(r#"{"vorname": "M", "nachname": "M", "email": "a@"}"#.into()),
            StatusCode::BAD_REQUEST,
        ),
        (
            "body over the limit",
            Method::POST,
            "/api/therapists",
            Some(oversized.clone()),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            "id abc",
            Method::GET,
            "/api/therapists/abc",
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            "id 0",
            Method::GET,
            "/api/therapists/0",
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            "id -1",
            Method::GET,
            "/api/therapists/-1",
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            "delete id -1",
            Method::DELETE,
            "/api/therapists/-1",
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            "unknown status filter",
            Method::GET,
            "/api/therapists?status=pausiert",
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            "negative after",
            Method::GET,
            "/api/therapists?after=-5",
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            "patch unknown status",
            Method::PATCH,
            &therapist,
            Some(r#"{"status": "pausiert"}"#.into()),
            StatusCode::BAD_REQUEST,
        ),
        (
            "patch status null",
            Method::PATCH,
            &therapist,
            Some(r#"{"status": null}"#.into()),
            StatusCode::BAD_REQUEST,
        ),
        (
            "patch sperrgrund without block",
            Method::PATCH,
            &therapist,
            Some(r#"{"sperrgrund": "x"}"#.into()),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "patch nachname of wrong type",
            Method::PATCH,
            &therapist,
            Some(r#"{"nachname": true}"#.into()),
            StatusCode::BAD_REQUEST,
        ),
        (
            "patch malformed JSON",
            Method::PATCH,
            &therapist,
            Some("{".into()),
            StatusCode::BAD_REQUEST,
        ),
        (
            "patch over the limit",
            Method::PATCH,
            &therapist,
            Some(oversized.clone()),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            "patch id abc",
            Method::PATCH,
            "/api/therapists/abc",
            Some("{}".into()),
            StatusCode::BAD_REQUEST,
        ),
    ];

    for (name, method, path, body, expected) in cases {
        let mut request = service.request(method, path);
        if let Some(body) = body {
            request = request
                .header("Content-Type", "application/json")
                .body(body);
        }
        let response = request.send().await.unwrap();

        assert_eq!(response.status(), expected, "{name}");
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert_eq!(content_type, "application/problem+json", "{name}");
        let problem: Value = response.json().await.expect(name);
        assert_eq!(problem["status"], expected.as_u16(), "{name}");
    }

    assert_eq!(service.all_therapists().await, before);
}

#[tokio::test]
async fn paging_returns_every_therapist_exactly_once() {
    let service = TestService::on_postgres().await;
    let mut created = Vec::new();
    for index in 0..7 {
        let therapist = service
            .create_therapist(json!({"vorname": format!("T{index}"), "nachname": "Muster"}))
            .await;
        created.push(therapist["id"].as_i64().unwrap());
    }

    let mut seen = Vec::new();
    let mut after = 0;
    for _ in 0..10 {
        let page: Value = service
            .request(
                Method::GET,
                &format!("/api/therapists?limit=2&after={after}"),
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|item| item["id"].as_i64().unwrap()));
        match page["next_after"].as_i64() {
            Some(next) => after = next,
            None => break,
        }
    }

    assert_eq!(seen.len(), created.len());
    let unique: BTreeSet<_> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len());
    assert_eq!(unique, created.into_iter().collect::<BTreeSet<_>>());
}

#[tokio::test]
async fn sqlite_runs_block_and_unblock() {
    let service = TestService::on_sqlite().await;
    let id = service.create_default_therapist().await;

    let direct = service
        .patch(
            id,
            None,
            None,
            json!({"status": "gesperrt", "sperrgrund": "x"}),
        )
        .await;
    let blocked = service.block(id, "saga-12").await;
    let unblocked = service
        .patch(
            id,
            Some("saga-13"),
            Some("saga-13:set-status:forward"),
            json!({"status": "aktiv"}),
        )
        .await;

    assert_eq!(direct.status(), StatusCode::CONFLICT);
    assert_eq!(blocked.status(), StatusCode::OK);
    assert_eq!(unblocked.status(), StatusCode::OK);
    let therapist = service.therapist(id).await;
    assert_eq!(therapist["status"], "aktiv");
    assert_eq!(therapist["sperrgrund"], Value::Null);
}
