//! P9: time from a node's death to the node-down alert on another replica.
//! An ops replica with an engine and 10 node daemons in one site, in this
//! process, on 127.0.0.1, with `heartbeat.interval_s` = 2. Each trial kills
//! one daemon and polls `Replica::alerts(now)` on the ops replica every
//! 50 ms until that node's `node-down` alert appears.
//!
//! Run: `cargo bench -p fleetdeck-node --bench node_down`
//!
//! The death: the `Daemon` is dropped with no `shutdown()`: its heartbeat and
//! apply tasks are aborted where they stand and its engine goes with it (no
//! graceful close). The node-down rule looks only at when a node was last
//! heard, so a graceful close would not be noticed sooner; a kill -9 or a
//! power cut stops the heartbeats the same way.
//!
//! Baseline in the same run: MQTT last will through a mosquitto broker
//! started by the bench on a loopback port. A rumqttc client with keep-alive
//! = the heartbeat interval and a last will publishes a status every interval;
//! its death is silent (the client stops being polled but its socket stays
//! open, as with a power cut or a cable pulled: no FIN reaches the broker);
//! the time is until the will reaches a subscriber. A context row measures
//! the other kind of death, a crashed process whose socket the kernel
//! closes (the event loop dropped): the broker sees the close at once.
//!
//! `FLEETDECK_BENCH_QUICK=1`: 3 trials each, a smoke run whose figures judge
//! nothing. Every loop is bounded in count and in time.

mod common;

use std::time::{Duration, Instant};

use common::mosquitto::Broker;
use common::*;
use fleetdeck_store::alerts::AlertKind;
use fleetdeck_store::now_ms;
use serde_json::json;

const NODES: usize = 10;
const TRIALS: usize = 7;
const INTERVAL_S: u64 = 2;
const POLL: Duration = Duration::from_millis(50);
const DETECT_LIMIT: Duration = Duration::from_secs(30);
const START_LIMIT: Duration = Duration::from_secs(120);
const TARGET_INTERVALS: f64 = 3.0;
const MQTT_CRASH_TRIALS: usize = 3;

fn main() {
    let trials = if quick() { 3 } else { TRIALS };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    println!(
        "P9 node death -> node-down alert on the ops replica; heartbeat.interval_s = {INTERVAL_S}{}",
        if quick() {
            " (QUICK: smoke run, figures judge nothing)"
        } else {
            ""
        }
    );
    println!(
        "machine: {} CPUs, load average at start {} (other agents build on this machine)",
        cpus(),
        loadavg()
    );
    let rows = rt.block_on(run(trials));
    println!("load average at end {}", loadavg());
    print_table(&rows);
}

async fn run(trials: usize) -> Vec<Row> {
    let interval_ms = (INTERVAL_S * 1000) as f64;
    let (tmp, place) = shm_tempdir("fleetdeck-p9-");
    println!("data dirs on {place}");
    // One site: the site-offline alert (which replaces node-down alerts)
    // needs every node of the site silent; most of them stay alive here.
    let (ops, ids) = make_fleet(
        tmp.path(),
        NODES,
        1,
        &[("heartbeat.interval_s", json!(INTERVAL_S))],
    );
    let (missed, down_after) = {
        let iv = json!(INTERVAL_S);
        let t = fleetdeck_store::alerts::Thresholds::from_lookup(|k| {
            (k == "heartbeat.interval_s").then_some(&iv)
        });
        (t.missed_beats, t.down_after_ms())
    };
    println!(
        "node-down rule (store/src/alerts.rs): down when now - last heard > missed_beats ({missed}) x interval = {down_after} ms; last heard = min(node's time_ms, ops's received_ms)"
    );
    let (ops, daemons) = start_fleet(ops, &ids).await;
    let mut daemons: Vec<Option<_>> = daemons.into_iter().map(Some).collect();
    let names: Vec<String> = ids.iter().map(|(id, _)| id.as_str().to_string()).collect();
    let all_fresh = |ops: &fleetdeck_sync::Engine| {
        ops.with_replica(|r| {
            let now = now_ms();
            names.iter().all(|n| {
                r.health()
                    .get(n)
                    .is_some_and(|s| now - s.received_ms < 2 * interval_ms as i64)
            })
        })
    };
    let ok = wait_until(START_LIMIT, Duration::from_millis(100), || all_fresh(&ops)).await;
    assert!(ok, "every node's heartbeat reaches ops");
    // Settle: a few beats with every node alive.
    tokio::time::sleep(Duration::from_secs(3 * INTERVAL_S)).await;

    let mut detect = Vec::new();
    let mut silence_at_death = Vec::new();
    for (k, slot) in daemons.iter_mut().take(trials.min(NODES - 3)).enumerate() {
        // Deaths fall at different points of the heartbeat cycle.
        tokio::time::sleep(Duration::from_millis(300 + 613 * k as u64 % 2000)).await;
        let victim = names[k].clone();
        let alert_id = format!("node-down:{victim}");
        let heard = ops.with_replica(|r| r.health().get(&victim).map(|s| s.received_ms));
        let daemon = slot.take().expect("a live daemon");
        let t_death = Instant::now();
        let death_ms = now_ms();
        drop(daemon);
        let seen = wait_until(DETECT_LIMIT, POLL, || {
            ops.with_replica(|r| {
                r.alerts(now_ms())
                    .iter()
                    .any(|a| a.id == alert_id && a.kind == AlertKind::NodeDown)
            })
        })
        .await;
        let took = if seen {
            ms(t_death.elapsed())
        } else {
            ms(DETECT_LIMIT)
        };
        let quiet = heard.map_or(f64::NAN, |h| (death_ms - h) as f64);
        println!(
            "  trial {}: {victim} died {quiet:.0} ms after its last heartbeat (as ops last heard it); node-down after {took:.0} ms ({:.2} intervals){}",
            k + 1,
            took / interval_ms,
            if seen {
                ""
            } else {
                " (NOT SEEN: counted at the limit)"
            }
        );
        detect.push(took);
        silence_at_death.push(quiet);
    }
    let others_ok = ops.with_replica(|r| {
        let a = r.alerts(now_ms());
        a.iter().filter(|a| a.kind == AlertKind::NodeDown).count()
    });
    println!("  node-down alerts open at the end: {others_ok} (one per killed node)");
    for d in daemons.into_iter().flatten() {
        d.shutdown().await;
    }
    ops.shutdown().await;
    drop(tmp);

    let (f50, fmax) = (pct(&detect, 50.0), pct(&detect, 100.0));
    println!();
    println!(
        "P9 fleetdeck: {} deaths: p50 {f50:.0} ms ({:.2} intervals)  max {fmax:.0} ms ({:.2} intervals)",
        detect.len(),
        f50 / interval_ms,
        fmax / interval_ms
    );
    println!(
        "  bounds from the rule: (missed_beats x interval) - (time since the last beat at death) + poll {POLL:?}; silence at death p50 {:.0} ms",
        pct(&silence_at_death, 50.0)
    );

    let mut rows = vec![
        Row::new(
            "P9 death -> node-down on ops, p50",
            format!("{f50:.0} ms = {:.2} iv", f50 / interval_ms),
            "-",
            None,
        ),
        Row::new(
            "P9 death -> node-down on ops, max",
            format!("{fmax:.0} ms = {:.2} iv", fmax / interval_ms),
            format!("<= {TARGET_INTERVALS} iv"),
            Some(fmax / interval_ms <= TARGET_INTERVALS),
        ),
    ];
    match mqtt_baseline(trials).await {
        Ok((silent, crash)) => {
            let (s50, smax) = (pct(&silent, 50.0), pct(&silent, 100.0));
            println!(
                "P9 baseline: MQTT last will via mosquitto, keep-alive {INTERVAL_S} s, silent death ({} trials): p50 {s50:.0} ms ({:.2} intervals)  max {smax:.0} ms ({:.2} intervals)",
                silent.len(),
                s50 / interval_ms,
                smax / interval_ms
            );
            println!(
                "  context: crashed process, socket closed by the kernel ({} trials): p50 {:.0} ms  max {:.0} ms",
                crash.len(),
                pct(&crash, 50.0),
                pct(&crash, 100.0)
            );
            rows.push(Row::new(
                "  baseline: MQTT will, silent death, p50",
                format!("{s50:.0} ms = {:.2} iv", s50 / interval_ms),
                "-",
                None,
            ));
            rows.push(Row::new(
                "  baseline: MQTT will, silent death, max",
                format!("{smax:.0} ms = {:.2} iv", smax / interval_ms),
                "-",
                None,
            ));
            rows.push(Row::new(
                "  context: MQTT will, socket closed, p50",
                format!("{:.0} ms", pct(&crash, 50.0)),
                "-",
                None,
            ));
        }
        Err(e) => {
            println!("P9 baseline unavailable: {e}");
            rows.push(Row::new(
                "  baseline: MQTT will",
                "baseline unavailable".into(),
                "-",
                None,
            ));
        }
    }
    rows
}

// ---- the MQTT baseline -----------------------------------------------------

/// Per trial, ms from a client's death to its will at a subscriber: silent
/// deaths, then deaths whose socket the kernel closes.
async fn mqtt_baseline(trials: usize) -> Result<(Vec<f64>, Vec<f64>), String> {
    use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Packet, QoS};
    let broker = Broker::start("")?;
    let port = broker.port;
    println!("mosquitto started on 127.0.0.1:{port}");
    // The subscriber: every will, with when it arrived.
    let (wills_tx, mut wills) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
    let mut so = MqttOptions::new("watcher", "127.0.0.1", port);
    so.set_keep_alive(Duration::from_secs(30));
    let (sub, mut sub_loop) = AsyncClient::new(so, 100);
    let (ready_tx, ready) = tokio::sync::oneshot::channel::<()>();
    let sub_task = tokio::spawn(async move {
        let mut ready_tx = Some(ready_tx);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(900) {
            match sub_loop.poll().await {
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    if let Some(t) = ready_tx.take() {
                        let _ = t.send(());
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if p.payload.as_ref() == b"down" {
                        let _ = wills_tx.send((p.topic.clone(), Instant::now()));
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    sub.subscribe("nodes/+/status", QoS::AtLeastOnce)
        .await
        .map_err(|e| e.to_string())?;
    tokio::time::timeout(Duration::from_secs(5), ready)
        .await
        .map_err(|_| "the subscriber got no SUBACK in 5 s".to_string())?
        .map_err(|_| "the subscriber stopped".to_string())?;

    let mut silent = Vec::new();
    let mut crash = Vec::new();
    // Event loops of silently dead clients: kept (socket open) to the end.
    let mut graveyard = Vec::new();
    for t in 0..(trials + MQTT_CRASH_TRIALS) {
        let silent_death = t < trials;
        let id = format!("agent{t}");
        let topic = format!("nodes/{id}/status");
        let mut o = MqttOptions::new(id.clone(), "127.0.0.1", port);
        o.set_keep_alive(Duration::from_secs(INTERVAL_S));
        o.set_last_will(LastWill::new(&topic, "down", QoS::AtLeastOnce, false));
        let (client, mut ev) = AsyncClient::new(o, 100);
        let (die_tx, mut die) = tokio::sync::oneshot::channel::<()>();
        let (conn_tx, conn) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let mut conn_tx = Some(conn_tx);
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(120) {
                tokio::select! {
                    _ = &mut die => break,
                    e = ev.poll() => match e {
                        Ok(Event::Incoming(Packet::ConnAck(_))) => {
                            if let Some(c) = conn_tx.take() { let _ = c.send(()); }
                        }
                        Ok(_) => {}
                        Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                }
            }
            ev
        });
        tokio::time::timeout(Duration::from_secs(5), conn)
            .await
            .map_err(|_| "an agent got no CONNACK in 5 s".to_string())?
            .map_err(|_| "an agent stopped".to_string())?;
        // The agent's heartbeats: a status every interval, for a few beats.
        let beats = 3;
        for _ in 0..beats {
            client
                .publish(&topic, QoS::AtMostOnce, false, "up")
                .await
                .map_err(|e| e.to_string())?;
            tokio::time::sleep(Duration::from_secs(INTERVAL_S)).await;
        }
        tokio::time::sleep(Duration::from_millis(300 + 613 * t as u64 % 2000)).await;
        let t_death = Instant::now();
        let _ = die_tx.send(());
        let ev = task.await.map_err(|e| e.to_string())?;
        if silent_death {
            graveyard.push((client, ev));
        } else {
            drop(ev);
            drop(client);
        }
        let deadline = t_death + DETECT_LIMIT;
        let mut took = ms(DETECT_LIMIT);
        while Instant::now() < deadline {
            match tokio::time::timeout_at(deadline.into(), wills.recv()).await {
                Ok(Some((tp, at))) if tp == topic => {
                    took = ms(at.saturating_duration_since(t_death));
                    break;
                }
                Ok(Some(_)) => {}
                _ => break,
            }
        }
        println!(
            "  mqtt trial {}: {} death, will after {took:.0} ms ({:.2} intervals)",
            t + 1,
            if silent_death {
                "silent"
            } else {
                "socket-closed"
            },
            took / (INTERVAL_S * 1000) as f64
        );
        if silent_death {
            silent.push(took);
        } else {
            crash.push(took);
        }
    }
    drop(graveyard);
    sub_task.abort();
    Ok((silent, crash))
}
