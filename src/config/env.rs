//! `STREAMHUB_<SECTION>_<KEY>` environment overrides, applied over the defaults and the file:
//! the type of each key's default decides how the string is read (lists are comma-separated,
//! booleans true/false/1/0/yes/no/on/off). Unknown `STREAMHUB_*` variables are errors.

use std::collections::BTreeMap;

use super::{invalid, ConfigError};

/// Prefix of every environment override.
pub const ENV_PREFIX: &str = "STREAMHUB_";

/// Applies `STREAMHUB_<SECTION>_<KEY>` variables; the type of each key's default decides how
/// the string is read (lists are comma-separated).
pub(super) fn apply(
    merged: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    let vars: BTreeMap<String, String> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX))
        .collect();
    for (var, raw) in vars {
        let rest = var[ENV_PREFIX.len()..].to_ascii_lowercase();
        let unknown = || {
            let hint = super::suggest::closest(&rest, known(merged).iter().map(String::as_str))
                .map(|h| format!("{ENV_PREFIX}{}", h.to_ascii_uppercase()));
            invalid(
                &var,
                super::suggest::with_hint("unknown streamhub variable", hint),
            )
        };
        let Some((section, key)) = rest.split_once('_') else {
            return Err(unknown());
        };
        let Some(toml::Value::Table(target)) = merged.get(section) else {
            return Err(unknown());
        };
        let Some(current) = target.get(key) else {
            return Err(unknown());
        };
        let value = env_value(&var, current, &raw)?;
        if let Some(toml::Value::Table(target)) = merged.get_mut(section) {
            target.insert(key.to_string(), value);
        }
    }
    Ok(())
}

/// Every `<section>_<key>` a variable can name.
fn known(merged: &toml::Table) -> Vec<String> {
    merged
        .iter()
        .filter_map(|(section, v)| v.as_table().map(|t| (section, t)))
        .flat_map(|(section, t)| t.keys().map(move |k| format!("{section}_{k}")))
        .collect()
}

fn env_value(var: &str, like: &toml::Value, raw: &str) -> Result<toml::Value, ConfigError> {
    use toml::Value;
    Ok(match like {
        Value::Array(_) => Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.to_string()))
                .collect(),
        ),
        Value::Boolean(_) => Value::Boolean(match raw.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => true,
            "false" | "0" | "no" | "off" => false,
            _ => {
                return Err(invalid(
                    var,
                    format!("'{raw}' is not a boolean (true/false, yes/no, on/off, 1/0)"),
                ))
            }
        }),
        Value::Integer(_) => Value::Integer(
            raw.trim()
                .parse()
                .map_err(|_| invalid(var, format!("'{raw}' is not a whole number")))?,
        ),
        _ => Value::String(raw.to_string()),
    })
}
