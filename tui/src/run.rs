//! The console's loop: terminal events, the source's answers and a 1 s tick
//! go into the [`App`]; a frame is drawn only when something changed, after
//! every event already waiting has been taken in (bursts coalesce into one
//! frame).
//!
//! The source lives on a thread of its own ("fleetdeck-source"): a slow or
//! stuck source leaves the screen responsive with its data marked old, a
//! panicking one is reported in the status bar. The terminal is restored on
//! exit, on error and on a panic of the console itself.

use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use crossterm::event::EventStream;
use futures::StreamExt;
use tokio::sync::mpsc as tokio_mpsc;

use crate::app::{App, Options, Request, Response, answer};
use crate::source::{Snapshot, Source};

/// The name of the thread the source runs on.
pub const SOURCE_THREAD: &str = "fleetdeck-source";

/// How often the source is asked whether something changed.
const POLL: Duration = Duration::from_millis(250);

/// The tick that ages "last heard" (and renews an old snapshot).
const TICK: Duration = Duration::from_secs(1);

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Serves requests on the source's own thread until the app goes away.
fn serve<S: Source>(
    mut source: S,
    requests: mpsc::Receiver<Request>,
    out: tokio_mpsc::UnboundedSender<Response>,
) {
    loop {
        let req = match requests.recv_timeout(POLL) {
            Ok(r) => Some(r),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        };
        let result = panic::catch_unwind(AssertUnwindSafe(|| match req {
            Some(r) => Some(answer(&mut source, r)),
            None => source
                .changed()
                .then(|| Response::Snapshot(Box::new(source.snapshot()))),
        }));
        let resp = match result {
            Ok(Some(r)) => r,
            Ok(None) => continue,
            Err(p) => Response::Trouble(format!(
                "the data source failed ({}); showing the last data it gave",
                panic_text(p.as_ref())
            )),
        };
        if out.send(resp).is_err() {
            return;
        }
    }
}

/// Restores the terminal when dropped: on return, on `?` and while
/// unwinding.
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        CONSOLE_UP.store(false, Ordering::SeqCst);
        // Harmless when capture was never turned on.
        let _ = crossterm::execute!(io::stdout(), crossterm::event::DisableMouseCapture);
        ratatui::restore();
    }
}

/// Whether the console owns the terminal (the panic hook's filter applies).
static CONSOLE_UP: AtomicBool = AtomicBool::new(false);

/// Installs a panic hook over ratatui's: a panic on the console's own thread
/// restores the terminal and prints as usual; one on the source's thread is
/// caught there and shown in the status bar, so it must not tear the screen
/// down; one on any other thread (a sync task) is kept off the screen.
fn install_panic_hook() {
    let ui = thread::current().id();
    let inner = panic::take_hook();
    CONSOLE_UP.store(true, Ordering::SeqCst);
    panic::set_hook(Box::new(move |info| {
        let here = thread::current();
        if !CONSOLE_UP.load(Ordering::SeqCst) || here.id() == ui {
            inner(info);
        } else if here.name() == Some(SOURCE_THREAD) {
            // Reported in the status bar by the source thread.
        } else {
            // Printing now would scribble over the console; it goes to the
            // status bar through the source when it matters.
        }
    }));
}

/// Runs the console until the operator quits. Must be awaited on the thread
/// that owns the terminal (e.g. under `Runtime::block_on`).
pub async fn run<S: Source + 'static>(source: S, options: Options) -> io::Result<()> {
    let (req_tx, req_rx) = mpsc::channel::<Request>();
    let (resp_tx, mut resp_rx) = tokio_mpsc::unbounded_channel::<Response>();
    let worker = thread::Builder::new()
        .name(SOURCE_THREAD.into())
        .spawn(move || serve(source, req_rx, resp_tx))?;

    let result = {
        // The guard first: if entering the alternate screen fails after raw
        // mode was turned on, raw mode is still turned off again.
        let _restore = Restore;
        let mut terminal = ratatui::try_init()?;
        if options.mouse {
            crossterm::execute!(io::stdout(), crossterm::event::EnableMouseCapture)?;
        }
        install_panic_hook();
        let mut app = App::new(Snapshot::empty(now_ms()), now_ms(), options);
        app.request_snapshot();
        event_loop(&mut terminal, &mut app, &req_tx, &mut resp_rx).await
    };

    // The source thread ends (and drops the source) when it sees the channel
    // closed. It gets a second for that, no more: a source stuck in a call
    // must not keep the console open.
    drop(req_tx);
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    while !worker.is_finished() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    result
}

const SOURCE_STOPPED: &str = "the data source stopped; showing the last data it gave";

async fn event_loop(
    terminal: &mut ratatui::DefaultTerminal,
    app: &mut App,
    requests: &mpsc::Sender<Request>,
    responses: &mut tokio_mpsc::UnboundedReceiver<Response>,
) -> io::Result<()> {
    let mut events = EventStream::new();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut source_alive = true;
    while !app.should_quit() {
        for r in app.take_requests() {
            if source_alive && requests.send(r).is_err() {
                source_alive = false;
                app.on_response(Response::Trouble(SOURCE_STOPPED.into()));
            }
        }
        if app.is_dirty() {
            terminal.draw(|f| app.draw(f))?;
            app.drawn();
        }
        tokio::select! {
            ev = events.next() => match ev {
                Some(Ok(e)) => app.on_event(&e),
                Some(Err(e)) => return Err(e),
                // The terminal went away.
                None => return Ok(()),
            },
            r = responses.recv(), if source_alive => match r {
                Some(r) => app.on_response(r),
                None => {
                    source_alive = false;
                    app.on_response(Response::Trouble(SOURCE_STOPPED.into()));
                }
            },
            _ = tick.tick() => app.tick(now_ms()),
        }
        // Take in whatever else is already waiting before drawing again.
        // (Polled inside this task, never with `now_or_never`: the event
        // stream keeps the first waker it is polled with.)
        loop {
            tokio::select! {
                biased;
                ev = events.next() => match ev {
                    Some(Ok(e)) => app.on_event(&e),
                    Some(Err(e)) => return Err(e),
                    None => return Ok(()),
                },
                () = std::future::ready(()) => break,
            }
        }
        while let Ok(r) = responses.try_recv() {
            app.on_response(r);
        }
        app.set_now(now_ms());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{HistoryRow, Intent};
    use fleetdeck_store::health::Sample;

    /// A source that panics on every snapshot and changes every poll.
    struct Broken {
        calls: usize,
    }

    impl Source for Broken {
        fn snapshot(&mut self) -> Snapshot {
            self.calls += 1;
            panic!("database disk image is malformed");
        }
        fn series(&mut self, _: &str) -> Vec<Sample> {
            Vec::new()
        }
        fn history(&mut self) -> Vec<HistoryRow> {
            Vec::new()
        }
        fn apply(&mut self, _: Intent) -> Result<String, String> {
            Ok("done".into())
        }
    }

    #[test]
    fn a_panicking_source_is_reported_and_keeps_serving() {
        let (req_tx, req_rx) = mpsc::channel();
        let (resp_tx, mut resp_rx) = tokio_mpsc::unbounded_channel();
        let worker = thread::Builder::new()
            .name(SOURCE_THREAD.into())
            .spawn(move || serve(Broken { calls: 0 }, req_rx, resp_tx))
            .unwrap();
        req_tx.send(Request::Snapshot).unwrap();
        req_tx
            .send(Request::Apply(Intent::Ack {
                alert_id: "x".into(),
            }))
            .unwrap();
        let first = resp_rx.blocking_recv().unwrap();
        match first {
            Response::Trouble(t) => assert!(t.contains("database disk image is malformed"), "{t}"),
            other => panic!("expected trouble, got {other:?}"),
        }
        match resp_rx.blocking_recv().unwrap() {
            Response::Applied(_, Ok(m)) => assert_eq!(m, "done"),
            other => panic!("expected the intent's answer, got {other:?}"),
        }
        drop(req_tx);
        worker.join().unwrap();
    }

    /// A source whose data changes on its own.
    struct Changing {
        changes: usize,
    }

    impl Source for Changing {
        fn snapshot(&mut self) -> Snapshot {
            Snapshot::empty(self.changes as i64)
        }
        fn series(&mut self, _: &str) -> Vec<Sample> {
            Vec::new()
        }
        fn history(&mut self) -> Vec<HistoryRow> {
            Vec::new()
        }
        fn apply(&mut self, _: Intent) -> Result<String, String> {
            Ok(String::new())
        }
        fn changed(&mut self) -> bool {
            self.changes += 1;
            self.changes == 1
        }
    }

    #[test]
    fn a_change_in_the_source_sends_a_snapshot_unasked() {
        let (req_tx, req_rx) = mpsc::channel();
        let (resp_tx, mut resp_rx) = tokio_mpsc::unbounded_channel();
        let worker = thread::spawn(move || serve(Changing { changes: 0 }, req_rx, resp_tx));
        match resp_rx.blocking_recv().unwrap() {
            Response::Snapshot(s) => assert_eq!(s.taken_ms, 1),
            other => panic!("expected a snapshot, got {other:?}"),
        }
        drop(req_tx);
        worker.join().unwrap();
    }
}
