//! `holdfast storage check`: can this location hold a repository, and is there one?

use serde::Serialize;

use crate::storage::check::CheckItem;
use crate::storage::{StorageError, Store};

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// The location checked.
    pub location: String,
    /// Whether every check passed.
    pub ok: bool,
    /// Each check with its result.
    pub items: Vec<CheckItem>,
}

/// Probe the location: listing (credentials and access), write, read back and delete a
/// probe object, backend-specific checks (bucket, region, clock), and the repository there.
pub fn check_location(store: &Store) -> CheckReport {
    let mut items = Vec::new();
    // A directory that does not exist yet is reported, not created by the probe.
    if let Some(item) = store.not_created_yet() {
        items.push(item);
        items.push(CheckItem::ok(
            "repository",
            "none yet (`holdfast init` creates one)",
        ));
        return CheckReport {
            location: store.location(),
            ok: items.iter().all(|i| i.ok),
            items,
        };
    }
    // A prefix that is a directory on every backend (listing `config` itself would list a
    // file as a directory on a filesystem).
    match store.list("keys/") {
        Ok(_) => items.push(CheckItem::ok(
            "access",
            "listing allowed (credentials accepted)",
        )),
        // Every further probe would wait out the same retries to fail the same way; and a
        // probe written to a missing bucket would, on a lenient server, create it (a check
        // changes nothing), while on S3 it fails again for the same reason.
        Err(e @ (StorageError::Unreachable { .. } | StorageError::BucketNotFound { .. })) => {
            items.push(CheckItem::storage_error("access", &e));
            return CheckReport {
                location: store.location(),
                ok: false,
                items,
            };
        }
        Err(e) => items.push(CheckItem::storage_error("access", &e)),
    }
    let probe = format!(
        ".holdfast-check-{}",
        hex::encode(crate::crypto::random_bytes::<8>().unwrap_or([0; 8]))
    );
    let payload = bytes::Bytes::from_static(b"holdfast storage check");
    match store.put(&probe, payload.clone()) {
        Ok(()) => {
            items.push(CheckItem::ok(
                "write",
                format!("wrote probe object {probe}"),
            ));
            match store.get(&probe) {
                Ok(b) if b == payload => {
                    items.push(CheckItem::ok("read", "probe read back intact"))
                }
                Ok(_) => items.push(CheckItem::failed(
                    "read",
                    "probe read back with different content",
                )),
                Err(e) => items.push(CheckItem::storage_error("read", &e)),
            }
            match store.delete(&probe) {
                Ok(()) => items.push(CheckItem::ok("delete", "probe deleted")),
                Err(e) => items.push(CheckItem::storage_error("delete", &e)),
            }
        }
        Err(e) => items.push(CheckItem::storage_error("write", &e)),
    }
    items.extend(store.diagnose());
    match super::read_config(store) {
        Ok(c) => items.push(CheckItem::ok(
            "repository",
            format!("Holdfast repository {} (format v{}) found", c.id, c.version),
        )),
        Err(crate::Error::NotARepository { .. }) => items.push(CheckItem::ok(
            "repository",
            "none yet (`holdfast init` creates one)",
        )),
        Err(e) => items.push(CheckItem::error("repository", e.category(), e.to_string())),
    }
    let ok = items.iter().all(|i| i.ok);
    CheckReport {
        location: store.location(),
        ok,
        items,
    }
}
