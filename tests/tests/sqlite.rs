//! The delete and block flows on the embedded default: all five processes on SQLite files.

use e2e::{Backend, Service, Stack, StackOptions};
use reqwest::{Method, StatusCode};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_e2e-stack");

fn sqlite(proxied: &[Service]) -> StackOptions {
    StackOptions {
        backend: Backend::Sqlite,
        proxied: proxied.to_vec(),
        store_link: false,
    }
}

#[tokio::test]
async fn delete_patient_cascade_runs_on_sqlite() -> anyhow::Result<()> {
    let stack = Stack::start(BIN, sqlite(&[])).await?;
    let patient = stack.create_patient().await?;
    let therapist = stack.create_therapist().await?;
    let search = stack.create_platzsuche(patient, json!({})).await?;
    let anfrage = stack.create_anfrage(therapist, &[search], None).await?;

    let answer = stack.delete_patient(patient, "SQLite-Test").await?;

    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["status"], "completed");
    assert_eq!(
        stack.get_platzsuche(search).await?.body["status"],
        "abgebrochen"
    );
    assert_eq!(
        stack.get_anfrage(anfrage).await?.body["status"],
        "storniert"
    );
    assert_eq!(
        stack.get_patient(patient).await?.status,
        StatusCode::NOT_FOUND
    );
    Ok(())
}

#[tokio::test]
async fn block_and_unblock_run_on_sqlite() -> anyhow::Result<()> {
    let stack = Stack::start(BIN, sqlite(&[])).await?;
    let therapist = stack.create_therapist().await?;
    let patient = stack.create_patient().await?;
    let search = stack.create_platzsuche(patient, json!({})).await?;
    let anfrage = stack.create_anfrage(therapist, &[search], None).await?;

    let block = stack.block_therapist(therapist, "SQLite-Sperre").await?;

    assert_eq!(block.status, StatusCode::OK, "{}", block.body);
    assert_eq!(
        stack.get_therapist(therapist).await?.body["status"],
        "gesperrt"
    );
    assert_eq!(
        stack.get_anfrage(anfrage).await?.body["status"],
        "storniert"
    );
    let exclusions = stack.get_platzsuche(search).await?.body["ausschluesse"].clone();
    assert_eq!(
        exclusions[0]["ausgeschlossen_von"], "sperre",
        "{exclusions}"
    );

    let unblock = stack.unblock_therapist(therapist).await?;

    assert_eq!(unblock.status, StatusCode::OK, "{}", unblock.body);
    assert_eq!(
        stack.get_therapist(therapist).await?.body["status"],
        "aktiv"
    );
    assert_eq!(
        stack.get_platzsuche(search).await?.body["ausschluesse"],
        json!([])
    );
    Ok(())
}

#[tokio::test]
async fn refused_pivot_is_compensated_on_sqlite() -> anyhow::Result<()> {
    let stack = Stack::start(BIN, sqlite(&[Service::Therapist])).await?;
    let therapist = stack.create_therapist().await?;
    let patient = stack.create_patient().await?;
    let search = stack.create_platzsuche(patient, json!({})).await?;
    let anfrage = stack.create_anfrage(therapist, &[search], None).await?;
    stack.proxy(Service::Therapist).respond(
        Method::PATCH,
        "/api/therapists/",
        StatusCode::CONFLICT,
        1,
    );

    let answer = stack.block_therapist(therapist, "wird abgelehnt").await?;

    assert_eq!(answer.status, StatusCode::CONFLICT, "{}", answer.body);
    assert_eq!(answer.body["saga"]["status"], "compensated");
    assert_eq!(
        stack.get_therapist(therapist).await?.body["status"],
        "aktiv"
    );
    assert_eq!(stack.get_anfrage(anfrage).await?.body["status"], "offen");
    assert_eq!(
        stack.get_platzsuche(search).await?.body["ausschluesse"],
        json!([])
    );
    Ok(())
}

#[tokio::test]
async fn killed_coordinator_resumes_on_sqlite() -> anyhow::Result<()> {
    let mut stack = Stack::start(BIN, sqlite(&[Service::Patient])).await?;
    let patient = stack.create_patient().await?;
    let search = stack.create_platzsuche(patient, json!({})).await?;
    stack
        .proxy(Service::Patient)
        .hold(Method::DELETE, "/api/patients/");
    let saga_id = stack
        .post_command(
            "delete-patient",
            &json!({"patient_id": patient}),
            &[("Prefer", "respond-async")],
        )
        .await?
        .expect(StatusCode::ACCEPTED)?
        .saga_id()
        .expect("the answer names its saga");
    stack
        .proxy(Service::Patient)
        .wait_for_seen(&Method::DELETE, "/api/patients/", 1, e2e::POLL_TIMEOUT)
        .await?;

    stack.kill_coordinator(0).await?;
    stack.proxy(Service::Patient).release();
    stack.restart_coordinator(0).await?;

    let saga = stack.wait_for_saga_status(&saga_id, "completed").await?;
    assert_eq!(saga["steps"][1]["status"], "succeeded", "{saga}");
    assert_eq!(
        stack.get_platzsuche(search).await?.body["status"],
        "abgebrochen"
    );
    assert_eq!(
        stack.get_patient(patient).await?.status,
        StatusCode::NOT_FOUND
    );
    Ok(())
}
