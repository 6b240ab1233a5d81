//! A replica on disk: the data dir with its identity, its SQLite file, the
//! fleet document loaded in memory and the typed state built from it.
//!
//! Several processes may hold one data dir (the CLI, the console, the daemon):
//! each appends its own changes under its own actor, and [`Replica::refresh`]
//! picks up what the others wrote. `refresh` costs one `PRAGMA data_version`
//! when nothing changed, so holders call it every 250 ms or so (that is how a
//! write by the CLI reaches an open console within a second).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use automerge::{ActorId, AutoCommit, Change, ChangeHash};

use crate::alerts::{self, Alert, FleetSummary, NodeInput, SiteInput, SiteState, Thresholds};
use crate::config::{self, Effective};
use crate::db::{Db, Row};
use crate::document::{CommandResult, Conflict, FleetDoc, FleetState, HistoryEntry, Part, Parts};
use crate::error::{Result, StoreError};
use crate::health::{self, HealthRegister, StoredRegister};
use crate::health_log;
use crate::identity::{self, Identity};
use crate::ids::{MemberKey, Role};
use crate::moment::{self, Moment};
use crate::results::{self, ResultsRegister, SignedResults, StoredResults};
use crate::sign::{self, Sig, SigError};

pub const DB_FILE: &str = "replica.db";
pub const IDENTITY_FILE: &str = "identity.key";

/// Changes appended before they are folded into a new snapshot.
pub const DEFAULT_COMPACT_EVERY: i64 = 500;

/// `ms` as RFC 3339 UTC to the second. Times come from nodes' registers
/// too: one before 1970 or past what RFC 3339 can write (year 9999) is
/// written as that limit, never a panic.
pub fn rfc3339(ms: i64) -> String {
    /// 9999-12-31T23:59:59Z.
    const LAST_MS: i64 = 253_402_300_799_000;
    let ms = u64::try_from(ms.clamp(0, LAST_MS)).unwrap_or(0);
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms))
        .to_string()
}

/// Milliseconds since the Unix epoch by this machine's clock.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[derive(Clone, Copy, Debug)]
pub struct OpenOptions {
    pub read_only: bool,
    pub compact_every: i64,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            read_only: false,
            compact_every: DEFAULT_COMPACT_EVERY,
        }
    }
}

pub struct Replica {
    dir: PathBuf,
    db: Db,
    doc: FleetDoc,
    identity: Identity,
    state: Arc<FleetState>,
    opts: OpenOptions,
    /// Heads of everything known to be in the database.
    persisted: Vec<ChangeHash>,
    last_row: i64,
    snapshot_gen: i64,
    data_version: i64,
    health: HashMap<String, StoredRegister>,
    health_ver: i64,
    /// Every node's command results register held here (`results`), by
    /// node id; their results are also in `state.command_results`, over
    /// what the document holds.
    results: HashMap<String, StoredResults>,
    results_ver: i64,
    /// Parts of the typed state a failed rebuild left unread: re-read by
    /// the next rebuild, whatever that one's changes touch.
    unread: Parts,
    /// Problems met while loading (skipped health rows and the like).
    warnings: Vec<String>,
    /// The signature of every change this replica holds (and of changes
    /// about to be stored).
    sigs: HashMap<ChangeHash, Sig>,
    /// Rows up to this id were stored before changes were signed (a replica
    /// made by an older fleetdeck): they are not checked, and this replica's
    /// history cannot be sent to a replica that checks.
    unsigned_upto: Option<i64>,
    /// The highest sequence number held per actor: a second change with an
    /// (actor, seq) already held is an equivocation.
    max_seq: HashMap<ActorId, u64>,
}

/// A change with the signature of its author (see [`crate::sign`]); `None`
/// for a change stored before changes were signed.
#[derive(Clone, Debug)]
pub struct SignedChange {
    pub change: Change,
    pub sig: Option<Sig>,
}

impl SignedChange {
    /// Checks the signature against the key the change's actor id names.
    pub fn verify(&self) -> std::result::Result<(), SigError> {
        sign::verify(&self.change, self.sig.as_ref())
    }
}

fn decode_changes(path: &Path, rows: Vec<(i64, Vec<u8>)>) -> Result<Vec<Change>> {
    rows.into_iter()
        .map(|(id, bytes)| {
            Change::from_bytes(bytes).map_err(|e| StoreError::Corrupt {
                path: path.to_path_buf(),
                detail: format!("stored change #{id} does not decode: {e}"),
            })
        })
        .collect()
}

/// A stored row that failed its check, and why.
struct BadRow {
    row: Row,
    author: Option<String>,
    reason: String,
}

/// Checks change rows read back from disk: each must decode, hash to the
/// hash stored beside it and carry a valid signature by its author (rows up
/// to `unsigned_upto` predate signatures). Returns the good changes and
/// the bad rows.
fn check_rows(
    rows: Vec<Row>,
    sigs: &HashMap<ChangeHash, Sig>,
    unsigned_upto: Option<i64>,
) -> (Vec<(i64, Change)>, Vec<BadRow>) {
    let mut good = Vec::with_capacity(rows.len());
    let mut bad = Vec::new();
    for row in rows {
        if let Err(reason) = crate::rights::inflates_within_limit(&row.data) {
            bad.push(BadRow {
                row,
                author: None,
                reason,
            });
            continue;
        }
        let change = match Change::from_bytes(row.data.clone()) {
            Ok(c) => c,
            Err(e) => {
                bad.push(BadRow {
                    row,
                    author: None,
                    reason: format!("does not decode: {e}"),
                });
                continue;
            }
        };
        let author = sign::author_key(change.actor_id()).map(|k| k.to_string());
        if change.hash().0[..] != row.hash[..] {
            let reason = format!(
                "hashes to {} but was stored as {} (altered on disk)",
                change.hash(),
                hex::encode(&row.hash)
            );
            bad.push(BadRow {
                row,
                author,
                reason,
            });
            continue;
        }
        let legacy = unsigned_upto.is_some_and(|upto| row.id <= upto);
        if !legacy && let Err(e) = sign::verify(&change, sigs.get(&change.hash())) {
            bad.push(BadRow {
                row,
                author,
                reason: e.to_string(),
            });
            continue;
        }
        good.push((row.id, change));
    }
    (good, bad)
}

/// Applies checked rows' changes; when automerge refuses the batch (two
/// changes with one (actor, seq): an equivocation), applies them one by one
/// and returns the rows refused with why.
fn apply_checked(am: &mut AutoCommit, changes: Vec<(i64, Change)>) -> Vec<BadRow> {
    if am
        .apply_changes(changes.iter().map(|(_, c)| c.clone()))
        .is_ok()
    {
        return Vec::new();
    }
    let mut refused = Vec::new();
    for (id, c) in changes {
        if am.get_change_by_hash(&c.hash()).is_some() {
            continue;
        }
        if let Err(e) = am.apply_changes([c.clone()]) {
            refused.push(BadRow {
                author: sign::author_key(c.actor_id()).map(|k| k.to_string()),
                reason: format!(
                    "does not apply ({e}): a second change for one (actor, seq), so its author equivocated"
                ),
                row: Row {
                    id,
                    hash: c.hash().0.to_vec(),
                    data: c.raw_bytes().to_vec(),
                },
            });
        }
    }
    refused
}

/// Moves bad rows aside (not when read-only: then they are only skipped)
/// and says so in `warnings`.
fn set_aside(db: &Db, bad: Vec<BadRow>, read_only: bool, warnings: &mut Vec<String>) -> Result<()> {
    for b in bad {
        let who = b
            .author
            .as_deref()
            .map_or(String::new(), |a| format!(" by {}", &a[..a.len().min(16)]));
        warnings.push(format!(
            "stored change #{}{who} {}; it was {} (see `fleetdeck doctor`)",
            b.row.id,
            b.reason,
            if read_only {
                "skipped"
            } else {
                "moved to the quarantine"
            }
        ));
        if !read_only {
            db.quarantine(&b.row, b.author.as_deref(), &b.reason, now_ms())?;
        }
    }
    Ok(())
}

/// The highest seq per actor in `am`.
fn max_seqs(am: &mut AutoCommit) -> HashMap<ActorId, u64> {
    let mut out: HashMap<ActorId, u64> = HashMap::new();
    for m in am.get_changes_meta(&[]) {
        let e = out.entry(m.actor.into_owned()).or_default();
        *e = (*e).max(m.seq);
    }
    out
}

impl Replica {
    /// Starts a new fleet in `dir`: an identity (kept if one is already
    /// there), and a database holding the genesis change. Refuses to touch an
    /// existing replica.
    pub fn init(dir: &Path, member_name: &str, fleet_name: &str) -> Result<Replica> {
        let db_path = dir.join(DB_FILE);
        if db_path.exists() {
            return Err(StoreError::ReplicaExists(dir.to_path_buf()));
        }
        if fleet_name.trim().is_empty() || fleet_name.len() > 128 {
            return Err(StoreError::Invalid(format!(
                "fleet name '{fleet_name}' is not valid: expected 1 to 128 characters"
            )));
        }
        create_dir(dir)?;
        let identity = load_or_create_identity(dir)?;
        let fleet_id = identity::random_hex::<16>();
        let now = now_ms();
        let mut doc = FleetDoc::genesis(
            identity.new_actor(),
            &fleet_id,
            fleet_name,
            identity.key(),
            member_name,
            now,
        )?;
        let changes: Vec<SignedChange> = doc
            .automerge_mut()
            .get_changes(&[])
            .into_iter()
            .map(|change| {
                let sig = Some(identity.sign_change(&change.hash()));
                SignedChange { change, sig }
            })
            .collect();
        write_new_db(dir, &fleet_id, &changes)?;
        Replica::open(dir)
    }

    /// A new replica of an existing fleet in `dir` from that fleet's changes
    /// (what `join` receives, or a bundle): its own identity, the same
    /// document. The changes must hold the fleet's genesis.
    pub fn init_from_changes(dir: &Path, changes: Vec<SignedChange>) -> Result<Replica> {
        let db_path = dir.join(DB_FILE);
        if db_path.exists() {
            return Err(StoreError::ReplicaExists(dir.to_path_buf()));
        }
        for c in &changes {
            c.verify()
                .map_err(|e| StoreError::Invalid(format!("refused: {e}")))?;
        }
        let roots = changes
            .iter()
            .filter(|c| c.change.deps().is_empty())
            .count();
        if roots != 1 {
            return Err(StoreError::Invalid(format!(
                "the changes received hold {roots} fleet geneses (changes with no dependencies); a fleet has exactly one"
            )));
        }
        let mut am = AutoCommit::new();
        am.apply_changes(changes.iter().map(|c| c.change.clone()))?;
        let doc = FleetDoc::from_automerge(am).map_err(|e| {
            StoreError::Invalid(format!("the changes received are not a whole fleet: {e}"))
        })?;
        let fleet_id = doc.fleet_id();
        create_dir(dir)?;
        load_or_create_identity(dir)?;
        write_new_db(dir, &fleet_id, &changes)?;
        Replica::open(dir)
    }

    pub fn open(dir: &Path) -> Result<Replica> {
        Self::open_with(dir, OpenOptions::default())
    }

    pub fn open_with(dir: &Path, opts: OpenOptions) -> Result<Replica> {
        let db_path = dir.join(DB_FILE);
        if !db_path.exists() {
            return Err(StoreError::NoReplica(dir.to_path_buf()));
        }
        let identity = Identity::load(&dir.join(IDENTITY_FILE))?;
        let db = Db::open(&db_path, opts.read_only)?;
        let data_version = db.data_version()?;
        let (mut am, snapshot_gen, mut last_row) = match db.snapshot()? {
            Some(s) => {
                let am = AutoCommit::load(&s.data).map_err(|e| StoreError::Corrupt {
                    path: db_path.clone(),
                    detail: format!("the document snapshot does not load: {e}"),
                })?;
                (am, s.generation, s.upto)
            }
            None => (AutoCommit::new(), 0, 0),
        };
        let unsigned_upto = db
            .meta("unsigned_upto")?
            .and_then(|v| v.parse::<i64>().ok());
        let rows = db.rows_since(last_row)?;
        if let Some(row) = rows.last() {
            last_row = row.id;
        }
        // The signatures after the rows: another process (the CLI beside a
        // running `serve`) writes a change and its signature in one
        // transaction, so every row read above has its signature in what
        // is read now. Read the other way round, a change committed in
        // between came without its signature, was judged unsigned and
        // moved to the quarantine: a local edit lost (tests/nat.rs found
        // it, a laptop's first edit made as its `serve` started).
        let sigs: HashMap<ChangeHash, Sig> = db
            .signatures()?
            .into_iter()
            .map(|(h, s)| (ChangeHash(h), s))
            .collect();
        let mut warnings = Vec::new();
        let (good, mut bad) = check_rows(rows, &sigs, unsigned_upto);
        bad.extend(apply_checked(&mut am, good));
        set_aside(&db, bad, opts.read_only, &mut warnings)?;
        am.set_actor(identity.new_actor());
        let persisted = am.get_heads();
        let mut doc = FleetDoc::from_automerge(am).map_err(|e| StoreError::Corrupt {
            path: db_path.clone(),
            detail: e.to_string(),
        })?;
        doc.track_changes();
        let state = doc.state()?;
        if let Some(id) = db.meta("fleet_id")?
            && state.fleet_id != id
        {
            return Err(StoreError::Corrupt {
                path: db_path,
                detail: format!(
                    "the document belongs to fleet {} but the database to fleet {id}",
                    state.fleet_id
                ),
            });
        }
        let state = Arc::new(state);
        let max_seq = max_seqs(doc.automerge_mut());
        let mut r = Replica {
            dir: dir.to_path_buf(),
            db,
            doc,
            identity,
            state,
            opts,
            persisted,
            last_row,
            snapshot_gen,
            data_version,
            health: HashMap::new(),
            health_ver: 0,
            results: HashMap::new(),
            results_ver: 0,
            unread: Parts::NONE,
            warnings,
            sigs,
            unsigned_upto,
            max_seq,
        };
        r.load_health(0)?;
        r.load_results(0)?;
        if !r.opts.read_only && r.db.meta(RECORD_SINCE)?.is_none() {
            // Where this replica's record of what it held and heard begins
            // (`--at`): its creation, or its upgrade to schema 6.
            r.db.set_meta_once(RECORD_SINCE, &now_ms().to_string())?;
        }
        Ok(r)
    }

    fn load_health(&mut self, since: i64) -> Result<bool> {
        let (rows, bad) = health::load_since(self.db.conn(), since)?;
        for node in bad {
            self.warnings.push(format!(
                "health register of node {node} is unreadable and was skipped"
            ));
        }
        let changed = !rows.is_empty();
        for row in rows {
            self.health_ver = self.health_ver.max(row.ver);
            self.health.insert(row.reg.node.clone(), row);
        }
        Ok(changed)
    }

    /// Reads the results registers written after `since` (by this process
    /// or another), and lays their results over the state's.
    fn load_results(&mut self, since: i64) -> Result<bool> {
        let (rows, bad) = results::load_since(self.db.conn(), since)?;
        for node in bad {
            self.warnings.push(format!(
                "command results register of node {node} is unreadable and was skipped"
            ));
        }
        if rows.is_empty() {
            return Ok(false);
        }
        let state = Arc::make_mut(&mut self.state);
        for row in rows {
            self.results_ver = self.results_ver.max(row.ver);
            let node = row.reg.node.clone();
            let old = self.results.insert(node.clone(), row);
            // Results retention dropped: what the document holds for them,
            // if anything (a node writes each result in one place only).
            for cmd in old.iter().flat_map(|o| o.reg.results.keys()) {
                if self.results[&node].reg.results.contains_key(cmd) {
                    continue;
                }
                let legacy = self.doc.command_result_in_doc(cmd, &node);
                let per_node = state.command_results.entry(cmd.clone()).or_default();
                match legacy {
                    Some(r) => {
                        per_node.insert(node.clone(), r);
                    }
                    None => {
                        per_node.remove(&node);
                        if per_node.is_empty() {
                            state.command_results.remove(cmd);
                        }
                    }
                }
            }
            for (cmd, r) in &self.results[&node].reg.results {
                state
                    .command_results
                    .entry(cmd.clone())
                    .or_default()
                    .insert(node.clone(), r.clone());
            }
        }
        Ok(true)
    }

    /// Lays every results register's results over those the state read
    /// from the document (after the commands part was re-read).
    fn overlay_results(&mut self) {
        if self.results.is_empty() {
            return;
        }
        let state = Arc::make_mut(&mut self.state);
        for s in self.results.values() {
            for (cmd, r) in &s.reg.results {
                state
                    .command_results
                    .entry(cmd.clone())
                    .or_default()
                    .insert(s.reg.node.clone(), r.clone());
            }
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    pub fn key(&self) -> &MemberKey {
        self.identity.key()
    }

    pub fn is_read_only(&self) -> bool {
        self.opts.read_only
    }

    /// The typed state; cheap to clone and hand to another thread.
    pub fn state(&self) -> &Arc<FleetState> {
        &self.state
    }

    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    pub fn doc_mut(&mut self) -> &mut FleetDoc {
        &mut self.doc
    }

    /// Picks up what other processes wrote to this data dir. Returns true
    /// when the document or the health registers changed.
    pub fn refresh(&mut self) -> Result<bool> {
        let dv = self.db.data_version()?;
        if dv == self.data_version {
            return Ok(false);
        }
        self.data_version = dv;
        let mut doc_changed = false;
        let generation = self.db.snapshot_gen()?;
        if generation != self.snapshot_gen {
            // Another process compacted: the rows we had not read yet may be
            // folded into the new snapshot. Merging it is idempotent.
            if let Some(s) = self.db.snapshot()? {
                self.doc
                    .automerge_mut()
                    .load_incremental(&s.data)
                    .map_err(|e| StoreError::Corrupt {
                        path: self.db.path().to_path_buf(),
                        detail: format!("the document snapshot does not load: {e}"),
                    })?;
                self.snapshot_gen = s.generation;
                self.last_row = self.last_row.max(s.upto);
                doc_changed = true;
            }
        }
        let rows = self.db.rows_since(self.last_row)?;
        if let Some(row) = rows.last() {
            self.last_row = row.id;
            let hashes: Vec<[u8; 32]> = rows
                .iter()
                .filter_map(|r| <[u8; 32]>::try_from(&r.hash[..]).ok())
                .collect();
            for (h, sig) in self.db.signatures_of(&hashes)? {
                self.sigs.insert(ChangeHash(h), sig);
            }
            let (good, mut bad) = check_rows(rows, &self.sigs, self.unsigned_upto);
            for (_, c) in &good {
                self.note_seq(c);
            }
            bad.extend(apply_checked(self.doc.automerge_mut(), good));
            set_aside(&self.db, bad, self.opts.read_only, &mut self.warnings)?;
            doc_changed = true;
        }
        if doc_changed {
            self.rebuild()?;
        }
        let health_changed = self.load_health(self.health_ver)?;
        let results_changed = self.load_results(self.results_ver)?;
        Ok(doc_changed || health_changed || results_changed)
    }

    /// Brings the typed state up to date with the document, re-reading only
    /// the parts that changed: a config edit does not re-read 10,000 node
    /// records. The state is copied first only if someone still holds the
    /// previous one.
    fn rebuild(&mut self) -> Result<()> {
        let parts = self.doc.changed_parts() | std::mem::take(&mut self.unread);
        if parts.is_empty() {
            return Ok(());
        }
        let state = Arc::make_mut(&mut self.state);
        if self.doc.read_parts(state, parts).is_err() {
            // A part that no longer reads: read the whole state again, and
            // if that fails too, every part is re-read next time rather
            // than left as half-updated as this attempt leaves it.
            match self.doc.state() {
                Ok(full) => self.state = Arc::new(full),
                Err(e) => {
                    self.unread = Parts::ALL;
                    return Err(e);
                }
            }
            self.overlay_results();
        } else if parts.contains(Part::Commands) {
            self.overlay_results();
        }
        Ok(())
    }

    /// Writes every change not yet in the database, durably.
    fn persist(&mut self) -> Result<()> {
        let changes = self.doc.automerge_mut().get_changes(&self.persisted);
        if changes.is_empty() {
            return Ok(());
        }
        let mut rows: Vec<([u8; 32], &[u8], Sig)> = Vec::with_capacity(changes.len());
        for c in &changes {
            let hash = c.hash();
            let sig = match self.sigs.get(&hash) {
                Some(sig) => *sig,
                None if sign::author_key(c.actor_id()).as_ref() == Some(self.identity.key()) => {
                    let sig = self.identity.sign_change(&hash);
                    self.sigs.insert(hash, sig);
                    sig
                }
                None => {
                    return Err(StoreError::Invalid(format!(
                        "change {hash} came without its author's signature; it is not stored"
                    )));
                }
            };
            rows.push((hash.0, c.raw_bytes(), sig));
        }
        let heads = self.doc.heads();
        self.db
            .append_changes(&rows, (now_ms(), HEADS_LOG_KEEP_MS))?;
        for c in &changes {
            self.note_seq(c);
        }
        self.persisted = heads;
        Ok(())
    }

    /// The heads this replica held at `at_ms`: what `--at TIME` reads the
    /// document at: every change held now but those that arrived after it
    /// (`arrivals`), or, before that record began, what `heads_log` says.
    /// Refused before any record and past [`HEADS_LOG_KEEP_MS`].
    pub fn heads_at_time(&mut self, at_ms: i64) -> Result<Vec<ChangeHash>> {
        let since = self
            .db
            .meta(RECORD_SINCE)?
            .and_then(|v| v.parse::<i64>().ok());
        let too_old = |first: Option<i64>| {
            StoreError::Invalid(match first {
                Some(f) => format!(
                    "no data that old: this replica's record of what it held begins at {} (it keeps {} days)",
                    rfc3339(f),
                    HEADS_LOG_KEEP_MS / 86_400_000
                ),
                None => "no data that old: this replica keeps no record of what it held before its upgrade to this version".into(),
            })
        };
        if since.is_none_or(|s| at_ms < s) {
            return match self.db.legacy_heads_at(at_ms)? {
                Some(h) => Ok(h.into_iter().map(ChangeHash).collect()),
                None => Err(too_old(since)),
            };
        }
        let kept_from = now_ms().saturating_sub(HEADS_LOG_KEEP_MS);
        if at_ms < kept_from {
            return Err(too_old(Some(kept_from)));
        }
        let late: std::collections::HashSet<ChangeHash> = self
            .db
            .arrived_after(at_ms)?
            .into_iter()
            .map(ChangeHash)
            .collect();
        let mut held = std::collections::HashSet::new();
        let mut depended = std::collections::HashSet::new();
        for m in self.doc.automerge_mut().get_changes_meta(&[]) {
            if late.contains(&m.hash) {
                continue;
            }
            held.insert(m.hash);
            depended.extend(m.deps.iter().copied());
        }
        let mut heads: Vec<ChangeHash> = held.difference(&depended).copied().collect();
        heads.sort_unstable();
        if heads.is_empty() {
            return Err(too_old(since));
        }
        Ok(heads)
    }

    /// Makes a change: `edit` gets the document and the current state; if it
    /// fails nothing is written. On success the change is on disk before this
    /// returns. Returns the edit's result and the new change id (None when
    /// the edit changed nothing).
    pub fn change<T>(
        &mut self,
        message: &str,
        edit: impl FnOnce(&mut FleetDoc, &FleetState) -> Result<T>,
    ) -> Result<(T, Option<ChangeHash>)> {
        self.change_at(message, now_ms(), edit)
    }

    /// [`Replica::change`] with the change's time given (an operation
    /// judged at one instant is dated by that instant).
    pub fn change_at<T>(
        &mut self,
        message: &str,
        at_ms: i64,
        edit: impl FnOnce(&mut FleetDoc, &FleetState) -> Result<T>,
    ) -> Result<(T, Option<ChangeHash>)> {
        self.write(message, at_ms, edit, true)
    }

    /// Test support (feature `forge`, never enabled in the shipped binary):
    /// writes a change as [`Replica::change`] does but without judging it
    /// first, as a device running changed software would. For tests of
    /// what every other replica does with such a change.
    #[cfg(feature = "forge")]
    pub fn forge<T>(
        &mut self,
        message: &str,
        edit: impl FnOnce(&mut FleetDoc, &FleetState) -> Result<T>,
    ) -> Result<(T, Option<ChangeHash>)> {
        self.write(message, now_ms(), edit, false)
    }

    fn write<T>(
        &mut self,
        message: &str,
        at_ms: i64,
        edit: impl FnOnce(&mut FleetDoc, &FleetState) -> Result<T>,
        judge: bool,
    ) -> Result<(T, Option<ChangeHash>)> {
        if self.opts.read_only {
            return Err(StoreError::ReadOnly);
        }
        self.refresh()?;
        let state = self.state.clone();
        let out = match edit(&mut self.doc, &state) {
            Ok(v) => v,
            Err(e) => {
                self.doc.rollback();
                return Err(e);
            }
        };
        // Let `rebuild` update the state in place rather than copy it.
        drop(state);
        let hash = self.doc.commit(message, at_ms);
        if let Some(h) = hash
            && judge
            && let Err(why) = self.judge_own(&h)
        {
            // Never keep a change every peer would refuse (too large, or a
            // write the author's role does not allow that the operation's
            // own checks missed): later changes would depend on it and be
            // refused too. It was not persisted: reload without it.
            let (dir, opts) = (self.dir.clone(), self.opts);
            *self = Replica::open_with(&dir, opts)?;
            return Err(StoreError::Denied(format!(
                "not written, since every peer would refuse it: {why}"
            )));
        }
        if hash.is_some() {
            self.persist()?;
            self.rebuild()?;
            self.maybe_compact()?;
        }
        Ok((out, hash))
    }

    /// Judges a change made here as every peer will ([`rights::judge`]:
    /// size, ops, values, and the author's right to every op). A genesis
    /// (no dependencies) is this replica's own fleet: not judged.
    fn judge_own(&mut self, hash: &ChangeHash) -> std::result::Result<(), String> {
        let doc = self.doc.automerge_mut();
        let Some(change) = doc.get_change_by_hash(hash) else {
            return Ok(());
        };
        if change.deps().is_empty() {
            return Ok(());
        }
        crate::rights::judge(&*doc, &change).map_err(|r| r.rule)
    }

    /// Merges changes that came from elsewhere (a peer, a bundle) and stores
    /// them with their signatures. Every signature is checked here (a
    /// change without its author's valid signature refuses the batch);
    /// who may write what is judged before this, in the sync layer's gate.
    pub fn apply_changes(&mut self, changes: Vec<SignedChange>) -> Result<()> {
        if self.opts.read_only {
            return Err(StoreError::ReadOnly);
        }
        for c in &changes {
            c.verify()
                .map_err(|e| StoreError::Invalid(format!("refused: {e}")))?;
        }
        self.add_signatures(
            changes
                .iter()
                .filter_map(|c| Some((c.change.hash(), c.sig?))),
        );
        self.doc
            .automerge_mut()
            .apply_changes(changes.into_iter().map(|c| c.change))?;
        self.persist()?;
        self.rebuild()?;
        self.maybe_compact()
    }

    /// Takes one change from elsewhere into the document in memory, after
    /// its signature is checked, so that changes judged after it may depend
    /// on it. Nothing is stored until [`Replica::settle`]. A change whose
    /// dependencies are not all held is refused: judge it when they are.
    pub fn take_in(&mut self, c: SignedChange) -> Result<()> {
        if self.opts.read_only {
            return Err(StoreError::ReadOnly);
        }
        c.verify()
            .map_err(|e| StoreError::Invalid(format!("refused: {e}")))?;
        let am = self.doc.automerge_mut();
        if let Some(dep) = c
            .change
            .deps()
            .iter()
            .find(|d| am.document().get_change_meta_by_hash(d).is_none())
        {
            return Err(StoreError::Invalid(format!(
                "change {} depends on {dep}, which this replica does not hold",
                c.change.hash()
            )));
        }
        if let Some(sig) = c.sig {
            self.sigs.insert(c.change.hash(), sig);
        }
        self.note_seq(&c.change);
        self.doc.automerge_mut().apply_changes([c.change])?;
        Ok(())
    }

    /// Stores what [`Replica::take_in`] took, durably, and brings the typed
    /// state up to date.
    pub fn settle(&mut self) -> Result<()> {
        if self.opts.read_only {
            return Err(StoreError::ReadOnly);
        }
        self.persist()?;
        self.rebuild()?;
        self.maybe_compact()
    }

    /// Whether this replica holds the change with `hash`.
    pub fn holds(&mut self, hash: &ChangeHash) -> bool {
        // Metadata only: building the whole change again is far dearer.
        self.doc
            .automerge_mut()
            .document()
            .get_change_meta_by_hash(hash)
            .is_some()
    }

    fn maybe_compact(&mut self) -> Result<()> {
        if self.db.change_rows()? <= self.opts.compact_every {
            return Ok(());
        }
        self.compact()
    }

    /// Folds every stored change into a new snapshot.
    pub fn compact(&mut self) -> Result<()> {
        // Rows other processes wrote are checked (and bad ones set aside)
        // as they are read here, before they are folded in.
        self.refresh()?;
        let path = self.db.path().to_path_buf();
        let doc = &mut self.doc;
        let (generation, upto) = self.db.compact(self.last_row, |rows| {
            let changes = decode_changes(&path, rows)?;
            doc.automerge_mut().apply_changes(changes)?;
            Ok(doc.automerge_mut().save())
        })?;
        self.snapshot_gen = generation;
        self.last_row = upto;
        // Our own compaction moved data_version for nobody but the others.
        self.persisted = self.doc.heads();
        self.rebuild()
    }

    /// A short digest of the document heads: two replicas with the same
    /// digest hold the same changes. 16 bytes whatever the number of heads
    /// (a fleet whose members all wrote at once has one head per member).
    pub fn heads_digest(&mut self) -> [u8; 16] {
        use sha2::{Digest, Sha256};
        let mut heads = self.doc.heads();
        heads.sort();
        let mut h = Sha256::new();
        for head in &heads {
            h.update(head.0);
        }
        let full = h.finalize();
        let mut out = [0u8; 16];
        out.copy_from_slice(&full[..16]);
        out
    }

    pub fn heads(&mut self) -> Vec<ChangeHash> {
        self.doc.heads()
    }

    /// Changes this replica has that are not ancestors of `heads` (all of
    /// them for `&[]`): what a peer at `heads` lacks.
    pub fn changes_after(&mut self, heads: &[ChangeHash]) -> Vec<SignedChange> {
        let changes = self.doc.automerge_mut().get_changes(heads);
        changes
            .into_iter()
            .map(|change| {
                let sig = self.sigs.get(&change.hash()).copied();
                SignedChange { change, sig }
            })
            .collect()
    }

    /// Remembers signatures of changes about to arrive (checked, with the
    /// change, by whoever applies it): a sync message carries them beside
    /// the changes it holds.
    pub fn add_signatures(&mut self, sigs: impl IntoIterator<Item = (ChangeHash, Sig)>) {
        self.sigs.extend(sigs);
    }

    /// The signature of a change this replica holds.
    pub fn signature(&self, hash: &ChangeHash) -> Option<Sig> {
        self.sigs.get(hash).copied()
    }

    /// Whether this replica holds history stored before changes were
    /// signed (made by an older fleetdeck): such history cannot be sent to
    /// a replica that checks signatures.
    pub fn is_unsigned(&self) -> bool {
        self.unsigned_upto.is_some()
    }

    /// When `change` is a second change for an (actor, seq) this replica
    /// already holds, with another hash: its author equivocated.
    pub fn equivocates(&mut self, change: &Change) -> bool {
        let held = self
            .max_seq
            .get(change.actor_id())
            .is_some_and(|&max| change.seq() <= max);
        held && !self.holds(&change.hash())
    }

    fn note_seq(&mut self, c: &Change) {
        let e = self.max_seq.entry(c.actor_id().clone()).or_default();
        *e = (*e).max(c.seq());
    }

    /// Stored rows set aside because they failed their check on load.
    pub fn quarantined(&self) -> Result<Vec<crate::db::Quarantined>> {
        self.db.quarantined()
    }

    // ---- invites -----------------------------------------------------------

    /// Issues a one-time invite secret for `role`, valid for `ttl_ms`.
    pub fn create_invite(&mut self, role: Role, ttl_ms: i64) -> Result<String> {
        if self.opts.read_only {
            return Err(StoreError::ReadOnly);
        }
        if ttl_ms <= 0 {
            return Err(StoreError::Invalid(
                "an invite's lifetime must be positive".into(),
            ));
        }
        let secret = identity::random_hex::<16>();
        let now = now_ms();
        self.db
            .add_invite(&secret, role.as_str(), now, now.saturating_add(ttl_ms))?;
        Ok(secret)
    }

    /// Redeems an invite for the replica `key` named `name`: checks the
    /// secret is one this replica issued, unused and unexpired, marks it used
    /// and enrolls the member with the invite's role. A used or expired
    /// invite is dead for every key, the one that used it included; a
    /// revoked key is refused without using the invite up.
    pub fn redeem_invite(&mut self, secret: &str, key: &MemberKey, name: &str) -> Result<Role> {
        let now = now_ms();
        if self.state.revoked.contains_key(key) {
            return Err(StoreError::Denied(format!(
                "{} was revoked: a revoked key is never enrolled again",
                key.short()
            )));
        }
        let invite = self
            .db
            .redeem_invite(secret, key.as_str(), now)?
            .ok_or_else(|| {
                StoreError::Invalid("the invite token is not one this replica issued".into())
            })?;
        if invite.used_by.is_some() {
            return Err(StoreError::Invalid(
                "the invite token was already used".into(),
            ));
        } else if invite.expires_ms <= now {
            return Err(StoreError::Invalid("the invite token has expired".into()));
        }
        let role = Role::parse(&invite.role)?;
        if self.state.members.get(key).is_none_or(|m| m.role != role) {
            let op = crate::ops::Op::MemberAdd {
                key: key.clone(),
                name: name.to_string(),
                role,
            };
            crate::ops::apply(self, op, now)?;
        }
        Ok(role)
    }

    // ---- rollouts -----------------------------------------------------------

    /// Looks at every running rollout and writes what this replica sees: a
    /// wave that soaked healthy opens the next one; too many failures halt
    /// it. Admin and operator replicas call this (`serve`, the console);
    /// two doing it at once write the same event. A node's daemon calls
    /// [`Replica::halt_failing_rollouts`] instead.
    pub fn advance_rollouts(&mut self, now_ms: i64) -> Result<Vec<crate::rollout::Step>> {
        self.step_rollouts(now_ms, false)
    }

    /// What a node's daemon calls: halts the rollouts past their failure
    /// limit as this replica sees them, and opens no wave (a node writes
    /// halts only: `rights`). Returns the halts written.
    pub fn halt_failing_rollouts(&mut self, now_ms: i64) -> Result<Vec<crate::rollout::Step>> {
        self.step_rollouts(now_ms, true)
    }

    fn step_rollouts(
        &mut self,
        now_ms: i64,
        halts_only: bool,
    ) -> Result<Vec<crate::rollout::Step>> {
        if self.opts.read_only {
            return Ok(Vec::new());
        }
        use crate::rollout::Phase;
        let state = self.state.clone();
        let mut steps: Vec<crate::rollout::Step> = Vec::new();
        for r in &state.rollouts {
            // Nodes are judged by their receipts of their wave's change;
            // rollouts that cannot move are not worked out.
            let moving = match r.phase(&state, &self.health) {
                Phase::Running => true,
                Phase::Done => r.done_at().is_none(),
                _ => false,
            };
            if !moving {
                continue;
            }
            let waves = crate::receipts::rollout_waves(self, r, now_ms);
            let landed = crate::receipts::landed(&waves, &self.health);
            if let Some(step) = r.progress_with(&state, &self.health, Some(&landed), now_ms)
                && (!halts_only || matches!(step, crate::rollout::Step::Halt { .. }))
            {
                steps.push(step);
            }
        }
        for step in &steps {
            match step {
                crate::rollout::Step::OpenWave { rollout, wave } => {
                    // `open/<number of waves>` records that the rollout is
                    // done: there is no wave N+1 to open.
                    let done = self
                        .state
                        .rollouts
                        .iter()
                        .any(|r| &r.id == rollout && *wave >= r.spec.waves.len());
                    let message = if done {
                        format!("rollout {rollout}: done")
                    } else {
                        format!("rollout {rollout}: open wave {}", wave + 1)
                    };
                    self.change(&message, |doc, _| {
                        doc.rollout_event(rollout, &format!("open/{wave}"), now_ms, None)
                    })?;
                }
                crate::rollout::Step::Halt { rollout, reason } => {
                    self.change(&format!("rollout {rollout}: halted: {reason}"), |doc, _| {
                        doc.rollout_event(rollout, "halt", now_ms, Some(reason))
                    })?;
                }
            }
        }
        Ok(steps)
    }

    // ---- config ------------------------------------------------------------

    pub fn effective_node(&self, node: &crate::NodeId) -> Result<Effective> {
        self.state.effective_node(node)
    }

    // ---- health and alerts --------------------------------------------------

    /// Records a register this replica's own daemon just made, if it is
    /// newer than what this replica has: signed with this replica's key
    /// (the key bound to the node it runs), stored with the signature and
    /// relayed with it. Not checked: a register from anywhere else goes
    /// through [`Replica::admit_health`].
    pub fn record_health(&mut self, reg: &HealthRegister) -> Result<bool> {
        self.record_health_aged(reg, 0)
    }

    /// [`Replica::record_health`], as if heard `age_ms` ago.
    pub fn record_health_aged(&mut self, reg: &HealthRegister, age_ms: u64) -> Result<bool> {
        if self.opts.read_only {
            return Err(StoreError::ReadOnly);
        }
        let signed = health::SignedRegister::sign(reg, &self.identity)?;
        let heard = heard_ms(age_ms);
        let stored = health::record_signed(self.db.conn(), reg, &signed, heard)?;
        if stored {
            self.load_health(self.health_ver)?;
        }
        Ok(stored)
    }

    /// Offers a register from a peer (or any source but this replica's own
    /// daemon) that others held for `age_ms` before it arrived (what a
    /// relaying peer says: it was heard that long ago). It is stored only
    /// when its node is in this fleet with a key bound to it, it is signed
    /// by that key, its seq is plausible (`health::plausible_seq`) and it
    /// is newer than what this replica holds; anything else is refused,
    /// and said why. Errors only for the database (or a read-only
    /// replica).
    pub fn admit_health(
        &mut self,
        signed: &health::SignedRegister,
        age_ms: u64,
    ) -> Result<health::Admission> {
        self.admit_health_at(signed, |_| heard_ms(age_ms))
    }

    /// [`Replica::admit_health`] for a register from a bundle carried by
    /// hand: it was sent when the node's clock says, and not after it
    /// arrived here.
    pub fn import_health(&mut self, signed: &health::SignedRegister) -> Result<health::Admission> {
        // Sent when the node's clock says, and not after it arrived here,
        // nor more than a day before (see `heard_ms`).
        self.admit_health_at(signed, |reg| {
            let now = now_ms();
            reg.time_ms
                .clamp(now.saturating_sub(24 * 60 * 60 * 1000), now)
        })
    }

    fn admit_health_at(
        &mut self,
        signed: &health::SignedRegister,
        heard: impl FnOnce(&HealthRegister) -> i64,
    ) -> Result<health::Admission> {
        use health::{Admission, Refusal};
        if self.opts.read_only {
            return Err(StoreError::ReadOnly);
        }
        let reg = match signed.decode() {
            Ok(r) => r,
            Err(why) => {
                return Ok(Admission::Refused {
                    node: "?".into(),
                    why,
                });
            }
        };
        let node = crate::NodeId::parse(&reg.node)
            .ok()
            .and_then(|id| self.state.nodes.get(&id));
        let key = match node {
            None => Err(Refusal::UnknownNode),
            Some(n) => n.key.clone().ok_or(Refusal::Unbound),
        };
        let key = match key {
            Ok(k) => k,
            Err(why) => {
                return Ok(Admission::Refused {
                    node: reg.node,
                    why,
                });
            }
        };
        let heard = heard(&reg);
        let out = health::admit(self.db.conn(), signed, &reg, &key, heard, now_ms())?;
        if out == Admission::Stored {
            self.load_health(self.health_ver)?;
        }
        Ok(out)
    }

    /// The register held of `node` as its node signed it, to pass on to a
    /// peer or a bundle; `None` when none is held or it was stored before
    /// registers were signed (such a register is kept here, never relayed).
    pub fn signed_health(&self, node: &str) -> Result<Option<health::SignedRegister>> {
        health::signed(self.db.conn(), node)
    }

    pub fn health(&self) -> &HashMap<String, StoredRegister> {
        &self.health
    }

    /// Where each node's replica said it listens in its latest heartbeat,
    /// by the member key bound to the node. A node publishes its addresses
    /// there (the document holds at most the ones it first started with),
    /// so this is where a dialer finds a node that moved. Only a replica
    /// that holds the fleet's health ([`crate::Role::holds_fleet_health`]) knows
    /// other nodes' addresses this way.
    pub fn reported_addrs(&self) -> HashMap<MemberKey, Vec<String>> {
        self.state
            .nodes
            .values()
            .filter_map(|n| {
                let key = n.key.as_ref()?;
                let held = self.health.get(n.id.as_str())?;
                (!held.reg.addrs.is_empty()).then(|| (key.clone(), held.reg.addrs.clone()))
            })
            .collect()
    }

    // ---- command results ----------------------------------------------------

    /// Records what command `command` did on `node`, the node this
    /// replica's daemon runs: its results register, with the result added
    /// (seq one up, retention applied: `results::ResultsRegister::with_result`),
    /// signed with this replica's key (the key bound to the node) and
    /// stored; sessions send it on at once. Nothing is written into the
    /// document.
    pub fn record_command_result(
        &mut self,
        node: &crate::NodeId,
        command: &str,
        result: CommandResult,
    ) -> Result<()> {
        if self.opts.read_only {
            return Err(StoreError::ReadOnly);
        }
        // Another process on this data dir may have written since.
        self.load_results(self.results_ver)?;
        let held = self.results.get(node.as_str()).map(|s| &s.reg);
        let reg = ResultsRegister::with_result(held, node.as_str(), command, result, now_ms());
        let signed = SignedResults::sign(&reg, &self.identity)?;
        results::record_signed(self.db.conn(), &reg, &signed, now_ms())?;
        self.load_results(self.results_ver)?;
        Ok(())
    }

    /// Offers a results register from a peer (or anywhere but this
    /// replica's own daemon): stored only when its node is in this fleet
    /// with a key bound to it, it is signed by that key, its seq is
    /// plausible and it is newer than what is held (`results::admit`);
    /// anything else is refused, and said why. Errors only for the database
    /// (or a read-only replica).
    pub fn admit_results(&mut self, signed: &SignedResults) -> Result<health::Admission> {
        let mut out = self.admit_results_batch(std::slice::from_ref(signed))?;
        Ok(out.pop().unwrap_or(health::Admission::Kept))
    }

    /// [`Replica::admit_results`] for many registers, judged one by one
    /// and stored in one transaction (what a session receives at once).
    pub fn admit_results_batch(
        &mut self,
        batch: &[SignedResults],
    ) -> Result<Vec<health::Admission>> {
        use health::{Admission, Refusal};
        if self.opts.read_only {
            return Err(StoreError::ReadOnly);
        }
        let now = now_ms();
        let mut out = Vec::with_capacity(batch.len());
        let conn = self.db.conn();
        let scope = health::WriteScope::begin(conn)?;
        for signed in batch {
            let reg = match signed.decode() {
                Ok(r) => r,
                Err(why) => {
                    out.push(Admission::Refused {
                        node: "?".into(),
                        why,
                    });
                    continue;
                }
            };
            let node = crate::NodeId::parse(&reg.node)
                .ok()
                .and_then(|id| self.state.nodes.get(&id));
            let key = match node {
                None => Err(Refusal::UnknownNode),
                Some(n) => n.key.clone().ok_or(Refusal::Unbound),
            };
            match key {
                Ok(key) => out.push(results::admit(conn, signed, &reg, &key, now, now)?),
                Err(why) => out.push(Admission::Refused {
                    node: reg.node,
                    why,
                }),
            }
        }
        scope.commit()?;
        if out.contains(&Admission::Stored) {
            self.load_results(self.results_ver)?;
        }
        Ok(out)
    }

    /// The results register held of `node` as its node signed it, to pass
    /// on to a peer.
    pub fn signed_results(&self, node: &str) -> Result<Option<SignedResults>> {
        results::signed(self.db.conn(), node)
    }

    /// Every node's results register held here, by node id.
    pub fn results_registers(&self) -> &HashMap<String, StoredResults> {
        &self.results
    }

    /// What each node reported for command `command`, by node id: its
    /// results register's entry, or else (nodes from before results
    /// registers) the result it wrote into the document, which the rights
    /// rules let only the node bound to its key write. The same as
    /// `state().command_results[command]`.
    pub fn command_results(
        &self,
        command: &str,
    ) -> std::collections::BTreeMap<String, CommandResult> {
        self.state
            .command_results
            .get(command)
            .cloned()
            .unwrap_or_default()
    }

    pub fn series(&self, node: &str, since_ms: i64) -> Result<Vec<health::Sample>> {
        health::series(self.db.conn(), node, since_ms)
    }

    /// The fleet now, as this replica holds it.
    pub fn moment(&self) -> Moment {
        Moment {
            at_ms: now_ms(),
            past: false,
            state: self.state.clone(),
            health: self.health.clone(),
        }
    }

    /// The fleet as this replica held it at `at_ms`: the document at the
    /// heads it held then, every node's register from its record
    /// (`health_log::registers_at`). Refused for a time in the future and
    /// for one before the record begins or past its retention ("no data
    /// that old").
    pub fn moment_at(&mut self, at_ms: i64) -> Result<Moment> {
        self.check_health_record(at_ms)?;
        let heads = self.heads_at_time(at_ms)?;
        self.moment_from(at_ms, &heads)
    }

    /// The fleet at a change (`REF` as [`Replica::resolve`] takes it): the
    /// document at it, health as this replica held it when the change was
    /// made (its author's clock), or just before for `ID^`.
    pub fn moment_at_change(&mut self, reference: &str) -> Result<Moment> {
        let heads = self.resolve(reference)?;
        let id = reference.trim_end_matches('^');
        let hash = self.doc.resolve_change(id)?;
        let made = self
            .doc
            .automerge_mut()
            .get_change_by_hash(&hash)
            .map(|c| c.timestamp())
            .ok_or_else(|| StoreError::Invalid(format!("change {id} is not held here")))?;
        let at_ms = if reference.ends_with('^') {
            made.saturating_sub(1)
        } else {
            made
        }
        .min(now_ms());
        self.check_health_record(at_ms)?;
        self.moment_from(at_ms, &heads)
    }

    fn moment_from(&mut self, at_ms: i64, heads: &[ChangeHash]) -> Result<Moment> {
        let mut state = self.state_at(heads)?;
        // Results now live in the nodes' results registers, not the
        // document: those of the moment's commands that nodes had finished
        // by then (their `at_ms`), as far as retention kept them
        // (`results::KEEP_MS`).
        for held in self.results.values() {
            for (cmd, r) in &held.reg.results {
                if r.at_ms <= at_ms && state.commands.contains_key(cmd) {
                    state
                        .command_results
                        .entry(cmd.clone())
                        .or_default()
                        .insert(held.reg.node.clone(), r.clone());
                }
            }
        }
        let state = Arc::new(state);
        let (health, bad) = health_log::registers_at(self.db.conn(), at_ms)?;
        for node in bad {
            self.warnings.push(format!(
                "the recorded health of node {node} is unreadable and was skipped"
            ));
        }
        Ok(Moment {
            at_ms,
            past: true,
            state,
            health,
        })
    }

    /// Refuses a time this replica's record of node health cannot speak for.
    fn check_health_record(&self, at_ms: i64) -> Result<()> {
        let now = now_ms();
        if at_ms > now {
            return Err(StoreError::Invalid(format!(
                "{} is in the future",
                rfc3339(at_ms)
            )));
        }
        let since = self
            .db
            .meta(RECORD_SINCE)?
            .and_then(|v| v.parse::<i64>().ok());
        let kept_from = now.saturating_sub(health_log::STATES_KEEP_MS);
        match since {
            Some(s) if at_ms < s => {
                return Err(StoreError::Invalid(format!(
                    "no data that old: this replica's record of node health begins at {}",
                    rfc3339(s)
                )));
            }
            None => {
                return Err(StoreError::Invalid(
                    "no data that old: this replica keeps no record of node health (open it writable once to start one)".into(),
                ));
            }
            _ if at_ms < kept_from => {
                return Err(StoreError::Invalid(format!(
                    "no data that old: node health is kept {} days, back to {}",
                    health_log::STATES_KEEP_MS / 86_400_000,
                    rfc3339(kept_from)
                )));
            }
            _ => {}
        }
        Ok(())
    }

    /// What happened to `node` in `[from_ms, to_ms]`, newest first: from
    /// this replica's record (see `moment::timeline`), judged by the node's
    /// thresholds now.
    pub fn timeline(
        &mut self,
        node: &crate::NodeId,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<moment::Event>> {
        let n = self.state.node(node)?;
        let site = n.site.to_string();
        let inputs = alert_inputs(&self.state, &self.health);
        let thresholds = inputs
            .iter()
            .flat_map(|s| s.nodes.iter())
            .find(|i| i.node == node.as_str())
            .map(|i| i.thresholds)
            .unwrap_or_default();
        let conn = self.db.conn();
        // A run that began before the window still says when it ended.
        let runs = health_log::runs(conn, node.as_str(), from_ms.saturating_sub(DAY_MS), to_ms)?;
        let (states, bad) = health_log::states(conn, node.as_str(), from_ms, to_ms)?;
        if bad > 0 {
            self.warnings.push(format!(
                "{bad} recorded states of node {node} are unreadable and were skipped"
            ));
        }
        Ok(moment::timeline(&moment::TimelineInput {
            node: node.as_str(),
            site: &site,
            thresholds,
            runs: &runs,
            states: &states,
            from_ms,
            to_ms,
        }))
    }

    /// The fleet's events in `[from_ms, to_ms]` that `filter` keeps,
    /// newest first: every node's timeline ([`Replica::timeline`]) and the
    /// changes made in that time (by their author's clock), each said by
    /// what it did (`events::change_infos`).
    pub fn events(
        &mut self,
        from_ms: i64,
        to_ms: i64,
        filter: &crate::events::Filter,
    ) -> Result<Vec<crate::events::FleetEvent>> {
        use crate::events::FleetEvent;
        let st = self.state.clone();
        let mut out = Vec::new();
        for node in st.nodes.values() {
            if filter
                .node
                .as_deref()
                .is_some_and(|n| n != node.id.as_str())
                || filter
                    .site
                    .as_deref()
                    .is_some_and(|s| s != node.site.as_str())
            {
                continue;
            }
            for e in self.timeline(&node.id, from_ms, to_ms)? {
                let ev = FleetEvent {
                    at_ms: e.at_ms,
                    kind: e.kind,
                    site: Some(node.site.to_string()),
                    node: Some(node.id.to_string()),
                    by: node.id.to_string(),
                    text: e.text,
                    change: None,
                    alert: e.alert,
                };
                if filter.keeps(&ev, &st, None) {
                    out.push(ev);
                }
            }
        }
        out.extend(crate::events::result_events(
            &st,
            self.results.values().map(|s| &s.reg),
            from_ms,
            to_ms,
            filter,
        ));
        let history = self.history();
        out.extend(crate::events::change_events(
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

    fn inputs(&self) -> Vec<SiteInput<'_>> {
        alert_inputs(&self.state, &self.health)
    }

    /// Every alert at `now_ms`, hidden (silenced) ones included.
    pub fn alerts(&self, now_ms: i64) -> Vec<Alert> {
        alerts::evaluate(&self.inputs(), now_ms, &self.state.acks)
    }

    /// Site states and the fleet summary at `now_ms`.
    pub fn status(&self, now_ms: i64) -> (Vec<(String, SiteState)>, FleetSummary, Vec<Alert>) {
        let inputs = self.inputs();
        let alerts = alerts::evaluate(&inputs, now_ms, &self.state.acks);
        let states = alerts::site_states(&inputs, &alerts, now_ms);
        let summary = alerts::summarize(&states, &alerts, now_ms);
        (states, summary, alerts)
    }

    // ---- history -----------------------------------------------------------

    /// The audit log, newest first, with member names.
    pub fn history(&mut self) -> Vec<HistoryEntry> {
        let mut h = self.doc.history();
        for e in &mut h {
            e.author_name = MemberKey::parse(&e.author)
                .ok()
                .and_then(|k| self.state.member_name(&k).map(str::to_string));
        }
        h.reverse();
        h
    }

    /// Resolves `REF` (a change id, a unique prefix, or a prefix followed by
    /// `^` for the state just before that change) to heads.
    pub fn resolve(&mut self, reference: &str) -> Result<Vec<ChangeHash>> {
        let (id, parent) = match reference.strip_suffix('^') {
            Some(id) => (id, true),
            None => (reference, false),
        };
        let hash = self.doc.resolve_change(id)?;
        if parent {
            self.doc.parents_of(&hash)
        } else {
            Ok(vec![hash])
        }
    }

    /// What change `hash` did to the config layers: each key it set or
    /// unset, with the layer's value before it and after it (the state at
    /// its parents against the state just after it, so a concurrent
    /// change is not counted).
    pub fn change_edits(&mut self, hash: &ChangeHash) -> Result<Vec<crate::diff::LayerEdit>> {
        let parents = self.doc.parents_of(hash)?;
        let before = if parents.is_empty() {
            FleetState::default()
        } else {
            self.state_at(&parents)?
        };
        let after = self.state_at(&[*hash])?;
        Ok(crate::diff::layer_edits(&before, &after))
    }

    /// The state of the fleet at `heads`.
    pub fn state_at(&mut self, heads: &[ChangeHash]) -> Result<FleetState> {
        self.doc.at(heads)?.state_or_empty()
    }

    pub fn conflicts(&self) -> Result<Vec<Conflict>> {
        self.doc.conflicts()
    }
}

/// The meta key saying when this replica began its record of what it held
/// (`arrivals`) and heard (`health_log`).
const RECORD_SINCE: &str = "record_since";

const DAY_MS: i64 = 86_400_000;

/// How long a replica keeps the record of what it held when (`--at`).
pub const HEADS_LOG_KEEP_MS: i64 = 90 * 86_400_000;

/// When a register held `age_ms` by others was heard, by this clock.
/// A relaying peer says how long it held a register; no more than a day is
/// believed (the seq rule measures from when a register was heard, so an
/// age of years would let the next one jump by billions).
fn heard_ms(age_ms: u64) -> i64 {
    const MAX_AGE_MS: u64 = 24 * 60 * 60 * 1000;
    now_ms().saturating_sub(i64::try_from(age_ms.min(MAX_AGE_MS)).unwrap_or(0))
}

/// What the alert rules read, per site, from a fleet and its health
/// registers: the thresholds of every site and node, read from their layers,
/// and each node's register with the time it was received.
pub fn alert_inputs<'a>(
    st: &'a FleetState,
    health: &'a HashMap<String, StoredRegister>,
) -> Vec<SiteInput<'a>> {
    let mut sites: Vec<SiteInput<'a>> = Vec::with_capacity(st.sites.len());
    let mut index: HashMap<&str, usize> = HashMap::with_capacity(st.sites.len());
    for site in st.sites.values() {
        let layers = [None, Some(&site.overrides), Some(&st.fleet)];
        index.insert(site.id.as_str(), sites.len());
        sites.push(SiteInput {
            site: site.id.as_str(),
            thresholds: thresholds(&layers),
            nodes: Vec::new(),
            zone: site.record.zone.as_deref().map(|name| alerts::Zone {
                name,
                quorum: zone_quorum(st, name),
            }),
        });
    }
    for node in st.nodes.values() {
        let Some(&i) = index.get(node.site.as_str()) else {
            continue;
        };
        let site_layer = st.sites.get(&node.site).map(|s| &s.overrides);
        let t = if node.overrides.is_empty() {
            sites[i].thresholds
        } else {
            thresholds(&[Some(&node.overrides), site_layer, Some(&st.fleet)])
        };
        let health = health
            .get(node.id.as_str())
            .map(|r| (&r.reg, r.received_ms));
        sites[i].nodes.push(NodeInput {
            node: node.id.as_str(),
            thresholds: t,
            health,
        });
    }
    sites
}

/// `zones.<zone>.quorum` in the fleet defaults: a whole number of nodes
/// (anything else, or a zone name that is not a config key, is no quorum).
fn zone_quorum(st: &FleetState, zone: &str) -> Option<u64> {
    let path = crate::config::ConfigPath::parse(&format!("zones.{zone}.quorum")).ok()?;
    config::lookup(&[Some(&st.fleet)], path.segments())?.as_u64()
}

fn thresholds(layers: &[Option<&config::Layer>]) -> Thresholds {
    Thresholds::from_lookup(|key| {
        let path = crate::config::ConfigPath::parse(key).ok()?;
        config::lookup(layers, path.segments())
    })
}

/// Builds the database beside its final name and moves it in place only when
/// complete: a crash mid-init leaves no half replica behind.
fn write_new_db(dir: &Path, fleet_id: &str, changes: &[SignedChange]) -> Result<()> {
    let db_path = dir.join(DB_FILE);
    let tmp = dir.join(format!("{DB_FILE}.new"));
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", tmp.display()));
    }
    {
        let db = Db::create(&tmp, &[("fleet_id", fleet_id)])?;
        let mut rows: Vec<([u8; 32], &[u8], Sig)> = Vec::with_capacity(changes.len());
        for c in changes {
            let sig = c.sig.ok_or_else(|| {
                StoreError::Invalid(format!(
                    "change {} came without its author's signature",
                    c.change.hash()
                ))
            })?;
            rows.push((c.change.hash().0, c.change.raw_bytes(), sig));
        }
        db.append_changes(&rows, (now_ms(), HEADS_LOG_KEEP_MS))?;
        db.conn().pragma_update(None, "journal_mode", "DELETE")?;
    }
    std::fs::rename(&tmp, &db_path).map_err(|source| StoreError::Io {
        path: db_path.clone(),
        source,
    })?;
    sync_dir(dir)
}

fn create_dir(dir: &Path) -> Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir).map_err(|source| StoreError::Io {
        path: dir.to_path_buf(),
        source,
    })
}

fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|source| StoreError::Io {
            path: dir.to_path_buf(),
            source,
        })
}

/// The identity in `dir`, created (0600) when there is none.
pub fn load_or_create_identity(dir: &Path) -> Result<Identity> {
    let path = dir.join(IDENTITY_FILE);
    if path.exists() {
        return Identity::load(&path);
    }
    create_dir(dir)?;
    let id = Identity::generate();
    id.save_new(&path)?;
    Ok(id)
}
