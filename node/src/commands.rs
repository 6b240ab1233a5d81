//! Commands operators ask nodes to run (`fleetdeck command run ACTION`). A
//! node runs only actions named in its own effective config
//! (`actions.<name> = {cmd, timeout_s}`), never a command line from the
//! network; each command runs at most once per node, across restarts, and
//! its exit code and output tail go into the node's own command results
//! register (`fleetdeck_store::results`, signed by its key and sent to the
//! people replicas it is connected to), not into the fleet document.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use fleetdeck_store::document::CommandResult;
use fleetdeck_store::{NodeId, now_ms};
use serde_json::Value;

use crate::command::CmdSpec;

/// A command seen this long after it was issued is not run (a node added
/// next month must not replay last month's restarts).
pub const COMMAND_TTL_MS: i64 = 24 * 60 * 60 * 1000;
const LEDGER: &str = "commands.json";

/// The ids of commands this node has started: written before a command
/// runs, so a crash mid-command never runs it twice.
pub struct Ledger {
    path: PathBuf,
    started: BTreeSet<String>,
}

impl Ledger {
    pub fn load(root: &Path) -> Ledger {
        let path = root.join(LEDGER);
        let started = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Ledger { path, started }
    }

    pub fn contains(&self, id: &str) -> bool {
        self.started.contains(id)
    }

    /// Records `id` durably; false if it was already there.
    pub fn start(&mut self, id: &str) -> std::io::Result<bool> {
        if !self.started.insert(id.to_string()) {
            return Ok(false);
        }
        let tmp = self.path.with_extension("tmp");
        let bytes = serde_json::to_vec(&self.started).unwrap_or_default();
        let f = std::fs::File::create(&tmp)?;
        std::io::Write::write_all(&mut &f, &bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &self.path)?;
        Ok(true)
    }
}

/// Runs one command on this node and says what happened.
pub async fn execute(action: &str, issued_ms: i64, tree: &Value) -> CommandResult {
    let refused = |why: String| CommandResult {
        exit_code: None,
        ok: false,
        output: why,
        at_ms: now_ms(),
    };
    if now_ms() - issued_ms > COMMAND_TTL_MS {
        return refused("expired: issued more than 24 hours before this node saw it".into());
    }
    let Some(spec) = tree.get("actions").and_then(|a| a.get(action)) else {
        return refused(format!(
            "action {action} is not in this node's config (actions.{action})"
        ));
    };
    let spec = match CmdSpec::from_value(spec) {
        Ok(s) => s,
        Err(e) => return refused(format!("actions.{action}: {e}")),
    };
    let r = spec.run(&[("FLEETDECK_ACTION", action.to_string())]).await;
    CommandResult {
        exit_code: r.code,
        ok: r.ok,
        output: r.output,
        at_ms: now_ms(),
    }
}

/// Commands for `node` that it has not started yet.
pub fn pending<'a>(
    st: &'a fleetdeck_store::document::FleetState,
    node: &NodeId,
    ledger: &Ledger,
) -> Vec<(&'a String, &'a fleetdeck_store::document::CommandRecord)> {
    let Ok(n) = st.node(node) else {
        return Vec::new();
    };
    st.commands
        .iter()
        .filter(|(id, c)| c.targets(node, &n.site) && !ledger.contains(id))
        .filter(|(id, _)| {
            !st.command_results
                .get(*id)
                .is_some_and(|r| r.contains_key(node.as_str()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn only_configured_actions_run_and_old_commands_expire() {
        let tree = json!({"actions": {"restart": {"cmd": "echo restarted $FLEETDECK_ACTION", "timeout_s": 5}}});
        let r = execute("restart", now_ms(), &tree).await;
        assert!(
            r.ok && r.output == "restarted restart" && r.exit_code == Some(0),
            "{r:?}"
        );
        let r = execute("rm-rf", now_ms(), &tree).await;
        assert!(!r.ok && r.exit_code.is_none() && r.output.contains("not in this node's config"));
        let r = execute("restart", now_ms() - COMMAND_TTL_MS - 1, &tree).await;
        assert!(!r.ok && r.output.starts_with("expired"));
    }

    #[test]
    fn the_ledger_remembers_started_commands_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = Ledger::load(dir.path());
        assert!(l.start("c1").unwrap());
        assert!(!l.start("c1").unwrap());
        let l = Ledger::load(dir.path());
        assert!(l.contains("c1") && !l.contains("c2"));
    }
}
