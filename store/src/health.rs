//! Node health registers: what each node last said about itself, kept outside
//! the fleet document's history.
//!
//! Every node owns one last-writer-wins register ordered by its own sequence
//! number ([`supersedes`] is the merge, a state-based CRDT: commutative,
//! associative and idempotent), stored in SQLite together with a downsampled
//! per-node time series for sparklines.
//!
//! Every register is signed by its node's key ([`SignedRegister`]: the
//! register's canonical bytes and the signature, which travel and are
//! stored together, so a relay passes on exactly what the node signed).
//! [`admit`] is the check for a register that did not come from this
//! replica's own daemon: it must be signed by the key bound to its node,
//! and its seq must not jump implausibly ([`plausible_seq`]).
//!
//! This module never opens, migrates or owns a connection (the caller runs
//! [`SCHEMA_SQL`] and passes a `&Connection`), never reads the clock (times
//! are given), and never panics on what it reads back: an undecodable row is
//! skipped and named, not unwrapped.

use std::cmp::Ordering;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::error::{Result, StoreError};
use crate::identity::Identity;
use crate::ids::MemberKey;
use crate::sign;

/// Width of one sparkline bucket: samples are downsampled to one per minute.
pub const SAMPLE_BUCKET_MS: i64 = 60_000;

/// Tables of this module. Idempotent (`IF NOT EXISTS`); the caller's schema
/// migration runs it. `payload` holds a register's canonical bytes exactly
/// as they were signed, `sig` its node's signature of them (null for a
/// register stored before registers were signed: kept, never relayed).
pub const SCHEMA_SQL: &str = "\
CREATE TABLE IF NOT EXISTS health (
    node TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    time_ms INTEGER NOT NULL,
    received_ms INTEGER NOT NULL,
    ver INTEGER NOT NULL,
    payload TEXT NOT NULL,
    sig BLOB
);
CREATE INDEX IF NOT EXISTS health_ver ON health(ver);
";

/// What a node last reported about itself.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct HealthRegister {
    /// The node id, as text.
    pub node: String,
    /// The node's own, strictly increasing report counter.
    pub seq: u64,
    /// The node's own clock when it reported (unix ms).
    pub time_ms: i64,
    #[serde(default)]
    pub metrics: Metrics,
    #[serde(default)]
    pub tls: Vec<TlsCert>,
    #[serde(default)]
    pub backup: Option<BackupStatus>,
    #[serde(default)]
    pub applied: Option<ApplyReport>,
    /// Named check commands from the node's config, as last run.
    #[serde(default)]
    pub checks: Vec<CheckResult>,
    /// Rendered files found edited by hand in the live release.
    #[serde(default)]
    pub drift: Vec<String>,
    /// Why the node stopped applying (safe mode), until an operator resumes it.
    #[serde(default)]
    pub safe_mode: Option<String>,
    /// The heads of the node's replica when it reported (hex change
    /// hashes): every change in their past reached it. Receipts read this.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holds: Vec<String>,
    /// The heads at which the node last found its live release to be its
    /// effective config (it applied it, or already ran it): every change in
    /// their past is applied there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub live_at: Vec<String>,
    /// Where the node's replica listens (`IP:PORT`), as it found them when
    /// it reported. A node's addresses travel here, not in the fleet
    /// document, so a DHCP lease or a 4G reconnect adds nothing to the
    /// document's history (BENCHMARKS.md, P8). Dialers use them beside the
    /// member record ([`crate::Replica::reported_addrs`]); they are hints,
    /// since a session is authenticated by the key, never the address.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addrs: Vec<String>,
    /// The tunnels the node ended lately (`MAX_REPORTED_TUNNELS` at most,
    /// newest last): what its events show of who reached what.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tunnels: Vec<TunnelRecord>,
}

/// A tunnel a node ended, as its heartbeat reports it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct TunnelRecord {
    /// The member that opened it (its name).
    pub by: String,
    /// The targets its connections reached (`IP:PORT`, comma-separated).
    pub targets: String,
    pub conns: u64,
    /// Bytes to the targets and back.
    pub to_targets: u64,
    pub from_targets: u64,
    /// When it opened (the node's clock, unix ms) and how long it lasted.
    pub opened_ms: i64,
    pub secs: u64,
}

/// The most tunnels a register reports.
pub const MAX_REPORTED_TUNNELS: usize = 8;
/// The longest text a tunnel record holds in a field.
const MAX_TUNNEL_TEXT: usize = 256;

/// The most heads a register may report in `holds`, `live_at` or an
/// apply's `from` (a replica has one or a few; more is a node that merges
/// many writers at once, and the rest are left out).
pub const MAX_REPORTED_HEADS: usize = 16;

/// The most addresses a register may report in `addrs`.
pub const MAX_REPORTED_ADDRS: usize = 16;

/// One named check command's last result.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct CheckResult {
    pub name: String,
    pub ok: bool,
    /// The tail of its output (or why it could not run).
    #[serde(default)]
    pub output: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(default)]
pub struct Metrics {
    pub cpu_pct: f64,
    pub mem_pct: f64,
    pub disks: Vec<DiskUsage>,
    pub load1: f64,
    pub uptime_s: u64,
    pub temp_c: Option<f64>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct DiskUsage {
    pub mount: String,
    pub used_pct: f64,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct TlsCert {
    pub name: String,
    pub not_after_ms: i64,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct BackupStatus {
    pub last_run_ms: i64,
    #[serde(default)]
    pub databases: Vec<DbBackup>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct DbBackup {
    pub name: String,
    pub ok: bool,
    #[serde(default)]
    pub error: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ApplyReport {
    pub revision: String,
    pub result: ApplyResult,
    #[serde(default)]
    pub error: Option<String>,
    pub duration_ms: u64,
    pub at_ms: i64,
    /// The heads of the node's replica the attempted release was rendered
    /// at (hex): which changes this outcome answers for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from: Vec<String>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum ApplyResult {
    Ok,
    RolledBack,
    Failed,
}

/// A register as stored by this replica.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredRegister {
    pub reg: HealthRegister,
    /// When this replica last heard from the node: when the register was sent,
    /// as this replica's own clock places it. For a register that came
    /// straight from its node that is its arrival; one relayed by hubs carries
    /// how long each held it (`age`), which the arrival time is set back by.
    /// The node's own clock (`time_ms`) is not used: a Raspberry Pi without a
    /// real-time clock boots hours behind and is not down for it, and one that
    /// runs ahead cannot keep itself alive. (A bundle carried by hand dates its
    /// registers by the node's clock: `Replica::import_health`.)
    pub received_ms: i64,
    /// Replica-wide write counter; poll with [`load_since`].
    pub ver: i64,
}

/// What a node's key signs a register under (see `Identity::sign_bytes`).
pub const DOMAIN: &[u8] = b"fleetdeck-health-v1";

/// The first register a replica holds of a node may have any seq below
/// this (2^40: a beat a second for 34,000 years), no more.
pub const FIRST_SEQ_CAP: u64 = 1 << 40;

/// How many beats a second a node may have made since its held register
/// was heard (a daemon beats at most once a second on schedule, plus an
/// extra beat after an apply or a drift), see [`plausible_seq`].
pub const SEQ_PER_SECOND: u64 = 2;

/// How far a seq may run ahead of what the time since the held register
/// allows (restarts, bursts of extra beats), see [`plausible_seq`].
pub const SEQ_MARGIN: u64 = 1_000;

/// A register as its node signed it: its canonical bytes (the JSON that
/// [`SignedRegister::sign`] writes) and the node key's signature of them
/// under [`DOMAIN`]. Relays and bundles carry these bytes, never a
/// re-encoding, so the signature holds wherever the register goes (even
/// through a replica that does not know every field of it).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SignedRegister {
    pub bytes: Vec<u8>,
    /// 64 bytes; empty for an unsigned register (which every replica
    /// refuses).
    pub sig: Vec<u8>,
}

impl SignedRegister {
    /// `reg` signed by `id`, the key bound to its node (the daemon's).
    pub fn sign(reg: &HealthRegister, id: &Identity) -> Result<SignedRegister> {
        let bytes = encode(reg)?;
        let sig = id.sign_bytes(DOMAIN, &bytes).to_vec();
        Ok(SignedRegister { bytes, sig })
    }

    /// The register these bytes hold.
    pub fn decode(&self) -> std::result::Result<HealthRegister, Refusal> {
        serde_json::from_slice(&self.bytes).map_err(|e| Refusal::Undecodable(e.to_string()))
    }

    /// Whether the signature is `key`'s over the bytes.
    pub fn signed_by(&self, key: &MemberKey) -> bool {
        sign::verify_bytes(key, DOMAIN, &self.bytes, &self.sig)
    }

    /// The register in its packed form for the wire (postcard, every field
    /// in order: about a third of the JSON's size), when the bytes are
    /// exactly what [`SignedRegister::sign`] writes for what they hold, so
    /// that [`SignedRegister::unpack`] rebuilds them byte for byte and the
    /// signature still holds. `None` for anything else (a register with a
    /// field this build does not know, from a newer node): that one
    /// travels as its bytes.
    pub fn pack(&self) -> Option<Vec<u8>> {
        self.pack_as(PackedForm::Plain)
    }

    /// [`SignedRegister::pack`] in the given form: the plain form has no
    /// tunnel records (a register with some does not pack in it), the
    /// other is the plain form followed by them.
    pub fn pack_as(&self, form: PackedForm) -> Option<Vec<u8>> {
        let reg = self.decode().ok()?;
        if encode(&reg).ok()? != self.bytes {
            return None;
        }
        match form {
            PackedForm::Plain if !reg.tunnels.is_empty() => None,
            PackedForm::Plain => postcard::to_stdvec(&Packed::from(reg)).ok(),
            PackedForm::WithTunnels => {
                let tunnels = reg.tunnels.clone();
                postcard::to_stdvec(&PackedWithTunnels {
                    reg: Packed::from(reg),
                    tunnels,
                })
                .ok()
            }
        }
    }

    /// The signed register a packed one stands for: the bytes rebuilt
    /// ([`SignedRegister::pack`]) beside the signature that came with it.
    /// Whether the signature holds is for [`admit`] to find, as for any
    /// register.
    pub fn unpack(packed: &[u8], sig: Vec<u8>) -> std::result::Result<SignedRegister, Refusal> {
        Self::unpack_as(packed, sig, PackedForm::Plain)
    }

    /// [`SignedRegister::unpack`] of a register packed in `form`.
    pub fn unpack_as(
        packed: &[u8],
        sig: Vec<u8>,
        form: PackedForm,
    ) -> std::result::Result<SignedRegister, Refusal> {
        let undecodable = |e: postcard::Error| Refusal::Undecodable(format!("packed: {e}"));
        let (reg, rest) = match form {
            PackedForm::Plain => {
                let (p, rest) = postcard::take_from_bytes::<Packed>(packed).map_err(undecodable)?;
                (HealthRegister::from(p), rest)
            }
            PackedForm::WithTunnels => {
                let (p, rest) =
                    postcard::take_from_bytes::<PackedWithTunnels>(packed).map_err(undecodable)?;
                let mut reg = HealthRegister::from(p.reg);
                reg.tunnels = p.tunnels;
                (reg, rest)
            }
        };
        if !rest.is_empty() {
            return Err(Refusal::Undecodable(format!(
                "packed: {} bytes after the register",
                rest.len()
            )));
        }
        let bytes = encode(&reg).map_err(|e| Refusal::Undecodable(format!("packed: {e}")))?;
        Ok(SignedRegister { bytes, sig })
    }
}

/// [`HealthRegister`] with every field present, for postcard (which has no
/// field names, so nothing may be skipped); fields are never reordered or
/// removed, only added at the end with a new packed form.
#[derive(Serialize, Deserialize)]
struct Packed {
    node: String,
    seq: u64,
    time_ms: i64,
    metrics: Metrics,
    tls: Vec<TlsCert>,
    backup: Option<BackupStatus>,
    applied: Option<PackedApply>,
    checks: Vec<CheckResult>,
    drift: Vec<String>,
    safe_mode: Option<String>,
    holds: Vec<String>,
    live_at: Vec<String>,
    addrs: Vec<String>,
}

/// The packed forms of a register (see [`SignedRegister::pack_as`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PackedForm {
    /// Every field but tunnel records (the first packed form).
    Plain,
    /// The plain form followed by the tunnel records.
    WithTunnels,
}

/// The second packed form: the first, then what it lacks.
#[derive(Serialize, Deserialize)]
struct PackedWithTunnels {
    reg: Packed,
    tunnels: Vec<TunnelRecord>,
}

#[derive(Serialize, Deserialize)]
struct PackedApply {
    revision: String,
    result: ApplyResult,
    error: Option<String>,
    duration_ms: u64,
    at_ms: i64,
    from: Vec<String>,
}

impl From<HealthRegister> for Packed {
    fn from(r: HealthRegister) -> Packed {
        Packed {
            node: r.node,
            seq: r.seq,
            time_ms: r.time_ms,
            metrics: r.metrics,
            tls: r.tls,
            backup: r.backup,
            applied: r.applied.map(|a| PackedApply {
                revision: a.revision,
                result: a.result,
                error: a.error,
                duration_ms: a.duration_ms,
                at_ms: a.at_ms,
                from: a.from,
            }),
            checks: r.checks,
            drift: r.drift,
            safe_mode: r.safe_mode,
            holds: r.holds,
            live_at: r.live_at,
            addrs: r.addrs,
        }
    }
}

impl From<Packed> for HealthRegister {
    fn from(p: Packed) -> HealthRegister {
        HealthRegister {
            node: p.node,
            seq: p.seq,
            time_ms: p.time_ms,
            metrics: p.metrics,
            tls: p.tls,
            backup: p.backup,
            applied: p.applied.map(|a| ApplyReport {
                revision: a.revision,
                result: a.result,
                error: a.error,
                duration_ms: a.duration_ms,
                at_ms: a.at_ms,
                from: a.from,
            }),
            checks: p.checks,
            drift: p.drift,
            safe_mode: p.safe_mode,
            holds: p.holds,
            live_at: p.live_at,
            addrs: p.addrs,
            tunnels: Vec::new(),
        }
    }
}

/// Why a register offered to a replica was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("it does not decode as a health register ({0})")]
    Undecodable(String),
    #[error("the node is not in this replica's fleet")]
    UnknownNode,
    #[error("no key is bound to the node here, so nothing can be checked against it")]
    Unbound,
    #[error("it is not signed")]
    Unsigned,
    #[error("it is not signed by the key bound to the node ({key})")]
    WrongKey { key: String },
    #[error("its seq {seq} jumps past the {allowed} allowed (held: {held})")]
    SeqJump {
        seq: u64,
        /// The held seq, or "none".
        held: String,
        allowed: u64,
    },
    #[error("{0}")]
    Invalid(String),
}

/// What became of a register offered to a replica ([`admit`]).
#[derive(Clone, Debug, PartialEq)]
pub enum Admission {
    /// Stored: it supersedes what was held.
    Stored,
    /// Valid, but not newer than what is held.
    Kept,
    /// Refused; `node` is the node it names ("?" when it does not decode).
    Refused { node: String, why: Refusal },
}

/// The seq rule: how far a node's seq may be from the register this
/// replica holds of it and still be believed.
///
/// - First register held of the node: any seq below [`FIRST_SEQ_CAP`].
/// - Otherwise: at most `held + SEQ_PER_SECOND × s + SEQ_MARGIN`, where `s`
///   is the whole seconds since the held register was heard (by this
///   replica's clock, never the node's).
///
/// A daemon counts one up per beat from the seq its own replica holds (so a
/// restarted daemon carries on where it stopped), beats once per
/// `heartbeat.interval_s` (at least 1 s) plus an extra beat after an apply
/// or a drift: a live node stays well inside the bound however long it was
/// cut off from this replica, and a node that outran it (a burst of extra
/// beats) comes back inside as time passes. A register with a seq near
/// 2^63, which under plain last-writer-wins would silence its node for
/// good, is refused.
pub fn plausible_seq(
    seq: u64,
    held: Option<(u64, i64)>,
    now_ms: i64,
) -> std::result::Result<(), Refusal> {
    let allowed = match held {
        None => FIRST_SEQ_CAP - 1,
        Some((held_seq, heard_ms)) => {
            let secs = u64::try_from(now_ms.saturating_sub(heard_ms)).unwrap_or(0) / 1000;
            held_seq
                .saturating_add(secs.saturating_mul(SEQ_PER_SECOND))
                .saturating_add(SEQ_MARGIN)
        }
    };
    if seq <= allowed {
        return Ok(());
    }
    Err(Refusal::SeqJump {
        seq,
        held: held.map_or_else(|| "none".to_string(), |(s, _)| s.to_string()),
        allowed,
    })
}

/// One downsampled sparkline point: the maxima within the minute starting at
/// `bucket_ms`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    pub bucket_ms: i64,
    pub cpu: f64,
    pub mem: f64,
    /// Highest `used_pct` over the node's mounts.
    pub disk: f64,
}

/// The canonical encoding of a register, the bytes the tie-break compares.
fn encode(reg: &HealthRegister) -> Result<Vec<u8>> {
    serde_json::to_vec(reg).map_err(|e| {
        StoreError::Invalid(format!(
            "the health register of node '{}' could not be encoded: {e}",
            reg.node
        ))
    })
}

/// The merge order on already-encoded registers: higher seq wins; on equal
/// seq the greater canonical bytes win; equal bytes are the same register.
fn supersedes_encoded(new_seq: u64, new: &[u8], old_seq: u64, old: &[u8]) -> bool {
    match new_seq.cmp(&old_seq) {
        Ordering::Greater => true,
        Ordering::Less => false,
        Ordering::Equal => new > old,
    }
}

/// True when `new` should replace `old` in the register of a node.
///
/// Higher `seq` wins; on equal `seq` the register whose canonical JSON
/// (`serde_json::to_vec`) is greater wins, so every replica picks the same
/// winner whatever order registers arrive in. A register never supersedes
/// itself.
pub fn supersedes(new: &HealthRegister, old: &HealthRegister) -> bool {
    if new.seq != old.seq {
        return new.seq > old.seq;
    }
    // Encoding a register does not fail (no maps, NaN becomes null); if it
    // ever did, keeping the old one keeps the merge idempotent.
    match (serde_json::to_vec(new), serde_json::to_vec(old)) {
        (Ok(n), Ok(o)) => supersedes_encoded(new.seq, &n, old.seq, &o),
        _ => false,
    }
}

/// Rejects what SQLite or JSON cannot hold faithfully: a NaN or infinite
/// metric (it would come back as null and make the row unreadable) and a
/// `seq` beyond SQLite's integer range.
fn validate(reg: &HealthRegister) -> Result<()> {
    let m = &reg.metrics;
    let mut floats = vec![
        ("cpu_pct", m.cpu_pct),
        ("mem_pct", m.mem_pct),
        ("load1", m.load1),
    ];
    if let Some(t) = m.temp_c {
        floats.push(("temp_c", t));
    }
    for d in &m.disks {
        floats.push(("disk used_pct", d.used_pct));
    }
    if let Some((what, v)) = floats.iter().find(|(_, v)| !v.is_finite()) {
        return Err(StoreError::Invalid(format!(
            "the health register of node '{}' has a non-finite {what} ({v}); metrics must be finite numbers",
            reg.node
        )));
    }
    let applied_from = reg.applied.as_ref().map_or(&[][..], |a| &a.from[..]);
    for (what, heads) in [
        ("holds", &reg.holds[..]),
        ("live_at", &reg.live_at[..]),
        ("applied.from", applied_from),
    ] {
        if heads.len() > MAX_REPORTED_HEADS {
            return Err(StoreError::Invalid(format!(
                "the health register of node '{}' reports {} heads in {what}: over the limit of {MAX_REPORTED_HEADS}",
                reg.node,
                heads.len()
            )));
        }
        if let Some(h) = heads
            .iter()
            .find(|h| h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            let shown: String = h.chars().take(70).collect();
            return Err(StoreError::Invalid(format!(
                "the health register of node '{}' reports '{shown}' in {what}: expected a change hash (64 hex digits)",
                reg.node
            )));
        }
    }
    if reg.tunnels.len() > MAX_REPORTED_TUNNELS
        || reg
            .tunnels
            .iter()
            .any(|t| t.by.len() > MAX_TUNNEL_TEXT || t.targets.len() > MAX_TUNNEL_TEXT)
    {
        return Err(StoreError::Invalid(format!(
            "the health register of node '{}' reports {} tunnels or a tunnel's text over the limits ({MAX_REPORTED_TUNNELS}, {MAX_TUNNEL_TEXT} bytes)",
            reg.node,
            reg.tunnels.len()
        )));
    }
    // Shown in events on every replica: no escape sequences, no line
    // breaks (member names and addresses have none).
    if let Some(t) = reg
        .tunnels
        .iter()
        .find(|t| t.by.chars().any(char::is_control) || t.targets.chars().any(char::is_control))
    {
        return Err(StoreError::Invalid(format!(
            "the health register of node '{}' reports a tunnel whose text has control characters ({})",
            reg.node,
            t.by.escape_debug()
        )));
    }
    if reg.addrs.len() > MAX_REPORTED_ADDRS {
        return Err(StoreError::Invalid(format!(
            "the health register of node '{}' reports {} addresses: over the limit of {MAX_REPORTED_ADDRS}",
            reg.node,
            reg.addrs.len()
        )));
    }
    if let Some(a) = reg
        .addrs
        .iter()
        .find(|a| a.parse::<std::net::SocketAddr>().is_err())
    {
        let shown: String = a.chars().take(70).collect();
        return Err(StoreError::Invalid(format!(
            "the health register of node '{}' reports the address '{}': expected IP:PORT",
            reg.node,
            shown.escape_debug()
        )));
    }
    if i64::try_from(reg.seq).is_err() {
        return Err(StoreError::Invalid(format!(
            "the health register of node '{}' has seq {}, beyond the largest storable ({})",
            reg.node,
            reg.seq,
            i64::MAX
        )));
    }
    Ok(())
}

/// A write scope on a borrowed connection: `BEGIN IMMEDIATE` when the
/// connection is idle (so the `max(ver)+1` read and the write cannot race
/// another process), a savepoint when the caller already has a transaction
/// open. Rolls back on drop unless committed.
pub(crate) struct WriteScope<'c> {
    conn: &'c Connection,
    nested: bool,
    done: bool,
}

impl<'c> WriteScope<'c> {
    pub(crate) fn begin(conn: &'c Connection) -> Result<Self> {
        let nested = !conn.is_autocommit();
        if nested {
            conn.execute_batch("SAVEPOINT fleetdeck_health")?;
        } else {
            conn.execute_batch("BEGIN IMMEDIATE")?;
        }
        Ok(Self {
            conn,
            nested,
            done: false,
        })
    }

    pub(crate) fn commit(mut self) -> Result<()> {
        if self.nested {
            self.conn.execute_batch("RELEASE fleetdeck_health")?;
        } else {
            // If COMMIT fails (e.g. busy), `done` stays false and the drop
            // rolls back, so the connection is not left inside a transaction.
            self.conn.execute_batch("COMMIT")?;
        }
        self.done = true;
        Ok(())
    }
}

impl Drop for WriteScope<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // Nothing useful can be done with a failed rollback here; the error
        // that caused it is already on its way to the caller.
        let _ = if self.nested {
            self.conn
                .execute_batch("ROLLBACK TO fleetdeck_health; RELEASE fleetdeck_health")
        } else {
            self.conn.execute_batch("ROLLBACK")
        };
    }
}

/// Stores `reg` if this replica has no register for its node yet or `reg`
/// supersedes the stored one (a stored payload that no longer decodes is
/// replaced). Returns whether it was stored.
///
/// When stored, the row gets the next replica-wide `ver` and the register
/// is noted in the node's history (`health_log::note`: its minute, its
/// presence, its state if that changed), all in one transaction (a
/// savepoint if the caller has one open).
///
/// Errors: [`StoreError::Invalid`] for a register with a non-finite metric or
/// an out-of-range seq; [`StoreError::Sqlite`] for the database.
pub fn record(conn: &Connection, reg: &HealthRegister, received_ms: i64) -> Result<bool> {
    validate(reg)?;
    let payload = encode(reg)?;
    let verdict = write(conn, reg, &payload, None, received_ms, |held| {
        last_writer_wins(reg.seq, &payload, held)
    })?;
    Ok(matches!(verdict, Verdict::Store))
}

/// [`record`] for a register this replica's own daemon made and signed
/// (`signed` holds `reg`'s bytes): stored with its signature, so peers are
/// sent it. Not checked: what the daemon says of itself is believed here.
pub fn record_signed(
    conn: &Connection,
    reg: &HealthRegister,
    signed: &SignedRegister,
    received_ms: i64,
) -> Result<bool> {
    validate(reg)?;
    let verdict = write(
        conn,
        reg,
        &signed.bytes,
        Some(&signed.sig),
        received_ms,
        |held| last_writer_wins(reg.seq, &signed.bytes, held),
    )?;
    Ok(matches!(verdict, Verdict::Store))
}

/// Offers `signed` (whose bytes decode to `reg`: [`SignedRegister::decode`]),
/// a register for a node bound to `key`, that came from
/// anywhere but this replica's own daemon (a peer, a relay, a bundle): it
/// is stored, with its signature, only when it is signed by `key`, its
/// seq is plausible ([`plausible_seq`], measured from the held register
/// and `now_ms`) and it supersedes the held register. A held register that
/// `key` did not sign (unsigned, from before registers were signed, or
/// signed by a key since unbound) counts as none and is replaced.
///
/// Errors only for the database; everything wrong with the register is an
/// [`Admission::Refused`].
pub fn admit(
    conn: &Connection,
    signed: &SignedRegister,
    reg: &HealthRegister,
    key: &MemberKey,
    received_ms: i64,
    now_ms: i64,
) -> Result<Admission> {
    let refused = |why| Admission::Refused {
        node: reg.node.clone(),
        why,
    };
    if let Err(e) = validate(reg) {
        return Ok(refused(Refusal::Invalid(e.to_string())));
    }
    if signed.sig.is_empty() {
        return Ok(refused(Refusal::Unsigned));
    }
    if !signed.signed_by(key) {
        return Ok(refused(Refusal::WrongKey {
            key: key.to_string(),
        }));
    }
    let verdict = write(
        conn,
        reg,
        &signed.bytes,
        Some(&signed.sig),
        received_ms,
        |held| {
            let held = held.filter(|h| {
                h.sig
                    .as_deref()
                    .is_some_and(|s| sign::verify_bytes(key, DOMAIN, &h.bytes, s))
            });
            if let Err(why) = plausible_seq(reg.seq, held.map(|h| (h.seq, h.received_ms)), now_ms) {
                return Verdict::Refuse(why);
            }
            last_writer_wins(reg.seq, &signed.bytes, held)
        },
    )?;
    Ok(match verdict {
        Verdict::Store => Admission::Stored,
        Verdict::Keep => Admission::Kept,
        Verdict::Refuse(why) => refused(why),
    })
}

/// The register held of `node` as its node signed it, to pass on; `None`
/// when none is held or the held one is unsigned (stored before registers
/// were signed: kept here, never relayed).
pub fn signed(conn: &Connection, node: &str) -> Result<Option<SignedRegister>> {
    let row: Option<Option<SignedRegister>> = conn
        .query_row(
            "SELECT payload, sig FROM health WHERE node = ?1",
            params![node],
            |row| {
                let bytes = match row.get_ref(0)? {
                    ValueRef::Text(b) | ValueRef::Blob(b) => b.to_vec(),
                    _ => return Ok(None),
                };
                let sig = match row.get_ref(1)? {
                    ValueRef::Blob(b) if !b.is_empty() => b.to_vec(),
                    _ => return Ok(None),
                };
                Ok(Some(SignedRegister { bytes, sig }))
            },
        )
        .optional()?;
    Ok(row.flatten())
}

/// The register held of a node, as [`write`] reads it in its transaction.
struct Held {
    seq: u64,
    /// The stored payload, exactly.
    bytes: Vec<u8>,
    sig: Option<Vec<u8>>,
    received_ms: i64,
}

/// What [`write`] does with a register, given the held one.
enum Verdict {
    Store,
    Keep,
    Refuse(Refusal),
}

/// The merge: no register held (or an undecodable one) or a superseded one
/// → store.
fn last_writer_wins(seq: u64, payload: &[u8], held: Option<&Held>) -> Verdict {
    match held {
        Some(h) if !supersedes_encoded(seq, payload, h.seq, &h.bytes) => Verdict::Keep,
        _ => Verdict::Store,
    }
}

/// Reads the node's held register and, when `judge` says so, stores `reg`
/// (whose canonical bytes are `payload`) with `sig`, a new `ver` and its
/// sample, in one transaction (a savepoint inside the caller's).
fn write(
    conn: &Connection,
    reg: &HealthRegister,
    payload: &[u8],
    sig: Option<&[u8]>,
    received_ms: i64,
    judge: impl FnOnce(Option<&Held>) -> Verdict,
) -> Result<Verdict> {
    let payload_text = std::str::from_utf8(payload).map_err(|e| {
        StoreError::Invalid(format!(
            "the health register of node '{}' is not UTF-8: {e}",
            reg.node
        ))
    })?;
    let seq = i64::try_from(reg.seq).map_err(|_| {
        StoreError::Invalid(format!(
            "the health register of node '{}' has an out-of-range seq",
            reg.node
        ))
    })?;

    let scope = WriteScope::begin(conn)?;

    let held: Option<Held> = conn
        .query_row(
            "SELECT payload, sig, received_ms FROM health WHERE node = ?1",
            params![reg.node],
            |row| {
                let Some((seq, bytes)) = stored_seq_and_bytes(row.get_ref(0)?) else {
                    // Undecodable: the new register replaces it.
                    return Ok(None);
                };
                let sig = match row.get_ref(1)? {
                    ValueRef::Blob(b) if !b.is_empty() => Some(b.to_vec()),
                    _ => None,
                };
                let Ok(received_ms) = row.get_ref(2)?.as_i64() else {
                    return Ok(None);
                };
                Ok(Some(Held {
                    seq,
                    bytes,
                    sig,
                    received_ms,
                }))
            },
        )
        .optional()?
        .flatten();
    let verdict = judge(held.as_ref());
    if !matches!(verdict, Verdict::Store) {
        // Dropping the scope ends the (read-only) transaction.
        return Ok(verdict);
    }

    conn.execute(
        "INSERT INTO health (node, seq, time_ms, received_ms, ver, payload, sig)
         VALUES (?1, ?2, ?3, ?4, (SELECT COALESCE(MAX(ver), 0) + 1 FROM health), ?5, ?6)
         ON CONFLICT(node) DO UPDATE SET
            seq = excluded.seq,
            time_ms = excluded.time_ms,
            received_ms = excluded.received_ms,
            ver = excluded.ver,
            payload = excluded.payload,
            sig = excluded.sig",
        params![reg.node, seq, reg.time_ms, received_ms, payload_text, sig],
    )?;

    crate::health_log::note(conn, reg, received_ms)?;

    scope.commit()?;
    Ok(Verdict::Store)
}

/// The seq and canonical bytes of a stored payload, or `None` when it does
/// not decode as a register.
fn stored_seq_and_bytes(v: ValueRef<'_>) -> Option<(u64, Vec<u8>)> {
    let reg = decode_payload(v)?;
    // Compare the stored bytes themselves: they are the canonical encoding
    // `record` wrote, and comparing them (not a re-encoding of the decoded
    // value) keeps re-recording the same register a no-op even if a float
    // does not survive the JSON round trip bit for bit.
    let bytes = match v {
        ValueRef::Text(b) | ValueRef::Blob(b) => b.to_vec(),
        _ => return None,
    };
    Some((reg.seq, bytes))
}

fn decode_payload(v: ValueRef<'_>) -> Option<HealthRegister> {
    match v {
        ValueRef::Text(b) | ValueRef::Blob(b) => serde_json::from_slice(b).ok(),
        _ => None,
    }
}

fn text_lossy(v: ValueRef<'_>) -> String {
    match v {
        ValueRef::Text(b) | ValueRef::Blob(b) => String::from_utf8_lossy(b).into_owned(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(r) => r.to_string(),
        ValueRef::Null => String::from("(null)"),
    }
}

/// Decodes one `health` row: `Ok(Ok(..))` a register, `Ok(Err(node))` a row
/// that is unreadable (named by its node column), `Err` only for the
/// database itself.
fn read_row(
    row: &rusqlite::Row<'_>,
) -> rusqlite::Result<std::result::Result<StoredRegister, String>> {
    let node = text_lossy(row.get_ref(0)?);
    let received = row.get_ref(1)?.as_i64().ok();
    let ver = row.get_ref(2)?.as_i64().ok();
    let reg = decode_payload(row.get_ref(3)?);
    Ok(match (reg, received, ver) {
        (Some(reg), Some(received_ms), Some(ver)) if reg.node == node => Ok(StoredRegister {
            reg,
            received_ms,
            ver,
        }),
        _ => Err(node),
    })
}

fn load_where(
    conn: &Connection,
    sql: &str,
    args: impl rusqlite::Params,
) -> Result<(Vec<StoredRegister>, Vec<String>)> {
    let mut stmt = conn.prepare(sql)?;
    let mut rows = stmt.query(args)?;
    let mut good = Vec::new();
    let mut bad = Vec::new();
    while let Some(row) = rows.next()? {
        match read_row(row)? {
            Ok(r) => good.push(r),
            Err(node) => bad.push(node),
        }
    }
    Ok((good, bad))
}

/// Every stored register, ordered by node, and the node ids of rows that
/// could not be read (corrupt payload, payload naming another node, or a
/// non-integer column). Unreadable rows are skipped so the caller can warn;
/// the next register from such a node replaces the row.
pub fn load_all(conn: &Connection) -> Result<(Vec<StoredRegister>, Vec<String>)> {
    load_where(
        conn,
        "SELECT node, received_ms, ver, payload FROM health ORDER BY node",
        [],
    )
}

/// Registers written after `ver` (rows with a greater `ver`), ordered by
/// `ver`, with the same unreadable-row reporting as [`load_all`]. Poll with
/// the greatest `ver` seen so far; an unreadable row keeps its `ver`, so it
/// is reported again until it is replaced or a later `ver` has been seen.
pub fn load_since(conn: &Connection, ver: i64) -> Result<(Vec<StoredRegister>, Vec<String>)> {
    load_where(
        conn,
        "SELECT node, received_ms, ver, payload FROM health WHERE ver > ?1 ORDER BY ver",
        params![ver],
    )
}

/// The node's per-minute samples from `since_ms` on, oldest first.
pub fn series(conn: &Connection, node: &str, since_ms: i64) -> Result<Vec<Sample>> {
    crate::health_log::series(conn, node, since_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn db() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(SCHEMA_SQL).unwrap();
        conn.execute_batch(crate::health_log::SCHEMA_SQL).unwrap();
        conn
    }

    fn reg(node: &str, seq: u64, time_ms: i64) -> HealthRegister {
        HealthRegister {
            node: node.to_string(),
            seq,
            time_ms,
            metrics: Metrics {
                cpu_pct: 10.0,
                mem_pct: 20.0,
                disks: vec![DiskUsage {
                    mount: "/".into(),
                    used_pct: 30.0,
                }],
                load1: 0.5,
                uptime_s: 100,
                temp_c: None,
            },
            tls: vec![],
            backup: None,
            applied: None,
            ..Default::default()
        }
    }

    fn with_cpu(mut r: HealthRegister, cpu: f64) -> HealthRegister {
        r.metrics.cpu_pct = cpu;
        r
    }

    #[test]
    fn a_register_with_an_older_seq_is_refused_and_a_newer_one_stored() {
        let conn = db();
        assert!(record(&conn, &reg("n1", 5, 1_000), 1_000).unwrap());
        assert!(!record(&conn, &reg("n1", 4, 2_000), 2_000).unwrap());
        let (all, bad) = load_all(&conn).unwrap();
        assert!(bad.is_empty());
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].reg.seq, 5);
        assert_eq!(all[0].received_ms, 1_000);

        assert!(record(&conn, &reg("n1", 6, 3_000), 3_500).unwrap());
        let (all, _) = load_all(&conn).unwrap();
        assert_eq!(all[0].reg, reg("n1", 6, 3_000));
        assert_eq!(all[0].received_ms, 3_500);
    }

    #[test]
    fn re_recording_the_same_register_is_a_no_op() {
        let conn = db();
        let r = reg("n1", 1, 1_000);
        assert!(record(&conn, &r, 1_000).unwrap());
        assert!(!record(&conn, &r, 2_000).unwrap());
        let (all, _) = load_all(&conn).unwrap();
        assert_eq!(all[0].ver, 1);
        assert_eq!(all[0].received_ms, 1_000);
    }

    #[test]
    fn equal_seq_ties_break_the_same_way_in_either_order() {
        let a = with_cpu(reg("n1", 3, 1_000), 11.0);
        let b = with_cpu(reg("n1", 3, 1_000), 99.0);
        assert_ne!(supersedes(&a, &b), supersedes(&b, &a));
        let winner = if supersedes(&a, &b) { &a } else { &b };

        for order in [[&a, &b], [&b, &a]] {
            let conn = db();
            for r in order {
                record(&conn, r, 5_000).unwrap();
            }
            let (all, _) = load_all(&conn).unwrap();
            assert_eq!(&all[0].reg, winner);
        }
    }

    #[test]
    fn ver_increases_on_every_write_across_nodes() {
        let conn = db();
        record(&conn, &reg("a", 1, 1_000), 1_000).unwrap();
        record(&conn, &reg("b", 1, 1_000), 1_000).unwrap();
        record(&conn, &reg("a", 2, 2_000), 2_000).unwrap();
        // Refused writes do not bump ver.
        record(&conn, &reg("b", 0, 2_000), 2_000).unwrap();
        let (all, _) = load_all(&conn).unwrap();
        let vers: HashMap<_, _> = all.iter().map(|s| (s.reg.node.as_str(), s.ver)).collect();
        assert_eq!(vers["b"], 2);
        assert_eq!(vers["a"], 3);

        let (since, bad) = load_since(&conn, 2).unwrap();
        assert!(bad.is_empty());
        assert_eq!(since.len(), 1);
        assert_eq!(since[0].reg.node, "a");
        assert_eq!(load_since(&conn, 3).unwrap().0.len(), 0);
        let (from_start, _) = load_since(&conn, 0).unwrap();
        assert_eq!(
            from_start.iter().map(|s| s.ver).collect::<Vec<_>>(),
            vec![2, 3]
        );
    }

    #[test]
    fn samples_keep_the_per_minute_maximum_and_are_pruned_after_a_day() {
        let conn = db();
        let t0 = 10 * SAMPLE_BUCKET_MS;
        let mut r = with_cpu(reg("n1", 1, t0 + 1_000), 40.0);
        r.metrics.disks.push(DiskUsage {
            mount: "/data".into(),
            used_pct: 70.0,
        });
        record(&conn, &r, t0 + 1_000).unwrap();
        let mut r2 = with_cpu(reg("n1", 2, t0 + 30_000), 25.0);
        r2.metrics.mem_pct = 60.0;
        record(&conn, &r2, t0 + 30_000).unwrap();
        record(
            &conn,
            &with_cpu(reg("n1", 3, t0 + 61_000), 5.0),
            t0 + 61_000,
        )
        .unwrap();
        // Another node's samples are separate.
        record(&conn, &with_cpu(reg("n2", 1, t0), 99.0), t0).unwrap();

        let s = series(&conn, "n1", 0).unwrap();
        assert_eq!(
            s,
            vec![
                Sample {
                    bucket_ms: t0,
                    cpu: 40.0,
                    mem: 60.0,
                    disk: 70.0
                },
                Sample {
                    bucket_ms: t0 + SAMPLE_BUCKET_MS,
                    cpu: 5.0,
                    mem: 20.0,
                    disk: 30.0
                },
            ]
        );
        assert_eq!(series(&conn, "n1", t0 + 1).unwrap().len(), 1);

        // A day after its hour ended, the first hour's minutes are gone,
        // kept as a quarter hour's maxima.
        let later = crate::health_log::MINUTES_KEEP_MS + crate::health_log::HOUR_MS;
        record(&conn, &reg("n1", 4, later), later).unwrap();
        let s = series(&conn, "n1", 0).unwrap();
        assert_eq!(
            s.iter().map(|x| x.bucket_ms).collect::<Vec<_>>(),
            vec![later]
        );
        let past = crate::health_log::sample_at(&conn, "n1", t0 + 1_000)
            .unwrap()
            .unwrap();
        assert_eq!(past.resolution, crate::health_log::Resolution::Quarter);
        assert_eq!((past.cpu, past.mem, past.disk), (40.0, 60.0, 70.0));
        assert_eq!(series(&conn, "n2", 0).unwrap().len(), 1);
    }

    #[test]
    fn a_refused_register_adds_no_sample() {
        let conn = db();
        record(&conn, &with_cpu(reg("n1", 5, 60_000), 10.0), 60_000).unwrap();
        record(&conn, &with_cpu(reg("n1", 4, 60_000), 90.0), 60_000).unwrap();
        assert_eq!(series(&conn, "n1", 0).unwrap()[0].cpu, 10.0);
    }

    #[test]
    fn a_corrupt_payload_row_is_skipped_reported_and_replaced_by_the_next_register() {
        let conn = db();
        record(&conn, &reg("good", 1, 1_000), 1_000).unwrap();
        conn.execute(
            "INSERT INTO health (node, seq, time_ms, received_ms, ver, payload)
             VALUES ('bad', 9, 0, 0, 7, '{not json')",
            [],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO health (node, seq, time_ms, received_ms, ver, payload)
             VALUES ('blob', 9, 0, 0, 8, x'00ff')",
            [],
        )
        .unwrap();
        let (all, bad) = load_all(&conn).unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].reg.node, "good");
        assert_eq!(bad, vec!["bad".to_string(), "blob".to_string()]);
        let (_, bad_since) = load_since(&conn, 7).unwrap();
        assert_eq!(bad_since, vec!["blob".to_string()]);

        // Even a lower seq replaces an undecodable row.
        assert!(record(&conn, &reg("bad", 1, 2_000), 2_000).unwrap());
        let (all, bad) = load_all(&conn).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(bad, vec!["blob".to_string()]);
        let fixed = all.iter().find(|s| s.reg.node == "bad").unwrap();
        assert_eq!(fixed.ver, 9);
    }

    #[test]
    fn a_payload_naming_another_node_is_reported_as_corrupt() {
        let conn = db();
        let payload = serde_json::to_string(&reg("other", 1, 0)).unwrap();
        conn.execute(
            "INSERT INTO health (node, seq, time_ms, received_ms, ver, payload)
             VALUES ('n1', 1, 0, 0, 1, ?1)",
            [payload],
        )
        .unwrap();
        let (all, bad) = load_all(&conn).unwrap();
        assert!(all.is_empty());
        assert_eq!(bad, vec!["n1".to_string()]);
    }

    #[test]
    fn non_finite_metrics_are_refused_with_the_node_named() {
        let conn = db();
        let e = record(&conn, &with_cpu(reg("n7", 1, 0), f64::NAN), 0).unwrap_err();
        assert!(matches!(e, StoreError::Invalid(_)));
        assert!(e.to_string().contains("n7"), "{e}");
        assert!(e.to_string().contains("cpu_pct"), "{e}");
        assert!(load_all(&conn).unwrap().0.is_empty());
    }

    #[test]
    fn a_packed_register_rebuilds_the_signed_bytes_and_is_smaller() {
        let id = Identity::generate();
        let head = "ab".repeat(32);
        let full = HealthRegister {
            metrics: Metrics {
                // Floats that take 17 digits to print.
                cpu_pct: 0.1 + 0.2,
                mem_pct: 2.0_f64.sqrt() * 10.0,
                temp_c: Some(48.123_456_789_012_34),
                ..reg("cam-1", 1, 0).metrics
            },
            tls: vec![TlsCert {
                name: "nvr".into(),
                not_after_ms: 1_800_000_000_000,
            }],
            backup: Some(BackupStatus {
                last_run_ms: 5,
                databases: vec![DbBackup {
                    name: "frigate".into(),
                    ok: false,
                    error: Some("timed out".into()),
                }],
            }),
            applied: Some(ApplyReport {
                revision: "r1".into(),
                result: ApplyResult::RolledBack,
                error: Some("check failed".into()),
                duration_ms: 1_500,
                at_ms: 7,
                from: vec![head.clone()],
            }),
            checks: vec![CheckResult {
                name: "http".into(),
                ok: true,
                output: String::new(),
            }],
            drift: vec!["files/a.yml".into()],
            safe_mode: None,
            holds: vec![head.clone()],
            live_at: vec![head],
            addrs: vec!["10.0.0.7:7447".into()],
            ..reg("cam-1", 9, 1_765_000_000_000)
        };
        for r in [full, reg("cam-2", 1, 0)] {
            let signed = SignedRegister::sign(&r, &id).unwrap();
            let packed = signed.pack().expect("a register this build wrote packs");
            assert!(
                packed.len() * 2 < signed.bytes.len(),
                "{} vs {}",
                packed.len(),
                signed.bytes.len()
            );
            let back = SignedRegister::unpack(&packed, signed.sig.clone()).unwrap();
            assert_eq!(back, signed);
            assert!(back.signed_by(id.key()));
        }
    }

    #[test]
    fn a_register_with_fields_this_build_does_not_know_travels_as_its_bytes() {
        let id = Identity::generate();
        let bytes = br#"{"node":"cam-1","seq":3,"time_ms":5,"gpu_pct":40}"#.to_vec();
        let sig = id.sign_bytes(DOMAIN, &bytes).to_vec();
        let newer = SignedRegister { bytes, sig };
        assert!(newer.decode().is_ok());
        assert_eq!(newer.pack(), None);
    }

    #[test]
    fn hostile_packed_bytes_are_refused_as_undecodable() {
        let id = Identity::generate();
        let signed = SignedRegister::sign(&reg("cam-1", 1, 0), &id).unwrap();
        let packed = signed.pack().unwrap();
        let mut trailing = packed.clone();
        trailing.push(0);
        let huge_len = [
            0x05, b'c', b'a', b'm', b'-', b'1', 1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f,
        ];
        for bad in [
            &packed[..packed.len() / 2],
            &trailing[..],
            &[][..],
            &huge_len[..],
        ] {
            let e = SignedRegister::unpack(bad, signed.sig.clone()).unwrap_err();
            assert!(matches!(e, Refusal::Undecodable(_)), "{e}");
        }
    }

    #[test]
    fn reported_addresses_must_be_socket_addresses_and_few() {
        let conn = db();
        let with_addrs = |addrs: Vec<String>| HealthRegister {
            addrs,
            ..reg("n3", 1, 0)
        };
        let ok = with_addrs(vec!["10.0.0.7:7447".into(), "[fd00::7]:7447".into()]);
        assert!(record(&conn, &ok, 0).unwrap());
        for (bad, named) in [
            (vec!["10.0.0.7".to_string()], "'10.0.0.7'"),
            (vec!["host.example:7447".to_string()], "host.example"),
            (vec!["\u{1b}[2J:1".to_string()], "\\u{1b}"),
            (
                vec!["10.0.0.1:1".to_string(); MAX_REPORTED_ADDRS + 1],
                "17 addresses",
            ),
        ] {
            let e = record(&conn, &with_addrs(bad), 0).unwrap_err();
            assert!(matches!(e, StoreError::Invalid(_)));
            assert!(e.to_string().contains(named), "{e}");
            assert!(e.to_string().contains("n3"), "{e}");
        }
        // The register held before is still there.
        assert_eq!(load_all(&conn).unwrap().0[0].reg.addrs, ok.addrs);
    }

    #[test]
    fn tunnel_records_are_few_and_short_and_a_register_with_them_goes_unpacked() {
        let conn = db();
        let t = TunnelRecord {
            by: "laptop".into(),
            targets: "127.0.0.1:5000".into(),
            conns: 2,
            to_targets: 300,
            from_targets: 90_000,
            opened_ms: 1,
            secs: 42,
        };
        let with = |tunnels: Vec<TunnelRecord>| HealthRegister {
            tunnels,
            ..reg("n4", 1, 0)
        };
        let ok = with(vec![t.clone()]);
        assert!(record(&conn, &ok, 0).unwrap());
        let long = TunnelRecord {
            targets: "x".repeat(MAX_TUNNEL_TEXT + 1),
            ..t.clone()
        };
        // A captured node's invented record with an escape sequence in
        // it, shown in every replica's events: refused.
        let escape = TunnelRecord {
            by: "laptop\u{1b}[2J".into(),
            ..t.clone()
        };
        for bad in [
            vec![t.clone(); MAX_REPORTED_TUNNELS + 1],
            vec![long],
            vec![escape],
        ] {
            let e = record(&conn, &with(bad), 0).unwrap_err();
            assert!(e.to_string().contains("tunnel"), "{e}");
        }
        assert_eq!(load_all(&conn).unwrap().0[0].reg.tunnels, ok.tunnels);
        // The plain packed form has no tunnels: such a register never
        // packs without them. The second form carries them, and rebuilds
        // the signed bytes exactly.
        let signed = SignedRegister {
            bytes: encode(&ok).unwrap(),
            sig: vec![9; 64],
        };
        assert!(signed.pack().is_none());
        let packed = signed.pack_as(PackedForm::WithTunnels).unwrap();
        assert!(
            packed.len() < signed.bytes.len() / 2,
            "{} bytes",
            packed.len()
        );
        assert_eq!(
            SignedRegister::unpack_as(&packed, signed.sig.clone(), PackedForm::WithTunnels),
            Ok(signed.clone())
        );
        // Read as the other form, or cut short: refused, never misread.
        assert!(SignedRegister::unpack(&packed, Vec::new()).is_err());
        assert!(
            SignedRegister::unpack_as(
                &packed[..packed.len() - 3],
                Vec::new(),
                PackedForm::WithTunnels
            )
            .is_err()
        );
    }

    #[test]
    fn record_inside_a_caller_transaction_uses_a_savepoint() {
        let mut conn = db();
        let tx = conn.transaction().unwrap();
        assert!(record(&tx, &reg("n1", 1, 0), 0).unwrap());
        assert!(record(&tx, &reg("n1", 2, 0), 0).unwrap());
        tx.rollback().unwrap();
        assert!(load_all(&conn).unwrap().0.is_empty());
    }

    #[test]
    fn payloads_from_older_and_newer_versions_parse() {
        let old = r#"{"node":"n1","seq":3,"time_ms":5}"#;
        let r: HealthRegister = serde_json::from_str(old).unwrap();
        assert_eq!(r.metrics, Metrics::default());
        assert!(r.tls.is_empty() && r.backup.is_none() && r.applied.is_none());

        let newer = r#"{"node":"n1","seq":3,"time_ms":5,"future":1,
            "metrics":{"cpu_pct":1.5,"gpu_pct":3},
            "applied":{"revision":"r1","result":"rolled_back","duration_ms":4,"at_ms":6}}"#;
        let r: HealthRegister = serde_json::from_str(newer).unwrap();
        assert_eq!(r.metrics.cpu_pct, 1.5);
        assert_eq!(r.applied.unwrap().result, ApplyResult::RolledBack);
    }

    #[test]
    fn the_seq_rule_caps_a_first_register_and_allows_two_a_second_after_a_held_one() {
        assert!(plausible_seq(FIRST_SEQ_CAP - 1, None, 0).is_ok());
        assert!(plausible_seq(FIRST_SEQ_CAP, None, 0).is_err());
        let held = Some((100, 1_000_000));
        assert!(plausible_seq(100 + SEQ_MARGIN, held, 1_000_000).is_ok());
        assert!(plausible_seq(101 + SEQ_MARGIN, held, 1_000_000).is_err());
        // An hour later, two beats a second more.
        let hour = 1_000_000 + 3_600_000;
        assert!(plausible_seq(100 + SEQ_MARGIN + 7_200, held, hour).is_ok());
        assert!(plausible_seq(101 + SEQ_MARGIN + 7_200, held, hour).is_err());
        let e = plausible_seq(1 << 62, held, hour).unwrap_err();
        assert!(e.to_string().contains("jumps past"), "{e}");
        // A clock set back counts no time, never negative time.
        assert!(plausible_seq(100 + SEQ_MARGIN, held, 0).is_ok());
    }

    #[test]
    fn admit_stores_only_registers_signed_by_the_bound_key_with_a_plausible_seq() {
        let conn = db();
        let node = Identity::generate();
        let other = Identity::generate();
        let signed = |r: &HealthRegister, id: &Identity| SignedRegister::sign(r, id).unwrap();
        let admit_at = |s: &SignedRegister, now: i64| {
            admit(&conn, s, &s.decode().unwrap(), node.key(), now, now).unwrap()
        };

        let r1 = reg("n1", 5, 1_000);
        assert_eq!(admit_at(&signed(&r1, &node), 1_000), Admission::Stored);
        assert_eq!(admit_at(&signed(&r1, &node), 1_000), Admission::Kept);

        let forged = signed(&reg("n1", 6, 2_000), &other);
        assert!(matches!(
            admit_at(&forged, 2_000),
            Admission::Refused { why: Refusal::WrongKey { .. }, ref node } if node == "n1"
        ));
        let mut unsigned = signed(&reg("n1", 6, 2_000), &node);
        unsigned.sig.clear();
        assert!(matches!(
            admit_at(&unsigned, 2_000),
            Admission::Refused {
                why: Refusal::Unsigned,
                ..
            }
        ));
        let mut tampered = signed(&reg("n1", 6, 2_000), &node);
        tampered.bytes = encode(&reg("n1", 7, 2_000)).unwrap();
        assert!(matches!(
            admit_at(&tampered, 2_000),
            Admission::Refused {
                why: Refusal::WrongKey { .. },
                ..
            }
        ));
        let jump = signed(&reg("n1", 1 << 62, 2_000), &node);
        assert!(matches!(
            admit_at(&jump, 2_000),
            Admission::Refused {
                why: Refusal::SeqJump { .. },
                ..
            }
        ));
        // None of it was stored; the node's next beat is.
        assert_eq!(load_all(&conn).unwrap().0[0].reg.seq, 5);
        assert_eq!(
            admit_at(&signed(&reg("n1", 6, 3_000), &node), 3_000),
            Admission::Stored
        );
        assert_eq!(signed_of(&conn, "n1"), signed(&reg("n1", 6, 3_000), &node));
    }

    fn signed_of(conn: &Connection, node: &str) -> SignedRegister {
        signed(conn, node).unwrap().unwrap()
    }

    #[test]
    fn a_held_register_the_bound_key_did_not_sign_loses_to_one_it_did() {
        let conn = db();
        let old_key = Identity::generate();
        let new_key = Identity::generate();
        // Held: seq 900 by a key no longer bound to the node, and an
        // unsigned register of another node (stored before signing).
        let held = SignedRegister::sign(&reg("n1", 900, 1_000), &old_key).unwrap();
        record_signed(&conn, &reg("n1", 900, 1_000), &held, 1_000).unwrap();
        record(&conn, &reg("n2", 900, 1_000), 1_000).unwrap();
        assert!(
            signed(&conn, "n2").unwrap().is_none(),
            "unsigned: not relayed"
        );
        for n in ["n1", "n2"] {
            let fresh = SignedRegister::sign(&reg(n, 1, 2_000), &new_key).unwrap();
            let out = admit(
                &conn,
                &fresh,
                &fresh.decode().unwrap(),
                new_key.key(),
                2_000,
                2_000,
            )
            .unwrap();
            assert_eq!(out, Admission::Stored, "{n}");
        }
        let (all, _) = load_all(&conn).unwrap();
        assert!(all.iter().all(|s| s.reg.seq == 1));
    }

    fn arb_register() -> impl Strategy<Value = HealthRegister> {
        (
            0..3usize,
            0..4u64,
            0..3i64,
            0..3u16,
            proptest::option::of(0..2u8),
        )
            .prop_map(|(node, seq, time, cpu, applied)| {
                let mut r = with_cpu(
                    reg(&format!("n{node}"), seq, time * 1_000),
                    f64::from(cpu) / 10.0,
                );
                r.applied = applied.map(|a| ApplyReport {
                    revision: format!("r{a}"),
                    result: if a == 0 {
                        ApplyResult::Ok
                    } else {
                        ApplyResult::Failed
                    },
                    error: None,
                    duration_ms: 1,
                    at_ms: 0,
                    from: Vec::new(),
                });
                r
            })
    }

    fn merge_all<'a>(
        regs: impl IntoIterator<Item = &'a HealthRegister>,
    ) -> HashMap<String, HealthRegister> {
        let mut state: HashMap<String, HealthRegister> = HashMap::new();
        for r in regs {
            let replace = state.get(&r.node).is_none_or(|old| supersedes(r, old));
            if replace {
                state.insert(r.node.clone(), r.clone());
            }
        }
        state
    }

    proptest! {
        #[test]
        fn any_arrival_order_yields_the_same_winner_per_node(
            (regs, shuffled) in proptest::collection::vec(arb_register(), 0..12)
                .prop_flat_map(|v| (Just(v.clone()), Just(v).prop_shuffle()))
        ) {
            let a = merge_all(&regs);
            let b = merge_all(&shuffled);
            prop_assert_eq!(&a, &b);
            // Idempotent: merging everything again changes nothing.
            let again = merge_all(a.values().chain(regs.iter()));
            prop_assert_eq!(&a, &again);
            // The winner has the highest seq of its node.
            for (node, w) in &a {
                let max = regs.iter().filter(|r| &r.node == node).map(|r| r.seq).max();
                prop_assert_eq!(Some(w.seq), max);
            }
        }

        #[test]
        fn merging_in_two_halves_equals_merging_at_once(
            regs in proptest::collection::vec(arb_register(), 0..12),
            split in 0..12usize,
        ) {
            let split = split.min(regs.len());
            let left = merge_all(&regs[..split]);
            let right = merge_all(&regs[split..]);
            let joined = merge_all(left.values().chain(right.values()));
            prop_assert_eq!(joined, merge_all(&regs));
        }

        #[test]
        fn the_database_converges_like_the_pure_merge(
            (regs, shuffled) in proptest::collection::vec(arb_register(), 0..10)
                .prop_flat_map(|v| (Just(v.clone()), Just(v).prop_shuffle()))
        ) {
            let expect = merge_all(&regs);
            for order in [&regs, &shuffled] {
                let conn = db();
                for r in order.iter() {
                    record(&conn, r, 0).unwrap();
                }
                let (all, bad) = load_all(&conn).unwrap();
                prop_assert!(bad.is_empty());
                let got: HashMap<_, _> =
                    all.into_iter().map(|s| (s.reg.node.clone(), s.reg)).collect();
                prop_assert_eq!(&got, &expect);
            }
        }
    }
}
