//! SDP: the session description protocol (RFC 8866, which obsoletes RFC 4566) and the
//! offer/answer model (RFC 3264), for a softphone that talks to enterprise PBXs (Asterisk,
//! FreeSWITCH, Yeastar, Kamailio + rtpengine), baresip, linphone and WebRTC-style peers.
//!
//! Three layers:
//!
//! 1. **Text** ([`SessionDescription::parse`], [`SessionDescription::print`]): every line type of
//!    RFC 8866 is read into a plain struct; attributes are kept verbatim and in order, including
//!    the ones this module does not know. Parsing accepts LF-only line endings, trailing
//!    whitespace, blank lines and any order of the session-level lines, but rejects what is not
//!    SDP (no `v=0` first, missing `o=`/`s=`, unknown line types, bad ports and addresses,
//!    malformed values of the attributes listed below). Printing always uses CRLF, and
//!    `parse(print(x)) == x` for every `x` that `parse` returned.
//! 2. **Typed attributes** ([`TypedAttribute`], [`Rtpmap`], [`Crypto`], [`Fingerprint`], ...):
//!    rtpmap, fmtp, ptime, maxptime, the four direction flags, rtcp (RFC 3605), rtcp-mux, crypto
//!    (RFC 4568), fingerprint and setup (RFC 8122 / RFC 4145), ice-ufrag, ice-pwd, candidate
//!    (kept as text), mid and ssrc (RFC 5576). Accessors on [`MediaDescription`] and
//!    [`SessionDescription`] return them; a media-level direction overrides the session-level one.
//! 3. **Offer/answer** ([`create_offer`], [`answer`], [`process_answer`]): one audio stream with
//!    Opus, PCMU and PCMA, telephone-event, plain RTP, SDES-SRTP or DTLS-SRTP; the result is a
//!    [`Negotiated`] that the media session is configured from.
//!
//! Everything here is sans-IO: randomness comes in as an `Rng` argument and nothing reads the
//! clock. Malformed input is an error value, never a panic. Key material never appears in
//! `Debug` output ([`SdesKey`], a=crypto and a=ice-pwd attributes print `<redacted>`); the
//! *printed* SDP of course carries the keys, so callers must not log SDP bodies.

mod attributes;
mod offer_answer;
#[cfg(test)]
mod tests;

pub use attributes::*;
pub use offer_answer::*;

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// A malformed session description or attribute, with the 1-based line it was found on
/// (0 when the error comes from a typed accessor rather than from [`SessionDescription::parse`]).
///
/// The error never quotes the input, so it is safe to log even when the SDP carries keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("SDP line {line}: {kind}")]
pub struct SdpError {
    /// 1-based line number in the parsed text, 0 when not tied to a line.
    pub line: usize,
    /// What was wrong.
    pub kind: SdpErrorKind,
}

impl SdpError {
    pub(crate) fn at(line: usize, kind: SdpErrorKind) -> Self {
        Self { line, kind }
    }
}

impl From<SdpErrorKind> for SdpError {
    fn from(kind: SdpErrorKind) -> Self {
        Self { line: 0, kind }
    }
}

/// The kinds of [`SdpError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SdpErrorKind {
    /// The body is not UTF-8.
    #[error("not UTF-8")]
    NotUtf8,
    /// The body has no lines at all.
    #[error("empty description")]
    Empty,
    /// A line is not `<letter>=<value>`.
    #[error("line is not <type>=<value>")]
    BadLine,
    /// A control character (NUL, bare CR, ...) inside a line.
    #[error("control character in line")]
    ControlCharacter,
    /// A type letter that RFC 8866 does not define.
    #[error("unknown line type")]
    UnknownLineType,
    /// A line where it may not appear (session-only line after m=, r= before t=, second v=).
    #[error("line out of place")]
    OutOfPlace,
    /// A line that may appear once appears twice.
    #[error("duplicate line")]
    Duplicate,
    /// The first line is not `v=`.
    #[error("first line must be v=0")]
    MissingVersion,
    /// `v=` other than 0.
    #[error("unsupported SDP version")]
    BadVersion,
    /// No `o=` line.
    #[error("missing o= line")]
    MissingOrigin,
    /// No `s=` line.
    #[error("missing s= line")]
    MissingSessionName,
    /// Malformed `o=`.
    #[error("bad o= line")]
    BadOrigin,
    /// Malformed `c=` (network type, address type or address).
    #[error("bad c= line")]
    BadConnection,
    /// Malformed `b=`.
    #[error("bad b= line")]
    BadBandwidth,
    /// Malformed `t=` or `r=`.
    #[error("bad t= or r= line")]
    BadTiming,
    /// Malformed `m=` (media, proto or formats).
    #[error("bad m= line")]
    BadMedia,
    /// Malformed port or port count in `m=`.
    #[error("bad m= port")]
    BadPort,
    /// Malformed attribute name, or a value on a flag attribute.
    #[error("bad attribute")]
    BadAttribute,
    /// Malformed `a=rtpmap`.
    #[error("bad a=rtpmap")]
    BadRtpmap,
    /// Malformed `a=fmtp`.
    #[error("bad a=fmtp")]
    BadFmtp,
    /// Malformed `a=ptime` or `a=maxptime`.
    #[error("bad a=ptime or a=maxptime")]
    BadPtime,
    /// Malformed `a=rtcp`.
    #[error("bad a=rtcp")]
    BadRtcp,
    /// Malformed `a=crypto` (tag, suite, key method, lifetime, MKI).
    #[error("bad a=crypto")]
    BadCrypto,
    /// The inline key of a supported crypto suite is not base64 of 30 bytes.
    #[error("bad a=crypto key (base64 or length)")]
    BadCryptoKey,
    /// Malformed `a=fingerprint`.
    #[error("bad a=fingerprint")]
    BadFingerprint,
    /// `a=setup` other than active/passive/actpass/holdconn.
    #[error("bad a=setup")]
    BadSetup,
    /// Empty or malformed `a=ice-ufrag`, `a=ice-pwd`, `a=candidate` or `a=mid`.
    #[error("bad ICE or mid attribute")]
    BadIce,
    /// Malformed `a=ssrc`.
    #[error("bad a=ssrc")]
    BadSsrc,
}

/// Address type of `c=`, `o=` and `a=rtcp` (RFC 8866 §5.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddrType {
    /// `IP4`.
    Ip4,
    /// `IP6`.
    Ip6,
}

impl AddrType {
    /// The SDP token, `IP4` or `IP6`.
    pub fn as_str(self) -> &'static str {
        match self {
            AddrType::Ip4 => "IP4",
            AddrType::Ip6 => "IP6",
        }
    }

    /// The address type of an IP address.
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => AddrType::Ip4,
            IpAddr::V6(_) => AddrType::Ip6,
        }
    }

    fn parse(s: &str) -> Option<Self> {
        if s.eq_ignore_ascii_case("IP4") {
            Some(AddrType::Ip4)
        } else if s.eq_ignore_ascii_case("IP6") {
            Some(AddrType::Ip6)
        } else {
            None
        }
    }
}

/// `o=<username> <sess-id> <sess-version> IN <addrtype> <address>` (RFC 8866 §5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// User name, `-` when there is none.
    pub username: String,
    /// Session id, kept as written (a numeric string in practice).
    pub session_id: String,
    /// Session version; must increase whenever the description changes (RFC 3264 §8).
    pub session_version: u64,
    /// Address type of `address`.
    pub addr_type: AddrType,
    /// Address of the originating host (IP literal or host name).
    pub address: String,
}

/// `c=IN <addrtype> <address>` (RFC 8866 §5.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// Address type.
    pub addr_type: AddrType,
    /// The address as written: an IP literal, a host name, or a multicast address with
    /// `/ttl[/count]`.
    pub address: String,
}

impl Connection {
    /// A connection line for an IP address.
    pub fn from_ip(ip: IpAddr) -> Self {
        Self {
            addr_type: AddrType::of(ip),
            address: ip.to_string(),
        }
    }

    /// The IP address, if the address is an IP literal (the `/ttl` suffix is ignored).
    pub fn ip(&self) -> Option<IpAddr> {
        let host = self.address.split('/').next().unwrap_or("");
        host.parse().ok()
    }

    /// `0.0.0.0` or `::`: the RFC 2543 way of putting a call on hold (or of an ICE agent that
    /// has no candidate yet).
    pub fn is_unspecified(&self) -> bool {
        self.ip().is_some_and(|ip| ip.is_unspecified())
    }
}

/// `b=<bwtype>:<bandwidth>` (RFC 8866 §5.8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bandwidth {
    /// Bandwidth type, e.g. `AS`, `CT`, `TIAS`, `RS`, `RR`.
    pub bwtype: String,
    /// Value (kbit/s for AS and CT, bit/s for TIAS).
    pub bandwidth: u64,
}

/// `t=<start> <stop>` with its `r=` lines (RFC 8866 §5.9, §5.10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timing {
    /// Start time (NTP seconds), 0 for unbounded.
    pub start: u64,
    /// Stop time (NTP seconds), 0 for unbounded.
    pub stop: u64,
    /// The `r=` lines that follow, verbatim.
    pub repeats: Vec<String>,
}

/// One `a=` line: `a=<name>` or `a=<name>:<value>`, kept verbatim.
///
/// `Debug` hides the key of `a=crypto` and the value of `a=ice-pwd`.
#[derive(Clone, PartialEq, Eq)]
pub struct Attribute {
    /// Attribute name (case as written).
    pub name: String,
    /// Value after the first `:`, or `None` for a flag attribute.
    pub value: Option<String>,
}

impl Attribute {
    /// `a=<name>:<value>`.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: Some(value.into()),
        }
    }

    /// `a=<name>` (a flag such as `rtcp-mux` or `sendrecv`).
    pub fn flag(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: None,
        }
    }

    /// Whether this attribute is called `name` (ASCII case-insensitive).
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }
}

impl fmt::Debug for Attribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value: Option<String> = match &self.value {
            None => None,
            Some(v) if self.is("ice-pwd") => Some(if v.is_empty() {
                String::new()
            } else {
                "<redacted>".to_owned()
            }),
            Some(v) if self.is("crypto") => {
                // Keep "tag suite", hide key parameters and anything after.
                let mut parts = v.split_whitespace();
                let tag = parts.next().unwrap_or("");
                let suite = parts.next().unwrap_or("");
                Some(format!("{tag} {suite} <redacted>"))
            }
            Some(v) => Some(v.clone()),
        };
        f.debug_struct("Attribute")
            .field("name", &self.name)
            .field("value", &value)
            .finish()
    }
}

impl fmt::Display for Attribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(v) => write!(f, "{}:{}", self.name, v),
            None => f.write_str(&self.name),
        }
    }
}

/// The media type of an `m=` line.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// `audio`.
    Audio,
    /// `video`.
    Video,
    /// `text`.
    Text,
    /// `application`.
    Application,
    /// `message`.
    Message,
    /// `image` (T.38).
    Image,
    /// Any other token, as written (never one of the names above).
    Other(String),
}

impl MediaKind {
    /// The SDP token.
    pub fn as_str(&self) -> &str {
        match self {
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
            MediaKind::Text => "text",
            MediaKind::Application => "application",
            MediaKind::Message => "message",
            MediaKind::Image => "image",
            MediaKind::Other(s) => s,
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "audio" => MediaKind::Audio,
            "video" => MediaKind::Video,
            "text" => MediaKind::Text,
            "application" => MediaKind::Application,
            "message" => MediaKind::Message,
            "image" => MediaKind::Image,
            other => MediaKind::Other(other.to_owned()),
        }
    }
}

/// One media section: the `m=` line and the `i=`, `c=`, `b=`, `k=`, `a=` lines after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDescription {
    /// Media type.
    pub kind: MediaKind,
    /// Transport port; 0 means the stream is rejected or disabled (RFC 3264 §6, §8.2).
    pub port: u16,
    /// The `/<number of ports>` suffix, if present.
    pub port_count: Option<u16>,
    /// Transport protocol as written, e.g. `RTP/AVP`, `RTP/SAVP`, `UDP/TLS/RTP/SAVPF`.
    pub proto: String,
    /// Media formats; RTP payload type numbers for the RTP profiles.
    pub formats: Vec<String>,
    /// `i=` media title.
    pub title: Option<String>,
    /// Media-level `c=`; overrides the session-level one.
    pub connection: Option<Connection>,
    /// `b=` lines.
    pub bandwidths: Vec<Bandwidth>,
    /// `k=` (obsolete), verbatim.
    pub key: Option<String>,
    /// `a=` lines in order.
    pub attributes: Vec<Attribute>,
}

impl MediaDescription {
    /// A media section with no lines besides `m=`.
    pub fn new(kind: MediaKind, port: u16, proto: impl Into<String>, formats: Vec<String>) -> Self {
        Self {
            kind,
            port,
            port_count: None,
            proto: proto.into(),
            formats,
            title: None,
            connection: None,
            bandwidths: Vec::new(),
            key: None,
            attributes: Vec::new(),
        }
    }

    /// Whether the proto is an RTP profile (`RTP/AVP`, `RTP/SAVPF`, `UDP/TLS/RTP/SAVP`, ...),
    /// whose formats are payload type numbers.
    pub fn is_rtp(&self) -> bool {
        is_rtp_proto(&self.proto)
    }

    /// The formats that are payload type numbers (0..=127), in order.
    pub fn payload_types(&self) -> Vec<u8> {
        self.formats.iter().filter_map(|f| parse_pt(f)).collect()
    }

    /// The first `a=<name>` attribute's value (`Some("")` for a flag), if present.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        attr_value(&self.attributes, name)
    }

    /// Whether an `a=<name>` attribute is present.
    pub fn has_attribute(&self, name: &str) -> bool {
        self.attributes.iter().any(|a| a.is(name))
    }
}

/// A whole session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    /// `o=`.
    pub origin: Origin,
    /// `s=` (may be empty; printed as `s= ` then).
    pub session_name: String,
    /// `i=`.
    pub information: Option<String>,
    /// `u=`.
    pub uri: Option<String>,
    /// `e=` lines.
    pub emails: Vec<String>,
    /// `p=` lines.
    pub phones: Vec<String>,
    /// Session-level `c=`.
    pub connection: Option<Connection>,
    /// Session-level `b=` lines.
    pub bandwidths: Vec<Bandwidth>,
    /// `t=` lines with their `r=` lines (SIP uses one `t=0 0`).
    pub timings: Vec<Timing>,
    /// `z=`, verbatim.
    pub time_zones: Option<String>,
    /// Session-level `k=` (obsolete), verbatim.
    pub key: Option<String>,
    /// Session-level `a=` lines in order.
    pub attributes: Vec<Attribute>,
    /// Media sections in order.
    pub media: Vec<MediaDescription>,
}

impl SessionDescription {
    /// A minimal description: `v=0`, the given `o=`, `s=-`, `t=0 0`, nothing else.
    pub fn new(origin: Origin) -> Self {
        Self {
            origin,
            session_name: "-".to_owned(),
            information: None,
            uri: None,
            emails: Vec::new(),
            phones: Vec::new(),
            connection: None,
            bandwidths: Vec::new(),
            timings: vec![Timing {
                start: 0,
                stop: 0,
                repeats: Vec::new(),
            }],
            time_zones: None,
            key: None,
            attributes: Vec::new(),
            media: Vec::new(),
        }
    }

    /// Parses a body received as bytes (a SIP message body).
    pub fn parse_bytes(body: &[u8]) -> Result<Self, SdpError> {
        let text = std::str::from_utf8(body).map_err(|_| SdpError::at(0, SdpErrorKind::NotUtf8))?;
        Self::parse(text)
    }

    /// Parses SDP text. See the module documentation for what is tolerated.
    pub fn parse(text: &str) -> Result<Self, SdpError> {
        parse_description(text)
    }

    /// Prints with CRLF line endings.
    pub fn print(&self) -> String {
        self.to_string()
    }

    /// The first session-level `a=<name>` value (`Some("")` for a flag), if present.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        attr_value(&self.attributes, name)
    }

    /// The connection that applies to `media`: its own `c=`, else the session-level one.
    pub fn connection_for<'a>(&'a self, media: &'a MediaDescription) -> Option<&'a Connection> {
        media.connection.as_ref().or(self.connection.as_ref())
    }

    /// The direction that applies to `media`: its own direction attribute, else the
    /// session-level one, else `sendrecv` (RFC 8866 §6.7).
    pub fn direction_for(&self, media: &MediaDescription) -> Direction {
        media
            .direction()
            .or_else(|| self.direction())
            .unwrap_or(Direction::SendRecv)
    }
}

impl FromStr for SessionDescription {
    type Err = SdpError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

pub(crate) fn attr_value<'a>(attrs: &'a [Attribute], name: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|a| a.is(name))
        .map(|a| a.value.as_deref().unwrap_or(""))
}

pub(crate) fn is_rtp_proto(proto: &str) -> bool {
    proto.to_ascii_uppercase().split('/').any(|p| p == "RTP")
}

pub(crate) fn parse_pt(s: &str) -> Option<u8> {
    if s.is_empty() || s.len() > 3 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u8>().ok().filter(|pt| *pt <= 127)
}

/// RFC 8866 `token` characters.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'{'
                        | b'|'
                        | b'}'
                        | b'~'
                )
        })
}

pub(crate) fn parse_u64_digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Validates an address of the given type: an IP literal of that family, optionally with a
/// multicast `/ttl[/count]` suffix, or a host name.
pub(crate) fn valid_address(addr_type: AddrType, address: &str) -> bool {
    let mut parts = address.split('/');
    let host = parts.next().unwrap_or("");
    let suffix: Vec<&str> = parts.collect();
    if suffix.len() > 2 || suffix.iter().any(|p| parse_u64_digits(p).is_none()) {
        return false;
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return AddrType::of(ip) == addr_type;
    }
    // A host name: letters, digits, '-', '.', with at least one letter (so that malformed IPv4
    // literals such as 1.2.3.4.5 or 300.1.1.1 are not taken for names).
    !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && host.bytes().any(|b| b.is_ascii_alphabetic())
        && host
            .split('.')
            .all(|l| !l.is_empty() && !l.starts_with('-') && !l.ends_with('-'))
}

fn parse_connection(value: &str) -> Result<Connection, SdpErrorKind> {
    let f: Vec<&str> = value.split_whitespace().collect();
    if f.len() != 3 || !f[0].eq_ignore_ascii_case("IN") {
        return Err(SdpErrorKind::BadConnection);
    }
    let addr_type = AddrType::parse(f[1]).ok_or(SdpErrorKind::BadConnection)?;
    if !valid_address(addr_type, f[2]) {
        return Err(SdpErrorKind::BadConnection);
    }
    Ok(Connection {
        addr_type,
        address: f[2].to_owned(),
    })
}

fn parse_origin(value: &str) -> Result<Origin, SdpErrorKind> {
    let f: Vec<&str> = value.split_whitespace().collect();
    if f.len() != 6 || !f[3].eq_ignore_ascii_case("IN") {
        return Err(SdpErrorKind::BadOrigin);
    }
    let session_version = parse_u64_digits(f[2]).ok_or(SdpErrorKind::BadOrigin)?;
    let addr_type = AddrType::parse(f[4]).ok_or(SdpErrorKind::BadOrigin)?;
    if !valid_address(addr_type, f[5]) {
        return Err(SdpErrorKind::BadOrigin);
    }
    Ok(Origin {
        username: f[0].to_owned(),
        session_id: f[1].to_owned(),
        session_version,
        addr_type,
        address: f[5].to_owned(),
    })
}

fn parse_bandwidth(value: &str) -> Result<Bandwidth, SdpErrorKind> {
    let (bwtype, bw) = value.split_once(':').ok_or(SdpErrorKind::BadBandwidth)?;
    if !is_token(bwtype) {
        return Err(SdpErrorKind::BadBandwidth);
    }
    let bandwidth = parse_u64_digits(bw.trim()).ok_or(SdpErrorKind::BadBandwidth)?;
    Ok(Bandwidth {
        bwtype: bwtype.to_owned(),
        bandwidth,
    })
}

fn parse_timing(value: &str) -> Result<Timing, SdpErrorKind> {
    let f: Vec<&str> = value.split_whitespace().collect();
    if f.len() != 2 {
        return Err(SdpErrorKind::BadTiming);
    }
    let start = parse_u64_digits(f[0]).ok_or(SdpErrorKind::BadTiming)?;
    let stop = parse_u64_digits(f[1]).ok_or(SdpErrorKind::BadTiming)?;
    Ok(Timing {
        start,
        stop,
        repeats: Vec::new(),
    })
}

fn parse_media(value: &str) -> Result<MediaDescription, SdpErrorKind> {
    let f: Vec<&str> = value.split_whitespace().collect();
    if f.len() < 3 || !is_token(f[0]) {
        return Err(SdpErrorKind::BadMedia);
    }
    let (port, port_count) = match f[1].split_once('/') {
        Some((p, n)) => (p, Some(n)),
        None => (f[1], None),
    };
    let port = parse_u64_digits(port)
        .and_then(|p| u16::try_from(p).ok())
        .ok_or(SdpErrorKind::BadPort)?;
    let port_count = match port_count {
        Some(n) => Some(
            parse_u64_digits(n)
                .and_then(|n| u16::try_from(n).ok())
                .filter(|n| *n > 0)
                .ok_or(SdpErrorKind::BadPort)?,
        ),
        None => None,
    };
    let proto = f[2];
    if !proto.split('/').all(is_token) {
        return Err(SdpErrorKind::BadMedia);
    }
    let rtp = is_rtp_proto(proto);
    let formats = &f[3..];
    for fmt in formats {
        let ok = if rtp {
            parse_pt(fmt).is_some()
        } else {
            is_format_token(fmt)
        };
        if !ok {
            return Err(SdpErrorKind::BadMedia);
        }
    }
    let mut m = MediaDescription::new(
        MediaKind::parse(f[0]),
        port,
        proto,
        formats.iter().map(|s| (*s).to_owned()).collect(),
    );
    m.port_count = port_count;
    Ok(m)
}

/// Non-RTP formats: tokens, plus `/` and `:` which appear in e.g. `m=message 9 TCP/MSRP *`
/// and WebRTC data channel formats.
fn is_format_token(s: &str) -> bool {
    s.split(['/', ':']).all(is_token)
}

fn parse_attribute(value: &str) -> Result<Attribute, SdpErrorKind> {
    let attr = match value.split_once(':') {
        Some((name, v)) => Attribute::new(name, v),
        None => Attribute::flag(value),
    };
    if !is_token(&attr.name) {
        return Err(SdpErrorKind::BadAttribute);
    }
    attributes::validate(&attr)?;
    Ok(attr)
}

fn set_once<T>(slot: &mut Option<T>, v: T) -> Result<(), SdpErrorKind> {
    if slot.is_some() {
        return Err(SdpErrorKind::Duplicate);
    }
    *slot = Some(v);
    Ok(())
}

fn parse_description(text: &str) -> Result<SessionDescription, SdpError> {
    let mut saw_version = false;
    let mut origin: Option<Origin> = None;
    let mut session_name: Option<String> = None;
    let mut sd = SessionDescription::new(Origin {
        username: String::new(),
        session_id: String::new(),
        session_version: 0,
        addr_type: AddrType::Ip4,
        address: String::new(),
    });
    sd.session_name.clear();
    sd.timings.clear();
    let mut any_line = false;

    for (index, raw) in text.split('\n').enumerate() {
        let lineno = index + 1;
        let err = |kind| SdpError::at(lineno, kind);
        let line = raw
            .strip_suffix('\r')
            .unwrap_or(raw)
            .trim_end_matches([' ', '\t']);
        if line.is_empty() {
            continue;
        }
        any_line = true;
        if line.chars().any(|c| c.is_control() && c != '\t') {
            return Err(err(SdpErrorKind::ControlCharacter));
        }
        let bytes = line.as_bytes();
        if bytes.len() < 2 || bytes[1] != b'=' || !bytes[0].is_ascii_lowercase() {
            return Err(err(SdpErrorKind::BadLine));
        }
        let kind = bytes[0];
        let value = &line[2..];
        if !saw_version {
            if kind != b'v' {
                return Err(err(SdpErrorKind::MissingVersion));
            }
            if value.trim() != "0" {
                return Err(err(SdpErrorKind::BadVersion));
            }
            saw_version = true;
            continue;
        }
        let result: Result<(), SdpErrorKind> = if kind == b'm' {
            parse_media(value).map(|m| sd.media.push(m))
        } else if let Some(m) = sd.media.last_mut() {
            match kind {
                b'i' => set_once(&mut m.title, value.to_owned()),
                b'c' => parse_connection(value).and_then(|c| set_once(&mut m.connection, c)),
                b'b' => parse_bandwidth(value).map(|b| m.bandwidths.push(b)),
                b'k' => set_once(&mut m.key, value.to_owned()),
                b'a' => parse_attribute(value).map(|a| m.attributes.push(a)),
                b'v' | b'o' | b's' | b'u' | b'e' | b'p' | b't' | b'r' | b'z' => {
                    Err(SdpErrorKind::OutOfPlace)
                }
                _ => Err(SdpErrorKind::UnknownLineType),
            }
        } else {
            match kind {
                b'v' => Err(SdpErrorKind::OutOfPlace),
                b'o' => parse_origin(value).and_then(|o| set_once(&mut origin, o)),
                b's' => set_once(&mut session_name, value.to_owned()),
                b'i' => set_once(&mut sd.information, value.to_owned()),
                b'u' => set_once(&mut sd.uri, value.to_owned()),
                b'e' => {
                    sd.emails.push(value.to_owned());
                    Ok(())
                }
                b'p' => {
                    sd.phones.push(value.to_owned());
                    Ok(())
                }
                b'c' => parse_connection(value).and_then(|c| set_once(&mut sd.connection, c)),
                b'b' => parse_bandwidth(value).map(|b| sd.bandwidths.push(b)),
                b't' => parse_timing(value).map(|t| sd.timings.push(t)),
                b'r' => match sd.timings.last_mut() {
                    Some(t) if !value.trim().is_empty() => {
                        t.repeats.push(value.to_owned());
                        Ok(())
                    }
                    Some(_) => Err(SdpErrorKind::BadTiming),
                    None => Err(SdpErrorKind::OutOfPlace),
                },
                b'z' => set_once(&mut sd.time_zones, value.to_owned()),
                b'k' => set_once(&mut sd.key, value.to_owned()),
                b'a' => parse_attribute(value).map(|a| sd.attributes.push(a)),
                _ => Err(SdpErrorKind::UnknownLineType),
            }
        };
        result.map_err(err)?;
    }
    if !any_line {
        return Err(SdpError::at(0, SdpErrorKind::Empty));
    }
    sd.origin = origin.ok_or(SdpError::at(0, SdpErrorKind::MissingOrigin))?;
    sd.session_name = session_name.ok_or(SdpError::at(0, SdpErrorKind::MissingSessionName))?;
    Ok(sd)
}

impl fmt::Display for SessionDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.origin;
        write!(f, "v=0\r\n")?;
        write!(
            f,
            "o={} {} {} IN {} {}\r\n",
            o.username,
            o.session_id,
            o.session_version,
            o.addr_type.as_str(),
            o.address
        )?;
        if self.session_name.is_empty() {
            // RFC 8866 §5.3: a single space when there is no name.
            write!(f, "s= \r\n")?;
        } else {
            write!(f, "s={}\r\n", self.session_name)?;
        }
        if let Some(i) = &self.information {
            write!(f, "i={i}\r\n")?;
        }
        if let Some(u) = &self.uri {
            write!(f, "u={u}\r\n")?;
        }
        for e in &self.emails {
            write!(f, "e={e}\r\n")?;
        }
        for p in &self.phones {
            write!(f, "p={p}\r\n")?;
        }
        if let Some(c) = &self.connection {
            write!(f, "c=IN {} {}\r\n", c.addr_type.as_str(), c.address)?;
        }
        for b in &self.bandwidths {
            write!(f, "b={}:{}\r\n", b.bwtype, b.bandwidth)?;
        }
        for t in &self.timings {
            write!(f, "t={} {}\r\n", t.start, t.stop)?;
            for r in &t.repeats {
                write!(f, "r={r}\r\n")?;
            }
        }
        if let Some(z) = &self.time_zones {
            write!(f, "z={z}\r\n")?;
        }
        if let Some(k) = &self.key {
            write!(f, "k={k}\r\n")?;
        }
        for a in &self.attributes {
            write!(f, "a={a}\r\n")?;
        }
        for m in &self.media {
            write!(f, "m={} {}", m.kind.as_str(), m.port)?;
            if let Some(n) = m.port_count {
                write!(f, "/{n}")?;
            }
            write!(f, " {}", m.proto)?;
            for fmt in &m.formats {
                write!(f, " {fmt}")?;
            }
            write!(f, "\r\n")?;
            if let Some(i) = &m.title {
                write!(f, "i={i}\r\n")?;
            }
            if let Some(c) = &m.connection {
                write!(f, "c=IN {} {}\r\n", c.addr_type.as_str(), c.address)?;
            }
            for b in &m.bandwidths {
                write!(f, "b={}:{}\r\n", b.bwtype, b.bandwidth)?;
            }
            if let Some(k) = &m.key {
                write!(f, "k={k}\r\n")?;
            }
            for a in &m.attributes {
                write!(f, "a={a}\r\n")?;
            }
        }
        Ok(())
    }
}
