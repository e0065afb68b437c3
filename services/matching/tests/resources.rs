//! Platzsuchen, their exclusions and Therapeutenanfragen through the HTTP API.

mod common;

use common::{exclusions, spawn_postgres, spawn_sqlite, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};

fn ids(page: &Value) -> Vec<i64> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["id"].as_i64().expect("id"))
        .collect()
}

#[tokio::test]
async fn platzsuche_is_created_read_changed_and_deleted() {
    let app = spawn_postgres().await;

    let created = app
        .post(
            "/api/platzsuchen",
            &json!({
                "patient_id": 12,
                "notizen": "sucht nachmittags",
                "ausschluesse": [
                    {"therapist_id": 9, "ausgeschlossen_von": "personal", "grund": "Wartezeit"},
                    {"therapist_id": 3, "ausgeschlossen_von": "patient"}
                ]
            }),
        )
        .await;
    let id = created.body["id"].as_i64().expect("id");
    let read = app.get(&format!("/api/platzsuchen/{id}")).await;
    let changed = app
        .patch(
            &format!("/api/platzsuchen/{id}"),
            &json!({"status": "pausiert", "notizen": null}),
        )
        .await;
    let deleted = app.delete(&format!("/api/platzsuchen/{id}")).await;
    let gone = app.get(&format!("/api/platzsuchen/{id}")).await;

    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["status"], "aktiv");
    assert_eq!(created.body["patient_id"], 12);
    assert_eq!(
        created.body["ausschluesse"],
        json!([
            {"therapist_id": 3, "ausgeschlossen_von": "patient", "grund": null, "saga_id": null},
            {
                "therapist_id": 9, "ausgeschlossen_von": "personal", "grund": "Wartezeit",
                "saga_id": null
            }
        ])
    );
    assert_eq!(read.body, created.body);
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    assert_eq!(changed.body["status"], "pausiert");
    assert_eq!(changed.body["notizen"], Value::Null);
    assert_eq!(changed.body["ausschluesse"], created.body["ausschluesse"]);
    assert_eq!(deleted.status, StatusCode::OK);
    assert_eq!(deleted.body, json!({"platzsuche_id": id, "deleted": true}));
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn platzsuchen_list_filters_and_pages() {
    let app = spawn_postgres().await;
    let first = app.create_platzsuche(json!({"patient_id": 1})).await;
    let second = app
        .create_platzsuche(json!({"patient_id": 1, "status": "erfolgreich"}))
        .await;
    let third = app.create_platzsuche(json!({"patient_id": 2})).await;
    let fourth = app.create_platzsuche(json!({"patient_id": 1})).await;

    let by_patient = app.get("/api/platzsuchen?patient_id=1").await;
    let by_status = app.get("/api/platzsuchen?status=aktiv").await;
    let both = app.get("/api/platzsuchen?patient_id=1&status=aktiv").await;
    let page_one = app.get("/api/platzsuchen?limit=2").await;
    let page_two = app
        .get(&format!("/api/platzsuchen?limit=2&after={second}"))
        .await;

    assert_eq!(ids(&by_patient.body), vec![first, second, fourth]);
    assert_eq!(ids(&by_status.body), vec![first, third, fourth]);
    assert_eq!(ids(&both.body), vec![first, fourth]);
    assert_eq!(ids(&page_one.body), vec![first, second]);
    assert_eq!(page_one.body["next_after"], second);
    assert_eq!(ids(&page_two.body), vec![third, fourth]);
    assert_eq!(page_two.body["next_after"], Value::Null);
}

#[tokio::test]
async fn exclusion_is_added_and_lifted() {
    let app = spawn_postgres().await;
    let id = app.create_platzsuche(json!({"patient_id": 5})).await;
    let path = format!("/api/platzsuchen/{id}/ausschluesse");

    let added = app
        .post(
            &path,
            &json!({"therapist_id": 4, "ausgeschlossen_von": "patient", "grund": "Entfernung"}),
        )
        .await;
    let again = app
        .post(
            &path,
            &json!({"therapist_id": 4, "ausgeschlossen_von": "personal"}),
        )
        .await;
    let with_exclusion = app.get(&format!("/api/platzsuchen/{id}")).await;
    let lifted = app.delete(&format!("{path}/4")).await;
    let lifted_again = app.delete(&format!("{path}/4")).await;
    let without = app.get(&format!("/api/platzsuchen/{id}")).await;

    assert_eq!(added.status, StatusCode::CREATED, "{}", added.body);
    assert_eq!(added.body["platzsuche_id"], id);
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(
        exclusions(&with_exclusion.body),
        vec![(4, "patient".to_owned())]
    );
    assert_eq!(lifted.status, StatusCode::OK);
    assert_eq!(
        lifted.body,
        json!({"platzsuche_id": id, "therapist_id": 4, "deleted": true})
    );
    assert_eq!(lifted_again.status, StatusCode::NOT_FOUND);
    assert_eq!(without.body["ausschluesse"], json!([]));
}

#[tokio::test]
async fn sperre_exclusion_is_lifted_only_by_unblocking() {
    let app = spawn_postgres().await;
    let search = app.create_platzsuche(json!({"patient_id": 5})).await;
    app.create_anfrage(json!({"therapist_id": 4, "platzsuche_ids": [search]}))
        .await;
    let blocked = app
        .saga_post(
            "/api/matching/cascade/therapist-blocked",
            &json!({"therapist_id": 4, "reason": "gesperrt"}),
            "s1:cascade:forward",
            "s1",
        )
        .await;
    assert_eq!(blocked.status, StatusCode::OK, "{}", blocked.body);

    let reply = app
        .delete(&format!("/api/platzsuchen/{search}/ausschluesse/4"))
        .await;

    assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.body);
    let read = app.get(&format!("/api/platzsuchen/{search}")).await;
    assert_eq!(exclusions(&read.body), vec![(4, "sperre".to_owned())]);
}

#[tokio::test]
async fn repeated_delete_replays_first_response() {
    let app = spawn_postgres().await;
    let id = app.create_platzsuche(json!({"patient_id": 5})).await;
    let path = format!("/api/platzsuchen/{id}");
    let headers = [("Idempotency-Key", "delete-1")];

    let first = app
        .send(reqwest::Method::DELETE, &path, None, &headers)
        .await;
    let second = app
        .send(reqwest::Method::DELETE, &path, None, &headers)
        .await;

    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(second.status, StatusCode::OK);
    assert_eq!(second.body, first.body);
    assert_eq!(second.headers["idempotent-replayed"], "true");
}

#[tokio::test]
async fn platzsuche_named_by_an_inquiry_is_not_deleted() {
    let app = spawn_postgres().await;
    let search = app.create_platzsuche(json!({"patient_id": 5})).await;
    let anfrage = app
        .create_anfrage(json!({"therapist_id": 4, "platzsuche_ids": [search]}))
        .await;

    let refused = app.delete(&format!("/api/platzsuchen/{search}")).await;
    app.delete(&format!("/api/therapeutenanfragen/{anfrage}"))
        .await;
    let deleted = app.delete(&format!("/api/platzsuchen/{search}")).await;

    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
}

#[tokio::test]
async fn anfrage_status_follows_gesendet_datum() {
    let app = spawn_postgres().await;
    let search = app.create_platzsuche(json!({"patient_id": 5})).await;

    let unsent = app
        .post(
            "/api/therapeutenanfragen",
            &json!({"therapist_id": 4, "platzsuche_ids": [search]}),
        )
        .await;
    let sent = app
        .post(
            "/api/therapeutenanfragen",
            &json!({
                "therapist_id": 4, "platzsuche_ids": [search], "gesendet_datum": "2026-02-01"
            }),
        )
        .await;
    let id = unsent.body["id"].as_i64().expect("id");
    let sent_later = app
        .patch(
            &format!("/api/therapeutenanfragen/{id}"),
            &json!({"gesendet_datum": "2026-02-03"}),
        )
        .await;

    assert_eq!(unsent.status, StatusCode::CREATED, "{}", unsent.body);
    assert_eq!(unsent.body["status"], "offen");
    assert_eq!(unsent.body["gesendet_datum"], Value::Null);
    assert_eq!(unsent.body["platzsuche_ids"], json!([search]));
    assert_eq!(sent.body["status"], "gesendet");
    assert_eq!(sent_later.status, StatusCode::OK, "{}", sent_later.body);
    assert_eq!(sent_later.body["status"], "gesendet");
    assert_eq!(sent_later.body["gesendet_datum"], "2026-02-03");
}

#[tokio::test]
async fn anfrage_is_read_changed_listed_and_deleted() {
    let app = spawn_postgres().await;
    let one = app.create_platzsuche(json!({"patient_id": 5})).await;
    let two = app.create_platzsuche(json!({"patient_id": 6})).await;
    let first = app
        .create_anfrage(json!({"therapist_id": 4, "platzsuche_ids": [two, one]}))
        .await;
    let second = app
        .create_anfrage(json!({"therapist_id": 8, "platzsuche_ids": [one]}))
        .await;

    let read = app.get(&format!("/api/therapeutenanfragen/{first}")).await;
    let changed = app
        .patch(
            &format!("/api/therapeutenanfragen/{second}"),
            &json!({"platzsuche_ids": [two], "status": "storniert", "notizen": "doppelt"}),
        )
        .await;
    let by_therapist = app.get("/api/therapeutenanfragen?therapist_id=4").await;
    let by_status = app.get("/api/therapeutenanfragen?status=storniert").await;
    let deleted = app
        .delete(&format!("/api/therapeutenanfragen/{first}"))
        .await;
    let gone = app.get(&format!("/api/therapeutenanfragen/{first}")).await;

    assert_eq!(read.body["platzsuche_ids"], json!([one, two]));
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    assert_eq!(changed.body["platzsuche_ids"], json!([two]));
    assert_eq!(changed.body["status"], "storniert");
    assert_eq!(changed.body["notizen"], "doppelt");
    assert_eq!(ids(&by_therapist.body), vec![first]);
    assert_eq!(ids(&by_status.body), vec![second]);
    assert_eq!(deleted.body, json!({"anfrage_id": first, "deleted": true}));
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
}

/// A request that must fail: method, path, body, expected status and the field named.
type Rejection<'a> = (reqwest::Method, String, Option<Value>, u16, Option<&'a str>);

/// Sends each case and checks its status and the field the problem names.
async fn check_rejections(app: &TestApp, cases: Vec<Rejection<'_>>) {
    for (method, path, body, status, field) in cases {
        let reply = app.send(method.clone(), &path, body.as_ref(), &[]).await;

        assert_eq!(
            reply.status.as_u16(),
            status,
            "{method} {path} {body:?}: {}",
            reply.body
        );
        assert_eq!(
            reply.headers["content-type"], "application/problem+json",
            "{method} {path}"
        );
        if let Some(field) = field {
            assert_eq!(reply.body["field"], field, "{method} {path} {body:?}");
        }
    }
}

#[tokio::test]
async fn bad_resource_inputs_are_rejected_and_change_nothing() {
    let app = spawn_postgres().await;
    let search = app.create_platzsuche(json!({"patient_id": 5})).await;
    let anfrage = app
        .create_anfrage(json!({"therapist_id": 4, "platzsuche_ids": [search]}))
        .await;
    let before = app.snapshot().await;
    let post = reqwest::Method::POST;
    let patch = reqwest::Method::PATCH;
    let get = reqwest::Method::GET;
    let delete = reqwest::Method::DELETE;
    let suchen = "/api/platzsuchen".to_owned();
    let anfragen = "/api/therapeutenanfragen".to_owned();
    let one_search = format!("/api/platzsuchen/{search}");
    let one_anfrage = format!("/api/therapeutenanfragen/{anfrage}");
    let ausschluesse = format!("/api/platzsuchen/{search}/ausschluesse");
    let cases = vec![
        (
            post.clone(),
            suchen.clone(),
            Some(json!({})),
            400,
            Some("patient_id"),
        ),
        (
            post.clone(),
            suchen.clone(),
            Some(json!({"patient_id": 0})),
            400,
            Some("patient_id"),
        ),
        (
            post.clone(),
            suchen.clone(),
            Some(json!({"patient_id": 1, "status": "fertig"})),
            400,
            Some("status"),
        ),
        (
            post.clone(),
            suchen.clone(),
            Some(json!({"patient_id": 1, "ausschluesse": [
                {"therapist_id": 2, "ausgeschlossen_von": "sperre"}
            ]})),
            422,
            Some("ausschluesse[0].ausgeschlossen_von"),
        ),
        (
            post.clone(),
            suchen.clone(),
            Some(json!({"patient_id": 1, "ausschluesse": [
                {"therapist_id": 2, "ausgeschlossen_von": "patient"},
                {"therapist_id": 2, "ausgeschlossen_von": "personal"}
            ]})),
            422,
            Some("ausschluesse[1].therapist_id"),
        ),
        (
            post.clone(),
            suchen.clone(),
            Some(json!({"patient_id": 1, "notizen": "x".repeat(10_001)})),
            422,
            Some("notizen"),
        ),
        (
            post.clone(),
            suchen.clone(),
            Some(json!({"patient_id": 1, "id": 4})),
            400,
            None,
        ),
        (
            get.clone(),
            "/api/platzsuchen/0".to_owned(),
            None,
            400,
            Some("id"),
        ),
        (
            get.clone(),
            "/api/platzsuchen/abc".to_owned(),
            None,
            400,
            Some("id"),
        ),
        (
            get.clone(),
            "/api/platzsuchen/999".to_owned(),
            None,
            404,
            None,
        ),
        (
            get.clone(),
            "/api/platzsuchen?status=fertig".to_owned(),
            None,
            400,
            Some("status"),
        ),
        (
            get.clone(),
            "/api/platzsuchen?limit=0".to_owned(),
            None,
            400,
            Some("limit"),
        ),
        (
            get.clone(),
            "/api/platzsuchen?patient_id=-1".to_owned(),
            None,
            400,
            Some("patient_id"),
        ),
        (
            get.clone(),
            "/api/platzsuchen?patient_id=x".to_owned(),
            None,
            400,
            None,
        ),
        (
            patch.clone(),
            one_search.clone(),
            Some(json!({"status": "x"})),
            400,
            Some("status"),
        ),
        (
            patch.clone(),
            "/api/platzsuchen/999".to_owned(),
            Some(json!({"status": "pausiert"})),
            404,
            None,
        ),
        (
            delete.clone(),
            "/api/platzsuchen/999".to_owned(),
            None,
            404,
            None,
        ),
        (
            post.clone(),
            ausschluesse.clone(),
            Some(json!({"therapist_id": 2, "ausgeschlossen_von": "sperre"})),
            422,
            Some("ausgeschlossen_von"),
        ),
        (
            post.clone(),
            ausschluesse.clone(),
            Some(json!({"therapist_id": -2, "ausgeschlossen_von": "patient"})),
            400,
            Some("therapist_id"),
        ),
        (
            post.clone(),
            ausschluesse.clone(),
            Some(json!({"therapist_id": 2})),
            400,
            Some("ausgeschlossen_von"),
        ),
        (
            post.clone(),
            "/api/platzsuchen/999/ausschluesse".to_owned(),
            Some(json!({"therapist_id": 2, "ausgeschlossen_von": "patient"})),
            404,
            None,
        ),
        (
            delete.clone(),
            format!("{ausschluesse}/0"),
            None,
            400,
            Some("therapist_id"),
        ),
        (
            delete.clone(),
            format!("{ausschluesse}/77"),
            None,
            404,
            None,
        ),
        (
            post.clone(),
            anfragen.clone(),
            Some(json!({"therapist_id": 4})),
            400,
            Some("platzsuche_ids"),
        ),
        (
            post.clone(),
            anfragen.clone(),
            Some(json!({"therapist_id": 4, "platzsuche_ids": []})),
            422,
            Some("platzsuche_ids"),
        ),
        (
            post.clone(),
            anfragen.clone(),
            Some(json!({"therapist_id": 4, "platzsuche_ids": [0]})),
            422,
            Some("platzsuche_ids"),
        ),
        (
            post.clone(),
            anfragen.clone(),
            Some(json!({"therapist_id": 4, "platzsuche_ids": [search, 999]})),
            422,
            Some("platzsuche_ids"),
        ),
        (
            post.clone(),
            anfragen.clone(),
            Some(json!({"therapist_id": 4, "platzsuche_ids": [search, search]})),
            422,
            Some("platzsuche_ids"),
        ),
        (
            post.clone(),
            anfragen.clone(),
            Some(json!({"therapist_id": 4, "platzsuche_ids": ["a"]})),
            400,
            Some("platzsuche_ids[0]"),
        ),
        (
            post.clone(),
            anfragen.clone(),
            Some(
                json!({"therapist_id": 4, "platzsuche_ids": [search], "gesendet_datum": "2026-13-01"}),
            ),
            400,
            Some("gesendet_datum"),
        ),
        (
            post.clone(),
            anfragen.clone(),
            Some(json!({"therapist_id": 4, "platzsuche_ids": [search], "status": "gesendet"})),
            422,
            Some("gesendet_datum"),
        ),
        (
            post.clone(),
            anfragen.clone(),
            Some(json!({
                "therapist_id": 4, "platzsuche_ids": [search], "status": "offen",
                "gesendet_datum": "2026-01-01"
            })),
            422,
            Some("status"),
        ),
        (
            post.clone(),
            anfragen.clone(),
            Some(json!({"therapist_id": 4, "platzsuche_ids": [search], "status": "neu"})),
            400,
            Some("status"),
        ),
        (
            patch.clone(),
            one_anfrage.clone(),
            Some(json!({"platzsuche_ids": []})),
            422,
            Some("platzsuche_ids"),
        ),
        (
            patch.clone(),
            one_anfrage.clone(),
            Some(json!({"platzsuche_ids": [999]})),
            422,
            Some("platzsuche_ids"),
        ),
        (
            patch.clone(),
            one_anfrage.clone(),
            Some(json!({"status": "gesendet"})),
            422,
            Some("gesendet_datum"),
        ),
        (
            get.clone(),
            "/api/therapeutenanfragen?status=neu".to_owned(),
            None,
            400,
            Some("status"),
        ),
        (
            get.clone(),
            "/api/therapeutenanfragen/999".to_owned(),
            None,
            404,
            None,
        ),
        (
            delete.clone(),
            "/api/therapeutenanfragen/999".to_owned(),
            None,
            404,
            None,
        ),
        (
            post.clone(),
            "/api/unknown".to_owned(),
            Some(json!({})),
            404,
            None,
        ),
        (
            reqwest::Method::PUT,
            one_search.clone(),
            Some(json!({})),
            405,
            None,
        ),
    ];

    check_rejections(&app, cases).await;

    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn resources_work_on_sqlite() {
    let app = spawn_sqlite().await;
    let search = app
        .create_platzsuche(json!({
            "patient_id": 5,
            "ausschluesse": [{"therapist_id": 2, "ausgeschlossen_von": "patient"}]
        }))
        .await;

    let anfrage = app
        .post(
            "/api/therapeutenanfragen",
            &json!({"therapist_id": 4, "platzsuche_ids": [search]}),
        )
        .await;
    let list = app.get("/api/platzsuchen?patient_id=5&status=aktiv").await;

    assert_eq!(anfrage.status, StatusCode::CREATED, "{}", anfrage.body);
    assert_eq!(anfrage.body["platzsuche_ids"], json!([search]));
    assert_eq!(ids(&list.body), vec![search]);
    assert_eq!(
        exclusions(&list.body["items"][0]),
        vec![(2, "patient".to_owned())]
    );
}
