//! The acceptor's side of a session: the hello, then members are let in,
//! and a replica that is not a member only with an invite this replica
//! issued (it is enrolled on the spot).

use std::sync::Arc;
use std::time::Duration;

use iroh::endpoint::{Connection, SendStream};
use iroh::protocol::{AcceptError, ProtocolHandler};

use crate::bind::member_key;
use crate::engine::Inner;
use crate::peers::{Claim, Established};
use crate::session::{self, Mode, SessionError};
use crate::wire::Msg;

/// What the endpoint's router hands incoming connections on fleetdeck's
/// ALPN to.
pub(crate) struct Acceptor(pub(crate) Arc<Inner>);

impl std::fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Acceptor")
    }
}

impl ProtocolHandler for Acceptor {
    async fn accept(&self, conn: Connection) -> Result<(), AcceptError> {
        match accept_session(self.0.clone(), conn).await {
            Ok(()) => Ok(()),
            Err(e) if e.made_way() => Ok(()),
            Err(e) => Err(AcceptError::from_err(std::io::Error::other(e.to_string()))),
        }
    }
}

/// The acceptor's side of the hello, then the session to its end.
async fn accept_session(inner: Arc<Inner>, conn: Connection) -> Result<(), SessionError> {
    let remote = member_key(&conn.remote_id());
    if inner.faults.blocked(&inner.key, &remote) {
        conn.close(503u32.into(), b"partitioned");
        return Err(SessionError::Partitioned);
    }
    let (mut send, mut recv) = conn
        .accept_bi()
        .await
        .map_err(|e| SessionError::Protocol(format!("no stream: {e}")))?;
    let (hello, origin, features) = session::read_hello(&mut recv).await?;
    if let Err(SessionError::Refused(why)) = session::check_hello(&hello, &inner.fleet_id) {
        tracing::warn!(peer = %remote, "refused a session: {why}");
        return Err(refuse(&mut send, &conn, why).await);
    }
    let revoked = inner.lock_replica().state().revoked.contains_key(&remote);
    if revoked {
        tracing::warn!(peer = %remote, name = %hello.name, "refused a revoked key");
        return Err(refuse(
            &mut send,
            &conn,
            format!("{} was revoked by an admin of this fleet", remote.short()),
        )
        .await);
    }
    let is_member = inner.lock_replica().state().members.contains_key(&remote);
    if !is_member {
        let Some(secret) = hello.token.as_deref() else {
            tracing::warn!(peer = %remote, name = %hello.name, "refused an unknown key (not a member, no invite)");
            return Err(refuse(
                &mut send,
                &conn,
                format!("{remote} is not a member of this fleet"),
            )
            .await);
        };
        let redeemed = inner
            .lock_replica()
            .redeem_invite(secret, &remote, &hello.name);
        match redeemed {
            Ok(role) => {
                tracing::info!(peer = %remote, name = %hello.name, %role, "enrolled a new member");
                inner.notify_changed();
            }
            Err(e) => {
                tracing::warn!(peer = %remote, name = %hello.name, "refused an invite: {e}");
                return Err(refuse(&mut send, &conn, e.to_string()).await);
            }
        }
    }
    crate::wire::write_hello(&mut send, &inner.hello(None), inner.origin())
        .await
        .map_err(SessionError::from)?;
    let claim = Claim {
        dialer: remote.clone(),
        run: origin.map(|o| o.run),
        dial: origin.map(|o| o.dial),
    };
    let est = Established {
        conn,
        send,
        recv,
        remote,
        remote_name: hello.name,
        claim,
        features,
    };
    inner.drive(est, Mode::Keep).await
}

/// Tells the peer why, then closes.
async fn refuse(send: &mut SendStream, conn: &Connection, why: String) -> SessionError {
    let _ = crate::wire::write_msg(send, &Msg::Refuse(why.clone())).await;
    let _ = send.finish();
    // Give the refusal time to arrive before the connection closes.
    tokio::time::sleep(Duration::from_millis(100)).await;
    conn.close(403u32.into(), b"refused");
    SessionError::Refused(why)
}
