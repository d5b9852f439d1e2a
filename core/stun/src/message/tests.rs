#![allow(clippy::indexing_slicing)]

use super::*;

const ID: StunTransactionId = StunTransactionId([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
/// The short-term password of the RFC 5769 §2.1–2.3 samples (the key is the password).
const RFC5769_PASSWORD: &[u8] = b"VOkJxbRl1RmTxUk/WvJxBt";

/// Bytes from hex digits, anything else (spaces, line breaks) skipped: for the RFC samples.
pub(crate) fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text
        .bytes()
        .filter(u8::is_ascii_hexdigit)
        .map(|d| (d as char).to_digit(16).unwrap() as u8)
        .collect();
    digits.chunks(2).map(|p| p[0] << 4 | p[1]).collect()
}

/// RFC 5769 §2.1: a Binding request with SOFTWARE, PRIORITY, ICE-CONTROLLED, USERNAME,
/// MESSAGE-INTEGRITY and FINGERPRINT.
fn rfc5769_request() -> Vec<u8> {
    hex("000100582112a442b7e7a701bc34d686fa87dfae\
         802200105354554e207465737420636c69656e74\
         002400046e0001ff\
         80290008932ff9b151263b36\
         000600096576746a3a68367659202020\
         000800149aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a2\
         80280004e57a3bcf")
}

/// RFC 5769 §2.2: the IPv4 Binding success response.
fn rfc5769_ipv4_response() -> Vec<u8> {
    hex("0101003c2112a442b7e7a701bc34d686fa87dfae\
         8022000b7465737420766563746f7220\
         002000080001a147e112a643\
         000800142b91f599fd9e90c38c7489f92af9ba53f06be7d7\
         80280004c07d4c96")
}

/// RFC 5769 §2.3: the IPv6 Binding success response.
fn rfc5769_ipv6_response() -> Vec<u8> {
    hex("010100482112a442b7e7a701bc34d686fa87dfae\
         8022000b7465737420766563746f7220\
         002000140002a1470113a9faa5d3f179bc25f4b5bed2b9d9\
         00080014a382954e4be67bf11784c97c8292c275bfe3ed41\
         80280004c8fb0b4c")
}

/// RFC 5769 §2.4: a request under the long-term credential.
fn rfc5769_long_term_request() -> Vec<u8> {
    hex("000100602112a44278ad3433c6ad72c029da412e\
         00060012e3839ee38388e383aae38383e382afe382b90000\
         0015001c662f2f3439396b39353464364f4c33346f4c39465354767936347341\
         0014000b6578616d706c652e6f726700\
         00080014f67024656dd64a3e02b8e0712e85c9a28ca89666")
}

#[test]
fn message_types_interleave_class_and_method_as_rfc_8489_figure_3() {
    let cases = [
        (Class::Request, Method::BINDING, 0x0001),
        (Class::SuccessResponse, Method::BINDING, 0x0101),
        (Class::ErrorResponse, Method::BINDING, 0x0111),
        (Class::Request, Method::ALLOCATE, 0x0003),
        (Class::SuccessResponse, Method::ALLOCATE, 0x0103),
        (Class::ErrorResponse, Method::ALLOCATE, 0x0113),
        (Class::Request, Method::REFRESH, 0x0004),
        (Class::Indication, Method::SEND, 0x0016),
        (Class::Indication, Method::DATA, 0x0017),
        (Class::Request, Method::CREATE_PERMISSION, 0x0008),
        (Class::Request, Method::CHANNEL_BIND, 0x0009),
    ];
    for (class, method, kind) in cases {
        assert_eq!(message_type(class, method), kind, "{class:?} {method:?}");
    }
    let classes = [
        Class::Request,
        Class::Indication,
        Class::SuccessResponse,
        Class::ErrorResponse,
    ];
    for method in 0..=0x0FFF {
        for class in classes {
            let kind = message_type(class, Method(method));
            assert_eq!(kind & 0xC000, 0);
            assert_eq!(split_type(kind), (class, Method(method)));
        }
    }
}

#[test]
fn reads_the_rfc_5769_responses_and_checks_their_integrity_and_fingerprint() {
    let bytes = rfc5769_ipv4_response();
    let message = Message::decode(&bytes).unwrap();
    assert_eq!(message.class, Class::SuccessResponse);
    assert_eq!(message.method, Method::BINDING);
    assert_eq!(
        message.attributes,
        vec![
            Attribute::Software("test vector"),
            Attribute::XorMappedAddress("192.0.2.1:32853".parse().unwrap()),
        ]
    );
    assert!(message.fingerprint);
    assert_eq!(
        check_integrity_with(&bytes, RFC5769_PASSWORD),
        Integrity::Valid
    );
    assert_eq!(check_integrity_with(&bytes, b"wrong"), Integrity::Invalid);

    let bytes = rfc5769_ipv6_response();
    let message = Message::decode(&bytes).unwrap();
    assert_eq!(
        message.xor_mapped_address(),
        Some(
            "[2001:db8:1234:5678:11:2233:4455:6677]:32853"
                .parse()
                .unwrap()
        )
    );
    assert_eq!(
        check_integrity_with(&bytes, RFC5769_PASSWORD),
        Integrity::Valid
    );

    // The request carries ICE's PRIORITY, comprehension-required and unknown here; its
    // integrity can still be checked.
    let bytes = rfc5769_request();
    assert_eq!(
        Message::decode(&bytes),
        Err(StunError::UnknownRequired(0x0024))
    );
    assert_eq!(
        check_integrity_with(&bytes, RFC5769_PASSWORD),
        Integrity::Valid
    );
}

#[test]
fn the_long_term_key_is_md5_of_username_realm_password() {
    // RFC 5769 §2.4; "TheMatrIX" is the password after SASLprep.
    let bytes = rfc5769_long_term_request();
    let message = Message::decode(&bytes).unwrap();
    assert_eq!(
        message.attributes,
        vec![
            Attribute::Username("マトリックス"),
            Attribute::Nonce("f//499k954d6OL34oL9FSTvy64sA"),
            Attribute::Realm("example.org"),
        ]
    );
    let key = LongTermKey::new("マトリックス", "example.org", "TheMatrIX");
    assert_eq!(check_integrity(&bytes, &key), Integrity::Valid);
    let wrong = LongTermKey::new("マトリックス", "example.org", "TheMatrix");
    assert_eq!(check_integrity(&bytes, &wrong), Integrity::Invalid);
    assert_eq!(format!("{key:?}"), "LongTermKey(<redacted>)");
}

/// A message with every attribute the codec knows, IPv4 and IPv6 addresses.
fn everything(data: &[u8]) -> Message<'_> {
    Message::new(Class::ErrorResponse, Method::ALLOCATE, ID)
        .with(Attribute::MappedAddress(
            "203.0.113.7:3478".parse().unwrap(),
        ))
        .with(Attribute::XorMappedAddress(
            "[2001:db8::1]:40000".parse().unwrap(),
        ))
        .with(Attribute::XorRelayedAddress(
            "198.51.100.2:50000".parse().unwrap(),
        ))
        .with(Attribute::XorPeerAddress(
            "[2001:db8:ffff::9]:1".parse().unwrap(),
        ))
        .with(Attribute::Lifetime(600))
        .with(Attribute::RequestedTransport(17))
        .with(Attribute::Data(data))
        .with(Attribute::Username("alice"))
        .with(Attribute::Realm("example.org"))
        .with(Attribute::Nonce("abcdefghij"))
        .with(Attribute::ErrorCode {
            code: 438,
            reason: "Stale Nonce",
        })
        .with(Attribute::UnknownAttributes(vec![0x0024, 0x0025, 0x7FFF]))
        .with(Attribute::ChannelNumber(0x4001))
        .with(Attribute::Software("handset"))
}

#[test]
fn every_attribute_round_trips_with_integrity_and_fingerprint() {
    let key = LongTermKey::new("alice", "example.org", "secret");
    for data in [&b""[..], b"x", b"xy", b"xyz", b"four", b"fives"] {
        let mut message = everything(data);
        message.fingerprint = true;
        let bytes = message.encode(Some(&key)).unwrap();
        assert_eq!(bytes.len() % 4, 0);
        assert!(is_stun(&bytes));
        assert_eq!(Message::decode(&bytes).unwrap(), message);
        assert_eq!(check_integrity(&bytes, &key), Integrity::Valid);

        message.fingerprint = false;
        let plain = message.encode(None).unwrap();
        assert_eq!(Message::decode(&plain).unwrap(), message);
        assert_eq!(check_integrity(&plain, &key), Integrity::Absent);
    }
}

#[test]
fn attributes_are_padded_with_zeros_and_the_length_counts_them() {
    let bytes = Message::new(Class::Indication, Method::SEND, ID)
        .with(Attribute::Data(b"abcde"))
        .encode(None)
        .unwrap();
    assert_eq!(
        bytes,
        [
            &[0x00, 0x16, 0x00, 0x0C][..],
            &MAGIC_COOKIE.to_be_bytes(),
            &ID.0,
            &[
                0x00, 0x13, 0x00, 0x05, b'a', b'b', b'c', b'd', b'e', 0, 0, 0
            ],
        ]
        .concat()
    );
}

/// Appends a raw attribute to an encoded message and fixes the header's length.
fn append_raw(bytes: &mut Vec<u8>, kind: u16, value: &[u8]) {
    bytes.extend_from_slice(&kind.to_be_bytes());
    bytes.extend_from_slice(&(value.len() as u16).to_be_bytes());
    bytes.extend_from_slice(value);
    bytes.resize(bytes.len().div_ceil(4) * 4, 0);
    let length = (bytes.len() - HEADER_LEN) as u16;
    bytes[2..4].copy_from_slice(&length.to_be_bytes());
}

#[test]
fn unknown_optional_attributes_are_skipped_and_unknown_required_ones_refused() {
    let mut bytes = Message::new(Class::SuccessResponse, Method::ALLOCATE, ID)
        .with(Attribute::Lifetime(300))
        .encode(None)
        .unwrap();
    append_raw(&mut bytes, 0x8055, b"whatever it is");
    let message = Message::decode(&bytes).unwrap();
    assert_eq!(message.attributes, vec![Attribute::Lifetime(300)]);
    append_raw(&mut bytes, 0x0033, b"must understand");
    assert_eq!(
        Message::decode(&bytes),
        Err(StunError::UnknownRequired(0x0033))
    );
}

#[test]
fn attributes_after_message_integrity_are_ignored_but_a_fingerprint_is_checked() {
    let key = LongTermKey::new("alice", "example.org", "secret");
    let mut bytes = Message::new(Class::SuccessResponse, Method::REFRESH, ID)
        .with(Attribute::Lifetime(600))
        .encode(Some(&key))
        .unwrap();
    append_raw(&mut bytes, kind::LIFETIME, &0u32.to_be_bytes());
    append_raw(&mut bytes, 0x0033, b"unknown, but after the integrity");
    let message = Message::decode(&bytes).unwrap();
    assert_eq!(message.lifetime(), Some(600));
    assert_eq!(check_integrity(&bytes, &key), Integrity::Valid);

    let mut bytes = Message::new(Class::Request, Method::BINDING, ID)
        .encode(None)
        .unwrap();
    append_raw(&mut bytes, kind::FINGERPRINT, &[0, 0, 0, 0]);
    assert_eq!(Message::decode(&bytes), Err(StunError::BadFingerprint));

    let mut message = Message::new(Class::Request, Method::BINDING, ID);
    message.fingerprint = true;
    let mut bytes = message.encode(None).unwrap();
    assert!(Message::decode(&bytes).unwrap().fingerprint);
    append_raw(&mut bytes, kind::SOFTWARE, b"after the fingerprint");
    assert_eq!(Message::decode(&bytes), Err(StunError::BadFingerprint));
}

#[test]
fn malformed_values_are_errors() {
    let cases: [(u16, &[u8], StunError); 12] = [
        (
            kind::LIFETIME,
            &[0, 0, 1],
            StunError::BadAttribute(kind::LIFETIME),
        ),
        (
            kind::REQUESTED_TRANSPORT,
            &[17],
            StunError::BadAttribute(kind::REQUESTED_TRANSPORT),
        ),
        (
            kind::CHANNEL_NUMBER,
            &[0x40, 0, 0],
            StunError::BadAttribute(kind::CHANNEL_NUMBER),
        ),
        (
            kind::REALM,
            &[0xFF, 0xFE],
            StunError::BadAttribute(kind::REALM),
        ),
        (
            kind::NONCE,
            &[b'n'; MAX_TEXT + 1],
            StunError::BadAttribute(kind::NONCE),
        ),
        (
            kind::USERNAME,
            &[b'u'; MAX_USERNAME + 1],
            StunError::BadAttribute(kind::USERNAME),
        ),
        (
            kind::ERROR_CODE,
            &[0, 0, 7, 0],
            StunError::BadAttribute(kind::ERROR_CODE),
        ),
        (
            kind::ERROR_CODE,
            &[0, 0, 4, 100],
            StunError::BadAttribute(kind::ERROR_CODE),
        ),
        (
            kind::ERROR_CODE,
            &[0, 0, 4],
            StunError::BadAttribute(kind::ERROR_CODE),
        ),
        (
            kind::UNKNOWN_ATTRIBUTES,
            &[0, 1, 0],
            StunError::BadAttribute(kind::UNKNOWN_ATTRIBUTES),
        ),
        (
            kind::XOR_PEER_ADDRESS,
            &[0, 3, 0, 0, 1, 2, 3, 4],
            StunError::BadAddress,
        ),
        (
            kind::MESSAGE_INTEGRITY,
            &[0; 16],
            StunError::BadAttribute(kind::MESSAGE_INTEGRITY),
        ),
    ];
    for (kind, value, error) in cases {
        let mut bytes = Message::new(Class::SuccessResponse, Method::ALLOCATE, ID)
            .encode(None)
            .unwrap();
        append_raw(&mut bytes, kind, value);
        assert_eq!(Message::decode(&bytes), Err(error), "{kind:#06x}");
    }

    let mut crowded = Message::new(Class::SuccessResponse, Method::ALLOCATE, ID)
        .encode(None)
        .unwrap();
    for _ in 0..=MAX_ATTRIBUTES {
        append_raw(&mut crowded, kind::LIFETIME, &[0, 0, 0, 1]);
    }
    assert_eq!(Message::decode(&crowded), Err(StunError::TooManyAttributes));
    assert!(matches!(
        Message::decode(&vec![0; HEADER_LEN + MAX_BODY + 4]),
        Err(StunError::Length(_))
    ));
}

#[test]
fn what_cannot_be_written_is_an_error() {
    let long_name = "u".repeat(MAX_USERNAME + 1);
    let cases = [
        (
            Message::new(Class::Request, Method::ALLOCATE, ID)
                .with(Attribute::Username(&long_name)),
            StunError::BadAttribute(kind::USERNAME),
        ),
        (
            Message::new(Class::ErrorResponse, Method::ALLOCATE, ID).with(Attribute::ErrorCode {
                code: 200,
                reason: "",
            }),
            StunError::BadAttribute(kind::ERROR_CODE),
        ),
        (
            Message::new(Class::Request, Method(0x1000), ID),
            StunError::BadMethod(0x1000),
        ),
    ];
    for (message, error) in cases {
        assert_eq!(message.encode(None), Err(error));
    }
    let huge = vec![0u8; 0x1_0000];
    let message = Message::new(Class::Indication, Method::SEND, ID).with(Attribute::Data(&huge));
    assert_eq!(
        message.encode(None),
        Err(StunError::BadAttribute(kind::DATA))
    );
    // The largest DATA that fits leaves no room for MESSAGE-INTEGRITY.
    let most = vec![0u8; MAX_BODY - 4];
    let message = Message::new(Class::Indication, Method::SEND, ID).with(Attribute::Data(&most));
    assert_eq!(message.encode(None).unwrap().len(), HEADER_LEN + MAX_BODY);
    let key = LongTermKey::new("a", "b", "c");
    assert!(matches!(
        message.encode(Some(&key)),
        Err(StunError::Length(_))
    ));
}

#[test]
fn every_truncation_is_an_error() {
    let key = LongTermKey::new("alice", "example.org", "secret");
    let mut message = everything(b"payload");
    message.fingerprint = true;
    let bytes = message.encode(Some(&key)).unwrap();
    for cut in 0..bytes.len() {
        assert!(Message::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        assert_ne!(check_integrity(&bytes[..cut], &key), Integrity::Valid);
    }
    // The header's length trimmed along with the bytes, at every attribute boundary and
    // inside attributes: still an error or a shorter message, never a panic.
    for cut in (HEADER_LEN..bytes.len()).step_by(4) {
        let mut short = bytes[..cut].to_vec();
        let length = (cut - HEADER_LEN) as u16;
        short[2..4].copy_from_slice(&length.to_be_bytes());
        let _ = Message::decode(&short);
    }
}

#[test]
fn flipped_bits_are_errors_or_fail_the_integrity_check_and_never_panic() {
    let key = LongTermKey::new("alice", "example.org", "secret");
    let message = everything(b"payload");
    let bytes = message.encode(Some(&key)).unwrap();
    for i in 0..bytes.len() {
        for bit in 0..8 {
            let mut bent = bytes.clone();
            bent[i] ^= 1 << bit;
            let decoded = Message::decode(&bent);
            let integrity = check_integrity(&bent, &key);
            assert!(
                decoded.is_err() || integrity != Integrity::Valid,
                "byte {i} bit {bit} went unnoticed"
            );
        }
    }
    // With a fingerprint, the chosen flips below are decoding errors by themselves.
    let mut message = everything(b"payload");
    message.fingerprint = true;
    let bytes = message.encode(None).unwrap();
    let fingerprint_at = bytes.len() - 4;
    for (i, bit) in [
        (0, 7),
        (0, 6),
        (1, 0),
        (3, 2),
        (5, 0),
        (12, 4),
        (22, 0),
        (25, 1),
    ]
    .into_iter()
    .chain([(fingerprint_at, 0), (bytes.len() - 1, 7)])
    {
        let mut bent = bytes.clone();
        bent[i] ^= 1 << bit;
        assert!(Message::decode(&bent).is_err(), "byte {i} bit {bit}");
    }
}
