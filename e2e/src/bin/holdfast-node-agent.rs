//! `holdfast-node-agent`: the kubelet stand-in of the end-to-end harness.
//!
//! ```text
//! holdfast-node-agent --state-dir DIR --holdfast-bin PATH --api-port PORT [--nodes node-a,node-b]
//! ```
//! It reads the cluster from `KUBECONFIG`.

use std::path::PathBuf;
use std::process::ExitCode;

use holdfast_e2e::agent::{self, Config};

fn usage(msg: &str) -> ExitCode {
    eprintln!(
        "holdfast-node-agent: {msg}\nusage: holdfast-node-agent --state-dir DIR --holdfast-bin PATH \
         --api-port PORT [--api-host HOST] [--nodes node-a,node-b]"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut state_dir = None;
    let mut holdfast_bin = None;
    let mut api_port = None;
    let mut api_host = "127.0.0.1".to_owned();
    let mut nodes = vec!["node-a".to_owned(), "node-b".to_owned()];
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let Some(v) = args.next() else {
            return usage(&format!("{a} needs a value"));
        };
        match a.as_str() {
            "--state-dir" => state_dir = Some(PathBuf::from(v)),
            "--holdfast-bin" => holdfast_bin = Some(PathBuf::from(v)),
            "--api-port" => match v.parse() {
                Ok(p) => api_port = Some(p),
                Err(_) => return usage("--api-port is a port number"),
            },
            "--api-host" => api_host = v,
            "--nodes" => nodes = v.split(',').map(str::to_owned).collect(),
            other => return usage(&format!("unknown argument {other}")),
        }
    }
    let (Some(state_dir), Some(holdfast_bin), Some(api_port)) = (state_dir, holdfast_bin, api_port)
    else {
        return usage("--state-dir, --holdfast-bin and --api-port are required");
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    holdfast_e2e::install_crypto_provider();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("holdfast-node-agent: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let client = kube::Client::try_default()
            .await
            .map_err(|e| e.to_string())?;
        let config = Config {
            state_dir,
            holdfast_bin,
            nodes,
            api_host,
            api_port,
        };
        let shutdown = async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("a SIGTERM handler");
            tokio::select! {
                _ = term.recv() => {},
                _ = tokio::signal::ctrl_c() => {},
            }
        };
        agent::run(client, config, shutdown)
            .await
            .map_err(|e| e.to_string())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("holdfast-node-agent: {e}");
            ExitCode::FAILURE
        }
    }
}
