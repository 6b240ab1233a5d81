//! The fleet's relay (`sync.relay_url`): replicas that know no address of
//! each other, and publish none, still sync through it. The relay is iroh's
//! test relay on 127.0.0.1 with a self-signed certificate.

mod common;

use std::time::Duration;

use common::*;
use fleetdeck_store::config::ConfigPath;
use fleetdeck_store::document::LayerRef;
use fleetdeck_sync::Engine;
use iroh::tls::CaTlsConfig;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_with_no_address_for_each_other_sync_through_the_relay() {
    let (_map, relay_url, _server) = iroh::test_utils::run_relay_server()
        .await
        .expect("test relay on 127.0.0.1");
    let (_tmp, mut reps) = replicas(3);
    let path = ConfigPath::parse("sync.relay_url").unwrap();
    let url = json!(relay_url.to_string());
    // The admin sets the fleet's relay, and every replica holds that
    // change before sync starts (as if it had arrived earlier).
    let before = reps[0].heads();
    reps[0]
        .change("relay", |d, _| d.set_config(&LayerRef::Fleet, &path, &url))
        .unwrap();
    let setting = reps[0].changes_after(&before);
    for r in &mut reps[1..] {
        r.apply_changes(setting.clone()).unwrap();
    }
    let mut engines = Vec::new();
    for r in reps {
        let mut cfg = config();
        // No addresses in the member records, no hints, no LAN discovery:
        // the relay is the only way to reach anyone.
        cfg.publish_addrs = false;
        cfg.mdns = false;
        cfg.relay_tls = Some(CaTlsConfig::insecure_skip_verify());
        engines.push(Engine::start(r, cfg).await.unwrap());
    }
    for e in &engines {
        let addrs = e.with_replica(|r| {
            let key = r.key().clone();
            r.state().members[&key].addrs.clone()
        });
        assert!(addrs.is_empty(), "no replica publishes an address");
    }
    set(&engines[0], "frigate.version", json!("0.14"));
    let all: Vec<&Engine> = engines.iter().collect();
    let ok = wait_for(Duration::from_secs(30), || {
        converged(&all)
            && engines
                .iter()
                .all(|e| get(e, "frigate.version") == Some(json!("0.14")))
    })
    .await;
    assert!(ok, "the laptop's edit reached both nodes through the relay");
}
