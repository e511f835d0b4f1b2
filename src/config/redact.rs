//! The effective configuration as an admin may see it (`GET /api/config`): the same
//! structure as the TOML file, with every secret value replaced by `"<redacted>"`.
//!
//! Secrets are named in [`SECRET_KEYS`]; as a second line of defence any key whose name
//! looks like a secret (`secret`, `password`, `token`, `cluster_key`) is blanked too, and a
//! unit test fails when such a key exists without being listed, so a new key cannot leak
//! through this page by being forgotten.

use serde_json::Value;

use super::Config;

/// Dotted keys whose values are secrets.
pub const SECRET_KEYS: &[&str] = &[
    "sync.cluster_key",
    "s3.secret_access_key",
    // A path, not a secret, but named like one: listed so the rule stays simple.
    "s3.secret_access_key_file",
];

/// What a secret value is replaced by.
pub const REDACTED: &str = "<redacted>";

/// Parts of a key name that mark it as a secret.
const SECRET_WORDS: &[&str] = &["secret", "password", "token", "cluster_key"];

/// Whether a key's own name (the last part of a dotted key) looks like a secret.
pub fn looks_secret(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|w| name.contains(w))
}

/// A configuration as JSON with its secrets blanked, and the dotted keys that were.
#[derive(Debug, Clone, PartialEq)]
pub struct Redacted {
    pub config: Value,
    pub redacted: Vec<String>,
}

/// The effective configuration with secrets blanked.
pub fn redacted(config: &Config) -> Result<Redacted, serde_json::Error> {
    Ok(redact(serde_json::to_value(config)?, SECRET_KEYS))
}

/// Blanks the values at `keys` (dotted) and at every key that [`looks_secret`], when they
/// are not empty (an empty value says "not set", which is no secret).
pub fn redact(mut config: Value, keys: &[&str]) -> Redacted {
    let mut redacted = Vec::new();
    walk(&mut config, "", keys, &mut redacted);
    redacted.sort();
    redacted.dedup();
    Redacted { config, redacted }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Bool(_) | Value::Number(_) => false,
    }
}

fn walk(v: &mut Value, prefix: &str, keys: &[&str], out: &mut Vec<String>) {
    let Value::Object(map) = v else {
        return;
    };
    for (name, child) in map.iter_mut() {
        let dotted = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        let secret = keys.contains(&dotted.as_str()) || looks_secret(name);
        if secret {
            if !is_empty(child) {
                *child = Value::String(REDACTED.to_string());
                out.push(dotted);
            }
        } else {
            walk(child, &dotted, keys, out);
        }
    }
}

/// Every dotted key of a JSON object, leaves and sections alike.
#[cfg(test)]
fn all_keys(v: &Value, prefix: &str, out: &mut Vec<String>) {
    if let Value::Object(map) = v {
        for (name, child) in map {
            let dotted = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}.{name}")
            };
            out.push(dotted.clone());
            all_keys(child, &dotted, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A key that looks like a secret must be listed in `SECRET_KEYS`, so that leaving one
    /// out is a failing test rather than a leak (the runtime net catches it too, but the
    /// list is what the docs and reviewers read).
    #[test]
    fn every_secret_looking_key_is_listed() {
        let value = serde_json::to_value(Config::default()).unwrap();
        let mut keys = Vec::new();
        all_keys(&value, "", &mut keys);
        assert!(keys.contains(&"server.tls_key".to_string()), "{keys:?}");
        for key in &keys {
            let name = key.rsplit('.').next().unwrap_or(key);
            if looks_secret(name) {
                assert!(
                    SECRET_KEYS.contains(&key.as_str()),
                    "config key {key} looks secret: add it to config::redact::SECRET_KEYS"
                );
            }
        }
        for listed in SECRET_KEYS {
            assert!(
                keys.iter().any(|k| k == listed),
                "{listed} is listed as a secret but is no config key"
            );
        }
    }

    #[test]
    fn listed_and_secret_looking_values_are_blanked_when_set() {
        let v = json!({
            "s3": {"secret_access_key": "hunter2", "bucket": "media"},
            "sync": {"cluster_key": "k", "peers": ["a"]},
            "auth": {"api_token": "", "Admin_Password": "pw", "session_days": 14},
            "odd": {"signing": {"key": 7}},
            "top_token": null,
        });
        let r = redact(v, &["odd.signing.key"]);
        assert_eq!(
            r.redacted,
            vec![
                "auth.Admin_Password",
                "odd.signing.key",
                "s3.secret_access_key",
                "sync.cluster_key"
            ]
        );
        assert_eq!(r.config["s3"]["secret_access_key"], REDACTED);
        assert_eq!(r.config["s3"]["bucket"], "media");
        assert_eq!(r.config["sync"]["cluster_key"], REDACTED);
        assert_eq!(r.config["sync"]["peers"], json!(["a"]));
        assert_eq!(
            r.config["auth"]["api_token"], "",
            "an unset secret stays empty"
        );
        assert_eq!(r.config["auth"]["Admin_Password"], REDACTED);
        assert_eq!(r.config["auth"]["session_days"], 14);
        assert_eq!(r.config["odd"]["signing"]["key"], REDACTED);
        assert_eq!(r.config["top_token"], Value::Null);
        let text = r.config.to_string();
        assert!(
            !text.contains("hunter2") && !text.contains("\"pw\""),
            "{text}"
        );
    }

    #[test]
    fn the_default_config_has_the_toml_structure() {
        let r = redacted(&Config::default()).unwrap();
        assert!(r.redacted.is_empty());
        assert_eq!(r.config["storage"]["trash_days"], 30);
        assert!(r.config["server"]["listen"].is_array());
        assert!(r.config["auth"]["anonymous_read"].is_boolean());
    }
}
