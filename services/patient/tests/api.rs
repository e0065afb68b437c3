//! End-to-end tests of the patient API over real HTTP, each on its own database.

use std::collections::BTreeSet;

use kit::config::{LogFormat, ServiceSettings};
use kit::testing::TestServer;
use patient_service::{build_app, Settings};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const BODY_LIMIT: usize = 64 * 1024;

/// A patient service on its own database, with a client for it.
struct TestService {
    server: TestServer,
    client: reqwest::Client,
}

impl TestService {
    async fn on_postgres() -> Self {
        let url = kit::testing::create_postgres_database("patient")
            .await
            .expect("create a test database");
        Self::on(url).await
    }

    async fn on_sqlite() -> Self {
        let path = std::env::temp_dir().join(format!("patient-{}.db", uuid::Uuid::new_v4()));
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

    async fn create_patient(&self, body: Value) -> Value {
        let response = self
            .request(Method::POST, "/api/patients")
            .json(&body)
            .send()
            .await
            .expect("send create");
        assert_eq!(response.status(), StatusCode::CREATED, "create {body}");
        response.json().await.expect("patient body")
    }

    async fn create_default_patient(&self) -> i64 {
        let patient = self
            .create_patient(json!({"vorname": "Erika", "nachname": "Muster"}))
            .await;
        patient["id"].as_i64().expect("patient id")
    }

    async fn get_patient(&self, id: i64) -> reqwest::Response {
        self.request(Method::GET, &format!("/api/patients/{id}"))
            .send()
            .await
            .expect("send get")
    }

    async fn patient(&self, id: i64) -> Value {
        let response = self.get_patient(id).await;
        assert_eq!(response.status(), StatusCode::OK, "get patient {id}");
        response.json().await.expect("patient body")
    }

    async fn last_contact(&self, id: i64, key: Option<&str>, body: Value) -> reqwest::Response {
        let mut request = self
            .request(Method::PATCH, &format!("/api/patients/{id}/last-contact"))
            .json(&body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        request.send().await.expect("send last-contact")
    }

    async fn delete(&self, id: i64, saga: Option<&str>, key: Option<&str>) -> reqwest::Response {
        let mut request = self.request(Method::DELETE, &format!("/api/patients/{id}"));
        if let Some(saga) = saga {
            request = request.header("X-Saga-Id", saga);
        }
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        request.send().await.expect("send delete")
    }

    /// Returns every patient, following the pages.
    async fn all_patients(&self) -> Vec<Value> {
        let mut patients = Vec::new();
        let mut after = 0;
        for _ in 0..1000 {
            let page: Value = self
                .request(
                    Method::GET,
                    &format!("/api/patients?limit=500&after={after}"),
                )
                .send()
                .await
                .expect("send list")
                .json()
                .await
                .expect("page body");

            patients.extend(page["items"].as_array().expect("items").iter().cloned());
            match page["next_after"].as_i64() {
                Some(next) => after = next,
                None => return patients,
            }
        }
        panic!("the list did not end within 1000 pages");
    }
}

#[tokio::test]
async fn create_returns_patient_with_defaults() {
    let service = TestService::on_postgres().await;

    let patient = service
        .create_patient(json!({"vorname": " Erika ", "nachname": "Muster", "plz": "10115"}))
        .await;

    assert_eq!(patient["vorname"], "Erika");
    assert_eq!(patient["status"], "offen");
    assert_eq!(patient["plz"], "10115");
    assert_eq!(patient["letzter_kontakt"], Value::Null);
    assert!(patient["id"].as_i64().is_some_and(|id| id > 0));
    assert!(patient["created_at"].as_str().is_some());
}

#[tokio::test]
async fn patch_changes_given_fields_and_clears_null() {
    let service = TestService::on_postgres().await;
    let created = service
        .create_patient(json!({"vorname": "Erika", "nachname": "Muster", "ort": "Berlin"}))
        .await;
    let id = created["id"].as_i64().unwrap();

    let response = service
        .request(Method::PATCH, &format!("/api/patients/{id}"))
        .json(&json!({"status": "auf_der_suche", "ort": null, "telefon": "030 1234"}))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    let patient: Value = response.json().await.unwrap();
    assert_eq!(patient["status"], "auf_der_suche");
    assert_eq!(patient["ort"], Value::Null);
    assert_eq!(patient["telefon"], "030 1234");
    assert_eq!(patient["vorname"], "Erika");
}

#[tokio::test]
async fn last_contact_moves_date_forward() {
    let service = TestService::on_postgres().await;
    let id = service.create_default_patient().await;

    let response = service
        .last_contact(
            id,
            Some("saga-1:contact:forward"),
            json!({"date": "2026-03-01"}),
        )
        .await;

    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({"patient_id": id, "letzter_kontakt": "2026-03-01", "changed": true})
    );
    assert_eq!(service.patient(id).await["letzter_kontakt"], "2026-03-01");
}

#[tokio::test]
async fn last_contact_without_date_uses_today() {
    let service = TestService::on_postgres().await;
    let id = service.create_default_patient().await;
    let today = chrono::Utc::now().date_naive().to_string();

    let empty = service
        .request(Method::PATCH, &format!("/api/patients/{id}/last-contact"))
        .send()
        .await
        .unwrap();
    let empty_object = service.last_contact(id, None, json!({})).await;

    assert_eq!(empty.status(), StatusCode::OK);
    assert_eq!(empty_object.status(), StatusCode::OK);
    let body: Value = empty_object.json().await.unwrap();
    assert_eq!(body["letzter_kontakt"], today);
}

#[tokio::test]
async fn last_contact_never_moves_backwards() {
    let service = TestService::on_postgres().await;
    let id = service.create_default_patient().await;
    service
        .last_contact(id, None, json!({"date": "2026-05-01"}))
        .await;

    let response = service
        .last_contact(id, None, json!({"date": "2026-04-01"}))
        .await;

    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["changed"], false);
    assert_eq!(body["letzter_kontakt"], "2026-05-01");
    assert_eq!(service.patient(id).await["letzter_kontakt"], "2026-05-01");
}

#[tokio::test]
async fn last_contact_of_unknown_patient_is_not_found() {
    let service = TestService::on_postgres().await;

    let response = service
        .last_contact(
            999_999,
            Some("saga-2:contact:forward"),
            json!({"date": "2026-03-01"}),
        )
        .await;

    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["status"], 404);
}

#[tokio::test]
async fn last_contact_rejects_invalid_dates() {
    let service = TestService::on_postgres().await;
    let id = service.create_default_patient().await;

    for date in ["2024-13-01", "yesterday", "2024-02-30", ""] {
        let response = service
            .last_contact(id, None, json!({ "date": date }))
            .await;

        if date.is_empty() {
            // An empty date counts as absent, which means today.
            assert_eq!(response.status(), StatusCode::OK);
            continue;
        }
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "date {date:?}");
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["field"], "date", "date {date:?}");
    }
}

#[tokio::test]
async fn last_contact_invalid_date_changes_nothing() {
    let service = TestService::on_postgres().await;
    let id = service.create_default_patient().await;

    let response = service
        .last_contact(id, None, json!({"date": "2024-13-01"}))
        .await;

    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(
        problem["detail"],
        "date must be a date in YYYY-MM-DD form, got \"2024-13-01\""
    );
    assert_eq!(service.patient(id).await["letzter_kontakt"], Value::Null);
}

#[tokio::test]
async fn last_contact_repeat_replays_first_response() {
    let service = TestService::on_postgres().await;
    let id = service.create_default_patient().await;
    let key = "saga-3:contact:forward";
    let first = service
        .last_contact(id, Some(key), json!({"date": "2026-03-01"}))
        .await;
    let first_body: Value = first.json().await.unwrap();
    // A manual correction in between shows whether the repeat runs the work again.
    let correction = service
        .request(Method::PATCH, &format!("/api/patients/{id}"))
        .json(&json!({"letzter_kontakt": "2025-01-01"}))
        .send()
        .await
        .unwrap();
    assert_eq!(correction.status(), StatusCode::OK);

    let repeat = service
        .last_contact(id, Some(key), json!({"date": "2026-03-01"}))
        .await;

    assert_eq!(repeat.status(), StatusCode::OK);
    assert_eq!(
        repeat
            .headers()
            .get("idempotent-replayed")
            .and_then(|value| value.to_str().ok()),
        Some("true")
    );
    let repeat_body: Value = repeat.json().await.unwrap();
    assert_eq!(repeat_body, first_body);
    assert_eq!(service.patient(id).await["letzter_kontakt"], "2025-01-01");
}

#[tokio::test]
async fn same_key_with_another_body_is_unprocessable() {
    let service = TestService::on_postgres().await;
    let id = service.create_default_patient().await;
    let key = "saga-4:contact:forward";
    service
        .last_contact(id, Some(key), json!({"date": "2026-03-01"}))
        .await;

    let response = service
        .last_contact(id, Some(key), json!({"date": "2026-03-02"}))
        .await;

    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["field"], "Idempotency-Key");
    assert_eq!(service.patient(id).await["letzter_kontakt"], "2026-03-01");
}

#[tokio::test]
async fn delete_with_saga_removes_patient_and_repeat_replays() {
    let service = TestService::on_postgres().await;
    let id = service.create_default_patient().await;
    let key = "saga-5:delete:forward";

    let first = service.delete(id, Some("saga-5"), Some(key)).await;
    let repeat = service.delete(id, Some("saga-5"), Some(key)).await;

    assert_eq!(first.status(), StatusCode::OK);
    let first_body: Value = first.json().await.unwrap();
    assert_eq!(first_body, json!({"patient_id": id, "deleted": true}));
    assert_eq!(repeat.status(), StatusCode::OK);
    let repeat_body: Value = repeat.json().await.unwrap();
    assert_eq!(repeat_body, first_body);
    assert_eq!(
        service.get_patient(id).await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn delete_without_saga_is_a_conflict() {
    let service = TestService::on_postgres().await;
    let id = service.create_default_patient().await;

    let response = service.delete(id, None, Some("manual-delete")).await;

    assert_eq!(response.status(), StatusCode::CONFLICT);
    let problem: Value = response.json().await.unwrap();
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("POST /api/v1/commands/delete-patient"),
        "{detail}"
    );
    assert_eq!(service.get_patient(id).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn delete_of_unknown_patient_is_not_found() {
    let service = TestService::on_postgres().await;

    let response = service
        .delete(999_999, Some("saga-6"), Some("saga-6:delete:forward"))
        .await;

    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_inputs_get_problem_and_change_nothing() {
    let service = TestService::on_postgres().await;
    let id = service.create_default_patient().await;
    service
        .last_contact(id, None, json!({"date": "2026-01-10"}))
        .await;
    let before = service.all_patients().await;
    let patient = format!("/api/patients/{id}");
    let last_contact = format!("/api/patients/{id}/last-contact");
    let oversized = json!({"vorname": "x".repeat(BODY_LIMIT), "nachname": "y"}).to_string();
    let cases: Vec<(&str, Method, &str, Option<String>, StatusCode)> = vec![
        (
            "malformed JSON",
            Method::POST,
            "/api/patients",
            Some(r#"{"vorname": "#.into()),
            StatusCode::BAD_REQUEST,
        ),
        (
            "vorname of wrong type",
            Method::POST,
            "/api/patients",
            Some(r#"{"vorname": 5, "nachname": "M"}"#.into()),
            StatusCode::BAD_REQUEST,
        ),
        (
            "missing vorname",
            Method::POST,
            "/api/patients",
            Some(r#"{"nachname": "M"}"#.into()),
            StatusCode::BAD_REQUEST,
        ),
        (
            "empty vorname",
            Method::POST,
            "/api/patients",
            Some(r#"{"vorname": " ", "nachname": "M"}"#.into()),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "unknown status",
            Method::POST,
            "/api/patients",
            Some(r#"{"vorname": "E", "nachname": "M", "status": "verschwunden"}"#.into()),
            StatusCode::BAD_REQUEST,
        ),
        (
            "bad geburtsdatum",
            Method::POST,
            "/api/patients",
            Some(r#"{"vorname": "E", "nachname": "M", "geburtsdatum": "1990-02-30"}"#.into()),
            StatusCode::BAD_REQUEST,
        ),
        (
            "bad email",
            Method::POST,
            "/api/patients",
            Some(r#"{"vorname": "E", "nachname": "M", "email": "nope"}"#.into()),
            StatusCode::BAD_REQUEST,
        ),
        (
            "body over the limit",
            Method::POST,
            "/api/patients",
            Some(oversized.clone()),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            "id abc",
            Method::GET,
            "/api/patients/abc",
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            "id 0",
            Method::GET,
            "/api/patients/0",
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            "id -1",
            Method::GET,
            "/api/patients/-1",
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            "delete id abc",
            Method::DELETE,
            "/api/patients/abc",
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            "unknown status filter",
            Method::GET,
            "/api/patients?status=verschwunden",
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            "limit 0",
            Method::GET,
            "/api/patients?limit=0",
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            "limit abc",
            Method::GET,
            "/api/patients?limit=abc",
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            "patch unknown status",
            Method::PATCH,
            &patient,
            Some(r#"{"status": "weg"}"#.into()),
            StatusCode::BAD_REQUEST,
        ),
        (
            "patch vorname null",
            Method::PATCH,
            &patient,
            Some(r#"{"vorname": null}"#.into()),
            StatusCode::BAD_REQUEST,
        ),
        (
            "patch bad letzter_kontakt",
            Method::PATCH,
            &patient,
            Some(r#"{"letzter_kontakt": "2024-13-01"}"#.into()),
            StatusCode::BAD_REQUEST,
        ),
        (
            "patch malformed JSON",
            Method::PATCH,
            &patient,
            Some("[".into()),
            StatusCode::BAD_REQUEST,
        ),
        (
            "patch over the limit",
            Method::PATCH,
            &patient,
            Some(oversized.clone()),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            "last contact bad date",
            Method::PATCH,
            &last_contact,
            Some(r#"{"date": "2024-13-01"}"#.into()),
            StatusCode::BAD_REQUEST,
        ),
        (
            "last contact date of wrong type",
            Method::PATCH,
            &last_contact,
            Some(r#"{"date": 20240101}"#.into()),
            StatusCode::BAD_REQUEST,
        ),
        (
            "last contact malformed JSON",
            Method::PATCH,
            &last_contact,
            Some(r#"{"date"#.into()),
            StatusCode::BAD_REQUEST,
        ),
        (
            "last contact over the limit",
            Method::PATCH,
            &last_contact,
            Some(oversized.clone()),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            "last contact id abc",
            Method::PATCH,
            "/api/patients/abc/last-contact",
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

    assert_eq!(service.all_patients().await, before);
}

#[tokio::test]
async fn wrong_type_names_the_field() {
    let service = TestService::on_postgres().await;

    let response = service
        .request(Method::POST, "/api/patients")
        .json(&json!({"vorname": "E", "nachname": ["M"]}))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["field"], "nachname");
}

#[tokio::test]
async fn paging_returns_every_patient_exactly_once() {
    let service = TestService::on_postgres().await;
    let mut created = Vec::new();
    for index in 0..7 {
        let patient = service
            .create_patient(json!({"vorname": format!("P{index}"), "nachname": "Muster"}))
            .await;
        created.push(patient["id"].as_i64().unwrap());
    }

    let mut seen = Vec::new();
    let mut after = 0;
    for _ in 0..10 {
        let page: Value = service
            .request(Method::GET, &format!("/api/patients?limit=3&after={after}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 3);
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
async fn list_filters_by_status() {
    let service = TestService::on_postgres().await;
    service
        .create_patient(json!({"vorname": "A", "nachname": "M"}))
        .await;
    let searching = service
        .create_patient(json!({"vorname": "B", "nachname": "M", "status": "auf_der_suche"}))
        .await;

    let page: Value = service
        .request(Method::GET, "/api/patients?status=auf_der_suche")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["id"], searching["id"]);
    assert_eq!(page["next_after"], Value::Null);
}

#[tokio::test]
async fn operational_routes_answer() {
    let service = TestService::on_postgres().await;

    let ready = service
        .request(Method::GET, "/readyz")
        .send()
        .await
        .unwrap();
    let openapi: Value = service
        .request(Method::GET, "/openapi.json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    assert_eq!(ready.status(), StatusCode::OK);
    assert!(openapi["paths"]["/api/patients/{id}/last-contact"].is_object());
}

#[tokio::test]
async fn sqlite_runs_contact_and_delete() {
    let service = TestService::on_sqlite().await;
    let id = service.create_default_patient().await;

    let recorded = service
        .last_contact(
            id,
            Some("saga-7:contact:forward"),
            json!({"date": "2026-03-01"}),
        )
        .await;
    let older = service
        .last_contact(id, None, json!({"date": "2026-02-01"}))
        .await;
    let deleted = service
        .delete(id, Some("saga-8"), Some("saga-8:delete:forward"))
        .await;
    let repeat = service
        .delete(id, Some("saga-8"), Some("saga-8:delete:forward"))
        .await;

    assert_eq!(recorded.status(), StatusCode::OK);
    let older_body: Value = older.json().await.unwrap();
    assert_eq!(older_body["changed"], false);
    assert_eq!(older_body["letzter_kontakt"], "2026-03-01");
    assert_eq!(deleted.status(), StatusCode::OK);
    assert_eq!(repeat.status(), StatusCode::OK);
    assert_eq!(
        service.get_patient(id).await.status(),
        StatusCode::NOT_FOUND
    );
}
