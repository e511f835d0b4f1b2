//! The `streamhub` binary: command line, config, logging and the runtime; the service itself
//! (listeners included) is `streamhub::serve`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use streamhub::config::{Config, DEFAULT_TOML};
use streamhub::user_cli::UserCommand;

const SYSTEM_CONFIG: &str = "/etc/streamhub/streamhub.toml";

#[derive(Parser)]
#[command(
    name = "streamhub",
    version,
    about = "Media streaming and notes for small Linux boxes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service.
    Serve {
        #[arg(long)]
        config: Option<PathBuf>,
        /// Plain HTTP address (repeatable). Given here, it replaces both configured lists.
        #[arg(long = "listen", value_name = "ADDR")]
        listen: Vec<SocketAddr>,
        /// HTTPS address (repeatable). Given here, it replaces both configured lists.
        #[arg(long = "tls-listen", value_name = "ADDR")]
        tls_listen: Vec<SocketAddr>,
        #[arg(long, value_name = "DIR")]
        media_root: Option<PathBuf>,
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// Do not advertise or discover peers on the LAN.
        #[arg(long)]
        no_discovery: bool,
    },
    /// Show or check the configuration.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Copy the database consistently (safe while the service runs).
    Backup {
        dest: PathBuf,
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Export or import notes.
    Notes {
        #[arg(long, global = true)]
        config: Option<PathBuf>,
        #[arg(long, global = true, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        #[command(subcommand)]
        action: NotesAction,
    },
    /// Manage user accounts (safe while the service runs).
    User {
        #[arg(long, global = true)]
        config: Option<PathBuf>,
        #[arg(long, global = true, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        #[command(subcommand)]
        action: UserAction,
    },
}

#[derive(Subcommand)]
enum NotesAction {
    /// Write every note as Markdown (DIR/notes/) and every revision as JSON lines.
    Export { dir: PathBuf },
    /// Replay an export's revisions into this node (idempotent).
    Import {
        dir: PathBuf,
        /// Give the notes of the export's user OLD to the local user NEW (repeatable).
        #[arg(long = "owner-map", value_name = "OLD=NEW")]
        owner_map: Vec<String>,
    },
}

#[derive(Subcommand)]
enum UserAction {
    /// Add a user (a member unless --admin).
    Add {
        name: String,
        #[arg(long)]
        admin: bool,
        /// Read the password from the first line of stdin.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users.
    List,
    /// Change a user's password (ends its sessions).
    Passwd {
        name: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Delete a user with its sessions, tokens and share links.
    Del { name: String },
}

#[derive(Subcommand)]
enum ConfigAction {
    /// Print the commented default configuration.
    Default,
    /// Validate the configuration (file + STREAMHUB_* variables).
    Check {
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

fn load_config(file: Option<PathBuf>) -> Result<Config, streamhub::config::ConfigError> {
    let system = PathBuf::from(SYSTEM_CONFIG);
    let file = file.or_else(|| system.exists().then_some(system));
    Config::load(file.as_deref(), std::env::vars())
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Config {
            action: ConfigAction::Default,
        } => {
            print!("{DEFAULT_TOML}");
            ExitCode::SUCCESS
        }
        Command::Config {
            action: ConfigAction::Check { config },
        } => match load_config(config) {
            Ok(cfg) => {
                let problems = streamhub::preflight::check(&cfg);
                if problems.is_empty() {
                    println!("config ok");
                    return ExitCode::SUCCESS;
                }
                for p in problems {
                    eprintln!("error: {p}");
                }
                ExitCode::from(2)
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        Command::User {
            config,
            data_dir,
            action,
        } => run_user(config, data_dir, action),
        Command::Backup {
            dest,
            config,
            data_dir,
        } => with_data_dir(config, data_dir, |dir| {
            streamhub::admin_cli::backup(dir, &dest)
        }),
        Command::Notes {
            config,
            data_dir,
            action,
        } => with_data_dir(config, data_dir, |dir| match &action {
            NotesAction::Export { dir: out } => streamhub::admin_cli::export(dir, out),
            NotesAction::Import {
                dir: from,
                owner_map,
            } => streamhub::admin_cli::import(dir, from, owner_map),
        }),
        Command::Serve {
            config,
            listen,
            tls_listen,
            media_root,
            data_dir,
            no_discovery,
        } => {
            let mut cfg = match load_config(config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            if !listen.is_empty() || !tls_listen.is_empty() {
                cfg.server.listen = listen;
                cfg.server.tls_listen = tls_listen;
            }
            if let Some(m) = media_root {
                cfg.storage.media_root = m;
            }
            if let Some(d) = data_dir {
                cfg.server.data_dir = d;
            }
            if no_discovery {
                cfg.discovery.enabled = false;
            }
            streamhub::telemetry::init(&cfg.log.level);
            match serve(cfg) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Runs an offline command against the data dir from `--data-dir` or the config.
fn with_data_dir(
    config: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    f: impl FnOnce(&std::path::Path) -> Result<String, streamhub::user_cli::CliError>,
) -> ExitCode {
    let dir = match data_dir {
        Some(d) => d,
        None => match load_config(config) {
            Ok(c) => c.server.data_dir,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        },
    };
    match f(&dir) {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn run_user(config: Option<PathBuf>, data_dir: Option<PathBuf>, action: UserAction) -> ExitCode {
    let cfg = match load_config(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let dir = data_dir.unwrap_or(cfg.server.data_dir);
    let cmd = match action {
        UserAction::Add {
            name,
            admin,
            password_stdin,
        } => UserCommand::Add {
            name,
            admin,
            password_stdin,
        },
        UserAction::List => UserCommand::List,
        UserAction::Passwd {
            name,
            password_stdin,
        } => UserCommand::Passwd {
            name,
            password_stdin,
        },
        UserAction::Del { name } => UserCommand::Del { name },
    };
    match streamhub::user_cli::run(&dir, cmd) {
        Ok(out) => {
            if !out.is_empty() {
                println!("{out}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Builds the runtime and hands over to the library (`streamhub::serve`), which prepares the
/// service, announces the listeners and serves until SIGTERM or SIGINT.
fn serve(cfg: Config) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // Storage calls wait on disks or NFS here; bounded so a hung mount cannot grow
        // threads without limit (calls then time out as 503 instead).
        .max_blocking_threads(128)
        .build()
        .context("cannot start the async runtime")?;
    // How it ended (tasks that outlived the grace period) is logged by the library.
    let served = rt.block_on(streamhub::serve(cfg));
    // Dropping a runtime waits for every blocking thread; one stuck in the kernel (a hung
    // NFS server, a FIFO someone put in the media root) would keep the process from ever
    // exiting. Give what runs there (an upload's last fsync) a moment, then go.
    rt.shutdown_timeout(std::time::Duration::from_secs(5));
    let _stopped = served?;
    Ok(())
}
