//! Repeated and concurrent commands: one Idempotency-Key means one saga, and the entity lock
//! keeps two sagas off one patient or therapist.

use std::sync::Arc;

use e2e::{new_key, Answer, Service, Stack, StackOptions, POLL_TIMEOUT};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_e2e-stack");

/// Sends the same command with the same headers `count` times at once and returns every
/// response.
async fn send_at_once(
    stack: &Arc<Stack>,
    count: usize,
    command: &'static str,
    body: Value,
    headers: Vec<(&'static str, String)>,
) -> anyhow::Result<Vec<Answer>> {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..count {
        let stack = Arc::clone(stack);
        let body = body.clone();
        let headers = headers.clone();
        tasks.spawn(async move {
            let headers: Vec<(&str, &str)> = headers
                .iter()
                .map(|(name, value)| (*name, value.as_str()))
                .collect();
            stack.post_command(command, &body, &headers).await
        });
    }

    let mut answers = Vec::new();
    while let Some(answer) = tasks.join_next().await {
        answers.push(answer??);
    }

    Ok(answers)
}

#[tokio::test]
async fn repeated_key_returns_same_saga() -> anyhow::Result<()> {
    let stack = Stack::start(BIN, StackOptions::default()).await?;
    let patient = stack.create_patient().await?;
    let search = stack.create_platzsuche(patient, json!({})).await?;
    let key = new_key();
    let body = json!({"patient_id": patient, "reason": "zweimal gesendet"});

    let first = stack
        .post_command("delete-patient", &body, &[("Idempotency-Key", &key)])
        .await?;
    let second = stack
        .post_command("delete-patient", &body, &[("Idempotency-Key", &key)])
        .await?;

    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(second.status, StatusCode::OK, "{}", second.body);
    assert_eq!(second.saga_id(), first.saga_id());
    assert_eq!(second.body["status"], "completed");
    assert_eq!(second.body["finished_at"], first.body["finished_at"]);
    let sagas = stack.list_sagas(&format!("patient_id={patient}")).await?;
    assert_eq!(sagas.len(), 1, "{sagas:?}");
    let notes = stack.get_platzsuche(search).await?.body["notizen"].clone();
    assert_eq!(
        notes
            .as_str()
            .map(|n| n.matches("zweimal gesendet").count()),
        Some(1),
        "{notes}"
    );
    Ok(())
}

#[tokio::test]
async fn same_key_with_another_body_is_rejected() -> anyhow::Result<()> {
    let stack = Stack::start(BIN, StackOptions::default()).await?;
    let patient = stack.create_patient().await?;
    let other = stack.create_patient().await?;
    let key = new_key();
    stack
        .post_command(
            "delete-patient",
            &json!({"patient_id": patient}),
            &[("Idempotency-Key", &key)],
        )
        .await?
        .expect(StatusCode::OK)?;

    let reused = stack
        .post_command(
            "delete-patient",
            &json!({"patient_id": other}),
            &[("Idempotency-Key", &key)],
        )
        .await?;

    assert_eq!(
        reused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reused.body
    );
    assert_eq!(reused.body["field"], "Idempotency-Key");
    assert_eq!(stack.get_patient(other).await?.status, StatusCode::OK);
    assert_eq!(
        stack
            .list_sagas(&format!("patient_id={other}"))
            .await?
            .len(),
        0
    );
    Ok(())
}

#[tokio::test]
async fn ten_concurrent_same_key_one_saga() -> anyhow::Result<()> {
    let stack = Arc::new(Stack::start(BIN, StackOptions::proxied(&[Service::Patient])).await?);
    let patient = stack.create_patient().await?;
    let search = stack.create_platzsuche(patient, json!({})).await?;
    let body = json!({"patient_id": patient, "reason": "zehnfach"});
    // The saga stays at its pivot until every request has its response, so that no request
    // can see the patient already deleted (see the ignored test below for that case).
    stack
        .proxy(Service::Patient)
        .hold(Method::DELETE, "/api/patients/");

    let headers = vec![
        ("Idempotency-Key", new_key()),
        ("Prefer", "respond-async".to_owned()),
    ];
    let answers = send_at_once(&stack, 10, "delete-patient", body, headers).await?;
    stack.proxy(Service::Patient).release();

    let ids: Vec<Option<String>> = answers.iter().map(Answer::saga_id).collect();
    for answer in &answers {
        assert!(
            answer.status == StatusCode::OK || answer.status == StatusCode::ACCEPTED,
            "{} {}",
            answer.status,
            answer.body
        );
    }
    assert!(ids[0].is_some(), "{ids:?}");
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    let sagas = stack.list_sagas(&format!("patient_id={patient}")).await?;
    assert_eq!(sagas.len(), 1, "{sagas:?}");
    let saga_id = ids[0].clone().unwrap_or_default();
    stack.wait_for_saga_status(&saga_id, "completed").await?;
    let notes = stack.get_platzsuche(search).await?.body["notizen"].clone();
    assert_eq!(
        notes.as_str().map(|n| n.matches("zehnfach").count()),
        Some(1),
        "{notes}"
    );
    Ok(())
}

#[tokio::test]
async fn late_repeat_gets_first_saga() -> anyhow::Result<()> {
    let stack = Arc::new(Stack::start(BIN, StackOptions::proxied(&[Service::Patient])).await?);
    let patient = stack.create_patient().await?;
    let key = new_key();
    let body = json!({"patient_id": patient, "reason": "Wiederholung"});
    // The repeat's existence check is held; the first request's check passes.
    stack
        .proxy(Service::Patient)
        .hold_next(Method::GET, "/api/patients/", 1);
    let repeat = {
        let stack = Arc::clone(&stack);
        let (body, key) = (body.clone(), key.clone());
        tokio::spawn(async move {
            stack
                .post_command("delete-patient", &body, &[("Idempotency-Key", &key)])
                .await
        })
    };
    stack
        .proxy(Service::Patient)
        .wait_for_seen(&Method::GET, "/api/patients/", 1, POLL_TIMEOUT)
        .await?;
    let first = stack
        .post_command("delete-patient", &body, &[("Idempotency-Key", &key)])
        .await?
        .expect(StatusCode::OK)?;

    stack.proxy(Service::Patient).release();
    let repeat = repeat.await??;

    assert_eq!(repeat.status, StatusCode::OK, "{}", repeat.body);
    assert_eq!(repeat.saga_id(), first.saga_id());
    Ok(())
}

#[tokio::test]
async fn concurrent_deletes_without_key_run_one_saga() -> anyhow::Result<()> {
    let stack = Arc::new(Stack::start(BIN, StackOptions::default()).await?);
    let patient = stack.create_patient().await?;
    let body = json!({"patient_id": patient});

    let answers = send_at_once(&stack, 6, "delete-patient", body, Vec::new()).await?;

    let completed: Vec<&Answer> = answers
        .iter()
        .filter(|answer| answer.status == StatusCode::OK)
        .collect();
    assert_eq!(completed.len(), 1, "{answers:#?}");
    let winner = completed[0].saga_id();
    for answer in &answers {
        match answer.status {
            StatusCode::OK => {}
            // Another saga held the patient's lock, and the response names it.
            StatusCode::CONFLICT => assert_eq!(answer.saga_id(), winner, "{}", answer.body),
            // The winner had already deleted the patient.
            StatusCode::NOT_FOUND => {}
            other => panic!("unexpected {other}: {}", answer.body),
        }
    }
    // A request whose existence check ran before the winner deleted the patient may still
    // start a saga after the winner released the lock. That saga's DELETE gets 404, so it
    // is compensated and changes nothing.
    let sagas = stack
        .list_sagas(&format!("patient_id={patient}&type=delete-patient"))
        .await?;
    let completed_sagas: Vec<&Value> = sagas
        .iter()
        .filter(|saga| saga["status"] == "completed")
        .collect();
    assert_eq!(completed_sagas.len(), 1, "{sagas:?}");
    for saga in sagas.iter().filter(|saga| saga["status"] != "completed") {
        assert_eq!(saga["status"], "compensated", "{saga}");
        assert_eq!(saga["failure_kind"], "refused", "{saga}");
    }
    Ok(())
}

#[tokio::test]
async fn locked_patient_gets_409_with_holder() -> anyhow::Result<()> {
    let stack = Stack::start(BIN, StackOptions::proxied(&[Service::Patient])).await?;
    let patient = stack.create_patient().await?;
    stack
        .proxy(Service::Patient)
        .hold(Method::DELETE, "/api/patients/");
    let first = stack
        .post_command(
            "delete-patient",
            &json!({"patient_id": patient}),
            &[("Prefer", "respond-async")],
        )
        .await?
        .expect(StatusCode::ACCEPTED)?;
    let holder = first.saga_id().expect("the answer names its saga");
    assert_eq!(
        first.header("location"),
        Some(format!("/api/v1/sagas/{holder}").as_str())
    );
    stack
        .proxy(Service::Patient)
        .wait_for_seen(&Method::DELETE, "/api/patients/", 1, POLL_TIMEOUT)
        .await?;

    let second = stack
        .post_command(
            "delete-patient",
            &json!({"patient_id": patient, "reason": "anderer Grund"}),
            &[("Idempotency-Key", &new_key())],
        )
        .await?;
    stack.proxy(Service::Patient).release();

    assert_eq!(second.status, StatusCode::CONFLICT, "{}", second.body);
    assert_eq!(second.body["saga_id"], holder.as_str());
    stack.wait_for_saga_status(&holder, "completed").await?;
    let sagas = stack.list_sagas(&format!("patient_id={patient}")).await?;
    assert_eq!(sagas.len(), 1, "{sagas:?}");
    Ok(())
}

#[tokio::test]
async fn concurrent_block_unblock_stay_consistent() -> anyhow::Result<()> {
    let stack = Arc::new(Stack::start(BIN, StackOptions::default()).await?);
    let therapist = stack.create_therapist().await?;
    let patient = stack.create_patient().await?;
    let search = stack.create_platzsuche(patient, json!({})).await?;
    let anfrage = stack.create_anfrage(therapist, &[search], None).await?;

    for round in 0..3 {
        let reason = format!("Runde {round}");
        let (block, unblock) = tokio::join!(
            stack.block_therapist(therapist, &reason),
            stack.unblock_therapist(therapist),
        );
        let (block, unblock) = (block?, unblock?);

        for answer in [&block, &unblock] {
            assert!(
                answer.status == StatusCode::OK || answer.status == StatusCode::CONFLICT,
                "round {round}: {} {}",
                answer.status,
                answer.body
            );
        }
        let sagas = stack
            .list_sagas(&format!("therapist_id={therapist}&limit=500"))
            .await?;
        assert!(
            sagas.iter().all(|saga| saga["status"] == "completed"),
            "round {round}: {sagas:#?}"
        );
        let last = sagas
            .iter()
            .max_by_key(|saga| saga["finished_at"].as_str().unwrap_or_default().to_owned())
            .map(|saga| saga["type"].clone());
        let expected_status = match last.as_ref().and_then(Value::as_str) {
            Some("block-therapist") => "gesperrt",
            _ => "aktiv",
        };
        let therapist_now = stack.get_therapist(therapist).await?.body;
        assert_eq!(
            therapist_now["status"], expected_status,
            "round {round}: {sagas:#?}"
        );
        let sperre_count = stack.get_platzsuche(search).await?.body["ausschluesse"]
            .as_array()
            .map_or(0, |exclusions| {
                exclusions
                    .iter()
                    .filter(|e| e["ausgeschlossen_von"] == "sperre")
                    .count()
            });
        assert!(
            sperre_count <= 1,
            "round {round}: {sperre_count} sperre exclusions"
        );
        if expected_status == "aktiv" {
            assert_eq!(
                sperre_count, 0,
                "round {round}: an aktiv therapist stays excluded"
            );
        }
    }
    assert_eq!(
        stack.get_anfrage(anfrage).await?.body["status"],
        "storniert"
    );
    Ok(())
}

#[tokio::test]
async fn one_key_two_replicas_one_saga() -> anyhow::Result<()> {
    let mut stack = Stack::start(BIN, StackOptions::proxied(&[Service::Patient])).await?;
    let second = stack.add_coordinator("replica-b").await?;
    let stack = Arc::new(stack);
    let patient = stack.create_patient().await?;
    let key = new_key();
    // As above, the saga waits at its pivot until every request has its response.
    stack
        .proxy(Service::Patient)
        .hold(Method::DELETE, "/api/patients/");
    let body = json!({"patient_id": patient, "reason": "zwei Replikate"});

    let mut tasks = tokio::task::JoinSet::new();
    for attempt in 0..8 {
        let stack = Arc::clone(&stack);
        let body = body.clone();
        let key = key.clone();
        tasks.spawn(async move {
            let replica = if attempt % 2 == 0 { 0 } else { second };
            stack
                .post_command_to(
                    replica,
                    "delete-patient",
                    &body,
                    &[("Idempotency-Key", &key)],
                )
                .await
        });
    }
    let mut answers = Vec::new();
    while let Some(answer) = tasks.join_next().await {
        answers.push(answer??);
    }
    stack.proxy(Service::Patient).release();

    let ids: Vec<Option<String>> = answers.iter().map(Answer::saga_id).collect();
    for answer in &answers {
        assert!(
            answer.status == StatusCode::OK || answer.status == StatusCode::ACCEPTED,
            "{} {}",
            answer.status,
            answer.body
        );
    }
    assert!(ids[0].is_some(), "{ids:?}");
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    let sagas = stack.list_sagas(&format!("patient_id={patient}")).await?;
    assert_eq!(sagas.len(), 1, "{sagas:?}");
    let saga_id = ids[0].clone().unwrap_or_default();
    stack.wait_for_saga_status(&saga_id, "completed").await?;
    Ok(())
}
