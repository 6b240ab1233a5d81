//! Marks and what is done to marked rows: Space marks the selected row of
//! the sites, nodes or alerts table (by id, like k9s), `u` or Esc drops the
//! marks; acks and silences go to every marked alert, an allowlisted action
//! runs on every marked site or node (one `command run` each, through the
//! store's one door like every intent), a rollout starts on the marked
//! sites.
//!
//! Below the views: each takes a table's [`ListState`] and the snapshot.

use std::collections::BTreeSet;

use fleetdeck_store::document::LayerRef;
use fleetdeck_store::ops::CommandTarget;

use crate::component::{Effect, Handled};
use crate::source::{Intent, Snapshot};
use crate::table::ListState;

/// Space: marks the selected row (or unmarks it) and moves to the next.
pub fn mark<S: AsRef<str>>(list: &mut ListState, ids: &[S], what: &str) -> Handled {
    let Some(i) = list.index(ids.len()) else {
        return Handled::Then(Effect::Message(format!("no {what} to mark")));
    };
    let id = ids[i].as_ref();
    let now = list.toggle_mark(id);
    list.step(crate::keymap::Action::Down, ids);
    let n = list.marks.len();
    Handled::Then(Effect::Message(format!(
        "{} {what} {id} · {n} marked",
        if now { "marked" } else { "unmarked" }
    )))
}

/// `u` (or Esc while some are marked): drops every mark of the table.
pub fn clear(list: &mut ListState) -> Handled {
    match list.clear_marks() {
        0 => Handled::Then(Effect::Message("nothing is marked".into())),
        1 => Handled::Then(Effect::Message("1 mark cleared".into())),
        n => Handled::Then(Effect::Message(format!("{n} marks cleared"))),
    }
}

/// The rows an action applies to: the marked ones, else the selected one.
pub fn chosen<S: AsRef<str>>(list: &ListState, ids: &[S]) -> Vec<String> {
    if !list.marks.is_empty() {
        return list.marks.iter().cloned().collect();
    }
    list.index(ids.len())
        .map(|i| vec![ids[i].as_ref().to_string()])
        .unwrap_or_default()
}

/// The nodes a target (a site or a node) reaches in the snapshot.
pub fn nodes_of<'a>(snap: &'a Snapshot, target: &'a LayerRef) -> Vec<&'a str> {
    match target {
        LayerRef::Site(s) => snap.nodes_of(s.as_str()).map(|n| n.id.as_str()).collect(),
        LayerRef::Node(n) => snap
            .node(n.as_str())
            .map(|n| vec![n.id.as_str()])
            .unwrap_or_default(),
        LayerRef::Fleet => snap.nodes.keys().map(String::as_str).collect(),
    }
}

/// "3 sites", "node cam-1".
pub fn targets_label(targets: &[LayerRef]) -> String {
    match targets {
        [one] => crate::source::layer_label(one),
        many => {
            let sites = many
                .iter()
                .filter(|t| matches!(t, LayerRef::Site(_)))
                .count();
            match (sites, many.len() - sites) {
                (s, 0) => format!("{s} sites"),
                (0, n) => format!("{n} nodes"),
                (s, n) => format!("{s} sites and {n} nodes"),
            }
        }
    }
}

/// The actions the nodes of `targets` may run (`actions.NAME` or
/// `actions.NAME.cmd` in their effective config), in name order.
pub fn actions(snap: &Snapshot, targets: &[LayerRef]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for t in targets {
        for node in nodes_of(snap, t) {
            let Some(eff) = fleetdeck_store::NodeId::parse(node)
                .ok()
                .and_then(|id| snap.fleet.effective_node(&id).ok())
            else {
                continue;
            };
            for (path, _, _) in eff.leaves() {
                match path.segments() {
                    [a, name] if a == "actions" => {
                        out.insert(name.clone());
                    }
                    [a, name, cmd] if a == "actions" && cmd == "cmd" => {
                        out.insert(name.clone());
                    }
                    _ => {}
                }
            }
        }
    }
    out
}

/// A command id the console gives a command it sends (so it can open the
/// commands view on it at once): 12 hex digits from who sends what to
/// whom and when, as the CLI's random ids look.
pub fn command_id(me: &str, action: &str, target: &LayerRef, now_ms: i64) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let text = format!("{me}\u{1f}{action}\u{1f}{target:?}\u{1f}{now_ms}");
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{:012x}", h & 0xffff_ffff_ffff)
}

/// The commands that run `action` on each target, with their ids.
pub fn commands(
    me: &str,
    action: &str,
    targets: &[LayerRef],
    now_ms: i64,
) -> (Vec<Intent>, Vec<String>) {
    let mut intents = Vec::new();
    let mut ids = Vec::new();
    for t in targets {
        let target = match t {
            LayerRef::Site(s) => CommandTarget::Site(s.clone()),
            LayerRef::Node(n) => CommandTarget::Node(n.clone()),
            LayerRef::Fleet => CommandTarget::All,
        };
        let id = command_id(me, action, t, now_ms);
        ids.push(id.clone());
        intents.push(Intent::CommandRun {
            id: Some(id),
            action: action.to_string(),
            target,
        });
    }
    (intents, ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_go_by_id_and_the_cursor_moves_on() {
        let mut l = ListState::default();
        let ids = ["a", "b", "c"];
        l.follow(&ids);
        mark(&mut l, &ids, "site");
        mark(&mut l, &ids, "site");
        assert_eq!(l.marks.iter().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(l.key.as_deref(), Some("c"));
        // Unmarking b; chosen are the marks, whatever is selected.
        l.select(1, &ids);
        mark(&mut l, &ids, "site");
        assert_eq!(chosen(&l, &ids), ["a"]);
        assert_eq!(
            clear(&mut l),
            Handled::Then(Effect::Message("1 mark cleared".into()))
        );
        assert_eq!(chosen(&l, &ids), ["c"], "no marks: the selected row");
    }

    #[test]
    fn command_ids_are_twelve_hex_digits_and_differ_by_target() {
        let a = LayerRef::Site(fleetdeck_store::SiteId::parse("BL-A").unwrap());
        let b = LayerRef::Site(fleetdeck_store::SiteId::parse("BL-B").unwrap());
        let x = command_id("ops", "restart", &a, 5);
        assert_eq!(x.len(), 12);
        assert!(x.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(x, command_id("ops", "restart", &b, 5));
        assert_eq!(x, command_id("ops", "restart", &a, 5));
        assert_eq!(targets_label(&[a.clone(), b]), "2 sites");
        assert_eq!(targets_label(&[a]), "site BL-A");
    }
}
