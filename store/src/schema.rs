//! The schema of known config keys: their types and ranges. Keys not listed
//! here are free-form, except inside the closed sections (`alerts`,
//! `heartbeat`), where an unknown key is almost always a typo.

use serde_json::Value;

use crate::config::{ConfigPath, Source};
use crate::error::{Result, StoreError};

#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// A whole number in `min..=max`, with the unit shown in errors.
    Int {
        min: i64,
        max: i64,
        unit: &'static str,
    },
    /// Any number in `min..=max`.
    Number {
        min: f64,
        max: f64,
        unit: &'static str,
    },
    /// One of a few words.
    OneOf(&'static [&'static str]),
    /// An `https://` (or `http://`) URL, set in the fleet defaults only.
    FleetUrl,
    /// A PEM certificate (one or more `CERTIFICATE` blocks), set in the
    /// fleet defaults only.
    FleetCert,
    /// A list of member names (or keys), set in the fleet defaults only.
    FleetMembers,
    /// A list of `IPv4:PORT` targets (`tunnel.allow`), in any layer.
    Targets,
}

pub struct KeySpec {
    pub key: &'static str,
    pub kind: Kind,
    pub default: Option<f64>,
    pub help: &'static str,
}

/// Every key with a type, its default (where the replica applies one) and a
/// line of help for the console and the README.
pub const KEYS: &[KeySpec] = &[
    KeySpec {
        key: "heartbeat.interval_s",
        kind: Kind::Int {
            min: 1,
            max: 3600,
            unit: "seconds",
        },
        default: Some(10.0),
        help: "seconds between a node's heartbeats",
    },
    KeySpec {
        key: "alerts.missed_beats",
        kind: Kind::Int {
            min: 1,
            max: 1000,
            unit: "heartbeats",
        },
        default: Some(3.0),
        help: "missed heartbeat intervals before a node is down",
    },
    KeySpec {
        key: "alerts.site_offline_s",
        kind: Kind::Int {
            min: 1,
            max: 604_800,
            unit: "seconds",
        },
        default: Some(300.0),
        help: "seconds with every node of a site down before the site is offline",
    },
    KeySpec {
        key: "alerts.disk_pct",
        kind: Kind::Number {
            min: 1.0,
            max: 100.0,
            unit: "percent",
        },
        default: Some(85.0),
        help: "disk use above which a node alerts",
    },
    KeySpec {
        key: "alerts.mem_pct",
        kind: Kind::Number {
            min: 1.0,
            max: 100.0,
            unit: "percent",
        },
        default: Some(90.0),
        help: "memory use above which a node alerts",
    },
    KeySpec {
        key: "alerts.tls_days",
        kind: Kind::Int {
            min: 1,
            max: 3650,
            unit: "days",
        },
        default: Some(14.0),
        help: "days before TLS certificate expiry that alert",
    },
    KeySpec {
        key: "alerts.backup_stale_h",
        kind: Kind::Int {
            min: 1,
            max: 8760,
            unit: "hours",
        },
        default: Some(48.0),
        help: "hours after the last backup run before backups are stale",
    },
    KeySpec {
        key: "safe_mode.max_failures",
        kind: Kind::Int {
            min: 1,
            max: 100,
            unit: "failed applies",
        },
        default: None,
        help: "failed applies in a row before a node stops applying (default 3)",
    },
    KeySpec {
        key: "drift",
        kind: Kind::OneOf(&["heal", "report"]),
        default: None,
        help: "what a node does with hand edits of rendered files (default heal)",
    },
    KeySpec {
        key: "retention.days",
        kind: Kind::Int {
            min: 1,
            max: 3650,
            unit: "days",
        },
        default: None,
        help: "days recordings and logs are kept",
    },
    KeySpec {
        key: "sync.relay_url",
        kind: Kind::FleetUrl,
        default: None,
        help: "an iroh relay every replica also reaches its peers through (read when sync starts)",
    },
    KeySpec {
        key: "sync.relay_ca",
        kind: Kind::FleetCert,
        default: None,
        help: "the certificate (PEM) of the CA that signed the fleet's relay's: replicas trust only it for the relay (`fleetdeck relay --publish` sets it)",
    },
    KeySpec {
        key: "sync.hubs",
        kind: Kind::FleetMembers,
        default: None,
        help: "the members (names or keys) that are hubs: nodes keep sessions with these and their site's peers, not with every operator's laptop (default: every admin and operator replica)",
    },
    KeySpec {
        key: "tunnel.allow",
        kind: Kind::Targets,
        default: None,
        help: "what a node's tunnels may reach, as IPv4:PORT (\"127.0.0.1:5000\" is the node itself, \"192.168.1.20:554\" a device on its LAN); nothing when unset",
    },
    KeySpec {
        key: "tunnel.wg_port",
        kind: Kind::Int {
            min: 1,
            max: 65535,
            unit: "UDP port",
        },
        default: None,
        help: "the UDP port where a node's daemon takes plain WireGuard from standard clients (`fleetdeck wg-config`); read when the daemon starts; none when unset",
    },
];

/// Sections whose keys are all listed in [`KEYS`].
const CLOSED_SECTIONS: &[&str] = &["alerts", "heartbeat", "safe_mode", "sync", "tunnel"];

pub fn spec(key: &str) -> Option<&'static KeySpec> {
    KEYS.iter().find(|s| s.key == key)
}

fn show(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 60 {
        format!("{}…", &s[..s.floor_char_boundary(60)])
    } else {
        s
    }
}

/// The certificates of a PEM text (`sync.relay_ca`): at least one
/// `CERTIFICATE` block, each decoding to DER, and nothing else (a private
/// key pasted by mistake is refused, not published to the fleet).
pub fn pem_certificates(
    text: &str,
) -> std::result::Result<Vec<rustls_pki_types::CertificateDer<'static>>, String> {
    use rustls_pki_types::pem::{PemObject, SectionKind};
    let mut certs = Vec::new();
    for item in <(SectionKind, Vec<u8>)>::pem_slice_iter(text.as_bytes()) {
        match item {
            Ok((SectionKind::Certificate, der)) if der.first() == Some(&0x30) => {
                certs.push(rustls_pki_types::CertificateDer::from(der));
            }
            Ok((SectionKind::Certificate, _)) => {
                return Err("a CERTIFICATE block does not hold a certificate".into());
            }
            Ok((kind, _)) => {
                return Err(format!(
                    "it holds a {kind:?} block: expected only certificates (never publish a private key)"
                ));
            }
            Err(e) => return Err(format!("it is not PEM: {e}")),
        }
    }
    if certs.is_empty() {
        return Err(
            "expected a PEM certificate (-----BEGIN CERTIFICATE----- …), as `fleetdeck relay` writes to relay/ca.pem".into(),
        );
    }
    Ok(certs)
}

/// Checks the path of a file rendered into a node's release
/// (`files.<PATH>`): relative, inside the release, with no `..` or `.`.
/// The renderer applies the same rule; here it refuses the write itself.
pub fn file_path(p: &str) -> std::result::Result<(), String> {
    use std::path::{Component, Path};
    let path = Path::new(p);
    if p.is_empty() || path.is_absolute() {
        return Err("expected a relative path inside the release (e.g. frigate/config.yml)".into());
    }
    if path
        .components()
        .any(|c| !matches!(c, Component::Normal(_)))
    {
        return Err("may not contain '..', '.' or a root".into());
    }
    Ok(())
}

/// Checks one leaf about to be written into a layer. `null` (removal of an
/// inherited key) is only meaningful in an override.
pub fn validate_leaf(path: &ConfigPath, value: &Value, layer: Source) -> Result<()> {
    let key = path.to_key();
    if value.is_null() && layer == Source::Fleet {
        return Err(StoreError::Invalid(format!(
            "{key} = null is not valid in the fleet defaults: null removes an inherited key and only means something in a site or node override; use `config unset {key}` to remove a default"
        )));
    }
    let segs = path.segments();
    // A scalar or list over a section would wipe the section's known keys.
    if !value.is_object()
        && !value.is_null()
        && let Some(known) = KEYS.iter().find(|s| {
            s.key.len() > key.len()
                && s.key.starts_with(&key)
                && s.key.as_bytes()[key.len()] == b'.'
        })
    {
        return Err(StoreError::Invalid(format!(
            "{key} = {} is not valid: '{key}' is a section holding settings such as {}; set those instead",
            show(value),
            known.key
        )));
    }
    if segs[0] == "files" && segs.len() > 1 {
        if let Err(why) = file_path(&segs[1]) {
            return Err(StoreError::Invalid(format!("files.{}: {why}", segs[1])));
        }
        if segs.len() > 2 || !(value.is_string() || value.is_null()) {
            return Err(StoreError::Invalid(format!(
                "files.{}: a file's content is a text template (or null to remove it in an override)",
                segs[1]
            )));
        }
    }
    if segs.len() == 3 && segs[0] == "zones" && segs[2] == "quorum" && !value.is_null() {
        if layer != Source::Fleet {
            return Err(StoreError::Invalid(format!(
                "{key} is fleet-wide (a zone spans sites): set it in the fleet defaults"
            )));
        }
        if !value.as_u64().is_some_and(|n| (1..=100_000).contains(&n)) {
            return Err(StoreError::Invalid(format!(
                "{key} = {} is not valid: expected how many of the zone's nodes must be up, a whole number from 1 to 100000",
                show(value)
            )));
        }
    }
    if CLOSED_SECTIONS.contains(&segs[0].as_str()) && segs.len() > 1 && spec(&key).is_none() {
        let section = &segs[0];
        let known: Vec<&str> = KEYS
            .iter()
            .filter(|s| s.key.starts_with(&format!("{section}.")))
            .map(|s| s.key)
            .collect();
        return Err(StoreError::Invalid(format!(
            "{key} is not a known setting: the {section} section holds {}",
            known.join(", ")
        )));
    }
    let Some(spec) = spec(&key) else {
        return Ok(());
    };
    if value.is_null() {
        return Ok(());
    }
    match spec.kind {
        Kind::Int { min, max, unit } => match value.as_i64() {
            Some(n) if (min..=max).contains(&n) => Ok(()),
            Some(_) => Err(StoreError::Invalid(format!(
                "{key} = {} is out of range: expected a whole number of {unit} from {min} to {max}",
                show(value)
            ))),
            None => Err(StoreError::Invalid(format!(
                "{key} = {} is not valid: expected a whole number of {unit} from {min} to {max}",
                show(value)
            ))),
        },
        Kind::OneOf(words) => match value.as_str() {
            Some(w) if words.contains(&w) => Ok(()),
            _ => Err(StoreError::Invalid(format!(
                "{key} = {} is not valid: expected one of {}",
                show(value),
                words.join(", ")
            ))),
        },
        Kind::FleetUrl => {
            if layer != Source::Fleet {
                return Err(StoreError::Invalid(format!(
                    "{key} is fleet-wide: set it in the fleet defaults, not in a site or node override"
                )));
            }
            let text = value.as_str().unwrap_or("");
            let rest = text
                .strip_prefix("https://")
                .or_else(|| text.strip_prefix("http://"));
            match rest {
                Some(host)
                    if !host.is_empty()
                        && !host.starts_with('/')
                        && !text.contains(char::is_whitespace) =>
                {
                    Ok(())
                }
                _ => Err(StoreError::Invalid(format!(
                    "{key} = {} is not valid: expected a URL such as \"https://relay.example.org\"",
                    show(value)
                ))),
            }
        }
        Kind::FleetCert => {
            if layer != Source::Fleet {
                return Err(StoreError::Invalid(format!(
                    "{key} is fleet-wide: set it in the fleet defaults, not in a site or node override"
                )));
            }
            let text = value.as_str().unwrap_or("");
            pem_certificates(text)
                .map(|_| ())
                .map_err(|why| StoreError::Invalid(format!("{key} is not valid: {why}")))
        }
        Kind::FleetMembers => {
            if layer != Source::Fleet {
                return Err(StoreError::Invalid(format!(
                    "{key} is fleet-wide: set it in the fleet defaults, not in a site or node override"
                )));
            }
            let names = value.as_array().filter(|a| {
                !a.is_empty()
                    && a.len() <= 64
                    && a.iter()
                        .all(|v| v.as_str().is_some_and(|s| !s.trim().is_empty()))
            });
            match names {
                Some(_) => Ok(()),
                None => Err(StoreError::Invalid(format!(
                    "{key} = {} is not valid: expected a list of 1 to 64 member names or keys, such as [\"hub-de\", \"hub-fi\"]",
                    show(value)
                ))),
            }
        }
        Kind::Targets => crate::overlay::parse_tunnel_allow(value)
            .map(|_| ())
            .map_err(|why| StoreError::Invalid(format!("{key} is not valid: {why}"))),
        Kind::Number { min, max, unit } => match value.as_f64() {
            Some(n) if n >= min && n <= max => Ok(()),
            Some(_) => Err(StoreError::Invalid(format!(
                "{key} = {} is out of range: expected a number of {unit} from {min} to {max}",
                show(value)
            ))),
            None => Err(StoreError::Invalid(format!(
                "{key} = {} is not valid: expected a number of {unit} from {min} to {max}",
                show(value)
            ))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(key: &str, v: Value) -> Result<()> {
        validate_leaf(&ConfigPath::parse(key).unwrap(), &v, Source::Fleet)
    }

    #[test]
    fn a_zone_quorum_is_a_whole_number_of_nodes_in_the_fleet_defaults() {
        let p = ConfigPath::parse("zones.north.quorum").unwrap();
        assert!(validate_leaf(&p, &serde_json::json!(2), Source::Fleet).is_ok());
        let e = validate_leaf(&p, &serde_json::json!(0.5), Source::Fleet)
            .unwrap_err()
            .to_string();
        assert!(e.contains("whole number from 1"), "{e}");
        let e = validate_leaf(&p, &serde_json::json!(2), Source::Site)
            .unwrap_err()
            .to_string();
        assert!(e.contains("fleet-wide"), "{e}");
        // Other keys under a zone are the operator's own.
        let pumps = ConfigPath::parse("zones.north.pumps").unwrap();
        assert!(validate_leaf(&pumps, &serde_json::json!(["pump-01"]), Source::Fleet).is_ok());
    }

    #[test]
    fn known_keys_accept_values_in_range() {
        check("heartbeat.interval_s", json!(10)).unwrap();
        check("alerts.disk_pct", json!(85.5)).unwrap();
        check("retention.days", json!(30)).unwrap();
        check("frigate.version", json!("0.14")).unwrap();
    }

    #[test]
    fn out_of_range_and_wrong_type_name_key_value_and_expectation() {
        let e = check("heartbeat.interval_s", json!(0))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "heartbeat.interval_s = 0 is out of range: expected a whole number of seconds from 1 to 3600"
        );
        let e = check("alerts.mem_pct", json!("lots"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("alerts.mem_pct = \"lots\" is not valid"), "{e}");
        let e = check("heartbeat.interval_s", json!(2.5))
            .unwrap_err()
            .to_string();
        assert!(e.contains("whole number"), "{e}");
    }

    #[test]
    fn typos_in_closed_sections_and_scalars_over_sections_are_refused() {
        let e = check("alerts.dsk_pct", json!(80)).unwrap_err().to_string();
        assert!(e.contains("alerts.disk_pct"), "{e}");
        let e = check("alerts", json!(5)).unwrap_err().to_string();
        assert!(e.contains("section"), "{e}");
    }

    #[test]
    fn word_settings_take_only_their_words() {
        check("drift", json!("report")).unwrap();
        let e = check("drift", json!("ignore")).unwrap_err().to_string();
        assert_eq!(
            e,
            "drift = \"ignore\" is not valid: expected one of heal, report"
        );
    }

    #[test]
    fn null_only_means_something_in_an_override() {
        assert!(check("retention.days", json!(null)).is_err());
        let p = ConfigPath::parse("retention.days").unwrap();
        validate_leaf(&p, &json!(null), Source::Site).unwrap();
    }

    #[test]
    fn the_relay_url_is_a_url_and_fleet_wide() {
        check("sync.relay_url", json!("https://relay.example.org")).unwrap();
        check("sync.relay_url", json!("http://10.0.0.5:3340")).unwrap();
        for bad in [json!("relay.example.org"), json!("https://"), json!(7)] {
            let e = check("sync.relay_url", bad).unwrap_err().to_string();
            assert!(e.contains("expected a URL"), "{e}");
        }
        let p = ConfigPath::parse("sync.relay_url").unwrap();
        let e = validate_leaf(&p, &json!("https://r.example.org"), Source::Site)
            .unwrap_err()
            .to_string();
        assert!(e.contains("fleet-wide"), "{e}");
        let e = check("sync.relay", json!("https://r.example.org"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("sync.relay_url"), "{e}");
    }

    #[test]
    fn hubs_are_a_list_of_member_names_and_fleet_wide() {
        check("sync.hubs", json!(["hub-de", "hub-fi"])).unwrap();
        for bad in [json!("hub-de"), json!([]), json!([""]), json!([7])] {
            let e = check("sync.hubs", bad).unwrap_err().to_string();
            assert!(e.contains("expected a list of 1 to 64 member names"), "{e}");
        }
        let p = ConfigPath::parse("sync.hubs").unwrap();
        let e = validate_leaf(&p, &json!(["hub"]), Source::Site)
            .unwrap_err()
            .to_string();
        assert!(e.contains("fleet-wide"), "{e}");
    }

    const CERT: &str = "-----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END CERTIFICATE-----\n";

    #[test]
    fn the_relay_ca_is_pem_certificates_only_and_fleet_wide() {
        check("sync.relay_ca", json!(CERT)).unwrap();
        let e = check("sync.relay_ca", json!("not pem"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("expected a PEM certificate"), "{e}");
        let key = "-----BEGIN PRIVATE KEY-----\nMAMCAQE=\n-----END PRIVATE KEY-----\n";
        let e = check("sync.relay_ca", json!(format!("{CERT}{key}")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("never publish a private key"), "{e}");
        let p = ConfigPath::parse("sync.relay_ca").unwrap();
        let e = validate_leaf(&p, &json!(CERT), Source::Node)
            .unwrap_err()
            .to_string();
        assert!(e.contains("fleet-wide"), "{e}");
    }
}
