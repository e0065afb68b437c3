//! `coordinator dev`: the whole stack on one machine with the embedded default. It starts
//! the four participant services as child processes of this binary, each with an SQLite
//! file in the data folder, runs the coordinator in this process, and loads the demo data
//! when the services are empty.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use kit::config::LogFormat;
use tokio::process::{Child, Command};

use crate::settings::{EngineSettings, ParticipantUrls, Settings};

/// Options of `coordinator dev`.
#[derive(Debug, Clone, Args)]
pub struct DevArgs {
    /// Folder of the SQLite files; created when missing. A restart on the same folder keeps
    /// every saga and resumes unfinished ones.
    #[arg(long, default_value = "data")]
    pub data_dir: PathBuf,

    /// Do not load the demo data set into empty services.
    #[arg(long)]
    pub no_demo_data: bool,

    /// Log output format of every process.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// A participant service the supervisor starts.
struct ServiceProcess {
    name: &'static str,
    port: u16,
}

const SERVICES: [ServiceProcess; 4] = [
    ServiceProcess {
        name: "patient",
        port: patient_service::DEFAULT_PORT,
    },
    ServiceProcess {
        name: "therapist",
        port: therapist_service::DEFAULT_PORT,
    },
    ServiceProcess {
        name: "matching",
        port: matching_service::DEFAULT_PORT,
    },
    ServiceProcess {
        name: "communication",
        port: communication_service::DEFAULT_PORT,
    },
];

const COORDINATOR_PORT: u16 = 8080;

/// How long each service may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs the stack until Ctrl-C or SIGTERM.
pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create the data folder {}", args.data_dir.display()))?;
    let data_dir = args
        .data_dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", args.data_dir.display()))?;

    let ports = SERVICES.iter().map(|service| service.port);
    for port in std::iter::once(COORDINATOR_PORT).chain(ports) {
        ensure_port_free(port)?;
    }

    let mut children = Vec::new();
    for service in &SERVICES {
        children.push(start_service(service, &data_dir, args.log_format)?);
    }
    for service in &SERVICES {
        wait_until_ready(service.name, service.port).await?;
    }

    let settings = coordinator_settings(&data_dir, args.log_format)?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let coordinator = tokio::spawn(crate::app::serve_until(settings, async move {
        let _ = stopped.await;
    }));
    wait_until_ready("coordinator", COORDINATOR_PORT).await?;

    if !args.no_demo_data {
        let urls = demo_data::ServiceUrls {
            patient: local_url(patient_service::DEFAULT_PORT),
            therapist: local_url(therapist_service::DEFAULT_PORT),
            matching: local_url(matching_service::DEFAULT_PORT),
            communication: local_url(communication_service::DEFAULT_PORT),
        };
        let report = demo_data::seed_if_empty(&urls, &demo_data::SeedOptions::default())
            .await
            .context("cannot load the demo data")?;
        tracing::info!(%report, "demo data");
    }
    print_summary(&data_dir);

    kit::server::shutdown_signal(false).await;
    let _ = stop.send(());
    let result = coordinator.await;
    for mut child in children {
        // Closing stdin makes the child stop, and it is killed if it does not.
        drop(child.stdin.take());
        if tokio::time::timeout(Duration::from_secs(5), child.wait())
            .await
            .is_err()
        {
            let _ = child.kill().await;
        }
    }
    result.context("coordinator task failed")?
}

/// Fails when another program listens on the port, which would otherwise respond in place
/// of the process this command starts.
fn ensure_port_free(port: u16) -> anyhow::Result<()> {
    match std::net::TcpListener::bind(("127.0.0.1", port)) {
        Ok(_) => Ok(()),
        Err(error) => bail!(
            "port {port} on 127.0.0.1 is in use ({error}); stop the program that listens there, \
             for example an earlier `coordinator dev`"
        ),
    }
}

fn local_url(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

fn sqlite_url(data_dir: &Path, name: &str) -> String {
    format!("sqlite://{}", data_dir.join(format!("{name}.db")).display())
}

fn start_service(
    service: &ServiceProcess,
    data_dir: &Path,
    log_format: LogFormat,
) -> anyhow::Result<Child> {
    let binary = std::env::current_exe().context("cannot find this program's path")?;
    let mut command = Command::new(binary);
    command
        .arg("participant")
        .arg(service.name)
        .arg("--database-url")
        .arg(sqlite_url(data_dir, service.name))
        .arg("--bind-addr")
        .arg(format!("127.0.0.1:{}", service.port))
        .arg("--exit-with-parent")
        .arg("--log-format")
        .arg(match log_format {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        })
        .stdin(Stdio::piped())
        .kill_on_drop(true);

    // The services log every request. Unless RUST_LOG is set, dev shows only their warnings
    // so that the coordinator's saga log stays readable.
    if std::env::var_os("RUST_LOG").is_none() {
        command.env("RUST_LOG", "warn");
    }

    if service.name == "communication" {
        command
            .arg("--coordinator-url")
            .arg(local_url(COORDINATOR_PORT));
    }

    command
        .spawn()
        .with_context(|| format!("cannot start the {} service", service.name))
}

/// Polls `/readyz` until it returns 200 or the timeout passes.
async fn wait_until_ready(name: &str, port: u16) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let url = format!("{}/readyz", local_url(port));
    let deadline = tokio::time::Instant::now() + READY_TIMEOUT;

    loop {
        let ready = client
            .get(&url)
            .timeout(Duration::from_secs(1))
            .send()
            .await
            .is_ok_and(|response| response.status().is_success());

        if ready {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!(
                "the {name} service did not become ready on 127.0.0.1:{port} within {}s; is \
                 the port taken by another program?",
                READY_TIMEOUT.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn coordinator_settings(data_dir: &Path, log_format: LogFormat) -> anyhow::Result<Settings> {
    // The coordinator's defaults come from its own flags, so parse an empty command line.
    #[derive(clap::Parser)]
    struct Defaults {
        #[command(flatten)]
        participants: ParticipantUrls,
        #[command(flatten)]
        engine: EngineSettings,
        #[arg(long, env = "COMMAND_WAIT_MS", default_value_t = 5000)]
        command_wait_ms: u64,
        #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 64 * 1024)]
        max_body_bytes: usize,
    }
    let defaults = <Defaults as clap::Parser>::try_parse_from(["coordinator"])
        .context("invalid coordinator settings in the environment")?;
    let mut engine = defaults.engine;
    engine.replica_id.get_or_insert_with(|| "dev".to_owned());

    Ok(Settings {
        database_url: sqlite_url(data_dir, "saga-store"),
        bind_addr: ([127, 0, 0, 1], COORDINATOR_PORT).into(),
        participants: defaults.participants,
        engine,
        command_wait_ms: defaults.command_wait_ms,
        max_body_bytes: defaults.max_body_bytes,
        log_format,
        exit_with_parent: false,
    })
}

fn print_summary(data_dir: &Path) {
    println!();
    println!(
        "Curavani stack running on SQLite files in {}",
        data_dir.display()
    );

    println!(
        "  coordinator    {}  (sagas: /api/v1/sagas)",
        local_url(COORDINATOR_PORT)
    );
    for service in &SERVICES {
        println!("  {:<14} {}", service.name, local_url(service.port));
    }

    println!();
    println!(
        "Try: curl -s -X POST {}/api/v1/commands/delete-patient \\",
        local_url(COORDINATOR_PORT)
    );
    println!("       -H 'Content-Type: application/json' -d '{{\"patient_id\": 1}}'");
    println!("Stop with Ctrl-C.");
}
