//! The `streamhub` binary: command line, config, logging and the runtime; the service itself
//! (listeners included) is `streamhub::serve`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use streamhub::cli::config_check;
use streamhub::cli::user::UserCommand;
use streamhub::cli::{CliError, Target};
use streamhub::config::Config;

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
        /// Configuration file (default: /etc/streamhub/streamhub.toml if it exists, else
        /// the built-in defaults; `config default` prints them).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Plain HTTP address (repeatable). Given here, it replaces both configured lists.
        #[arg(long = "listen", value_name = "ADDR", value_parser = listen_addr)]
        listen: Vec<SocketAddr>,
        /// HTTPS address (repeatable). Given here, it replaces both configured lists.
        #[arg(long = "tls-listen", value_name = "ADDR", value_parser = listen_addr)]
        tls_listen: Vec<SocketAddr>,
        /// The media folder served and indexed (over `storage.media_root`; built-in: ./media).
        #[arg(long, value_name = "DIR")]
        media_root: Option<PathBuf>,
        /// Where the database, certificate, thumbnails and sync identity live (over
        /// `server.data_dir`; built-in: ./data).
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
        /// Create a new, empty database if there is none (e.g. to import into a new box).
        #[arg(long, global = true)]
        init: bool,
        #[command(subcommand)]
        action: NotesAction,
    },
    /// Cluster keys: `cluster new` prints a new one for `sync.cluster_key`.
    Cluster {
        #[command(subcommand)]
        action: ClusterAction,
    },
    /// Show the LAN peers the running service knows of (read from its data dir).
    Peers {
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Media storage: `storage copy` moves a library between backends.
    Storage {
        #[command(subcommand)]
        action: StorageAction,
    },
    /// Manage user accounts (safe while the service runs).
    User {
        #[arg(long, global = true)]
        config: Option<PathBuf>,
        #[arg(long, global = true, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// Create a new, empty database if there is none (e.g. the first admin before the
        /// first start).
        #[arg(long, global = true)]
        init: bool,
        #[command(subcommand)]
        action: UserAction,
    },
}

#[derive(Subcommand)]
enum StorageAction {
    /// Copy a library (files, folders, identity marker) between backends; resumable:
    /// identical files already there are skipped, different ones reported, never replaced.
    Copy {
        /// Where the library is: local:/path or s3://bucket/prefix ([s3] gives the endpoint
        /// and credentials).
        #[arg(long, value_name = "LOCATION")]
        from: String,
        /// Where it goes: local:/path or s3://bucket/prefix.
        #[arg(long, value_name = "LOCATION")]
        to: String,
        /// List what would be copied, and the total, without writing anything.
        #[arg(long)]
        dry_run: bool,
        /// Copy only the identity marker (.streamhub-root), no file: marks a bucket or
        /// folder that already holds this library (the upgrade in docs/DEPLOY.md).
        #[arg(long)]
        marker_only: bool,
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ClusterAction {
    /// Print a new cluster key (one line; put the same key on every box of the cluster).
    New,
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
    /// Make a user an admin or a member (the last admin cannot be demoted).
    Role {
        name: String,
        #[arg(value_parser = ["admin", "member"])]
        role: String,
    },
    /// Show or set a user's limits: a number, `unlimited`, or `default` (the [quotas] one).
    Limits {
        name: String,
        /// Bytes of media (files, trash, unfinished uploads).
        #[arg(long, value_name = "N")]
        media_bytes: Option<String>,
        /// Unfinished resumable uploads at once.
        #[arg(long, value_name = "N")]
        tus_uploads: Option<String>,
        /// Bytes of notes.
        #[arg(long, value_name = "N")]
        notes_bytes: Option<String>,
    },
}

#[derive(Subcommand)]
enum ConfigAction {
    /// Print the commented default configuration.
    Default {
        /// Write this data dir into it (an installer's real path).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// Write this media root into it.
        #[arg(long, value_name = "DIR")]
        media_root: Option<PathBuf>,
    },
    /// Validate the configuration (file + STREAMHUB_* variables).
    Check {
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

fn load_config(file: Option<PathBuf>) -> Result<Config, streamhub::config::ConfigError> {
    streamhub::cli::load_config(file).map(|(cfg, _)| cfg)
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Config {
            action:
                ConfigAction::Default {
                    data_dir,
                    media_root,
                },
        } => match streamhub::config::default_with_paths(data_dir, media_root) {
            Ok(text) => print_out(text.trim_end_matches('\n')),
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        Command::Config {
            action: ConfigAction::Check { config },
        } => match streamhub::cli::load_config(config.clone()) {
            Ok((cfg, file)) => {
                eprintln!("note: {}", config_check::sources(file.as_deref()));
                let problems = streamhub::preflight::check(&cfg);
                for w in streamhub::preflight::warnings(&cfg) {
                    eprintln!("warning: {w}");
                }
                if problems.is_empty() {
                    config_check::notes(&cfg);
                    return print_out("config ok");
                }
                for p in problems {
                    eprintln!("error: {p}");
                }
                ExitCode::from(2)
            }
            Err(e) => {
                eprintln!("error: {e}");
                let file = streamhub::cli::config_file(config);
                eprintln!("note: {}", config_check::sources(file.as_deref()));
                ExitCode::from(2)
            }
        },
        Command::User {
            config,
            data_dir,
            init,
            action,
        } => offline(Target::locate(config, data_dir, init), |t| {
            streamhub::cli::user::run(t, user_command(action))
        }),
        Command::Storage {
            action:
                StorageAction::Copy {
                    from,
                    to,
                    dry_run,
                    marker_only,
                    config,
                },
        } => match load_config(config) {
            Ok(cfg) => offline(Ok(()), |_| {
                streamhub::cli::storage_copy::run(&cfg, &from, &to, dry_run, marker_only)
            }),
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        Command::Cluster {
            action: ClusterAction::New,
        } => print_out(&streamhub::cli::peers::cluster_new()),
        Command::Peers {
            config,
            data_dir,
            json,
        } => offline(Target::locate(config, data_dir, false), |t| {
            streamhub::cli::peers::peers(t, json)
        }),
        Command::Backup {
            dest,
            config,
            data_dir,
        } => offline(Target::locate(config, data_dir, false), |t| {
            streamhub::cli::data::backup(t, &dest)
        }),
        Command::Notes {
            config,
            data_dir,
            init,
            action,
        } => offline(Target::locate(config, data_dir, init), |t| match &action {
            NotesAction::Export { dir: out } => streamhub::cli::data::export(t, out),
            NotesAction::Import {
                dir: from,
                owner_map,
            } => streamhub::cli::data::import(t, from, owner_map),
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
            // Dropped after the last line below: what is queued is written before exit.
            let log = streamhub::telemetry::init(&cfg.log.level);
            match serve(cfg) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    // Said once: `error:` on a terminal, else the log's line (stderr or journald).
                    if log.is_none() || std::io::IsTerminal::is_terminal(&std::io::stderr()) {
                        eprintln!("error: {e:#}");
                    } else {
                        tracing::error!("{e:#}");
                    }
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// A listener address, with a message that says what is wanted (an empty `--tls-listen ''`,
/// meant as "no HTTPS", is the usual mistake: giving `--listen` alone already means that).
fn listen_addr(text: &str) -> Result<SocketAddr, String> {
    text.parse().map_err(|_| {
        let hint = if text.trim().is_empty() {
            "; to serve no HTTPS, leave --tls-listen out and give --listen alone"
        } else {
            ""
        };
        format!("expected IP:PORT such as 127.0.0.1:8443 or [::]:8443{hint}")
    })
}

/// Prints a command's output. A reader that went away (`streamhub peers | head -1`) is not an
/// error, and never a panic as `println!` would make it; any other failure to write is.
fn print_out(out: &str) -> ExitCode {
    use std::io::Write;
    match writeln!(std::io::stdout().lock(), "{out}") {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: cannot write the output: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs an offline command on the service's database; its output goes to stdout, the
/// database it used and any error to stderr.
fn offline<T>(
    target: Result<T, CliError>,
    f: impl FnOnce(&T) -> Result<String, CliError>,
) -> ExitCode {
    match target.and_then(|t| f(&t)) {
        Ok(out) if out.is_empty() => ExitCode::SUCCESS,
        Ok(out) => print_out(&out),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn user_command(action: UserAction) -> UserCommand {
    match action {
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
        UserAction::Role { name, role } => UserCommand::Role { name, role },
        UserAction::Limits {
            name,
            media_bytes,
            tus_uploads,
            notes_bytes,
        } => UserCommand::Limits {
            name,
            media_bytes,
            tus_uploads,
            notes_bytes,
        },
    }
}

/// Builds the runtime and hands over to the library (`streamhub::serve`), which prepares the
/// service, announces the listeners and serves until SIGTERM or SIGINT.
fn serve(cfg: Config) -> anyhow::Result<()> {
    streamhub::memory::tune();
    streamhub::open_files::raise();
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
