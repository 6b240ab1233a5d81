//! The command line as operators and scripts use it: real processes on a
//! temporary data dir.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use fleetdeck_store::health::{HealthRegister, Metrics};
use fleetdeck_store::ops::{self, Op};
use fleetdeck_store::replica::load_or_create_identity;
use fleetdeck_store::{NodeId, Replica, Role, now_ms};
use serde_json::{Value, json};

fn fd(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fleetdeck"))
        .arg("--data")
        .arg(dir)
        .args(args)
        .env_remove("FLEETDECK_DATA")
        .output()
        .expect("run fleetdeck")
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let out = fd(dir, args);
    assert!(
        out.status.success(),
        "fleetdeck {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json(dir: &Path, args: &[&str]) -> Value {
    let mut a = vec!["--json"];
    a.extend_from_slice(args);
    serde_json::from_str(&ok(dir, &a)).expect("--json prints JSON")
}

fn fail(dir: &Path, args: &[&str]) -> (i32, String) {
    let out = fd(dir, args);
    assert!(!out.status.success(), "fleetdeck {args:?} should fail");
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn blocao(dir: &Path) {
    ok(dir, &["init", "--name", "ops-laptop", "--fleet", "blocao"]);
    ok(
        dir,
        &[
            "site", "add", "BL-LAB-1", "--name", "Lab 1", "--lat", "52.37", "--lon", "4.89",
            "--zone", "north",
        ],
    );
    ok(
        dir,
        &[
            "site", "add", "BL-LAB-2", "--name", "Lab 2", "--zone", "north",
        ],
    );
    ok(
        dir,
        &[
            "node", "add", "cam-1", "--site", "BL-LAB-1", "--role", "camera",
        ],
    );
    ok(dir, &["node", "add", "cam-2", "--site", "BL-LAB-1"]);
    ok(
        dir,
        &[
            "node", "add", "hub-1", "--site", "BL-LAB-2", "--role", "hub",
        ],
    );
}

#[test]
fn config_layers_effective_explain_and_history_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    blocao(d);
    ok(d, &["config", "set", "retention.days", "30"]);
    ok(
        d,
        &[
            "config",
            "set",
            "retention.days",
            "14",
            "--site",
            "BL-LAB-1",
            "-m",
            "lab 1 keeps two weeks",
        ],
    );
    ok(
        d,
        &[
            "config",
            "set",
            "frigate",
            r#"{"version":"0.14","model":"yolo"}"#,
        ],
    );
    ok(
        d,
        &[
            "config",
            "set",
            "frigate.version",
            "0.15-beta",
            "--node",
            "cam-2",
        ],
    );

    let v = json(d, &["config", "get", "frigate"]);
    assert_eq!(v["value"], json!({"version": "0.14", "model": "yolo"}));
    assert_eq!(v["layer"], "fleet");

    let eff = json(d, &["config", "effective", "--node", "cam-2"]);
    assert_eq!(eff["retention"]["days"], 14);
    assert_eq!(
        eff["frigate"],
        json!({"version": "0.15-beta", "model": "yolo"})
    );
    assert_eq!(
        eff["heartbeat"]["interval_s"], 10,
        "schema defaults are in the fleet"
    );

    let explain = json(d, &["config", "effective", "--node", "cam-2", "--explain"]);
    let from = |k: &str| {
        explain
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["key"] == k)
            .map(|e| e["from"].as_str().unwrap().to_string())
    };
    assert_eq!(from("retention.days").as_deref(), Some("site BL-LAB-1"));
    assert_eq!(from("frigate.version").as_deref(), Some("node cam-2"));
    assert_eq!(from("frigate.model").as_deref(), Some("fleet"));
    let text = ok(d, &["config", "effective", "--node", "cam-2", "--explain"]);
    assert!(
        text.contains("retention.days") && text.contains("site BL-LAB-1"),
        "{text}"
    );

    ok(
        d,
        &["config", "unset", "retention.days", "--site", "BL-LAB-1"],
    );
    assert_eq!(
        json(d, &["config", "effective", "--node", "cam-1"])["retention"]["days"],
        30
    );

    let h = json(d, &["history", "--limit", "3"]);
    let h = h.as_array().unwrap();
    assert_eq!(h.len(), 3);
    assert_eq!(h[0]["message"], "unset retention.days in site BL-LAB-1");
    assert_eq!(h[0]["author_name"], "ops-laptop");
    for field in ["id", "author", "time_ms", "message"] {
        assert!(h[0].get(field).is_some(), "history entries carry {field}");
    }
    let sites = json(d, &["site", "list"]);
    assert_eq!(sites[0]["id"], "BL-LAB-1");
    assert_eq!(sites[0]["nodes"], 2);
    let nodes = json(d, &["node", "list", "--site", "BL-LAB-1"]);
    assert_eq!(nodes.as_array().unwrap().len(), 2);
}

#[test]
fn bad_input_exits_1_with_one_sentence_and_usage_errors_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (code, err) = fail(d, &["site", "list"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("no replica") && err.contains("fleetdeck init"),
        "{err}"
    );

    blocao(d);
    let before = ok(d, &["history", "--json"]);
    for (args, needle) in [
        (
            vec!["config", "set", "heartbeat.interval_s", "0"],
            "heartbeat.interval_s = 0 is out of range",
        ),
        (
            vec!["config", "set", "alerts.mem_pct", "lots"],
            "alerts.mem_pct = \"lots\" is not valid",
        ),
        (
            vec!["config", "set", "alerts.dsk_pct", "80"],
            "not a known setting",
        ),
        (
            vec!["config", "set", "x", "1", "--site", "NOPE"],
            "unknown site 'NOPE'",
        ),
        (vec!["config", "set", "a..b", "1"], "empty segment"),
        (
            vec!["config", "unset", "never.set"],
            "not set in the fleet defaults",
        ),
        (
            vec!["node", "add", "n1", "--site", "NOPE"],
            "unknown site 'NOPE'",
        ),
        (
            vec!["site", "add", "bad id", "--name", "x"],
            "site id 'bad id' is not valid",
        ),
        (
            vec!["site", "add", "BL-LAB-1", "--name", "again"],
            "already exists",
        ),
        (vec!["site", "rm", "BL-LAB-1"], "still has 2 node(s)"),
        (vec!["revert", "nothex"], "change id 'nothex' is not valid"),
        (vec!["alerts", "ack", "node-down:cam-1"], "no open alert"),
        (vec!["init", "--name", "again"], "already exists"),
    ] {
        let (code, err) = fail(d, &args);
        assert_eq!(code, 1, "{args:?}: {err}");
        assert!(
            err.contains(needle),
            "{args:?}: expected '{needle}' in: {err}"
        );
        assert_eq!(err.trim().lines().count(), 1, "one sentence: {err}");
    }
    assert_eq!(ok(d, &["history", "--json"]), before, "nothing was written");

    let out = fd(d, &["config", "set"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "missing arguments are a usage error"
    );
    let out = fd(d, &["alerts", "silence", "x", "--for", "soon"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a duration"));
}

#[test]
fn a_cli_write_reaches_a_process_holding_the_replica_within_a_second() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    blocao(d);
    let mut held = Replica::open(d).unwrap();
    ok(
        d,
        &[
            "config",
            "set",
            "frigate.version",
            "0.16",
            "--site",
            "BL-LAB-2",
        ],
    );
    let written = Instant::now();
    let cam = NodeId::parse("hub-1").unwrap();
    let mut seen = None;
    // Poll as the console and daemon do (every 50 ms here), for at most 1 s.
    while written.elapsed() < Duration::from_secs(1) {
        held.refresh().unwrap();
        if held
            .state()
            .effective_node(&cam)
            .unwrap()
            .get_str("frigate.version")
            .is_some()
        {
            seen = Some(written.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        seen.is_some(),
        "the open replica did not see the CLI's write within 1 s"
    );
}

fn beat(node: &str, seq: u64, time_ms: i64, disk: f64) -> HealthRegister {
    HealthRegister {
        node: node.into(),
        seq,
        time_ms,
        metrics: Metrics {
            cpu_pct: 10.0,
            mem_pct: 40.0,
            disks: vec![fleetdeck_store::health::DiskUsage {
                mount: "/".into(),
                used_pct: disk,
            }],
            load1: 0.2,
            uptime_s: 1000,
            temp_c: None,
        },
        tls: vec![],
        backup: None,
        applied: None,
        ..Default::default()
    }
}

#[test]
fn alerts_status_ack_and_silence_across_processes() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    blocao(d);
    {
        let mut r = Replica::open(d).unwrap();
        let now = now_ms();
        r.record_health(&beat("cam-1", 1, now, 91.0)).unwrap(); // disk > 85 %
        r.record_health(&beat("cam-2", 1, now, 20.0)).unwrap();
        // Last heard an hour ago.
        r.record_health_aged(&beat("hub-1", 1, now - 3_600_000, 20.0), 3_600_000)
            .unwrap();
    }
    let alerts = json(d, &["alerts"]);
    let ids: Vec<&str> = alerts
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec!["site-offline:BL-LAB-2", "disk:cam-1:/"],
        "{alerts}"
    );
    assert_eq!(alerts[0]["severity"], "hard");
    assert_eq!(alerts[1]["severity"], "medium");

    let status = json(d, &["status"]);
    assert_eq!(status["summary"]["err"], 1);
    assert_eq!(status["summary"]["warn"], 1);
    assert_eq!(status["summary"]["err_pct"], 50.0);
    assert_eq!(status["summary"]["alerts_hard"], 1);

    ok(d, &["alerts", "ack", "disk:cam-1:/"]);
    let alerts = json(d, &["alerts"]);
    assert_eq!(alerts[1]["acked_by"], "ops-laptop");

    ok(
        d,
        &["alerts", "silence", "site-offline:BL-LAB-2", "--for", "2h"],
    );
    let shown = json(d, &["alerts"]);
    assert_eq!(
        shown.as_array().unwrap().len(),
        1,
        "silenced alerts are hidden: {shown}"
    );
    let all = json(d, &["alerts", "--all"]);
    assert_eq!(all.as_array().unwrap().len(), 2);
    assert!(ok(d, &["alerts"]).contains("1 silenced"));
    assert_eq!(json(d, &["status"])["summary"]["hidden"], 1);
}

#[test]
fn conflicts_name_the_winner_and_revert_undoes_a_change() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    blocao(&a);
    {
        // b is an operator's replica: enrolled by a before it writes.
        let mut ra = Replica::open(&a).unwrap();
        let key = load_or_create_identity(&b).unwrap().key().clone();
        let op = Op::MemberAdd {
            key,
            name: "b".into(),
            role: Role::Operator,
        };
        ops::apply(&mut ra, op, now_ms()).unwrap();
        Replica::init_from_changes(&b, ra.changes_after(&[])).unwrap();
    }
    ok(
        &a,
        &[
            "config",
            "set",
            "retention.days",
            "10",
            "--site",
            "BL-LAB-2",
        ],
    );
    ok(
        &b,
        &[
            "config",
            "set",
            "retention.days",
            "20",
            "--site",
            "BL-LAB-2",
        ],
    );
    {
        let (mut ra, mut rb) = (Replica::open(&a).unwrap(), Replica::open(&b).unwrap());
        let (ha, hb) = (ra.heads(), rb.heads());
        let to_b = ra.changes_after(&hb);
        let to_a = rb.changes_after(&ha);
        rb.apply_changes(to_b).unwrap();
        ra.apply_changes(to_a).unwrap();
    }
    let c = json(&a, &["conflicts"]);
    assert_eq!(c[0]["scope"], "site BL-LAB-2");
    assert_eq!(c[0]["key"], "retention.days");
    let winner = c[0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["winner"] == true)
        .unwrap();
    let eff = json(&a, &["config", "effective", "--node", "hub-1"]);
    assert_eq!(eff["retention"]["days"], winner["value"]);
    assert_eq!(
        json(&b, &["conflicts"])[0]["values"],
        c[0]["values"],
        "both replicas agree"
    );
    ok(
        &a,
        &[
            "config",
            "set",
            "retention.days",
            "15",
            "--site",
            "BL-LAB-2",
        ],
    );
    assert_eq!(json(&a, &["conflicts"]), json!([]));

    let last = json(&a, &["history", "--limit", "1"])[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let d = json(&a, &["diff", &format!("{}^", &last[..8]), &last[..8]]);
    assert_eq!(d["config"][0]["key"], "retention.days");
    assert_eq!(d["config"][0]["after"], 15);
    let r = json(&a, &["revert", &last[..10]]);
    assert_eq!(r["restored"].as_array().unwrap().len(), 1);
    let eff = json(&a, &["config", "effective", "--node", "hub-1"]);
    assert_eq!(
        eff["retention"]["days"], winner["value"],
        "revert restores what was there before"
    );
}

#[test]
fn node_list_sorts_naturally_and_node_show_prints_what_json_holds() {
    use fleetdeck_store::health::{
        ApplyReport, ApplyResult, BackupStatus, DbBackup, DiskUsage, TlsCert,
    };
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    blocao(d);
    ok(d, &["node", "add", "n10", "n2", "n1", "--site", "BL-LAB-2"]);
    let listed = json(d, &["node", "list", "--site", "BL-LAB-2"]);
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["hub-1", "n1", "n2", "n10"], "n2 before n10");
    let text = ok(d, &["node", "list"]);
    let at = |id: &str| text.find(&format!("\n{id} ")).unwrap();
    assert!(at("n2") < at("n10") && at("cam-2") < at("n1"), "{text}");

    let now = now_ms();
    {
        let mut r = Replica::open(d).unwrap();
        let mut reg = beat("cam-1", 1, now, 91.0);
        reg.metrics.disks.push(DiskUsage {
            mount: "/data".into(),
            used_pct: 20.0,
        });
        reg.tls = vec![TlsCert {
            name: "web".into(),
            not_after_ms: now + 12 * 86_400_000 + 60_000,
        }];
        reg.backup = Some(BackupStatus {
            last_run_ms: now - 3 * 3_600_000,
            databases: vec![DbBackup {
                name: "frigate".into(),
                ok: false,
                error: Some("disk full".into()),
            }],
        });
        reg.applied = Some(ApplyReport {
            revision: "deadbeefdeadbeef".into(),
            result: ApplyResult::RolledBack,
            error: Some("check failed: exit 1".into()),
            duration_ms: 5,
            at_ms: now,
            from: Vec::new(),
        });
        reg.safe_mode = Some("3 applies failed in a row".into());
        reg.drift = vec!["frigate.yml".into()];
        r.record_health(&reg).unwrap();
    }
    let shown = json(d, &["node", "show", "cam-1"]);
    assert_eq!(shown["health"]["applied"]["result"], "rolled_back");
    let text = ok(d, &["node", "show", "cam-1"]);
    for needle in [
        "/ 91%",
        "/data 20%",
        "load 0.20",
        "up 16m",
        "web 12 days left",
        "backup    ran 3h ago: frigate FAILED: disk full",
        "SAFE MODE 3 applies failed in a row",
        "drift     edited by hand: frigate.yml",
        "deadbeefdeadbeef rolled back",
        "check failed: exit 1",
        "live      the release before deadbeefdeadbeef  [behind]",
    ] {
        assert!(text.contains(needle), "expected '{needle}' in:\n{text}");
    }
    assert!(
        !text.contains("applied   deadbeefdeadbeef ("),
        "a rolled-back revision is not shown as applied:\n{text}"
    );

    // A level has no start in the register: SINCE says '-' and why; the
    // rollback is dated.
    let alerts = ok(d, &["alerts"]);
    let line = |id: &str| alerts.lines().find(|l| l.contains(id)).unwrap();
    assert!(line("disk:cam-1:/").contains(" - "), "{alerts}");
    assert!(line("apply:cam-1").contains(" ago "), "{alerts}");
    assert!(alerts.contains("(SINCE -: "), "{alerts}");
}

#[test]
fn a_fleet_exported_to_a_file_is_applied_to_another_fleet_with_a_preview() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    blocao(a.path());
    ok(a.path(), &["config", "set", "retention.days", "30"]);
    ok(
        a.path(),
        &[
            "config",
            "set",
            "frigate.version",
            "0.14",
            "--site",
            "BL-LAB-1",
        ],
    );
    let file = a.path().join("fleet.toml");
    ok(a.path(), &["export", "-o", file.to_str().unwrap()]);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("[sites.BL-LAB-1]"), "{text}");

    // Another fleet: the preview lists every step and writes nothing.
    ok(b.path(), &["init", "--name", "hub", "--fleet", "other"]);
    let before = json(b.path(), &["history"]);
    let preview = ok(
        b.path(),
        &["apply", "-f", file.to_str().unwrap(), "--dry-run"],
    );
    assert!(preview.contains("+ site BL-LAB-1"), "{preview}");
    assert!(
        preview.contains("+ site BL-LAB-1: frigate.version = 0.14"),
        "{preview}"
    );
    assert!(preview.contains("would apply: "), "{preview}");
    assert_eq!(
        json(b.path(), &["history"]),
        before,
        "a dry run writes nothing"
    );

    // The file names the first fleet's admin: members take an admin, and
    // this replica's member is one, so it enrolls them too. Applied as one
    // change; applying it again changes nothing.
    let done = json(b.path(), &["apply", "-f", file.to_str().unwrap()]);
    assert_eq!(done["ok"], json!(true));
    assert!(done["change"].is_string(), "{done}");
    assert!(done["steps"].as_array().unwrap().len() >= 5, "{done}");
    let eff = json(b.path(), &["config", "effective", "--node", "cam-1"]);
    assert_eq!(eff["frigate"]["version"], json!(0.14), "{eff}");
    let again = ok(b.path(), &["apply", "-f", file.to_str().unwrap()]);
    assert!(again.contains("nothing changed"), "{again}");
    // The two fleets now declare the same sites, nodes and config; the
    // second also keeps its own admin.
    let (ea, eb) = (json(a.path(), &["export"]), json(b.path(), &["export"]));
    for part in ["config", "sites", "nodes"] {
        assert_eq!(ea[part], eb[part], "{part}");
    }
    for (key, m) in ea["members"].as_object().unwrap() {
        assert_eq!(&eb["members"][key], m);
    }
    assert_eq!(eb["members"].as_object().unwrap().len(), 2);

    // A bad file: exit 1, one sentence naming the file and the entry.
    let bad = a.path().join("bad.toml");
    std::fs::write(&bad, "[sites.BL-X]\nname = \"x\"\nlat = 123.0\nlon = 0.0\n").unwrap();
    let (code, err) = fail(b.path(), &["apply", "-f", bad.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("bad.toml: sites.BL-X: latitude 123"), "{err}");
    let (code, err) = fail(b.path(), &["apply", "-f", "/nonexistent/fleet.toml"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("cannot read /nonexistent/fleet.toml: No such file"),
        "{err}"
    );
}

#[test]
fn receipts_say_per_node_where_a_change_stands_and_history_counts_them() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    blocao(d);
    let done = json(d, &["config", "set", "firmware", "2.1"]);
    let change = done["change"].as_str().unwrap().to_string();
    {
        let mut r = Replica::open(d).unwrap();
        let heads: Vec<String> = r.heads().iter().map(|h| h.to_string()).collect();
        let before: Vec<String> = r
            .resolve(&format!("{change}^"))
            .unwrap()
            .iter()
            .map(|h| h.to_string())
            .collect();
        let now = now_ms();
        // cam-1 runs it; cam-2 holds it and rolled it back; hub-1 was last
        // heard before it, an hour ago.
        let mut cam1 = beat("cam-1", 1, now, 20.0);
        cam1.holds = heads.clone();
        cam1.live_at = heads.clone();
        r.record_health(&cam1).unwrap();
        let mut cam2 = beat("cam-2", 1, now, 20.0);
        cam2.holds = heads.clone();
        cam2.live_at = before.clone();
        cam2.applied = Some(fleetdeck_store::health::ApplyReport {
            revision: "0123456789abcdef".into(),
            result: fleetdeck_store::health::ApplyResult::RolledBack,
            error: Some("check failed: exit 1\n\u{1b}[2Jsecond line".into()),
            duration_ms: 3,
            at_ms: now,
            from: heads,
        });
        r.record_health(&cam2).unwrap();
        let mut hub = beat("hub-1", 1, now - 3_600_000, 20.0);
        hub.holds = before;
        r.record_health_aged(&hub, 3_600_000).unwrap();
    }
    let short = &change[..8];
    let rec = json(d, &["receipts", short]);
    assert_eq!(rec["change"], json!(change));
    assert_eq!(
        rec["line"],
        json!("delivered 2/3 · applied 1 · failed 1 · offline 1")
    );
    let states: Vec<(&str, &str)> = rec["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["node"].as_str().unwrap(), n["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        states,
        [
            ("cam-2", "failed"),
            ("hub-1", "not_yet"),
            ("cam-1", "applied")
        ]
    );
    let text = ok(d, &["receipts", short]);
    // What a node reported is printed escaped: no line break, no escape
    // sequence reaches the terminal.
    assert!(
        text.contains("check failed: exit 1\\n\\u{1b}[2Jsecond line"),
        "{text}"
    );
    assert!(!text.contains('\u{1b}'), "{text}");
    assert!(text.contains("offline: gets it when it is back"), "{text}");
    let history = json(d, &["history", "--limit", "1"]);
    assert_eq!(history[0]["receipts"]["applied"], json!(1));
    assert_eq!(history[0]["receipts"]["nodes"], json!(3));
    let (code, err) = fail(d, &["receipts", "ffffffff"]);
    assert_eq!(code, 1);
    assert!(err.contains("ffffffff"), "{err}");
}

#[test]
fn config_at_a_time_or_a_change_shows_the_fleet_as_this_replica_held_it() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    blocao(d);
    let set = json(d, &["config", "set", "retention.days", "30"]);
    let set_id = set["change"].as_str().unwrap().to_string();
    // Records are per millisecond: a moment between the set and the revert.
    std::thread::sleep(Duration::from_millis(50));
    let between = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
    std::thread::sleep(Duration::from_millis(50));
    ok(d, &["revert", &set_id[..12]]);

    let eff_at = |at: &str| json(d, &["config", "effective", "--node", "cam-1", "--at", at]);
    assert_eq!(eff_at(&between)["retention"]["days"], json!(30));
    assert!(json(d, &["config", "effective", "--node", "cam-1"])["retention"].is_null());
    assert_eq!(eff_at(&set_id[..12])["retention"]["days"], json!(30));
    assert!(eff_at(&format!("{}^", &set_id[..12]))["retention"].is_null());
    let got = json(
        d,
        &[
            "config",
            "get",
            "retention.days",
            "--fleet",
            "--at",
            &between,
        ],
    );
    assert_eq!(got["value"], json!(30));

    // Before the replica existed, in the future, or not a time at all.
    let (code, err) = fail(
        d,
        &[
            "config",
            "effective",
            "--node",
            "cam-1",
            "--at",
            "2001-01-01T00:00:00Z",
        ],
    );
    assert_eq!(code, 1);
    assert!(err.contains("no data that old"), "{err}");
    let (_, err) = fail(d, &["config", "effective", "--node", "cam-1", "--at", "3h"]);
    assert!(err.contains("no data that old"), "{err}");
    let (_, err) = fail(
        d,
        &[
            "config",
            "effective",
            "--node",
            "cam-1",
            "--at",
            "2999-01-01T00:00:00Z",
        ],
    );
    assert!(err.contains("in the future"), "{err}");
    let (_, err) = fail(
        d,
        &[
            "config",
            "effective",
            "--node",
            "cam-1",
            "--at",
            "yesterday",
        ],
    );
    assert!(err.contains("not a time"), "{err}");
}

#[test]
fn status_alerts_and_nodes_at_a_past_moment_come_from_the_record() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    blocao(d);
    // A disk-full episode on cam-1, then the disk cleared.
    Replica::open(d)
        .unwrap()
        .record_health(&beat("cam-1", 1, now_ms(), 97.0))
        .unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let during = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
    std::thread::sleep(Duration::from_millis(50));
    Replica::open(d)
        .unwrap()
        .record_health(&beat("cam-1", 2, now_ms(), 40.0))
        .unwrap();

    let ids = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|a| a["id"].as_str().unwrap().to_string())
            .collect()
    };
    let then = json(d, &["alerts", "--at", &during]);
    assert!(ids(&then).contains(&"disk:cam-1:/".to_string()), "{then}");
    let now = json(d, &["alerts"]);
    assert!(!ids(&now).contains(&"disk:cam-1:/".to_string()), "{now}");
    let text = ok(d, &["alerts", "--at", &during]);
    assert!(text.contains("disk:cam-1:/"), "{text}");

    let status = json(d, &["status", "--at", &during]);
    assert!(status["at"].is_string(), "{status}");
    let lab1 = status["sites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["site"] == "BL-LAB-1")
        .unwrap();
    assert_eq!(lab1["alerts"], json!(1), "{status}");
    let node = json(d, &["node", "show", "cam-1", "--at", &during]);
    assert_eq!(
        node["health"]["metrics"]["disks"][0]["used_pct"],
        json!(97.0)
    );
    assert_eq!(
        json(d, &["node", "show", "cam-1"])["health"]["metrics"]["disks"][0]["used_pct"],
        json!(40.0)
    );
    let site = json(d, &["site", "show", "BL-LAB-1", "--at", &during]);
    assert_eq!(site["alerts"][0]["id"], json!("disk:cam-1:/"), "{site}");
    let nodes = json(d, &["node", "list", "--at", &during]);
    assert!(nodes[0]["last_heard_ms"].is_i64(), "{nodes}");

    // The timeline has the episode, newest first.
    let events = json(d, &["node", "show", "cam-1", "--timeline"]);
    let kinds: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["alert_resolved", "alert_fired"], "{events}");
    assert_eq!(events[1]["alert"], json!("disk:cam-1:/"));
    let text = ok(d, &["node", "show", "cam-1", "--timeline"]);
    assert!(text.contains("alert fired"), "{text}");

    // Before the record begins, in the future, and acting in the past.
    let (code, err) = fail(d, &["status", "--at", "2001-01-01T00:00:00Z"]);
    assert_eq!(code, 1);
    assert!(err.contains("no data that old"), "{err}");
    let (_, err) = fail(d, &["alerts", "--at", "2999-01-01T00:00:00Z"]);
    assert!(err.contains("in the future"), "{err}");
    let (_, err) = fail(d, &["node", "list", "--at", "yesterday"]);
    assert!(err.contains("not a time"), "{err}");
    let (_, err) = fail(d, &["alerts", "--at", &during, "ack", "disk:cam-1:/"]);
    assert!(!err.is_empty());
}

#[test]
fn events_show_what_nodes_went_through_and_what_each_change_did() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    blocao(d);
    ok(
        d,
        &[
            "config",
            "set",
            "retention.days",
            "30",
            "--site",
            "BL-LAB-2",
            "-m",
            "rollout of a shorter retention",
        ],
    );
    {
        let mut r = Replica::open(d).unwrap();
        r.record_health(&beat("cam-1", 1, now_ms(), 97.0)).unwrap();
        let me = r.key().clone();
        r.change("ops-laptop listens on 10.0.0.1:7000", |doc, _| {
            doc.set_member_addrs(&me, &["10.0.0.1:7000".into()])
        })
        .unwrap();
    }
    let events = json(d, &["events"]);
    let kinds: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"alert_fired"), "{events}");
    assert!(kinds.contains(&"config"), "{events}");
    assert!(kinds.contains(&"fleet"), "{events}");
    assert!(
        !kinds.contains(&"rollout"),
        "a message is not what a change did: {events}"
    );
    assert!(!kinds.contains(&"address"), "{events}");
    let all = json(d, &["events", "--all"]);
    assert!(
        all.as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "address"),
        "{all}"
    );

    let lab2 = json(d, &["events", "--site", "BL-LAB-2"]);
    let lab2 = lab2.as_array().unwrap();
    assert!(lab2.iter().any(|e| e["kind"] == "config"), "{lab2:?}");
    assert!(lab2.iter().all(|e| e["node"] != "cam-1"), "{lab2:?}");
    let cam = json(d, &["events", "--node", "cam-1", "--kind", "alert_fired"]);
    assert_eq!(cam[0]["alert"], json!("disk:cam-1:/"), "{cam}");
    let text = ok(d, &["events", "--kind", "config"]);
    assert!(text.contains("rollout of a shorter retention"), "{text}");
    assert!(text.contains("ops-laptop"), "{text}");

    let (code, err) = fail(d, &["events", "--kind", "coffee"]);
    assert_eq!(code, 1);
    assert!(err.contains("not a kind of event"), "{err}");
    let (_, err) = fail(d, &["events", "--site", "NOPE"]);
    assert!(err.contains("NOPE"), "{err}");

    // history: what each change did, address changes folded.
    let history = json(d, &["history"]);
    assert!(
        history
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["kind"] != "address"),
        "{history}"
    );
    assert_eq!(history[0]["kind"], json!("config"), "{history}");
    let text = ok(d, &["history"]);
    assert!(
        text.contains("(1 folded: changes that only record"),
        "{text}"
    );
    let all = json(d, &["history", "--all"]);
    assert_eq!(all[0]["kind"], json!("address"), "{all}");
}

#[test]
fn history_diff_shows_the_keys_each_change_set_and_unset_layer_by_layer() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    blocao(d);
    ok(
        d,
        &[
            "config",
            "set",
            "retention.days",
            "30",
            "--site",
            "BL-LAB-2",
        ],
    );
    ok(
        d,
        &[
            "config",
            "set",
            "retention.days",
            "45",
            "--site",
            "BL-LAB-2",
        ],
    );
    ok(
        d,
        &["config", "unset", "retention.days", "--site", "BL-LAB-2"],
    );
    let h = json(d, &["history", "--diff", "--limit", "3"]);
    let edit = |i: usize| h[i]["edits"][0].clone();
    assert_eq!(edit(0)["layer"], json!("site BL-LAB-2"));
    assert_eq!(edit(0)["key"], json!("retention.days"));
    assert_eq!(
        (edit(0)["before"].clone(), edit(0)["after"].clone()),
        (json!(45), Value::Null)
    );
    assert_eq!(
        (edit(1)["before"].clone(), edit(1)["after"].clone()),
        (json!(30), json!(45))
    );
    assert_eq!(
        (edit(2)["before"].clone(), edit(2)["after"].clone()),
        (Value::Null, json!(30))
    );
    let text = ok(d, &["history", "--diff", "--limit", "3"]);
    assert!(
        text.contains("site BL-LAB-2  retention.days  30 → 45"),
        "{text}"
    );
    assert!(text.contains("unset (was 45)"), "{text}");
    // Without --diff, no edits.
    assert!(
        json(d, &["history", "--limit", "1"])[0]
            .get("edits")
            .is_none()
    );
}

#[test]
fn command_status_shows_results_from_nodes_registers_and_from_the_document() {
    use fleetdeck_store::document::{CommandRecord, CommandResult};
    use fleetdeck_store::identity::Identity;
    use fleetdeck_store::results::{ResultsRegister, SignedResults};
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    blocao(d);
    let cam1 = Identity::generate();
    let result = |ok: bool, output: &str| CommandResult {
        exit_code: Some(if ok { 0 } else { 3 }),
        ok,
        output: output.into(),
        at_ms: now_ms(),
    };
    {
        let mut r = Replica::open(d).unwrap();
        let key = cam1.key().clone();
        r.change("command c1 and cam-1's key", |doc, _| {
            doc.bind_node(&NodeId::parse("cam-1").unwrap(), &key)?;
            doc.add_command(
                "c1",
                &CommandRecord {
                    action: "restart".into(),
                    target: "site:BL-LAB-1".into(),
                    by: "ops-laptop".into(),
                    at_ms: now_ms(),
                },
            )
        })
        .unwrap();
        // cam-1 (a current node) reports in its results register, as it
        // arrives from a peer; cam-2 (a node from before registers) wrote
        // into the document.
        let reg =
            ResultsRegister::with_result(None, "cam-1", "c1", result(true, "restarted"), now_ms());
        r.admit_results(&SignedResults::sign(&reg, &cam1).unwrap())
            .unwrap();
        r.change("cam-2 ran restart (c1)", |doc, _| {
            doc.put_command_result(
                "c1",
                &NodeId::parse("cam-2").unwrap(),
                &result(false, "no such unit"),
            )
        })
        .unwrap();
    }
    let status = json(d, &["command", "status", "c1"]);
    let nodes = status["nodes"].as_array().unwrap();
    let state = |n: &str| {
        nodes
            .iter()
            .find(|x| x["node"] == n)
            .map(|x| (x["state"].clone(), x["output"].clone()))
    };
    assert_eq!(state("cam-1"), Some((json!("ok"), json!("restarted"))));
    assert_eq!(
        state("cam-2"),
        Some((json!("failed"), json!("no such unit")))
    );
    let list = json(d, &["command", "list"]);
    assert_eq!(list[0]["reported"], 2);
    assert_eq!(list[0]["failed"], 1);
    let text = ok(d, &["command", "status", "c1"]);
    assert!(
        text.contains("restarted") && text.contains("no such unit"),
        "{text}"
    );
}
