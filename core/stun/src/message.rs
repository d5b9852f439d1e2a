//! STUN messages (RFC 8489 §5, §14) with the TURN attributes (RFC 8656 §18): the header with
//! its magic cookie and transaction id, attributes padded to four bytes, the long-term
//! credential's MESSAGE-INTEGRITY (HMAC-SHA1) and FINGERPRINT (CRC-32).
//!
//! [`Message::decode`] reads what it knows, skips unknown comprehension-optional attributes
//! and refuses everything malformed with a [`StunError`], within fixed bounds. Checking
//! MESSAGE-INTEGRITY needs the key and the bytes as they came: [`check_integrity`].

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use rand::RngCore;
use sha1::Sha1;

/// The fixed value in every RFC 5389/8489 STUN header.
pub const MAGIC_COOKIE: u32 = 0x2112_A442;
/// The length of the STUN header: type, length, magic cookie, transaction id.
pub const HEADER_LEN: usize = 20;
/// The largest body the header's 16-bit length can announce, a multiple of four.
const MAX_BODY: usize = 0xFFFC;
/// The most attributes a decoded message keeps; real messages carry a handful.
const MAX_ATTRIBUTES: usize = 32;
/// USERNAME is shorter than 513 bytes (RFC 5389 §15.3; RFC 8489 says 509).
const MAX_USERNAME: usize = 512;
/// REALM, NONCE, SOFTWARE and the ERROR-CODE reason: under 128 characters, 763 bytes.
const MAX_TEXT: usize = 763;
/// Entries of an UNKNOWN-ATTRIBUTES list kept.
const MAX_UNKNOWN: usize = 32;
/// XORed into the CRC-32 of a FINGERPRINT ("STUN" in ASCII).
const FINGERPRINT_XOR: u32 = 0x5354_554E;
const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);
/// The length of a MESSAGE-INTEGRITY attribute with its header.
const INTEGRITY_LEN: usize = 24;
/// The length of a FINGERPRINT attribute with its header.
const FINGERPRINT_LEN: usize = 8;

/// The attribute types this codec knows (RFC 8489 §18.3, RFC 8656 §18).
pub(crate) mod kind {
    pub const MAPPED_ADDRESS: u16 = 0x0001;
    pub const USERNAME: u16 = 0x0006;
    pub const MESSAGE_INTEGRITY: u16 = 0x0008;
    pub const ERROR_CODE: u16 = 0x0009;
    pub const UNKNOWN_ATTRIBUTES: u16 = 0x000A;
    pub const CHANNEL_NUMBER: u16 = 0x000C;
    pub const LIFETIME: u16 = 0x000D;
    pub const XOR_PEER_ADDRESS: u16 = 0x0012;
    pub const DATA: u16 = 0x0013;
    pub const REALM: u16 = 0x0014;
    pub const NONCE: u16 = 0x0015;
    pub const XOR_RELAYED_ADDRESS: u16 = 0x0016;
    pub const REQUESTED_TRANSPORT: u16 = 0x0019;
    pub const XOR_MAPPED_ADDRESS: u16 = 0x0020;
    pub const SOFTWARE: u16 = 0x8022;
    pub const FINGERPRINT: u16 = 0x8028;
}

/// The 96-bit transaction id that pairs a request with its response.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct StunTransactionId(pub [u8; 12]);

impl StunTransactionId {
    /// A fresh random id.
    pub fn random(rng: &mut dyn RngCore) -> StunTransactionId {
        let mut id = [0u8; 12];
        rng.fill_bytes(&mut id);
        StunTransactionId(id)
    }
}

impl fmt::Debug for StunTransactionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

/// Why bytes are not a STUN message (or not the one expected), or why a message cannot be
/// written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StunError {
    /// Shorter than the header, not a multiple of four, or longer than accepted.
    #[error("not a STUN message: bad length {0}")]
    Length(usize),
    /// The first bits or the magic cookie are wrong.
    #[error("not a STUN message: no magic cookie")]
    NotStun,
    /// The header's length disagrees with the bytes, or an attribute overruns the message.
    #[error("truncated STUN message")]
    Truncated,
    /// A STUN message, but not an answer to a Binding request.
    #[error("STUN message type {0:#06x} is not a Binding answer")]
    NotBindingAnswer(u16),
    /// An address attribute that cannot be read.
    #[error("malformed STUN address attribute")]
    BadAddress,
    /// An attribute whose value has the wrong size or content (or cannot be written).
    #[error("malformed STUN attribute {0:#06x}")]
    BadAttribute(u16),
    /// An attribute the message requires us to understand (type below 0x8000) that we do not
    /// (RFC 8489 §15): a response carrying one is discarded.
    #[error("unknown comprehension-required STUN attribute {0:#06x}")]
    UnknownRequired(u16),
    /// More attributes than a message may carry here.
    #[error("too many STUN attributes")]
    TooManyAttributes,
    /// A FINGERPRINT that is wrong or not last.
    #[error("wrong or misplaced STUN FINGERPRINT")]
    BadFingerprint,
    /// A method number wider than the 12 bits a message type holds.
    #[error("STUN method {0:#x} does not fit in 12 bits")]
    BadMethod(u16),
    /// A ChannelData channel number outside 0x4000–0x4FFF (RFC 8656 §12).
    #[error("channel number {0:#06x} outside the TURN channel range")]
    BadChannel(u16),
}

/// The four kinds of STUN message (RFC 8489 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// Asks for a response.
    Request,
    /// Asks for nothing (Send and Data indications).
    Indication,
    /// A success response.
    SuccessResponse,
    /// An error response, carrying ERROR-CODE.
    ErrorResponse,
}

impl Class {
    /// The two class bits, C1 C0.
    const fn bits(self) -> u16 {
        match self {
            Class::Request => 0b00,
            Class::Indication => 0b01,
            Class::SuccessResponse => 0b10,
            Class::ErrorResponse => 0b11,
        }
    }

    fn from_bits(bits: u16) -> Class {
        match bits & 0b11 {
            0b00 => Class::Request,
            0b01 => Class::Indication,
            0b10 => Class::SuccessResponse,
            _ => Class::ErrorResponse,
        }
    }

    /// Whether this is a success or error response.
    pub fn is_response(self) -> bool {
        matches!(self, Class::SuccessResponse | Class::ErrorResponse)
    }
}

/// A STUN method, 12 bits: Binding (RFC 8489) and the TURN methods (RFC 8656 §17).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Method(pub u16);

impl Method {
    /// Binding (RFC 8489).
    pub const BINDING: Method = Method(0x001);
    /// Allocate (TURN).
    pub const ALLOCATE: Method = Method(0x003);
    /// Refresh (TURN).
    pub const REFRESH: Method = Method(0x004);
    /// Send (TURN, indication only).
    pub const SEND: Method = Method(0x006);
    /// Data (TURN, indication only).
    pub const DATA: Method = Method(0x007);
    /// CreatePermission (TURN).
    pub const CREATE_PERMISSION: Method = Method(0x008);
    /// ChannelBind (TURN).
    pub const CHANNEL_BIND: Method = Method(0x009);
}

impl fmt::Debug for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match *self {
            Method::BINDING => "Binding",
            Method::ALLOCATE => "Allocate",
            Method::REFRESH => "Refresh",
            Method::SEND => "Send",
            Method::DATA => "Data",
            Method::CREATE_PERMISSION => "CreatePermission",
            Method::CHANNEL_BIND => "ChannelBind",
            Method(other) => return write!(f, "Method({other:#05x})"),
        };
        f.write_str(name)
    }
}

/// The message type field: method bits M11–M0 with the class bits C1 C0 interleaved at bits 8
/// and 4 (RFC 8489 Figure 3).
pub(crate) const fn message_type(class: Class, method: Method) -> u16 {
    let m = method.0;
    let c = class.bits();
    (m & 0x000F) | ((m & 0x0070) << 1) | ((m & 0x0F80) << 2) | ((c & 0b01) << 4) | ((c & 0b10) << 7)
}

/// The class and method of a message type field.
fn split_type(kind: u16) -> (Class, Method) {
    let method = (kind & 0x000F) | ((kind >> 1) & 0x0070) | ((kind >> 2) & 0x0F80);
    let class = ((kind >> 4) & 0b01) | ((kind >> 7) & 0b10);
    (Class::from_bits(class), Method(method))
}

/// The long-term credential key (RFC 8489 §9.2.2): MD5(username ":" realm ":" password).
///
/// The password and realm are used as given: they are not run through the OpaqueString
/// profile (RFC 8265), which changes nothing for ASCII credentials. The key never appears in
/// Debug output.
#[derive(Clone)]
pub struct LongTermKey([u8; 16]);

impl LongTermKey {
    /// The key for these credentials in this realm.
    pub fn new(username: &str, realm: &str, password: &str) -> LongTermKey {
        let mut md5 = Md5::new();
        md5.update(username.as_bytes());
        md5.update(b":");
        md5.update(realm.as_bytes());
        md5.update(b":");
        md5.update(password.as_bytes());
        LongTermKey(md5.finalize().into())
    }
}

impl fmt::Debug for LongTermKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LongTermKey(<redacted>)")
    }
}

/// One attribute, borrowing its text and data from the bytes it was read from (or the values
/// it will be written from).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attribute<'a> {
    /// MAPPED-ADDRESS, the plain form of the reflexive address (RFC 8489 §14.1).
    MappedAddress(SocketAddr),
    /// XOR-MAPPED-ADDRESS: where the server saw the request come from (RFC 8489 §14.2).
    XorMappedAddress(SocketAddr),
    /// XOR-RELAYED-ADDRESS: the relayed transport address of an allocation (RFC 8656 §18.5).
    XorRelayedAddress(SocketAddr),
    /// XOR-PEER-ADDRESS: a peer as the relay sees it (RFC 8656 §18.3).
    XorPeerAddress(SocketAddr),
    /// LIFETIME in seconds, of an allocation (RFC 8656 §18.2).
    Lifetime(u32),
    /// REQUESTED-TRANSPORT: the IP protocol number of the relay, 17 for UDP (RFC 8656 §18.7).
    RequestedTransport(u8),
    /// DATA: the application bytes a Send or Data indication carries (RFC 8656 §18.4).
    Data(&'a [u8]),
    /// USERNAME (RFC 8489 §14.3).
    Username(&'a str),
    /// REALM (RFC 8489 §14.9).
    Realm(&'a str),
    /// NONCE (RFC 8489 §14.10).
    Nonce(&'a str),
    /// ERROR-CODE: the code (300–699) and its reason phrase (RFC 8489 §14.8).
    ErrorCode {
        /// Class × 100 + number.
        code: u16,
        /// The reason phrase.
        reason: &'a str,
    },
    /// UNKNOWN-ATTRIBUTES: the types a 420 response did not understand (RFC 8489 §14.13).
    UnknownAttributes(Vec<u16>),
    /// CHANNEL-NUMBER (RFC 8656 §18.1).
    ChannelNumber(u16),
    /// SOFTWARE: the agent's name and version (RFC 8489 §14.14).
    Software(&'a str),
}

impl Attribute<'_> {
    /// The attribute's type on the wire.
    pub fn kind(&self) -> u16 {
        match self {
            Attribute::MappedAddress(_) => kind::MAPPED_ADDRESS,
            Attribute::XorMappedAddress(_) => kind::XOR_MAPPED_ADDRESS,
            Attribute::XorRelayedAddress(_) => kind::XOR_RELAYED_ADDRESS,
            Attribute::XorPeerAddress(_) => kind::XOR_PEER_ADDRESS,
            Attribute::Lifetime(_) => kind::LIFETIME,
            Attribute::RequestedTransport(_) => kind::REQUESTED_TRANSPORT,
            Attribute::Data(_) => kind::DATA,
            Attribute::Username(_) => kind::USERNAME,
            Attribute::Realm(_) => kind::REALM,
            Attribute::Nonce(_) => kind::NONCE,
            Attribute::ErrorCode { .. } => kind::ERROR_CODE,
            Attribute::UnknownAttributes(_) => kind::UNKNOWN_ATTRIBUTES,
            Attribute::ChannelNumber(_) => kind::CHANNEL_NUMBER,
            Attribute::Software(_) => kind::SOFTWARE,
        }
    }
}

/// A STUN message: header fields and attributes. MESSAGE-INTEGRITY is written by
/// [`Message::encode`] from a key and checked by [`check_integrity`]; it is not an attribute
/// here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    /// Request, indication or response.
    pub class: Class,
    /// What the message is about.
    pub method: Method,
    /// Pairs a response with its request.
    pub transaction: StunTransactionId,
    /// The attributes in order, MESSAGE-INTEGRITY and FINGERPRINT aside.
    pub attributes: Vec<Attribute<'a>>,
    /// Whether a FINGERPRINT ends the message (when decoded: it was there and right).
    pub fingerprint: bool,
}

impl<'a> Message<'a> {
    /// A message without attributes.
    pub fn new(class: Class, method: Method, transaction: StunTransactionId) -> Self {
        Message {
            class,
            method,
            transaction,
            attributes: Vec::new(),
            fingerprint: false,
        }
    }

    /// The message with one more attribute.
    pub fn with(mut self, attribute: Attribute<'a>) -> Self {
        self.attributes.push(attribute);
        self
    }

    /// The first attribute `pick` accepts, as it returns it.
    pub fn find<T>(&self, pick: impl Fn(&Attribute<'a>) -> Option<T>) -> Option<T> {
        self.attributes.iter().find_map(pick)
    }

    /// ERROR-CODE: the code and reason phrase.
    pub fn error_code(&self) -> Option<(u16, &'a str)> {
        self.find(|a| match a {
            Attribute::ErrorCode { code, reason } => Some((*code, *reason)),
            _ => None,
        })
    }

    /// REALM.
    pub fn realm(&self) -> Option<&'a str> {
        self.find(|a| match a {
            Attribute::Realm(realm) => Some(*realm),
            _ => None,
        })
    }

    /// NONCE.
    pub fn nonce(&self) -> Option<&'a str> {
        self.find(|a| match a {
            Attribute::Nonce(nonce) => Some(*nonce),
            _ => None,
        })
    }

    /// LIFETIME in seconds.
    pub fn lifetime(&self) -> Option<u32> {
        self.find(|a| match a {
            Attribute::Lifetime(seconds) => Some(*seconds),
            _ => None,
        })
    }

    /// XOR-MAPPED-ADDRESS.
    pub fn xor_mapped_address(&self) -> Option<SocketAddr> {
        self.find(|a| match a {
            Attribute::XorMappedAddress(address) => Some(*address),
            _ => None,
        })
    }

    /// XOR-RELAYED-ADDRESS.
    pub fn xor_relayed_address(&self) -> Option<SocketAddr> {
        self.find(|a| match a {
            Attribute::XorRelayedAddress(address) => Some(*address),
            _ => None,
        })
    }

    /// XOR-PEER-ADDRESS.
    pub fn xor_peer_address(&self) -> Option<SocketAddr> {
        self.find(|a| match a {
            Attribute::XorPeerAddress(address) => Some(*address),
            _ => None,
        })
    }

    /// DATA.
    pub fn data(&self) -> Option<&'a [u8]> {
        self.find(|a| match a {
            Attribute::Data(data) => Some(*data),
            _ => None,
        })
    }

    /// Reads a message. Unknown comprehension-optional attributes are skipped, attributes
    /// after MESSAGE-INTEGRITY other than FINGERPRINT are ignored (RFC 8489 §14.5), and a
    /// FINGERPRINT must be last and right.
    pub fn decode(bytes: &'a [u8]) -> Result<Message<'a>, StunError> {
        if bytes.len() > HEADER_LEN + MAX_BODY {
            return Err(StunError::Length(bytes.len()));
        }
        let framed = split_header(bytes)?;
        let (class, method) = split_type(framed.kind);
        let transaction = framed.transaction;
        let mut message = Message::new(class, method, transaction);
        let mut after_integrity = false;
        for raw in RawAttributes::new(framed.body) {
            let raw = raw?;
            if message.fingerprint {
                return Err(StunError::BadFingerprint);
            }
            match raw.kind {
                kind::FINGERPRINT => {
                    let covered = bytes
                        .get(..HEADER_LEN + raw.offset)
                        .ok_or(StunError::Truncated)?;
                    let value = <[u8; 4]>::try_from(raw.value)
                        .map_err(|_| StunError::BadAttribute(raw.kind))?;
                    if u32::from_be_bytes(value) != CRC32.checksum(covered) ^ FINGERPRINT_XOR {
                        return Err(StunError::BadFingerprint);
                    }
                    message.fingerprint = true;
                }
                kind::MESSAGE_INTEGRITY if raw.value.len() != 20 => {
                    return Err(StunError::BadAttribute(raw.kind));
                }
                kind::MESSAGE_INTEGRITY => after_integrity = true,
                _ if after_integrity => {}
                _ => {
                    let Some(attribute) = decode_attribute(raw.kind, raw.value, &transaction)?
                    else {
                        continue;
                    };
                    if message.attributes.len() == MAX_ATTRIBUTES {
                        return Err(StunError::TooManyAttributes);
                    }
                    message.attributes.push(attribute);
                }
            }
        }
        Ok(message)
    }

    /// Writes the message, with MESSAGE-INTEGRITY under `integrity` when given, then
    /// FINGERPRINT when asked for.
    pub fn encode(&self, integrity: Option<&LongTermKey>) -> Result<Vec<u8>, StunError> {
        if self.method.0 > 0x0FFF {
            return Err(StunError::BadMethod(self.method.0));
        }
        let mut bytes = header(message_type(self.class, self.method), 0, self.transaction);
        for attribute in &self.attributes {
            encode_attribute(attribute, &self.transaction, &mut bytes)?;
            if bytes.len() > HEADER_LEN + MAX_BODY {
                return Err(StunError::Length(bytes.len()));
            }
        }
        let trailer = integrity.map_or(0, |_| INTEGRITY_LEN)
            + if self.fingerprint { FINGERPRINT_LEN } else { 0 };
        if bytes.len() + trailer > HEADER_LEN + MAX_BODY {
            return Err(StunError::Length(bytes.len() + trailer));
        }
        if let Some(key) = integrity {
            set_body_len(&mut bytes, INTEGRITY_LEN);
            let tag = hmac_sha1(&key.0, &[&bytes]);
            push_attribute_header(&mut bytes, kind::MESSAGE_INTEGRITY, 20);
            bytes.extend_from_slice(&tag);
        }
        if self.fingerprint {
            set_body_len(&mut bytes, FINGERPRINT_LEN);
            let crc = CRC32.checksum(&bytes) ^ FINGERPRINT_XOR;
            push_attribute_header(&mut bytes, kind::FINGERPRINT, 4);
            bytes.extend_from_slice(&crc.to_be_bytes());
        }
        set_body_len(&mut bytes, 0);
        Ok(bytes)
    }
}

/// What [`check_integrity`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Integrity {
    /// The message carries no MESSAGE-INTEGRITY.
    Absent,
    /// MESSAGE-INTEGRITY is there and matches the key.
    Valid,
    /// MESSAGE-INTEGRITY is there and does not match (or the message cannot be read).
    Invalid,
}

/// Checks the MESSAGE-INTEGRITY of `bytes`, a whole message as received, against `key`
/// (RFC 8489 §14.5: the HMAC covers the message up to the attribute, its length field
/// counting up to the end of the attribute).
pub fn check_integrity(bytes: &[u8], key: &LongTermKey) -> Integrity {
    check_integrity_with(bytes, &key.0)
}

fn check_integrity_with(bytes: &[u8], key: &[u8]) -> Integrity {
    let Ok(framed) = split_header(bytes) else {
        return Integrity::Invalid;
    };
    for raw in RawAttributes::new(framed.body) {
        let Ok(raw) = raw else {
            return Integrity::Invalid;
        };
        if raw.kind != kind::MESSAGE_INTEGRITY {
            continue;
        }
        let covered = bytes.get(..HEADER_LEN + raw.offset);
        let length = u16::try_from(raw.offset + INTEGRITY_LEN);
        let (Some(covered), Ok(length)) = (covered, length) else {
            return Integrity::Invalid;
        };
        let (Some(kind), Some(rest)) = (covered.get(..2), covered.get(4..)) else {
            return Integrity::Invalid;
        };
        let Ok(mut mac) = <Hmac<Sha1> as Mac>::new_from_slice(key) else {
            return Integrity::Invalid;
        };
        mac.update(kind);
        mac.update(&length.to_be_bytes());
        mac.update(rest);
        return match mac.verify_slice(raw.value) {
            Ok(()) => Integrity::Valid,
            Err(_) => Integrity::Invalid,
        };
    }
    Integrity::Absent
}

/// HMAC-SHA1 of the concatenated `parts` under `key`.
fn hmac_sha1(key: &[u8], parts: &[&[u8]]) -> [u8; 20] {
    // HMAC takes keys of any length: this cannot fail.
    let Ok(mut mac) = <Hmac<Sha1> as Mac>::new_from_slice(key) else {
        return [0; 20];
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// Sets the header's length to the body written so far plus `extra` bytes about to follow.
fn set_body_len(bytes: &mut [u8], extra: usize) {
    let body = bytes.len().saturating_sub(HEADER_LEN) + extra;
    let length = u16::try_from(body).unwrap_or(u16::MAX).to_be_bytes();
    if let Some(slot) = bytes.get_mut(2..4) {
        slot.copy_from_slice(&length);
    }
}

fn push_attribute_header(bytes: &mut Vec<u8>, kind: u16, len: u16) {
    bytes.extend_from_slice(&kind.to_be_bytes());
    bytes.extend_from_slice(&len.to_be_bytes());
}

/// Reads one attribute value; `None` for an unknown comprehension-optional one.
fn decode_attribute<'a>(
    kind: u16,
    value: &'a [u8],
    transaction: &StunTransactionId,
) -> Result<Option<Attribute<'a>>, StunError> {
    let bad = StunError::BadAttribute(kind);
    let text = |max: usize| -> Result<&'a str, StunError> {
        if value.len() > max {
            return Err(StunError::BadAttribute(kind));
        }
        std::str::from_utf8(value).map_err(|_| StunError::BadAttribute(kind))
    };
    let attribute = match kind {
        kind::MAPPED_ADDRESS => {
            Attribute::MappedAddress(decode_address(value, transaction, false)?)
        }
        kind::XOR_MAPPED_ADDRESS => {
            Attribute::XorMappedAddress(decode_address(value, transaction, true)?)
        }
        kind::XOR_RELAYED_ADDRESS => {
            Attribute::XorRelayedAddress(decode_address(value, transaction, true)?)
        }
        kind::XOR_PEER_ADDRESS => {
            Attribute::XorPeerAddress(decode_address(value, transaction, true)?)
        }
        kind::LIFETIME => {
            Attribute::Lifetime(u32::from_be_bytes(value.try_into().map_err(|_| bad)?))
        }
        kind::REQUESTED_TRANSPORT => match value {
            [protocol, _, _, _] => Attribute::RequestedTransport(*protocol),
            _ => return Err(bad),
        },
        kind::DATA => Attribute::Data(value),
        kind::USERNAME => Attribute::Username(text(MAX_USERNAME)?),
        kind::REALM => Attribute::Realm(text(MAX_TEXT)?),
        kind::NONCE => Attribute::Nonce(text(MAX_TEXT)?),
        kind::SOFTWARE => Attribute::Software(text(MAX_TEXT)?),
        kind::ERROR_CODE => {
            let [_, _, class, number, reason @ ..] = value else {
                return Err(bad);
            };
            let class = class & 0x07;
            if !(3..=6).contains(&class) || *number > 99 || reason.len() > MAX_TEXT {
                return Err(bad);
            }
            Attribute::ErrorCode {
                code: u16::from(class) * 100 + u16::from(*number),
                reason: std::str::from_utf8(reason).map_err(|_| bad)?,
            }
        }
        kind::UNKNOWN_ATTRIBUTES => {
            let (pairs, rest) = value.as_chunks::<2>();
            if !rest.is_empty() || pairs.len() > MAX_UNKNOWN {
                return Err(bad);
            }
            Attribute::UnknownAttributes(pairs.iter().map(|p| u16::from_be_bytes(*p)).collect())
        }
        kind::CHANNEL_NUMBER => match value {
            [c0, c1, _, _] => Attribute::ChannelNumber(u16::from_be_bytes([*c0, *c1])),
            _ => return Err(bad),
        },
        0x0000..0x8000 => return Err(StunError::UnknownRequired(kind)),
        _ => return Ok(None),
    };
    Ok(Some(attribute))
}

/// Appends one attribute: header, value, zero padding to four bytes.
fn encode_attribute(
    attribute: &Attribute<'_>,
    transaction: &StunTransactionId,
    bytes: &mut Vec<u8>,
) -> Result<(), StunError> {
    let kind = attribute.kind();
    let bad = StunError::BadAttribute(kind);
    let mut value = Vec::new();
    let text = |text, max| bounded_text(text, max, kind);
    let value: &[u8] = match attribute {
        Attribute::MappedAddress(address) => {
            encode_address(*address, transaction, false, &mut value);
            &value
        }
        Attribute::XorMappedAddress(address)
        | Attribute::XorRelayedAddress(address)
        | Attribute::XorPeerAddress(address) => {
            encode_address(*address, transaction, true, &mut value);
            &value
        }
        Attribute::Lifetime(seconds) => {
            value.extend_from_slice(&seconds.to_be_bytes());
            &value
        }
        Attribute::RequestedTransport(protocol) => {
            value.extend_from_slice(&[*protocol, 0, 0, 0]);
            &value
        }
        Attribute::Data(data) => data,
        Attribute::Username(name) => text(name, MAX_USERNAME)?,
        Attribute::Realm(realm) => text(realm, MAX_TEXT)?,
        Attribute::Nonce(nonce) => text(nonce, MAX_TEXT)?,
        Attribute::Software(software) => text(software, MAX_TEXT)?,
        Attribute::ErrorCode { code, reason } => {
            if !(300..700).contains(code) {
                return Err(bad);
            }
            let [class, number] = [code / 100, code % 100].map(|n| n.to_be_bytes()[1]);
            value.extend_from_slice(&[0, 0, class, number]);
            value.extend_from_slice(text(reason, MAX_TEXT)?);
            &value
        }
        Attribute::UnknownAttributes(kinds) => {
            if kinds.len() > MAX_UNKNOWN {
                return Err(bad);
            }
            kinds
                .iter()
                .for_each(|k| value.extend_from_slice(&k.to_be_bytes()));
            &value
        }
        Attribute::ChannelNumber(channel) => {
            value.extend_from_slice(&channel.to_be_bytes());
            value.extend_from_slice(&[0, 0]);
            &value
        }
    };
    let len = u16::try_from(value.len()).map_err(|_| bad)?;
    push_attribute_header(bytes, kind, len);
    bytes.extend_from_slice(value);
    bytes.resize(bytes.len().div_ceil(4) * 4, 0);
    Ok(())
}

/// The bytes of a text attribute, refused when longer than `max`.
fn bounded_text(text: &str, max: usize, kind: u16) -> Result<&[u8], StunError> {
    if text.len() > max {
        Err(StunError::BadAttribute(kind))
    } else {
        Ok(text.as_bytes())
    }
}

/// Whether `bytes` look like a STUN message (RFC 8489 §6): top two bits zero and the magic
/// cookie in place. SIP text never starts this way, so one datagram socket can carry both
/// (RFC 5626 §4.4.2).
pub fn is_stun(bytes: &[u8]) -> bool {
    match bytes.first_chunk::<HEADER_LEN>() {
        Some([first, _, _, _, c0, c1, c2, c3, ..]) => {
            first & 0xC0 == 0 && u32::from_be_bytes([*c0, *c1, *c2, *c3]) == MAGIC_COOKIE
        }
        None => false,
    }
}

/// The header of a message with `body_len` bytes of attributes.
pub(crate) fn header(kind: u16, body_len: u16, transaction: StunTransactionId) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(HEADER_LEN + usize::from(body_len));
    bytes.extend_from_slice(&kind.to_be_bytes());
    bytes.extend_from_slice(&body_len.to_be_bytes());
    bytes.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
    bytes.extend_from_slice(&transaction.0);
    bytes
}

/// A message's header fields and its attribute bytes, checked against each other.
pub(crate) struct Framed<'a> {
    /// The message type (method and class interleaved).
    pub kind: u16,
    pub transaction: StunTransactionId,
    /// Everything after the header; its length is the header's and a multiple of four.
    pub body: &'a [u8],
}

/// Splits a message into header fields and body: [`StunError::NotStun`] without the magic
/// cookie, [`StunError::Truncated`] when the header's length disagrees with the bytes.
pub(crate) fn split_header(bytes: &[u8]) -> Result<Framed<'_>, StunError> {
    let Some((header, body)) = bytes.split_first_chunk::<HEADER_LEN>() else {
        return Err(StunError::Length(bytes.len()));
    };
    if !is_stun(bytes) {
        return Err(StunError::NotStun);
    }
    let [t0, t1, l0, l1, _, _, _, _, transaction @ ..] = *header;
    if usize::from(u16::from_be_bytes([l0, l1])) != body.len() {
        return Err(StunError::Truncated);
    }
    if !body.len().is_multiple_of(4) {
        return Err(StunError::Length(bytes.len()));
    }
    Ok(Framed {
        kind: u16::from_be_bytes([t0, t1]),
        transaction: StunTransactionId(transaction),
        body,
    })
}

/// One attribute as it lies in the message: type and value, padding dropped.
pub(crate) struct RawAttribute<'a> {
    pub kind: u16,
    pub value: &'a [u8],
    /// Where the attribute starts, counted from the start of the body.
    pub offset: usize,
}

/// Walks the attributes of a message body; an attribute overrunning the body ends the walk
/// with [`StunError::Truncated`].
pub(crate) struct RawAttributes<'a> {
    rest: &'a [u8],
    offset: usize,
}

impl<'a> RawAttributes<'a> {
    /// The attributes of `body` (a message minus its header).
    pub fn new(body: &'a [u8]) -> Self {
        RawAttributes {
            rest: body,
            offset: 0,
        }
    }
}

impl<'a> Iterator for RawAttributes<'a> {
    type Item = Result<RawAttribute<'a>, StunError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let walked = (|| {
            let ([t0, t1, l0, l1], body) = self.rest.split_first_chunk::<4>()?;
            let len = usize::from(u16::from_be_bytes([*l0, *l1]));
            let (value, _) = body.split_at_checked(len)?;
            let (_, rest) = body.split_at_checked(len.div_ceil(4) * 4)?;
            Some((u16::from_be_bytes([*t0, *t1]), value, rest))
        })();
        let Some((kind, value, rest)) = walked else {
            self.rest = &[];
            return Some(Err(StunError::Truncated));
        };
        let attribute = RawAttribute {
            kind,
            value,
            offset: self.offset,
        };
        self.offset += self.rest.len() - rest.len();
        self.rest = rest;
        Some(Ok(attribute))
    }
}

/// Reads a (XOR-)MAPPED-ADDRESS-shaped value (RFC 8489 §14.1–14.2): family, port, address;
/// the XOR form masks the port and an IPv4 address with the magic cookie, an IPv6 address
/// with the cookie and the transaction id.
pub(crate) fn decode_address(
    value: &[u8],
    transaction: &StunTransactionId,
    xor: bool,
) -> Result<SocketAddr, StunError> {
    let [_, family, p0, p1, address @ ..] = value else {
        return Err(StunError::BadAddress);
    };
    let mask = address_mask(transaction, xor);
    let [m0, m1, ..] = mask;
    let port = u16::from_be_bytes([p0 ^ m0, p1 ^ m1]);
    let ip = match (family, address.len()) {
        (0x01, 4) => {
            let mut octets = [0u8; 4];
            for ((octet, byte), mask) in octets.iter_mut().zip(address).zip(mask) {
                *octet = byte ^ mask;
            }
            IpAddr::V4(Ipv4Addr::from(octets))
        }
        (0x02, 16) => {
            let mut octets = [0u8; 16];
            for ((octet, byte), mask) in octets.iter_mut().zip(address).zip(mask) {
                *octet = byte ^ mask;
            }
            IpAddr::V6(Ipv6Addr::from(octets))
        }
        _ => return Err(StunError::BadAddress),
    };
    Ok(SocketAddr::new(ip, port))
}

/// Appends the value of a (XOR-)MAPPED-ADDRESS-shaped attribute.
fn encode_address(
    address: SocketAddr,
    transaction: &StunTransactionId,
    xor: bool,
    value: &mut Vec<u8>,
) {
    let mask = address_mask(transaction, xor);
    let [m0, m1, ..] = mask;
    let [p0, p1] = address.port().to_be_bytes();
    let (family, octets) = match address.ip() {
        IpAddr::V4(ip) => (0x01, ip.octets().to_vec()),
        IpAddr::V6(ip) => (0x02, ip.octets().to_vec()),
    };
    value.extend_from_slice(&[0, family, p0 ^ m0, p1 ^ m1]);
    value.extend(octets.iter().zip(mask).map(|(byte, mask)| byte ^ mask));
}

/// The bytes an address is XORed with: the magic cookie then the transaction id (zeros for
/// the plain form).
fn address_mask(transaction: &StunTransactionId, xor: bool) -> [u8; 16] {
    let mut mask = [0u8; 16];
    if xor {
        let cookie = MAGIC_COOKIE.to_be_bytes();
        for (slot, byte) in mask.iter_mut().zip(cookie.iter().chain(&transaction.0)) {
            *slot = *byte;
        }
    }
    mask
}

#[cfg(test)]
pub(crate) mod tests;
