//! The binary itself: `check-config` refuses a bad production config naming every problem.
//! Split by flow: here running the binary; `config` (what start-up and `check-config` accept
//! and refuse); `image` (the Docker image's layout and toolchain); `process` (signals during
//! start-up, `healthcheck`).

mod config;
mod image;
mod process;

use std::process::Command;

fn switchboard(env: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchboard"));
    cmd.env_clear()
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run switchboard")
}

/// A fresh empty folder under the system temp dir, removed on drop.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let path =
            std::env::temp_dir().join(format!("switchboard-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run_in(dir: &std::path::Path, env: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchboard"));
    cmd.env_clear().current_dir(dir).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run switchboard")
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The role this binary serves alone in a test, and the variable that sets its listener.
fn one_role() -> (&'static str, &'static str) {
    if cfg!(feature = "auth") {
        ("auth", "AUTH_LISTEN")
    } else {
        ("connectors", "CONNECTORS_LISTEN")
    }
}
