//! The MQTT bridge: hands the fleet's health, as a replica that holds it
//! sees it (`FleetView`s on a watch channel), to an MQTT broker — each
//! node's state and last apply retained, alerts retained while open, an
//! events topic for alerts fired and resolved and for apply outcomes, and
//! optionally Home Assistant discovery.
//!
//! It never blocks sync: it only reads the newest view from a watch
//! channel. While the broker is away the bridge keeps just the latest view
//! (events meanwhile are dropped and counted); on every (re)connect it
//! publishes everything retained again, then only what changed.
//!
//! - `config`: the broker URL, login, TLS roots, topic prefix
//! - `messages`: topics and payloads made from views (no networking)
//! - `homeassistant`: discovery messages, one device per node
//! - `connection`: the event loop, reconnects with backoff

pub mod config;
mod connection;
pub mod homeassistant;
pub mod messages;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, LastWill, MqttOptions, QoS, Transport};
use tokio::sync::watch;

pub use config::{ConfigError, DEFAULT_PREFIX, MqttConfig};
use connection::{Backoff, Link};
use messages::Layout;

use crate::view::FleetView;

/// Requests the client queues for the event loop before `publish` waits.
const QUEUE: usize = 256;
/// Largest message either way (a node's state with many disks, an alert
/// with a long message); rumqttc's default is 10 KiB. rumqttc drops the
/// connection rather than send a bigger one, so the publisher never hands
/// it one (`messages::fit`).
const MAX_PACKET: usize = 256 * 1024;
/// How long a stopping bridge waits to say `offline` before it gives up.
const GOODBYE: Duration = Duration::from_secs(2);

/// Publishes `views` to the broker `cfg` names until the sending side of
/// `views` is dropped, then says `offline` and disconnects. Spawn it: it
/// runs for the life of the replica.
pub async fn run(cfg: MqttConfig, mut views: watch::Receiver<Arc<FleetView>>) {
    let layout = Layout {
        prefix: cfg.prefix.clone(),
        homeassistant: cfg.homeassistant,
    };
    let options = match options(&cfg, &layout) {
        Ok(o) => o,
        Err(e) => {
            tracing::error!("MQTT bridge not started: {e}");
            return;
        }
    };
    let (client, events) = AsyncClient::new(options, QUEUE);
    let (link_tx, mut link) = watch::channel(Link::default());
    let backoff = Backoff {
        min: cfg.backoff_min,
        max: cfg.backoff_max,
    };
    let driver = tokio::spawn(connection::drive(events, link_tx, backoff, cfg.broker()));
    let mut publisher = Publisher {
        client,
        layout,
        link: link.clone(),
        on_broker: HashMap::new(),
        last: None,
        session: 0,
        dropped: 0,
        skipped: Vec::new(),
        oversized: HashSet::new(),
    };
    loop {
        tokio::select! {
            r = views.changed() => if r.is_err() { break },
            r = link.changed() => if r.is_err() { break },
        }
        let view = views.borrow_and_update().clone();
        let now = *link.borrow_and_update();
        publisher.step(view, now).await;
    }
    publisher.goodbye().await;
    if tokio::time::timeout(GOODBYE, driver).await.is_err() {
        tracing::debug!("MQTT bridge: the broker did not take the goodbye in time");
    }
}

/// rumqttc's options: client id, login, TLS, the will (`offline`,
/// retained), a clean session (everything retained is sent again anyway).
fn options(cfg: &MqttConfig, layout: &Layout) -> Result<MqttOptions, ConfigError> {
    let mut o = MqttOptions::new(cfg.client_id.clone(), cfg.host.clone(), cfg.port);
    o.set_keep_alive(Duration::from_secs(30))
        .set_clean_session(true)
        .set_max_packet_size(MAX_PACKET, MAX_PACKET)
        .set_last_will(LastWill::new(
            layout.status_topic(),
            "offline",
            QoS::AtLeastOnce,
            true,
        ));
    if let Some(user) = &cfg.user {
        o.set_credentials(user.clone(), cfg.password.clone().unwrap_or_default());
    }
    if let Some(roots) = &cfg.tls {
        let tls = cfg.tls_client(roots.clone())?;
        o.set_transport(Transport::tls_with_config(tls.into()));
    }
    Ok(o)
}

/// The bridge's memory of the broker: what it holds retained from us, and
/// the view last published.
struct Publisher {
    client: AsyncClient,
    layout: Layout,
    link: watch::Receiver<Link>,
    /// Retained topics as last handed to the broker in this or an earlier
    /// session, with their payloads; an empty payload is a topic emptied
    /// (kept, and emptied again in each new session: an emptying queued
    /// when a connection dropped is lost with it).
    on_broker: HashMap<String, String>,
    last: Option<Arc<FleetView>>,
    /// The session everything retained was last published in.
    session: u64,
    /// Events not published since the broker went away.
    dropped: usize,
    /// Nodes last left out for ids that cannot be topic levels.
    skipped: Vec<String>,
    /// Topics whose last message was over the packet limit (warned once).
    oversized: HashSet<String>,
}

impl Publisher {
    async fn step(&mut self, view: Arc<FleetView>, link: Link) {
        let events = match &self.last {
            Some(old) => messages::events(old, &view),
            None => Vec::new(),
        };
        self.last = Some(view.clone());
        if !link.up {
            if self.dropped == 0 && !events.is_empty() {
                tracing::warn!(
                    "MQTT broker unreachable: alert and apply events are dropped until it is back (state is published again then)"
                );
            }
            self.dropped += events.len();
            return;
        }
        let fresh_session = link.session != self.session;
        if fresh_session {
            self.session = link.session;
            if self.dropped > 0 {
                tracing::warn!(
                    "MQTT: {} event(s) were dropped while the broker was unreachable",
                    self.dropped
                );
                self.dropped = 0;
            }
            let status = self.layout.status_topic();
            if !self.publish(&status, "online", true).await {
                return;
            }
        }
        let events_topic = self.layout.events_topic();
        for e in events {
            if !self.publish(&events_topic, &e, false).await {
                self.dropped += 1;
                return;
            }
        }
        self.sync_retained(&view, fresh_session).await;
    }

    /// Brings the broker's retained topics to `view`: what changed (all of
    /// it after a new session), and empties what `view` no longer has
    /// (resolved alerts, removed nodes).
    async fn sync_retained(&mut self, view: &FleetView, all: bool) {
        let want = messages::retained(view, &self.layout);
        if want.skipped != self.skipped {
            if !want.skipped.is_empty() {
                tracing::warn!(
                    "MQTT: not publishing node(s) {} (their ids cannot be MQTT topic levels)",
                    want.skipped.join(", ")
                );
            }
            self.skipped = want.skipped;
        }
        let gone: Vec<String> = self
            .on_broker
            .iter()
            .filter(|(t, p)| (all || !p.is_empty()) && !want.topics.contains_key(*t))
            .map(|(t, _)| t.clone())
            .collect();
        for topic in gone {
            if !self.publish(&topic, "", true).await {
                return;
            }
            self.on_broker.insert(topic, String::new());
        }
        for (topic, payload) in want.topics {
            if !all && self.on_broker.get(&topic) == Some(&payload) {
                continue;
            }
            if !self.publish(&topic, &payload, true).await {
                return;
            }
            self.on_broker.insert(topic, payload);
        }
    }

    /// Queues one message (QoS 1); false when the broker is away (the rest
    /// waits for the next session, which publishes everything again). A
    /// message over the packet limit goes out cut, or not at all (true:
    /// sending it again would not help), with one warning per topic.
    async fn publish(&mut self, topic: &str, payload: &str, retain: bool) -> bool {
        if !self.link.borrow().up {
            return false;
        }
        let cut;
        let payload = match messages::fit(topic, payload, MAX_PACKET) {
            messages::Fit::AsIs => {
                self.oversized.remove(topic);
                payload
            }
            messages::Fit::Cut(smaller) => {
                self.warn_oversized(
                    topic,
                    payload.len(),
                    "published with its largest fields left out (\"truncated\": true)",
                );
                cut = smaller;
                &cut
            }
            messages::Fit::TooBig => {
                self.warn_oversized(topic, payload.len(), "not published");
                return true;
            }
        };
        let sent = self
            .client
            .publish(topic, QoS::AtLeastOnce, retain, payload.as_bytes().to_vec())
            .await;
        if let Err(e) = sent {
            tracing::debug!("MQTT: {topic} not queued: {e}");
            return false;
        }
        true
    }

    /// Warns about `topic` once, until a message to it fits again.
    fn warn_oversized(&mut self, topic: &str, len: usize, what: &str) {
        if self.oversized.insert(topic.to_string()) {
            let shown: String = topic.chars().take(200).collect();
            tracing::warn!(
                "MQTT: a {len}-byte message to {shown} is over the {MAX_PACKET}-byte packet limit: {what}"
            );
        }
    }

    /// `offline` (retained) and a clean disconnect, while the broker is
    /// there; otherwise the will already said it.
    async fn goodbye(&mut self) {
        if !self.link.borrow().up {
            return;
        }
        let status = self.layout.status_topic();
        let said = async {
            self.publish(&status, "offline", true).await;
            let _ = self.client.disconnect().await;
        };
        let _ = tokio::time::timeout(GOODBYE, said).await;
    }
}
