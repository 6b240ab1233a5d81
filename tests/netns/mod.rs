//! What the tests in network namespaces (`nat.rs`, `tunnel.rs`) share:
//! running a program inside a namespace, namespaces deleted however a test
//! ends, a `fleetdeck` process with its log in a file, and a bounded wait.
//! Each test uses a part of it.
#![allow(dead_code)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Runs a program; whether it succeeded (its output dropped).
pub fn sh(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `ip netns exec NS PROGRAM ARGS…`, asserted to succeed.
pub fn inside(ns: &str, program: &str, args: &[&str]) {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, program])
        .args(args)
        .output()
        .expect("ip runs");
    assert!(
        out.status.success(),
        "in {ns}: {program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Asks `f` every 250 ms until it says yes (how long that took) or
/// `limit` has passed (None).
pub fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    None
}

/// Namespaces made by a test, deleted (last made first) when this drops,
/// however the test ends.
#[derive(Default)]
pub struct Namespaces {
    made: Vec<String>,
}

impl Namespaces {
    /// Makes namespace `ns`, its loopback up.
    pub fn add(&mut self, ns: &str) {
        assert!(sh("ip", &["netns", "add", ns]), "ip netns add {ns}");
        self.made.push(ns.to_string());
        inside(ns, "ip", &["link", "set", "lo", "up"]);
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in self.made.iter().rev() {
            let _ = sh("ip", &["netns", "del", ns]);
        }
    }
}

/// A long-running `fleetdeck` in a namespace, its stderr in a file;
/// killed however the test ends.
pub struct Proc {
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    /// `fleetdeck --data DIR ARGS…` in namespace `ns`, logging at
    /// `rust_log` (its default when None), stdout to `stdout`.
    pub fn spawn(
        ns: &str,
        dir: &Path,
        args: &[&str],
        log: PathBuf,
        stdout: Stdio,
        rust_log: Option<&str>,
    ) -> Proc {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns, env!("CARGO_BIN_EXE_fleetdeck")])
            .env_remove("FLEETDECK_DATA")
            .env_remove("RUST_LOG")
            .arg("--data")
            .arg(dir)
            .args(args)
            .stdout(stdout)
            .stderr(File::create(&log).expect("a log file"));
        if let Some(level) = rust_log {
            cmd.env("RUST_LOG", level);
        }
        let child = cmd.spawn().expect("ip netns exec runs");
        Proc { child, log }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM (as systemd and Ctrl-C stop it) and a bounded wait for the
    /// exit.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
