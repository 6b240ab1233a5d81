//! One WireGuard session (boringtun's `noise::Tunn`) whose datagrams ride an
//! iroh connection as QUIC datagrams, or plain UDP (a standard WireGuard
//! client): what either end of a tunnel puts IP packets into and takes them
//! out of.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use boringtun::noise::{Tunn, TunnResult, errors::WireGuardError};
use bytes::Bytes;
use iroh::endpoint::{Connection, SendDatagramError};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// What carries a tunnel's WireGuard datagrams.
pub(crate) enum Carrier {
    /// QUIC datagrams of an iroh connection (fleetdeck at both ends).
    Quic(Connection),
    /// Plain UDP from a standard WireGuard client: the node's socket, the
    /// datagrams its demultiplexer routed to this session, where the client
    /// was last heard from in a datagram WireGuard accepted, and when.
    Udp {
        socket: Arc<UdpSocket>,
        peer: SocketAddr,
        rx: mpsc::Receiver<(Bytes, SocketAddr)>,
        heard: std::time::Instant,
    },
}

/// WireGuard's overhead on an IP packet: a 16-byte header and a 16-byte tag.
pub(crate) const WG_OVERHEAD: usize = 32;
/// The smallest buffer boringtun writes a handshake into.
const MIN_BUF: usize = 148;
/// The largest IP packet a tunnel carries (a standard WireGuard MTU).
pub(crate) const MAX_MTU: usize = 1420;
/// A plain WireGuard client not heard for this long is gone.
const UDP_SILENCE: std::time::Duration = std::time::Duration::from_secs(180);
/// A plain WireGuard client must finish its handshake within this.
const UDP_HANDSHAKE: std::time::Duration = std::time::Duration::from_secs(15);

/// What became of a datagram from the peer: IP packets for the stack,
/// each with its source address.
pub(crate) type Inbound = Vec<(Vec<u8>, Ipv4Addr)>;

pub(crate) struct Link {
    tunn: Tunn,
    carrier: Carrier,
    buf: Vec<u8>,
    /// Packets dropped because the path could not take them now.
    pub(crate) dropped: u64,
    /// Whether a datagram WireGuard refused was logged (once a tunnel).
    refusal_logged: bool,
}

impl Link {
    pub(crate) fn new(tunn: Tunn, carrier: Carrier) -> Link {
        Link {
            tunn,
            carrier,
            // Room for any datagram (boringtun panics on a destination too
            // small for what arrives, before it checks anything).
            buf: vec![0u8; 65536 + MIN_BUF],
            dropped: 0,
            refusal_logged: false,
        }
    }

    /// The next datagram from the peer, and where it came from (plain
    /// UDP); an error when the path is gone.
    pub(crate) async fn recv(&mut self) -> Result<(Bytes, Option<SocketAddr>), String> {
        match &mut self.carrier {
            Carrier::Quic(c) => c
                .read_datagram()
                .await
                .map(|d| (d, None))
                .map_err(|e| e.to_string()),
            Carrier::Udp { rx, .. } => match rx.recv().await {
                Some((d, from)) => Ok((d, Some(from))),
                None => Err("the node's WireGuard socket closed".into()),
            },
        }
    }

    /// [`Link::recv`] when a datagram is there already.
    pub(crate) fn try_recv(&mut self) -> Option<Result<(Bytes, Option<SocketAddr>), String>> {
        match &mut self.carrier {
            Carrier::Quic(c) => n0_future::future::now_or_never(c.read_datagram())
                .map(|r| r.map(|d| (d, None)).map_err(|e| e.to_string())),
            Carrier::Udp { rx, .. } => match rx.try_recv() {
                Ok((d, from)) => Some(Ok((d, Some(from)))),
                Err(mpsc::error::TryRecvError::Empty) => None,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    Some(Err("the node's WireGuard socket closed".into()))
                }
            },
        }
    }

    /// The largest IP packet this path carries: what fits a QUIC datagram
    /// after WireGuard's overhead and padding, up to [`MAX_MTU`] (plain
    /// WireGuard: its standard MTU).
    pub(crate) fn mtu(&self) -> usize {
        match &self.carrier {
            Carrier::Quic(c) => {
                let fits = c
                    .max_datagram_size()
                    .unwrap_or(0)
                    .saturating_sub(WG_OVERHEAD);
                // WireGuard pads to 16 bytes.
                (fits & !15).min(MAX_MTU)
            }
            Carrier::Udp { .. } => MAX_MTU,
        }
    }

    /// Whether the connection's datagram buffer has room for `len` more
    /// bytes; when it has not, the stack holds its packets back.
    pub(crate) fn has_room(&self, len: usize) -> bool {
        match &self.carrier {
            Carrier::Quic(c) => c.datagram_send_buffer_space() >= len + WG_OVERHEAD + 16,
            Carrier::Udp { .. } => true,
        }
    }

    fn send(&mut self, len: usize) -> Result<(), SendDatagramError> {
        match &self.carrier {
            Carrier::Quic(c) => match c.send_datagram(Bytes::copy_from_slice(&self.buf[..len])) {
                Ok(()) => Ok(()),
                Err(SendDatagramError::TooLarge) => {
                    self.dropped += 1;
                    Ok(())
                }
                Err(e) => Err(e),
            },
            Carrier::Udp { socket, peer, .. } => {
                // A full socket buffer drops the datagram, as a network would.
                if socket.try_send_to(&self.buf[..len], *peer).is_err() {
                    self.dropped += 1;
                }
                Ok(())
            }
        }
    }

    /// A datagram WireGuard accepted came from `from`: where the client
    /// is now (roaming follows only what WireGuard authenticated).
    fn heard(&mut self, from: Option<SocketAddr>) {
        if let Carrier::Udp { peer, heard, .. } = &mut self.carrier {
            if let Some(from) = from {
                *peer = from;
            }
            *heard = std::time::Instant::now();
        }
    }

    /// Starts the handshake (the initiator's first datagram), or sends it
    /// again (`again`: one was lost).
    pub(crate) fn initiate(&mut self, again: bool) -> Result<(), SendDatagramError> {
        match self.tunn.format_handshake_initiation(&mut self.buf, again) {
            TunnResult::WriteToNetwork(p) => {
                let n = p.len();
                self.send(n)
            }
            _ => Ok(()),
        }
    }

    /// Encrypts an IP packet and sends it (queued inside boringtun while a
    /// handshake is under way).
    pub(crate) fn send_packet(&mut self, packet: &[u8]) -> Result<(), SendDatagramError> {
        match self.tunn.encapsulate(packet, &mut self.buf) {
            TunnResult::WriteToNetwork(p) => {
                let n = p.len();
                self.send(n)
            }
            TunnResult::Err(e) => {
                tracing::debug!("wireguard could not send a packet: {e:?}");
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Takes a datagram from the peer: answers handshakes, sends what
    /// boringtun queued, returns the IP packets it carried.
    pub(crate) fn receive(
        &mut self,
        datagram: &[u8],
        from: Option<SocketAddr>,
    ) -> Result<Inbound, SendDatagramError> {
        let mut packets = Vec::new();
        let mut input: &[u8] = datagram;
        let mut accepted = false;
        let src = from.map(|a| a.ip());
        // boringtun: after a WriteToNetwork, call again with nothing until
        // Done, to flush the packets it queued during the handshake.
        for _ in 0..1024 {
            match self.tunn.decapsulate(src, input, &mut self.buf) {
                TunnResult::Done => {
                    // A keep-alive, or the last of a queue flush.
                    if !accepted && !input.is_empty() && self.authenticated(input) {
                        self.heard(from);
                    }
                    break;
                }
                TunnResult::WriteToNetwork(p) => {
                    let n = p.len();
                    // A cookie reply (type 3) answers what was not checked.
                    let cookie = p.first() == Some(&3);
                    if !accepted && !cookie {
                        accepted = true;
                        self.heard(from);
                    }
                    self.send(n)?;
                    if cookie {
                        break;
                    }
                    input = &[];
                }
                TunnResult::WriteToTunnelV4(p, src) => {
                    packets.push((p.to_vec(), src));
                    if !accepted {
                        self.heard(from);
                    }
                    break;
                }
                TunnResult::WriteToTunnelV6(..) => break,
                TunnResult::Err(e) => {
                    // A key that is not the one the member record names
                    // (a stale record on one side) shows here first.
                    if !self.refusal_logged && !matches!(e, WireGuardError::ConnectionExpired) {
                        self.refusal_logged = true;
                        tracing::warn!(
                            "wireguard refused a datagram of a tunnel: {e:?} (a WireGuard key other than the member record's?)"
                        );
                    }
                    break;
                }
            }
        }
        Ok(packets)
    }

    /// Whether a datagram boringtun answered with nothing was a data
    /// packet (a keep-alive) it decrypted: the session's counters moved.
    fn authenticated(&self, datagram: &[u8]) -> bool {
        datagram.first() == Some(&4) && self.tunn.time_since_last_handshake().is_some()
    }

    /// WireGuard's timers (rekeys, keep-alives, handshake retries): call
    /// about every 250 ms. Over iroh, a session idle for 9 minutes expires
    /// (its keys are erased) without ending the tunnel: the next packet
    /// either way starts a new handshake, and a peer that is gone ends the
    /// connection under the tunnel (its idle timeout). Plain UDP has no
    /// connection: the tunnel ends when the client is not heard for
    /// [`UDP_SILENCE`] (it keeps alive every 25 s), or has not finished its
    /// handshake within [`UDP_HANDSHAKE`].
    pub(crate) fn tick(&mut self) -> Result<(), String> {
        if let Carrier::Udp { heard, .. } = &self.carrier {
            let quiet = heard.elapsed();
            if !self.established() && quiet > UDP_HANDSHAKE {
                return Err("no WireGuard handshake from the client".into());
            }
            if quiet > UDP_SILENCE {
                return Err(format!(
                    "the client was not heard for {} s",
                    UDP_SILENCE.as_secs()
                ));
            }
        }
        match self.tunn.update_timers(&mut self.buf) {
            TunnResult::WriteToNetwork(p) => {
                let n = p.len();
                self.send(n).map_err(|e| e.to_string())
            }
            _ => Ok(()),
        }
    }

    /// Whether the handshake has completed (a session is up).
    pub(crate) fn established(&self) -> bool {
        self.tunn.time_since_last_handshake().is_some()
    }
}
