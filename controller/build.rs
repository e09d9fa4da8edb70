//! Stamps the binary with the commit it was built from and the build date, for
//! `holdfast --version`. The image build passes both (`HOLDFAST_COMMIT`,
//! `HOLDFAST_BUILD_DATE`); a build from a checkout asks git. The date is the commit's, never
//! the clock's, so the same source builds the same binary.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
}

fn main() {
    for var in ["HOLDFAST_COMMIT", "HOLDFAST_BUILD_DATE"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        println!("cargo:rerun-if-changed={dir}/HEAD");
        println!("cargo:rerun-if-changed={dir}/refs/heads");
        println!("cargo:rerun-if-changed={dir}/packed-refs");
    }
    let given = |var: &str| std::env::var(var).ok().filter(|s| !s.is_empty());
    let commit = given("HOLDFAST_COMMIT")
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    let date = given("HOLDFAST_BUILD_DATE")
        .or_else(|| git(&["log", "-1", "--date=short", "--format=%cd"]))
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=HOLDFAST_COMMIT={commit}");
    println!("cargo:rustc-env=HOLDFAST_BUILD_DATE={date}");
}
