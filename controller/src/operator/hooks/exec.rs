//! One hook command in one pod, through the API server's `pods/exec` (websocket): its exit
//! code and the tail of its output, or that it timed out.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::AttachParams;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::api::hook::HookOutcome;

/// The most output a result keeps: the end of it, where a failing command says why.
pub const OUTPUT_TAIL: usize = 512;

/// How one command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    pub outcome: HookOutcome,
    pub exit_code: Option<i32>,
    pub output: String,
    pub took: Duration,
}

/// Run `command` in `container` (the pod's first when `None`) of `pod`, waiting at most
/// `timeout`. At the limit the controller stops waiting and closes the stream; the
/// container's runtime decides whether the command goes on.
pub async fn exec(
    pods: &Api<Pod>,
    pod: &str,
    container: Option<&str>,
    command: &[String],
    timeout: Duration,
) -> Ended {
    let began = Instant::now();
    let deadline = tokio::time::Instant::now() + timeout;
    let ended = |outcome, exit_code, output| Ended {
        outcome,
        exit_code,
        output,
        took: began.elapsed(),
    };
    let timed_out = || format!("still running after {}s", timeout.as_secs());
    let mut params = AttachParams::default()
        .stdin(false)
        .stdout(true)
        .stderr(true);
    if let Some(c) = container {
        params = params.container(c);
    }
    let mut attached =
        match tokio::time::timeout_at(deadline, pods.exec(pod, command.to_vec(), &params)).await {
            Err(_) => return ended(HookOutcome::TimedOut, None, timed_out()),
            Ok(Err(e)) => {
                let why = format!("cannot run the command in pod {pod}: {e}");
                return ended(HookOutcome::Failed, None, tail(&why));
            }
            Ok(Ok(a)) => a,
        };
    let status = attached.take_status();
    let stdout = attached.stdout();
    let stderr = attached.stderr();
    let finished = tokio::time::timeout_at(deadline, async {
        let (out, err) = tokio::join!(drain(stdout), drain(stderr));
        let status = match status {
            Some(s) => s.await,
            None => None,
        };
        (status, tail(&[out, err].concat()))
    })
    .await;
    let Ok((status, output)) = finished else {
        // Close the stream now rather than when the command ends by itself.
        attached.abort();
        return ended(HookOutcome::TimedOut, None, timed_out());
    };
    let _ = attached.join().await;
    match status {
        Some(s) if s.status.as_deref() == Some("Success") => {
            ended(HookOutcome::Succeeded, Some(0), output)
        }
        Some(s) => match exit_code(&s) {
            Some(code) => ended(HookOutcome::Failed, Some(code), output),
            None => {
                let why = s.message.unwrap_or_else(|| "the command failed".into());
                ended(HookOutcome::Failed, None, tail(&format!("{why}: {output}")))
            }
        },
        None => ended(
            HookOutcome::Failed,
            None,
            tail(&format!(
                "the exec stream closed without an exit status: {output}"
            )),
        ),
    }
}

/// A non-zero exit code, as the kubelet reports it (`NonZeroExitCode`, cause `ExitCode`).
fn exit_code(s: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Status) -> Option<i32> {
    s.details
        .as_ref()?
        .causes
        .iter()
        .flatten()
        .find(|c| c.reason.as_deref() == Some("ExitCode"))?
        .message
        .as_deref()?
        .parse()
        .ok()
}

/// Everything a stream says (kept whole: `tail` trims it once both are in).
async fn drain(stream: Option<impl AsyncRead + Unpin>) -> String {
    let Some(mut s) = stream else {
        return String::new();
    };
    let mut buf = Vec::new();
    // Hooks print little; a chatty one is cut to its tail after, not here, so a stream
    // that is never read to the end cannot block the command.
    let _ = s.read_to_end(&mut buf).await;
    String::from_utf8_lossy(&buf).into_owned()
}

/// The last [`OUTPUT_TAIL`] bytes of `text` at a character boundary, trimmed.
pub fn tail(text: &str) -> String {
    let text = text.trim();
    let mut start = text.len().saturating_sub(OUTPUT_TAIL);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_output_kept_is_its_end_cut_at_a_character() {
        assert_eq!(tail("  done\n"), "done");
        let long = format!("{}é{}", "a".repeat(600), "z".repeat(OUTPUT_TAIL - 1));
        let t = tail(&long);
        assert!(t.len() <= OUTPUT_TAIL, "{}", t.len());
        assert!(t.ends_with('z'));
        assert!(!t.contains('a'));
    }

    #[test]
    fn a_non_zero_exit_code_is_read_from_the_kubelets_status() {
        let s: k8s_openapi::apimachinery::pkg::apis::meta::v1::Status =
            serde_json::from_value(serde_json::json!({
                "status": "Failure", "reason": "NonZeroExitCode",
                "message": "command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3",
                "details": {"causes": [{"reason": "ExitCode", "message": "3"}]}
            }))
            .unwrap();
        assert_eq!(exit_code(&s), Some(3));
        let other: k8s_openapi::apimachinery::pkg::apis::meta::v1::Status = serde_json::from_value(
            serde_json::json!({"status": "Failure", "message": "container not found"}),
        )
        .unwrap();
        assert_eq!(exit_code(&other), None);
    }
}
