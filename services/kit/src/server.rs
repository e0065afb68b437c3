//! The HTTP server around a service's API: request ids, tracing spans with the saga id,
//! body limit, panics turned into 500s, problem bodies for every error, and the operational
//! routes `/healthz`, `/readyz`, `/metrics` and `/openapi.json`.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt;
use axum::Router;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::RequestBodyTimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::db::Database;
use crate::error::{problem_response, ApiError, Problem};

static BODY_LIMIT: AtomicUsize = AtomicUsize::new(64 * 1024);
static METRICS: OnceLock<PrometheusHandle> = OnceLock::new();

/// How long a client may take to send a request body; a slower body gets 408, so that
/// idle clients cannot hold connections open.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Buckets of every latency histogram, in seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Returns the request body limit in bytes, for error messages.
pub fn body_limit() -> usize {
    BODY_LIMIT.load(Ordering::Relaxed)
}

/// Installs the Prometheus recorder on first use and returns its handle.
pub fn metrics_handle() -> PrometheusHandle {
    METRICS
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), LATENCY_BUCKETS)
                .and_then(|builder| builder.install_recorder());
            match recorder {
                Ok(handle) => handle,
                // Another recorder is installed already (two services in one test
                // process): this one still renders, it just receives nothing.
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            }
        })
        .clone()
}

/// Everything the operational routes need.
#[derive(Clone)]
struct OpsState {
    db: Database,
    openapi: std::sync::Arc<String>,
    metrics: PrometheusHandle,
}

/// Wraps a service's API router with the operational routes and the common middleware.
pub fn app(
    service: &'static str,
    api: Router,
    db: Database,
    openapi: utoipa::openapi::OpenApi,
    max_body_bytes: usize,
) -> Router {
    BODY_LIMIT.store(max_body_bytes, Ordering::Relaxed);
    let ops = OpsState {
        db,
        openapi: std::sync::Arc::new(openapi.to_pretty_json().unwrap_or_else(|_| "{}".into())),
        metrics: metrics_handle(),
    };
    let ops_routes = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(render_metrics))
        .route("/openapi.json", get(openapi_document))
        .with_state(ops);

    api.merge(ops_routes)
        .fallback(unknown_route)
        .layer(middleware::from_fn(problem_for_bare_errors))
        .layer(middleware::from_fn(move |request, next| {
            record_request(service, request, next)
        }))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(RequestBodyTimeoutLayer::new(BODY_READ_TIMEOUT))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request<Body>| {
                let route = request
                    .extensions()
                    .get::<MatchedPath>()
                    .map_or(request.uri().path(), |path| path.as_str());
                let header = |name: &str| {
                    request
                        .headers()
                        .get(name)
                        .and_then(|value| value.to_str().ok())
                        .unwrap_or("")
                        .to_owned()
                };
                tracing::info_span!(
                    "http",
                    http.method = %request.method(),
                    http.route = route,
                    request.id = header("x-request-id"),
                    saga.id = header("x-saga-id"),
                )
            }),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

/// Serves `app` on `listener` until `shutdown` completes, then lets running requests end.
/// Sockets get TCP_NODELAY so that small responses are not held back by Nagle's algorithm
/// while the peer delays its acknowledgement.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = listener.tap_io(|stream| {
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(error = %error, "cannot set TCP_NODELAY");
        }
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Completes on SIGTERM or Ctrl-C, or when standard input closes if `exit_with_parent`.
pub async fn shutdown_signal(exit_with_parent: bool) {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    let parent_gone = async {
        if !exit_with_parent {
            return std::future::pending::<()>().await;
        }
        // A plain thread reads stdin: tokio's stdin runs on a blocking-pool thread that the
        // runtime waits for at shutdown, so a service stopped by SIGTERM would hang until
        // its parent closed stdin.
        let (closed, stdin_closed) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let mut buffer = [0_u8; 64];
            let mut stdin = std::io::stdin();
            while matches!(std::io::Read::read(&mut stdin, &mut buffer), Ok(n) if n > 0) {}
            let _ = closed.send(());
        });
        let _ = stdin_closed.await;
    };

    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C received, shutting down"),
        () = terminate => tracing::info!("SIGTERM received, shutting down"),
        () = parent_gone => tracing::info!("parent process gone, shutting down"),
    }
}

async fn healthz() -> impl IntoResponse {
    axum::Json(serde_json::json!({ "status": "ok" }))
}

async fn readyz(State(ops): State<OpsState>) -> Response {
    match tokio::time::timeout(Duration::from_secs(2), ops.db.ping()).await {
        Ok(Ok(())) => axum::Json(serde_json::json!({ "status": "ready" })).into_response(),
        Ok(Err(error)) => {
            tracing::warn!(error = %error, "readiness check failed");
            not_ready()
        }
        Err(_) => {
            tracing::warn!("readiness check timed out");
            not_ready()
        }
    }
}

fn not_ready() -> Response {
    problem_response(&Problem {
        problem_type: "about:blank".to_owned(),
        title: "Service Unavailable".to_owned(),
        status: 503,
        detail: "the database does not answer".to_owned(),
        field: None,
    })
}

async fn render_metrics(State(ops): State<OpsState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        ops.metrics.render(),
    )
}

async fn openapi_document(State(ops): State<OpsState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        ops.openapi.as_str().to_owned(),
    )
}

async fn unknown_route(request: Request) -> ApiError {
    ApiError::NotFound {
        resource: "route",
        id: format!("{} {}", request.method(), request.uri().path()),
    }
}

/// Counts every request by route template and status, and times it.
async fn record_request(service: &'static str, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());

    let response = next.run(request).await;

    let status = response.status().as_u16().to_string();
    let labels = [
        ("service", service.to_owned()),
        ("method", method),
        ("route", route),
        ("status", status),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels[..3])
        .record(started.elapsed().as_secs_f64());
    response
}

/// Gives a problem body to error responses that axum produces without one, such as 405.
async fn problem_for_bare_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let has_body_type = response.headers().contains_key(header::CONTENT_TYPE);
    if !(status.is_client_error() || status.is_server_error()) || has_body_type {
        return response;
    }

    let detail = match status {
        StatusCode::METHOD_NOT_ALLOWED => "this route does not accept that method".to_owned(),
        StatusCode::PAYLOAD_TOO_LARGE => {
            format!("request body exceeds the limit of {} bytes", body_limit())
        }
        other => other.canonical_reason().unwrap_or("error").to_owned(),
    };
    let mut problem_response = problem_response(&Problem {
        problem_type: "about:blank".to_owned(),
        title: status.canonical_reason().unwrap_or("Error").to_owned(),
        status: status.as_u16(),
        detail,
        field: None,
    });
    for (name, value) in response.headers() {
        if name == header::ALLOW || name == header::RETRY_AFTER {
            problem_response.headers_mut().insert(name, value.clone());
        }
    }
    problem_response
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("request handler panicked");
    let mut response = ApiError::Internal(anyhow::anyhow!("handler panicked")).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
