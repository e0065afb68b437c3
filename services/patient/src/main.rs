//! Starts the patient service.

use clap::Parser;
use patient_service::Settings;

/// The patient service of the Curavani platform.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    settings: Settings,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    kit::telemetry::init(cli.settings.common.log_format);
    patient_service::run(cli.settings).await
}
