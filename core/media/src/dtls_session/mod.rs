//! One call's audio stream over ICE + DTLS-SRTP (RFC 8445, RFC 5763/5764), sans-IO, through
//! str0m's direct API: the `UDP/TLS/RTP/SAVP` counterpart of [`MediaSession`].
//!
//! str0m does ICE (connectivity checks, nomination, consent), the DTLS handshake, the
//! fingerprint check, SRTP/SRTCP and RTCP reports; this module does what
//! [`MediaSession`] does above RTP: our codecs, resampling, the jitter buffer with loss
//! concealment, RFC 4733 DTMF and the WebRTC-named statistics. str0m runs in *RTP mode*: we
//! write whole RTP packets (our sequence numbers, timestamps and payload types) with
//! `StreamTx::write_rtp` and get whole packets back as `Event::RtpPacket`. No RTP header
//! extension is sent (our SDP negotiates none), no RTX, no NACK, no TWCC.
//!
//! ```text
//!               new()                 ICE pair nominated        DTLS Finished, keys derived
//!   ──────────▶ Connecting ──────────────────────────────────▶ Connected ──close()/peer──▶ Closed
//!                  │  IceState events (Checking, Connected...)     │  media both ways
//!                  │                                               │
//!                  ├── wrong fingerprint, DTLS alert ───────────▶ Failed ◀── fatal DTLS error
//!                  └── CONNECT_TIMEOUT without DTLS ────────────▶ Failed
//! ```
//!
//! Inputs, by source:
//! * the runtime's socket: [`DtlsMediaSession::handle_datagram`] for **every** datagram that
//!   arrives on the call's media socket (STUN, DTLS, SRTP and SRTCP all share it: rtcp-mux);
//! * the runtime's timer: [`DtlsMediaSession::handle_timeout`] whenever
//!   [`DtlsMediaSession::poll_timeout`] is due (ICE checks and consent, DTLS retransmits,
//!   RTCP, DTMF, the connect timeout);
//! * the audio device, every 20 ms: [`DtlsMediaSession::handle_capture`] and
//!   [`DtlsMediaSession::playout`];
//! * signaling: [`DtlsMediaSession::add_remote_candidate`] (a=candidate lines, trickled or
//!   from the SDP), [`DtlsMediaSession::set_remote_ice_lite`], [`DtlsMediaSession::update`]
//!   (re-INVITE), [`DtlsMediaSession::send_dtmf`],
//!   [`DtlsMediaSession::close`].
//!
//! After each input, the runtime sends every [`DtlsMediaSession::poll_transmit`] datagram and
//! reads every [`DtlsMediaSession::poll_event`].
//!
//! Time is an [`Instant`] passed in by the caller (str0m's clock type); nothing here reads the
//! clock. Times must not go backwards (an earlier `now` is treated as the latest one seen).
//!
//! Roles: the DTLS role comes from a=setup as offer/answer settled it
//! ([`DtlsParams::local_setup`]: `active` = DTLS client; RFC 5763 §5 makes the answerer of an
//! `actpass` offer active). The ICE role follows RFC 8445 §6.1.1: the offerer controls. The
//! offerer is recognised by the peer's a=setup not being `actpass` (answers cannot carry
//! `actpass`); when a peer offers `active`/`passive` both sides may start controlling and
//! ICE's role-conflict repair (487) settles it. An ICE-lite peer (a=ice-lite) must be
//! declared with [`DtlsMediaSession::set_remote_ice_lite`]: we then always control.
//!
//! Not done here: symmetric-RTP latching (ICE picks the path; no `MediaEvent::Latched`),
//! ICE restarts and codec changes in a re-INVITE (build a new session), TURN/STUN candidate
//! gathering (the runtime adds server-reflexive candidates to the SDP itself).
//!
//! [`MediaSession`]: crate::session::MediaSession

use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use str0m::config::{CryptoProvider, DtlsVersion};
use str0m::format::{Codec, FormatParams};
use str0m::media::{Frequency, Mid, Pt};
use str0m::net::{DatagramRecv, Protocol, Receive};
use str0m::rtp::{RtpPacket as Str0mRtpPacket, RtpWrite, SeqNo, Ssrc};
use str0m::{Candidate, Event, IceConnectionState, IceCreds, Input, Output, Rtc, RtcError};

use crate::codec::dtmf::{DtmfPacket, DtmfReceiver, DtmfSender, DtmfSenderConfig};
use crate::codec::resample::Resampler;
use crate::codec::{Decoder, Encoder, codec_for};
use crate::jitter::{JitterBuffer, JitterConfig};
use crate::rtcp::ReceptionStats;
use crate::sdp::{
    DtlsLocal, DtlsParams, Fingerprint, IceCredentials, Negotiated, SessionDescription, Setup,
};
use crate::session::{
    DEVICE_FRAME, DEVICE_RATE, DropCounters, FRAME, MediaError, MediaEvent, Transmit, play_frame,
};
use crate::stats::MediaStats;

/// How long ICE + DTLS may take before the session gives up with
/// [`DtlsFailure::ConnectTimeout`].
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Static payload type of comfort noise (RFC 3389), accepted and ignored on receive.
const PT_CN: u8 = 13;

/// The one media section we declare to str0m (never on the wire: no mid extension is sent).
const MID: &str = "0";

/// Receive SSRCs kept declared to str0m at once (the peer may change SSRC, e.g. a PBX
/// bridging another leg); the oldest is forgotten first.
const MAX_RX_SSRCS: usize = 4;

/// Bound on non-fatal str0m errors tolerated while draining its output once.
const MAX_ERRORS_PER_DRAIN: usize = 16;

/// ICE ufrag length (RFC 8839 §5.4 needs at least 4 characters).
const UFRAG_LEN: usize = 8;
/// ICE password length (RFC 8839 §5.4 needs at least 22 characters).
const PWD_LEN: usize = 24;

/// The crypto provider compiled in (str0m's aws-lc-rs backend).
fn provider() -> CryptoProvider {
    str0m::crypto::from_feature_flags()
}

/// Why a DTLS session could not be set up or a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DtlsSessionError {
    /// A codec or DTMF problem, as for the plain session.
    #[error(transparent)]
    Media(#[from] MediaError),
    /// The negotiation is not DTLS-SRTP (no fingerprint/setup): use `MediaSession`.
    #[error("the negotiated stream is not DTLS-SRTP")]
    NotDtls,
    /// The peer's description has no a=ice-ufrag/a=ice-pwd: str0m only sends media over an
    /// ICE-selected pair.
    #[error("the peer sent no ICE credentials")]
    MissingIceCredentials,
    /// Our negotiated a=setup is neither active nor passive.
    #[error("invalid local a=setup {0:?}")]
    InvalidSetup(Setup),
    /// The DTLS certificate could not be generated, or DTLS could not start with it.
    #[error("DTLS certificate: {0}")]
    Certificate(String),
    /// The local address cannot be an ICE host candidate (unspecified address, port 0).
    #[error("local address {0} cannot be an ICE candidate")]
    LocalAddress(SocketAddr),
    /// An a=candidate line could not be parsed.
    #[error("bad ICE candidate: {0}")]
    BadCandidate(String),
    /// A re-negotiation changed what an established DTLS session cannot change (codec,
    /// payload types, fingerprint, ICE credentials): set up a new session instead.
    #[error("cannot apply re-negotiation: {0}")]
    Renegotiation(&'static str),
}

/// A DTLS certificate with its private key: ECDSA P-256, self-signed, as str0m requires.
///
/// Generate one per runtime (it takes a few milliseconds) and share it by reference between
/// calls; its fingerprint goes into every DTLS offer and answer. `Debug` shows the
/// fingerprint only, never the key.
///
/// There is deliberately no constructor from stored DER: str0m's DTLS stack (dimpl 0.9)
/// panics on a private key it cannot parse, so only certificates generated by str0m's own
/// provider are accepted. A fresh certificate per run is what browsers do too.
#[derive(Clone)]
pub struct DtlsCert {
    inner: str0m::config::DtlsCert,
    fingerprint: Fingerprint,
}

impl fmt::Debug for DtlsCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DtlsCert")
            .field("fingerprint", &self.fingerprint.hex())
            .finish_non_exhaustive()
    }
}

impl DtlsCert {
    /// Generates a fresh self-signed ECDSA P-256 certificate with str0m's crypto provider.
    ///
    /// This is the one place in this crate that reaches outside: the provider draws the key
    /// from the operating system's random source and stamps the certificate's validity from
    /// the wall clock. Call it once, from the runtime, at start-up.
    pub fn generate() -> Result<Self, DtlsSessionError> {
        let inner = provider()
            .dtls_provider
            .generate_certificate()
            .ok_or_else(|| {
                DtlsSessionError::Certificate("the crypto provider generated none".into())
            })?;
        Ok(Self::wrap(inner))
    }

    fn wrap(inner: str0m::config::DtlsCert) -> Self {
        let digest = provider().sha256_provider.sha256(&inner.certificate);
        Self {
            fingerprint: Fingerprint {
                hash: "sha-256".to_owned(),
                value: digest.to_vec(),
            },
            inner,
        }
    }

    /// The SHA-256 fingerprint for a=fingerprint (RFC 8122).
    pub fn fingerprint(&self) -> &Fingerprint {
        &self.fingerprint
    }

    /// The certificate, DER-encoded.
    pub fn certificate_der(&self) -> &[u8] {
        &self.inner.certificate
    }
}

/// Fresh random ICE credentials: an 8-character ufrag and a 24-character password of
/// letters and digits (RFC 8839 §5.4: at least 4 and 22 `ice-char`s, 24 and 128 bits).
pub fn new_ice_credentials<R: Rng + ?Sized>(rng: &mut R) -> IceCredentials {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut pick = |n: usize| -> String {
        (0..n)
            .map(|_| char::from(CHARS[rng.random_range(0..CHARS.len())]))
            .collect()
    };
    IceCredentials {
        ufrag: pick(UFRAG_LEN),
        pwd: pick(PWD_LEN),
    }
}

/// The a=candidate value (without `candidate:`) of a UDP host candidate at `local`.
pub fn host_candidate_line(local: SocketAddr) -> Result<String, DtlsSessionError> {
    if local.ip().is_unspecified() || local.port() == 0 {
        return Err(DtlsSessionError::LocalAddress(local));
    }
    let candidate =
        Candidate::host(local, "udp").map_err(|_| DtlsSessionError::LocalAddress(local))?;
    let line = candidate.to_sdp_string();
    Ok(line
        .strip_prefix("candidate:")
        .map(str::to_owned)
        .unwrap_or(line))
}

/// Our DTLS-SRTP and ICE fields for an offer or answer ([`crate::sdp::OfferKeys::with_dtls`]):
/// the certificate's fingerprint, fresh random ICE credentials and one UDP host candidate for
/// `local` (the media socket's address as the peer should reach it: not `0.0.0.0`).
///
/// Pass the same `ice` to [`DtlsMediaSession::new`] for this call.
pub fn dtls_offer_keys<R: Rng + ?Sized>(
    cert: &DtlsCert,
    local: SocketAddr,
    rng: &mut R,
) -> Result<DtlsLocal, DtlsSessionError> {
    Ok(DtlsLocal {
        fingerprint: cert.fingerprint().clone(),
        ice: new_ice_credentials(rng),
        candidates: vec![host_candidate_line(local)?],
    })
}

/// The a=candidate values of the negotiated audio m-line of the peer's description (the
/// remote offer, or the remote answer), to pass to [`DtlsMediaSession::add_remote_candidate`].
pub fn remote_candidates<'a>(
    remote: &'a SessionDescription,
    negotiated: &Negotiated,
) -> Vec<&'a str> {
    remote
        .media
        .get(negotiated.media_index)
        .map(|m| m.candidates())
        .unwrap_or_default()
}

/// Whether the peer's description declares an ICE-lite agent (session-level a=ice-lite,
/// RFC 8839 §5.3); pass the answer to [`DtlsMediaSession::set_remote_ice_lite`].
pub fn remote_is_ice_lite(remote: &SessionDescription) -> bool {
    remote.attribute("ice-lite").is_some()
}

/// Where the connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DtlsState {
    /// ICE checks and/or the DTLS handshake are under way; no media yet.
    Connecting,
    /// ICE selected a pair, DTLS finished, SRTP keys are in place: media flows.
    Connected,
    /// Terminal: the handshake failed, the fingerprint did not match, or it timed out.
    Failed,
    /// Terminal: closed by [`DtlsMediaSession::close`] or by the peer's close_notify.
    Closed,
}

/// ICE connection state (RFC 8445 / W3C `RTCIceConnectionState`, as str0m reports it; str0m
/// never gives up on ICE by itself, hence no `Failed`: see [`CONNECT_TIMEOUT`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IceState {
    /// No checks yet.
    New,
    /// Checking candidate pairs.
    Checking,
    /// A pair works; checks may go on.
    Connected,
    /// Checks are done and a pair works.
    Completed,
    /// Consent was lost (no answers to checks); it may come back.
    Disconnected,
}

impl From<IceConnectionState> for IceState {
    fn from(s: IceConnectionState) -> Self {
        match s {
            IceConnectionState::New => IceState::New,
            IceConnectionState::Checking => IceState::Checking,
            IceConnectionState::Connected => IceState::Connected,
            IceConnectionState::Completed => IceState::Completed,
            IceConnectionState::Disconnected => IceState::Disconnected,
        }
    }
}

/// Why the session failed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DtlsFailure {
    /// The peer's certificate does not match its a=fingerprint (possible man in the middle).
    FingerprintMismatch,
    /// The DTLS handshake failed (alert, protocol error, unsupported parameters); the text
    /// is str0m's and carries no key material.
    Handshake(String),
    /// ICE + DTLS did not complete within [`CONNECT_TIMEOUT`].
    ConnectTimeout,
}

impl fmt::Display for DtlsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DtlsFailure::FingerprintMismatch => f.write_str("remote DTLS fingerprint mismatch"),
            DtlsFailure::Handshake(reason) => write!(f, "DTLS handshake failed: {reason}"),
            DtlsFailure::ConnectTimeout => f.write_str("ICE/DTLS connect timeout"),
        }
    }
}

/// Something the application should know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DtlsMediaEvent {
    /// The same events as a plain session (DTMF digits).
    Media(MediaEvent),
    /// ICE state changed.
    IceState(IceState),
    /// ICE and DTLS are up: media flows from now on.
    Connected,
    /// The session failed for good (terminal): end or re-negotiate the call.
    Failed(DtlsFailure),
    /// The peer closed DTLS (close_notify): terminal.
    Closed,
}

/// One call's audio stream over ICE + DTLS-SRTP.
pub struct DtlsMediaSession {
    rtc: Rtc,
    local: SocketAddr,
    start: Instant,
    last_now: Instant,
    rtc_timeout: Instant,
    state: DtlsState,
    mid: Mid,
    negotiated: Negotiated,
    encoder: Box<dyn Encoder>,
    decoder: Box<dyn Decoder>,
    codec_rate: u32,
    codec_frame: usize,
    to_codec: Option<Resampler>,
    to_device: Option<Resampler>,
    ssrc: u32,
    /// Extended (ROC-carrying) sequence number of the next packet.
    seq: u64,
    timestamp: u32,
    first_packet: bool,
    rx_ssrcs: VecDeque<u32>,
    jitter: JitterBuffer,
    reception: Option<ReceptionStats>,
    dtmf_rx: DtmfReceiver,
    dtmf_queue: VecDeque<(Instant, DtmfPacket)>,
    stats: MediaStats,
    drops: DropCounters,
    transmits: VecDeque<Transmit>,
    events: VecDeque<DtlsMediaEvent>,
    scratch: Vec<i16>,
}

impl fmt::Debug for DtlsMediaSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DtlsMediaSession")
            .field("state", &self.state)
            .field("codec", &self.negotiated.codec.name)
            .field("ssrc", &self.ssrc)
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

/// Adds one payload type to str0m's codec table (it drops RTP whose PT is not in it).
fn add_payload(rtc: &mut str0m::RtcConfig, pt: u8, name: &str, clock_rate: u32, channels: u8) {
    let Some(clock) = Frequency::new(clock_rate) else {
        return;
    };
    rtc.codec_config().add_config(
        Pt::from(pt),
        None,
        Codec::from(name),
        clock,
        (channels > 1).then_some(channels),
        FormatParams::default(),
    );
}

/// The SSRC of a datagram that looks like RTP (RFC 7983 first byte 128..=191, not an RTCP
/// packet type, RFC 5761 §4), else `None`.
fn rtp_ssrc(bytes: &[u8]) -> Option<u32> {
    let first = *bytes.first()?;
    let second = *bytes.get(1)?;
    if !(128..=191).contains(&first) || (192..=223).contains(&second) {
        return None;
    }
    let ssrc = bytes.get(8..12)?;
    Some(u32::from_be_bytes([ssrc[0], ssrc[1], ssrc[2], ssrc[3]]))
}

fn classify(error: &RtcError) -> DtlsFailure {
    let text = error.to_string();
    if text.contains("fingerprint") {
        DtlsFailure::FingerprintMismatch
    } else {
        DtlsFailure::Handshake(text)
    }
}

fn str0m_fingerprint(f: &Fingerprint) -> str0m::config::Fingerprint {
    str0m::config::Fingerprint {
        hash_func: f.hash.clone(),
        bytes: f.value.clone(),
    }
}

impl DtlsMediaSession {
    /// A session for what offer/answer negotiated with DTLS-SRTP.
    ///
    /// * `negotiated` must carry [`Negotiated::dtls`] and [`Negotiated::ice`] (a
    ///   `UDP/TLS/RTP/SAVP` negotiation).
    /// * `local` is the media socket's address as announced in our a=candidate (not
    ///   `0.0.0.0`); every datagram of this call arrives there and leaves from there.
    /// * `certificate` is the runtime's certificate whose fingerprint we announced.
    /// * `local_ice` are the ICE credentials we announced ([`DtlsLocal::ice`]).
    /// * `now` starts the session's clock.
    ///
    /// The peer's default address (c= and m= port) is added as a host candidate; add its
    /// a=candidate lines with [`Self::add_remote_candidate`] (see [`remote_candidates`]).
    /// ICE checks and, for the active side, the DTLS ClientHello start at once: send what
    /// [`Self::poll_transmit`] yields.
    pub fn new(
        negotiated: &Negotiated,
        local: SocketAddr,
        certificate: &DtlsCert,
        local_ice: IceCredentials,
        now: Instant,
    ) -> Result<Self, DtlsSessionError> {
        let dtls: &DtlsParams = negotiated.dtls.as_ref().ok_or(DtlsSessionError::NotDtls)?;
        let remote_ice = negotiated
            .ice
            .as_ref()
            .ok_or(DtlsSessionError::MissingIceCredentials)?;
        let active = match dtls.local_setup {
            Setup::Active => true,
            Setup::Passive => false,
            other => return Err(DtlsSessionError::InvalidSetup(other)),
        };
        let controlling = dtls.remote_setup != Setup::ActPass;

        let codec = &negotiated.codec;
        let (encoder, decoder) = codec_for(
            &codec.name,
            codec.clock_rate,
            codec.channels,
            codec.fmtp.as_deref(),
        )
        .ok_or_else(|| MediaError::UnsupportedCodec(codec.name.clone()))?;
        let codec_rate = encoder.clock_rate();
        let codec_frame = encoder.frame_samples();
        let (to_codec, to_device) = if codec_rate == DEVICE_RATE {
            (None, None)
        } else {
            (
                Some(Resampler::new(DEVICE_RATE, codec_rate).map_err(MediaError::from)?),
                Some(Resampler::new(codec_rate, DEVICE_RATE).map_err(MediaError::from)?),
            )
        };

        // DTLS 1.2, str0m's default: what PBXs and media gateways (OpenSSL) speak.
        let mut config = Rtc::builder()
            .set_crypto_provider(Arc::new(provider()))
            .set_dtls_version(DtlsVersion::Dtls12)
            .set_dtls_cert(certificate.inner.clone())
            .set_local_ice_credentials(IceCreds {
                ufrag: local_ice.ufrag.clone(),
                pass: local_ice.pwd.clone(),
            })
            .set_rtp_mode(true)
            .clear_codecs()
            .clear_extension_map()
            .set_stats_interval(Some(Duration::from_secs(1)));
        add_payload(
            &mut config,
            codec.pt,
            &codec.name,
            codec.clock_rate,
            codec.channels,
        );
        if let Some(te) = &negotiated.telephone_event {
            add_payload(&mut config, te.pt, "telephone-event", te.clock_rate, 1);
        }
        if codec.pt != PT_CN {
            add_payload(&mut config, PT_CN, "CN", 8000, 1);
        }
        let mut rtc = config.build(now);

        let host =
            Candidate::host(local, "udp").map_err(|_| DtlsSessionError::LocalAddress(local))?;
        if local.ip().is_unspecified() || rtc.add_local_candidate(host).is_none() {
            return Err(DtlsSessionError::LocalAddress(local));
        }
        // RFC 8839 §4.2.1.1: c= and the m= port are the default candidate (0.0.0.0 port 9
        // when the peer trickles: skip that one).
        let default = negotiated.remote_rtp;
        if !default.ip().is_unspecified()
            && default.port() != 0
            && let Ok(c) = Candidate::host(default, "udp")
        {
            rtc.add_remote_candidate(c);
        }

        let mid = Mid::from(MID);
        let ssrc = Ssrc::new();
        {
            let mut api = rtc.direct_api();
            api.set_remote_ice_credentials(IceCreds {
                ufrag: remote_ice.ufrag.clone(),
                pass: remote_ice.pwd.clone(),
            });
            api.set_ice_controlling(controlling);
            api.set_remote_fingerprint(str0m_fingerprint(&dtls.remote_fingerprint));
            api.declare_media(mid, str0m::media::MediaKind::Audio);
            api.declare_stream_tx(ssrc, None, mid, None);
            api.start_dtls(active)
                .map_err(|e| DtlsSessionError::Certificate(e.to_string()))?;
        }
        // Random start values (RFC 3550 §5.1); the sequence number stays below 2^16 so the
        // SRTP rollover counter starts at 0 on both sides.
        let initial_seq = u64::from(*Ssrc::new() as u16);
        let initial_timestamp = *Ssrc::new();

        let mut session = Self {
            rtc,
            local,
            start: now,
            last_now: now,
            rtc_timeout: now,
            state: DtlsState::Connecting,
            mid,
            negotiated: negotiated.clone(),
            encoder,
            decoder,
            codec_rate,
            codec_frame,
            to_codec,
            to_device,
            ssrc: *ssrc,
            seq: initial_seq,
            timestamp: initial_timestamp,
            first_packet: true,
            rx_ssrcs: VecDeque::new(),
            jitter: JitterBuffer::new(JitterConfig::new(codec_rate, FRAME)),
            reception: None,
            dtmf_rx: DtmfReceiver::new(),
            dtmf_queue: VecDeque::new(),
            stats: MediaStats::default(),
            drops: DropCounters::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            scratch: Vec::with_capacity(DEVICE_FRAME),
        };
        // str0m arms its ICE and DTLS timers on the first input.
        session.drain();
        if let Err(e) = session.rtc.handle_input(Input::Timeout(now)) {
            session.on_error(&e);
        }
        session.drain();
        Ok(session)
    }

    /// Adds one of the peer's ICE candidates: an a=candidate value with or without the
    /// `candidate:` prefix (`a=` too is tolerated). Candidates for RTCP (component 2) and
    /// TCP candidates are ignored (rtcp-mux, UDP only).
    pub fn add_remote_candidate(
        &mut self,
        now: Instant,
        candidate: &str,
    ) -> Result<(), DtlsSessionError> {
        let text = candidate.trim();
        let text = text.strip_prefix("a=").unwrap_or(text);
        let owned;
        let text = if text.starts_with("candidate:") {
            text
        } else {
            owned = format!("candidate:{text}");
            &owned
        };
        let parsed = Candidate::from_sdp_string(text)
            .map_err(|e| DtlsSessionError::BadCandidate(e.to_string()))?;
        if self.is_dead() || parsed.proto() != Protocol::Udp {
            return Ok(());
        }
        self.advance(now);
        self.rtc.add_remote_candidate(parsed);
        self.drain();
        Ok(())
    }

    /// Tells the session that the peer is an ICE-lite agent (a=ice-lite in its description,
    /// see [`remote_is_ice_lite`]): a lite agent never checks, so we must be the controlling
    /// agent whatever the offer/answer roles (RFC 8445 §6.1.1).
    pub fn set_remote_ice_lite(&mut self, now: Instant, lite: bool) {
        if lite && !self.is_dead() {
            self.advance(now);
            self.rtc.direct_api().set_ice_controlling(true);
            self.drain();
        }
    }

    /// Applies a re-negotiation of the same stream (re-INVITE: hold, resume, direction,
    /// DTMF dropped). Codec, payload types, fingerprint and ICE credentials must stay as
    /// they are ([`DtlsSessionError::Renegotiation`] otherwise: build a new session).
    pub fn update(&mut self, negotiated: &Negotiated) -> Result<(), DtlsSessionError> {
        let old = &self.negotiated;
        if negotiated.codec.pt != old.codec.pt
            || !negotiated.codec.name.eq_ignore_ascii_case(&old.codec.name)
            || negotiated.codec.clock_rate != old.codec.clock_rate
        {
            return Err(DtlsSessionError::Renegotiation("the codec changed"));
        }
        if let Some(te) = &negotiated.telephone_event
            && old.telephone_event.as_ref().map(|t| (t.pt, t.clock_rate))
                != Some((te.pt, te.clock_rate))
        {
            return Err(DtlsSessionError::Renegotiation(
                "the telephone-event payload type changed",
            ));
        }
        if negotiated.dtls.is_none() {
            return Err(DtlsSessionError::Renegotiation("DTLS-SRTP was dropped"));
        }
        let fingerprint = |n: &Negotiated| n.dtls.as_ref().map(|d| d.remote_fingerprint.clone());
        if fingerprint(negotiated) != fingerprint(old) {
            return Err(DtlsSessionError::Renegotiation(
                "the DTLS fingerprint changed",
            ));
        }
        if negotiated.ice != old.ice {
            return Err(DtlsSessionError::Renegotiation(
                "the ICE credentials changed (ICE restart)",
            ));
        }
        self.negotiated = negotiated.clone();
        Ok(())
    }

    /// What was negotiated.
    pub fn negotiated(&self) -> &Negotiated {
        &self.negotiated
    }

    /// Our SSRC.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The local address (our host candidate).
    pub fn local(&self) -> SocketAddr {
        self.local
    }

    /// Where the connection stands.
    pub fn state(&self) -> DtlsState {
        self.state
    }

    /// Whether ICE and DTLS are up and media flows.
    pub fn is_connected(&self) -> bool {
        self.state == DtlsState::Connected
    }

    /// Whether media is sent (not on hold, direction allows it). Nothing is sent before
    /// [`DtlsMediaEvent::Connected`] either.
    pub fn sending(&self) -> bool {
        self.negotiated.direction.can_send() && !self.negotiated.hold
    }

    fn is_dead(&self) -> bool {
        matches!(self.state, DtlsState::Failed) || !self.rtc.is_alive()
    }

    /// Moves str0m's clock to `now` (never backwards).
    fn advance(&mut self, now: Instant) -> Instant {
        if now > self.last_now {
            self.last_now = now;
        }
        self.last_now
    }

    fn mono(&self, at: Instant) -> Duration {
        at.saturating_duration_since(self.start)
    }

    fn fail(&mut self, failure: DtlsFailure) {
        if self.state == DtlsState::Failed {
            return;
        }
        self.state = DtlsState::Failed;
        self.rtc.disconnect();
        self.dtmf_queue.clear();
        self.events.push_back(DtlsMediaEvent::Failed(failure));
    }

    fn on_error(&mut self, error: &RtcError) {
        if self.rtc.is_alive() {
            self.drops.malformed += 1;
        } else {
            self.fail(classify(error));
        }
    }

    /// Drains str0m's output until its next timeout: after every change, as str0m requires.
    fn drain(&mut self) {
        let mut errors = 0;
        let mut forget = Vec::new();
        while !self.is_dead() {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(at)) => {
                    self.rtc_timeout = at;
                    break;
                }
                Ok(Output::Transmit(t)) => self.transmits.push_back(Transmit {
                    to: t.destination,
                    bytes: t.contents.to_vec(),
                }),
                Ok(Output::Event(event)) => self.on_event(event, &mut forget),
                Err(e) => {
                    self.on_error(&e);
                    errors += 1;
                    if errors >= MAX_ERRORS_PER_DRAIN {
                        break;
                    }
                }
            }
        }
        if !forget.is_empty() && !self.is_dead() {
            for ssrc in forget {
                self.rtc.direct_api().remove_stream_rx(Ssrc::from(ssrc));
            }
            self.drain();
        }
    }

    fn on_event(&mut self, event: Event, forget: &mut Vec<u32>) {
        match event {
            Event::Connected if self.state == DtlsState::Connecting => {
                self.state = DtlsState::Connected;
                self.events.push_back(DtlsMediaEvent::Connected);
            }
            Event::IceConnectionStateChange(s) => {
                self.events.push_back(DtlsMediaEvent::IceState(s.into()));
            }
            Event::RtpPacket(packet) => self.on_rtp(&packet, forget),
            Event::MediaEgressStats(s) => {
                if let Some(rtt) = s.rtt {
                    self.stats.round_trip_time = Some(rtt.as_secs_f64());
                }
            }
            Event::Closed if matches!(self.state, DtlsState::Connecting | DtlsState::Connected) => {
                self.state = DtlsState::Closed;
                self.dtmf_queue.clear();
                self.events.push_back(DtlsMediaEvent::Closed);
            }
            _ => {}
        }
    }

    fn on_rtp(&mut self, packet: &Str0mRtpPacket, forget: &mut Vec<u32>) {
        let header = &packet.header;
        let ssrc = *header.ssrc;
        if !self.rx_ssrcs.contains(&ssrc) {
            self.rx_ssrcs.push_back(ssrc);
            while self.rx_ssrcs.len() > MAX_RX_SSRCS {
                if let Some(old) = self.rx_ssrcs.pop_front() {
                    forget.push(old);
                }
            }
        }
        let pt = *header.payload_type;
        let codec_pt = self.negotiated.codec.pt;
        let event_pt = self.negotiated.telephone_event.as_ref().map(|f| f.pt);
        if pt != codec_pt && Some(pt) != event_pt && pt != PT_CN {
            self.drops.unknown_payload += 1;
            return;
        }
        let arrival = self.mono(packet.timestamp);
        if self.reception.as_ref().is_none_or(|r| r.ssrc() != ssrc) {
            self.reception = Some(ReceptionStats::new_validated(ssrc, self.codec_rate));
            self.jitter.reset();
        }
        let Some(reception) = self.reception.as_mut() else {
            return;
        };
        let status = reception.on_rtp_at(header.sequence_number, header.timestamp, arrival);
        self.stats.packets_received += 1;
        self.stats.bytes_received += packet.payload.len() as u64;
        if Some(pt) == event_pt {
            if let Ok(Some(received)) = self.dtmf_rx.receive(header.timestamp, &packet.payload)
                && let Some(digit) = received.digit
            {
                self.events
                    .push_back(DtlsMediaEvent::Media(MediaEvent::Dtmf { digit }));
            }
            return;
        }
        if pt == PT_CN {
            return;
        }
        if let Some(extended) = status.extended() {
            self.jitter.push(
                arrival,
                extended,
                header.timestamp,
                packet.payload.to_vec(),
                header.marker,
            );
        }
    }

    /// Encodes one captured 20 ms frame (960 samples at 48 kHz) and sends it. Before the
    /// connection is up, on hold, or while a DTMF event is being sent, nothing is sent but
    /// the RTP clock still advances.
    pub fn handle_capture(&mut self, now: Instant, frame: &[i16]) -> Result<(), MediaError> {
        let now = self.advance(now);
        if !self.is_dead() {
            if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
                self.on_error(&e);
            }
            self.drain();
        }
        self.send_due_dtmf(now);
        let dtmf_active = !self.dtmf_queue.is_empty();
        if self.sending() && !dtmf_active && self.is_connected() {
            self.scratch.clear();
            let pcm: &[i16] = match &mut self.to_codec {
                Some(resampler) => {
                    resampler.process(frame, &mut self.scratch);
                    self.scratch.resize(self.codec_frame, 0);
                    &self.scratch
                }
                None => frame,
            };
            let mut payload = Vec::with_capacity(200);
            self.encoder.encode(pcm, &mut payload)?;
            let (pt, ts, marker) = (self.negotiated.codec.pt, self.timestamp, self.first_packet);
            self.first_packet = false;
            self.write_rtp(now, pt, ts, marker, payload);
        }
        self.timestamp = self.timestamp.wrapping_add(self.codec_frame as u32);
        self.drain();
        Ok(())
    }

    fn write_rtp(&mut self, now: Instant, pt: u8, timestamp: u32, marker: bool, payload: Vec<u8>) {
        let len = payload.len() as u64;
        let mid = self.mid;
        let mut api = self.rtc.direct_api();
        let Some(stream) = api.stream_tx_by_mid(mid, None) else {
            return;
        };
        stream.write_rtp(
            RtpWrite::new(Pt::from(pt), SeqNo::from(self.seq), timestamp, now, payload)
                .marker(marker),
        );
        self.seq += 1;
        self.stats.packets_sent += 1;
        self.stats.bytes_sent += len;
    }

    /// Queues RFC 4733 events for `digits`, starting now (after digits still queued).
    pub fn send_dtmf(&mut self, now: Instant, digits: &str) -> Result<(), MediaError> {
        let format = self
            .negotiated
            .telephone_event
            .as_ref()
            .ok_or(MediaError::NoTelephoneEvent)?;
        let clock = format.clock_rate;
        let sender = DtmfSender::new(DtmfSenderConfig::new(clock, FRAME))?;
        let base = if clock == self.codec_rate {
            self.timestamp
        } else {
            (u64::from(self.timestamp) * u64::from(clock) / u64::from(self.codec_rate)) as u32
        };
        let now = self.advance(now);
        let start = self
            .dtmf_queue
            .back()
            .map(|(at, _)| *at + Duration::from_millis(100))
            .unwrap_or(now);
        for packet in sender.packets(digits, base)? {
            self.dtmf_queue.push_back((start + packet.send_at, packet));
        }
        self.send_due_dtmf(now);
        self.drain();
        Ok(())
    }

    fn send_due_dtmf(&mut self, now: Instant) {
        let Some(pt) = self.negotiated.telephone_event.as_ref().map(|f| f.pt) else {
            self.dtmf_queue.clear();
            return;
        };
        while self.dtmf_queue.front().is_some_and(|(at, _)| *at <= now) {
            let Some((_, dtmf)) = self.dtmf_queue.pop_front() else {
                break;
            };
            if self.sending() && self.is_connected() {
                let payload = dtmf.event.to_bytes().to_vec();
                self.write_rtp(now, pt, dtmf.timestamp, dtmf.marker, payload);
            }
        }
    }

    /// Handles one datagram received on the media socket from `from`: STUN, DTLS, SRTP or
    /// SRTCP. Anything else, and anything str0m rejects, is dropped and counted.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        if self.is_dead() {
            return;
        }
        let now = self.advance(now);
        let Ok(contents) = DatagramRecv::try_from(bytes) else {
            self.drops.malformed += 1;
            return;
        };
        // str0m only passes on RTP of SSRCs it was told to expect, and our SDP carries no
        // a=ssrc: declare a new SSRC tentatively, keep it if a packet authenticates.
        let tentative = match rtp_ssrc(bytes) {
            Some(ssrc) if self.is_connected() && !self.rx_ssrcs.contains(&ssrc) => {
                let mid = self.mid;
                self.rtc
                    .direct_api()
                    .expect_stream_rx(Ssrc::from(ssrc), None, mid, None);
                self.drain();
                Some(ssrc)
            }
            _ => None,
        };
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source: from,
                destination: self.local,
                contents,
            },
        );
        if let Err(e) = self.rtc.handle_input(input) {
            self.on_error(&e);
        }
        self.drain();
        if let Some(ssrc) = tentative
            && !self.rx_ssrcs.contains(&ssrc)
            && !self.is_dead()
        {
            self.rtc.direct_api().remove_stream_rx(Ssrc::from(ssrc));
            self.drain();
        }
    }

    /// Produces one 20 ms playout frame (960 samples at 48 kHz), appended to `out`: decoded
    /// audio, concealment, or silence before the connection is up.
    pub fn playout(&mut self, now: Instant, out: &mut Vec<i16>) {
        let now = self.advance(now);
        let now = self.mono(now);
        play_frame(
            &mut self.jitter,
            self.decoder.as_mut(),
            self.codec_frame,
            self.to_device.as_mut(),
            now,
            out,
        );
    }

    /// Does what is due at `now`: ICE checks and consent, DTLS retransmits, RTCP, DTMF
    /// packets, the connect timeout.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.advance(now);
        if self.is_dead() {
            return;
        }
        if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
            self.on_error(&e);
        }
        self.send_due_dtmf(now);
        self.drain();
        if self.state == DtlsState::Connecting && now >= self.start + CONNECT_TIMEOUT {
            self.fail(DtlsFailure::ConnectTimeout);
        }
    }

    /// When [`Self::handle_timeout`] is next needed (besides the 20 ms capture/playout
    /// cadence); `None` once the session is over.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.is_dead() {
            return None;
        }
        let mut at = self.rtc_timeout;
        if let Some((due, _)) = self.dtmf_queue.front() {
            at = at.min(*due);
        }
        if self.state == DtlsState::Connecting {
            at = at.min(self.start + CONNECT_TIMEOUT);
        }
        Some(at)
    }

    /// Ends the session: RTCP BYE and DTLS close_notify go out through
    /// [`Self::poll_transmit`]; afterwards the session is inert.
    pub fn close(&mut self, now: Instant) {
        let now = self.advance(now);
        if self.is_dead() {
            return;
        }
        if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
            self.on_error(&e);
        }
        self.drain();
        if self.is_dead() {
            return;
        }
        if self.state != DtlsState::Failed {
            self.state = DtlsState::Closed;
        }
        self.dtmf_queue.clear();
        if self.rtc.close().is_err() {
            self.rtc.disconnect();
        }
        self.drain();
    }

    /// Next datagram to send (from [`Self::local`]).
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// Next event.
    pub fn poll_event(&mut self) -> Option<DtlsMediaEvent> {
        self.events.pop_front()
    }

    /// Statistics under the WebRTC names (RTT from str0m's RTCP).
    pub fn stats(&self) -> MediaStats {
        crate::session::stream_stats(
            &self.stats,
            &self.jitter,
            self.reception.as_ref(),
            self.codec_rate,
        )
    }

    /// E-model MOS estimate for the receive direction.
    pub fn mos(&self) -> f64 {
        crate::session::stream_mos(&self.stats(), &self.negotiated)
    }

    /// What was dropped and why. `malformed` counts datagrams that are not STUN/DTLS/RTP/RTCP
    /// and inputs str0m refused; SRTP authentication failures and replays are dropped
    /// inside str0m without a count.
    pub fn drops(&self) -> DropCounters {
        self.drops
    }
}

#[cfg(test)]
mod tests;
