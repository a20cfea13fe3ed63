use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // Before the configuration, so that loading it is logged in the chosen format.
    let telemetry = match portcullis::ops::telemetry::init() {
        Ok(telemetry) => telemetry,
        Err(message) => {
            eprintln!("error: {message}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let cli = portcullis::cli::Cli::parse();
    let result = portcullis::cli::run(cli).await;
    // Off the runtime's threads: the exporter's last send blocks.
    let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
