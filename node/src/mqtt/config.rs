//! How the bridge reaches its broker and names its topics: the broker URL
//! (`mqtt://` or `mqtts://`), the user and a password read from a file,
//! the TLS roots (the system's, or one private CA), the topic prefix.
//! Everything is checked here, once, so a bad value is refused at start
//! with a sentence naming it, never later in the background.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// A value the bridge cannot start with.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("MQTT broker URL '{url}' is not valid: {why}")]
    Url { url: String, why: String },
    #[error("MQTT password file {path}: {why}")]
    PasswordFile { path: String, why: String },
    #[error("MQTT CA file {path}: {why}")]
    CaFile { path: String, why: String },
    #[error("MQTT topic prefix '{prefix}' is not valid: {why}")]
    Prefix { prefix: String, why: String },
    #[error("MQTT over TLS: {0}")]
    Tls(String),
    #[error("an MQTT password needs a user: pass --mqtt-user too")]
    PasswordWithoutUser,
}

/// Where and how the bridge connects, and what it publishes.
#[derive(Clone, Debug)]
pub struct MqttConfig {
    pub host: String,
    pub port: u16,
    /// TLS roots for `mqtts://` (`None`: plain TCP).
    pub tls: Option<Arc<RootCertStore>>,
    /// The MQTT client id: one per bridge (a second client with the same
    /// id makes the broker drop the first).
    pub client_id: String,
    pub user: Option<String>,
    pub password: Option<String>,
    /// The first level(s) of every topic (`fleetdeck`).
    pub prefix: String,
    /// Also publish Home Assistant discovery messages.
    pub homeassistant: bool,
    /// The first wait after the broker is lost; doubled up to `backoff_max`.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

/// The topic prefix unless one is given.
pub const DEFAULT_PREFIX: &str = "fleetdeck";

impl MqttConfig {
    /// A bridge to the broker at `url` (`mqtt://HOST[:PORT]`, port 1883 by
    /// default, or `mqtts://HOST[:PORT]`, 8883, checked against the
    /// system's root certificates until `set_ca_file`), anonymous, with
    /// the default prefix.
    pub fn new(url: &str, client_id: impl Into<String>) -> Result<MqttConfig, ConfigError> {
        let bad = |why: &str| ConfigError::Url {
            url: url.to_string(),
            why: why.to_string(),
        };
        let parsed = url::Url::parse(url).map_err(|e| {
            bad(&format!(
                "{e}; expected e.g. mqtt://127.0.0.1:1883 or mqtts://broker.example.org"
            ))
        })?;
        let (tls, default_port) = match parsed.scheme() {
            "mqtt" => (false, 1883),
            "mqtts" => (true, 8883),
            other => {
                return Err(bad(&format!("the scheme '{other}' is not mqtt or mqtts")));
            }
        };
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(bad(
                "credentials do not belong in the URL: pass --mqtt-user and --mqtt-password-file",
            ));
        }
        if !matches!(parsed.path(), "" | "/")
            || parsed.query().is_some()
            || parsed.fragment().is_some()
        {
            return Err(bad(
                "expected only a host and a port, with no path or query",
            ));
        }
        let host = parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("it names no host"))?;
        // An IPv6 literal comes bracketed; the socket wants it bare.
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let tls = if tls {
            Some(Arc::new(system_roots()?))
        } else {
            None
        };
        Ok(MqttConfig {
            host,
            port: parsed.port().unwrap_or(default_port),
            tls,
            client_id: client_id.into(),
            user: None,
            password: None,
            prefix: DEFAULT_PREFIX.to_string(),
            homeassistant: false,
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
        })
    }

    /// Logs in as `user` with the password in `password_file` (its first
    /// line; a trailing newline is not part of it), or with none.
    pub fn set_login(
        &mut self,
        user: Option<&str>,
        password_file: Option<&Path>,
    ) -> Result<(), ConfigError> {
        let password = match password_file {
            None => None,
            Some(path) => Some(read_password(path)?),
        };
        if password.is_some() && user.is_none() {
            return Err(ConfigError::PasswordWithoutUser);
        }
        self.user = user.map(str::to_string);
        self.password = password;
        Ok(())
    }

    /// Trusts only the CA certificate(s) in the PEM file at `path` (a
    /// private CA); only for `mqtts://`.
    pub fn set_ca_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let bad = |why: String| ConfigError::CaFile {
            path: path.display().to_string(),
            why,
        };
        if self.tls.is_none() {
            return Err(bad(
                "a CA only applies to a TLS broker: use an mqtts:// URL".into(),
            ));
        }
        let pem = std::fs::read(path).map_err(|e| bad(format!("cannot read it ({e})")))?;
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| bad(format!("not a PEM certificate ({e})")))?;
            roots
                .add(cert)
                .map_err(|e| bad(format!("not a usable CA certificate ({e})")))?;
        }
        if roots.is_empty() {
            return Err(bad(
                "it holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into(),
            ));
        }
        self.tls = Some(Arc::new(roots));
        Ok(())
    }

    /// Puts every topic under `prefix` (one or more levels, e.g.
    /// `fleetdeck` or `site/ops/fleetdeck`).
    pub fn set_prefix(&mut self, prefix: &str) -> Result<(), ConfigError> {
        let bad = |why: &str| ConfigError::Prefix {
            prefix: prefix.to_string(),
            why: why.to_string(),
        };
        if prefix.is_empty() || prefix.len() > 200 {
            return Err(bad("expected 1 to 200 characters"));
        }
        if prefix.contains(['+', '#', '\0']) {
            return Err(bad("it may not contain the wildcards '+' or '#', or NUL"));
        }
        if prefix.starts_with('$') {
            return Err(bad("topics starting with '$' are the broker's own"));
        }
        if prefix.split('/').any(str::is_empty) {
            return Err(bad(
                "expected levels separated by single '/', with none empty",
            ));
        }
        self.prefix = prefix.to_string();
        Ok(())
    }

    /// The broker as the operator wrote it, for messages.
    pub fn broker(&self) -> String {
        let scheme = if self.tls.is_some() { "mqtts" } else { "mqtt" };
        if self.host.contains(':') {
            format!("{scheme}://[{}]:{}", self.host, self.port)
        } else {
            format!("{scheme}://{}:{}", self.host, self.port)
        }
    }

    /// The rustls client settings for `mqtts://`, on the ring provider.
    pub(crate) fn tls_client(
        &self,
        roots: Arc<RootCertStore>,
    ) -> Result<rustls::ClientConfig, ConfigError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Ok(rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ConfigError::Tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth())
    }
}

/// The first line of the file, without its newline; never empty.
fn read_password(path: &Path) -> Result<String, ConfigError> {
    let bad = |why: String| ConfigError::PasswordFile {
        path: path.display().to_string(),
        why,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read it ({e})")))?;
    let line = text.lines().next().unwrap_or("");
    if line.is_empty() {
        return Err(bad(
            "it is empty; expected the password on its first line".into()
        ));
    }
    Ok(line.to_string())
}

/// The system's root certificates (Debian's ca-certificates).
fn system_roots() -> Result<RootCertStore, ConfigError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err(ConfigError::Tls(
            "this machine has no root certificates to check the broker with; install ca-certificates or pass --mqtt-ca FILE".into(),
        ));
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_give_host_port_and_tls_or_a_sentence_naming_them() {
        let c = MqttConfig::new("mqtt://127.0.0.1", "t").expect("plain");
        assert_eq!(
            (c.host.as_str(), c.port, c.tls.is_none()),
            ("127.0.0.1", 1883, true)
        );
        let c = MqttConfig::new("mqtt://[::1]:18830", "t").expect("v6");
        assert_eq!((c.host.as_str(), c.port), ("::1", 18830));
        assert_eq!(c.broker(), "mqtt://[::1]:18830");
        for (url, says) in [
            ("http://h:1", "'http' is not mqtt or mqtts"),
            ("mqtt://u:p@h", "credentials do not belong in the URL"),
            ("mqtt://h/topic", "no path"),
            ("127.0.0.1:1883", "expected e.g. mqtt://"),
        ] {
            let e = MqttConfig::new(url, "t").expect_err(url).to_string();
            assert!(e.contains(url) && e.contains(says), "{url}: {e}");
        }
    }

    #[test]
    fn a_prefix_with_wildcards_or_empty_levels_is_refused() {
        let mut c = MqttConfig::new("mqtt://h", "t").expect("url");
        c.set_prefix("ops/fleetdeck").expect("two levels");
        assert_eq!(c.prefix, "ops/fleetdeck");
        for p in ["", "a/+", "a#", "$SYS", "a//b", "/a", "a/"] {
            let e = c.set_prefix(p).expect_err(p).to_string();
            assert!(e.contains(&format!("'{p}'")), "{e}");
        }
        assert_eq!(
            c.prefix, "ops/fleetdeck",
            "a refused prefix changes nothing"
        );
    }

    #[test]
    fn the_password_is_the_first_line_of_its_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("pw");
        std::fs::write(&f, "s3cret word\r\n").expect("write");
        let mut c = MqttConfig::new("mqtt://h", "t").expect("url");
        c.set_login(Some("hub"), Some(&f)).expect("login");
        assert_eq!(c.password.as_deref(), Some("s3cret word"));
        assert!(matches!(
            c.set_login(None, Some(&f)),
            Err(ConfigError::PasswordWithoutUser)
        ));
        std::fs::write(&f, "\n").expect("write");
        let e = c
            .set_login(Some("hub"), Some(&f))
            .expect_err("empty")
            .to_string();
        assert!(e.contains("pw") && e.contains("empty"), "{e}");
        let e = c
            .set_login(Some("hub"), Some(&dir.path().join("missing")))
            .expect_err("missing")
            .to_string();
        assert!(e.contains("missing") && e.contains("cannot read"), "{e}");
    }

    #[test]
    fn a_ca_file_must_hold_a_certificate_and_needs_mqtts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("ca.pem");
        std::fs::write(&f, "not a certificate").expect("write");
        let mut plain = MqttConfig::new("mqtt://h", "t").expect("url");
        assert!(
            plain
                .set_ca_file(&f)
                .expect_err("plain")
                .to_string()
                .contains("mqtts://")
        );
        let ca = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
        std::fs::write(&f, ca.cert.pem()).expect("write");
        let mut tls = MqttConfig {
            tls: Some(Arc::new(RootCertStore::empty())),
            ..plain
        };
        tls.set_ca_file(&f).expect("a PEM certificate");
        assert_eq!(tls.tls.as_ref().map(|r| r.len()), Some(1));
        std::fs::write(&f, "no pem here").expect("write");
        let e = tls.set_ca_file(&f).expect_err("garbage").to_string();
        assert!(
            e.contains("ca.pem") && e.contains("no PEM certificate"),
            "{e}"
        );
    }
}
