//! Coordinator crashes and saga store outages: a killed coordinator resumes its sagas after
//! a restart, a second replica takes over after the lease expires, and commands are refused
//! while the store is unreachable.

use std::time::Duration;

use e2e::{Service, Stack, StackOptions, LEASE_DURATION, POLL_TIMEOUT};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::{Connection, Executor};

const BIN: &str = env!("CARGO_BIN_EXE_e2e-stack");

/// How long the store stays unreachable in the outage test: longer than the 5 s acquire
/// timeout of the coordinator's connection pool.
const STORE_OUTAGE: Duration = Duration::from_millis(6000);

const CASCADE: &str = "/api/matching/cascade/patient-deleted";

fn note_count(resource: &Value, needle: &str) -> usize {
    resource["notizen"]
        .as_str()
        .map_or(0, |notes| notes.matches(needle).count())
}

/// Starts a delete saga whose pivot DELETE the patient proxy holds, and returns the saga id
/// once the held request has reached the proxy.
async fn start_delete_held_at_pivot(
    stack: &Stack,
    coordinator: usize,
    patient: i64,
    reason: &str,
) -> anyhow::Result<String> {
    stack
        .proxy(Service::Patient)
        .hold(Method::DELETE, "/api/patients/");

    let answer = stack
        .post_command_to(
            coordinator,
            "delete-patient",
            &json!({"patient_id": patient, "reason": reason}),
            &[("Prefer", "respond-async")],
        )
        .await?
        .expect(StatusCode::ACCEPTED)?;

    stack
        .proxy(Service::Patient)
        .wait_for_seen(&Method::DELETE, "/api/patients/", 1, POLL_TIMEOUT)
        .await?;

    Ok(answer.saga_id().expect("the answer names its saga"))
}

#[tokio::test]
async fn killed_coordinator_resumes_saga_after_restart() -> anyhow::Result<()> {
    let mut stack = Stack::start(
        BIN,
        StackOptions::proxied(&[Service::Patient, Service::Matching]),
    )
    .await?;
    let patient = stack.create_patient().await?;
    let search = stack.create_platzsuche(patient, json!({})).await?;
    let saga_id = start_delete_held_at_pivot(&stack, 0, patient, "Absturztest").await?;

    stack.kill_coordinator(0).await?;
    // The held DELETE now reaches the patient service, but no client receives its response.
    stack.proxy(Service::Patient).release();
    stack
        .wait_for(
            Service::Patient,
            &format!("/api/patients/{patient}"),
            "the released DELETE",
            |answer| answer.status == StatusCode::NOT_FOUND,
        )
        .await?;
    stack.restart_coordinator(0).await?;

    let saga = stack.wait_for_saga_status(&saga_id, "completed").await?;
    assert_eq!(saga["steps"][1]["status"], "succeeded", "{saga}");
    assert_eq!(saga["steps"][1]["possibly_applied"], true, "{saga}");
    assert_eq!(saga["steps"][1]["last_status_code"], 200, "{saga}");
    assert_eq!(
        stack
            .proxy(Service::Matching)
            .seen_exact(&Method::POST, CASCADE),
        1
    );
    assert_eq!(
        stack
            .proxy(Service::Patient)
            .seen(&Method::DELETE, "/api/patients/"),
        2
    );
    let search_after = stack.get_platzsuche(search).await?.body;
    assert_eq!(search_after["status"], "abgebrochen");
    assert_eq!(
        note_count(&search_after, "Absturztest"),
        1,
        "{search_after}"
    );
    assert_eq!(
        stack.get_patient(patient).await?.status,
        StatusCode::NOT_FOUND
    );
    Ok(())
}

#[tokio::test]
async fn killed_coordinator_resumes_saga_stuck_in_retries() -> anyhow::Result<()> {
    let mut stack = Stack::start(BIN, StackOptions::proxied(&[Service::Patient])).await?;
    let patient = stack.create_patient().await?;
    let search = stack.create_platzsuche(patient, json!({})).await?;
    stack.proxy(Service::Patient).respond(
        Method::DELETE,
        "/api/patients/",
        StatusCode::BAD_GATEWAY,
        100,
    );
    let saga_id = start_delete_failing_at_pivot(&stack, patient).await?;

    stack.kill_coordinator(0).await?;
    stack.proxy(Service::Patient).clear();
    stack.restart_coordinator(0).await?;

    let saga = stack.wait_for_saga_status(&saga_id, "completed").await?;
    assert_eq!(saga["steps"][1]["last_status_code"], 200, "{saga}");
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

/// Starts a delete saga and waits until its pivot DELETE was tried at least once.
async fn start_delete_failing_at_pivot(stack: &Stack, patient: i64) -> anyhow::Result<String> {
    let answer = stack
        .post_command(
            "delete-patient",
            &json!({"patient_id": patient}),
            &[("Prefer", "respond-async")],
        )
        .await?
        .expect(StatusCode::ACCEPTED)?;

    stack
        .proxy(Service::Patient)
        .wait_for_seen(&Method::DELETE, "/api/patients/", 1, POLL_TIMEOUT)
        .await?;

    Ok(answer.saga_id().expect("the answer names its saga"))
}

#[tokio::test]
async fn second_coordinator_takes_over_after_lease_expires() -> anyhow::Result<()> {
    let mut stack = Stack::start(
        BIN,
        StackOptions::proxied(&[Service::Patient, Service::Matching]),
    )
    .await?;
    let second = stack.add_coordinator("replica-b").await?;
    let patient = stack.create_patient().await?;
    let search = stack.create_platzsuche(patient, json!({})).await?;
    let saga_id = start_delete_held_at_pivot(&stack, 0, patient, "Übernahmetest").await?;

    stack.kill_coordinator(0).await?;
    let killed_at = tokio::time::Instant::now();
    let right_after = stack.get_saga_from(second, &saga_id).await?.body;
    assert_eq!(right_after["lease"]["owner"], "replica-a", "{right_after}");
    stack.proxy(Service::Patient).release();

    let saga = stack
        .wait_for_saga_status_on(second, &saga_id, "completed", POLL_TIMEOUT)
        .await?;
    assert!(
        killed_at.elapsed() >= LEASE_DURATION / 2,
        "replica-b finished the saga {:?} after the kill, before replica-a's lease could \
         expire",
        killed_at.elapsed()
    );
    assert_eq!(saga["steps"][1]["status"], "succeeded", "{saga}");
    assert_eq!(
        stack
            .proxy(Service::Matching)
            .seen_exact(&Method::POST, CASCADE),
        1
    );
    let search_after = stack.get_platzsuche(search).await?.body;
    assert_eq!(
        note_count(&search_after, "Übernahmetest"),
        1,
        "{search_after}"
    );
    assert_eq!(
        stack.get_patient(patient).await?.status,
        StatusCode::NOT_FOUND
    );
    Ok(())
}

/// Turns connections to the saga store's PostgreSQL database off (ending the open ones) or
/// on again.
async fn set_store_connections(stack: &Stack, allowed: bool) -> anyhow::Result<()> {
    let name = stack.store_database_name()?;
    let admin_url = std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| kit::testing::DEFAULT_ADMIN_URL.to_owned());

    let mut admin = sqlx::PgConnection::connect(&admin_url).await?;
    admin
        .execute(format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS {allowed}").as_str())
        .await?;

    if !allowed {
        admin
            .execute(
                format!(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE datname = '{name}' AND pid <> pg_backend_pid()"
                )
                .as_str(),
            )
            .await?;
    }

    admin.close().await?;
    Ok(())
}

/// Polls until the coordinator's `/readyz` returns `status`.
async fn wait_for_readiness(stack: &Stack, status: StatusCode) -> anyhow::Result<()> {
    let url = format!("{}/readyz", stack.coordinator_url(0));
    let deadline = tokio::time::Instant::now() + POLL_TIMEOUT;
    loop {
        let answer = stack.send(Method::GET, &url, None, &[]).await?;
        if answer.status == status {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("/readyz answered {} instead of {status}", answer.status);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn unreachable_store_refuses_commands_and_starts_nothing() -> anyhow::Result<()> {
    let options = StackOptions {
        store_link: true,
        ..StackOptions::default()
    };
    let stack = Stack::start(BIN, options).await?;
    let patient = stack.create_patient().await?;
    let therapist = stack.create_therapist().await?;
    let search = stack.create_platzsuche(patient, json!({})).await?;
    stack.cut_store().await?;

    let (delete, block) = tokio::join!(
        stack.delete_patient(patient, "Speicher weg"),
        stack.block_therapist(therapist, "Speicher weg"),
    );

    let delete = delete?;
    assert_eq!(
        delete.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        delete.body
    );
    assert!(
        delete.header("retry-after").is_some(),
        "{:?}",
        delete.headers
    );
    assert!(delete.body["detail"].is_string(), "{}", delete.body);
    let block = block?;
    assert_eq!(
        block.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        block.body
    );
    wait_for_readiness(&stack, StatusCode::SERVICE_UNAVAILABLE).await?;

    stack.restore_store().await?;
    wait_for_readiness(&stack, StatusCode::OK).await?;
    assert_eq!(stack.list_sagas("").await?.len(), 0);
    assert_eq!(stack.get_patient(patient).await?.status, StatusCode::OK);
    assert_eq!(
        stack.get_therapist(therapist).await?.body["status"],
        "aktiv"
    );
    assert_eq!(stack.get_platzsuche(search).await?.body["status"], "aktiv");

    let again = stack.delete_patient(patient, "Speicher wieder da").await?;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(
        stack.get_patient(patient).await?.status,
        StatusCode::NOT_FOUND
    );
    Ok(())
}

#[tokio::test]
async fn store_refusing_connections_refuses_commands() -> anyhow::Result<()> {
    let stack = Stack::start(BIN, StackOptions::default()).await?;
    let patient = stack.create_patient().await?;
    set_store_connections(&stack, false).await?;

    let refused = stack.delete_patient(patient, "Speicher gesperrt").await;
    let ready = stack
        .send(
            Method::GET,
            &format!("{}/readyz", stack.coordinator_url(0)),
            None,
            &[],
        )
        .await;
    set_store_connections(&stack, true).await?;

    let refused = refused?;
    assert_eq!(
        refused.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        refused.body
    );
    assert!(
        refused.header("retry-after").is_some(),
        "{:?}",
        refused.headers
    );
    assert_eq!(ready?.status, StatusCode::SERVICE_UNAVAILABLE);
    wait_for_readiness(&stack, StatusCode::OK).await?;
    assert_eq!(stack.list_sagas("").await?.len(), 0);
    assert_eq!(stack.get_patient(patient).await?.status, StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn saga_cut_off_from_store_completes_later() -> anyhow::Result<()> {
    let options = StackOptions {
        store_link: true,
        ..StackOptions::proxied(&[Service::Patient])
    };
    let stack = Stack::start(BIN, options).await?;
    let patient = stack.create_patient().await?;
    let search = stack.create_platzsuche(patient, json!({})).await?;
    let saga_id = start_delete_held_at_pivot(&stack, 0, patient, "Speicherausfall").await?;

    stack.cut_store().await?;
    // The DELETE succeeds, but the coordinator cannot record the response.
    stack.proxy(Service::Patient).release();
    stack
        .wait_for(
            Service::Patient,
            &format!("/api/patients/{patient}"),
            "the released DELETE",
            |answer| answer.status == StatusCode::NOT_FOUND,
        )
        .await?;
    // The outage lasts longer than the store pool's 5 s acquire timeout, so the save of the
    // DELETE's response fails instead of waiting for the store to return. This is the length
    // of the fault, not a wait for a state.
    tokio::time::sleep(STORE_OUTAGE).await;
    wait_for_readiness(&stack, StatusCode::SERVICE_UNAVAILABLE).await?;
    stack.restore_store().await?;

    let saga = stack
        .wait_for_saga_status_on(0, &saga_id, "completed", POLL_TIMEOUT)
        .await?;
    assert_eq!(saga["steps"][1]["status"], "succeeded", "{saga}");
    assert_eq!(
        stack
            .proxy(Service::Patient)
            .seen(&Method::DELETE, "/api/patients/"),
        2,
        "the resumed saga sends the DELETE again with the same key"
    );
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

#[tokio::test]
async fn killed_coordinator_finishes_compensation_after_restart() -> anyhow::Result<()> {
    let mut stack = Stack::start(
        BIN,
        StackOptions::proxied(&[Service::Patient, Service::Matching]),
    )
    .await?;
    let patient = stack.create_patient().await?;
    let search = stack.create_platzsuche(patient, json!({})).await?;
    let before = stack.get_platzsuche(search).await?.body;
    let compensate = "/api/matching/cascade/patient-deleted/compensate";
    stack.proxy(Service::Patient).respond(
        Method::DELETE,
        "/api/patients/",
        StatusCode::CONFLICT,
        1,
    );
    stack
        .proxy(Service::Matching)
        .hold(Method::POST, compensate);
    let saga_id = stack
        .post_command(
            "delete-patient",
            &json!({"patient_id": patient}),
            &[("Prefer", "respond-async")],
        )
        .await?
        .saga_id()
        .expect("the answer names its saga");
    stack
        .proxy(Service::Matching)
        .wait_for_seen(&Method::POST, compensate, 1, POLL_TIMEOUT)
        .await?;

    stack.kill_coordinator(0).await?;
    stack.proxy(Service::Matching).release();
    stack.restart_coordinator(0).await?;

    let saga = stack.wait_for_saga_status(&saga_id, "compensated").await?;
    assert_eq!(
        saga["steps"][0]["compensation"]["status"], "succeeded",
        "{saga}"
    );
    let after = stack.get_platzsuche(search).await?.body;
    assert_eq!(after["status"], before["status"]);
    assert_eq!(after["notizen"], before["notizen"]);
    assert_eq!(stack.get_patient(patient).await?.status, StatusCode::OK);
    Ok(())
}
