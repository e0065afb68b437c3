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
    }
}
