use super::*;
use crate::api::common::MoverSecurityContext;

fn pod(user: Option<i64>, group: Option<i64>, fs_group: Option<i64>) -> PodIdentity {
    PodIdentity {
        user,
        group,
        fs_group,
        supplemental: Vec::new(),
    }
}

/// What it is, the spec, the claim users, a filesystem repository, the consent, the mover.
type Case<'a> = (
    &'a str,
    Option<&'a Mover>,
    Vec<(&'a str, &'a PodIdentity)>,
    bool,
    Consent,
    MoverPlan,
);

fn restricted(user: i64, group: i64, fs_group: Option<i64>, origin: Origin) -> MoverPlan {
    MoverPlan::Restricted(Identity {
        user,
        group,
        fs_group,
        supplemental: Vec::new(),
        origin,
    })
}

#[test]
fn the_mover_is_the_specs_then_the_claim_users_then_the_images_user_and_root_only_with_consent() {
    let explicit = Mover {
        security_context: Some(MoverSecurityContext {
            run_as_user: 1001,
            run_as_group: None,
            fs_group: Some(2000),
            supplemental_groups: Vec::new(),
        }),
        privileged: false,
    };
    let privileged = Mover {
        security_context: None,
        privileged: true,
    };
    let app = pod(Some(1000), Some(1000), Some(1000));
    let other = pod(Some(999), None, None);
    let image_user = pod(None, None, Some(3000));
    let root = pod(Some(0), Some(0), None);
    let cases: Vec<Case> = vec![
        (
            "the spec's identity wins over the pods'",
            Some(&explicit),
            vec![("app-0", &app)],
            false,
            None,
            restricted(1001, 1001, Some(2000), Origin::Spec),
        ),
        (
            "the spec's identity also replaces a filesystem repository's root",
            Some(&explicit),
            vec![],
            true,
            None,
            restricted(1001, 1001, Some(2000), Origin::Spec),
        ),
        (
            "a pod that mounts the claim names the user and groups",
            None,
            vec![("app-0", &app)],
            false,
            None,
            restricted(1000, 1000, Some(1000), Origin::Pod("app-0".into())),
        ),
        (
            "pods are taken in name order, whatever order the list had",
            None,
            vec![("zz", &app), ("aa", &other)],
            false,
            None,
            restricted(999, 999, None, Origin::Pod("aa".into())),
        ),
        (
            "a pod running as root or as its image's user says nothing",
            None,
            vec![("a", &root), ("b", &image_user)],
            false,
            None,
            restricted(DEFAULT_ID, DEFAULT_ID, None, Origin::Default),
        ),
        (
            "a filesystem repository keeps its root mover without a spec",
            None,
            vec![("app-0", &app)],
            true,
            None,
            MoverPlan::FilesystemRepository,
        ),
        (
            "privileged with the namespace's consent",
            Some(&privileged),
            vec![("app-0", &app)],
            false,
            Some(true),
            MoverPlan::Privileged,
        ),
    ];
    for (what, spec, users, fs, consent, want) in cases {
        assert_eq!(
            choose(spec, &users, fs, "shop", consent),
            Ok(want),
            "{what}"
        );
    }
}

#[test]
fn a_privileged_mover_without_the_namespaces_consent_is_refused_naming_the_annotation() {
    let privileged = Mover {
        security_context: None,
        privileged: true,
    };
    for (consent, says) in [
        (
            Some(false),
            "kubectl annotate namespace shop holdfast.io/privileged-movers=true",
        ),
        (None, "may not read namespace shop"),
    ] {
        let Err(Refusal(why)) = choose(Some(&privileged), &[], true, "shop", consent) else {
            panic!("{consent:?} allowed a privileged mover");
        };
        assert!(why.contains(says), "{why}");
    }
}

#[test]
fn a_namespace_consents_only_with_the_annotation_set_to_true() {
    let ann =
        |v: &str| std::collections::BTreeMap::from([(PRIVILEGED_MOVERS.to_owned(), v.to_owned())]);
    assert!(consents(ann("true").iter()));
    assert!(!consents(ann("yes").iter()));
    assert!(!consents(std::collections::BTreeMap::new().iter()));
}

#[test]
fn status_says_who_the_mover_is_and_why() {
    let plan = restricted(1000, 1000, Some(1000), Origin::Pod("app-0".into()));
    assert_eq!(
        plan.to_string(),
        "restricted uid 1000 gid 1000 fsGroup 1000 (from pod app-0)"
    );
    assert_eq!(
        MoverPlan::Privileged.to_string(),
        "privileged (root, allowed by the namespace)"
    );
}
