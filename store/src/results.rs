//! Command results registers: what each node last said its recent commands
//! did, kept outside the fleet document's history.
//!
//! A result written into the document is one automerge change per node per
//! command, kept forever (P8: a command a day to 50 nodes grows the
//! document's tables tenfold in a year), and every such change makes a
//! replica re-read the commands part of its state (P11). So a node keeps
//! the results of its recent commands in one register of its own, like its
//! health register: last-writer-wins by the node's own seq
//! ([`supersedes_encoded`]), signed by the node's key
//! ([`SignedResults`]), checked on arrival by [`admit`] (the key bound to
//! its node, a plausible seq: `health::plausible_seq`), stored in the
//! `results` table, and relayed as the node signed it.
//!
//! Retention is the writer's: a node keeps in its register the results of
//! commands from the last [`KEEP_MS`], at most [`MAX_RESULTS`] of them and
//! [`MAX_BYTES`] in all ([`ResultsRegister::with_result`]); a register over
//! the count or the size is refused by every replica. Results older than
//! that live on only in what replicas printed; the document keeps the
//! commands themselves.
//!
//! Like `health`, this module never opens or migrates a connection (the
//! caller runs [`SCHEMA_SQL`]), never reads the clock (times are given),
//! and never panics on what it reads back: an undecodable row is skipped
//! and named.

use std::collections::BTreeMap;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::document::CommandResult;
use crate::error::{Result, StoreError};
use crate::health::{Admission, Refusal, WriteScope, plausible_seq};
use crate::identity::Identity;
use crate::ids::MemberKey;
use crate::sign;

/// The table of this module. Idempotent; the caller's schema migration
/// runs it (schema 7). `payload` holds a register's bytes exactly as its
/// node signed them, `sig` the signature.
pub const SCHEMA_SQL: &str = "\
CREATE TABLE IF NOT EXISTS results (
    node TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    received_ms INTEGER NOT NULL,
    ver INTEGER NOT NULL,
    payload BLOB NOT NULL,
    sig BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS results_ver ON results(ver);
";

/// What a node's key signs a results register under.
pub const DOMAIN: &[u8] = b"fleetdeck-results-v1";

/// A node keeps the results of commands from this long before its newest
/// (7 days; a node runs a command only within a day of its issue,
/// `node::commands::COMMAND_TTL_MS`).
pub const KEEP_MS: i64 = 7 * 24 * 60 * 60 * 1000;

/// The most results one register holds (the newest are kept).
pub const MAX_RESULTS: usize = 64;

/// The largest register (its signed bytes): 64 results of a full output
/// tail (2 KiB, `node::command::TAIL`) fit.
pub const MAX_BYTES: usize = 192 * 1024;

/// The longest command id a register may name.
pub const MAX_COMMAND_ID: usize = 128;

/// A node's results of its recent commands.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct ResultsRegister {
    /// The node id, as text.
    pub node: String,
    /// The node's own, strictly increasing counter of this register.
    pub seq: u64,
    /// The node's clock when it wrote the register (unix ms).
    pub time_ms: i64,
    /// Command id → what the command did on the node.
    #[serde(default)]
    pub results: BTreeMap<String, CommandResult>,
}

impl ResultsRegister {
    /// The register that follows `held` (the node's own, if it holds one)
    /// once `result` for `command` is added: seq one up, written at
    /// `now_ms`, and only the results [`ResultsRegister::retain`] keeps.
    pub fn with_result(
        held: Option<&ResultsRegister>,
        node: &str,
        command: &str,
        result: CommandResult,
        now_ms: i64,
    ) -> ResultsRegister {
        let mut reg = held.cloned().unwrap_or_else(|| ResultsRegister {
            node: node.to_string(),
            ..Default::default()
        });
        reg.node = node.to_string();
        reg.seq = reg.seq.saturating_add(1);
        reg.time_ms = now_ms;
        reg.results.insert(command.to_string(), result);
        reg.retain(now_ms, Some(command));
        reg
    }

    /// Drops what retention does not keep: results dated more than
    /// [`KEEP_MS`] before `now_ms`, then the oldest beyond
    /// [`MAX_RESULTS`], then the oldest until the register's bytes fit
    /// [`MAX_BYTES`]. `keep` (the result just added) goes last; if it
    /// alone is too large its output is cut to a tail that fits.
    pub fn retain(&mut self, now_ms: i64, keep: Option<&str>) {
        let horizon = now_ms.saturating_sub(KEEP_MS);
        self.results
            .retain(|id, r| r.at_ms >= horizon || Some(id.as_str()) == keep);
        while self.results.len() > MAX_RESULTS || self.encoded_len() > MAX_BYTES {
            let oldest = self
                .results
                .iter()
                .filter(|(id, _)| Some(id.as_str()) != keep)
                .min_by(|a, b| a.1.at_ms.cmp(&b.1.at_ms).then_with(|| a.0.cmp(b.0)))
                .map(|(id, _)| id.clone());
            match oldest {
                Some(id) => {
                    self.results.remove(&id);
                }
                None => {
                    // Only the new result is left and it is too large.
                    for r in self.results.values_mut() {
                        let cut = r.output.len().saturating_sub(MAX_BYTES / 8);
                        let start = (cut..=r.output.len())
                            .find(|i| r.output.is_char_boundary(*i))
                            .unwrap_or(r.output.len());
                        r.output = r.output[start..].to_string();
                    }
                    break;
                }
            }
        }
    }

    fn encoded_len(&self) -> usize {
        serde_json::to_vec(self).map_or(usize::MAX, |b| b.len())
    }
}

/// A results register as its node signed it: its bytes (the JSON
/// [`SignedResults::sign`] writes) and the node key's signature under
/// [`DOMAIN`]. Relays pass these bytes on, never a re-encoding.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SignedResults {
    pub bytes: Vec<u8>,
    pub sig: Vec<u8>,
}

impl SignedResults {
    /// `reg` signed by `id`, the key bound to its node (the daemon's).
    pub fn sign(reg: &ResultsRegister, id: &Identity) -> Result<SignedResults> {
        let bytes = serde_json::to_vec(reg).map_err(|e| {
            StoreError::Invalid(format!(
                "the results register of node '{}' could not be encoded: {e}",
                reg.node
            ))
        })?;
        let sig = id.sign_bytes(DOMAIN, &bytes).to_vec();
        Ok(SignedResults { bytes, sig })
    }

    /// The register these bytes hold.
    pub fn decode(&self) -> std::result::Result<ResultsRegister, Refusal> {
        serde_json::from_slice(&self.bytes)
            .map_err(|e| Refusal::Undecodable(format!("not a results register: {e}")))
    }

    /// Whether the signature is `key`'s over the bytes.
    pub fn signed_by(&self, key: &MemberKey) -> bool {
        sign::verify_bytes(key, DOMAIN, &self.bytes, &self.sig)
    }
}

/// A register as stored by this replica.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredResults {
    pub reg: ResultsRegister,
    /// When this replica stored it (its own clock).
    pub received_ms: i64,
    /// Replica-wide write counter of the table; poll with [`load_since`].
    pub ver: i64,
}

/// What a register must be for any replica to hold it: its count and size
/// within retention's bounds, command ids of a sane length, a storable
/// seq. Retention by age is the writer's, not checked here (clocks differ).
fn validate(reg: &ResultsRegister, len: usize) -> std::result::Result<(), String> {
    let node = &reg.node;
    if reg.results.len() > MAX_RESULTS {
        return Err(format!(
            "the results register of node '{node}' holds {} results, over the limit of {MAX_RESULTS}",
            reg.results.len()
        ));
    }
    if len > MAX_BYTES {
        return Err(format!(
            "the results register of node '{node}' is {len} bytes, over the limit of {MAX_BYTES}"
        ));
    }
    if let Some(id) = reg
        .results
        .keys()
        .find(|id| id.is_empty() || id.len() > MAX_COMMAND_ID || id.chars().any(char::is_control))
    {
        let shown: String = id.chars().take(40).collect();
        return Err(format!(
            "the results register of node '{node}' names command '{shown}': expected 1 to {MAX_COMMAND_ID} printable characters"
        ));
    }
    if i64::try_from(reg.seq).is_err() {
        return Err(format!(
            "the results register of node '{node}' has seq {}, beyond the largest storable ({})",
            reg.seq,
            i64::MAX
        ));
    }
    Ok(())
}

/// The merge order on signed bytes: higher seq wins; on equal seq the
/// greater bytes win; equal bytes are the same register.
pub fn supersedes_encoded(new_seq: u64, new: &[u8], old_seq: u64, old: &[u8]) -> bool {
    match new_seq.cmp(&old_seq) {
        std::cmp::Ordering::Greater => true,
        std::cmp::Ordering::Less => false,
        std::cmp::Ordering::Equal => new > old,
    }
}

/// The register held of a node, as [`write`] reads it.
struct Held {
    seq: u64,
    bytes: Vec<u8>,
    sig: Vec<u8>,
    received_ms: i64,
}

enum Verdict {
    Store,
    Keep,
    Refuse(Refusal),
}

fn last_writer_wins(seq: u64, bytes: &[u8], held: Option<&Held>) -> Verdict {
    match held {
        Some(h) if !supersedes_encoded(seq, bytes, h.seq, &h.bytes) => Verdict::Keep,
        _ => Verdict::Store,
    }
}

/// Stores a register this replica's own daemon made and signed, if it
/// supersedes the held one. Not checked beyond its bounds: what the daemon
/// says of itself is believed here. Returns whether it was stored.
pub fn record_signed(
    conn: &Connection,
    reg: &ResultsRegister,
    signed: &SignedResults,
    received_ms: i64,
) -> Result<bool> {
    validate(reg, signed.bytes.len()).map_err(StoreError::Invalid)?;
    let verdict = write(conn, reg, signed, received_ms, |held| {
        last_writer_wins(reg.seq, &signed.bytes, held)
    })?;
    Ok(matches!(verdict, Verdict::Store))
}

/// Offers `signed` (whose bytes decode to `reg`), a register for a node
/// bound to `key`, from anywhere but this replica's own daemon: stored only
/// when it is within bounds, signed by `key`, its seq is plausible
/// (`health::plausible_seq`, from the held register and `now_ms`) and it
/// supersedes the held one. A held register `key` did not sign counts as
/// none. Errors only for the database.
pub fn admit(
    conn: &Connection,
    signed: &SignedResults,
    reg: &ResultsRegister,
    key: &MemberKey,
    received_ms: i64,
    now_ms: i64,
) -> Result<Admission> {
    let refused = |why| Admission::Refused {
        node: reg.node.clone(),
        why,
    };
    if let Err(e) = validate(reg, signed.bytes.len()) {
        return Ok(refused(Refusal::Invalid(e)));
    }
    if signed.sig.is_empty() {
        return Ok(refused(Refusal::Unsigned));
    }
    if !signed.signed_by(key) {
        return Ok(refused(Refusal::WrongKey {
            key: key.to_string(),
        }));
    }
    let verdict = write(conn, reg, signed, received_ms, |held| {
        let held = held.filter(|h| sign::verify_bytes(key, DOMAIN, &h.bytes, &h.sig));
        if let Err(why) = plausible_seq(reg.seq, held.map(|h| (h.seq, h.received_ms)), now_ms) {
            return Verdict::Refuse(why);
        }
        last_writer_wins(reg.seq, &signed.bytes, held)
    })?;
    Ok(match verdict {
        Verdict::Store => Admission::Stored,
        Verdict::Keep => Admission::Kept,
        Verdict::Refuse(why) => refused(why),
    })
}

/// Reads the node's held register and, when `judge` says so, stores the
/// new one with the next `ver`, in one transaction (a savepoint inside the
/// caller's).
fn write(
    conn: &Connection,
    reg: &ResultsRegister,
    signed: &SignedResults,
    received_ms: i64,
    judge: impl FnOnce(Option<&Held>) -> Verdict,
) -> Result<Verdict> {
    let seq = i64::try_from(reg.seq).map_err(|_| {
        StoreError::Invalid(format!(
            "the results register of node '{}' has an out-of-range seq",
            reg.node
        ))
    })?;
    let scope = WriteScope::begin(conn)?;
    let held: Option<Held> = conn
        .query_row(
            "SELECT payload, sig, received_ms FROM results WHERE node = ?1",
            params![reg.node],
            |row| {
                let bytes = match row.get_ref(0)? {
                    ValueRef::Text(b) | ValueRef::Blob(b) => b.to_vec(),
                    _ => return Ok(None),
                };
                // The payload is the authority on the seq; one that does
                // not decode (or names another node) is replaced.
                let Ok(held) = serde_json::from_slice::<ResultsRegister>(&bytes) else {
                    return Ok(None);
                };
                if held.node != reg.node {
                    return Ok(None);
                }
                let sig = match row.get_ref(1)? {
                    ValueRef::Blob(b) => b.to_vec(),
                    _ => Vec::new(),
                };
                let Ok(received_ms) = row.get_ref(2)?.as_i64() else {
                    return Ok(None);
                };
                Ok(Some(Held {
                    seq: held.seq,
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
        return Ok(verdict);
    }
    conn.execute(
        "INSERT INTO results (node, seq, received_ms, ver, payload, sig)
         VALUES (?1, ?2, ?3, (SELECT COALESCE(MAX(ver), 0) + 1 FROM results), ?4, ?5)
         ON CONFLICT(node) DO UPDATE SET
            seq = excluded.seq,
            received_ms = excluded.received_ms,
            ver = excluded.ver,
            payload = excluded.payload,
            sig = excluded.sig",
        params![reg.node, seq, received_ms, signed.bytes, signed.sig],
    )?;
    scope.commit()?;
    Ok(Verdict::Store)
}

/// The register held of `node` as its node signed it, to pass on.
pub fn signed(conn: &Connection, node: &str) -> Result<Option<SignedResults>> {
    if !has_table(conn)? {
        return Ok(None);
    }
    let row: Option<Option<SignedResults>> = conn
        .query_row(
            "SELECT payload, sig FROM results WHERE node = ?1",
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
                Ok(Some(SignedResults { bytes, sig }))
            },
        )
        .optional()?;
    Ok(row.flatten())
}

/// Whether the table exists: a replica opened read-only that was last
/// written by a fleetdeck from before schema 7 has none (and no registers).
fn has_table(conn: &Connection) -> Result<bool> {
    Ok(conn.query_row(
        "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'results'",
        [],
        |r| r.get(0),
    )?)
}

fn text_lossy(v: ValueRef<'_>) -> String {
    match v {
        ValueRef::Text(b) | ValueRef::Blob(b) => String::from_utf8_lossy(b).into_owned(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(r) => r.to_string(),
        ValueRef::Null => String::from("(null)"),
    }
}

/// Registers written after `ver`, ordered by `ver`, and the node ids of
/// rows that could not be read (a payload that does not decode or names
/// another node, a non-integer column): skipped, for the caller to name.
/// Rows are not re-verified here: every row was checked when it was
/// admitted, and one edited on disk is only ever shown, never relayed as
/// valid (a peer checks the signature of what it is sent).
pub fn load_since(conn: &Connection, ver: i64) -> Result<(Vec<StoredResults>, Vec<String>)> {
    if !has_table(conn)? {
        return Ok((Vec::new(), Vec::new()));
    }
    let mut stmt = conn.prepare(
        "SELECT node, received_ms, ver, payload FROM results WHERE ver > ?1 ORDER BY ver",
    )?;
    let mut rows = stmt.query(params![ver])?;
    let mut good = Vec::new();
    let mut bad = Vec::new();
    while let Some(row) = rows.next()? {
        let node = text_lossy(row.get_ref(0)?);
        let received = row.get_ref(1)?.as_i64().ok();
        let ver = row.get_ref(2)?.as_i64().ok();
        let reg = match row.get_ref(3)? {
            ValueRef::Text(b) | ValueRef::Blob(b) => {
                serde_json::from_slice::<ResultsRegister>(b).ok()
            }
            _ => None,
        };
        match (reg, received, ver) {
            (Some(reg), Some(received_ms), Some(ver)) if reg.node == node => {
                good.push(StoredResults {
                    reg,
                    received_ms,
                    ver,
                })
            }
            _ => bad.push(node),
        }
    }
    Ok((good, bad))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(SCHEMA_SQL).unwrap();
        conn
    }

    fn result(at_ms: i64, output: &str) -> CommandResult {
        CommandResult {
            exit_code: Some(0),
            ok: true,
            output: output.into(),
            at_ms,
        }
    }

    const DAY: i64 = 24 * 60 * 60 * 1000;

    #[test]
    fn a_new_result_bumps_the_seq_and_keeps_the_earlier_ones() {
        let a = ResultsRegister::with_result(None, "n1", "c1", result(1_000, "a"), 1_000);
        assert_eq!((a.seq, a.results.len()), (1, 1));
        let b = ResultsRegister::with_result(Some(&a), "n1", "c2", result(2_000, "b"), 2_000);
        assert_eq!(b.seq, 2);
        assert_eq!(
            b.results.keys().cloned().collect::<Vec<_>>(),
            vec!["c1".to_string(), "c2".to_string()]
        );
        assert_eq!(b.time_ms, 2_000);
    }

    #[test]
    fn retention_drops_old_results_then_the_oldest_beyond_the_count_and_size() {
        let now = 30 * DAY;
        let mut reg = ResultsRegister::with_result(
            None,
            "n1",
            "old",
            result(now - 8 * DAY, ""),
            now - 8 * DAY,
        );
        reg = ResultsRegister::with_result(
            Some(&reg),
            "n1",
            "recent",
            result(now - DAY, ""),
            now - DAY,
        );
        reg = ResultsRegister::with_result(Some(&reg), "n1", "new", result(now, ""), now);
        assert!(!reg.results.contains_key("old"), "older than 7 days");
        assert!(reg.results.contains_key("recent") && reg.results.contains_key("new"));

        let mut reg = ResultsRegister::default();
        for i in 0..(MAX_RESULTS + 10) {
            reg = ResultsRegister::with_result(
                Some(&reg),
                "n1",
                &format!("c{i:03}"),
                result(now + i as i64, ""),
                now + i as i64,
            );
        }
        assert_eq!(reg.results.len(), MAX_RESULTS);
        assert!(!reg.results.contains_key("c000") && reg.results.contains_key("c073"));

        let mut reg = ResultsRegister::default();
        let big = "x".repeat(8 * 1024);
        for i in 0..40 {
            reg = ResultsRegister::with_result(
                Some(&reg),
                "n1",
                &format!("c{i:03}"),
                result(now + i, &big),
                now + i,
            );
        }
        let len = serde_json::to_vec(&reg).unwrap().len();
        assert!(len <= MAX_BYTES, "{len}");
        assert!(reg.results.contains_key("c039") && !reg.results.contains_key("c000"));

        // A single result too large to fit is cut to its tail.
        let huge = "y".repeat(MAX_BYTES * 2);
        let reg = ResultsRegister::with_result(None, "n1", "c", result(now, &huge), now);
        assert!(serde_json::to_vec(&reg).unwrap().len() <= MAX_BYTES);
        assert!(!reg.results["c"].output.is_empty());
    }

    #[test]
    fn registers_merge_by_seq_and_ties_break_the_same_way_in_either_order() {
        let node = Identity::generate();
        let a = ResultsRegister::with_result(None, "n1", "c1", result(1, "a"), 1);
        let mut b = a.clone();
        b.results.insert("c1".into(), result(1, "b"));
        let sa = SignedResults::sign(&a, &node).unwrap();
        let sb = SignedResults::sign(&b, &node).unwrap();
        let winner = if supersedes_encoded(1, &sa.bytes, 1, &sb.bytes) {
            &a
        } else {
            &b
        };
        for order in [[&sa, &sb], [&sb, &sa]] {
            let conn = db();
            for s in order {
                let reg = s.decode().unwrap();
                admit(&conn, s, &reg, node.key(), 10, 10).unwrap();
            }
            let (all, bad) = load_since(&conn, 0).unwrap();
            assert!(bad.is_empty());
            assert_eq!(&all[0].reg, winner);
        }
        // A newer seq wins, an older one is kept out.
        let conn = db();
        let c = ResultsRegister::with_result(Some(&a), "n1", "c2", result(2, "c"), 2);
        let sc = SignedResults::sign(&c, &node).unwrap();
        assert_eq!(
            admit(&conn, &sc, &c, node.key(), 10, 10).unwrap(),
            Admission::Stored
        );
        assert_eq!(
            admit(&conn, &sa, &a, node.key(), 10, 10).unwrap(),
            Admission::Kept
        );
        assert_eq!(load_since(&conn, 0).unwrap().0[0].reg, c);
    }

    #[test]
    fn admission_refuses_another_key_a_forged_signature_and_a_seq_jump() {
        let conn = db();
        let node = Identity::generate();
        let other = Identity::generate();
        let reg = ResultsRegister::with_result(None, "n1", "c1", result(1, "ok"), 1);
        // Signed by another node's key (a node planting results for n1).
        let by_other = SignedResults::sign(&reg, &other).unwrap();
        assert!(matches!(
            admit(&conn, &by_other, &reg, node.key(), 10, 10).unwrap(),
            Admission::Refused {
                why: Refusal::WrongKey { .. },
                ..
            }
        ));
        // Bytes changed after signing (a forged result).
        let mut forged = SignedResults::sign(&reg, &node).unwrap();
        let mut lie = reg.clone();
        lie.results
            .insert("c1".into(), result(1, "all good, trust me"));
        forged.bytes = serde_json::to_vec(&lie).unwrap();
        assert!(matches!(
            admit(&conn, &forged, &lie, node.key(), 10, 10).unwrap(),
            Admission::Refused {
                why: Refusal::WrongKey { .. },
                ..
            }
        ));
        let unsigned = SignedResults {
            bytes: forged.bytes.clone(),
            sig: Vec::new(),
        };
        assert!(matches!(
            admit(&conn, &unsigned, &lie, node.key(), 10, 10).unwrap(),
            Admission::Refused {
                why: Refusal::Unsigned,
                ..
            }
        ));
        assert!(load_since(&conn, 0).unwrap().0.is_empty());
        // A plausible one is stored; a jump far past it is refused.
        let good = SignedResults::sign(&reg, &node).unwrap();
        assert_eq!(
            admit(&conn, &good, &reg, node.key(), 10, 10).unwrap(),
            Admission::Stored
        );
        let mut jump = reg.clone();
        jump.seq = 1 << 39;
        let sj = SignedResults::sign(&jump, &node).unwrap();
        assert!(matches!(
            admit(&conn, &sj, &jump, node.key(), 10, 10).unwrap(),
            Admission::Refused {
                why: Refusal::SeqJump { .. },
                ..
            }
        ));
        // Too many results: refused whatever signs it.
        let mut fat = reg.clone();
        for i in 0..=MAX_RESULTS {
            fat.results.insert(format!("x{i}"), result(1, ""));
        }
        fat.seq = 2;
        let sf = SignedResults::sign(&fat, &node).unwrap();
        assert!(matches!(
            admit(&conn, &sf, &fat, node.key(), 10, 10).unwrap(),
            Admission::Refused {
                why: Refusal::Invalid(_),
                ..
            }
        ));
    }

    #[test]
    fn an_undecodable_row_is_skipped_named_and_replaced_by_the_next_register() {
        let conn = db();
        let node = Identity::generate();
        let reg = ResultsRegister::with_result(None, "good", "c1", result(1, "ok"), 1);
        record_signed(&conn, &reg, &SignedResults::sign(&reg, &node).unwrap(), 1).unwrap();
        conn.execute(
            "INSERT INTO results (node, seq, received_ms, ver, payload, sig)
             VALUES ('bad', 9, 0, 7, x'7b6e6f74', x'00')",
            [],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO results (node, seq, received_ms, ver, payload, sig)
             VALUES ('liar', 9, 'soon', 8, '{}', x'00')",
            [],
        )
        .unwrap();
        let (all, bad) = load_since(&conn, 0).unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(bad, vec!["bad".to_string(), "liar".to_string()]);
        // Even seq 1 replaces the undecodable row.
        let fix = ResultsRegister::with_result(None, "bad", "c1", result(1, "ok"), 1);
        let sf = SignedResults::sign(&fix, &node).unwrap();
        assert_eq!(
            admit(&conn, &sf, &fix, node.key(), 10, 10).unwrap(),
            Admission::Stored
        );
        let (all, bad) = load_since(&conn, 0).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(bad, vec!["liar".to_string()]);
    }

    #[test]
    fn a_connection_without_the_table_reads_as_no_registers() {
        let conn = Connection::open_in_memory().unwrap();
        assert_eq!(load_since(&conn, 0).unwrap(), (Vec::new(), Vec::new()));
        assert_eq!(signed(&conn, "n1").unwrap(), None);
    }
}
