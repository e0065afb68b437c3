//! Create requests with a bound on how many are in flight.

use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::Value;
use tokio::task::JoinSet;

/// Time limit of one request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Maximum length of an error response quoted in an error message, in characters.
const MAX_QUOTED_CHARS: usize = 500;

pub struct Creator {
    client: reqwest::Client,
    concurrency: usize,
}

impl Creator {
    pub fn new(concurrency: usize) -> anyhow::Result<Self> {
        // The services run on 127.0.0.1, which a proxy from the environment must not see.
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .context("building the HTTP client failed")?;
        Ok(Self {
            client,
            concurrency: concurrency.max(1),
        })
    }

    /// Returns true when `GET /api/patients?limit=1` lists a patient.
    pub async fn has_patients(&self, patient_url: &str) -> anyhow::Result<bool> {
        let url = format!("{}/api/patients?limit=1", patient_url.trim_end_matches('/'));
        let response = self
            .client
            .get(&url)
            .send()
            .await
            .with_context(|| format!("GET {url} failed; is the patient service running?"))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            bail!("GET {url} returned {status}: {}", quote(&text));
        }

        let page: Value = serde_json::from_str(&text)
            .with_context(|| format!("GET {url} returned a body that is not JSON"))?;
        let items = page["items"]
            .as_array()
            .with_context(|| format!("GET {url} returned no items array"))?;
        Ok(!items.is_empty())
    }

    /// Posts each body to `url` and returns the created ids in the order of `bodies`.
    /// Stops at the first failure; requests still in flight are then aborted.
    pub async fn create_all(&self, url: &str, bodies: Vec<Value>) -> anyhow::Result<Vec<i64>> {
        let mut ids = vec![0_i64; bodies.len()];
        let mut waiting = bodies.into_iter().enumerate();
        let mut in_flight: JoinSet<(usize, anyhow::Result<i64>)> = JoinSet::new();

        loop {
            while in_flight.len() < self.concurrency {
                let Some((position, body)) = waiting.next() else {
                    break;
                };
                let client = self.client.clone();
                let url = url.to_owned();
                in_flight.spawn(async move { (position, create(&client, &url, &body).await) });
            }

            let Some(joined) = in_flight.join_next().await else {
                break;
            };
            let (position, created) = joined.context("a create request task failed")?;
            ids[position] =
                created.with_context(|| format!("record {} of the batch", position + 1))?;
        }
        Ok(ids)
    }
}

async fn create(client: &reqwest::Client, url: &str, body: &Value) -> anyhow::Result<i64> {
    let response = client
        .post(url)
        .json(body)
        .send()
        .await
        .with_context(|| format!("POST {url} failed"))?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    if !status.is_success() {
        bail!("POST {url} returned {status}: {}", quote(&text));
    }

    let created: Value = serde_json::from_str(&text)
        .with_context(|| format!("POST {url} returned a body that is not JSON"))?;
    created["id"]
        .as_i64()
        .with_context(|| format!("POST {url} returned no numeric id: {}", quote(&text)))
}

fn quote(text: &str) -> String {
    match text.char_indices().nth(MAX_QUOTED_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}
