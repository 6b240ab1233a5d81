//! What a node reports about itself every `heartbeat.interval_s`: real
//! metrics from the host (CPU, memory, disks, load, uptime, temperature),
//! the TLS certificates and backup status file its config names, and the
//! named check commands its config lists.
//!
//! Config keys read here (all optional):
//! - `checks.tls`: name → path of a PEM certificate
//! - `checks.backup_status`: path of a backup status file (JSON, as the
//!   tenant backup script writes it: `last_run` RFC 3339, `databases`:
//!   name → `{status: "success" | "failed", error}`)
//! - `checks.commands`: name → command (`"…"`, `[argv…]` or `{cmd, timeout_s}`)

use std::path::{Path, PathBuf};

use fleetdeck_store::health::{BackupStatus, CheckResult, DbBackup, DiskUsage, Metrics, TlsCert};
use serde_json::Value;
use sysinfo::{Components, Disks, System};

use crate::command::CmdSpec;

/// Samples the host. Keep one for the daemon's life: CPU usage is measured
/// between two refreshes.
pub struct Probe {
    /// None where sysinfo cannot read this OS: the node still reports.
    sys: Option<System>,
    disks: Option<Disks>,
    components: Option<Components>,
}

impl Default for Probe {
    fn default() -> Self {
        Self::new()
    }
}

impl Probe {
    pub fn new() -> Probe {
        let mut sys = System::new().ok();
        if let Some(s) = sys.as_mut() {
            s.refresh_cpu_usage();
            s.refresh_memory();
        }
        Probe {
            sys,
            disks: Disks::new_with_refreshed_list().ok(),
            components: Components::new_with_refreshed_list().ok(),
        }
    }

    pub fn metrics(&mut self) -> Metrics {
        let (cpu_pct, mem_pct) = match self.sys.as_mut() {
            Some(sys) => {
                sys.refresh_cpu_usage();
                sys.refresh_memory();
                let total = sys.total_memory();
                let mem = if total == 0 {
                    0.0
                } else {
                    sys.used_memory() as f64 * 100.0 / total as f64
                };
                (f64::from(sys.global_cpu_usage()).clamp(0.0, 100.0), mem)
            }
            None => (0.0, 0.0),
        };
        let mut disks = Vec::new();
        if let Some(d) = self.disks.as_mut() {
            d.refresh(true);
            for disk in d.iter() {
                let total = disk.total_space();
                if total == 0 {
                    continue;
                }
                let used = total.saturating_sub(disk.available_space());
                disks.push(DiskUsage {
                    mount: disk.mount_point().display().to_string(),
                    used_pct: used as f64 * 100.0 / total as f64,
                });
            }
        }
        disks.sort_by(|a, b| a.mount.cmp(&b.mount));
        disks.dedup_by(|a, b| a.mount == b.mount);
        let temp_c = self.components.as_mut().and_then(|c| {
            c.refresh(true);
            c.iter()
                .filter_map(|x| x.temperature())
                .filter(|t| t.is_finite())
                .fold(None, |m: Option<f32>, t| Some(m.map_or(t, |m| m.max(t))))
                .map(f64::from)
        });
        Metrics {
            cpu_pct,
            mem_pct,
            disks,
            load1: System::load_average().map(|l| l.one).unwrap_or(0.0),
            uptime_s: System::uptime().unwrap_or(0),
            temp_c,
        }
    }
}

/// The checks a node's config asks for.
#[derive(Clone, Debug, Default)]
pub struct Checks {
    pub tls: Vec<(String, PathBuf)>,
    pub backup_status: Option<PathBuf>,
    pub commands: Vec<(String, CmdSpec)>,
    /// Entries of `checks` that could not be understood, as check results
    /// so the operator sees them.
    pub invalid: Vec<CheckResult>,
}

impl Checks {
    pub fn from_config(tree: &Value) -> Checks {
        let mut c = Checks::default();
        let checks = tree.get("checks");
        let bad = |name: &str, why: String| CheckResult {
            name: name.to_string(),
            ok: false,
            output: why,
        };
        if let Some(Value::Object(tls)) = checks.and_then(|c| c.get("tls")) {
            for (name, path) in tls {
                match path.as_str() {
                    Some(p) => c.tls.push((name.clone(), PathBuf::from(p))),
                    None => c.invalid.push(bad(
                        &format!("tls.{name}"),
                        "checks.tls values are file paths".into(),
                    )),
                }
            }
        }
        if let Some(p) = checks.and_then(|c| c.get("backup_status")) {
            match p.as_str() {
                Some(p) => c.backup_status = Some(PathBuf::from(p)),
                None => c.invalid.push(bad(
                    "backup_status",
                    "checks.backup_status is a file path".into(),
                )),
            }
        }
        if let Some(Value::Object(cmds)) = checks.and_then(|c| c.get("commands")) {
            for (name, spec) in cmds {
                match CmdSpec::from_value(spec) {
                    Ok(s) => c.commands.push((name.clone(), s)),
                    Err(e) => c
                        .invalid
                        .push(bad(name, format!("checks.commands.{name}: {e}"))),
                }
            }
        }
        c
    }

    /// Runs the command checks and reads certificate and backup files.
    pub async fn run(&self) -> (Vec<CheckResult>, Vec<TlsCert>, Option<BackupStatus>) {
        let mut results = self.invalid.clone();
        for (name, spec) in &self.commands {
            let r = spec.run(&[]).await;
            results.push(CheckResult {
                name: name.clone(),
                ok: r.ok,
                output: if r.ok { String::new() } else { r.summary() },
            });
        }
        let mut certs = Vec::new();
        for (name, path) in &self.tls {
            match read_certificate(path) {
                Ok(not_after_ms) => certs.push(TlsCert {
                    name: name.clone(),
                    not_after_ms,
                }),
                Err(e) => results.push(CheckResult {
                    name: format!("tls.{name}"),
                    ok: false,
                    output: e,
                }),
            }
        }
        let backup = match &self.backup_status {
            None => None,
            Some(p) => match read_backup_status(p) {
                Ok(b) => Some(b),
                Err(e) => {
                    results.push(CheckResult {
                        name: "backup_status".into(),
                        ok: false,
                        output: e,
                    });
                    None
                }
            },
        };
        (results, certs, backup)
    }
}

/// The expiry (unix ms) of the first certificate in a PEM file.
pub fn read_certificate(path: &Path) -> Result<i64, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(&bytes)
        .map_err(|e| format!("{}: not a PEM certificate ({e})", path.display()))?;
    let cert = pem
        .parse_x509()
        .map_err(|e| format!("{}: not an X.509 certificate ({e})", path.display()))?;
    Ok(cert.validity().not_after.timestamp().saturating_mul(1000))
}

/// Reads a backup status file: `{"last_run": "2026-02-27T02:15:00Z",
/// "databases": {"ghost": {"status": "success"}, "nextcloud": {"status":
/// "failed", "error": "connection refused"}}}`.
pub fn read_backup_status(path: &Path) -> Result<BackupStatus, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let v: Value = serde_json::from_slice(&bytes)
        .map_err(|e| format!("{}: not JSON ({e})", path.display()))?;
    let last = v
        .get("last_run")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{}: no last_run time", path.display()))?;
    let t = humantime::parse_rfc3339_weak(last).map_err(|e| {
        format!(
            "{}: last_run '{last}' is not an RFC 3339 time ({e})",
            path.display()
        )
    })?;
    let last_run_ms = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let mut databases = Vec::new();
    if let Some(Value::Object(dbs)) = v.get("databases") {
        for (name, d) in dbs {
            let status = d.get("status").and_then(Value::as_str).unwrap_or("unknown");
            databases.push(DbBackup {
                name: name.clone(),
                ok: status == "success",
                error: d.get("error").and_then(Value::as_str).map(str::to_string),
            });
        }
    }
    Ok(BackupStatus {
        last_run_ms,
        databases,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn host_metrics_are_real_numbers() {
        let mut p = Probe::new();
        let m = p.metrics();
        assert!(m.mem_pct > 0.0 && m.mem_pct <= 100.0, "{m:?}");
        assert!(m.uptime_s > 0);
        assert!(!m.disks.is_empty(), "at least the root file system");
        assert!(m.disks.iter().all(|d| (0.0..=100.0).contains(&d.used_pct)));
    }

    #[test]
    fn a_backup_status_file_in_the_tenant_format_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("backup-status.json");
        std::fs::write(
            &p,
            json!({
                "last_run": "2026-02-27T02:15:00Z",
                "duration_seconds": 342,
                "databases": {
                    "chatwoot": {"status": "success", "size_mb": 45},
                    "nextcloud": {"status": "failed", "error": "connection refused"}
                }
            })
            .to_string(),
        )
        .unwrap();
        let b = read_backup_status(&p).unwrap();
        assert_eq!(b.last_run_ms, 1_772_158_500_000);
        let failed: Vec<_> = b.databases.iter().filter(|d| !d.ok).collect();
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].error.as_deref(), Some("connection refused"));
        std::fs::write(&p, "{}").unwrap();
        assert!(read_backup_status(&p).unwrap_err().contains("no last_run"));
    }

    #[test]
    fn a_certificate_file_gives_its_expiry_and_garbage_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("cert.pem");
        let mut params = rcgen::CertificateParams::new(vec!["site.test".to_string()]).unwrap();
        params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(5);
        let key = rcgen::KeyPair::generate().unwrap();
        std::fs::write(&cert, params.self_signed(&key).unwrap().pem()).unwrap();
        let expires = read_certificate(&cert).unwrap();
        let days = (expires - fleetdeck_store::now_ms()) as f64 / 86_400_000.0;
        assert!((4.9..=5.1).contains(&days), "{days}");
        std::fs::write(&cert, "not a cert").unwrap();
        assert!(
            read_certificate(&cert)
                .unwrap_err()
                .contains("not a PEM certificate")
        );
    }

    #[tokio::test]
    async fn configured_checks_run_and_bad_entries_are_reported() {
        let tree = json!({"checks": {
            "commands": {"ok": "true", "frigate": {"cmd": "echo down; exit 2", "timeout_s": 5}, "broken": 5},
            "tls": {"web": "/nonexistent/cert.pem"}
        }});
        let c = Checks::from_config(&tree);
        let (results, certs, backup) = c.run().await;
        let by = |n: &str| results.iter().find(|r| r.name == n).cloned().unwrap();
        assert!(by("ok").ok);
        assert_eq!(by("frigate").output, "exit status 2: down");
        assert!(!by("broken").ok && by("broken").output.contains("checks.commands.broken"));
        assert!(!by("tls.web").ok);
        assert!(certs.is_empty() && backup.is_none());
    }
}
