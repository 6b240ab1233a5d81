//! One session with one peer over one bi-directional stream: the hello, then
//! the automerge sync protocol for the fleet document and the digest
//! exchange for health registers, then pushes as things change, with a
//! periodic anti-entropy round as a safety net.
//!
//! A session sees the engine that runs it only through [`Host`].

use std::collections::HashMap;
use std::sync::{Arc, MutexGuard};
use std::time::{Duration, Instant};

use automerge::ChangeHash;
use automerge::sync::{Message, State as SyncState};
use fleetdeck_store::health::{PackedForm, SignedRegister};
use fleetdeck_store::{MemberKey, NodeId, Replica};
use iroh::endpoint::{Connection, ConnectionError, RecvStream, SendStream, VarInt};
use tokio::sync::{mpsc, watch};

use crate::faults::Faults;
use crate::traffic::Stats;
use crate::verify;
use crate::wire::{self, Features, Hello, Msg, Origin, PROTOCOL_VERSION, WireError};

/// Time allowed for the hello in each direction.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// A burst of local changes is pushed at most once per this interval (the
/// first change after a quiet spell goes out at once).
pub(crate) const COALESCE: Duration = Duration::from_millis(15);

/// What a session gets of the engine that runs it, and nothing more: the
/// replica and its change signal, the peer book's note of a sync, the fault
/// layer and traffic counters, and the one setting it reads. The engine
/// implements it; a session never sees the engine's insides.
pub(crate) trait Host: Send + Sync + 'static {
    /// This replica's member key.
    fn me(&self) -> &MemberKey;
    fn replica(&self) -> MutexGuard<'_, Replica>;
    /// Tells every session the document changed (and with it, maybe,
    /// anything else).
    fn changed(&self);
    /// Tells the sessions that take registers from this replica (peers
    /// that hold the fleet's health) that a register was stored; sessions
    /// with nodes are not woken (a hub holding a thousand of them would
    /// wake every one for every heartbeat; BENCHMARKS.md, P10).
    fn registers_changed(&self);
    /// Ticks whenever the replica changed (locally or from a peer).
    fn subscribe(&self) -> watch::Receiver<u64>;
    /// Ticks whenever the document changed.
    fn subscribe_doc(&self) -> watch::Receiver<u64>;
    /// Notes in the peer book that `peer` synced, and the heads it has.
    fn synced(&self, peer: &MemberKey, their_heads: Option<Vec<ChangeHash>>);
    fn faults(&self) -> &Faults;
    fn stats(&self) -> &Stats;
    /// How often digests are re-exchanged even when nothing changed.
    fn anti_entropy(&self) -> Duration;
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("{0}")]
    Wire(#[from] WireError),
    #[error("refused by peer: {0}")]
    RefusedByPeer(String),
    #[error("refused: {0}")]
    Refused(String),
    #[error("protocol violation: {0}")]
    Protocol(String),
    #[error("replica: {0}")]
    Store(#[from] fleetdeck_store::StoreError),
    #[error("timed out waiting for the peer's hello")]
    HelloTimeout,
    #[error("connection dropped by fault injection")]
    InjectedDrop,
    #[error("partitioned by fault injection")]
    Partitioned,
    #[error("a session with this peer already exists")]
    Duplicate,
    #[error("replaced by a newer session with the same peer")]
    Replaced,
}

impl SessionError {
    /// The session made way for another with the same peer (refused as
    /// the duplicate of a live one, or replaced by a newer one): the peer
    /// is connected, nothing failed.
    pub(crate) fn made_way(&self) -> bool {
        matches!(self, SessionError::Duplicate | SessionError::Replaced)
    }
}

/// How a session ends when the caller only wants one sync (`sync --once`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Mode {
    Keep,
    /// End once both sides hold the same document heads and nothing was
    /// received for this long.
    Once(Duration),
}

/// Which health registers go over one session (see `Session::health_policy`).
struct HealthPolicy<'a> {
    both_holders: bool,
    peer_holder: bool,
    /// Nodes whose daemon runs on the peer's replica.
    peers_nodes: &'a [NodeId],
    /// Nodes whose daemon runs on this replica.
    my_nodes: &'a [NodeId],
}

impl HealthPolicy<'_> {
    /// The nodes of `held` (a map by node id) this replica may send the
    /// peer: all of them to a holder, else only the peer's own nodes,
    /// looked up rather than found by walking a thousand registers.
    fn sendable<'h, T>(&self, held: &'h HashMap<String, T>) -> Vec<(&'h String, &'h T)> {
        if self.peer_holder {
            held.iter().collect()
        } else {
            self.peers_nodes
                .iter()
                .filter_map(|n| held.get_key_value(n.as_str()))
                .collect()
        }
    }

    /// The nodes of `held` the peer may send this replica.
    fn receivable<'h, T>(&self, held: &'h HashMap<String, T>) -> Vec<(&'h String, &'h T)> {
        if self.both_holders {
            held.iter().collect()
        } else {
            let mut out: Vec<_> = self
                .peers_nodes
                .iter()
                .chain(self.my_nodes)
                .filter_map(|n| held.get_key_value(n.as_str()))
                .collect();
            out.sort_by(|a, b| a.0.cmp(b.0));
            out.dedup_by(|a, b| a.0 == b.0);
            out
        }
    }
}

/// What a frame from the peer changed here.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Stored {
    Nothing,
    /// A health or results register (only sessions with peers that hold
    /// the fleet's health are told).
    Registers,
    /// The document (every session is told).
    Document,
}

impl Stored {
    fn registers(any: bool) -> Stored {
        if any {
            Stored::Registers
        } else {
            Stored::Nothing
        }
    }
}

pub(crate) struct Session {
    host: Arc<dyn Host>,
    remote: MemberKey,
    remote_name: String,
    conn: Connection,
    send: SendStream,
    sync: SyncState,
    /// Changes from the peer that wait for a dependency.
    gate: verify::Gate,
    /// When a probe last restarted the handshake.
    last_reset: Option<Instant>,
    /// node id → highest health seq the peer is known to hold.
    peer_health: HashMap<String, u64>,
    /// Whether the peer takes command results registers (its hello's
    /// `Features::results`); a peer from before them is sent none.
    speaks_results: bool,
    /// Whether the peer takes health registers packed (`Features::packed_health`).
    speaks_packed: bool,
    /// Whether it takes those with tunnel records packed too
    /// (`Features::packed_tunnels`).
    speaks_packed_tunnels: bool,
    /// node id → highest results register seq the peer is known to hold.
    peer_results: HashMap<String, u64>,
    bytes_out: u64,
}

/// The peer's hello, its [`Origin`] if it sent one (a peer from before
/// origins does not), and the [`Features`] it speaks.
pub(crate) async fn read_hello(
    recv: &mut RecvStream,
) -> Result<(Hello, Option<Origin>, Features), SessionError> {
    match tokio::time::timeout(HELLO_TIMEOUT, wire::read_hello_frame(recv)).await {
        Err(_) => Err(SessionError::HelloTimeout),
        Ok(Err(e)) => Err(e.into()),
        Ok(Ok(f)) => match f.msg {
            Msg::Hello(h) => Ok((h, f.origin, f.features)),
            Msg::Refuse(r) => Err(SessionError::RefusedByPeer(r)),
            _ => Err(SessionError::Protocol(
                "the first frame was not a hello".into(),
            )),
        },
    }
}

pub(crate) fn check_hello(h: &Hello, fleet_id: &str) -> Result<(), SessionError> {
    if h.protocol != PROTOCOL_VERSION {
        return Err(SessionError::Refused(format!(
            "protocol version {} is not supported (this replica speaks {PROTOCOL_VERSION}){}",
            h.protocol,
            if h.protocol < 4 {
                ": the peer runs a fleetdeck from before changes were signed; upgrade it"
            } else {
                ""
            }
        )));
    }
    if h.name.chars().count() > 128 || h.name.chars().any(char::is_control) {
        return Err(SessionError::Refused(
            "the hello's name is not 1 to 128 printable characters".into(),
        ));
    }
    if h.fleet_id != fleet_id {
        return Err(SessionError::Refused(format!(
            "fleet {} is not this replica's fleet {fleet_id}",
            h.fleet_id
        )));
    }
    Ok(())
}

impl Session {
    pub(crate) fn new(
        host: Arc<dyn Host>,
        remote: MemberKey,
        remote_name: String,
        conn: Connection,
        send: SendStream,
        features: Features,
    ) -> Self {
        Session {
            host,
            remote,
            remote_name,
            conn,
            send,
            sync: SyncState::new(),
            gate: verify::Gate::default(),
            last_reset: None,
            peer_health: HashMap::new(),
            speaks_results: features.results,
            speaks_packed: features.packed_health,
            speaks_packed_tunnels: features.packed_health && features.packed_tunnels,
            peer_results: HashMap::new(),
            bytes_out: 0,
        }
    }

    /// Ends the session once the peer's key is revoked (a revocation that
    /// arrived from anyone, or was made here): nothing more is sent to it.
    fn check_not_revoked(&self) -> Result<(), SessionError> {
        let revoked = self
            .host
            .replica()
            .state()
            .revoked
            .contains_key(&self.remote);
        if revoked {
            tracing::warn!(peer = %self.remote.short(), name = %self.remote_name, "closed the session: the peer's key was revoked");
            return Err(SessionError::Refused(format!(
                "{} was revoked by an admin of this fleet",
                self.remote.short()
            )));
        }
        Ok(())
    }

    async fn send(&mut self, msg: &Msg) -> Result<(), SessionError> {
        self.check_not_revoked()?;
        let faults = self.host.faults();
        if faults.blocked(self.host.me(), &self.remote) {
            return Err(SessionError::Partitioned);
        }
        if faults.should_drop() {
            return Err(SessionError::InjectedDrop);
        }
        let delay = faults.delay();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let n = wire::write_msg(&mut self.send, msg).await?;
        self.bytes_out += n as u64;
        self.host.stats().add_out(n as u64);
        Ok(())
    }

    /// The document sync message to send now, if the protocol has one.
    fn doc_message(&mut self) -> Option<Msg> {
        let mut r = self.host.replica();
        let (msg, changes) = verify::outgoing(&mut r, &mut self.sync)?;
        Some(Msg::Doc {
            sync: msg.encode(),
            changes,
        })
    }

    /// Who gets which health registers. Replicas of people (admin, operator
    /// and viewer members: hubs, laptops) hold the whole fleet's health and
    /// exchange all of it among themselves. A node replica holds its own
    /// register: it sends it to the people replicas it has sessions with and
    /// is sent nothing but its own (after a wiped disk, say). So a node's
    /// traffic does not grow with the fleet (BENCHMARKS.md, P7), and a
    /// laptop sees the health of every node it can reach.
    fn health_policy<'r>(&self, r: &'r Replica) -> HealthPolicy<'r> {
        let st = r.state();
        let holder = |k: &MemberKey| {
            st.members
                .get(k)
                .is_some_and(|m| m.role.holds_fleet_health())
        };
        let peer_holder = holder(&self.remote);
        HealthPolicy {
            both_holders: peer_holder && holder(self.host.me()),
            peer_holder,
            peers_nodes: st.nodes_run_by(&self.remote),
            my_nodes: st.nodes_run_by(self.host.me()),
        }
    }

    /// Whether the peer's replica holds the fleet's health (a hub, a
    /// laptop): a member whose role is read each time, since a role may
    /// change during a session.
    fn peer_holds_health(&self) -> bool {
        self.host
            .replica()
            .state()
            .members
            .get(&self.remote)
            .is_some_and(|m| m.role.holds_fleet_health())
    }

    /// The registers this replica holds of those the peer may send it.
    fn digest(&self) -> Msg {
        let r = self.host.replica();
        let policy = self.health_policy(&r);
        Msg::HealthDigest(
            policy
                .receivable(r.health())
                .into_iter()
                .map(|(node, s)| (node.clone(), s.reg.seq))
                .collect(),
        )
    }

    /// Registers this replica holds that the peer is not known to hold and
    /// is to be sent: packed to a peer that takes them so (a heartbeat is
    /// most of what a node sends; BENCHMARKS.md, P7), as their bytes
    /// otherwise and for a register that does not pack.
    fn newer_health(&mut self) -> Vec<Msg> {
        let r = self.host.replica();
        let policy = self.health_policy(&r);
        let now = fleetdeck_store::now_ms();
        let mut out = Vec::new();
        let mut packed = Vec::new();
        let mut packed_tunnels = Vec::new();
        for (node, s) in policy.sendable(r.health()) {
            if self
                .peer_health
                .get(node)
                .is_none_or(|seq| *seq < s.reg.seq)
            {
                self.peer_health.insert(node.clone(), s.reg.seq);
                // As its node signed it; one stored before registers were
                // signed is not sent (the peer would refuse it).
                let signed = match r.signed_health(node) {
                    Ok(Some(signed)) => signed,
                    Ok(None) => continue,
                    Err(e) => {
                        tracing::warn!(%node, "could not read the health register to send: {e}");
                        continue;
                    }
                };
                let age = u64::try_from(now - s.received_ms).unwrap_or(0);
                if let Some(p) = self.speaks_packed.then(|| signed.pack()).flatten() {
                    packed.push((p, signed.sig, age));
                } else if let Some(p) = self
                    .speaks_packed_tunnels
                    .then(|| signed.pack_as(PackedForm::WithTunnels))
                    .flatten()
                {
                    packed_tunnels.push((p, signed.sig, age));
                } else {
                    out.push((signed, age));
                }
            }
        }
        drop(r);
        let mut msgs = Vec::new();
        if !packed.is_empty() {
            msgs.push(Msg::HealthPacked(packed));
        }
        if !packed_tunnels.is_empty() {
            msgs.push(Msg::HealthPackedTunnels(packed_tunnels));
        }
        if !out.is_empty() {
            msgs.push(Msg::Health(out));
        }
        msgs
    }

    async fn send_newer_health(&mut self) -> Result<(), SessionError> {
        for m in self.newer_health() {
            self.send(&m).await?;
        }
        Ok(())
    }

    /// The results registers this replica holds of those the peer may
    /// send it (the health policy: `health_policy`); `None` for a peer
    /// that does not take results registers.
    fn results_digest(&self) -> Option<Msg> {
        if !self.speaks_results {
            return None;
        }
        let r = self.host.replica();
        let policy = self.health_policy(&r);
        Some(Msg::ResultsDigest(
            policy
                .receivable(r.results_registers())
                .into_iter()
                .map(|(node, s)| (node.clone(), s.reg.seq))
                .collect(),
        ))
    }

    /// Results registers this replica holds that the peer is not known to
    /// hold and is to be sent (the health policy), as their nodes signed
    /// them, in frames of at most `RESULTS_PER_FRAME` bytes of registers.
    fn newer_results(&mut self) -> Vec<Msg> {
        if !self.speaks_results {
            return Vec::new();
        }
        let r = self.host.replica();
        let policy = self.health_policy(&r);
        let mut frames = Vec::new();
        let mut batch = Vec::new();
        let mut bytes = 0;
        for (node, s) in policy.sendable(r.results_registers()) {
            if self
                .peer_results
                .get(node)
                .is_some_and(|seq| *seq >= s.reg.seq)
            {
                continue;
            }
            let signed = match r.signed_results(node) {
                Ok(Some(signed)) => signed,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(%node, "could not read the results register to send: {e}");
                    continue;
                }
            };
            self.peer_results.insert(node.clone(), s.reg.seq);
            if bytes + signed.bytes.len() > wire::RESULTS_PER_FRAME && !batch.is_empty() {
                frames.push(Msg::Results(std::mem::take(&mut batch)));
                bytes = 0;
            }
            bytes += signed.bytes.len() + signed.sig.len();
            batch.push(signed);
        }
        if !batch.is_empty() {
            frames.push(Msg::Results(batch));
        }
        frames
    }

    async fn send_newer_results(&mut self) -> Result<(), SessionError> {
        for m in self.newer_results() {
            self.send(&m).await?;
        }
        Ok(())
    }

    async fn push(&mut self) -> Result<(), SessionError> {
        if let Some(m) = self.doc_message() {
            self.send(&m).await?;
        }
        self.send_newer_health().await?;
        self.send_newer_results().await
    }

    /// Logs what was refused of the registers (`what`: health, command
    /// results) a frame brought, and says whether any was stored. Nodes
    /// the document does not name yet (registers may come before the
    /// document on a first sync) get one line for them all.
    fn report(&self, admitted: Vec<fleetdeck_store::health::Admission>, what: &str) -> bool {
        use fleetdeck_store::health::{Admission, Refusal};
        let mut changed = false;
        let mut unknown: Vec<String> = Vec::new();
        for a in admitted {
            match a {
                Admission::Stored => changed = true,
                Admission::Kept => {}
                Admission::Refused {
                    node,
                    why: Refusal::UnknownNode,
                } => unknown.push(node),
                Admission::Refused { node, why } => {
                    tracing::warn!(peer = %self.remote.short(), %node, "refused a {what}: {why}");
                }
            }
        }
        if !unknown.is_empty() {
            let some = &unknown[..unknown.len().min(5)];
            tracing::warn!(peer = %self.remote.short(), count = unknown.len(), nodes = ?some, "refused {what}s of nodes not in this replica's fleet");
        }
        changed
    }

    /// Handles one frame from the peer; returns what of the local replica
    /// changed.
    fn handle(&mut self, msg: Msg) -> Result<Stored, SessionError> {
        match msg {
            Msg::Doc { sync, changes } => {
                let m = Message::decode(&sync).map_err(|e| {
                    SessionError::Protocol(format!("undecodable sync message: {e}"))
                })?;
                let mut r = self.host.replica();
                let admitted = verify::receive(&mut r, &mut self.sync, &mut self.gate, m, changes)?;
                drop(r);
                self.host
                    .synced(&self.remote, self.sync.their_heads.clone());
                Ok(if admitted.accepted > 0 {
                    Stored::Document
                } else {
                    Stored::Nothing
                })
            }
            Msg::HealthDigest(list) => {
                // Only nodes of the fleet: the peer's word on others would
                // grow this map for nothing.
                let r = self.host.replica();
                for (node, seq) in list {
                    let known = fleetdeck_store::NodeId::parse(&node)
                        .is_ok_and(|n| r.state().nodes.contains_key(&n));
                    if known {
                        let e = self.peer_health.entry(node).or_default();
                        *e = (*e).max(seq);
                    }
                }
                Ok(Stored::Nothing)
            }
            Msg::HealthPacked(packed) => self.take_packed_health(packed, PackedForm::Plain),
            Msg::HealthPackedTunnels(packed) => {
                self.take_packed_health(packed, PackedForm::WithTunnels)
            }
            Msg::Health(regs) => self.take_health(regs, Vec::new()),
            Msg::ResultsDigest(list) => {
                let r = self.host.replica();
                for (node, seq) in list {
                    let known = fleetdeck_store::NodeId::parse(&node)
                        .is_ok_and(|n| r.state().nodes.contains_key(&n));
                    if known {
                        let e = self.peer_results.entry(node).or_default();
                        *e = (*e).max(seq);
                    }
                }
                Ok(Stored::Nothing)
            }
            Msg::Results(regs) => {
                let mut r = self.host.replica();
                for signed in &regs {
                    if let Ok(reg) = signed.decode()
                        && let Ok(n) = fleetdeck_store::NodeId::parse(&reg.node)
                        && r.state().nodes.contains_key(&n)
                    {
                        let e = self.peer_results.entry(reg.node).or_default();
                        *e = (*e).max(reg.seq);
                    }
                }
                // Each register is judged alone (signed by the key bound to
                // its node, a plausible seq, within bounds); a refused one
                // is named in the log and the session goes on.
                let admitted = r.admit_results_batch(&regs)?;
                drop(r);
                Ok(Stored::registers(
                    self.report(admitted, "command results register"),
                ))
            }
            Msg::Probe(theirs) => {
                // At most one restart per anti-entropy interval: a peer
                // that keeps sending a wrong digest would otherwise make
                // this replica rebuild its bloom filter over the whole
                // history for every probe.
                let due = self
                    .last_reset
                    .is_none_or(|t| t.elapsed() >= self.host.anti_entropy() / 2);
                if due && theirs != self.host.replica().heads_digest() {
                    // Not in step: redo the whole handshake (heads and bloom
                    // filters) rather than trust what this session believes
                    // the peer has. The reply goes out below, like any reply.
                    self.sync = SyncState::new();
                    self.last_reset = Some(Instant::now());
                }
                Ok(Stored::Nothing)
            }
            Msg::Hello(_) => Err(SessionError::Protocol("a second hello".into())),
            Msg::Refuse(why) => Err(SessionError::RefusedByPeer(why)),
        }
    }

    /// Registers packed in `form`: each unpacked (one that does not is
    /// refused alone), then taken as [`Self::take_health`] takes them.
    fn take_packed_health(
        &mut self,
        packed: Vec<(Vec<u8>, Vec<u8>, u64)>,
        form: PackedForm,
    ) -> Result<Stored, SessionError> {
        let mut regs = Vec::with_capacity(packed.len());
        let mut refused = Vec::new();
        for (p, sig, age_ms) in packed {
            match SignedRegister::unpack_as(&p, sig, form) {
                Ok(signed) => regs.push((signed, age_ms)),
                Err(why) => refused.push(fleetdeck_store::health::Admission::Refused {
                    node: "?".into(),
                    why,
                }),
            }
        }
        self.take_health(regs, refused)
    }

    /// Offers registers from the peer to the replica, each checked alone
    /// (signed by the key bound to its node, a plausible seq): a refused one
    /// is the peer's problem, not a reason to end the session. `admitted`
    /// holds those refused before (packed ones that did not unpack).
    fn take_health(
        &mut self,
        regs: Vec<(SignedRegister, u64)>,
        mut admitted: Vec<fleetdeck_store::health::Admission>,
    ) -> Result<Stored, SessionError> {
        let mut r = self.host.replica();
        for (signed, age_ms) in regs {
            if let Ok(reg) = signed.decode()
                && let Ok(n) = fleetdeck_store::NodeId::parse(&reg.node)
                && r.state().nodes.contains_key(&n)
            {
                let e = self.peer_health.entry(reg.node).or_default();
                *e = (*e).max(reg.seq);
            }
            admitted.push(r.admit_health(&signed, age_ms)?);
        }
        drop(r);
        Ok(Stored::registers(self.report(admitted, "health register")))
    }

    fn in_sync(&mut self) -> bool {
        let mut r = self.host.replica();
        let ours = r.heads();
        self.sync.their_heads.as_ref().is_some_and(|h| {
            let mut a = h.clone();
            let mut b = ours.clone();
            a.sort();
            b.sort();
            a == b
        })
    }

    /// Runs until the peer goes away, the session is refused or dropped, or
    /// (in `Once` mode) both sides are in sync.
    pub(crate) async fn run(mut self, recv: RecvStream, mode: Mode) -> Result<(), SessionError> {
        let (tx, mut rx) = mpsc::channel::<Result<(Msg, usize), WireError>>(64);
        // Reading a frame is not cancel-safe, so one task reads and this
        // loop selects over what it delivers.
        let reader = tokio::spawn(async move {
            let mut recv = recv;
            loop {
                let r = wire::read_msg(&mut recv).await;
                let stop = r.is_err();
                if tx.send(r).await.is_err() || stop {
                    break;
                }
            }
        });
        let mut result = self.main_loop(&mut rx, mode).await;
        reader.abort();
        // The peer closing its end with code 0 is a normal goodbye.
        if let Err(SessionError::Wire(WireError::Io(_) | WireError::Closed)) = &result
            && matches!(self.conn.close_reason(), Some(ConnectionError::ApplicationClosed(c)) if c.error_code == VarInt::from_u32(0))
        {
            result = Ok(());
        }
        let (code, reason): (u32, &[u8]) = match &result {
            Ok(()) => (0, b"done"),
            Err(SessionError::Refused(_)) => (403, b"refused"),
            Err(SessionError::Duplicate) => (409, b"duplicate session"),
            Err(_) => (1, b"session ended"),
        };
        if let Err(SessionError::Refused(why)) = &result {
            let _ = wire::write_msg(&mut self.send, &Msg::Refuse(why.clone())).await;
        }
        let _ = self.send.finish();
        self.conn.close(VarInt::from_u32(code), reason);
        result
    }

    async fn main_loop(
        &mut self,
        rx: &mut mpsc::Receiver<Result<(Msg, usize), WireError>>,
        mode: Mode,
    ) -> Result<(), SessionError> {
        // A peer that holds the fleet's health is sent registers as they
        // are stored: its session wakes on every change. Any other (a node)
        // is sent only the document's changes and wakes only on those (a
        // hub's thousand node sessions would otherwise all wake for every
        // heartbeat; BENCHMARKS.md, P10).
        let mut changed = self.host.subscribe();
        let mut doc_changed = self.host.subscribe_doc();
        let mut anti_entropy = tokio::time::interval(self.host.anti_entropy());
        anti_entropy.tick().await;
        let digest = self.digest();
        self.send(&digest).await?;
        if let Some(digest) = self.results_digest() {
            self.send(&digest).await?;
        }
        // Health and results go out once the peer's digest says what it
        // lacks.
        if let Some(m) = self.doc_message() {
            self.send(&m).await?;
        }
        let mut last_rx = Instant::now();
        let mut last_push: Option<Instant> = None;
        // A `sync --once` session checks every 50 ms whether it is done; a
        // kept one wakes only for frames, changes, its anti-entropy tick and
        // a partition set by a test (a hub's thousand sessions ticking
        // every 50 ms cost a tenth of a core; BENCHMARKS.md, P10).
        let mut idle = tokio::time::interval(Duration::from_millis(50));
        let once = matches!(mode, Mode::Once(_));
        let mut cuts = self.host.faults().subscribe_cuts();
        let mut cuts_open = true;
        loop {
            let peer_holder = self.peer_holds_health();
            let changes = if peer_holder {
                &mut changed
            } else {
                &mut doc_changed
            };
            tokio::select! {
                frame = rx.recv() => {
                    let (msg, n) = match frame {
                        Some(Ok(f)) => f,
                        Some(Err(WireError::Closed)) | None => return Ok(()),
                        Some(Err(e)) => return Err(e.into()),
                    };
                    self.host.stats().add_in(n as u64);
                    last_rx = Instant::now();
                    if self.host.faults().blocked(self.host.me(), &self.remote) {
                        return Err(SessionError::Partitioned);
                    }
                    let was_digest = matches!(msg, Msg::HealthDigest(_));
                    let was_results_digest = matches!(msg, Msg::ResultsDigest(_));
                    match self.handle(msg)? {
                        Stored::Document => self.host.changed(),
                        Stored::Registers => self.host.registers_changed(),
                        Stored::Nothing => {}
                    }
                    self.check_not_revoked()?;
                    if was_digest {
                        self.send_newer_health().await?;
                    } else if was_results_digest {
                        self.send_newer_results().await?;
                    } else if let Some(m) = self.doc_message() {
                        self.send(&m).await?;
                    }
                }
                r = changes.changed() => {
                    if r.is_err() {
                        return Ok(());
                    }
                    self.check_not_revoked()?;
                    // The first change after a quiet spell goes out at once;
                    // the rest of a burst is gathered into one push at most
                    // every COALESCE.
                    if let Some(t) = last_push {
                        let wait = COALESCE.saturating_sub(t.elapsed());
                        if !wait.is_zero() {
                            tokio::time::sleep(wait).await;
                        }
                    }
                    changes.borrow_and_update();
                    self.push().await?;
                    last_push = Some(Instant::now());
                }
                _ = anti_entropy.tick() => {
                    // The safety net must not depend on the sync state it is
                    // a net for: send the heads; a peer whose heads differ
                    // restarts the handshake. In step, this costs one small
                    // frame each way (and the digest, when there is one).
                    let digest = self.host.replica().heads_digest();
                    self.send(&Msg::Probe(digest)).await?;
                    let digest = self.digest();
                    if !matches!(&digest, Msg::HealthDigest(d) if d.is_empty()) {
                        self.send(&digest).await?;
                    }
                    if let Some(digest) = self.results_digest()
                        && !matches!(&digest, Msg::ResultsDigest(d) if d.is_empty())
                    {
                        self.send(&digest).await?;
                    }
                    self.push().await?;
                }
                r = cuts.changed(), if cuts_open => {
                    // The sender lives as long as the engine; if it is gone,
                    // stop listening rather than spin.
                    cuts_open = r.is_ok();
                    if self.host.faults().blocked(self.host.me(), &self.remote) {
                        return Err(SessionError::Partitioned);
                    }
                }
                _ = idle.tick(), if once => {
                    if self.host.faults().blocked(self.host.me(), &self.remote) {
                        return Err(SessionError::Partitioned);
                    }
                    if let Mode::Once(quiet) = mode
                        && last_rx.elapsed() >= quiet
                        && self.in_sync()
                    {
                        return Ok(());
                    }
                }
            }
        }
    }

    pub(crate) fn remote_name(&self) -> &str {
        &self.remote_name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[(&String, &u64)]) -> Vec<String> {
        let mut out: Vec<String> = v.iter().map(|(k, _)| (*k).clone()).collect();
        out.sort();
        out
    }

    #[test]
    fn registers_go_to_holders_whole_and_to_a_node_only_its_own() {
        let held: HashMap<String, u64> = ["n1", "n2", "n3", "hub-node"]
            .into_iter()
            .map(|n| (n.to_string(), 1))
            .collect();
        let n2 = [NodeId::parse("n2").unwrap()];
        let mine = [NodeId::parse("hub-node").unwrap()];
        // A hub (a holder that runs a node itself) with a node peer.
        let to_node = HealthPolicy {
            both_holders: false,
            peer_holder: false,
            peers_nodes: &n2,
            my_nodes: &mine,
        };
        assert_eq!(ids(&to_node.sendable(&held)), ["n2"]);
        assert_eq!(ids(&to_node.receivable(&held)), ["hub-node", "n2"]);
        // Two hubs: everything both ways.
        let to_hub = HealthPolicy {
            both_holders: true,
            peer_holder: true,
            peers_nodes: &[],
            my_nodes: &mine,
        };
        assert_eq!(to_hub.sendable(&held).len(), 4);
        assert_eq!(to_hub.receivable(&held).len(), 4);
        // A node with its hub: it sends everything it holds (its own) and
        // takes back only its own.
        let node_to_hub = HealthPolicy {
            both_holders: false,
            peer_holder: true,
            peers_nodes: &[],
            my_nodes: &n2,
        };
        assert_eq!(node_to_hub.sendable(&held).len(), 4);
        assert_eq!(ids(&node_to_hub.receivable(&held)), ["n2"]);
    }
}
