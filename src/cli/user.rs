//! `streamhub user add|list|passwd|del|role|limits`: account administration from the shell, straight on
//! the service's database (WAL + busy timeout make it safe while the service runs).

use std::io::BufRead;

use super::{CliError, Target};
use crate::auth::{Accounts, AuthError, Limits, LimitsChange, Role, UserChange};
use crate::storage::errno_message;

#[derive(Debug)]
pub enum UserCommand {
    Add {
        name: String,
        admin: bool,
        password_stdin: bool,
    },
    List,
    Passwd {
        name: String,
        password_stdin: bool,
    },
    Del {
        name: String,
    },
    /// `admin` or `member`.
    Role {
        name: String,
        role: String,
    },
    /// Each: a number of bytes or uploads, `unlimited` (0) or `default` (the config's);
    /// None leaves that limit as it is.
    Limits {
        name: String,
        media_bytes: Option<String>,
        tus_uploads: Option<String>,
        notes_bytes: Option<String>,
    },
}

/// One `--media-bytes` (etc.) value: `Some(n)` sets, `None` goes back to the default.
fn limit_arg(flag: &str, v: &str) -> Result<Option<u64>, CliError> {
    match v.trim() {
        "default" | "none" => Ok(None),
        "unlimited" => Ok(Some(0)),
        n => n.parse().map(Some).map_err(|_| {
            CliError::Usage(format!(
                "{flag}: a whole number, unlimited or default, not {v:?}"
            ))
        }),
    }
}

/// `media_bytes<TAB>1000`, `tus_uploads<TAB>20 (default)`: what applies and where from.
fn show_limits(name: &str, own: &Limits, defaults: Option<&crate::config::QuotasConfig>) -> String {
    let shown = |v: u64| {
        if v == 0 {
            "unlimited".to_string()
        } else {
            v.to_string()
        }
    };
    let mut out = format!("limits of {name}:");
    for (key, own, default) in [
        (
            "media_bytes",
            own.media_bytes,
            defaults.map(|d| d.media_bytes),
        ),
        (
            "tus_uploads",
            own.tus_uploads,
            defaults.map(|d| d.tus_uploads),
        ),
        (
            "notes_bytes",
            own.notes_bytes,
            defaults.map(|d| d.notes_bytes),
        ),
    ] {
        let value = match (own, default) {
            (Some(v), _) => shown(v),
            (None, Some(d)) => format!("{} (default)", shown(d)),
            (None, None) => "default (the config does not load)".to_string(),
        };
        out.push_str(&format!("\n{key}\t{value}"));
    }
    out
}

impl From<AuthError> for CliError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Invalid { .. } => CliError::Usage(e.to_string()),
            other => CliError::Failed(other.to_string()),
        }
    }
}

/// A password the accounts would refuse is refused before the database is touched.
fn checked(pw: String) -> Result<String, CliError> {
    crate::auth::validate_password(&pw)?;
    Ok(pw)
}

fn read_password(from_stdin: bool, confirm: bool) -> Result<String, CliError> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).map_err(|e| {
            CliError::Failed(format!(
                "cannot read the password from stdin: {}",
                errno_message(&e)
            ))
        })?;
        let pw = line
            .strip_suffix('\n')
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .unwrap_or(&line);
        return Ok(pw.to_string());
    }
    let ask = |prompt: &str| {
        rpassword::prompt_password(prompt).map_err(|e| {
            CliError::Usage(format!(
                "cannot ask for a password ({}); use --password-stdin",
                errno_message(&e)
            ))
        })
    };
    let pw = ask("password: ")?;
    if confirm && ask("again: ")? != pw {
        return Err(CliError::Usage("password: the two entries differ".into()));
    }
    Ok(pw)
}

/// Runs one command; the returned text goes to stdout.
pub fn run(target: &Target, cmd: UserCommand) -> Result<String, CliError> {
    // Bad input is reported before anything is opened or asked for.
    if let UserCommand::Add { name, .. } = &cmd {
        crate::auth::validate_name(name)?;
    }
    let new_role = match &cmd {
        UserCommand::Role { role, .. } => Some(
            Role::parse(role)
                .ok_or_else(|| CliError::Usage(format!("role: admin or member, not {role:?}")))?,
        ),
        _ => None,
    };
    let limits = match &cmd {
        UserCommand::Limits {
            media_bytes,
            tus_uploads,
            notes_bytes,
            ..
        } => {
            let arg =
                |flag, v: &Option<String>| v.as_deref().map(|v| limit_arg(flag, v)).transpose();
            let change = LimitsChange {
                media_bytes: arg("--media-bytes", media_bytes)?,
                tus_uploads: arg("--tus-uploads", tus_uploads)?,
                notes_bytes: arg("--notes-bytes", notes_bytes)?,
            };
            change.validate()?;
            change
        }
        _ => LimitsChange::default(),
    };
    // A database that is there is opened (and, like any command, migrated) first, so that a
    // name taken, a user that is not there or a missing database is said before anyone types
    // a password twice. One that `--init` would create is made only after a good password:
    // a run with no terminal, or a refused password, must not leave an empty database behind.
    let opened = if target.init && !target.db_path().exists() {
        if let UserCommand::Passwd { name, .. } = &cmd {
            return Err(AuthError::NoSuchUser(name.clone()).into());
        }
        None
    } else {
        Some(Accounts::new(target.open()?))
    };
    let password = match &cmd {
        UserCommand::Add {
            name,
            password_stdin,
            ..
        } => {
            crate::auth::validate_name(name)?;
            if let Some(accounts) = &opened {
                if accounts.limits_of(name).is_ok() {
                    return Err(AuthError::UserExists(name.clone()).into());
                }
            }
            Some(checked(read_password(*password_stdin, true)?)?)
        }
        UserCommand::Passwd {
            name,
            password_stdin,
        } => {
            if let Some(accounts) = &opened {
                accounts.limits_of(name)?;
            }
            Some(checked(read_password(*password_stdin, true)?)?)
        }
        _ => None,
    };
    let accounts = match opened {
        Some(a) => a,
        None => Accounts::new(target.open()?),
    };
    match cmd {
        UserCommand::Add { name, admin, .. } => {
            let pw = password.unwrap_or_default();
            let role = if admin { Role::Admin } else { Role::Member };
            let user = accounts.add_user(&name, &pw, role)?;
            Ok(format!("user {} added ({})", user.name, user.role.as_str()))
        }
        UserCommand::List => {
            let mut out = String::new();
            for u in accounts.list_users()? {
                let created = std::time::UNIX_EPOCH
                    + std::time::Duration::from_secs(u.created_at.max(0) as u64);
                out.push_str(&format!(
                    "{}\t{}\t{}\n",
                    u.name,
                    u.role.as_str(),
                    humantime::format_rfc3339_seconds(created)
                ));
            }
            Ok(out.trim_end().to_string())
        }
        UserCommand::Passwd { name, .. } => {
            let pw = password.unwrap_or_default();
            accounts.set_password(&name, &pw)?;
            Ok(format!(
                "password of {name} changed; its sessions were ended"
            ))
        }
        UserCommand::Role { name, .. } => {
            let user = accounts.change_user(
                &name,
                UserChange {
                    role: new_role,
                    ..UserChange::default()
                },
            )?;
            Ok(format!("user {} is now {}", user.name, user.role.as_str()))
        }
        UserCommand::Limits { name, .. } => {
            // Without flags it only shows them.
            let (user, own) = if limits.is_empty() {
                accounts.limits_of(&name)?
            } else {
                accounts.set_limits(&name, limits)?
            };
            Ok(show_limits(&user.name, &own, target.quotas()))
        }
        UserCommand::Del { name } => {
            accounts.delete_user(&name)?;
            Ok(format!(
                "user {name} deleted with its sessions, tokens and share links"
            ))
        }
    }
}
