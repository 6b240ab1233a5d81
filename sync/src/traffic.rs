//! What sessions carried: the bytes of fleetdeck's own frames ([`Stats`]),
//! and what their links carried as QUIC counts it ([`Wire`]).

use std::sync::atomic::{AtomicU64, Ordering};

use iroh::endpoint::Connection;

/// Bytes of fleetdeck frames sent and received over every session.
#[derive(Default)]
pub struct Stats {
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
}

impl Stats {
    pub(crate) fn add_in(&self, n: u64) {
        self.bytes_in.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn add_out(&self, n: u64) {
        self.bytes_out.fetch_add(n, Ordering::Relaxed);
    }
    pub fn bytes_in(&self) -> u64 {
        self.bytes_in.load(Ordering::Relaxed)
    }
    pub fn bytes_out(&self) -> u64 {
        self.bytes_out.load(Ordering::Relaxed)
    }
}

/// What the links of sessions carried, as QUIC counts it: UDP bytes with
/// 28 B of IPv4/UDP header per datagram (what the link carries), and the
/// QUIC frames that fleetdeck does not write itself but pays for: keep-alive
/// pings and iroh's path probing (PATH_CHALLENGE, padded to 1200 B, and
/// REACH_OUT, iroh's hole-punching).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Wire {
    pub tx_bytes: u64,
    pub rx_bytes: u64,
    pub tx_datagrams: u64,
    pub rx_datagrams: u64,
    pub pings_sent: u64,
    pub path_challenges_sent: u64,
    pub reach_outs_sent: u64,
}

impl Wire {
    /// What one connection's link has carried so far.
    pub(crate) fn of(conn: &Connection) -> Wire {
        let s = conn.stats();
        Wire {
            tx_bytes: s.udp_tx.bytes + 28 * s.udp_tx.datagrams,
            rx_bytes: s.udp_rx.bytes + 28 * s.udp_rx.datagrams,
            tx_datagrams: s.udp_tx.datagrams,
            rx_datagrams: s.udp_rx.datagrams,
            pings_sent: s.frame_tx.ping,
            path_challenges_sent: s.frame_tx.path_challenge,
            reach_outs_sent: s.frame_tx.reach_out,
        }
    }
}

impl std::ops::AddAssign for Wire {
    fn add_assign(&mut self, o: Wire) {
        self.tx_bytes += o.tx_bytes;
        self.rx_bytes += o.rx_bytes;
        self.tx_datagrams += o.tx_datagrams;
        self.rx_datagrams += o.rx_datagrams;
        self.pings_sent += o.pings_sent;
        self.path_challenges_sent += o.path_challenges_sent;
        self.reach_outs_sent += o.reach_outs_sent;
    }
}
