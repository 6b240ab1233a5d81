//! `scenarios`: fleet scenarios (TOML) and the runner that plays them over
//! real node daemons in one process, synced over loopback, with faults
//! injected in the transport. `fleetdeck demo`, `fleetdeck scenario run` and
//! the tests use the same runner.
//!
//! A scenario file (`blocao.toml` is the default; every `*.toml` here is
//! built in) has `name`, `fleet`, `duration_s` (one pass of the timeline),
//! `speed` (how much faster than real time it plays by default), `[config]`
//! (fleet defaults), `[[site]]` (`id`, `name`, `lat`, `lon`, `zone`,
//! `config` overrides), `[[node]]` (`id`, `site`, `role`, `metrics = {cpu,
//! mem, disk, noise, temp, tls_days, backup_age_h}`, `config` overrides),
//! `[[replica]]` (`name`, `kind` = hub | laptop, `at`), `[[event]]` (`at_s`,
//! `action`: see [`spec::ACTIONS`]) and `[[check]]` (`kind`: see
//! [`spec::CHECKS`]). Every problem in a file is reported with its line and
//! field.
//!
//! Times in a file are real fleet time (the seeds' numbers); a run plays
//! them `speed` times faster, scaling what can honestly be scaled
//! ([`speed`] says what cannot).

pub mod runner;
pub mod sim;
pub mod spec;
pub mod speed;

pub use runner::{Report, RunError, RunOptions, Runner};
pub use spec::{Scenario, SpecError};

/// Scenarios built into the binary: (name, TOML).
pub const BUILTIN: &[(&str, &str)] = &[
    ("blocao", include_str!("../blocao.toml")),
    ("wildfire", include_str!("../wildfire.toml")),
    ("private-cloud", include_str!("../private-cloud.toml")),
    ("metrica", include_str!("../metrica.toml")),
    ("letsbe", include_str!("../letsbe.toml")),
    ("hub-offline", include_str!("../hub-offline.toml")),
    ("partition-heal", include_str!("../partition-heal.toml")),
    (
        "bad-config-rollback",
        include_str!("../bad-config-rollback.toml"),
    ),
    ("field-laptop", include_str!("../field-laptop.toml")),
];

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
