//! What a scenario's pods reach on the test host, the same way on both backends: a small
//! HTTP server in the test process serving flags and files. On the loopback plane pods
//! share the host's network; on kind they reach the kind network's gateway. Pods use
//! `wget` (the host's, or the shell image's busybox), so the commands a scenario gives a
//! dump read the same on a real node as on the agent.
//!
//! - `GET /raise/<flag>` raises a flag (a dump saying "I got this far");
//! - `GET /flag/<flag>` answers 200 once the flag is raised, 404 before;
//! - `GET /file/<name>` answers a file the test published.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Default)]
struct State {
    flags: BTreeSet<String>,
    files: BTreeMap<String, Vec<u8>>,
}

/// The server; dropped with the scenario.
pub struct Link {
    addr: String,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link").field("addr", &self.addr).finish()
    }
}

impl Link {
    /// Listen on `host` (an address pods reach), on a free port.
    pub async fn start(host: &str) -> Link {
        let listener = tokio::net::TcpListener::bind((host, 0))
            .await
            .unwrap_or_else(|e| panic!("the host link cannot listen on {host}: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("host link address: {e}"))
            .to_string();
        let state = Arc::new(Mutex::new(State::default()));
        let served = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, served.clone()));
            }
        });
        Link { addr, state, task }
    }

    /// Shell that raises `flag`.
    pub fn raise_cmd(&self, flag: &str) -> String {
        format!("wget -q -O /dev/null http://{}/raise/{flag}", self.addr)
    }

    /// Shell that waits until `flag` is raised.
    pub fn wait_cmd(&self, flag: &str) -> String {
        format!(
            "until wget -q -O /dev/null http://{}/flag/{flag}; do sleep 0.2; done",
            self.addr
        )
    }

    /// Shell that writes the published file `name` to stdout.
    pub fn cat_cmd(&self, name: &str) -> String {
        format!("wget -q -O - http://{}/file/{name}", self.addr)
    }

    /// Raise `flag` from the test.
    pub fn raise(&self, flag: &str) {
        self.lock().flags.insert(flag.to_owned());
    }

    /// Publish a file for pods to read.
    pub fn publish(&self, name: &str, content: Vec<u8>) {
        self.lock().files.insert(name.to_owned(), content);
    }

    /// Wait until a pod raises `flag`; panic with `what` after `timeout`.
    pub async fn wait_raised(&self, flag: &str, what: &str, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        while !self.lock().flags.contains(flag) {
            assert!(tokio::time::Instant::now() < deadline, "{what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut stream: tokio::net::TcpStream, state: Arc<Mutex<State>>) {
    let mut buf = vec![0u8; 4096];
    let mut n = 0;
    while !buf[..n].windows(4).any(|w| w == b"\r\n\r\n") && n < buf.len() {
        match stream.read(&mut buf[n..]).await {
            Ok(0) | Err(_) => return,
            Ok(k) => n += k,
        }
    }
    let head = String::from_utf8_lossy(&buf[..n]);
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let body = {
        let mut s = state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(flag) = path.strip_prefix("/raise/") {
            s.flags.insert(flag.to_owned());
            Some(Vec::new())
        } else if let Some(flag) = path.strip_prefix("/flag/") {
            s.flags.contains(flag).then(Vec::new)
        } else if let Some(name) = path.strip_prefix("/file/") {
            s.files.get(name).cloned()
        } else {
            None
        }
    };
    let (status, body) = match body {
        Some(b) => ("200 OK", b),
        None => ("404 Not Found", Vec::new()),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(&body).await;
    let _ = stream.shutdown().await;
}
