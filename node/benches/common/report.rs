//! How every bench reports: the quick-run switch, the machine's load, and
//! the final table of figures with their verdicts against the targets.
//! No fleetdeck imports, so that benches of any crate include it
//! (`#[path = "…/node/benches/common/report.rs"] mod report;`).

#![allow(dead_code)]

use std::time::Duration;

/// `FLEETDECK_BENCH_QUICK=1`: a smoke run, smaller and shorter; its
/// figures do not judge the targets.
pub fn quick() -> bool {
    std::env::var("FLEETDECK_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// The 1, 5 and 15 minute load averages, as /proc/loadavg gives them.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One row of the final table: a figure, and whether it met its target
/// (`None` for a figure that only gives context).
pub struct Row {
    pub what: String,
    pub measured: String,
    pub target: String,
    pub pass: Option<bool>,
}

impl Row {
    pub fn new(
        what: impl Into<String>,
        measured: String,
        target: impl Into<String>,
        pass: Option<bool>,
    ) -> Row {
        Row {
            what: what.into(),
            measured,
            target: target.into(),
            pass,
        }
    }

    /// PASS or MISS against the target, "-" for a figure that only gives
    /// context. A quick run is not the measurement the target is about, so
    /// it gives no verdict.
    pub fn verdict(&self) -> &'static str {
        match self.pass {
            Some(_) if quick() => "quick run",
            Some(true) => "PASS",
            Some(false) => "MISS",
            None => "-",
        }
    }
}

/// The rows, each column as wide as its widest cell.
pub fn print_table(rows: &[Row]) {
    let w0 = rows.iter().map(|r| r.what.len()).max().unwrap_or(0).max(6);
    let w1 = rows
        .iter()
        .map(|r| r.measured.len())
        .max()
        .unwrap_or(0)
        .max(8);
    let w2 = rows
        .iter()
        .map(|r| r.target.len())
        .max()
        .unwrap_or(0)
        .max(6);
    println!();
    println!(
        "{:<w0$}  {:>w1$}  {:>w2$}  verdict",
        "figure", "measured", "target"
    );
    println!("{}", "-".repeat(w0 + w1 + w2 + 13));
    for r in rows {
        println!(
            "{:<w0$}  {:>w1$}  {:>w2$}  {}",
            r.what,
            r.measured,
            r.target,
            r.verdict()
        );
    }
}
