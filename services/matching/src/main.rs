use clap::Parser;
use matching_service::Settings;

/// The matching service of the psychotherapy-matching platform.
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
    matching_service::run(cli.settings).await
}
