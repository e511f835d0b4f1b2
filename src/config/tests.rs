//! Unit tests of loading, layering and validation.

use super::*;

fn no_env() -> Vec<(String, String)> {
    Vec::new()
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn embedded_default_file_equals_code_defaults() {
    let from_file: Config = toml::from_str(DEFAULT_TOML).expect("default toml parses");
    assert_eq!(from_file, Config::default());
    Config::default().validate().expect("defaults are valid");
}

#[test]
fn file_overrides_one_key() {
    let c = Config::from_parts(Some(("f", "[server]\nmax_connections = 7\n")), no_env())
        .expect("valid");
    assert_eq!(c.server.max_connections, 7);
    assert_eq!(c.server.listen, Config::default().server.listen);
}

#[test]
fn a_syntax_error_says_where_on_one_line() {
    let err = Config::from_parts(Some(("f.toml", "[server]\nlisten = [\"a\"\n")), no_env())
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("f.toml: not valid TOML: "), "{err}");
    // The missing `]` is found where the file ends.
    assert!(err.ends_with("(line 3, column 1)"), "{err}");
    assert!(!err.contains('\n'), "{err}");
}

#[test]
fn wrong_type_names_key() {
    let err = Config::from_parts(
        Some(("f", "[server]\nmax_connections = \"lots\"\n")),
        no_env(),
    )
    .unwrap_err();
    assert!(
        err.to_string().starts_with("server.max_connections:"),
        "{err}"
    );
}

#[test]
fn unknown_key_and_section_named() {
    let err = Config::from_parts(Some(("f", "[server]\nbogus = 1\n")), no_env()).unwrap_err();
    assert_eq!(err.to_string(), "server.bogus: unknown key");
    let err = Config::from_parts(Some(("f", "[nope]\na = 1\n")), no_env()).unwrap_err();
    assert_eq!(err.to_string(), "nope: unknown section");
}

#[test]
fn bad_address_names_key() {
    let err = Config::from_parts(Some(("f", "[server]\nlisten = [\"nonsense\"]\n")), no_env())
        .unwrap_err();
    assert!(err.to_string().starts_with("server.listen"), "{err}");
}

#[test]
fn env_overrides_lists_bools_and_numbers() {
    let c = Config::from_parts(
        None,
        env(&[
            ("STREAMHUB_SERVER_LISTEN", "127.0.0.1:0, [::1]:0"),
            ("STREAMHUB_SERVER_TLS_LISTEN", ""),
            ("STREAMHUB_DISCOVERY_ENABLED", "false"),
            ("STREAMHUB_STREAMING_MAX_RANGES", "4"),
            ("STREAMHUB_STORAGE_MEDIA_ROOT", "/srv/media"),
            ("OTHER_VAR", "ignored"),
        ]),
    )
    .expect("valid");
    assert_eq!(c.server.listen.len(), 2);
    assert!(c.server.tls_listen.is_empty());
    assert!(!c.discovery.enabled);
    assert_eq!(c.streaming.max_ranges, 4);
    assert_eq!(c.storage.media_root, PathBuf::from("/srv/media"));
}

#[test]
fn default_with_paths_writes_them_in_and_refuses_relative_ones() {
    let text = default_with_paths(
        Some(PathBuf::from("/var/lib/my \"hub\"")),
        Some(PathBuf::from("/srv/media")),
    )
    .expect("absolute paths");
    let c = Config::from_parts(Some(("f", &text)), env(&[])).expect("valid");
    assert_eq!(c.server.data_dir, PathBuf::from("/var/lib/my \"hub\""));
    assert_eq!(c.storage.media_root, PathBuf::from("/srv/media"));
    assert_eq!(
        default_with_paths(None, None).expect("defaults"),
        DEFAULT_TOML
    );
    let err = default_with_paths(Some(PathBuf::from("data")), None).unwrap_err();
    assert!(err.to_string().starts_with("server.data_dir"), "{err}");
}

#[test]
fn env_beats_file() {
    let c = Config::from_parts(
        Some(("f", "[auth]\nanonymous_read = false\n")),
        env(&[("STREAMHUB_AUTH_ANONYMOUS_READ", "yes")]),
    )
    .expect("valid");
    assert!(c.auth.anonymous_read);
}

#[test]
fn unknown_env_var_is_reported() {
    let err = Config::from_parts(None, env(&[("STREAMHUB_BOGUS", "1")])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "STREAMHUB_BOGUS: unknown streamhub variable"
    );
    let err = Config::from_parts(None, env(&[("STREAMHUB_SERVER_NOPE", "1")])).unwrap_err();
    assert!(err.to_string().starts_with("STREAMHUB_SERVER_NOPE"));
}

#[test]
fn bad_env_values_are_named() {
    let err =
        Config::from_parts(None, env(&[("STREAMHUB_DISCOVERY_ENABLED", "maybe")])).unwrap_err();
    assert!(err.to_string().starts_with("STREAMHUB_DISCOVERY_ENABLED:"));
    let err =
        Config::from_parts(None, env(&[("STREAMHUB_SERVER_LISTEN", "localhost")])).unwrap_err();
    assert!(err.to_string().starts_with("server.listen"), "{err}");
}

#[test]
fn semantic_checks_name_keys() {
    for (text, key) in [
        (
            "[server]\nmax_header_bytes = 100\n",
            "server.max_header_bytes",
        ),
        (
            "[server]\nidle_timeout_secs = 0\n",
            "server.idle_timeout_secs",
        ),
        ("[server]\ntls_cert = \"/x.pem\"\n", "server.tls_cert"),
        ("[streaming]\nmax_ranges = 0\n", "streaming.max_ranges"),
        ("[storage]\nmax_threads = 0\n", "storage.max_threads"),
        ("[storage]\nmax_threads = 65\n", "storage.max_threads"),
        ("[server]\nlisten = []\ntls_listen = []\n", "server.listen"),
        ("[log]\nlevel = \"[[[\"\n", "log.level"),
        ("[quotas]\ntus_uploads = 1000001\n", "quotas.tus_uploads"),
    ] {
        let err = Config::from_parts(Some(("f", text)), no_env()).unwrap_err();
        assert!(err.to_string().starts_with(key), "{text}: {err}");
    }
}

#[test]
fn syntax_error_names_file() {
    let err = Config::from_parts(Some(("my.toml", "[server\n")), no_env()).unwrap_err();
    assert!(
        err.to_string().starts_with("my.toml: not valid TOML"),
        "{err}"
    );
}

#[test]
fn sync_keys_load_from_file_and_env() {
    let key = crate::sync::ClusterKey::generate().to_text();
    let c = Config::from_parts(
        Some((
            "f",
            "[sync]\npeers = [\"office.local:8443\", \"10.0.0.5:9443\", \"[fe80::1]:8443\"]\n",
        )),
        env(&[
            ("STREAMHUB_SYNC_CLUSTER_KEY", &key),
            ("STREAMHUB_DISCOVERY_INTERFACES", "eth0, wlan0"),
            ("STREAMHUB_DISCOVERY_NAME", "living-room"),
        ]),
    )
    .expect("valid");
    assert_eq!(c.sync.peers.len(), 3);
    assert_eq!(c.cluster_key().map(|k| k.to_text()), Some(key.clone()));
    assert_eq!(c.discovery.interfaces, ["eth0", "wlan0"]);
    assert_eq!(c.discovery.name, "living-room");
    // The key never shows in a message about it.
    let err = Config::from_parts(None, env(&[("STREAMHUB_SYNC_CLUSTER_KEY", "x")])).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("sync.cluster_key: not a cluster key"),
        "{err}"
    );
}
