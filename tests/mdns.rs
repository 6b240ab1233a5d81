//! LAN discovery: two replicas that know no address of each other find each
//! other by mDNS and sync. Runs in a network namespace the test creates (its
//! own loopback with multicast), so no packet reaches a real network; it
//! needs root and iproute2, as CI has.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fleetdeck_store::config::ConfigPath;
use fleetdeck_store::document::{LayerRef, SiteRecord};
use fleetdeck_store::replica::load_or_create_identity;
use fleetdeck_store::{Replica, Role, SiteId, now_ms};
use serde_json::json;

struct Namespace(String);

impl Namespace {
    fn create(tag: &str) -> Option<Namespace> {
        let name = format!("fd{tag}{}", std::process::id());
        let ip = |args: &[&str]| {
            Command::new("ip")
                .args(args)
                .status()
                .is_ok_and(|s| s.success())
        };
        if !ip(&["netns", "add", &name]) {
            return None;
        }
        let ns = Namespace(name);
        let inside = |args: &[&str]| {
            let mut full = vec!["netns", "exec", &ns.0, "ip"];
            full.extend_from_slice(args);
            ip(&full)
        };
        let ok = inside(&["link", "set", "lo", "up"])
            && inside(&["link", "set", "lo", "multicast", "on"])
            && inside(&["route", "add", "224.0.0.0/4", "dev", "lo"]);
        ok.then_some(ns)
    }

    fn spawn(&self, dir: &Path, extra: &[&str]) -> Child {
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.0,
                env!("CARGO_BIN_EXE_fleetdeck"),
                "--data",
            ])
            .arg(dir)
            .args(["serve", "--listen", "0.0.0.0:0"])
            .args(extra)
            .env_remove("FLEETDECK_DATA")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

struct Kill(Vec<Child>);
impl Drop for Kill {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn can_make_namespaces() -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    root && Command::new("ip").arg("-V").output().is_ok()
}

/// Two enrolled replicas of one fleet with no address in the document.
fn two_strangers(tmp: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (a, b) = (tmp.join("a"), tmp.join("b"));
    let kb = load_or_create_identity(&b).unwrap().key().clone();
    let mut ra = Replica::init(&a, "site-node", "lan").unwrap();
    ra.change("setup", |d, _| {
        d.add_site(
            &SiteId::parse("S1").unwrap(),
            &SiteRecord {
                name: "s".into(),
                lat: None,
                lon: None,
                zone: None,
            },
        )?;
        d.put_member(&kb, "field-laptop", Role::Operator, now_ms())
    })
    .unwrap();
    Replica::init_from_changes(&b, ra.changes_after(&[])).unwrap();
    (a, b)
}

fn fleet_value(dir: &Path, key: &str) -> Option<serde_json::Value> {
    let r = Replica::open(dir).ok()?;
    r.state()
        .fleet
        .get(&ConfigPath::parse(key).unwrap())
        .map(|v| (**v).clone())
}

#[test]
fn members_on_one_lan_find_each_other_with_no_address_typed() {
    if !can_make_namespaces() {
        eprintln!("SKIPPED: LAN discovery needs root and iproute2 to make a network namespace");
        return;
    }
    let Some(ns) = Namespace::create("on") else {
        panic!("could not set up a network namespace with multicast on its loopback");
    };
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = two_strangers(tmp.path());
    let _servers = Kill(vec![ns.spawn(&a, &[]), ns.spawn(&b, &[])]);

    let mut ra = Replica::open(&a).unwrap();
    let p = ConfigPath::parse("lan.found").unwrap();
    ra.change("edit on the node", |d, _| {
        d.set_config(&LayerRef::Fleet, &p, &json!(true))
    })
    .unwrap();
    let start = Instant::now();
    let mut seen = false;
    while start.elapsed() < Duration::from_secs(20) {
        if fleet_value(&b, "lan.found") == Some(json!(true)) {
            seen = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        seen,
        "the laptop found the node by mDNS and received its edit"
    );
}

#[test]
fn with_mdns_off_strangers_stay_apart() {
    if !can_make_namespaces() {
        eprintln!("SKIPPED: LAN discovery needs root and iproute2 to make a network namespace");
        return;
    }
    let ns = Namespace::create("off").expect("namespace");
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = two_strangers(tmp.path());
    let _servers = Kill(vec![
        ns.spawn(&a, &["--no-mdns"]),
        ns.spawn(&b, &["--no-mdns"]),
    ]);
    let mut ra = Replica::open(&a).unwrap();
    let p = ConfigPath::parse("lan.found").unwrap();
    ra.change("edit", |d, _| {
        d.set_config(&LayerRef::Fleet, &p, &json!(true))
    })
    .unwrap();
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        fleet_value(&b, "lan.found"),
        None,
        "no discovery, no address: no sync"
    );
}
