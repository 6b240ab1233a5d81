//! Benchmark P11 (issue 15): a command to every node of a 10,000-node
//! fleet, and the 10,000 results taken in by one replica (a hub): CPU time
//! and wall time, then `command status` on it (the summary the CLI prints:
//! per target node ok / failed / pending).
//!
//! Results now travel in each node's command results register
//! (`fleetdeck_store::results`): the hub admits each register (decode,
//! bounds, the signature by the key bound to its node, the seq rule) and
//! stores it. Measured two ways: one register a frame (each node pushing
//! its own as it finishes: one transaction each), and relayed in frames of
//! up to 4 MB (one transaction a frame).
//!
//! Baseline in the same run: the same results as document changes taken in
//! the old way, each node's change arriving in its own sync message (the
//! live case): its signature checked, its rights judged
//! (`rights::judge`), taken in and settled (stored, and the commands part
//! of the typed state re-read, every result of the document with it).
//! That costs O(results held) per result, so the baseline runs at 1,000
//! and 2,000 nodes and the figure for 10,000 is extrapolated from the
//! growth between them (printed as such, not measured).
//!
//! The nodes' own work (running the command, signing its register or
//! change) is made before the clock starts. The seed of the outputs' text
//! is printed; set `P11_SEED` to replay, `P11_NODES` for the register run's
//! fleet size (10000; 0 skips it), `P11_BASELINE` for the baseline sizes
//! ("1000,2000"; `P11_BASELINE=10000` measures the old way at full size, a
//! few minutes).
//!
//! Run: `cargo bench -p fleetdeck-store --bench results`

use std::time::{Duration, Instant};

use fleetdeck_store::document::{CommandRecord, CommandResult, FleetDoc, NodeRecord, SiteRecord};
use fleetdeck_store::health::Admission;
use fleetdeck_store::identity::Identity;
use fleetdeck_store::ops::command_targets;
use fleetdeck_store::replica::SignedChange;
use fleetdeck_store::results::{ResultsRegister, SignedResults};
use fleetdeck_store::{NodeId, Replica, Role, SiteId, now_ms, rights};

type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

const COMMAND: &str = "c0ffee000001";
const TARGET_CPU_S: f64 = 5.0;

/// splitmix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// CPU time of this process so far (user + system), from
/// /proc/self/stat (clock ticks of 10 ms); the bench runs on one thread.
fn cpu_time() -> Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return Duration::ZERO;
    };
    // Fields after the command name (which is in parentheses).
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return Duration::ZERO;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // utime and stime are fields 14 and 15 of the line: 11 and 12 here.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// CPU and wall time of `f`.
fn measure<T>(f: impl FnOnce() -> BoxResult<T>) -> BoxResult<(T, Duration, Duration)> {
    let (c0, w0) = (cpu_time(), Instant::now());
    let out = f()?;
    Ok((out, cpu_time() - c0, w0.elapsed()))
}

struct Node {
    id: NodeId,
    identity: Identity,
}

/// A hub (an admin's replica) of a fleet of `n` nodes, each a member of
/// role node bound to its own key, and a command to all of them.
fn fleet(dir: &std::path::Path, n: usize, seed: u64) -> BoxResult<(Replica, Vec<Node>)> {
    let mut rng = Rng(seed ^ 0x5EED_0000_0000_0011);
    let mut hub = Replica::init(dir, "hub", "p11 fleet")?;
    let mut nodes = Vec::with_capacity(n);
    for i in 0..n {
        let mut secret = [0u8; 32];
        for chunk in secret.chunks_mut(8) {
            chunk.copy_from_slice(&rng.next().to_le_bytes());
        }
        nodes.push(Node {
            id: NodeId::parse(&format!("n{i:05}"))?,
            identity: Identity::from_secret(secret),
        });
    }
    let sites: Vec<SiteId> = (0..n.div_ceil(10))
        .map(|s| SiteId::parse(&format!("S{s:04}")))
        .collect::<Result<_, _>>()?;
    hub.change("p11 fleet: sites, nodes and their keys", |d, _| {
        for sid in &sites {
            d.add_site(
                sid,
                &SiteRecord {
                    name: sid.to_string(),
                    lat: None,
                    lon: None,
                    zone: None,
                },
            )?;
        }
        for (i, node) in nodes.iter().enumerate() {
            d.add_node(
                &node.id,
                &NodeRecord {
                    site: sites[i / 10].to_string(),
                    role: Some("camera".into()),
                },
            )?;
            d.put_member(node.identity.key(), node.id.as_str(), Role::Node, now_ms())?;
            d.bind_node(&node.id, node.identity.key())?;
        }
        Ok(())
    })?;
    let rec = CommandRecord {
        action: "logrotate".into(),
        target: "all".into(),
        by: "hub".into(),
        at_ms: now_ms(),
    };
    hub.change("command", |d, _| d.add_command(COMMAND, &rec))?;
    Ok((hub, nodes))
}

fn result(rng: &mut Rng) -> CommandResult {
    CommandResult {
        exit_code: Some(0),
        ok: rng.below(50) != 0,
        output: format!(
            "rotating pattern: /var/log/frigate/*.log after 1 days (7 rotations)\nrotated {} files, {} kB freed",
            1 + rng.below(6),
            rng.below(90_000)
        ),
        at_ms: now_ms(),
    }
}

/// How many times `command status` is computed for its figure (its CPU
/// time is read in 10 ms ticks).
const STATUS_ROUNDS: u32 = 50;

/// `command status`'s summary, [`STATUS_ROUNDS`] times: the summary, and
/// CPU and wall time of one (the mean).
fn status_timed(r: &Replica) -> BoxResult<((usize, usize, usize), Duration, Duration)> {
    let (out, cpu, wall) = measure(|| {
        let mut out = (0, 0, 0);
        for _ in 0..STATUS_ROUNDS {
            out = std::hint::black_box(status(r)?);
        }
        Ok(out)
    })?;
    Ok((out, cpu / STATUS_ROUNDS, wall / STATUS_ROUNDS))
}

/// `command status`'s summary: per target node its state.
fn status(r: &Replica) -> BoxResult<(usize, usize, usize)> {
    let st = r.state();
    let c = st.commands.get(COMMAND).ok_or("no command")?;
    let results = r.command_results(COMMAND);
    let (mut ok, mut failed, mut pending) = (0, 0, 0);
    for n in command_targets(st, c) {
        match results.get(n.as_str()) {
            Some(x) if x.ok => ok += 1,
            Some(_) => failed += 1,
            None => pending += 1,
        }
    }
    Ok((ok, failed, pending))
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// The register path at `n` nodes; `batched`: relayed in 4 MB frames.
fn registers(n: usize, seed: u64, batched: bool) -> BoxResult<(Duration, Duration)> {
    let tmp = tempfile::tempdir()?;
    let (mut hub, nodes) = fleet(&tmp.path().join("hub"), n, seed)?;
    let mut rng = Rng(seed);
    let signed: Vec<SignedResults> = nodes
        .iter()
        .map(|node| {
            let reg = ResultsRegister::with_result(
                None,
                node.id.as_str(),
                COMMAND,
                result(&mut rng),
                now_ms(),
            );
            SignedResults::sign(&reg, &node.identity)
        })
        .collect::<Result<_, _>>()?;
    let bytes: usize = signed.iter().map(|s| s.bytes.len() + s.sig.len()).sum();
    let ((), cpu, wall) = measure(|| {
        let mut stored = 0;
        if batched {
            let mut frame = Vec::new();
            let mut size = 0;
            for s in &signed {
                if size + s.bytes.len() > 4 * 1024 * 1024 && !frame.is_empty() {
                    let out = hub.admit_results_batch(&frame)?;
                    stored += out.iter().filter(|a| **a == Admission::Stored).count();
                    frame.clear();
                    size = 0;
                }
                size += s.bytes.len();
                frame.push(s.clone());
            }
            let out = hub.admit_results_batch(&frame)?;
            stored += out.iter().filter(|a| **a == Admission::Stored).count();
        } else {
            for s in &signed {
                if hub.admit_results(s)? == Admission::Stored {
                    stored += 1;
                }
            }
        }
        if stored != n {
            return Err(format!("only {stored} of {n} registers were stored").into());
        }
        Ok(())
    })?;
    let ((ok, failed, pending), s_cpu, s_wall) = status_timed(&hub)?;
    println!(
        "registers, {}: {n} results ({:.1} MB of signed registers): CPU {:.2} s, wall {:.2} s ({:.0} µs CPU a result); command status (mean of {STATUS_ROUNDS}): {:.2} ms CPU, {:.2} ms wall ({ok} ok, {failed} failed, {pending} pending)",
        if batched {
            "relayed in 4 MB frames"
        } else {
            "one a frame"
        },
        bytes as f64 / 1e6,
        secs(cpu),
        secs(wall),
        secs(cpu) * 1e6 / n as f64,
        secs(s_cpu) * 1e3,
        secs(s_wall) * 1e3,
    );
    if pending != 0 {
        return Err(format!("{pending} nodes show no result").into());
    }
    Ok((cpu, wall))
}

/// The old path at `n` nodes: each result a document change of its node's,
/// in its own sync message.
fn baseline(n: usize, seed: u64) -> BoxResult<(Duration, Duration)> {
    let tmp = tempfile::tempdir()?;
    let (mut hub, nodes) = fleet(&tmp.path().join("hub"), n, seed)?;
    let mut rng = Rng(seed);
    // Each node writes its result on the document as it held it when the
    // command reached it: concurrent changes, as a fleet makes them.
    let mut am = automerge::AutoCommit::new();
    am.apply_changes(hub.changes_after(&[]).into_iter().map(|c| c.change))?;
    let mut shadow = FleetDoc::from_automerge(am)?;
    let base = shadow.heads();
    let mut changes = Vec::with_capacity(n);
    for node in &nodes {
        let doc = shadow.automerge_mut();
        doc.isolate(&base);
        doc.set_actor(node.identity.new_actor());
        shadow.put_command_result(COMMAND, &node.id, &result(&mut rng))?;
        let h = shadow
            .commit(&format!("{} ran logrotate ({COMMAND})", node.id), now_ms())
            .ok_or("a node's edit changed nothing")?;
        let change = shadow
            .automerge_mut()
            .get_change_by_hash(&h)
            .ok_or("a node's change is not in its document")?;
        changes.push(SignedChange {
            change,
            sig: Some(node.identity.sign_change(&h)),
        });
    }
    let ((), cpu, wall) = measure(|| {
        for c in changes {
            c.verify()?;
            rights::judge(&*hub.doc_mut().automerge_mut(), &c.change)
                .map_err(|r| format!("the hub refused a node's change: {}", r.rule))?;
            hub.take_in(c)?;
            hub.settle()?;
        }
        Ok(())
    })?;
    let ((ok, failed, pending), s_cpu, s_wall) = status_timed(&hub)?;
    println!(
        "baseline, document changes one a message: {n} results: CPU {:.2} s, wall {:.2} s ({:.0} µs CPU a result); command status (mean of {STATUS_ROUNDS}): {:.2} ms CPU, {:.2} ms wall ({ok} ok, {failed} failed, {pending} pending)",
        secs(cpu),
        secs(wall),
        secs(cpu) * 1e6 / n as f64,
        secs(s_cpu) * 1e3,
        secs(s_wall) * 1e3,
    );
    if pending != 0 {
        return Err(format!("{pending} nodes show no result").into());
    }
    Ok((cpu, wall))
}

fn main() -> BoxResult<()> {
    let seed = std::env::var("P11_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| now_ms() as u64);
    let n: usize = std::env::var("P11_NODES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let sizes: Vec<usize> = std::env::var("P11_BASELINE")
        .unwrap_or_else(|_| "1000,2000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    println!(
        "P11: a command to every node; the results taken in by one replica. seed {seed} (P11_SEED={seed} to replay)"
    );
    println!("target: < {TARGET_CPU_S} s of CPU for all 10,000 results");
    // P11_NODES=0 runs the baseline alone.
    let mut ours = Vec::new();
    if n > 0 {
        ours.push(("one a frame", registers(n, seed, false)?.0));
        ours.push(("relayed", registers(n, seed, true)?.0));
    }
    let mut base = Vec::new();
    for &m in &sizes {
        base.push((m, baseline(m, seed)?));
    }
    if let [.., (m1, (c1, _)), (m2, (c2, _))] = base[..] {
        // cost(m) ≈ a·m^k: k from the two runs, then 10,000.
        let k = (secs(c2) / secs(c1).max(1e-3)).ln() / (m2 as f64 / m1 as f64).ln();
        let at = secs(c2) * (10_000.0 / m2 as f64).powf(k);
        println!(
            "baseline extrapolated: CPU grows as n^{k:.2} from {m1} to {m2} results, so ≈ {at:.0} s of CPU for 10,000 (not measured)"
        );
    }
    for (label, cpu) in ours {
        let scaled = secs(cpu) * 10_000.0 / n as f64;
        println!(
            "registers, {label}: {:.2} s of CPU for {} results{} → {}",
            secs(cpu),
            n,
            if n == 10_000 {
                String::new()
            } else {
                format!(" (≈ {scaled:.2} s for 10,000)")
            },
            if scaled < TARGET_CPU_S {
                "meets the target"
            } else {
                "MISSES the target"
            }
        );
    }
    Ok(())
}
