//! The replica's SQLite file: the fleet document as a snapshot plus the
//! changes appended since, and the health registers.
//!
//! Durability: WAL mode with `synchronous=FULL`, so a transaction is on disk
//! when its commit returns; every change is appended in its own transaction
//! before the caller reports success. Compaction replaces the snapshot and
//! deletes the changes it covers in one transaction, so a crash leaves either
//! the old snapshot with its changes or the new one.
//!
//! A file that is not a fleetdeck database, or is corrupt, is reported and
//! never written to: nothing here creates, migrates or repairs an existing
//! file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, params};

use crate::error::{Result, StoreError};
use crate::health;

/// Version 5: what this replica held when (`--at TIME`): its heads from
/// each time they changed. Written no more since version 6 (`arrivals`).
const HEADS_LOG_SQL: &str = "
CREATE TABLE IF NOT EXISTS heads_log (at_ms INTEGER NOT NULL, heads BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS heads_log_at ON heads_log(at_ms);
";

/// Document heads as `heads_log` keeps them.
pub type Heads = Vec<[u8; 32]>;

/// Version 6: when each change arrived here (`--at TIME`), kept for
/// [`crate::replica::HEADS_LOG_KEEP_MS`]; what the replica held at a time is
/// every change that had arrived by then. It replaces `heads_log`, which
/// held a row of all the heads at every change (with many concurrent
/// writers, hundreds of heads a row: 361 MB over 90 days for 500 nodes in
/// P8); `heads_log` is still read for the times before `arrivals` began.
const ARRIVALS_SQL: &str = "
CREATE TABLE IF NOT EXISTS arrivals (at_ms INTEGER NOT NULL, hash BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS arrivals_at ON arrivals(at_ms);
";

/// Version of the tables below, kept in `PRAGMA user_version`. Version 6:
/// what the replica heard of each node over time (`health_log`). Version 7:
/// nodes' command results registers (`results`).
pub const SCHEMA_VERSION: i64 = 7;

const SCHEMA_SQL: &str = "
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE changes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    hash BLOB NOT NULL UNIQUE,
    data BLOB NOT NULL
);
CREATE TABLE snapshot (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    generation INTEGER NOT NULL,
    upto INTEGER NOT NULL,
    data BLOB NOT NULL
);
";

/// Version 2: one-time invite tokens, local to the replica that issued them
/// (secrets never enter the synced document).
const INVITES_SQL: &str = "
CREATE TABLE IF NOT EXISTS invites (
    secret TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    used_by TEXT,
    used_ms INTEGER
);
";

/// Version 3: the signature of every change (kept when compaction folds the
/// change into the snapshot: peers are sent it), and the quarantine: stored
/// rows that failed their check on load, kept aside for `doctor`.
const SIGNATURES_SQL: &str = "
CREATE TABLE IF NOT EXISTS signatures (
    hash BLOB PRIMARY KEY,
    sig BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS quarantine (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    hash BLOB,
    data BLOB NOT NULL,
    sig BLOB,
    author TEXT,
    reason TEXT NOT NULL,
    at_ms INTEGER NOT NULL
);
";

/// Version 4: health registers are stored with their node's signature
/// (`health::SCHEMA_SQL` has the column for a new database). Registers
/// stored before keep a null signature: kept, never relayed.
const HEALTH_SIG_SQL: &str = "ALTER TABLE health ADD COLUMN sig BLOB;";

/// A stored change row: row id, the hash stored beside it, its bytes.
pub(crate) struct Row {
    pub id: i64,
    pub hash: Vec<u8>,
    pub data: Vec<u8>,
}

/// A change kept aside because it failed its check when read back.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Quarantined {
    /// The hash stored beside the row (hex), if any.
    pub change: String,
    /// The author its actor id names, if it decodes.
    pub author: Option<String>,
    pub reason: String,
    pub at_ms: i64,
}

/// An invite as stored by the replica that issued it.
#[derive(Clone, Debug)]
pub struct Invite {
    pub role: String,
    pub expires_ms: i64,
    pub used_by: Option<String>,
}

pub(crate) struct Db {
    conn: Connection,
    path: PathBuf,
}

pub(crate) struct Snapshot {
    pub generation: i64,
    pub upto: i64,
    pub data: Vec<u8>,
}

impl Db {
    fn classify(path: &Path, e: rusqlite::Error) -> StoreError {
        match e.sqlite_error_code() {
            Some(ErrorCode::NotADatabase) | Some(ErrorCode::DatabaseCorrupt) => {
                StoreError::Corrupt {
                    path: path.to_path_buf(),
                    detail: e.to_string(),
                }
            }
            _ => StoreError::Sqlite(e),
        }
    }

    fn err(&self, e: rusqlite::Error) -> StoreError {
        Self::classify(&self.path, e)
    }

    fn configure(conn: &Connection, read_only: bool) -> rusqlite::Result<()> {
        conn.busy_timeout(Duration::from_secs(10))?;
        if !read_only {
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "FULL")?;
        }
        Ok(())
    }

    /// Creates a new database at `path`, which must not exist, with `meta`.
    pub fn create(path: &Path, meta: &[(&str, &str)]) -> Result<Db> {
        if path.exists() {
            return Err(StoreError::ReplicaExists(path.to_path_buf()));
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)?;
        Self::configure(&conn, false)?;
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(SCHEMA_SQL)?;
        tx.execute_batch(health::SCHEMA_SQL)?;
        tx.execute_batch(INVITES_SQL)?;
        tx.execute_batch(SIGNATURES_SQL)?;
        tx.execute_batch(ARRIVALS_SQL)?;
        tx.execute_batch(crate::health_log::SCHEMA_SQL)?;
        tx.execute_batch(crate::results::SCHEMA_SQL)?;
        for (k, v) in meta {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)",
                params![k, v],
            )?;
        }
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        tx.commit()?;
        Ok(Db {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// Opens an existing database, refusing anything that is not a fleetdeck
    /// replica of a schema this build knows.
    pub fn open(path: &Path, read_only: bool) -> Result<Db> {
        let flags = if read_only {
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
        } else {
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX
        };
        let conn = Connection::open_with_flags(path, flags).map_err(|e| Self::classify(path, e))?;
        // Before the first read: another process writing or checkpointing
        // at this moment makes it wait, not fail with "database is locked".
        conn.busy_timeout(Duration::from_secs(10))
            .map_err(|e| Self::classify(path, e))?;
        let db = Db {
            conn,
            path: path.to_path_buf(),
        };
        // user_version is the first read: on a file that is not a database
        // at all this is where SQLite says so.
        let version: i64 = db
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(|e| db.err(e))?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                path: path.to_path_buf(),
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        if version < 1 {
            return Err(StoreError::Corrupt {
                path: path.to_path_buf(),
                detail: "it is an SQLite file but not a fleetdeck replica (no schema version)"
                    .into(),
            });
        }
        Self::configure(&db.conn, read_only).map_err(|e| db.err(e))?;
        if version < SCHEMA_VERSION && !read_only {
            db.migrate(version)?;
        }
        Ok(db)
    }

    /// What `heads_log` (before schema 6) says this replica held at
    /// `at_ms`: the newest record at or before it; `None` without one (or
    /// without the table).
    pub fn legacy_heads_at(&self, at_ms: i64) -> Result<Option<Heads>> {
        let has_table: bool = self
            .conn
            .query_row(
                "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'heads_log'",
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))?;
        if !has_table {
            return Ok(None);
        }
        let blob: Option<Vec<u8>> = self
            .conn
            .query_row(
                "SELECT heads FROM heads_log WHERE at_ms <= ?1 ORDER BY at_ms DESC, rowid DESC LIMIT 1",
                params![at_ms],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        match blob {
            None => Ok(None),
            Some(b) if b.len() % 32 != 0 => Err(StoreError::Corrupt {
                path: self.path.clone(),
                detail: format!(
                    "a heads_log row holds {} bytes, not a multiple of 32",
                    b.len()
                ),
            }),
            Some(b) => Ok(Some(
                b.chunks_exact(32)
                    .map(|c| {
                        let mut h = [0u8; 32];
                        h.copy_from_slice(c);
                        h
                    })
                    .collect(),
            )),
        }
    }

    /// The changes that arrived after `at_ms` (their hashes; a row that is
    /// not a hash is skipped).
    pub fn arrived_after(&self, at_ms: i64) -> Result<Vec<[u8; 32]>> {
        let mut stmt = self
            .conn
            .prepare("SELECT hash FROM arrivals WHERE at_ms > ?1")
            .map_err(|e| self.err(e))?;
        let mut rows = stmt.query(params![at_ms]).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(|e| self.err(e))? {
            if let Ok(b) = row.get_ref(0).map_err(|e| self.err(e))?.as_blob()
                && let Ok(h) = <[u8; 32]>::try_from(b)
            {
                out.push(h);
            }
        }
        Ok(out)
    }

    /// A write transaction that takes the write lock when it begins
    /// (`BEGIN IMMEDIATE`, waiting out the busy timeout for it). A deferred
    /// one that reads first and then writes fails at once with "database is
    /// locked" (SQLITE_BUSY_SNAPSHOT, no wait) when another process (the
    /// CLI beside `serve`) committed after its read.
    fn write_tx(&self) -> Result<rusqlite::Transaction<'_>> {
        rusqlite::Transaction::new_unchecked(&self.conn, rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| self.err(e))
    }

    /// Brings an older schema up to date, in one transaction.
    fn migrate(&self, from: i64) -> Result<()> {
        let tx = self.conn.unchecked_transaction().map_err(|e| self.err(e))?;
        if from < 2 {
            tx.execute_batch(INVITES_SQL).map_err(|e| self.err(e))?;
        }
        if from < 3 {
            // Everything stored so far was written before changes were
            // signed: remember where that ends (see `unsigned_upto`).
            tx.execute_batch(SIGNATURES_SQL).map_err(|e| self.err(e))?;
            tx.execute(
                "INSERT OR REPLACE INTO meta (key, value)
                 SELECT 'unsigned_upto', CAST(COALESCE(MAX(id), 0) AS TEXT) FROM changes",
                [],
            )
            .map_err(|e| self.err(e))?;
            tx.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('unsigned_snapshot', '1')",
                [],
            )
            .map_err(|e| self.err(e))?;
        }
        if from < 4 {
            // A file whose version was set back by hand may have the column.
            let has_sig: bool = tx
                .query_row(
                    "SELECT COUNT(*) > 0 FROM pragma_table_info('health') WHERE name = 'sig'",
                    [],
                    |r| r.get(0),
                )
                .map_err(|e| self.err(e))?;
            if !has_sig {
                tx.execute_batch(HEALTH_SIG_SQL).map_err(|e| self.err(e))?;
            }
        }
        if from < 5 {
            tx.execute_batch(HEADS_LOG_SQL).map_err(|e| self.err(e))?;
        }
        if from < 6 {
            tx.execute_batch(ARRIVALS_SQL).map_err(|e| self.err(e))?;
            tx.execute_batch(crate::health_log::SCHEMA_SQL)
                .map_err(|e| self.err(e))?;
            crate::health_log::migrate_samples(&tx)?;
        }
        if from < 7 {
            tx.execute_batch(crate::results::SCHEMA_SQL)
                .map_err(|e| self.err(e))?;
        }
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    pub fn meta(&self, key: &str) -> Result<Option<String>> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Sets `key` to `value` unless it is set already.
    pub fn set_meta_once(&self, key: &str, value: &str) -> Result<()> {
        self.conn
            .execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES (?1, ?2)",
                params![key, value],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Changes with row id above `after`, in order.
    pub fn changes_since(&self, after: i64) -> Result<Vec<(i64, Vec<u8>)>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, data FROM changes WHERE id > ?1 ORDER BY id")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([after], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e))
    }

    /// Change rows with row id above `after`, in order, with their stored
    /// hashes.
    pub fn rows_since(&self, after: i64) -> Result<Vec<Row>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, hash, data FROM changes WHERE id > ?1 ORDER BY id")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([after], |r| {
                Ok(Row {
                    id: r.get(0)?,
                    hash: r.get(1)?,
                    data: r.get(2)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e))
    }

    /// Every stored signature: (change hash, signature bytes). Rows whose
    /// columns are not 32 and 64 bytes are skipped (and reported by the
    /// changes they fail to sign).
    pub fn signatures(&self) -> Result<Vec<([u8; 32], [u8; 64])>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT hash, sig FROM signatures")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Vec<u8>>(1)?))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (h, s) = row.map_err(|e| self.err(e))?;
            if let (Ok(h), Ok(s)) = (<[u8; 32]>::try_from(h), <[u8; 64]>::try_from(s)) {
                out.push((h, s));
            }
        }
        Ok(out)
    }

    /// The signatures of `hashes` (those stored).
    pub fn signatures_of(&self, hashes: &[[u8; 32]]) -> Result<Vec<([u8; 32], [u8; 64])>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT sig FROM signatures WHERE hash = ?1")
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for h in hashes {
            let sig: Option<Vec<u8>> = stmt
                .query_row([&h[..]], |r| r.get(0))
                .optional()
                .map_err(|e| self.err(e))?;
            if let Some(Ok(sig)) = sig.map(<[u8; 64]>::try_from) {
                out.push((*h, sig));
            }
        }
        Ok(out)
    }

    /// Moves change row `id` aside, with why, in one transaction.
    pub fn quarantine(
        &self,
        row: &Row,
        author: Option<&str>,
        reason: &str,
        now_ms: i64,
    ) -> Result<()> {
        let tx = self.write_tx()?;
        let sig: Option<Vec<u8>> = tx
            .query_row(
                "SELECT sig FROM signatures WHERE hash = ?1",
                [&row.hash],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        tx.execute(
            "INSERT INTO quarantine (hash, data, sig, author, reason, at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![&row.hash, &row.data, sig, author, reason, now_ms],
        )
        .map_err(|e| self.err(e))?;
        tx.execute("DELETE FROM changes WHERE id = ?1", [row.id])
            .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))
    }

    /// What the quarantine holds, oldest first.
    pub fn quarantined(&self) -> Result<Vec<Quarantined>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT hash, author, reason, at_ms FROM quarantine ORDER BY id")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                let hash: Option<Vec<u8>> = r.get(0)?;
                Ok(Quarantined {
                    change: hash.map(hex::encode).unwrap_or_default(),
                    author: r.get(1)?,
                    reason: r.get(2)?,
                    at_ms: r.get(3)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e))
    }

    pub fn snapshot(&self) -> Result<Option<Snapshot>> {
        self.conn
            .query_row(
                "SELECT generation, upto, data FROM snapshot WHERE id = 1",
                [],
                |r| {
                    Ok(Snapshot {
                        generation: r.get(0)?,
                        upto: r.get(1)?,
                        data: r.get(2)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    pub fn snapshot_gen(&self) -> Result<i64> {
        self.conn
            .query_row("SELECT generation FROM snapshot WHERE id = 1", [], |r| {
                r.get(0)
            })
            .optional()
            .map(|g| g.unwrap_or(0))
            .map_err(|e| self.err(e))
    }

    /// Appends changes (hash, bytes, signature) in one durable transaction;
    /// changes already stored are skipped. Returns the highest row id
    /// written.
    /// Stores changes with their signatures and, with `heads` (when, what,
    /// how long to keep), notes in the same transaction what the replica
    /// holds now (`log_heads`).
    /// Stores `changes` (hash, bytes, signature) in one transaction, each
    /// new one noted as arrived at `arrived.0`; arrivals older than
    /// `arrived.1` before it go. Returns the last change row id.
    pub fn append_changes(
        &self,
        changes: &[([u8; 32], &[u8], [u8; 64])],
        arrived: (i64, i64),
    ) -> Result<i64> {
        let (at_ms, keep_ms) = arrived;
        let tx = self.write_tx()?;
        {
            let mut stmt = tx
                .prepare_cached("INSERT OR IGNORE INTO changes (hash, data) VALUES (?1, ?2)")
                .map_err(|e| self.err(e))?;
            let mut sigs = tx
                .prepare_cached("INSERT OR IGNORE INTO signatures (hash, sig) VALUES (?1, ?2)")
                .map_err(|e| self.err(e))?;
            let mut arrival = tx
                .prepare_cached("INSERT INTO arrivals (at_ms, hash) VALUES (?1, ?2)")
                .map_err(|e| self.err(e))?;
            for (hash, data, sig) in changes {
                let new = stmt
                    .execute(params![&hash[..], data])
                    .map_err(|e| self.err(e))?;
                sigs.execute(params![&hash[..], &sig[..]])
                    .map_err(|e| self.err(e))?;
                if new > 0 {
                    arrival
                        .execute(params![at_ms, &hash[..]])
                        .map_err(|e| self.err(e))?;
                }
            }
        }
        tx.execute(
            "DELETE FROM arrivals WHERE at_ms < ?1",
            params![at_ms.saturating_sub(keep_ms)],
        )
        .map_err(|e| self.err(e))?;
        let last: i64 = tx
            .query_row("SELECT COALESCE(MAX(id), 0) FROM changes", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(last)
    }

    pub fn add_invite(&self, secret: &str, role: &str, now_ms: i64, expires_ms: i64) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO invites (secret, role, created_ms, expires_ms) VALUES (?1, ?2, ?3, ?4)",
                params![secret, role, now_ms, expires_ms],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Marks an invite used by `key` if it is unused and unexpired, in one
    /// transaction so two joiners cannot both redeem it. Returns the invite as
    /// it was before, or None if no such secret was issued here.
    pub fn redeem_invite(&self, secret: &str, key: &str, now_ms: i64) -> Result<Option<Invite>> {
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| self.err(e))?;
        let result = (|| {
            let inv = self
                .conn
                .query_row(
                    "SELECT role, expires_ms, used_by FROM invites WHERE secret = ?1",
                    [secret],
                    |r| {
                        Ok(Invite {
                            role: r.get(0)?,
                            expires_ms: r.get(1)?,
                            used_by: r.get(2)?,
                        })
                    },
                )
                .optional()
                .map_err(|e| self.err(e))?;
            if let Some(i) = &inv
                && i.used_by.is_none()
                && i.expires_ms > now_ms
            {
                self.conn
                    .execute(
                        "UPDATE invites SET used_by = ?1, used_ms = ?2 WHERE secret = ?3",
                        params![key, now_ms, secret],
                    )
                    .map_err(|e| self.err(e))?;
            }
            Ok(inv)
        })();
        let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
        self.conn.execute_batch(end).map_err(|e| self.err(e))?;
        result
    }

    pub fn change_rows(&self) -> Result<i64> {
        self.conn
            .query_row("SELECT COUNT(*) FROM changes", [], |r| r.get(0))
            .map_err(|e| self.err(e))
    }

    /// Counts commits by *other* connections: when it moves, re-read.
    pub fn data_version(&self) -> Result<i64> {
        self.conn
            .pragma_query_value(None, "data_version", |r| r.get(0))
            .map_err(|e| self.err(e))
    }

    /// Replaces the snapshot and drops the changes it covers, atomically.
    /// `catch_up` gets the rows written since `after` (by any process) and
    /// must fold them in and return the full document's bytes.
    pub fn compact(
        &self,
        after: i64,
        catch_up: impl FnOnce(Vec<(i64, Vec<u8>)>) -> Result<Vec<u8>>,
    ) -> Result<(i64, i64)> {
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| self.err(e))?;
        let result = (|| {
            let rows = self.changes_since(after)?;
            let upto = rows.last().map_or(after, |(id, _)| *id);
            let data = catch_up(rows)?;
            let generation = self.snapshot_gen()? + 1;
            self.conn
                .execute(
                    "INSERT INTO snapshot (id, generation, upto, data) VALUES (1, ?1, ?2, ?3)
                     ON CONFLICT(id) DO UPDATE SET generation = ?1, upto = ?2, data = ?3",
                    params![generation, upto, data],
                )
                .map_err(|e| self.err(e))?;
            self.conn
                .execute("DELETE FROM changes WHERE id <= ?1", [upto])
                .map_err(|e| self.err(e))?;
            Ok((generation, upto))
        })();
        match result {
            Ok(v) => {
                self.conn.execute_batch("COMMIT").map_err(|e| self.err(e))?;
                Ok(v)
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }
}
