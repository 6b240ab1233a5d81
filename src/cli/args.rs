//! The command line's clap types: every command, flag and help text. No
//! behaviour here: the handlers are in the command groups' modules.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use fleetdeck_store::document::LayerRef;
use fleetdeck_store::{NodeId, Role, SiteId};

use super::{parse_duration, parse_role};
use crate::net;

#[derive(Parser)]
#[command(
    name = "fleetdeck",
    // The commit too (build.rs): `fleetdeck 0.1.0 (0123456789ab)`.
    version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("FLEETDECK_COMMIT"), ")"),
    about = "Local-first fleet operations: every node and laptop holds a replica of the fleet",
    propagate_version = true
)]
pub(crate) struct Cli {
    /// Data directory of this replica [default: $FLEETDECK_DATA, else the XDG data dir]
    #[arg(long, global = true, value_name = "DIR", env = "FLEETDECK_DATA")]
    pub(crate) data: Option<PathBuf>,
    /// Print machine-readable JSON (see the README for the fields)
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// More detail on stderr
    #[arg(short, long, global = true, conflicts_with = "quiet")]
    pub(crate) verbose: bool,
    /// Only errors on stderr
    #[arg(short, long, global = true)]
    pub(crate) quiet: bool,
    #[command(subcommand)]
    pub(crate) cmd: Cmd,
}

#[derive(Subcommand)]
pub(crate) enum Cmd {
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
    /// Members: list, role, revoke
    #[command(subcommand)]
    Member(MemberCmd),
    /// Config: get, set, unset a key in a layer; the effective config of a node
    #[command(subcommand)]
    Config(ConfigCmd),
    /// The change log: id, time, author, what it did, receipts, message (newest first)
    History {
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Also changes that only record a replica's listening address
        #[arg(long)]
        all: bool,
        /// Under each change, the config keys it set and unset, layer by layer, old → new
        #[arg(long)]
        diff: bool,
    },
    /// What happened in the fleet, newest first: nodes down and up, applies and rollbacks, alerts, config edits, rollouts, commands, members
    Events {
        /// How far back (e.g. 30m, 24h, 7d; node events are kept 90 days)
        #[arg(long, value_name = "AGO", default_value = "24h", value_parser = humantime::parse_duration)]
        since: std::time::Duration,
        /// Only this site's events (its nodes' and the changes that name it)
        #[arg(long, value_name = "SITE_ID")]
        site: Option<String>,
        /// Only this node's events (and the changes that name it)
        #[arg(long, value_name = "NODE_ID")]
        node: Option<String>,
        /// Only these kinds (repeat or comma-separate): down, up, applied, rolled_back, failed, safe_mode, resumed, alert_fired, alert_resolved, tunnel, rollout, command, command_result, member, fleet, config, ack, freeze, address, change
        #[arg(long, value_name = "KIND", value_delimiter = ',')]
        kind: Vec<String>,
        /// Also changes that only record a replica's listening address
        #[arg(long)]
        all: bool,
        /// At most this many, newest first
        #[arg(long, default_value_t = 200)]
        limit: usize,
    },
    /// Where a change stands on every node: applied, failed, delivered, not yet
    Receipts {
        /// A change id (or a unique prefix of at least 4 hex digits)
        change: String,
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
    Status {
        #[command(flatten)]
        at: AtArg,
    },
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
    /// Enroll a device (a phone, a laptop without fleetdeck) that reaches nodes' tunnel targets over plain WireGuard, and print its wg-quick configuration
    #[command(
        name = "wg-config",
        after_help = "Admins only. A node the device reaches must take plain WireGuard \
        (tunnel.wg_port) and list targets (tunnel.allow). Without --node, every such node is a \
        peer of the one configuration, each at its overlay address. The configuration holds the \
        device's private key, shown once. The device is a member like any other: \
        `fleetdeck member revoke NAME`."
    )]
    WgConfig {
        /// A node the device reaches (repeat for several) [default: every node that takes plain WireGuard]
        #[arg(long)]
        node: Vec<NodeId>,
        /// The device's member name (e.g. phone-anna)
        #[arg(long)]
        name: String,
        /// Where the device reaches a node: HOST:PORT (one node), or NODE=HOST:PORT (repeat) [default: each node's last known address, at its tunnel.wg_port]
        #[arg(long, value_name = "[NODE=]HOST:PORT")]
        endpoint: Vec<String>,
    },
    /// Reach a service on a node (or a device on its LAN) through a WireGuard tunnel
    #[command(
        after_help = "The node must list the target in its tunnel.allow (admins set it: \
        fleetdeck config set tunnel.allow '[\"127.0.0.1:5000\"]' --node NODE). \
        Operators and admins open tunnels; runs until Ctrl-C."
    )]
    Tunnel {
        /// The node whose daemon ends the tunnel
        node: NodeId,
        /// A port on the node itself (its 127.0.0.1)
        #[arg(required_unless_present = "to", conflicts_with = "to")]
        port: Option<u16>,
        /// A device on the node's LAN instead, as IPv4:PORT (e.g. 192.168.1.20:554)
        #[arg(long, value_name = "IP:PORT")]
        to: Option<std::net::SocketAddrV4>,
        /// Where to listen here (port 0: a free one, printed)
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
        local: SocketAddr,
    },
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
        #[command(flatten)]
        outlets: OutletArgs,
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
    /// Check this data dir's replica: opens, load warnings, quarantined changes, signing, identity, malformed entries; exit 1 when something needs attention
    Doctor,
    /// Make the fleet what a fleet file declares (sites, nodes, config layers, members' roles), in one change
    #[command(
        after_help = "The file is what `fleetdeck export` writes. Sites and nodes it names become exactly \
what it says (their config layers included: keys not in the file are unset); what it does not name is kept, \
unless --prune. Members are added or given new roles, never revoked. See README, \"The fleet as a file\"."
    )]
    Apply {
        /// The fleet file (TOML); `-` reads standard input
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        file: std::path::PathBuf,
        /// Print what would change and change nothing
        #[arg(long)]
        dry_run: bool,
        /// Also remove the sites and nodes the file does not name
        #[arg(long)]
        prune: bool,
    },
    /// Print the fleet as a fleet file (TOML) that `apply -f` takes
    Export {
        /// Write it to FILE instead of standard output
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<std::path::PathBuf>,
    },
    /// Print shell completions to stdout (bash, zsh, fish, elvish, powershell)
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page to stdout, or write one page per command into --dir
    Man {
        /// Write fleetdeck.1 and a page per subcommand (fleetdeck-site-add.1, …) here
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Keep this replica online and in sync, publishing the fleet's health to an MQTT broker (`serve --mqtt URL`)
    Mqtt {
        /// The broker: mqtt://HOST[:PORT] or mqtts://HOST[:PORT]
        url: String,
        #[arg(long, default_value_t = SocketAddr::from(([0, 0, 0, 0], net::DEFAULT_PORT)))]
        listen: SocketAddr,
        /// Do not look for (or announce to) members on the local network
        #[arg(long)]
        no_mdns: bool,
        #[command(flatten)]
        outlets: OutletArgs,
    },
    /// Run the fleet's own relay (on a hub with a reachable address): replicas behind NAT reach each other, and joiners the inviter, through it
    Relay {
        /// Where to listen (HTTPS)
        #[arg(long, default_value_t = SocketAddr::from(([0, 0, 0, 0], super::relay::DEFAULT_PORT)))]
        listen: SocketAddr,
        /// A host name or IP address replicas reach the relay at (in its certificate and URL; repeat for several) [default: the --listen address]
        #[arg(long = "name", value_name = "HOST")]
        names: Vec<String>,
        /// A certificate chain (PEM) to present instead of one signed by the relay's own CA (e.g. a public certificate)
        #[arg(long, value_name = "FILE", requires = "key")]
        cert: Option<PathBuf>,
        /// The private key (PEM) of --cert
        #[arg(long, value_name = "FILE", requires = "cert")]
        key: Option<PathBuf>,
        /// Publish the relay (URL and CA) in the fleet defaults, so every replica uses it (admin)
        #[arg(long)]
        publish: bool,
    },
    /// Keep this replica online and in sync (hub, laptop) without a console
    Serve {
        #[arg(long, default_value_t = SocketAddr::from(([0, 0, 0, 0], net::DEFAULT_PORT)))]
        listen: SocketAddr,
        /// Do not look for (or announce to) members on the local network
        #[arg(long)]
        no_mdns: bool,
        #[command(flatten)]
        outlets: OutletArgs,
    },
}

#[derive(Subcommand)]
pub(crate) enum RolloutCmd {
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
pub(crate) enum ScenarioCmd {
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
pub(crate) enum CommandCmd {
    /// Ask nodes to run ACTION once (an action named in their config)
    Run {
        action: String,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Commands, newest first, with how many nodes have reported
    List,
    /// Each targeted node's result (from its results register, or the
    /// document for older nodes): exit code and output tail, or pending
    /// (unknown once older than the 7 days nodes keep results)
    Status { command_id: String },
}

#[derive(Args)]
#[group(required = true, multiple = false)]
pub(crate) struct TargetArgs {
    #[arg(long, value_name = "SITE_ID")]
    pub(crate) site: Option<String>,
    #[arg(long, value_name = "NODE_ID")]
    pub(crate) node: Option<String>,
    /// Every node of the fleet
    #[arg(long)]
    pub(crate) all: bool,
}

#[derive(Subcommand)]
pub(crate) enum BundleCmd {
    /// Write every change and health register of this replica to FILE
    Export { file: PathBuf },
    /// Merge a bundle (verified like network input; importing twice changes nothing)
    Import { file: PathBuf },
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct AlertsArgs {
    /// Include silenced alerts
    #[arg(long)]
    pub(crate) all: bool,
    #[command(flatten)]
    pub(crate) at: AtArg,
    #[command(subcommand)]
    pub(crate) cmd: Option<AlertsCmd>,
}

#[derive(Subcommand)]
pub(crate) enum AlertsCmd {
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
pub(crate) enum SiteCmd {
    /// Add one site, or many in one change (ids here and/or in --from FILE)
    Add {
        #[arg(value_name = "SITE_ID", required_unless_present = "from")]
        site_ids: Vec<String>,
        /// A file of site ids, one per line (# starts a comment)
        #[arg(long, value_name = "FILE")]
        from: Option<PathBuf>,
        /// The site's name [default: its id]
        #[arg(long)]
        name: Option<String>,
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
    Show {
        site_id: String,
        #[command(flatten)]
        at: AtArg,
    },
    /// Remove a site and its overrides
    Rm {
        site_id: String,
        /// Also remove the site's nodes
        #[arg(long)]
        with_nodes: bool,
    },
}

#[derive(Subcommand)]
pub(crate) enum MemberCmd {
    /// List members: name, key, role, revoked, last address
    List,
    /// Give a member another role (admins only; never the last admin)
    Role {
        /// A member name, key or unique key prefix
        #[arg(value_name = "NAME|KEY")]
        member: String,
        #[arg(value_parser = parse_role)]
        role: Role,
    },
    /// Revoke a member's key for good: its later changes are refused, its sessions closed
    Revoke {
        /// A member name, key or unique key prefix
        #[arg(value_name = "NAME|KEY")]
        member: String,
    },
}

#[derive(Subcommand)]
pub(crate) enum NodeCmd {
    /// Add nodes to a site: one, or many in one change (ids here and/or in --from FILE)
    Add {
        #[arg(value_name = "NODE_ID", required_unless_present = "from")]
        node_ids: Vec<String>,
        /// A file of node ids, one per line (# starts a comment)
        #[arg(long, value_name = "FILE")]
        from: Option<PathBuf>,
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
        #[command(flatten)]
        at: AtArg,
    },
    /// Show a node: its record, overrides and health
    Show {
        node_id: String,
        #[command(flatten)]
        at: AtArg,
        /// What happened to it, newest first: down and up, applies and rollbacks, alerts fired and resolved
        #[arg(long, conflicts_with = "at")]
        timeline: bool,
        /// With --timeline: how far back (e.g. 24h, 7d; the record keeps 90 days)
        #[arg(long, value_name = "AGO", default_value = "24h", requires = "timeline", value_parser = humantime::parse_duration)]
        since: std::time::Duration,
    },
    /// Remove a node and its overrides
    Rm {
        node_id: String,
        /// Also revoke the member key bound to the node (its device)
        #[arg(long)]
        revoke: bool,
    },
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
pub(crate) struct LayerArgs {
    /// The fleet defaults (the default layer)
    #[arg(long)]
    pub(crate) fleet: bool,
    /// A site's overrides
    #[arg(long, value_name = "SITE_ID")]
    pub(crate) site: Option<String>,
    /// A node's overrides
    #[arg(long, value_name = "NODE_ID")]
    pub(crate) node: Option<String>,
}

impl LayerArgs {
    pub(crate) fn layer(&self) -> Result<LayerRef> {
        Ok(match (&self.site, &self.node) {
            (Some(s), _) => LayerRef::Site(SiteId::parse(s)?),
            (_, Some(n)) => LayerRef::Node(NodeId::parse(n)?),
            _ => LayerRef::Fleet,
        })
    }
}

/// `--at TIME` on the commands that answer about health as well as config.
#[derive(Args, Clone, Default)]
pub(crate) struct AtArg {
    /// As this replica saw the fleet at TIME: RFC 3339 (2026-12-06T03:12:00Z), a time ago (2h, 30m), or a change id (when it was made; ID^ just before). Config as the replica held it; health from its record: per minute for 24 h, per quarter hour for 30 days, every change of state (up/down, applies, alerts) for 90 days
    #[arg(long, value_name = "TIME")]
    pub(crate) at: Option<String>,
}

#[derive(Subcommand)]
pub(crate) enum ConfigCmd {
    /// The value a layer sets at KEY (not the merged value: see `effective`)
    Get {
        key: String,
        #[command(flatten)]
        layer: LayerArgs,
        /// As this replica held the fleet at TIME: RFC 3339 (2026-12-06T03:12:00Z), a time ago (2h, 30m), or a change id (just after it; ID^ just before)
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
    },
    /// Set KEY to VALUE in a layer; VALUE is JSON when it parses, else text
    Set {
        key: String,
        /// The value (JSON when it parses, else text); may start with `-`
        /// (`-5`, a PEM certificate)
        #[arg(allow_hyphen_values = true)]
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
        /// As this replica held the fleet at TIME: RFC 3339 (2026-12-06T03:12:00Z), a time ago (2h, 30m), or a change id (just after it; ID^ just before)
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
    },
}

/// Where a replica that holds the fleet's health (a hub's `serve`, the
/// demo) hands it on: the tools operators already run.
#[derive(Args, Clone, Debug, Default)]
#[command(next_help_heading = "Outlets")]
pub(crate) struct OutletArgs {
    /// Serve the whole fleet's metrics for Prometheus here (e.g. 127.0.0.1:9478)
    #[arg(long = "metrics", value_name = "ADDR")]
    pub fleet_metrics: Option<SocketAddr>,
    /// Push the fleet's alerts to this Alertmanager, its base URL (e.g. http://127.0.0.1:9093); repeatable
    #[arg(long = "alertmanager", value_name = "URL", value_parser = fleetdeck_node::paging::parse_url)]
    pub alertmanager: Vec<fleetdeck_node::paging::Url>,
    /// POST each alert change as JSON to this URL (fired, updated, resolved); repeatable
    #[arg(long = "webhook", value_name = "URL", value_parser = fleetdeck_node::paging::parse_url)]
    pub webhook: Vec<fleetdeck_node::paging::Url>,
    /// Sign webhook bodies with the key in FILE (header X-Fleetdeck-Signature: sha256=HEX)
    #[arg(long, value_name = "FILE", requires = "webhook")]
    pub webhook_secret_file: Option<PathBuf>,
    /// Publish the fleet's health to this MQTT broker: mqtt://HOST[:PORT] (1883) or mqtts://HOST[:PORT] (8883)
    #[arg(long, value_name = "URL")]
    pub mqtt: Option<String>,
    /// Log in to the MQTT broker as USER
    #[arg(long, value_name = "USER")]
    pub mqtt_user: Option<String>,
    /// The MQTT password, on the first line of FILE (never on the command line)
    #[arg(long, value_name = "FILE", requires = "mqtt_user")]
    pub mqtt_password_file: Option<PathBuf>,
    /// Check an mqtts:// broker against this CA (PEM) instead of the system's roots
    #[arg(long, value_name = "FILE")]
    pub mqtt_ca: Option<PathBuf>,
    /// The first level(s) of every MQTT topic [default: fleetdeck]
    #[arg(long, value_name = "PREFIX")]
    pub mqtt_prefix: Option<String>,
    /// Also publish Home Assistant discovery messages (each node a device)
    #[arg(long)]
    pub mqtt_homeassistant: bool,
}
