//! The offer/answer model (RFC 3264) for one audio stream.
//!
//! ```text
//!   we call                                   they call
//!   -------                                   ---------
//!   create_offer ──INVITE──▶                  ◀──INVITE── offer
//!   process_answer ◀──200/183──               answer ──200──▶  (Err → 488 Not Acceptable Here)
//!        │                                         │
//!        └────────────▶ Negotiated ◀───────────────┘
//! ```
//!
//! Security, by [`SrtpPolicy`] and [`SrtpMode`]:
//!
//! | policy    | mode | offer                                               | accepts in answers/offers          |
//! |-----------|------|-----------------------------------------------------|------------------------------------|
//! | Off       | any  | `RTP/AVP`, no crypto                                | plain RTP only                     |
//! | Optional  | Sdes | `RTP/AVP` **with** a=crypto (best-effort SRTP)      | plain, SDES (AVP or SAVP), DTLS    |
//! | Mandatory | Sdes | `RTP/SAVP` with a=crypto                            | SDES or DTLS only                  |
//! | Optional/Mandatory | Dtls | `UDP/TLS/RTP/SAVP`, fingerprint, setup:actpass, ICE | as above                 |
//!
//! "Best-effort SRTP" (a=crypto inside an `RTP/AVP` m-line) is outside RFC 4568's letter, which
//! defines a=crypto for the SAVP profiles, but RFC 4568 §7.1.1 leaves other transports to
//! extensions and this is what Asterisk (`media_encryption_optimistic`), baresip
//! (`mediaenc srtp`) and many SBCs do: peers that do not know SRTP ignore the unknown attribute
//! and answer plain RTP; peers that do answer with one crypto line and both sides encrypt.
//!
//! The offered SDES suites are `AES_CM_128_HMAC_SHA1_80` (tag 1) and `AES_CM_128_HMAC_SHA1_32`
//! (tag 2). Inline keys with an MKI, or several keys on one line, are not used (no MKI support
//! and no re-keying in our SRTP context); a line with a lifetime is used and the lifetime
//! ignored (calls end long before 2^31 packets). Session parameters are ignored.
//!
//! SDES keys across renegotiation (re-INVITE, UPDATE): an SRTP context keeps its rollover
//! counter only as long as it lives, so a context rebuilt with a key it already used would
//! repeat keystream and, after a sequence-number wrap, disagree with a peer that kept its
//! context. Hence [`OfferKeys`]: our key for the suite in use is offered and answered again
//! unchanged (both sides keep their contexts), any other suite gets a key that never protected
//! anything, and a retired key never comes back. [`answer`] and [`process_answer`] take the
//! keys mutably and record what each negotiation concluded, so no caller can get this wrong.

use std::net::{IpAddr, SocketAddr};

use super::{
    Attribute, Connection, Crypto, Direction, Fingerprint, Fmtp, IceCredentials, MediaDescription,
    MediaKind, Origin, Rtpmap, SdesKey, SdpError, SessionDescription, Setup, SrtpSuite, Timing,
    new_sdes_key,
};

/// Payload type we offer for PCMU (static, RFC 3551).
pub const PT_PCMU: u8 = 0;
/// Payload type we offer for PCMA (static, RFC 3551).
pub const PT_PCMA: u8 = 8;
/// Dynamic payload type we offer for Opus (`opus/48000/2`, RFC 7587).
pub const PT_OPUS: u8 = 111;
/// Dynamic payload type we offer for `telephone-event/8000` (RFC 4733).
pub const PT_TELEPHONE_EVENT: u8 = 101;
/// Dynamic payload type we offer for `telephone-event/48000` (with Opus).
pub const PT_TELEPHONE_EVENT_48K: u8 = 110;

/// The events we announce for telephone-event: DTMF 0-9 * # A-D and flash.
const TELEPHONE_EVENTS: &str = "0-16";

/// A codec we can send and receive, in preference order inside [`MediaConfig::codecs`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CodecPref {
    /// Opus at 48 kHz (RFC 7587).
    Opus {
        /// Announce `useinbandfec=1`: we decode in-band FEC, so the peer may send it.
        useinbandfec: bool,
        /// Announce `usedtx=1`: we prefer the peer to use discontinuous transmission.
        usedtx: bool,
    },
    /// G.711 µ-law, payload type 0.
    Pcmu,
    /// G.711 A-law, payload type 8.
    Pcma,
}

impl CodecPref {
    /// Encoding name as it appears in a=rtpmap.
    pub fn encoding_name(self) -> &'static str {
        match self {
            CodecPref::Opus { .. } => "opus",
            CodecPref::Pcmu => "PCMU",
            CodecPref::Pcma => "PCMA",
        }
    }

    /// RTP clock rate.
    pub fn clock_rate(self) -> u32 {
        match self {
            CodecPref::Opus { .. } => 48000,
            CodecPref::Pcmu | CodecPref::Pcma => 8000,
        }
    }

    /// Channels as announced in a=rtpmap (Opus is always `/2`, RFC 7587 §7).
    pub fn channels(self) -> u8 {
        match self {
            CodecPref::Opus { .. } => 2,
            CodecPref::Pcmu | CodecPref::Pcma => 1,
        }
    }

    /// The payload type we use when we offer.
    pub fn offer_payload_type(self) -> u8 {
        match self {
            CodecPref::Opus { .. } => PT_OPUS,
            CodecPref::Pcmu => PT_PCMU,
            CodecPref::Pcma => PT_PCMA,
        }
    }

    /// Our receive-side fmtp parameters, if any.
    pub fn local_fmtp(self) -> Option<String> {
        match self {
            CodecPref::Opus {
                useinbandfec,
                usedtx,
            } => {
                let mut p = Vec::new();
                if useinbandfec {
                    p.push("useinbandfec=1");
                }
                if usedtx {
                    p.push("usedtx=1");
                }
                (!p.is_empty()).then(|| p.join(";"))
            }
            CodecPref::Pcmu | CodecPref::Pcma => None,
        }
    }

    /// Whether a remote rtpmap (or static payload type) is this codec: encoding name and clock
    /// rate compared case-insensitively.
    pub fn matches(self, format: &Rtpmap) -> bool {
        format.encoding.eq_ignore_ascii_case(self.encoding_name())
            && format.clock_rate == self.clock_rate()
    }

    fn rtpmap(self, pt: u8) -> Rtpmap {
        Rtpmap {
            payload_type: pt,
            encoding: self.encoding_name().to_owned(),
            clock_rate: self.clock_rate(),
            channels: (self.channels() != 1).then_some(self.channels()),
        }
    }
}

/// Whether and how strongly we want SRTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SrtpPolicy {
    /// Plain RTP only; offers of SRTP are refused.
    Off,
    /// Encrypt when the peer can; offers are "best effort" (see the module docs).
    #[default]
    Optional,
    /// Encrypt or fail the call ([`OfferAnswerError::SrtpRequired`] → 488).
    Mandatory,
}

/// How keys are exchanged when we offer SRTP (answers accept whichever the offer uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SrtpMode {
    /// Keys in the SDP, a=crypto (RFC 4568): PBXs, baresip, linphone.
    #[default]
    Sdes,
    /// DTLS-SRTP with ICE (RFC 5763/5764, `UDP/TLS/RTP/SAVP`): WebRTC gateways, rtpengine.
    Dtls,
}

/// What we want from the audio stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaConfig {
    /// Codecs in preference order (first is best). An empty list offers PCMU (an m-line needs
    /// a format) and accepts nothing.
    pub codecs: Vec<CodecPref>,
    /// Offer/accept telephone-event (RFC 4733 DTMF).
    pub telephone_event: bool,
    /// Packetization time we ask for, in ms (0 means 20).
    pub ptime_ms: u32,
    /// SRTP policy.
    pub srtp: SrtpPolicy,
    /// Key exchange used in our offers.
    pub srtp_mode: SrtpMode,
    /// Offer/accept RTP and RTCP on one port (RFC 5761).
    pub rtcp_mux: bool,
    /// The direction we want: `SendRecv` normally, `SendOnly` to put the peer on hold,
    /// `Inactive` when both are on hold (RFC 3264 §8.4).
    pub direction: Direction,
}

impl Default for MediaConfig {
    /// Opus (with FEC), PCMU, PCMA; telephone-event; 20 ms; optional SDES-SRTP; rtcp-mux;
    /// sendrecv.
    fn default() -> Self {
        Self {
            codecs: vec![
                CodecPref::Opus {
                    useinbandfec: true,
                    usedtx: false,
                },
                CodecPref::Pcmu,
                CodecPref::Pcma,
            ],
            telephone_event: true,
            ptime_ms: 20,
            srtp: SrtpPolicy::Optional,
            srtp_mode: SrtpMode::Sdes,
            rtcp_mux: true,
            direction: Direction::SendRecv,
        }
    }
}

impl MediaConfig {
    /// The same configuration with another direction (hold: `SendOnly`; resume: `SendRecv`).
    pub fn with_direction(mut self, direction: Direction) -> Self {
        self.direction = direction;
        self
    }

    fn ptime(&self) -> u32 {
        if self.ptime_ms == 0 {
            20
        } else {
            self.ptime_ms
        }
    }
}

/// Our `o=` line across one call: session id fixed, version bumped whenever the description we
/// send differs from the previous one (RFC 3264 §8: "MUST increment" on change; a session
/// refresh with identical content keeps the version, as RFC 3264 §8 and RFC 4028 expect).
#[derive(Clone)]
pub struct SessionIdentity {
    username: String,
    session_id: u64,
    version: u64,
    last_sent: Option<SessionDescription>,
}

impl std::fmt::Debug for SessionIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionIdentity")
            .field("username", &self.username)
            .field("session_id", &self.session_id)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl SessionIdentity {
    /// A new identity with a random session id (below 2^62, so that parsers using signed
    /// 64-bit integers cope) and the same number as first version, as RFC 8866 §5.2 suggests.
    pub fn new<R: rand::Rng + ?Sized>(rng: &mut R) -> Self {
        let id = rng.random_range(1..(1u64 << 62));
        Self::from_parts("-", id, id)
    }

    /// An identity with the given user name (`-` for none), id and first version.
    pub fn from_parts(username: impl Into<String>, session_id: u64, version: u64) -> Self {
        Self {
            username: username.into(),
            session_id,
            version,
            last_sent: None,
        }
    }

    /// Session id.
    pub fn session_id(&self) -> u64 {
        self.session_id
    }

    /// The version of the last description stamped (the next one if nothing was stamped yet).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Writes our `o=` line into `sdp` (keeping its address), bumping the version if the
    /// content differs from the previously stamped description.
    pub fn stamp(&mut self, sdp: &mut SessionDescription) {
        sdp.origin.username = self.username.clone();
        sdp.origin.session_id = self.session_id.to_string();
        sdp.origin.session_version = self.version;
        if let Some(last) = &self.last_sent
            && last != sdp
        {
            self.version = self.version.wrapping_add(1);
            sdp.origin.session_version = self.version;
        }
        self.last_sent = Some(sdp.clone());
    }
}

/// Our ICE parameters for the audio m-line (RFC 8839): what goes into a=ice-ufrag, a=ice-pwd
/// and a=candidate (the ICE agent lives elsewhere).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IceLocal {
    /// Our ICE credentials.
    pub credentials: IceCredentials,
    /// Our ICE candidates, as a=candidate values (may be empty with trickle ICE).
    pub candidates: Vec<String>,
}

/// Our DTLS-SRTP and ICE parameters (the certificate and ICE agent live elsewhere, e.g. str0m).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DtlsLocal {
    /// Fingerprint of our DTLS certificate.
    pub fingerprint: Fingerprint,
    /// Our ICE parameters (DTLS-SRTP always runs over ICE).
    pub ice: IceLocal,
}

/// Our key material across one call: the SDES keys we put into offers and answers, and our
/// DTLS/ICE parameters. `Debug` never shows keys.
///
/// The SDES keys follow one rule (RFC 3711 §9.1: a key must never encrypt two packets with the
/// same index, and an index restarts whenever a context is rebuilt):
///
/// * the key that protects what we send (**in use**) is offered again for its suite, so a
///   renegotiation that keeps the suite keeps our outbound SRTP context, its rollover counter
///   and its SRTCP index: the peer, which keeps its context for an unchanged key, goes on
///   decrypting;
/// * every other suite is offered with a key that has **never protected anything**; when a
///   negotiation puts such a key in use, a fresh one from the caller's random number generator
///   takes its place;
/// * a key that stopped being in use (the suite changed, or SRTP was dropped) is forgotten: it
///   can never be offered or used again, so a rebuilt outbound context never repeats a
///   keystream.
///
/// [`answer`] and [`process_answer`] apply the rule themselves (they take `&mut OfferKeys` and
/// the random number generator), and [`process_answer`] refuses an answer that would send with
/// a forgotten key ([`OfferAnswerError::RetiredKey`]). The media session enforces the same
/// rule on its side (`MediaError::SrtpKeyReuse`).
#[derive(Clone, PartialEq, Eq)]
pub struct OfferKeys {
    /// The suite and key protecting what we send, once a negotiation concluded with SDES.
    in_use: Option<(SrtpSuite, SdesKey)>,
    /// A key that never protected anything, offered with `AES_CM_128_HMAC_SHA1_80` (tag 1)
    /// unless that suite is in use.
    unused_80: SdesKey,
    /// The same for `AES_CM_128_HMAC_SHA1_32` (tag 2).
    unused_32: SdesKey,
    /// DTLS/ICE parameters; without them DTLS is neither offered (SDES is, instead) nor
    /// accepted.
    dtls: Option<DtlsLocal>,
    /// ICE parameters for plain RTP and SDES-SRTP m-lines; without them those carry no ICE
    /// attributes.
    ice: Option<IceLocal>,
}

impl std::fmt::Debug for OfferKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OfferKeys")
            .field("in_use", &self.in_use.as_ref().map(|(suite, _)| suite))
            .field("keys", &"<redacted>")
            .field("dtls", &self.dtls)
            .field("ice", &self.ice)
            .finish()
    }
}

impl OfferKeys {
    /// Fresh SDES keys from the caller's random number generator, none in use yet, no DTLS.
    pub fn generate<R: rand::Rng + ?Sized>(rng: &mut R) -> Self {
        Self {
            in_use: None,
            unused_80: new_sdes_key(rng),
            unused_32: new_sdes_key(rng),
            dtls: None,
            ice: None,
        }
    }

    /// The same keys with ICE parameters for plain RTP and SDES-SRTP m-lines (offers and
    /// answers then carry a=ice-ufrag, a=ice-pwd and a=candidate).
    pub fn with_ice(mut self, ice: IceLocal) -> Self {
        self.ice = Some(ice);
        self
    }

    /// Replaces our ICE parameters (an ICE restart: new credentials, new candidates): those of
    /// the DTLS parameters when there are some, else those of plain RTP and SDES-SRTP m-lines.
    pub fn set_ice(&mut self, ice: IceLocal) {
        match self.dtls.as_mut() {
            Some(dtls) => dtls.ice = ice,
            None => self.ice = Some(ice),
        }
    }

    /// Our ICE parameters: those of the DTLS parameters when there are some, else those of
    /// plain RTP and SDES-SRTP m-lines, if any.
    pub fn ice(&self) -> Option<&IceLocal> {
        match &self.dtls {
            Some(dtls) => Some(&dtls.ice),
            None => self.ice.as_ref(),
        }
    }

    /// The same keys with DTLS parameters.
    pub fn with_dtls(mut self, dtls: DtlsLocal) -> Self {
        self.dtls = Some(dtls);
        self
    }

    /// Our DTLS/ICE parameters, if DTLS-SRTP may be offered and accepted.
    pub fn dtls(&self) -> Option<&DtlsLocal> {
        self.dtls.as_ref()
    }

    /// The key an offer or answer made now carries for `suite`: the key in use when `suite` is
    /// the suite in use, else a key that has never protected anything.
    pub fn key_for(&self, suite: SrtpSuite) -> &SdesKey {
        match &self.in_use {
            Some((in_use, key)) if *in_use == suite => key,
            _ => self.unused(suite),
        }
    }

    /// The suite and key protecting what we send, once a negotiation concluded with SDES.
    pub fn in_use(&self) -> Option<(SrtpSuite, &SdesKey)> {
        self.in_use.as_ref().map(|(suite, key)| (*suite, key))
    }

    fn unused(&self, suite: SrtpSuite) -> &SdesKey {
        match suite {
            SrtpSuite::AesCm128HmacSha1_80 => &self.unused_80,
            SrtpSuite::AesCm128HmacSha1_32 => &self.unused_32,
        }
    }

    fn unused_mut(&mut self, suite: SrtpSuite) -> &mut SdesKey {
        match suite {
            SrtpSuite::AesCm128HmacSha1_80 => &mut self.unused_80,
            SrtpSuite::AesCm128HmacSha1_32 => &mut self.unused_32,
        }
    }

    /// Records what a concluded negotiation sends with: `chosen` is our SDES suite and key, or
    /// `None` for plain RTP or DTLS-SRTP. Errors (changing nothing) when `chosen` is neither
    /// the key in use nor an unused one: a key that was retired, or not ours.
    fn conclude<R: rand::Rng + ?Sized>(
        &mut self,
        chosen: Option<(SrtpSuite, &SdesKey)>,
        rng: &mut R,
    ) -> Result<(), OfferAnswerError> {
        let Some((suite, key)) = chosen else {
            // Whatever was in use is retired for good.
            self.in_use = None;
            return Ok(());
        };
        if self.in_use() == Some((suite, key)) {
            return Ok(());
        }
        if self.unused(suite) != key {
            return Err(OfferAnswerError::RetiredKey);
        }
        let fresh = new_sdes_key(rng);
        let first_use = std::mem::replace(self.unused_mut(suite), fresh);
        self.in_use = Some((suite, first_use));
        Ok(())
    }
}

/// A negotiated RTP payload format.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PayloadFormat {
    /// Payload type number (the offerer's numbering, used in both directions).
    pub pt: u8,
    /// Encoding name (`opus`, `PCMU`, `PCMA`, `telephone-event`).
    pub name: String,
    /// RTP clock rate.
    pub clock_rate: u32,
    /// Channels.
    pub channels: u8,
    /// The *remote* side's fmtp parameters for this payload type (what it wants to receive,
    /// e.g. Opus `useinbandfec=1`, telephone-event `0-15`).
    pub fmtp: Option<String>,
}

/// SDES-SRTP keys for both directions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdesCryptoPair {
    /// The a=crypto tag that was accepted.
    pub tag: u32,
    /// The suite, the same both ways.
    pub suite: SrtpSuite,
    /// Our key: protects what we send.
    pub local: SdesKey,
    /// The peer's key: unprotects what we receive.
    pub remote: SdesKey,
}

/// DTLS-SRTP parameters for the DTLS handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DtlsParams {
    /// The certificate fingerprint the peer must present (sha-256 preferred when several).
    pub remote_fingerprint: Fingerprint,
    /// The peer's a=setup.
    pub remote_setup: Setup,
    /// Our role: `Active` = DTLS client, `Passive` = DTLS server.
    pub local_setup: Setup,
}

/// The outcome of an offer/answer exchange: everything the RTP session needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// Index of the audio m-line in both descriptions.
    pub media_index: usize,
    /// Where to send RTP: connection address (media-level c=, else session-level) and m= port.
    pub remote_rtp: SocketAddr,
    /// Where to send RTCP: a=rtcp (RFC 3605), else RTP port + 1, or the RTP address with mux.
    pub remote_rtcp: SocketAddr,
    /// RTP and RTCP share one port (both sides asked for a=rtcp-mux).
    pub rtcp_mux: bool,
    /// The audio codec.
    pub codec: PayloadFormat,
    /// The telephone-event format, if both sides have it.
    pub telephone_event: Option<PayloadFormat>,
    /// Packetization time to send with, in ms (the peer's a=ptime, capped by its a=maxptime,
    /// else ours).
    pub ptime_ms: u32,
    /// What *we* may do: send and/or receive.
    pub direction: Direction,
    /// SDES-SRTP keys, when SDES was negotiated.
    pub srtp: Option<SdesCryptoPair>,
    /// DTLS-SRTP parameters, when DTLS was negotiated.
    pub dtls: Option<DtlsParams>,
    /// The peer's ICE credentials, when its description has them.
    pub ice: Option<IceCredentials>,
    /// The peer put us on hold: its direction is sendonly/inactive (while ours offered
    /// sending), or its connection address is 0.0.0.0 / :: without ICE (RFC 2543 hold).
    pub hold: bool,
}

/// Why an offer could not be answered, or an answer not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OfferAnswerError {
    /// A relevant attribute is malformed.
    #[error("malformed SDP: {0}")]
    Sdp(#[from] SdpError),
    /// No active audio m-line.
    #[error("no audio stream")]
    NoAudio,
    /// None of our codecs is in the offer (or answer).
    #[error("no common codec")]
    NoCommonCodec,
    /// Policy requires SRTP and the peer offered (or answered) none we can use.
    #[error("SRTP required but not offered")]
    SrtpRequired,
    /// The peer requires SRTP (RTP/SAVP) but with no suite/key we can use.
    #[error("no common SRTP crypto suite")]
    NoCommonCryptoSuite,
    /// A transport protocol we do not do (or that our SRTP policy forbids).
    #[error("unsupported transport {0}")]
    UnsupportedTransport(String),
    /// No c= line applies to the audio stream.
    #[error("no connection address")]
    MissingConnection,
    /// The connection address is a host name; resolve before negotiating.
    #[error("connection address is not an IP address")]
    UnresolvedAddress,
    /// The RTCP port would be past 65535.
    #[error("invalid port")]
    InvalidPort,
    /// The answer has a different number of m-lines than the offer (RFC 3264 §6).
    #[error("answer has {answered} m-lines, offer had {offered}")]
    MediaCountMismatch {
        /// m-lines in the offer.
        offered: usize,
        /// m-lines in the answer.
        answered: usize,
    },
    /// The answer's m-line has another media type than the offer's.
    #[error("answer changed the media type")]
    MediaKindMismatch,
    /// The answer rejected the audio stream (port 0).
    #[error("audio stream rejected")]
    MediaRejected,
    /// The answer's transport protocol differs from the offer's.
    #[error("answer changed the transport protocol")]
    TransportMismatch,
    /// The answer's codec is not one we offered.
    #[error("answer uses payload type {0} that was not offered")]
    UnexpectedPayloadType(u8),
    /// The answer maps an offered payload type to another codec.
    #[error("answer remaps payload type {0}")]
    PayloadTypeMismatch(u8),
    /// The answer's crypto tag is not one we offered.
    #[error("answer uses crypto tag {0} that was not offered")]
    UnexpectedCryptoTag(u32),
    /// The answer's crypto suite differs from the one we offered under that tag.
    #[error("answer changed the suite of crypto tag {0}")]
    CryptoSuiteMismatch(u32),
    /// The answer has more than one a=crypto line.
    #[error("answer has {0} crypto lines, expected one")]
    CryptoCount(usize),
    /// DTLS without a=fingerprint.
    #[error("DTLS without fingerprint")]
    MissingFingerprint,
    /// An a=setup role that is not allowed here (holdconn, or actpass in an answer).
    #[error("invalid a=setup {0:?}")]
    InvalidSetup(Setup),
    /// The answer picks one of our SDES keys that is no longer usable: it was in use and then
    /// retired (a suite change or plain RTP since the offer was made), so sending with it
    /// again would repeat its keystream. Make a new offer.
    #[error("the answer picks an SDES key of ours that was retired")]
    RetiredKey,
    /// The answer's direction is not allowed for the offered one (RFC 3264 §6.1).
    #[error("answer direction {answered:?} does not fit offer direction {offered:?}")]
    DirectionMismatch {
        /// Direction we offered.
        offered: Direction,
        /// Direction in the answer.
        answered: Direction,
    },
}

impl OfferAnswerError {
    /// The SIP status to refuse an offer with: 400 for malformed SDP, 488 Not Acceptable Here
    /// for everything else.
    pub fn sip_status(&self) -> u16 {
        match self {
            OfferAnswerError::Sdp(_) => 400,
            _ => 488,
        }
    }
}

/// RTP transport families we speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    /// RTP/AVP, RTP/AVPF.
    Plain,
    /// RTP/SAVP, RTP/SAVPF.
    Sdes,
    /// UDP/TLS/RTP/SAVP, UDP/TLS/RTP/SAVPF.
    Dtls,
}

fn classify(proto: &str) -> Option<Transport> {
    match proto.to_ascii_uppercase().as_str() {
        "RTP/AVP" | "RTP/AVPF" => Some(Transport::Plain),
        "RTP/SAVP" | "RTP/SAVPF" => Some(Transport::Sdes),
        "UDP/TLS/RTP/SAVP" | "UDP/TLS/RTP/SAVPF" => Some(Transport::Dtls),
        _ => None,
    }
}

fn is_telephone_event(r: &Rtpmap) -> bool {
    r.encoding.eq_ignore_ascii_case("telephone-event")
}

fn is_comfort_noise(r: &Rtpmap) -> bool {
    r.encoding.eq_ignore_ascii_case("CN")
}

/// Prefers sha-256 (what str0m and browsers use), else the first.
fn pick_fingerprint(fps: Vec<Fingerprint>) -> Option<Fingerprint> {
    let i = fps.iter().position(|f| f.hash == "sha-256").unwrap_or(0);
    fps.into_iter().nth(i)
}

/// The codecs we put in an offer, with their payload types, deduplicated.
fn offer_codecs(config: &MediaConfig) -> Vec<(u8, CodecPref)> {
    let mut out: Vec<(u8, CodecPref)> = Vec::new();
    for c in &config.codecs {
        let pt = c.offer_payload_type();
        if !out.iter().any(|(p, _)| *p == pt) {
            out.push((pt, *c));
        }
    }
    if out.is_empty() {
        out.push((PT_PCMU, CodecPref::Pcmu));
    }
    out
}

/// What goes into our audio m-line.
struct LocalAudio<'a> {
    port: u16,
    proto: String,
    codecs: Vec<(u8, CodecPref)>,
    /// (payload type, clock rate)
    telephone_events: Vec<(u8, u32)>,
    ptime_ms: u32,
    rtcp_mux: bool,
    cryptos: Vec<Crypto>,
    /// For DTLS-SRTP: our fingerprint and a=setup.
    dtls: Option<(&'a Fingerprint, Setup)>,
    ice: Option<&'a IceLocal>,
    mid: Option<String>,
    direction: Direction,
}

fn build_audio(l: LocalAudio<'_>) -> MediaDescription {
    let mut formats: Vec<String> = l.codecs.iter().map(|(pt, _)| pt.to_string()).collect();
    formats.extend(l.telephone_events.iter().map(|(pt, _)| pt.to_string()));
    let mut m = MediaDescription::new(MediaKind::Audio, l.port, l.proto, formats);
    let a = &mut m.attributes;
    if let Some(mid) = l.mid {
        a.push(Attribute::new("mid", mid));
    }
    for (pt, codec) in &l.codecs {
        a.push(codec.rtpmap(*pt).to_attribute());
        if let Some(params) = codec.local_fmtp() {
            a.push(
                Fmtp {
                    format: pt.to_string(),
                    params,
                }
                .to_attribute(),
            );
        }
    }
    for (pt, rate) in &l.telephone_events {
        let r = Rtpmap {
            payload_type: *pt,
            encoding: "telephone-event".to_owned(),
            clock_rate: *rate,
            channels: None,
        };
        a.push(r.to_attribute());
        a.push(
            Fmtp {
                format: pt.to_string(),
                params: TELEPHONE_EVENTS.to_owned(),
            }
            .to_attribute(),
        );
    }
    a.push(Attribute::new("ptime", l.ptime_ms.to_string()));
    if l.rtcp_mux {
        a.push(Attribute::flag("rtcp-mux"));
    }
    for c in &l.cryptos {
        a.push(c.to_attribute());
    }
    if let Some(ice) = l.ice {
        a.push(Attribute::new("ice-ufrag", ice.credentials.ufrag.clone()));
        a.push(Attribute::new("ice-pwd", ice.credentials.pwd.clone()));
    }
    if let Some((fingerprint, setup)) = l.dtls {
        a.push(fingerprint.to_attribute());
        a.push(setup.to_attribute());
    }
    if let Some(ice) = l.ice {
        for c in &ice.candidates {
            a.push(Attribute::new("candidate", c.clone()));
        }
    }
    a.push(l.direction.to_attribute());
    m
}

fn base_description(local: SocketAddr, timings: Vec<Timing>) -> SessionDescription {
    let ip = local.ip();
    let mut sdp = SessionDescription::new(Origin {
        username: "-".to_owned(),
        session_id: "0".to_owned(),
        session_version: 0,
        addr_type: super::AddrType::of(ip),
        address: ip.to_string(),
    });
    sdp.connection = Some(Connection::from_ip(ip));
    if !timings.is_empty() {
        sdp.timings = timings;
    }
    sdp
}

/// Builds our offer (initial or re-offer) for one audio stream to be received at `local`
/// (the RTP address in c= and m=; RTCP is port + 1 unless rtcp-mux is agreed).
///
/// The m-line lists our codecs in preference order with the payload types [`PT_OPUS`],
/// [`PT_PCMU`], [`PT_PCMA`], then telephone-event [`PT_TELEPHONE_EVENT`] (8 kHz) and, when
/// Opus is offered, [`PT_TELEPHONE_EVENT_48K`] (48 kHz). Security follows
/// `config.srtp`/`config.srtp_mode` (see the table in the module docs); with `SrtpMode::Dtls`
/// but no [`OfferKeys::dtls`], SDES is offered instead. Each SDES suite carries
/// [`OfferKeys::key_for`] it: the key in use for the suite in use, never-used keys for the
/// others. The `o=` version is bumped by `session` when
/// the content changed since the last description it stamped.
pub fn create_offer(
    config: &MediaConfig,
    local: SocketAddr,
    session: &mut SessionIdentity,
    keys: &OfferKeys,
) -> SessionDescription {
    let codecs = offer_codecs(config);
    let mut telephone_events = Vec::new();
    if config.telephone_event {
        telephone_events.push((PT_TELEPHONE_EVENT, 8000));
        if codecs
            .iter()
            .any(|(_, c)| matches!(c, CodecPref::Opus { .. }))
        {
            telephone_events.push((PT_TELEPHONE_EVENT_48K, 48000));
        }
    }
    let dtls = match (config.srtp, config.srtp_mode, &keys.dtls) {
        (SrtpPolicy::Off, _, _) => None,
        (_, SrtpMode::Dtls, Some(d)) => Some(d),
        _ => None,
    };
    let sdes_cryptos = || {
        vec![
            Crypto::new(
                1,
                SrtpSuite::AesCm128HmacSha1_80,
                keys.key_for(SrtpSuite::AesCm128HmacSha1_80).clone(),
            ),
            Crypto::new(
                2,
                SrtpSuite::AesCm128HmacSha1_32,
                keys.key_for(SrtpSuite::AesCm128HmacSha1_32).clone(),
            ),
        ]
    };
    let (proto, cryptos) = match (config.srtp, dtls) {
        (SrtpPolicy::Off, _) => ("RTP/AVP", Vec::new()),
        (_, Some(_)) => ("UDP/TLS/RTP/SAVP", Vec::new()),
        (SrtpPolicy::Optional, None) => ("RTP/AVP", sdes_cryptos()),
        (SrtpPolicy::Mandatory, None) => ("RTP/SAVP", sdes_cryptos()),
    };
    let media = build_audio(LocalAudio {
        port: local.port(),
        proto: proto.to_owned(),
        codecs,
        telephone_events,
        ptime_ms: config.ptime(),
        rtcp_mux: config.rtcp_mux,
        cryptos,
        dtls: dtls.map(|d| (&d.fingerprint, Setup::ActPass)),
        ice: dtls.map(|d| &d.ice).or(keys.ice.as_ref()),
        mid: None,
        direction: config.direction,
    });
    let mut sdp = base_description(local, Vec::new());
    sdp.media.push(media);
    session.stamp(&mut sdp);
    sdp
}

/// Where the peer receives: (RTP, RTCP, unspecified-address-without-ICE).
fn remote_transport(
    sdp: &SessionDescription,
    m: &MediaDescription,
    mux: bool,
) -> Result<(SocketAddr, SocketAddr, bool), OfferAnswerError> {
    let conn = sdp
        .connection_for(m)
        .ok_or(OfferAnswerError::MissingConnection)?;
    let ip = conn.ip().ok_or(OfferAnswerError::UnresolvedAddress)?;
    let rtp = SocketAddr::new(ip, m.port);
    let rtcp = if mux {
        rtp
    } else if let Some(r) = m.rtcp()? {
        let rip = match r.address {
            Some((_, a)) => a
                .parse::<IpAddr>()
                .map_err(|_| OfferAnswerError::UnresolvedAddress)?,
            None => ip,
        };
        SocketAddr::new(rip, r.port)
    } else {
        SocketAddr::new(
            ip,
            m.port.checked_add(1).ok_or(OfferAnswerError::InvalidPort)?,
        )
    };
    // With ICE, 0.0.0.0 / port 9 only means "see the candidates" (RFC 8839 §4.2.1).
    let zero_hold = ip.is_unspecified() && sdp.ice_credentials_for(m).is_none();
    Ok((rtp, rtcp, zero_hold))
}

fn payload_format(
    m: &MediaDescription,
    r: &Rtpmap,
    canonical: Option<CodecPref>,
) -> Result<PayloadFormat, SdpError> {
    let (name, channels) = match canonical {
        Some(c) => (c.encoding_name().to_owned(), c.channels()),
        None => (r.encoding.clone(), r.channel_count()),
    };
    Ok(PayloadFormat {
        pt: r.payload_type,
        name,
        clock_rate: r.clock_rate,
        channels,
        fmtp: m.fmtp(r.payload_type)?.map(|f| f.params),
    })
}

/// Negotiated ptime: the peer's a=ptime (else ours), capped by its a=maxptime.
fn negotiated_ptime(m: &MediaDescription, config: &MediaConfig) -> Result<u32, SdpError> {
    let ptime = m.ptime()?.unwrap_or(config.ptime());
    Ok(match m.maxptime()? {
        Some(max) => ptime.min(max),
        None => ptime,
    })
}

enum Security<'a> {
    Plain,
    Sdes(SdesCryptoPair, SrtpSuite),
    Dtls(DtlsParams, &'a DtlsLocal),
}

/// The first a=crypto line of `m` (offerer's preference order) that we can use.
fn usable_crypto(m: &MediaDescription) -> Result<Option<(u32, SrtpSuite, SdesKey)>, SdpError> {
    Ok(m.cryptos()?.iter().find_map(|c| {
        c.usable_key()
            .map(|(suite, key)| (c.tag, suite, key.clone()))
    }))
}

fn answer_security<'a>(
    offer: &SessionDescription,
    m: &MediaDescription,
    transport: Transport,
    config: &MediaConfig,
    keys: &'a OfferKeys,
) -> Result<Security<'a>, OfferAnswerError> {
    let sdes = |(tag, suite, remote): (u32, SrtpSuite, SdesKey)| {
        Security::Sdes(
            SdesCryptoPair {
                tag,
                suite,
                local: keys.key_for(suite).clone(),
                remote,
            },
            suite,
        )
    };
    match transport {
        Transport::Dtls => {
            let local = match (config.srtp, &keys.dtls) {
                (SrtpPolicy::Off, _) | (_, None) => {
                    return Err(OfferAnswerError::UnsupportedTransport(m.proto.clone()));
                }
                (_, Some(d)) => d,
            };
            let remote_fingerprint = pick_fingerprint(offer.fingerprints_for(m)?)
                .ok_or(OfferAnswerError::MissingFingerprint)?;
            // RFC 4145 §4.1: no a=setup in an offer means active.
            let remote_setup = offer.setup_for(m)?.unwrap_or(Setup::Active);
            let local_setup = match remote_setup {
                Setup::Active => Setup::Passive,
                // RFC 5763 §5: the answerer should be the DTLS client.
                Setup::Passive | Setup::ActPass => Setup::Active,
                Setup::HoldConn => return Err(OfferAnswerError::InvalidSetup(remote_setup)),
            };
            Ok(Security::Dtls(
                DtlsParams {
                    remote_fingerprint,
                    remote_setup,
                    local_setup,
                },
                local,
            ))
        }
        Transport::Sdes => {
            if config.srtp == SrtpPolicy::Off {
                return Err(OfferAnswerError::UnsupportedTransport(m.proto.clone()));
            }
            match usable_crypto(m)? {
                Some(c) => Ok(sdes(c)),
                None if config.srtp == SrtpPolicy::Mandatory => Err(OfferAnswerError::SrtpRequired),
                None => Err(OfferAnswerError::NoCommonCryptoSuite),
            }
        }
        Transport::Plain => match config.srtp {
            SrtpPolicy::Off => Ok(Security::Plain),
            SrtpPolicy::Optional => Ok(usable_crypto(m)?.map(sdes).unwrap_or(Security::Plain)),
            SrtpPolicy::Mandatory => usable_crypto(m)?
                .map(sdes)
                .ok_or(OfferAnswerError::SrtpRequired),
        },
    }
}

/// Answers a peer's offer (initial or re-offer).
///
/// The first audio m-line with a non-zero port is negotiated; every other m-line is refused
/// with port 0 (RFC 3264 §6). The codec is the first of *our* preferences that the offer has
/// (rtpmap name and clock rate compared case-insensitively; static payload types 0 and 8 count
/// without an rtpmap), under the *offerer's* payload type number; telephone-event is added when
/// offered (the one with the codec's clock rate preferred). The answer's direction is the
/// offer's reversed and limited to `config.direction` (RFC 3264 §6.1). SRTP: see the module
/// docs; one a=crypto line is answered, with the offer's tag and our key for that suite
/// ([`OfferKeys::key_for`]), which this call records as in use (see [`OfferKeys`] for why; `rng`
/// replaces a key that goes into use for the first time). rtcp-mux is answered only when
/// offered and enabled.
///
/// On error the caller refuses the offer, with [`OfferAnswerError::sip_status`] (488 or 400),
/// and `keys` is unchanged. To only check whether an offer is acceptable, pass a clone of the
/// keys.
pub fn answer<R: rand::Rng + ?Sized>(
    offer: &SessionDescription,
    config: &MediaConfig,
    local: SocketAddr,
    session: &mut SessionIdentity,
    keys: &mut OfferKeys,
    rng: &mut R,
) -> Result<(SessionDescription, Negotiated), OfferAnswerError> {
    let index = offer
        .media
        .iter()
        .position(|m| m.kind == MediaKind::Audio && m.port != 0)
        .ok_or(OfferAnswerError::NoAudio)?;
    let m = &offer.media[index];
    let transport = classify(&m.proto)
        .ok_or_else(|| OfferAnswerError::UnsupportedTransport(m.proto.clone()))?;

    // Codec: our preference order, their payload type.
    let offered: Vec<Rtpmap> = m
        .payload_types()
        .into_iter()
        .map(|pt| m.payload_format(pt))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .flatten()
        .collect();
    let (codec_pref, codec_map) = config
        .codecs
        .iter()
        .find_map(|c| {
            offered
                .iter()
                .find(|r| c.matches(r))
                .map(|r| (*c, r.clone()))
        })
        .ok_or(OfferAnswerError::NoCommonCodec)?;
    let codec = payload_format(m, &codec_map, Some(codec_pref))?;

    let telephone_event = if config.telephone_event {
        let events: Vec<&Rtpmap> = offered.iter().filter(|r| is_telephone_event(r)).collect();
        let chosen = events
            .iter()
            .find(|r| r.clock_rate == codec.clock_rate)
            .or_else(|| events.first())
            .copied();
        match chosen {
            Some(r) => Some(payload_format(m, r, None)?),
            None => None,
        }
    } else {
        None
    };

    let security = answer_security(offer, m, transport, config, keys)?;
    let rtcp_mux = config.rtcp_mux && m.rtcp_mux();
    let (remote_rtp, remote_rtcp, zero_hold) = remote_transport(offer, m, rtcp_mux)?;
    let ptime_ms = negotiated_ptime(m, config)?;

    let offered_direction = offer.direction_for(m);
    let answer_direction = offered_direction.reversed().intersect(config.direction);
    let direction = if zero_hold {
        answer_direction.intersect(Direction::RecvOnly)
    } else {
        answer_direction
    };

    let (srtp, dtls, cryptos, dtls_local) = match security {
        Security::Plain => (None, None, Vec::new(), None),
        Security::Sdes(pair, suite) => {
            let line = Crypto::new(pair.tag, suite, pair.local.clone());
            (Some(pair), None, vec![line], None)
        }
        Security::Dtls(params, local) => {
            let setup = params.local_setup;
            (None, Some(params), Vec::new(), Some((local, setup)))
        }
    };
    let ice = match dtls_local {
        Some((local, _)) => Some(&local.ice),
        // An offer without ICE gets an answer without it (RFC 8839 §4.2.3).
        None => keys
            .ice
            .as_ref()
            .filter(|_| offer.ice_credentials_for(m).is_some()),
    };

    let codecs = vec![(codec.pt, codec_pref)];
    let ours = build_audio(LocalAudio {
        port: local.port(),
        proto: m.proto.clone(),
        codecs,
        telephone_events: telephone_event
            .iter()
            .map(|t| (t.pt, t.clock_rate))
            .collect(),
        ptime_ms,
        rtcp_mux,
        cryptos,
        dtls: dtls_local.map(|(local, setup)| (&local.fingerprint, setup)),
        ice,
        mid: m.mid().map(str::to_owned),
        direction: answer_direction,
    });

    let mut sdp = base_description(local, offer.timings.clone());
    for (i, om) in offer.media.iter().enumerate() {
        if i == index {
            sdp.media.push(ours.clone());
        } else {
            let mut rejected =
                MediaDescription::new(om.kind.clone(), 0, om.proto.clone(), om.formats.clone());
            if let Some(mid) = om.mid() {
                rejected.attributes.push(Attribute::new("mid", mid));
            }
            sdp.media.push(rejected);
        }
    }
    session.stamp(&mut sdp);

    let negotiated = Negotiated {
        media_index: index,
        remote_rtp,
        remote_rtcp,
        rtcp_mux,
        codec,
        telephone_event,
        ptime_ms,
        direction,
        srtp,
        dtls,
        ice: offer.ice_credentials_for(m),
        hold: zero_hold || !offered_direction.can_recv(),
    };
    keys.conclude(negotiated.srtp.as_ref().map(|p| (p.suite, &p.local)), rng)?;
    Ok((sdp, negotiated))
}

/// Checks the peer's answer against our offer and returns what was agreed.
///
/// Errors when the answer does not fit the offer: other m-line count or media type, rejected
/// audio, another transport, a codec payload type we did not offer (or remapped), a crypto tag
/// or suite we did not offer, more than one crypto line, no crypto when we required SRTP, DTLS
/// without fingerprint or with setup other than active/passive, or a direction the offer does
/// not allow (RFC 3264 §6.1), or one of our SDES keys that was retired since the offer was
/// made ([`OfferAnswerError::RetiredKey`]). The caller then ends the dialog (ACK + BYE, or
/// CANCEL).
///
/// `keys` must be the keys `offer` was made with: the SDES key the answer picks is recorded as
/// in use (see [`OfferKeys`]; `rng` replaces a key that goes into use for the first time). On
/// error `keys` is unchanged.
pub fn process_answer<R: rand::Rng + ?Sized>(
    offer: &SessionDescription,
    answer: &SessionDescription,
    config: &MediaConfig,
    keys: &mut OfferKeys,
    rng: &mut R,
) -> Result<Negotiated, OfferAnswerError> {
    if offer.media.len() != answer.media.len() {
        return Err(OfferAnswerError::MediaCountMismatch {
            offered: offer.media.len(),
            answered: answer.media.len(),
        });
    }
    let index = offer
        .media
        .iter()
        .position(|m| m.kind == MediaKind::Audio && m.port != 0)
        .ok_or(OfferAnswerError::NoAudio)?;
    let om = &offer.media[index];
    let am = &answer.media[index];
    if am.kind != om.kind {
        return Err(OfferAnswerError::MediaKindMismatch);
    }
    if am.port == 0 {
        return Err(OfferAnswerError::MediaRejected);
    }
    let offered_transport = classify(&om.proto)
        .ok_or_else(|| OfferAnswerError::UnsupportedTransport(om.proto.clone()))?;
    let answered_transport = classify(&am.proto).ok_or(OfferAnswerError::TransportMismatch)?;
    let offered_cryptos = om.cryptos()?;
    let answered_cryptos = am.cryptos()?;
    // Same proto, or RTP/SAVP answering our best-effort RTP/AVP + a=crypto (some SBCs do).
    let best_effort_upgrade = offered_transport == Transport::Plain
        && answered_transport == Transport::Sdes
        && !offered_cryptos.is_empty();
    if !om.proto.eq_ignore_ascii_case(&am.proto) && !best_effort_upgrade {
        return Err(OfferAnswerError::TransportMismatch);
    }

    // Codec: the first payload type of the answer that we offered as a codec.
    let offered_pts = om.payload_types();
    let answered_pts = am.payload_types();
    let mut codec = None;
    let mut telephone_event = None;
    for pt in &answered_pts {
        if !offered_pts.contains(pt) {
            continue;
        }
        let Some(ours) = om.payload_format(*pt)? else {
            continue;
        };
        if let Some(theirs) = am.rtpmap(*pt)?
            && (!theirs.encoding.eq_ignore_ascii_case(&ours.encoding)
                || theirs.clock_rate != ours.clock_rate)
        {
            return Err(OfferAnswerError::PayloadTypeMismatch(*pt));
        }
        if is_telephone_event(&ours) {
            if telephone_event.is_none() {
                telephone_event = Some(payload_format(am, &ours, None)?);
            }
        } else if !is_comfort_noise(&ours) && codec.is_none() {
            let canonical = config.codecs.iter().copied().find(|c| c.matches(&ours));
            codec = Some(payload_format(am, &ours, canonical)?);
        }
    }
    let codec = match codec {
        Some(c) => c,
        None => {
            return Err(
                match answered_pts.iter().find(|pt| !offered_pts.contains(pt)) {
                    Some(pt) => OfferAnswerError::UnexpectedPayloadType(*pt),
                    None => OfferAnswerError::NoCommonCodec,
                },
            );
        }
    };

    // Security.
    let mut srtp = None;
    let mut dtls = None;
    if offered_transport == Transport::Dtls {
        let remote_fingerprint = pick_fingerprint(answer.fingerprints_for(am)?)
            .ok_or(OfferAnswerError::MissingFingerprint)?;
        // RFC 4145 §4.1: no a=setup in an answer means passive.
        let remote_setup = answer.setup_for(am)?.unwrap_or(Setup::Passive);
        let local_setup = match remote_setup {
            Setup::Active => Setup::Passive,
            Setup::Passive => Setup::Active,
            other => return Err(OfferAnswerError::InvalidSetup(other)),
        };
        dtls = Some(DtlsParams {
            remote_fingerprint,
            remote_setup,
            local_setup,
        });
    } else {
        if answered_cryptos.len() > 1 {
            return Err(OfferAnswerError::CryptoCount(answered_cryptos.len()));
        }
        if let Some(theirs) = answered_cryptos.first() {
            let ours = offered_cryptos
                .iter()
                .find(|c| c.tag == theirs.tag)
                .ok_or(OfferAnswerError::UnexpectedCryptoTag(theirs.tag))?;
            if ours.srtp_suite().is_none() || ours.srtp_suite() != theirs.srtp_suite() {
                return Err(OfferAnswerError::CryptoSuiteMismatch(theirs.tag));
            }
            let (suite, remote) = theirs
                .usable_key()
                .ok_or(OfferAnswerError::NoCommonCryptoSuite)?;
            let (_, local) = ours
                .usable_key()
                .ok_or(OfferAnswerError::NoCommonCryptoSuite)?;
            srtp = Some(SdesCryptoPair {
                tag: theirs.tag,
                suite,
                local: local.clone(),
                remote: remote.clone(),
            });
        }
    }
    let encrypted = srtp.is_some() || dtls.is_some();
    if !encrypted && (offered_transport != Transport::Plain || config.srtp == SrtpPolicy::Mandatory)
    {
        return Err(OfferAnswerError::SrtpRequired);
    }

    // Direction (RFC 3264 §6.1): they may only send what we receive and vice versa.
    let offered = offer.direction_for(om);
    let answered = answer.direction_for(am);
    if (answered.can_send() && !offered.can_recv()) || (answered.can_recv() && !offered.can_send())
    {
        return Err(OfferAnswerError::DirectionMismatch { offered, answered });
    }
    let rtcp_mux = om.rtcp_mux() && am.rtcp_mux();
    let (remote_rtp, remote_rtcp, zero_hold) = remote_transport(answer, am, rtcp_mux)?;
    let mut direction = answered.reversed();
    if zero_hold {
        direction = direction.intersect(Direction::RecvOnly);
    }

    let negotiated = Negotiated {
        media_index: index,
        remote_rtp,
        remote_rtcp,
        rtcp_mux,
        codec,
        telephone_event,
        ptime_ms: negotiated_ptime(am, config)?,
        direction,
        srtp,
        dtls,
        ice: answer.ice_credentials_for(am),
        hold: zero_hold || (!answered.can_recv() && offered.can_send()),
    };
    keys.conclude(negotiated.srtp.as_ref().map(|p| (p.suite, &p.local)), rng)?;
    Ok(negotiated)
}
