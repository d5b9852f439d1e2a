//! The ICE + DTLS-SRTP transport of a [`MediaSession`] (RFC 8445, RFC 5763/5764,
//! `UDP/TLS/RTP/SAVP`), sans-IO, through str0m's direct API, and the helpers offer/answer needs
//! for it (certificate, ICE credentials, host candidate).
//!
//! str0m does ICE (connectivity checks, nomination, consent), the DTLS handshake, the
//! fingerprint check, SRTP/SRTCP and RTCP reports; the session's audio pipeline does the rest,
//! as for plain RTP. str0m runs in *RTP mode*: we write whole RTP packets (our sequence
//! numbers, timestamps and payload types) with `StreamTx::write_rtp` and get whole packets
//! back as `Event::RtpPacket`. No RTP header extension is sent (our SDP negotiates none), no
//! RTX, no NACK, no TWCC.
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
//! Every datagram of the call's media socket goes to the transport (STUN, DTLS, SRTP and
//! SRTCP share it: rtcp-mux); str0m's timers (ICE checks and consent, DTLS retransmits, RTCP)
//! and the connect timeout come through [`MediaSession::poll_timeout`].
//!
//! Roles: the DTLS role comes from a=setup as offer/answer settled it
//! ([`DtlsParams::local_setup`]: `active` = DTLS client; RFC 5763 §5 makes the answerer of an
//! `actpass` offer active). The ICE role follows RFC 8445 §6.1.1: the offerer controls. The
//! offerer is recognised by the peer's a=setup not being `actpass` (answers cannot carry
//! `actpass`); when a peer offers `active`/`passive` both sides may start controlling and
//! ICE's role-conflict repair (487) settles it. An ICE-lite peer (a=ice-lite in
//! [`SessionConfig::remote_description`]) never checks, so we then always control.
//!
//! Renegotiation: the DTLS association, and with it str0m's SRTP contexts, lives as long as
//! the session, so hold, resume, direction and codec changes keep them. str0m only takes RTP
//! whose payload type is in the codec table it was built with, and that table cannot change
//! afterwards: it holds the negotiated codec and telephone-event, comfort noise, and our own
//! offer's numbering (PCMU 0, PCMA 8, Opus 111, telephone-event 101 and 110) where those are
//! free. A codec change to any of these works; another payload type, a new fingerprint or new
//! ICE credentials (an ICE restart) need a new session ([`MediaError::Renegotiation`]).
//!
//! Not done here: symmetric-RTP latching (ICE picks the path; no `MediaEvent::Latched`), ICE
//! restarts, TURN/STUN candidate gathering (the runtime adds server-reflexive candidates to
//! the SDP itself).
//!
//! [`MediaSession`]: crate::session::MediaSession
//! [`MediaSession::poll_timeout`]: crate::session::MediaSession::poll_timeout
//! [`SessionConfig::remote_description`]: crate::session::SessionConfig::remote_description

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

use crate::pipeline::{AudioPipeline, PT_CN};
use crate::rtp::RtpPacket;
use crate::sdp::{
    DtlsLocal, DtlsParams, Fingerprint, IceCredentials, IceLocal, Negotiated, PT_OPUS, PT_PCMA,
    PT_PCMU, PT_TELEPHONE_EVENT, PT_TELEPHONE_EVENT_48K, PayloadFormat, SessionDescription, Setup,
};
use crate::session::{ConnectionState, MediaError, MediaEvent, Outbox, Transmit};
#[cfg(doc)]
use crate::session::{MediaSession, SessionConfig};

/// How long ICE + DTLS may take before the session gives up with
/// [`DtlsFailure::ConnectTimeout`].
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

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
    pub fn generate() -> Result<Self, MediaError> {
        let inner = provider()
            .dtls_provider
            .generate_certificate()
            .ok_or_else(|| MediaError::Certificate("the crypto provider generated none".into()))?;
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
pub fn host_candidate_line(local: SocketAddr) -> Result<String, MediaError> {
    if local.ip().is_unspecified() || local.port() == 0 {
        return Err(MediaError::LocalAddress(local));
    }
    let candidate = Candidate::host(local, "udp").map_err(|_| MediaError::LocalAddress(local))?;
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
/// Pass the same `ice` in [`SessionConfig::local_ice`] for this call.
pub fn dtls_offer_keys<R: Rng + ?Sized>(
    cert: &DtlsCert,
    local: SocketAddr,
    rng: &mut R,
) -> Result<DtlsLocal, MediaError> {
    Ok(DtlsLocal {
        fingerprint: cert.fingerprint().clone(),
        ice: IceLocal {
            credentials: new_ice_credentials(rng),
            candidates: vec![host_candidate_line(local)?],
        },
    })
}

/// The a=candidate values of the negotiated audio m-line of the peer's description (the
/// remote offer, or the remote answer). [`MediaSession::new`] adds them from
/// [`SessionConfig::remote_description`].
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

/// The peer's default address (c= and m= port) as a host candidate (RFC 8839 §4.2.1.1), unless
/// it is 0.0.0.0 / port 9 (the peer trickles).
fn default_candidate(negotiated: &Negotiated) -> Option<Candidate> {
    let default = negotiated.remote_rtp;
    if default.ip().is_unspecified() || default.port() == 0 {
        return None;
    }
    Candidate::host(default, "udp").ok()
}

/// Whether the peer's description declares an ICE-lite agent (session-level a=ice-lite,
/// RFC 8839 §5.3). [`MediaSession::new`] checks [`SessionConfig::remote_description`].
pub fn remote_is_ice_lite(remote: &SessionDescription) -> bool {
    remote.attribute("ice-lite").is_some()
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

/// One call's ICE + DTLS-SRTP transport (see the module docs).
pub(crate) struct DtlsTransport {
    rtc: Rtc,
    local: SocketAddr,
    start: Instant,
    rtc_timeout: Instant,
    state: ConnectionState,
    mid: Mid,
    /// What str0m's codec table holds: (payload type, encoding name, clock rate).
    payload_types: Vec<(u8, String, u32)>,
    rx_ssrcs: VecDeque<u32>,
    /// The peer's candidates given to str0m, to invalidate those an ICE restart drops.
    remote_candidates: Vec<Candidate>,
    /// Where the peer's datagrams came from (its peer-reflexive candidates, which str0m
    /// makes itself), newest last, at most [`MOST_SOURCES`].
    sources: VecDeque<SocketAddr>,
}

/// Sources of the peer's datagrams remembered for an ICE restart.
const MOST_SOURCES: usize = 8;

impl fmt::Debug for DtlsTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DtlsTransport")
            .field("state", &self.state)
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

/// The payload types str0m's codec table gets: the negotiated codec and telephone-event
/// first, then comfort noise and our offer's numbering where those numbers are free, so a
/// later codec change among them needs no new table (str0m cannot change it).
fn payload_table(negotiated: &Negotiated) -> Vec<(u8, String, u32, u8)> {
    let format = |f: &PayloadFormat| (f.pt, f.name.clone(), f.clock_rate, f.channels);
    let mut table = vec![format(&negotiated.codec)];
    table.extend(negotiated.telephone_event.as_ref().map(format));
    for (pt, name, clock, channels) in [
        (PT_CN, "CN", 8000, 1),
        (PT_PCMU, "PCMU", 8000, 1),
        (PT_PCMA, "PCMA", 8000, 1),
        (PT_OPUS, "opus", 48_000, 2),
        (PT_TELEPHONE_EVENT, "telephone-event", 8000, 1),
        (PT_TELEPHONE_EVENT_48K, "telephone-event", 48_000, 1),
    ] {
        if !table.iter().any(|(taken, ..)| *taken == pt) {
            table.push((pt, name.to_owned(), clock, channels));
        }
    }
    table
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
    let ssrc: [u8; 4] = bytes.get(8..12)?.try_into().ok()?;
    Some(u32::from_be_bytes(ssrc))
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

impl DtlsTransport {
    /// The transport for a DTLS-SRTP negotiation, started at `now`.
    ///
    /// * `negotiated` must carry [`Negotiated::dtls`] and [`Negotiated::ice`];
    /// * `local` is the media socket's address as announced in our a=candidate;
    /// * `certificate` is the certificate whose fingerprint we announced;
    /// * `local_ice` are the ICE credentials we announced ([`DtlsLocal::ice`]);
    /// * `ssrc` is our RTP stream's SSRC.
    ///
    /// The peer's default address (c= and m= port) is added as a host candidate. Nothing is
    /// sent until the first [`Self::handle_timeout`].
    pub(crate) fn new(
        now: Instant,
        negotiated: &Negotiated,
        local: SocketAddr,
        certificate: &DtlsCert,
        local_ice: IceCredentials,
        ssrc: u32,
    ) -> Result<Self, MediaError> {
        let dtls: &DtlsParams = negotiated.dtls.as_ref().ok_or(MediaError::Renegotiation(
            "the negotiation is not DTLS-SRTP",
        ))?;
        let remote_ice = negotiated
            .ice
            .as_ref()
            .ok_or(MediaError::MissingIceCredentials)?;
        let active = match dtls.local_setup {
            Setup::Active => true,
            Setup::Passive => false,
            other => return Err(MediaError::InvalidSetup(other)),
        };
        let controlling = dtls.remote_setup != Setup::ActPass;

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
        let table = payload_table(negotiated);
        for (pt, name, clock, channels) in &table {
            add_payload(&mut config, *pt, name, *clock, *channels);
        }
        let mut rtc = config.build(now);

        let host = Candidate::host(local, "udp").map_err(|_| MediaError::LocalAddress(local))?;
        if local.ip().is_unspecified() || rtc.add_local_candidate(host).is_none() {
            return Err(MediaError::LocalAddress(local));
        }
        // RFC 8839 §4.2.1.1: c= and the m= port are the default candidate (0.0.0.0 port 9
        // when the peer trickles: skip that one).
        let mut remote_candidates = Vec::new();
        if let Some(c) = default_candidate(negotiated) {
            rtc.add_remote_candidate(c.clone());
            remote_candidates.push(c);
        }

        let mid = Mid::from(MID);
        {
            let mut api = rtc.direct_api();
            api.set_remote_ice_credentials(IceCreds {
                ufrag: remote_ice.ufrag.clone(),
                pass: remote_ice.pwd.clone(),
            });
            api.set_ice_controlling(controlling);
            api.set_remote_fingerprint(str0m_fingerprint(&dtls.remote_fingerprint));
            api.declare_media(mid, str0m::media::MediaKind::Audio);
            api.declare_stream_tx(Ssrc::from(ssrc), None, mid, None);
            api.start_dtls(active)
                .map_err(|e| MediaError::Certificate(e.to_string()))?;
        }
        Ok(Self {
            rtc,
            local,
            start: now,
            rtc_timeout: now,
            state: ConnectionState::Connecting,
            mid,
            payload_types: table
                .into_iter()
                .map(|(pt, name, clock, _)| (pt, name, clock))
                .collect(),
            rx_ssrcs: VecDeque::new(),
            remote_candidates,
            sources: VecDeque::new(),
        })
    }

    /// Restarts ICE (RFC 8445 §9) with the renegotiation that carried the restart: our new
    /// credentials `local_ice` and socket address `local` (unchanged when the peer
    /// restarted), the peer's new credentials and candidates. str0m's direct API has no
    /// restart of its own: the credentials are replaced, the candidates that are gone are
    /// invalidated (which drops their pairs) and the new ones added, so the checks start
    /// over while the DTLS association and its SRTP contexts stay.
    pub(crate) fn restart_ice(
        &mut self,
        local: SocketAddr,
        local_ice: IceCredentials,
        negotiated: &Negotiated,
        remote: Option<&SessionDescription>,
        pipeline: &mut AudioPipeline,
        out: &mut Outbox,
    ) -> Result<(), MediaError> {
        let remote_ice = negotiated
            .ice
            .as_ref()
            .ok_or(MediaError::MissingIceCredentials)?;
        let host = Candidate::host(local, "udp").map_err(|_| MediaError::LocalAddress(local))?;
        if local.ip().is_unspecified() {
            return Err(MediaError::LocalAddress(local));
        }
        let mut wanted: Vec<Candidate> = default_candidate(negotiated).into_iter().collect();
        if let Some(remote) = remote {
            for line in remote_candidates(remote, negotiated) {
                let text = format!("candidate:{}", line.trim().trim_start_matches("candidate:"));
                if let Ok(c) = Candidate::from_sdp_string(&text)
                    && c.proto() == Protocol::Udp
                {
                    wanted.push(c);
                }
            }
        }
        let same = |a: &Candidate, b: &Candidate| a.addr() == b.addr() && a.kind() == b.kind();
        {
            let mut api = self.rtc.direct_api();
            api.set_local_ice_credentials(IceCreds {
                ufrag: local_ice.ufrag.clone(),
                pass: local_ice.pwd.clone(),
            });
            api.set_remote_ice_credentials(IceCreds {
                ufrag: remote_ice.ufrag.clone(),
                pass: remote_ice.pwd.clone(),
            });
            if local != self.local
                && let Ok(old) = Candidate::host(self.local, "udp")
            {
                api.invalidate_candidate(&old);
            }
            for gone in self
                .remote_candidates
                .iter()
                .filter(|c| !wanted.iter().any(|w| same(c, w)))
            {
                api.invalidate_candidate(gone);
            }
            // When the peer moved (we did not), the peer-reflexive candidates str0m learned
            // from where its checks came from are gone too: a pair nominated on one would keep
            // media on the old path. (When we moved, the peer's addresses still hold.)
            let peer_moved = local == self.local;
            for source in self.sources.drain(..).filter(|_| peer_moved) {
                let line = format!(
                    "candidate:prflx 1 udp 1 {} {} typ prflx",
                    source.ip(),
                    source.port()
                );
                if let Ok(prflx) = Candidate::from_sdp_string(&line) {
                    api.invalidate_candidate(&prflx);
                }
            }
        }
        self.remote_candidates
            .retain(|c| wanted.iter().any(|w| same(c, w)));
        if local != self.local {
            self.rtc.add_local_candidate(host);
            self.local = local;
        }
        for c in wanted {
            if !self.remote_candidates.iter().any(|k| same(k, &c)) {
                self.rtc.add_remote_candidate(c.clone());
                self.remote_candidates.push(c);
            }
        }
        self.drain(pipeline, out);
        Ok(())
    }

    /// Takes the peer's a=candidate lines (see [`remote_candidates`]) and its ICE-lite flag
    /// from its description. Lines that do not parse are skipped: the others may still work.
    pub(crate) fn learn_remote(
        &mut self,
        now: Instant,
        remote: &SessionDescription,
        negotiated: &Negotiated,
        pipeline: &mut AudioPipeline,
        out: &mut Outbox,
    ) {
        for line in remote_candidates(remote, negotiated) {
            let _skipped = self.add_remote_candidate(now, line, pipeline, out);
        }
        if remote_is_ice_lite(remote) && !self.is_dead() {
            // A lite agent never checks: we must control whatever the offer/answer roles
            // (RFC 8445 §6.1.1).
            self.rtc.direct_api().set_ice_controlling(true);
            self.drain(pipeline, out);
        }
    }

    /// Adds one of the peer's ICE candidates (see `MediaSession::add_remote_candidate`).
    pub(crate) fn add_remote_candidate(
        &mut self,
        _now: Instant,
        candidate: &str,
        pipeline: &mut AudioPipeline,
        out: &mut Outbox,
    ) -> Result<(), MediaError> {
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
            .map_err(|e| MediaError::BadCandidate(e.to_string()))?;
        if self.is_dead() || parsed.proto() != Protocol::Udp {
            return Ok(());
        }
        self.remote_candidates.push(parsed.clone());
        self.rtc.add_remote_candidate(parsed);
        self.drain(pipeline, out);
        Ok(())
    }

    /// Checks that a renegotiation changes nothing this transport cannot change: DTLS-SRTP
    /// stays, with the same fingerprint and (unless it restarts ICE) ICE credentials, and the
    /// codec and telephone-event payload types are in str0m's table.
    pub(crate) fn check_update(
        &self,
        old: &Negotiated,
        new: &Negotiated,
        ice_restart: bool,
    ) -> Result<(), MediaError> {
        if new.dtls.is_none() {
            return Err(MediaError::Renegotiation("DTLS-SRTP was dropped"));
        }
        let fingerprint = |n: &Negotiated| n.dtls.as_ref().map(|d| d.remote_fingerprint.clone());
        if fingerprint(new) != fingerprint(old) {
            return Err(MediaError::Renegotiation("the DTLS fingerprint changed"));
        }
        if new.ice != old.ice && !ice_restart {
            return Err(MediaError::Renegotiation(
                "the ICE credentials changed (ICE restart)",
            ));
        }
        let known = |f: &PayloadFormat| {
            self.payload_types.iter().any(|(pt, name, clock)| {
                *pt == f.pt && name.eq_ignore_ascii_case(&f.name) && *clock == f.clock_rate
            })
        };
        if !known(&new.codec) || new.telephone_event.as_ref().is_some_and(|t| !known(t)) {
            return Err(MediaError::Renegotiation(
                "a payload type the DTLS transport was not built with",
            ));
        }
        Ok(())
    }

    /// Where the connection stands.
    pub(crate) fn state(&self) -> ConnectionState {
        self.state
    }

    fn is_dead(&self) -> bool {
        self.state == ConnectionState::Failed || !self.rtc.is_alive()
    }

    /// Does what str0m's timers want at `now` (ICE checks and consent, DTLS retransmits,
    /// RTCP) and fails the session once [`CONNECT_TIMEOUT`] passed without a connection.
    pub(crate) fn handle_timeout(
        &mut self,
        now: Instant,
        pipeline: &mut AudioPipeline,
        out: &mut Outbox,
    ) {
        if self.is_dead() {
            return;
        }
        if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
            self.on_error(&e, pipeline, out);
        }
        self.drain(pipeline, out);
        if self.state == ConnectionState::Connecting && now >= self.start + CONNECT_TIMEOUT {
            self.fail(DtlsFailure::ConnectTimeout, pipeline, out);
        }
    }

    /// When [`Self::handle_timeout`] is next needed; `None` once the transport is over.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        if self.is_dead() {
            return None;
        }
        Some(if self.state == ConnectionState::Connecting {
            self.rtc_timeout.min(self.start + CONNECT_TIMEOUT)
        } else {
            self.rtc_timeout
        })
    }

    /// Writes the pipeline's packets to str0m, which protects and paces them.
    pub(crate) fn send_pending(
        &mut self,
        now: Instant,
        pipeline: &mut AudioPipeline,
        out: &mut Outbox,
    ) {
        let mid = self.mid;
        while let Some(packet) = pipeline.poll_outgoing() {
            let mut api = self.rtc.direct_api();
            let Some(stream) = api.stream_tx_by_mid(mid, None) else {
                continue;
            };
            stream.write_rtp(
                RtpWrite::new(
                    Pt::from(packet.payload_type),
                    SeqNo::from(packet.sequence),
                    packet.timestamp,
                    now,
                    packet.payload,
                )
                .marker(packet.marker),
            );
        }
        self.drain(pipeline, out);
    }

    /// Handles one datagram received on the media socket from `from`: STUN, DTLS, SRTP or
    /// SRTCP. Anything else, and anything str0m rejects, is dropped and counted.
    pub(crate) fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        bytes: &[u8],
        pipeline: &mut AudioPipeline,
        out: &mut Outbox,
    ) {
        if self.is_dead() {
            return;
        }
        if self.sources.back() != Some(&from) {
            self.sources.retain(|s| *s != from);
            if self.sources.len() >= MOST_SOURCES {
                self.sources.pop_front();
            }
            self.sources.push_back(from);
        }
        let Ok(contents) = DatagramRecv::try_from(bytes) else {
            out.drops.malformed += 1;
            return;
        };
        // str0m only passes on RTP of SSRCs it was told to expect, and our SDP carries no
        // a=ssrc: declare a new SSRC tentatively, keep it if a packet authenticates.
        let tentative = match rtp_ssrc(bytes) {
            Some(ssrc)
                if self.state == ConnectionState::Connected && !self.rx_ssrcs.contains(&ssrc) =>
            {
                let mid = self.mid;
                self.rtc
                    .direct_api()
                    .expect_stream_rx(Ssrc::from(ssrc), None, mid, None);
                self.drain(pipeline, out);
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
            self.on_error(&e, pipeline, out);
        }
        self.drain(pipeline, out);
        if let Some(ssrc) = tentative
            && !self.rx_ssrcs.contains(&ssrc)
            && !self.is_dead()
        {
            self.rtc.direct_api().remove_stream_rx(Ssrc::from(ssrc));
            self.drain(pipeline, out);
        }
    }

    /// Ends the transport: RTCP BYE and DTLS close_notify go out; afterwards it is inert.
    pub(crate) fn close(&mut self, now: Instant, pipeline: &mut AudioPipeline, out: &mut Outbox) {
        if self.is_dead() {
            return;
        }
        if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
            self.on_error(&e, pipeline, out);
        }
        self.drain(pipeline, out);
        if self.is_dead() {
            return;
        }
        self.state = ConnectionState::Closed;
        if self.rtc.close().is_err() {
            self.rtc.disconnect();
        }
        self.drain(pipeline, out);
    }

    fn fail(&mut self, failure: DtlsFailure, pipeline: &mut AudioPipeline, out: &mut Outbox) {
        if self.state == ConnectionState::Failed {
            return;
        }
        self.state = ConnectionState::Failed;
        self.rtc.disconnect();
        pipeline.clear_dtmf();
        out.events.push_back(MediaEvent::Failed(failure));
    }

    fn on_error(&mut self, error: &RtcError, pipeline: &mut AudioPipeline, out: &mut Outbox) {
        if self.rtc.is_alive() {
            out.drops.malformed += 1;
        } else {
            self.fail(classify(error), pipeline, out);
        }
    }

    /// Drains str0m's output until its next timeout: after every change, as str0m requires.
    fn drain(&mut self, pipeline: &mut AudioPipeline, out: &mut Outbox) {
        let mut errors = 0;
        let mut forget = Vec::new();
        while !self.is_dead() {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(at)) => {
                    self.rtc_timeout = at;
                    break;
                }
                Ok(Output::Transmit(t)) => out.transmits.push_back(Transmit {
                    to: t.destination,
                    bytes: t.contents.to_vec(),
                }),
                Ok(Output::Event(event)) => self.on_event(event, &mut forget, pipeline, out),
                Err(e) => {
                    self.on_error(&e, pipeline, out);
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
            self.drain(pipeline, out);
        }
    }

    fn on_event(
        &mut self,
        event: Event,
        forget: &mut Vec<u32>,
        pipeline: &mut AudioPipeline,
        out: &mut Outbox,
    ) {
        match event {
            Event::Connected if self.state == ConnectionState::Connecting => {
                self.state = ConnectionState::Connected;
                out.events.push_back(MediaEvent::Connected);
            }
            Event::IceConnectionStateChange(s) => {
                out.events.push_back(MediaEvent::IceState(s.into()));
            }
            Event::RtpPacket(packet) => self.on_rtp(packet, forget, pipeline, out),
            Event::MediaEgressStats(s) => {
                if let Some(rtt) = s.rtt {
                    pipeline.set_round_trip_time(rtt);
                }
            }
            Event::Closed
                if matches!(
                    self.state,
                    ConnectionState::Connecting | ConnectionState::Connected
                ) =>
            {
                self.state = ConnectionState::Closed;
                pipeline.clear_dtmf();
                out.events.push_back(MediaEvent::Closed);
            }
            _ => {}
        }
    }

    fn on_rtp(
        &mut self,
        packet: Str0mRtpPacket,
        forget: &mut Vec<u32>,
        pipeline: &mut AudioPipeline,
        out: &mut Outbox,
    ) {
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
        let payload_type = *header.payload_type;
        if !pipeline.accepts(payload_type) {
            out.drops.unknown_payload += 1;
            return;
        }
        let mut rtp = RtpPacket::new(payload_type, header.sequence_number, header.timestamp, ssrc);
        rtp.marker = header.marker;
        rtp.payload = packet.payload.to_vec();
        if let Some(digit) = pipeline.receive(packet.timestamp, rtp) {
            out.events.push_back(MediaEvent::Dtmf { digit });
        }
    }
}

#[cfg(test)]
mod tests;
