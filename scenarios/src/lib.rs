//! `scenarios`: fleet scenarios (TOML) and the runner that plays them over
//! real node daemons in one process, synced over loopback, with faults
//! injected in the transport. `fleetdeck demo`, `fleetdeck scenario run` and
//! the tests use the same runner.
//!
//! A scenario file (see `blocao.toml`, the default) has `name`, `fleet`,
//! `duration_s` (one pass of the timeline), `[config]` (fleet defaults),
//! `[[site]]` (`id`, `name`, `lat`, `lon`, `zone`, `config` overrides),
//! `[[node]]` (`id`, `site`, `role`, `metrics = {cpu, mem, disk, noise,
//! temp}`, `config` overrides), `[[event]]` (`at_s`, `action` = crash |
//! restart | disk_fill | disk_clear | cpu_spike | cpu_clear | bad_config |
//! partition | heal | set | unset, with `node`, `site`, `pct`, `layer`
//! (`fleet`, `site:ID`, `node:ID`), `key`, `value`, `message` as the action
//! needs) and `[[check]]` (`kind` = converged | alert_fired | alert_resolved
//! | applied, `at_s`, `within_s`, `alert`, `node`, `result`).
//!
//! Time is real: a 100 s timeline takes 100 s (there is no speed-up).

pub mod runner;
pub mod sim;
pub mod spec;

pub use runner::{Report, RunError, RunOptions, Runner};
pub use spec::{Scenario, SpecError};

/// Scenarios built into the binary: (name, TOML).
pub const BUILTIN: &[(&str, &str)] = &[("blocao", include_str!("../blocao.toml"))];

/// The scenario `demo` plays when none is named.
pub const DEFAULT: &str = "blocao";

/// A built-in scenario by name, else a scenario file at that path.
pub fn load(name_or_path: &str) -> Result<Scenario, SpecError> {
    if let Some((name, text)) = BUILTIN.iter().find(|(n, _)| *n == name_or_path) {
        return Scenario::parse(text, &format!("built-in scenario {name}"));
    }
    let path = std::path::Path::new(name_or_path);
    match std::fs::read_to_string(path) {
        Ok(text) => Scenario::parse(&text, name_or_path),
        Err(e) => Err(SpecError::NotFound(format!(
            "no built-in scenario '{name_or_path}' (built in: {}) and no readable file there: {e}",
            BUILTIN
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Built-in scenarios with their one-line descriptions, for `scenario list`.
pub fn list() -> Vec<(String, String)> {
    BUILTIN
        .iter()
        .map(|(n, text)| {
            let d = Scenario::parse(text, n)
                .map(|s| s.description)
                .unwrap_or_else(|e| format!("(does not parse: {e})"));
            (n.to_string(), d)
        })
        .collect()
}
