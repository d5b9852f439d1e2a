//! The STUN Binding exchange (RFC 8489) as SIP outbound uses it for UDP keep-alives (RFC 5626
//! §4.4.2): a Binding request with no attributes, and its answer with the address the server
//! saw us at. Anything else on the wire is refused with a [`StunError`]; nothing here panics
//! on hostile bytes. The header, the attribute walk and the address encoding are the general
//! codec's ([`crate::message`]).

use std::net::SocketAddr;

use crate::message::kind::{ERROR_CODE, MAPPED_ADDRESS, XOR_MAPPED_ADDRESS};
use crate::message::{self, Class, Method, RawAttributes, decode_address, message_type};
pub use crate::message::{StunError, StunTransactionId, is_stun};

const BINDING_REQUEST: u16 = message_type(Class::Request, Method::BINDING);
const BINDING_SUCCESS: u16 = message_type(Class::SuccessResponse, Method::BINDING);
const BINDING_ERROR: u16 = message_type(Class::ErrorResponse, Method::BINDING);
/// The largest answer accepted: a Binding answer carries a few short attributes.
const MAX_MESSAGE: usize = 1280;

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

/// A Binding request without attributes (RFC 5626 keep-alives carry none).
pub fn binding_request(transaction: StunTransactionId) -> Vec<u8> {
    message::header(BINDING_REQUEST, 0, transaction)
}

/// Reads a Binding success or error response. Attributes other than the mapped address and
/// the error code are skipped, whatever they hold.
pub fn parse_binding_answer(bytes: &[u8]) -> Result<BindingAnswer, StunError> {
    if bytes.len() < message::HEADER_LEN
        || bytes.len() > MAX_MESSAGE
        || !bytes.len().is_multiple_of(4)
    {
        return Err(StunError::Length(bytes.len()));
    }
    let framed = message::split_header(bytes)?;
    let transaction = framed.transaction;
    if framed.kind != BINDING_SUCCESS && framed.kind != BINDING_ERROR {
        return Err(StunError::NotBindingAnswer(framed.kind));
    }
    let mut xor_mapped = None;
    let mut mapped = None;
    let mut code = 0;
    for attribute in RawAttributes::new(framed.body) {
        let attribute = attribute?;
        match (attribute.kind, attribute.value) {
            (XOR_MAPPED_ADDRESS, value) => {
                xor_mapped = Some(decode_address(value, &transaction, true)?);
            }
            (MAPPED_ADDRESS, value) => mapped = Some(decode_address(value, &transaction, false)?),
            (ERROR_CODE, [_, _, class, number, ..]) => {
                code = u16::from(class & 0x07) * 100 + u16::from(*number);
            }
            _ => {}
        }
    }
    Ok(if framed.kind == BINDING_SUCCESS {
        BindingAnswer::Success {
            transaction,
            mapped: xor_mapped.or(mapped),
        }
    } else {
        BindingAnswer::Error { transaction, code }
    })
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use std::net::Ipv6Addr;

    use crate::message::tests::hex;

    use super::*;
    use crate::message::MAGIC_COOKIE;

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
    fn the_binding_message_types_are_the_rfc_values() {
        assert_eq!(
            [BINDING_REQUEST, BINDING_SUCCESS, BINDING_ERROR],
            [0x0001, 0x0101, 0x0111]
        );
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
}
