//! Load generator: deletes many patients through the coordinator's `delete-patient`
//! command, and as many through the same participant calls made directly (the matching
//! cascade, then the patient DELETE). It prints latency percentiles and throughput of both,
//! with the saga store commits per saga read from the coordinator's metrics.
//!
//! It talks only to the URLs given, which default to the `coordinator dev` ports on
//! 127.0.0.1, and stops after `--requests` deletions per mode.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

#[derive(Debug, Parser)]
#[command(about = "Measure delete-patient through the coordinator against direct calls")]
struct Args {
    /// Base URL of the coordinator.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    coordinator_url: String,
    /// Base URL of the patient service.
    #[arg(long, default_value = "http://127.0.0.1:8081")]
    patient_url: String,
    /// Base URL of the matching service.
    #[arg(long, default_value = "http://127.0.0.1:8083")]
    matching_url: String,
    /// Deletions per mode.
    #[arg(long, default_value_t = 500)]
    requests: usize,
    /// Deletions in flight at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Deletions per mode before measuring, to warm connections and caches.
    #[arg(long, default_value_t = 20)]
    warmup: usize,
}

/// Latencies of one mode.
struct Run {
    latencies: Vec<Duration>,
    elapsed: Duration,
    failures: usize,
}

impl Run {
    fn percentile(&self, fraction: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let index = ((self.latencies.len() as f64 * fraction).ceil() as usize)
            .clamp(1, self.latencies.len());
        self.latencies[index - 1]
    }

    fn throughput(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Arc::new(Args::parse());
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency * 2)
        .timeout(Duration::from_secs(30))
        .build()?;

    let total = (args.requests + args.warmup) * 2;
    eprintln!("creating {total} patients with one aktiv Platzsuche each");
    let patients = create_patients(&client, &args, total).await?;
    let (direct_ids, saga_ids) = patients.split_at(total / 2);

    eprintln!("warming up");
    run_direct(&client, &args, &direct_ids[..args.warmup]).await?;
    run_coordinator(&client, &args, &saga_ids[..args.warmup]).await?;

    eprintln!("measuring {} direct deletions", args.requests);
    let direct = run_direct(&client, &args, &direct_ids[args.warmup..]).await?;
    let commits_before = store_commits(&client, &args).await?;
    eprintln!("measuring {} delete-patient sagas", args.requests);
    let sagas = run_coordinator(&client, &args, &saga_ids[args.warmup..]).await?;
    let commits_after = store_commits(&client, &args).await?;

    print_report(&args, &direct, &sagas, commits_after - commits_before);
    Ok(())
}

async fn create_patients(
    client: &reqwest::Client,
    args: &Arc<Args>,
    count: usize,
) -> anyhow::Result<Vec<i64>> {
    let semaphore = Arc::new(Semaphore::new(args.concurrency));
    let mut tasks = JoinSet::new();

    for index in 0..count {
        let client = client.clone();
        let args = Arc::clone(args);
        let permit = Arc::clone(&semaphore).acquire_owned().await?;
        tasks.spawn(async move {
            let _permit = permit;
            let patient: Value = client
                .post(format!("{}/api/patients", args.patient_url))
                .json(&json!({ "vorname": "Last", "nachname": format!("Probe {index}") }))
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            let id = patient["id"].as_i64().context("patient without id")?;

            client
                .post(format!("{}/api/platzsuchen", args.matching_url))
                .json(&json!({ "patient_id": id }))
                .send()
                .await?
                .error_for_status()?;
            anyhow::Ok(id)
        });
    }

    let mut ids = Vec::with_capacity(count);
    while let Some(result) = tasks.join_next().await {
        ids.push(result??);
    }
    Ok(ids)
}

/// Runs `delete` for every id with bounded concurrency and collects latencies.
async fn measure<F, Fut>(args: &Args, ids: &[i64], delete: F) -> anyhow::Result<Run>
where
    F: Fn(i64) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let semaphore = Arc::new(Semaphore::new(args.concurrency));
    let mut tasks = JoinSet::new();
    let started = Instant::now();

    for &id in ids {
        let permit = Arc::clone(&semaphore).acquire_owned().await?;
        let call = delete(id);
        tasks.spawn(async move {
            let _permit = permit;
            let sent = Instant::now();
            call.await.map(|()| sent.elapsed())
        });
    }

    let mut latencies = Vec::with_capacity(ids.len());
    let mut failures = 0;
    while let Some(result) = tasks.join_next().await {
        match result? {
            Ok(latency) => latencies.push(latency),
            Err(error) => {
                failures += 1;
                if failures <= 3 {
                    eprintln!("deletion failed: {error:#}");
                }
            }
        }
    }

    let elapsed = started.elapsed();
    latencies.sort();
    Ok(Run {
        latencies,
        elapsed,
        failures,
    })
}

/// Times the participant calls a delete saga makes, sent directly with the same headers.
async fn run_direct(
    client: &reqwest::Client,
    args: &Arc<Args>,
    ids: &[i64],
) -> anyhow::Result<Run> {
    measure(args, ids, |id| {
        let client = client.clone();
        let args = Arc::clone(args);
        async move {
            let saga_id = format!("direct-{}", uuid::Uuid::new_v4());
            client
                .post(format!(
                    "{}/api/matching/cascade/patient-deleted",
                    args.matching_url
                ))
                .header("idempotency-key", format!("{saga_id}:cancel:forward"))
                .header("x-saga-id", &saga_id)
                .json(&json!({ "patient_id": id, "reason": "load test" }))
                .send()
                .await?
                .error_for_status()?;

            client
                .delete(format!("{}/api/patients/{id}", args.patient_url))
                .header("idempotency-key", format!("{saga_id}:delete:forward"))
                .header("x-saga-id", &saga_id)
                .send()
                .await?
                .error_for_status()?;

            Ok(())
        }
    })
    .await
}

async fn run_coordinator(
    client: &reqwest::Client,
    args: &Arc<Args>,
    ids: &[i64],
) -> anyhow::Result<Run> {
    measure(args, ids, |id| {
        let client = client.clone();
        let args = Arc::clone(args);
        async move {
            let response = client
                .post(format!(
                    "{}/api/v1/commands/delete-patient",
                    args.coordinator_url
                ))
                .json(&json!({ "patient_id": id, "reason": "load test" }))
                .send()
                .await?;

            let status = response.status();
            if status != reqwest::StatusCode::OK {
                bail!(
                    "delete-patient {id} answered {status}: {}",
                    response.text().await?
                );
            }

            Ok(())
        }
    })
    .await
}

/// Sums `saga_store_commits_total` over its labels.
async fn store_commits(client: &reqwest::Client, args: &Args) -> anyhow::Result<f64> {
    let text = client
        .get(format!("{}/metrics", args.coordinator_url))
        .send()
        .await?
        .text()
        .await?;
    Ok(text
        .lines()
        .filter(|line| line.starts_with("saga_store_commits_total"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}

fn print_report(args: &Args, direct: &Run, sagas: &Run, commits: f64) {
    let ms = |duration: Duration| duration.as_secs_f64() * 1000.0;
    println!(
        "{} deletions per mode, {} in flight",
        args.requests, args.concurrency
    );
    println!(
        "{:<22} {:>9} {:>9} {:>9} {:>12} {:>9}",
        "mode", "p50 ms", "p95 ms", "p99 ms", "per second", "failed"
    );

    for (name, run) in [("direct calls", direct), ("delete-patient saga", sagas)] {
        println!(
            "{:<22} {:>9.2} {:>9.2} {:>9.2} {:>12.1} {:>9}",
            name,
            ms(run.percentile(0.50)),
            ms(run.percentile(0.95)),
            ms(run.percentile(0.99)),
            run.throughput(),
            run.failures
        );
    }

    let ratio = |fraction: f64| ms(sagas.percentile(fraction)) / ms(direct.percentile(fraction));
    println!(
        "saga / direct: p50 {:.2}x, p99 {:.2}x (targets: within 4x and 5x)",
        ratio(0.50),
        ratio(0.99)
    );

    if !sagas.latencies.is_empty() {
        println!(
            "saga store commits per saga: {:.2}",
            commits / sagas.latencies.len() as f64
        );
    }
}
