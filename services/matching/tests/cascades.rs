//! The cascade endpoints and their compensations, against PostgreSQL (and once SQLite).

mod common;

use common::{exclusions, spawn_postgres, spawn_sqlite, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::{Connection, Executor};

const PATIENT_DELETED: &str = "/api/matching/cascade/patient-deleted";
const THERAPIST_BLOCKED: &str = "/api/matching/cascade/therapist-blocked";
const THERAPIST_UNBLOCKED: &str = "/api/matching/cascade/therapist-unblocked";

/// Patient of the searches `a`, `b` and `p`.
const PATIENT: i64 = 1;
/// Therapist with unsent inquiries for patients 1 and 2.
const THERAPIST: i64 = 7;

/// Ids of the rows every cascade test starts from.
///
/// - `a`: patient 1, aktiv. `b`: patient 1, abgebrochen before. `p`: patient 1, pausiert.
/// - `c`: patient 2, aktiv, with therapist 7 excluded by the patient.
/// - `d`: patient 3, aktiv.
/// - `x`: therapist 7, unsent, for `a` and `c`. `y`: therapist 7, unsent, for `a` only.
/// - `z`: therapist 8, sent, for `a`. `w`: therapist 8, unsent, for `b` and `d`.
/// - `v`: therapist 7, sent, for `d`.
struct World {
    a: i64,
    b: i64,
    p: i64,
    c: i64,
    d: i64,
    x: i64,
    y: i64,
    z: i64,
    w: i64,
    v: i64,
}

async fn build_world(app: &TestApp) -> World {
    let a = app
        .create_platzsuche(json!({"patient_id": PATIENT, "notizen": "sucht in Köln"}))
        .await;
    let b = app
        .create_platzsuche(json!({
            "patient_id": PATIENT, "status": "abgebrochen", "notizen": "vom Patienten beendet"
        }))
        .await;
    let p = app
        .create_platzsuche(json!({"patient_id": PATIENT, "status": "pausiert"}))
        .await;
    let c = app
        .create_platzsuche(json!({
            "patient_id": 2,
            "ausschluesse": [
                {"therapist_id": THERAPIST, "ausgeschlossen_von": "patient", "grund": "Umzug"}
            ]
        }))
        .await;
    let d = app.create_platzsuche(json!({"patient_id": 3})).await;

    let x = app
        .create_anfrage(json!({"therapist_id": THERAPIST, "platzsuche_ids": [a, c]}))
        .await;
    let y = app
        .create_anfrage(json!({
            "therapist_id": THERAPIST, "platzsuche_ids": [a], "notizen": "erste Anfrage"
        }))
        .await;
    let z = app
        .create_anfrage(json!({
            "therapist_id": 8, "platzsuche_ids": [a], "gesendet_datum": "2026-01-05"
        }))
        .await;
    let w = app
        .create_anfrage(json!({"therapist_id": 8, "platzsuche_ids": [b, d]}))
        .await;
    let v = app
        .create_anfrage(json!({
            "therapist_id": THERAPIST, "platzsuche_ids": [d], "gesendet_datum": "2026-01-06"
        }))
        .await;

    World {
        a,
        b,
        p,
        c,
        d,
        x,
        y,
        z,
        w,
        v,
    }
}

fn empty_changes() -> Value {
    json!({
        "platzsuchen_abgebrochen": [], "anfragen_storniert": [], "anfragen_geaendert": [],
        "ausschluesse_hinzugefuegt": [], "ausschluesse_aufgehoben": []
    })
}

async fn platzsuche(app: &TestApp, id: i64) -> Value {
    let reply = app.get(&format!("/api/platzsuchen/{id}")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body
}

async fn anfrage(app: &TestApp, id: i64) -> Value {
    let reply = app.get(&format!("/api/therapeutenanfragen/{id}")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body
}

async fn compensate(app: &TestApp, cascade: &str, forward_key: &str, key: &str) -> Value {
    let reply = app
        .saga_post(
            &format!("{cascade}/compensate"),
            &json!({"forward_idempotency_key": forward_key}),
            key,
            "saga-1",
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body
}

#[tokio::test]
async fn patient_deleted_cancels_and_unlinks() {
    let app = spawn_postgres().await;
    let world = build_world(&app).await;
    let before = app.snapshot().await;

    let reply = app
        .saga_post(
            PATIENT_DELETED,
            &json!({"patient_id": PATIENT}),
            "s1:cascade:forward",
            "s1",
        )
        .await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let mut expected = empty_changes();
    expected["platzsuchen_abgebrochen"] = json!([world.a]);
    expected["anfragen_storniert"] = json!([world.y]);
    expected["anfragen_geaendert"] = json!([world.x, world.w]);
    assert_eq!(reply.body, expected);

    let a = platzsuche(&app, world.a).await;
    assert_eq!(a["status"], "abgebrochen");
    assert_eq!(a["notizen"], "sucht in Köln\nPatient gelöscht");
    let b = platzsuche(&app, world.b).await;
    assert_eq!(b["status"], "abgebrochen");
    assert_eq!(b["notizen"], "vom Patienten beendet");
    assert_eq!(platzsuche(&app, world.p).await["status"], "pausiert");
    assert_eq!(platzsuche(&app, world.c).await["status"], "aktiv");

    assert_eq!(
        anfrage(&app, world.x).await["platzsuche_ids"],
        json!([world.c])
    );
    let y = anfrage(&app, world.y).await;
    assert_eq!(y["status"], "storniert");
    assert_eq!(y["platzsuche_ids"], json!([]));
    assert_eq!(y["notizen"], "erste Anfrage\nPatient gelöscht");
    assert_eq!(
        anfrage(&app, world.z).await["platzsuche_ids"],
        json!([world.a])
    );
    assert_eq!(anfrage(&app, world.z).await["status"], "gesendet");
    assert_eq!(
        anfrage(&app, world.w).await["platzsuche_ids"],
        json!([world.d])
    );
    assert_eq!(anfrage(&app, world.w).await["status"], "offen");
    assert_ne!(app.snapshot().await, before);
}

#[tokio::test]
async fn patient_deleted_appends_the_given_reason() {
    let app = spawn_postgres().await;
    let world = build_world(&app).await;

    let reply = app
        .saga_post(
            PATIENT_DELETED,
            &json!({"patient_id": PATIENT, "reason": "Löschung auf Wunsch"}),
            "s1:cascade:forward",
            "s1",
        )
        .await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let a = platzsuche(&app, world.a).await;
    assert_eq!(a["notizen"], "sucht in Köln\nLöschung auf Wunsch");
}

#[tokio::test]
async fn patient_deleted_for_patient_without_searches_changes_nothing() {
    let app = spawn_postgres().await;
    build_world(&app).await;
    let before = app.snapshot().await;

    let reply = app
        .saga_post(
            PATIENT_DELETED,
            &json!({"patient_id": 99}),
            "s1:cascade:forward",
            "s1",
        )
        .await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body, empty_changes());
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn patient_deleted_compensation_restores_the_earlier_state() {
    let app = spawn_postgres().await;
    let world = build_world(&app).await;
    let before = app.snapshot().await;
    let forward = app
        .saga_post(
            PATIENT_DELETED,
            &json!({"patient_id": PATIENT}),
            "s1:cascade:forward",
            "s1",
        )
        .await;
    assert_eq!(forward.status, StatusCode::OK, "{}", forward.body);

    let answer = compensate(
        &app,
        PATIENT_DELETED,
        "s1:cascade:forward",
        "s1:cascade:compensate",
    )
    .await;

    assert_eq!(answer["forward_call"], "undone");
    assert_eq!(answer["restored"], forward.body);
    assert_eq!(answer["skipped"], json!([]));
    assert_eq!(app.snapshot().await, before);
    let b = platzsuche(&app, world.b).await;
    assert_eq!(b["status"], "abgebrochen");
    assert_eq!(b["notizen"], "vom Patienten beendet");
}

#[tokio::test]
async fn therapist_blocked_cancels_and_excludes() {
    let app = spawn_postgres().await;
    let world = build_world(&app).await;

    let reply = app
        .saga_post(
            THERAPIST_BLOCKED,
            &json!({"therapist_id": THERAPIST, "reason": "Beschwerden"}),
            "s2:cascade:forward",
            "s2",
        )
        .await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let mut expected = empty_changes();
    expected["anfragen_storniert"] = json!([world.x, world.y]);
    expected["ausschluesse_hinzugefuegt"] =
        json!([{"platzsuche_id": world.a, "therapist_id": THERAPIST}]);
    assert_eq!(reply.body, expected);

    let x = anfrage(&app, world.x).await;
    assert_eq!(x["status"], "storniert");
    assert_eq!(x["notizen"], "Beschwerden");
    assert_eq!(x["platzsuche_ids"], json!([world.a, world.c]));
    assert_eq!(
        anfrage(&app, world.y).await["notizen"],
        "erste Anfrage\nBeschwerden"
    );
    assert_eq!(anfrage(&app, world.v).await["status"], "gesendet");
    assert_eq!(anfrage(&app, world.w).await["status"], "offen");

    let a = platzsuche(&app, world.a).await;
    assert_eq!(
        a["ausschluesse"],
        json!([{
            "therapist_id": THERAPIST, "ausgeschlossen_von": "sperre",
            "grund": "Beschwerden", "saga_id": "s2"
        }])
    );
    let c = platzsuche(&app, world.c).await;
    assert_eq!(
        c["ausschluesse"],
        json!([{
            "therapist_id": THERAPIST, "ausgeschlossen_von": "patient",
            "grund": "Umzug", "saga_id": null
        }])
    );
    assert_eq!(platzsuche(&app, world.p).await["ausschluesse"], json!([]));
    assert_eq!(platzsuche(&app, world.d).await["ausschluesse"], json!([]));
}

#[tokio::test]
async fn therapist_blocked_compensation_restores_the_earlier_state() {
    let app = spawn_postgres().await;
    let world = build_world(&app).await;
    let before = app.snapshot().await;
    let body = json!({"therapist_id": THERAPIST, "reason": "Beschwerden"});
    let forward = app
        .saga_post(THERAPIST_BLOCKED, &body, "s2:cascade:forward", "s2")
        .await;
    assert_eq!(forward.status, StatusCode::OK, "{}", forward.body);

    let answer = compensate(
        &app,
        THERAPIST_BLOCKED,
        "s2:cascade:forward",
        "s2:cascade:compensate",
    )
    .await;

    assert_eq!(answer["forward_call"], "undone");
    assert_eq!(answer["restored"], forward.body);
    assert_eq!(answer["skipped"], json!([]));
    assert_eq!(app.snapshot().await, before);
    let c = platzsuche(&app, world.c).await;
    assert_eq!(exclusions(&c), vec![(THERAPIST, "patient".to_owned())]);
}

#[tokio::test]
async fn therapist_unblocked_lifts_only_sperre_exclusions() {
    let app = spawn_postgres().await;
    let world = build_world(&app).await;
    let block = json!({"therapist_id": THERAPIST, "reason": "Beschwerden"});
    app.saga_post(THERAPIST_BLOCKED, &block, "s2:cascade:forward", "s2")
        .await;
    app.create_platzsuche(json!({
        "patient_id": 4,
        "ausschluesse": [{"therapist_id": THERAPIST, "ausgeschlossen_von": "personal"}]
    }))
    .await;

    let reply = app
        .saga_post(
            THERAPIST_UNBLOCKED,
            &json!({"therapist_id": THERAPIST}),
            "s3:cascade:forward",
            "s3",
        )
        .await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let mut expected = empty_changes();
    expected["ausschluesse_aufgehoben"] =
        json!([{"platzsuche_id": world.a, "therapist_id": THERAPIST}]);
    assert_eq!(reply.body, expected);
    assert_eq!(platzsuche(&app, world.a).await["ausschluesse"], json!([]));
    let c = platzsuche(&app, world.c).await;
    assert_eq!(exclusions(&c), vec![(THERAPIST, "patient".to_owned())]);
    let personal = app.get("/api/platzsuchen?patient_id=4").await;
    assert_eq!(
        exclusions(&personal.body["items"][0]),
        vec![(THERAPIST, "personal".to_owned())]
    );
    assert_eq!(anfrage(&app, world.x).await["status"], "storniert");
}

#[tokio::test]
async fn therapist_unblocked_compensation_reinserts_lifted_exclusions() {
    let app = spawn_postgres().await;
    build_world(&app).await;
    let block = json!({"therapist_id": THERAPIST, "reason": "Beschwerden"});
    app.saga_post(THERAPIST_BLOCKED, &block, "s2:cascade:forward", "s2")
        .await;
    let blocked = app.snapshot().await;
    let forward = app
        .saga_post(
            THERAPIST_UNBLOCKED,
            &json!({"therapist_id": THERAPIST}),
            "s3:cascade:forward",
            "s3",
        )
        .await;
    assert_eq!(forward.status, StatusCode::OK, "{}", forward.body);

    let answer = compensate(
        &app,
        THERAPIST_UNBLOCKED,
        "s3:cascade:forward",
        "s3:cascade:compensate",
    )
    .await;

    assert_eq!(answer["forward_call"], "undone");
    assert_eq!(answer["restored"], forward.body);
    assert_eq!(app.snapshot().await, blocked);
}

#[tokio::test]
async fn compensation_before_forward_cancels_the_forward_call() {
    let app = spawn_postgres().await;
    build_world(&app).await;
    let before = app.snapshot().await;

    let answer = compensate(
        &app,
        THERAPIST_BLOCKED,
        "s4:cascade:forward",
        "s4:cascade:compensate",
    )
    .await;
    let late = app
        .saga_post(
            THERAPIST_BLOCKED,
            &json!({"therapist_id": THERAPIST, "reason": "Beschwerden"}),
            "s4:cascade:forward",
            "s4",
        )
        .await;

    assert_eq!(answer["forward_call"], "never_arrived");
    assert_eq!(answer["restored"], empty_changes());
    assert_eq!(late.status, StatusCode::CONFLICT, "{}", late.body);
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn same_key_twice_has_one_effect() {
    let app = spawn_postgres().await;
    build_world(&app).await;
    let body = json!({"patient_id": PATIENT});
    let first = app
        .saga_post(PATIENT_DELETED, &body, "s5:cascade:forward", "s5")
        .await;
    let after_first = app.snapshot().await;
    let late_search = app.create_platzsuche(json!({"patient_id": PATIENT})).await;

    let second = app
        .saga_post(PATIENT_DELETED, &body, "s5:cascade:forward", "s5")
        .await;

    assert_eq!(second.status, StatusCode::OK);
    assert_eq!(second.body, first.body);
    assert_eq!(second.headers["idempotent-replayed"], "true");
    assert_eq!(platzsuche(&app, late_search).await["status"], "aktiv");
    let mut now = app.snapshot().await;
    now["/api/platzsuchen"]
        .as_array_mut()
        .expect("items")
        .retain(|item| item["id"] != late_search);
    assert_eq!(now, after_first);
}

#[tokio::test]
async fn same_key_with_another_body_is_rejected() {
    let app = spawn_postgres().await;
    build_world(&app).await;
    app.saga_post(
        PATIENT_DELETED,
        &json!({"patient_id": 3}),
        "s6:cascade:forward",
        "s6",
    )
    .await;
    let before = app.snapshot().await;

    let reply = app
        .saga_post(
            PATIENT_DELETED,
            &json!({"patient_id": PATIENT}),
            "s6:cascade:forward",
            "s6",
        )
        .await;

    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.body
    );
    assert_eq!(reply.body["field"], "Idempotency-Key");
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn second_compensation_finds_the_changes_already_undone() {
    let app = spawn_postgres().await;
    build_world(&app).await;
    app.saga_post(
        PATIENT_DELETED,
        &json!({"patient_id": PATIENT}),
        "s7:cascade:forward",
        "s7",
    )
    .await;
    let first = compensate(
        &app,
        PATIENT_DELETED,
        "s7:cascade:forward",
        "s7:compensate:1",
    )
    .await;
    let restored = app.snapshot().await;

    let repeat = compensate(
        &app,
        PATIENT_DELETED,
        "s7:cascade:forward",
        "s7:compensate:1",
    )
    .await;
    let other = compensate(
        &app,
        PATIENT_DELETED,
        "s7:cascade:forward",
        "s7:compensate:2",
    )
    .await;

    assert_eq!(first["forward_call"], "undone");
    assert_eq!(repeat, first);
    assert_eq!(other["forward_call"], "already_undone");
    assert_eq!(other["restored"], empty_changes());
    assert_eq!(app.snapshot().await, restored);
}

#[tokio::test]
async fn rejected_forward_has_nothing_to_undo() {
    let app = spawn_postgres().await;
    build_world(&app).await;
    let rejected = app
        .saga_post(
            THERAPIST_BLOCKED,
            &json!({"therapist_id": THERAPIST, "reason": "  "}),
            "s8:cascade:forward",
            "s8",
        )
        .await;
    let before = app.snapshot().await;

    let answer = compensate(
        &app,
        THERAPIST_BLOCKED,
        "s8:cascade:forward",
        "s8:cascade:compensate",
    )
    .await;

    assert_eq!(rejected.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(answer["forward_call"], "nothing_to_undo");
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn compensation_rejects_other_cascade_key() {
    let app = spawn_postgres().await;
    build_world(&app).await;
    app.saga_post(
        PATIENT_DELETED,
        &json!({"patient_id": PATIENT}),
        "s9:cascade:forward",
        "s9",
    )
    .await;
    let before = app.snapshot().await;

    let reply = app
        .saga_post(
            &format!("{THERAPIST_BLOCKED}/compensate"),
            &json!({"forward_idempotency_key": "s9:cascade:forward"}),
            "s9:cascade:compensate",
            "s9",
        )
        .await;

    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.body
    );
    assert_eq!(reply.body["field"], "forward_idempotency_key");
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn compensation_leaves_fields_changed_since_the_cascade() {
    let app = spawn_postgres().await;
    let world = build_world(&app).await;
    app.saga_post(
        PATIENT_DELETED,
        &json!({"patient_id": PATIENT}),
        "s10:cascade:forward",
        "s10",
    )
    .await;
    let changed = app
        .patch(
            &format!("/api/platzsuchen/{}", world.a),
            &json!({"status": "erfolgreich"}),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);

    let answer = compensate(
        &app,
        PATIENT_DELETED,
        "s10:cascade:forward",
        "s10:cascade:compensate",
    )
    .await;

    let a = platzsuche(&app, world.a).await;
    assert_eq!(a["status"], "erfolgreich");
    assert_eq!(a["notizen"], "sucht in Köln");
    assert_eq!(
        answer["restored"]["platzsuchen_abgebrochen"],
        json!([world.a])
    );
    let skipped = answer["skipped"].as_array().expect("skipped");
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert_eq!(skipped[0]["entity"], "platzsuche");
    assert_eq!(skipped[0]["id"], world.a);
    assert_eq!(skipped[0]["field"], "status");
    assert_eq!(anfrage(&app, world.y).await["status"], "offen");
}

#[tokio::test]
async fn block_compensation_keeps_an_exclusion_changed_since() {
    let app = spawn_postgres().await;
    let world = build_world(&app).await;
    let block = json!({"therapist_id": THERAPIST, "reason": "Beschwerden"});
    app.saga_post(THERAPIST_BLOCKED, &block, "s11:cascade:forward", "s11")
        .await;
    app.saga_post(
        THERAPIST_UNBLOCKED,
        &json!({"therapist_id": THERAPIST}),
        "s12:cascade:forward",
        "s12",
    )
    .await;
    let by_patient = app
        .post(
            &format!("/api/platzsuchen/{}/ausschluesse", world.a),
            &json!({"therapist_id": THERAPIST, "ausgeschlossen_von": "patient"}),
        )
        .await;
    assert_eq!(
        by_patient.status,
        StatusCode::CREATED,
        "{}",
        by_patient.body
    );

    let answer = compensate(
        &app,
        THERAPIST_BLOCKED,
        "s11:cascade:forward",
        "s11:cascade:compensate",
    )
    .await;

    let a = platzsuche(&app, world.a).await;
    assert_eq!(exclusions(&a), vec![(THERAPIST, "patient".to_owned())]);
    assert_eq!(answer["restored"]["ausschluesse_hinzugefuegt"], json!([]));
    assert_eq!(answer["skipped"][0]["entity"], "ausschluss");
    assert_eq!(answer["skipped"][0]["platzsuche_id"], world.a);
    assert_eq!(anfrage(&app, world.x).await["status"], "offen");
}

#[tokio::test]
async fn cascade_failing_midway_changes_nothing() {
    let app = spawn_postgres().await;
    let world = build_world(&app).await;
    let before = app.snapshot().await;
    // The cascade cancels search a and unlinks inquiry x before it reaches inquiry y.
    let mut conn = sqlx::AnyConnection::connect(&app.database_url)
        .await
        .expect("connect");
    conn.execute(
        format!(
            "CREATE FUNCTION fail_on_row() RETURNS trigger AS $$ BEGIN \
             IF NEW.id = {} THEN RAISE EXCEPTION 'test failure on inquiry'; END IF; \
             RETURN NEW; END $$ LANGUAGE plpgsql",
            world.y
        )
        .as_str(),
    )
    .await
    .expect("create the function");
    conn.execute(
        "CREATE TRIGGER fail_midway BEFORE UPDATE ON therapeutenanfragen \
         FOR EACH ROW EXECUTE FUNCTION fail_on_row()",
    )
    .await
    .expect("create the trigger");
    let body = json!({"patient_id": PATIENT});

    let failed = app
        .saga_post(PATIENT_DELETED, &body, "s13:cascade:forward", "s13")
        .await;

    assert_eq!(
        failed.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{}",
        failed.body
    );
    assert_eq!(app.snapshot().await, before);
    conn.execute("DROP TRIGGER fail_midway ON therapeutenanfragen")
        .await
        .expect("drop the trigger");
    let retried = app
        .saga_post(PATIENT_DELETED, &body, "s13:cascade:forward", "s13")
        .await;
    assert_eq!(retried.status, StatusCode::OK, "{}", retried.body);
    assert_eq!(retried.body["platzsuchen_abgebrochen"], json!([world.a]));
    let undone = compensate(
        &app,
        PATIENT_DELETED,
        "s13:cascade:forward",
        "s13:cascade:compensate",
    )
    .await;
    assert_eq!(undone["forward_call"], "undone");
    assert_eq!(app.snapshot().await, before);
}

/// A cascade call that must fail: path, body, key, expected status and the field named.
type BadInput<'a> = (&'a str, Value, Option<&'a str>, u16, Option<&'a str>);

#[tokio::test]
async fn bad_cascade_inputs_are_rejected_and_change_nothing() {
    let app = spawn_postgres().await;
    build_world(&app).await;
    let before = app.snapshot().await;
    let compensate_blocked = format!("{THERAPIST_BLOCKED}/compensate");
    let cases: Vec<BadInput<'_>> = vec![
        (
            PATIENT_DELETED,
            json!({}),
            Some("k1"),
            400,
            Some("patient_id"),
        ),
        (
            PATIENT_DELETED,
            json!({"patient_id": "eins"}),
            Some("k2"),
            400,
            Some("patient_id"),
        ),
        (
            PATIENT_DELETED,
            json!({"patient_id": 0}),
            Some("k3"),
            400,
            Some("patient_id"),
        ),
        (
            PATIENT_DELETED,
            json!({"patient_id": -4}),
            Some("k4"),
            400,
            Some("patient_id"),
        ),
        (
            PATIENT_DELETED,
            json!({"patient_id": 1, "reason": "x".repeat(1001)}),
            Some("k5"),
            422,
            Some("reason"),
        ),
        (
            PATIENT_DELETED,
            json!({"patient_id": 1}),
            None,
            400,
            Some("Idempotency-Key"),
        ),
        (PATIENT_DELETED, json!([1]), Some("k6"), 400, None),
        (
            THERAPIST_BLOCKED,
            json!({"therapist_id": 7}),
            Some("k7"),
            400,
            Some("reason"),
        ),
        (
            THERAPIST_BLOCKED,
            json!({"therapist_id": 7, "reason": ""}),
            Some("k8"),
            422,
            Some("reason"),
        ),
        (
            THERAPIST_BLOCKED,
            json!({"therapist_id": 7, "reason": null}),
            Some("k9"),
            400,
            Some("reason"),
        ),
        (
            THERAPIST_BLOCKED,
            json!({"therapist_id": 0, "reason": "x"}),
            Some("k10"),
            400,
            Some("therapist_id"),
        ),
        (
            THERAPIST_UNBLOCKED,
            json!({}),
            Some("k11"),
            400,
            Some("therapist_id"),
        ),
        (
            THERAPIST_UNBLOCKED,
            json!({"therapist_id": 1.5}),
            Some("k12"),
            400,
            Some("therapist_id"),
        ),
        (
            &compensate_blocked,
            json!({}),
            Some("k13"),
            400,
            Some("forward_idempotency_key"),
        ),
        (
            &compensate_blocked,
            json!({"forward_idempotency_key": ""}),
            Some("k14"),
            422,
            Some("forward_idempotency_key"),
        ),
        (
            &compensate_blocked,
            json!({"forward_idempotency_key": "s:1:forward"}),
            None,
            400,
            Some("Idempotency-Key"),
        ),
    ];

    for (path, body, key, status, field) in cases {
        let mut headers = vec![("X-Saga-Id", "bad-inputs")];
        if let Some(key) = key {
            headers.push(("Idempotency-Key", key));
        }
        let reply = app
            .send(reqwest::Method::POST, path, Some(&body), &headers)
            .await;

        assert_eq!(
            reply.status.as_u16(),
            status,
            "{path} {body}: {}",
            reply.body
        );
        assert_eq!(
            reply.headers["content-type"], "application/problem+json",
            "{path} {body}"
        );
        if let Some(field) = field {
            assert_eq!(reply.body["field"], field, "{path} {body}");
        }
    }
    let not_json = app
        .client
        .post(app.url(PATIENT_DELETED))
        .header("Idempotency-Key", "k15")
        .body("patient_id=1")
        .send()
        .await
        .expect("send");
    assert_eq!(not_json.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let too_large = json!({"patient_id": 1, "reason": "x".repeat(70 * 1024)});
    let reply = app
        .saga_post(PATIENT_DELETED, &too_large, "k16", "bad-inputs")
        .await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn cascades_record_metrics() {
    let app = spawn_postgres().await;
    build_world(&app).await;
    app.saga_post(
        PATIENT_DELETED,
        &json!({"patient_id": PATIENT}),
        "s14:cascade:forward",
        "s14",
    )
    .await;
    compensate(
        &app,
        PATIENT_DELETED,
        "s14:cascade:forward",
        "s14:cascade:compensate",
    )
    .await;

    let metrics = app.get("/metrics").await;

    let text = metrics.body.as_str().expect("text");
    assert!(
        text.contains(
            r#"cascade_operations_total{operation="patient_deleted",outcome="completed"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(
            r#"cascade_operation_duration_seconds_count{operation="patient_deleted_compensate"} 1"#
        ),
        "{text}"
    );
}

#[tokio::test]
async fn block_and_compensation_work_on_sqlite() {
    let app = spawn_sqlite().await;
    let world = build_world(&app).await;
    let before = app.snapshot().await;
    let body = json!({"therapist_id": THERAPIST, "reason": "Beschwerden"});

    let forward = app
        .saga_post(THERAPIST_BLOCKED, &body, "s15:cascade:forward", "s15")
        .await;
    let replay = app
        .saga_post(THERAPIST_BLOCKED, &body, "s15:cascade:forward", "s15")
        .await;
    let blocked_a = platzsuche(&app, world.a).await;
    let answer = compensate(
        &app,
        THERAPIST_BLOCKED,
        "s15:cascade:forward",
        "s15:cascade:compensate",
    )
    .await;

    assert_eq!(forward.status, StatusCode::OK, "{}", forward.body);
    assert_eq!(
        forward.body["anfragen_storniert"],
        json!([world.x, world.y])
    );
    assert_eq!(replay.body, forward.body);
    assert_eq!(
        exclusions(&blocked_a),
        vec![(THERAPIST, "sperre".to_owned())]
    );
    assert_eq!(answer["forward_call"], "undone");
    assert_eq!(answer["restored"], forward.body);
    assert_eq!(app.snapshot().await, before);
}
