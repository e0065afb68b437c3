//! The saga status API (filters and cursor paging of the saga list) and the operational
//! routes.

use std::collections::HashSet;

use e2e::{Stack, StackOptions};
use reqwest::{Method, StatusCode};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_e2e-stack");

fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .filter_map(|saga| saga["id"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn saga_list_filters_and_pages_with_a_cursor() -> anyhow::Result<()> {
    let stack = Stack::start(BIN, StackOptions::default()).await?;
    let started = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let mut deleted = Vec::new();
    for _ in 0..3 {
        let patient = stack.create_patient().await?;
        stack
            .delete_patient(patient, "Liste")
            .await?
            .expect(StatusCode::OK)?;
        deleted.push(patient);
    }
    let therapist = stack.create_therapist().await?;
    stack
        .block_therapist(therapist, "Liste")
        .await?
        .expect(StatusCode::OK)?;

    let all = stack.list_sagas("").await?;
    let deletes = stack.list_sagas("type=delete-patient").await?;
    let blocks = stack
        .list_sagas("type=block-therapist&status=completed")
        .await?;
    let running = stack.list_sagas("status=running").await?;
    let one_patient = stack
        .list_sagas(&format!("patient_id={}", deleted[1]))
        .await?;
    let since_start = stack
        .list_sagas(&format!("created_from={}", started.replace('+', "%2B")))
        .await?;
    let before_start = stack
        .list_sagas(&format!("created_to={}", started.replace('+', "%2B")))
        .await?;

    assert_eq!(all.len(), 4);
    assert_eq!(deletes.len(), 3);
    assert_eq!(blocks.len(), 1);
    assert_eq!(running.len(), 0);
    assert_eq!(one_patient.len(), 1);
    assert_eq!(one_patient[0]["entity"]["id"], deleted[1]);
    assert_eq!(since_start.len(), 4);
    assert_eq!(before_start.len(), 0);

    let url = format!("{}/api/v1/sagas?limit=3", stack.coordinator_url(0));
    let first = stack
        .send(Method::GET, &url, None, &[])
        .await?
        .expect(StatusCode::OK)?;
    let cursor = first.body["next_cursor"]
        .as_str()
        .expect("a full page has a next_cursor")
        .to_owned();
    let url = format!(
        "{}/api/v1/sagas?limit=3&cursor={cursor}",
        stack.coordinator_url(0)
    );
    let second = stack
        .send(Method::GET, &url, None, &[])
        .await?
        .expect(StatusCode::OK)?;

    let first_ids = ids(first.body["items"].as_array().expect("items"));
    let second_ids = ids(second.body["items"].as_array().expect("items"));
    assert_eq!(first_ids.len(), 3);
    assert_eq!(second_ids.len(), 1);
    assert_eq!(second.body["next_cursor"], Value::Null);
    let seen: HashSet<&String> = first_ids.iter().chain(&second_ids).collect();
    assert_eq!(seen.len(), 4, "pages overlap: {first_ids:?} {second_ids:?}");
    assert_eq!(first_ids, ids(&all)[..3].to_vec(), "newest first");
    Ok(())
}

#[tokio::test]
async fn coordinator_serves_openapi_metrics_and_health() -> anyhow::Result<()> {
    let stack = Stack::start(BIN, StackOptions::default()).await?;
    let base = stack.coordinator_url(0);

    let openapi = stack
        .send(Method::GET, &format!("{base}/openapi.json"), None, &[])
        .await?;
    let metrics = stack
        .send(Method::GET, &format!("{base}/metrics"), None, &[])
        .await?;
    let health = stack
        .send(Method::GET, &format!("{base}/healthz"), None, &[])
        .await?;

    assert_eq!(openapi.status, StatusCode::OK);
    assert!(
        openapi.body["paths"]["/api/v1/commands/delete-patient"].is_object(),
        "{}",
        openapi.body
    );
    assert_eq!(metrics.status, StatusCode::OK);
    assert_eq!(health.status, StatusCode::OK);
    Ok(())
}
