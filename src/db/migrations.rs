//! The one ordered list of the database's migrations: numbered SQL files in
//! `src/db/migrations/`, embedded at build time. Migration N sets `user_version` to N.
//!
//! Released files are append-only: a database that has applied N never runs it again, so
//! editing or reordering one would leave old and new databases with different schemas. The
//! test below pins each file's SHA-256; a new table (notes, sync, …) is a new file at the end,
//! whichever module owns it.

use rusqlite_migration::{Migrations, M};

/// `(file name, SQL)`, in version order: the entry at index i is version i + 1.
pub(crate) const FILES: &[(&str, &str)] = &[
    (
        "0001_accounts.sql",
        include_str!("migrations/0001_accounts.sql"),
    ),
    ("0002_notes.sql", include_str!("migrations/0002_notes.sql")),
    (
        "0003_notes_fts.sql",
        include_str!("migrations/0003_notes_fts.sql"),
    ),
    (
        "0004_notes_tags.sql",
        include_str!("migrations/0004_notes_tags.sql"),
    ),
    (
        "0005_notes_events.sql",
        include_str!("migrations/0005_notes_events.sql"),
    ),
    (
        "0006_library.sql",
        include_str!("migrations/0006_library.sql"),
    ),
    (
        "0007_tus_uploads.sql",
        include_str!("migrations/0007_tus_uploads.sql"),
    ),
    (
        "0008_tus_staged_key.sql",
        include_str!("migrations/0008_tus_staged_key.sql"),
    ),
    (
        "0009_node_state.sql",
        include_str!("migrations/0009_node_state.sql"),
    ),
    ("0010_trash.sql", include_str!("migrations/0010_trash.sql")),
    (
        "0011_positions.sql",
        include_str!("migrations/0011_positions.sql"),
    ),
    (
        "0012_reprobe_old_errors.sql",
        include_str!("migrations/0012_reprobe_old_errors.sql"),
    ),
    (
        "0013_user_limits.sql",
        include_str!("migrations/0013_user_limits.sql"),
    ),
    (
        "0014_note_revision_storage.sql",
        include_str!("migrations/0014_note_revision_storage.sql"),
    ),
    ("0015_sync.sql", include_str!("migrations/0015_sync.sql")),
    (
        "0016_note_daily_scope.sql",
        include_str!("migrations/0016_note_daily_scope.sql"),
    ),
];

/// The migrations as `rusqlite_migration` applies them (in one transaction each).
pub(crate) fn migrations() -> Migrations<'static> {
    Migrations::new(FILES.iter().map(|(_, sql)| M::up(sql)).collect())
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::*;

    /// (version, file, SHA-256 of the file's bytes). Append a row with each new migration.
    const PINNED: &[(usize, &str, &str)] = &[
        (
            1,
            "0001_accounts.sql",
            "b23a1b2e32a509b889bef80d2036046df74ca4ff1fdc61051e48e10babeaf9a4",
        ),
        (
            2,
            "0002_notes.sql",
            "959bc2ef67bbe71e0797b922bd8c784a416625d42f45a9cb44a90024d2280ad2",
        ),
        (
            3,
            "0003_notes_fts.sql",
            "6690c048a430d18b20674c6a586ceb62f9deae82c84303ac48d9b6aec7c19706",
        ),
        (
            4,
            "0004_notes_tags.sql",
            "9df92c7d18cf6e49ee8b9ac6fdd44c8dc0cd77c287e58a3e0dcae12f62cf2229",
        ),
        (
            5,
            "0005_notes_events.sql",
            "c3d45096405c7e0d2def2e85110ca6b6d4759e261dbb87825e717ba1d2de4cd8",
        ),
        (
            6,
            "0006_library.sql",
            "63d9aaf75ed8a8f5e96a96c8d674b4a14a7ed9020bafca3f4f920afc66d48b07",
        ),
        (
            7,
            "0007_tus_uploads.sql",
            "cf3d0ddffef472827c3e2f487710ff0f4666b079ad437529da9e7bd800851f04",
        ),
        (
            8,
            "0008_tus_staged_key.sql",
            "fdae6732e8a3a98b2dbfc0b93e0eeeb34b57c3faff886e95952c607b4d0bc1d6",
        ),
        (
            9,
            "0009_node_state.sql",
            "5a684e40382044598d2157fbf0567ff7ee25fe1a7c9fde01051ce172808debbe",
        ),
        (
            10,
            "0010_trash.sql",
            "c59ed217dd73538a35c3ae090ef4538ef6c522375dd684ba8b4db82249bacbfb",
        ),
        (
            11,
            "0011_positions.sql",
            "c7305fe81c0f04ba3f0a37e357e65337924d4662e4bc1cdea9a4f9e2e3b65abe",
        ),
        (
            12,
            "0012_reprobe_old_errors.sql",
            "efda912683058ecc78fe48c7a0eeb9a542ec669d4b338756ad41491ec2609dec",
        ),
        (
            13,
            "0013_user_limits.sql",
            "04e52caeb8493b96f6a8f8cf90ce8a1cd4ce50f94e5ac45dbac5447339ee429e",
        ),
        (
            14,
            "0014_note_revision_storage.sql",
            "c564cf7f8779a19b6945afc23adc094200b813d7ee482907fee1822154ad0e2d",
        ),
        (
            15,
            "0015_sync.sql",
            "b9a3efecea94afc7ed6f6645496c029ed234dc2a5819b625fc220aa14165ff6d",
        ),
        (
            16,
            "0016_note_daily_scope.sql",
            "622abb0160ad30d851dfeb283a6c01aebf552376f0112aa75a2c8ab7418d3b47",
        ),
    ];

    fn sha256_hex(bytes: &[u8]) -> String {
        Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    #[test]
    fn released_migrations_are_pinned_to_their_hashes() {
        let actual: Vec<(usize, &str, String)> = FILES
            .iter()
            .enumerate()
            .map(|(i, (name, sql))| (i + 1, *name, sha256_hex(sql.as_bytes())))
            .collect();
        for (i, (version, name, hash)) in actual.iter().enumerate() {
            let Some(&(pv, pname, phash)) = PINNED.get(i) else {
                panic!(
                    "migration {version} ({name}, sha256 {hash}) is not pinned: add \
                     ({version}, \"{name}\", \"{hash}\") to PINNED"
                );
            };
            assert_eq!(
                (*version, *name, hash.as_str()),
                (pv, pname, phash),
                "migration {pv} ({pname}) changed or moved: released migrations are \
                 append-only: add a new file instead"
            );
        }
        assert_eq!(
            actual.len(),
            PINNED.len(),
            "a pinned migration is missing from FILES: released migrations are append-only: \
             add a new file instead"
        );
    }

    #[test]
    fn versions_are_contiguous_from_one_and_valid() {
        for (i, (name, _)) in FILES.iter().enumerate() {
            let number: usize = name
                .split('_')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("{name}: a migration file starts with its number"));
            assert_eq!(number, i + 1, "{name} is listed as version {}", i + 1);
            assert!(name.ends_with(".sql"), "{name}");
        }
        migrations().validate().expect("valid migrations");
    }

    /// Every file in the folder is listed (a file added but not listed would never run).
    #[test]
    fn every_file_in_the_folder_is_listed() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/db/migrations");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        on_disk.sort();
        let listed: Vec<&str> = FILES.iter().map(|(n, _)| *n).collect();
        assert_eq!(on_disk, listed);
    }

    /// 0008: an absolute staging path becomes the key after the first `/.streamhub-staging/`;
    /// anything else is left as it is.
    #[test]
    fn tus_staged_paths_become_storage_keys() {
        let mut c = rusqlite::Connection::open_in_memory().unwrap();
        migrations().to_version(&mut c, 7).unwrap();
        c.execute(
            "INSERT INTO users (name, password_hash, role, created_at) VALUES ('a', 'x', 'member', 0)",
            [],
        )
        .unwrap();
        let staged = [
            (
                "abs",
                "/srv/media/.streamhub-staging/resumable/t1.upload",
                "resumable/t1.upload",
            ),
            (
                "twice",
                "/m/.streamhub-staging/x/.streamhub-staging/t2.upload",
                "x/.streamhub-staging/t2.upload",
            ),
            ("key", "resumable/t3.upload", "resumable/t3.upload"),
            ("other", "/elsewhere/t4.upload", "/elsewhere/t4.upload"),
        ];
        for (id, old, _) in staged {
            c.execute(
                "INSERT INTO tus_uploads (id, owner, dest, overwrite, length, metadata, staged,
                     created_at, expires_at) VALUES (?1, 1, 'd', 0, 1, '', ?2, 0, 0)",
                [id, old],
            )
            .unwrap();
        }
        migrations().to_latest(&mut c).unwrap();
        for (id, _, new) in staged {
            let got: String = c
                .query_row("SELECT staged FROM tus_uploads WHERE id = ?1", [id], |r| {
                    r.get(0)
                })
                .unwrap();
            assert_eq!(got, new, "{id}");
        }
    }

    /// 0012: probe errors stored by older builds (raw ffprobe output naming the absolute
    /// path) are forgotten and the files queued for a new probe; good probes are kept.
    #[test]
    fn old_probe_errors_are_probed_again() {
        let mut c = rusqlite::Connection::open_in_memory().unwrap();
        migrations().to_version(&mut c, 11).unwrap();
        for (path, probed_at, err) in [
            (
                "bad.mp4",
                Some(5),
                Some("/srv/media/bad.mp4: Invalid data found"),
            ),
            ("good.mp4", Some(6), None),
            ("new.mp4", None, None),
        ] {
            c.execute(
                "INSERT INTO media (path, name, kind, media, probed_at, probe_error)
                 VALUES (?1, ?1, 'file', 'video', ?2, ?3)",
                rusqlite::params![path, probed_at, err],
            )
            .unwrap();
        }
        migrations().to_latest(&mut c).unwrap();
        let rows: Vec<(String, Option<i64>, Option<String>)> = c
            .prepare(
                "SELECT path, probed_at, probe_error FROM media WHERE path != '' ORDER BY path",
            )
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            rows,
            [
                ("bad.mp4".to_string(), None, None),
                ("good.mp4".to_string(), Some(6), None),
                ("new.mp4".to_string(), None, None),
            ]
        );
    }
}
