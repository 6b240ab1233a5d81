//! `member`: list the fleet's members, change a member's role, revoke a
//! member's key. Every write goes through the operations API.

use anyhow::Result;
use fleetdeck_store::ops::{self, Op};
use fleetdeck_store::{Replica, Role};
use serde_json::{Value, json};

use super::args::{Cli, MemberCmd};
use super::{act, open};
use crate::output::{self, Out, Table};

pub(super) fn member(cli: &Cli, out: &Out, cmd: &MemberCmd) -> Result<()> {
    let mut r = open(cli)?;
    match cmd {
        MemberCmd::List => list(&r, out),
        MemberCmd::Role { member, role } => set_role(&mut r, out, member, *role),
        MemberCmd::Revoke { member } => revoke(&mut r, out, member),
    }
}

fn list(r: &Replica, out: &Out) -> Result<()> {
    let st = r.state();
    let mut all: Vec<_> = st.members.values().chain(st.revoked.values()).collect();
    all.sort_by(|a, b| {
        (a.revoked.is_some(), &a.name, &a.key).cmp(&(b.revoked.is_some(), &b.name, &b.key))
    });
    // A node's latest heartbeat says where it listens now; its member
    // record holds at most where it first started.
    let reported = r.reported_addrs();
    let last_addr = |m: &fleetdeck_store::document::Member| {
        reported
            .get(&m.key)
            .and_then(|a| a.first())
            .or_else(|| m.addrs.first())
            .cloned()
    };
    let overlay = fleetdeck_store::overlay::addresses(st);
    let overlay_of =
        |m: &fleetdeck_store::document::Member| overlay.get(&m.key).map(|ip| ip.to_string());
    let rows: Vec<Value> = all
        .iter()
        .map(|m| {
            json!({
                "wg": m.wg.as_ref().map(fleetdeck_store::overlay::format_wg_key),
                "overlay": overlay_of(m),
                "name": m.name,
                "key": m.key,
                "role": m.role,
                "revoked": m.revoked.is_some(),
                "revoked_ms": m.revoked.as_ref().map(|r| r.at_ms),
                "addr": last_addr(m),
                "me": m.key == *r.key(),
            })
        })
        .collect();
    out.emit(&rows, || {
        let mut t = Table::new(&["NAME", "KEY", "ROLE", "REVOKED", "OVERLAY", "LAST ADDRESS"]);
        for m in &all {
            let me = if m.key == *r.key() { " (me)" } else { "" };
            t.row(vec![
                format!("{}{me}", m.name),
                m.key.short().to_string(),
                m.role.to_string(),
                m.revoked.as_ref().map_or("no".into(), |r| {
                    format!("yes, {}", output::fmt_time(r.at_ms))
                }),
                overlay_of(m).unwrap_or_else(|| "-".into()),
                last_addr(m).unwrap_or_else(|| "-".into()),
            ]);
        }
        t.render()
    })
}

fn set_role(r: &mut Replica, out: &Out, member: &str, role: Role) -> Result<()> {
    let member = ops::resolve_member(r.state(), member)?;
    act(r, out, Op::MemberRole { member, role })
}

/// Revokes a member (no question asked: it is scripted), and reminds that
/// the copy it holds stays with it.
pub(super) fn revoke(r: &mut Replica, out: &Out, member: &str) -> Result<()> {
    let member = ops::resolve_member(r.state(), member)?;
    act(r, out, Op::MemberRevoke { member })?;
    out.note(
        "note: a revoked member keeps the copy of the fleet document it had (config, addresses, secrets in it): rotate secrets in config; `fleetdeck serve` and running consoles close its sessions as the revocation reaches them",
    );
    Ok(())
}
