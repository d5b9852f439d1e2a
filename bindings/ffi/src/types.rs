//! Records and enums mirrored from the core with `From`: what crosses the boundary by value.
//!
//! Names follow the core; call statistics keep the WebRTC `getStats()` names (the generated
//! Kotlin/Swift fields are `packetsReceived`, `jitterBufferDelay`, ... exactly).

use std::fmt;
use std::time::Duration;

use handset::CallQuality as CoreQuality;
use handset::RegistrationFailure as CoreFailure;
use handset_media::sdp::{self, CodecPref, SrtpMode, SrtpPolicy};
use handset_phone::push::PushProvider;
use handset_phone::screen;

// ---------------------------------------------------------------------------------------------
// Configuration

/// Runtime-wide settings of a [`crate::HandsetPhone`].
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct PhoneConfig {
    /// Local address of the SIP UDP socket, `ip:port` (port 0 picks one). Use
    /// `127.0.0.1:0` to stay on loopback.
    #[uniffi(default = "0.0.0.0:0")]
    pub bind_address: String,
    /// CRLF keep-alive interval on TCP/TLS connections, seconds.
    #[uniffi(default = 100)]
    pub keepalive_secs: u32,
    /// Keep-alive interval on UDP registrations, seconds (STUN when the PBX supports SIP
    /// outbound, else a CRLF datagram): keep it below the NAT's UDP timeout, often 30 s on
    /// mobile networks. 0 sends none. Never sent in the background while push wakes the app.
    #[uniffi(default = 25)]
    pub udp_keepalive_secs: u32,
    /// DNS servers (`ip:port`, `[ipv6]:port` or a bare IP for port 53) to use instead of the
    /// system's; empty = the system's, which Android does not have: there the phone starts
    /// anyway and host names fail until `HandsetPhone.set_dns_servers` gives servers.
    #[uniffi(default = [])]
    pub dns_servers: Vec<String>,
    /// Path of the on-device database (call history, contacts, blocklist, voicemail counts),
    /// created when missing. Without one, calls are not recorded, nobody is blocked and
    /// callers are not looked up. A damaged or foreign file is an error, never overwritten.
    #[uniffi(default = None)]
    pub database_path: Option<String>,
    /// Country (ISO 3166 alpha-2, e.g. "US", "DE") national numbers are dialled in, for
    /// matching callers against contacts and the blocklist; the shells fill it from the SIM or
    /// locale when absent, and the core takes "US" when it stays absent.
    #[uniffi(default = None)]
    pub default_country: Option<String>,
    /// How long a call reported from a VoIP push waits for its INVITE, seconds.
    #[uniffi(default = 20)]
    pub push_wait_secs: u32,
}

/// SIP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum Transport {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
    /// TLS over TCP.
    Tls,
}

impl From<Transport> for handset::Transport {
    fn from(t: Transport) -> Self {
        match t {
            Transport::Udp => Self::Udp,
            Transport::Tcp => Self::Tcp,
            Transport::Tls => Self::Tls,
        }
    }
}

impl From<handset::Transport> for Transport {
    fn from(t: handset::Transport) -> Self {
        match t {
            handset::Transport::Udp => Self::Udp,
            handset::Transport::Tcp => Self::Tcp,
            handset::Transport::Tls => Self::Tls,
        }
    }
}

/// An audio codec, in preference order inside [`MediaConfig::codecs`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum Codec {
    /// Opus at 48 kHz.
    Opus {
        /// Announce that we decode in-band FEC.
        useinbandfec: bool,
        /// Ask the peer for discontinuous transmission.
        usedtx: bool,
    },
    /// G.711 µ-law.
    Pcmu,
    /// G.711 A-law.
    Pcma,
}

impl From<Codec> for CodecPref {
    fn from(c: Codec) -> Self {
        match c {
            Codec::Opus {
                useinbandfec,
                usedtx,
            } => Self::Opus {
                useinbandfec,
                usedtx,
            },
            Codec::Pcmu => Self::Pcmu,
            Codec::Pcma => Self::Pcma,
        }
    }
}

impl From<CodecPref> for Codec {
    fn from(c: CodecPref) -> Self {
        match c {
            CodecPref::Opus {
                useinbandfec,
                usedtx,
            } => Self::Opus {
                useinbandfec,
                usedtx,
            },
            CodecPref::Pcmu => Self::Pcmu,
            CodecPref::Pcma => Self::Pcma,
        }
    }
}

/// SRTP policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum Srtp {
    /// Plain RTP only.
    Off,
    /// Encrypt when the peer can.
    Optional,
    /// Encrypt or fail the call.
    Mandatory,
}

impl From<Srtp> for SrtpPolicy {
    fn from(s: Srtp) -> Self {
        match s {
            Srtp::Off => Self::Off,
            Srtp::Optional => Self::Optional,
            Srtp::Mandatory => Self::Mandatory,
        }
    }
}

impl From<SrtpPolicy> for Srtp {
    fn from(s: SrtpPolicy) -> Self {
        match s {
            SrtpPolicy::Off => Self::Off,
            SrtpPolicy::Optional => Self::Optional,
            SrtpPolicy::Mandatory => Self::Mandatory,
        }
    }
}

/// How SRTP keys are exchanged in our offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum SrtpKeyExchange {
    /// SDES: keys in the SDP (PBXs, baresip, linphone).
    Sdes,
    /// DTLS-SRTP with ICE (WebRTC gateways).
    Dtls,
}

impl From<SrtpKeyExchange> for SrtpMode {
    fn from(s: SrtpKeyExchange) -> Self {
        match s {
            SrtpKeyExchange::Sdes => Self::Sdes,
            SrtpKeyExchange::Dtls => Self::Dtls,
        }
    }
}

impl From<SrtpMode> for SrtpKeyExchange {
    fn from(s: SrtpMode) -> Self {
        match s {
            SrtpMode::Sdes => Self::Sdes,
            SrtpMode::Dtls => Self::Dtls,
        }
    }
}

/// Codecs, SRTP and packetization of calls. [`crate::default_media_config`] gives the core's
/// defaults (Opus, PCMU, PCMA; DTMF; 20 ms; optional SDES-SRTP; rtcp-mux).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct MediaConfig {
    /// Codecs, best first.
    pub codecs: Vec<Codec>,
    /// Offer/accept RFC 4733 DTMF.
    pub telephone_event: bool,
    /// Packetization time, ms (0 = 20).
    pub ptime_ms: u32,
    /// SRTP policy.
    pub srtp: Srtp,
    /// Key exchange used in our offers.
    pub srtp_key_exchange: SrtpKeyExchange,
    /// RTP and RTCP on one port.
    pub rtcp_mux: bool,
}

impl From<MediaConfig> for sdp::MediaConfig {
    fn from(m: MediaConfig) -> Self {
        Self {
            codecs: m.codecs.into_iter().map(Into::into).collect(),
            telephone_event: m.telephone_event,
            ptime_ms: m.ptime_ms,
            srtp: m.srtp.into(),
            srtp_mode: m.srtp_key_exchange.into(),
            rtcp_mux: m.rtcp_mux,
            ..sdp::MediaConfig::default()
        }
    }
}

impl From<sdp::MediaConfig> for MediaConfig {
    fn from(m: sdp::MediaConfig) -> Self {
        Self {
            codecs: m.codecs.into_iter().map(Into::into).collect(),
            telephone_event: m.telephone_event,
            ptime_ms: m.ptime_ms,
            srtp: m.srtp.into(),
            srtp_key_exchange: m.srtp_mode.into(),
            rtcp_mux: m.rtcp_mux,
        }
    }
}

/// A SIP account. Its password or HA1 is not here: it is read from the platform's
/// [`crate::SecretStore`] under `account_id` when the account is added.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct AccountConfig {
    /// The application's stable id of the account: the key in the secret store.
    pub account_id: String,
    /// Registrar/proxy URI, e.g. `sip:pbx.example.com` or `sip:127.0.0.1:5060`.
    pub server: String,
    /// User part of the address-of-record.
    pub user: String,
    /// Domain of the address-of-record; the server's host when absent.
    #[uniffi(default = None)]
    pub domain: Option<String>,
    /// Authentication user name when it differs from `user`.
    #[uniffi(default = None)]
    pub auth_user: Option<String>,
    /// Display name.
    #[uniffi(default = None)]
    pub display_name: Option<String>,
    /// Transport; from the URI or DNS when absent.
    #[uniffi(default = None)]
    pub transport: Option<Transport>,
    /// Extra PEM file trusted for TLS: a private PBX CA, or the PBX's own certificate (pinned:
    /// accepted even when self-signed and marked CA; host name and validity still checked).
    #[uniffi(default = None)]
    pub ca_file: Option<String>,
    /// SHA-256 fingerprint of the PBX's own TLS certificate to pin, like a certificate of
    /// `ca_file` but without a file: 64 hex digits, colons allowed (`openssl x509
    /// -fingerprint -sha256` output). A malformed value is [`crate::HandsetError::InvalidArgument`]
    /// when the account is added.
    #[uniffi(default = None)]
    pub pinned_sha256: Option<String>,
    /// Requested registration lifetime, seconds.
    #[uniffi(default = 3600)]
    pub expires_secs: u32,
    /// Register with the server (without: outgoing calls only).
    #[uniffi(default = true)]
    pub register: bool,
    /// Wait after the first registration failure, seconds (then doubling up to `retry_max_secs`).
    #[uniffi(default = 30)]
    pub retry_base_secs: u32,
    /// Longest wait between registration retries, seconds.
    #[uniffi(default = 1800)]
    pub retry_max_secs: u32,
    /// Media settings of this account's calls; the defaults when absent.
    #[uniffi(default = None)]
    pub media: Option<MediaConfig>,
    /// Register for push (RFC 8599 `pn-*` Contact parameters) with the platform's current
    /// push token; without a token the account registers without push.
    #[uniffi(default = false)]
    pub push: bool,
    /// Subscribe to the account's voicemail message-waiting indication (RFC 3842); counts
    /// arrive as [`PhoneEvent::Voicemail`] and are kept in the database.
    #[uniffi(default = false)]
    pub voicemail: bool,
    /// ICE with STUN/TURN for the account's plain RTP and SDES-SRTP calls; none when absent.
    #[uniffi(default = None)]
    pub ice: Option<IceSettings>,
}

/// ICE settings of an account's calls (RFC 8445): where server-reflexive and relayed
/// candidates come from, and whether only the relay may be used. Malformed values are
/// [`crate::HandsetError::InvalidArgument`] when the account is added. `Debug` never shows
/// the TURN password.
#[derive(Clone, PartialEq, Eq, uniffi::Record)]
pub struct IceSettings {
    /// STUN servers, `HOST[:PORT]` (port 3478 by default).
    pub stun_servers: Vec<String>,
    /// TURN server, `turn:HOST[:PORT][;transport=udp|tcp|tls]` (`turns:` for TLS).
    #[uniffi(default = None)]
    pub turn_server: Option<String>,
    /// The TURN server's user name (required with `turn_server`).
    #[uniffi(default = None)]
    pub turn_user: Option<String>,
    /// The TURN server's password.
    #[uniffi(default = None)]
    pub turn_password: Option<String>,
    /// Use only the TURN relay (needs `turn_server`): the peer never learns the phone's
    /// addresses, and media crosses any NAT.
    #[uniffi(default = false)]
    pub relay_only: bool,
}

impl std::fmt::Debug for IceSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IceSettings")
            .field("stun_servers", &self.stun_servers)
            .field("turn_server", &self.turn_server)
            .field("turn_user", &self.turn_user)
            .field(
                "turn_password",
                &self.turn_password.as_ref().map(|_| "<redacted>"),
            )
            .field("relay_only", &self.relay_only)
            .finish()
    }
}

impl TryFrom<IceSettings> for handset_media::ice::IceConfig {
    type Error = String;

    fn try_from(settings: IceSettings) -> Result<Self, String> {
        use handset_media::ice::{IcePolicy, StunUrl, TurnUrl};
        let stun = settings
            .stun_servers
            .iter()
            .map(|s| s.parse::<StunUrl>().map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        let turn = match &settings.turn_server {
            Some(url) => vec![
                TurnUrl::parse(
                    url,
                    settings.turn_user.as_deref().unwrap_or_default(),
                    settings.turn_password.as_deref().unwrap_or_default(),
                )
                .map_err(|e| e.to_string())?,
            ],
            None => Vec::new(),
        };
        let config = handset_media::ice::IceConfig {
            stun,
            turn,
            policy: if settings.relay_only {
                IcePolicy::Relay
            } else {
                IcePolicy::All
            },
        };
        config.validate().map_err(|e| e.to_string())?;
        Ok(config)
    }
}

/// A password or pre-computed HA1 values, as the platform's secret store keeps them.
#[derive(Clone, PartialEq, Eq, uniffi::Enum)]
pub enum StoredSecret {
    /// Plain password.
    Password {
        /// The password.
        password: String,
    },
    /// Pre-computed digest HA1 values (hex).
    Ha1 {
        /// HA1 for MD5 (32 hex digits).
        md5: Option<String>,
        /// HA1 for SHA-256 (64 hex digits).
        sha256: Option<String>,
    },
}

impl std::fmt::Debug for StoredSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Password { .. } => "Password(<redacted>)",
            Self::Ha1 { .. } => "Ha1(<redacted>)",
        })
    }
}

impl From<StoredSecret> for handset::Secret {
    fn from(s: StoredSecret) -> Self {
        match s {
            StoredSecret::Password { password } => Self::Password(password),
            StoredSecret::Ha1 { md5, sha256 } => Self::Ha1 { md5, sha256 },
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Registration

/// Why a registration failed.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum RegistrationFailure {
    /// The registrar refused our credentials.
    AuthenticationFailed {
        /// The realm that refused them.
        realm: String,
    },
    /// A challenge could not be answered (no credentials for the realm, unknown algorithm).
    CannotAuthenticate {
        /// Why.
        message: String,
    },
    /// A final error response.
    Rejected {
        /// SIP status.
        status: u16,
        /// Reason phrase.
        reason: String,
    },
    /// No answer in time.
    Timeout,
    /// The registrar could not be reached.
    Transport,
    /// The registrar's answer was unusable.
    BadResponse {
        /// What was wrong.
        message: String,
    },
}

impl From<&CoreFailure> for RegistrationFailure {
    fn from(f: &CoreFailure) -> Self {
        match f {
            CoreFailure::AuthenticationFailed { realm } => Self::AuthenticationFailed {
                realm: realm.clone(),
            },
            CoreFailure::Authentication(e) => Self::CannotAuthenticate {
                message: e.to_string(),
            },
            CoreFailure::Rejected { status, reason } => Self::Rejected {
                status: *status,
                reason: reason.clone(),
            },
            CoreFailure::Timeout => Self::Timeout,
            CoreFailure::Transport => Self::Transport,
            CoreFailure::BadResponse(m) => Self::BadResponse {
                message: (*m).to_string(),
            },
        }
    }
}

/// An account's registration state (mirrors `handset_phone::phone::RegistrationState`): the
/// current value is sent first to every subscriber.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum RegistrationState {
    /// Not started (accounts with `register = false` stay here).
    Idle,
    /// A REGISTER is on its way (first registration, refresh or retry).
    Registering,
    /// The binding is in place.
    Registered {
        /// Lifetime granted by the registrar, seconds.
        expires_secs: u32,
    },
    /// The registration failed.
    Failed {
        /// Why.
        reason: RegistrationFailure,
        /// The same, in words.
        message: String,
        /// What the network said (e.g. the TLS certificate problem, the DNS error).
        detail: Option<String>,
        /// When it is retried on its own, ms; absent when it is not (bad credentials).
        retry_in_ms: Option<u64>,
    },
    /// The binding was removed; no refresh will happen.
    Unregistered,
}

impl From<&handset::RegistrationState> for RegistrationState {
    fn from(state: &handset::RegistrationState) -> Self {
        use handset::RegistrationState as S;
        match state {
            S::Idle => Self::Idle,
            S::Registering => Self::Registering,
            S::Registered { expires } => Self::Registered {
                expires_secs: *expires,
            },
            S::Failed {
                reason,
                detail,
                retry_in,
            } => Self::Failed {
                reason: reason.into(),
                message: reason.to_string(),
                detail: detail.clone(),
                retry_in_ms: retry_in.map(duration_ms),
            },
            S::Unregistered => Self::Unregistered,
        }
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

// ---------------------------------------------------------------------------------------------
// Calls

/// Who started a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum CallDirection {
    /// We called.
    Outgoing,
    /// They called.
    Incoming,
}

/// Why a call, or a push report that never became a call, ended: the core's one
/// classification (mirrors `handset_phone::phone::EndReason`). The shells map it, with the
/// call's direction, to Telecom's `DisconnectCause` and CallKit's `CXCallEndedReason`; no
/// shell looks at a SIP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, uniffi::Enum)]
pub enum EndReason {
    /// The user hung up an answered call here.
    LocalHangup,
    /// The other party hung up an answered call.
    RemoteHangup,
    /// The callee was busy; or an incoming call was refused because the phone had as many
    /// calls as it takes.
    Busy,
    /// The callee refused our call, or the user refused an incoming call (or its push report)
    /// here.
    Declined,
    /// Nobody answered: the callee's side gave up, an incoming call rang out here, or a
    /// pushed call's INVITE never came.
    Unanswered,
    /// Cancelled before it was answered: by us (outgoing), or by the caller (incoming: a
    /// missed call).
    Cancelled,
    /// Another device of the user answered the incoming call.
    AnsweredElsewhere,
    /// Another device of the user declined the incoming call.
    DeclinedElsewhere,
    /// The call failed: refused with another status, authentication failed, the peer broke
    /// the protocol, media could not start.
    Failed {
        /// The SIP status that failed it, when one did (for logs and bug reports only).
        status: Option<u16>,
    },
    /// The network lost the call: no answer at all from the server, the connection broke,
    /// the session expired, our answer was never acknowledged.
    NetworkLost,
}

impl From<handset::EndReason> for EndReason {
    fn from(reason: handset::EndReason) -> Self {
        use handset::EndReason as R;
        match reason {
            R::LocalHangup => Self::LocalHangup,
            R::RemoteHangup => Self::RemoteHangup,
            R::Busy => Self::Busy,
            R::Declined => Self::Declined,
            R::Unanswered => Self::Unanswered,
            R::Cancelled => Self::Cancelled,
            R::AnsweredElsewhere => Self::AnsweredElsewhere,
            R::DeclinedElsewhere => Self::DeclinedElsewhere,
            R::Failed { status } => Self::Failed { status },
            R::NetworkLost => Self::NetworkLost,
        }
    }
}

/// Statistics and quality of a call's audio, under the WebRTC `getStats()` names.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct CallQuality {
    /// `packetsReceived`.
    pub packets_received: u64,
    /// `packetsLost` (may be negative with duplicates).
    pub packets_lost: i64,
    /// `jitter`, seconds.
    pub jitter: f64,
    /// `jitterBufferDelay`, seconds summed over emitted samples.
    pub jitter_buffer_delay: f64,
    /// `jitterBufferEmittedCount`.
    pub jitter_buffer_emitted_count: u64,
    /// `concealedSamples`.
    pub concealed_samples: u64,
    /// `totalSamplesReceived`.
    pub total_samples_received: u64,
    /// `roundTripTime`, seconds, once measured.
    pub round_trip_time: Option<f64>,
    /// `packetsSent`.
    pub packets_sent: u64,
    /// `bytesSent`.
    pub bytes_sent: u64,
    /// `bytesReceived`.
    pub bytes_received: u64,
    /// E-model MOS estimate of what we received (1..4.5).
    pub mos: f64,
    /// Codec in use.
    pub codec: String,
    /// Whether SRTP protected the media.
    pub srtp: bool,
}

impl From<CoreQuality> for CallQuality {
    fn from(q: CoreQuality) -> Self {
        let s = q.stats;
        Self {
            packets_received: s.packets_received,
            packets_lost: s.packets_lost,
            jitter: s.jitter,
            jitter_buffer_delay: s.jitter_buffer_delay,
            jitter_buffer_emitted_count: s.jitter_buffer_emitted_count,
            concealed_samples: s.concealed_samples,
            total_samples_received: s.total_samples_received,
            round_trip_time: s.round_trip_time,
            packets_sent: s.packets_sent,
            bytes_sent: s.bytes_sent,
            bytes_received: s.bytes_received,
            mos: q.mos,
            codec: q.codec,
            srtp: q.srtp,
        }
    }
}

/// What just happened to a call (mirrors `handset_phone::phone::CallUpdate`; the call's
/// account is [`crate::Call::account_id`]).
#[derive(Debug, Clone, PartialEq, uniffi::Enum)]
pub enum CallUpdate {
    /// A call came in: answer or reject it.
    Incoming {
        /// The caller's address.
        from: String,
        /// The caller's display name, if sent.
        display_name: Option<String>,
        /// The caller's name from the contacts in the phone's database, if known.
        contact_name: Option<String>,
        /// The call's CallKit / Telecom id (a UUID): the id of the push report that announced
        /// it ([`IncomingCallReport::report_id`], already shown under it), else one derived
        /// from its Call-ID the same way, so a push that comes after the INVITE names the
        /// same id.
        report_id: String,
        /// A VoIP push announced the call: its report is already on CallKit / Telecom.
        pushed: bool,
        /// The INVITE's Call-ID.
        sip_call_id: String,
    },
    /// We are calling: the call exists (its INVITE goes out once the network is ready).
    Dialing {
        /// The address called.
        to: String,
        /// The call's CallKit / Telecom id (a random UUID).
        report_id: String,
    },
    /// The callee is being alerted.
    Ringing,
    /// Early media flows.
    EarlyMedia,
    /// Answered; media flows.
    Answered {
        /// Negotiated codec.
        codec: String,
        /// Whether SRTP protects the media.
        srtp: bool,
    },
    /// A DTMF digit arrived.
    Dtmf {
        /// The digit (`0-9`, `*`, `#`, `A-D`).
        digit: String,
    },
    /// Put on hold or resumed by either side.
    Hold {
        /// Whether the call is now on hold.
        on_hold: bool,
    },
    /// ICE chose the path the call's media takes (calls with ICE; again when it changes).
    MediaPath {
        /// Through the TURN relay, rather than straight between the two ends.
        relayed: bool,
    },
    /// The call ended.
    Ended {
        /// Why.
        reason: EndReason,
        /// Media statistics, when media flowed.
        quality: Option<CallQuality>,
    },
}

impl From<handset::CallUpdate> for CallUpdate {
    fn from(update: handset::CallUpdate) -> Self {
        use handset::CallUpdate as U;
        match update {
            U::Incoming {
                account: _,
                from,
                display_name,
                contact_name,
                report_id,
                pushed,
                sip_call_id,
            } => Self::Incoming {
                from,
                display_name,
                contact_name,
                report_id: report_id.to_string(),
                pushed,
                sip_call_id,
            },
            U::Dialing {
                account: _,
                to,
                report_id,
            } => Self::Dialing {
                to,
                report_id: report_id.to_string(),
            },
            U::Ringing => Self::Ringing,
            U::EarlyMedia => Self::EarlyMedia,
            U::Answered { codec, srtp } => Self::Answered { codec, srtp },
            U::Dtmf { digit } => Self::Dtmf {
                digit: digit.to_string(),
            },
            U::Hold { on_hold } => Self::Hold { on_hold },
            U::MediaPath { relayed } => Self::MediaPath { relayed },
            U::Ended { reason, quality } => Self::Ended {
                reason: reason.into(),
                quality: quality.map(Into::into),
            },
        }
    }
}

/// A call's state as the user sees it (mirrors `handset_phone::phone::CallState`): the
/// current value is sent first to every subscriber.
#[derive(Debug, Clone, PartialEq, uniffi::Enum)]
pub enum CallState {
    /// Ringing here: answer or reject it.
    Incoming,
    /// Our INVITE is on its way (or about to be).
    Calling,
    /// The callee is being alerted.
    Ringing,
    /// Early media flows.
    EarlyMedia,
    /// Answered.
    Active {
        /// Negotiated codec.
        codec: String,
        /// Whether SRTP protects the media.
        srtp: bool,
        /// Whether either side put the call on hold.
        on_hold: bool,
    },
    /// Over.
    Ended {
        /// Why.
        reason: EndReason,
        /// Media statistics, when media flowed.
        quality: Option<CallQuality>,
    },
}

impl From<handset::CallState> for CallState {
    fn from(state: handset::CallState) -> Self {
        use handset::CallState as S;
        match state {
            S::Incoming => Self::Incoming,
            S::Calling => Self::Calling,
            S::Ringing => Self::Ringing,
            S::EarlyMedia => Self::EarlyMedia,
            S::Active {
                codec,
                srtp,
                on_hold,
            } => Self::Active {
                codec,
                srtp,
                on_hold,
            },
            S::Ended { reason, quality } => Self::Ended {
                reason: reason.into(),
                quality: quality.map(Into::into),
            },
        }
    }
}

impl CallState {
    /// Whether the call is over.
    pub(crate) fn is_ended(&self) -> bool {
        matches!(self, Self::Ended { .. })
    }
}
// ---------------------------------------------------------------------------------------------
// Platform data

/// A contact from the platform's address book.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Contact {
    /// The platform's id of the contact.
    pub id: String,
    /// Name shown.
    pub display_name: String,
    /// Phone numbers as written in the address book.
    pub phone_numbers: Vec<String>,
    /// SIP addresses.
    pub sip_addresses: Vec<String>,
    /// The labels of `phone_numbers`, in the same order ("mobile", "work"...); missing or
    /// empty labels are allowed.
    #[uniffi(default = [])]
    pub phone_labels: Vec<String>,
    /// E-mail addresses.
    #[uniffi(default = [])]
    pub emails: Vec<String>,
    /// Company / organization.
    #[uniffi(default = None)]
    pub company: Option<String>,
}

/// What to report to CallKit / Telecom from inside the push handler, before returning.
/// `Debug` does not show the caller.
#[derive(Clone, PartialEq, Eq, uniffi::Record)]
pub struct IncomingCallReport {
    /// The CallKit UUID / Telecom id, as UUID text (derived from the Call-ID, so a push
    /// delivered twice gives the same id); the call's `Incoming` update names it too.
    pub report_id: String,
    /// Call-ID of the INVITE the PBX will send.
    pub call_id: String,
    /// The caller's number or user name.
    pub caller_number: String,
    /// The caller's display name from the push, if sent.
    pub caller_name: Option<String>,
    /// The caller's name from the contacts in the phone's database, if known.
    pub contact_name: Option<String>,
    /// The PBX serial / id, if sent.
    pub pbx: Option<String>,
    /// The call offers video.
    pub video: bool,
    /// Set when the push already says the call is over (a cancel push): report it and end it
    /// at once with this reason (iOS requires a report for every VoIP push).
    pub already_ended: Option<EndReason>,
}

impl fmt::Debug for IncomingCallReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IncomingCallReport")
            .field("report_id", &self.report_id)
            .field("call_id", &self.call_id)
            .field("pbx", &self.pbx)
            .field("video", &self.video)
            .field("already_ended", &self.already_ended)
            .finish_non_exhaustive()
    }
}

impl From<handset::PushReport> for IncomingCallReport {
    fn from(p: handset::PushReport) -> Self {
        let r = p.report;
        IncomingCallReport {
            report_id: r.report_id.to_string(),
            call_id: r.call_id,
            caller_number: r.caller_number,
            caller_name: r.caller_name,
            contact_name: p.contact_name,
            pbx: r.pbx,
            video: r.video,
            already_ended: r.already_ended.map(Into::into),
        }
    }
}

/// The audio routes: what the platform offers and what the current call uses.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct AudioRouteState {
    /// Available routes, in a stable order.
    pub available: Vec<AudioRoute>,
    /// The route of the current call (`None` outside a call).
    pub selected: Option<AudioRoute>,
}

/// Phone-wide events that are not a registration or call state.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum PhoneEvent {
    /// A call reported from a push ended before its INVITE arrived (cancel push, no INVITE in
    /// time, declined on the ringing screen): end it on CallKit / Telecom. It is in the
    /// history (as missed unless it was declined or taken on another device). Calls whose
    /// INVITE arrived end through their own `Ended` update instead.
    PushReportEnded {
        /// The report's id.
        report_id: String,
        /// Why, in the same terms as a call's end.
        reason: EndReason,
    },
    /// A blocked number called; it was refused with 603 Decline and logged.
    CallBlocked {
        /// The account it came in on.
        account_id: String,
        /// The caller's address.
        from: String,
    },
    /// An account was removed.
    AccountRemoved {
        /// Its id.
        account_id: String,
    },
    /// An instant message (SIP MESSAGE, plain text) arrived.
    MessageReceived {
        /// The account it came in on.
        account_id: String,
        /// The sender's address.
        from: String,
        /// The sender's display name, if sent.
        display_name: Option<String>,
        /// The sender's name from the contacts in the phone's database, if known.
        contact_name: Option<String>,
        /// The text.
        text: String,
    },
    /// The voicemail server sent the account's message-waiting state.
    Voicemail {
        /// The account.
        account_id: String,
        /// Messages are waiting (the lamp).
        messages_waiting: bool,
        /// New voice messages.
        new_messages: u32,
        /// Old (heard) voice messages.
        old_messages: u32,
        /// New urgent voice messages.
        urgent_new: u32,
        /// Old urgent voice messages.
        urgent_old: u32,
    },
    /// The phone stopped for good (an internal error); every later call fails with
    /// [`crate::HandsetError::Stopped`].
    Stopped {
        /// What happened.
        reason: String,
    },
}

/// Which push service a token belongs to (mirrors `handset_phone::push::PushProvider`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum PushService {
    /// Firebase Cloud Messaging (Android).
    Fcm,
    /// Apple Push Notification service, PushKit VoIP pushes (iOS).
    Apns,
}

impl From<PushService> for PushProvider {
    fn from(s: PushService) -> Self {
        match s {
            PushService::Fcm => Self::Fcm,
            PushService::Apns => Self::Apns,
        }
    }
}

impl From<PushProvider> for PushService {
    fn from(p: PushProvider) -> Self {
        match p {
            PushProvider::Fcm => Self::Fcm,
            PushProvider::Apns => Self::Apns,
        }
    }
}

/// The device's current push registration, as the platform's `PushTokenProvider` gives it.
/// Accounts with [`AccountConfig::push`] put it in their REGISTER Contact (RFC 8599).
#[derive(Clone, PartialEq, Eq, uniffi::Record)]
pub struct PushToken {
    /// The service.
    pub service: PushService,
    /// The device token, `pn-prid` (personal data: never logged).
    pub token: String,
    /// `pn-param`: APNs `TEAMID.bundle.id.voip`; FCM the project id (may be empty).
    pub param: String,
}

impl std::fmt::Debug for PushToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushToken")
            .field("service", &self.service)
            .field("token", &"<redacted>")
            .field("param", &self.param)
            .finish()
    }
}

/// Where call audio is heard (mirrors `handset_phone::screen::AudioRoute`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum AudioRoute {
    /// The handset earpiece (phone at the ear).
    Earpiece,
    /// The loudspeaker.
    Speaker,
    /// A Bluetooth headset or car kit.
    Bluetooth,
    /// A wired headset or headphones.
    WiredHeadset,
}

impl From<AudioRoute> for screen::AudioRoute {
    fn from(r: AudioRoute) -> Self {
        match r {
            AudioRoute::Earpiece => Self::Earpiece,
            AudioRoute::Speaker => Self::Speaker,
            AudioRoute::Bluetooth => Self::Bluetooth,
            AudioRoute::WiredHeadset => Self::WiredHeadset,
        }
    }
}

impl From<screen::AudioRoute> for AudioRoute {
    fn from(r: screen::AudioRoute) -> Self {
        match r {
            screen::AudioRoute::Earpiece => Self::Earpiece,
            screen::AudioRoute::Speaker => Self::Speaker,
            screen::AudioRoute::Bluetooth => Self::Bluetooth,
            screen::AudioRoute::WiredHeadset => Self::WiredHeadset,
        }
    }
}

/// What the proximity sensor reports (mirrors `handset_phone::screen::Proximity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum Proximity {
    /// Something (an ear, a pocket) is close to the screen.
    Near,
    /// Nothing is close.
    Far,
    /// No reading yet, or no sensor.
    Unknown,
}

impl From<Proximity> for screen::Proximity {
    fn from(p: Proximity) -> Self {
        match p {
            Proximity::Near => Self::Near,
            Proximity::Far => Self::Far,
            Proximity::Unknown => Self::Unknown,
        }
    }
}

/// Device orientation (mirrors `handset_phone::screen::Orientation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum Orientation {
    /// Upright.
    Portrait,
    /// On its side.
    Landscape,
    /// Lying flat, screen up.
    FaceUp,
    /// Lying flat, screen down.
    FaceDown,
}

impl From<Orientation> for screen::Orientation {
    fn from(o: Orientation) -> Self {
        match o {
            Orientation::Portrait => Self::Portrait,
            Orientation::Landscape => Self::Landscape,
            Orientation::FaceUp => Self::FaceUp,
            Orientation::FaceDown => Self::FaceDown,
        }
    }
}

/// One change of a call screen input reported by the platform (the call state input comes
/// from the phone's own calls). Mirrors `handset_phone::screen::ScreenInput`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum CallScreenInput {
    /// The audio route in use changed.
    Route {
        /// The route now in use.
        route: AudioRoute,
    },
    /// The proximity sensor changed.
    Proximity {
        /// Its reading.
        proximity: Proximity,
    },
    /// The orientation changed.
    Orientation {
        /// The new orientation.
        orientation: Orientation,
    },
    /// The app went to the foreground (`true`) or background.
    Foreground {
        /// Whether one of the app's screens is visible.
        foreground: bool,
    },
    /// The lock screen appeared or went away.
    DeviceLocked {
        /// Whether the keyguard shows.
        locked: bool,
    },
    /// The in-call keypad was shown or hidden.
    KeypadShown {
        /// Whether it is shown.
        shown: bool,
    },
}

impl From<CallScreenInput> for screen::ScreenInput {
    fn from(i: CallScreenInput) -> Self {
        match i {
            CallScreenInput::Route { route } => Self::Route(route.into()),
            CallScreenInput::Proximity { proximity } => Self::Proximity(proximity.into()),
            CallScreenInput::Orientation { orientation } => Self::Orientation(orientation.into()),
            CallScreenInput::Foreground { foreground } => Self::Foreground(foreground),
            CallScreenInput::DeviceLocked { locked } => Self::DeviceLocked(locked),
            CallScreenInput::KeypadShown { shown } => Self::KeypadShown(shown),
        }
    }
}

/// How to present an incoming call (mirrors `handset_phone::screen::IncomingUi`; its `None`
/// is `Hidden` here, clear of Swift's `Optional.none`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum IncomingUi {
    /// Nothing (no incoming call).
    Hidden,
    /// A heads-up notification / CallKit banner.
    Notification,
    /// A full-screen ringing screen (over the lock screen when locked).
    FullScreen,
}

impl From<screen::IncomingUi> for IncomingUi {
    fn from(i: screen::IncomingUi) -> Self {
        match i {
            screen::IncomingUi::None => Self::Hidden,
            screen::IncomingUi::Notification => Self::Notification,
            screen::IncomingUi::FullScreen => Self::FullScreen,
        }
    }
}

/// What the shell must do with the screen, decided by `handset_phone::screen` (see its rule
/// table): mirrors `ScreenDecision`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct CallScreenDecision {
    /// Hold the proximity wake lock (the OS turns the screen off while near).
    pub screen_off_by_proximity: bool,
    /// Draw black and ignore touches (devices without the proximity wake lock).
    pub blank_screen: bool,
    /// Keep the screen on.
    pub keep_screen_on: bool,
    /// The call screens may rotate.
    pub rotation_allowed: bool,
    /// The in-call screen is the app's top screen.
    pub show_in_call_ui: bool,
    /// How to present an incoming call.
    pub show_incoming_ui: IncomingUi,
}

impl From<screen::ScreenDecision> for CallScreenDecision {
    fn from(d: screen::ScreenDecision) -> Self {
        Self {
            screen_off_by_proximity: d.screen_off_by_proximity,
            blank_screen: d.blank_screen,
            keep_screen_on: d.keep_screen_on,
            rotation_allowed: d.rotation_allowed,
            show_in_call_ui: d.show_in_call_ui,
            show_incoming_ui: d.show_incoming_ui.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every core end reason has its own FFI variant, carried unchanged (the shells' tables
    /// rely on seeing exactly the core's classification).
    #[test]
    fn end_reasons_mirror_the_core_one_to_one() {
        use handset::EndReason as R;
        let table = [
            (R::LocalHangup, EndReason::LocalHangup),
            (R::RemoteHangup, EndReason::RemoteHangup),
            (R::Busy, EndReason::Busy),
            (R::Declined, EndReason::Declined),
            (R::Unanswered, EndReason::Unanswered),
            (R::Cancelled, EndReason::Cancelled),
            (R::AnsweredElsewhere, EndReason::AnsweredElsewhere),
            (R::DeclinedElsewhere, EndReason::DeclinedElsewhere),
            (
                R::Failed { status: Some(404) },
                EndReason::Failed { status: Some(404) },
            ),
            (
                R::Failed { status: None },
                EndReason::Failed { status: None },
            ),
            (R::NetworkLost, EndReason::NetworkLost),
        ];
        for (core, ours) in table {
            assert_eq!(EndReason::from(core), ours, "{core:?}");
        }
    }

    #[test]
    fn call_states_and_updates_mirror_the_core() {
        use handset::{CallState as S, CallUpdate as U, ReportId};
        assert_eq!(
            CallState::from(S::Active {
                codec: "PCMU".into(),
                srtp: true,
                on_hold: true,
            }),
            CallState::Active {
                codec: "PCMU".into(),
                srtp: true,
                on_hold: true
            }
        );
        assert_eq!(
            CallState::from(S::Ended {
                reason: handset::EndReason::Busy,
                quality: None,
            }),
            CallState::Ended {
                reason: EndReason::Busy,
                quality: None
            }
        );
        let report_id = ReportId::for_call_id("a84b@pbx");
        let incoming = CallUpdate::from(U::Incoming {
            account: handset::AccountId(3),
            from: "sip:alice@pbx".into(),
            display_name: Some("Alice".into()),
            contact_name: None,
            report_id,
            pushed: true,
            sip_call_id: "a84b@pbx".into(),
        });
        assert_eq!(
            incoming,
            CallUpdate::Incoming {
                from: "sip:alice@pbx".into(),
                display_name: Some("Alice".into()),
                contact_name: None,
                report_id: report_id.to_string(),
                pushed: true,
                sip_call_id: "a84b@pbx".into(),
            }
        );
        assert_eq!(
            CallUpdate::from(U::Dtmf { digit: '#' }),
            CallUpdate::Dtmf { digit: "#".into() }
        );
    }

    #[test]
    fn registration_states_mirror_the_core() {
        use handset::RegistrationState as S;
        assert_eq!(
            RegistrationState::from(&S::Registered { expires: 300 }),
            RegistrationState::Registered { expires_secs: 300 }
        );
        let failed = RegistrationState::from(&S::Failed {
            reason: handset::RegistrationFailure::Timeout,
            detail: Some("no answer".into()),
            retry_in: Some(Duration::from_secs(30)),
        });
        assert_eq!(
            failed,
            RegistrationState::Failed {
                reason: RegistrationFailure::Timeout,
                message: handset::RegistrationFailure::Timeout.to_string(),
                detail: Some("no answer".into()),
                retry_in_ms: Some(30_000),
            }
        );
    }

    #[test]
    fn media_config_round_trips_through_the_core() {
        let core = sdp::MediaConfig::default();
        let ours = MediaConfig::from(core.clone());
        assert_eq!(sdp::MediaConfig::from(ours), core);
    }

    #[test]
    fn secrets_and_tokens_do_not_print() {
        let s = StoredSecret::Password {
            password: "hunter2".into(),
        };
        assert!(!format!("{s:?}").contains("hunter2"));
        let t = PushToken {
            service: PushService::Fcm,
            token: "tok123".into(),
            param: "project".into(),
        };
        assert!(!format!("{t:?}").contains("tok123"));
    }

    #[test]
    fn screen_decisions_mirror_the_core() {
        let d = CallScreenDecision::from(screen::CallScreen::new().decision());
        assert_eq!(d.show_incoming_ui, IncomingUi::Hidden);
        assert!(d.rotation_allowed && !d.screen_off_by_proximity && !d.show_in_call_ui);
    }
}
