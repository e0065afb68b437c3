use clap::Parser;
use communication_service::Settings;

/// Emails and phone calls with patients and therapists; reports patient contacts to the saga
/// coordinator.
#[derive(Debug, Parser)]
#[command(name = "communication-service", version)]
struct Cli {
    #[command(flatten)]
    settings: Settings,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    kit::telemetry::init(cli.settings.common.log_format);
    communication_service::run(cli.settings).await
}
