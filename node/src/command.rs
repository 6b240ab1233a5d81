//! Running a configured command (a reload, a health check, a named check, an
//! allowlisted action) with a timeout, keeping the tail of its output. A
//! command comes from the fleet's own config, never from the network: a
//! string runs through `sh -c`, a list is an argv.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::AsyncReadExt;

/// Longest output tail kept (bytes).
pub const TAIL: usize = 2048;
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Debug, PartialEq)]
pub struct CmdSpec {
    pub argv: Vec<String>,
    pub timeout: Duration,
}

#[derive(Clone, Debug, PartialEq)]
pub struct CmdResult {
    pub ok: bool,
    pub code: Option<i32>,
    pub timed_out: bool,
    pub output: String,
    pub duration: Duration,
}

impl CmdSpec {
    /// `"systemctl reload frigate"`, `["systemctl", "reload", "frigate"]`
    /// or `{cmd: …, timeout_s: N}`.
    pub fn from_value(v: &Value) -> Result<CmdSpec, String> {
        let (cmd, timeout) = match v {
            Value::Object(m) => {
                let t = match m.get("timeout_s") {
                    None => DEFAULT_TIMEOUT,
                    Some(t) => match t.as_u64() {
                        Some(s) if (1..=3600).contains(&s) => Duration::from_secs(s),
                        _ => {
                            return Err(format!(
                                "timeout_s = {t} is not valid: expected whole seconds from 1 to 3600"
                            ));
                        }
                    },
                };
                (m.get("cmd").ok_or("missing cmd")?, t)
            }
            other => (other, DEFAULT_TIMEOUT),
        };
        let argv = match cmd {
            Value::String(s) if !s.trim().is_empty() => vec!["sh".into(), "-c".into(), s.clone()],
            Value::Array(items) if !items.is_empty() => items
                .iter()
                .map(|i| {
                    i.as_str()
                        .map(str::to_string)
                        .ok_or("every argv item must be text")
                })
                .collect::<Result<_, _>>()?,
            _ => return Err("cmd must be a command line (text) or an argv list".into()),
        };
        Ok(CmdSpec { argv, timeout })
    }

    pub async fn run(&self, env: &[(&str, String)]) -> CmdResult {
        let start = Instant::now();
        let mut cmd = tokio::process::Command::new(&self.argv[0]);
        cmd.args(&self.argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                return CmdResult {
                    ok: false,
                    code: None,
                    timed_out: false,
                    output: format!("could not start {}: {e}", self.argv[0]),
                    duration: start.elapsed(),
                };
            }
        };
        let mut stdout = child.stdout.take();
        let mut stderr = child.stderr.take();
        let collect = async {
            let mut out = Vec::new();
            let mut err = Vec::new();
            let a = async {
                if let Some(s) = stdout.as_mut() {
                    let _ = s.read_to_end(&mut out).await;
                }
            };
            let b = async {
                if let Some(s) = stderr.as_mut() {
                    let _ = s.read_to_end(&mut err).await;
                }
            };
            tokio::join!(a, b);
            out.extend_from_slice(&err);
            out
        };
        let run = async {
            let output = collect.await;
            (child.wait().await, output)
        };
        match tokio::time::timeout(self.timeout, run).await {
            Ok((status, output)) => {
                let code = status.as_ref().ok().and_then(|s| s.code());
                CmdResult {
                    ok: status.is_ok_and(|s| s.success()),
                    code,
                    timed_out: false,
                    output: tail(&output),
                    duration: start.elapsed(),
                }
            }
            // Dropping the future kills the child (kill_on_drop).
            Err(_) => CmdResult {
                ok: false,
                code: None,
                timed_out: true,
                output: format!("timed out after {}s", self.timeout.as_secs()),
                duration: start.elapsed(),
            },
        }
    }
}

fn tail(bytes: &[u8]) -> String {
    let start = bytes.len().saturating_sub(TAIL);
    String::from_utf8_lossy(&bytes[start..])
        .trim_end()
        .to_string()
}

impl CmdResult {
    /// One line for a report: the exit and the last line of output.
    pub fn summary(&self) -> String {
        if self.timed_out {
            return self.output.clone();
        }
        let last = self.output.lines().last().unwrap_or_default();
        match self.code {
            Some(c) if last.is_empty() => format!("exit status {c}"),
            Some(c) => format!("exit status {c}: {last}"),
            None => last.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn commands_report_exit_output_and_time_out() {
        let ok = CmdSpec::from_value(&json!("echo hello; echo oops >&2"))
            .unwrap()
            .run(&[])
            .await;
        assert!(ok.ok && ok.output.contains("hello") && ok.output.contains("oops"));
        let bad = CmdSpec::from_value(&json!(["sh", "-c", "echo broken; exit 3"]))
            .unwrap()
            .run(&[])
            .await;
        assert_eq!((bad.ok, bad.code), (false, Some(3)));
        assert_eq!(bad.summary(), "exit status 3: broken");
        let slow = CmdSpec::from_value(&json!({"cmd": "sleep 5", "timeout_s": 1})).unwrap();
        let r = slow.run(&[]).await;
        assert!(r.timed_out && !r.ok && r.duration < Duration::from_secs(3));
        let env = CmdSpec::from_value(&json!("echo $FLEETDECK_RELEASE")).unwrap();
        let r = env.run(&[("FLEETDECK_RELEASE", "/x/y".into())]).await;
        assert_eq!(r.output, "/x/y");
        let missing = CmdSpec::from_value(&json!(["/no/such/program"]))
            .unwrap()
            .run(&[])
            .await;
        assert!(!missing.ok && missing.output.contains("could not start"));
    }

    #[test]
    fn bad_specs_are_named() {
        assert!(CmdSpec::from_value(&json!(5)).is_err());
        assert!(CmdSpec::from_value(&json!([])).is_err());
        assert!(
            CmdSpec::from_value(&json!({"cmd": "x", "timeout_s": 0}))
                .unwrap_err()
                .contains("timeout_s")
        );
    }
}
