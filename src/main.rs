//! The `fleetdeck` command line. Parsing and printing only: every decision
//! lives in the crates (`store` for now).
//!
//! This file starts the binary: parse, set up logging, dispatch. The clap
//! types are in `cli::args`, each command group's handlers in `cli`'s
//! modules.
//!
//! Exit codes: 0 success, 1 a user error (bad value, unknown site, no
//! replica) with one sentence on stderr, 2 a usage error (from clap).

mod cli;
mod console;
mod daemon;
mod demo;
mod logging;
mod net;
mod outlets;
mod output;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::args::{Cli, Cmd, NodeCmd};

fn init_logging(cli: &Cli) {
    let default = if cli.quiet {
        "error"
    } else if cli.verbose {
        "info,fleetdeck_sync=debug"
    } else {
        match cli.cmd {
            // boringtun logs an idle WireGuard session's expiry as an
            // error; for a tunnel it is nothing (the next packet makes a
            // new session), and fleetdeck logs what tunnels do itself.
            Cmd::Serve { .. } | Cmd::Sync { once: false, .. } | Cmd::Node(NodeCmd::Run { .. }) => {
                "warn,fleetdeck_sync=info,boringtun=off"
            }
            Cmd::Tunnel { .. } => "warn,boringtun=off",
            // Daemons in this process: iroh reports every session a crash
            // or a partition cuts; the timeline already says what happened.
            Cmd::Demo { .. } | Cmd::Scenario(_) => "warn,iroh=error",
            _ => "warn",
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    logging::install(filter);
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The console owns the terminal; it sends logs to a file itself.
    if !matches!(
        cli.cmd,
        Cmd::Console { .. }
            | Cmd::Demo {
                headless: false,
                ..
            }
    ) {
        init_logging(&cli);
    }
    match cli::run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One sentence: our errors already carry their cause in their
            // text, so the chain is not printed again.
            let msg = e.to_string();
            eprintln!("error: {msg}");
            ExitCode::from(1)
        }
    }
}
