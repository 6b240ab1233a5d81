//! The userspace TCP/IP stack of one tunnel end (smoltcp): IP packets in
//! and out of two bounded queues, TCP connections bridged to tokio sockets
//! through bounded channels. No TUN device, no root.

use std::collections::{HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{Device, DeviceCapabilities, Medium, RxToken, TxToken};
use smoltcp::socket::tcp;
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr, IpEndpoint, IpListenEndpoint};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Notify, mpsc};

/// Packets waiting for the stack (from the peer) at most; more are dropped
/// as a congested link would (TCP sends them again).
const RX_PACKETS: usize = 1024;
/// Packets the stack may have waiting for the link at most; past that it
/// holds its data back.
const TX_PACKETS: usize = 256;
/// Each TCP connection's receive and send buffers inside the stack.
const SOCKET_BUFFER: usize = 256 * 1024;
/// Chunks a connection may have in flight between its tokio socket and the
/// stack, each way.
const CHANNEL_CHUNKS: usize = 8;
const CHUNK: usize = 16 * 1024;
/// Ephemeral ports of the dialing end.
const FIRST_PORT: u16 = 49152;
/// Connections one tunnel has open at once at most, at either end.
pub(crate) const MAX_CONNS: usize = 64;

/// The stack's packet queues, as smoltcp's device.
struct Queues {
    rx: VecDeque<Vec<u8>>,
    tx: VecDeque<Vec<u8>>,
    mtu: usize,
}

struct Rx(Vec<u8>);
struct Tx<'a>(&'a mut VecDeque<Vec<u8>>);

impl RxToken for Rx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut packet = vec![0u8; len];
        let r = f(&mut packet);
        self.0.push_back(packet);
        r
    }
}

impl Device for Queues {
    type RxToken<'a> = Rx;
    type TxToken<'a> = Tx<'a>;

    fn receive(
        &mut self,
        _: smoltcp::time::Instant,
    ) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let p = self.rx.pop_front()?;
        Some((Rx(p), Tx(&mut self.tx)))
    }

    fn transmit(&mut self, _: smoltcp::time::Instant) -> Option<Self::TxToken<'_>> {
        (self.tx.len() < TX_PACKETS).then_some(Tx(&mut self.tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ip;
        caps.max_transmission_unit = self.mtu;
        caps
    }
}

/// What a connection carried, reported when it closes.
#[derive(Clone, Debug)]
pub(crate) struct Carried {
    /// Where it went (the dialing end: the target asked for; the
    /// terminating end: the target it connected to).
    pub(crate) target: SocketAddrV4,
    /// Bytes from this end's tokio socket into the tunnel, and out of it
    /// (at the dialing end: to the target and back; at the terminating
    /// end the other way round).
    pub(crate) up: u64,
    pub(crate) down: u64,
    pub(crate) lasted: Duration,
}

/// One TCP connection inside the stack and its tokio side.
struct Conn {
    /// Bytes from the tokio socket, for the stack to send.
    from_local: mpsc::Receiver<Bytes>,
    pending: Option<Bytes>,
    /// Bytes the stack received, for the tokio socket; None once the peer
    /// finished sending (the tokio side then shuts its write half).
    to_local: Option<mpsc::Sender<Bytes>>,
    local_done: bool,
    /// Set by either side when its end was reset, not closed: the tokio
    /// side's read failed (the stack then resets its peer), or the peer
    /// reset (the tokio socket is then dropped with a reset).
    reset: Arc<AtomicBool>,
    /// The peer sent its FIN (a later Closed is a close, not a reset).
    peer_finished: bool,
    carried: Carried,
    opened: Instant,
}

pub(crate) struct Stack {
    iface: Interface,
    dev: Queues,
    sockets: SocketSet<'static>,
    conns: HashMap<SocketHandle, Conn>,
    epoch: Instant,
    next_port: u16,
    /// Sockets reset outside `pump`: removed once the reset went out.
    dead: Vec<SocketHandle>,
    /// What the tokio halves of connections wake the stack with.
    pub(crate) wake: Arc<Notify>,
}

impl Stack {
    /// A stack at `own` on a link that carries IP packets of up to `mtu`
    /// bytes. `any_ip`: accept packets for any address (the terminating end
    /// answers for the targets it serves, as the LAN devices they are).
    pub(crate) fn new(own: Ipv4Addr, mtu: usize, any_ip: bool) -> Stack {
        let mut dev = Queues {
            rx: VecDeque::new(),
            tx: VecDeque::new(),
            mtu,
        };
        let epoch = Instant::now();
        let mut config = Config::new(HardwareAddress::Ip);
        config.random_seed = rand::random();
        let mut iface = Interface::new(config, &mut dev, smoltcp::time::Instant::from_millis(0));
        iface.update_ip_addrs(|addrs| {
            // One address: capacity for it is at least one.
            let _ = addrs.push(IpCidr::new(IpAddress::Ipv4(own), 32));
        });
        // Everything beyond this end is reached over the link.
        let _ = iface.routes_mut().add_default_ipv4_route(own);
        iface.set_any_ip(any_ip);
        Stack {
            iface,
            dev,
            sockets: SocketSet::new(Vec::new()),
            conns: HashMap::new(),
            epoch,
            next_port: FIRST_PORT,
            dead: Vec::new(),
            wake: Arc::new(Notify::new()),
        }
    }

    fn now(&self) -> smoltcp::time::Instant {
        smoltcp::time::Instant::from_millis(
            i64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(i64::MAX),
        )
    }

    /// Hands the stack a packet from the peer; false when it was dropped
    /// (the queue is full).
    pub(crate) fn push_rx(&mut self, packet: Vec<u8>) -> bool {
        if self.dev.rx.len() >= RX_PACKETS {
            return false;
        }
        self.dev.rx.push_back(packet);
        true
    }

    /// The next packet for the link.
    pub(crate) fn pop_tx(&mut self) -> Option<Vec<u8>> {
        self.dev.tx.pop_front()
    }

    /// Puts back a packet the link could not take yet.
    pub(crate) fn unpop_tx(&mut self, packet: Vec<u8>) {
        self.dev.tx.push_front(packet);
    }

    /// Runs the stack: takes in what arrived, sends what is due. True when
    /// a socket's state may have changed.
    pub(crate) fn poll(&mut self) -> bool {
        let now = self.now();
        let changed = matches!(
            self.iface.poll(now, &mut self.dev, &mut self.sockets),
            smoltcp::iface::PollResult::SocketStateChanged
        );
        for h in self.dead.drain(..) {
            self.sockets.remove(h);
        }
        changed
    }

    /// How long until the stack needs polling again with nothing arriving.
    pub(crate) fn delay(&mut self) -> Option<Duration> {
        let now = self.now();
        self.iface
            .poll_delay(now, &self.sockets)
            .map(|d| Duration::from_micros(d.total_micros()))
    }

    fn socket() -> tcp::Socket<'static> {
        let mut s = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0u8; SOCKET_BUFFER]),
            tcp::SocketBuffer::new(vec![0u8; SOCKET_BUFFER]),
        );
        s.set_congestion_control(tcp::CongestionControl::Reno);
        s.set_nagle_enabled(false);
        // A peer gone without a word: the connection ends after two minutes
        // of silence rather than never.
        s.set_keep_alive(Some(smoltcp::time::Duration::from_secs(25)));
        s.set_timeout(Some(smoltcp::time::Duration::from_secs(120)));
        s
    }

    /// Opens a connection to `dst` for `stream` (the dialing end).
    pub(crate) fn connect(&mut self, dst: SocketAddrV4, stream: TcpStream) -> Result<(), String> {
        let mut s = Self::socket();
        let port = self
            .free_port()
            .ok_or_else(|| format!("cannot open a connection to {dst}: no free port"))?;
        let remote = IpEndpoint::new(IpAddress::Ipv4(*dst.ip()), dst.port());
        s.connect(self.iface.context(), remote, port)
            .map_err(|e| format!("cannot open a connection to {dst}: {e}"))?;
        let h = self.sockets.add(s);
        self.adopt(h, dst, stream);
        Ok(())
    }

    fn free_port(&mut self) -> Option<u16> {
        let in_use: std::collections::HashSet<u16> = self
            .sockets
            .iter()
            .filter_map(|(_, s)| match s {
                smoltcp::socket::Socket::Tcp(t) => t.local_endpoint().map(|e| e.port),
                #[allow(unreachable_patterns)]
                _ => None,
            })
            .collect();
        for _ in FIRST_PORT..=u16::MAX {
            let p = self.next_port;
            self.next_port = if p == u16::MAX { FIRST_PORT } else { p + 1 };
            if !in_use.contains(&p) {
                return Some(p);
            }
        }
        None
    }

    /// A socket listening at `at` (the terminating end, one per target).
    pub(crate) fn listen(&mut self, at: SocketAddrV4) -> SocketHandle {
        let mut s = Self::socket();
        let ep = IpListenEndpoint {
            addr: Some(IpAddress::Ipv4(*at.ip())),
            port: at.port(),
        };
        // Port is non-zero and the socket fresh: listen cannot fail.
        let _ = s.listen(ep);
        self.sockets.add(s)
    }

    /// The state of the socket at `h`.
    pub(crate) fn state(&self, h: SocketHandle) -> tcp::State {
        self.sockets.get::<tcp::Socket>(h).state()
    }

    /// Connections open now.
    pub(crate) fn open_conns(&self) -> usize {
        self.conns.len()
    }

    /// Bridges the connection at socket `h` to `stream`.
    pub(crate) fn adopt(&mut self, h: SocketHandle, target: SocketAddrV4, stream: TcpStream) {
        let (conn, local) = self.conn(target);
        self.conns.insert(h, conn);
        tokio::spawn(local.bridge(stream));
    }

    /// Bridges the connection at socket `h` to a tokio socket that
    /// `connect` will make (the terminating end: the peer connected first).
    pub(crate) fn adopt_later<F>(&mut self, h: SocketHandle, target: SocketAddrV4, connect: F)
    where
        F: Future<Output = Option<TcpStream>> + Send + 'static,
    {
        let (conn, local) = self.conn(target);
        self.conns.insert(h, conn);
        tokio::spawn(async move {
            // Given up when the stack drops the connection meanwhile (the
            // member revoked, the target no longer allowed).
            let stream = tokio::select! {
                s = connect => s,
                _ = local.to_stack.closed() => None,
            };
            match stream {
                Some(stream) => local.bridge(stream).await,
                // Dropping both channels: the stack closes the connection.
                None => drop(local),
            }
        });
    }

    fn conn(&mut self, target: SocketAddrV4) -> (Conn, Local) {
        let (up_tx, up_rx) = mpsc::channel(CHANNEL_CHUNKS);
        let (down_tx, down_rx) = mpsc::channel(CHANNEL_CHUNKS);
        let reset = Arc::new(AtomicBool::new(false));
        let conn = Conn {
            from_local: up_rx,
            pending: None,
            to_local: Some(down_tx),
            local_done: false,
            reset: reset.clone(),
            peer_finished: false,
            carried: Carried {
                target,
                up: 0,
                down: 0,
                lasted: Duration::ZERO,
            },
            opened: Instant::now(),
        };
        let local = Local {
            to_stack: up_tx,
            from_stack: down_rx,
            wake: self.wake.clone(),
            reset,
        };
        (conn, local)
    }

    /// Moves bytes between every connection and its tokio side; returns the
    /// connections that ended. True in `.1` when anything moved.
    pub(crate) fn pump(&mut self) -> (Vec<Carried>, bool) {
        let mut ended = Vec::new();
        let mut moved = false;
        for (h, c) in self.conns.iter_mut() {
            let s = self.sockets.get_mut::<tcp::Socket>(*h);
            // tokio → stack
            loop {
                if c.pending.is_none() && !c.local_done {
                    match c.from_local.try_recv() {
                        Ok(b) => c.pending = Some(b),
                        Err(mpsc::error::TryRecvError::Empty) => {}
                        Err(mpsc::error::TryRecvError::Disconnected) => {
                            c.local_done = true;
                            // A reset on the tokio side resets the peer: a
                            // transfer cut short must not look complete.
                            if c.reset.load(Ordering::Relaxed) {
                                s.abort();
                            } else {
                                s.close();
                            }
                        }
                    }
                }
                let Some(p) = c.pending.as_mut() else { break };
                if !s.may_send() {
                    if !s.is_open() {
                        c.pending = None;
                    }
                    break;
                }
                match s.send_slice(p) {
                    Ok(n) if n > 0 => {
                        moved = true;
                        c.carried.up += n as u64;
                        let _ = p.split_to(n);
                        if p.is_empty() {
                            c.pending = None;
                        } else {
                            break;
                        }
                    }
                    _ => break,
                }
            }
            if matches!(
                s.state(),
                tcp::State::CloseWait
                    | tcp::State::LastAck
                    | tcp::State::Closing
                    | tcp::State::TimeWait
            ) {
                c.peer_finished = true;
            }
            // Closed (or back in Listen) with no FIN from the peer and no
            // close from here: the peer reset it (or it timed out). The
            // tokio side is reset too.
            if matches!(s.state(), tcp::State::Closed | tcp::State::Listen)
                && !c.peer_finished
                && !c.local_done
            {
                c.reset.store(true, Ordering::Relaxed);
            }
            // stack → tokio
            if let Some(tx) = &c.to_local {
                while s.can_recv() {
                    let Ok(permit) = tx.try_reserve() else { break };
                    let got = s.recv(|buf| {
                        let n = buf.len().min(CHUNK);
                        (n, Bytes::copy_from_slice(&buf[..n]))
                    });
                    match got {
                        Ok(b) if !b.is_empty() => {
                            moved = true;
                            c.carried.down += b.len() as u64;
                            permit.send(b);
                        }
                        _ => break,
                    }
                }
                if tx.is_closed() {
                    // The tokio side is gone: nobody reads what comes.
                    s.abort();
                    c.to_local = None;
                } else if !s.can_recv()
                    && matches!(
                        s.state(),
                        tcp::State::CloseWait
                            | tcp::State::LastAck
                            | tcp::State::Closing
                            | tcp::State::TimeWait
                            | tcp::State::Closed
                    )
                {
                    // The peer sent all it will.
                    c.to_local = None;
                }
            }
            // Listen: adopted once established, a socket back in Listen was
            // reset by the peer.
            if matches!(
                s.state(),
                tcp::State::Closed | tcp::State::TimeWait | tcp::State::Listen
            ) {
                if s.state() == tcp::State::Listen {
                    s.abort();
                }
                if c.to_local.is_some() && !s.can_recv() {
                    c.to_local = None;
                }
                if c.to_local.is_none() {
                    c.carried.lasted = c.opened.elapsed();
                    ended.push((*h, c.carried.clone()));
                }
            }
        }
        let mut out = Vec::with_capacity(ended.len());
        for (h, carried) in ended {
            self.conns.remove(&h);
            // Removed after the next poll: a reset it owes goes out first.
            self.dead.push(h);
            out.push(carried);
        }
        (out, moved)
    }

    /// Stops listening at `h`.
    pub(crate) fn remove_listener(&mut self, h: SocketHandle) {
        if !self.conns.contains_key(&h) {
            self.sockets.remove(h);
        }
    }

    /// Resets the connections whose target `drop` picks.
    pub(crate) fn abort_where(&mut self, drop: impl Fn(SocketAddrV4) -> bool) -> Vec<Carried> {
        let picked: Vec<SocketHandle> = self
            .conns
            .iter()
            .filter(|(_, c)| drop(c.carried.target))
            .map(|(h, _)| *h)
            .collect();
        let mut out = Vec::new();
        for h in picked {
            if let Some(mut c) = self.conns.remove(&h) {
                // Both sides are reset: the tokio one as its channels close.
                c.reset.store(true, Ordering::Relaxed);
                self.sockets.get_mut::<tcp::Socket>(h).abort();
                self.dead.push(h);
                c.carried.lasted = c.opened.elapsed();
                out.push(c.carried);
            }
        }
        out
    }

    /// Resets every connection at once, both sides (the tunnel ends).
    pub(crate) fn abort_all(&mut self) -> Vec<Carried> {
        let mut out = Vec::new();
        for (h, mut c) in self.conns.drain() {
            c.reset.store(true, Ordering::Relaxed);
            self.sockets.get_mut::<tcp::Socket>(h).abort();
            c.carried.lasted = c.opened.elapsed();
            out.push(c.carried);
        }
        out
    }
}

/// The tokio side of one connection.
pub(crate) struct Local {
    to_stack: mpsc::Sender<Bytes>,
    from_stack: mpsc::Receiver<Bytes>,
    wake: Arc<Notify>,
    reset: Arc<AtomicBool>,
}

impl Local {
    /// Copies between `stream` and the stack until both ways are done.
    async fn bridge(self, stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        let (mut rd, mut wr) = stream.into_split();
        let Local {
            to_stack,
            mut from_stack,
            wake,
            reset,
        } = self;
        let wake_up = wake.clone();
        let reset_up = reset.clone();
        let up = async move {
            let mut buf = vec![0u8; CHUNK];
            loop {
                // Ends too when the stack drops the connection, whether or
                // not the local side ever sends again.
                let read = tokio::select! {
                    r = rd.read(&mut buf) => r,
                    _ = to_stack.closed() => break,
                };
                match read {
                    Ok(0) => break,
                    Err(_) => {
                        reset_up.store(true, Ordering::Relaxed);
                        break;
                    }
                    Ok(n) => {
                        if to_stack
                            .send(Bytes::copy_from_slice(&buf[..n]))
                            .await
                            .is_err()
                        {
                            break;
                        }
                        wake_up.notify_one();
                    }
                }
            }
            drop(to_stack);
            wake_up.notify_one();
        };
        let down = async move {
            while let Some(b) = from_stack.recv().await {
                // Room in the channel again: the stack may have more.
                wake.notify_one();
                if wr.write_all(&b).await.is_err() {
                    reset.store(true, Ordering::Relaxed);
                    break;
                }
            }
            if reset.load(Ordering::Relaxed) {
                // Closed with SO_LINGER 0 once the read half goes too: a
                // reset, not a FIN (dropping the write half would send one).
                let _ = wr.as_ref().set_zero_linger();
                wr.forget();
            } else {
                let _ = wr.shutdown().await;
            }
            drop(from_stack);
            wake.notify_one();
        };
        tokio::join!(up, down);
    }
}
