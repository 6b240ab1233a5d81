//! One WireGuard session (boringtun's `noise::Tunn`) whose datagrams ride an
//! iroh connection as QUIC datagrams: what either end of a tunnel puts IP
//! packets into and takes them out of.

use std::net::Ipv4Addr;

use boringtun::noise::{Tunn, TunnResult, errors::WireGuardError};
use bytes::Bytes;
use iroh::endpoint::{Connection, SendDatagramError};

/// WireGuard's overhead on an IP packet: a 16-byte header and a 16-byte tag.
pub(crate) const WG_OVERHEAD: usize = 32;
/// The smallest buffer boringtun writes a handshake into.
const MIN_BUF: usize = 148;
/// The largest IP packet a tunnel carries (a standard WireGuard MTU).
pub(crate) const MAX_MTU: usize = 1420;

/// What became of a datagram from the peer.
pub(crate) enum Inbound {
    /// IP packets for the stack, each from the peer's side of `src`.
    Packets(Vec<(Vec<u8>, Ipv4Addr)>),
    /// The session is over (the handshake expired): the tunnel ends.
    Expired,
}

pub(crate) struct Link {
    tunn: Tunn,
    conn: Connection,
    buf: Vec<u8>,
    /// Packets dropped because the path could not take them now.
    pub(crate) dropped: u64,
}

impl Link {
    pub(crate) fn new(tunn: Tunn, conn: Connection) -> Link {
        Link {
            tunn,
            conn,
            buf: vec![0u8; MAX_MTU + WG_OVERHEAD + MIN_BUF],
            dropped: 0,
        }
    }

    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    /// The largest IP packet this path carries: what fits a QUIC datagram
    /// after WireGuard's overhead and padding, up to [`MAX_MTU`].
    pub(crate) fn mtu(&self) -> usize {
        let fits = self
            .conn
            .max_datagram_size()
            .unwrap_or(0)
            .saturating_sub(WG_OVERHEAD);
        // WireGuard pads to 16 bytes.
        (fits & !15).min(MAX_MTU)
    }

    /// Whether the connection's datagram buffer has room for `len` more
    /// bytes; when it has not, the stack holds its packets back.
    pub(crate) fn has_room(&self, len: usize) -> bool {
        self.conn.datagram_send_buffer_space() >= len + WG_OVERHEAD + 16
    }

    fn send(&mut self, len: usize) -> Result<(), SendDatagramError> {
        let d = Bytes::copy_from_slice(&self.buf[..len]);
        match self.conn.send_datagram(d) {
            Ok(()) => Ok(()),
            Err(SendDatagramError::TooLarge) => {
                self.dropped += 1;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Starts the handshake (the initiator's first datagram).
    pub(crate) fn initiate(&mut self) -> Result<(), SendDatagramError> {
        match self.tunn.format_handshake_initiation(&mut self.buf, false) {
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
    pub(crate) fn receive(&mut self, datagram: &[u8]) -> Result<Inbound, SendDatagramError> {
        let mut packets = Vec::new();
        let mut input: &[u8] = datagram;
        // boringtun: after a WriteToNetwork, call again with nothing until
        // Done, to flush the packets it queued during the handshake.
        for _ in 0..1024 {
            match self.tunn.decapsulate(None, input, &mut self.buf) {
                TunnResult::Done => break,
                TunnResult::WriteToNetwork(p) => {
                    let n = p.len();
                    self.send(n)?;
                    input = &[];
                }
                TunnResult::WriteToTunnelV4(p, src) => {
                    packets.push((p.to_vec(), src));
                    break;
                }
                TunnResult::WriteToTunnelV6(..) => break,
                TunnResult::Err(WireGuardError::ConnectionExpired) => return Ok(Inbound::Expired),
                TunnResult::Err(e) => {
                    tracing::debug!("wireguard refused a datagram: {e:?}");
                    break;
                }
            }
        }
        Ok(Inbound::Packets(packets))
    }

    /// WireGuard's timers (rekeys, keep-alives, handshake retries): call
    /// about every 250 ms. False once the session expired for good.
    pub(crate) fn tick(&mut self) -> Result<bool, SendDatagramError> {
        match self.tunn.update_timers(&mut self.buf) {
            TunnResult::WriteToNetwork(p) => {
                let n = p.len();
                self.send(n)?;
                Ok(true)
            }
            TunnResult::Err(WireGuardError::ConnectionExpired) => Ok(false),
            _ => Ok(true),
        }
    }

    /// Whether the handshake has completed (a session is up).
    pub(crate) fn established(&self) -> bool {
        self.tunn.time_since_last_handshake().is_some()
    }
}
