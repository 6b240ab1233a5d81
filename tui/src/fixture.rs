//! A deterministic fleet for tests, snapshots and the demo example: ten sites
//! modelled on the blocao multi-site seed (BL-LAB-1, BL-LAB-2, BL-WH-N,
//! BL-WH-S, two hubs, three shops, a field kit), nodes with health registers
//! in every state, a few alerts (one acknowledged, one silenced), history and
//! peers. No clock: every time is relative to the `now_ms` it is built with.
//!
//! The fleet is a real fleet document (the store's `FleetDoc`), written change
//! by change with fixed authors and times, so its history has real change
//! ids and reverts, acks and config edits go through the store's own code.
//! Alerts, site states and the summary come from the store's rules
//! (`alerts::evaluate`, `site_states`, `summarize`): the fixture shows what a
//! replica holding the same registers would. Intents are recorded (see
//! [`FixtureSource::intents`]) and then applied.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use automerge::{ActorId, ChangeHash};
use fleetdeck_store::alerts::{self, Ack, Alert, SiteInput};
use fleetdeck_store::at::At;
use fleetdeck_store::config::{ConfigPath, Layer};
use fleetdeck_store::diff::{self, LayerEdit};
use fleetdeck_store::document::{
    CommandRecord, CommandResult, FleetDoc, FleetState, LayerRef, NodeRecord, SiteRecord,
};
use fleetdeck_store::events::{ChangeKind, Filter, FleetEvent, change_events, change_infos};
use fleetdeck_store::health::{
    ApplyReport, ApplyResult, BackupStatus, DbBackup, DiskUsage, HealthRegister, Metrics, Sample,
    StoredRegister, TlsCert,
};
use fleetdeck_store::health_log::{Run, State};
use fleetdeck_store::moment::{self, Moment, TimelineInput};
use fleetdeck_store::ops;
use fleetdeck_store::replica::alert_inputs;
use fleetdeck_store::replica::rfc3339;
use fleetdeck_store::{MemberKey, NodeId, Role, SiteId};
use serde_json::{Value, json};

use crate::source::{HistoryRow, Intent, Peer, Snapshot, Source, SyncStatus};

/// The instant the fixture is usually built at: 2025-06-15 15:06:40 UTC.
pub const T0: i64 = 1_750_000_000_000;

const SEC: i64 = 1_000;
const MIN: i64 = 60 * SEC;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;

/// The intents a fixture received, shared with the test that drives it.
pub type IntentLog = Arc<Mutex<Vec<Intent>>>;

/// A fixture fleet behind the [`Source`] trait.
pub struct FixtureSource {
    now_ms: i64,
    me: String,
    me_key: MemberKey,
    doc: FleetDoc,
    fleet: Arc<FleetState>,
    health: Arc<HashMap<String, StoredRegister>>,
    peers: Vec<Peer>,
    sync: SyncStatus,
    intents: IntentLog,
    fail_next: Option<String>,
    trouble: Option<String>,
    /// The fixture's record of node health: each node that reports was
    /// heard every beat from [`FixtureSource::record_from_ms`] until its
    /// register at build time (`first`), then each of `reports`.
    first: Arc<HashMap<String, StoredRegister>>,
    reports: Vec<StoredRegister>,
    record_from_ms: i64,
    /// Tunnels "opened" (a test double: nothing listens at them).
    tunnels: Vec<crate::OpenTunnel>,
}

/// How far back the fixture's record of node health goes from the time it
/// is built: a day, and an hour before it, so the day before `now` shows
/// what changed in it, not the record beginning.
const RECORD_MS: i64 = DAY + HOUR;

fn fnv(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn lock(log: &IntentLog) -> MutexGuard<'_, Vec<Intent>> {
    log.lock().unwrap_or_else(|e| e.into_inner())
}

struct NodeSpec {
    id: &'static str,
    site: &'static str,
    role: &'static str,
    /// Seconds since it was last heard; None: never reported.
    heard_s: Option<i64>,
    cpu: f64,
    mem: f64,
    disks: &'static [(&'static str, f64)],
}

const NODES: &[NodeSpec] = &[
    NodeSpec {
        id: "lab1-router",
        site: "BL-LAB-1",
        role: "router",
        heard_s: Some(3),
        cpu: 12.0,
        mem: 41.0,
        disks: &[("/", 38.0)],
    },
    NodeSpec {
        id: "lab1-cam-1",
        site: "BL-LAB-1",
        role: "camera",
        heard_s: Some(5),
        cpu: 34.0,
        mem: 55.0,
        disks: &[("/", 61.0)],
    },
    NodeSpec {
        id: "lab1-nvr",
        site: "BL-LAB-1",
        role: "nvr",
        heard_s: Some(2),
        cpu: 48.0,
        mem: 62.0,
        disks: &[("/", 22.0), ("/data", 71.0)],
    },
    NodeSpec {
        id: "lab2-router",
        site: "BL-LAB-2",
        role: "router",
        heard_s: Some(4),
        cpu: 9.0,
        mem: 37.0,
        disks: &[("/", 30.0)],
    },
    NodeSpec {
        id: "lab2-cam-1",
        site: "BL-LAB-2",
        role: "camera",
        heard_s: Some(6),
        cpu: 41.0,
        mem: 93.4,
        disks: &[("/", 58.0)],
    },
    NodeSpec {
        id: "lab2-nvr",
        site: "BL-LAB-2",
        role: "nvr",
        heard_s: Some(3),
        cpu: 52.0,
        mem: 70.0,
        disks: &[("/", 25.0), ("/data", 88.2)],
    },
    NodeSpec {
        id: "whn-router",
        site: "BL-WH-N",
        role: "router",
        heard_s: Some(2),
        cpu: 15.0,
        mem: 44.0,
        disks: &[("/", 33.0)],
    },
    NodeSpec {
        id: "whn-nvr",
        site: "BL-WH-N",
        role: "nvr",
        heard_s: Some(4),
        cpu: 61.0,
        mem: 77.0,
        disks: &[("/", 40.0), ("/data", 97.1)],
    },
    NodeSpec {
        id: "whn-cam-1",
        site: "BL-WH-N",
        role: "camera",
        heard_s: Some(7),
        cpu: 28.0,
        mem: 49.0,
        disks: &[("/", 52.0)],
    },
    NodeSpec {
        id: "whs-router",
        site: "BL-WH-S",
        role: "router",
        heard_s: Some(560),
        cpu: 11.0,
        mem: 39.0,
        disks: &[("/", 31.0)],
    },
    NodeSpec {
        id: "whs-nvr",
        site: "BL-WH-S",
        role: "nvr",
        heard_s: Some(575),
        cpu: 44.0,
        mem: 66.0,
        disks: &[("/", 28.0), ("/data", 64.0)],
    },
    NodeSpec {
        id: "hub-de",
        site: "BL-HUB-DE",
        role: "central",
        heard_s: Some(20),
        cpu: 23.0,
        mem: 58.0,
        disks: &[("/", 47.0)],
    },
    NodeSpec {
        id: "hub-fi",
        site: "BL-HUB-FI",
        role: "central",
        heard_s: Some(1),
        cpu: 19.0,
        mem: 51.0,
        disks: &[("/", 44.0)],
    },
    NodeSpec {
        id: "lis-router",
        site: "BL-SHOP-LIS",
        role: "router",
        heard_s: Some(5),
        cpu: 8.0,
        mem: 35.0,
        disks: &[("/", 29.0)],
    },
    NodeSpec {
        id: "lis-cam-1",
        site: "BL-SHOP-LIS",
        role: "camera",
        heard_s: Some(130),
        cpu: 0.0,
        mem: 48.0,
        disks: &[("/", 57.0)],
    },
    NodeSpec {
        id: "nyc-router",
        site: "BL-SHOP-NYC",
        role: "router",
        heard_s: Some(3),
        cpu: 10.0,
        mem: 40.0,
        disks: &[("/", 35.0)],
    },
    NodeSpec {
        id: "nyc-cam-1",
        site: "BL-SHOP-NYC",
        role: "camera",
        heard_s: Some(8),
        cpu: 31.0,
        mem: 52.0,
        disks: &[("/", 49.0)],
    },
    NodeSpec {
        id: "sg-router",
        site: "BL-SHOP-SG",
        role: "router",
        heard_s: Some(14),
        cpu: 13.0,
        mem: 42.0,
        disks: &[("/", 36.0)],
    },
    NodeSpec {
        id: "sg-cam-1",
        site: "BL-SHOP-SG",
        role: "camera",
        heard_s: Some(3),
        cpu: 37.0,
        mem: 54.0,
        disks: &[("/", 50.0)],
    },
    NodeSpec {
        id: "field3-cam-1",
        site: "BL-FIELD-3",
        role: "camera",
        heard_s: None,
        cpu: 0.0,
        mem: 0.0,
        disks: &[],
    },
];

/// Sites: id, name, location, zone, days since it was added.
#[allow(clippy::type_complexity)]
const SITES: &[(&str, &str, Option<(f64, f64)>, &str, i64)] = &[
    ("BL-LAB-1", "Lab 1 (R+1)", Some((52.37, 4.90)), "north", 29),
    ("BL-LAB-2", "Lab 2 (R+1)", Some((52.09, 5.12)), "north", 9),
    (
        "BL-WH-N",
        "Warehouse North (R+2)",
        Some((53.22, 6.57)),
        "north",
        7,
    ),
    (
        "BL-WH-S",
        "Warehouse South (R+1)",
        Some((51.44, 5.48)),
        "south",
        3,
    ),
    (
        "BL-HUB-DE",
        "Hub Falkenstein",
        Some((50.48, 12.37)),
        "hub",
        29,
    ),
    ("BL-HUB-FI", "Hub Helsinki", Some((60.17, 24.94)), "hub", 29),
    (
        "BL-SHOP-LIS",
        "Shop Lisbon",
        Some((38.72, -9.14)),
        "south",
        6,
    ),
    (
        "BL-SHOP-NYC",
        "Shop New York",
        Some((40.71, -74.01)),
        "us",
        4,
    ),
    (
        "BL-SHOP-SG",
        "Shop Singapore",
        Some((1.35, 103.82)),
        "apac",
        1,
    ),
    ("BL-FIELD-3", "Field kit 3", None, "field", 1),
];

/// Members: name, role, the byte their fixture key repeats.
const MEMBERS: &[(&str, Role, &str)] = &[
    ("ops-laptop", Role::Admin, "0a"),
    ("hub-de", Role::Operator, "1b"),
    ("hub-fi", Role::Operator, "2c"),
    ("field-laptop", Role::Operator, "3d"),
    ("lab2-router", Role::Node, "4e"),
];

fn member_key(name: &str) -> MemberKey {
    let hex = MEMBERS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map_or_else(|| "ff".repeat(32), |(_, _, b)| b.repeat(32));
    MemberKey::parse(&hex).expect("fixture keys are 64 hex digits")
}

/// The automerge actor of a member: its key and a fixed suffix, so the
/// change ids are the same on every run.
fn actor(name: &str) -> ActorId {
    let mut bytes = member_key(name).to_bytes().to_vec();
    bytes.extend_from_slice(&[0x5a; 8]);
    ActorId::from(bytes)
}

type Edit = Box<dyn FnOnce(&mut FleetDoc) -> fleetdeck_store::Result<()>>;

/// One step of the fixture's history: an operator action, made through the
/// store's operations API as the member who made it, or what a daemon or a
/// rollout recorded (command results, halts) and acks dated in the past,
/// written as those write them.
enum Step {
    Op(ops::Op),
    Recorded(String, Edit),
}

/// The fixture's changes, gathered in any order and written oldest first
/// (as a real fleet would have made them).
struct Script {
    changes: Vec<(i64, &'static str, Step)>,
}

/// The fixture's document while its history is written, as one member.
struct Seed<'a> {
    doc: &'a mut FleetDoc,
    state: FleetState,
    me: MemberKey,
}

impl ops::Fleet for Seed<'_> {
    fn state(&self) -> &FleetState {
        &self.state
    }

    fn me(&self) -> &MemberKey {
        &self.me
    }

    fn alerts(&self, _now_ms: i64) -> Vec<Alert> {
        Vec::new()
    }

    fn resolve_change(&mut self, id: &str) -> fleetdeck_store::Result<ChangeHash> {
        self.doc.resolve_change(id)
    }

    fn commit<T>(
        &mut self,
        message: &str,
        at_ms: i64,
        edit: impl FnOnce(&mut FleetDoc, &FleetState) -> fleetdeck_store::Result<T>,
    ) -> fleetdeck_store::Result<(T, Option<ChangeHash>)> {
        let out = match edit(self.doc, &self.state) {
            Ok(v) => v,
            Err(e) => {
                self.doc.rollback();
                return Err(e);
            }
        };
        let hash = self.doc.commit(message, at_ms);
        self.state = self.doc.state()?;
        Ok((out, hash))
    }
}

impl Script {
    /// What a daemon or a rollout records, or an ack dated in the past.
    fn change(
        &mut self,
        who: &'static str,
        at: i64,
        message: String,
        edit: impl FnOnce(&mut FleetDoc) -> fleetdeck_store::Result<()> + 'static,
    ) {
        self.changes
            .push((at, who, Step::Recorded(message, Box::new(edit))));
    }

    /// An operator action by `who`.
    fn op(&mut self, who: &'static str, at: i64, op: ops::Op) {
        self.changes.push((at, who, Step::Op(op)));
    }

    fn set(&mut self, who: &'static str, at: i64, layer: LayerRef, key: &str, value: Value) {
        let path = ConfigPath::parse(key).expect("fixture keys parse");
        let op = ops::Op::Config {
            layer,
            edits: vec![ops::ConfigEdit::Set(path, value)],
            message: None,
        };
        self.op(who, at, op);
    }

    /// Writes every change, oldest first. The fixture's own data: the store
    /// refusing it is a bug in this file.
    fn write(mut self, doc: &mut FleetDoc) {
        self.changes.sort_by_key(|c| c.0);
        for (at, who, step) in self.changes {
            doc.automerge_mut().set_actor(actor(who));
            match step {
                Step::Op(op) => {
                    let what = op.describe();
                    let state = doc.state().expect("the fixture's document reads");
                    let mut seed = Seed {
                        doc: &mut *doc,
                        state,
                        me: member_key(who),
                    };
                    if let Err(e) = ops::apply(&mut seed, op, at) {
                        panic!("the fixture's '{what}' by {who} was refused: {e}");
                    }
                }
                Step::Recorded(message, edit) => {
                    if let Err(e) = edit(doc) {
                        panic!("the fixture's change '{message}' was refused: {e}");
                    }
                    doc.commit(&message, at);
                }
            }
        }
    }
}

fn site_id(s: &str) -> SiteId {
    SiteId::parse(s).expect("fixture site ids parse")
}

fn node_id(s: &str) -> NodeId {
    NodeId::parse(s).expect("fixture node ids parse")
}

fn build_doc(now_ms: i64) -> FleetDoc {
    let born = now_ms - 30 * DAY;
    let mut doc = FleetDoc::genesis(
        actor("ops-laptop"),
        "b10ca0f1ee7d0c5e",
        "blocao",
        &member_key("ops-laptop"),
        "ops-laptop",
        born,
    )
    .expect("the fixture's genesis is valid");
    let mut w = Script {
        changes: Vec::new(),
    };
    for (i, (name, role, _)) in MEMBERS.iter().enumerate().skip(1) {
        let at = born + (i as i64) * MIN;
        let op = ops::Op::MemberAdd {
            key: member_key(name),
            name: name.to_string(),
            role: *role,
        };
        w.op("ops-laptop", at, op);
    }
    w.set(
        "ops-laptop",
        born + 10 * MIN,
        LayerRef::Fleet,
        "retention.days",
        json!(30),
    );
    w.set(
        "ops-laptop",
        born + 11 * MIN,
        LayerRef::Fleet,
        "frigate.version",
        json!("0.13.2"),
    );
    w.set(
        "ops-laptop",
        born + 12 * MIN,
        LayerRef::Fleet,
        "dns.allow",
        json!(["hub.blocao.eu", "pool.ntp.org"]),
    );
    for (i, (id, name, loc, zone, days)) in SITES.iter().enumerate() {
        let at = now_ms - days * DAY + i as i64 * MIN;
        let rec = SiteRecord {
            name: name.to_string(),
            lat: loc.map(|l| l.0),
            lon: loc.map(|l| l.1),
            zone: Some(zone.to_string()),
        };
        let op = ops::Op::SiteAdd {
            sites: vec![(site_id(id), rec)],
        };
        w.op("ops-laptop", at, op);
        for (j, n) in NODES.iter().filter(|n| n.site == *id).enumerate() {
            let who = if *id == "BL-FIELD-3" {
                "field-laptop"
            } else {
                "ops-laptop"
            };
            let rec = NodeRecord {
                site: id.to_string(),
                role: Some(n.role.to_string()),
            };
            let op = ops::Op::NodeAdd {
                nodes: vec![(node_id(n.id), rec)],
            };
            w.op(who, at + (j as i64 + 1) * SEC, op);
        }
    }
    w.set(
        "hub-de",
        now_ms - 2 * DAY,
        LayerRef::Fleet,
        "firewall.rules",
        json!(["22/tcp", "443/tcp"]),
    );
    w.set(
        "ops-laptop",
        now_ms - 20 * HOUR,
        LayerRef::Node(node_id("hub-de")),
        "heartbeat.interval_s",
        json!(30),
    );
    w.set(
        "ops-laptop",
        now_ms - 19 * HOUR,
        LayerRef::Site(site_id("BL-SHOP-SG")),
        "dns.allow",
        json!(["hub.blocao.eu", "sg.pool.ntp.org"]),
    );
    w.set(
        "ops-laptop",
        now_ms - 9 * HOUR,
        LayerRef::Site(site_id("BL-WH-N")),
        "alerts.disk_pct",
        json!(90),
    );
    w.set(
        "ops-laptop",
        now_ms - 8 * HOUR,
        LayerRef::Site(site_id("BL-LAB-2")),
        "frigate.cameras",
        json!(6),
    );
    w.set(
        "ops-laptop",
        now_ms - 5 * HOUR,
        LayerRef::Fleet,
        "frigate.version",
        json!("0.14.1"),
    );
    w.set(
        "ops-laptop",
        now_ms - 4 * HOUR,
        LayerRef::Node(node_id("lab1-nvr")),
        "frigate.version",
        json!("0.15.0-beta1"),
    );
    // A hub records where it listens, twice: changes that only record an
    // address (history and events fold them).
    for (at, addrs) in [
        (now_ms - 6 * HOUR, vec!["192.0.2.10:7447"]),
        (
            now_ms - 26 * MIN,
            vec!["192.0.2.10:7447", "[2001:db8::10]:7447"],
        ),
    ] {
        let addrs: Vec<String> = addrs.into_iter().map(str::to_string).collect();
        w.change(
            "hub-de",
            at,
            format!("hub-de listens on {}", addrs.join(", ")),
            move |d| d.set_member_addrs(&member_key("hub-de"), &addrs),
        );
    }
    let silenced = Ack {
        by: "ops-laptop".into(),
        at_ms: now_ms - 2 * HOUR,
        until_ms: Some(now_ms + 2 * HOUR),
        since_ms: Some(now_ms - 3 * HOUR),
    };
    w.change(
        "ops-laptop",
        now_ms - 2 * HOUR,
        "silence backup:hub-fi for 4h".into(),
        move |d| d.put_ack("backup:hub-fi", &silenced),
    );
    let acked = Ack {
        by: "hub-de".into(),
        at_ms: now_ms - HOUR,
        until_ms: None,
        since_ms: None,
    };
    w.change(
        "hub-de",
        now_ms - HOUR,
        "ack mem:lab2-cam-1".into(),
        move |d| d.put_ack("mem:lab2-cam-1", &acked),
    );
    w.set(
        "ops-laptop",
        now_ms - 20 * MIN,
        LayerRef::Site(site_id("BL-LAB-2")),
        "retention.days",
        json!(14),
    );
    // A rollout half way (its second wave closed) and one halted by
    // failures.
    let canary = ops::RolloutPlan {
        set: [("frigate.detect_fps".to_string(), json!(5))].into(),
        sites: vec![site_id("BL-LAB-1"), site_id("BL-LAB-2")],
        waves: vec![50, 100],
        soak_ms: 10 * MIN,
        max_fail: 1,
    };
    let op = ops::Op::RolloutStart {
        id: Some("7f3a19c2".into()),
        plan: canary,
    };
    w.op("ops-laptop", now_ms - HOUR, op);
    let halted = ops::RolloutPlan {
        set: [("retention.days".to_string(), json!(7))].into(),
        sites: Vec::new(),
        waves: vec![10, 100],
        soak_ms: 30 * MIN,
        max_fail: 0,
    };
    let op = ops::Op::RolloutStart {
        id: Some("c0de42aa".into()),
        plan: halted,
    };
    w.op("hub-de", now_ms - 3 * HOUR, op);
    w.change(
        "hub-fi",
        now_ms - 150 * MIN,
        "rollout c0de42aa: halt".into(),
        move |d| {
            d.rollout_event(
                "c0de42aa",
                "halt",
                now_ms - 150 * MIN,
                Some("1 node(s) failed to apply it (more than --max-fail 0)"),
            )
        },
    );
    // A command three nodes were asked to run: one ok, one failed, one
    // silent. (Its record is written as is: the fixture's nodes carry no
    // `actions` config, which `command run` would ask for.)
    let restart = CommandRecord {
        action: "restart-frigate".into(),
        target: "site:BL-WH-N".into(),
        by: "ops-laptop".into(),
        at_ms: now_ms - 15 * MIN,
    };
    w.change(
        "ops-laptop",
        now_ms - 15 * MIN,
        "command a1b2c3d4e5f6: restart-frigate on site:BL-WH-N".into(),
        move |d| d.add_command("a1b2c3d4e5f6", &restart),
    );
    for (node, ok, code, out) in [
        ("whn-nvr", true, 0, "frigate.service restarted"),
        (
            "whn-cam-1",
            false,
            1,
            "Job for frigate.service failed: timeout",
        ),
    ] {
        let r = CommandResult {
            exit_code: Some(code),
            ok,
            output: out.into(),
            at_ms: now_ms - 14 * MIN,
        };
        w.change(
            "ops-laptop",
            now_ms - 14 * MIN,
            format!("command a1b2c3d4e5f6: result of {node}"),
            move |d| d.put_command_result("a1b2c3d4e5f6", &node_id(node), &r),
        );
    }
    w.write(&mut doc);
    // Two operators set the same key at once: a conflict the peers view
    // shows, the winner marked.
    let fork = doc.automerge_mut().fork().with_actor(actor("hub-fi"));
    let mut other = FleetDoc::from_automerge(fork).expect("a fork of the fixture reads");
    let ntp = ConfigPath::parse("ntp.server").expect("fixture keys parse");
    doc.automerge_mut().set_actor(actor("hub-de"));
    doc.set_config(&LayerRef::Fleet, &ntp, &json!("ntp.hub-de.blocao.eu"))
        .expect("the fixture's conflict is valid");
    doc.commit("set ntp.server in fleet", now_ms - 30 * MIN);
    other
        .set_config(&LayerRef::Fleet, &ntp, &json!("pool.ntp.org"))
        .expect("the fixture's conflict is valid");
    other.commit("set ntp.server in fleet", now_ms - 30 * MIN);
    doc.automerge_mut()
        .merge(other.automerge_mut())
        .expect("the fixture's fork merges");
    doc
}

impl FixtureSource {
    /// The blocao fixture at [`T0`].
    pub fn blocao() -> FixtureSource {
        FixtureSource::new(T0)
    }

    /// The blocao fixture with every time relative to `now_ms`.
    ///
    /// # Panics
    ///
    /// If the store refuses the fixture's own data (a bug in this file,
    /// caught by every test that uses it).
    pub fn new(now_ms: i64) -> FixtureSource {
        let mut doc = build_doc(now_ms);
        let fleet = Arc::new(doc.state().expect("the fixture document reads back"));
        // The console's own changes are ops-laptop's.
        doc.automerge_mut().set_actor(actor("ops-laptop"));
        let mut health = HashMap::new();
        for (i, n) in NODES.iter().enumerate() {
            if let Some(ago) = n.heard_s {
                let at = now_ms - ago * SEC;
                health.insert(
                    n.id.to_string(),
                    StoredRegister {
                        reg: register(n, at, now_ms, i),
                        received_ms: at,
                        ver: i as i64 + 1,
                    },
                );
            }
        }
        // What each node reports holding and running: the whole document
        // when heard in the last minute, else what it held when last heard;
        // a node whose last apply failed runs nothing newer.
        let heads: Vec<String> = doc.heads().iter().map(|h| h.to_string()).collect();
        let log = doc.history();
        for stored in health.values_mut() {
            let at = stored.received_ms;
            let held: Vec<String> = if now_ms - at < 60 * SEC {
                heads.clone()
            } else {
                log.iter()
                    .rev()
                    .find(|e| e.time_ms <= at)
                    .map(|e| vec![e.id.clone()])
                    .unwrap_or_default()
            };
            stored.reg.holds = held.clone();
            match stored.reg.applied.as_mut() {
                Some(a) if a.result != ApplyResult::Ok => {
                    a.from = held;
                    // It last applied a few changes before its failure.
                    stored.reg.live_at = log
                        .iter()
                        .rev()
                        .nth(6)
                        .map(|e| vec![e.id.clone()])
                        .unwrap_or_default();
                }
                _ => stored.reg.live_at = held,
            }
        }
        let peer = |name: &str,
                    connected: bool,
                    addr: Option<&str>,
                    sync_ago: Option<i64>,
                    lacks: Option<usize>,
                    err: Option<&str>| Peer {
            key: member_key(name).to_string(),
            name: name.into(),
            connected,
            addr: addr.map(str::to_string),
            last_sync_ms: sync_ago.map(|a| now_ms - a),
            lacks,
            last_error: err.map(str::to_string),
            // hub-fi is reached through the fleet's relay.
            path: connected.then_some(if name == "hub-fi" {
                fleetdeck_store::peer::PathKind::Relay
            } else {
                fleetdeck_store::peer::PathKind::Direct
            }),
            rtt_ms: connected.then_some(if name == "hub-fi" { 64 } else { 18 }),
        };
        let peers = vec![
            peer(
                "hub-de",
                true,
                Some("192.0.2.10:7447"),
                Some(2 * SEC),
                Some(0),
                None,
            ),
            peer(
                "hub-fi",
                true,
                Some("198.51.100.7:7447"),
                Some(SEC),
                Some(0),
                None,
            ),
            peer(
                "field-laptop",
                false,
                Some("203.0.113.44:7447"),
                Some(3 * HOUR),
                Some(4),
                Some("could not reach field-laptop: timed out"),
            ),
            peer("lab2-router", false, None, None, None, None),
        ];
        FixtureSource {
            now_ms,
            me: "ops-laptop".into(),
            me_key: member_key("ops-laptop"),
            doc,
            fleet,
            peers,
            sync: SyncStatus::On {
                listening: vec!["0.0.0.0:7447".into()],
            },
            intents: Arc::new(Mutex::new(Vec::new())),
            fail_next: None,
            trouble: None,
            tunnels: Vec::new(),
            first: Arc::new(health.clone()),
            health: Arc::new(health),
            reports: Vec::new(),
            record_from_ms: now_ms - RECORD_MS,
        }
    }

    /// The intents received so far (shared: keep it before moving the
    /// source into the app).
    pub fn intents(&self) -> IntentLog {
        self.intents.clone()
    }

    /// The next `apply` fails with this sentence.
    pub fn fail_next(&mut self, sentence: &str) {
        self.fail_next = Some(sentence.to_string());
    }

    /// Every snapshot from now on reports this trouble.
    pub fn set_trouble(&mut self, trouble: Option<&str>) {
        self.trouble = trouble.map(str::to_string);
    }

    /// Replaces the peers every snapshot reports.
    pub fn set_peers(&mut self, peers: Vec<Peer>) {
        self.peers = peers;
    }

    pub fn set_sync(&mut self, sync: SyncStatus) {
        self.sync = sync;
    }

    /// The console acts as member `name` of the fixture (`hub-de` is an
    /// operator, `lab2-router` a node, an unknown name no member at all).
    pub fn act_as(&mut self, name: &str) {
        self.me = name.to_string();
        self.me_key = member_key(name);
    }

    pub fn now_ms(&self) -> i64 {
        self.now_ms
    }

    /// Moves the fixture's clock (alerts are evaluated at this time).
    pub fn set_now(&mut self, now_ms: i64) {
        self.now_ms = now_ms;
    }

    /// Node `node` reports now: `change` edits its latest register, which
    /// is then dated now and stored as a heartbeat would (new seq and
    /// version). A node that never reported gets a first register.
    pub fn report(&mut self, node: &str, change: impl FnOnce(&mut HealthRegister)) {
        let mut health = (*self.health).clone();
        let ver = health.values().map(|r| r.ver).max().unwrap_or(0) + 1;
        let stored = health
            .entry(node.to_string())
            .or_insert_with(|| StoredRegister {
                reg: HealthRegister {
                    node: node.to_string(),
                    ..HealthRegister::default()
                },
                received_ms: self.now_ms,
                ver,
            });
        change(&mut stored.reg);
        stored.reg.seq += 1;
        stored.reg.time_ms = self.now_ms;
        stored.received_ms = self.now_ms;
        stored.ver = ver;
        self.reports.push(stored.clone());
        self.health = Arc::new(health);
    }

    fn inputs(&self) -> Vec<SiteInput<'_>> {
        alert_inputs(&self.fleet, &self.health)
    }

    /// Node `node` reports its result of command `id`, now, as its daemon
    /// writes it (as that node's replica).
    pub fn command_result(&mut self, id: &str, node: &str, ok: bool, output: &str) {
        let r = CommandResult {
            exit_code: Some(if ok { 0 } else { 1 }),
            ok,
            output: output.to_string(),
            at_ms: self.now_ms,
        };
        self.doc.automerge_mut().set_actor(actor(node));
        let written = self
            .doc
            .put_command_result(id, &node_id(node), &r)
            .map(|()| {
                self.doc
                    .commit(&format!("command {id}: result of {node}"), self.now_ms)
            });
        self.doc.automerge_mut().set_actor(actor(&self.me));
        match written.and_then(|_| self.doc.state()) {
            Ok(st) => self.fleet = Arc::new(st),
            Err(e) => self.trouble = Some(format!("the fixture could not record a result: {e}")),
        }
    }

    /// The change log, newest first, with member names.
    fn entries(&mut self) -> Vec<fleetdeck_store::document::HistoryEntry> {
        let mut h = self.doc.history();
        for e in &mut h {
            e.author_name = MemberKey::parse(&e.author)
                .ok()
                .and_then(|k| self.fleet.member_name(&k).map(str::to_string));
        }
        h.reverse();
        h
    }

    /// Refuses a moment the fixture's record cannot speak for, as a
    /// replica does.
    fn check_record(&self, at_ms: i64) -> Result<(), String> {
        if at_ms > self.now_ms {
            return Err(format!("{} is in the future", rfc3339(at_ms)));
        }
        if at_ms < self.record_from_ms {
            return Err(format!(
                "no data that old: the fixture keeps node health for a day, back to {}",
                rfc3339(self.record_from_ms)
            ));
        }
        Ok(())
    }

    /// A node's register as first built, as it stood at `at_ms`: heard
    /// then (it beat steadily since the record began) unless it fell
    /// silent before; an apply made after `at_ms` not made yet.
    fn steady(r: &StoredRegister, at_ms: i64) -> StoredRegister {
        let mut r = r.clone();
        if r.received_ms > at_ms {
            r.received_ms = at_ms;
            r.reg.time_ms = at_ms;
        }
        if r.reg.applied.as_ref().is_some_and(|a| a.at_ms > at_ms) {
            r.reg.applied = None;
        }
        r
    }

    /// Every node's register at `at_ms`, from the fixture's record.
    fn health_at(&self, at_ms: i64) -> HashMap<String, StoredRegister> {
        let mut out: HashMap<String, StoredRegister> = self
            .first
            .iter()
            .map(|(n, r)| (n.clone(), Self::steady(r, at_ms)))
            .collect();
        for r in self.reports.iter().filter(|r| r.received_ms <= at_ms) {
            out.insert(r.reg.node.clone(), r.clone());
        }
        out
    }

    /// The heads of every change made by `at_ms` (the fixture's document
    /// holds every change from when it was made).
    fn heads_at(&mut self, at_ms: i64) -> Vec<ChangeHash> {
        let changes = self.doc.automerge_mut().get_changes(&[]);
        let held: Vec<_> = changes.iter().filter(|c| c.timestamp() <= at_ms).collect();
        let deps: HashSet<ChangeHash> = held.iter().flat_map(|c| c.deps().to_vec()).collect();
        held.iter()
            .map(|c| c.hash())
            .filter(|h| !deps.contains(h))
            .collect()
    }

    fn state_at(&mut self, heads: &[ChangeHash]) -> Result<FleetState, String> {
        self.doc
            .at(heads)
            .and_then(|d| d.state_or_empty())
            .map_err(|e| e.to_string())
    }

    /// The moment `at` names: the document then (or at the change) and the
    /// record's registers then.
    fn moment(&mut self, at: &At) -> Result<Moment, String> {
        let (at_ms, heads) = match at {
            At::Time(t) => (*t, self.heads_at(*t)),
            At::Change(c) => {
                let id = c.trim_end_matches('^');
                let not_understood = |e| fleetdeck_store::at::not_understood(c, e).to_string();
                let hash = self.doc.resolve_change(id).map_err(not_understood)?;
                let made = self
                    .doc
                    .automerge_mut()
                    .get_change_by_hash(&hash)
                    .map(|ch| ch.timestamp())
                    .ok_or_else(|| format!("change {id} is not held here"))?;
                if c.ends_with('^') {
                    let parents = self.doc.parents_of(&hash).map_err(|e| e.to_string())?;
                    (made.saturating_sub(1), parents)
                } else {
                    (made, vec![hash])
                }
            }
        };
        let at_ms = at_ms.min(self.now_ms);
        self.check_record(at_ms)?;
        Ok(Moment {
            at_ms,
            past: true,
            state: Arc::new(self.state_at(&heads)?),
            health: self.health_at(at_ms),
        })
    }

    /// A node's presence and states from the fixture's record, as a
    /// replica's `health_log` keeps them.
    fn record_of(&self, node: &str) -> (Vec<Run>, Vec<State>) {
        let mut runs: Vec<Run> = Vec::new();
        let mut states: Vec<State> = Vec::new();
        let from = self.record_from_ms;
        if let Some(r) = self.first.get(node) {
            runs.push(Run {
                from_ms: from,
                to_ms: r.received_ms,
            });
            states.push(State {
                at_ms: from,
                reg: Self::steady(r, from).reg,
            });
            if let Some(a) = r.reg.applied.as_ref().filter(|a| a.at_ms > from) {
                states.push(State {
                    at_ms: a.at_ms.min(r.received_ms),
                    reg: r.reg.clone(),
                });
            }
        }
        for r in self.reports.iter().filter(|r| r.reg.node == node) {
            // A report within a minute of the last one goes on its run.
            match runs.last_mut() {
                Some(run) if r.received_ms - run.to_ms <= MIN => run.to_ms = r.received_ms,
                _ => runs.push(Run {
                    from_ms: r.received_ms,
                    to_ms: r.received_ms,
                }),
            }
            states.push(State {
                at_ms: r.received_ms,
                reg: r.reg.clone(),
            });
        }
        (runs, states)
    }
}

/// A fleet of `sites` sites with `nodes_per_site` nodes each, every node
/// reporting (a few hot, a few silent), as one snapshot: for benchmarks of
/// large fleets. Built directly as state, not change by change.
pub fn large_snapshot(sites: usize, nodes_per_site: usize, now_ms: i64) -> Snapshot {
    let mut st = FleetState::default();
    st.name = "large".into();
    st.fleet.insert(
        ConfigPath::parse("retention.days").expect("a valid key"),
        Arc::new(json!(30)),
    );
    let mut health = HashMap::new();
    for s in 0..sites {
        let sid = SiteId::parse(&format!("BL-{s:04}")).expect("a valid site id");
        st.sites.insert(
            sid.clone(),
            fleetdeck_store::document::Site {
                id: sid.clone(),
                record: SiteRecord {
                    name: format!("Site {s}"),
                    lat: Some(-60.0 + (s % 120) as f64),
                    lon: Some(-170.0 + (s * 7 % 340) as f64),
                    zone: Some(["north", "south", "east", "west"][s % 4].into()),
                },
                overrides: Layer::new(),
            },
        );
        for n in 0..nodes_per_site {
            let id = format!("n{s:04}-{n:02}");
            let nid = NodeId::parse(&id).expect("a valid node id");
            st.nodes.insert(
                nid.clone(),
                fleetdeck_store::document::Node {
                    id: nid,
                    site: sid.clone(),
                    record: NodeRecord {
                        site: sid.to_string(),
                        role: Some(["nvr", "cam", "router"][n % 3].into()),
                    },
                    overrides: Layer::new(),
                    key: None,
                    resume_ms: None,
                },
            );
            // One node in 50 silent, one in 40 with a full disk.
            let i = s * nodes_per_site + n;
            if i % 50 == 7 {
                continue;
            }
            let at = now_ms - (i % 9) as i64 * SEC;
            let disk = if i % 40 == 3 {
                97.0
            } else {
                40.0 + (i % 30) as f64
            };
            let reg = HealthRegister {
                node: id.clone(),
                seq: i as u64,
                time_ms: at,
                metrics: Metrics {
                    cpu_pct: (i % 90) as f64,
                    mem_pct: 30.0 + (i % 50) as f64,
                    disks: vec![DiskUsage {
                        mount: "/data".into(),
                        used_pct: disk,
                    }],
                    ..Metrics::default()
                },
                ..HealthRegister::default()
            };
            health.insert(
                id,
                StoredRegister {
                    reg,
                    received_ms: at,
                    ver: i as i64 + 1,
                },
            );
        }
    }
    let inputs = alert_inputs(&st, &health);
    let alerts = alerts::evaluate(&inputs, now_ms, &st.acks);
    let states = alerts::site_states(&inputs, &alerts, now_ms);
    let summary = alerts::summarize(&states, &alerts, now_ms);
    drop(inputs);
    let mut snap = Snapshot::build(
        now_ms,
        Arc::new(st),
        Arc::new(health),
        alerts,
        &states,
        summary,
    );
    snap.me = "bench".into();
    snap
}

/// A register for a fixture node heard at `at`; the node's index varies
/// what else it reports.
fn register(n: &NodeSpec, at: i64, now_ms: i64, i: usize) -> HealthRegister {
    let mut reg = HealthRegister {
        node: n.id.to_string(),
        seq: 4_000 + i as u64 * 37,
        time_ms: at,
        metrics: Metrics {
            cpu_pct: n.cpu,
            mem_pct: n.mem,
            disks: n
                .disks
                .iter()
                .map(|(m, p)| DiskUsage {
                    mount: m.to_string(),
                    used_pct: *p,
                })
                .collect(),
            load1: n.cpu / 40.0,
            uptime_s: 86_400 * 3 + i as u64 * 3_607,
            temp_c: (n.role == "nvr").then_some(48.0 + i as f64),
        },
        applied: Some(ApplyReport {
            revision: "r41".into(),
            result: ApplyResult::Ok,
            error: None,
            duration_ms: 1_200 + i as u64 * 10,
            at_ms: now_ms - 3 * HOUR,
            from: Vec::new(),
        }),
        ..HealthRegister::default()
    };
    match n.id {
        "hub-de" => {
            reg.tls.push(TlsCert {
                name: "hub.blocao.eu".into(),
                not_after_ms: now_ms + 10 * DAY,
            });
        }
        "hub-fi" => {
            reg.tls.push(TlsCert {
                name: "hub-fi.blocao.eu".into(),
                not_after_ms: now_ms + 80 * DAY,
            });
            reg.backup = Some(BackupStatus {
                last_run_ms: now_ms - 3 * HOUR,
                databases: vec![
                    DbBackup {
                        name: "keycloak".into(),
                        ok: true,
                        error: None,
                    },
                    DbBackup {
                        name: "qdrant".into(),
                        ok: true,
                        error: None,
                    },
                    DbBackup {
                        name: "timescale".into(),
                        ok: false,
                        error: Some("disk quota exceeded".into()),
                    },
                ],
            });
        }
        "lab1-nvr" => {
            reg.backup = Some(BackupStatus {
                last_run_ms: now_ms - 5 * HOUR,
                databases: vec![DbBackup {
                    name: "frigate".into(),
                    ok: true,
                    error: None,
                }],
            });
            reg.applied = Some(ApplyReport {
                revision: "r42".into(),
                result: ApplyResult::Ok,
                error: None,
                duration_ms: 2_310,
                at_ms: now_ms - 20 * MIN,
                from: Vec::new(),
            });
        }
        "whn-cam-1" => {
            reg.applied = Some(ApplyReport {
                revision: "r43".into(),
                result: ApplyResult::Failed,
                error: Some("health check failed: frigate did not start".into()),
                duration_ms: 30_000,
                at_ms: now_ms - 12 * MIN,
                from: Vec::new(),
            });
        }
        "field3-cam-1" => reg.applied = None,
        _ => {}
    }
    reg
}

/// 120 one-minute samples ending at the node's last report: a wave around
/// its current metrics, different per node.
fn series_of(reg: &HealthRegister) -> Vec<Sample> {
    let phase = (fnv(&reg.node) % 17) as i64;
    let disk_now = reg
        .metrics
        .disks
        .iter()
        .map(|d| d.used_pct)
        .fold(0.0, f64::max);
    let end = reg.time_ms.div_euclid(MIN) * MIN;
    (0..120i64)
        .rev()
        .map(|k| {
            // A triangle wave with period 24 minutes, 0 at the last sample.
            let t = (k + phase) % 24;
            let tri = (if t < 12 { t } else { 24 - t }) as f64 / 12.0;
            let tri_now = {
                let t = phase % 24;
                (if t < 12 { t } else { 24 - t }) as f64 / 12.0
            };
            let wave = tri - tri_now;
            Sample {
                bucket_ms: end - k * MIN,
                cpu: (reg.metrics.cpu_pct + 25.0 * wave).clamp(0.0, 100.0),
                mem: (reg.metrics.mem_pct + 6.0 * wave).clamp(0.0, 100.0),
                disk: (disk_now - k as f64 * 0.02).clamp(0.0, 100.0),
            }
        })
        .collect()
}

impl Source for FixtureSource {
    fn snapshot(&mut self) -> Snapshot {
        let inputs = self.inputs();
        let alerts = alerts::evaluate(&inputs, self.now_ms, &self.fleet.acks);
        let states = alerts::site_states(&inputs, &alerts, self.now_ms);
        let summary = alerts::summarize(&states, &alerts, self.now_ms);
        let mut s = Snapshot::build(
            self.now_ms,
            self.fleet.clone(),
            self.health.clone(),
            alerts,
            &states,
            summary,
        );
        s.me = self.me.clone();
        s.me_key = Some(self.me_key.clone());
        s.conflicts = self.doc.conflicts().unwrap_or_default();
        s.unsynced = self.peers.iter().filter_map(|p| p.lacks).min();
        s.peers = self.peers.clone();
        s.sync = self.sync.clone();
        s.trouble = self.trouble.clone();
        s.tunnels = self.tunnels.clone();
        s
    }

    /// A test double: checks the target against the node's `tunnel.allow`
    /// as the real source does, and hands out a made-up local address.
    fn open_tunnel(
        &mut self,
        node: &fleetdeck_store::NodeId,
        target: std::net::SocketAddrV4,
    ) -> Result<std::net::SocketAddr, String> {
        let allowed = self
            .fleet
            .effective_node(node)
            .ok()
            .and_then(|e| fleetdeck_store::overlay::tunnel_targets(&e).ok())
            .unwrap_or_default();
        if !allowed.contains(&target) {
            return Err(format!("{target} is not in node {node}'s tunnel.allow"));
        }
        let local = std::net::SocketAddr::from(([127, 0, 0, 1], 40001 + self.tunnels.len() as u16));
        self.tunnels.push(crate::OpenTunnel {
            node: node.to_string(),
            target,
            local,
        });
        Ok(local)
    }

    fn series(&mut self, node: &str) -> Vec<Sample> {
        self.health
            .get(node)
            .map(|r| series_of(&r.reg))
            .unwrap_or_default()
    }

    fn history(&mut self) -> Vec<HistoryRow> {
        let h = self.entries();
        let every: Vec<ChangeHash> = h.iter().filter_map(|e| e.id.parse().ok()).collect();
        let kinds = change_infos(self.doc.automerge_mut(), &every)
            .into_iter()
            .map(|i| i.kind.unwrap_or(ChangeKind::Other))
            .collect();
        let hashes = HistoryRow::hashes(&h);
        let alerts = ops::Fleet::alerts(self, self.now_ms);
        let receipts = fleetdeck_store::receipts::digests_in(
            self.doc.automerge_mut(),
            &self.fleet,
            &self.health,
            &alerts,
            &hashes,
            HistoryRow::PENDING_SHOWN,
        );
        HistoryRow::build(h, receipts, kinds)
    }

    fn moment_at(&mut self, at: &At) -> Result<Snapshot, String> {
        let m = self.moment(at)?;
        let mut s = Snapshot::of_moment(m);
        s.me = self.me.clone();
        s.me_key = Some(self.me_key.clone());
        s.sync = SyncStatus::Off {
            reason: "a past moment".into(),
        };
        Ok(s)
    }

    fn events(
        &mut self,
        from_ms: i64,
        to_ms: i64,
        filter: &Filter,
    ) -> Result<Vec<FleetEvent>, String> {
        let st = self.fleet.clone();
        let mut out = Vec::new();
        let inputs = alert_inputs(&st, &self.health);
        for input in inputs
            .iter()
            .flat_map(|s| s.nodes.iter().map(move |n| (s.site, n)))
        {
            let (site, n) = input;
            let (runs, states) = self.record_of(n.node);
            let events = moment::timeline(&TimelineInput {
                node: n.node,
                site,
                thresholds: n.thresholds,
                runs: &runs,
                states: &states,
                from_ms,
                to_ms,
            });
            for e in events {
                let ev = FleetEvent {
                    at_ms: e.at_ms,
                    kind: e.kind,
                    site: Some(site.to_string()),
                    node: Some(n.node.to_string()),
                    by: n.node.to_string(),
                    text: e.text,
                    change: None,
                    alert: e.alert,
                };
                if filter.keeps(&ev, &st, None) {
                    out.push(ev);
                }
            }
        }
        drop(inputs);
        let history = self.entries();
        out.extend(change_events(
            self.doc.automerge_mut(),
            &st,
            &history,
            from_ms,
            to_ms,
            filter,
        ));
        out.sort_by(|a, b| b.at_ms.cmp(&a.at_ms).then_with(|| a.kind.cmp(b.kind)));
        Ok(out)
    }

    fn change_edits(&mut self, change: &str) -> Result<Vec<LayerEdit>, String> {
        let hash = self.doc.resolve_change(change).map_err(|e| e.to_string())?;
        let parents = self.doc.parents_of(&hash).map_err(|e| e.to_string())?;
        let before = if parents.is_empty() {
            FleetState::default()
        } else {
            self.state_at(&parents)?
        };
        let after = self.state_at(&[hash])?;
        Ok(diff::layer_edits(&before, &after))
    }

    fn apply(&mut self, intent: Intent) -> Result<String, String> {
        lock(&self.intents).push(intent.clone());
        if let Some(e) = self.fail_next.take() {
            return Err(e);
        }
        let now = self.now_ms;
        ops::apply(self, intent, now)
            .map(|done| done.line())
            .map_err(|e| e.to_string())
    }
}

/// The console's member writes into the fixture's document as a replica
/// would: through the store's operations, dated by the fixture's clock.
impl ops::Fleet for FixtureSource {
    fn state(&self) -> &FleetState {
        &self.fleet
    }

    fn me(&self) -> &MemberKey {
        &self.me_key
    }

    fn alerts(&self, now_ms: i64) -> Vec<Alert> {
        alerts::evaluate(&self.inputs(), now_ms, &self.fleet.acks)
    }

    fn resolve_change(&mut self, id: &str) -> fleetdeck_store::Result<ChangeHash> {
        self.doc.resolve_change(id)
    }

    fn commit<T>(
        &mut self,
        message: &str,
        at_ms: i64,
        edit: impl FnOnce(&mut FleetDoc, &FleetState) -> fleetdeck_store::Result<T>,
    ) -> fleetdeck_store::Result<(T, Option<ChangeHash>)> {
        self.doc.automerge_mut().set_actor(actor(&self.me));
        let state = self.fleet.clone();
        let out = match edit(&mut self.doc, &state) {
            Ok(v) => v,
            Err(e) => {
                self.doc.rollback();
                return Err(e);
            }
        };
        let hash = self.doc.commit(message, at_ms);
        self.fleet = Arc::new(self.doc.state()?);
        Ok((out, hash))
    }
}

/// The fixture's nodes by site, for tests that want to name them.
pub fn nodes_by_site() -> BTreeMap<&'static str, Vec<&'static str>> {
    let mut out: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for n in NODES {
        out.entry(n.site).or_default().push(n.id);
    }
    out
}
