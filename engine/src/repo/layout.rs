//! The keys a repository is made of, and the repositories around or inside a location.
//!
//! A repository owns exactly the objects of its layout (FORMAT.md): destroying it deletes
//! those and nothing else under its prefix, and no repository may be created inside
//! another, or around one, since the outer one's purge or deletion would then reach into
//! the inner one.

use crate::format::config::CONFIG_KIND;
use crate::format::run::parse_label;
use crate::storage::Store;
use crate::{Error, Result};

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Whether `key` is an object of a repository's own layout.
pub(crate) fn is_layout_key(key: &str) -> bool {
    match key.split_once('/') {
        None => key == "config" || key == "owner" || key.starts_with(".holdfast-check-"),
        Some(("data", rest)) => rest
            .split_once('/')
            .is_some_and(|(dir, name)| is_hex(dir, 2) && is_hex(name, 64) && name.starts_with(dir)),
        Some(("index", name)) => is_hex(name, 64),
        Some(("keys", name)) => is_hex(name, 16),
        Some(("marks" | "locks", name)) => is_hex(name, 32),
        Some(("runs" | "archived" | "copied", label)) => parse_label(label).is_some(),
        Some(_) => false,
    }
}

/// Whether `bytes` are a repository's `config` object.
fn is_repository_config(bytes: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(bytes)
        .is_ok_and(|v| v.get("kind").and_then(|k| k.as_str()) == Some(CONFIG_KIND))
}

/// The repository that encloses this location, if any (the nearest).
pub(crate) fn enclosing_repository(store: &Store) -> Result<Option<String>> {
    Ok(store
        .enclosing_objects("config")?
        .into_iter()
        .find(|(_, bytes)| is_repository_config(bytes))
        .map(|(location, _)| location))
}

/// The keys of repository `config` objects beneath this location (other repositories
/// inside it), given its listing.
pub(crate) fn nested_repositories(store: &Store, keys: &[String]) -> Result<Vec<String>> {
    let mut nested = Vec::new();
    for key in keys
        .iter()
        .filter(|k| k.ends_with("/config") && !is_layout_key(k))
    {
        match store.get(key) {
            Ok(bytes) if is_repository_config(&bytes) => {
                nested.push(key.trim_end_matches("config").to_owned())
            }
            Ok(_) | Err(crate::storage::StorageError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(nested)
}

/// Refuse a repository here when another one encloses this location or lies inside it.
pub(crate) fn check_not_nested(store: &Store) -> Result<()> {
    if let Some(outer) = enclosing_repository(store)? {
        return Err(Error::InsideRepository {
            location: store.location(),
            outer,
        });
    }
    let keys: Vec<String> = store.list("")?.into_iter().map(|o| o.key).collect();
    let inner = nested_repositories(store, &keys)?;
    if !inner.is_empty() {
        return Err(Error::ContainsRepository {
            location: store.location(),
            inner,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_is_recognised_and_nothing_else() {
        let h64 = "ab".to_owned() + &"0".repeat(62);
        for key in [
            "config".to_owned(),
            "owner".into(),
            format!("data/ab/{h64}"),
            format!("index/{h64}"),
            "keys/0123456789abcdef".into(),
            format!("locks/{}", "f".repeat(32)),
            format!("marks/{}", "e".repeat(32)),
            "runs/full-20261122.010000".into(),
            "archived/incr-20261122.010000".into(),
            ".holdfast-check-00ff00ff00ff00ff".into(),
        ] {
            assert!(is_layout_key(&key), "{key}");
        }
        for key in [
            "nested/config".to_owned(),
            "runs/config".into(),
            "keys/config".into(),
            format!("data/cd/{h64}"),
            format!("data/ab/{h64}/x"),
            "notes.txt".into(),
            format!("nested/data/ab/{h64}"),
        ] {
            assert!(!is_layout_key(&key), "{key}");
        }
    }
}
