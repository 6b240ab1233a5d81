//! Atomic apply, health check, rollback and crash safety on a real
//! directory tree.

use std::path::Path;

use fleetdeck_node::apply::{Applier, ApplyError, Hooks, Outcome, STEPS, Step};
use fleetdeck_node::command::CmdSpec;
use fleetdeck_node::render::{Rendered, render, revision};
use serde_json::{Value, json};

fn release(version: &str) -> (Rendered, String) {
    let tree = json!({
        "frigate": {"version": version},
        "files": {"frigate/config.yml": "version: {{ frigate.version }}\n"}
    });
    (render(&tree).unwrap(), revision(&tree))
}

fn live_file(root: &Path) -> String {
    std::fs::read_to_string(root.join("current/files/frigate/config.yml")).unwrap()
}

/// The live release is complete: every file it should have, with the right
/// bytes for its revision.
fn assert_complete(a: &Applier, candidates: &[(&Rendered, &str)]) {
    let rev = a.current().expect("a release is live");
    let (rendered, _) = candidates
        .iter()
        .find(|(_, r)| *r == rev)
        .unwrap_or_else(|| panic!("live revision {rev} is none of the expected ones"));
    assert!(
        a.drifted(rendered).is_empty(),
        "live release {rev} is incomplete"
    );
}

fn check(cmd: &str) -> Hooks {
    Hooks {
        reload: None,
        check: Some(CmdSpec::from_value(&json!(cmd)).unwrap()),
    }
}

#[tokio::test]
async fn a_release_goes_live_and_a_failing_check_rolls_back_to_the_previous_one() {
    let tmp = tempfile::tempdir().unwrap();
    let a = Applier::new(tmp.path()).unwrap();
    let (r1, v1) = release("0.13");
    let (out, _) = a.apply(&r1, &v1, &check("true")).await.unwrap();
    assert_eq!(
        out,
        Outcome::Applied {
            revision: v1.clone()
        }
    );
    assert_eq!(live_file(tmp.path()), "version: 0.13\n");

    let (r2, v2) = release("0.14");
    // The check sees the new release live (FLEETDECK_RELEASE) and fails.
    let hooks = check(
        "grep -q 0.13 \"$FLEETDECK_RELEASE/files/frigate/config.yml\" || { echo frigate did not come up; exit 1; }",
    );
    let (out, _) = a.apply(&r2, &v2, &hooks).await.unwrap();
    match out {
        Outcome::RolledBack { revision, error } => {
            assert_eq!(revision, v2);
            assert!(error.contains("frigate did not come up"), "{error}");
        }
        other => panic!("expected a rollback, got {other:?}"),
    }
    assert_eq!(a.current(), Some(v1.clone()));
    assert_eq!(live_file(tmp.path()), "version: 0.13\n");
}

#[tokio::test]
async fn a_failing_first_release_is_reported_failed_with_nothing_to_return_to() {
    let tmp = tempfile::tempdir().unwrap();
    let a = Applier::new(tmp.path()).unwrap();
    let (r1, v1) = release("0.13");
    let (out, _) = a.apply(&r1, &v1, &check("exit 1")).await.unwrap();
    assert!(
        matches!(out, Outcome::Failed { ref error, .. } if error.contains("no earlier release")),
        "{out:?}"
    );
}

#[tokio::test]
async fn a_crash_at_every_step_leaves_a_complete_release_live_and_the_next_start_recovers() {
    for step in STEPS {
        let tmp = tempfile::tempdir().unwrap();
        let (r1, v1) = release("0.13");
        let (r2, v2) = release("0.14");
        {
            let a = Applier::new(tmp.path()).unwrap();
            a.apply(&r1, &v1, &check("true")).await.unwrap();
        }
        {
            let mut a = Applier::new(tmp.path()).unwrap();
            a.failpoint = Some(step);
            let r = a.apply(&r2, &v2, &check("true")).await;
            assert!(
                matches!(r, Err(ApplyError::Crashed(s)) if s == step),
                "{step:?}: {r:?}"
            );
            // What a kill -9 at this point leaves behind:
            assert_complete(&a, &[(&r1, &v1), (&r2, &v2)]);
        }
        // The next start.
        let a = Applier::new(tmp.path()).unwrap();
        a.recover().unwrap();
        assert_eq!(
            a.current(),
            Some(v1.clone()),
            "{step:?}: back on the release known good"
        );
        assert_complete(&a, &[(&r1, &v1)]);
        let leftovers: Vec<String> = std::fs::read_dir(tmp.path().join("releases"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(
            leftovers.is_empty(),
            "{step:?}: half-written releases are cleaned: {leftovers:?}"
        );
        // And the apply then goes through.
        let (out, _) = a.apply(&r2, &v2, &check("true")).await.unwrap();
        assert_eq!(
            out,
            Outcome::Applied {
                revision: v2.clone()
            },
            "{step:?}"
        );
        assert_eq!(live_file(tmp.path()), "version: 0.14\n");
    }
}

#[tokio::test]
async fn a_crash_during_the_very_first_apply_leaves_nothing_half_live() {
    for step in [Step::Render, Step::Fsync, Step::Swap] {
        let tmp = tempfile::tempdir().unwrap();
        let (r1, v1) = release("0.13");
        let mut a = Applier::new(tmp.path()).unwrap();
        a.failpoint = Some(step);
        assert!(a.apply(&r1, &v1, &Hooks::default()).await.is_err());
        let a = Applier::new(tmp.path()).unwrap();
        a.recover().unwrap();
        assert_eq!(a.current(), None, "{step:?}");
        let (out, _) = a.apply(&r1, &v1, &Hooks::default()).await.unwrap();
        assert_eq!(
            out,
            Outcome::Applied {
                revision: v1.clone()
            }
        );
    }
}

#[tokio::test]
async fn a_hand_edit_is_seen_as_drift_and_healed() {
    let tmp = tempfile::tempdir().unwrap();
    let a = Applier::new(tmp.path()).unwrap();
    let (r1, v1) = release("0.13");
    a.apply(&r1, &v1, &Hooks::default()).await.unwrap();
    assert!(a.drifted(&r1).is_empty());
    std::fs::write(
        tmp.path().join("current/files/frigate/config.yml"),
        "version: hacked\n",
    )
    .unwrap();
    assert_eq!(a.drifted(&r1), vec!["files/frigate/config.yml".to_string()]);
    let healed = a.heal(&r1).unwrap();
    assert_eq!(healed.len(), 1);
    assert_eq!(live_file(tmp.path()), "version: 0.13\n");
    assert!(a.drifted(&r1).is_empty());
}

#[tokio::test]
async fn old_releases_are_pruned_to_the_configured_number() {
    let tmp = tempfile::tempdir().unwrap();
    let mut a = Applier::new(tmp.path()).unwrap();
    a.keep = 2;
    for i in 0..6 {
        let (r, v) = release(&format!("0.{i}"));
        a.apply(&r, &v, &Hooks::default()).await.unwrap();
        std::thread::sleep(std::time::Duration::from_millis(15));
    }
    let n = std::fs::read_dir(tmp.path().join("releases"))
        .unwrap()
        .count();
    assert_eq!(n, 3, "the live release and the 2 newest others");
    let _: Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("current/config.json")).unwrap())
            .unwrap();
}
