//! Typed requests of the tests: participant data, coordinator commands and saga status.

use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::{Answer, Service, Stack, POLL_INTERVAL, POLL_TIMEOUT};

impl Stack {
    /// Sends a request and returns the response with its body parsed as JSON when possible.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<Answer> {
        let mut request = self.client.request(method.clone(), url);
        if let Some(body) = body {
            request = request.json(body);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }

        let answer = request
            .send()
            .await
            .with_context(|| format!("{method} {url} failed"))?;

        into_answer(answer).await
    }

    /// Sends raw bytes with the given headers, for malformed bodies and content types.
    pub async fn send_bytes(
        &self,
        method: Method,
        url: &str,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<Answer> {
        let mut request = self.client.request(method.clone(), url).body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }

        let answer = request
            .send()
            .await
            .with_context(|| format!("{method} {url} failed"))?;

        into_answer(answer).await
    }

    pub async fn get(&self, service: Service, path: &str) -> anyhow::Result<Answer> {
        let url = format!("{}{path}", self.service_url(service));
        self.send(Method::GET, &url, None, &[]).await
    }

    pub async fn post(&self, service: Service, path: &str, body: &Value) -> anyhow::Result<Answer> {
        let url = format!("{}{path}", self.service_url(service));
        self.send(Method::POST, &url, Some(body), &[]).await
    }

    pub async fn patch(
        &self,
        service: Service,
        path: &str,
        body: &Value,
    ) -> anyhow::Result<Answer> {
        let url = format!("{}{path}", self.service_url(service));
        self.send(Method::PATCH, &url, Some(body), &[]).await
    }

    /// Creates a resource and returns its id.
    async fn create(&self, service: Service, path: &str, body: &Value) -> anyhow::Result<i64> {
        let answer = self.post(service, path, body).await?;
        if answer.status != StatusCode::CREATED && answer.status != StatusCode::OK {
            bail!(
                "POST {path} on {} got {}: {}",
                service.name(),
                answer.status,
                answer.body
            );
        }
        answer.body["id"]
            .as_i64()
            .ok_or_else(|| anyhow!("POST {path} answered without an id: {}", answer.body))
    }

    /// Creates a patient with synthetic names and returns its id.
    pub async fn create_patient(&self) -> anyhow::Result<i64> {
        self.create_patient_with(json!({})).await
    }

    /// Creates a patient with synthetic names plus the given fields and returns its id.
    pub async fn create_patient_with(&self, fields: Value) -> anyhow::Result<i64> {
        let mut body = json!({ "vorname": "Testa", "nachname": "Beispiel" });
        merge(&mut body, fields);
        self.create(Service::Patient, "/api/patients", &body).await
    }

    pub async fn get_patient(&self, id: i64) -> anyhow::Result<Answer> {
        self.get(Service::Patient, &format!("/api/patients/{id}"))
            .await
    }

    /// Creates an aktiv therapist with synthetic names and returns its id.
    pub async fn create_therapist(&self) -> anyhow::Result<i64> {
        let body = json!({ "vorname": "Theo", "nachname": "Muster" });
        self.create(Service::Therapist, "/api/therapists", &body)
            .await
    }

    pub async fn get_therapist(&self, id: i64) -> anyhow::Result<Answer> {
        self.get(Service::Therapist, &format!("/api/therapists/{id}"))
            .await
    }

    /// Creates a Platzsuche of the patient (aktiv unless `fields` sets another status).
    pub async fn create_platzsuche(&self, patient_id: i64, fields: Value) -> anyhow::Result<i64> {
        let mut body = json!({ "patient_id": patient_id });
        merge(&mut body, fields);
        self.create(Service::Matching, "/api/platzsuchen", &body)
            .await
    }

    pub async fn get_platzsuche(&self, id: i64) -> anyhow::Result<Answer> {
        self.get(Service::Matching, &format!("/api/platzsuchen/{id}"))
            .await
    }

    /// Creates a Therapeutenanfrage; unsent (offen) unless `gesendet_datum` is given.
    pub async fn create_anfrage(
        &self,
        therapist_id: i64,
        platzsuche_ids: &[i64],
        gesendet_datum: Option<&str>,
    ) -> anyhow::Result<i64> {
        let mut body = json!({ "therapist_id": therapist_id, "platzsuche_ids": platzsuche_ids });
        if let Some(date) = gesendet_datum {
            body["gesendet_datum"] = json!(date);
        }
        self.create(Service::Matching, "/api/therapeutenanfragen", &body)
            .await
    }

    pub async fn get_anfrage(&self, id: i64) -> anyhow::Result<Answer> {
        self.get(Service::Matching, &format!("/api/therapeutenanfragen/{id}"))
            .await
    }

    /// Posts a command to coordinator 0 with extra headers such as `Idempotency-Key` or
    /// `Prefer`.
    pub async fn post_command(
        &self,
        command: &str,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<Answer> {
        self.post_command_to(0, command, body, headers).await
    }

    /// Posts a command to coordinator `index`.
    pub async fn post_command_to(
        &self,
        index: usize,
        command: &str,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<Answer> {
        let url = format!("{}/api/v1/commands/{command}", self.coordinator_url(index));
        self.send(Method::POST, &url, Some(body), headers).await
    }

    /// Deletes a patient through the coordinator with a reason and no extra headers.
    pub async fn delete_patient(&self, patient_id: i64, reason: &str) -> anyhow::Result<Answer> {
        let body = json!({ "patient_id": patient_id, "reason": reason });
        self.post_command("delete-patient", &body, &[]).await
    }

    pub async fn block_therapist(&self, therapist_id: i64, reason: &str) -> anyhow::Result<Answer> {
        let body = json!({ "therapist_id": therapist_id, "reason": reason });
        self.post_command("block-therapist", &body, &[]).await
    }

    pub async fn unblock_therapist(&self, therapist_id: i64) -> anyhow::Result<Answer> {
        let body = json!({ "therapist_id": therapist_id });
        self.post_command("unblock-therapist", &body, &[]).await
    }

    /// Returns `GET /api/v1/sagas/{id}` of coordinator `index`.
    pub async fn get_saga_from(&self, index: usize, saga_id: &str) -> anyhow::Result<Answer> {
        let url = format!("{}/api/v1/sagas/{saga_id}", self.coordinator_url(index));
        self.send(Method::GET, &url, None, &[]).await
    }

    /// Returns the saga view from coordinator 0, failing unless the status is 200.
    pub async fn get_saga(&self, saga_id: &str) -> anyhow::Result<Value> {
        Ok(self
            .get_saga_from(0, saga_id)
            .await?
            .expect(StatusCode::OK)?
            .body)
    }

    /// Returns the `items` of `GET /api/v1/sagas?{query}` from coordinator 0.
    pub async fn list_sagas(&self, query: &str) -> anyhow::Result<Vec<Value>> {
        let url = format!("{}/api/v1/sagas?{query}", self.coordinator_url(0));
        let answer = self
            .send(Method::GET, &url, None, &[])
            .await?
            .expect(StatusCode::OK)?;
        answer.body["items"]
            .as_array()
            .cloned()
            .ok_or_else(|| anyhow!("saga list without items: {}", answer.body))
    }

    /// Polls coordinator `index` until the saga has `status`, and returns the saga. Fails
    /// at the deadline with the last view.
    pub async fn wait_for_saga_status_on(
        &self,
        index: usize,
        saga_id: &str,
        status: &str,
        timeout: Duration,
    ) -> anyhow::Result<Value> {
        let deadline = tokio::time::Instant::now() + timeout;

        loop {
            let answer = self.get_saga_from(index, saga_id).await;
            let last = match answer {
                Ok(answer) if answer.status == StatusCode::OK => {
                    if answer.body["status"] == status {
                        return Ok(answer.body);
                    }
                    answer.body.to_string()
                }
                Ok(answer) => format!("{}: {}", answer.status, answer.body),
                Err(error) => format!("{error:#}"),
            };

            if tokio::time::Instant::now() > deadline {
                bail!("saga {saga_id} did not reach {status} within {timeout:?}; last: {last}");
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Polls coordinator 0 until the saga has `status` within [`POLL_TIMEOUT`].
    pub async fn wait_for_saga_status(&self, saga_id: &str, status: &str) -> anyhow::Result<Value> {
        self.wait_for_saga_status_on(0, saga_id, status, POLL_TIMEOUT)
            .await
    }

    /// Polls a participant resource until `done` holds for its response, and returns it.
    pub async fn wait_for(
        &self,
        service: Service,
        path: &str,
        what: &str,
        done: impl Fn(&Answer) -> bool,
    ) -> anyhow::Result<Answer> {
        let deadline = tokio::time::Instant::now() + POLL_TIMEOUT;

        loop {
            let answer = self.get(service, path).await?;
            if done(&answer) {
                return Ok(answer);
            }

            if tokio::time::Instant::now() > deadline {
                bail!(
                    "{what} did not happen within {POLL_TIMEOUT:?}; last GET {path}: {} {}",
                    answer.status,
                    answer.body
                );
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

async fn into_answer(answer: reqwest::Response) -> anyhow::Result<Answer> {
    let status = answer.status();
    let headers = answer.headers().clone();
    let text = answer.text().await.context("cannot read the answer body")?;
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Ok(Answer {
        status,
        headers,
        body,
    })
}

/// Copies the members of `extra` into `body`.
fn merge(body: &mut Value, extra: Value) {
    if let (Value::Object(body), Value::Object(extra)) = (body, extra) {
        body.extend(extra);
    }
}
