//! The one wire protocol between replicas: length-prefixed frames, each
//! holding one [`Msg`] encoded with postcard. Every frame is bounded; a frame
//! that is too large, truncated or undecodable ends the session with an error
//! naming what was wrong, and nothing is applied from it.

use fleetdeck_store::health::SignedRegister;
use fleetdeck_store::results::SignedResults;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The ALPN of fleetdeck sync over iroh.
pub const ALPN: &[u8] = b"fleetdeck/sync/1";

/// Bumped on any incompatible change to [`Msg`].
/// 4: document changes travel beside the sync message, each with its
/// author's signature.
/// 5: health registers travel as their node signed them (bytes and
/// signature).
///
/// What is added without breaking a peer of the same version is said by
/// [`Features`] in the hello frame, and sent only to a peer that speaks
/// it: [`Msg::ResultsDigest`] and [`Msg::Results`] (command results
/// registers) came that way, so a replica from before them still syncs the
/// document and health with one after them.
pub const PROTOCOL_VERSION: u16 = 5;

/// Largest frame accepted or sent. A whole-fleet first sync of a large fleet
/// is a few MB; anything beyond this is refused, not buffered.
pub const MAX_FRAME: usize = 32 * 1024 * 1024;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    pub protocol: u16,
    /// The fleet the sender belongs to (empty when joining with a token and
    /// holding no fleet yet).
    pub fleet_id: String,
    /// The sender's member name, for logs and `peers`.
    pub name: String,
    /// A one-time invite secret, presented by a replica that is not a member
    /// yet.
    pub token: Option<String>,
}

/// Which run of its engine sent a hello, and (the dialer's) which of its
/// dials the session is: what decides which of two sessions with one peer
/// is kept (`peers::PeerBook::register`).
///
/// It travels after the [`Msg::Hello`] in the hello frame ([`write_hello`]).
/// A reader from before it existed decodes the message and ignores the rest
/// of the frame (postcard reads what the message needs and no more), so it
/// needed no new protocol version; a hello without it, from such a peer,
/// reads as `None`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// Drawn at random when the sender's engine started: a session with
    /// another run than the one already held comes from a restarted peer,
    /// and the old session is dead.
    pub run: u64,
    /// The dialer's count of the dials of its run (0 in the acceptor's
    /// hello): of two sessions one run dialed, the later dial is kept.
    pub dial: u64,
}

/// What a sender speaks beyond [`PROTOCOL_VERSION`]: it travels after the
/// [`Origin`] in the hello frame, where a reader from before it stops
/// reading (as it does for the origin), so it needs no new protocol
/// version. A hello without it, from such a peer, reads as
/// `Features::default()` (nothing beyond the version). A later feature is
/// a field added at the end.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Features {
    /// Takes [`Msg::ResultsDigest`] and [`Msg::Results`]: nodes' command
    /// results registers.
    pub results: bool,
    /// Takes [`Msg::HealthPacked`]: health registers in their packed form.
    pub packed_health: bool,
    /// Takes [`Msg::HealthPackedTunnels`]: registers with tunnel records
    /// in the packed form that carries them.
    pub packed_tunnels: bool,
}

impl Features {
    /// What this build speaks.
    pub const CURRENT: Features = Features {
        results: true,
        packed_health: true,
        packed_tunnels: true,
    };

    /// Features as a sender of any build wrote them: one flag after
    /// another (postcard writes a bool as one byte), so a flag a sender
    /// from before it did not write reads as off, and a reader from before
    /// a flag reads the ones it knows and ignores the rest.
    fn read(mut rest: &[u8]) -> Features {
        let mut flag = || match postcard::take_from_bytes::<bool>(rest) {
            Ok((b, r)) => {
                rest = r;
                b
            }
            Err(_) => false,
        };
        Features {
            results: flag(),
            packed_health: flag(),
            packed_tunnels: flag(),
        }
    }
}

/// The most bytes of registers put in one [`Msg::Results`] frame; more go
/// in the next frame.
pub const RESULTS_PER_FRAME: usize = 4 * 1024 * 1024;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Msg {
    /// First frame in each direction.
    Hello(Hello),
    /// The session is refused or ended; the reason is for the log.
    Refuse(String),
    /// An automerge sync protocol message for the fleet document (without
    /// changes in it), and the changes it would have carried, each with its
    /// author's signature (see `verify`).
    Doc {
        sync: Vec<u8>,
        changes: Vec<crate::verify::WireChange>,
    },
    /// node id → highest health sequence number the sender holds, for the
    /// registers the receiver would send it (see `session`).
    HealthDigest(Vec<(String, u64)>),
    /// Health registers newer than what the receiver is known to hold, each
    /// as its node signed it (relays pass the bytes and signature on
    /// unchanged) with how long ago (ms) the sender heard it: 0 for a
    /// node's own, the time a hub held it for a relayed one. The receiver
    /// checks each against the key bound to its node and dates it by its
    /// own clock, never by the node's.
    Health(Vec<(SignedRegister, u64)>),
    /// The anti-entropy probe: a digest of the sender's document heads
    /// (`Replica::heads_digest`). A receiver whose digest differs restarts
    /// the document sync handshake; one whose digest matches has nothing to
    /// do.
    Probe([u8; 16]),
    /// node id → highest command results register seq the sender holds,
    /// for the registers the receiver would send it (the same policy as
    /// health). Only to a peer whose hello said `Features::results`: a
    /// reader from before it cannot decode it.
    ResultsDigest(Vec<(String, u64)>),
    /// Command results registers newer than what the receiver is known to
    /// hold, each as its node signed it; the receiver checks each against
    /// the key bound to its node. At most [`RESULTS_PER_FRAME`] bytes of
    /// registers a frame. Only to a peer that speaks it, as above.
    Results(Vec<SignedResults>),
    /// [`Msg::Health`] with each register packed
    /// (`SignedRegister::pack`: about a third of its JSON): the packed
    /// register, its node's signature of the bytes it rebuilds to
    /// (`SignedRegister::unpack`), and how long ago the sender heard it.
    /// Only to a peer whose hello said `Features::packed_health`; a register
    /// that does not pack goes in a [`Msg::Health`].
    HealthPacked(Vec<(Vec<u8>, Vec<u8>, u64)>),
    /// [`Msg::HealthPacked`] for registers with tunnel records, in the
    /// packed form that carries them (`PackedForm::WithTunnels`). Only to
    /// a peer whose hello said `Features::packed_tunnels`.
    HealthPackedTunnels(Vec<(Vec<u8>, Vec<u8>, u64)>),
}

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("peer closed the stream")]
    Closed,
    #[error("a hello of {0} bytes is larger than the limit of {MAX_HELLO}")]
    HelloTooLarge(usize),
    #[error("frame of {0} bytes is larger than the limit of {MAX_FRAME}")]
    TooLarge(usize),
    #[error("stream ended inside a frame")]
    Truncated,
    #[error("undecodable frame: {0}")]
    Decode(String),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

pub fn encode(msg: &Msg) -> Result<Vec<u8>, WireError> {
    let body = postcard::to_stdvec(msg).map_err(|e| WireError::Decode(e.to_string()))?;
    if body.len() > MAX_FRAME {
        return Err(WireError::TooLarge(body.len()));
    }
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    Ok(frame)
}

pub fn decode(body: &[u8]) -> Result<Msg, WireError> {
    postcard::from_bytes(body).map_err(|e| WireError::Decode(e.to_string()))
}

/// The hello frame: the message, then its [`Origin`], then the
/// [`Features`] this build speaks.
pub fn encode_hello(hello: &Hello, origin: Origin) -> Result<Vec<u8>, WireError> {
    encode_hello_with(hello, origin, Some(Features::CURRENT))
}

/// [`encode_hello`] with the given features, or none at all (as a build
/// from before features wrote it).
pub fn encode_hello_with(
    hello: &Hello,
    origin: Origin,
    features: Option<Features>,
) -> Result<Vec<u8>, WireError> {
    let decode_err = |e: postcard::Error| WireError::Decode(e.to_string());
    let mut body = postcard::to_stdvec(&Msg::Hello(hello.clone())).map_err(decode_err)?;
    body.extend(postcard::to_stdvec(&origin).map_err(decode_err)?);
    if let Some(f) = features {
        body.extend(postcard::to_stdvec(&f).map_err(decode_err)?);
    }
    if body.len() > MAX_HELLO {
        return Err(WireError::HelloTooLarge(body.len()));
    }
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    Ok(frame)
}

/// Writes the hello frame ([`encode_hello`]).
pub async fn write_hello<W: AsyncWrite + Unpin>(
    w: &mut W,
    hello: &Hello,
    origin: Origin,
) -> Result<usize, WireError> {
    let frame = encode_hello(hello, origin)?;
    w.write_all(&frame).await?;
    w.flush().await?;
    Ok(frame.len())
}

pub async fn write_msg<W: AsyncWrite + Unpin>(w: &mut W, msg: &Msg) -> Result<usize, WireError> {
    let frame = encode(msg)?;
    w.write_all(&frame).await?;
    w.flush().await?;
    Ok(frame.len())
}

/// Reads one frame. `Closed` when the stream ends cleanly between frames.
pub async fn read_msg<R: AsyncRead + Unpin>(r: &mut R) -> Result<(Msg, usize), WireError> {
    read_msg_within(r, MAX_FRAME).await
}

/// The largest first frame (the hello) accepted: it comes before the peer
/// is known to be a member, so it gets no room for anything else.
pub const MAX_HELLO: usize = 64 * 1024;

/// What a hello frame holds: the message, the sender's [`Origin`] if it
/// wrote one, and the [`Features`] it speaks.
#[derive(Clone, Debug, PartialEq)]
pub struct HelloFrame {
    pub msg: Msg,
    pub origin: Option<Origin>,
    pub features: Features,
    pub len: usize,
}

/// The hello: [`read_msg`] with [`MAX_HELLO`] as the limit, and the
/// [`Origin`] and [`Features`] after the message when the sender wrote
/// them (bytes after them, or ones that do not decode, are ignored, as an
/// older reader ignores them; missing features are none).
pub async fn read_hello_frame<R: AsyncRead + Unpin>(r: &mut R) -> Result<HelloFrame, WireError> {
    let body = read_body(r, MAX_HELLO).await.map_err(|e| match e {
        WireError::TooLarge(n) => WireError::HelloTooLarge(n),
        e => e,
    })?;
    let (msg, rest) =
        postcard::take_from_bytes::<Msg>(&body).map_err(|e| WireError::Decode(e.to_string()))?;
    let (origin, features) = match postcard::take_from_bytes::<Origin>(rest) {
        Ok((origin, rest)) => (Some(origin), Features::read(rest)),
        Err(_) => (None, Features::default()),
    };
    Ok(HelloFrame {
        msg,
        origin,
        features,
        len: 4 + body.len(),
    })
}

async fn read_msg_within<R: AsyncRead + Unpin>(
    r: &mut R,
    limit: usize,
) -> Result<(Msg, usize), WireError> {
    let body = read_body(r, limit).await?;
    Ok((decode(&body)?, 4 + body.len()))
}

/// One frame's body.
async fn read_body<R: AsyncRead + Unpin>(r: &mut R, limit: usize) -> Result<Vec<u8>, WireError> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(WireError::Closed),
        Err(e) => return Err(e.into()),
    }
    let n = u32::from_be_bytes(len) as usize;
    if n > limit {
        return Err(WireError::TooLarge(n));
    }
    let mut body = vec![0u8; n];
    match r.read_exact(&mut body).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            return Err(WireError::Truncated);
        }
        Err(e) => return Err(e.into()),
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello() -> Msg {
        Msg::Hello(Hello {
            protocol: PROTOCOL_VERSION,
            fleet_id: "f".into(),
            name: "n".into(),
            token: None,
        })
    }

    #[tokio::test]
    async fn frames_round_trip() {
        let msgs = vec![
            hello(),
            Msg::Doc {
                sync: vec![1, 2, 3],
                changes: vec![(vec![4, 5], vec![6; 64])],
            },
            Msg::HealthDigest(vec![("a".into(), 7)]),
            Msg::ResultsDigest(vec![("a".into(), 3)]),
            Msg::Results(vec![SignedResults {
                bytes: b"{}".to_vec(),
                sig: vec![1; 64],
            }]),
        ];
        let mut buf = Vec::new();
        for m in &msgs {
            write_msg(&mut buf, m).await.unwrap();
        }
        let mut r = buf.as_slice();
        for m in &msgs {
            assert_eq!(&read_msg(&mut r).await.unwrap().0, m);
        }
        assert!(matches!(read_msg(&mut r).await, Err(WireError::Closed)));
    }

    #[tokio::test]
    async fn a_hello_carries_its_origin_and_readers_of_either_kind_take_either_hello() {
        let Msg::Hello(h) = hello() else {
            unreachable!()
        };
        let origin = Origin { run: 7, dial: 3 };
        let mut buf = Vec::new();
        write_hello(&mut buf, &h, origin).await.unwrap();
        let f = read_hello_frame(&mut buf.as_slice()).await.unwrap();
        assert_eq!(
            (f.msg, f.origin, f.features, f.len),
            (hello(), Some(origin), Features::CURRENT, buf.len())
        );
        // A reader from before origins (any frame reader) takes the message
        // and ignores the origin after it.
        assert_eq!(read_msg(&mut buf.as_slice()).await.unwrap().0, hello());
        // A hello from before origins reads with no origin and no features.
        let old = encode(&hello()).unwrap();
        let f = read_hello_frame(&mut old.as_slice()).await.unwrap();
        assert_eq!(
            (f.msg, f.origin, f.features),
            (hello(), None, Features::default())
        );
    }

    #[tokio::test]
    async fn a_hello_from_before_features_speaks_none_and_an_old_reader_takes_a_new_hello() {
        let Msg::Hello(h) = hello() else {
            unreachable!()
        };
        let origin = Origin { run: 1, dial: 2 };
        // From a build with origins but before features.
        let old = encode_hello_with(&h, origin, None).unwrap();
        let f = read_hello_frame(&mut old.as_slice()).await.unwrap();
        assert_eq!((f.origin, f.features), (Some(origin), Features::default()));
        assert!(!f.features.results);
        // A reader from before features (origins only) reads a new hello:
        // the origin, and nothing it does not know.
        let new = encode_hello(&h, origin).unwrap();
        let body = &new[4..];
        let (msg, rest) = postcard::take_from_bytes::<Msg>(body).unwrap();
        assert_eq!(msg, hello());
        assert_eq!(postcard::from_bytes::<Origin>(rest).unwrap(), origin);
    }

    #[test]
    fn features_read_flag_by_flag_whatever_build_wrote_them() {
        // A build that knew results only wrote one flag.
        #[derive(Serialize, Deserialize, Debug, PartialEq)]
        struct ResultsOnly {
            results: bool,
        }
        let old = postcard::to_stdvec(&ResultsOnly { results: true }).unwrap();
        assert_eq!(
            Features::read(&old),
            Features {
                results: true,
                packed_health: false,
                packed_tunnels: false,
            }
        );
        // That build reads this one's features: the flag it knows.
        let new = postcard::to_stdvec(&Features::CURRENT).unwrap();
        assert_eq!(
            postcard::from_bytes::<ResultsOnly>(&new).unwrap(),
            ResultsOnly { results: true }
        );
        assert_eq!(Features::read(&new), Features::CURRENT);
        assert_eq!(Features::read(&[]), Features::default());
        // A flag byte that is not a bool ends the reading: off from there.
        assert!(!Features::read(&[1, 7]).packed_health);
        // A build that knew packed health but not packed tunnels.
        let two = Features::read(&[1, 1]);
        assert!(two.packed_health && !two.packed_tunnels);
    }

    #[tokio::test]
    async fn oversized_truncated_and_garbage_frames_are_errors_not_panics() {
        let big = ((MAX_FRAME + 1) as u32).to_be_bytes();
        assert!(matches!(
            read_msg(&mut &big[..]).await,
            Err(WireError::TooLarge(_))
        ));

        let frame = encode(&hello()).unwrap();
        let cut = &frame[..frame.len() - 2];
        assert!(matches!(
            read_msg(&mut &cut[..]).await,
            Err(WireError::Truncated)
        ));

        let mut garbage = 5u32.to_be_bytes().to_vec();
        garbage.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff]);
        assert!(matches!(
            read_msg(&mut &garbage[..]).await,
            Err(WireError::Decode(_))
        ));

        // Random bytes never panic the decoder.
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..2000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 64) as usize;
            let bytes: Vec<u8> = (0..len).map(|i| (seed >> (i % 8 * 8)) as u8).collect();
            let _ = decode(&bytes);
        }
    }
}
