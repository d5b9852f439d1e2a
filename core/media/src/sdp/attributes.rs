//! Typed views of the attributes the offer/answer code needs. The text stays in
//! [`Attribute`]; these types are parsed from it on demand and printed back into it.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::{
    AddrType, Attribute, MediaDescription, SdpError, SdpErrorKind, SessionDescription, is_token,
    parse_pt, parse_u64_digits, valid_address,
};

/// Media direction (RFC 8866 §6.7, RFC 3264 §5.1), always from the point of view of whoever
/// wrote it: `sendonly` in the remote's SDP means the remote sends only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Direction {
    /// `a=sendrecv` (the default when no direction attribute is present).
    #[default]
    SendRecv,
    /// `a=sendonly`.
    SendOnly,
    /// `a=recvonly`.
    RecvOnly,
    /// `a=inactive`.
    Inactive,
}

impl Direction {
    /// The attribute name.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// Parses an attribute name (ASCII case-insensitive).
    pub fn from_name(name: &str) -> Option<Self> {
        [
            Direction::SendRecv,
            Direction::SendOnly,
            Direction::RecvOnly,
            Direction::Inactive,
        ]
        .into_iter()
        .find(|d| name.eq_ignore_ascii_case(d.as_str()))
    }

    /// The direction with the given abilities.
    pub fn from_flags(send: bool, recv: bool) -> Self {
        match (send, recv) {
            (true, true) => Direction::SendRecv,
            (true, false) => Direction::SendOnly,
            (false, true) => Direction::RecvOnly,
            (false, false) => Direction::Inactive,
        }
    }

    /// Whether media may be sent.
    pub fn can_send(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// Whether media may be received.
    pub fn can_recv(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    /// The same stream seen from the other end (`sendonly` ↔ `recvonly`).
    pub fn reversed(self) -> Self {
        Self::from_flags(self.can_recv(), self.can_send())
    }

    /// What both allow.
    pub fn intersect(self, other: Direction) -> Self {
        Self::from_flags(
            self.can_send() && other.can_send(),
            self.can_recv() && other.can_recv(),
        )
    }

    /// `a=<direction>`.
    pub fn to_attribute(self) -> Attribute {
        Attribute::flag(self.as_str())
    }
}

/// `a=setup` (RFC 4145 §4, used by DTLS-SRTP per RFC 5763).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Setup {
    /// `active`: this end opens the connection (the DTLS client).
    Active,
    /// `passive`: this end accepts the connection (the DTLS server).
    Passive,
    /// `actpass`: either; only valid in offers.
    ActPass,
    /// `holdconn`: no connection for now.
    HoldConn,
}

impl Setup {
    /// The SDP token.
    pub fn as_str(self) -> &'static str {
        match self {
            Setup::Active => "active",
            Setup::Passive => "passive",
            Setup::ActPass => "actpass",
            Setup::HoldConn => "holdconn",
        }
    }

    /// Parses the SDP token (ASCII case-insensitive).
    pub fn parse(s: &str) -> Result<Self, SdpErrorKind> {
        [
            Setup::Active,
            Setup::Passive,
            Setup::ActPass,
            Setup::HoldConn,
        ]
        .into_iter()
        .find(|v| s.trim().eq_ignore_ascii_case(v.as_str()))
        .ok_or(SdpErrorKind::BadSetup)
    }

    /// `a=setup:<role>`.
    pub fn to_attribute(self) -> Attribute {
        Attribute::new("setup", self.as_str())
    }
}

/// `a=rtpmap:<pt> <encoding>/<clock rate>[/<channels>]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rtpmap {
    /// RTP payload type, 0..=127.
    pub payload_type: u8,
    /// Encoding name as written (compare case-insensitively).
    pub encoding: String,
    /// RTP clock rate in Hz.
    pub clock_rate: u32,
    /// Channel count for audio, if written.
    pub channels: Option<u8>,
}

impl Rtpmap {
    /// Parses the attribute value.
    pub fn parse(value: &str) -> Result<Self, SdpErrorKind> {
        let e = SdpErrorKind::BadRtpmap;
        let f: Vec<&str> = value.split_whitespace().collect();
        if f.len() != 2 {
            return Err(e);
        }
        let payload_type = parse_pt(f[0]).ok_or(e)?;
        let parts: Vec<&str> = f[1].split('/').collect();
        if !(2..=3).contains(&parts.len()) || !is_token(parts[0]) {
            return Err(e);
        }
        let clock_rate = parse_u64_digits(parts[1])
            .and_then(|r| u32::try_from(r).ok())
            .filter(|r| *r > 0)
            .ok_or(e)?;
        let channels = match parts.get(2) {
            Some(c) => Some(
                parse_u64_digits(c)
                    .and_then(|c| u8::try_from(c).ok())
                    .filter(|c| *c > 0)
                    .ok_or(e)?,
            ),
            None => None,
        };
        Ok(Self {
            payload_type,
            encoding: parts[0].to_owned(),
            clock_rate,
            channels,
        })
    }

    /// The static payload types of RFC 3551 §6 (used when an offer lists 0 or 8 without
    /// an rtpmap line).
    pub fn static_payload(pt: u8) -> Option<Self> {
        let (name, rate, channels) = match pt {
            0 => ("PCMU", 8000, 1),
            3 => ("GSM", 8000, 1),
            4 => ("G723", 8000, 1),
            5 => ("DVI4", 8000, 1),
            6 => ("DVI4", 16000, 1),
            7 => ("LPC", 8000, 1),
            8 => ("PCMA", 8000, 1),
            9 => ("G722", 8000, 1),
            10 => ("L16", 44100, 2),
            11 => ("L16", 44100, 1),
            12 => ("QCELP", 8000, 1),
            13 => ("CN", 8000, 1),
            14 => ("MPA", 90000, 1),
            15 => ("G728", 8000, 1),
            16 => ("DVI4", 11025, 1),
            17 => ("DVI4", 22050, 1),
            18 => ("G729", 8000, 1),
            _ => return None,
        };
        Some(Self {
            payload_type: pt,
            encoding: name.to_owned(),
            clock_rate: rate,
            channels: (channels != 1).then_some(channels),
        })
    }

    /// The channel count, 1 when not written.
    pub fn channel_count(&self) -> u8 {
        self.channels.unwrap_or(1)
    }

    /// `a=rtpmap:...`.
    pub fn to_attribute(&self) -> Attribute {
        Attribute::new("rtpmap", self.to_string())
    }
}

impl fmt::Display for Rtpmap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}/{}",
            self.payload_type, self.encoding, self.clock_rate
        )?;
        if let Some(c) = self.channels {
            write!(f, "/{c}")?;
        }
        Ok(())
    }
}

/// `a=fmtp:<format> <parameters>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Fmtp {
    /// The format (an RTP payload type number for RTP media).
    pub format: String,
    /// The format-specific parameters, verbatim (may be empty).
    pub params: String,
}

impl Fmtp {
    /// Parses the attribute value.
    pub fn parse(value: &str) -> Result<Self, SdpErrorKind> {
        let (format, params) = match value.split_once([' ', '\t']) {
            Some((f, p)) => (f, p.trim()),
            None => (value, ""),
        };
        if !is_token(format) {
            return Err(SdpErrorKind::BadFmtp);
        }
        Ok(Self {
            format: format.to_owned(),
            params: params.to_owned(),
        })
    }

    /// The payload type, if the format is one.
    pub fn payload_type(&self) -> Option<u8> {
        parse_pt(&self.format)
    }

    /// The value of `key` in a `key=value;key=value` parameter list (key case-insensitive,
    /// whitespace around items ignored); `Some("")` for a bare key.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params.split(';').find_map(|item| {
            let item = item.trim();
            let (k, v) = item.split_once('=').unwrap_or((item, ""));
            k.trim().eq_ignore_ascii_case(key).then(|| v.trim())
        })
    }

    /// `a=fmtp:...`.
    pub fn to_attribute(&self) -> Attribute {
        Attribute::new("fmtp", format!("{} {}", self.format, self.params))
    }
}

/// `a=rtcp:<port> [IN <addrtype> <address>]` (RFC 3605).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rtcp {
    /// RTCP port.
    pub port: u16,
    /// RTCP address, when it differs from the RTP one.
    pub address: Option<(AddrType, String)>,
}

impl Rtcp {
    /// Parses the attribute value.
    pub fn parse(value: &str) -> Result<Self, SdpErrorKind> {
        let e = SdpErrorKind::BadRtcp;
        let f: Vec<&str> = value.split_whitespace().collect();
        let port = f
            .first()
            .and_then(|p| parse_u64_digits(p))
            .and_then(|p| u16::try_from(p).ok())
            .ok_or(e)?;
        let address = match f.len() {
            1 => None,
            4 => {
                let at = AddrType::parse(f[2]).ok_or(e)?;
                if !f[1].eq_ignore_ascii_case("IN") || !valid_address(at, f[3]) {
                    return Err(e);
                }
                Some((at, f[3].to_owned()))
            }
            _ => return Err(e),
        };
        Ok(Self { port, address })
    }
}

/// An SRTP protection profile this module negotiates with SDES (RFC 4568 §6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SrtpSuite {
    /// `AES_CM_128_HMAC_SHA1_80`: AES-128 counter mode, 80-bit HMAC-SHA1 tag.
    AesCm128HmacSha1_80,
    /// `AES_CM_128_HMAC_SHA1_32`: AES-128 counter mode, 32-bit HMAC-SHA1 tag on SRTP
    /// (80-bit on SRTCP).
    AesCm128HmacSha1_32,
}

impl SrtpSuite {
    /// The RFC 4568 suite name.
    pub fn name(self) -> &'static str {
        match self {
            SrtpSuite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            SrtpSuite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
        }
    }

    /// Parses a suite name (ASCII case-insensitive); `None` for suites we do not implement.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            SrtpSuite::AesCm128HmacSha1_80,
            SrtpSuite::AesCm128HmacSha1_32,
        ]
        .into_iter()
        .find(|s| name.eq_ignore_ascii_case(s.name()))
    }

    /// SRTP authentication tag length in bytes (10 or 4).
    pub fn srtp_auth_tag_len(self) -> usize {
        match self {
            SrtpSuite::AesCm128HmacSha1_80 => 10,
            SrtpSuite::AesCm128HmacSha1_32 => 4,
        }
    }
}

/// An SDES master key and salt for the AES_CM_128 suites (16 + 14 bytes).
///
/// `Debug` prints `<redacted>`; the key is only ever written out by
/// [`SdesKey::to_base64`] (for the a=crypto line) and read through the public fields.
#[derive(Clone, PartialEq, Eq)]
pub struct SdesKey {
    /// Master key.
    pub master_key: [u8; 16],
    /// Master salt.
    pub master_salt: [u8; 14],
}

impl fmt::Debug for SdesKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SdesKey(<redacted>)")
    }
}

impl SdesKey {
    /// Key and salt from their 30-byte concatenation.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != 30 {
            return None;
        }
        let mut master_key = [0u8; 16];
        let mut master_salt = [0u8; 14];
        master_key.copy_from_slice(&bytes[..16]);
        master_salt.copy_from_slice(&bytes[16..]);
        Some(Self {
            master_key,
            master_salt,
        })
    }

    /// Key then salt, 30 bytes.
    pub fn to_bytes(&self) -> [u8; 30] {
        let mut out = [0u8; 30];
        out[..16].copy_from_slice(&self.master_key);
        out[16..].copy_from_slice(&self.master_salt);
        out
    }

    /// The base64 form used after `inline:`.
    pub fn to_base64(&self) -> String {
        BASE64.encode(self.to_bytes())
    }

    /// Parses the base64 form used after `inline:`.
    pub fn from_base64(s: &str) -> Option<Self> {
        Self::from_bytes(&BASE64.decode(s).ok()?)
    }
}

/// Generates a fresh SDES key from the caller's random number generator (the sans-IO core
/// never picks its own entropy source; the runtime passes a CSPRNG such as `StdRng` seeded from
/// the OS).
pub fn new_sdes_key<R: rand::Rng + ?Sized>(rng: &mut R) -> SdesKey {
    let mut bytes = [0u8; 30];
    rng.fill_bytes(&mut bytes);
    let mut master_key = [0u8; 16];
    let mut master_salt = [0u8; 14];
    master_key.copy_from_slice(&bytes[..16]);
    master_salt.copy_from_slice(&bytes[16..]);
    SdesKey {
        master_key,
        master_salt,
    }
}

/// The `|MKI:length` part of an inline key (RFC 4568 §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mki {
    /// MKI value.
    pub value: u64,
    /// MKI length in bytes, 1..=128.
    pub length: u8,
}

/// One `inline:<key||salt>[|lifetime][|MKI:length]` key parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlineKey {
    /// Master key and salt.
    pub key: SdesKey,
    /// Key lifetime in packets (`2^31` is printed as written), if given.
    pub lifetime: Option<u64>,
    /// Master key identifier, if given (the SRTP packets then carry an MKI field).
    pub mki: Option<Mki>,
}

impl InlineKey {
    /// A key with neither lifetime nor MKI.
    pub fn new(key: SdesKey) -> Self {
        Self {
            key,
            lifetime: None,
            mki: None,
        }
    }

    fn parse(s: &str) -> Result<Self, SdpErrorKind> {
        let (method, info) = s.split_once(':').ok_or(SdpErrorKind::BadCrypto)?;
        if !method.eq_ignore_ascii_case("inline") {
            return Err(SdpErrorKind::BadCrypto);
        }
        let mut parts = info.split('|');
        let key = parts
            .next()
            .and_then(SdesKey::from_base64)
            .ok_or(SdpErrorKind::BadCryptoKey)?;
        let mut lifetime = None;
        let mut mki = None;
        for part in parts {
            if mki.is_some() {
                return Err(SdpErrorKind::BadCrypto); // nothing may follow the MKI
            }
            if let Some((value, length)) = part.split_once(':') {
                let value = parse_u64_digits(value).ok_or(SdpErrorKind::BadCrypto)?;
                let length = parse_u64_digits(length)
                    .and_then(|l| u8::try_from(l).ok())
                    .filter(|l| (1..=128).contains(l))
                    .ok_or(SdpErrorKind::BadCrypto)?;
                mki = Some(Mki { value, length });
            } else if lifetime.is_none() {
                lifetime = Some(parse_lifetime(part).ok_or(SdpErrorKind::BadCrypto)?);
            } else {
                return Err(SdpErrorKind::BadCrypto);
            }
        }
        Ok(Self { key, lifetime, mki })
    }
}

fn parse_lifetime(s: &str) -> Option<u64> {
    let v = match s.strip_prefix("2^") {
        Some(exp) => {
            let exp = parse_u64_digits(exp).filter(|e| *e <= 63)?;
            1u64 << exp
        }
        None => parse_u64_digits(s)?,
    };
    (v > 0).then_some(v)
}

impl fmt::Display for InlineKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "inline:{}", self.key.to_base64())?;
        if let Some(l) = self.lifetime {
            if l.is_power_of_two() {
                write!(f, "|2^{}", l.trailing_zeros())?;
            } else {
                write!(f, "|{l}")?;
            }
        }
        if let Some(m) = self.mki {
            write!(f, "|{}:{}", m.value, m.length)?;
        }
        Ok(())
    }
}

/// The suite and key parameters of an `a=crypto` line.
#[derive(Clone, PartialEq, Eq)]
pub enum CryptoSuite {
    /// A suite we implement, with its decoded key(s) (at least one).
    Supported {
        /// The suite.
        suite: SrtpSuite,
        /// The `;`-separated inline keys.
        keys: Vec<InlineKey>,
    },
    /// Any other suite (AES_256_CM_..., AEAD_AES_128_GCM, F8, ...), kept as written.
    Unsupported {
        /// Suite name.
        name: String,
        /// Key parameters, verbatim.
        key_params: String,
    },
}

impl fmt::Debug for CryptoSuite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CryptoSuite::Supported { suite, keys } => f
                .debug_struct("Supported")
                .field("suite", suite)
                .field("keys", keys)
                .finish(),
            CryptoSuite::Unsupported { name, .. } => f
                .debug_struct("Unsupported")
                .field("name", name)
                .field("key_params", &"<redacted>")
                .finish(),
        }
    }
}

/// `a=crypto:<tag> <suite> <key-params> [<session-params>]` (RFC 4568 §9.1).
///
/// Session parameters (KDR, UNENCRYPTED_SRTP, ...) are kept but ignored by negotiation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crypto {
    /// Tag, 1..=999999999; the answer repeats the tag of the line it accepts.
    pub tag: u32,
    /// Suite and keys.
    pub suite: CryptoSuite,
    /// Session parameters, verbatim.
    pub session_params: Vec<String>,
}

impl Crypto {
    /// An `a=crypto` line for one of our suites with one key.
    pub fn new(tag: u32, suite: SrtpSuite, key: SdesKey) -> Self {
        Self {
            tag,
            suite: CryptoSuite::Supported {
                suite,
                keys: vec![InlineKey::new(key)],
            },
            session_params: Vec::new(),
        }
    }

    /// Parses the attribute value.
    pub fn parse(value: &str) -> Result<Self, SdpErrorKind> {
        let e = SdpErrorKind::BadCrypto;
        let mut f = value.split_whitespace();
        let tag = f.next().ok_or(e)?;
        if tag.len() > 9 {
            return Err(e);
        }
        let tag = parse_u64_digits(tag)
            .and_then(|t| u32::try_from(t).ok())
            .ok_or(e)?;
        let name = f.next().filter(|s| is_token(s)).ok_or(e)?;
        let key_params = f.next().ok_or(e)?;
        let session_params = f.map(str::to_owned).collect();
        let suite = match SrtpSuite::from_name(name) {
            Some(suite) => {
                let keys = key_params
                    .split(';')
                    .map(InlineKey::parse)
                    .collect::<Result<Vec<_>, _>>()?;
                CryptoSuite::Supported { suite, keys }
            }
            None => {
                for kp in key_params.split(';') {
                    match kp.split_once(':') {
                        Some((method, info)) if is_token(method) && !info.is_empty() => {}
                        _ => return Err(e),
                    }
                }
                CryptoSuite::Unsupported {
                    name: name.to_owned(),
                    key_params: key_params.to_owned(),
                }
            }
        };
        Ok(Self {
            tag,
            suite,
            session_params,
        })
    }

    /// The suite, if we implement it.
    pub fn srtp_suite(&self) -> Option<SrtpSuite> {
        match &self.suite {
            CryptoSuite::Supported { suite, .. } => Some(*suite),
            CryptoSuite::Unsupported { .. } => None,
        }
    }

    /// The key we can use: a supported suite with exactly one key and no MKI (our SRTP
    /// context has no MKI support and does not re-key).
    pub fn usable_key(&self) -> Option<(SrtpSuite, &SdesKey)> {
        match &self.suite {
            CryptoSuite::Supported { suite, keys } => match keys.as_slice() {
                [only] if only.mki.is_none() => Some((*suite, &only.key)),
                _ => None,
            },
            CryptoSuite::Unsupported { .. } => None,
        }
    }

    /// `a=crypto:...`.
    pub fn to_attribute(&self) -> Attribute {
        let mut v = self.tag.to_string();
        match &self.suite {
            CryptoSuite::Supported { suite, keys } => {
                v.push(' ');
                v.push_str(suite.name());
                v.push(' ');
                let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
                v.push_str(&keys.join(";"));
            }
            CryptoSuite::Unsupported { name, key_params } => {
                v.push(' ');
                v.push_str(name);
                v.push(' ');
                v.push_str(key_params);
            }
        }
        for p in &self.session_params {
            v.push(' ');
            v.push_str(p);
        }
        Attribute::new("crypto", v)
    }
}

/// `a=fingerprint:<hash> <hex:hex:...>` (RFC 8122).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Fingerprint {
    /// Hash function, lower case (`sha-256`, ...).
    pub hash: String,
    /// The certificate fingerprint bytes.
    pub value: Vec<u8>,
}

impl Fingerprint {
    /// Parses the attribute value.
    pub fn parse(value: &str) -> Result<Self, SdpErrorKind> {
        let e = SdpErrorKind::BadFingerprint;
        let f: Vec<&str> = value.split_whitespace().collect();
        if f.len() != 2 || !is_token(f[0]) {
            return Err(e);
        }
        let bytes = f[1]
            .split(':')
            .map(|h| {
                if h.len() == 2 && h.bytes().all(|b| b.is_ascii_hexdigit()) {
                    u8::from_str_radix(h, 16).map_err(|_| e)
                } else {
                    Err(e)
                }
            })
            .collect::<Result<Vec<u8>, _>>()?;
        Ok(Self {
            hash: f[0].to_ascii_lowercase(),
            value: bytes,
        })
    }

    /// The value as upper-case hex pairs joined by `:`.
    pub fn hex(&self) -> String {
        self.value
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":")
    }

    /// `a=fingerprint:...`.
    pub fn to_attribute(&self) -> Attribute {
        Attribute::new("fingerprint", format!("{} {}", self.hash, self.hex()))
    }
}

/// `a=ssrc:<ssrc-id> <attribute>[:<value>]` (RFC 5576).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Ssrc {
    /// The SSRC.
    pub id: u32,
    /// Source attribute name (`cname`, `msid`, ...); empty when the line has only an id.
    pub attribute: String,
    /// Source attribute value.
    pub value: Option<String>,
}

impl Ssrc {
    /// Parses the attribute value.
    pub fn parse(value: &str) -> Result<Self, SdpErrorKind> {
        let e = SdpErrorKind::BadSsrc;
        let (id, rest) = match value.split_once([' ', '\t']) {
            Some((id, rest)) => (id, rest.trim()),
            None => (value, ""),
        };
        let id = parse_u64_digits(id)
            .and_then(|i| u32::try_from(i).ok())
            .ok_or(e)?;
        let (attribute, value) = match rest.split_once(':') {
            Some((a, v)) => (a, Some(v.to_owned())),
            None => (rest, None),
        };
        if !attribute.is_empty() && !is_token(attribute) {
            return Err(e);
        }
        Ok(Self {
            id,
            attribute: attribute.to_owned(),
            value,
        })
    }
}

/// ICE username fragment and password (RFC 8839). `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct IceCredentials {
    /// `a=ice-ufrag`.
    pub ufrag: String,
    /// `a=ice-pwd`.
    pub pwd: String,
}

impl fmt::Debug for IceCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IceCredentials")
            .field("ufrag", &self.ufrag)
            .field("pwd", &"<redacted>")
            .finish()
    }
}

/// The typed form of the attributes this module knows.
#[derive(Clone, PartialEq, Eq)]
pub enum TypedAttribute {
    /// `a=rtpmap`.
    Rtpmap(Rtpmap),
    /// `a=fmtp`.
    Fmtp(Fmtp),
    /// `a=ptime` in milliseconds.
    Ptime(u32),
    /// `a=maxptime` in milliseconds.
    MaxPtime(u32),
    /// `a=sendrecv`, `a=sendonly`, `a=recvonly`, `a=inactive`.
    Direction(Direction),
    /// `a=rtcp`.
    Rtcp(Rtcp),
    /// `a=rtcp-mux`.
    RtcpMux,
    /// `a=crypto`.
    Crypto(Crypto),
    /// `a=fingerprint`.
    Fingerprint(Fingerprint),
    /// `a=setup`.
    Setup(Setup),
    /// `a=ice-ufrag`.
    IceUfrag(String),
    /// `a=ice-pwd` (hidden by `Debug`).
    IcePwd(String),
    /// `a=candidate`, kept as text.
    Candidate(String),
    /// `a=mid`.
    Mid(String),
    /// `a=ssrc`.
    Ssrc(Ssrc),
    /// Any other attribute (use [`Attribute`]'s fields).
    Other,
}

impl fmt::Debug for TypedAttribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TypedAttribute::Rtpmap(v) => f.debug_tuple("Rtpmap").field(v).finish(),
            TypedAttribute::Fmtp(v) => f.debug_tuple("Fmtp").field(v).finish(),
            TypedAttribute::Ptime(v) => f.debug_tuple("Ptime").field(v).finish(),
            TypedAttribute::MaxPtime(v) => f.debug_tuple("MaxPtime").field(v).finish(),
            TypedAttribute::Direction(v) => f.debug_tuple("Direction").field(v).finish(),
            TypedAttribute::Rtcp(v) => f.debug_tuple("Rtcp").field(v).finish(),
            TypedAttribute::RtcpMux => f.write_str("RtcpMux"),
            TypedAttribute::Crypto(v) => f.debug_tuple("Crypto").field(v).finish(),
            TypedAttribute::Fingerprint(v) => f.debug_tuple("Fingerprint").field(v).finish(),
            TypedAttribute::Setup(v) => f.debug_tuple("Setup").field(v).finish(),
            TypedAttribute::IceUfrag(v) => f.debug_tuple("IceUfrag").field(v).finish(),
            TypedAttribute::IcePwd(_) => f.write_str("IcePwd(<redacted>)"),
            TypedAttribute::Candidate(v) => f.debug_tuple("Candidate").field(v).finish(),
            TypedAttribute::Mid(v) => f.debug_tuple("Mid").field(v).finish(),
            TypedAttribute::Ssrc(v) => f.debug_tuple("Ssrc").field(v).finish(),
            TypedAttribute::Other => f.write_str("Other"),
        }
    }
}

/// `a=ptime` / `a=maxptime`: whole milliseconds; a fraction (`20.0`) is tolerated and dropped.
pub(crate) fn parse_ms(value: &str) -> Result<u32, SdpErrorKind> {
    let e = SdpErrorKind::BadPtime;
    let v = value.trim();
    let (int, frac) = v.split_once('.').unwrap_or((v, "0"));
    if frac.is_empty() || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(e);
    }
    parse_u64_digits(int)
        .and_then(|v| u32::try_from(v).ok())
        .filter(|v| *v > 0)
        .ok_or(e)
}

fn ice_text(value: &str) -> Result<String, SdpErrorKind> {
    let v = value.trim();
    if v.is_empty() || v.contains([' ', '\t']) {
        return Err(SdpErrorKind::BadIce);
    }
    Ok(v.to_owned())
}

impl TypedAttribute {
    /// Parses a known attribute; [`TypedAttribute::Other`] for names this module does not type.
    pub fn parse(attr: &Attribute) -> Result<Self, SdpErrorKind> {
        let name = attr.name.to_ascii_lowercase();
        let value = attr.value.as_deref();
        let need = |kind| value.ok_or(kind);
        let flag = |t: TypedAttribute| match value {
            None => Ok(t),
            Some(_) => Err(SdpErrorKind::BadAttribute),
        };
        Ok(match name.as_str() {
            "rtpmap" => TypedAttribute::Rtpmap(Rtpmap::parse(need(SdpErrorKind::BadRtpmap)?)?),
            "fmtp" => TypedAttribute::Fmtp(Fmtp::parse(need(SdpErrorKind::BadFmtp)?)?),
            "ptime" => TypedAttribute::Ptime(parse_ms(need(SdpErrorKind::BadPtime)?)?),
            "maxptime" => TypedAttribute::MaxPtime(parse_ms(need(SdpErrorKind::BadPtime)?)?),
            "sendrecv" | "sendonly" | "recvonly" | "inactive" => {
                let d = Direction::from_name(&name).ok_or(SdpErrorKind::BadAttribute)?;
                flag(TypedAttribute::Direction(d))?
            }
            "rtcp" => TypedAttribute::Rtcp(Rtcp::parse(need(SdpErrorKind::BadRtcp)?)?),
            "rtcp-mux" => flag(TypedAttribute::RtcpMux)?,
            "crypto" => TypedAttribute::Crypto(Crypto::parse(need(SdpErrorKind::BadCrypto)?)?),
            "fingerprint" => TypedAttribute::Fingerprint(Fingerprint::parse(need(
                SdpErrorKind::BadFingerprint,
            )?)?),
            "setup" => TypedAttribute::Setup(Setup::parse(need(SdpErrorKind::BadSetup)?)?),
            "ice-ufrag" => TypedAttribute::IceUfrag(ice_text(need(SdpErrorKind::BadIce)?)?),
            "ice-pwd" => TypedAttribute::IcePwd(ice_text(need(SdpErrorKind::BadIce)?)?),
            "candidate" => {
                let v = need(SdpErrorKind::BadIce)?.trim();
                if v.is_empty() {
                    return Err(SdpErrorKind::BadIce);
                }
                TypedAttribute::Candidate(v.to_owned())
            }
            "mid" => {
                let v = need(SdpErrorKind::BadIce)?.trim();
                if !is_token(v) {
                    return Err(SdpErrorKind::BadIce);
                }
                TypedAttribute::Mid(v.to_owned())
            }
            "ssrc" => TypedAttribute::Ssrc(Ssrc::parse(need(SdpErrorKind::BadSsrc)?)?),
            _ => TypedAttribute::Other,
        })
    }
}

impl Attribute {
    /// The typed form of this attribute.
    pub fn typed(&self) -> Result<TypedAttribute, SdpErrorKind> {
        TypedAttribute::parse(self)
    }
}

/// Called by the parser: rejects malformed values of the typed attributes.
pub(crate) fn validate(attr: &Attribute) -> Result<(), SdpErrorKind> {
    TypedAttribute::parse(attr).map(|_| ())
}

fn all_of<T>(
    attrs: &[Attribute],
    name: &str,
    parse: impl Fn(&str) -> Result<T, SdpErrorKind>,
) -> Result<Vec<T>, SdpError> {
    attrs
        .iter()
        .filter(|a| a.is(name))
        .map(|a| parse(a.value.as_deref().unwrap_or("")).map_err(SdpError::from))
        .collect()
}

fn first_of<T>(
    attrs: &[Attribute],
    name: &str,
    parse: impl Fn(&str) -> Result<T, SdpErrorKind>,
) -> Result<Option<T>, SdpError> {
    attrs
        .iter()
        .find(|a| a.is(name))
        .map(|a| parse(a.value.as_deref().unwrap_or("")).map_err(SdpError::from))
        .transpose()
}

fn direction_in(attrs: &[Attribute]) -> Option<Direction> {
    attrs.iter().find_map(|a| {
        if a.value.is_none() {
            Direction::from_name(&a.name)
        } else {
            None
        }
    })
}

fn text_of<'a>(attrs: &'a [Attribute], name: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|a| a.is(name))
        .and_then(|a| a.value.as_deref())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

impl MediaDescription {
    /// All `a=rtpmap` lines.
    pub fn rtpmaps(&self) -> Result<Vec<Rtpmap>, SdpError> {
        all_of(&self.attributes, "rtpmap", Rtpmap::parse)
    }

    /// The `a=rtpmap` for `pt`, if any.
    pub fn rtpmap(&self, pt: u8) -> Result<Option<Rtpmap>, SdpError> {
        Ok(self.rtpmaps()?.into_iter().find(|r| r.payload_type == pt))
    }

    /// What payload type `pt` is: its `a=rtpmap`, else the RFC 3551 static assignment.
    pub fn payload_format(&self, pt: u8) -> Result<Option<Rtpmap>, SdpError> {
        Ok(self.rtpmap(pt)?.or_else(|| Rtpmap::static_payload(pt)))
    }

    /// All `a=fmtp` lines.
    pub fn fmtps(&self) -> Result<Vec<Fmtp>, SdpError> {
        all_of(&self.attributes, "fmtp", Fmtp::parse)
    }

    /// The `a=fmtp` for payload type `pt`, if any.
    pub fn fmtp(&self, pt: u8) -> Result<Option<Fmtp>, SdpError> {
        Ok(self
            .fmtps()?
            .into_iter()
            .find(|f| f.payload_type() == Some(pt)))
    }

    /// `a=ptime` in milliseconds.
    pub fn ptime(&self) -> Result<Option<u32>, SdpError> {
        first_of(&self.attributes, "ptime", parse_ms)
    }

    /// `a=maxptime` in milliseconds.
    pub fn maxptime(&self) -> Result<Option<u32>, SdpError> {
        first_of(&self.attributes, "maxptime", parse_ms)
    }

    /// This section's own direction attribute (see [`SessionDescription::direction_for`] for
    /// the effective one).
    pub fn direction(&self) -> Option<Direction> {
        direction_in(&self.attributes)
    }

    /// `a=rtcp` (RFC 3605).
    pub fn rtcp(&self) -> Result<Option<Rtcp>, SdpError> {
        first_of(&self.attributes, "rtcp", Rtcp::parse)
    }

    /// Whether `a=rtcp-mux` is present.
    pub fn rtcp_mux(&self) -> bool {
        self.has_attribute("rtcp-mux")
    }

    /// All `a=crypto` lines in order.
    pub fn cryptos(&self) -> Result<Vec<Crypto>, SdpError> {
        all_of(&self.attributes, "crypto", Crypto::parse)
    }

    /// This section's own `a=fingerprint` lines.
    pub fn fingerprints(&self) -> Result<Vec<Fingerprint>, SdpError> {
        all_of(&self.attributes, "fingerprint", Fingerprint::parse)
    }

    /// This section's own `a=setup`.
    pub fn setup(&self) -> Result<Option<Setup>, SdpError> {
        first_of(&self.attributes, "setup", Setup::parse)
    }

    /// This section's own `a=ice-ufrag`.
    pub fn ice_ufrag(&self) -> Option<&str> {
        text_of(&self.attributes, "ice-ufrag")
    }

    /// This section's own `a=ice-pwd`.
    pub fn ice_pwd(&self) -> Option<&str> {
        text_of(&self.attributes, "ice-pwd")
    }

    /// The `a=candidate` values, as text.
    pub fn candidates(&self) -> Vec<&str> {
        self.attributes
            .iter()
            .filter(|a| a.is("candidate"))
            .filter_map(|a| a.value.as_deref())
            .collect()
    }

    /// `a=mid`.
    pub fn mid(&self) -> Option<&str> {
        text_of(&self.attributes, "mid")
    }

    /// All `a=ssrc` lines.
    pub fn ssrcs(&self) -> Result<Vec<Ssrc>, SdpError> {
        all_of(&self.attributes, "ssrc", Ssrc::parse)
    }
}

impl SessionDescription {
    /// The session-level direction attribute, if any.
    pub fn direction(&self) -> Option<Direction> {
        direction_in(&self.attributes)
    }

    /// Session-level `a=fingerprint` lines.
    pub fn fingerprints(&self) -> Result<Vec<Fingerprint>, SdpError> {
        all_of(&self.attributes, "fingerprint", Fingerprint::parse)
    }

    /// Session-level `a=setup`.
    pub fn setup(&self) -> Result<Option<Setup>, SdpError> {
        first_of(&self.attributes, "setup", Setup::parse)
    }

    /// The fingerprints that apply to `media`: its own, else the session-level ones.
    pub fn fingerprints_for(&self, media: &MediaDescription) -> Result<Vec<Fingerprint>, SdpError> {
        let own = media.fingerprints()?;
        if own.is_empty() {
            self.fingerprints()
        } else {
            Ok(own)
        }
    }

    /// The `a=setup` that applies to `media`: its own, else the session-level one.
    pub fn setup_for(&self, media: &MediaDescription) -> Result<Option<Setup>, SdpError> {
        Ok(match media.setup()? {
            Some(s) => Some(s),
            None => self.setup()?,
        })
    }

    /// The ICE credentials that apply to `media` (media-level, else session-level), when
    /// both ufrag and password are present.
    pub fn ice_credentials_for(&self, media: &MediaDescription) -> Option<IceCredentials> {
        let ufrag = media
            .ice_ufrag()
            .or_else(|| text_of(&self.attributes, "ice-ufrag"))?;
        let pwd = media
            .ice_pwd()
            .or_else(|| text_of(&self.attributes, "ice-pwd"))?;
        Some(IceCredentials {
            ufrag: ufrag.to_owned(),
            pwd: pwd.to_owned(),
        })
    }
}
