//! `doctor`: what an operator needs to know about this data dir's replica:
//! whether it opens, what its store set aside when it loaded (warnings,
//! quarantined change rows), whether it can still sync with current
//! replicas, whether its identity is kept private, and the malformed
//! entries its fleet document skipped. Exits 1 when something needs
//! attention, after printing the whole report.

use std::path::Path;

use anyhow::{Result, bail};
use automerge::ChangeHash;
use fleetdeck_store::replica::IDENTITY_FILE;
use fleetdeck_store::{MemberKey, Replica};
use serde::Serialize;

use super::args::Cli;
use super::data_dir;
use crate::output::{Out, Table, fmt_time, short};

/// The report; `--json` prints it as is (the README names the fields).
#[derive(Serialize)]
struct Report {
    data_dir: String,
    /// Nothing below needs attention.
    healthy: bool,
    /// What needs attention, one sentence each; empty when healthy.
    attention: Vec<String>,
    /// The replica opened.
    opens: bool,
    /// Why it did not open (one sentence), when it did not.
    open_error: Option<String>,
    fleet: Option<String>,
    fleet_id: Option<String>,
    /// This replica's member key, and its name and role when the fleet
    /// lists it.
    member: Option<Member>,
    identity: IdentityCheck,
    /// Holds history made before changes were signed: cannot sync with
    /// current replicas.
    unsigned: bool,
    /// The store's load warnings (rows set aside now, unreadable health).
    warnings: Vec<String>,
    /// Change rows read back from disk that failed their check, oldest first.
    quarantined: Vec<QuarantinedRow>,
    /// Entries of the fleet document skipped because they are malformed.
    problems: Vec<String>,
}

#[derive(Serialize)]
struct Member {
    key: String,
    name: Option<String>,
    role: Option<String>,
}

#[derive(Serialize)]
struct IdentityCheck {
    path: String,
    exists: bool,
    /// Permission bits in octal (`600`), on Unix.
    mode: Option<String>,
    /// Readable by no one but its owner.
    private: bool,
}

#[derive(Serialize)]
struct QuarantinedRow {
    /// The hash stored beside the row (hex); empty when there was none.
    change: String,
    /// The author's member key, when the row decodes.
    author: Option<String>,
    /// The author's member name, when the key is a member.
    author_name: Option<String>,
    reason: String,
    /// When it was set aside (unix ms).
    at_ms: i64,
    /// The replica holds the change again (a peer sent the good one).
    held_again: bool,
}

pub(super) fn doctor(cli: &Cli, out: &Out) -> Result<()> {
    let dir = data_dir(cli)?;
    let report = examine(&dir);
    out.emit(&report, || render(&report))?;
    match report.attention.len() {
        0 => Ok(()),
        1 => bail!("1 thing needs attention (above)"),
        n => bail!("{n} things need attention (above)"),
    }
}

fn examine(dir: &Path) -> Report {
    let identity = identity_check(&dir.join(IDENTITY_FILE));
    let mut report = Report {
        data_dir: dir.display().to_string(),
        healthy: false,
        attention: Vec::new(),
        opens: false,
        open_error: None,
        fleet: None,
        fleet_id: None,
        member: None,
        identity,
        unsigned: false,
        warnings: Vec::new(),
        quarantined: Vec::new(),
        problems: Vec::new(),
    };
    let id = &report.identity;
    if id.exists && !id.private {
        report.attention.push(format!(
            "the identity {} is readable by other users (mode {}): run `chmod 600 {}`",
            id.path,
            id.mode.as_deref().unwrap_or("?"),
            id.path
        ));
    }
    match Replica::open(dir) {
        Ok(mut r) => {
            report.opens = true;
            read_replica(&mut r, &mut report);
        }
        Err(e) => {
            let e = e.to_string();
            report
                .attention
                .push(format!("the replica does not open: {e}"));
            report.open_error = Some(e);
        }
    }
    report.healthy = report.attention.is_empty();
    report
}

/// Fills in what an open replica says about itself.
fn read_replica(r: &mut Replica, report: &mut Report) {
    let st = r.state().clone();
    report.fleet = Some(st.name.clone());
    report.fleet_id = Some(st.fleet_id.clone());
    let me = st.members.get(r.key());
    report.member = Some(Member {
        key: r.key().to_string(),
        name: me.map(|m| m.name.clone()),
        role: me.map(|m| m.role.to_string()),
    });
    if me.is_none() {
        report.attention.push(format!(
            "this replica ({}) is not a member of fleet '{}': its peers refuse its sessions and its changes; re-join with an invite from an admin",
            short(r.key().as_str()),
            st.name
        ));
    }
    report.unsigned = r.is_unsigned();
    if report.unsigned {
        report.attention.push(
            "this replica holds history made before changes were signed (an older fleetdeck): current replicas refuse it, so it cannot sync with them; start a new fleet (`fleetdeck init` in a new data dir) or re-join a current one (`fleetdeck join` with an invite, in a new data dir)".into(),
        );
    }
    report.warnings = r.warnings().to_vec();
    if !report.warnings.is_empty() {
        report.attention.push(format!(
            "{} warning(s) when the replica loaded (listed above)",
            report.warnings.len()
        ));
    }
    match r.quarantined() {
        Ok(rows) => {
            for q in rows {
                let author_name = q
                    .author
                    .as_deref()
                    .and_then(|a| MemberKey::parse(a).ok())
                    .and_then(|k| st.member_name(&k).map(str::to_string));
                let held_again = q.change.parse::<ChangeHash>().is_ok_and(|h| r.holds(&h));
                report.quarantined.push(QuarantinedRow {
                    change: q.change,
                    author: q.author,
                    author_name,
                    reason: q.reason,
                    at_ms: q.at_ms,
                    held_again,
                });
            }
        }
        Err(e) => report
            .attention
            .push(format!("the quarantine cannot be read: {e}")),
    }
    let lost = report.quarantined.iter().filter(|q| !q.held_again).count();
    if lost > 0 {
        report.attention.push(format!(
            "{lost} stored change row(s) failed their check and are in the quarantine (listed above); a peer that holds a good copy sends it back on the next sync"
        ));
    }
    report.problems = st.problems.clone();
    if !report.problems.is_empty() {
        report.attention.push(format!(
            "the fleet document has {} malformed entr{} that every command skips (listed above)",
            report.problems.len(),
            if report.problems.len() == 1 {
                "y"
            } else {
                "ies"
            }
        ));
    }
}

fn identity_check(path: &Path) -> IdentityCheck {
    let meta = std::fs::metadata(path).ok();
    #[cfg(unix)]
    let mode = meta.as_ref().map(|m| {
        use std::os::unix::fs::PermissionsExt;
        m.permissions().mode() & 0o777
    });
    #[cfg(not(unix))]
    let mode: Option<u32> = None;
    IdentityCheck {
        path: path.display().to_string(),
        exists: meta.is_some(),
        mode: mode.map(|m| format!("{m:o}")),
        private: mode.is_none_or(|m| m & 0o077 == 0),
    }
}

fn render(r: &Report) -> String {
    let none = |v: &[String]| v.is_empty().then_some("none");
    let mut text = format!("data dir     {}\n", r.data_dir);
    match (&r.open_error, &r.fleet) {
        (Some(e), _) => text.push_str(&format!("replica      does not open: {e}\n")),
        (None, Some(fleet)) => {
            text.push_str(&format!(
                "replica      opens: fleet '{fleet}' ({})\n",
                r.fleet_id.as_deref().unwrap_or("-")
            ));
        }
        (None, None) => {}
    }
    if let Some(m) = &r.member {
        let who = match (&m.name, &m.role) {
            (Some(n), Some(role)) => format!("{n} ({role})"),
            _ => "not a member of the fleet".into(),
        };
        text.push_str(&format!("this replica {who}, key {}\n", short(&m.key)));
    }
    let id = &r.identity;
    text.push_str(&format!(
        "identity     {}{}\n",
        id.path,
        match (id.exists, &id.mode, id.private) {
            (false, _, _) => "  missing".to_string(),
            (true, Some(m), true) => format!("  mode {m}: private"),
            (true, Some(m), false) => format!("  mode {m}: READABLE BY OTHERS"),
            (true, None, _) => String::new(),
        }
    ));
    if r.opens {
        text.push_str(&format!(
            "history      {}\n",
            if r.unsigned {
                "UNSIGNED (made before changes were signed): cannot sync with current replicas"
            } else {
                "signed"
            }
        ));
        text.push_str(&format!(
            "warnings     {}\n",
            none(&r.warnings).unwrap_or("")
        ));
        for w in &r.warnings {
            text.push_str(&format!("  {w}\n"));
        }
        if r.quarantined.is_empty() {
            text.push_str("quarantine   none\n");
        } else {
            text.push_str(&format!(
                "quarantine   {} change row(s) failed their check when read back:\n",
                r.quarantined.len()
            ));
            let mut t = Table::new(&["CHANGE", "AUTHOR", "SET ASIDE", "REASON"]);
            for q in &r.quarantined {
                let author = match (&q.author_name, &q.author) {
                    (Some(n), _) => n.clone(),
                    (None, Some(k)) => short(k).to_string(),
                    (None, None) => "-".into(),
                };
                let mut reason = q.reason.clone();
                if q.held_again {
                    reason.push_str(" (held again: a peer sent it back)");
                }
                t.row(vec![
                    if q.change.is_empty() {
                        "-".into()
                    } else {
                        short(&q.change).to_string()
                    },
                    author,
                    fmt_time(q.at_ms),
                    reason,
                ]);
            }
            for line in t.render().lines() {
                text.push_str(&format!("  {line}\n"));
            }
        }
        text.push_str(&format!(
            "problems     {}\n",
            none(&r.problems).unwrap_or("")
        ));
        for p in &r.problems {
            text.push_str(&format!("  {p}\n"));
        }
    }
    if r.healthy {
        text.push_str("\nhealthy: nothing needs attention");
    } else {
        text.push_str("\nneeds attention:");
        for a in &r.attention {
            text.push_str(&format!("\n  - {a}"));
        }
    }
    text
}
