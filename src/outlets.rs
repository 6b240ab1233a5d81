//! Outlets: where a replica that holds the fleet's health (a hub's `serve`,
//! the demo's operator replica) hands it to the tools operators already run.
//! Each outlet reads `fleetdeck_node::view::FleetView`s from one shared
//! watch channel and never blocks sync: a slow or absent receiver only
//! delays that outlet.

use anyhow::Result;
use fleetdeck_sync::Engine;
use serde::Serialize;

use crate::cli::args::OutletArgs;

/// One outlet that started, for the operator: what and where.
#[derive(Clone, Debug, Serialize)]
pub struct Started {
    pub outlet: &'static str,
    pub detail: String,
}

/// Starts every outlet `args` asks for beside `engine` (on the current
/// tokio runtime); each runs until the engine stops.
pub async fn start(engine: &Engine, args: &OutletArgs) -> Result<Vec<Started>> {
    let mut started = Vec::new();
    // The one view channel every outlet that reads the fleet shares, made
    // on first use (`shared_views`).
    let mut views = None;

    // Alertmanager and webhooks: the open alerts, pushed.
    let paging = fleetdeck_node::paging::PagingConfig {
        alertmanagers: args.alertmanager.clone(),
        webhooks: args.webhook.clone(),
        webhook_secret: args
            .webhook_secret_file
            .as_deref()
            .map(fleetdeck_node::paging::read_secret)
            .transpose()?,
        timing: fleetdeck_node::paging::Timing::default(),
    };
    if !paging.is_empty() {
        let signed = paging.webhook_secret.is_some();
        fleetdeck_node::paging::start(paging, shared_views(&mut views, engine))?;
        for url in &args.alertmanager {
            let url = fleetdeck_node::paging::alertmanager::alerts_url(url);
            started.push(Started {
                outlet: "alertmanager",
                detail: fleetdeck_node::paging::shown_with_path(&url),
            });
        }
        for url in &args.webhook {
            let url = fleetdeck_node::paging::shown(url);
            started.push(Started {
                outlet: "webhook",
                detail: if signed {
                    format!("{url} (signed)")
                } else {
                    url
                },
            });
        }
    }
    // Prometheus: the whole fleet's metrics, scraped at GET /metrics.
    if let Some(addr) = args.fleet_metrics {
        let bound =
            fleetdeck_node::fleet_metrics::serve(addr, engine, shared_views(&mut views, engine))
                .await
                .map_err(|e| anyhow::anyhow!("could not serve metrics on {addr}: {e}"))?;
        started.push(Started {
            outlet: "metrics",
            detail: format!("http://{bound}/metrics"),
        });
    }
    // MQTT: each node's health retained, alert and apply events.
    if let Some(cfg) = mqtt_config(engine, args)? {
        let detail = format!(
            "{} (topics {}/…{})",
            cfg.broker(),
            cfg.prefix,
            if cfg.homeassistant {
                ", Home Assistant discovery"
            } else {
                ""
            }
        );
        tokio::spawn(fleetdeck_node::mqtt::run(
            cfg,
            shared_views(&mut views, engine),
        ));
        started.push(Started {
            outlet: "mqtt",
            detail,
        });
    }
    Ok(started)
}

/// The MQTT bridge's settings from the flags, checked (`None` without
/// `--mqtt`); its client id is this replica's, so a restart replaces it.
fn mqtt_config(
    engine: &Engine,
    args: &OutletArgs,
) -> Result<Option<fleetdeck_node::mqtt::MqttConfig>> {
    let Some(url) = &args.mqtt else {
        let stray = [
            ("--mqtt-user", args.mqtt_user.is_some()),
            ("--mqtt-password-file", args.mqtt_password_file.is_some()),
            ("--mqtt-ca", args.mqtt_ca.is_some()),
            ("--mqtt-prefix", args.mqtt_prefix.is_some()),
            ("--mqtt-homeassistant", args.mqtt_homeassistant),
        ];
        if let Some((flag, _)) = stray.iter().find(|(_, set)| *set) {
            anyhow::bail!("{flag} needs a broker: add --mqtt URL");
        }
        return Ok(None);
    };
    let key = engine.key().to_string();
    let client_id = format!("fleetdeck-{}", key.get(..12).unwrap_or(&key));
    let mut cfg = fleetdeck_node::mqtt::MqttConfig::new(url, client_id)?;
    cfg.set_login(
        args.mqtt_user.as_deref(),
        args.mqtt_password_file.as_deref(),
    )?;
    if let Some(ca) = &args.mqtt_ca {
        cfg.set_ca_file(ca)?;
    }
    if let Some(prefix) = &args.mqtt_prefix {
        cfg.set_prefix(prefix)?;
    }
    cfg.homeassistant = args.mqtt_homeassistant;
    Ok(Some(cfg))
}

/// The view channel shared by the outlets, made by the first that asks.
fn shared_views(
    views: &mut Option<
        tokio::sync::watch::Receiver<std::sync::Arc<fleetdeck_node::view::FleetView>>,
    >,
    engine: &Engine,
) -> tokio::sync::watch::Receiver<std::sync::Arc<fleetdeck_node::view::FleetView>> {
    views
        .get_or_insert_with(|| fleetdeck_node::view::watch(engine, fleetdeck_node::view::REFRESH))
        .clone()
}
