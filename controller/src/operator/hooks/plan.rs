//! Which hook commands run where, and what their results mean for the run (pure,
//! table-tested).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::api::hook::{Hook, HookOutcome, HookPhase, HookResult, OnError};

/// A hook command's default time limit.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A running pod the commands may run in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

/// One command to run: in a pod, or recorded as `NoPod` when none matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub hook: String,
    pub phase: HookPhase,
    pub pod: Option<String>,
    pub container: Option<String>,
    pub command: Vec<String>,
    pub timeout: Duration,
}

/// A hook's time limit per command.
pub fn timeout(hook: &Hook) -> Duration {
    hook.timeout
        .as_deref()
        .and_then(|t| crate::human::parse_duration(t).ok())
        .unwrap_or(DEFAULT_TIMEOUT)
}

/// The commands of `phase`, in order: `pre` as the hooks are listed, `post` in reverse
/// (what was done last is undone first); each in every pod its labels select, by name, or
/// once without a pod when none matches.
pub fn steps(hooks: &[Hook], phase: HookPhase, pods: &[Target]) -> Vec<Step> {
    let ordered: Vec<&Hook> = match phase {
        HookPhase::Pre => hooks.iter().collect(),
        HookPhase::Post => hooks.iter().rev().collect(),
    };
    let mut steps = Vec::new();
    for h in ordered {
        let command = match phase {
            HookPhase::Pre => &h.pre,
            HookPhase::Post => &h.post,
        };
        if command.is_empty() {
            continue;
        }
        let mut matched: Vec<&Target> = pods
            .iter()
            .filter(|p| h.pod_labels.iter().all(|(k, v)| p.labels.get(k) == Some(v)))
            .collect();
        matched.sort_by(|a, b| a.name.cmp(&b.name));
        let step = |pod: Option<String>| Step {
            hook: h.name.clone(),
            phase,
            pod,
            container: h.container.clone(),
            command: command.clone(),
            timeout: timeout(h),
        };
        if matched.is_empty() {
            steps.push(step(None));
        }
        steps.extend(matched.into_iter().map(|p| step(Some(p.name.clone()))));
    }
    steps
}

/// The hooks whose `post` is owed: those whose `pre` ran (or that have none); after a
/// `pre` cut short by a restart, every hook, since which `pre` commands ran is not known (a
/// `post` with nothing to undo does little harm; a freeze never thawed does).
pub fn owed(hooks: &[Hook], results: &[HookResult], cut_short: bool) -> Vec<Hook> {
    hooks
        .iter()
        .filter(|h| cut_short || h.pre.is_empty() || results.iter().any(|r| r.hook == h.name))
        .cloned()
        .collect()
}

/// Why the run must not go on: the first `pre` command that failed in a hook whose
/// `onError` is `Fail`, as the run's message says it.
pub fn stops_the_run(hooks: &[Hook], results: &[HookResult]) -> Option<String> {
    results
        .iter()
        .filter(|r| r.phase == HookPhase::Pre && r.outcome != HookOutcome::Succeeded)
        .find(|r| {
            hooks
                .iter()
                .find(|h| h.name == r.hook)
                .is_none_or(|h| h.on_error == OnError::Fail)
        })
        .map(describe)
}

/// The failed commands of `results`, one phrase each, for a run's message or an Event.
pub fn failures(results: &[HookResult]) -> Vec<String> {
    results
        .iter()
        .filter(|r| r.outcome != HookOutcome::Succeeded)
        .map(describe)
        .collect()
}

/// One result as a phrase: `pre hook "lock" in pod db-0 exited with 3: <output>`.
pub fn describe(r: &HookResult) -> String {
    let phase = match r.phase {
        HookPhase::Pre => "pre",
        HookPhase::Post => "post",
    };
    let place = r
        .pod
        .as_deref()
        .map_or_else(String::new, |p| format!(" in pod {p}"));
    let what = match (r.outcome, r.exit_code) {
        (HookOutcome::Succeeded, _) => "succeeded".to_owned(),
        (HookOutcome::Failed, Some(code)) => format!("exited with {code}"),
        (HookOutcome::Failed, None) => "could not run".to_owned(),
        (HookOutcome::TimedOut, _) => format!("timed out after {} ms", r.duration_ms),
        (HookOutcome::NoPod, _) => "found no running pod with its podLabels".to_owned(),
    };
    let output = if r.output.is_empty() {
        String::new()
    } else {
        format!(": {}", r.output.lines().last().unwrap_or_default())
    };
    format!("{phase} hook \"{}\"{place} {what}{output}", r.hook)
}

#[cfg(test)]
mod tests {
    use jiff::Timestamp;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;

    fn hook(name: &str, app: &str, pre: &str, post: &str, on_error: OnError) -> Hook {
        let cmd = |c: &str| {
            if c.is_empty() {
                vec![]
            } else {
                vec!["sh".into(), "-c".into(), c.into()]
            }
        };
        Hook {
            name: name.into(),
            pod_labels: [("app".to_owned(), app.to_owned())].into(),
            container: None,
            pre: cmd(pre),
            post: cmd(post),
            timeout: Some("5s".into()),
            on_error,
        }
    }

    fn pod(name: &str, app: &str) -> Target {
        Target {
            name: name.into(),
            labels: [
                ("app".to_owned(), app.to_owned()),
                ("x".to_owned(), "y".to_owned()),
            ]
            .into(),
        }
    }

    fn where_(steps: &[Step]) -> Vec<(String, Option<String>)> {
        steps
            .iter()
            .map(|s| (s.hook.clone(), s.pod.clone()))
            .collect()
    }

    #[test]
    fn pre_runs_in_listed_order_in_every_matching_pod_and_post_in_reverse() {
        let hooks = [
            hook("lock", "db", "lock", "unlock", OnError::Fail),
            hook("flush", "web", "flush", "", OnError::Continue),
            hook("note", "none", "", "note", OnError::Continue),
        ];
        let pods = [pod("db-1", "db"), pod("web-0", "web"), pod("db-0", "db")];
        let s = |h: &str, p: Option<&str>| (h.to_owned(), p.map(str::to_owned));
        assert_eq!(
            where_(&steps(&hooks, HookPhase::Pre, &pods)),
            [
                s("lock", Some("db-0")),
                s("lock", Some("db-1")),
                s("flush", Some("web-0"))
            ]
        );
        assert_eq!(
            where_(&steps(&hooks, HookPhase::Post, &pods)),
            [
                s("note", None),
                s("lock", Some("db-0")),
                s("lock", Some("db-1"))
            ],
            "a hook whose pods are gone is still recorded, as NoPod"
        );
        let first = &steps(&hooks, HookPhase::Pre, &pods)[0];
        assert_eq!(first.timeout, Duration::from_secs(5));
        assert_eq!(first.command, ["sh", "-c", "lock"]);
    }

    fn result(hook: &str, phase: HookPhase, outcome: HookOutcome) -> HookResult {
        HookResult {
            hook: hook.into(),
            phase,
            pod: Some("db-0".into()),
            outcome,
            exit_code: (outcome == HookOutcome::Failed).then_some(3),
            start_time: Time(Timestamp::UNIX_EPOCH),
            duration_ms: 12,
            output: "line one\nERROR: no lock".into(),
        }
    }

    #[test]
    fn only_a_failed_pre_command_of_a_hook_that_fails_on_error_stops_the_run() {
        let hooks = [
            hook("lock", "db", "lock", "unlock", OnError::Fail),
            hook("flush", "web", "flush", "", OnError::Continue),
        ];
        use HookOutcome::*;
        use HookPhase::*;
        let cases: [(&[HookResult], Option<&str>); 5] = [
            (&[result("lock", Pre, Succeeded)], None),
            (&[result("flush", Pre, Failed)], None),
            (&[result("lock", Post, Failed)], None),
            (
                &[result("flush", Pre, TimedOut), result("lock", Pre, Failed)],
                Some("pre hook \"lock\" in pod db-0 exited with 3: ERROR: no lock"),
            ),
            (
                &[result("lock", Pre, NoPod)],
                Some(
                    "pre hook \"lock\" in pod db-0 found no running pod with its podLabels: ERROR: no lock",
                ),
            ),
        ];
        for (results, want) in cases {
            assert_eq!(
                stops_the_run(&hooks, results).as_deref(),
                want,
                "{results:?}"
            );
        }
        assert_eq!(
            failures(&[
                result("lock", Pre, Succeeded),
                result("lock", Post, TimedOut)
            ]),
            ["post hook \"lock\" in pod db-0 timed out after 12 ms: ERROR: no lock"]
        );
    }

    #[test]
    fn post_is_owed_by_hooks_whose_pre_ran_and_by_every_hook_after_a_pre_cut_short() {
        let hooks = [
            hook("freeze", "db", "freeze", "thaw", OnError::Fail),
            hook("flush", "web", "flush", "resume", OnError::Fail),
            hook("note", "none", "", "note", OnError::Continue),
        ];
        let names = |h: Vec<Hook>| h.into_iter().map(|h| h.name).collect::<Vec<_>>();
        let ran = [result("freeze", HookPhase::Pre, HookOutcome::Succeeded)];
        assert_eq!(names(owed(&hooks, &ran, false)), ["freeze", "note"]);
        assert_eq!(
            names(owed(&hooks, &[], true)),
            ["freeze", "flush", "note"],
            "which pre ran before the restart is not known: the freeze must be thawed"
        );
    }
}
