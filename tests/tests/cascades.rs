//! The happy paths of every saga across real processes: deleting a patient, blocking and
//! unblocking a therapist, and contacts reported by the communication service.

use chrono::DateTime;
use e2e::{today, Service, Stack, StackOptions};
use reqwest::StatusCode;
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_e2e-stack");

fn time(value: &Value) -> DateTime<chrono::FixedOffset> {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("expected an RFC 3339 time, got {value}"));
    DateTime::parse_from_rfc3339(text).unwrap_or_else(|error| panic!("{text:?}: {error}"))
}

#[tokio::test]
async fn delete_patient_cancels_searches_and_deletes_patient() -> anyhow::Result<()> {
    let stack = Stack::start(BIN, StackOptions::default()).await?;
    let patient = stack.create_patient().await?;
    let other_patient = stack.create_patient().await?;
    let therapist = stack.create_therapist().await?;
    let search = stack.create_platzsuche(patient, json!({})).await?;
    let other_search = stack.create_platzsuche(other_patient, json!({})).await?;
    let only_this_patient = stack.create_anfrage(therapist, &[search], None).await?;
    let shared = stack
        .create_anfrage(therapist, &[search, other_search], None)
        .await?;

    let answer = stack.delete_patient(patient, "Umzug ins Ausland").await?;

    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["status"], "completed");
    let search_after = stack.get_platzsuche(search).await?;
    assert_eq!(search_after.body["status"], "abgebrochen");
    assert!(
        search_after.body["notizen"]
            .as_str()
            .is_some_and(|notes| notes.contains("Umzug ins Ausland")),
        "{}",
        search_after.body
    );
    assert_eq!(
        stack.get_patient(patient).await?.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        stack.get_anfrage(only_this_patient).await?.body["status"],
        "storniert"
    );
    let shared_after = stack.get_anfrage(shared).await?;
    assert_eq!(shared_after.body["status"], "offen");
    assert_eq!(shared_after.body["platzsuche_ids"], json!([other_search]));
    assert_eq!(
        stack.get_platzsuche(other_search).await?.body["status"],
        "aktiv"
    );
    assert_eq!(
        stack.get_patient(other_patient).await?.status,
        StatusCode::OK
    );
    Ok(())
}

#[tokio::test]
async fn delete_saga_records_each_step_before_it_finishes() -> anyhow::Result<()> {
    let stack = Stack::start(BIN, StackOptions::default()).await?;
    let patient = stack.create_patient().await?;
    stack.create_platzsuche(patient, json!({})).await?;

    let answer = stack.delete_patient(patient, "Datenschutzanfrage").await?;
    let saga_id = answer.saga_id().expect("the answer names its saga");
    let saga = stack.wait_for_saga_status(&saga_id, "completed").await?;

    let steps = saga["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 2, "{saga}");
    for step in steps {
        assert_eq!(step["status"], "succeeded", "{step}");
        assert!(
            time(&step["started_at"]) <= time(&step["finished_at"]),
            "step started after it finished: {step}"
        );
    }
    assert!(
        time(&steps[0]["finished_at"]) <= time(&steps[1]["started_at"]),
        "the pivot started before the cascade finished: {saga}"
    );
    assert!(
        time(&saga["finished_at"]) >= time(&steps[1]["finished_at"]),
        "the saga finished before its last step: {saga}"
    );
    assert!(
        time(&saga["created_at"]) <= time(&steps[0]["started_at"]),
        "{saga}"
    );
    assert_eq!(saga["lock"], Value::Null, "{saga}");
    assert_eq!(saga["lease"], Value::Null, "{saga}");
    assert_eq!(saga["entity"], json!({"type": "patient", "id": patient}));
    Ok(())
}

#[tokio::test]
async fn block_therapist_cancels_unsent_anfragen_and_sets_gesperrt() -> anyhow::Result<()> {
    let stack = Stack::start(BIN, StackOptions::default()).await?;
    let therapist = stack.create_therapist().await?;
    let patient = stack.create_patient().await?;
    let search = stack.create_platzsuche(patient, json!({})).await?;
    let unsent = stack.create_anfrage(therapist, &[search], None).await?;
    let sent = stack
        .create_anfrage(therapist, &[search], Some("2024-03-01"))
        .await?;

    let answer = stack.block_therapist(therapist, "Approbation ruht").await?;

    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["status"], "completed");
    let therapist_after = stack.get_therapist(therapist).await?;
    assert_eq!(therapist_after.body["status"], "gesperrt");
    assert_eq!(therapist_after.body["sperrgrund"], "Approbation ruht");
    assert_eq!(stack.get_anfrage(unsent).await?.body["status"], "storniert");
    assert_eq!(stack.get_anfrage(sent).await?.body["status"], "gesendet");
    let exclusions = stack.get_platzsuche(search).await?.body["ausschluesse"].clone();
    let sperre: Vec<&Value> = exclusions
        .as_array()
        .expect("ausschluesse")
        .iter()
        .filter(|e| e["therapist_id"] == therapist && e["ausgeschlossen_von"] == "sperre")
        .collect();
    assert_eq!(sperre.len(), 1, "{exclusions}");
    assert_eq!(sperre[0]["saga_id"], answer.body["id"]);
    Ok(())
}

#[tokio::test]
async fn unblock_therapist_lifts_sperre_and_sets_aktiv() -> anyhow::Result<()> {
    let stack = Stack::start(BIN, StackOptions::default()).await?;
    let therapist = stack.create_therapist().await?;
    let patient = stack.create_patient().await?;
    let search = stack.create_platzsuche(patient, json!({})).await?;
    let chosen = stack
        .create_platzsuche(
            patient,
            json!({"ausschluesse": [
                {"therapist_id": therapist, "ausgeschlossen_von": "patient", "grund": "Wunsch"}
            ]}),
        )
        .await?;
    stack.create_anfrage(therapist, &[search], None).await?;
    stack
        .block_therapist(therapist, "Beschwerde in Prüfung")
        .await?
        .expect(StatusCode::OK)?;

    let answer = stack.unblock_therapist(therapist).await?;

    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["status"], "completed");
    let therapist_after = stack.get_therapist(therapist).await?;
    assert_eq!(therapist_after.body["status"], "aktiv");
    assert_eq!(
        stack.get_platzsuche(search).await?.body["ausschluesse"],
        json!([])
    );
    let kept = stack.get_platzsuche(chosen).await?.body["ausschluesse"].clone();
    assert_eq!(kept.as_array().map(Vec::len), Some(1), "{kept}");
    assert_eq!(kept[0]["ausgeschlossen_von"], "patient");
    Ok(())
}

#[tokio::test]
async fn unblock_of_an_aktiv_therapist_is_a_conflict() -> anyhow::Result<()> {
    let stack = Stack::start(BIN, StackOptions::default()).await?;
    let therapist = stack.create_therapist().await?;

    let answer = stack.unblock_therapist(therapist).await?;

    assert_eq!(answer.status, StatusCode::CONFLICT, "{}", answer.body);
    assert_eq!(
        stack
            .list_sagas(&format!("therapist_id={therapist}"))
            .await?
            .len(),
        0
    );
    Ok(())
}

#[tokio::test]
async fn block_of_a_gesperrt_therapist_is_a_conflict() -> anyhow::Result<()> {
    let stack = Stack::start(BIN, StackOptions::default()).await?;
    let therapist = stack.create_therapist().await?;
    stack
        .block_therapist(therapist, "Urlaub ohne Vertretung")
        .await?
        .expect(StatusCode::OK)?;

    let answer = stack.block_therapist(therapist, "noch einmal").await?;

    assert_eq!(answer.status, StatusCode::CONFLICT, "{}", answer.body);
    assert_eq!(
        stack
            .list_sagas(&format!("therapist_id={therapist}"))
            .await?
            .len(),
        1
    );
    Ok(())
}

#[tokio::test]
async fn communication_updates_reach_patient_last_contact() -> anyhow::Result<()> {
    let stack = Stack::start(BIN, StackOptions::default()).await?;
    let patient = stack
        .create_patient_with(json!({"letzter_kontakt": "2020-01-01"}))
        .await?;
    let patient_path = format!("/api/patients/{patient}");
    let email = stack
        .post(
            Service::Communication,
            "/api/emails",
            &json!({"patient_id": patient, "betreff": "Termin", "inhalt": "Hallo"}),
        )
        .await?
        .expect(StatusCode::CREATED)?;
    let email_id = email.body["id"].as_i64().expect("email id");

    stack
        .patch(
            Service::Communication,
            &format!("/api/emails/{email_id}"),
            &json!({"status": "Gesendet"}),
        )
        .await?
        .expect(StatusCode::OK)?;

    let after_email = stack
        .wait_for(Service::Patient, &patient_path, "email contact", |answer| {
            answer.body["letzter_kontakt"] == today()
        })
        .await?;
    assert_eq!(after_email.body["letzter_kontakt"], today());

    // Move the contact back, so that the phone call has something to move forward.
    stack
        .patch(
            Service::Patient,
            &patient_path,
            &json!({"letzter_kontakt": "2020-01-01"}),
        )
        .await?
        .expect(StatusCode::OK)?;
    let call = stack
        .post(
            Service::Communication,
            "/api/phone-calls",
            &json!({"patient_id": patient, "geplant_fuer": "2030-01-01T10:00:00Z"}),
        )
        .await?
        .expect(StatusCode::CREATED)?;
    let call_id = call.body["id"].as_i64().expect("phone call id");

    stack
        .patch(
            Service::Communication,
            &format!("/api/phone-calls/{call_id}"),
            &json!({"status": "abgeschlossen"}),
        )
        .await?
        .expect(StatusCode::OK)?;

    let after_call = stack
        .wait_for(
            Service::Patient,
            &patient_path,
            "phone call contact",
            |answer| answer.body["letzter_kontakt"] == today(),
        )
        .await?;
    assert_eq!(after_call.body["letzter_kontakt"], today());
    let sagas = stack
        .list_sagas(&format!("type=record-patient-contact&patient_id={patient}"))
        .await?;
    assert_eq!(sagas.len(), 2, "{sagas:?}");
    for saga in &sagas {
        // The patient may show the update a moment before the saga records it.
        let id = saga["id"].as_str().expect("saga id");
        stack.wait_for_saga_status(id, "completed").await?;
    }
    let mut sources: Vec<&str> = sagas
        .iter()
        .filter_map(|saga| saga["payload"]["source_id"].as_str())
        .collect();
    sources.sort_unstable();
    assert_eq!(
        sources,
        [
            format!("email-{email_id}-gesendet"),
            format!("phone-call-{call_id}-abgeschlossen")
        ]
    );
    Ok(())
}
