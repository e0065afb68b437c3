//! Emails and phone calls over HTTP: create, read, change, list, delete, and the responses
//! to bad input.

mod support;

use serde_json::{json, Value};

/// No coordinator listens here; these tests queue no reports that must arrive.
const NO_COORDINATOR: &str = "http://127.0.0.1:9";

const POLL_MS: u64 = 60_000;

#[tokio::test]
async fn email_round_trip() {
    let service = support::spawn_on_postgres(NO_COORDINATOR, POLL_MS).await;

    let created = service
        .create(
            "/api/emails",
            json!({ "patient_id": 4, "betreff": "Erstgespräch", "inhalt": "Guten Tag" }),
        )
        .await;
    let id = created["id"].as_i64().expect("email id");
    let changed = service
        .patch(
            &format!("/api/emails/{id}"),
            json!({ "betreff": "Erstgespräch am Montag", "status": "In_Warteschlange" }),
        )
        .await;
    let fetched: Value = service
        .get(&format!("/api/emails/{id}"))
        .await
        .json()
        .await
        .expect("JSON body");
    let deleted = service
        .client
        .delete(service.url(&format!("/api/emails/{id}")))
        .send()
        .await
        .expect("DELETE reaches the service");
    let after_delete = service.get(&format!("/api/emails/{id}")).await;

    assert_eq!(created["status"], "Entwurf");
    assert_eq!(created["antwort_erhalten"], false);
    assert_eq!(created["therapist_id"], Value::Null);
    assert_eq!(changed.status(), 200);
    assert_eq!(fetched["betreff"], "Erstgespräch am Montag");
    assert_eq!(fetched["status"], "In_Warteschlange");
    assert_eq!(fetched["inhalt"], "Guten Tag");
    assert_eq!(deleted.status(), 200);
    assert_eq!(after_delete.status(), 404);
}

#[tokio::test]
async fn phone_call_round_trip() {
    let service = support::spawn_on_postgres(NO_COORDINATOR, POLL_MS).await;

    let created = service
        .create(
            "/api/phone-calls",
            json!({ "therapist_id": 9, "geplant_fuer": "2026-03-02T10:00:00+01:00" }),
        )
        .await;
    let id = created["id"].as_i64().expect("call id");
    let changed: Value = service
        .patch(
            &format!("/api/phone-calls/{id}"),
            json!({ "status": "abgesagt", "notizen": "Praxis geschlossen" }),
        )
        .await
        .json()
        .await
        .expect("JSON body");

    assert_eq!(created["status"], "geplant");
    assert_eq!(created["geplant_fuer"], "2026-03-02T09:00:00.000000Z");
    assert_eq!(changed["status"], "abgesagt");
    assert_eq!(changed["notizen"], "Praxis geschlossen");
    assert_eq!(changed["abgeschlossen_am"], Value::Null);
}

#[tokio::test]
async fn email_list_pages_and_filters() {
    let service = support::spawn_on_postgres(NO_COORDINATOR, POLL_MS).await;
    for patient_id in [1, 2, 1, 1, 3] {
        service
            .create(
                "/api/emails",
                json!({ "patient_id": patient_id, "betreff": "Info", "inhalt": "Text" }),
            )
            .await;
    }

    let first: Value = service
        .get("/api/emails?patient_id=1&limit=2")
        .await
        .json()
        .await
        .expect("JSON body");
    let after = first["next_after"].as_i64().expect("a next page");
    let second: Value = service
        .get(&format!("/api/emails?patient_id=1&limit=2&after={after}"))
        .await
        .json()
        .await
        .expect("JSON body");

    assert_eq!(first["items"].as_array().map(Vec::len), Some(2));
    assert_eq!(second["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(second["next_after"], Value::Null);
    assert!(second["items"][0]["id"].as_i64() > Some(after));
}

/// A request that must fail, with the status and the problem's `field` it must get.
struct BadInput {
    method: &'static str,
    path: String,
    body: Option<Value>,
    expected_status: u16,
    expected_field: Option<&'static str>,
}

fn bad_input(
    method: &'static str,
    path: String,
    body: Option<Value>,
    expected_status: u16,
    expected_field: Option<&'static str>,
) -> BadInput {
    BadInput {
        method,
        path,
        body,
        expected_status,
        expected_field,
    }
}

#[tokio::test]
async fn bad_input_gets_client_errors() {
    let service = support::spawn_on_postgres(NO_COORDINATOR, POLL_MS).await;
    let email = service
        .create(
            "/api/emails",
            json!({ "patient_id": 4, "betreff": "Info", "inhalt": "Text" }),
        )
        .await;
    let email_path = format!("/api/emails/{}", email["id"]);
    let call = service
        .create(
            "/api/phone-calls",
            json!({ "patient_id": 4, "geplant_fuer": "2026-03-02T10:00:00Z" }),
        )
        .await;
    let call_path = format!("/api/phone-calls/{}", call["id"]);

    let cases: Vec<BadInput> = vec![
        bad_input(
            "POST",
            "/api/emails".into(),
            Some(json!({ "betreff": "x", "inhalt": "y" })),
            400,
            Some("patient_id"),
        ),
        bad_input(
            "POST",
            "/api/emails".into(),
            Some(json!({ "patient_id": 1, "inhalt": "y" })),
            400,
            Some("betreff"),
        ),
        bad_input(
            "POST",
            "/api/emails".into(),
            Some(json!({ "patient_id": "eins", "betreff": "x", "inhalt": "y" })),
            400,
            Some("patient_id"),
        ),
        bad_input(
            "POST",
            "/api/emails".into(),
            Some(json!({ "patient_id": 0, "betreff": "x", "inhalt": "y" })),
            400,
            Some("patient_id"),
        ),
        bad_input(
            "POST",
            "/api/emails".into(),
            Some(json!({ "patient_id": 1, "betreff": " ", "inhalt": "y" })),
            400,
            Some("betreff"),
        ),
        bad_input(
            "POST",
            "/api/emails".into(),
            Some(json!({ "patient_id": 1, "betreff": "x", "inhalt": "y", "status": "Verschickt" })),
            400,
            Some("status"),
        ),
        bad_input(
            "POST",
            "/api/emails".into(),
            Some(
                json!({ "patient_id": 1, "betreff": "x", "inhalt": "y", "antwort_erhalten": "ja" }),
            ),
            400,
            Some("antwort_erhalten"),
        ),
        bad_input(
            "POST",
            "/api/emails".into(),
            Some(json!({ "patient_id": 1, "betreff": "x".repeat(501), "inhalt": "y" })),
            422,
            Some("betreff"),
        ),
        bad_input(
            "PATCH",
            email_path.clone(),
            Some(json!({ "status": "gesendet" })),
            400,
            Some("status"),
        ),
        bad_input(
            "PATCH",
            email_path.clone(),
            Some(json!({ "therapist_id": -2 })),
            400,
            Some("therapist_id"),
        ),
        bad_input(
            "PATCH",
            "/api/emails/999999".into(),
            Some(json!({ "status": "Gesendet" })),
            404,
            None,
        ),
        bad_input(
            "PATCH",
            "/api/emails/abc".into(),
            Some(json!({})),
            400,
            Some("id"),
        ),
        bad_input("GET", "/api/emails/0".into(), None, 400, Some("id")),
        bad_input("GET", "/api/emails/999999".into(), None, 404, None),
        bad_input(
            "GET",
            "/api/emails?limit=0".into(),
            None,
            400,
            Some("limit"),
        ),
        bad_input("GET", "/api/emails?status=offen".into(), None, 400, None),
        bad_input(
            "GET",
            "/api/contact-outbox?state=verloren".into(),
            None,
            400,
            None,
        ),
        bad_input("DELETE", "/api/emails/999999".into(), None, 404, None),
        bad_input(
            "POST",
            "/api/phone-calls".into(),
            Some(json!({ "patient_id": 1 })),
            400,
            Some("geplant_fuer"),
        ),
        bad_input(
            "POST",
            "/api/phone-calls".into(),
            Some(json!({ "patient_id": 1, "geplant_fuer": "morgen" })),
            400,
            Some("geplant_fuer"),
        ),
        bad_input(
            "POST",
            "/api/phone-calls".into(),
            Some(
                json!({ "patient_id": 1, "geplant_fuer": "2026-03-02T10:00:00Z", "status": "erledigt" }),
            ),
            400,
            Some("status"),
        ),
        bad_input(
            "POST",
            "/api/phone-calls".into(),
            Some(
                json!({ "patient_id": 1, "geplant_fuer": "2026-03-02T10:00:00Z", "dauer_minuten": -5 }),
            ),
            422,
            Some("dauer_minuten"),
        ),
        bad_input(
            "PATCH",
            call_path.clone(),
            Some(json!({ "geplant_fuer": "2026-02-30T10:00:00Z" })),
            400,
            Some("geplant_fuer"),
        ),
        bad_input("GET", "/api/phone-calls/999999".into(), None, 404, None),
    ];

    for BadInput {
        method,
        path,
        body,
        expected_status,
        expected_field,
    } in cases
    {
        let mut request = service
            .client
            .request(method.parse().expect("method"), service.url(&path));
        if let Some(body) = &body {
            request = request.json(body);
        }
        let response = request.send().await.expect("request reaches the service");

        let status = response.status().as_u16();
        let problem: Value = response.json().await.unwrap_or(Value::Null);
        assert_eq!(
            status, expected_status,
            "{method} {path} {body:?}: {problem}"
        );
        if let Some(field) = expected_field {
            assert_eq!(
                problem["field"], field,
                "{method} {path} {body:?}: {problem}"
            );
        }
    }
}

#[tokio::test]
async fn oversized_body_is_rejected() {
    let service = support::spawn_on_postgres(NO_COORDINATOR, POLL_MS).await;

    let response = service
        .post(
            "/api/emails",
            json!({ "patient_id": 1, "betreff": "Info", "inhalt": "x".repeat(70 * 1024) }),
        )
        .await;

    assert_eq!(response.status(), 413);
}

#[tokio::test]
async fn repeated_create_with_key_creates_one_email() {
    let service = support::spawn_on_postgres(NO_COORDINATOR, POLL_MS).await;
    let body = json!({ "patient_id": 4, "betreff": "Info", "inhalt": "Text" });
    let send = || {
        service
            .client
            .post(service.url("/api/emails"))
            .header("Idempotency-Key", "create-email-1")
            .json(&body)
            .send()
    };

    let first = send().await.expect("first request");
    let second = send().await.expect("second request");

    assert_eq!(first.status(), 201);
    assert_eq!(second.status(), 201);
    assert_eq!(
        second
            .headers()
            .get("idempotent-replayed")
            .map(|value| value.as_bytes()),
        Some(&b"true"[..])
    );
    let listed: Value = service
        .get("/api/emails")
        .await
        .json()
        .await
        .expect("JSON body");
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn openapi_lists_the_resources() {
    let service = support::spawn_on_postgres(NO_COORDINATOR, POLL_MS).await;

    let document: Value = service
        .get("/openapi.json")
        .await
        .json()
        .await
        .expect("JSON body");

    for path in [
        "/api/emails",
        "/api/emails/{id}",
        "/api/phone-calls",
        "/api/phone-calls/{id}",
        "/api/contact-outbox",
    ] {
        assert!(document["paths"][path].is_object(), "{path} missing");
    }
}
