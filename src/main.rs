//! The `fleetdeck` command line. Parsing and printing only: every decision
//! lives in the crates (`store` for now).
//!
//! Exit codes: 0 success, 1 a user error (bad value, unknown site, no
//! replica) with one sentence on stderr, 2 a usage error (from clap).

mod console;
mod daemon;
mod demo;
mod net;
mod output;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Parser, Subcommand};
use fleetdeck_store::alerts::Ack;
use fleetdeck_store::config::{self, ConfigPath};
use fleetdeck_store::diff::diff_states;
use fleetdeck_store::document::{CommandRecord, FreezeRecord, LayerRef, NodeRecord, SiteRecord};
use fleetdeck_store::{NodeId, Replica, Role, SiteId, now_ms};
use serde_json::{Value, json};

use crate::output::{Out, Table, fmt_time, short};

#[derive(Parser)]
#[command(
    name = "fleetdeck",
    version,
    about = "Local-first fleet operations: every node and laptop holds a replica of the fleet",
    propagate_version = true
)]
struct Cli {
    /// Data directory of this replica [default: $FLEETDECK_DATA, else the XDG data dir]
    #[arg(long, global = true, value_name = "DIR", env = "FLEETDECK_DATA")]
    data: Option<PathBuf>,
    /// Print machine-readable JSON (see the README for the fields)
    #[arg(long, global = true)]
    json: bool,
    /// More detail on stderr
    #[arg(short, long, global = true, conflicts_with = "quiet")]
    verbose: bool,
    /// Only errors on stderr
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create a new identity and a new fleet replica in the data dir
    Init {
        /// This replica's member name (e.g. ops-laptop)
        #[arg(long)]
        name: String,
        /// The fleet's name
        #[arg(long, value_name = "FLEET_NAME", default_value = "fleet")]
        fleet: String,
    },
    /// Sites: add, list, show, rm
    #[command(subcommand)]
    Site(SiteCmd),
    /// Nodes: add, list, show, rm
    #[command(subcommand)]
    Node(NodeCmd),
    /// Config: get, set, unset a key in a layer; the effective config of a node
    #[command(subcommand)]
    Config(ConfigCmd),
    /// The change log: id, author, time, message (newest first)
    History {
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Effective-config changes between two points (FROM^ is the state before FROM)
    Diff {
        from: String,
        /// Defaults to the current state
        to: Option<String>,
    },
    /// Undo a change by writing its inverse as a new change
    Revert {
        change_id: String,
        #[arg(short, long)]
        message: Option<String>,
    },
    /// Keys written concurrently with different values; the winner is marked
    Conflicts,
    /// Sites green/warn/err/unknown, aggregate percentages, alert counts
    Status,
    /// Open alerts; `ack` and `silence` them for everyone
    Alerts(AlertsArgs),
    /// Print a one-time token that enrolls a new replica (run `serve` here too)
    Invite {
        /// The new replica's role
        #[arg(long, default_value = "operator", value_parser = parse_role)]
        role: Role,
        /// How long the token stays valid
        #[arg(long, default_value = "1h", value_parser = parse_duration)]
        ttl: std::time::Duration,
        /// Address(es) the new replica dials [default: the ones `serve` published]
        #[arg(long = "addr", value_name = "IP:PORT")]
        addrs: Vec<SocketAddr>,
    },
    /// Enroll a new replica in the data dir with a token and receive the fleet
    Join {
        token: String,
        /// This replica's member name
        #[arg(long)]
        name: String,
        /// Local address to use
        #[arg(long, default_value = "0.0.0.0:0")]
        listen: SocketAddr,
    },
    /// Peers: connected or not, address, last sync, last error
    Peers,
    /// Sync now: with one peer (`--peer`) or every member with an address
    Sync {
        /// ENDPOINT_ID@IP:PORT (as `serve` prints) or a member's name
        #[arg(long)]
        peer: Option<String>,
        /// Sync until in step, then exit (without it: keep syncing until Ctrl-C)
        #[arg(long)]
        once: bool,
        /// Do not look for members on the local network (without --once)
        #[arg(long)]
        no_mdns: bool,
    },
    /// Carry changes by hand: a file with everything this replica has
    #[command(subcommand)]
    Bundle(BundleCmd),
    /// Run an allowlisted action (`actions.<name>` in config) on nodes
    #[command(subcommand)]
    Command(CommandCmd),
    /// Staged rollouts: set keys on nodes wave by wave, halting on failures
    #[command(subcommand)]
    Rollout(RolloutCmd),
    /// The terminal console: fleet overview, sites, nodes, alerts, history, peers
    Console {
        /// Look only: refuse every change, and do not sync
        #[arg(long)]
        read_only: bool,
        /// Built-in theme (dark, light, high-contrast, 16-color) or a TOML file patching it
        #[arg(long, value_name = "NAME")]
        theme: Option<String>,
        /// Where the console's own sync endpoint listens (UDP); a free port by default
        #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:0")]
        listen: SocketAddr,
        /// Do not look for peers on the LAN (mDNS)
        #[arg(long)]
        no_mdns: bool,
    },
    /// Play a scenario (the built-in Blocao fleet by default) over real in-process node daemons, with the console on the operator's replica
    Demo {
        /// A built-in scenario name (`scenario list`) or a scenario TOML file
        #[arg(long, value_name = "NAME|PATH")]
        scenario: Option<String>,
        /// No console: print the timeline as it happens and a summary at the end
        #[arg(long)]
        headless: bool,
        /// With --headless: stop after this long (`30s`, `5m`); else at Ctrl-C
        #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration, requires = "headless")]
        run_for: Option<std::time::Duration>,
        /// Seed of the simulated metrics
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Play this many times faster than real time [default: the scenario's own speed]
        #[arg(long, value_name = "X")]
        speed: Option<f64>,
    },
    /// Fleet scenarios: list the built-in ones, run one headless with its checks
    #[command(subcommand)]
    Scenario(ScenarioCmd),
    /// Emergency stop: no node applies anything new until `unfreeze`
    Freeze {
        #[arg(short, long, default_value = "")]
        message: String,
    },
    /// Let nodes apply again after a freeze
    Unfreeze {
        #[arg(short, long, default_value = "")]
        message: String,
    },
    /// Keep this replica online and in sync (hub, laptop) without a console
    Serve {
        #[arg(long, default_value_t = SocketAddr::from(([0, 0, 0, 0], net::DEFAULT_PORT)))]
        listen: SocketAddr,
        /// Do not look for (or announce to) members on the local network
        #[arg(long)]
        no_mdns: bool,
    },
}

#[derive(Subcommand)]
enum RolloutCmd {
    /// Start a rollout of KEY=VALUE settings (VALUE as in `config set`)
    Start {
        #[arg(long = "set", value_name = "KEY=VALUE", required = true)]
        set: Vec<String>,
        /// Only these sites [default: the whole fleet]
        #[arg(long, value_delimiter = ',', value_name = "SITE,…")]
        sites: Vec<String>,
        /// Cumulative percentages of nodes per wave
        #[arg(long, default_value = "5,25,100")]
        waves: String,
        /// How long a wave must run healthy before the next opens
        #[arg(long, default_value = "10m", value_parser = parse_duration)]
        soak: std::time::Duration,
        /// Failed nodes tolerated before the rollout halts
        #[arg(long, default_value_t = 0)]
        max_fail: u64,
    },
    /// Rollouts with their phase
    List,
    /// Each wave: nodes, applied, healthy, failed
    Status { id: String },
    /// Stop opening waves (nodes keep what they have)
    Pause { id: String },
    /// Continue a paused or halted rollout
    Resume { id: String },
    /// Take the rollout's settings off every node
    Abort { id: String },
}

#[derive(Subcommand)]
enum ScenarioCmd {
    /// The built-in scenarios
    List,
    /// Play a scenario's timeline once, headless; exit 1 with --check unless every check held
    Run {
        /// A built-in scenario name or a scenario TOML file
        #[arg(value_name = "NAME|PATH")]
        scenario: String,
        /// Evaluate the scenario's checks; fail unless all of them hold
        #[arg(long)]
        check: bool,
        /// Seed of the simulated metrics
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Play this many times faster than real time [default: the scenario's own speed]
        #[arg(long, value_name = "X")]
        speed: Option<f64>,
    },
}

#[derive(Subcommand)]
enum CommandCmd {
    /// Ask nodes to run ACTION once (an action named in their config)
    Run {
        action: String,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Commands, newest first, with how many nodes have reported
    List,
    /// Each targeted node's result: exit code and output tail, or pending
    Status { command_id: String },
}

#[derive(Args)]
#[group(required = true, multiple = false)]
struct TargetArgs {
    #[arg(long, value_name = "SITE_ID")]
    site: Option<String>,
    #[arg(long, value_name = "NODE_ID")]
    node: Option<String>,
    /// Every node of the fleet
    #[arg(long)]
    all: bool,
}

#[derive(Subcommand)]
enum BundleCmd {
    /// Write every change and health register of this replica to FILE
    Export { file: PathBuf },
    /// Merge a bundle (verified like network input; importing twice changes nothing)
    Import { file: PathBuf },
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).map_err(|e| e.to_string())
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
struct AlertsArgs {
    /// Include silenced alerts
    #[arg(long)]
    all: bool,
    #[command(subcommand)]
    cmd: Option<AlertsCmd>,
}

#[derive(Subcommand)]
enum AlertsCmd {
    /// Acknowledge an alert (it stays listed, marked acked)
    Ack { alert_id: String },
    /// Hide an alert for a while (e.g. --for 2h)
    Silence {
        alert_id: String,
        #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration)]
        duration: std::time::Duration,
    },
}

#[derive(Subcommand)]
enum SiteCmd {
    /// Add a site
    Add {
        site_id: String,
        #[arg(long)]
        name: String,
        #[arg(long, allow_negative_numbers = true, requires = "lon")]
        lat: Option<f64>,
        #[arg(long, allow_negative_numbers = true, requires = "lat")]
        lon: Option<f64>,
        #[arg(long)]
        zone: Option<String>,
    },
    /// List sites
    List,
    /// Show a site: its record, nodes and overrides
    Show { site_id: String },
    /// Remove a site and its overrides
    Rm {
        site_id: String,
        /// Also remove the site's nodes
        #[arg(long)]
        with_nodes: bool,
    },
}

#[derive(Subcommand)]
enum NodeCmd {
    /// Add a node to a site
    Add {
        node_id: String,
        #[arg(long)]
        site: String,
        /// Free-form role (edge, central, camera, …)
        #[arg(long)]
        role: Option<String>,
    },
    /// List nodes
    List {
        #[arg(long)]
        site: Option<String>,
    },
    /// Show a node: its record, overrides and health
    Show { node_id: String },
    /// Remove a node and its overrides
    Rm { node_id: String },
    /// Run the daemon for a node on this replica (the device's own service)
    Run {
        /// The node this replica runs [default: the one bound to this replica]
        #[arg(long)]
        node: Option<String>,
        /// Where releases are rendered and `current` points [default: DATA/root]
        #[arg(long, value_name = "DIR")]
        root: Option<PathBuf>,
        #[arg(long, default_value_t = SocketAddr::from(([0, 0, 0, 0], net::DEFAULT_PORT)))]
        listen: SocketAddr,
        /// Serve Prometheus metrics here (e.g. 127.0.0.1:9477)
        #[arg(long, value_name = "ADDR")]
        metrics: Option<SocketAddr>,
        /// Do not look for members on the local network
        #[arg(long)]
        no_mdns: bool,
    },
    /// Let a node in safe mode apply again
    Resume { node_id: String },
    /// Forget which replica runs a node (to move it to new hardware)
    Unbind { node_id: String },
}

#[derive(Args)]
#[group(multiple = false)]
struct LayerArgs {
    /// The fleet defaults (the default layer)
    #[arg(long)]
    fleet: bool,
    /// A site's overrides
    #[arg(long, value_name = "SITE_ID")]
    site: Option<String>,
    /// A node's overrides
    #[arg(long, value_name = "NODE_ID")]
    node: Option<String>,
}

impl LayerArgs {
    fn layer(&self) -> Result<LayerRef> {
        Ok(match (&self.site, &self.node) {
            (Some(s), _) => LayerRef::Site(SiteId::parse(s)?),
            (_, Some(n)) => LayerRef::Node(NodeId::parse(n)?),
            _ => LayerRef::Fleet,
        })
    }
}

#[derive(Subcommand)]
enum ConfigCmd {
    /// The value a layer sets at KEY (not the merged value: see `effective`)
    Get {
        key: String,
        #[command(flatten)]
        layer: LayerArgs,
    },
    /// Set KEY to VALUE in a layer; VALUE is JSON when it parses, else text
    Set {
        key: String,
        value: String,
        #[command(flatten)]
        layer: LayerArgs,
        #[arg(short, long)]
        message: Option<String>,
    },
    /// Remove KEY (and what is below it) from a layer
    Unset {
        key: String,
        #[command(flatten)]
        layer: LayerArgs,
        #[arg(short, long)]
        message: Option<String>,
    },
    /// The merged config of a node: fleet ⊕ site ⊕ node
    Effective {
        #[arg(long)]
        node: String,
        /// Show which layer set each leaf
        #[arg(long)]
        explain: bool,
    },
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
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

fn init_logging(cli: &Cli) {
    let default = if cli.quiet {
        "error"
    } else if cli.verbose {
        "info,fleetdeck_sync=debug"
    } else {
        match cli.cmd {
            Cmd::Serve { .. } | Cmd::Sync { once: false, .. } | Cmd::Node(NodeCmd::Run { .. }) => {
                "warn,fleetdeck_sync=info"
            }
            // Daemons in this process: iroh reports every session a crash
            // or a partition cuts; the timeline already says what happened.
            Cmd::Demo { .. } | Cmd::Scenario(_) => "warn,iroh=error",
            _ => "warn",
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
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
    match run(&cli) {
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

fn commit_msg(given: &Option<String>, default: impl FnOnce() -> String) -> String {
    given.clone().unwrap_or_else(default)
}

fn run(cli: &Cli) -> Result<()> {
    let out = Out::new(cli.json, cli.quiet);
    match &cli.cmd {
        Cmd::Init { name, fleet } => {
            let dir = data_dir(cli)?;
            let r = Replica::init(&dir, name, fleet)?;
            let st = r.state();
            out.emit(
                &json!({"data_dir": dir, "fleet_id": st.fleet_id, "fleet_name": st.name, "member": r.key(), "name": name}),
                || format!(
                    "created fleet '{}' ({}) in {}\nthis replica: {} ({})",
                    st.name,
                    st.fleet_id,
                    dir.display(),
                    name,
                    r.key()
                ),
            )
        }
        Cmd::Site(cmd) => site(cli, &out, cmd),
        Cmd::Node(cmd) => node(cli, &out, cmd),
        Cmd::Config(cmd) => config(cli, &out, cmd),
        Cmd::History { limit } => {
            let mut r = open(cli)?;
            let h: Vec<_> = r.history().into_iter().take(*limit).collect();
            out.emit(&h, || {
                let mut t = Table::new(&["CHANGE", "TIME", "AUTHOR", "MESSAGE"]);
                for e in &h {
                    let who = e
                        .author_name
                        .clone()
                        .unwrap_or_else(|| short(&e.author).to_string());
                    t.row(vec![
                        short(&e.id).to_string(),
                        fmt_time(e.time_ms),
                        who,
                        e.message.clone().unwrap_or_default(),
                    ]);
                }
                t.render()
            })
        }
        Cmd::Diff { from, to } => {
            let mut r = open(cli)?;
            let before_heads = r.resolve(from)?;
            let before = r.state_at(&before_heads)?;
            let after = match to {
                Some(t) => {
                    let heads = r.resolve(t)?;
                    r.state_at(&heads)?
                }
                None => (**r.state()).clone(),
            };
            let d = diff_states(&before, &after);
            out.emit(&d, || output::render_diff(&d))
        }
        Cmd::Revert { change_id, message } => {
            let mut r = open(cli)?;
            let (outcome, hash) = r.revert(change_id, message.as_deref())?;
            let id = hash.map(|h| h.to_string());
            out.emit(
                &json!({"change": id, "restored": outcome.restored, "skipped": outcome.skipped}),
                || {
                    let mut s = match &id {
                        Some(id) => format!("reverted as {}: {} entr{} restored", short(id), outcome.restored.len(), if outcome.restored.len() == 1 { "y" } else { "ies" }),
                        None => "nothing to revert: every entry the change set is already as it was before".to_string(),
                    };
                    for k in &outcome.skipped {
                        s.push_str(&format!("\nleft alone (edited again since): {k}"));
                    }
                    s
                },
            )
        }
        Cmd::Conflicts => {
            let r = open(cli)?;
            let c = r.conflicts()?;
            out.emit(&c, || {
                if c.is_empty() {
                    return "no conflicts".to_string();
                }
                let mut t = Table::new(&["SCOPE", "KEY", "VALUE", "AUTHOR", ""]);
                for conflict in &c {
                    for v in &conflict.values {
                        let who = fleetdeck_store::MemberKey::parse(&v.author)
                            .ok()
                            .and_then(|k| r.state().member_name(&k).map(str::to_string))
                            .unwrap_or_else(|| short(&v.author).to_string());
                        t.row(vec![
                            conflict.scope.clone(),
                            conflict.key.clone(),
                            v.value.to_string(),
                            who,
                            if v.winner {
                                "winner".into()
                            } else {
                                String::new()
                            },
                        ]);
                    }
                }
                format!("{}\nset a key again to resolve its conflict", t.render())
            })
        }
        Cmd::Status => {
            let r = open(cli)?;
            let now = now_ms();
            let (states, summary, alerts) = r.status(now);
            let st = r.state();
            let rows: Vec<Value> = states
                .iter()
                .map(|(site, state)| {
                    let sid = SiteId::parse(site).ok();
                    let nodes = sid.as_ref().map_or(0, |s| st.nodes_of(s).count());
                    let open_alerts = alerts
                        .iter()
                        .filter(|a| &a.site == site && !a.is_hidden(now))
                        .count();
                    json!({"site": site, "state": state, "nodes": nodes, "alerts": open_alerts})
                })
                .collect();
            let doc = json!({"fleet": st.name, "fleet_id": st.fleet_id, "frozen": st.is_frozen(), "nodes": st.nodes.len(), "summary": summary, "sites": rows});
            out.emit(&doc, || {
                output::render_status(&st.name, st.nodes.len(), &summary, &rows, st.is_frozen())
            })
        }
        Cmd::Alerts(args) => alerts(cli, &out, args),
        Cmd::Invite { role, ttl, addrs } => net::invite(&mut open(cli)?, &out, *role, *ttl, addrs),
        Cmd::Join {
            token,
            name,
            listen,
        } => net::join_cmd(&data_dir(cli)?, &out, token, name, *listen),
        Cmd::Peers => net::peers(&data_dir(cli)?, &open(cli)?, &out),
        Cmd::Sync {
            peer, once: true, ..
        } => net::sync_once(open(cli)?, &out, peer.as_deref()),
        Cmd::Sync {
            peer,
            once: false,
            no_mdns,
        } => {
            let opts = net::ServeOpts {
                listen: SocketAddr::from(([0, 0, 0, 0], 0)),
                peer: peer.as_deref(),
                mdns: !no_mdns,
                quiet: cli.quiet,
            };
            net::serve(&data_dir(cli)?, open(cli)?, &out, opts)
        }
        Cmd::Console {
            read_only,
            theme,
            listen,
            no_mdns,
        } => console::run_with(
            &data_dir(cli)?,
            *read_only,
            theme.as_deref(),
            *listen,
            !no_mdns,
        ),
        Cmd::Demo {
            scenario,
            headless,
            run_for,
            seed,
            speed,
        } => demo::demo(demo::DemoOpts {
            scenario: scenario.clone(),
            headless: *headless,
            run_for: *run_for,
            seed: *seed,
            speed: *speed,
        }),
        Cmd::Scenario(ScenarioCmd::List) => demo::list(cli.json),
        Cmd::Scenario(ScenarioCmd::Run {
            scenario,
            check,
            seed,
            speed,
        }) => demo::run(demo::RunArgs {
            scenario,
            check: *check,
            seed: *seed,
            speed: *speed,
            json: cli.json,
        }),
        Cmd::Command(cmd) => command(cli, &out, cmd),
        Cmd::Rollout(cmd) => rollout(cli, &out, cmd),
        Cmd::Freeze { message } => set_freeze(cli, &out, true, message),
        Cmd::Unfreeze { message } => set_freeze(cli, &out, false, message),
        Cmd::Bundle(BundleCmd::Export { file }) => net::bundle_export(&mut open(cli)?, &out, file),
        Cmd::Bundle(BundleCmd::Import { file }) => net::bundle_import(&mut open(cli)?, &out, file),
        Cmd::Serve { listen, no_mdns } => {
            let opts = net::ServeOpts {
                listen: *listen,
                peer: None,
                mdns: !no_mdns,
                quiet: cli.quiet,
            };
            net::serve(&data_dir(cli)?, open(cli)?, &out, opts)
        }
    }
}

fn site(cli: &Cli, out: &Out, cmd: &SiteCmd) -> Result<()> {
    let mut r = open(cli)?;
    match cmd {
        SiteCmd::Add {
            site_id,
            name,
            lat,
            lon,
            zone,
        } => {
            let id = SiteId::parse(site_id)?;
            let rec = SiteRecord {
                name: name.clone(),
                lat: *lat,
                lon: *lon,
                zone: zone.clone(),
            };
            let (_, hash) =
                r.change(&format!("add site {id}"), |doc, _| doc.add_site(&id, &rec))?;
            out.done(&format!("added site {id}"), hash)
        }
        SiteCmd::List => {
            let st = r.state();
            let rows: Vec<Value> = st
                .sites
                .values()
                .map(|s| json!({"id": s.id, "name": s.record.name, "lat": s.record.lat, "lon": s.record.lon, "zone": s.record.zone, "nodes": st.nodes_of(&s.id).count(), "overrides": s.overrides.len()}))
                .collect();
            out.emit(&rows, || {
                let mut t = Table::new(&["SITE", "NAME", "ZONE", "NODES", "OVERRIDES", "LOCATION"]);
                for s in st.sites.values() {
                    t.row(vec![
                        s.id.to_string(),
                        s.record.name.clone(),
                        s.record.zone.clone().unwrap_or_else(|| "-".into()),
                        st.nodes_of(&s.id).count().to_string(),
                        s.overrides.len().to_string(),
                        match (s.record.lat, s.record.lon) {
                            (Some(a), Some(o)) => format!("{a:.4},{o:.4}"),
                            _ => "-".into(),
                        },
                    ]);
                }
                t.render()
            })
        }
        SiteCmd::Show { site_id } => {
            let id = SiteId::parse(site_id)?;
            let st = r.state();
            let s = st.site(&id)?;
            let nodes: Vec<&str> = st.nodes_of(&id).map(|n| n.id.as_str()).collect();
            let overrides = layer_json(&s.overrides);
            let doc =
                json!({"id": s.id, "record": s.record, "nodes": nodes, "overrides": overrides});
            out.emit(&doc, || {
                let mut text = format!("site {}  {}\n", s.id, s.record.name);
                if let Some(z) = &s.record.zone {
                    text.push_str(&format!("zone      {z}\n"));
                }
                if let (Some(a), Some(o)) = (s.record.lat, s.record.lon) {
                    text.push_str(&format!("location  {a}, {o}\n"));
                }
                text.push_str(&format!(
                    "nodes     {}\n",
                    if nodes.is_empty() {
                        "-".to_string()
                    } else {
                        nodes.join(", ")
                    }
                ));
                text.push_str("overrides");
                if s.overrides.is_empty() {
                    text.push_str("  -");
                }
                for (k, v) in &s.overrides {
                    text.push_str(&format!("\n  {k} = {v}"));
                }
                text
            })
        }
        SiteCmd::Rm {
            site_id,
            with_nodes,
        } => {
            let id = SiteId::parse(site_id)?;
            let (_, hash) = r.change(&format!("remove site {id}"), |doc, _| {
                doc.remove_site(&id, *with_nodes)
            })?;
            out.done(&format!("removed site {id}"), hash)
        }
    }
}

fn node(cli: &Cli, out: &Out, cmd: &NodeCmd) -> Result<()> {
    let mut r = open(cli)?;
    match cmd {
        NodeCmd::Add {
            node_id,
            site,
            role,
        } => {
            let id = NodeId::parse(node_id)?;
            let site = SiteId::parse(site)?;
            let rec = NodeRecord {
                site: site.to_string(),
                role: role.clone(),
            };
            let (_, hash) = r.change(&format!("add node {id} to {site}"), |doc, _| {
                doc.add_node(&id, &rec)
            })?;
            out.done(&format!("added node {id} to site {site}"), hash)
        }
        NodeCmd::List { site } => {
            let filter = site.as_deref().map(SiteId::parse).transpose()?;
            let st = r.state();
            if let Some(s) = &filter {
                st.site(s)?;
            }
            let now = now_ms();
            let nodes: Vec<_> = st
                .nodes
                .values()
                .filter(|n| filter.as_ref().is_none_or(|s| &n.site == s))
                .collect();
            let rows: Vec<Value> = nodes
                .iter()
                .map(|n| {
                    let h = r.health().get(n.id.as_str());
                    json!({"id": n.id, "site": n.site, "role": n.record.role, "overrides": n.overrides.len(), "last_heard_ms": h.map(|h| h.received_ms)})
                })
                .collect();
            out.emit(&rows, || {
                let mut t = Table::new(&["NODE", "SITE", "ROLE", "OVERRIDES", "LAST HEARD"]);
                for n in &nodes {
                    let heard = r
                        .health()
                        .get(n.id.as_str())
                        .map(|h| output::ago(now, h.received_ms))
                        .unwrap_or_else(|| "never".into());
                    t.row(vec![
                        n.id.to_string(),
                        n.site.to_string(),
                        n.record.role.clone().unwrap_or_else(|| "-".into()),
                        n.overrides.len().to_string(),
                        heard,
                    ]);
                }
                t.render()
            })
        }
        NodeCmd::Show { node_id } => {
            let id = NodeId::parse(node_id)?;
            let st = r.state();
            let n = st.node(&id)?;
            let h = r.health().get(id.as_str());
            let desired = st
                .effective_node(&id)
                .map(|e| fleetdeck_node::render::revision(&e.to_tree()))
                .ok();
            let doc = json!({"id": n.id, "site": n.site, "role": n.record.role, "overrides": layer_json(&n.overrides), "desired_revision": desired, "bound_to": n.key, "health": h.map(|h| &h.reg), "received_ms": h.map(|h| h.received_ms)});
            out.emit(&doc, || {
                let mut text = format!(
                    "node {}  site {}  role {}\n",
                    n.id,
                    n.site,
                    n.record.role.as_deref().unwrap_or("-")
                );
                match h {
                    Some(h) => {
                        let m = &h.reg.metrics;
                        text.push_str(&format!(
                            "health    seq {}  heard {}  cpu {:.0}%  mem {:.0}%\n",
                            h.reg.seq,
                            output::ago(now_ms(), h.received_ms),
                            m.cpu_pct,
                            m.mem_pct
                        ));
                    }
                    None => text.push_str("health    never reported\n"),
                }
                if let Ok(eff) = st.effective_node(&id) {
                    let desired = fleetdeck_node::render::revision(&eff.to_tree());
                    let applied = h.and_then(|h| h.reg.applied.as_ref());
                    text.push_str(&format!("desired   {desired}\n"));
                    match applied {
                        Some(a) => text.push_str(&format!(
                            "applied   {} ({:?}{}){}\n",
                            a.revision,
                            a.result,
                            a.error
                                .as_ref()
                                .map(|e| format!(": {e}"))
                                .unwrap_or_default(),
                            if a.revision == desired {
                                ""
                            } else {
                                "  [behind]"
                            }
                        )),
                        None => text.push_str("applied   nothing reported yet\n"),
                    }
                }
                if let Some(h) = h {
                    if let Some(why) = &h.reg.safe_mode {
                        text.push_str(&format!("SAFE MODE {why} (`fleetdeck node resume {id}`)\n"));
                    }
                    if !h.reg.drift.is_empty() {
                        text.push_str(&format!("drift     {}\n", h.reg.drift.join(", ")));
                    }
                }
                text.push_str("overrides");
                if n.overrides.is_empty() {
                    text.push_str("  -");
                }
                for (k, v) in &n.overrides {
                    text.push_str(&format!("\n  {k} = {v}"));
                }
                text
            })
        }
        NodeCmd::Rm { node_id } => {
            let id = NodeId::parse(node_id)?;
            let (_, hash) =
                r.change(&format!("remove node {id}"), |doc, _| doc.remove_node(&id))?;
            out.done(&format!("removed node {id}"), hash)
        }
        NodeCmd::Resume { node_id } => {
            let id = NodeId::parse(node_id)?;
            let (_, hash) = r.change(&format!("resume node {id}"), |doc, _| {
                doc.resume_node(&id, now_ms())
            })?;
            out.done(
                &format!("node {id} may apply again (it leaves safe mode when it sees this)"),
                hash,
            )
        }
        NodeCmd::Unbind { node_id } => {
            let id = NodeId::parse(node_id)?;
            let (_, hash) =
                r.change(&format!("unbind node {id}"), |doc, _| doc.unbind_node(&id))?;
            out.done(&format!("node {id} is bound to no replica now"), hash)
        }
        NodeCmd::Run {
            node,
            root,
            listen,
            metrics,
            no_mdns,
        } => {
            let dir = data_dir(cli)?;
            let opts = daemon::RunOpts {
                node: node.as_deref(),
                root: root.clone().unwrap_or_else(|| dir.join("root")),
                listen: *listen,
                metrics: *metrics,
                mdns: !no_mdns,
                status_file: dir.join(net::STATUS_FILE),
            };
            daemon::run(r, out, opts)
        }
    }
}

fn layer_json(layer: &config::Layer) -> Value {
    let mut eff = config::Effective::default();
    eff.overlay(layer, config::Source::Fleet);
    // Nulls (removals) are part of an override: show them as such.
    let mut tree = eff.to_tree();
    for (k, v) in layer {
        if v.is_null()
            && let Value::Object(m) = &mut tree
        {
            m.insert(k.to_key(), Value::Null);
        }
    }
    tree
}

fn layer_name(layer: &LayerRef) -> String {
    match layer {
        LayerRef::Fleet => "fleet".into(),
        LayerRef::Site(s) => format!("site {s}"),
        LayerRef::Node(n) => format!("node {n}"),
    }
}

fn config(cli: &Cli, out: &Out, cmd: &ConfigCmd) -> Result<()> {
    let mut r = open(cli)?;
    match cmd {
        ConfigCmd::Get { key, layer } => {
            let path = ConfigPath::parse(key)?;
            let layer = layer.layer()?;
            let st = r.state();
            let l = st.layer(&layer)?;
            let mut eff = config::Effective::default();
            eff.overlay(l, config::Source::Fleet);
            let value = l
                .get(&path)
                .map(|v| (**v).clone())
                .or_else(|| eff.subtree(Some(&path)))
                .ok_or_else(|| anyhow!("{key} is not set in {}", layer.describe()))?;
            out.emit(
                &json!({"key": path.to_key(), "layer": layer_name(&layer), "value": value}),
                || match &value {
                    Value::String(s) => s.clone(),
                    v => serde_json::to_string_pretty(v).unwrap_or_default(),
                },
            )
        }
        ConfigCmd::Set {
            key,
            value,
            layer,
            message,
        } => {
            let path = ConfigPath::parse(key)?;
            let layer = layer.layer()?;
            let v = config::parse_cli_value(value);
            let msg = commit_msg(message, || {
                format!("set {path} = {v} in {}", layer_name(&layer))
            });
            let (_, hash) = r.change(&msg, |doc, _| doc.set_config(&layer, &path, &v))?;
            match hash {
                Some(_) => out.done(&format!("set {path} = {v} in {}", layer.describe()), hash),
                None => out.done(
                    &format!(
                        "{path} is already {v} in {}; nothing changed",
                        layer.describe()
                    ),
                    None,
                ),
            }
        }
        ConfigCmd::Unset {
            key,
            layer,
            message,
        } => {
            let path = ConfigPath::parse(key)?;
            let layer = layer.layer()?;
            let msg = commit_msg(message, || {
                format!("unset {path} in {}", layer_name(&layer))
            });
            let (_, hash) = r.change(&msg, |doc, _| doc.unset_config(&layer, &path))?;
            out.done(&format!("unset {path} in {}", layer.describe()), hash)
        }
        ConfigCmd::Effective { node, explain } => {
            let id = NodeId::parse(node)?;
            let st = r.state();
            let eff = st.effective_node(&id)?;
            let site = st.node(&id)?.site.clone();
            let origin = |s: config::Source| match s {
                config::Source::Fleet => "fleet".to_string(),
                config::Source::Site => format!("site {site}"),
                config::Source::Node => format!("node {id}"),
                config::Source::Rollout => "rollout".to_string(),
            };
            if *explain {
                let rows: Vec<Value> = eff
                    .leaves()
                    .map(|(p, v, s)| json!({"key": p.to_key(), "value": v, "source": s, "from": origin(s)}))
                    .collect();
                out.emit(&rows, || {
                    let mut t = Table::new(&["KEY", "VALUE", "FROM"]);
                    for (p, v, s) in eff.leaves() {
                        t.row(vec![p.to_key(), v.to_string(), origin(s)]);
                    }
                    t.render()
                })
            } else {
                let tree = eff.to_tree();
                out.emit(&tree, || {
                    serde_json::to_string_pretty(&tree).unwrap_or_default()
                })
            }
        }
    }
}

fn alerts(cli: &Cli, out: &Out, args: &AlertsArgs) -> Result<()> {
    let mut r = open(cli)?;
    let now = now_ms();
    match &args.cmd {
        None => {
            let all = r.alerts(now);
            let shown: Vec<_> = all
                .iter()
                .filter(|a| args.all || !a.is_hidden(now))
                .collect();
            let hidden = all.len() - shown.len();
            out.emit(&shown, || {
                if shown.is_empty() {
                    return if hidden > 0 {
                        format!("no open alerts ({hidden} silenced: --all shows them)")
                    } else {
                        "no open alerts".to_string()
                    };
                }
                let mut t = Table::new(&["SEVERITY", "ALERT", "SITE", "SINCE", "MESSAGE", "STATE"]);
                for a in &shown {
                    let state = match (&a.acked_by, a.silenced_until_ms) {
                        (_, Some(u)) if u > now => format!("silenced until {}", fmt_time(u)),
                        (Some(by), _) => format!("acked by {by}"),
                        _ => String::new(),
                    };
                    t.row(vec![
                        a.severity.to_string(),
                        a.id.clone(),
                        a.site.clone(),
                        a.since_ms.map_or("-".into(), |s| output::ago(now, s)),
                        a.message.clone(),
                        state,
                    ]);
                }
                let mut s = t.render();
                if hidden > 0 && !args.all {
                    s.push_str(&format!("\n({hidden} silenced: --all shows them)"));
                }
                s
            })
        }
        Some(AlertsCmd::Ack { alert_id }) => {
            let alert = find_alert(&r, alert_id, now)?;
            let by = member_label(&r);
            let ack = Ack {
                by,
                at_ms: now,
                until_ms: None,
                since_ms: alert.since_ms,
            };
            let (_, hash) = r.change(&format!("ack {alert_id}"), |doc, _| {
                doc.put_ack(alert_id, &ack)
            })?;
            out.done(&format!("acked {alert_id}"), hash)
        }
        Some(AlertsCmd::Silence { alert_id, duration }) => {
            let alert = find_alert(&r, alert_id, now)?;
            let ms = i64::try_from(duration.as_millis()).context("duration too long")?;
            let until = now.saturating_add(ms);
            let ack = Ack {
                by: member_label(&r),
                at_ms: now,
                until_ms: Some(until),
                since_ms: alert.since_ms,
            };
            let (_, hash) = r.change(
                &format!("silence {alert_id} until {}", fmt_time(until)),
                |doc, _| doc.put_ack(alert_id, &ack),
            )?;
            out.done(
                &format!("silenced {alert_id} until {}", fmt_time(until)),
                hash,
            )
        }
    }
}

fn rollout(cli: &Cli, out: &Out, cmd: &RolloutCmd) -> Result<()> {
    use fleetdeck_store::rollout::{RolloutSpec, parse_waves};
    let mut r = open(cli)?;
    let find = |r: &Replica, id: &str| -> Result<fleetdeck_store::rollout::Rollout> {
        r.state()
            .rollouts
            .iter()
            .find(|x| x.id == id)
            .cloned()
            .ok_or_else(|| anyhow!("no rollout '{id}' (see `fleetdeck rollout list`)"))
    };
    match cmd {
        RolloutCmd::Start {
            set,
            sites,
            waves,
            soak,
            max_fail,
        } => {
            let mut kv = std::collections::BTreeMap::new();
            for s in set {
                let (k, v) = s
                    .split_once('=')
                    .ok_or_else(|| anyhow!("--set '{s}' is not KEY=VALUE"))?;
                ConfigPath::parse(k)?;
                kv.insert(k.to_string(), config::parse_cli_value(v));
            }
            for site in sites {
                r.state().site(&SiteId::parse(site)?)?;
            }
            let spec = RolloutSpec {
                set: kv,
                sites: sites.clone(),
                waves: parse_waves(waves).map_err(|e| anyhow!(e))?,
                soak_ms: i64::try_from(soak.as_millis()).unwrap_or(i64::MAX),
                max_fail: *max_fail,
                by: member_label(&r),
                at_ms: now_ms(),
            };
            let id = fleetdeck_store::identity::random_hex::<4>();
            let what = spec.set.keys().cloned().collect::<Vec<_>>().join(", ");
            let (_, hash) = r.change(&format!("rollout {id}: start ({what})"), |doc, _| {
                doc.add_rollout(&id, &spec)
            })?;
            out.done(
                &format!("rollout {id} started: waves {waves}, soak {}; see `fleetdeck rollout status {id}`", humantime::format_duration(*soak)),
                hash,
            )
        }
        RolloutCmd::List => {
            let st = r.state().clone();
            let rows: Vec<Value> = st
                .rollouts
                .iter()
                .rev()
                .map(|x| {
                    json!({"id": x.id, "phase": x.phase(&st, r.health()), "set": x.spec.set, "sites": x.spec.sites,
                           "waves": x.spec.waves, "waves_open": x.spec.waves.iter().enumerate().filter(|(i, _)| x.wave_open(*i)).count(),
                           "by": x.spec.by, "at_ms": x.spec.at_ms, "halted": x.events.halted.as_ref().map(|h| &h.1)})
                })
                .collect();
            out.emit(&rows, || {
                let mut t = Table::new(&["ROLLOUT", "PHASE", "WAVES OPEN", "SETS", "STARTED"]);
                for x in &rows {
                    t.row(vec![
                        x["id"].as_str().unwrap_or("").to_string(),
                        x["phase"].as_str().unwrap_or("").to_string(),
                        format!(
                            "{}/{}",
                            x["waves_open"],
                            x["waves"].as_array().map_or(0, |w| w.len())
                        ),
                        x["set"].to_string(),
                        fmt_time(x["at_ms"].as_i64().unwrap_or(0)),
                    ]);
                }
                t.render()
            })
        }
        RolloutCmd::Status { id } => {
            let x = find(&r, id)?;
            let st = r.state().clone();
            let waves = x.wave_status(&st, r.health());
            let phase = x.phase(&st, r.health());
            let doc = json!({"id": x.id, "phase": phase, "spec": x.spec, "events": x.events, "waves": waves});
            out.emit(&doc, || {
                let mut s = format!(
                    "rollout {} ({:?}): sets {}\n",
                    x.id,
                    phase,
                    json!(x.spec.set)
                );
                if let Some((_, why)) = &x.events.halted {
                    s.push_str(&format!("halted: {why}\n"));
                }
                let mut t = Table::new(&[
                    "WAVE", "UP TO", "OPEN", "NODES", "APPLIED", "HEALTHY", "FAILED",
                ]);
                for (i, w) in waves.iter().enumerate() {
                    t.row(vec![
                        (i + 1).to_string(),
                        format!("{}%", w.percent),
                        if w.open { "yes".into() } else { "no".into() },
                        w.nodes.len().to_string(),
                        w.applied.to_string(),
                        w.healthy.to_string(),
                        w.failed.to_string(),
                    ]);
                }
                s.push_str(&t.render());
                s
            })
        }
        RolloutCmd::Pause { id } | RolloutCmd::Resume { id } | RolloutCmd::Abort { id } => {
            find(&r, id)?;
            let event = match cmd {
                RolloutCmd::Pause { .. } => "pause",
                RolloutCmd::Resume { .. } => "resume",
                _ => "abort",
            };
            let (_, hash) = r.change(&format!("rollout {id}: {event}"), |doc, _| {
                doc.rollout_event(id, event, now_ms(), None)
            })?;
            let msg = match event {
                "pause" => format!("rollout {id} paused: no new wave opens"),
                "resume" => format!("rollout {id} resumed"),
                _ => format!("rollout {id} aborted: its settings come off every node"),
            };
            out.done(&msg, hash)
        }
    }
}

/// The nodes a command targets now.
fn command_targets(st: &fleetdeck_store::document::FleetState, c: &CommandRecord) -> Vec<NodeId> {
    st.nodes
        .values()
        .filter(|n| c.targets(&n.id, &n.site))
        .map(|n| n.id.clone())
        .collect()
}

fn command(cli: &Cli, out: &Out, cmd: &CommandCmd) -> Result<()> {
    let mut r = open(cli)?;
    match cmd {
        CommandCmd::Run { action, target } => {
            let target = match (&target.site, &target.node) {
                (Some(s), _) => format!("site:{}", r.state().site(&SiteId::parse(s)?)?.id),
                (_, Some(n)) => format!("node:{}", r.state().node(&NodeId::parse(n)?)?.id),
                _ => "all".to_string(),
            };
            let rec = CommandRecord {
                action: action.clone(),
                target: target.clone(),
                by: member_label(&r),
                at_ms: now_ms(),
            };
            let st = r.state().clone();
            let nodes = command_targets(&st, &rec);
            if nodes.is_empty() {
                bail!("no node matches {target}");
            }
            let without: Vec<&str> = nodes
                .iter()
                .filter(|n| {
                    st.effective_node(n)
                        .map(|e| {
                            e.get_str(&format!("actions.{action}.cmd")).is_none()
                                && e.get_str(&format!("actions.{action}")).is_none()
                        })
                        .unwrap_or(true)
                })
                .map(|n| n.as_str())
                .collect();
            if without.len() == nodes.len() {
                bail!(
                    "no targeted node has action '{action}' in its config (set actions.{action} = {{\"cmd\": …, \"timeout_s\": …}})"
                );
            }
            let id = fleetdeck_store::identity::random_hex::<6>();
            let (_, hash) = r
                .change(&format!("command {id}: {action} on {target}"), |doc, _| {
                    doc.add_command(&id, &rec)
                })?;
            let mut msg = format!(
                "command {id}: {action} on {} node(s); see `fleetdeck command status {id}`",
                nodes.len()
            );
            if !without.is_empty() {
                msg.push_str(&format!(
                    " ({} lack the action and will refuse: {})",
                    without.len(),
                    without.join(", ")
                ));
            }
            out.done(&msg, hash)
        }
        CommandCmd::List => {
            let st = r.state();
            let mut cmds: Vec<(&String, &CommandRecord)> = st.commands.iter().collect();
            cmds.sort_by_key(|(_, c)| std::cmp::Reverse(c.at_ms));
            let rows: Vec<Value> = cmds
                .iter()
                .map(|(id, c)| {
                    let res = st.command_results.get(*id);
                    let done = res.map_or(0, |m| m.len());
                    let failed = res.map_or(0, |m| m.values().filter(|x| !x.ok).count());
                    json!({"id": id, "action": c.action, "target": c.target, "by": c.by, "at_ms": c.at_ms,
                           "targets": command_targets(st, c).len(), "reported": done, "failed": failed})
                })
                .collect();
            out.emit(&rows, || {
                let mut t = Table::new(&[
                    "COMMAND", "ACTION", "TARGET", "BY", "WHEN", "REPORTED", "FAILED",
                ]);
                for r in &rows {
                    let txt = |k: &str| r[k].as_str().unwrap_or("").to_string();
                    t.row(vec![
                        txt("id"),
                        txt("action"),
                        txt("target"),
                        txt("by"),
                        fmt_time(r["at_ms"].as_i64().unwrap_or(0)),
                        format!("{}/{}", r["reported"], r["targets"]),
                        r["failed"].to_string(),
                    ]);
                }
                t.render()
            })
        }
        CommandCmd::Status { command_id } => {
            let st = r.state();
            let c = st.commands.get(command_id).ok_or_else(|| {
                anyhow!("no command '{command_id}' (see `fleetdeck command list`)")
            })?;
            let results = st.command_results.get(command_id);
            let rows: Vec<Value> = command_targets(st, c)
                .iter()
                .map(|n| match results.and_then(|m| m.get(n.as_str())) {
                    Some(x) => json!({"node": n, "state": if x.ok { "ok" } else { "failed" }, "exit_code": x.exit_code, "output": x.output, "at_ms": x.at_ms}),
                    None => json!({"node": n, "state": "pending", "exit_code": null, "output": null, "at_ms": null}),
                })
                .collect();
            let doc = json!({"id": command_id, "action": c.action, "target": c.target, "by": c.by, "at_ms": c.at_ms, "nodes": rows});
            out.emit(&doc, || {
                let mut t = Table::new(&["NODE", "STATE", "EXIT", "OUTPUT"]);
                for r in &rows {
                    t.row(vec![
                        r["node"].as_str().unwrap_or("").to_string(),
                        r["state"].as_str().unwrap_or("").to_string(),
                        r["exit_code"]
                            .as_i64()
                            .map_or("-".into(), |c| c.to_string()),
                        r["output"]
                            .as_str()
                            .map(|o| o.lines().last().unwrap_or("").to_string())
                            .unwrap_or_default(),
                    ]);
                }
                format!(
                    "command {command_id}: {} on {} by {}\n{}",
                    c.action,
                    c.target,
                    c.by,
                    t.render()
                )
            })
        }
    }
}

fn set_freeze(cli: &Cli, out: &Out, frozen: bool, message: &str) -> Result<()> {
    let mut r = open(cli)?;
    let rec = FreezeRecord {
        frozen,
        by: member_label(&r),
        at_ms: now_ms(),
        message: message.to_string(),
    };
    let what = if frozen { "freeze" } else { "unfreeze" };
    let msg = if message.is_empty() {
        what.to_string()
    } else {
        format!("{what}: {message}")
    };
    let (_, hash) = r.change(&msg, |doc, _| doc.set_freeze(&rec))?;
    if frozen {
        out.done(
            "the fleet is frozen: no node applies anything new until `fleetdeck unfreeze`",
            hash,
        )
    } else {
        out.done(
            "the fleet is unfrozen: nodes apply their config again",
            hash,
        )
    }
}

fn member_label(r: &Replica) -> String {
    r.state()
        .member_name(r.key())
        .map(str::to_string)
        .unwrap_or_else(|| r.key().short().to_string())
}

fn find_alert(r: &Replica, id: &str, now: i64) -> Result<fleetdeck_store::alerts::Alert> {
    match r.alerts(now).into_iter().find(|a| a.id == id) {
        Some(a) => Ok(a),
        None => bail!("no open alert '{id}' (see `fleetdeck alerts --all`)"),
    }
}
