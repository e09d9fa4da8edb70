//! How Argo CD and kstatus read Holdfast objects. The scenarios capture objects at known
//! moments with the health they expect (`capture`); Argo CD's reading is checked at once by
//! running the chart's Lua health script under Lua 5.1 (the version Argo CD embeds), and
//! kstatus's after the suite by `e2e/kstatus` over everything captured.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::harness::{Cluster, repo_root};

/// The chart's health script.
pub fn script() -> PathBuf {
    repo_root().join("helm/holdfast/argocd/health.lua")
}

/// A Lua literal for a JSON value (null members are left out, as absent fields).
pub fn lua_literal(v: &Value) -> String {
    match v {
        Value::Null => "nil".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => {
            let mut out = String::from("\"");
            for b in s.bytes() {
                match b {
                    b'"' | b'\\' => {
                        out.push('\\');
                        out.push(b as char);
                    }
                    0x20..=0x7e => out.push(b as char),
                    _ => out.push_str(&format!("\\{b:03}")),
                }
            }
            out.push('"');
            out
        }
        Value::Array(a) => format!(
            "{{{}}}",
            a.iter().map(lua_literal).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(o) => format!(
            "{{{}}}",
            o.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| format!(
                    "[{}] = {}",
                    lua_literal(&Value::String(k.clone())),
                    lua_literal(v)
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Argo CD's health of `obj` by the chart's script: (status, message).
pub fn argocd(obj: &Value) -> (String, String) {
    argocd_with(&script(), obj)
}

pub fn argocd_with(script: &Path, obj: &Value) -> (String, String) {
    let program = format!(
        "obj = {}\nlocal f = assert(loadfile({}))\nlocal hs = f()\nio.write(hs.status, \"\\t\", hs.message or \"\")\n",
        lua_literal(obj),
        lua_literal(&Value::String(script.display().to_string()))
    );
    let mut child = Command::new("lua5.1")
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run lua5.1 ({e}): install Debian's lua5.1 (scripts/test.sh does)")
        });
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(program.as_bytes());
    }
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("lua5.1: {e}"));
    assert!(
        out.status.success(),
        "the health script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (status, message) = text.split_once('\t').unwrap_or((&text, ""));
    (status.to_owned(), message.to_owned())
}

/// Record `obj` as seen now with the health Argo CD and kstatus should give it; checks
/// Argo CD's at once. Captures go to `<cluster dir>/statuses/`, which `e2e/run.sh` hands
/// to the kstatus checker and keeps under `target/e2e-statuses/`.
pub fn capture(c: &Cluster, label: &str, obj: &Value, argocd_status: &str, kstatus: &str) {
    let (status, message) = argocd(obj);
    assert_eq!(
        status, argocd_status,
        "{label}: Argo CD reads {status} ({message}) for {obj:#}"
    );
    let dir = c.dir.join("statuses");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut object = obj.clone();
    if let Some(m) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("managedFields");
    }
    let record = serde_json::json!({
        "object": object,
        "expect": {"argocd": argocd_status, "kstatus": kstatus},
    });
    let path = dir.join(format!("{label}.json"));
    std::fs::write(&path, format!("{record:#}\n"))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}
