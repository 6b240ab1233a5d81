//! Home Assistant MQTT discovery: one device per node, with entities that
//! read the node's state topic (up, config in sync, CPU, memory, fullest
//! disk, temperature, last heard), available while the bridge is online.
//! Published (retained) only with `--mqtt-homeassistant`; a node that
//! leaves the fleet has its entries emptied, which removes the device.

use serde_json::{Value, json};

use super::messages::Layout;
use crate::view::NodeView;

/// Home Assistant's default discovery prefix.
pub const DISCOVERY_PREFIX: &str = "homeassistant";

/// The discovery messages (topic, payload) for node `n` of the site named
/// `site_name`.
pub fn discovery(n: &NodeView, site_name: &str, layout: &Layout) -> Vec<(String, String)> {
    let device_id = format!("{}_{}", ha_id(&layout.prefix), ha_id(&n.id));
    let state_topic = layout.state_topic(&n.site, &n.id);
    let device = json!({
        "identifiers": [device_id],
        "name": n.id,
        "manufacturer": "fleetdeck",
        "model": n.role.as_deref().unwrap_or("node"),
        "suggested_area": site_name,
    });
    let base = |name: &str, object: &str, template: &str| -> Value {
        json!({
            "name": name,
            "unique_id": format!("{device_id}_{object}"),
            "object_id": format!("{device_id}_{object}"),
            "state_topic": state_topic,
            "value_template": template,
            "availability_topic": layout.status_topic(),
            "payload_available": "online",
            "payload_not_available": "offline",
            "device": device,
        })
    };
    let mut out = Vec::new();
    let mut push = |component: &str, object: &str, mut v: Value, extra: Value| {
        if let (Value::Object(m), Value::Object(e)) = (&mut v, extra) {
            m.extend(e);
        }
        out.push((
            format!("{DISCOVERY_PREFIX}/{component}/{device_id}/{object}/config"),
            v.to_string(),
        ));
    };
    push(
        "binary_sensor",
        "up",
        base("Up", "up", "{{ 'ON' if value_json.up else 'OFF' }}"),
        json!({"device_class": "connectivity"}),
    );
    push(
        "binary_sensor",
        "in_sync",
        base(
            "Config in sync",
            "in_sync",
            "{{ 'ON' if value_json.in_sync else 'OFF' }}",
        ),
        json!({}),
    );
    for (object, name, field) in [
        ("cpu", "CPU", "cpu_pct"),
        ("memory", "Memory", "mem_pct"),
        ("disk", "Fullest disk", "disk_max_pct"),
    ] {
        push(
            "sensor",
            object,
            base(name, object, &format!("{{{{ value_json.{field} }}}}")),
            json!({"unit_of_measurement": "%", "state_class": "measurement"}),
        );
    }
    push(
        "sensor",
        "temperature",
        base("Temperature", "temperature", "{{ value_json.temp_c }}"),
        json!({"unit_of_measurement": "°C", "device_class": "temperature", "state_class": "measurement"}),
    );
    push(
        "sensor",
        "last_heard",
        base("Last heard", "last_heard", "{{ value_json.last_heard }}"),
        json!({"device_class": "timestamp"}),
    );
    out
}

/// An id as Home Assistant allows it in a discovery topic (`A-Z a-z 0-9 _
/// -`), one-to-one: `_` is written `__` and any other byte `_XX`.
pub fn ha_id(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'_' => out.push_str("__"),
            b if b.is_ascii_alphanumeric() || b == b'-' => out.push(char::from(b)),
            b => out.push_str(&format!("_{b:02x}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_with_dots_and_underscores_stay_distinct() {
        assert_eq!(ha_id("cam-1.lab"), "cam-1_2elab");
        assert_ne!(ha_id("a.b"), ha_id("a_b"));
        assert_ne!(ha_id("a_2eb"), ha_id("a.b"));
        assert_eq!(ha_id("ops/fleet"), "ops_2ffleet");
    }
}
