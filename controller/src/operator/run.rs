//! Starting the operator: the client, health and metrics, leader election, and one
//! kube-runtime Controller per kind, each also watching what affects it (owned Jobs,
//! referenced StorageSets and Schedules, the BackupSets that use a StorageSet or Schedule),
//! so objects can be applied in any order. A graceful shutdown stops the controllers, then
//! gives the lease up.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use tokio::sync::watch;
use tracing::Instrument;
use tracing::instrument::Instrumented;

use crate::api::{BackupSet, Restore, Schedule, StorageSet};

use super::context::{Context, Settings};
use super::error::{Error, retry};
use super::http::{self, Health};
use super::leader::Election;
use super::metrics::{ErrorLabels, Metrics, RequestLabels};
use super::names::{MANAGED_BY, MANAGED_BY_VALUE};

/// How the operator runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// A kubeconfig file; otherwise the in-cluster configuration (or KUBECONFIG).
    pub kubeconfig: Option<PathBuf>,
    /// Namespaces to watch; empty means all.
    pub namespaces: Vec<String>,
    pub listen: SocketAddr,
    /// Run only as the holder of this Lease (`namespace/name`); `None` runs at once.
    pub lease: Option<(String, String)>,
    pub identity: String,
    pub settings: Settings,
}

/// Why the operator stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot load the Kubernetes configuration: {0}")]
    Config(String),
    #[error("cannot reach the Kubernetes API: {0}")]
    Client(#[source] kube::Error),
    #[error("cannot serve health and metrics on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

async fn client(opts: &Options, metrics: &Arc<Metrics>) -> Result<kube::Client, RunError> {
    let config = match &opts.kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| RunError::Config(format!("{}: {e}", path.display())))?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| RunError::Config(e.to_string()))?
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| RunError::Config(e.to_string()))?,
    };
    // Every request counted by method: what the controller costs the API server shows in
    // its own metrics.
    let requests = metrics.api_requests.clone();
    let count =
        tower::util::MapRequestLayer::new(move |req: ::http::Request<kube::client::Body>| {
            let watch = req
                .uri()
                .query()
                .is_some_and(|q| q.split('&').any(|kv| kv == "watch=true"));
            let method = if watch {
                "WATCH".to_owned()
            } else {
                req.method().as_str().to_owned()
            };
            requests.get_or_create(&RequestLabels { method }).inc();
            req
        });
    Ok(kube::client::ClientBuilder::try_from(config)
        .map_err(RunError::Client)?
        .with_layer(&count)
        .build())
}

fn error_policy<K: kube::Resource<DynamicType = ()>>(
    obj: Arc<K>,
    err: &Error,
    ctx: Arc<Context>,
) -> Action {
    let kind = K::kind(&()).to_string();
    ctx.metrics
        .reconcile_errors
        .get_or_create(&ErrorLabels {
            resource: kind.clone(),
            category: err.category().as_str().into(),
        })
        .inc();
    tracing::warn!(
        kind = kind.as_str(),
        name = obj.meta().name.as_deref().unwrap_or_default(),
        namespace = obj.meta().namespace.as_deref().unwrap_or_default(),
        category = err.category().as_str(),
        "reconcile failed: {}",
        holdfast_engine::error_chain(err)
    );
    retry(err)
}

fn api<K>(client: &kube::Client, ns: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match ns {
        Some(n) => Api::namespaced(client.clone(), n),
        None => Api::all(client.clone()),
    }
}

/// The objects of `api` each time their spec changes (a new generation), appears or is
/// deleted (kube's `predicate_filter(predicates::generation)` drops deletions, which keep
/// their generation: a set must see its Schedule go to report it missing), but not on
/// status-only writes: a StorageSet's inventory changes after every
/// run of every set using it, and following those would reconcile all of its sets each
/// time (quadratic in the number of sets).
fn spec_changes<K: Watched>(
    api: Api<K>,
) -> impl futures::Stream<Item = Result<K, watcher::Error>> + Send {
    changes(api, |k: &K| format!("{:?}", k.meta().generation))
}

/// What a watch stream of one kind needs of it.
trait Watched:
    kube::Resource<DynamicType = ()>
    + Clone
    + serde::de::DeserializeOwned
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
}

impl<K> Watched for K where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static
{
}

/// A StorageSet's spec changes and its storage check's verdict (whether its sets must
/// wait for it), not its inventory.
fn storage_changes(
    api: Api<StorageSet>,
) -> impl futures::Stream<Item = Result<StorageSet, watcher::Error>> + Send {
    changes(api, |s: &StorageSet| {
        let verdict = s.status.as_ref().map(|st| {
            (
                st.checked_generation,
                st.failure_reason.clone(),
                st.failed_checks.is_empty(),
            )
        });
        format!("{:?} {verdict:?}", s.metadata.generation)
    })
}

/// The objects of `api` when `fingerprint` changes, appears or is deleted.
fn changes<K: Watched>(
    api: Api<K>,
    fingerprint: fn(&K) -> String,
) -> impl futures::Stream<Item = Result<K, watcher::Error>> + Send {
    use kube::runtime::WatchStreamExt;
    let mut seen: std::collections::HashMap<String, String> = Default::default();
    watcher(api, watcher::Config::default())
        .default_backoff()
        .filter_map(move |event| {
            let out = match event {
                Ok(watcher::Event::Apply(k) | watcher::Event::InitApply(k)) => {
                    let uid = k.meta().uid.clone().unwrap_or_default();
                    let print = fingerprint(&k);
                    let changed = seen.insert(uid, print.clone()) != Some(print);
                    changed.then_some(Ok(k))
                }
                Ok(watcher::Event::Delete(k)) => {
                    seen.remove(&k.meta().uid.clone().unwrap_or_default());
                    Some(Ok(k))
                }
                Ok(watcher::Event::Init | watcher::Event::InitDone) => None,
                Err(e) => Some(Err(e)),
            };
            futures::future::ready(out)
        })
}

/// The objects in `store` of `changed`'s namespace that refer to it (`refers`): whom a
/// change of `changed` concerns.
fn referrers<K, C>(store: &Store<K>, changed: &C, refers: impl Fn(&K) -> bool) -> Vec<ObjectRef<K>>
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
    C: kube::Resource,
{
    let ns = changed.meta().namespace.clone();
    store
        .state()
        .into_iter()
        .filter(|k| k.meta().namespace == ns && refers(k))
        .map(|k| ObjectRef::from(k.as_ref()))
        .collect()
}

/// Each reconcile of a `K` in a span that names the object, so its log lines say which.
fn traced<K, F, Fut>(reconcile: F) -> impl FnMut(Arc<K>, Arc<Context>) -> Instrumented<Fut>
where
    K: kube::Resource<DynamicType = ()>,
    F: Fn(Arc<K>, Arc<Context>) -> Fut,
{
    move |o, ctx| {
        let span = tracing::info_span!(
            "reconcile",
            kind = K::kind(&()).as_ref(),
            namespace = o.namespace().unwrap_or_default(),
            name = o.name_any()
        );
        reconcile(o, ctx).instrument(span)
    }
}

/// Run the four controllers for one namespace (or all) until `stop` fires.
async fn controllers(ctx: Arc<Context>, ns: Option<String>, stop: watch::Receiver<bool>) {
    let ns = ns.as_deref();
    futures::join!(
        backup_sets(&ctx, ns, stop.clone()),
        storage_sets(&ctx, ns, stop.clone()),
        schedules(&ctx, ns, stop.clone()),
        restores(&ctx, ns, stop.clone()),
        pod_results(&ctx, ns, stop),
    );
}

/// The Jobs this controller made (the others are none of its business).
fn our_jobs() -> watcher::Config {
    watcher::Config::default().labels(&format!("{MANAGED_BY}={MANAGED_BY_VALUE}"))
}

/// Resolves when `stop` fires: a controller's graceful shutdown.
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Run `controller` with `reconcile` (each in a span naming its object) until `stop` fires.
async fn drive<K, F, Fut>(
    controller: Controller<K>,
    reconcile: F,
    ctx: &Arc<Context>,
    stop: watch::Receiver<bool>,
) where
    K: Watched,
    F: Fn(Arc<K>, Arc<Context>) -> Fut,
    Fut: std::future::Future<Output = Result<Action, Error>> + Send + 'static,
{
    controller
        .graceful_shutdown_on(stopped(stop))
        .run(traced(reconcile), error_policy, ctx.clone())
        .for_each(|_| async {})
        .await;
}

/// BackupSets, woken by their Jobs, by their StorageSet's spec or verdict, and by their
/// Schedule's spec; their cache is shared with the reconciles (`Context::set_stores`).
async fn backup_sets(ctx: &Arc<Context>, ns: Option<&str>, stop: watch::Receiver<bool>) {
    let c = &ctx.client;
    let sets = Controller::new(api::<BackupSet>(c, ns), watcher::Config::default())
        .owns(api::<Job>(c, ns), our_jobs());
    let store = sets.store();
    ctx.set_stores.insert(ns, store.clone());
    let by_storage = store.clone();
    let by_schedule = store;
    let controller = sets
        .watches_stream(
            storage_changes(api::<StorageSet>(c, ns)),
            move |s: StorageSet| {
                let name = s.name_any();
                referrers(&by_storage, &s, |b: &BackupSet| {
                    b.spec.storage_set_ref.name == name
                })
            },
        )
        .watches_stream(spec_changes(api::<Schedule>(c, ns)), move |s: Schedule| {
            let name = s.name_any();
            referrers(&by_schedule, &s, |b: &BackupSet| {
                b.spec.schedule_ref.as_ref().is_some_and(|r| r.name == name)
            })
        });
    drive(controller, super::backup_set::reconcile, ctx, stop).await;
}

/// StorageSets, woken by their check Jobs and by the BackupSets that use them.
async fn storage_sets(ctx: &Arc<Context>, ns: Option<&str>, stop: watch::Receiver<bool>) {
    let c = &ctx.client;
    let controller = Controller::new(api::<StorageSet>(c, ns), watcher::Config::default())
        .owns(api::<Job>(c, ns), our_jobs())
        .watches(
            api::<BackupSet>(c, ns),
            watcher::Config::default(),
            |b: BackupSet| {
                Some(
                    ObjectRef::new(&b.spec.storage_set_ref.name)
                        .within(&b.namespace().unwrap_or_default()),
                )
            },
        );
    drive(controller, super::storage_set::reconcile, ctx, stop).await;
}

/// Schedules, woken by the specs of the BackupSets that use them (which sets use a
/// Schedule changes with their specs only).
async fn schedules(ctx: &Arc<Context>, ns: Option<&str>, stop: watch::Receiver<bool>) {
    let c = &ctx.client;
    let controller = Controller::new(api::<Schedule>(c, ns), watcher::Config::default())
        .watches_stream(spec_changes(api::<BackupSet>(c, ns)), |b: BackupSet| {
            b.spec
                .schedule_ref
                .as_ref()
                .map(|r| ObjectRef::new(&r.name).within(&b.namespace().unwrap_or_default()))
        });
    drive(controller, super::schedule::reconcile, ctx, stop).await;
}

/// Restores, woken by their Jobs and by their BackupSet (a Restore waiting for its set's
/// first backup starts when the set has one).
async fn restores(ctx: &Arc<Context>, ns: Option<&str>, stop: watch::Receiver<bool>) {
    let c = &ctx.client;
    let restores = Controller::new(api::<Restore>(c, ns), watcher::Config::default());
    let store = restores.store();
    let controller = restores.owns(api::<Job>(c, ns), our_jobs()).watches(
        api::<BackupSet>(c, ns),
        watcher::Config::default(),
        move |b: BackupSet| {
            let name = b.name_any();
            referrers(&store, &b, |r: &Restore| {
                r.spec
                    .backup_set_ref
                    .as_ref()
                    .is_some_and(|s| s.name == name)
            })
        },
    );
    drive(controller, super::restore::reconcile, ctx, stop).await;
}

/// Job pods' results, kept before a pod can vanish; stops with the controllers.
async fn pod_results(ctx: &Arc<Context>, ns: Option<&str>, mut stop: watch::Receiver<bool>) {
    let watch = super::pod_results::watch(api::<Pod>(&ctx.client, ns), ctx.pod_results.clone());
    tokio::select! {
        _ = watch => {},
        _ = stop.wait_for(|s| *s) => {},
    }
}

/// /healthz, /readyz and /metrics on `listen`, not ready until the API server answers.
async fn serve_health(
    listen: SocketAddr,
    metrics: Arc<Metrics>,
) -> Result<(Arc<Health>, tokio::task::JoinHandle<std::io::Result<()>>), RunError> {
    let health = Arc::new(Health {
        ready: false.into(),
        metrics,
    });
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| RunError::Listen {
            addr: listen,
            source,
        })?;
    let server = tokio::spawn(http::serve(listener, health.clone()));
    Ok((health, server))
}

/// Resolves on SIGTERM or SIGINT; clones resolve together.
fn termination() -> futures::future::Shared<futures::future::BoxFuture<'static, ()>> {
    async {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = term.recv() => {},
            _ = tokio::signal::ctrl_c() => {},
        }
    }
    .boxed()
    .shared()
}

/// Run the operator until SIGTERM/SIGINT (or the lease is lost).
pub async fn run(opts: Options) -> Result<(), RunError> {
    let metrics = Arc::new(Metrics::default());
    let client = client(&opts, &metrics).await?;
    let (health, server) = serve_health(opts.listen, metrics.clone()).await?;
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        listen = %opts.listen,
        namespaces = ?opts.namespaces,
        "starting"
    );
    // Ready once the API server answers.
    let version = client.apiserver_version().await.map_err(RunError::Client)?;
    tracing::info!(
        "connected to Kubernetes {}.{} ({})",
        version.major,
        version.minor,
        version.git_version
    );
    health.ready.store(true, Ordering::Relaxed);

    let (stop_tx, stop_rx) = watch::channel(false);
    let signals = termination();
    let election = opts.lease.as_ref().map(|(ns, name)| {
        Election::new(
            client.clone(),
            ns,
            name,
            &opts.identity,
            Duration::from_secs(15),
        )
    });
    if let Some(e) = &election {
        tracing::info!(identity = opts.identity.as_str(), "waiting to lead");
        tokio::select! {
            _ = e.acquire() => tracing::info!(identity = opts.identity.as_str(), "leading"),
            _ = signals.clone() => {
                server.abort();
                return Ok(());
            }
        }
    }
    let ctx = Arc::new(Context::new(
        client,
        opts.settings.clone(),
        metrics,
        &opts.identity,
    ));
    let namespaces: Vec<Option<String>> = if opts.namespaces.is_empty() {
        vec![None]
    } else {
        opts.namespaces.iter().cloned().map(Some).collect()
    };
    let running = futures::future::join_all(
        namespaces
            .into_iter()
            .map(|ns| controllers(ctx.clone(), ns, stop_rx.clone())),
    );
    tokio::pin!(running);
    let lost = async {
        match &election {
            Some(e) => e.hold().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = &mut running => {},
        _ = signals.clone() => {
            tracing::info!("shutting down");
            let _ = stop_tx.send(true);
            let _ = tokio::time::timeout(Duration::from_secs(20), &mut running).await;
        }
        _ = lost => {
            tracing::error!("lost the leader lease; stopping so that only one replica acts");
            let _ = stop_tx.send(true);
            let _ = tokio::time::timeout(Duration::from_secs(20), &mut running).await;
        }
    }
    if let Some(e) = &election {
        e.step_down().await;
    }
    server.abort();
    Ok(())
}
