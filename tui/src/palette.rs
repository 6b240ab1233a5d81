//! The `:` command palette: what can be typed, its completion and its
//! meaning. `:site ID`, `:node ID`, `:alerts`, `:history`, `:events`,
//! `:peers`, `:overview`, `:at TIME` (`:at now`), `:theme NAME`, `:help`, `:q`.

use fleetdeck_store::document::LayerRef;
use fleetdeck_store::{NodeId, SiteId};

use crate::component::Route;
use crate::source::Snapshot;
use crate::theme::Theme;

/// The palette's commands: name, argument, what it does.
pub const COMMANDS: &[(&str, Option<&str>, &str)] = &[
    ("site", Some("ID"), "open a site"),
    ("node", Some("ID"), "open a node"),
    ("alerts", None, "every alert"),
    ("history", None, "the change log"),
    (
        "events",
        Some("[SITE|NODE]"),
        "the fleet's events, or one site's or node's",
    ),
    ("peers", None, "peers and sync"),
    ("zones", None, "zones and their quorum"),
    (
        "config",
        Some("[SITE|NODE]"),
        "edit fleet, site or node config",
    ),
    ("rollouts", None, "staged rollouts"),
    ("commands", None, "commands and results"),
    ("overview", None, "the fleet overview"),
    (
        "at",
        Some("TIME"),
        "the fleet at a past moment (2h, RFC 3339, a change; now)",
    ),
    ("theme", Some("NAME"), "switch theme"),
    ("help", None, "the keys"),
    ("q", None, "quit"),
    ("quit", None, "quit"),
];

/// What a palette line means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Open(Route),
    /// As-of mode at the moment typed (the `--at` rules).
    At(String),
    /// Out of as-of mode (`:at now`).
    Now,
    Theme(String),
    Help,
    Quit,
}

/// What can follow a command; `themes` are the user's own themes.
fn arguments(cmd: &str, snap: &Snapshot, themes: &[String]) -> Vec<String> {
    match cmd {
        "site" => snap.sites.iter().map(|s| s.id.clone()).collect(),
        "node" => snap.nodes.keys().cloned().collect(),
        "theme" => Theme::names()
            .into_iter()
            .map(str::to_string)
            .chain(themes.iter().cloned())
            .collect(),
        "config" | "events" => std::iter::once("fleet".to_string())
            .chain(snap.sites.iter().map(|s| s.id.clone()))
            .chain(snap.nodes.keys().cloned())
            .collect(),
        _ => Vec::new(),
    }
}

/// Every full line the text typed so far could become, in order.
pub fn candidates(text: &str, snap: &Snapshot, themes: &[String]) -> Vec<String> {
    let text = text.trim_start();
    match text.split_once(' ') {
        None => COMMANDS
            .iter()
            .filter(|(name, _, _)| name.starts_with(text))
            .map(|(name, arg, _)| {
                if arg.is_some() {
                    format!("{name} ")
                } else {
                    name.to_string()
                }
            })
            .collect(),
        Some((cmd, arg)) => {
            let arg = arg.trim_start().to_lowercase();
            arguments(cmd, snap, themes)
                .into_iter()
                .filter(|a| a.to_lowercase().starts_with(&arg))
                .map(|a| format!("{cmd} {a}"))
                .collect()
        }
    }
}

/// The longest common prefix of `words`, None when there are none.
pub fn common_prefix<'a>(mut words: impl Iterator<Item = &'a String>) -> Option<String> {
    let mut prefix = words.next()?.clone();
    for other in words {
        let common = prefix
            .chars()
            .zip(other.chars())
            .take_while(|(a, b)| a == b)
            .count();
        prefix = prefix.chars().take(common).collect();
    }
    Some(prefix)
}

/// Tab: the longest common prefix of the candidates (the candidate itself
/// when there is one), or the text unchanged when nothing matches.
pub fn complete(text: &str, snap: &Snapshot, themes: &[String]) -> String {
    let c = candidates(text, snap, themes);
    let Some(first) = c.first() else {
        return text.to_string();
    };
    let mut prefix = first.clone();
    for other in &c[1..] {
        let common = prefix
            .chars()
            .zip(other.chars())
            .take_while(|(a, b)| a == b)
            .count();
        prefix = prefix.chars().take(common).collect();
    }
    if prefix.len() >= text.len() {
        prefix
    } else {
        text.to_string()
    }
}

/// Parses a palette line, checking ids against the snapshot.
pub fn parse(text: &str, snap: &Snapshot) -> Result<Command, String> {
    let text = text.trim();
    let (cmd, arg) = match text.split_once(' ') {
        Some((c, a)) => (c, a.trim()),
        None => (text, ""),
    };
    let no_arg = |c: Command| {
        if arg.is_empty() {
            Ok(c)
        } else {
            Err(format!(":{cmd} takes no argument"))
        }
    };
    match cmd {
        "site" | "node" if arg.is_empty() => Err(format!(":{cmd} needs an id (tab completes)")),
        "site" => {
            let found = snap
                .sites
                .iter()
                .find(|s| s.id == arg)
                .or_else(|| snap.sites.iter().find(|s| s.id.eq_ignore_ascii_case(arg)));
            match found {
                Some(s) => Ok(Command::Open(Route::Site(s.id.clone()))),
                None => Err(format!("no site '{arg}' in the fleet")),
            }
        }
        "node" => {
            let found = snap
                .nodes
                .keys()
                .find(|n| *n == arg)
                .or_else(|| snap.nodes.keys().find(|n| n.eq_ignore_ascii_case(arg)));
            match found {
                Some(n) => Ok(Command::Open(Route::Node(n.clone()))),
                None => Err(format!("no node '{arg}' in the fleet")),
            }
        }
        "theme" if arg.is_empty() => Err(format!(
            ":theme needs a name: {}",
            Theme::names().join(", ")
        )),
        "theme" => Ok(Command::Theme(arg.to_string())),
        "alerts" => no_arg(Command::Open(Route::Alerts(None))),
        "history" => no_arg(Command::Open(Route::History(None))),
        "peers" => no_arg(Command::Open(Route::Peers)),
        "zones" => no_arg(Command::Open(Route::Zones)),
        "rollouts" => no_arg(Command::Open(Route::Rollouts)),
        "commands" => no_arg(Command::Open(Route::Commands(None))),
        "config" => layer(snap, arg).map(|l| Command::Open(Route::Config(l))),
        "events" => layer(snap, arg).map(|l| Command::Open(Route::Events(l))),
        "at" if arg.is_empty() => Err(
            ":at needs a moment: a time ago (2h), an RFC 3339 time (2026-12-06T03:12:00Z) or a change id".into(),
        ),
        "at" if arg == "now" => Ok(Command::Now),
        "at" => Ok(Command::At(arg.to_string())),
        "overview" | "fleet" => no_arg(Command::Open(Route::Overview)),
        "help" => no_arg(Command::Help),
        "q" | "quit" => no_arg(Command::Quit),
        "" => Err("type a command: site, node, config, alerts, history, events, zones, peers, rollouts, commands, at, theme, q".into()),
        other => Err(format!(
            "unknown command ':{other}': try site, node, config, alerts, history, events, zones, peers, rollouts, commands, at, theme, q"
        )),
    }
}

/// The fleet (nothing, or `fleet`), a site or a node of the fleet, by id.
fn layer(snap: &Snapshot, arg: &str) -> Result<LayerRef, String> {
    if arg.is_empty() || arg == "fleet" {
        return Ok(LayerRef::Fleet);
    }
    let site = snap.sites.iter().find(|s| s.id.eq_ignore_ascii_case(arg));
    let node = snap.nodes.keys().find(|n| n.eq_ignore_ascii_case(arg));
    match (site, node) {
        (Some(s), _) => SiteId::parse(&s.id)
            .map(LayerRef::Site)
            .map_err(|e| e.to_string()),
        (None, Some(n)) => NodeId::parse(n)
            .map(LayerRef::Node)
            .map_err(|e| e.to_string()),
        (None, None) => Err(format!("no site or node '{arg}' in the fleet")),
    }
}
