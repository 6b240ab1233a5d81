//! The loop of one tunnel end: datagrams from the link into the stack,
//! packets from the stack onto the link, WireGuard's timers, and what each
//! end adds (new local connections at the dialing end; listeners, the
//! allowlist and the member's standing at the terminating end).

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::link::Link;
use super::stack::{Carried, MAX_CONNS, Stack};

/// WireGuard's timers want a call about this often.
const TICK: Duration = Duration::from_millis(250);
/// Datagrams taken from the link per wake-up at most before the stack runs.
const BATCH: usize = 256;

/// What one end adds to the loop.
pub(crate) trait Side: Send {
    /// Whether a packet from the peer with this source may enter the stack
    /// (boringtun does not check WireGuard's AllowedIPs; this is that).
    fn allows_source(&mut self, src: Ipv4Addr) -> bool;
    /// Looks at a packet from the peer before the stack does (the
    /// terminating end listens once more for each connection asked for,
    /// and logs those it will refuse).
    fn inspect(&mut self, _packet: &[u8], _stack: &mut Stack) {}
    /// After each run of the stack (the terminating end hands connections
    /// that arrived to their targets and listens again).
    fn after_poll(&mut self, _stack: &mut Stack) {}
    /// Every tick: None to go on, Some(why) to end the tunnel (the member
    /// was revoked, say).
    fn check(&mut self) -> Option<String> {
        None
    }
    /// A connection ended.
    fn closed(&mut self, _carried: &Carried) {}
}

/// How a tunnel ended.
#[derive(Debug)]
pub(crate) enum Ended {
    /// The connection under it closed (the peer left, or refused).
    Link(String),
    /// This end's side said so.
    Refused(String),
    /// The dialing end's listener closed.
    Done,
}

/// Runs one tunnel end until it ends. `incoming`: new local connections to
/// open to `dst` (the dialing end).
pub(crate) async fn drive<S: Side>(
    mut link: Link,
    mut stack: Stack,
    side: &mut S,
    mut incoming: Option<(mpsc::Receiver<TcpStream>, SocketAddrV4)>,
) -> Ended {
    let wake = stack.wake.clone();
    let mut next_tick = tokio::time::Instant::now();
    let ended = 'run: loop {
        // Run the stack until nothing moves.
        let mut held_back = false;
        for _ in 0..8 {
            let changed = stack.poll();
            side.after_poll(&mut stack);
            let (closed, moved) = stack.pump();
            for c in &closed {
                side.closed(c);
            }
            let mut sent = false;
            while let Some(p) = stack.pop_tx() {
                if !link.has_room(p.len()) {
                    stack.unpop_tx(p);
                    held_back = true;
                    break;
                }
                if let Err(e) = link.send_packet(&p) {
                    break 'run Ended::Link(e.to_string());
                }
                sent = true;
            }
            if !changed && !moved && !sent {
                break;
            }
        }
        let now = tokio::time::Instant::now();
        if now >= next_tick {
            if let Err(e) = link.tick() {
                break Ended::Link(e);
            }
            if let Some(why) = side.check() {
                break Ended::Refused(why);
            }
            next_tick = now + TICK;
        }
        let mut wait = next_tick.saturating_duration_since(now);
        if let Some(d) = stack.delay() {
            wait = wait.min(d);
        }
        if held_back {
            // The link's buffer is full: look again in a moment (the stack
            // wants polling at once while it has data waiting, which the
            // link cannot take yet; polling it now would spin).
            wait = Duration::from_millis(1);
        }
        let accept = async {
            match incoming.as_mut() {
                Some((rx, _)) => rx.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            d = link.recv() => {
                let first = match d {
                    Ok(d) => d,
                    Err(e) => break Ended::Link(e),
                };
                let mut datagrams = vec![first];
                while datagrams.len() < BATCH {
                    match link.try_recv() {
                        Some(Ok(d)) => datagrams.push(d),
                        Some(Err(e)) => break 'run Ended::Link(e),
                        None => break,
                    }
                }
                for (d, from) in datagrams {
                    match link.receive(&d, from) {
                        Ok(ps) => {
                            for (p, src) in ps {
                                if side.allows_source(src) {
                                    side.inspect(&p, &mut stack);
                                    stack.push_rx(p);
                                } else {
                                    tracing::debug!(%src, "dropped a tunnel packet from an address the peer does not hold");
                                }
                            }
                        }
                        Err(e) => break 'run Ended::Link(e.to_string()),
                    }
                }
            }
            c = accept => match c {
                Some(stream) => {
                    let dst = incoming.as_ref().map(|(_, d)| *d);
                    if stack.open_conns() >= MAX_CONNS {
                        tracing::warn!("refused a local connection: {MAX_CONNS} are open in this tunnel");
                    } else if let Some(dst) = dst && let Err(e) = stack.connect(dst, stream) {
                        tracing::warn!("{e}");
                    }
                }
                None => break Ended::Done,
            },
            _ = wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    };
    for c in stack.abort_all() {
        side.closed(&c);
    }
    // Send the resets the aborts made.
    stack.poll();
    while let Some(p) = stack.pop_tx() {
        if link.send_packet(&p).is_err() {
            break;
        }
    }
    ended
}
