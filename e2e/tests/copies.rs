//! Copies (3-2-1): backups land on a filesystem claim (the seeds' staging area) and a copy
//! follows each run into a bucket. While the bucket is away the copy is pending and says
//! why; once it is there the copy catches up on its own; and the copy alone rebuilds the
//! namespace after it is lost.
#![allow(clippy::unwrap_used)] // reason: tests

use holdfast_e2e::harness::Cluster;
use holdfast_e2e::scenario::{PASSPHRASE, RUN, Shop, Target, recover_lost_namespace, set_manifest};
use holdfast_e2e::tree;
use serde_json::Value;

/// The copy's own Secret and StorageSet `vault`: a bucket of the test's S3 server.
fn vault(c: &Cluster, bucket: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: vault-creds}}\nstringData:\n  AWS_ACCESS_KEY_ID: {}\n  AWS_SECRET_ACCESS_KEY: {}\n---\n\
         apiVersion: holdfast.io/v1alpha1\nkind: StorageSet\nmetadata: {{name: vault}}\nspec:\n  s3:\n    bucket: {bucket}\n    endpoint: {}\n    forcePathStyle: true\n    region: us-east-1\n    credentialsSecretRef: {{name: vault-creds}}\n",
        c.s3_access_key, c.s3_secret_key, c.s3_endpoint
    )
}

const COPIES: &str = "  copies:\n  - name: vault\n    storageSetRef: {name: vault}\n";

/// The copy's entry in the set's status, once `check` accepts it.
async fn copy_state(shop: &Shop, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    shop.wait("BackupSet", "shop", what, RUN * 2, |o| {
        let c = o.pointer("/status/copies/0")?;
        check(c).then(|| c.clone())
    })
    .await
}

#[tokio::test]
#[ignore = "needs the local control plane: bash e2e/run.sh"]
async fn a_copy_waits_for_its_bucket_catches_up_on_its_own_and_alone_rebuilds_the_namespace() {
    let shop = Shop::new("copy", Target::Filesystem).await;
    let bucket = format!("{}-vault", shop.ns);
    shop.apply(&vault(&shop.c, &bucket));
    shop.apply(&set_manifest(COPIES));
    let first = shop.run(COPIES, "one", "full").await;
    assert_eq!(first["phase"], "Complete", "{first:#}");

    // The bucket is away: the copy fails, says why, and waits before trying again.
    let pending = copy_state(&shop, "the copy to fail on the missing bucket", |c| {
        c["consecutiveFailures"].as_u64() >= Some(1)
    })
    .await;
    let why = pending["lastError"].as_str().unwrap_or_default();
    assert!(why.contains(&bucket), "{pending:#}");
    assert!(pending.get("caughtUpTo").is_none(), "{pending:#}");
    let set = shop.get("BackupSet", "shop").await.unwrap();
    assert_eq!(
        holdfast_e2e::harness::condition(&set, "Ready").map(|c| c.0),
        Some("True".into()),
        "a copy that cannot reach its bucket does not stop the backups"
    );

    // The bucket is back: the next attempt (after its pause) copies the run.
    std::fs::create_dir_all(shop.c.s3_dir.join(&bucket)).unwrap();
    let caught_up = copy_state(&shop, "the copy to catch up", |c| {
        c.get("caughtUpTo").is_some()
    })
    .await;
    assert_eq!(caught_up["consecutiveFailures"], 0, "{caught_up:#}");
    assert_eq!(caught_up["runsCopied"], 1, "{caught_up:#}");
    assert!(
        caught_up["bytesMoved"].as_u64().unwrap() > 0,
        "{caught_up:#}"
    );

    // The next run follows by itself, and moves only what changed.
    std::fs::write(shop.data.join("docs/after.txt"), b"second run").unwrap();
    let second = shop.run(COPIES, "two", "incr").await;
    assert_eq!(second["phase"], "Complete", "{second:#}");
    let before = caught_up["caughtUpTo"].as_str().unwrap().to_owned();
    let followed = copy_state(&shop, "the copy to follow the second run", |c| {
        c["caughtUpTo"]
            .as_str()
            .is_some_and(|t| t > before.as_str())
    })
    .await;
    assert_eq!(followed["runsCopied"], 1, "{followed:#}");
    assert!(
        followed["bytesMoved"].as_u64().unwrap() * 10 < caught_up["bytesMoved"].as_u64().unwrap(),
        "an incremental moves a fraction of the full: {followed:#} vs {caught_up:#}"
    );
    let newest = tree::snapshot(&shop.data);
    let (c, ns) = (shop.c.clone(), shop.ns.clone());

    // The namespace is lost, with the claim that held the set's own repository.
    drop(shop);
    let key = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: shop-key}}\nstringData: {{passphrase: {PASSPHRASE:?}}}\n"
    );
    let (status, target) = recover_lost_namespace(
        &c,
        &ns,
        &format!("{key}---\n{}", vault(&c, &bucket)),
        "vault",
    )
    .await;
    assert_eq!(status["phase"], "Completed", "{status:#}");
    assert!(
        status["run"].as_str().unwrap().starts_with("incr-"),
        "the newest run, from the copy: {status:#}"
    );
    tree::assert_same(&newest, &tree::snapshot(&target));
}
