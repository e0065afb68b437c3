//! Patient contacts reported by the communication service: delivered through its outbox and
//! the record-patient-contact saga, also when the coordinator or the patient service is down
//! for a while.

use e2e::{today, Answer, Service, Stack, StackOptions};
use reqwest::StatusCode;
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_e2e-stack");

/// Creates an email to the patient and marks it Gesendet; returns the email id.
async fn send_email(stack: &Stack, patient: i64) -> anyhow::Result<i64> {
    let email = stack
        .post(
            Service::Communication,
            "/api/emails",
            &json!({"patient_id": patient, "betreff": "Rückruf", "inhalt": "Guten Tag"}),
        )
        .await?
        .expect(StatusCode::CREATED)?;

    let id = email.body["id"].as_i64().expect("email id");
    stack
        .patch(
            Service::Communication,
            &format!("/api/emails/{id}"),
            &json!({"status": "Gesendet"}),
        )
        .await?
        .expect(StatusCode::OK)?;

    Ok(id)
}

async fn wait_for_contact_today(stack: &Stack, patient: i64) -> anyhow::Result<Answer> {
    stack
        .wait_for(
            Service::Patient,
            &format!("/api/patients/{patient}"),
            "the contact update",
            |answer| answer.body["letzter_kontakt"] == today(),
        )
        .await
}

#[tokio::test]
async fn contact_waits_for_coordinator_restart() -> anyhow::Result<()> {
    let mut stack = Stack::start(BIN, StackOptions::default()).await?;
    let patient = stack
        .create_patient_with(json!({"letzter_kontakt": "2021-06-01"}))
        .await?;
    stack.kill_coordinator(0).await?;

    let email = send_email(&stack, patient).await?;
    let pending = stack
        .wait_for(
            Service::Communication,
            "/api/contact-outbox",
            "a failed delivery attempt",
            |answer| answer.body["items"][0]["attempts"].as_i64() >= Some(1),
        )
        .await?;
    assert_eq!(
        pending.body["items"][0]["state"], "pending",
        "{}",
        pending.body
    );
    stack.restart_coordinator(0).await?;

    let after = wait_for_contact_today(&stack, patient).await?;
    assert_eq!(after.body["letzter_kontakt"], today());
    let outbox = stack
        .wait_for(
            Service::Communication,
            "/api/contact-outbox",
            "the delivery",
            |answer| answer.body["items"][0]["state"] == "delivered",
        )
        .await?;
    assert_eq!(
        outbox.body["items"][0]["source_id"],
        format!("email-{email}-gesendet")
    );
    Ok(())
}

#[tokio::test]
async fn contact_reaches_patient_after_patient_service_returns() -> anyhow::Result<()> {
    let mut stack = Stack::start(BIN, StackOptions::default()).await?;
    let patient = stack
        .create_patient_with(json!({"letzter_kontakt": "2021-06-01"}))
        .await?;
    stack.stop_service(Service::Patient).await?;

    send_email(&stack, patient).await?;
    let saga_id = wait_for_contact_saga(&stack, patient).await?;
    let saga = stack.get_saga(&saga_id).await?;
    assert!(
        saga["status"] == "running" || saga["status"] == "needs_attention",
        "{saga}"
    );
    stack.start_service(Service::Patient).await?;

    let after = wait_for_contact_today(&stack, patient).await?;
    assert_eq!(after.body["letzter_kontakt"], today());
    let saga = stack.wait_for_saga_status(&saga_id, "completed").await?;
    assert_eq!(saga["steps"][0]["last_status_code"], 200, "{saga}");
    Ok(())
}

/// Polls until the coordinator lists a record-patient-contact saga of the patient.
async fn wait_for_contact_saga(stack: &Stack, patient: i64) -> anyhow::Result<String> {
    let query = format!("type=record-patient-contact&patient_id={patient}");
    let deadline = tokio::time::Instant::now() + e2e::POLL_TIMEOUT;
    loop {
        let sagas = stack.list_sagas(&query).await?;
        if let Some(id) = sagas.first().and_then(|saga| saga["id"].as_str()) {
            return Ok(id.to_owned());
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("no record-patient-contact saga for patient {patient}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn contact_for_a_deleted_patient_is_skipped() -> anyhow::Result<()> {
    let stack = Stack::start(BIN, StackOptions::default()).await?;
    let patient = stack.create_patient().await?;
    stack
        .delete_patient(patient, "vor dem Kontakt")
        .await?
        .expect(StatusCode::OK)?;

    let answer = stack
        .post_command(
            "record-patient-contact",
            &json!({"patient_id": patient, "date": today(), "channel": "email",
                    "source_id": "email-99-gesendet"}),
            &[("Idempotency-Key", "email-99-gesendet")],
        )
        .await?;

    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.body);
    let saga_id = answer.saga_id().expect("the answer names its saga");
    let saga = stack.wait_for_saga_status(&saga_id, "skipped").await?;
    assert_eq!(saga["steps"][0]["last_status_code"], 404, "{saga}");
    Ok(())
}

#[tokio::test]
async fn same_contact_event_twice_runs_one_saga() -> anyhow::Result<()> {
    let stack = Stack::start(BIN, StackOptions::default()).await?;
    let patient = stack.create_patient().await?;
    let body = json!({"patient_id": patient, "date": "2025-02-03", "channel": "phone_call",
                      "source_id": "phone-call-5-abgeschlossen"});

    let first = stack
        .post_command("record-patient-contact", &body, &[])
        .await?;
    let second = stack
        .post_command("record-patient-contact", &body, &[])
        .await?;

    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.body);
    assert_eq!(second.status.as_u16() / 100, 2, "{}", second.body);
    assert_eq!(second.saga_id(), first.saga_id());
    let sagas: Vec<Value> = stack
        .list_sagas(&format!("type=record-patient-contact&patient_id={patient}"))
        .await?;
    assert_eq!(sagas.len(), 1, "{sagas:?}");
    let patient_now = stack
        .wait_for(
            Service::Patient,
            &format!("/api/patients/{patient}"),
            "the contact update",
            |answer| answer.body["letzter_kontakt"] == "2025-02-03",
        )
        .await?;
    assert_eq!(patient_now.body["letzter_kontakt"], "2025-02-03");
    Ok(())
}
