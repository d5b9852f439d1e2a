//! STUN messages (RFC 8489 §5, §14): the header with its magic cookie and transaction id, the
//! attribute walk with 4-byte padding, and the (XOR-)address encoding every address attribute
//! shares.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use rand::RngCore;

/// The fixed value in every RFC 5389/8489 STUN header.
pub const MAGIC_COOKIE: u32 = 0x2112_A442;
/// The length of the STUN header: type, length, magic cookie, transaction id.
pub const HEADER_LEN: usize = 20;

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

/// Why bytes are not a STUN message (or not the one expected).
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
}

/// Walks the attributes of a message body; an attribute overrunning the body ends the walk
/// with [`StunError::Truncated`].
pub(crate) struct RawAttributes<'a> {
    rest: &'a [u8],
}

impl<'a> RawAttributes<'a> {
    /// The attributes of `body` (a message minus its header).
    pub fn new(body: &'a [u8]) -> Self {
        RawAttributes { rest: body }
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
        self.rest = rest;
        Some(Ok(RawAttribute { kind, value }))
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
