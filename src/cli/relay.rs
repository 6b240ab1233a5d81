//! `fleetdeck relay`: the fleet's own iroh relay, run on a hub with a
//! reachable address, so replicas behind NAT (and joiners, whose invites
//! carry it) reach each other through it.
//!
//! It is the `iroh-relay` crate's server. With no public certificate it
//! makes its own: a CA kept in `DATA/relay/` (made on the first start, the
//! key readable by its owner only) signs a certificate for the names the
//! relay is reached at, anew at each start. An admin publishes the relay's
//! URL and that CA in the fleet document (`--publish`, or `config set
//! sync.relay_url` and `sync.relay_ca`), and every replica then trusts
//! exactly that CA for the relay: nothing beyond the fleet. A relay with a
//! public certificate (`--cert` and `--key` files) is checked against the
//! public web roots instead.
//!
//! Only the fleet's members are let in: each connection's endpoint id is
//! checked against the members of the replica in the data dir, read again
//! every few seconds (an enrolled member can use the relay within seconds,
//! a revoked one is refused from then on). A joiner, not a member yet,
//! shows the pass its invite carries (signed by an admin, valid until the
//! invite expires).

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use fleetdeck_store::config::ConfigPath;
use fleetdeck_store::document::LayerRef;
use fleetdeck_store::ops::{ConfigEdit, Op};
use fleetdeck_store::{MemberKey, Replica, Role, now_ms};
use fleetdeck_sync::RelayPass;
use iroh::EndpointId;
use iroh_relay::server::{
    Access, AccessControl, CertConfig, ClientRequest, QuicConfig, RelayConfig, Server,
    ServerConfig, TlsConfig,
};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{Cli, data_dir, open};
use crate::output::Out;

/// The port a relay listens on unless told (HTTPS).
pub(crate) const DEFAULT_PORT: u16 = 3340;
/// How often the relay reads the members again.
const MEMBERS_EVERY: Duration = Duration::from_secs(2);

pub(super) struct RelayOpts {
    pub listen: SocketAddr,
    pub names: Vec<String>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub publish: bool,
}

/// The certificate the relay presents, and the CA replicas pin (none for a
/// public certificate).
struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    ca: Option<OwnCa>,
}

struct OwnCa {
    pem: String,
    file: PathBuf,
    sha256: String,
}

pub(super) fn relay(cli: &Cli, out: &Out, opts: RelayOpts) -> Result<()> {
    let dir = data_dir(cli)?;
    let mut replica = open(cli)?;
    let names = names_of(&opts)?;
    let url = url_of(&names[0], opts.listen.port());
    let identity = match (&opts.cert, &opts.key) {
        (Some(cert), Some(key)) => public_identity(cert, key)?,
        (None, None) => own_identity(&dir, &replica.state().fleet_id, &names)?,
        _ => bail!(
            "--cert and --key go together: the relay's certificate chain and its private key (PEM files)"
        ),
    };
    let members = Arc::new(Members::default());
    members.read(&replica);

    let server_config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("TLS for the relay")?
    .with_no_client_auth()
    .with_single_cert(identity.chain.clone(), identity.key.clone_key())
    .context("the relay's certificate and key do not go together")?;
    let mut relay = RelayConfig::new(SocketAddr::new(loopback_like(opts.listen.ip()), 0));
    relay.tls = Some(TlsConfig::new(
        opts.listen,
        CertConfig::Manual { server_config },
    ));
    relay.access = members.clone();
    let mut config = ServerConfig::default();
    config.relay = Some(relay);
    // QUIC address discovery on the same port number over UDP: replicas
    // behind NAT learn their public address from it (for direct paths).
    config.quic = Some(QuicConfig::new(opts.listen));

    match &identity.ca {
        Some(ca) => out.note(&format!(
            "the fleet's relay at {url}: its certificate is signed by the CA in {} (sha256 {}){}",
            ca.file.display(),
            ca.sha256,
            if opts.publish {
                ", published in the fleet document".to_string()
            } else {
                format!(
                    "; an admin publishes it with `fleetdeck relay --publish` here, or:\n  fleetdeck config set sync.relay_url {url}\n  fleetdeck config set sync.relay_ca \"$(cat {})\"",
                    ca.file.display()
                )
            }
        )),
        None => out.note(&format!(
            "the fleet's relay at {url} with the certificate of {}{}",
            opts.cert.as_deref().unwrap_or(Path::new("-")).display(),
            if opts.publish {
                ", published in the fleet document".to_string()
            } else {
                format!("; an admin publishes it with `fleetdeck config set sync.relay_url {url}`")
            }
        )),
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let server = Server::spawn(config)
            .await
            .map_err(|e| anyhow!("could not start the relay on {}: {e}", opts.listen))?;
        // Published once it listens: a relay that could not start is not
        // pointed at by the whole fleet.
        if opts.publish {
            publish(&mut replica, out, &url, identity.ca.as_ref())?;
        }
        let bound = server.https_addr().unwrap_or(opts.listen);
        out.emit(
            &json!({
                "url": url,
                "listen": bound.to_string(),
                "ca_sha256": identity.ca.as_ref().map(|c| &c.sha256),
                "ca_file": identity.ca.as_ref().map(|c| c.file.display().to_string()),
                "published": opts.publish,
            }),
            || format!("relay listening on {bound} ({url}); Ctrl-C stops it"),
        )?;
        // The members, read again while the relay runs.
        let running = Arc::new(AtomicBool::new(true));
        let reader = {
            let (members, running) = (members.clone(), running.clone());
            std::thread::spawn(move || {
                while running.load(Ordering::Acquire) {
                    std::thread::sleep(MEMBERS_EVERY);
                    match replica.refresh() {
                        Ok(true) => members.read(&replica),
                        Ok(false) => {}
                        Err(e) => tracing::warn!("could not read the members again: {e}"),
                    }
                }
            })
        };
        crate::daemon::wait_for_stop().await;
        running.store(false, Ordering::Release);
        if let Err(e) = server.shutdown().await {
            tracing::info!("the relay stopped with an error: {e}");
        }
        let _ = reader.join();
        Ok(())
    })
}

/// The names the relay is reached at: `--name`s, else the address it
/// listens on when that is a specific one.
fn names_of(opts: &RelayOpts) -> Result<Vec<String>> {
    let mut names: Vec<String> = Vec::new();
    for n in &opts.names {
        let n = n.trim();
        if n.is_empty() || n.contains(['/', ':', ' ']) && n.parse::<IpAddr>().is_err() {
            bail!("--name '{n}' is not a host name or an IP address");
        }
        names.push(n.to_string());
    }
    if names.is_empty() {
        let ip = opts.listen.ip();
        if ip.is_unspecified() {
            bail!(
                "--name: the host name or address replicas reach this relay at (--name relay.example.org, --name 203.0.113.7), or --listen IP:PORT on that address"
            );
        }
        names.push(ip.to_string());
    }
    Ok(names)
}

fn url_of(name: &str, port: u16) -> String {
    match name.parse::<IpAddr>() {
        Ok(IpAddr::V6(ip)) => format!("https://[{ip}]:{port}"),
        _ => format!("https://{name}:{port}"),
    }
}

/// The relay's plain-HTTP side (a captive-portal probe iroh's net report
/// would make, which fleetdeck's endpoints do not) stays on loopback.
fn loopback_like(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
    }
}

fn public_identity(cert: &Path, key: &Path) -> Result<Identity> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("--cert {}", cert.display()))?
        .collect::<std::result::Result<_, _>>()
        .with_context(|| format!("--cert {}: not a PEM certificate chain", cert.display()))?;
    if chain.is_empty() {
        bail!("--cert {}: no certificate in it", cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("--key {}: not a PEM private key", key.display()))?;
    Ok(Identity {
        chain,
        key,
        ca: None,
    })
}

/// The CA's parameters: the same at every start (the issuer of the relay's
/// certificate must match the CA's subject).
fn ca_params(fleet_id: &str) -> Result<CertificateParams> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.distinguished_name
        .push(DnType::CommonName, format!("fleetdeck relay CA {fleet_id}"));
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(p)
}

/// The relay's own CA in `DATA/relay/` (made on first use) and a
/// certificate it signs for `names`.
fn own_identity(dir: &Path, fleet_id: &str, names: &[String]) -> Result<Identity> {
    let relay_dir = dir.join("relay");
    let (ca_file, key_file) = (relay_dir.join("ca.pem"), relay_dir.join("ca-key.pem"));
    let params = ca_params(fleet_id)?;
    let (ca_pem, ca_key) = if key_file.exists() || ca_file.exists() {
        let key_pem = std::fs::read_to_string(&key_file)
            .with_context(|| format!("the relay's CA key {}", key_file.display()))?;
        let key = KeyPair::from_pem(&key_pem)
            .map_err(|e| anyhow!("the relay's CA key {} is damaged: {e}", key_file.display()))?;
        let pem = std::fs::read_to_string(&ca_file)
            .with_context(|| format!("the relay's CA {}", ca_file.display()))?;
        fleetdeck_store::schema::pem_certificates(&pem)
            .map_err(|e| anyhow!("the relay's CA {}: {e}", ca_file.display()))?;
        (pem, key)
    } else {
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        std::fs::create_dir_all(&relay_dir)
            .with_context(|| format!("making {}", relay_dir.display()))?;
        write_private(&key_file, &key.serialize_pem())?;
        std::fs::write(&ca_file, cert.pem())
            .with_context(|| format!("writing {}", ca_file.display()))?;
        (cert.pem(), key)
    };
    let ca_der = fleetdeck_store::schema::pem_certificates(&ca_pem)
        .map_err(|e| anyhow!("the relay's CA {}: {e}", ca_file.display()))?
        .remove(0);
    let issuer = Issuer::new(params, ca_key);
    let mut leaf = CertificateParams::new(names.to_vec()).map_err(|e| anyhow!("--name: {e}"))?;
    leaf.distinguished_name
        .push(DnType::CommonName, names[0].clone());
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_key = KeyPair::generate()?;
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer)?;
    Ok(Identity {
        chain: vec![leaf_cert.der().clone(), ca_der.clone()],
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        ca: Some(OwnCa {
            pem: ca_pem,
            file: ca_file,
            sha256: hex_of(&Sha256::digest(ca_der.as_ref())),
        }),
    })
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes a secret readable by its owner only.
fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let mut f = o
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

/// Publishes the relay in the fleet defaults, as one change through the one
/// door (admins only: `sync.*` is theirs).
fn publish(replica: &mut Replica, out: &Out, url: &str, ca: Option<&OwnCa>) -> Result<()> {
    let path = |k: &str| ConfigPath::parse(k).map_err(|e| anyhow!("{e}"));
    let mut edits = vec![ConfigEdit::Set(path("sync.relay_url")?, json!(url))];
    edits.push(match ca {
        Some(ca) => ConfigEdit::Set(path("sync.relay_ca")?, json!(ca.pem)),
        None => ConfigEdit::Unset(path("sync.relay_ca")?),
    });
    let done = fleetdeck_store::ops::apply(
        replica,
        Op::Config {
            layer: LayerRef::Fleet,
            edits,
            message: Some(format!("the fleet's relay is {url}")),
        },
        now_ms(),
    )
    .context("publishing the relay (an admin's replica does that)")?;
    out.note(&done.summary);
    Ok(())
}

/// Who the relay lets in: the fleet's members, and joiners showing a pass
/// an admin of the fleet signed with their invite (`RelayPass`).
#[derive(Debug, Default)]
struct Members(RwLock<Known>);

#[derive(Debug, Default)]
struct Known {
    fleet_id: String,
    members: HashSet<EndpointId>,
    admins: HashSet<MemberKey>,
}

impl Members {
    fn read(&self, replica: &Replica) {
        let st = replica.state();
        let known = Known {
            fleet_id: st.fleet_id.clone(),
            members: st
                .members
                .keys()
                .filter_map(|k| k.as_str().parse().ok())
                .collect(),
            admins: st
                .members
                .values()
                .filter(|m| m.role == Role::Admin)
                .map(|m| m.key.clone())
                .collect(),
        };
        if let Ok(mut m) = self.0.write() {
            *m = known;
        }
    }

    /// Whether `id` may use the relay, and if not, why.
    fn admit(&self, id: &EndpointId, pass: Option<&str>) -> Result<(), String> {
        let Ok(known) = self.0.read() else {
            return Err("the relay could not read the fleet's members".into());
        };
        if known.members.contains(id) {
            return Ok(());
        }
        let Some(pass) = pass else {
            return Err("not a member of this fleet".into());
        };
        let pass = RelayPass::check(pass, now_ms()).map_err(|e| format!("invite pass: {e}"))?;
        if pass.fleet_id != known.fleet_id {
            return Err("invite pass: it is for another fleet".into());
        }
        if !known.admins.contains(&pass.inviter) {
            return Err("invite pass: its inviter is not an admin of this fleet".into());
        }
        tracing::info!(endpoint = %id.fmt_short(), inviter = %pass.inviter.short(), "let in a joiner with an invite pass");
        Ok(())
    }
}

impl AccessControl for Members {
    async fn on_connect(&self, request: &ClientRequest) -> Access {
        let id = request.endpoint_id();
        match self.admit(&id, request.auth_token().as_deref()) {
            Ok(()) => Access::Allow,
            Err(why) => {
                tracing::warn!(endpoint = %id.fmt_short(), "refused a relay client: {why}");
                Access::Deny { reason: Some(why) }
            }
        }
    }
}
