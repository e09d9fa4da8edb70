//! Repository locks with leases.
//!
//! A lock is an object `locks/<random id>` naming its holder, operation, start time and
//! lease expiry. The holder refreshes the lease while it works; a lock whose lease has
//! expired is stale, whatever its holder's name or PID (those mean nothing across pods).
//! Backups, restores, verifies and the marking phase of purge take shared locks; only
//! purge's delete phase is exclusive.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::format::aad;
use crate::storage::StorageError;
use crate::{Error, Result};

use super::Repository;

/// How long a lease lasts without refresh.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(300);

/// Shared (many at once) or exclusive (alone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LockKind {
    /// Many operations at once (backup, restore, verify, purge's marking phase).
    Shared,
    /// This operation alone (purge's delete phase).
    Exclusive,
}

/// Where a lock holder runs, precisely enough to tell on the same machine whether it is
/// still running: host name, kernel boot, PID namespace, PID and the process's start time
/// (a PID can be reused; a start time cannot, within one boot).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessId {
    /// The host name.
    pub host: String,
    /// The kernel's boot id, so a PID is only compared within one boot.
    pub boot_id: String,
    /// The PID namespace, so a PID is only compared within one namespace.
    pub pid_namespace: String,
    /// The process id.
    pub pid: u32,
    /// Start time in clock ticks since boot (`/proc/<pid>/stat` field 22).
    pub start_ticks: u64,
}

impl ProcessId {
    /// This process, if `/proc` tells enough.
    pub fn current() -> Option<Self> {
        Self::of(std::process::id())
    }

    /// A process of this machine and PID namespace, while it runs.
    pub fn of(pid: u32) -> Option<Self> {
        Some(ProcessId {
            host: hostname(),
            boot_id: read_trimmed("/proc/sys/kernel/random/boot_id")?,
            pid_namespace: std::fs::read_link("/proc/self/ns/pid")
                .ok()?
                .to_string_lossy()
                .into_owned(),
            pid,
            start_ticks: start_ticks(pid)?,
        })
    }

    /// Whether this holder is provably gone: it ran on this machine, in this boot and this
    /// PID namespace, and no process with its PID and start time exists. Anything else
    /// (another machine, another pod's PID namespace) cannot be judged from here.
    pub(crate) fn is_gone(&self) -> bool {
        let Some(me) = ProcessId::current() else {
            return false;
        };
        if self.host != me.host
            || self.boot_id != me.boot_id
            || self.pid_namespace != me.pid_namespace
        {
            return false;
        }
        start_ticks(self.pid) != Some(self.start_ticks)
    }
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// Field 22 of `/proc/<pid>/stat`; the command name (field 2) may hold spaces and
/// parentheses, so fields are counted after its closing parenthesis.
fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

/// The content of a lock object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LockInfo {
    /// Who holds it: `HOLDFAST_LOCK_HOLDER`, else `host:pid`.
    pub holder: String,
    /// What it is for (`backup`, `purge`, …).
    pub operation: String,
    /// Shared or exclusive.
    pub kind: LockKind,
    /// When it was taken.
    pub started: DateTime<Utc>,
    /// When its lease ends unless refreshed.
    pub expires: DateTime<Utc>,
    /// The holder's process, where it could be identified (absent in older locks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<ProcessId>,
}

impl LockInfo {
    /// Stale: its lease ran out, or its holder is provably gone (killed on this machine).
    pub(crate) fn is_stale(&self, now: DateTime<Utc>) -> bool {
        self.expires < now || self.process.as_ref().is_some_and(ProcessId::is_gone)
    }
}

/// A lock found in the repository.
#[derive(Debug, Clone, Serialize)]
pub struct FoundLock {
    /// The lock's object key.
    pub id: String,
    #[serde(flatten)]
    /// The lock's record, when it could be read.
    pub info: Option<LockInfo>,
    /// Whether it is stale (no longer protects anything).
    pub stale: bool,
    /// Why it is stale: `"lease expired"` or `"holder is gone"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stale_because: Option<&'static str>,
}

/// What holds a lock that blocks an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocker {
    /// Who holds it and for what.
    pub description: String,
    /// When its lease ends, if readable.
    pub lease_until: Option<DateTime<Utc>>,
}

impl std::fmt::Display for Blocker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.description)
    }
}

const PREFIX: &str = "locks/";

fn describe(info: &LockInfo) -> String {
    format!(
        "{} lock for {} held by {} since {} (lease until {})",
        match info.kind {
            LockKind::Shared => "a shared",
            LockKind::Exclusive => "an exclusive",
        },
        info.operation,
        info.holder,
        info.started.format("%Y-%m-%d %H:%M:%S UTC"),
        info.expires.format("%H:%M:%S UTC"),
    )
}

/// What to do about a lock held by someone else, for the error message.
fn lock_hint(lease_until: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    match lease_until {
        Some(until) => {
            let left = (until - now).num_seconds().max(0);
            format!(
                "its lease ends at {} (in {} min {} s) unless its holder renews it: retry then, \
                 or wait with --lock-wait; if you know that holder is gone for good (e.g. its \
                 pod was deleted), remove it now with `holdfast unlock --all`",
                until.format("%H:%M:%S UTC"),
                left / 60,
                left % 60
            )
        }
        None => "if you know nothing else uses the repository, remove it with \
                 `holdfast unlock --all`"
            .to_owned(),
    }
}

/// This machine's host name: lock holders and run manifests name it.
pub(crate) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The holder identity: `HOLDFAST_LOCK_HOLDER` (the controller sets the pod name), else
/// `host:pid`.
pub fn default_holder() -> String {
    std::env::var("HOLDFAST_LOCK_HOLDER")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("{}:{}", hostname(), std::process::id()))
}

struct Refresher {
    stop: Mutex<bool>,
    wake: Condvar,
}

/// A held lock. Refreshes its lease in the background; released on drop.
pub struct LockGuard<S> {
    repo: Repository<S>,
    id: String,
    refresher: Arc<Refresher>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl<S> std::fmt::Debug for LockGuard<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockGuard")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl<S> LockGuard<S> {
    /// The lock's object key (`locks/…`).
    pub(crate) fn key(&self) -> &str {
        &self.id
    }

    /// Confirm the lock is still ours and unexpired, before recording work that relies on
    /// it (a purge's delete phase may have run if the lease lapsed or the lock was broken).
    pub(crate) fn confirm(&self) -> Result<()> {
        let lost = || Error::LockLost {
            location: self.repo.location(),
        };
        let body = match self.repo.store().get(&self.id) {
            Ok(b) => b,
            Err(StorageError::NotFound { .. }) => return Err(lost()),
            Err(e) => return Err(e.into()),
        };
        let info: LockInfo = self
            .repo
            .key()
            .open(aad::LOCK, &body)
            .ok()
            .and_then(|j| serde_json::from_slice(&j).ok())
            .ok_or_else(lost)?;
        if info.is_stale(Utc::now()) {
            Err(lost())
        } else {
            Ok(())
        }
    }

    /// Release now (also done on drop).
    pub(crate) fn release(mut self) -> Result<()> {
        self.stop_refresher();
        let r = self.repo.store().delete(&self.id);
        self.id.clear();
        Ok(r?)
    }

    fn stop_refresher(&mut self) {
        *self
            .refresher
            .stop
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = true;
        self.refresher.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl<S> Drop for LockGuard<S> {
    fn drop(&mut self) {
        self.stop_refresher();
        if !self.id.is_empty() {
            let _ = self.repo.store().delete(&self.id);
        }
    }
}

impl<S: Clone + Send + Sync + 'static> Repository<S> {
    fn write_lock(&self, id: &str, info: &LockInfo) -> Result<()> {
        let json = serde_json::to_vec(info).map_err(Error::internal)?;
        self.store().put(id, self.key().seal(aad::LOCK, &json)?)?;
        Ok(())
    }

    /// Every lock in the repository. A lock that cannot be read (another key, damage) is
    /// listed without details and treated as held, never silently ignored.
    pub fn locks(&self) -> Result<Vec<FoundLock>> {
        let now = Utc::now();
        let names: Vec<String> = self
            .store()
            .list(PREFIX)?
            .into_iter()
            .map(|o| o.key)
            .collect();
        let bodies = self.store().get_many(&names, 16);
        let mut out = Vec::new();
        for (id, body) in names.into_iter().zip(bodies) {
            let body = match body {
                Ok(b) => b,
                // Released between list and get.
                Err(StorageError::NotFound { .. }) => continue,
                Err(e) => return Err(e.into()),
            };
            let info: Option<LockInfo> = self
                .key()
                .open(aad::LOCK, &body)
                .ok()
                .and_then(|j| serde_json::from_slice(&j).ok());
            let stale_because = info.as_ref().and_then(|i| {
                if i.expires < now {
                    Some("lease expired")
                } else if i.process.as_ref().is_some_and(ProcessId::is_gone) {
                    Some("holder is gone")
                } else {
                    None
                }
            });
            out.push(FoundLock {
                id,
                info,
                stale: stale_because.is_some(),
                stale_because,
            });
        }
        Ok(out)
    }

    fn conflicts(&self, own: &str, kind: LockKind) -> Result<Option<Blocker>> {
        for l in self.locks()? {
            if l.id == own || l.stale {
                continue;
            }
            match &l.info {
                Some(info) if kind == LockKind::Shared && info.kind == LockKind::Shared => {}
                Some(info) => {
                    return Ok(Some(Blocker {
                        description: describe(info),
                        lease_until: Some(info.expires),
                    }));
                }
                None => {
                    return Ok(Some(Blocker {
                        description: format!("an unreadable lock {}", l.id),
                        lease_until: None,
                    }));
                }
            }
        }
        Ok(None)
    }

    /// Take a lock, waiting up to `wait` for conflicting locks to go away.
    pub fn lock(&self, kind: LockKind, operation: &str, wait: Duration) -> Result<LockGuard<S>> {
        self.lock_with(kind, operation, wait, DEFAULT_LEASE, &default_holder())
    }

    /// Take a lock of `kind` for `operation`, waiting up to `wait` for conflicting locks to end.
    pub fn lock_with(
        &self,
        kind: LockKind,
        operation: &str,
        wait: Duration,
        lease: Duration,
        holder: &str,
    ) -> Result<LockGuard<S>> {
        let deadline = std::time::Instant::now() + wait;
        let id = format!(
            "{PREFIX}{}",
            hex::encode(crate::crypto::random_bytes::<16>()?)
        );
        let lease_c = chrono::Duration::from_std(lease).map_err(Error::internal)?;
        loop {
            // Look first, write, then look again: two writers racing both see each other
            // and both back off, rather than both proceeding.
            let blocker = match self.conflicts(&id, kind)? {
                Some(b) => Some(b),
                None => {
                    let now = Utc::now();
                    let info = LockInfo {
                        holder: holder.to_owned(),
                        operation: operation.to_owned(),
                        kind,
                        started: now,
                        expires: now + lease_c,
                        process: ProcessId::current(),
                    };
                    self.write_lock(&id, &info)?;
                    match self.conflicts(&id, kind)? {
                        None => return Ok(self.guard(id, info, lease)),
                        Some(b) => {
                            self.store().delete(&id)?;
                            Some(b)
                        }
                    }
                }
            };
            if let Some(blocker) = blocker {
                if std::time::Instant::now() >= deadline {
                    return Err(Error::Locked {
                        location: self.location(),
                        holder: blocker.description,
                        hint: lock_hint(blocker.lease_until, Utc::now()),
                    });
                }
                std::thread::sleep(Duration::from_millis(500).min(wait));
            }
        }
    }

    fn guard(&self, id: String, info: LockInfo, lease: Duration) -> LockGuard<S> {
        let info = Arc::new(Mutex::new(info));
        let refresher = Arc::new(Refresher {
            stop: Mutex::new(false),
            wake: Condvar::new(),
        });
        let thread = {
            let (repo, id, info, refresher) =
                (self.clone(), id.clone(), info.clone(), refresher.clone());
            std::thread::Builder::new()
                .name("holdfast-lock".into())
                .spawn(move || {
                    let every = lease / 4;
                    let mut stopped = refresher.stop.lock().unwrap_or_else(|p| p.into_inner());
                    loop {
                        // Checked before every wait: a stop requested before this thread
                        // first took the lock must not cost a whole refresh interval.
                        if *stopped {
                            return;
                        }
                        let (s, _) = refresher
                            .wake
                            .wait_timeout(stopped, every)
                            .unwrap_or_else(|p| p.into_inner());
                        stopped = s;
                        if *stopped {
                            return;
                        }
                        let mut i = info.lock().unwrap_or_else(|p| p.into_inner());
                        i.expires = Utc::now()
                            + chrono::Duration::from_std(lease)
                                .unwrap_or(chrono::Duration::minutes(5));
                        // The next refresh tries again; `confirm` refuses to record work
                        // should the lease have lapsed meanwhile.
                        if let Err(e) = repo.write_lock(&id, &i) {
                            tracing::warn!(lock = %id, error = %crate::error_chain(&e), "could not refresh the repository lock's lease");
                        }
                    }
                })
                .ok()
        };
        LockGuard {
            repo: self.clone(),
            id,
            refresher,
            thread,
        }
    }

    /// Remove stale locks (or, with `all`, every lock). Returns what was removed.
    pub fn unlock(&self, all: bool) -> Result<Vec<FoundLock>> {
        let mut removed = Vec::new();
        for l in self.locks()? {
            if all || l.stale {
                self.store().delete(&l.id)?;
                removed.push(l);
            }
        }
        Ok(removed)
    }
}
