//! Stamps the git revision into the binary for `rollguard --version` (and the image's
//! `org.opencontainers.image.revision` label, which scripts/image.sh sets to the same value):
//! `ROLLGUARD_GIT_REVISION` when set (a build from a source tarball), else `git rev-parse HEAD`,
//! else "unknown" (no git, or not a checkout).

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=ROLLGUARD_GIT_REVISION");
    let revision = std::env::var("ROLLGUARD_GIT_REVISION")
        .ok()
        .filter(|r| !r.trim().is_empty())
        .or_else(git_revision)
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=ROLLGUARD_GIT_REVISION={}", revision.trim());
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_string())
}

/// HEAD's commit, and rerun-if-changed on the files that move when HEAD does (only files that
/// exist: cargo reruns a build script on every build when a watched file is missing).
fn git_revision() -> Option<String> {
    let revision = git(&["rev-parse", "HEAD"])?;
    let mut watched = vec![git(&["rev-parse", "--git-path", "HEAD"])];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.push(git(&["rev-parse", "--git-path", &branch]));
    }
    watched.push(git(&["rev-parse", "--git-path", "packed-refs"]));
    for path in watched.into_iter().flatten() {
        if Path::new(&path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    Some(revision)
}
