use clap::Parser;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr);
    // Read before the configuration, so that loading it is logged in the chosen format.
    match std::env::var("PORTCULLIS_LOG_FORMAT")
        .as_deref()
        .map(str::trim)
    {
        Err(_) | Ok("" | "text") => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        // One JSON object a line: the event's fields at the top, with the request span's.
        Ok("json") => logs
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init(),
        Ok(other) => {
            eprintln!("error: PORTCULLIS_LOG_FORMAT must be text or json, got {other:?}");
            return std::process::ExitCode::FAILURE;
        }
    }
    let cli = portcullis::cli::Cli::parse();
    match portcullis::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
