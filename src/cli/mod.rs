//! Offline commands run from a shell next to the service (`user`, `notes`, `backup`): they
//! work on the service's own database, found the way the service finds it, and never on a
//! new, empty one made by accident in whatever folder the shell happens to be in.

pub mod config_check;
mod copy_location;
mod copy_progress;
pub mod data;
pub mod peers;
pub mod storage_copy;
pub mod user;

use std::path::{Path, PathBuf};

use crate::config::{Config, ConfigError};
use crate::db::{Db, DB_FILE};
use crate::storage::errno_message;

/// The configuration an installed service reads (`scripts/install.sh`, the Yocto recipe).
pub const SYSTEM_CONFIG: &str = "/etc/streamhub/streamhub.toml";

/// What went wrong, and the exit code that goes with it.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad input: exit 2.
    #[error("{0}")]
    Usage(String),
    /// The operation failed: exit 1.
    #[error("{0}")]
    Failed(String),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => 2,
            CliError::Failed(_) => 1,
        }
    }
}

/// The file the configuration is read from: `--config`, else the system file if there is one.
pub fn config_file(given: Option<PathBuf>) -> Option<PathBuf> {
    let system = PathBuf::from(SYSTEM_CONFIG);
    given.or_else(|| system.exists().then_some(system))
}

/// The configuration as `serve` would load it: `--config`, else the system file if there is
/// one, else the built-in defaults; `STREAMHUB_*` variables over either. Also says which file
/// was read.
pub fn load_config(file: Option<PathBuf>) -> Result<(Config, Option<PathBuf>), ConfigError> {
    let file = config_file(file);
    let cfg = Config::load(file.as_deref(), std::env::vars())?;
    Ok((cfg, file))
}

/// The data dir an offline command works on, where that choice came from, and whether it may
/// create a new database there (`--init`).
#[derive(Debug)]
pub struct Target {
    dir: PathBuf,
    origin: String,
    init: bool,
    /// The `[quotas]` defaults the service would use (None: the config does not load), for
    /// showing which limits apply.
    quotas: Option<crate::config::QuotasConfig>,
}

impl Target {
    /// `--data-dir` wins; otherwise `server.data_dir` as the service would read it.
    pub fn locate(
        config: Option<PathBuf>,
        data_dir: Option<PathBuf>,
        init: bool,
    ) -> Result<Target, CliError> {
        let (dir, origin, quotas) = match data_dir {
            // The config matters here only for the quota defaults shown: a broken one is no
            // reason to refuse a command given the data dir.
            Some(d) => (
                d,
                "--data-dir".to_string(),
                load_config(config).ok().map(|(c, _)| c.quotas),
            ),
            None => {
                let (cfg, file) =
                    load_config(config).map_err(|e| CliError::Usage(e.to_string()))?;
                let env_key = format!("{}SERVER_DATA_DIR", crate::config::ENV_PREFIX);
                let origin = if std::env::var_os(&env_key).is_some() {
                    env_key
                } else if let Some(f) = file {
                    format!("server.data_dir in {}", f.display())
                } else {
                    format!("the built-in server.data_dir; there is no {SYSTEM_CONFIG}")
                };
                (cfg.server.data_dir, origin, Some(cfg.quotas))
            }
        };
        // Named in full in every message: a relative path is what misled people before.
        let dir = std::path::absolute(&dir).unwrap_or(dir);
        Ok(Target {
            dir,
            origin,
            init,
            quotas,
        })
    }

    pub fn quotas(&self) -> Option<&crate::config::QuotasConfig> {
        self.quotas.as_ref()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.join(DB_FILE)
    }

    /// The database file, which must exist (for commands that only read it).
    pub fn existing_db(&self) -> Result<PathBuf, CliError> {
        self.local_fs()?;
        let path = self.db_path();
        match std::fs::symlink_metadata(&path) {
            Ok(_) => {
                self.announce();
                Ok(path)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(self.missing()),
            Err(e) => Err(CliError::Failed(format!(
                "{}: {}",
                path.display(),
                errno_message(&e)
            ))),
        }
    }

    /// Opens (and migrates) the database; creates it, with its folder, only with `--init`.
    pub fn open(&self) -> Result<Db, CliError> {
        if self.init {
            self.local_fs()?;
            create_private_dir(&self.dir).map_err(|e| {
                CliError::Failed(format!(
                    "cannot create {}: {}",
                    self.dir.display(),
                    errno_message(&e)
                ))
            })?;
            self.announce();
        } else {
            self.existing_db()?;
        }
        Db::open(&self.dir).map_err(|e| CliError::Failed(e.to_string()))
    }

    /// Refuses a data dir on a network or FUSE filesystem as `serve` does, in its words,
    /// before SQLite touches anything (it would fail halfway, leaving `-journal`/`-wal` files).
    fn local_fs(&self) -> Result<(), CliError> {
        crate::start_storage::check_data_dir_fs(&self.dir)
            .map_err(|e| CliError::Failed(e.to_string()))
    }

    /// Which database this run uses, on stderr (stdout stays the command's output).
    fn announce(&self) {
        eprintln!("database: {} ({})", self.db_path().display(), self.origin);
    }

    fn missing(&self) -> CliError {
        CliError::Usage(format!(
            "no database at {} (data dir from {}). The service creates it on its first \
             start: point this command at the service's data dir with --data-dir DIR or \
             --config FILE, or pass --init to create a new, empty database there",
            self.db_path().display(),
            self.origin
        ))
    }
}

/// Makes `dir` (and missing parents) if it is not there; it is 0700 either way, like the
/// one the service keeps, whatever the umask.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if let Ok(md) = std::fs::metadata(dir) {
        if md.is_dir() && md.permissions().mode() & 0o077 != 0 {
            // As the service does at start: the data dir holds password hashes.
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}
