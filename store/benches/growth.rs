//! P8 (issue 16): how a replica grows with time, not with the fleet.
//!
//! Run: `cargo bench -p fleetdeck-store --bench growth` (or `--no-run`, then
//! the binary it names). A plain `fn main` bench (no harness); arguments it
//! does not know (cargo passes `--bench`) are ignored. Everything is written
//! under a temporary dir in /tmp, deleted at the end. The seed is printed;
//! `FLEETDECK_P8_SEED` replays another.
//!
//! # Part 1: the health record (`store/src/health_log.rs`)
//!
//! Simulated nodes send realistic registers (cpu and memory varying; 1–3
//! disks creeping up by 0.05–0.6 % a day, freed a little at a daily log
//! rotation and by 30 % when over 93 %, so they cross whole percents now
//! and then; a TLS certificate renewed 30 days before it expires; a daily
//! backup whose `last_run_ms` moves once a day and fails 1 day in 100;
//! 1–3 checks, failing with output for 10–90 minutes on 3 % of node-days;
//! an apply on a third of node-days; 3 % of nodes down for 15 minutes to
//! 4 hours each day, silent meanwhile and rebooted after). Registers go
//! through the real write path: `health::record(conn, &reg, received_ms)`
//! on a second connection to the replica's `replica.db` (made by
//! `Replica::init`), with `time_ms` and `received_ms` both the simulated
//! beat time; nothing sleeps. One transaction per 10 simulated minutes of
//! the fleet's registers (the sync engine stores each register in its own
//! transaction: batching saves fsyncs here, and stores the same rows).
//!
//! A register costs about 50 µs here (about half of it SQLite parsing the
//! statements of `health::record` / `health_log::note` again on every call),
//! so 500 nodes at 10 s beats for 30 days (130 million registers) would
//! take about two hours, and even one register a minute for 120 days
//! (86 million) over an hour. So:
//!
//! - **Rate.** The first `FLEETDECK_P8_FULL_DAYS` (1) day(s) are fed at
//!   every 10 s beat; after that each node sends one register a minute:
//!   the minute's six beats are still drawn, and the register sent is the
//!   last beat's with cpu, memory and each disk at their maxima over the
//!   six (the per-minute slot keeps the maxima, so the stored samples are
//!   the same). Check (1) feeds a small fleet both ways (every beat
//!   throughout, and the shortcut) and compares the database sizes.
//! - **Fleet.** The long run simulates `FLEETDECK_P8_NODES` (50) nodes for
//!   `FLEETDECK_P8_DAYS` (120) days and scales sizes to 500 nodes: every
//!   row of the record belongs to one node, so size grows with the fleet;
//!   the empty database (schema pages) is counted once. Check (2) feeds 500
//!   nodes and 50 nodes the same way for `FLEETDECK_P8_SCALE_DAYS` (2)
//!   days and compares.
//!
//! Sizes: `file` = replica.db + its WAL after `PRAGMA wal_checkpoint(
//! TRUNCATE)` (no VACUUM: the file as it is on disk; SQLite reuses freed
//! pages, it never shrinks the file); `used` = (page_count −
//! freelist_count) × page_size; per table from `dbstat`. Targets: 500
//! nodes under 50 MB at day 30, and no growth once retention is reached
//! (day 90 → 120 within 2 %). Baseline, same run: the pre-today layout (the
//! `health` table and `health_samples`, one row per node per minute kept
//! 24 h), written from the same registers into a separate SQLite file.
//!
//! # Part 2: the fleet document
//!
//! `FLEETDECK_P8_DOC_NODES` (50) nodes, each a member (`Role::Node`) bound
//! to its node, each with its own key (`Identity::from_secret`, seeded) and
//! automerge actor, for `FLEETDECK_P8_DOC_DAYS` (365) days. Each day: the
//! admin runs a command on every node (`ops::apply`, `Op::CommandRun`);
//! every node writes its result (`FleetDoc::put_command_result`), all made
//! at the command's heads, as nodes running it at once make them; the
//! admin acks 3 open alerts (`Op::Ack`); every node's address changes and
//! it writes it (`FleetDoc::set_member_addrs`, as `sync` does); on the
//! third day of each week a rollout to the whole fleet (`Op::RolloutStart`,
//! waves 10/50/100 %, 30 min soak), opened wave by wave by
//! `Replica::advance_rollouts` as the nodes report (registers recorded with
//! `health::record`). The nodes' changes are made on a second copy of the
//! document (the nodes' side) with each node's actor, signed with its key,
//! and taken in by the admin replica as the sync gate does
//! (`rights::judge`, `Replica::take_in`, then `settle`): `FLEETDECK_P8_BATCH`
//! (25) changes per settle, except on the day before each load
//! measurement, taken one change per settle as live peers send them.
//! Generating is about quadratic in nodes × days, so the default fleet is
//! 50 nodes and figures are scaled ×10 to 500 (linear: saying so).
//!
//! After 30, 90, 180 and 365 days: `Replica::compact`, a checkpoint, sizes
//! per table; after 30 and 365 also `Replica::open` in a fresh child
//! process (this binary, re-executed: median of 5 opens, RSS after the
//! first, peak RSS = VmHWM) and a history-free copy of the document (its
//! current state in a new automerge document: what a new epoch would start
//! from), loaded the same way. A second run, same days and operations but
//! without node results and addresses in the document, is the comparison.
//! The record of what the replica held when (`heads_log`, or `arrivals` in
//! builds that have it) is kept by the wall clock (90 days), so in a run of
//! minutes it keeps every row: its steady size is derived from the rows one
//! day adds.

use std::collections::BTreeMap;
use std::error::Error;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit, ObjId, ObjType, ReadDoc};
use fleetdeck_store::config::ConfigPath;
use fleetdeck_store::document::{CommandResult, FleetDoc, LayerRef, NodeRecord, SiteRecord};
use fleetdeck_store::health::{
    self, ApplyReport, ApplyResult, BackupStatus, CheckResult, DbBackup, DiskUsage, HealthRegister,
    Metrics, TlsCert,
};
use fleetdeck_store::health_log::{self, DAY_MS, HOUR_MS, MINUTE_MS};
use fleetdeck_store::identity::Identity;
use fleetdeck_store::ops::{self, CommandTarget, Op, RolloutPlan};
use fleetdeck_store::replica::{DB_FILE, SignedChange};
use fleetdeck_store::results::{ResultsRegister, SignedResults};
use fleetdeck_store::{NodeId, Replica, Role, SiteId};
use rusqlite::{Connection, params};
use serde_json::json;

type BoxResult<T> = std::result::Result<T, Box<dyn Error>>;

/// 2026-01-05T00:00:00Z: the simulated clock starts here.
const EPOCH_MS: i64 = 1_767_571_200_000;
const BEAT_MS: i64 = 10_000;
const BEATS_PER_MINUTE: i64 = MINUTE_MS / BEAT_MS;
/// Registers are written in one transaction per this much simulated time.
const BATCH_MS: i64 = 10 * MINUTE_MS;
const DEFAULT_SEED: u64 = 0x9E37_79B9_7F4A_7C15;
const TARGET_MB_30D: f64 = 50.0;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let result = match args.iter().position(|a| a == CHILD_FLAG) {
        Some(i) => child(&args[i + 1..]),
        None => parent(),
    };
    if let Err(e) = result {
        eprintln!("growth bench failed: {e}");
        std::process::exit(1);
    }
}

// ---- small helpers ----------------------------------------------------------

/// splitmix64.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
    fn hex(&mut self, digits: usize) -> String {
        let mut s = String::with_capacity(digits);
        while s.len() < digits {
            s.push_str(&format!("{:016x}", self.next()));
        }
        s.truncate(digits);
        s
    }
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// A whole number from the environment (decimal, or hex after `0x`).
fn env_num(name: &str, default: u64) -> BoxResult<u64> {
    match std::env::var(name) {
        Ok(v) => match v.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16),
            None => v.parse(),
        }
        .map_err(|e| format!("{name}={v}: expected a whole number ({e})").into()),
        Err(_) => Ok(default),
    }
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

// ---- a simulated node's heartbeats -------------------------------------------

struct Disk {
    mount: &'static str,
    pct: f64,
    /// Percent per day it creeps up by.
    creep: f64,
    /// When in the day logs rotate, and by how much that frees.
    rotate_at: i64,
    rotate_by: f64,
}

/// What a beat draws: cpu, memory, and each disk (up to three).
type Drawn = (f64, f64, [f64; 3]);

/// One node: its steady traits, and what it does today.
struct NodeSim {
    id: String,
    /// Where in the 10 s cadence it beats.
    phase_ms: i64,
    rng: Rng,
    seq: u64,
    last_ms: i64,
    cpu_base: f64,
    mem_base: f64,
    disks: Vec<Disk>,
    cert: TlsCert,
    backup_at: i64,
    databases: Vec<&'static str>,
    checks: Vec<&'static str>,
    boot_ms: i64,
    applied: ApplyReport,
    /// Today's plan (times are absolute).
    down: Option<(i64, i64)>,
    apply_at: Option<i64>,
    check_fails: Option<(usize, i64, i64)>,
    backup_fails: bool,
}

const MOUNTS: &[&str] = &["/", "/var/lib/frigate", "/srv/backup"];
const CHECKS: &[&str] = &["frigate", "mqtt-bridge", "disk-smart"];
const DATABASES: &[&str] = &["frigate", "app", "postgres"];

impl NodeSim {
    fn new(i: usize, seed: u64) -> NodeSim {
        let mut rng = Rng(seed ^ (i as u64).wrapping_mul(0xA24B_AED4_963E_E407));
        let id = format!("S-{:04}-N{:02}", i / 10 + 1, i % 10 + 1);
        let n_disks = 1 + rng.below(3) as usize;
        let disks = MOUNTS[..n_disks]
            .iter()
            .map(|&mount| Disk {
                mount,
                pct: rng.range(20.0, 75.0),
                creep: rng.range(0.05, 0.6),
                rotate_at: rng.below(DAY_MS as u64) as i64,
                rotate_by: rng.range(0.0, 0.3),
            })
            .collect();
        let n_checks = 1 + rng.below(3) as usize;
        let n_dbs = 1 + rng.below(2) as usize;
        let cert = TlsCert {
            name: format!("{}.nodes.fleet.example", id.to_ascii_lowercase()),
            not_after_ms: EPOCH_MS + (31 + rng.below(60) as i64) * DAY_MS,
        };
        let applied = ApplyReport {
            revision: rng.hex(16),
            result: ApplyResult::Ok,
            error: None,
            duration_ms: 800 + rng.below(20_000),
            at_ms: EPOCH_MS - rng.below(7 * DAY_MS as u64) as i64,
            from: vec![rng.hex(64)],
        };
        NodeSim {
            phase_ms: rng.below(BEAT_MS as u64) as i64,
            seq: 1_000 + rng.below(100_000),
            last_ms: EPOCH_MS,
            cpu_base: rng.range(3.0, 40.0),
            mem_base: rng.range(25.0, 70.0),
            disks,
            cert,
            backup_at: rng.below(DAY_MS as u64) as i64,
            databases: DATABASES[..n_dbs].to_vec(),
            checks: CHECKS[..n_checks].to_vec(),
            boot_ms: EPOCH_MS - rng.below(30 * DAY_MS as u64) as i64,
            applied,
            down: None,
            apply_at: None,
            check_fails: None,
            backup_fails: false,
            rng,
            id,
        }
    }

    /// Draws what happens to the node on the day starting at `day_ms`: a
    /// few nodes go down for a while, a third apply something, a few
    /// checks fail for a while, a backup fails now and then.
    fn plan_day(&mut self, day_ms: i64) {
        let r = &mut self.rng;
        self.down = r.chance(0.03).then(|| {
            let from = day_ms + r.below(DAY_MS as u64) as i64;
            (from, from + (15 + r.below(225) as i64) * MINUTE_MS)
        });
        self.apply_at = r
            .chance(0.33)
            .then(|| day_ms + r.below(DAY_MS as u64) as i64);
        self.check_fails = r.chance(0.03).then(|| {
            let from = day_ms + r.below(DAY_MS as u64) as i64;
            let which = r.below(self.checks.len() as u64) as usize;
            (which, from, from + (10 + r.below(80) as i64) * MINUTE_MS)
        });
        self.backup_fails = r.chance(0.01);
    }

    /// The register the node sends at `t`, or None while it is down.
    fn beat(&mut self, t: i64) -> Option<HealthRegister> {
        let m = self.step(t)?;
        Some(self.register(t, m))
    }

    /// Moves the node to `t` and draws the metrics of its beat then: cpu,
    /// memory and disks. None while it is down.
    fn step(&mut self, t: i64) -> Option<Drawn> {
        // What time does to it whether or not it is up.
        let elapsed = t - self.last_ms;
        let day_start = t.div_euclid(DAY_MS) * DAY_MS;
        for d in &mut self.disks {
            d.pct += d.creep * elapsed as f64 / DAY_MS as f64;
            let rot = day_start + d.rotate_at;
            if self.last_ms < rot && rot <= t {
                d.pct -= d.rotate_by;
            }
            if d.pct > 93.0 {
                // An operator makes room.
                d.pct -= 30.0;
            }
        }
        let renew = self.cert.not_after_ms - 30 * DAY_MS;
        if self.last_ms < renew && renew <= t {
            self.cert.not_after_ms += 90 * DAY_MS;
        }
        if let Some(at) = self.apply_at
            && self.last_ms < at
            && at <= t
        {
            let failed = self.rng.chance(0.02);
            self.applied = ApplyReport {
                revision: self.rng.hex(16),
                result: if failed {
                    ApplyResult::RolledBack
                } else {
                    ApplyResult::Ok
                },
                error: failed.then(|| "systemctl restart frigate: exit status 1".to_string()),
                duration_ms: 800 + self.rng.below(20_000),
                at_ms: at,
                from: vec![self.rng.hex(64)],
            };
        }
        self.last_ms = t;
        if let Some((from, to)) = self.down
            && (from..to).contains(&t)
        {
            self.boot_ms = to;
            return None;
        }
        self.seq += 1;
        let r = &mut self.rng;
        let cpu = round1((self.cpu_base + r.range(0.0, 35.0)).min(100.0));
        let wave = ((t % DAY_MS) as f64 / DAY_MS as f64 * std::f64::consts::TAU).sin();
        let mem = round1((self.mem_base + 6.0 * wave + r.range(0.0, 2.0)).min(100.0));
        let mut disks = [0.0; 3];
        for (out, d) in disks.iter_mut().zip(&self.disks) {
            *out = round2(d.pct);
        }
        Some((cpu, mem, disks))
    }

    /// The register of the beat at `t` (the node as `step` left it) with
    /// these metrics.
    fn register(&self, t: i64, (cpu, mem, disks): Drawn) -> HealthRegister {
        let day_start = t.div_euclid(DAY_MS) * DAY_MS;
        let backup_run = if t >= day_start + self.backup_at {
            day_start + self.backup_at
        } else {
            day_start - DAY_MS + self.backup_at
        };
        let backup_failed_today = self.backup_fails && backup_run >= day_start;
        let checks = self
            .checks
            .iter()
            .enumerate()
            .map(|(k, name)| {
                let failing = self
                    .check_fails
                    .is_some_and(|(which, from, to)| which == k && (from..to).contains(&t));
                CheckResult {
                    name: (*name).to_string(),
                    ok: !failing,
                    output: if failing {
                        format!(
                            "{name}: exit status 1: container restarting (exit 137) after {} s; \
                             last log: connection to 10.0.{}.{}:1883 refused; retrying in 5 s",
                            1 + (t - day_start) / 60_000 % 50,
                            k,
                            self.seq % 250
                        )
                    } else {
                        String::new()
                    },
                }
            })
            .collect();
        let hour = t.div_euclid(HOUR_MS) as u64;
        HealthRegister {
            node: self.id.clone(),
            seq: self.seq,
            time_ms: t,
            metrics: Metrics {
                cpu_pct: cpu,
                mem_pct: mem,
                disks: self
                    .disks
                    .iter()
                    .zip(disks)
                    .map(|(d, used_pct)| DiskUsage {
                        mount: d.mount.to_string(),
                        used_pct,
                    })
                    .collect(),
                load1: round2(cpu / 25.0),
                uptime_s: ((t - self.boot_ms) / 1000) as u64,
                temp_c: Some(round1(40.0 + cpu / 3.0)),
            },
            tls: vec![self.cert.clone()],
            backup: Some(BackupStatus {
                last_run_ms: backup_run,
                databases: self
                    .databases
                    .iter()
                    .enumerate()
                    .map(|(k, name)| {
                        let ok = !(backup_failed_today && k == 0);
                        DbBackup {
                            name: (*name).to_string(),
                            ok,
                            error: (!ok).then(|| "pg_dump: connection timed out".to_string()),
                        }
                    })
                    .collect(),
            }),
            applied: Some(self.applied.clone()),
            checks,
            drift: Vec::new(),
            safe_mode: None,
            // The heads of the node's replica: they move with the document.
            holds: vec![format!("{:016x}{:048x}", hour.wrapping_mul(0x9E37), hour)],
            live_at: self.applied.from.clone(),
            // Where it listens: its address changes daily (DHCP, 4G).
            addrs: vec![
                format!("10.0.{}.{}:7447", hour / 24 % 250, 2 + self.seq % 250),
                format!("[2a02:6b8:{:x}::{:x}]:7447", hour / 24, self.seq % 0xffff),
            ],
            tunnels: Vec::new(),
        }
    }
}

// ---- the health record, fed ---------------------------------------------------

/// The pre-today layout, for the baseline: the register table and one
/// sample row per node per minute, kept 24 h.
const BASELINE_SQL: &str = "
CREATE TABLE health_samples (
    node TEXT,
    bucket_ms INTEGER,
    cpu REAL,
    mem REAL,
    disk REAL,
    PRIMARY KEY (node, bucket_ms)
);";

struct HealthSim {
    dir: PathBuf,
    conn: Connection,
    base_path: PathBuf,
    base: Connection,
    nodes: Vec<NodeSim>,
    /// Simulated time fed up to.
    now_ms: i64,
    registers: u64,
    /// Both databases before any register: what does not grow with the
    /// fleet (scaled figures add it once).
    empty: Size,
    base_empty: Size,
}

#[derive(Clone, Copy, PartialEq)]
enum Rate {
    /// Every beat, every 10 s.
    Full,
    /// One register per node per minute: the maxima of its six beats.
    Minute,
}

fn open_conn(path: &Path) -> BoxResult<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(conn)
}

impl HealthSim {
    fn new(dir: &Path, nodes: usize, seed: u64) -> BoxResult<HealthSim> {
        drop(Replica::init(dir, "p8", "p8 fleet")?);
        let conn = open_conn(&dir.join(DB_FILE))?;
        let base_path = dir.join("baseline.db");
        let base = open_conn(&base_path)?;
        base.execute_batch(health::SCHEMA_SQL)?;
        base.execute_batch(BASELINE_SQL)?;
        let empty = size_of(&conn, &dir.join(DB_FILE))?;
        let base_empty = size_of(&base, &base_path)?;
        Ok(HealthSim {
            empty,
            base_empty,
            dir: dir.to_path_buf(),
            conn,
            base_path,
            base,
            nodes: (0..nodes).map(|i| NodeSim::new(i, seed)).collect(),
            now_ms: EPOCH_MS,
            registers: 0,
        })
    }

    /// Feeds every node's registers from `now_ms` to `to_ms` at `rate`.
    fn feed(&mut self, to_ms: i64, rate: Rate) -> BoxResult<()> {
        while self.now_ms < to_ms {
            let batch_end = (self.now_ms + BATCH_MS).min(to_ms);
            if self.now_ms.rem_euclid(DAY_MS) == 0 {
                for n in &mut self.nodes {
                    n.plan_day(self.now_ms);
                }
            }
            self.conn.execute_batch("BEGIN")?;
            self.base.execute_batch("BEGIN")?;
            let mut minute = self.now_ms;
            while minute < batch_end {
                for n in &mut self.nodes {
                    // The minute's beats; at Rate::Minute only their
                    // maxima are sent, as the last beat's register.
                    let mut max: Option<(i64, Drawn)> = None;
                    for j in 0..BEATS_PER_MINUTE {
                        let t = minute + n.phase_ms + j * BEAT_MS;
                        let Some(m) = n.step(t) else { continue };
                        if rate == Rate::Full {
                            health::record(&self.conn, &n.register(t, m), t)?;
                            self.registers += 1;
                        }
                        max = Some(match max {
                            None => (t, m),
                            Some((_, (cpu, mem, disks))) => (
                                t,
                                (
                                    cpu.max(m.0),
                                    mem.max(m.1),
                                    [
                                        disks[0].max(m.2[0]),
                                        disks[1].max(m.2[1]),
                                        disks[2].max(m.2[2]),
                                    ],
                                ),
                            ),
                        });
                    }
                    let Some((t, m)) = max else { continue };
                    let reg = n.register(t, m);
                    if rate == Rate::Minute {
                        health::record(&self.conn, &reg, t)?;
                        self.registers += 1;
                    }
                    baseline_minute(&self.base, &reg, minute)?;
                }
                minute += MINUTE_MS;
                if minute.rem_euclid(HOUR_MS) == 0 {
                    baseline_prune(&self.base, &self.nodes, minute)?;
                }
            }
            self.conn.execute_batch("COMMIT")?;
            self.base.execute_batch("COMMIT")?;
            self.now_ms = batch_end;
        }
        Ok(())
    }
}

/// The baseline's write of a node's minute: its register and its sample.
fn baseline_minute(base: &Connection, reg: &HealthRegister, bucket: i64) -> BoxResult<()> {
    // The register row is rewritten in place at every beat in the old
    // layout; its size does not depend on how often, so once an hour here.
    if bucket.rem_euclid(HOUR_MS) == 0 {
        let payload = serde_json::to_string(reg)?;
        base.prepare_cached(
        "INSERT INTO health (node, seq, time_ms, received_ms, ver, payload) VALUES (?1, ?2, ?3, ?3, 0, ?4)
         ON CONFLICT(node) DO UPDATE SET seq = excluded.seq, time_ms = excluded.time_ms,
            received_ms = excluded.received_ms, payload = excluded.payload",
    )?
        .execute(params![reg.node, reg.seq as i64, reg.time_ms, payload])?;
    }
    let m = &reg.metrics;
    let disk = m.disks.iter().map(|d| d.used_pct).fold(0.0_f64, f64::max);
    base.prepare_cached(
        "INSERT OR REPLACE INTO health_samples (node, bucket_ms, cpu, mem, disk) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![reg.node, bucket, m.cpu_pct, m.mem_pct, disk])?;
    Ok(())
}

fn baseline_prune(base: &Connection, nodes: &[NodeSim], now: i64) -> BoxResult<()> {
    let mut stmt =
        base.prepare_cached("DELETE FROM health_samples WHERE node = ?1 AND bucket_ms < ?2")?;
    for n in nodes {
        stmt.execute(params![n.id, now - DAY_MS])?;
    }
    Ok(())
}

// ---- sizes ----------------------------------------------------------------------

#[derive(Clone, Debug, Default)]
struct Size {
    /// The file plus its WAL after a TRUNCATE checkpoint.
    file: u64,
    /// Pages in use: (page_count - freelist_count) * page_size.
    used: u64,
    /// Bytes per table (and index), from `dbstat`.
    tables: Vec<(String, u64)>,
}

fn size_of(conn: &Connection, path: &Path) -> BoxResult<Size> {
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    let wal = PathBuf::from(format!("{}-wal", path.display()));
    let file = std::fs::metadata(path)?.len() + std::fs::metadata(&wal).map_or(0, |m| m.len());
    let pragma =
        |p: &str| -> rusqlite::Result<i64> { conn.pragma_query_value(None, p, |r| r.get(0)) };
    let used = (pragma("page_count")? - pragma("freelist_count")?) * pragma("page_size")?;
    let mut stmt = conn
        .prepare("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY SUM(pgsize) DESC")?;
    let tables = stmt
        .query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Size {
        file,
        used: used as u64,
        tables,
    })
}

fn count(conn: &Connection, table: &str) -> BoxResult<i64> {
    Ok(conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))?)
}

// ---- the document: per-node churn through the real write paths -----------------

const ACTION: &str = "rotate-logs";
const ACKS_PER_DAY: usize = 3;

/// A node as the document sees it: its key, and the automerge actor its
/// daemon writes with (one daemon run for the whole simulation).
struct DocNode {
    id: NodeId,
    identity: Identity,
    actor: ActorId,
    seq: u64,
    /// The revision it last applied, and when.
    applied: (String, i64),
    /// Its command results register (when results go there).
    results: Option<ResultsRegister>,
    /// Where it listens, as its heartbeat reports it (when addresses go
    /// there).
    addrs: Vec<String>,
}

#[derive(Default)]
struct DocCounts {
    results: u64,
    addrs: u64,
    acks: u64,
    rollouts: u64,
    rollout_events: u64,
    commands: u64,
    /// Judging, taking in and settling one day's command results at the
    /// hub, and how many settles that was.
    last_results_intake: Duration,
    last_results_settles: u64,
    last_results_batch: usize,
}

struct DocSim {
    dir: PathBuf,
    admin: Replica,
    /// A second connection to the admin replica's database, to record the
    /// registers rollouts and alerts read.
    side: Connection,
    /// The nodes' side: the document as the nodes hold it; each node's
    /// change is made here with that node's actor and signed with its key.
    shadow: FleetDoc,
    nodes: Vec<DocNode>,
    rng: Rng,
    /// Simulated days done.
    day: i64,
    /// Node changes taken in per `settle`.
    batch: usize,
    counts: DocCounts,
    /// Whether nodes write their command results and addresses into the
    /// document (false: the comparison run, as if they were kept elsewhere).
    churn: bool,
    /// Whether command results go into the nodes' signed results
    /// registers (what fleetdeck does since issue 16), taken in by the hub
    /// with `Replica::admit_results`, rather than into the document.
    results_in_registers: bool,
    /// Whether a node's new address goes into its heartbeat (what
    /// fleetdeck does since issue 16) rather than into the document.
    addrs_in_heartbeat: bool,
}

fn node_id(i: usize) -> BoxResult<NodeId> {
    Ok(NodeId::parse(&format!(
        "S-{:04}-N{:02}",
        i / 10 + 1,
        i % 10 + 1
    ))?)
}

fn site_id(i: usize) -> BoxResult<SiteId> {
    Ok(SiteId::parse(&format!("S-{:04}", i / 10 + 1))?)
}

fn cfg(key: &str) -> BoxResult<ConfigPath> {
    Ok(ConfigPath::parse(key)?)
}

impl DocSim {
    fn new(
        dir: &Path,
        n: usize,
        batch: usize,
        seed: u64,
        churn: bool,
        results_in_registers: bool,
        addrs_in_heartbeat: bool,
    ) -> BoxResult<DocSim> {
        let mut rng = Rng(seed ^ 0xD0C5_D0C5_D0C5_D0C5);
        let mut admin = Replica::init(dir, "ops", "p8 fleet")?;
        let mut nodes = Vec::with_capacity(n);
        for i in 0..n {
            let mut secret = [0u8; 32];
            for chunk in secret.chunks_mut(8) {
                chunk.copy_from_slice(&rng.next().to_le_bytes());
            }
            let identity = Identity::from_secret(secret);
            nodes.push(DocNode {
                id: node_id(i)?,
                actor: identity.new_actor(),
                identity,
                seq: 1,
                applied: (String::new(), EPOCH_MS),
                results: None,
                addrs: Vec::new(),
            });
        }
        let sites: Vec<SiteId> = (0..n.div_ceil(10))
            .map(|s| site_id(s * 10))
            .collect::<BoxResult<_>>()?;
        let action = json!({"cmd": "logrotate -f /etc/logrotate.conf", "timeout_s": 60});
        let (actions, version) = (cfg(&format!("actions.{ACTION}"))?, cfg("frigate.version")?);
        admin.change_at("p8 fleet: sites, nodes and their keys", EPOCH_MS, |d, _| {
            d.set_config(&LayerRef::Fleet, &actions, &action)?;
            d.set_config(&LayerRef::Fleet, &version, &json!("0.14.0"))?;
            for (s, sid) in sites.iter().enumerate() {
                d.add_site(
                    sid,
                    &SiteRecord {
                        name: format!("site {}", s + 1),
                        lat: None,
                        lon: None,
                        zone: None,
                    },
                )?;
            }
            for (i, node) in nodes.iter().enumerate() {
                d.add_node(
                    &node.id,
                    &NodeRecord {
                        site: sites[i / 10].to_string(),
                        role: Some(if i % 10 == 0 { "central" } else { "camera" }.into()),
                    },
                )?;
                d.put_member(node.identity.key(), node.id.as_str(), Role::Node, EPOCH_MS)?;
                d.bind_node(&node.id, node.identity.key())?;
            }
            Ok(())
        })?;
        let mut am = AutoCommit::new();
        am.apply_changes(admin.changes_after(&[]).into_iter().map(|c| c.change))?;
        let shadow = FleetDoc::from_automerge(am)?;
        let side = open_conn(&dir.join(DB_FILE))?;
        Ok(DocSim {
            dir: dir.to_path_buf(),
            admin,
            side,
            shadow,
            nodes,
            rng,
            day: 0,
            batch,
            counts: DocCounts::default(),
            churn,
            results_in_registers,
            addrs_in_heartbeat,
        })
    }

    /// The nodes receive what the hub holds and they do not.
    fn sync_nodes(&mut self) -> BoxResult<()> {
        let heads = self.shadow.heads();
        let missing = self.admin.changes_after(&heads);
        self.shadow
            .automerge_mut()
            .apply_changes(missing.into_iter().map(|c| c.change))?;
        Ok(())
    }

    /// Commits the shadow's pending edit as node `i`'s change, signed with
    /// its key.
    fn node_commit(&mut self, i: usize, message: &str, at: i64) -> BoxResult<SignedChange> {
        let h = self
            .shadow
            .commit(message, at)
            .ok_or("a node's edit changed nothing")?;
        let change = self
            .shadow
            .automerge_mut()
            .get_change_by_hash(&h)
            .ok_or("a node's change is not in its document")?;
        Ok(SignedChange {
            change,
            sig: Some(self.nodes[i].identity.sign_change(&h)),
        })
    }

    /// The hub takes the nodes' changes as the sync gate does: each judged
    /// (`rights::judge`) and taken in, then stored and the state brought up
    /// to date once per `batch` changes. Returns how many settles.
    fn hub_takes(&mut self, changes: Vec<SignedChange>) -> BoxResult<u64> {
        let mut settles = 0;
        for chunk in changes.chunks(self.batch.max(1)) {
            for c in chunk {
                fleetdeck_store::rights::judge(&*self.admin.doc_mut().automerge_mut(), &c.change)
                    .map_err(|r| format!("the hub refused a node's change: {}", r.rule))?;
                self.admin.take_in(c.clone())?;
            }
            self.admin.settle()?;
            settles += 1;
        }
        Ok(settles)
    }

    fn register(&mut self, i: usize, t: i64, disk: f64) -> HealthRegister {
        let n = &mut self.nodes[i];
        n.seq += 1;
        HealthRegister {
            node: n.id.to_string(),
            seq: n.seq,
            time_ms: t,
            metrics: Metrics {
                cpu_pct: 20.0,
                mem_pct: 40.0,
                disks: vec![DiskUsage {
                    mount: "/".into(),
                    used_pct: disk,
                }],
                ..Default::default()
            },
            applied: Some(ApplyReport {
                revision: n.applied.0.clone(),
                result: ApplyResult::Ok,
                error: None,
                duration_ms: 1_500,
                at_ms: n.applied.1,
                from: Vec::new(),
            }),
            addrs: n.addrs.clone(),
            ..Default::default()
        }
    }

    /// One simulated day: a command to every node and every node's result,
    /// three alerts acked, every node's address changing, and on the third
    /// day of each week a rollout to the whole fleet.
    fn run_day(&mut self, batch: usize) -> BoxResult<()> {
        self.batch = batch;
        let d0 = EPOCH_MS + (self.day + 1) * DAY_MS;

        // 03:00: a command to every node, and every node's result.
        let t = d0 + 3 * HOUR_MS;
        let cmd = self.rng.hex(12);
        ops::apply(
            &mut self.admin,
            Op::CommandRun {
                id: Some(cmd.clone()),
                action: ACTION.into(),
                target: CommandTarget::All,
            },
            t,
        )?;
        self.counts.commands += 1;
        if self.churn {
            self.node_results(&cmd, t, batch)?;
        }

        // 09:00: disks fill on three nodes; an operator acks three of the
        // alerts open and not acked (whichever: the nodes of this document
        // replica beat only during rollouts, so node-down alerts, each with
        // its own start, are always among them).
        let t = d0 + 9 * HOUR_MS;
        let picked: Vec<usize> = (0..ACKS_PER_DAY)
            .map(|_| self.rng.below(self.nodes.len() as u64) as usize)
            .collect();
        for &i in &picked {
            let reg = self.register(i, t, 96.0);
            health::record(&self.side, &reg, t)?;
        }
        self.admin.refresh()?;
        let mut open: Vec<String> = self
            .admin
            .alerts(t)
            .into_iter()
            .filter(|a| a.acked_by.is_none())
            .map(|a| a.id)
            .collect();
        for _ in 0..ACKS_PER_DAY {
            if open.is_empty() {
                break;
            }
            let id = open.swap_remove(self.rng.below(open.len() as u64) as usize);
            ops::apply(&mut self.admin, Op::Ack { alert_id: id }, t)?;
            self.counts.acks += 1;
        }
        // Room is made an hour later.
        for &i in &picked {
            let reg = self.register(i, t + HOUR_MS, 60.0);
            health::record(&self.side, &reg, t + HOUR_MS)?;
        }

        // 10:00 on the third day of a week: a rollout, advanced by the hub
        // as the nodes of each wave apply it and soak.
        if self.day % 7 == 2 {
            self.rollout(d0 + 10 * HOUR_MS)?;
        }

        if self.churn {
            self.node_addresses(d0)?;
        }
        self.day += 1;
        Ok(())
    }

    /// Every node runs command `cmd` issued at `t` and writes its result,
    /// all at about the same time, each on the document it held when the
    /// command reached it (concurrent changes, as a fleet makes them).
    fn node_results(&mut self, cmd: &str, t: i64, batch: usize) -> BoxResult<()> {
        if self.results_in_registers {
            return self.node_result_registers(cmd, t);
        }
        self.sync_nodes()?;
        let base = self.shadow.heads();
        let mut made = Vec::with_capacity(self.nodes.len());
        for i in 0..self.nodes.len() {
            let at = t + 2_000 + self.rng.below(30_000) as i64;
            let result = CommandResult {
                exit_code: Some(0),
                ok: true,
                output: format!(
                    "rotating pattern: /var/log/frigate/*.log after 1 days (7 rotations)\n\
                     rotated {} files, {} kB freed",
                    1 + self.rng.below(6),
                    self.rng.below(90_000)
                ),
                at_ms: at,
            };
            let doc = self.shadow.automerge_mut();
            doc.isolate(&base);
            doc.set_actor(self.nodes[i].actor.clone());
            let node = self.nodes[i].id.clone();
            self.shadow.put_command_result(cmd, &node, &result)?;
            made.push(self.node_commit(i, &format!("{node} ran {ACTION} ({cmd})"), at)?);
        }
        self.shadow.automerge_mut().integrate();
        self.counts.results += made.len() as u64;
        let took = Instant::now();
        self.counts.last_results_settles = self.hub_takes(made)?;
        self.counts.last_results_intake = took.elapsed();
        self.counts.last_results_batch = batch;
        Ok(())
    }

    /// Every node runs command `cmd` issued at `t` and puts its result in
    /// its results register, signed with its key; the hub admits each as
    /// a session brings it (one register per call).
    fn node_result_registers(&mut self, cmd: &str, t: i64) -> BoxResult<()> {
        let mut made = Vec::with_capacity(self.nodes.len());
        for i in 0..self.nodes.len() {
            let at = t + 2_000 + self.rng.below(30_000) as i64;
            let result = CommandResult {
                exit_code: Some(0),
                ok: true,
                output: format!(
                    "rotating pattern: /var/log/frigate/*.log after 1 days (7 rotations)\n\
                     rotated {} files, {} kB freed",
                    1 + self.rng.below(6),
                    self.rng.below(90_000)
                ),
                at_ms: at,
            };
            let n = &mut self.nodes[i];
            let reg =
                ResultsRegister::with_result(n.results.as_ref(), n.id.as_str(), cmd, result, at);
            made.push(SignedResults::sign(&reg, &n.identity)?);
            n.results = Some(reg);
        }
        let took = Instant::now();
        for signed in &made {
            let admitted = self.admin.admit_results(signed)?;
            if !matches!(admitted, health::Admission::Stored) {
                return Err(
                    format!("the hub did not store a results register: {admitted:?}").into(),
                );
            }
        }
        self.counts.last_results_intake = took.elapsed();
        self.counts.last_results_settles = made.len() as u64;
        self.counts.last_results_batch = 1;
        self.counts.results += made.len() as u64;
        Ok(())
    }

    /// Through the day every node's address changes (a DHCP lease, a 4G
    /// reconnect) and it writes where it listens now, each on what it holds
    /// then (by then, everything before it).
    fn node_addresses(&mut self, d0: i64) -> BoxResult<()> {
        if self.addrs_in_heartbeat {
            // The next heartbeat carries it (`HealthRegister::addrs`,
            // replacing the last one): nothing for the document.
            for i in 0..self.nodes.len() {
                let addrs = self.new_addrs(i);
                self.nodes[i].addrs = addrs;
            }
            self.counts.addrs += self.nodes.len() as u64;
            return Ok(());
        }
        self.sync_nodes()?;
        let mut made = Vec::with_capacity(self.nodes.len());
        for i in 0..self.nodes.len() {
            let at = d0 + 12 * HOUR_MS + i as i64 * (11 * HOUR_MS / self.nodes.len() as i64);
            let addrs = self.new_addrs(i);
            self.shadow
                .automerge_mut()
                .set_actor(self.nodes[i].actor.clone());
            let key = self.nodes[i].identity.key().clone();
            self.shadow.set_member_addrs(&key, &addrs)?;
            let msg = format!("{} listens on {}", self.nodes[i].id, addrs.join(", "));
            made.push(self.node_commit(i, &msg, at)?);
        }
        self.counts.addrs += made.len() as u64;
        self.hub_takes(made)?;
        Ok(())
    }

    /// Node `i`'s addresses after a new DHCP lease and a new IPv6 prefix.
    fn new_addrs(&mut self, i: usize) -> Vec<String> {
        vec![
            format!(
                "10.{}.{}.{}:7447",
                i / 250,
                i % 250,
                2 + self.rng.below(250)
            ),
            format!(
                "[2a02:6b8:{:x}:{:x}::{:x}]:7447",
                self.rng.below(0xffff),
                self.rng.below(0xffff),
                self.rng.below(0xffff)
            ),
        ]
    }

    fn rollout(&mut self, t0: i64) -> BoxResult<()> {
        let id = self.rng.hex(8);
        let version = format!("0.14.{}", self.counts.rollouts + 1);
        let mut set = BTreeMap::new();
        set.insert("frigate.version".to_string(), json!(version));
        ops::apply(
            &mut self.admin,
            Op::RolloutStart {
                id: Some(id.clone()),
                plan: RolloutPlan {
                    set,
                    sites: Vec::new(),
                    waves: vec![10, 50, 100],
                    soak_ms: 30 * MINUTE_MS,
                    max_fail: 5,
                },
            },
            t0,
        )?;
        self.counts.rollouts += 1;
        let mut t = t0;
        for _ in 0..12 {
            let prev = t;
            t += 31 * MINUTE_MS;
            let all = self.admin.state().effective_all();
            for i in 0..self.nodes.len() {
                let rev = all
                    .get(&self.nodes[i].id)
                    .map(|e| e.revision())
                    .unwrap_or_default();
                if self.nodes[i].applied.0 != rev {
                    self.nodes[i].applied = (rev, prev + 20_000);
                }
                let reg = self.register(i, t, 50.0);
                health::record(&self.side, &reg, t)?;
            }
            self.admin.refresh()?;
            self.counts.rollout_events += self.admin.advance_rollouts(t)?.len() as u64;
            let done = self
                .admin
                .state()
                .rollouts
                .iter()
                .any(|r| r.id == id && r.done_at().is_some());
            if done {
                break;
            }
        }
        Ok(())
    }
}

// ---- a history-free copy: what a new epoch would start from ----------------------

fn copy_obj(
    src: &AutoCommit,
    from: &ObjId,
    typ: ObjType,
    dst: &mut AutoCommit,
    to: &ObjId,
) -> BoxResult<()> {
    match typ {
        ObjType::Map | ObjType::Table => {
            let items: Vec<_> = src
                .map_range(from, ..)
                .map(|i| (i.key.to_string(), i.id(), i.value.into_value()))
                .collect();
            for (key, id, value) in items {
                match value {
                    automerge::Value::Object(t) => {
                        let child = dst.put_object(to, key.as_str(), t)?;
                        copy_obj(src, &id, t, dst, &child)?;
                    }
                    automerge::Value::Scalar(s) => dst.put(to, key.as_str(), s.into_owned())?,
                }
            }
        }
        ObjType::List => {
            let items: Vec<_> = src
                .list_range(from, ..)
                .map(|i| (i.id(), i.value.into_value()))
                .collect();
            for (k, (id, value)) in items.into_iter().enumerate() {
                match value {
                    automerge::Value::Object(t) => {
                        let child = dst.insert_object(to, k, t)?;
                        copy_obj(src, &id, t, dst, &child)?;
                    }
                    automerge::Value::Scalar(s) => dst.insert(to, k, s.into_owned())?,
                }
            }
        }
        ObjType::Text => {
            let text = src.text(from)?;
            dst.splice_text(to, 0, 0, &text)?;
        }
    }
    Ok(())
}

/// The document's current state, copied into a new document with no
/// history (one change), saved.
fn epoch_copy(doc: &mut AutoCommit) -> BoxResult<Vec<u8>> {
    let mut fresh = AutoCommit::new();
    copy_obj(doc, &ObjId::Root, ObjType::Map, &mut fresh, &ObjId::Root)?;
    fresh.commit();
    Ok(fresh.save())
}

// ---- measuring a load in a fresh process ---------------------------------------------

const CHILD_FLAG: &str = "--fleetdeck-p8-child";
const LOAD_RUNS: usize = 5;

/// A field of /proc/self/status in kB (VmRSS, VmHWM).
fn proc_status_kb(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.trim().trim_end_matches("kB").trim().parse().ok()
    })
}

/// Loads `LOAD_RUNS` times with `load`, dropping each, and prints the
/// first and median times, VmRSS after the first load and VmHWM at the end.
fn report_loads<T>(mut load: impl FnMut() -> BoxResult<T>) -> BoxResult<()> {
    let mut runs = Vec::with_capacity(LOAD_RUNS);
    for i in 0..LOAD_RUNS {
        let t = Instant::now();
        let loaded = std::hint::black_box(load()?);
        runs.push(t.elapsed());
        if i == 0 {
            println!("rss_after_load_kb={}", proc_status_kb("VmRSS").unwrap_or(0));
        }
        drop(loaded);
    }
    println!("load_first_ms={}", runs[0].as_secs_f64() * 1e3);
    runs.sort();
    println!("load_median_ms={}", runs[LOAD_RUNS / 2].as_secs_f64() * 1e3);
    println!("hwm_kb={}", proc_status_kb("VmHWM").unwrap_or(0));
    Ok(())
}

fn child(args: &[String]) -> BoxResult<()> {
    match args {
        [mode, dir, ..] if mode == "replica" => report_loads(|| Ok(Replica::open(Path::new(dir))?)),
        [mode, file, ..] if mode == "epoch" => {
            let bytes = std::fs::read(file)?;
            report_loads(|| {
                let doc = FleetDoc::from_automerge(AutoCommit::load(&bytes)?)?;
                let state = doc.state()?;
                Ok((doc, state))
            })
        }
        _ => Err(format!("unknown child arguments {args:?}").into()),
    }
}

struct Loaded {
    first_ms: f64,
    median_ms: f64,
    rss_mb: f64,
    hwm_mb: f64,
}

/// Runs this binary as a child that only loads, and reads what it printed.
fn measure_load(args: &[&str]) -> BoxResult<Loaded> {
    let out = std::process::Command::new(std::env::current_exe()?)
        .arg(CHILD_FLAG)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .output()?;
    if !out.status.success() {
        return Err(format!("the measuring child {args:?} failed: {}", out.status).into());
    }
    let text = String::from_utf8(out.stdout)?;
    let get = |key: &str| -> BoxResult<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .ok_or_else(|| format!("the measuring child did not report {key}"))?
            .trim()
            .parse::<f64>()
            .map_err(|e| format!("{key}: {e}").into())
    };
    let kb_mb = |kb: f64| kb * 1024.0 / 1e6;
    Ok(Loaded {
        first_ms: get("load_first_ms")?,
        median_ms: get("load_median_ms")?,
        rss_mb: kb_mb(get("rss_after_load_kb")?),
        hwm_mb: kb_mb(get("hwm_kb")?),
    })
}

// ---- the runs -----------------------------------------------------------------------

struct Config {
    seed: u64,
    /// The fleet the targets are for.
    target_nodes: u64,
    /// The fleet the long health run simulates (scaled to `target_nodes`).
    nodes: u64,
    days: i64,
    full_days: i64,
    check_nodes: u64,
    check_days: i64,
    scale_days: i64,
    doc_nodes: u64,
    doc_days: i64,
    batch: u64,
    /// `FLEETDECK_P8_RESULTS`: `registers` (default, as fleetdeck does) or
    /// `doc` (as it did before issue 16's remedy).
    results_in_registers: bool,
    /// `FLEETDECK_P8_ADDRS`: `heartbeat` (default, as fleetdeck does) or
    /// `doc` (as it did before).
    addrs_in_heartbeat: bool,
    only: Option<String>,
}

impl Config {
    fn from_env() -> BoxResult<Config> {
        let only = std::env::var("FLEETDECK_P8_ONLY").ok();
        if let Some(o) = &only
            && o != "health"
            && o != "doc"
        {
            return Err(format!("FLEETDECK_P8_ONLY={o}: expected health or doc").into());
        }
        Ok(Config {
            seed: env_num("FLEETDECK_P8_SEED", DEFAULT_SEED)?,
            target_nodes: 500,
            nodes: env_num("FLEETDECK_P8_NODES", 50)?.max(1),
            days: env_num("FLEETDECK_P8_DAYS", 120)?.max(1) as i64,
            full_days: env_num("FLEETDECK_P8_FULL_DAYS", 1)? as i64,
            check_nodes: env_num("FLEETDECK_P8_CHECK_NODES", 10)?.max(1),
            check_days: env_num("FLEETDECK_P8_CHECK_DAYS", 3)?.max(1) as i64,
            scale_days: env_num("FLEETDECK_P8_SCALE_DAYS", 2)? as i64,
            doc_nodes: env_num("FLEETDECK_P8_DOC_NODES", 50)?.max(1),
            doc_days: env_num("FLEETDECK_P8_DOC_DAYS", 365)?.max(1) as i64,
            batch: env_num("FLEETDECK_P8_BATCH", 25)?.max(1),
            results_in_registers: match std::env::var("FLEETDECK_P8_RESULTS").as_deref() {
                Err(_) | Ok("registers") => true,
                Ok("doc") => false,
                Ok(o) => {
                    return Err(
                        format!("FLEETDECK_P8_RESULTS={o}: expected registers or doc").into(),
                    );
                }
            },
            addrs_in_heartbeat: match std::env::var("FLEETDECK_P8_ADDRS").as_deref() {
                Err(_) | Ok("heartbeat") => true,
                Ok("doc") => false,
                Ok(o) => {
                    return Err(format!("FLEETDECK_P8_ADDRS={o}: expected heartbeat or doc").into());
                }
            },
            only,
        })
    }
}

const HEALTH_TABLES: &[&str] = &[
    "health_minutes",
    "health_quarters",
    "health_states",
    "health_presence",
];

struct Mark {
    day: i64,
    registers: u64,
    took: Duration,
    size: Size,
    base: Size,
    rows: Vec<i64>,
    empty: Size,
    base_empty: Size,
}

/// `bytes` of a fleet, scaled by `k`: what does not grow with the fleet
/// (`fixed`, the empty database's) is counted once.
fn scaled(bytes: u64, fixed: u64, k: f64) -> u64 {
    fixed + (bytes.saturating_sub(fixed) as f64 * k) as u64
}

fn table_bytes(s: &Size, names: &[&str]) -> u64 {
    s.tables
        .iter()
        .filter(|(n, _)| names.contains(&n.as_str()))
        .map(|(_, b)| *b)
        .sum()
}

/// Feeds a fleet of `nodes` for `days` (the first `full_days` at every
/// beat, then a register per minute), marking the sizes after each day in
/// `marks` and the last.
fn health_run(
    dir: &Path,
    nodes: u64,
    days: i64,
    full_days: i64,
    seed: u64,
    marks: &[i64],
    say: bool,
) -> BoxResult<Vec<Mark>> {
    let mut sim = HealthSim::new(dir, nodes as usize, seed)?;
    let started = Instant::now();
    let mut out = Vec::new();
    for day in 1..=days {
        let rate = if day <= full_days {
            Rate::Full
        } else {
            Rate::Minute
        };
        sim.feed(EPOCH_MS + day * DAY_MS, rate)?;
        if marks.contains(&day) || day == days {
            let size = size_of(&sim.conn, &sim.dir.join(DB_FILE))?;
            let base = size_of(&sim.base, &sim.base_path)?;
            let rows = HEALTH_TABLES
                .iter()
                .map(|t| count(&sim.conn, t))
                .collect::<BoxResult<Vec<_>>>()?;
            let m = Mark {
                day,
                registers: sim.registers,
                took: started.elapsed(),
                size,
                base,
                rows,
                empty: sim.empty.clone(),
                base_empty: sim.base_empty.clone(),
            };
            if say {
                println!(
                    "  day {:>3}: {:>10} registers, file {:>7.2} MB, used {:>7.2} MB, baseline file {:>7.2} MB ({:.0} s)",
                    m.day,
                    m.registers,
                    mb(m.size.file),
                    mb(m.size.used),
                    mb(m.base.file),
                    m.took.as_secs_f64()
                );
            }
            out.push(m);
        }
    }
    if say {
        // Context: the read `status --at` makes, half-way back.
        let at = EPOCH_MS + days * DAY_MS / 2 + HOUR_MS / 2;
        let mut runs = Vec::new();
        let mut found = 0;
        for _ in 0..3 {
            let t = Instant::now();
            let (regs, _) = health_log::registers_at(&sim.conn, at)?;
            runs.push(t.elapsed());
            found = regs.len();
        }
        runs.sort();
        println!(
            "  context: health_log::registers_at(day {:.1}) on day {days}: {:.1} ms (median of 3; {found} registers)",
            (at - EPOCH_MS) as f64 / DAY_MS as f64,
            runs[1].as_secs_f64() * 1e3
        );
        let per_row = |table: &str, sql: &str| -> BoxResult<String> {
            let rows = count(&sim.conn, table)?.max(1) as f64;
            let bytes = out.last().map_or(0, |m| table_bytes(&m.size, &[table])) as f64;
            let avg: f64 = sim
                .conn
                .query_row(sql, [], |r| r.get::<_, Option<f64>>(0))?
                .unwrap_or(0.0);
            Ok(format!(
                "{table} {:.0} B/row (blob {avg:.0} B)",
                bytes / rows
            ))
        };
        println!(
            "  context: on day {days}, pages per row: {}, {}, {}",
            per_row(
                "health_minutes",
                "SELECT AVG(length(data)) FROM health_minutes"
            )?,
            per_row(
                "health_quarters",
                "SELECT AVG(length(data)) FROM health_quarters"
            )?,
            per_row(
                "health_states",
                "SELECT AVG(length(payload)) FROM health_states"
            )?,
        );
    }
    Ok(out)
}

/// Context: how many states a disk writes while it hovers across a whole
/// percent (49.99 / 50.01 at random) for an hour of 10 s beats, against
/// the same hour hovering inside one percent (50.49 / 50.51).
fn hover_states(dir: &Path, seed: u64) -> BoxResult<(i64, i64)> {
    let mut sim = HealthSim::new(dir, 1, seed)?;
    let mut rng = Rng(seed);
    let mut states = Vec::new();
    for (k, centre) in [50.0, 50.5].into_iter().enumerate() {
        let start = EPOCH_MS + k as i64 * DAY_MS;
        let before = count(&sim.conn, "health_states")?;
        let mut reg = sim.nodes[0].beat(start).ok_or("the node is down")?;
        for b in 0..360 {
            let t = start + b * BEAT_MS;
            reg.seq += 1;
            reg.time_ms = t;
            reg.metrics.disks.truncate(1);
            reg.metrics.disks[0].used_pct = if rng.chance(0.5) {
                centre - 0.01
            } else {
                centre + 0.01
            };
            health::record(&sim.conn, &reg, t)?;
        }
        states.push(count(&sim.conn, "health_states")? - before);
    }
    drop(sim);
    std::fs::remove_dir_all(dir)?;
    Ok((states[0], states[1]))
}

fn pct_diff(a: u64, b: u64) -> f64 {
    (b as f64 - a as f64) / a.max(1) as f64 * 100.0
}

fn health_part(cfg: &Config, tmp: &Path) -> BoxResult<Verdicts> {
    let mut verdicts = Vec::new();
    let scale = cfg.target_nodes as f64 / cfg.nodes as f64;
    println!("== health record (store/src/health_log.rs) ==");

    // (1) Is the per-minute shortcut honest? The same small fleet fed at
    // every beat throughout, and as the long run does it.
    println!(
        "(1) shortcut check: {} nodes, {} days, every 10 s beat throughout vs {} day(s) of beats then a register per minute",
        cfg.check_nodes, cfg.check_days, cfg.full_days
    );
    let full_dir = tmp.join("check-full");
    let short_dir = tmp.join("check-short");
    let t = Instant::now();
    let full = health_run(
        &full_dir,
        cfg.check_nodes,
        cfg.check_days,
        cfg.check_days,
        cfg.seed,
        &[],
        false,
    )?;
    let full_took = t.elapsed();
    let t = Instant::now();
    let short = health_run(
        &short_dir,
        cfg.check_nodes,
        cfg.check_days,
        cfg.full_days,
        cfg.seed,
        &[],
        false,
    )?;
    let short_took = t.elapsed();
    std::fs::remove_dir_all(&full_dir)?;
    std::fs::remove_dir_all(&short_dir)?;
    let (f, s) = (&full[0], &short[0]);
    for (name, m, took) in [("every beat", f, full_took), ("shortcut", s, short_took)] {
        println!(
            "  {name:<10}: {:>9} registers in {:>5.1} s ({:.1} µs each); file {} B, used {} B; rows minutes/quarters/states/presence {:?}",
            m.registers,
            took.as_secs_f64(),
            took.as_secs_f64() * 1e6 / m.registers as f64,
            m.size.file,
            m.size.used,
            m.rows
        );
    }
    let d_file = pct_diff(f.size.file, s.size.file);
    let d_used = pct_diff(f.size.used, s.size.used);
    println!("  shortcut vs every beat: file {d_file:+.2} %, used {d_used:+.2} %");
    verdicts.push((
        "shortcut vs every beat (used bytes)".into(),
        format!("{d_used:+.2} % (file {d_file:+.2} %)"),
        "within ±3 %".into(),
        Some(d_used.abs() <= 3.0),
    ));

    // (2) Does size scale with the fleet? The target fleet and the long
    // run's fleet, a register per minute, for a few days.
    if cfg.scale_days > 0 && cfg.nodes != cfg.target_nodes {
        println!(
            "(2) scale check: {} nodes vs {} nodes x {:.1}, a register per minute, {} days",
            cfg.target_nodes, cfg.nodes, scale, cfg.scale_days
        );
        let big_dir = tmp.join("scale-big");
        let small_dir = tmp.join("scale-small");
        let big = health_run(
            &big_dir,
            cfg.target_nodes,
            cfg.scale_days,
            0,
            cfg.seed,
            &[],
            false,
        )?;
        let small = health_run(
            &small_dir,
            cfg.nodes,
            cfg.scale_days,
            0,
            cfg.seed,
            &[],
            false,
        )?;
        std::fs::remove_dir_all(&big_dir)?;
        std::fs::remove_dir_all(&small_dir)?;
        let (b, s) = (&big[0], &small[0]);
        let scaled = scaled(s.size.used, s.empty.used, scale);
        let d = pct_diff(b.size.used, scaled);
        println!(
            "  {} nodes: used {:.2} MB (file {:.2} MB); {} nodes: used {:.3} MB, scaled x {scale:.1} = {:.2} MB ({d:+.2} %)",
            cfg.target_nodes,
            mb(b.size.used),
            mb(b.size.file),
            cfg.nodes,
            mb(s.size.used),
            mb(scaled)
        );
        verdicts.push((
            format!("scaled {} -> {} nodes (used)", cfg.nodes, cfg.target_nodes),
            format!("{d:+.2} %"),
            "within ±5 %".into(),
            Some(d.abs() <= 5.0),
        ));
    }

    // (3) The long run.
    println!(
        "(3) long run: {} nodes, {} day(s) of 10 s beats then a register per minute, to day {}",
        cfg.nodes, cfg.full_days, cfg.days
    );
    let main_dir = tmp.join("health");
    let marks: Vec<i64> = [1, 7, 30, 60, 90, 120]
        .into_iter()
        .filter(|d| *d <= cfg.days)
        .collect();
    let run = health_run(
        &main_dir,
        cfg.nodes,
        cfg.days,
        cfg.full_days,
        cfg.seed,
        &marks,
        true,
    )?;
    std::fs::remove_dir_all(&main_dir)?;
    println!();
    println!(
        "  sizes scaled to {} nodes (x {scale:.1}; the empty database counted once); file = replica.db + WAL after a TRUNCATE checkpoint, used = (page_count - freelist_count) x page_size; MB = 10^6 bytes; rows scaled too",
        cfg.target_nodes
    );
    println!(
        "  {:>4} {:>10} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9} | {:>13} | {:>8} {:>8} {:>8} {:>8}",
        "day",
        "file MB",
        "used MB",
        "minutes",
        "quarters",
        "states",
        "presence",
        "other",
        "baseline file",
        "min rows",
        "qtr rows",
        "states",
        "runs"
    );
    for m in &run {
        let t = |name: &str| {
            mb(scaled(
                table_bytes(&m.size, &[name]),
                table_bytes(&m.empty, &[name]),
                scale,
            ))
        };
        let record: u64 = HEALTH_TABLES
            .iter()
            .map(|n| table_bytes(&m.size, &[n]))
            .sum();
        let record0: u64 = HEALTH_TABLES
            .iter()
            .map(|n| table_bytes(&m.empty, &[n]))
            .sum();
        let other = scaled(
            m.size.used.saturating_sub(record),
            m.empty.used.saturating_sub(record0),
            scale,
        );
        println!(
            "  {:>4} {:>10.2} {:>10.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2} | {:>13.2} | {:>8.0} {:>8.0} {:>8.0} {:>8.0}",
            m.day,
            mb(scaled(m.size.file, m.empty.file, scale)),
            mb(scaled(m.size.used, m.empty.used, scale)),
            t("health_minutes"),
            t("health_quarters"),
            t("health_states"),
            t("health_presence"),
            mb(other),
            mb(scaled(m.base.file, m.base_empty.file, scale)),
            m.rows[0] as f64 * scale,
            m.rows[1] as f64 * scale,
            m.rows[2] as f64 * scale,
            m.rows[3] as f64 * scale,
        );
    }
    let (hover, inside) = hover_states(&tmp.join("hover"), cfg.seed)?;
    println!(
        "  context: a disk hovering across 50 % (49.99 / 50.01) for an hour of 10 s beats writes {hover} states; hovering inside one percent (50.49 / 50.51), {inside}"
    );
    if let Some(m30) = run.iter().find(|m| m.day == 30) {
        let v = mb(scaled(m30.size.file, m30.empty.file, scale));
        verdicts.push((
            format!("{}-node replica at day 30 (file)", cfg.target_nodes),
            format!(
                "{v:.2} MB (used {:.2}; baseline {:.2})",
                mb(scaled(m30.size.used, m30.empty.used, scale)),
                mb(scaled(m30.base.file, m30.base_empty.file, scale))
            ),
            format!("< {TARGET_MB_30D:.0} MB"),
            Some(v < TARGET_MB_30D),
        ));
    }
    if let (Some(m90), Some(last)) = (run.iter().find(|m| m.day == 90), run.last())
        && last.day > 90
    {
        let d = pct_diff(m90.size.file, last.size.file);
        let du = pct_diff(m90.size.used, last.size.used);
        verdicts.push((
            format!("growth day 90 -> {} (file)", last.day),
            format!("{d:+.2} % (used {du:+.2} %)"),
            "stops: < +2 %".into(),
            Some(d < 2.0),
        ));
    }
    Ok(verdicts)
}

struct DocMark {
    day: i64,
    took: Duration,
    size: Size,
    snapshot: i64,
    signatures: i64,
    held: Held,
    load: Option<Loaded>,
    epoch: Option<(usize, Loaded)>,
    results_in_state: usize,
}

/// The replica's record of what it held when (`--at`): `heads_log`, a row
/// of all its heads at every change, or, in builds that have it,
/// `arrivals`, a row per change. Whichever tables the database has.
const HELD_TABLES: &[&str] = &["heads_log", "heads_log_at", "arrivals", "arrivals_at"];

#[derive(Clone, Copy, Default)]
struct Held {
    heads_rows: i64,
    /// Bytes of the head lists in `heads_log`.
    heads_blob: i64,
    arrival_rows: i64,
}

impl Held {
    fn since(self, before: Held) -> Held {
        Held {
            heads_rows: self.heads_rows - before.heads_rows,
            heads_blob: self.heads_blob - before.heads_blob,
            arrival_rows: self.arrival_rows - before.arrival_rows,
        }
    }
}

fn held(conn: &Connection) -> BoxResult<Held> {
    let has = |t: &str| -> rusqlite::Result<bool> {
        conn.query_row(
            "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [t],
            |r| r.get(0),
        )
    };
    let mut h = Held::default();
    if has("heads_log")? {
        (h.heads_rows, h.heads_blob) = conn.query_row(
            "SELECT COUNT(*), COALESCE(SUM(length(heads)), 0) FROM heads_log",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
    }
    if has("arrivals")? {
        h.arrival_rows = count(conn, "arrivals")?;
    }
    Ok(h)
}

const DOC_TABLES: &[&str] = &[
    "snapshot",
    "changes",
    "sqlite_autoindex_changes_1",
    "signatures",
    "sqlite_autoindex_signatures_1",
    "heads_log",
    "heads_log_at",
    "arrivals",
    "arrivals_at",
];

/// Compacts the replica (`Replica::compact`), checkpoints it and measures
/// it; with `load`, also `Replica::open` in a fresh process, and with
/// `epoch` a history-free copy of its document.
fn doc_mark(
    sim: &mut DocSim,
    tmp: &Path,
    took: Duration,
    load: bool,
    epoch: bool,
) -> BoxResult<DocMark> {
    sim.admin.compact()?;
    let size = size_of(&sim.side, &sim.dir.join(DB_FILE))?;
    let snapshot = sim
        .side
        .query_row("SELECT length(data) FROM snapshot", [], |r| r.get(0))?;
    let signatures = count(&sim.side, "signatures")?;
    let held = held(&sim.side)?;
    let load = if load {
        let dir = sim.dir.to_str().ok_or("the temp dir is not UTF-8")?;
        Some(measure_load(&["replica", dir])?)
    } else {
        None
    };
    let epoch = if epoch {
        let bytes = epoch_copy(sim.admin.doc_mut().automerge_mut())?;
        let file = tmp.join("epoch.automerge");
        std::fs::write(&file, &bytes)?;
        let loaded = measure_load(&["epoch", file.to_str().ok_or("the temp dir is not UTF-8")?])?;
        std::fs::remove_file(&file)?;
        Some((bytes.len(), loaded))
    } else {
        None
    };
    let results_in_state = sim
        .admin
        .state()
        .command_results
        .values()
        .map(|m| m.len())
        .sum();
    Ok(DocMark {
        day: sim.day,
        took,
        size,
        snapshot,
        signatures,
        held,
        load,
        epoch,
        results_in_state,
    })
}

type Verdicts = Vec<(String, String, String, Option<bool>)>;

fn doc_part(cfg: &Config, tmp: &Path) -> BoxResult<Verdicts> {
    println!("== fleet document (store/src/document.rs, replica.rs) ==");
    println!(
        "{} nodes, each a member bound to its node and writing with its own key; {} days. Each day: a command to every node (ops::apply CommandRun) and every node's result ({}); {ACKS_PER_DAY} alerts acked (ops::apply Ack); every node's address changing ({}); each week a rollout (ops::apply RolloutStart, 3 waves, advanced by Replica::advance_rollouts). The hub judges and takes in node changes {} per settle, and one per settle the day before a load is measured.",
        cfg.doc_nodes,
        cfg.doc_days,
        if cfg.results_in_registers {
            "in its signed results register, admitted by the hub one by one (Replica::admit_results): FLEETDECK_P8_RESULTS=doc for the document"
        } else {
            "put_command_result into the document, concurrent: FLEETDECK_P8_RESULTS=doc"
        },
        if cfg.addrs_in_heartbeat {
            "in its next heartbeat, HealthRegister::addrs: FLEETDECK_P8_ADDRS=doc for the document"
        } else {
            "set_member_addrs into the document: FLEETDECK_P8_ADDRS=doc"
        },
        cfg.batch
    );
    let dir = tmp.join("doc");
    let started = Instant::now();
    let mut sim = DocSim::new(
        &dir,
        cfg.doc_nodes as usize,
        cfg.batch as usize,
        cfg.seed,
        true,
        cfg.results_in_registers,
        cfg.addrs_in_heartbeat,
    )?;
    let load_days = [30.min(cfg.doc_days), cfg.doc_days];
    let marks: Vec<i64> = [30, 90, 180, 365]
        .into_iter()
        .filter(|d| *d < cfg.doc_days)
        .chain([cfg.doc_days])
        .collect();
    let mut out = Vec::new();
    // Per measured day: intake ms per result, and what the record of what
    // the replica held grew by that day, taken in one change per settle.
    let mut live_days: Vec<(i64, f64, Held)> = Vec::new();
    while sim.day < cfg.doc_days {
        let live = load_days.contains(&(sim.day + 1));
        let before = held(&sim.side)?;
        sim.run_day(if live { 1 } else { cfg.batch as usize })?;
        if live {
            live_days.push((
                sim.day,
                sim.counts.last_results_intake.as_secs_f64() * 1e3 / sim.nodes.len() as f64,
                held(&sim.side)?.since(before),
            ));
        }
        if marks.contains(&sim.day) {
            let m = doc_mark(&mut sim, tmp, started.elapsed(), live, live)?;
            println!(
                "  day {:>3}: replica.db {:>6.2} MB (document tables {:.2} MB), snapshot {:.2} MB, {} changes, held record {:.2} MB (heads_log {} rows, arrivals {} rows), {} results in the state ({:.0} s)",
                m.day,
                mb(m.size.file),
                mb(table_bytes(&m.size, DOC_TABLES)),
                mb(m.snapshot as u64),
                m.signatures,
                mb(table_bytes(&m.size, HELD_TABLES)),
                m.held.heads_rows,
                m.held.arrival_rows,
                m.results_in_state,
                m.took.as_secs_f64()
            );
            out.push(m);
        }
    }
    let c = &sim.counts;
    println!(
        "  written: {} commands, {} results, {} address changes, {} acks, {} rollouts, {} rollout events ({:.0} s)",
        c.commands,
        c.results,
        c.addrs,
        c.acks,
        c.rollouts,
        c.rollout_events,
        started.elapsed().as_secs_f64()
    );
    drop(sim);
    std::fs::remove_dir_all(&dir)?;

    // The same days with command results and addresses kept out of the
    // document: only what operators write stays in its history.
    let dir = tmp.join("doc-quiet");
    let t = Instant::now();
    let mut quiet = DocSim::new(
        &dir,
        cfg.doc_nodes as usize,
        cfg.batch as usize,
        cfg.seed,
        false,
        false,
        false,
    )?;
    while quiet.day < cfg.doc_days {
        quiet.run_day(cfg.batch as usize)?;
    }
    let q = doc_mark(&mut quiet, tmp, t.elapsed(), true, false)?;
    let qc = &quiet.counts;
    println!(
        "  comparison, same {} days without node results and addresses in the document: {} commands, {} acks, {} rollouts, {} rollout events ({:.0} s)",
        cfg.doc_days,
        qc.commands,
        qc.acks,
        qc.rollouts,
        qc.rollout_events,
        q.took.as_secs_f64()
    );
    drop(quiet);
    std::fs::remove_dir_all(&dir)?;

    println!();
    println!(
        "  replica.db after Replica::compact and a TRUNCATE checkpoint, by table (dbstat, MB = 10^6 bytes); load = Replica::open in a fresh process, median of {LOAD_RUNS} (first in brackets); RSS after the first load, peak = VmHWM"
    );
    println!(
        "  {:>4} {:>8} {:>9} {:>8} {:>10} {:>8} {:>9} {:>8} {:>16} {:>8} {:>8}",
        "day",
        "file",
        "snapshot",
        "sigs",
        "held rec",
        "health",
        "#changes",
        "#results",
        "load ms",
        "RSS",
        "peak"
    );
    let row = |label: String, m: &DocMark| {
        let t = |names: &[&str]| mb(table_bytes(&m.size, names));
        let health: u64 = m
            .size
            .tables
            .iter()
            .filter(|(n, _)| n.starts_with("health") || n.starts_with("sqlite_autoindex_health"))
            .map(|(_, b)| *b)
            .sum();
        let load = m.load.as_ref().map_or(String::new(), |l| {
            format!("{:.1} ({:.1})", l.median_ms, l.first_ms)
        });
        let (rss, peak) = m.load.as_ref().map_or((String::new(), String::new()), |l| {
            (format!("{:.1}", l.rss_mb), format!("{:.1}", l.hwm_mb))
        });
        println!(
            "  {label:>4} {:>8.2} {:>9.2} {:>8.2} {:>10.2} {:>8.2} {:>9} {:>8} {load:>16} {rss:>8} {peak:>8}",
            mb(m.size.file),
            t(&["snapshot"]),
            t(&["signatures", "sqlite_autoindex_signatures_1"]),
            t(HELD_TABLES),
            mb(health),
            m.signatures,
            m.results_in_state,
        );
    };
    for m in &out {
        row(m.day.to_string(), m);
    }
    row("(q)".into(), &q);
    println!("  (q): the comparison run at day {}", q.day);
    for m in &out {
        if let Some((bytes, l)) = &m.epoch {
            println!(
                "  history-free copy of the day-{} document (what a new epoch would start from): {:.2} MB, load + state {:.1} ms (first {:.1}), RSS {:.1} MB, peak {:.1} MB; the replica's snapshot: {:.2} MB",
                m.day,
                mb(*bytes as u64),
                l.median_ms,
                l.first_ms,
                l.rss_mb,
                l.hwm_mb,
                mb(m.snapshot as u64)
            );
        }
    }
    let n = cfg.doc_nodes as f64;
    for (day, intake, grew) in &live_days {
        println!(
            "  day {day}, taken in as live peers send it (one change per settle): {intake:.2} ms per command result at the hub (judge + take_in + settle); the held record grew by {} heads_log rows ({:.3} MB of heads) and {} arrivals rows",
            grew.heads_rows,
            mb(grew.heads_blob as u64),
            grew.arrival_rows
        );
    }

    let mut verdicts = Verdicts::new();
    let scale = cfg.target_nodes as f64 / n;
    if let (Some(first), Some(last)) = (out.first(), out.last())
        && last.day > first.day
    {
        let years = (last.day - first.day) as f64 / 365.0;
        let doc = |m: &DocMark| table_bytes(&m.size, DOC_TABLES);
        let grow = mb(doc(last).saturating_sub(doc(first))) / years;
        verdicts.push((
            format!(
                "document tables, {} nodes, day {} -> {}",
                cfg.doc_nodes, first.day, last.day
            ),
            format!(
                "{:.2} -> {:.2} MB: +{grow:.2} MB/year (x{scale:.0}: +{:.0})",
                mb(doc(first)),
                mb(doc(last)),
                grow * scale
            ),
            "(bounded?)".into(),
            None,
        ));
        verdicts.push((
            format!("  no node churn in the doc, day {}", q.day),
            format!("{:.2} MB", mb(doc(&q))),
            String::new(),
            None,
        ));
        if let (Some(a), Some(b), Some(ql)) = (&first.load, &last.load, &q.load) {
            verdicts.push((
                format!("Replica::open day {} -> {}", first.day, last.day),
                format!(
                    "{:.1} -> {:.1} ms (no churn: {:.1})",
                    a.median_ms, b.median_ms, ql.median_ms
                ),
                "(bounded?)".into(),
                None,
            ));
            verdicts.push((
                format!("peak RSS of that open, day {} -> {}", first.day, last.day),
                format!(
                    "{:.1} -> {:.1} MB (no churn: {:.1})",
                    a.hwm_mb, b.hwm_mb, ql.hwm_mb
                ),
                "(bounded?)".into(),
                None,
            ));
        }
    }
    if let (Some((_, intake, grew)), Some(last)) = (live_days.last(), out.last()) {
        verdicts.push((
            "hub cost per command result, last day".into(),
            format!("{intake:.1} ms"),
            String::new(),
            None,
        ));
        let t = cfg.target_nodes as f64;
        if grew.heads_rows > 0 {
            // Arithmetic, not measured: a burst of N concurrent results
            // taken one per settle logs heads of 1..N hashes, 32 N (N + 1)
            // / 2 bytes.
            let burst = |n: f64| 32.0 * n * (n + 1.0) / 2.0;
            verdicts.push((
                "heads_log per day, one change per settle".into(),
                format!(
                    "{:.3} MB (32N(N+1)/2 = {:.3} for N = {})",
                    mb(grew.heads_blob as u64),
                    burst(n) / 1e6,
                    cfg.doc_nodes
                ),
                String::new(),
                None,
            ));
            verdicts.push((
                format!("  same for {}, kept 90 days (arithmetic)", cfg.target_nodes),
                format!(
                    "{:.2} MB/day, {:.0} MB",
                    burst(t) / 1e6,
                    burst(t) * 90.0 / 1e6
                ),
                String::new(),
                None,
            ));
        }
        if grew.arrival_rows > 0 && last.held.arrival_rows > 0 {
            // A row per change: linear in the fleet.
            let per_row = table_bytes(&last.size, &["arrivals", "arrivals_at"]) as f64
                / last.held.arrival_rows as f64;
            let day = grew.arrival_rows as f64 * per_row;
            verdicts.push((
                "arrivals per day".into(),
                format!(
                    "{} rows, {:.3} MB ({per_row:.0} B/row)",
                    grew.arrival_rows,
                    day / 1e6
                ),
                String::new(),
                None,
            ));
            verdicts.push((
                format!(
                    "  same for {}, kept 90 days (x{scale:.0})",
                    cfg.target_nodes
                ),
                format!("{:.1} MB", day * scale * 90.0 / 1e6),
                String::new(),
                None,
            ));
        }
    }
    Ok(verdicts)
}

fn parent() -> BoxResult<()> {
    let cfg = Config::from_env()?;
    println!("fleetdeck-store growth bench (P8)");
    println!(
        "seed {:#x}; FLEETDECK_P8_NODES={} FLEETDECK_P8_DAYS={} FLEETDECK_P8_FULL_DAYS={} FLEETDECK_P8_CHECK_NODES={} FLEETDECK_P8_CHECK_DAYS={} FLEETDECK_P8_SCALE_DAYS={} FLEETDECK_P8_DOC_NODES={} FLEETDECK_P8_DOC_DAYS={} FLEETDECK_P8_BATCH={}",
        cfg.seed,
        cfg.nodes,
        cfg.days,
        cfg.full_days,
        cfg.check_nodes,
        cfg.check_days,
        cfg.scale_days,
        cfg.doc_nodes,
        cfg.doc_days,
        cfg.batch
    );
    let tmp = tempfile::Builder::new()
        .prefix("fleetdeck-p8-")
        .tempdir_in("/tmp")?;
    let started = Instant::now();
    let mut verdicts = Vec::new();
    if cfg.only.as_deref() != Some("doc") {
        verdicts.extend(health_part(&cfg, tmp.path())?);
        println!("  (health part: {:.0} s)", started.elapsed().as_secs_f64());
        println!();
    }
    if cfg.only.as_deref() != Some("health") {
        let t = Instant::now();
        verdicts.extend(doc_part(&cfg, tmp.path())?);
        println!("  (document part: {:.0} s)", t.elapsed().as_secs_f64());
        println!();
    }
    let line = "-".repeat(118);
    println!("{line}");
    println!(
        "{:<44} {:<44} {:<18} result",
        "figure", "measured", "target"
    );
    println!("{line}");
    for (figure, measured, target, pass) in &verdicts {
        let result = match pass {
            Some(true) => "PASS",
            Some(false) => "MISS  <<<<<<",
            None => "",
        };
        println!("{figure:<44} {measured:<44} {target:<18} {result}");
    }
    println!("{line}");
    println!("total {:.0} s", started.elapsed().as_secs_f64());
    drop(tmp);
    Ok(())
}
