//! What a replica heard of each node over time: the record `--at TIME` and
//! a node's timeline read.
//!
//! Three records, each written in the transaction that stores a register
//! (`health::write`), each with its own retention:
//!
//! - **Minutes**: cpu, memory and disk per minute (the maxima within it),
//!   kept [`MINUTES_KEEP_MS`]; one row per node per hour, 60 slots of three
//!   bytes (half-percent steps), so a day of a 500-node fleet is 12,000
//!   small rows, not 720,000.
//! - **Quarters**: what a minute-hour becomes when it ages out: per quarter
//!   hour the minimum, maximum and mean (of the per-minute maxima) of each
//!   metric, kept [`QUARTERS_KEEP_MS`]; one row per node per day.
//! - **States** and **presence**, kept [`STATES_KEEP_MS`]: a node's register
//!   without its moment-to-moment metrics, stored again only when something
//!   an alert or an operator reads changes (an apply, a check, drift, safe
//!   mode, a certificate, a backup, a disk moving into another whole percent
//!   by half a percent or more: [`levels_moved`]); and the
//!   runs of time this replica kept hearing it (a gap of more than
//!   [`split_after_ms`] ends a run).
//!
//! Every time here is this replica's clock: when it heard the node (as
//! `StoredRegister::received_ms`), not the node's own clock, which may be
//! hours off (a Pi with no real-time clock).
//!
//! Everything read back is checked: a blob of the wrong length or a payload
//! that does not inflate or decode is skipped and named, never unwrapped.

use std::collections::HashMap;
use std::io::{Read, Write};

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

use crate::error::{Result, StoreError};
use crate::health::{HealthRegister, Sample, StoredRegister};

pub const MINUTE_MS: i64 = 60_000;
pub const HOUR_MS: i64 = 60 * MINUTE_MS;
pub const QUARTER_MS: i64 = 15 * MINUTE_MS;
pub const DAY_MS: i64 = 24 * HOUR_MS;

/// How long per-minute samples are kept.
pub const MINUTES_KEEP_MS: i64 = DAY_MS;
/// How long quarter-hour samples are kept.
pub const QUARTERS_KEEP_MS: i64 = 30 * DAY_MS;
/// How long states and presence are kept.
pub const STATES_KEEP_MS: i64 = 90 * DAY_MS;

/// The longest beat guessed from a gap (see `note_presence`).
const MAX_GUESSED_BEAT_MS: i64 = 10 * MINUTE_MS;

/// A run of presence ends at a gap longer than this, at the least.
pub const MIN_SPLIT_MS: i64 = 20_000;

/// The most a state payload may inflate to when read back.
const MAX_STATE_BYTES: u64 = 256 * 1024;
/// A check's output is kept this long in a state (its tail).
const CHECK_OUTPUT_KEPT: usize = 240;

const SLOTS_PER_HOUR: usize = 60;
const MINUTE_SLOT: usize = 3;
const QUARTERS_PER_DAY: usize = 96;
/// n, then min/max/mean of cpu, mem, disk.
const QUARTER_SLOT: usize = 10;
const EMPTY: u8 = 0xFF;

pub const SCHEMA_SQL: &str = "
CREATE TABLE IF NOT EXISTS health_minutes (
    node TEXT NOT NULL,
    hour_ms INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (node, hour_ms)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS health_quarters (
    node TEXT NOT NULL,
    day_ms INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (node, day_ms)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS health_states (
    node TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    print BLOB NOT NULL,
    levels BLOB NOT NULL,
    payload BLOB NOT NULL,
    PRIMARY KEY (node, at_ms)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS health_presence (
    node TEXT NOT NULL,
    from_ms INTEGER NOT NULL,
    to_ms INTEGER NOT NULL,
    beat_ms INTEGER NOT NULL,
    PRIMARY KEY (node, from_ms)
) WITHOUT ROWID;
";

/// A percentage as one byte, in half-percent steps (0..=200).
fn pack(pct: f64) -> u8 {
    if !pct.is_finite() {
        return EMPTY;
    }
    (pct.clamp(0.0, 100.0) * 2.0).round() as u8
}

fn unpack(b: u8) -> Option<f64> {
    (b <= 200).then(|| f64::from(b) / 2.0)
}

fn floor_to(ms: i64, unit: i64) -> i64 {
    ms.div_euclid(unit) * unit
}

/// Notes `reg`, just stored as the node's register and heard at
/// `received_ms`, in all three records, and lets what is past its
/// retention go. Runs inside the caller's transaction.
pub fn note(conn: &Connection, reg: &HealthRegister, received_ms: i64) -> Result<()> {
    note_minute(conn, reg, received_ms)?;
    note_presence(conn, &reg.node, received_ms)?;
    note_state(conn, reg, received_ms)?;
    Ok(())
}

// ---- minutes and quarters -------------------------------------------------

fn blob(v: ValueRef<'_>, len: usize) -> Option<Vec<u8>> {
    match v {
        ValueRef::Blob(b) if b.len() == len => Some(b.to_vec()),
        _ => None,
    }
}

fn note_minute(conn: &Connection, reg: &HealthRegister, heard_ms: i64) -> Result<()> {
    let m = &reg.metrics;
    let disk = m.disks.iter().map(|d| d.used_pct).fold(0.0_f64, f64::max);
    let hour = floor_to(heard_ms, HOUR_MS);
    let slot = usize::try_from((heard_ms - hour) / MINUTE_MS).unwrap_or(0) * MINUTE_SLOT;
    let mut data: Vec<u8> = conn
        .query_row(
            "SELECT data FROM health_minutes WHERE node = ?1 AND hour_ms = ?2",
            params![reg.node, hour],
            |r| Ok(blob(r.get_ref(0)?, SLOTS_PER_HOUR * MINUTE_SLOT)),
        )
        .optional()?
        .flatten()
        .unwrap_or_else(|| vec![EMPTY; SLOTS_PER_HOUR * MINUTE_SLOT]);
    for (i, v) in [m.cpu_pct, m.mem_pct, disk].into_iter().enumerate() {
        let new = pack(v);
        let old = data[slot + i];
        data[slot + i] = if old == EMPTY || new == EMPTY {
            old.min(new)
        } else {
            old.max(new)
        };
    }
    conn.execute(
        "INSERT OR REPLACE INTO health_minutes (node, hour_ms, data) VALUES (?1, ?2, ?3)",
        params![reg.node, hour, data],
    )?;
    age_minutes(conn, &reg.node, heard_ms)
}

/// Folds the node's minute-hours older than [`MINUTES_KEEP_MS`] before
/// `now_ms` into quarters, and drops quarters past theirs.
fn age_minutes(conn: &Connection, node: &str, now_ms: i64) -> Result<()> {
    let cutoff = now_ms.saturating_sub(MINUTES_KEEP_MS);
    let old: Vec<(i64, Option<Vec<u8>>)> = {
        let mut stmt = conn.prepare_cached(
            "SELECT hour_ms, data FROM health_minutes WHERE node = ?1 AND hour_ms <= ?2",
        )?;
        let rows = stmt.query_map(params![node, cutoff.saturating_sub(HOUR_MS)], |r| {
            Ok((
                r.get_ref(0)?.as_i64().unwrap_or(i64::MIN),
                blob(r.get_ref(1)?, SLOTS_PER_HOUR * MINUTE_SLOT),
            ))
        })?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    for (hour, data) in &old {
        if let Some(data) = data {
            fold_hour(conn, node, *hour, data)?;
        }
        conn.execute(
            "DELETE FROM health_minutes WHERE node = ?1 AND hour_ms = ?2",
            params![node, hour],
        )?;
    }
    if !old.is_empty() {
        conn.execute(
            "DELETE FROM health_quarters WHERE node = ?1 AND day_ms <= ?2",
            params![
                node,
                now_ms
                    .saturating_sub(QUARTERS_KEEP_MS)
                    .saturating_sub(DAY_MS)
            ],
        )?;
    }
    Ok(())
}

/// Adds one hour of minute slots to the quarters of its day.
fn fold_hour(conn: &Connection, node: &str, hour: i64, minutes: &[u8]) -> Result<()> {
    let day = floor_to(hour, DAY_MS);
    let mut data: Vec<u8> = conn
        .query_row(
            "SELECT data FROM health_quarters WHERE node = ?1 AND day_ms = ?2",
            params![node, day],
            |r| Ok(blob(r.get_ref(0)?, QUARTERS_PER_DAY * QUARTER_SLOT)),
        )
        .optional()?
        .flatten()
        .unwrap_or_else(empty_quarters);
    let first_quarter = usize::try_from((hour - day) / QUARTER_MS).unwrap_or(0);
    for q in 0..4 {
        let at = (first_quarter + q) * QUARTER_SLOT;
        if at + QUARTER_SLOT > data.len() {
            break;
        }
        for metric in 0..3 {
            let values: Vec<u8> = (q * 15..q * 15 + 15)
                .map(|minute| minutes[minute * MINUTE_SLOT + metric])
                .filter(|&b| b != EMPTY)
                .collect();
            if values.is_empty() {
                continue;
            }
            merge_quarter(&mut data[at..at + QUARTER_SLOT], metric, &values);
        }
        let n = (q * 15..q * 15 + 15)
            .filter(|&minute| minutes[minute * MINUTE_SLOT] != EMPTY)
            .count();
        data[at] = data[at].saturating_add(u8::try_from(n).unwrap_or(u8::MAX));
    }
    conn.execute(
        "INSERT OR REPLACE INTO health_quarters (node, day_ms, data) VALUES (?1, ?2, ?3)",
        params![node, day, data],
    )?;
    Ok(())
}

fn empty_quarters() -> Vec<u8> {
    let mut v = vec![EMPTY; QUARTERS_PER_DAY * QUARTER_SLOT];
    for q in 0..QUARTERS_PER_DAY {
        v[q * QUARTER_SLOT] = 0;
    }
    v
}

/// Merges `values` (one metric's minutes) into a quarter slot whose count
/// (`slot[0]`) does not yet include them.
fn merge_quarter(slot: &mut [u8], metric: usize, values: &[u8]) {
    let (lo, hi, mean) = (1 + metric * 3, 2 + metric * 3, 3 + metric * 3);
    let n_new = values.len() as u32;
    let sum_new: u32 = values.iter().map(|&v| u32::from(v)).sum();
    let min_new = values.iter().copied().min().unwrap_or(EMPTY);
    let max_new = values.iter().copied().max().unwrap_or(EMPTY);
    let n_old = u32::from(slot[0]);
    if n_old == 0 || slot[mean] == EMPTY {
        slot[lo] = min_new;
        slot[hi] = max_new;
        slot[mean] = u8::try_from((sum_new + n_new / 2) / n_new).unwrap_or(200);
    } else {
        slot[lo] = slot[lo].min(min_new);
        slot[hi] = slot[hi].max(max_new);
        let total = u32::from(slot[mean]) * n_old + sum_new;
        let n = n_old + n_new;
        slot[mean] = u8::try_from((total + n / 2) / n).unwrap_or(200);
    }
}

/// The node's per-minute samples from `since_ms` on, oldest first.
pub fn series(conn: &Connection, node: &str, since_ms: i64) -> Result<Vec<Sample>> {
    let mut stmt = conn.prepare_cached(
        "SELECT hour_ms, data FROM health_minutes
         WHERE node = ?1 AND hour_ms > ?2 ORDER BY hour_ms",
    )?;
    let mut rows = stmt.query(params![node, since_ms.saturating_sub(HOUR_MS)])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let (Ok(hour), Some(data)) = (
            row.get_ref(0)?.as_i64(),
            blob(row.get_ref(1)?, SLOTS_PER_HOUR * MINUTE_SLOT),
        ) else {
            continue;
        };
        for (i, s) in data.chunks_exact(MINUTE_SLOT).enumerate() {
            let bucket_ms = hour + i as i64 * MINUTE_MS;
            if bucket_ms < since_ms {
                continue;
            }
            if let (Some(cpu), Some(mem), Some(disk)) = (unpack(s[0]), unpack(s[1]), unpack(s[2])) {
                out.push(Sample {
                    bucket_ms,
                    cpu,
                    mem,
                    disk,
                });
            }
        }
    }
    Ok(out)
}

/// How finely a past sample was kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// The maxima within one minute.
    Minute,
    /// The maxima within a quarter hour (its minimum and mean are kept too).
    Quarter,
}

/// A node's metrics around a past moment.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct PastSample {
    /// Start of the minute or quarter it covers.
    pub bucket_ms: i64,
    pub resolution: Resolution,
    pub cpu: f64,
    pub mem: f64,
    pub disk: f64,
}

/// How far back from a moment the newest minute sample may be and still
/// speak for it.
const SAMPLE_REACH_MS: i64 = 5 * MINUTE_MS;

/// The node's sample for `at_ms`: the newest minute at or before it within
/// five minutes, else the quarter hour holding it.
pub fn sample_at(conn: &Connection, node: &str, at_ms: i64) -> Result<Option<PastSample>> {
    let minutes = series(conn, node, at_ms.saturating_sub(SAMPLE_REACH_MS))?;
    if let Some(s) = minutes.iter().rev().find(|s| s.bucket_ms <= at_ms) {
        return Ok(Some(PastSample {
            bucket_ms: s.bucket_ms,
            resolution: Resolution::Minute,
            cpu: s.cpu,
            mem: s.mem,
            disk: s.disk,
        }));
    }
    let day = floor_to(at_ms, DAY_MS);
    let data = conn
        .query_row(
            "SELECT data FROM health_quarters WHERE node = ?1 AND day_ms = ?2",
            params![node, day],
            |r| Ok(blob(r.get_ref(0)?, QUARTERS_PER_DAY * QUARTER_SLOT)),
        )
        .optional()?
        .flatten();
    let Some(data) = data else {
        return Ok(None);
    };
    let q = usize::try_from((at_ms - day) / QUARTER_MS).unwrap_or(0);
    let slot = &data[q * QUARTER_SLOT..(q + 1) * QUARTER_SLOT];
    if slot[0] == 0 {
        return Ok(None);
    }
    Ok(match (unpack(slot[2]), unpack(slot[5]), unpack(slot[8])) {
        (Some(cpu), Some(mem), Some(disk)) => Some(PastSample {
            bucket_ms: day + q as i64 * QUARTER_MS,
            resolution: Resolution::Quarter,
            cpu,
            mem,
            disk,
        }),
        _ => None,
    })
}

// ---- presence -------------------------------------------------------------

/// A run of time this replica kept hearing a node (its clock).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Run {
    pub from_ms: i64,
    pub to_ms: i64,
}

/// The gap that ends a run whose last beats came `beat_ms` apart: two and
/// a half beats, and never under [`MIN_SPLIT_MS`].
pub fn split_after_ms(beat_ms: i64) -> i64 {
    (beat_ms.saturating_mul(5) / 2).max(MIN_SPLIT_MS)
}

fn note_presence(conn: &Connection, node: &str, heard_ms: i64) -> Result<()> {
    // A damaged row reads as no run: a new one starts after it.
    let last: Option<(i64, i64, i64)> = conn
        .query_row(
            "SELECT from_ms, to_ms, beat_ms FROM health_presence
             WHERE node = ?1 ORDER BY from_ms DESC LIMIT 1",
            params![node],
            |r| {
                let int = |i| r.get_ref(i).map(|v| v.as_i64().ok());
                Ok(match (int(0)?, int(1)?, int(2)?) {
                    (Some(f), Some(t), Some(b)) if f <= t => Some((f, t, b)),
                    _ => None,
                })
            },
        )
        .optional()?
        .flatten();
    match last {
        // Heard within the run (a relayed register arriving late).
        Some((_, to, _)) if heard_ms <= to => {}
        Some((from, to, beat)) if heard_ms - to <= split_after_ms(beat) => {
            conn.execute(
                "UPDATE health_presence SET to_ms = ?3, beat_ms = ?4 WHERE node = ?1 AND from_ms = ?2",
                params![node, from, heard_ms, heard_ms - to],
            )?;
        }
        _ => {
            // A new run, with the beat of the run before; when that was a
            // single beat the gap is the best guess at the beat (a node
            // heard every minute is split once, not at every beat), up to
            // ten minutes.
            let beat = match last {
                Some((from, to, _)) if from == to => (heard_ms - to).min(MAX_GUESSED_BEAT_MS),
                Some((_, _, beat)) => beat,
                None => 0,
            };
            conn.execute(
                "INSERT OR REPLACE INTO health_presence (node, from_ms, to_ms, beat_ms)
                 VALUES (?1, ?2, ?2, ?3)",
                params![node, heard_ms, beat],
            )?;
            conn.execute(
                "DELETE FROM health_presence WHERE node = ?1 AND to_ms < ?2",
                params![node, heard_ms.saturating_sub(STATES_KEEP_MS)],
            )?;
        }
    }
    Ok(())
}

/// The node's runs that overlap `[from_ms, to_ms]`, oldest first.
pub fn runs(conn: &Connection, node: &str, from_ms: i64, to_ms: i64) -> Result<Vec<Run>> {
    let mut stmt = conn.prepare_cached(
        "SELECT from_ms, to_ms FROM health_presence
         WHERE node = ?1 AND to_ms >= ?2 AND from_ms <= ?3 ORDER BY from_ms",
    )?;
    let rows = stmt.query_map(params![node, from_ms, to_ms], |r| {
        Ok((r.get_ref(0)?.as_i64().ok(), r.get_ref(1)?.as_i64().ok()))
    })?;
    let mut out = Vec::new();
    for row in rows {
        if let (Some(from_ms), Some(to_ms)) = row? {
            out.push(Run { from_ms, to_ms });
        }
    }
    Ok(out)
}

// ---- states ---------------------------------------------------------------

/// `reg` as a state keeps it: no moment-to-moment metrics but cpu and
/// memory of that moment, no heads (receipts read the live register),
/// check output cut to its tail.
fn reduce(reg: &HealthRegister) -> HealthRegister {
    let mut r = reg.clone();
    r.metrics.load1 = 0.0;
    r.metrics.uptime_s = 0;
    r.metrics.temp_c = None;
    r.holds.clear();
    r.live_at.clear();
    if let Some(a) = &mut r.applied {
        a.from.clear();
    }
    for c in &mut r.checks {
        if c.output.len() > CHECK_OUTPUT_KEPT {
            let mut cut = c.output.len() - CHECK_OUTPUT_KEPT;
            while !c.output.is_char_boundary(cut) {
                cut += 1;
            }
            c.output = format!("…{}", &c.output[cut..]);
        }
    }
    r
}

/// What must change for a new state to be kept: the reduced register but
/// its seq, time, cpu, memory, disk levels (see [`levels_moved`]) and
/// check output.
fn print(reduced: &HealthRegister) -> Result<Vec<u8>> {
    let mut r = reduced.clone();
    r.seq = 0;
    r.time_ms = 0;
    r.metrics.cpu_pct = 0.0;
    r.metrics.mem_pct = 0.0;
    for d in &mut r.metrics.disks {
        d.used_pct = 0.0;
    }
    for c in &mut r.checks {
        c.output.clear();
    }
    let bytes = serde_json::to_vec(&r)
        .map_err(|e| StoreError::Invalid(format!("the state of node '{}': {e}", r.node)))?;
    Ok(Sha256::digest(&bytes)[..16].to_vec())
}

/// A register's disk levels as a state row keeps them beside its print:
/// hundredths of a percent, two bytes a mount, in the register's order.
fn levels(reg: &HealthRegister) -> Vec<u8> {
    reg.metrics
        .disks
        .iter()
        .flat_map(|d| {
            let centi = (d.used_pct.clamp(0.0, 100.0) * 100.0).round() as u16;
            centi.to_be_bytes()
        })
        .collect()
}

/// Whether a disk moved enough since the kept state to keep a new one: it
/// is in another whole percent and moved by half a percent or more (a disk
/// hovering on a boundary, 49.99 / 50.01, writes nothing). So a past disk
/// level is within half a percent of what it was.
fn levels_moved(old: &[u8], new: &[u8]) -> bool {
    if old.len() != new.len() {
        return true;
    }
    old.chunks_exact(2).zip(new.chunks_exact(2)).any(|(o, n)| {
        let o = f64::from(u16::from_be_bytes([o[0], o[1]])) / 100.0;
        let n = f64::from(u16::from_be_bytes([n[0], n[1]])) / 100.0;
        o.floor() != n.floor() && (n - o).abs() >= 0.5
    })
}

fn note_state(conn: &Connection, reg: &HealthRegister, heard_ms: i64) -> Result<()> {
    let reduced = reduce(reg);
    let print = print(&reduced)?;
    let levels = levels(&reduced);
    let last: Option<(i64, Vec<u8>, Vec<u8>)> = conn
        .query_row(
            "SELECT at_ms, print, levels FROM health_states WHERE node = ?1 ORDER BY at_ms DESC LIMIT 1",
            params![reg.node],
            |r| {
                Ok(
                    match (
                        r.get_ref(0)?.as_i64(),
                        r.get_ref(1)?.as_blob(),
                        r.get_ref(2)?.as_blob(),
                    ) {
                        (Ok(at), Ok(p), Ok(l)) => Some((at, p.to_vec(), l.to_vec())),
                        // A damaged row: the next state is kept after it.
                        _ => None,
                    },
                )
            },
        )
        .optional()?
        .flatten();
    if last
        .as_ref()
        .is_some_and(|(_, p, l)| *p == print && !levels_moved(l, &levels))
    {
        return Ok(());
    }
    // States stay in the order they were heard, even when a relayed
    // register arrives dated before the last one.
    let at = last.map_or(heard_ms, |(at, _, _)| heard_ms.max(at + 1));
    let json = serde_json::to_vec(&reduced)
        .map_err(|e| StoreError::Invalid(format!("the state of node '{}': {e}", reg.node)))?;
    let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(&json)
        .and_then(|()| z.flush())
        .map_err(|e| StoreError::Invalid(format!("the state of node '{}': {e}", reg.node)))?;
    let payload = z
        .finish()
        .map_err(|e| StoreError::Invalid(format!("the state of node '{}': {e}", reg.node)))?;
    conn.execute(
        "INSERT OR REPLACE INTO health_states (node, at_ms, print, levels, payload)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![reg.node, at, print, levels, payload],
    )?;
    // Past retention, all but the newest state before the cutoff go: it
    // says what held from then until the next.
    conn.execute(
        "DELETE FROM health_states WHERE node = ?1 AND at_ms < (
            SELECT MAX(at_ms) FROM health_states WHERE node = ?1 AND at_ms <= ?2)",
        params![reg.node, at.saturating_sub(STATES_KEEP_MS)],
    )?;
    Ok(())
}

fn inflate(v: ValueRef<'_>) -> Option<HealthRegister> {
    let ValueRef::Blob(b) = v else {
        return None;
    };
    let mut json = Vec::new();
    flate2::read::DeflateDecoder::new(b)
        .take(MAX_STATE_BYTES + 1)
        .read_to_end(&mut json)
        .ok()?;
    if json.len() as u64 > MAX_STATE_BYTES {
        return None;
    }
    serde_json::from_slice(&json).ok()
}

/// One kept state of a node: from `at_ms` (this replica's clock) until the
/// next.
#[derive(Clone, Debug, PartialEq)]
pub struct State {
    pub at_ms: i64,
    pub reg: HealthRegister,
}

/// The node's states from the one in force at `from_ms` to the last at or
/// before `to_ms`, oldest first, and how many rows could not be read.
pub fn states(
    conn: &Connection,
    node: &str,
    from_ms: i64,
    to_ms: i64,
) -> Result<(Vec<State>, usize)> {
    let mut stmt = conn.prepare_cached(
        "SELECT at_ms, payload FROM health_states WHERE node = ?1 AND at_ms <= ?3 AND at_ms >= COALESCE(
            (SELECT MAX(at_ms) FROM health_states WHERE node = ?1 AND at_ms <= ?2), ?2)
         ORDER BY at_ms",
    )?;
    let mut rows = stmt.query(params![node, from_ms, to_ms])?;
    let mut out = Vec::new();
    let mut bad = 0;
    while let Some(row) = rows.next()? {
        match (row.get_ref(0)?.as_i64().ok(), inflate(row.get_ref(1)?)) {
            (Some(at_ms), Some(reg)) if reg.node == node => out.push(State { at_ms, reg }),
            _ => bad += 1,
        }
    }
    Ok((out, bad))
}

/// Every node's register as this replica held it at `at_ms`: its state
/// then, with cpu and memory from that moment's sample when one is kept,
/// heard when this replica last heard the node at or before then. Nodes it
/// had not heard of by then are absent. The second value names nodes whose
/// state row could not be read.
pub fn registers_at(
    conn: &Connection,
    at_ms: i64,
) -> Result<(HashMap<String, StoredRegister>, Vec<String>)> {
    let mut stmt = conn.prepare(
        "SELECT s.node, s.at_ms, s.payload FROM health_states s
         WHERE s.at_ms = (SELECT MAX(at_ms) FROM health_states WHERE node = s.node AND at_ms <= ?1)",
    )?;
    let mut rows = stmt.query(params![at_ms])?;
    let mut found = Vec::new();
    let mut bad = Vec::new();
    while let Some(row) = rows.next()? {
        let node = match row.get_ref(0)? {
            ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
            _ => continue,
        };
        match (row.get_ref(1)?.as_i64().ok(), inflate(row.get_ref(2)?)) {
            (Some(state_at), Some(reg)) if reg.node == node => found.push((node, state_at, reg)),
            _ => bad.push(node),
        }
    }
    drop(rows);
    let mut out = HashMap::with_capacity(found.len());
    for (node, state_at, mut reg) in found {
        let heard = last_heard(conn, &node, at_ms)?.unwrap_or(state_at);
        if let Some(s) = sample_at(conn, &node, at_ms)? {
            reg.metrics.cpu_pct = s.cpu;
            reg.metrics.mem_pct = s.mem;
        }
        out.insert(
            node,
            StoredRegister {
                reg,
                received_ms: heard,
                ver: 0,
            },
        );
    }
    Ok((out, bad))
}

/// When this replica last heard `node` at or before `at_ms`: `at_ms` itself
/// inside a run (it kept hearing it), else the end of the run before.
pub fn last_heard(conn: &Connection, node: &str, at_ms: i64) -> Result<Option<i64>> {
    let run = conn
        .query_row(
            "SELECT from_ms, to_ms FROM health_presence
             WHERE node = ?1 AND from_ms <= ?2 ORDER BY from_ms DESC LIMIT 1",
            params![node, at_ms],
            |r| Ok((r.get_ref(0)?.as_i64().ok(), r.get_ref(1)?.as_i64().ok())),
        )
        .optional()?;
    Ok(match run {
        Some((Some(_), Some(to))) => Some(to.min(at_ms)),
        _ => None,
    })
}

/// The oldest moment any of the records still speaks for, if any.
pub fn oldest(conn: &Connection) -> Result<Option<i64>> {
    Ok(conn.query_row(
        "SELECT MIN(m) FROM (
            SELECT MIN(at_ms) AS m FROM health_states
            UNION ALL SELECT MIN(from_ms) FROM health_presence)",
        [],
        |r| r.get::<_, Option<i64>>(0),
    )?)
}

/// Schema 6: per-minute samples move from one row a minute
/// (`health_samples`) to one row an hour; the old rows are converted, not
/// lost. Runs inside the migration's transaction.
pub fn migrate_samples(conn: &Connection) -> Result<()> {
    let had: bool = conn.query_row(
        "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'health_samples'",
        [],
        |r| r.get(0),
    )?;
    if !had {
        return Ok(());
    }
    let mut hours: HashMap<(String, i64), Vec<u8>> = HashMap::new();
    {
        let mut stmt =
            conn.prepare("SELECT node, bucket_ms, cpu, mem, disk FROM health_samples")?;
        let mut rows = stmt.query([])?;
        let real = |v: ValueRef<'_>| match v {
            ValueRef::Real(r) => r,
            ValueRef::Integer(i) => i as f64,
            _ => f64::NAN,
        };
        while let Some(row) = rows.next()? {
            let (ValueRef::Text(node), Ok(bucket)) = (row.get_ref(0)?, row.get_ref(1)?.as_i64())
            else {
                continue;
            };
            let hour = floor_to(bucket, HOUR_MS);
            let slot = usize::try_from((bucket - hour) / MINUTE_MS).unwrap_or(0) * MINUTE_SLOT;
            let data = hours
                .entry((String::from_utf8_lossy(node).into_owned(), hour))
                .or_insert_with(|| vec![EMPTY; SLOTS_PER_HOUR * MINUTE_SLOT]);
            for i in 0..3 {
                data[slot + i] = pack(real(row.get_ref(2 + i)?));
            }
        }
    }
    for ((node, hour), data) in hours {
        conn.execute(
            "INSERT OR REPLACE INTO health_minutes (node, hour_ms, data) VALUES (?1, ?2, ?3)",
            params![node, hour, data],
        )?;
    }
    conn.execute_batch("DROP TABLE health_samples")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::{ApplyReport, ApplyResult, DiskUsage, Metrics, record};

    const T0: i64 = 1_000 * DAY_MS;

    fn db() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(crate::health::SCHEMA_SQL).unwrap();
        conn.execute_batch(SCHEMA_SQL).unwrap();
        conn
    }

    fn beat(seq: u64, at: i64, cpu: f64, disk: f64) -> HealthRegister {
        HealthRegister {
            node: "cam-1".into(),
            seq,
            time_ms: at,
            metrics: Metrics {
                cpu_pct: cpu,
                mem_pct: 40.0,
                disks: vec![DiskUsage {
                    mount: "/".into(),
                    used_pct: disk,
                }],
                load1: 0.3,
                uptime_s: 1000 + seq,
                temp_c: Some(50.0),
            },
            ..Default::default()
        }
    }

    /// Beats every 10 s from `from` for `n` beats, seq from `seq`.
    fn beats(conn: &Connection, seq: u64, from: i64, n: u64, disk: f64) -> u64 {
        for i in 0..n {
            let at = from + i as i64 * 10_000;
            let cpu = (i % 7) as f64 * 10.0;
            assert!(record(conn, &beat(seq + i, at, cpu, disk), at).unwrap());
        }
        seq + n
    }

    fn count(conn: &Connection, table: &str) -> i64 {
        conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn a_state_is_kept_only_when_what_alerts_read_changes() {
        let conn = db();
        // An hour of beats whose cpu, memory, load and uptime move: one state.
        let seq = beats(&conn, 1, T0, 360, 50.2);
        assert_eq!(count(&conn, "health_states"), 1);
        // A disk moving within its whole percent is no new state; into the
        // next by half a percent or more is; hovering on that boundary then
        // is not.
        let seq = beats(&conn, seq, T0 + HOUR_MS, 3, 50.9);
        assert_eq!(count(&conn, "health_states"), 1);
        let mut seq = beats(&conn, seq, T0 + HOUR_MS + 30_000, 1, 51.01);
        assert_eq!(count(&conn, "health_states"), 2);
        for i in 0..20 {
            let at = T0 + HOUR_MS + 40_000 + i * 1_000;
            let pct = if i % 2 == 0 { 50.99 } else { 51.01 };
            assert!(record(&conn, &beat(seq, at, 5.0, pct), at).unwrap());
            seq += 1;
        }
        assert_eq!(count(&conn, "health_states"), 2);
        let seq = beats(&conn, seq, T0 + HOUR_MS + 60_000, 3, 52.0);
        assert_eq!(count(&conn, "health_states"), 3);
        // An apply is a new state.
        let at = T0 + 2 * HOUR_MS;
        let mut r = beat(seq, at, 5.0, 51.0);
        r.applied = Some(ApplyReport {
            revision: "abc".into(),
            result: ApplyResult::RolledBack,
            error: Some("unknown detector".into()),
            duration_ms: 10,
            at_ms: at,
            from: vec![],
        });
        record(&conn, &r, at).unwrap();
        let (states, bad) = states(&conn, "cam-1", 0, i64::MAX).unwrap();
        assert_eq!(bad, 0);
        assert_eq!(states.len(), 4);
        let last = &states[3];
        assert_eq!(last.at_ms, at);
        assert_eq!(
            last.reg.applied.as_ref().unwrap().result,
            ApplyResult::RolledBack
        );
        // What a state does not keep.
        assert_eq!(last.reg.metrics.uptime_s, 0);
        assert_eq!(last.reg.metrics.temp_c, None);
    }

    #[test]
    fn presence_runs_split_at_a_silence_and_not_at_every_slow_beat() {
        let conn = db();
        let seq = beats(&conn, 1, T0, 30, 10.0); // 5 minutes
        let back = T0 + 10 * 60_000; // 5 minutes of silence
        let seq = beats(&conn, seq, back, 6, 10.0);
        let runs = runs(&conn, "cam-1", 0, i64::MAX).unwrap();
        assert_eq!(
            runs,
            vec![
                Run {
                    from_ms: T0,
                    to_ms: T0 + 290_000
                },
                Run {
                    from_ms: back,
                    to_ms: back + 50_000
                }
            ]
        );
        assert_eq!(
            last_heard(&conn, "cam-1", T0 + 100_000).unwrap(),
            Some(T0 + 100_000)
        );
        assert_eq!(
            last_heard(&conn, "cam-1", T0 + 400_000).unwrap(),
            Some(T0 + 290_000)
        );
        assert_eq!(last_heard(&conn, "cam-1", T0 - 1).unwrap(), None);

        // Back after a day, then silent two hours, then back: three runs
        // (the day's gap is not taken for the beat).
        let start = T0 + DAY_MS;
        let seq = beats(&conn, seq, start, 1, 10.0);
        let seq = beats(&conn, seq, start + 2 * HOUR_MS, 1, 10.0);
        assert_eq!(
            super::runs(&conn, "cam-1", start, i64::MAX).unwrap().len(),
            2
        );

        // A node heard every minute after a single beat: the gap (up to ten
        // minutes) is taken for its beat, so one run, not one a beat.
        let slow_start = start + DAY_MS;
        for i in 0..10 {
            let at = slow_start + i * 60_000;
            record(&conn, &beat(seq + i as u64, at, 1.0, 10.0), at).unwrap();
        }
        let slow = super::runs(&conn, "cam-1", slow_start, i64::MAX).unwrap();
        assert_eq!(
            slow,
            vec![Run {
                from_ms: slow_start,
                to_ms: slow_start + 9 * 60_000
            }]
        );
    }

    #[test]
    fn registers_at_give_the_state_then_with_that_moments_sample() {
        let conn = db();
        let seq = beats(&conn, 1, T0, 60, 97.0); // disk full for 10 minutes
        beats(&conn, seq, T0 + 10 * 60_000, 60, 40.0);
        let (then, bad) = registers_at(&conn, T0 + 5 * 60_000 + 1).unwrap();
        assert!(bad.is_empty());
        let r = &then["cam-1"];
        assert_eq!(r.reg.metrics.disks[0].used_pct, 97.0);
        assert_eq!(r.received_ms, T0 + 5 * 60_000 + 1);
        // cpu from the minute's maximum (beats 30..35 carry 20..60).
        assert_eq!(r.reg.metrics.cpu_pct, 60.0);
        let (after, _) = registers_at(&conn, T0 + 15 * 60_000).unwrap();
        assert_eq!(after["cam-1"].reg.metrics.disks[0].used_pct, 40.0);
        let (before, _) = registers_at(&conn, T0 - 1).unwrap();
        assert!(before.is_empty());
    }

    #[test]
    fn quarters_keep_min_max_and_mean_and_everything_ages_out() {
        let conn = db();
        // 20 minutes of beats, then one a day later: the first hour folds.
        let seq = beats(&conn, 1, T0, 120, 30.0);
        let later = T0 + MINUTES_KEEP_MS + HOUR_MS;
        record(&conn, &beat(seq, later, 1.0, 30.0), later).unwrap();
        let q = sample_at(&conn, "cam-1", T0 + 60_000).unwrap().unwrap();
        assert_eq!(q.resolution, Resolution::Quarter);
        assert_eq!(q.bucket_ms, T0);
        let day = floor_to(T0, DAY_MS);
        let data: Vec<u8> = conn
            .query_row(
                "SELECT data FROM health_quarters WHERE day_ms = ?1",
                [day],
                |r| r.get(0),
            )
            .unwrap();
        let slot = &data[usize::try_from((T0 - day) / QUARTER_MS).unwrap() * QUARTER_SLOT..]
            [..QUARTER_SLOT];
        // 15 minutes; minute m holds beats 6m..6m+5, cpu (i % 7) * 10, so
        // its maximum is 50 % when residue 6 is the one missing (m = 0, 7,
        // 14) and 60 % otherwise: min 50, max 60, mean (3·50 + 12·60) / 15
        // = 58 %, in half-percents.
        assert_eq!(slot[0], 15);
        assert_eq!(&slot[1..4], &[100, 120, 116]);
        assert_eq!(&slot[7..10], &[60, 60, 60]);
        // A quarter hour with no minutes says nothing.
        assert_eq!(sample_at(&conn, "cam-1", T0 + 5 * HOUR_MS).unwrap(), None);

        // 31 days on, the quarters are gone; 91 days on, the old states
        // too but for the one in force at the cutoff.
        let far = T0 + QUARTERS_KEEP_MS + 2 * DAY_MS;
        record(&conn, &beat(seq + 1, far, 1.0, 55.0), far).unwrap();
        record(
            &conn,
            &beat(seq + 2, far + 2 * HOUR_MS, 1.0, 55.0),
            far + 2 * HOUR_MS,
        )
        .unwrap();
        assert_eq!(sample_at(&conn, "cam-1", T0 + 60_000).unwrap(), None);
        let farther = far + STATES_KEEP_MS + DAY_MS;
        record(&conn, &beat(seq + 3, farther, 1.0, 70.0), farther).unwrap();
        let (kept, _) = states(&conn, "cam-1", 0, i64::MAX).unwrap();
        assert_eq!(
            kept.iter()
                .map(|s| s.reg.metrics.disks[0].used_pct)
                .collect::<Vec<_>>(),
            vec![55.0, 70.0]
        );
        assert_eq!(runs(&conn, "cam-1", 0, far - DAY_MS).unwrap(), vec![]);
    }

    #[test]
    fn damaged_rows_are_skipped_and_named_and_writing_goes_on() {
        let conn = db();
        let seq = beats(&conn, 1, T0, 3, 30.0);
        conn.execute("UPDATE health_states SET payload = x'00ff'", [])
            .unwrap();
        conn.execute("UPDATE health_presence SET to_ms = 'x'", [])
            .unwrap();
        conn.execute("UPDATE health_minutes SET data = x'01'", [])
            .unwrap();
        let (at, bad) = registers_at(&conn, T0 + 5_000).unwrap();
        assert!(at.is_empty());
        assert_eq!(bad, vec!["cam-1".to_string()]);
        assert!(series(&conn, "cam-1", 0).unwrap().is_empty());
        // The next beats are recorded past the damage.
        beats(&conn, seq, T0 + 60_000, 3, 60.0);
        let (at, _) = registers_at(&conn, T0 + 90_000).unwrap();
        assert_eq!(at["cam-1"].reg.metrics.disks[0].used_pct, 60.0);
        assert_eq!(series(&conn, "cam-1", T0 + 60_000).unwrap().len(), 1);
    }

    #[test]
    fn old_per_minute_rows_are_converted_not_lost() {
        let conn = db();
        conn.execute_batch(
            "CREATE TABLE health_samples (node TEXT, bucket_ms INTEGER, cpu REAL, mem REAL, disk REAL, PRIMARY KEY (node, bucket_ms));",
        )
        .unwrap();
        conn.execute(
            "INSERT INTO health_samples VALUES ('cam-1', ?1, 12.5, 40.0, 70.0), ('cam-1', ?2, 'bad', 40.0, 70.0)",
            [T0, T0 + 60_000],
        )
        .unwrap();
        migrate_samples(&conn).unwrap();
        assert_eq!(
            series(&conn, "cam-1", 0).unwrap(),
            vec![Sample {
                bucket_ms: T0,
                cpu: 12.5,
                mem: 40.0,
                disk: 70.0
            }]
        );
        let gone: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE name = 'health_samples'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(gone, 0);
    }
}
