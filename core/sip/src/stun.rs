//! The STUN Binding exchange (RFC 8489) as SIP outbound uses it for UDP keep-alives (RFC 5626
//! §4.4.2): a Binding request with no attributes, and its answer with the address the server
//! saw us at. Anything else on the wire is refused with a [`StunError`]; nothing here panics
//! on hostile bytes.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use rand::RngCore;

/// The fixed value in every RFC 5389/8489 STUN header.
const MAGIC_COOKIE: u32 = 0x2112_A442;
const HEADER_LEN: usize = 20;
const BINDING_REQUEST: u16 = 0x0001;
const BINDING_SUCCESS: u16 = 0x0101;
const BINDING_ERROR: u16 = 0x0111;
const MAPPED_ADDRESS: u16 = 0x0001;
const XOR_MAPPED_ADDRESS: u16 = 0x0020;
const ERROR_CODE: u16 = 0x0009;
/// The largest answer accepted: a Binding answer carries a few short attributes.
const MAX_MESSAGE: usize = 1280;

/// The 96-bit transaction id that pairs a Binding request with its answer.
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

/// What a STUN server answered to a Binding request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindingAnswer {
    /// Success: where the server saw the request come from (our address after any NAT),
    /// when the answer says.
    Success {
        /// The request the answer is for.
        transaction: StunTransactionId,
        /// XOR-MAPPED-ADDRESS, else MAPPED-ADDRESS.
        mapped: Option<SocketAddr>,
    },
    /// An error response with its code (e.g. 400), 0 when the answer names none.
    Error {
        /// The request the answer is for.
        transaction: StunTransactionId,
        /// The ERROR-CODE class × 100 + number.
        code: u16,
    },
}

impl BindingAnswer {
    /// The request the answer is for.
    pub fn transaction(&self) -> StunTransactionId {
        match self {
            BindingAnswer::Success { transaction, .. }
            | BindingAnswer::Error { transaction, .. } => *transaction,
        }
    }
}

/// Why bytes are not a STUN Binding answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StunError {
    /// Shorter than the header, not a multiple of four, or longer than an answer can be.
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
    /// A mapped-address attribute that cannot be read.
    #[error("malformed STUN address attribute")]
    BadAddress,
}

/// Whether `bytes` look like a STUN message (RFC 8489 §6): top two bits zero and the magic
/// cookie in place. SIP text never starts this way, so one datagram socket can carry both
/// (RFC 5626 §4.4.2).
pub fn is_stun(bytes: &[u8]) -> bool {
    bytes.len() >= HEADER_LEN
        && bytes[0] & 0xC0 == 0
        && u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) == MAGIC_COOKIE
}

/// A Binding request without attributes (RFC 5626 keep-alives carry none).
pub fn binding_request(transaction: StunTransactionId) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(HEADER_LEN);
    bytes.extend_from_slice(&BINDING_REQUEST.to_be_bytes());
    bytes.extend_from_slice(&0u16.to_be_bytes());
    bytes.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
    bytes.extend_from_slice(&transaction.0);
    bytes
}

/// Reads a Binding success or error response.
pub fn parse_binding_answer(bytes: &[u8]) -> Result<BindingAnswer, StunError> {
    if bytes.len() < HEADER_LEN || bytes.len() > MAX_MESSAGE || !bytes.len().is_multiple_of(4) {
        return Err(StunError::Length(bytes.len()));
    }
    if !is_stun(bytes) {
        return Err(StunError::NotStun);
    }
    let kind = u16::from_be_bytes([bytes[0], bytes[1]]);
    let length = usize::from(u16::from_be_bytes([bytes[2], bytes[3]]));
    if HEADER_LEN + length != bytes.len() {
        return Err(StunError::Truncated);
    }
    let mut transaction = [0u8; 12];
    transaction.copy_from_slice(&bytes[8..HEADER_LEN]);
    let transaction = StunTransactionId(transaction);
    if kind != BINDING_SUCCESS && kind != BINDING_ERROR {
        return Err(StunError::NotBindingAnswer(kind));
    }
    let mut xor_mapped = None;
    let mut mapped = None;
    let mut code = 0;
    let mut rest = &bytes[HEADER_LEN..];
    while !rest.is_empty() {
        let [t0, t1, l0, l1, body @ ..] = rest else {
            return Err(StunError::Truncated);
        };
        let attribute = u16::from_be_bytes([*t0, *t1]);
        let len = usize::from(u16::from_be_bytes([*l0, *l1]));
        let padded = len.div_ceil(4) * 4;
        if body.len() < padded {
            return Err(StunError::Truncated);
        }
        let value = &body[..len];
        match attribute {
            XOR_MAPPED_ADDRESS => xor_mapped = Some(read_address(value, &transaction, true)?),
            MAPPED_ADDRESS => mapped = Some(read_address(value, &transaction, false)?),
            ERROR_CODE if value.len() >= 4 => {
                code = u16::from(value[2] & 0x07) * 100 + u16::from(value[3]);
            }
            _ => {}
        }
        rest = &body[padded..];
    }
    Ok(if kind == BINDING_SUCCESS {
        BindingAnswer::Success {
            transaction,
            mapped: xor_mapped.or(mapped),
        }
    } else {
        BindingAnswer::Error { transaction, code }
    })
}

/// Reads a (XOR-)MAPPED-ADDRESS value (RFC 8489 §14.1–14.2).
fn read_address(
    value: &[u8],
    transaction: &StunTransactionId,
    xor: bool,
) -> Result<SocketAddr, StunError> {
    let [_, family, p0, p1, address @ ..] = value else {
        return Err(StunError::BadAddress);
    };
    let cookie = MAGIC_COOKIE.to_be_bytes();
    let mut port = u16::from_be_bytes([*p0, *p1]);
    if xor {
        port ^= u16::from_be_bytes([cookie[0], cookie[1]]);
    }
    let ip = match (family, address.len()) {
        (0x01, 4) => {
            let mut octets = [0u8; 4];
            octets.copy_from_slice(address);
            if xor {
                for (octet, mask) in octets.iter_mut().zip(cookie) {
                    *octet ^= mask;
                }
            }
            IpAddr::V4(Ipv4Addr::from(octets))
        }
        (0x02, 16) => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(address);
            if xor {
                let mask = cookie.iter().chain(&transaction.0);
                for (octet, mask) in octets.iter_mut().zip(mask) {
                    *octet ^= mask;
                }
            }
            IpAddr::V6(Ipv6Addr::from(octets))
        }
        _ => return Err(StunError::BadAddress),
    };
    Ok(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: StunTransactionId = StunTransactionId([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);

    /// An answer as a server writes it: header, then each attribute padded to four bytes.
    fn answer(kind: u16, attributes: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let mut body = Vec::new();
        for (attribute, value) in attributes {
            body.extend_from_slice(&attribute.to_be_bytes());
            body.extend_from_slice(&(value.len() as u16).to_be_bytes());
            body.extend_from_slice(value);
            body.resize(body.len().div_ceil(4) * 4, 0);
        }
        let mut bytes = kind.to_be_bytes().to_vec();
        bytes.extend_from_slice(&(body.len() as u16).to_be_bytes());
        bytes.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        bytes.extend_from_slice(&ID.0);
        bytes.extend_from_slice(&body);
        bytes
    }

    #[test]
    fn a_request_is_a_bare_binding_header() {
        let bytes = binding_request(ID);
        assert_eq!(bytes.len(), 20);
        assert_eq!(&bytes[..8], &[0, 1, 0, 0, 0x21, 0x12, 0xA4, 0x42]);
        assert_eq!(&bytes[8..], &ID.0);
        assert!(is_stun(&bytes));
        assert!(!is_stun(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP x\r\n"));
        assert!(!is_stun(b"\r\n\r\n"));
    }

    #[test]
    fn reads_the_answer_kamailio_sends() {
        // Captured from Kamailio 5.6's stun module answering 127.0.0.78:59357 (with SOFTWARE).
        let bytes = hex(
            "010100382112a44255a2ded2449d8bb13a1b8cb2002000080001c6cf5e12a40c\
             802200275365727665723a206b616d61696c696f2028352e362e3320287838365f\
             36342f6c696e7578292900",
        );
        let answer = parse_binding_answer(&bytes).unwrap();
        assert_eq!(
            answer,
            BindingAnswer::Success {
                transaction: StunTransactionId([
                    0x55, 0xa2, 0xde, 0xd2, 0x44, 0x9d, 0x8b, 0xb1, 0x3a, 0x1b, 0x8c, 0xb2
                ]),
                mapped: Some("127.0.0.78:59357".parse().unwrap()),
            }
        );
    }

    #[test]
    fn reads_ipv6_plain_mapped_and_error_answers() {
        let ip: Ipv6Addr = "2001:db8::7".parse().unwrap();
        let mut xored = vec![0, 2];
        xored.extend_from_slice(&(5060u16 ^ 0x2112).to_be_bytes());
        let mask: Vec<u8> = MAGIC_COOKIE.to_be_bytes().into_iter().chain(ID.0).collect();
        xored.extend(ip.octets().iter().zip(&mask).map(|(a, b)| a ^ b));
        let bytes = answer(BINDING_SUCCESS, &[(XOR_MAPPED_ADDRESS, xored)]);
        assert_eq!(
            parse_binding_answer(&bytes).unwrap(),
            BindingAnswer::Success {
                transaction: ID,
                mapped: Some(SocketAddr::new(ip.into(), 5060)),
            }
        );
        let plain = answer(
            BINDING_SUCCESS,
            &[(MAPPED_ADDRESS, vec![0, 1, 0x13, 0xc4, 203, 0, 113, 10])],
        );
        assert_eq!(
            parse_binding_answer(&plain).unwrap(),
            BindingAnswer::Success {
                transaction: ID,
                mapped: Some("203.0.113.10:5060".parse().unwrap()),
            }
        );
        let error = answer(BINDING_ERROR, &[(ERROR_CODE, vec![0, 0, 4, 0, b'B', b'a'])]);
        assert_eq!(
            parse_binding_answer(&error).unwrap(),
            BindingAnswer::Error {
                transaction: ID,
                code: 400
            }
        );
    }

    #[test]
    fn hostile_bytes_are_refused_without_panicking() {
        let good = answer(
            BINDING_SUCCESS,
            &[(MAPPED_ADDRESS, vec![0, 1, 0x13, 0xc4, 203, 0, 113, 10])],
        );
        for cut in 0..good.len() {
            assert!(parse_binding_answer(&good[..cut]).is_err(), "cut at {cut}");
        }
        // The header claims more than there is; an attribute overruns the message.
        let mut long = good.clone();
        long[3] += 4;
        assert_eq!(parse_binding_answer(&long), Err(StunError::Truncated));
        let mut overrun = good.clone();
        overrun[23] = 200;
        assert_eq!(parse_binding_answer(&overrun), Err(StunError::Truncated));
        // A request, a bad family and a bad cookie.
        assert_eq!(
            parse_binding_answer(&binding_request(ID)),
            Err(StunError::NotBindingAnswer(BINDING_REQUEST))
        );
        let family = answer(
            BINDING_SUCCESS,
            &[(MAPPED_ADDRESS, vec![0, 9, 0x13, 0xc4, 1, 2, 3, 4])],
        );
        assert_eq!(parse_binding_answer(&family), Err(StunError::BadAddress));
        let mut cookie = good.clone();
        cookie[4] ^= 1;
        assert_eq!(parse_binding_answer(&cookie), Err(StunError::NotStun));
        assert!(matches!(
            parse_binding_answer(&vec![0u8; 4096]),
            Err(StunError::Length(4096))
        ));
        // Every byte flipped in turn: an error or an answer, never a panic.
        for i in 0..good.len() {
            for bit in 0..8 {
                let mut bent = good.clone();
                bent[i] ^= 1 << bit;
                let _ = parse_binding_answer(&bent);
            }
        }
    }

    fn hex(text: &str) -> Vec<u8> {
        let digits: Vec<u8> = text
            .bytes()
            .filter(u8::is_ascii_hexdigit)
            .map(|d| (d as char).to_digit(16).unwrap() as u8)
            .collect();
        digits.chunks(2).map(|p| p[0] << 4 | p[1]).collect()
    }
}
