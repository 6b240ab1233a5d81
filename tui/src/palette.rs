//! The `:` command palette: what can be typed, its completion and its
//! meaning. `:site ID`, `:node ID`, `:alerts`, `:history`, `:peers`,
//! `:overview`, `:theme NAME`, `:help`, `:q`.

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
    ("peers", None, "peers and sync"),
    (
        "config",
        Some("[SITE|NODE]"),
        "edit fleet, site or node config",
    ),
    ("rollouts", None, "staged rollouts"),
    ("commands", None, "commands and results"),
    ("overview", None, "the fleet overview"),
    ("theme", Some("NAME"), "switch theme"),
    ("help", None, "the keys"),
    ("q", None, "quit"),
    ("quit", None, "quit"),
];

/// What a palette line means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Open(Route),
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
        "config" => std::iter::once("fleet".to_string())
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
        "history" => no_arg(Command::Open(Route::History)),
        "peers" => no_arg(Command::Open(Route::Peers)),
        "rollouts" => no_arg(Command::Open(Route::Rollouts)),
        "commands" => no_arg(Command::Open(Route::Commands)),
        "config" if arg.is_empty() || arg == "fleet" => Ok(Command::Open(Route::Config(LayerRef::Fleet))),
        "config" => {
            let site = snap.sites.iter().find(|s| s.id.eq_ignore_ascii_case(arg));
            let node = snap.nodes.keys().find(|n| n.eq_ignore_ascii_case(arg));
            match (site, node) {
                (Some(s), _) => SiteId::parse(&s.id)
                    .map(|id| Command::Open(Route::Config(LayerRef::Site(id))))
                    .map_err(|e| e.to_string()),
                (None, Some(n)) => NodeId::parse(n)
                    .map(|id| Command::Open(Route::Config(LayerRef::Node(id))))
                    .map_err(|e| e.to_string()),
                (None, None) => Err(format!("no site or node '{arg}' in the fleet")),
            }
        }
        "overview" | "fleet" => no_arg(Command::Open(Route::Overview)),
        "help" => no_arg(Command::Help),
        "q" | "quit" => no_arg(Command::Quit),
        "" => Err("type a command: site, node, config, alerts, history, peers, rollouts, commands, theme, q".into()),
        other => Err(format!(
            "unknown command ':{other}': try site, node, config, alerts, history, peers, rollouts, commands, theme, q"
        )),
    }
}
