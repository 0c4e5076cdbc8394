//! The `mediaedge` command: `serve` (and, later, helpers).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mediaedge::config::{Config, Overrides, RawConfig};
use mediaedge::telemetry::{self, LogFormat};
use mediaedge::{metrics, server};

#[derive(Parser)]
#[command(
    name = "mediaedge",
    version,
    about = "Private media store, edge cache and image resizer in one binary"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve media. Without --config: ./data on 127.0.0.1:8080, memory cache.
    Serve {
        /// TOML config file (see config.example.toml).
        #[arg(long, env = "MEDIAEDGE_CONFIG")]
        config: Option<PathBuf>,
        /// Listen address, overrides server.listen.
        #[arg(long)]
        listen: Option<String>,
        /// Local data directory, overrides storage.path (and sets storage.kind = "local").
        #[arg(long)]
        data: Option<PathBuf>,
        /// Log line format.
        #[arg(long, value_enum, default_value = "text")]
        log_format: LogFormat,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            config,
            listen,
            data,
            log_format,
        } => serve(config, Overrides { listen, data }, log_format),
    }
}

fn serve(config_file: Option<PathBuf>, overrides: Overrides, log_format: LogFormat) -> ExitCode {
    let raw = match config_file.as_deref().map(RawConfig::from_file).transpose() {
        Ok(raw) => raw.unwrap_or_default(),
        Err(e) => return fail(&e),
    };
    let config: Config = match raw.validate(&overrides, &|name| std::env::var(name).ok()) {
        Ok(c) => c,
        Err(e) => return fail(&format!("invalid config: {e}")),
    };
    telemetry::init(log_format);
    let metrics = match metrics::install() {
        Ok(h) => Some(h),
        Err(e) => return fail(&format!("metrics: {e}")),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("runtime: {e}")),
    };
    let result = runtime.block_on(async move {
        let state = server::build_state(config, metrics)?;
        server::run(state).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&format!("server: {e}")),
    }
}

fn fail(msg: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("mediaedge: {msg}");
    ExitCode::from(2)
}
