//! Participant faults: a stopped service, responses lost after the change was applied,
//! transient 503s, a definite refusal at the pivot, and a compensation that fails for a while.

use std::time::Duration;

use e2e::{new_key, without, Service, Stack, StackOptions, PARTICIPANT_TIMEOUT};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_e2e-stack");

const CASCADE: &str = "/api/matching/cascade/patient-deleted";
const CASCADE_COMPENSATE: &str = "/api/matching/cascade/patient-deleted/compensate";

const DELETE_UNAVAILABLE: &str = "Cannot delete patient at this time. The matching service is \
                                  temporarily unavailable. Please try again in a few minutes.";

/// Counts how often `needle` occurs in the `notizen` of a resource.
fn note_count(resource: &Value, needle: &str) -> usize {
    resource["notizen"]
        .as_str()
        .map_or(0, |notes| notes.matches(needle).count())
}

#[tokio::test]
async fn delete_rolls_back_when_matching_is_down() -> anyhow::Result<()> {
    let mut stack = Stack::start(BIN, StackOptions::default()).await?;
    let patient = stack.create_patient().await?;
    let search = stack.create_platzsuche(patient, json!({})).await?;
    let search_before = stack.get_platzsuche(search).await?.body;
    stack.stop_service(Service::Matching).await?;
    let body = json!({"patient_id": patient, "reason": "Wunsch des Patienten"});
    let first_key = new_key();

    let answer = stack
        .post_command("delete-patient", &body, &[("Idempotency-Key", &first_key)])
        .await?;

    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        answer.body
    );
    assert_eq!(answer.body["detail"], DELETE_UNAVAILABLE);
    assert!(
        answer.header("retry-after").is_some(),
        "{:?}",
        answer.headers
    );
    assert_eq!(answer.body["saga"]["status"], "compensated");
    assert_eq!(answer.body["saga"]["failure_kind"], "unavailable");
    assert_eq!(answer.body["saga_id"], answer.body["saga"]["id"]);
    assert_eq!(stack.get_patient(patient).await?.status, StatusCode::OK);

    stack.start_service(Service::Matching).await?;
    assert_eq!(stack.get_platzsuche(search).await?.body, search_before);

    let retry = stack
        .post_command("delete-patient", &body, &[("Idempotency-Key", &new_key())])
        .await?;

    assert_eq!(retry.status, StatusCode::OK, "{}", retry.body);
    assert_ne!(retry.saga_id(), answer.saga_id());
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
async fn block_rolls_back_when_matching_is_down() -> anyhow::Result<()> {
    let mut stack = Stack::start(BIN, StackOptions::default()).await?;
    let therapist = stack.create_therapist().await?;
    stack.stop_service(Service::Matching).await?;

    let answer = stack.block_therapist(therapist, "Prüfung").await?;

    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        answer.body
    );
    assert_eq!(
        answer.body["detail"],
        "Cannot update therapist status. Related services are temporarily unavailable. \
         Please try again later."
    );
    assert_eq!(answer.body["saga"]["status"], "compensated");
    assert_eq!(
        stack.get_therapist(therapist).await?.body["status"],
        "aktiv"
    );
    Ok(())
}

#[tokio::test]
async fn lost_responses_retry_with_same_key() -> anyhow::Result<()> {
    let stack = Stack::start(
        BIN,
        StackOptions::proxied(&[Service::Patient, Service::Matching]),
    )
    .await?;
    let patient = stack.create_patient().await?;
    let search = stack.create_platzsuche(patient, json!({})).await?;
    let late = PARTICIPANT_TIMEOUT + Duration::from_millis(700);
    stack
        .proxy(Service::Matching)
        .delay_answer(Method::POST, CASCADE, late, 1);
    stack
        .proxy(Service::Patient)
        .delay_answer(Method::DELETE, "/api/patients/", late, 1);

    let answer = stack
        .post_command(
            "delete-patient",
            &json!({"patient_id": patient, "reason": "Doppelt angelegt"}),
            &[("Prefer", "respond-async")],
        )
        .await?;
    let saga_id = answer.saga_id().expect("the answer names its saga");
    let saga = stack.wait_for_saga_status(&saga_id, "completed").await?;

    assert_eq!(saga["steps"][0]["attempts"], 2, "{saga}");
    assert_eq!(saga["steps"][1]["attempts"], 2, "{saga}");
    assert_eq!(
        stack
            .proxy(Service::Matching)
            .seen_exact(&Method::POST, CASCADE),
        2
    );
    let search_after = stack.get_platzsuche(search).await?.body;
    assert_eq!(search_after["status"], "abgebrochen");
    assert_eq!(
        note_count(&search_after, "Doppelt angelegt"),
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
async fn two_transient_503_then_success_completes() -> anyhow::Result<()> {
    let stack = Stack::start(BIN, StackOptions::proxied(&[Service::Matching])).await?;
    let patient = stack.create_patient().await?;
    let search = stack.create_platzsuche(patient, json!({})).await?;
    stack.proxy(Service::Matching).respond(
        Method::POST,
        CASCADE,
        StatusCode::SERVICE_UNAVAILABLE,
        2,
    );

    let answer = stack.delete_patient(patient, "Wechsel der Praxis").await?;

    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["status"], "completed");
    assert_eq!(answer.body["steps"][0]["attempts"], 3, "{}", answer.body);
    assert_eq!(answer.body["steps"][1]["attempts"], 1, "{}", answer.body);
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
async fn refusal_at_pivot_restores_matching_exactly() -> anyhow::Result<()> {
    let stack = Stack::start(BIN, StackOptions::proxied(&[Service::Patient])).await?;
    let patient = stack.create_patient().await?;
    let other_patient = stack.create_patient().await?;
    let therapist = stack.create_therapist().await?;
    let active = stack
        .create_platzsuche(patient, json!({"notizen": "erste Notiz"}))
        .await?;
    let paused = stack
        .create_platzsuche(patient, json!({"status": "pausiert"}))
        .await?;
    let other = stack.create_platzsuche(other_patient, json!({})).await?;
    let alone = stack.create_anfrage(therapist, &[active], None).await?;
    let shared = stack
        .create_anfrage(therapist, &[active, paused, other], None)
        .await?;
    let searches = [active, paused, other];
    let anfragen = [alone, shared];
    let mut before = Vec::new();
    for id in searches {
        before.push(stack.get_platzsuche(id).await?.body);
    }
    for id in anfragen {
        before.push(stack.get_anfrage(id).await?.body);
    }
    stack.proxy(Service::Patient).respond(
        Method::DELETE,
        "/api/patients/",
        StatusCode::UNPROCESSABLE_ENTITY,
        1,
    );

    let answer = stack.delete_patient(patient, "Test der Rücknahme").await?;

    assert_eq!(answer.status, StatusCode::CONFLICT, "{}", answer.body);
    assert_eq!(answer.body["saga"]["status"], "compensated");
    assert_eq!(answer.body["saga"]["steps"][1]["status"], "failed");
    assert_eq!(answer.body["saga"]["steps"][1]["last_status_code"], 422);
    assert_eq!(
        answer.body["saga"]["steps"][0]["compensation"]["status"],
        "succeeded"
    );
    let mut after = Vec::new();
    for id in searches {
        after.push(stack.get_platzsuche(id).await?.body);
    }
    for id in anfragen {
        after.push(stack.get_anfrage(id).await?.body);
    }
    for (before, after) in before.iter().zip(&after) {
        assert_eq!(
            without(after, &["updated_at"]),
            without(before, &["updated_at"])
        );
    }
    assert_eq!(stack.get_patient(patient).await?.status, StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn failing_compensation_ends_compensated_without_operator() -> anyhow::Result<()> {
    let stack = Stack::start(
        BIN,
        StackOptions::proxied(&[Service::Patient, Service::Matching]),
    )
    .await?;
    let patient = stack.create_patient().await?;
    let search = stack.create_platzsuche(patient, json!({})).await?;
    let before = stack.get_platzsuche(search).await?.body;
    stack.proxy(Service::Patient).respond(
        Method::DELETE,
        "/api/patients/",
        StatusCode::CONFLICT,
        1,
    );
    stack.proxy(Service::Matching).respond(
        Method::POST,
        CASCADE_COMPENSATE,
        StatusCode::SERVICE_UNAVAILABLE,
        6,
    );

    let answer = stack
        .post_command(
            "delete-patient",
            &json!({"patient_id": patient}),
            &[("Prefer", "respond-async")],
        )
        .await?;
    let saga_id = answer.saga_id().expect("the answer names its saga");
    let saga = stack.wait_for_saga_status(&saga_id, "compensated").await?;

    let compensation = &saga["steps"][0]["compensation"];
    assert_eq!(compensation["status"], "succeeded", "{saga}");
    assert_eq!(compensation["attempts"], 7, "{saga}");
    assert_eq!(
        stack
            .proxy(Service::Matching)
            .seen_exact(&Method::POST, CASCADE_COMPENSATE),
        7
    );
    assert_eq!(saga["failure_kind"], "refused", "{saga}");
    let after = stack.get_platzsuche(search).await?.body;
    assert_eq!(
        without(&after, &["updated_at"]),
        without(&before, &["updated_at"])
    );
    assert_eq!(stack.get_patient(patient).await?.status, StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn unknown_patient_gets_404_and_starts_nothing() -> anyhow::Result<()> {
    let stack = Stack::start(BIN, StackOptions::default()).await?;

    let answer = stack.delete_patient(987_654, "unbekannt").await?;

    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{}", answer.body);
    assert!(answer.body["detail"].is_string(), "{}", answer.body);
    assert_eq!(stack.list_sagas("").await?.len(), 0);
    Ok(())
}

#[tokio::test]
async fn patient_gone_at_pivot_undoes_cascade() -> anyhow::Result<()> {
    // The patient disappears between the existence check and the pivot: the DELETE gets a
    // 404 on its first attempt, which is a definite refusal, so the cascade is undone.
    let stack = Stack::start(BIN, StackOptions::proxied(&[Service::Patient])).await?;
    let patient = stack.create_patient().await?;
    let search = stack.create_platzsuche(patient, json!({})).await?;
    stack.proxy(Service::Patient).respond(
        Method::DELETE,
        "/api/patients/",
        StatusCode::NOT_FOUND,
        1,
    );

    let answer = stack.delete_patient(patient, "weg").await?;

    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{}", answer.body);
    assert_eq!(answer.body["saga"]["status"], "compensated");
    assert_eq!(stack.get_platzsuche(search).await?.body["status"], "aktiv");
    Ok(())
}

#[tokio::test]
async fn contract_breaking_answer_parks_saga_until_operator_retry() -> anyhow::Result<()> {
    let stack = Stack::start(BIN, StackOptions::proxied(&[Service::Patient])).await?;
    let patient = stack.create_patient().await?;
    // A 200 whose body lacks the `deleted` member the contract requires.
    stack
        .proxy(Service::Patient)
        .respond(Method::DELETE, "/api/patients/", StatusCode::OK, 1);

    let answer = stack.delete_patient(patient, "Vertragsbruch").await?;

    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.body);
    let saga_id = answer.saga_id().expect("the answer names its saga");
    let parked = stack
        .wait_for_saga_status(&saga_id, "needs_attention")
        .await?;
    assert_eq!(parked["failure_kind"], "contract_violation", "{parked}");
    assert_eq!(parked["next_attempt_at"], Value::Null, "{parked}");
    assert_eq!(parked["lock"], format!("patient:{patient}"), "{parked}");
    assert_eq!(stack.get_patient(patient).await?.status, StatusCode::OK);

    let url = format!("{}/api/v1/sagas/{saga_id}/retry", stack.coordinator_url(0));
    let retry = stack.send(Method::POST, &url, None, &[]).await?;

    assert_eq!(retry.status, StatusCode::ACCEPTED, "{}", retry.body);
    let saga = stack.wait_for_saga_status(&saga_id, "completed").await?;
    assert_eq!(saga["steps"][1]["last_status_code"], 200, "{saga}");
    assert_eq!(
        stack.get_patient(patient).await?.status,
        StatusCode::NOT_FOUND
    );
    Ok(())
}

#[tokio::test]
async fn unavailable_pivot_needs_attention_then_completes_by_itself() -> anyhow::Result<()> {
    let stack = Stack::start(BIN, StackOptions::proxied(&[Service::Patient])).await?;
    let patient = stack.create_patient().await?;
    let search = stack.create_platzsuche(patient, json!({})).await?;
    // Four rounds of four attempts each.
    stack.proxy(Service::Patient).respond(
        Method::DELETE,
        "/api/patients/",
        StatusCode::SERVICE_UNAVAILABLE,
        16,
    );

    let answer = stack
        .post_command(
            "delete-patient",
            &json!({"patient_id": patient}),
            &[("Prefer", "respond-async")],
        )
        .await?;
    let saga_id = answer.saga_id().expect("the answer names its saga");

    let attention = stack
        .wait_for_saga_status(&saga_id, "needs_attention")
        .await?;
    assert!(
        attention["failed_rounds"].as_i64() >= Some(3),
        "{attention}"
    );
    assert!(attention["outcome_reason"].is_string(), "{attention}");
    assert_eq!(
        stack.get_platzsuche(search).await?.body["status"],
        "abgebrochen"
    );
    let saga = stack.wait_for_saga_status(&saga_id, "completed").await?;
    assert_eq!(saga["steps"][1]["attempts"], 17, "{saga}");
    assert_eq!(saga["outcome_reason"], Value::Null, "{saga}");
    assert_eq!(
        stack.get_patient(patient).await?.status,
        StatusCode::NOT_FOUND
    );
    Ok(())
}

#[tokio::test]
async fn refused_unblock_restores_sperre_exclusions() -> anyhow::Result<()> {
    let stack = Stack::start(BIN, StackOptions::proxied(&[Service::Therapist])).await?;
    let therapist = stack.create_therapist().await?;
    let patient = stack.create_patient().await?;
    let search = stack.create_platzsuche(patient, json!({})).await?;
    stack.create_anfrage(therapist, &[search], None).await?;
    stack
        .block_therapist(therapist, "Prüfung läuft")
        .await?
        .expect(StatusCode::OK)?;
    let before = stack.get_platzsuche(search).await?.body;
    stack.proxy(Service::Therapist).respond(
        Method::PATCH,
        "/api/therapists/",
        StatusCode::CONFLICT,
        1,
    );

    let answer = stack.unblock_therapist(therapist).await?;

    assert_eq!(answer.status, StatusCode::CONFLICT, "{}", answer.body);
    assert_eq!(answer.body["saga"]["status"], "compensated");
    let after = stack.get_platzsuche(search).await?.body;
    assert_eq!(
        without(&after, &["updated_at"]),
        without(&before, &["updated_at"])
    );
    assert_eq!(
        stack.get_therapist(therapist).await?.body["status"],
        "gesperrt"
    );
    Ok(())
}

#[tokio::test]
async fn prefer_wait_returns_202_while_saga_runs() -> anyhow::Result<()> {
    let stack = Stack::start(BIN, StackOptions::proxied(&[Service::Patient])).await?;
    let patient = stack.create_patient().await?;
    stack
        .proxy(Service::Patient)
        .hold(Method::DELETE, "/api/patients/");

    let answer = stack
        .post_command(
            "delete-patient",
            &json!({"patient_id": patient}),
            &[("Prefer", "wait=1")],
        )
        .await?;
    stack.proxy(Service::Patient).release();

    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.body);
    let saga_id = answer.saga_id().expect("the answer names its saga");
    assert_eq!(
        answer.header("location"),
        Some(format!("/api/v1/sagas/{saga_id}").as_str())
    );
    assert_eq!(answer.header("preference-applied"), Some("wait=1"));
    assert_eq!(answer.body["status"], "running");
    stack.wait_for_saga_status(&saga_id, "completed").await?;
    Ok(())
}

#[tokio::test]
async fn late_forward_after_compensation_changes_nothing() -> anyhow::Result<()> {
    let stack = Stack::start(BIN, StackOptions::proxied(&[Service::Matching])).await?;
    let patient = stack.create_patient().await?;
    let search = stack.create_platzsuche(patient, json!({})).await?;
    let before = stack.get_platzsuche(search).await?.body;
    stack
        .proxy(Service::Matching)
        .hold_exact(Method::POST, CASCADE);

    let answer = stack
        .post_command(
            "delete-patient",
            &json!({"patient_id": patient, "reason": "zu spät"}),
            &[("Prefer", "respond-async")],
        )
        .await?;
    let saga_id = answer.saga_id().expect("the answer names its saga");
    let saga = stack.wait_for_saga_status(&saga_id, "compensated").await?;

    assert_eq!(saga["failure_kind"], "unavailable", "{saga}");
    assert_eq!(
        saga["steps"][0]["compensation"]["answer"]["forward_call"], "never_arrived",
        "{saga}"
    );
    let held = stack
        .proxy(Service::Matching)
        .seen_exact(&Method::POST, CASCADE);
    stack.proxy(Service::Matching).release();
    let late = stack
        .proxy(Service::Matching)
        .wait_for_answered_exact(&Method::POST, CASCADE, held, e2e::POLL_TIMEOUT)
        .await?;
    assert!(
        late.iter().all(|status| *status == StatusCode::CONFLICT),
        "late forward calls got {late:?}"
    );
    let after = stack.get_platzsuche(search).await?.body;
    assert_eq!(after, before);
    assert_eq!(stack.get_patient(patient).await?.status, StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn delete_404_after_lost_response_counts_as_done() -> anyhow::Result<()> {
    let stack = Stack::start(BIN, StackOptions::proxied(&[Service::Patient])).await?;
    let patient = stack.create_patient().await?;
    let search = stack.create_platzsuche(patient, json!({})).await?;
    // The first DELETE is applied but its response is lost. The repeat gets 404, as it would
    // from a participant that does not store responses.
    let late = PARTICIPANT_TIMEOUT + Duration::from_millis(700);
    let proxy = stack.proxy(Service::Patient);
    proxy.delay_answer(Method::DELETE, "/api/patients/", late, 1);
    proxy.respond(Method::DELETE, "/api/patients/", StatusCode::NOT_FOUND, 1);

    let answer = stack
        .post_command(
            "delete-patient",
            &json!({"patient_id": patient}),
            &[("Prefer", "respond-async")],
        )
        .await?;
    let saga_id = answer.saga_id().expect("the answer names its saga");
    let saga = stack.wait_for_saga_status(&saga_id, "completed").await?;

    assert_eq!(saga["steps"][1]["status"], "succeeded", "{saga}");
    assert_eq!(saga["steps"][1]["last_status_code"], 404, "{saga}");
    assert_eq!(
        saga["steps"][0]["compensation"]["status"], "not_needed",
        "{saga}"
    );
    assert_eq!(
        stack.get_patient(patient).await?.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        stack.get_platzsuche(search).await?.body["status"],
        "abgebrochen"
    );
    Ok(())
}

#[tokio::test]
async fn caller_disconnect_leaves_saga_running() -> anyhow::Result<()> {
    let stack = Stack::start(BIN, StackOptions::proxied(&[Service::Patient])).await?;
    let patient = stack.create_patient().await?;
    let proxy = stack.proxy(Service::Patient);
    proxy.hold(Method::DELETE, "/api/patients/");
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()?;

    let sent = impatient
        .post(format!(
            "{}/api/v1/commands/delete-patient",
            stack.coordinator_url(0)
        ))
        .json(&json!({"patient_id": patient}))
        .send()
        .await;
    proxy
        .wait_for_seen(
            &Method::DELETE,
            "/api/patients/",
            1,
            Duration::from_secs(10),
        )
        .await?;
    proxy.release();

    assert!(sent.is_err(), "the client gave up before the saga ended");
    let sagas = stack.list_sagas(&format!("patient_id={patient}")).await?;
    assert_eq!(sagas.len(), 1, "{sagas:?}");
    let saga_id = sagas[0]["id"].as_str().expect("saga id").to_owned();
    stack.wait_for_saga_status(&saga_id, "completed").await?;
    assert_eq!(
        stack.get_patient(patient).await?.status,
        StatusCode::NOT_FOUND
    );
    Ok(())
}

#[tokio::test]
async fn unreachable_pivot_is_not_possibly_applied() -> anyhow::Result<()> {
    let mut stack = Stack::start(BIN, StackOptions::proxied(&[Service::Matching])).await?;
    let patient = stack.create_patient().await?;
    // The cascade waits at the proxy until the patient service is down, so every DELETE
    // attempt fails to connect.
    stack.proxy(Service::Matching).hold(Method::POST, CASCADE);
    let answer = stack
        .post_command(
            "delete-patient",
            &json!({"patient_id": patient}),
            &[("Prefer", "respond-async")],
        )
        .await?;
    let saga_id = answer.saga_id().expect("the answer names its saga");
    stack
        .proxy(Service::Matching)
        .wait_for_seen(&Method::POST, CASCADE, 1, Duration::from_secs(10))
        .await?;
    stack.stop_service(Service::Patient).await?;
    stack.proxy(Service::Matching).release();

    let attention = stack
        .wait_for_saga_status(&saga_id, "needs_attention")
        .await?;

    assert!(
        attention["failed_rounds"].as_i64() >= Some(3),
        "{attention}"
    );
    assert_eq!(
        attention["steps"][1]["possibly_applied"], false,
        "{attention}"
    );
    stack.start_service(Service::Patient).await?;
    stack.wait_for_saga_status(&saga_id, "completed").await?;
    assert_eq!(
        stack.get_patient(patient).await?.status,
        StatusCode::NOT_FOUND
    );
    Ok(())
}
