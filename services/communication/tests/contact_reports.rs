//! Contact reports to the coordinator: one per event, with the right body and key, delivered
//! after outages and given up on a definite no.

mod support;

use serde_json::{json, Value};
use support::{FakeCoordinator, Service};

/// A poll interval far longer than any test, so that only the wake-up after a commit can
/// explain a prompt delivery.
const NEVER_POLL_MS: u64 = 600_000;

/// A short poll interval for tests that wait for retries.
const FAST_POLL_MS: u64 = 50;

async fn create_draft_email(service: &Service, patient_id: i64) -> i64 {
    let email = service
        .create(
            "/api/emails",
            json!({
                "patient_id": patient_id,
                "therapist_id": 7,
                "betreff": "Ihre Anfrage",
                "inhalt": "Guten Tag, wir melden uns zu Ihrer Anfrage.",
            }),
        )
        .await;
    email["id"].as_i64().expect("email id")
}

async fn wait_for_reports(fake: &FakeCoordinator, source_id: &str, count: usize) {
    let arrived = support::wait_until(|| async {
        (fake.received_for(source_id).len() >= count).then_some(())
    })
    .await;
    assert!(
        arrived.is_some(),
        "expected {count} report(s) for {source_id}, got {:?}",
        fake.received()
    );
}

fn today() -> String {
    chrono::Utc::now()
        .date_naive()
        .format("%Y-%m-%d")
        .to_string()
}

#[tokio::test]
async fn sent_email_reports_contact_once() {
    let fake = FakeCoordinator::start().await;
    let service = support::spawn_on_postgres(&fake.url(), NEVER_POLL_MS).await;
    let email_id = create_draft_email(&service, 12).await;
    let source_id = format!("email-{email_id}-gesendet");

    let response = service
        .patch(
            &format!("/api/emails/{email_id}"),
            json!({ "status": "Gesendet" }),
        )
        .await;

    assert_eq!(response.status(), 200);
    wait_for_reports(&fake, &source_id, 1).await;
    let reports = fake.received_for(&source_id);
    assert_eq!(reports.len(), 1);
    assert_eq!(
        reports[0].body,
        json!({
            "patient_id": 12,
            "date": today(),
            "channel": "email",
            "source_id": source_id,
        })
    );
    assert_eq!(
        reports[0].idempotency_key.as_deref(),
        Some(source_id.as_str())
    );
    assert_eq!(reports[0].prefer.as_deref(), Some("respond-async"));
    let row = service
        .wait_for_outbox_row(&source_id, |row| row["state"] == "delivered")
        .await;
    assert_eq!(row["attempts"], 1);
}

#[tokio::test]
async fn email_sent_twice_reports_once() {
    let fake = FakeCoordinator::start().await;
    let service = support::spawn_on_postgres(&fake.url(), NEVER_POLL_MS).await;
    let email_id = create_draft_email(&service, 12).await;
    let path = format!("/api/emails/{email_id}");
    let sent_id = format!("email-{email_id}-gesendet");
    let answer_id = format!("email-{email_id}-antwort");

    let first = service.patch(&path, json!({ "status": "Gesendet" })).await;
    let second = service.patch(&path, json!({ "status": "Gesendet" })).await;
    // A later event on the same email, delivered after any duplicate would have been.
    let answered = service
        .patch(&path, json!({ "antwort_erhalten": true }))
        .await;
    wait_for_reports(&fake, &answer_id, 1).await;

    assert_eq!(first.status(), 200);
    assert_eq!(second.status(), 200);
    assert_eq!(answered.status(), 200);
    assert_eq!(fake.received_for(&sent_id).len(), 1);
    let rows_for_email: Vec<Value> = service
        .outbox()
        .await
        .into_iter()
        .filter(|row| row["source_id"] == sent_id.as_str())
        .collect();
    assert_eq!(rows_for_email.len(), 1);
}

#[tokio::test]
async fn email_answer_reports_contact() {
    let fake = FakeCoordinator::start().await;
    let service = support::spawn_on_postgres(&fake.url(), NEVER_POLL_MS).await;
    let email_id = create_draft_email(&service, 31).await;
    let source_id = format!("email-{email_id}-antwort");

    let response = service
        .patch(
            &format!("/api/emails/{email_id}"),
            json!({ "antwort_erhalten": true }),
        )
        .await;

    assert_eq!(response.status(), 200);
    let email: Value = response.json().await.expect("JSON body");
    assert_eq!(email["antwort_erhalten"], true);
    assert!(email["antwort_am"].is_string());
    wait_for_reports(&fake, &source_id, 1).await;
    let reports = fake.received_for(&source_id);
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].body["patient_id"], 31);
    assert_eq!(reports[0].body["channel"], "email");
    assert_eq!(
        reports[0].idempotency_key.as_deref(),
        Some(source_id.as_str())
    );
}

#[tokio::test]
async fn email_created_as_sent_reports_contact() {
    let fake = FakeCoordinator::start().await;
    let service = support::spawn_on_postgres(&fake.url(), NEVER_POLL_MS).await;

    let email = service
        .create(
            "/api/emails",
            json!({
                "patient_id": 5,
                "betreff": "Terminbestätigung",
                "inhalt": "Ihr Termin ist bestätigt.",
                "status": "Gesendet",
            }),
        )
        .await;

    let source_id = format!("email-{}-gesendet", email["id"]);
    assert!(email["gesendet_am"].is_string());
    wait_for_reports(&fake, &source_id, 1).await;
    assert_eq!(fake.received_for(&source_id)[0].body["patient_id"], 5);
}

#[tokio::test]
async fn completed_phone_call_reports_contact() {
    let fake = FakeCoordinator::start().await;
    let service = support::spawn_on_postgres(&fake.url(), NEVER_POLL_MS).await;
    let call = service
        .create(
            "/api/phone-calls",
            json!({ "patient_id": 44, "geplant_fuer": "2026-03-02T10:00:00+01:00" }),
        )
        .await;
    let call_id = call["id"].as_i64().expect("call id");
    let source_id = format!("phone-call-{call_id}-abgeschlossen");

    let response = service
        .patch(
            &format!("/api/phone-calls/{call_id}"),
            json!({ "status": "abgeschlossen", "dauer_minuten": 12 }),
        )
        .await;

    assert_eq!(response.status(), 200);
    wait_for_reports(&fake, &source_id, 1).await;
    let reports = fake.received_for(&source_id);
    assert_eq!(reports.len(), 1);
    assert_eq!(
        reports[0].body,
        json!({
            "patient_id": 44,
            "date": today(),
            "channel": "phone_call",
            "source_id": source_id,
        })
    );
    assert_eq!(
        reports[0].idempotency_key.as_deref(),
        Some(source_id.as_str())
    );
}

#[tokio::test]
async fn contacts_without_patient_report_nothing() {
    let fake = FakeCoordinator::start().await;
    let service = support::spawn_on_postgres(&fake.url(), NEVER_POLL_MS).await;

    let email = service
        .post(
            "/api/emails",
            json!({ "therapist_id": 3, "betreff": "Rückfrage", "inhalt": "Text", "status": "Gesendet" }),
        )
        .await;
    let call = service
        .post(
            "/api/phone-calls",
            json!({ "therapist_id": 3, "geplant_fuer": "2026-03-02T10:00:00Z", "status": "abgeschlossen" }),
        )
        .await;

    assert_eq!(email.status(), 201);
    assert_eq!(call.status(), 201);
    assert!(service.outbox().await.is_empty());
}

#[tokio::test]
async fn report_waits_while_coordinator_is_down() {
    let mut fake = FakeCoordinator::start().await;
    let service = support::spawn_on_postgres(&fake.url(), FAST_POLL_MS).await;
    let email_id = create_draft_email(&service, 12).await;
    let source_id = format!("email-{email_id}-gesendet");
    fake.stop().await;

    let response = service
        .patch(
            &format!("/api/emails/{email_id}"),
            json!({ "status": "Gesendet" }),
        )
        .await;
    let failed = service
        .wait_for_outbox_row(&source_id, |row| row["attempts"].as_i64() >= Some(1))
        .await;
    fake.restart().await;
    let delivered = service
        .wait_for_outbox_row(&source_id, |row| row["state"] == "delivered")
        .await;

    assert_eq!(response.status(), 200);
    assert_eq!(failed["state"], "pending");
    assert!(failed["last_error"].is_string());
    assert!(delivered["delivered_at"].is_string());
    assert_eq!(fake.received_for(&source_id).len(), 1);
}

#[tokio::test]
async fn unavailable_coordinator_gets_the_report_again() {
    let fake = FakeCoordinator::start().await;
    fake.answer_with(503);
    let service = support::spawn_on_postgres(&fake.url(), FAST_POLL_MS).await;
    let email_id = create_draft_email(&service, 12).await;
    let source_id = format!("email-{email_id}-gesendet");

    service
        .patch(
            &format!("/api/emails/{email_id}"),
            json!({ "status": "Gesendet" }),
        )
        .await;
    let failed = service
        .wait_for_outbox_row(&source_id, |row| row["attempts"].as_i64() >= Some(1))
        .await;
    fake.answer_with(200);
    let delivered = service
        .wait_for_outbox_row(&source_id, |row| row["state"] == "delivered")
        .await;

    let reports = fake.received_for(&source_id);
    assert!(failed["last_error"]
        .as_str()
        .is_some_and(|error| error.starts_with("HTTP 503")));
    assert!(delivered["attempts"].as_i64() >= Some(2));
    assert!(reports.len() >= 2);
    assert!(reports
        .iter()
        .all(|report| report.idempotency_key.as_deref() == Some(source_id.as_str())));
}

#[tokio::test]
async fn client_error_rejects_the_report() {
    let fake = FakeCoordinator::start().await;
    fake.answer_with(422);
    let service = support::spawn_on_postgres(&fake.url(), FAST_POLL_MS).await;
    let email_id = create_draft_email(&service, 12).await;
    let source_id = format!("email-{email_id}-gesendet");

    let response = service
        .patch(
            &format!("/api/emails/{email_id}"),
            json!({ "status": "Gesendet" }),
        )
        .await;
    let rejected = service
        .wait_for_outbox_row(&source_id, |row| row["state"] == "rejected")
        .await;

    assert_eq!(response.status(), 200);
    assert_eq!(rejected["attempts"], 1);
    assert!(rejected["last_error"]
        .as_str()
        .is_some_and(|error| error.starts_with("HTTP 422")));
    assert_eq!(fake.received_for(&source_id).len(), 1);
    let listed: Value = service
        .get("/api/contact-outbox?state=rejected")
        .await
        .json()
        .await
        .expect("JSON body");
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn sqlite_service_delivers_reports() {
    let fake = FakeCoordinator::start().await;
    let file = std::env::temp_dir()
        .join(format!("communication-{}", uuid::Uuid::new_v4().simple()))
        .join("communication.db");
    let database_url = format!("sqlite://{}", file.display());
    let service = support::spawn(support::settings(database_url, &fake.url(), NEVER_POLL_MS)).await;
    let email_id = create_draft_email(&service, 8).await;
    let call = service
        .create(
            "/api/phone-calls",
            json!({ "patient_id": 8, "geplant_fuer": "2026-03-02T10:00:00Z" }),
        )
        .await;

    let email = service
        .patch(
            &format!("/api/emails/{email_id}"),
            json!({ "status": "Gesendet", "antwort_erhalten": true }),
        )
        .await;
    let phone_call = service
        .patch(
            &format!("/api/phone-calls/{}", call["id"]),
            json!({ "status": "abgeschlossen" }),
        )
        .await;

    assert_eq!(email.status(), 200);
    assert_eq!(phone_call.status(), 200);
    for source_id in [
        format!("email-{email_id}-gesendet"),
        format!("email-{email_id}-antwort"),
        format!("phone-call-{}-abgeschlossen", call["id"]),
    ] {
        service
            .wait_for_outbox_row(&source_id, |row| row["state"] == "delivered")
            .await;
        assert_eq!(fake.received_for(&source_id).len(), 1, "{source_id}");
    }
    if let Some(folder) = file.parent() {
        let _ = std::fs::remove_dir_all(folder);
    }
}
