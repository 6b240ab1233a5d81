//! Fuzzing scenario files: any text, and the built-in scenarios mutated
//! byte by byte and line by line, parse or are refused with a sentence
//! (naming where, for content that does not make sense), never a panic.
//!
//! Short by default; `FLEETDECK_FUZZ_CASES=5000 cargo test -p
//! fleetdeck-scenarios --test fuzz` runs longer. Every run prints its seed;
//! `FLEETDECK_FUZZ_SEED=<seed>` replays it.

use std::panic::catch_unwind;
use std::sync::OnceLock;

use fleetdeck_scenarios::{BUILTIN, Scenario, SpecError};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};

fn seed() -> u64 {
    static SEED: OnceLock<u64> = OnceLock::new();
    *SEED.get_or_init(|| {
        let s = std::env::var("FLEETDECK_FUZZ_SEED")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64)
            });
        eprintln!("fuzz seed {s} (replay with FLEETDECK_FUZZ_SEED={s})");
        s
    })
}

fn cfg() -> Config {
    Config {
        cases: std::env::var("FLEETDECK_FUZZ_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(256),
        rng_seed: RngSeed::Fixed(seed()),
        failure_persistence: None,
        ..Config::default()
    }
}

fn check(text: &str) -> Result<(), TestCaseError> {
    match catch_unwind(|| Scenario::parse(text, "fuzz.toml")) {
        Err(_) => Err(TestCaseError::fail(format!(
            "Scenario::parse panicked on:\n{text}"
        ))),
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => {
            let msg = e.to_string();
            prop_assert!(
                msg.starts_with("fuzz.toml"),
                "the error names no file: {msg}"
            );
            if let SpecError::Invalid { line, field, .. } = &e {
                prop_assert!(*line >= 1, "{msg}");
                prop_assert!(!field.is_empty(), "{msg}");
            }
            Ok(())
        }
    }
}

/// Values that stress the checks after TOML parsing.
const ODD: &[&str] = &[
    "0",
    "-1",
    "-9223372036854775808",
    "9223372036854775807",
    "1e308",
    "nan",
    "inf",
    "-inf",
    "\"\"",
    "\"\\u0000\"",
    "[]",
    "{}",
    "true",
    "\"n1\"",
    "\"S1\"",
    "0.0000001",
    "18446744073709551615",
];

proptest! {
    #![proptest_config(cfg())]

    #[test]
    fn any_text_parses_or_is_refused_with_a_sentence(text in "\\PC{0,300}") {
        check(&text)?;
    }

    #[test]
    fn a_built_in_scenario_mutated_byte_by_byte(
        which in any::<prop::sample::Index>(),
        muts in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..5),
    ) {
        let (_, text) = BUILTIN[which.index(BUILTIN.len())];
        let mut b = text.as_bytes().to_vec();
        for (i, x) in &muts {
            let at = i.index(b.len());
            b[at] = *x;
        }
        check(&String::from_utf8_lossy(&b))?;
    }

    /// A value after `=` replaced with an odd one, or a line dropped or
    /// repeated: the checks after TOML parsing see what they must refuse.
    #[test]
    fn a_built_in_scenario_with_odd_values_and_lines(
        which in any::<prop::sample::Index>(),
        edits in prop::collection::vec(
            (any::<prop::sample::Index>(), 0u8..3, any::<prop::sample::Index>()), 1..4),
    ) {
        let (_, text) = BUILTIN[which.index(BUILTIN.len())];
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        for (i, kind, v) in &edits {
            if lines.is_empty() {
                break;
            }
            let at = i.index(lines.len());
            match kind {
                0 => {
                    if let Some((k, _)) = lines[at].split_once('=') {
                        lines[at] = format!("{k}= {}", ODD[v.index(ODD.len())]);
                    }
                }
                1 => {
                    lines.remove(at);
                }
                _ => {
                    let l = lines[at].clone();
                    lines.insert(at, l);
                }
            }
        }
        check(&lines.join("\n"))?;
    }
}
