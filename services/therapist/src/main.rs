//! Starts the therapist service.

use clap::Parser;
use therapist_service::Settings;

/// The therapist service of the Curavani platform.
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
    therapist_service::run(cli.settings).await
}
