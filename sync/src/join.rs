//! Joining a fleet with an invite: a fresh data dir gets an identity,
//! presents the invite to the inviter, and receives the whole fleet. The
//! joiner trusts what the inviter sends (it holds no member list yet); from
//! then on its replica verifies every change like any other.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use automerge::sync::{ChunkList, Message, State, SyncDoc};
use automerge::{AutoCommit, ReadDoc};
use fleetdeck_store::replica::{DB_FILE, SignedChange, load_or_create_identity};
use fleetdeck_store::{Replica, StoreError, now_ms};
use iroh::address_lookup::MemoryLookup;
use iroh::endpoint::VarInt;
use iroh::{EndpointAddr, EndpointId};

use crate::bind::{bind_endpoint, bind_endpoint_through, relay_of_invite};
use crate::error::SyncError;
use crate::session::read_hello;
use crate::token::InviteToken;
use crate::verify;
use crate::wire::{self, ALPN, Hello, Msg, PROTOCOL_VERSION, WireError};

pub async fn join(
    dir: &Path,
    token: &InviteToken,
    name: &str,
    listen: SocketAddr,
    limit: Duration,
) -> Result<Replica, SyncError> {
    if dir.join(DB_FILE).exists() {
        return Err(StoreError::ReplicaExists(dir.to_path_buf()).into());
    }
    token
        .check_fresh(now_ms())
        .map_err(|e| SyncError::Invalid(e.to_string()))?;
    if name.trim().is_empty() {
        return Err(SyncError::Invalid("--name must not be empty".into()));
    }
    let identity = load_or_create_identity(dir)?;
    let lookup = MemoryLookup::new();
    // Through the fleet's relay too when the invite names one: a joiner
    // behind NAT, or an inviter that no direct address reaches.
    let relay = token.relay.as_ref().map(relay_of_invite).transpose()?;
    let endpoint = match &relay {
        Some((_, map, tls)) => {
            bind_endpoint_through(
                identity.secret_bytes(),
                listen,
                &lookup,
                Some(map.clone()),
                Some(tls.clone()),
            )
            .await?
        }
        None => bind_endpoint(identity.secret_bytes(), listen, &lookup).await?,
    };
    let relay_url = relay.map(|(url, _, _)| url);
    let fetched = fetch(&endpoint, token, relay_url, name, limit).await;
    crate::bind::close_endpoint(endpoint, None).await;
    Ok(Replica::init_from_changes(dir, fetched?)?)
}

/// Presents the invite and receives the whole fleet document.
async fn fetch(
    endpoint: &iroh::Endpoint,
    token: &InviteToken,
    relay: Option<iroh::RelayUrl>,
    name: &str,
    limit: Duration,
) -> Result<Vec<SignedChange>, SyncError> {
    let inviter = EndpointId::from_bytes(&token.inviter)
        .map_err(|_| SyncError::Invalid("the invite token names no valid inviter key".into()))?;
    let mut addr = EndpointAddr::new(inviter);
    let mut ways: Vec<String> = token.addrs.iter().map(|a| a.to_string()).collect();
    for a in &token.addrs {
        addr = addr.with_ip_addr(*a);
    }
    if let Some(url) = relay {
        ways.push(format!("relay {url}"));
        addr = addr.with_relay_url(url);
    }
    let peer = format!("the inviter at {}", ways.join(", "));
    let fail = |detail: String| SyncError::Connect {
        peer: peer.clone(),
        detail,
    };
    let conn = tokio::time::timeout(Duration::from_secs(10), endpoint.connect(addr, ALPN))
        .await
        .map_err(|_| fail("timed out (is `fleetdeck serve` running there?)".into()))?
        .map_err(|e| fail(e.to_string()))?;
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| fail(e.to_string()))?;
    let hello = Hello {
        protocol: PROTOCOL_VERSION,
        fleet_id: token.fleet_id.clone(),
        name: name.to_string(),
        token: Some(token.secret.clone()),
    };
    wire::write_msg(&mut send, &Msg::Hello(hello))
        .await
        .map_err(|e| fail(e.to_string()))?;
    let (theirs, _, _) = read_hello(&mut recv)
        .await
        .map_err(|e| fail(e.to_string()))?;
    if theirs.fleet_id != token.fleet_id {
        return Err(fail(format!(
            "it answered for fleet {}, not the invite's",
            theirs.fleet_id
        )));
    }

    // The joiner holds no member list yet, so it cannot judge who may
    // write what: it takes the fleet the inviter (whose key the token names)
    // sends, every change with a valid signature by its author. From then
    // on its replica judges every change like any other.
    let mut doc = AutoCommit::new();
    let mut state = State::new();
    let mut received: Vec<SignedChange> = Vec::new();
    let started = Instant::now();
    if let Some(m) = doc.sync().generate_sync_message(&mut state) {
        let msg = Msg::Doc {
            sync: m.encode(),
            changes: Vec::new(),
        };
        wire::write_msg(&mut send, &msg)
            .await
            .map_err(|e| fail(e.to_string()))?;
    }
    loop {
        let left = limit.saturating_sub(started.elapsed());
        let frame = tokio::time::timeout(left, wire::read_msg(&mut recv))
            .await
            .map_err(|_| {
                fail(format!(
                    "the fleet did not arrive within {}s",
                    limit.as_secs()
                ))
            })?;
        let msg = match frame {
            Ok((m, _)) => m,
            Err(WireError::Closed) => return Err(fail("the inviter closed the session".into())),
            Err(e) => return Err(fail(e.to_string())),
        };
        match msg {
            Msg::Doc { sync, changes } => {
                let mut m = Message::decode(&sync)
                    .map_err(|e| fail(format!("undecodable sync message: {e}")))?;
                m.changes = ChunkList::empty();
                let mut refused = verify::Admitted::default();
                for c in verify::decode(changes, &mut refused) {
                    if doc.get_change_by_hash(&c.change.hash()).is_some() {
                        continue;
                    }
                    c.verify()
                        .map_err(|e| fail(format!("refused the fleet: {e}")))?;
                    doc.apply_changes([c.change.clone()])
                        .map_err(|e| fail(e.to_string()))?;
                    received.push(c);
                }
                if let Some(r) = refused.refused.first() {
                    return Err(fail(format!("refused the fleet: a change {}", r.reason)));
                }
                doc.sync()
                    .receive_sync_message(&mut state, m)
                    .map_err(|e| fail(e.to_string()))?;
                if let Some(reply) = doc.sync().generate_sync_message(&mut state) {
                    let msg = Msg::Doc {
                        sync: reply.encode(),
                        changes: Vec::new(),
                    };
                    wire::write_msg(&mut send, &msg)
                        .await
                        .map_err(|e| fail(e.to_string()))?;
                }
            }
            Msg::Refuse(why) => return Err(fail(format!("refused: {why}"))),
            // Health comes with the first `serve`; the fleet is what matters here.
            _ => {}
        }
        let mut ours = doc.get_heads();
        ours.sort();
        let done = state.their_heads.as_ref().is_some_and(|h| {
            let mut h = h.clone();
            h.sort();
            !h.is_empty() && h == ours
        });
        if done {
            break;
        }
    }
    let _ = send.finish();
    conn.close(VarInt::from_u32(0), b"joined");
    // Only what the document holds: a change whose dependency never came
    // is left out.
    received.retain(|c| doc.get_change_by_hash(&c.change.hash()).is_some());
    // The fleet received must be the one the invite names.
    let fleet_id = doc
        .get(automerge::ROOT, "meta")
        .ok()
        .flatten()
        .and_then(|(_, meta)| doc.get(&meta, "fleet_id").ok().flatten())
        .and_then(|(v, _)| v.as_str().map(str::to_string));
    if fleet_id.as_deref() != Some(token.fleet_id.as_str()) {
        return Err(fail(format!(
            "it sent a document of fleet {}, not of the invite's fleet {}",
            fleet_id.as_deref().unwrap_or("(none)"),
            token.fleet_id
        )));
    }
    Ok(received)
}
