//! The `coordinator` command line: `serve`, `migrate`, and the local tools `dev` and
//! `seed`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kit::config::LogFormat;

use crate::settings::Settings;

/// Curavani saga coordinator.
#[derive(Debug, Parser)]
#[command(name = "coordinator", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the coordinator's HTTP server and saga engine.
    Serve(Settings),
    /// Apply the saga store migrations and exit.
    Migrate {
        /// Saga store URL: `postgres://...` or `sqlite://path/to/file.db`.
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
    },
    /// Run the coordinator and the four services on this machine with SQLite files, and
    /// load the demo data when the services are empty.
    Dev(crate::dev::DevArgs),
    /// Fill empty participant services with the synthetic demo data set.
    Seed(SeedArgs),
    /// Run one participant service (used by `dev`; each service also has its own binary).
    #[command(subcommand, hide = true)]
    Participant(ParticipantCommand),
}

#[derive(Debug, clap::Args)]
struct SeedArgs {
    #[command(flatten)]
    participants: crate::settings::ParticipantUrls,

    /// Base URL of the communication service.
    #[arg(
        long,
        env = "COMMUNICATION_SERVICE_URL",
        default_value = "http://127.0.0.1:8084"
    )]
    communication_service_url: String,
}

#[derive(Debug, Subcommand)]
enum ParticipantCommand {
    Patient(patient_service::Settings),
    Therapist(therapist_service::Settings),
    Matching(matching_service::Settings),
    Communication(communication_service::Settings),
}

/// Parses the command line, runs the command and returns the exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();

    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };

    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "stopped with an error");
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(settings) => {
            kit::telemetry::init(settings.log_format);
            crate::app::serve(settings).await
        }
        Command::Migrate { database_url } => {
            kit::telemetry::init(LogFormat::Text);
            crate::app::open_store(&database_url).await?;
            tracing::info!("saga store migrations applied");
            Ok(())
        }
        Command::Dev(args) => {
            kit::telemetry::init(args.log_format);
            crate::dev::run(args).await
        }
        Command::Seed(args) => {
            kit::telemetry::init(LogFormat::Text);
            let urls = demo_data::ServiceUrls {
                patient: args.participants.patient_service_url,
                therapist: args.participants.therapist_service_url,
                matching: args.participants.matching_service_url,
                communication: args.communication_service_url,
            };
            let report =
                demo_data::seed_if_empty(&urls, &demo_data::SeedOptions::default()).await?;
            println!("{report}");
            Ok(())
        }
        Command::Participant(service) => run_participant(service).await,
    }
}

async fn run_participant(service: ParticipantCommand) -> anyhow::Result<()> {
    match service {
        ParticipantCommand::Patient(settings) => {
            kit::telemetry::init(settings.common.log_format);
            patient_service::run(settings).await
        }
        ParticipantCommand::Therapist(settings) => {
            kit::telemetry::init(settings.common.log_format);
            therapist_service::run(settings).await
        }
        ParticipantCommand::Matching(settings) => {
            kit::telemetry::init(settings.common.log_format);
            matching_service::run(settings).await
        }
        ParticipantCommand::Communication(settings) => {
            kit::telemetry::init(settings.common.log_format);
            communication_service::run(settings).await
        }
    }
}
