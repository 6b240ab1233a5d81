//! The commands' handlers, one module per command group, and the few helpers
//! they share (the data dir, opening the replica, naming this member).
//!
//! - `fleet`: init, site, history, diff, revert, conflicts
//! - `node`: node add, list, show, rm, run, resume, unbind
//! - `member`: member list, role, revoke
//! - `config`: config get, set, unset, effective
//! - `operations`: status, alerts, freeze, unfreeze
//! - `rollout`, `command`: staged rollouts, allowlisted commands
//! - `peers`: invite, join, peers, sync, bundle, serve (on `crate::net`)
//! - `console_demo`: console, demo, scenario (on `crate::console`, `crate::demo`)
//! - `doctor`: the replica's own checks (opens, quarantine, signing, identity)
//! - `shell`: completions and man pages, generated from the clap types

pub(crate) mod args;
mod at;
mod command;
mod config;
mod console_demo;
mod declare;
mod doctor;
mod fleet;
mod member;
mod node;
mod operations;
mod peers;
mod relay;
mod rollout;
mod shell;
pub(crate) mod tunnel;

use std::path::PathBuf;

use anyhow::{Result, anyhow};
use fleetdeck_store::ops::{self, Op};
use fleetdeck_store::{Replica, Role, now_ms};

use crate::output::Out;
use args::{Cli, Cmd};

/// Runs the parsed command: each arm hands over to its group's handler.
pub(crate) fn run(cli: &Cli) -> Result<()> {
    let out = Out::new(cli.json, cli.quiet);
    match &cli.cmd {
        Cmd::Init { name, fleet } => fleet::init(cli, &out, name, fleet),
        Cmd::Site(cmd) => fleet::site(cli, &out, cmd),
        Cmd::Node(cmd) => node::node(cli, &out, cmd),
        Cmd::Member(cmd) => member::member(cli, &out, cmd),
        Cmd::Config(cmd) => config::config(cli, &out, cmd),
        Cmd::History { limit, all, diff } => fleet::history(cli, &out, *limit, *all, *diff),
        Cmd::Events {
            since,
            site,
            node,
            kind,
            all,
            limit,
        } => operations::events(
            cli,
            &out,
            *since,
            fleetdeck_store::events::Filter {
                site: site.clone(),
                node: node.clone(),
                kinds: kind.clone(),
                addresses: *all,
            },
            *limit,
        ),
        Cmd::Receipts { change } => fleet::receipts(cli, &out, change),
        Cmd::Diff { from, to } => fleet::diff(cli, &out, from, to.as_deref()),
        Cmd::Revert { change_id, message } => {
            fleet::revert(cli, &out, change_id, message.as_deref())
        }
        Cmd::Conflicts => fleet::conflicts(cli, &out),
        Cmd::Status { at } => operations::status(cli, &out, at.at.as_deref()),
        Cmd::Alerts(args) => operations::alerts(cli, &out, args),
        Cmd::Invite { role, ttl, addrs } => peers::invite(cli, &out, *role, *ttl, addrs),
        Cmd::Join {
            token,
            name,
            listen,
        } => peers::join(cli, &out, token, name, *listen),
        Cmd::Peers => peers::peers(cli, &out),
        Cmd::Tunnel {
            node,
            port,
            to,
            local,
        } => tunnel::tunnel(cli, &out, node, *port, *to, *local),
        Cmd::WgConfig {
            node,
            name,
            endpoint,
        } => tunnel::wg_config(cli, &out, node, name, endpoint),
        Cmd::Sync {
            peer,
            once,
            no_mdns,
        } => peers::sync(cli, &out, peer.as_deref(), *once, *no_mdns),
        Cmd::Console {
            read_only,
            theme,
            listen,
            no_mdns,
        } => console_demo::console(cli, *read_only, theme.as_deref(), *listen, *no_mdns),
        Cmd::Demo {
            scenario,
            headless,
            run_for,
            seed,
            speed,
            outlets,
        } => console_demo::demo(
            cli.data.clone(),
            scenario.clone(),
            *headless,
            *run_for,
            *seed,
            *speed,
            outlets.clone(),
        ),
        Cmd::Scenario(cmd) => console_demo::scenario(cli, cmd),
        Cmd::Command(cmd) => command::command(cli, &out, cmd),
        Cmd::Rollout(cmd) => rollout::rollout(cli, &out, cmd),
        Cmd::Freeze { message } => operations::set_freeze(cli, &out, true, message),
        Cmd::Unfreeze { message } => operations::set_freeze(cli, &out, false, message),
        Cmd::Bundle(cmd) => peers::bundle(cli, &out, cmd),
        Cmd::Serve {
            listen,
            no_mdns,
            outlets,
        } => peers::serve(cli, &out, *listen, *no_mdns, outlets),
        Cmd::Mqtt {
            url,
            listen,
            no_mdns,
            outlets,
        } => {
            if outlets.mqtt.is_some() {
                return Err(anyhow!(
                    "`fleetdeck mqtt URL` takes the broker once: drop --mqtt (or run `fleetdeck serve --mqtt URL`)"
                ));
            }
            let outlets = args::OutletArgs {
                mqtt: Some(url.clone()),
                ..outlets.clone()
            };
            peers::serve(cli, &out, *listen, *no_mdns, &outlets)
        }
        Cmd::Relay {
            listen,
            names,
            cert,
            key,
            publish,
        } => relay::relay(
            cli,
            &out,
            relay::RelayOpts {
                listen: *listen,
                names: names.clone(),
                cert: cert.clone(),
                key: key.clone(),
                publish: *publish,
            },
        ),
        Cmd::Doctor => doctor::doctor(cli, &out),
        Cmd::Apply {
            file,
            dry_run,
            prune,
        } => declare::apply(cli, &out, file, *dry_run, *prune),
        Cmd::Export { output } => declare::export(cli, &out, output.as_deref()),
        Cmd::Completions { shell } => shell::completions(*shell),
        Cmd::Man { dir } => shell::man(&out, dir.as_deref()),
    }
}

pub(crate) fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).map_err(|e| e.to_string())
}

pub(crate) fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("'{s}' is not a duration ({e}); expected e.g. 30m, 2h, 1d"))
}

fn data_dir(cli: &Cli) -> Result<PathBuf> {
    if let Some(d) = &cli.data {
        return Ok(d.clone());
    }
    directories::ProjectDirs::from("", "", "fleetdeck")
        .map(|p| p.data_dir().to_path_buf())
        .ok_or_else(|| {
            anyhow!(
                "no home directory to put the data dir in; pass --data DIR or set FLEETDECK_DATA"
            )
        })
}

fn open(cli: &Cli) -> Result<Replica> {
    let dir = data_dir(cli)?;
    let r = Replica::open(&dir)?;
    if cli.verbose {
        for w in r.warnings().iter().chain(r.state().problems.iter()) {
            eprintln!("warning: {w}");
        }
    }
    Ok(r)
}

/// Carries out an operator action on this replica through the store's
/// operations API (the one door the console and the scenarios use too) and
/// prints what it did.
fn act(r: &mut Replica, out: &Out, op: Op) -> Result<()> {
    let done = ops::apply(r, op, now_ms())?;
    out.done(&done.summary, done.change)
}
