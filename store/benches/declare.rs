//! Importing a fleet from a file (issue 17: "importing a 1,000-site fleet
//! takes seconds, not minutes"): a file of 1,000 sites and 3,000 nodes, each
//! with a config layer, parsed, planned and applied as one change
//! (`fleetdeck apply -f`), against the baseline of the same fleet written as
//! one operation per site and per node layer (what a script of `site add`,
//! `node add` and `config set` calls does, less the process starts), and a
//! second apply of the same file (nothing to change: the plan alone).
//!
//! Run: `cargo bench -p fleetdeck-store --bench declare`
//! (`FLEETDECK_BENCH_QUICK=1`: 100 sites, a smoke run).

use std::time::Instant;

use fleetdeck_store::config::ConfigPath;
use fleetdeck_store::declare::FleetSpec;
use fleetdeck_store::document::{LayerRef, NodeRecord, SiteRecord};
use fleetdeck_store::ops::{self, ConfigEdit, Op};
use fleetdeck_store::{NodeId, Replica, SiteId, now_ms};
use serde_json::json;

fn file(sites: usize) -> String {
    let mut text = String::from("[config]\nretention.days = 30\nheartbeat.interval_s = 10\n");
    for s in 0..sites {
        text.push_str(&format!(
            "[sites.S-{s:05}]\nname = \"Site {s}\"\nzone = \"z{}\"\nlat = 38.{s}\nlon = -9.{s}\n[sites.S-{s:05}.config]\nretention.days = {}\nfrigate.version = \"0.14\"\n",
            s % 10,
            7 + s % 20
        ));
        for n in 0..3 {
            text.push_str(&format!(
                "[nodes.n-{s:05}-{n}]\nsite = \"S-{s:05}\"\nrole = \"camera\"\n[nodes.n-{s:05}-{n}.config]\nmqtt.topic = \"s{s}/n{n}\"\n"
            ));
        }
    }
    text
}

fn main() {
    let quick = std::env::var("FLEETDECK_BENCH_QUICK").is_ok_and(|v| v == "1");
    let sites = if quick { 100 } else { 1000 };
    let text = file(sites);
    println!(
        "fleet file: {sites} sites, {} nodes, {} KB",
        sites * 3,
        text.len() / 1024
    );

    // fleetdeck apply -f: parse, plan, one change.
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut r = Replica::init(tmp.path(), "ops", "bench").expect("init");
    let t = Instant::now();
    let spec = FleetSpec::parse(&text).expect("parse");
    let parsed = t.elapsed();
    let done = ops::apply(
        &mut r,
        Op::Declare {
            spec: Box::new(spec.clone()),
            prune: false,
        },
        now_ms(),
    )
    .expect("apply");
    let applied = t.elapsed();
    assert_eq!(r.state().nodes.len(), sites * 3);
    println!(
        "apply -f (one change):       {:>8.2} s  (parse {:.2} s)  {}",
        applied.as_secs_f64(),
        parsed.as_secs_f64(),
        done.summary
    );
    let t = Instant::now();
    let again = ops::apply(
        &mut r,
        Op::Declare {
            spec: Box::new(spec),
            prune: false,
        },
        now_ms(),
    )
    .expect("apply again");
    assert!(again.change.is_none());
    println!(
        "apply -f again (no change):  {:>8.2} s",
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let out = FleetSpec::of(r.state()).to_toml().expect("export");
    println!(
        "export:                      {:>8.2} s  ({} KB)",
        t.elapsed().as_secs_f64(),
        out.len() / 1024
    );

    // Baseline: one operation per site, per node and per layer.
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut b = Replica::init(tmp.path(), "ops", "bench").expect("init");
    let set = |layer: LayerRef, pairs: &[(&str, serde_json::Value)]| Op::Config {
        layer,
        edits: pairs
            .iter()
            .map(|(k, v)| ConfigEdit::Set(ConfigPath::parse(k).expect("key"), v.clone()))
            .collect(),
        message: None,
    };
    let t = Instant::now();
    let now = now_ms();
    ops::apply(
        &mut b,
        set(
            LayerRef::Fleet,
            &[
                ("retention.days", json!(30)),
                ("heartbeat.interval_s", json!(10)),
            ],
        ),
        now,
    )
    .expect("fleet");
    for s in 0..sites {
        let sid = SiteId::parse(&format!("S-{s:05}")).expect("site id");
        let rec = SiteRecord {
            name: format!("Site {s}"),
            lat: Some(38.0),
            lon: Some(-9.0),
            zone: Some(format!("z{}", s % 10)),
        };
        ops::apply(
            &mut b,
            Op::SiteAdd {
                sites: vec![(sid.clone(), rec)],
            },
            now,
        )
        .expect("site");
        ops::apply(
            &mut b,
            set(
                LayerRef::Site(sid.clone()),
                &[
                    ("retention.days", json!(7 + s % 20)),
                    ("frigate.version", json!("0.14")),
                ],
            ),
            now,
        )
        .expect("site layer");
        for n in 0..3 {
            let nid = NodeId::parse(&format!("n-{s:05}-{n}")).expect("node id");
            let rec = NodeRecord {
                site: sid.to_string(),
                role: Some("camera".into()),
            };
            ops::apply(
                &mut b,
                Op::NodeAdd {
                    nodes: vec![(nid.clone(), rec)],
                },
                now,
            )
            .expect("node");
            ops::apply(
                &mut b,
                set(
                    LayerRef::Node(nid),
                    &[("mqtt.topic", json!(format!("s{s}/n{n}")))],
                ),
                now,
            )
            .expect("node layer");
        }
    }
    println!(
        "baseline, one op each ({} changes): {:>8.2} s",
        1 + sites * 8,
        t.elapsed().as_secs_f64()
    );
}
