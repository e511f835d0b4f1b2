//! Naming a peer the way people do: `streamhub peers` shows 8 digits of an id and a name, so
//! `POST /api/peers/{peer}/sync` takes the full id, a unique prefix of it, or a unique name.

use super::Peers;

/// Why a name matched no single peer.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FindError {
    #[error("no such peer (GET /api/peers lists their ids and names)")]
    NotFound,
    #[error("'{key}' matches several peers: {names}; give more digits of the id")]
    Ambiguous { key: String, names: String },
}

/// Fewer digits than this would match by chance in a big table.
const MIN_PREFIX: usize = 4;

/// The id of the one peer among `(id, name)` that `key` names.
pub fn pick(key: &str, peers: &[(String, String)]) -> Result<String, FindError> {
    let k = key.to_ascii_lowercase();
    if let Some((id, _)) = peers.iter().find(|(id, _)| *id == k) {
        return Ok(id.clone());
    }
    let hex = k.len() >= MIN_PREFIX && k.bytes().all(|b| b.is_ascii_hexdigit());
    let mut hits: Vec<&(String, String)> = peers
        .iter()
        .filter(|(id, name)| (hex && id.starts_with(&k)) || name.eq_ignore_ascii_case(key))
        .collect();
    hits.dedup_by(|a, b| a.0 == b.0);
    match hits.as_slice() {
        [] => Err(FindError::NotFound),
        [(id, _)] => Ok(id.clone()),
        many => Err(FindError::Ambiguous {
            key: key.to_string(),
            names: many
                .iter()
                .map(|(id, name)| format!("{name} ({})", &id[..8.min(id.len())]))
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

impl Peers {
    /// The id of the peer `key` names (see [`pick`]); a static peer not reached yet has no
    /// id and cannot be named.
    pub fn find(&self, key: &str) -> Result<String, FindError> {
        let known: Vec<(String, String)> = self
            .list()
            .iter()
            .filter_map(|p| {
                let st = self.status(p);
                let id =
                    p.id.clone()
                        .or_else(|| st.as_ref().and_then(|s| s.id.clone()))?;
                let name = st.and_then(|s| s.name).unwrap_or_else(|| p.name.clone());
                Some((id, name))
            })
            .collect();
        pick(key, &known)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Vec<(String, String)> {
        vec![
            (format!("fb829813{}", "0".repeat(56)), "office".into()),
            (format!("fb82aa00{}", "1".repeat(56)), "attic".into()),
            (format!("0d3549a1{}", "2".repeat(56)), "raspberrypi".into()),
            (format!("77aa0000{}", "3".repeat(56)), "raspberrypi".into()),
        ]
    }

    #[test]
    fn a_full_id_a_unique_prefix_or_a_unique_name_names_one_peer() {
        let t = table();
        assert_eq!(pick(&t[0].0, &t), Ok(t[0].0.clone()));
        assert_eq!(pick("FB829813", &t), Ok(t[0].0.clone()));
        assert_eq!(pick("0d35", &t), Ok(t[2].0.clone()));
        assert_eq!(pick("Attic", &t), Ok(t[1].0.clone()));
    }

    #[test]
    fn ambiguous_short_or_unknown_names_are_refused() {
        let t = table();
        match pick("fb82", &t) {
            Err(FindError::Ambiguous { names, .. }) => {
                assert!(names.contains("office (fb829813)") && names.contains("attic (fb82aa00)"))
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            pick("raspberrypi", &t),
            Err(FindError::Ambiguous { .. })
        ));
        // Three digits could match by chance: not a prefix.
        assert_eq!(pick("0d3", &t), Err(FindError::NotFound));
        assert_eq!(pick("kitchen", &t), Err(FindError::NotFound));
        assert_eq!(pick("", &t), Err(FindError::NotFound));
    }
}
