//! `streamhub user add|list|passwd|del|role`: account administration from the shell, straight on
//! the service's database (WAL + busy timeout make it safe while the service runs).

use std::io::BufRead;

use super::{CliError, Target};
use crate::auth::{Accounts, AuthError, Role, UserChange};
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
}

impl From<AuthError> for CliError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Invalid { .. } => CliError::Usage(e.to_string()),
            other => CliError::Failed(other.to_string()),
        }
    }
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
    let db = target.open()?;
    let accounts = Accounts::new(db);
    match cmd {
        UserCommand::Add {
            name,
            admin,
            password_stdin,
        } => {
            let pw = read_password(password_stdin, true)?;
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
        UserCommand::Passwd {
            name,
            password_stdin,
        } => {
            let pw = read_password(password_stdin, true)?;
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
        UserCommand::Del { name } => {
            accounts.delete_user(&name)?;
            Ok(format!(
                "user {name} deleted with its sessions, tokens and share links"
            ))
        }
    }
}
