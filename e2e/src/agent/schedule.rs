//! Choosing a node for a pending pod, as far as the scenarios need: `nodeName`, node
//! selectors and required node affinity (`matchExpressions` over labels, `matchFields` over
//! `metadata.name`). A pure function of the pod and the nodes, table-tested.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{NodeSelectorRequirement, NodeSelectorTerm, PodSpec};

/// A node as the scheduler sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

/// Why no node fits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no node fits: {0}")]
pub struct Unschedulable(pub String);

/// The node a pod goes to: its `nodeName` if set, else the first node (in name order) that
/// matches its node selector and required node affinity. Preferred affinity, taints and
/// resources are not considered (see e2e/README.md).
pub fn choose_node(spec: &PodSpec, nodes: &[NodeInfo]) -> Result<String, Unschedulable> {
    if let Some(name) = spec.node_name.as_ref().filter(|n| !n.is_empty()) {
        return if nodes.iter().any(|n| &n.name == name) {
            Ok(name.clone())
        } else {
            Err(Unschedulable(format!(
                "nodeName {name} is not a node of this agent"
            )))
        };
    }
    let mut sorted: Vec<&NodeInfo> = nodes.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    sorted
        .into_iter()
        .find(|n| fits(spec, n))
        .map(|n| n.name.clone())
        .ok_or_else(|| Unschedulable(describe_constraints(spec)))
}

fn fits(spec: &PodSpec, node: &NodeInfo) -> bool {
    let selector_ok = spec
        .node_selector
        .as_ref()
        .is_none_or(|sel| sel.iter().all(|(k, v)| node.labels.get(k) == Some(v)));
    let terms = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| {
            na.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .map(|r| r.node_selector_terms.as_slice());
    // Terms are ORed; within a term every requirement must hold.
    let affinity_ok = terms.is_none_or(|terms| terms.iter().any(|t| term_matches(t, node)));
    selector_ok && affinity_ok
}

fn term_matches(term: &NodeSelectorTerm, node: &NodeInfo) -> bool {
    let exprs = term.match_expressions.iter().flatten();
    let fields = term.match_fields.iter().flatten();
    let mut any = false;
    for r in exprs {
        any = true;
        if !requirement_holds(r, node.labels.get(&r.key).map(String::as_str)) {
            return false;
        }
    }
    for r in fields {
        any = true;
        let value = (r.key == "metadata.name").then_some(node.name.as_str());
        if !requirement_holds(r, value) {
            return false;
        }
    }
    // An empty term matches nothing (as in Kubernetes).
    any
}

fn requirement_holds(r: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = r.values.as_deref().unwrap_or_default();
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| !values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(v), Some(bound)) = (
                value.and_then(|v| v.parse::<i64>().ok()),
                values.first().and_then(|b| b.parse::<i64>().ok()),
            ) else {
                return false;
            };
            if r.operator == "Gt" {
                v > bound
            } else {
                v < bound
            }
        }
        _ => false,
    }
}

fn describe_constraints(spec: &PodSpec) -> String {
    let mut parts = Vec::new();
    if let Some(sel) = &spec.node_selector {
        parts.push(format!("nodeSelector {sel:?}"));
    }
    if spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| {
            na.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .is_some()
    {
        parts.push("required node affinity".into());
    }
    if parts.is_empty() {
        "the agent has no nodes".into()
    } else {
        format!("{} matches no node", parts.join(" and "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Affinity, NodeAffinity, NodeSelector};

    fn nodes() -> Vec<NodeInfo> {
        ["node-b", "node-a"]
            .iter()
            .map(|n| NodeInfo {
                name: (*n).into(),
                labels: BTreeMap::from([
                    ("kubernetes.io/hostname".to_owned(), (*n).to_owned()),
                    (
                        "zone".to_owned(),
                        if *n == "node-a" { "1" } else { "2" }.to_owned(),
                    ),
                ]),
            })
            .collect()
    }

    fn req(key: &str, op: &str, values: &[&str]) -> NodeSelectorRequirement {
        NodeSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: (!values.is_empty()).then(|| values.iter().map(|v| (*v).to_owned()).collect()),
        }
    }

    fn with_affinity(terms: Vec<NodeSelectorTerm>) -> PodSpec {
        PodSpec {
            affinity: Some(Affinity {
                node_affinity: Some(NodeAffinity {
                    required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                        node_selector_terms: terms,
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn exprs(r: Vec<NodeSelectorRequirement>) -> NodeSelectorTerm {
        NodeSelectorTerm {
            match_expressions: Some(r),
            match_fields: None,
        }
    }

    #[test]
    fn choose_node_table() {
        let cases: Vec<(&str, PodSpec, Result<&str, ()>)> = vec![
            (
                "no constraint: first node by name",
                PodSpec::default(),
                Ok("node-a"),
            ),
            (
                "nodeName wins",
                PodSpec {
                    node_name: Some("node-b".into()),
                    ..Default::default()
                },
                Ok("node-b"),
            ),
            (
                "nodeName of another node",
                PodSpec {
                    node_name: Some("node-z".into()),
                    ..Default::default()
                },
                Err(()),
            ),
            (
                "node selector",
                PodSpec {
                    node_selector: Some(BTreeMap::from([("zone".into(), "2".into())])),
                    ..Default::default()
                },
                Ok("node-b"),
            ),
            (
                "selector matching nothing",
                PodSpec {
                    node_selector: Some(BTreeMap::from([("zone".into(), "3".into())])),
                    ..Default::default()
                },
                Err(()),
            ),
            (
                "affinity In on hostname (RWO co-scheduling)",
                with_affinity(vec![exprs(vec![req(
                    "kubernetes.io/hostname",
                    "In",
                    &["node-b"],
                )])]),
                Ok("node-b"),
            ),
            (
                "affinity NotIn",
                with_affinity(vec![exprs(vec![req("zone", "NotIn", &["1"])])]),
                Ok("node-b"),
            ),
            (
                "affinity DoesNotExist",
                with_affinity(vec![exprs(vec![req("gpu", "DoesNotExist", &[])])]),
                Ok("node-a"),
            ),
            (
                "affinity Exists on a missing label",
                with_affinity(vec![exprs(vec![req("gpu", "Exists", &[])])]),
                Err(()),
            ),
            (
                "affinity Gt",
                with_affinity(vec![exprs(vec![req("zone", "Gt", &["1"])])]),
                Ok("node-b"),
            ),
            (
                "terms are ORed",
                with_affinity(vec![
                    exprs(vec![req("zone", "In", &["9"])]),
                    exprs(vec![req("zone", "In", &["2"])]),
                ]),
                Ok("node-b"),
            ),
            (
                "requirements within a term are ANDed",
                with_affinity(vec![exprs(vec![
                    req("zone", "In", &["1"]),
                    req("kubernetes.io/hostname", "In", &["node-b"]),
                ])]),
                Err(()),
            ),
            (
                "matchFields on metadata.name",
                with_affinity(vec![NodeSelectorTerm {
                    match_expressions: None,
                    match_fields: Some(vec![req("metadata.name", "In", &["node-b"])]),
                }]),
                Ok("node-b"),
            ),
            (
                "an empty term matches nothing",
                with_affinity(vec![NodeSelectorTerm::default()]),
                Err(()),
            ),
        ];
        for (what, spec, want) in cases {
            let got = choose_node(&spec, &nodes());
            match want {
                Ok(n) => assert_eq!(got.as_deref(), Ok(n), "{what}"),
                Err(()) => assert!(got.is_err(), "{what}: {got:?}"),
            }
        }
    }
}
