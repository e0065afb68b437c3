//! A scripted HTTP proxy between the coordinator and one participant service, which injects
//! faults. It responds with a status without forwarding, forwards and then holds the
//! response back past the caller's timeout, or holds requests until the test releases them.
//!
//! Rules match a method and a path prefix; the first matching rule with uses left applies.
//! Requests that no rule matches are forwarded unchanged. Every request is recorded, so tests
//! can count what reached the proxy.
//!
//! A forwarded request runs in its own task: when the caller gives up (a timeout, or a killed
//! coordinator), the request still reaches the service. This is the "applied, but the answer
//! was lost" case that idempotency keys exist for.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use axum::body::{to_bytes, Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Maximum size of a request or response body the proxy passes on.
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Headers that describe one connection and must not be copied to the next hop.
const HOP_BY_HOP: [HeaderName; 4] = [
    header::CONNECTION,
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
    header::HOST,
];

/// What a rule does with a matching request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Respond with this status and a problem body without forwarding.
    Respond(StatusCode),
    /// Forward, then wait this long before passing the response back.
    DelayAnswer(Duration),
    /// Wait until [`Proxy::release`], then forward.
    Hold,
}

/// A request the proxy received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenRequest {
    pub method: Method,
    pub path: String,
}

#[derive(Debug)]
struct Rule {
    method: Method,
    path_prefix: String,
    /// Whether the path must equal `path_prefix` rather than start with it.
    exact: bool,
    action: Action,
    /// Uses left; `None` means until the rule is cleared.
    remaining: Option<u32>,
}

struct ProxyState {
    target: String,
    client: reqwest::Client,
    rules: Mutex<Vec<Rule>>,
    seen: Mutex<Vec<SeenRequest>>,
    /// Forwarded requests with the status of the service's response.
    answered: Mutex<Vec<(SeenRequest, StatusCode)>>,
    /// Incremented by each release; held requests wait for a change.
    releases: watch::Sender<u64>,
}

/// A running proxy on 127.0.0.1. It stops when dropped.
pub struct Proxy {
    pub url: String,
    state: Arc<ProxyState>,
    task: JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    /// Starts a proxy to `target` (a base URL such as `http://127.0.0.1:8081`) on a port the
    /// system picks.
    pub async fn start(target: &str) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("cannot bind the proxy to 127.0.0.1")?;
        let address = listener.local_addr()?;

        let state = Arc::new(ProxyState {
            target: target.trim_end_matches('/').to_owned(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()?,
            rules: Mutex::new(Vec::new()),
            seen: Mutex::new(Vec::new()),
            answered: Mutex::new(Vec::new()),
            releases: watch::Sender::new(0),
        });

        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&state));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });

        Ok(Self {
            url: format!("http://{address}"),
            state,
            task,
        })
    }

    fn add_rule(&self, method: Method, path_prefix: &str, action: Action, times: Option<u32>) {
        self.state.rules.lock().unwrap().push(Rule {
            method,
            path_prefix: path_prefix.to_owned(),
            exact: false,
            action,
            remaining: times,
        });
    }

    /// Responds to the next `times` matching requests with `status` without forwarding them.
    pub fn respond(&self, method: Method, path_prefix: &str, status: StatusCode, times: u32) {
        self.add_rule(method, path_prefix, Action::Respond(status), Some(times));
    }

    /// Forwards the next `times` matching requests and passes each answer back after `delay`.
    pub fn delay_answer(&self, method: Method, path_prefix: &str, delay: Duration, times: u32) {
        self.add_rule(method, path_prefix, Action::DelayAnswer(delay), Some(times));
    }

    /// Holds every matching request until [`Proxy::release`].
    pub fn hold(&self, method: Method, path_prefix: &str) {
        self.add_rule(method, path_prefix, Action::Hold, None);
    }

    /// Holds the next `times` matching requests until [`Proxy::release`]; later ones pass.
    pub fn hold_next(&self, method: Method, path_prefix: &str, times: u32) {
        self.add_rule(method, path_prefix, Action::Hold, Some(times));
    }

    /// Holds every request with this method and exactly this path until [`Proxy::release`].
    pub fn hold_exact(&self, method: Method, path: &str) {
        self.state.rules.lock().unwrap().push(Rule {
            method,
            path_prefix: path.to_owned(),
            exact: true,
            action: Action::Hold,
            remaining: None,
        });
    }

    /// Forwards the held requests and removes the hold rules.
    pub fn release(&self) {
        self.state
            .rules
            .lock()
            .unwrap()
            .retain(|rule| rule.action != Action::Hold);
        self.state.releases.send_modify(|count| *count += 1);
    }

    /// Removes every rule and releases held requests, so that all requests pass unchanged.
    pub fn clear(&self) {
        self.state.rules.lock().unwrap().clear();
        self.state.releases.send_modify(|count| *count += 1);
    }

    /// Returns how many requests with this method and path prefix the proxy received.
    pub fn seen(&self, method: &Method, path_prefix: &str) -> usize {
        self.count_seen(|request| request.method == method && request.path.starts_with(path_prefix))
    }

    /// Returns how many requests with this method and exactly this path the proxy received.
    pub fn seen_exact(&self, method: &Method, path: &str) -> usize {
        self.count_seen(|request| request.method == method && request.path == path)
    }

    /// Returns the statuses the service answered to forwarded requests with this method and
    /// exactly this path, in the order the answers arrived.
    pub fn answered_exact(&self, method: &Method, path: &str) -> Vec<StatusCode> {
        self.state
            .answered
            .lock()
            .unwrap()
            .iter()
            .filter(|(request, _)| request.method == method && request.path == path)
            .map(|(_, status)| *status)
            .collect()
    }

    /// Waits until the service answered at least `count` forwarded requests with this method
    /// and exactly this path, and returns their statuses.
    pub async fn wait_for_answered_exact(
        &self,
        method: &Method,
        path: &str,
        count: usize,
        timeout: Duration,
    ) -> anyhow::Result<Vec<StatusCode>> {
        let deadline = tokio::time::Instant::now() + timeout;

        loop {
            let answered = self.answered_exact(method, path);
            if answered.len() >= count {
                return Ok(answered);
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "the service answered {} of {count} expected {method} {path} requests \
                     within {timeout:?}",
                    answered.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn count_seen(&self, matches: impl Fn(&SeenRequest) -> bool) -> usize {
        self.state
            .seen
            .lock()
            .unwrap()
            .iter()
            .filter(|request| matches(request))
            .count()
    }

    /// Waits until at least `count` requests with this method and path prefix arrived.
    pub async fn wait_for_seen(
        &self,
        method: &Method,
        path_prefix: &str,
        count: usize,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;

        while self.seen(method, path_prefix) < count {
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "the proxy saw {} of {count} expected {method} {path_prefix}* requests \
                     within {timeout:?}",
                    self.seen(method, path_prefix)
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        Ok(())
    }
}

/// Records the request, picks the action of the first matching rule and applies it.
async fn handle(State(state): State<Arc<ProxyState>>, request: Request) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let action = next_action(&state, &method, &path);

    if let Some(Action::Respond(status)) = action {
        return injected_problem(status);
    }
    let hold_until = match action {
        Some(Action::Hold) => Some(state.releases.subscribe()),
        _ => None,
    };
    let delay = match action {
        Some(Action::DelayAnswer(delay)) => Some(delay),
        _ => None,
    };

    let (parts, body) = request.into_parts();
    let body = match to_bytes(body, MAX_BODY_BYTES).await {
        Ok(body) => body,
        Err(error) => return problem(StatusCode::BAD_REQUEST, &format!("body: {error}")),
    };
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or(path, |value| value.as_str().to_owned());

    // The task outlives a caller that hangs up, so a held or slow request still arrives.
    let forwarding = tokio::spawn(async move {
        if let Some(mut releases) = hold_until {
            let held_at = *releases.borrow_and_update();
            let _ = releases.wait_for(|count| *count > held_at).await;
        }
        forward(&state, parts.method, &path_and_query, parts.headers, body).await
    });
    let response = match forwarding.await {
        Ok(response) => response,
        Err(error) => problem(
            StatusCode::BAD_GATEWAY,
            &format!("proxy task failed: {error}"),
        ),
    };
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    response
}

fn next_action(state: &ProxyState, method: &Method, path: &str) -> Option<Action> {
    state.seen.lock().unwrap().push(SeenRequest {
        method: method.clone(),
        path: path.to_owned(),
    });

    let mut rules = state.rules.lock().unwrap();
    let rule = rules.iter_mut().find(|rule| {
        let path_matches = if rule.exact {
            path == rule.path_prefix
        } else {
            path.starts_with(&rule.path_prefix)
        };
        rule.method == method && path_matches && rule.remaining != Some(0)
    })?;

    if let Some(remaining) = &mut rule.remaining {
        *remaining -= 1;
    }
    Some(rule.action)
}

async fn forward(
    state: &ProxyState,
    method: Method,
    path_and_query: &str,
    mut headers: HeaderMap,
    body: Bytes,
) -> Response {
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    let url = format!("{}{path_and_query}", state.target);
    let request = SeenRequest {
        method: method.clone(),
        path: path_and_query
            .split('?')
            .next()
            .unwrap_or_default()
            .to_owned(),
    };
    let sent = state
        .client
        .request(method, url)
        .headers(headers)
        .body(body)
        .send()
        .await;
    let answer = match sent {
        Ok(answer) => answer,
        Err(error) => {
            return problem(
                StatusCode::BAD_GATEWAY,
                &format!("the proxy cannot reach {}: {error}", state.target),
            )
        }
    };

    let status = answer.status();
    state.answered.lock().unwrap().push((request, status));
    let mut headers = answer.headers().clone();
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    match answer.bytes().await {
        Ok(bytes) => (status, headers, Body::from(bytes)).into_response(),
        Err(error) => problem(
            StatusCode::BAD_GATEWAY,
            &format!("the proxy cannot read the answer: {error}"),
        ),
    }
}

fn injected_problem(status: StatusCode) -> Response {
    problem(status, "injected by the e2e proxy")
}

fn problem(status: StatusCode, detail: &str) -> Response {
    let body = json!({
        "type": "about:blank",
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail,
    });
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}
