//! The fleet as a file: `apply -f FILE [--dry-run] [--prune]` and
//! `export [-o FILE]` (see `fleetdeck_store::declare`).

use std::io::Read;
use std::path::Path;

use anyhow::{Result, anyhow};
use fleetdeck_store::declare::{self, FleetSpec, MAX_FILE_BYTES, Step};
use fleetdeck_store::now_ms;
use fleetdeck_store::ops::{self, Op};
use serde_json::json;

use super::args::Cli;
use super::open;
use crate::output::{Out, clean, fmt_time};

/// How many steps the text output lists before it counts the rest.
const SHOWN: usize = 40;

/// Reads FILE (`-`: standard input), at most `MAX_FILE_BYTES`.
fn read(file: &Path) -> Result<String> {
    let mut text = String::new();
    let limit = MAX_FILE_BYTES as u64 + 1;
    let n = if file == Path::new("-") {
        std::io::stdin().take(limit).read_to_string(&mut text)
    } else {
        std::fs::File::open(file).and_then(|f| f.take(limit).read_to_string(&mut text))
    }
    .map_err(|e| anyhow!("cannot read {}: {e}", file.display()))?;
    if n > MAX_FILE_BYTES {
        return Err(anyhow!(
            "{} is over {MAX_FILE_BYTES} bytes: not a fleet file",
            file.display()
        ));
    }
    Ok(text)
}

fn lines(steps: &[Step]) -> String {
    let mut text: Vec<String> = steps
        .iter()
        .take(SHOWN)
        .map(|s| clean(&s.line()).into_owned())
        .collect();
    if steps.len() > SHOWN {
        text.push(format!(
            "… and {} more (`--json` lists them all)",
            steps.len() - SHOWN
        ));
    }
    text.join("\n")
}

pub(super) fn apply(cli: &Cli, out: &Out, file: &Path, dry_run: bool, prune: bool) -> Result<()> {
    let spec = FleetSpec::parse(&read(file)?).map_err(|e| anyhow!("{}: {e}", file.display()))?;
    let mut r = open(cli)?;
    if dry_run {
        let plan = declare::plan(r.state(), &spec, prune)?;
        // What applying would be refused for is said now, not after.
        ops::check(
            r.state(),
            r.key(),
            &Op::Declare {
                spec: Box::new(spec),
                prune,
            },
        )?;
        let steps: Vec<_> = plan.steps.iter().map(Step::to_json).collect();
        return out.emit(
            &json!({"dry_run": true, "summary": plan.counts(), "steps": steps, "kept": plan.kept}),
            || {
                let mut text = lines(&plan.steps);
                if !text.is_empty() {
                    text.push('\n');
                }
                text.push_str(&format!("would apply: {}", plan.counts()));
                if !plan.kept.is_empty() {
                    text.push_str(&format!(
                        "\nkept, not in the file{}: {}",
                        if prune {
                            ""
                        } else {
                            " (--prune removes sites and nodes)"
                        },
                        plan.kept.join(", ")
                    ));
                }
                text
            },
        );
    }
    let shown = declare::plan(r.state(), &spec, prune)?;
    let done = ops::apply(
        &mut r,
        Op::Declare {
            spec: Box::new(spec),
            prune,
        },
        now_ms(),
    )?;
    let change = done.change.map(|h| h.to_string());
    out.emit(
        &json!({"ok": true, "message": done.summary, "change": change, "steps": done.details["steps"], "kept": done.details["kept"]}),
        || {
            let mut text = lines(&shown.steps);
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(&done.line());
            text
        },
    )
}

pub(super) fn export(cli: &Cli, out: &Out, to: Option<&Path>) -> Result<()> {
    let r = open(cli)?;
    let st = r.state();
    let spec = FleetSpec::of(st);
    if cli.json {
        return out.emit(&spec.to_json()?, String::new);
    }
    let text = format!(
        "# fleet {} ({}), exported {} from this replica.\n# `fleetdeck apply -f FILE` makes a fleet what this file declares.\n{}",
        clean(&st.name),
        st.fleet_id,
        fmt_time(now_ms()),
        spec.to_toml()?
    );
    match to {
        None => {
            crate::output::say(text.trim_end());
            Ok(())
        }
        Some(path) => {
            // Written beside and moved in place: a crash leaves the old file.
            let tmp = path.with_extension("toml.new");
            std::fs::write(&tmp, &text)
                .and_then(|()| std::fs::rename(&tmp, path))
                .map_err(|e| anyhow!("cannot write {}: {e}", path.display()))?;
            let n = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
            out.note(&format!(
                "wrote {} ({}, {}, {})",
                path.display(),
                n(spec.sites.len(), "site"),
                n(spec.nodes.len(), "node"),
                n(spec.members.len(), "member")
            ));
            Ok(())
        }
    }
}
