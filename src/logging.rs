//! Where `tracing` events go: stderr, shaped for whoever reads it.
//!
//! - A terminal: colour and timestamps, as `tracing-subscriber` prints them.
//! - Anything else (a pipe, a file, journald): no colour codes, and one line
//!   per event, always: a newline inside a message or a field is written as
//!   `\n`, so a log reader never mistakes the rest of an event for a new one.
//!   Fields stay `key=value` after the message.
//! - journald (the systemd unit): as above, without a timestamp (journald
//!   stamps every line itself) and with a `<N>` syslog priority in front,
//!   which journald takes off and keeps as the entry's priority, so
//!   `journalctl -p warning -u fleetdeck-node` shows warnings and errors.
//!   Plain stderr is enough for that; nothing writes to the journal socket.
//!
//! stderr is journald's when `$JOURNAL_STREAM` names its device and inode,
//! as systemd sets it for a service whose output goes to the journal (a
//! child whose stderr was redirected inherits the variable but not the
//! stream, so the variable alone is not believed).

use std::fmt;
use std::io::IsTerminal;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{self, FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::{FmtContext, time::SystemTime};
use tracing_subscriber::registry::LookupSpan;

/// Installs the process's subscriber: events `filter` lets through go to
/// stderr, shaped as the module says. Does nothing if one is installed.
pub(crate) fn install(filter: EnvFilter) {
    let stderr = std::io::stderr();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    if stderr.is_terminal() {
        let _ = builder.with_ansi(true).try_init();
        return;
    }
    let plain = format().with_ansi(false);
    let _ = if stderr_is_journal() {
        builder
            .with_ansi(false)
            .event_format(OneLine {
                inner: plain.without_time(),
                priority: true,
            })
            .try_init()
    } else {
        builder
            .with_ansi(false)
            .event_format(OneLine {
                inner: plain.with_timer(SystemTime),
                priority: false,
            })
            .try_init()
    };
}

fn format() -> format::Format<format::Full, SystemTime> {
    format::format().with_target(false)
}

/// Whether stderr is the journal stream systemd named in `$JOURNAL_STREAM`
/// (`DEVICE:INODE`, both decimal).
fn stderr_is_journal() -> bool {
    let Ok(var) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = var.split_once(':') else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    same_file_as_stderr(dev, ino)
}

#[cfg(unix)]
fn same_file_as_stderr(dev: u64, ino: u64) -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() else {
        return false;
    };
    std::fs::File::from(fd)
        .metadata()
        .is_ok_and(|m| m.dev() == dev && m.ino() == ino)
}

#[cfg(not(unix))]
fn same_file_as_stderr(_dev: u64, _ino: u64) -> bool {
    false
}

/// Formats an event with `inner`, then writes it as one line: embedded
/// line breaks escaped, and with `priority` the syslog priority in front.
struct OneLine<F> {
    inner: F,
    priority: bool,
}

impl<S, N, F> FormatEvent<S, N> for OneLine<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut line = String::new();
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        let mut line = line.trim_end_matches(['\n', '\r']);
        if self.priority {
            write!(writer, "<{}>", syslog_priority(*event.metadata().level()))?;
            // The level is padded (` WARN`); journald would keep the space.
            line = line.trim_start();
        }
        for c in line.chars() {
            match c {
                '\n' => writer.write_str("\\n")?,
                '\r' => writer.write_str("\\r")?,
                c => writer.write_char(c)?,
            }
        }
        writer.write_char('\n')
    }
}

/// syslog(3) priorities, as journald reads them from a `<N>` prefix.
fn syslog_priority(level: Level) -> u8 {
    match level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    /// A writer the test reads back.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    fn logged(priority: bool, emit: impl FnOnce()) -> String {
        let out = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(out.clone())
            .with_ansi(false)
            .event_format(OneLine {
                inner: format().with_ansi(false).without_time(),
                priority,
            })
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
        let bytes = out.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8(bytes).expect("the log is UTF-8")
    }

    #[test]
    fn an_event_with_line_breaks_in_its_message_and_fields_stays_one_line() {
        let text = logged(false, || {
            tracing::warn!(peer = "p1", detail = %"first\nsecond", "could not\r\nsync");
            tracing::info!(count = 3, "next event");
        });
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text:?}");
        assert!(
            lines[0].contains("could not\\r\\nsync") && lines[0].contains("detail=first\\nsecond"),
            "{text:?}"
        );
        assert!(lines[0].contains("peer=\"p1\""), "{text:?}");
        assert!(lines[1].contains("next event count=3"), "{text:?}");
        assert!(!text.contains('\u{1b}'), "{text:?}");
    }

    #[test]
    fn journald_lines_start_with_the_syslog_priority_of_their_level() {
        let text = logged(true, || {
            tracing::error!("broken");
            tracing::warn!("odd");
            tracing::info!("fine");
        });
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            ["<3>ERROR broken", "<4>WARN odd", "<6>INFO fine"],
            "{text:?}"
        );
    }
}
