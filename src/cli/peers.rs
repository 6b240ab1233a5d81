//! `invite`, `join`, `peers`, `sync`, `bundle` and `serve`: hand over to
//! `crate::net`.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Result;
use fleetdeck_store::Role;

use super::args::{BundleCmd, Cli, OutletArgs};
use super::{data_dir, open};
use crate::net;
use crate::output::Out;

pub(super) fn invite(
    cli: &Cli,
    out: &Out,
    role: Role,
    ttl: Duration,
    addrs: &[SocketAddr],
) -> Result<()> {
    net::invite(&mut open(cli)?, out, role, ttl, addrs)
}

pub(super) fn join(
    cli: &Cli,
    out: &Out,
    token: &str,
    name: &str,
    listen: SocketAddr,
) -> Result<()> {
    net::join_cmd(&data_dir(cli)?, out, token, name, listen)
}

pub(super) fn peers(cli: &Cli, out: &Out) -> Result<()> {
    net::peers(&data_dir(cli)?, &open(cli)?, out)
}

/// `--once`: sync until in step and exit; without it, serve on a free port.
pub(super) fn sync(
    cli: &Cli,
    out: &Out,
    peer: Option<&str>,
    once: bool,
    no_mdns: bool,
) -> Result<()> {
    if once {
        return net::sync_once(open(cli)?, out, peer);
    }
    let opts = net::ServeOpts {
        listen: SocketAddr::from(([0, 0, 0, 0], 0)),
        peer,
        mdns: !no_mdns,
        quiet: cli.quiet,
        outlets: OutletArgs::default(),
    };
    net::serve(&data_dir(cli)?, open(cli)?, out, opts)
}

pub(super) fn bundle(cli: &Cli, out: &Out, cmd: &BundleCmd) -> Result<()> {
    match cmd {
        BundleCmd::Export { file } => net::bundle_export(&mut open(cli)?, out, file),
        BundleCmd::Import { file } => net::bundle_import(&mut open(cli)?, out, file),
    }
}

pub(super) fn serve(
    cli: &Cli,
    out: &Out,
    listen: SocketAddr,
    no_mdns: bool,
    outlets: &OutletArgs,
) -> Result<()> {
    let opts = net::ServeOpts {
        listen,
        peer: None,
        mdns: !no_mdns,
        quiet: cli.quiet,
        outlets: outlets.clone(),
    };
    net::serve(&data_dir(cli)?, open(cli)?, out, opts)
}
