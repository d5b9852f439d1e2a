//! One call's audio stream, sans-IO: capture frames in, datagrams out; datagrams in, playout
//! frames out. One type, [`MediaSession`], for every negotiated transport:
//!
//! * plain RTP or SDES-SRTP (`RTP/AVP`, `RTP/SAVP`): our own RTP/SRTP/RTCP with symmetric RTP
//!   latching (`session/rtp_transport.rs`);
//! * ICE + DTLS-SRTP (`UDP/TLS/RTP/SAVP`): str0m's ICE agent, DTLS handshake and SRTP through
//!   its direct API ([`crate::dtls_session`]).
//!
//! Both carry the same audio pipeline (`pipeline.rs`: codec, resampling, jitter buffer
//! with concealment and FEC, RFC 4733 DTMF both ways, WebRTC-named statistics and MOS); only
//! the transport differs, and the caller never sees which one runs.
//!
//! ```text
//!  new(now, negotiated, config)                   (DTLS-SRTP: ICE pair nominated, DTLS done)
//!  ─────────────▶ Connecting ─────────────────────────────────▶ Connected ──close()/peer──▶ Closed
//!                 │ (plain RTP starts Connected: nothing to set up)  │ media both ways
//!                 ├── wrong fingerprint, DTLS alert ──────────▶ Failed ◀── fatal DTLS error
//!                 └── CONNECT_TIMEOUT without DTLS ───────────▶ Failed
//! ```
//!
//! Inputs, by source:
//! * the audio device, every 20 ms: [`MediaSession::handle_capture`] then
//!   [`MediaSession::playout`] (device-side audio is 48 kHz mono, 960 samples a frame; the
//!   session resamples to and from the codec's clock);
//! * the call's media socket: [`MediaSession::handle_datagram`] for every datagram (RTP, RTCP,
//!   and for DTLS-SRTP also STUN and DTLS);
//! * the runtime's timer: [`MediaSession::handle_timeout`] when [`MediaSession::poll_timeout`]
//!   is due (RTCP, DTMF, ICE checks and consent, DTLS retransmits, the connect timeout);
//! * signaling: [`MediaSession::update`] (re-INVITE), [`MediaSession::send_dtmf`],
//!   [`MediaSession::add_remote_candidate`] (trickled ICE), [`MediaSession::close`].
//!
//! After each input the runtime sends every [`MediaSession::poll_transmit`] datagram and reads
//! every [`MediaSession::poll_event`].
//!
//! Time is a [`MediaTime`] supplied by the caller: an [`Instant`] (pacing, jitter, timers,
//! str0m's clock) and the wall clock as NTP (RTCP sender reports and round-trip times).
//! Nothing here reads the clock. Times must not go backwards: an earlier instant is taken as
//! the latest one seen.
//!
//! Renegotiation keeps what can be kept: our SSRC, sequence number and timestamp always
//! continue; a codec change swaps the codec only; an SRTP context is kept, with its rollover
//! counter and replay window, as long as its direction's suite and key are unchanged, and an
//! outbound context is never rebuilt with a key it used before ([`MediaError::SrtpKeyReuse`];
//! see [`crate::sdp::OfferKeys`] for how offers and answers get fresh keys). A DTLS-SRTP
//! session keeps its DTLS association, hence its SRTP contexts, across codec changes.

mod rtp_transport;

use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::ops::Add;
use std::time::{Duration, Instant};

use rand::Rng;

use crate::codec::CodecError;
use crate::dtls_session::{DtlsCert, DtlsFailure, DtlsTransport, IceState};
use crate::ice::{IcePath, IceSetup, Received};
use crate::pipeline::AudioPipeline;
use crate::sdp::{IceCredentials, Negotiated, SessionDescription, Setup};
use crate::stats::MediaStats;
use rtp_transport::RtpTransport;

/// Device-side sample rate.
pub const DEVICE_RATE: u32 = 48_000;
/// Samples in one 20 ms device frame.
pub const DEVICE_FRAME: usize = 960;
/// Frame duration.
pub const FRAME: Duration = Duration::from_millis(20);
/// Interval between RTCP reports (RFC 3550's 5 s minimum).
pub const RTCP_INTERVAL: Duration = Duration::from_secs(5);

/// The clock as a session sees it, both readings supplied by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaTime {
    /// Monotonic time: pacing, jitter buffer, timers, and str0m's clock.
    pub instant: Instant,
    /// The wall clock as a 64-bit NTP timestamp (RFC 5905: seconds since 1900 in the high 32
    /// bits), for RTCP sender reports and round-trip times. 0 when unknown.
    pub ntp: u64,
}

impl MediaTime {
    /// A reading of both clocks.
    pub fn new(instant: Instant, ntp: u64) -> Self {
        Self { instant, ntp }
    }
}

impl Add<Duration> for MediaTime {
    type Output = MediaTime;

    /// Both clocks `elapsed` later (virtual time in tests and simulations).
    fn add(self, elapsed: Duration) -> MediaTime {
        // NTP is 32.32 fixed point: whole seconds above, the fraction of a second below.
        let fraction = ((u128::from(elapsed.subsec_nanos()) << 32) / 1_000_000_000) as u64;
        let ntp_elapsed = (elapsed.as_secs() << 32).wrapping_add(fraction);
        MediaTime {
            instant: self.instant + elapsed,
            ntp: self.ntp.wrapping_add(ntp_elapsed),
        }
    }
}

/// Where our RTP stream starts. RFC 3550 §5.1 wants all three random, so that streams cannot
/// be told apart by them or collide: use [`StreamStart::random`] outside tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamStart {
    /// Our SSRC.
    pub ssrc: u32,
    /// The first RTP sequence number.
    pub sequence: u16,
    /// The first RTP timestamp.
    pub timestamp: u32,
}

impl StreamStart {
    /// Random values from the caller's random number generator.
    pub fn random<R: Rng + ?Sized>(rng: &mut R) -> Self {
        Self {
            ssrc: rng.random(),
            sequence: rng.random(),
            timestamp: rng.random(),
        }
    }
}

/// What a session needs besides the negotiation. Pass what you have: the DTLS fields are
/// needed only when the negotiation is DTLS-SRTP ([`Negotiated::dtls`]) and ignored otherwise;
/// [`Self::ice`] only for plain RTP and SDES-SRTP calls that use ICE.
#[derive(Debug)]
pub struct SessionConfig<'a> {
    /// The media socket's address as announced in our SDP (our ICE host candidate for
    /// DTLS-SRTP, so not `0.0.0.0`): every datagram of the call arrives and leaves there.
    pub local: SocketAddr,
    /// Our RTP stream's SSRC, first sequence number and first timestamp.
    pub stream: StreamStart,
    /// CNAME in our RTCP reports (plain RTP; str0m picks its own).
    pub cname: String,
    /// The certificate whose fingerprint we announced (DTLS-SRTP).
    pub dtls_certificate: Option<&'a DtlsCert>,
    /// The ICE credentials we announced (DTLS-SRTP, [`crate::sdp::DtlsLocal::ice`]).
    pub local_ice: Option<IceCredentials>,
    /// The peer's description (offer or answer): its a=candidate lines and a=ice-lite are
    /// taken from it (DTLS-SRTP, and ICE on plain RTP and SDES-SRTP).
    pub remote_description: Option<&'a SessionDescription>,
    /// ICE with our gathered candidates and TURN relay, for a plain RTP or SDES-SRTP call
    /// (see [`crate::ice`]).
    pub ice: Option<IceSetup>,
}

impl<'a> SessionConfig<'a> {
    /// A configuration for a plain RTP or SDES-SRTP session; add the DTLS fields with
    /// [`Self::with_dtls`] when you have them.
    pub fn new(local: SocketAddr, stream: StreamStart, cname: impl Into<String>) -> Self {
        Self {
            local,
            stream,
            cname: cname.into(),
            dtls_certificate: None,
            local_ice: None,
            remote_description: None,
            ice: None,
        }
    }

    /// The same configuration with ICE for a plain RTP or SDES-SRTP call.
    pub fn with_ice(mut self, ice: IceSetup) -> Self {
        self.ice = Some(ice);
        self
    }

    /// The same configuration with DTLS-SRTP credentials: our certificate and ICE
    /// credentials.
    pub fn with_dtls(mut self, certificate: &'a DtlsCert, local_ice: IceCredentials) -> Self {
        self.dtls_certificate = Some(certificate);
        self.local_ice = Some(local_ice);
        self
    }

    /// The same configuration with the peer's description (its ICE candidates and ICE-lite
    /// flag).
    pub fn with_remote_description(mut self, remote: &'a SessionDescription) -> Self {
        self.remote_description = Some(remote);
        self
    }
}

/// A datagram to send.
#[derive(Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Destination.
    pub to: SocketAddr,
    /// Bytes (RTP, SRTP, RTCP, SRTCP, STUN or DTLS).
    pub bytes: Vec<u8>,
}

impl fmt::Debug for Transmit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transmit")
            .field("to", &self.to)
            .field("len", &self.bytes.len())
            .finish()
    }
}

/// Something the application should know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    /// A DTMF digit arrived (RFC 4733).
    Dtmf {
        /// The digit (`0-9`, `*`, `#`, `A-D`).
        digit: char,
    },
    /// Media now goes to where the peer's packets come from (symmetric RTP; plain RTP only,
    /// ICE picks the path otherwise).
    Latched {
        /// The new remote RTP address.
        remote: SocketAddr,
    },
    /// The ICE connection state changed.
    IceState(IceState),
    /// ICE nominated the pair media takes (plain RTP and SDES-SRTP calls with ICE).
    PathSelected {
        /// The peer's address on the pair.
        remote: SocketAddr,
        /// Our side of the pair is the TURN relay.
        relayed: bool,
    },
    /// The TURN allocation failed or was lost (refresh refused, server gone); media over
    /// the relay stops.
    RelayFailed(String),
    /// ICE and DTLS are up: media flows from now on (DTLS-SRTP; plain RTP starts connected).
    Connected,
    /// The session failed for good (terminal): end or renegotiate the call.
    Failed(DtlsFailure),
    /// The peer closed the session (DTLS close_notify; terminal).
    Closed,
}

/// Where a session's connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectionState {
    /// ICE checks and/or the DTLS handshake are under way; no media yet.
    Connecting,
    /// Media flows (plain RTP from the start; DTLS-SRTP once ICE and DTLS are up).
    Connected,
    /// Terminal: the handshake failed, the fingerprint did not match, or it timed out.
    Failed,
    /// Terminal: closed by [`MediaSession::close`] or by the peer.
    Closed,
}

/// Why a session could not be set up or a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    /// The negotiated codec has no implementation here.
    #[error("unsupported codec {0}")]
    UnsupportedCodec(String),
    /// A codec failed to initialise or encode.
    #[error("codec: {0}")]
    Codec(#[from] CodecError),
    /// DTMF cannot be sent: no telephone-event was negotiated.
    #[error("the peer did not negotiate telephone-event")]
    NoTelephoneEvent,
    /// A renegotiation would rebuild our outbound SRTP context with a key this session
    /// already sent with, which repeats keystream (RFC 3711 §9.1). The offer/answer code never
    /// produces one ([`crate::sdp::OfferKeys`]); the session is left as it was.
    #[error("the renegotiation reuses an SRTP key we already sent with")]
    SrtpKeyReuse,
    /// A renegotiation changed what this session cannot change (the transport family, the
    /// DTLS fingerprint, the ICE credentials, a payload type unknown to the DTLS transport):
    /// set up a new session instead.
    #[error("cannot apply the renegotiation: {0}")]
    Renegotiation(&'static str),
    /// The negotiation is DTLS-SRTP but no certificate or no local ICE credentials were
    /// given in the [`SessionConfig`].
    #[error("DTLS-SRTP needs our certificate and ICE credentials")]
    MissingDtlsCredentials,
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
}

/// Counters of what was dropped and why (not WebRTC statistics, but useful in tests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DropCounters {
    /// Datagrams that were not RTP, RTCP, STUN or DTLS, or that the DTLS transport refused.
    pub malformed: u64,
    /// SRTP/SRTCP packets that failed authentication (plain transport; str0m drops them
    /// without a count).
    pub auth_failed: u64,
    /// SRTP/SRTCP replays (plain transport).
    pub replayed: u64,
    /// RTP with a payload type that was not negotiated.
    pub unknown_payload: u64,
}

/// What the transports hand back to the session: datagrams, events and drop counts.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    pub(crate) transmits: VecDeque<Transmit>,
    pub(crate) events: VecDeque<MediaEvent>,
    pub(crate) drops: DropCounters,
}

/// The transport part of a session: the only thing that differs between the kinds.
enum Transport {
    /// RTP/AVP or RTP/SAVP with SDES keys.
    Rtp(Box<RtpTransport>),
    /// UDP/TLS/RTP/SAVP through ICE and DTLS.
    Dtls(Box<DtlsTransport>),
}

/// One call's audio stream (see the module docs).
pub struct MediaSession {
    negotiated: Negotiated,
    pipeline: AudioPipeline,
    transport: Transport,
    /// ICE and the TURN relay of a plain RTP or SDES-SRTP session that uses them.
    ice: Option<IcePath>,
    out: Outbox,
    /// The latest instant seen: time never goes backwards inside the session.
    latest: Instant,
}

impl fmt::Debug for MediaSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let transport: &dyn fmt::Debug = match &self.transport {
            Transport::Rtp(t) => t,
            Transport::Dtls(t) => t,
        };
        f.debug_struct("MediaSession")
            .field("codec", &self.negotiated.codec.name)
            .field("ssrc", &self.pipeline.ssrc())
            .field("transport", transport)
            .finish_non_exhaustive()
    }
}

impl MediaSession {
    /// A session for what offer/answer negotiated, starting at `now`.
    ///
    /// DTLS-SRTP ([`Negotiated::dtls`] set) needs [`SessionConfig::dtls_certificate`] and
    /// [`SessionConfig::local_ice`]; the peer's default address and the candidates of
    /// [`SessionConfig::remote_description`] are added, and ICE checks and, for the active
    /// side, the DTLS ClientHello start at once: send what [`Self::poll_transmit`] yields.
    pub fn new(
        now: MediaTime,
        negotiated: &Negotiated,
        config: SessionConfig<'_>,
    ) -> Result<MediaSession, MediaError> {
        let pipeline = AudioPipeline::new(negotiated, config.stream, now.instant)?;
        let transport = if negotiated.dtls.is_some() {
            let (Some(certificate), Some(local_ice)) = (config.dtls_certificate, config.local_ice)
            else {
                return Err(MediaError::MissingDtlsCredentials);
            };
            Transport::Dtls(Box::new(DtlsTransport::new(
                now.instant,
                negotiated,
                config.local,
                certificate,
                local_ice,
                config.stream.ssrc,
            )?))
        } else {
            Transport::Rtp(Box::new(RtpTransport::new(negotiated, config.cname)))
        };
        let ice = match (&transport, config.ice) {
            (Transport::Rtp(_), Some(setup)) => Some(IcePath::new(
                now.instant,
                setup,
                config.local,
                negotiated,
                config.remote_description,
            )?),
            _ => None,
        };
        let mut session = MediaSession {
            negotiated: negotiated.clone(),
            pipeline,
            transport,
            ice,
            out: Outbox::default(),
            latest: now.instant,
        };
        session.tick(now);
        if let (Transport::Dtls(dtls), Some(remote)) =
            (&mut session.transport, config.remote_description)
        {
            dtls.learn_remote(
                now.instant,
                remote,
                negotiated,
                &mut session.pipeline,
                &mut session.out,
            );
        }
        Ok(session)
    }

    /// Applies a renegotiation of the same stream (re-INVITE or UPDATE: hold, resume,
    /// direction, new remote address, codec, keys). Either all of it applies or, on error,
    /// nothing does. What is kept is listed in the module docs.
    pub fn update(&mut self, negotiated: &Negotiated) -> Result<(), MediaError> {
        let codec = self.pipeline.prepare_update(negotiated)?;
        match &mut self.transport {
            Transport::Rtp(rtp) => {
                let keys = rtp.prepare_update(negotiated)?;
                rtp.apply_update(negotiated, keys);
            }
            Transport::Dtls(dtls) => dtls.check_update(&self.negotiated, negotiated, false)?,
        }
        self.steer_to_ice();
        self.pipeline.apply_update(negotiated, codec);
        self.negotiated = negotiated.clone();
        Ok(())
    }

    /// Restarts ICE (RFC 8445 §9) with the renegotiation that carried the restart: after a
    /// network change (our socket now at `local`, new candidates and credentials in `setup`)
    /// or because the peer restarted. Media goes on over the old pair until the new checks
    /// nominate one. For plain RTP and SDES-SRTP, the new `setup.relay` replaces the old
    /// allocation; without one, the old relay stays when its relayed address is still among
    /// `setup.candidates`. A DTLS-SRTP session keeps its DTLS association and SRTP contexts;
    /// only `setup.local` (credentials) and `local` (its host candidate) are used. Errors
    /// change nothing.
    pub fn restart_ice(
        &mut self,
        now: MediaTime,
        local: SocketAddr,
        mut setup: IceSetup,
        negotiated: &Negotiated,
        remote: Option<&SessionDescription>,
    ) -> Result<(), MediaError> {
        let now = self.advance(now);
        if let Transport::Dtls(dtls) = &mut self.transport {
            let codec = self.pipeline.prepare_update(negotiated)?;
            dtls.check_update(&self.negotiated, negotiated, true)?;
            dtls.restart_ice(
                local,
                setup.local,
                negotiated,
                remote,
                &mut self.pipeline,
                &mut self.out,
            )?;
            self.pipeline.apply_update(negotiated, codec);
            self.negotiated = negotiated.clone();
            return Ok(());
        }
        self.update(negotiated)?;
        let old = self.ice.take();
        if let Some(mut old) = old {
            match setup.relay {
                Some(_) => old.close(now.instant),
                None => setup.relay = old.take_relay_for(&setup.candidates),
            }
            self.flush_path(old);
        }
        self.ice = Some(IcePath::new(now.instant, setup, local, negotiated, remote)?);
        self.flush_ice();
        Ok(())
    }

    /// Encodes one captured 20 ms frame (960 samples at 48 kHz) and sends it. On hold, before
    /// a DTLS-SRTP session is connected, or while a DTMF event is being sent, nothing is sent
    /// but the RTP clock still advances.
    pub fn handle_capture(&mut self, now: MediaTime, frame: &[i16]) -> Result<(), MediaError> {
        let now = self.advance(now);
        self.tick(now);
        let sending = self.may_send();
        let result = self.pipeline.capture(now.instant, frame, sending);
        self.transmit_pending(now);
        result
    }

    /// Produces one 20 ms playout frame (960 samples at 48 kHz), appended to `out`: decoded
    /// audio, concealment, or silence (before any packet arrived, between talkspurts).
    pub fn playout(&mut self, now: MediaTime, out: &mut Vec<i16>) {
        let now = self.advance(now);
        self.pipeline.playout(now.instant, out);
    }

    /// Handles one datagram received on the media socket from `from`. Anything that is not
    /// for this session, fails authentication or cannot be parsed is dropped and counted
    /// ([`Self::drops`]).
    pub fn handle_datagram(&mut self, now: MediaTime, from: SocketAddr, bytes: &[u8]) {
        let now = self.advance(now);
        let (from, bytes) = match self.ice.as_mut() {
            Some(ice) => match ice.receive(now.instant, from, bytes) {
                Received::Media { from, bytes } => (from, bytes),
                Received::Consumed => {
                    self.flush_ice();
                    return;
                }
            },
            None => (from, bytes),
        };
        let first = self.out.transmits.len();
        match &mut self.transport {
            Transport::Rtp(rtp) => {
                rtp.handle_datagram(now, from, bytes, &mut self.pipeline, &mut self.out)
            }
            Transport::Dtls(dtls) => {
                dtls.handle_datagram(now.instant, from, bytes, &mut self.pipeline, &mut self.out)
            }
        }
        self.wrap_for_ice(first);
        // An RTCP report may have come due.
        self.transmit_pending(now);
    }

    /// Does what is due at `now`: RTCP reports, DTMF packets, ICE checks and consent, DTLS
    /// retransmits, the connect timeout.
    pub fn handle_timeout(&mut self, now: MediaTime) {
        let now = self.advance(now);
        self.tick(now);
        let sending = self.may_send();
        self.pipeline.send_due_dtmf(now.instant, sending);
        self.transmit_pending(now);
    }

    /// When [`Self::handle_timeout`] is next needed (besides the 20 ms capture cadence);
    /// `None` once the session is over.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let transport = match &self.transport {
            Transport::Rtp(rtp) => {
                let rtp = rtp.poll_timeout()?;
                match self.ice.as_ref().and_then(IcePath::poll_timeout) {
                    Some(ice) => rtp.min(ice),
                    None => rtp,
                }
            }
            Transport::Dtls(dtls) => dtls.poll_timeout()?,
        };
        Some(match self.pipeline.next_dtmf_at() {
            Some(dtmf) => transport.min(dtmf),
            None => transport,
        })
    }

    /// Queues RFC 4733 events for `digits`, starting now (after digits still queued).
    pub fn send_dtmf(&mut self, now: MediaTime, digits: &str) -> Result<(), MediaError> {
        let now = self.advance(now);
        self.pipeline.send_dtmf(now.instant, digits)?;
        let sending = self.may_send();
        self.pipeline.send_due_dtmf(now.instant, sending);
        self.transmit_pending(now);
        Ok(())
    }

    /// Adds one of the peer's trickled ICE candidates: an a=candidate value with or without
    /// the `candidate:` prefix (`a=` too is tolerated). Candidates for RTCP (component 2) and
    /// TCP candidates are ignored (rtcp-mux, UDP only), and so is every candidate on a plain
    /// RTP session (no ICE there). A line that does not parse is an error.
    pub fn add_remote_candidate(
        &mut self,
        now: MediaTime,
        candidate: &str,
    ) -> Result<(), MediaError> {
        let now = self.advance(now);
        match &mut self.transport {
            Transport::Rtp(_) => Ok(()),
            Transport::Dtls(dtls) => {
                dtls.add_remote_candidate(now.instant, candidate, &mut self.pipeline, &mut self.out)
            }
        }
    }

    /// Ends the session: a last RTCP report with BYE (and for DTLS-SRTP the close_notify) goes
    /// out through [`Self::poll_transmit`]; afterwards the session is inert.
    pub fn close(&mut self, now: MediaTime) {
        let now = self.advance(now);
        self.pipeline.clear_dtmf();
        let first = self.out.transmits.len();
        match &mut self.transport {
            Transport::Rtp(rtp) => rtp.close(now, &mut self.pipeline, &mut self.out),
            Transport::Dtls(dtls) => dtls.close(now.instant, &mut self.pipeline, &mut self.out),
        }
        self.wrap_for_ice(first);
        if let Some(ice) = self.ice.as_mut() {
            ice.close(now.instant);
        }
        self.flush_ice();
    }

    /// Next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.transmits.pop_front()
    }

    /// Next event.
    pub fn poll_event(&mut self) -> Option<MediaEvent> {
        self.out.events.pop_front()
    }

    /// Statistics under the WebRTC names.
    pub fn stats(&self) -> MediaStats {
        self.pipeline.stats()
    }

    /// E-model MOS estimate for the receive direction.
    pub fn mos(&self) -> f64 {
        self.pipeline.mos()
    }

    /// What was dropped and why.
    pub fn drops(&self) -> DropCounters {
        self.out.drops
    }

    /// What was negotiated last.
    pub fn negotiated(&self) -> &Negotiated {
        &self.negotiated
    }

    /// Our SSRC.
    pub fn ssrc(&self) -> u32 {
        self.pipeline.ssrc()
    }

    /// Where the connection stands.
    pub fn state(&self) -> ConnectionState {
        match &self.transport {
            Transport::Rtp(rtp) => rtp.state(),
            Transport::Dtls(dtls) => dtls.state(),
        }
    }

    /// Whether media is encrypted (SDES-SRTP or DTLS-SRTP).
    pub fn is_encrypted(&self) -> bool {
        self.negotiated.srtp.is_some() || self.negotiated.dtls.is_some()
    }

    /// Whether the negotiation lets us send (not on hold, direction allows it). Nothing is
    /// sent before [`ConnectionState::Connected`] either.
    pub fn sending(&self) -> bool {
        self.negotiated.direction.can_send() && !self.negotiated.hold
    }

    fn may_send(&self) -> bool {
        self.sending() && self.state() == ConnectionState::Connected
    }

    /// Moves the session's clock to `now`, never backwards.
    fn advance(&mut self, now: MediaTime) -> MediaTime {
        self.latest = self.latest.max(now.instant);
        MediaTime {
            instant: self.latest,
            ntp: now.ntp,
        }
    }

    /// Lets the transport do what its timers want (RTCP; str0m's ICE/DTLS/RTCP).
    fn tick(&mut self, now: MediaTime) {
        if let Some(ice) = self.ice.as_mut() {
            ice.handle_timeout(now.instant);
        }
        self.flush_ice();
        let first = self.out.transmits.len();
        match &mut self.transport {
            Transport::Rtp(rtp) => rtp.handle_timeout(now, &mut self.pipeline, &mut self.out),
            Transport::Dtls(dtls) => {
                dtls.handle_timeout(now.instant, &mut self.pipeline, &mut self.out)
            }
        }
        self.wrap_for_ice(first);
    }

    /// Hands the pipeline's packets to the transport.
    fn transmit_pending(&mut self, now: MediaTime) {
        match &mut self.transport {
            Transport::Rtp(rtp) => {
                let first = self.out.transmits.len();
                rtp.send_pending(&mut self.pipeline, &mut self.out);
                self.wrap_for_ice(first);
            }
            Transport::Dtls(dtls) => {
                dtls.send_pending(now.instant, &mut self.pipeline, &mut self.out)
            }
        }
    }
}

impl MediaSession {
    /// Moves the ICE path's datagrams and events out, and sends media over its nominated
    /// pair.
    fn flush_ice(&mut self) {
        let Some(ice) = self.ice.as_mut() else {
            return;
        };
        while let Some(transmit) = ice.poll_transmit() {
            self.out.transmits.push_back(transmit);
        }
        while let Some(event) = ice.poll_event() {
            self.out.events.push_back(event);
        }
        self.steer_to_ice();
    }

    /// Moves what a path that is going away still has to send (its relay's deallocation).
    fn flush_path(&mut self, mut path: IcePath) {
        while let Some(transmit) = path.poll_transmit() {
            self.out.transmits.push_back(transmit);
        }
    }

    /// RTP and RTCP follow the pair ICE nominated.
    fn steer_to_ice(&mut self) {
        if let (Transport::Rtp(rtp), Some(remote)) = (
            &mut self.transport,
            self.ice.as_ref().and_then(IcePath::nominated_remote),
        ) {
            rtp.steer(remote);
        }
    }

    /// Wraps the media datagrams queued from `first` on for the relay when the route goes
    /// through it (dropping those it cannot take yet).
    fn wrap_for_ice(&mut self, first: usize) {
        let Some(ice) = self.ice.as_mut() else {
            return;
        };
        let media: Vec<Transmit> = self.out.transmits.drain(first..).collect();
        self.out
            .transmits
            .extend(media.into_iter().filter_map(|t| ice.wrap(t)));
    }
}

#[cfg(test)]
impl MediaSession {
    /// Test hook: the DTLS transport and the pipeline, to play a peer that switches SSRC.
    pub(crate) fn dtls_parts_mut(&mut self) -> Option<(&mut DtlsTransport, &mut AudioPipeline)> {
        match &mut self.transport {
            Transport::Dtls(dtls) => Some((dtls, &mut self.pipeline)),
            Transport::Rtp(_) => None,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
