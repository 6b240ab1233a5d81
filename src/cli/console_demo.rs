//! `console`, `demo` and `scenario`: hand over to `crate::console` and
//! `crate::demo`.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Result;

use super::args::{Cli, OutletArgs, ScenarioCmd};
use super::data_dir;
use crate::{console, demo};

pub(super) fn console(
    cli: &Cli,
    read_only: bool,
    theme: Option<&str>,
    listen: SocketAddr,
    no_mdns: bool,
) -> Result<()> {
    console::run_with(&data_dir(cli)?, read_only, theme, listen, !no_mdns)
}

pub(super) fn demo(
    data: Option<std::path::PathBuf>,
    scenario: Option<String>,
    headless: bool,
    run_for: Option<Duration>,
    seed: u64,
    speed: Option<f64>,
    outlets: OutletArgs,
) -> Result<()> {
    demo::demo(demo::DemoOpts {
        data,
        scenario,
        headless,
        run_for,
        seed,
        speed,
        outlets,
    })
}

pub(super) fn scenario(cli: &Cli, cmd: &ScenarioCmd) -> Result<()> {
    match cmd {
        ScenarioCmd::List => demo::list(cli.json),
        ScenarioCmd::Run {
            scenario,
            check,
            seed,
            speed,
        } => demo::run(demo::RunArgs {
            scenario,
            check: *check,
            seed: *seed,
            speed: *speed,
            json: cli.json,
        }),
    }
}
