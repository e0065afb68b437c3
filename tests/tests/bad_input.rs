//! Invalid requests to the coordinator: each gets its 4xx with a JSON problem body, and none
//! starts a saga or changes a participant.

use e2e::{Answer, Stack, StackOptions};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_e2e-stack");

/// One invalid request and what it must get.
struct Case {
    name: &'static str,
    method: Method,
    path: String,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    headers: Vec<(&'static str, String)>,
    status: StatusCode,
    /// The `field` member the problem body must name, when the case has one.
    field: Option<&'static str>,
}

fn post(name: &'static str, command: &str, body: &str, status: StatusCode) -> Case {
    Case {
        name,
        method: Method::POST,
        path: format!("/api/v1/commands/{command}"),
        content_type: Some("application/json"),
        body: body.as_bytes().to_vec(),
        headers: Vec::new(),
        status,
        field: None,
    }
}

fn get(name: &'static str, path: String, status: StatusCode) -> Case {
    Case {
        name,
        method: Method::GET,
        path,
        content_type: None,
        body: Vec::new(),
        headers: Vec::new(),
        status,
        field: None,
    }
}

impl Case {
    fn field(mut self, field: &'static str) -> Self {
        self.field = Some(field);
        self
    }
}

/// Returns what is wrong with the response to a case, if anything.
fn check(case: &Case, answer: &Answer) -> Option<String> {
    let mut problems = Vec::new();
    if answer.status != case.status {
        problems.push(format!(
            "status {} instead of {}",
            answer.status, case.status
        ));
    }

    let content_type = answer.header("content-type").unwrap_or_default();
    if !content_type.contains("json") {
        problems.push(format!("content type {content_type:?}"));
    }
    if !answer.body.is_object() {
        problems.push("body is not a JSON object".to_owned());
    }
    if answer.body["status"] != answer.status.as_u16() {
        problems.push("problem status differs from the HTTP status".to_owned());
    }
    if !answer.body["detail"].is_string() {
        problems.push("problem without detail".to_owned());
    }
    if let Some(field) = case.field {
        if answer.body["field"] != field {
            problems.push(format!(
                "field {} instead of {field:?}",
                answer.body["field"]
            ));
        }
    }

    if problems.is_empty() {
        return None;
    }
    Some(format!(
        "{} ({} {}): {}; body {}",
        case.name,
        case.method,
        case.path,
        problems.join(", "),
        answer.body
    ))
}

#[tokio::test]
async fn invalid_requests_get_4xx_problem_and_start_nothing() -> anyhow::Result<()> {
    let stack = Stack::start(BIN, StackOptions::default()).await?;
    let patient = stack.create_patient().await?;
    let therapist = stack.create_therapist().await?;
    let search = stack.create_platzsuche(patient, json!({})).await?;
    let unknown_saga = uuid::Uuid::new_v4();
    let long_reason = "x".repeat(501);
    let oversized = json!({"patient_id": patient, "reason": "x".repeat(70 * 1024)}).to_string();
    let contact = |date: &str, channel: &str, source: &str| {
        json!({"patient_id": patient, "date": date, "channel": channel, "source_id": source})
            .to_string()
    };
    const BAD: StatusCode = StatusCode::BAD_REQUEST;
    const INVALID: StatusCode = StatusCode::UNPROCESSABLE_ENTITY;

    let cases = vec![
        post(
            "malformed JSON",
            "delete-patient",
            r#"{"patient_id": "#,
            BAD,
        ),
        post("JSON array", "delete-patient", "[]", BAD),
        post("empty body", "delete-patient", "", BAD),
        post(
            "patient_id as text",
            "delete-patient",
            r#"{"patient_id": "12"}"#,
            BAD,
        )
        .field("patient_id"),
        post(
            "patient_id as float",
            "delete-patient",
            r#"{"patient_id": 1.5}"#,
            BAD,
        )
        .field("patient_id"),
        post(
            "patient_id too large",
            "delete-patient",
            r#"{"patient_id": 1e30}"#,
            BAD,
        )
        .field("patient_id"),
        post("patient_id missing", "delete-patient", "{}", BAD).field("patient_id"),
        post(
            "unknown field",
            "delete-patient",
            &json!({"patient_id": patient, "force": true}).to_string(),
            BAD,
        ),
        post(
            "patient_id 0",
            "delete-patient",
            r#"{"patient_id": 0}"#,
            INVALID,
        )
        .field("patient_id"),
        post(
            "patient_id -1",
            "delete-patient",
            r#"{"patient_id": -1}"#,
            INVALID,
        )
        .field("patient_id"),
        post(
            "empty reason",
            "delete-patient",
            &json!({"patient_id": patient, "reason": "  "}).to_string(),
            INVALID,
        )
        .field("reason"),
        post(
            "reason too long",
            "delete-patient",
            &json!({"patient_id": patient, "reason": long_reason}).to_string(),
            INVALID,
        )
        .field("reason"),
        post(
            "reason as number",
            "delete-patient",
            &json!({"patient_id": patient, "reason": 5}).to_string(),
            BAD,
        )
        .field("reason"),
        post(
            "body over 64 KiB",
            "delete-patient",
            &oversized,
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        Case {
            content_type: Some("text/plain"),
            ..post(
                "not JSON content type",
                "delete-patient",
                &json!({"patient_id": patient}).to_string(),
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
            )
        },
        Case {
            headers: vec![("Idempotency-Key", "k".repeat(300))],
            ..post(
                "Idempotency-Key too long",
                "delete-patient",
                &json!({"patient_id": patient}).to_string(),
                BAD,
            )
        },
        post(
            "block without reason",
            "block-therapist",
            &json!({"therapist_id": therapist}).to_string(),
            BAD,
        )
        .field("reason"),
        post(
            "block with blank reason",
            "block-therapist",
            &json!({"therapist_id": therapist, "reason": ""}).to_string(),
            INVALID,
        )
        .field("reason"),
        post(
            "block with therapist_id 0",
            "block-therapist",
            r#"{"therapist_id": 0, "reason": "x"}"#,
            INVALID,
        )
        .field("therapist_id"),
        post(
            "unblock with therapist_id as text",
            "unblock-therapist",
            r#"{"therapist_id": "x"}"#,
            BAD,
        )
        .field("therapist_id"),
        post(
            "unblock with unknown field",
            "unblock-therapist",
            &json!({"therapist_id": therapist, "reason": "x"}).to_string(),
            BAD,
        ),
        post(
            "contact with month 13",
            "record-patient-contact",
            &contact("2024-13-01", "email", "email-1-gesendet"),
            BAD,
        )
        .field("date"),
        post(
            "contact with a date in another form",
            "record-patient-contact",
            &contact("01.02.2024", "email", "email-1-gesendet"),
            BAD,
        )
        .field("date"),
        post(
            "contact with channel fax",
            "record-patient-contact",
            &contact("2024-02-01", "fax", "fax-1"),
            BAD,
        )
        .field("channel"),
        post(
            "contact without source_id",
            "record-patient-contact",
            &json!({"patient_id": patient, "date": "2024-02-01", "channel": "email"}).to_string(),
            BAD,
        )
        .field("source_id"),
        post(
            "contact with empty source_id",
            "record-patient-contact",
            &contact("2024-02-01", "email", ""),
            INVALID,
        )
        .field("source_id"),
        post(
            "unknown command",
            "delete-everything",
            "{}",
            StatusCode::NOT_FOUND,
        ),
        get(
            "unknown saga",
            format!("/api/v1/sagas/{unknown_saga}"),
            StatusCode::NOT_FOUND,
        ),
        get("saga id not a UUID", "/api/v1/sagas/42".to_owned(), BAD),
        Case {
            method: Method::POST,
            ..get(
                "retry of an unknown saga",
                format!("/api/v1/sagas/{unknown_saga}/retry"),
                StatusCode::NOT_FOUND,
            )
        },
        Case {
            method: Method::POST,
            ..get(
                "retry of a saga id not a UUID",
                "/api/v1/sagas/abc/retry".to_owned(),
                BAD,
            )
        },
        get(
            "list by unknown status",
            "/api/v1/sagas?status=lost".to_owned(),
            BAD,
        )
        .field("status"),
        get(
            "list by unknown type",
            "/api/v1/sagas?type=delete".to_owned(),
            BAD,
        )
        .field("type"),
        get("list with limit 0", "/api/v1/sagas?limit=0".to_owned(), BAD).field("limit"),
        get(
            "list with limit 501",
            "/api/v1/sagas?limit=501".to_owned(),
            BAD,
        )
        .field("limit"),
        get(
            "list with limit as text",
            "/api/v1/sagas?limit=ten".to_owned(),
            BAD,
        ),
        get(
            "list with patient_id 0",
            "/api/v1/sagas?patient_id=0".to_owned(),
            BAD,
        )
        .field("patient_id"),
        get(
            "list with patient_id as text",
            "/api/v1/sagas?patient_id=abc".to_owned(),
            BAD,
        ),
        get(
            "list with a bad created_from",
            "/api/v1/sagas?created_from=yesterday".to_owned(),
            BAD,
        )
        .field("created_from"),
        get(
            "list with a bad created_to",
            "/api/v1/sagas?created_to=2024-01-01".to_owned(),
            BAD,
        )
        .field("created_to"),
        get(
            "list with a bad cursor",
            "/api/v1/sagas?cursor=zzz".to_owned(),
            BAD,
        )
        .field("cursor"),
    ];

    let mut failures = Vec::new();
    for case in &cases {
        let url = format!("{}{}", stack.coordinator_url(0), case.path);
        let mut headers: Vec<(&str, &str)> = case
            .headers
            .iter()
            .map(|(name, value)| (*name, value.as_str()))
            .collect();
        if let Some(content_type) = case.content_type {
            headers.push(("content-type", content_type));
        }
        let answer = stack
            .send_bytes(case.method.clone(), &url, case.body.clone(), &headers)
            .await?;
        failures.extend(check(case, &answer));
    }

    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(stack.list_sagas("").await?, Vec::<Value>::new());
    assert_eq!(stack.get_patient(patient).await?.status, StatusCode::OK);
    assert_eq!(
        stack.get_therapist(therapist).await?.body["status"],
        "aktiv"
    );
    assert_eq!(stack.get_platzsuche(search).await?.body["status"], "aktiv");
    Ok(())
}

#[tokio::test]
async fn retry_of_a_finished_saga_is_a_conflict() -> anyhow::Result<()> {
    let stack = Stack::start(BIN, StackOptions::default()).await?;
    let patient = stack.create_patient().await?;
    let saga_id = stack
        .delete_patient(patient, "fertig")
        .await?
        .expect(StatusCode::OK)?
        .saga_id()
        .expect("the answer names its saga");

    let url = format!("{}/api/v1/sagas/{saga_id}/retry", stack.coordinator_url(0));
    let answer = stack.send(Method::POST, &url, None, &[]).await?;

    assert_eq!(answer.status, StatusCode::CONFLICT, "{}", answer.body);
    assert!(answer.body["detail"].is_string(), "{}", answer.body);
    assert_eq!(stack.get_saga(&saga_id).await?["status"], "completed");
    Ok(())
}

#[tokio::test]
async fn json_array_body_is_rejected() -> anyhow::Result<()> {
    let stack = Stack::start(BIN, StackOptions::default()).await?;
    let patient = stack.create_patient().await?;
    let url = format!(
        "{}/api/v1/commands/delete-patient",
        stack.coordinator_url(0)
    );
    let body = format!("[{patient}, \"als Liste\"]").into_bytes();

    let answer = stack
        .send_bytes(
            Method::POST,
            &url,
            body,
            &[("content-type", "application/json")],
        )
        .await?;

    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);
    assert_eq!(stack.get_patient(patient).await?.status, StatusCode::OK);
    assert_eq!(stack.list_sagas("").await?.len(), 0);
    Ok(())
}
