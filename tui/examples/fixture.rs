//! The console on the fixture fleet, in a real terminal:
//!
//! ```sh
//! cargo run -p fleetdeck-tui --example fixture [-- --read-only] [-- --theme light]
//! ```
//!
//! The fleet is built relative to the moment the example starts; its data
//! then stands still, so "last heard" ages grow and turn stale as a real
//! fleet's would with every node gone quiet.

use fleetdeck_tui::fixture::FixtureSource;
use fleetdeck_tui::{Options, SyncStatus, Theme};

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let read_only = args.iter().any(|a| a == "--read-only");
    let theme = match args.iter().position(|a| a == "--theme") {
        Some(i) => {
            let name = args.get(i + 1).map_or("dark", String::as_str);
            match Theme::load(name) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("error: {e}");
                    std::process::exit(1);
                }
            }
        }
        None => Theme::default(),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let mut source = FixtureSource::new(now);
    if read_only {
        source.set_sync(SyncStatus::Off {
            reason: "read-only".into(),
        });
    }
    fleetdeck_tui::run(
        source,
        Options {
            read_only,
            theme,
            ..Options::default()
        },
    )
    .await
}
