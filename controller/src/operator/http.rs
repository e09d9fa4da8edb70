//! `/healthz`, `/readyz` and `/metrics` on one port: a few lines of HTTP/1.1 are all three
//! need, so no web framework is linked for them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::metrics::Metrics;

/// What the endpoints report.
#[derive(Debug)]
pub struct Health {
    /// The API server answered at least once.
    pub ready: AtomicBool,
    pub metrics: Arc<Metrics>,
}

fn response(status: &str, content_type: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// The answer to one request line.
pub fn answer(request_line: &str, health: &Health) -> String {
    let path = request_line.split_whitespace().nth(1).unwrap_or("/");
    let path = path.split('?').next().unwrap_or(path);
    match path {
        "/healthz" | "/livez" => response("200 OK", "text/plain", "ok\n"),
        "/readyz" if health.ready.load(Ordering::Relaxed) => {
            response("200 OK", "text/plain", "ready\n")
        }
        "/readyz" => response(
            "503 Service Unavailable",
            "text/plain",
            "the API server has not answered yet\n",
        ),
        "/metrics" => response(
            "200 OK",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            &health.metrics.render(),
        ),
        _ => response(
            "404 Not Found",
            "text/plain",
            "try /healthz, /readyz or /metrics\n",
        ),
    }
}

/// Serve on an already bound listener (binding first lets the caller report a busy port
/// before anything else starts) until the task is dropped.
pub async fn serve(listener: TcpListener, health: Arc<Health>) -> std::io::Result<()> {
    loop {
        let (mut conn, _) = listener.accept().await?;
        let health = health.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            let n =
                match tokio::time::timeout(std::time::Duration::from_secs(5), conn.read(&mut buf))
                    .await
                {
                    Ok(Ok(n)) => n,
                    _ => return,
                };
            let text = String::from_utf8_lossy(&buf[..n]);
            let line = text.lines().next().unwrap_or_default();
            let _ = conn.write_all(answer(line, &health).as_bytes()).await;
            let _ = conn.shutdown().await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        let h = Health {
            ready: AtomicBool::new(false),
            metrics: Arc::new(Metrics::default()),
        };
        assert!(answer("GET /healthz HTTP/1.1", &h).starts_with("HTTP/1.1 200"));
        assert!(answer("GET /readyz HTTP/1.1", &h).starts_with("HTTP/1.1 503"));
        h.ready.store(true, Ordering::Relaxed);
        assert!(answer("GET /readyz HTTP/1.1", &h).starts_with("HTTP/1.1 200"));
        let m = answer("GET /metrics HTTP/1.1", &h);
        assert!(m.contains("# EOF"), "{m}");
        assert!(answer("GET /nope HTTP/1.1", &h).starts_with("HTTP/1.1 404"));
    }
}
