//! `holdfast controller`: run the Kubernetes operator.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::api::common::JobTemplate;
use crate::cli::{CliError, Ctx, exit, human};
use crate::operator::context::Settings;
use crate::operator::run::{Options, run as run_operator};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A kubeconfig file (default: the in-cluster configuration, else KUBECONFIG).
    #[arg(long, env = "HOLDFAST_KUBECONFIG", value_name = "FILE")]
    kubeconfig: Option<PathBuf>,

    /// Watch only these namespaces (repeatable or comma-separated; default all).
    #[arg(long = "namespace", env = "HOLDFAST_NAMESPACES", value_delimiter = ',')]
    namespaces: Vec<String>,

    /// Serve /healthz, /readyz and /metrics here.
    #[arg(long, env = "HOLDFAST_LISTEN", default_value = "0.0.0.0:8080")]
    listen: SocketAddr,

    /// Lead through this Lease (NAMESPACE/NAME) so that one replica acts at a time; off
    /// when not given.
    #[arg(long, env = "HOLDFAST_LEADER_LEASE", value_name = "NAMESPACE/NAME")]
    leader_lease: Option<String>,

    /// This replica's name in the lease (default: the pod name, else host:pid).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,

    /// Log format: text or json.
    #[arg(long, env = "HOLDFAST_LOG_FORMAT", default_value = "text")]
    log_format: String,

    /// The image job pods run (this binary's image).
    #[arg(
        long,
        env = "HOLDFAST_JOB_IMAGE",
        default_value = "ghcr.io/holdfast-io/holdfast:latest"
    )]
    job_image: String,

    /// Image pull policy of job pods (default: the cluster's).
    #[arg(long, env = "HOLDFAST_JOB_IMAGE_PULL_POLICY")]
    job_image_pull_policy: Option<String>,

    /// ServiceAccount of job pods (they get no token either way).
    #[arg(long, env = "HOLDFAST_JOB_SERVICE_ACCOUNT")]
    job_service_account: Option<String>,

    /// How long finished Jobs stay (their results are in status already).
    #[arg(long, default_value = "24h", value_parser = human::parse_duration)]
    job_ttl: std::time::Duration,

    /// How often each StorageSet is checked besides every change.
    #[arg(long, default_value = "6h", value_parser = human::parse_duration)]
    storage_check_interval: std::time::Duration,

    /// How long volumes a purge marked wait before deletion.
    #[arg(long, default_value = "24h", value_parser = human::parse_duration)]
    purge_grace: std::time::Duration,

    /// What every job pod carries under a set's or a restore's own `jobTemplate`, as JSON
    /// with the fields of `jobTemplate` (podLabels, podAnnotations, tolerations,
    /// nodeSelector, affinity, priorityClassName, imagePullSecrets, resources).
    #[arg(long, env = "HOLDFAST_JOB_POD_DEFAULTS", value_name = "JSON")]
    job_pod_defaults: Option<String>,

    /// Run BackupSets' hooks (commands in the application's pods, through `pods/exec`).
    /// The chart sets it with `hooks.enabled`, which grants the controller `pods/exec`;
    /// without it, a set with hooks is Stalled with `HooksNotEnabled`.
    #[arg(long, env = "HOLDFAST_ALLOW_HOOKS")]
    allow_hooks: bool,
}

/// `--job-pod-defaults`: a `jobTemplate` as JSON, unknown fields refused (a misspelt
/// field would otherwise be dropped without a word).
fn job_pod_defaults(json: Option<&str>) -> Result<JobTemplate, CliError> {
    let Some(json) = json.filter(|j| !j.trim().is_empty()) else {
        return Ok(JobTemplate::default());
    };
    serde_json::from_str(json)
        .map_err(|e| CliError::Usage(format!("--job-pod-defaults is not a jobTemplate: {e}")))
}

pub fn run(_ctx: &Ctx, args: Args) -> Result<u8, CliError> {
    crate::logging::init_controller(&args.log_format);
    let lease = match args.leader_lease.as_deref() {
        None => None,
        Some(l) => Some(
            l.split_once('/')
                .map(|(n, m)| (n.to_owned(), m.to_owned()))
                .ok_or_else(|| {
                    CliError::Usage(format!("--leader-lease takes NAMESPACE/NAME, got {l:?}"))
                })?,
        ),
    };
    let identity = args
        .identity
        .unwrap_or_else(holdfast_engine::repo::default_holder);
    let opts = Options {
        kubeconfig: args.kubeconfig,
        namespaces: args.namespaces,
        listen: args.listen,
        lease,
        identity,
        settings: Settings {
            image: args.job_image,
            pull_policy: args.job_image_pull_policy,
            job_service_account: args.job_service_account,
            job_ttl_seconds: i32::try_from(args.job_ttl.as_secs()).unwrap_or(i32::MAX),
            storage_check_interval: args.storage_check_interval,
            purge_grace: args.purge_grace,
            jobs: job_pod_defaults(args.job_pod_defaults.as_deref())?,
            allow_hooks: args.allow_hooks,
            ..Settings::default()
        },
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Io(format!("cannot start the runtime: {e}")))?;
    runtime
        .block_on(run_operator(opts))
        .map_err(|e| CliError::Io(holdfast_engine::error_chain(&e)))?;
    Ok(exit::OK)
}
