//! Printing for the CLI: JSON for scripts, aligned plain text for people.

use automerge::ChangeHash;
use serde::Serialize;
use serde_json::Value;

use fleetdeck_store::alerts::FleetSummary;
use fleetdeck_store::diff::FleetDiff;

pub struct Out {
    json: bool,
    quiet: bool,
}

impl Out {
    pub fn new(json: bool, quiet: bool) -> Self {
        Out { json, quiet }
    }

    pub fn is_json(&self) -> bool {
        self.json
    }

    /// Prints `value` as JSON with --json, else the text `human` makes.
    pub fn emit<T: Serialize + ?Sized>(
        &self,
        value: &T,
        human: impl FnOnce() -> String,
    ) -> anyhow::Result<()> {
        if self.json {
            say(&serde_json::to_string_pretty(value)?);
        } else {
            let text = human();
            if !text.is_empty() {
                say(&text);
            }
        }
        Ok(())
    }

    /// Reports a write: the sentence, and the change id it made.
    /// Guidance for a person, on stderr (so stdout stays what a script
    /// captures); nothing with --json or --quiet.
    pub fn note(&self, text: &str) {
        if !self.json && !self.quiet {
            eprintln!("{text}");
        }
    }

    pub fn done(&self, what: &str, change: Option<ChangeHash>) -> anyhow::Result<()> {
        let id = change.map(|h| h.to_string());
        if self.json {
            say(&serde_json::json!({"ok": true, "message": what, "change": id}).to_string());
        } else if !self.quiet {
            match id {
                Some(id) => say(&format!("{what} (change {})", short(&id))),
                None => say(what),
            }
        }
        Ok(())
    }
}

/// Prints a line on stdout. When the reader has gone (`fleetdeck status |
/// head`), there is no one left to tell: exit quietly, as Unix tools do,
/// rather than panic as `println!` would. Anything the command wrote was
/// already stored before its output.
pub fn say(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{line}").and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: writing to stdout: {e}");
        std::process::exit(1);
    }
}

/// The first 12 characters of an id (change ids, member keys).
pub fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// RFC 3339 UTC, to the second (never a panic, whatever a node reported).
pub fn fmt_time(ms: i64) -> String {
    fleetdeck_store::replica::rfc3339(ms)
}

/// "12s ago", "5m ago", "3h ago", "2d ago" (or "in 5m" for the future).
pub fn ago(now: i64, then: i64) -> String {
    let d = (now - then).abs() / 1000;
    let s = match d {
        0..60 => format!("{d}s"),
        60..3600 => format!("{}m", d / 60),
        3600..86400 => format!("{}h", d / 3600),
        _ => format!("{}d", d / 86400),
    };
    if now >= then {
        format!("{s} ago")
    } else {
        format!("in {s}")
    }
}

/// `text` with its control characters escaped (`\n`, `\u{1b}`), for text
/// from the fleet printed where a line break or an escape sequence would
/// mislead: table cells, diff lines, file comments.
pub fn clean(text: &str) -> std::borrow::Cow<'_, str> {
    if text.chars().any(char::is_control) {
        std::borrow::Cow::Owned(
            text.chars()
                .map(|c| {
                    if c.is_control() {
                        c.escape_default().to_string()
                    } else {
                        c.to_string()
                    }
                })
                .collect(),
        )
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// A plain table with columns padded to their widest cell.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Self {
        Table {
            header: header.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; control characters in a cell (a name or an error a
    /// node reported) are written escaped, so no cell can break the table
    /// or drive the terminal.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows
            .push(cells.into_iter().map(|c| clean(&c).into_owned()).collect());
    }

    pub fn render(&self) -> String {
        let cols = self.header.len();
        let mut width = vec![0usize; cols];
        for r in std::iter::once(&self.header).chain(&self.rows) {
            for (i, c) in r.iter().enumerate().take(cols) {
                width[i] = width[i].max(c.chars().count());
            }
        }
        let line = |r: &Vec<String>| {
            let mut s = String::new();
            for (i, c) in r.iter().enumerate().take(cols) {
                if i + 1 == cols {
                    s.push_str(c);
                } else {
                    s.push_str(c);
                    s.push_str(&" ".repeat(width[i] - c.chars().count() + 2));
                }
            }
            s.trim_end().to_string()
        };
        let mut out = vec![line(&self.header)];
        out.extend(self.rows.iter().map(line));
        out.join("\n")
    }
}

fn show(v: &Option<Value>) -> String {
    v.as_ref().map_or("(unset)".into(), |v| v.to_string())
}

pub fn render_diff(d: &FleetDiff) -> String {
    if d.is_empty() {
        return "no changes".into();
    }
    let mut lines = Vec::new();
    for s in &d.sites_added {
        lines.push(format!("+ site {s}"));
    }
    for s in &d.sites_removed {
        lines.push(format!("- site {s}"));
    }
    for n in &d.nodes_added {
        lines.push(format!("+ node {n}"));
    }
    for n in &d.nodes_removed {
        lines.push(format!("- node {n}"));
    }
    for e in &d.config {
        lines.push(format!(
            "~ {}: {}: {} -> {}",
            e.scope,
            e.key,
            show(&e.before),
            show(&e.after)
        ));
    }
    if !d.config.is_empty() {
        lines.push(format!(
            "effective config changed on {} node(s) across {} site(s)",
            d.nodes_touched, d.sites_touched
        ));
    }
    lines.join("\n")
}

pub fn render_status(
    name: &str,
    nodes: usize,
    s: &FleetSummary,
    rows: &[Value],
    frozen: bool,
) -> String {
    let mut out = format!(
        "fleet {name}: {} site(s), {nodes} node(s){}\n",
        s.sites,
        if frozen { "  [FROZEN]" } else { "" }
    );
    out.push_str(&format!(
        "sites   {} green ({:.0}%)  {} warn ({:.0}%)  {} err ({:.0}%)  {} unknown ({:.0}%)\n",
        s.green, s.green_pct, s.warn, s.warn_pct, s.err, s.err_pct, s.unknown, s.unknown_pct
    ));
    out.push_str(&format!(
        "alerts  {} hard  {} medium  {} soft{}\n",
        s.alerts_hard,
        s.alerts_medium,
        s.alerts_soft,
        if s.hidden > 0 {
            format!("  ({} silenced)", s.hidden)
        } else {
            String::new()
        }
    ));
    if !rows.is_empty() {
        let mut t = Table::new(&["SITE", "STATE", "NODES", "ALERTS"]);
        for r in rows {
            let cell = |k: &str| match &r[k] {
                Value::String(s) => s.clone(),
                v => v.to_string(),
            };
            t.row(vec![
                cell("site"),
                cell("state"),
                cell("nodes"),
                cell("alerts"),
            ]);
        }
        out.push('\n');
        out.push_str(&t.render());
    }
    out.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_past_rfc3339_and_control_characters_are_written_safely() {
        assert_eq!(fmt_time(i64::MAX), "9999-12-31T23:59:59Z");
        assert_eq!(fmt_time(-5), "1970-01-01T00:00:00Z");
        assert_eq!(clean("a\nb\u{1b}[2J"), "a\\nb\\u{1b}[2J");
        assert_eq!(clean("plain"), "plain");
    }
}
