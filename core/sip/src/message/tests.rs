use super::*;

const INVITE: &str = "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
v: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds, SIP/2.0/TCP [2001:db8::1]:5070;branch=z9hG4bKx\r\n\
Max-Forwards: 70\r\n\
t: Bob <sip:bob@biloxi.example.com>\r\n\
f: \"Alice\" <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
i: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
m: <sip:alice@pc33.atlanta.example.com>, \"Second, Contact\" <sip:alice@[2001:db8::2]>;q=0.5\r\n\
X-Folded: first\r\n  second\r\n\tthird\r\n\
c: application/sdp\r\n\
l: 4\r\n\
\r\n\
v=0\r\nEXTRA";

#[test]
fn parses_compact_folded_and_multi_value_headers() {
    let Message::Request(r) = Message::parse(INVITE.as_bytes()).unwrap() else {
        panic!("not a request")
    };
    assert_eq!(r.method, Method::Invite);
    assert_eq!(r.body, b"v=0\r");
    let vias = r.headers.vias().unwrap();
    assert_eq!(vias.len(), 2);
    assert_eq!(vias[1].host, Host::V6("2001:db8::1".parse().unwrap()));
    assert_eq!(vias[1].port, Some(5070));
    let contacts = r.headers.contacts().unwrap();
    assert_eq!(contacts.len(), 2);
    assert_eq!(
        contacts[1].as_ref().unwrap().display.as_deref(),
        Some("Second, Contact")
    );
    assert_eq!(
        r.headers.get(&HeaderName::parse("x-folded")),
        Some("first second third")
    );
    assert_eq!(r.headers.cseq().unwrap().seq, 314159);
    assert_eq!(r.headers.from().unwrap().tag(), Some("1928301774"));
}

#[test]
fn prints_and_reparses_identically() {
    let m = Message::parse(INVITE.as_bytes()).unwrap();
    let printed = m.to_bytes();
    let text = String::from_utf8(printed.clone()).unwrap();
    assert!(text.contains("\r\nVia: SIP/2.0/UDP"));
    assert!(text.contains("\r\nContent-Length: 4\r\n\r\nv=0\r"));
    assert_eq!(Message::parse(&printed).unwrap(), m);
}

#[test]
fn content_length_longer_than_datagram_is_an_error() {
    let bad = INVITE.replace("l: 4", "l: 400");
    let err = Message::parse(bad.as_bytes()).unwrap_err();
    assert_eq!(err.header.as_deref(), Some("Content-Length"));
}

#[test]
fn response_line_and_reason() {
    let text = "SIP/2.0 180 Ringing, really\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
From: <sip:a@b>;tag=1\r\nTo: <sip:a@b>;tag=2\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n\r\n";
    let Message::Response(r) = Message::parse(text.as_bytes()).unwrap() else {
        panic!("not a response")
    };
    assert_eq!(r.status, 180);
    assert_eq!(r.reason, "Ringing, really");
    assert!(Message::parse(text.replace("180", "1800").as_bytes()).is_err());
    assert!(Message::parse(text.replace("SIP/2.0 180", "SIP/3.0 180").as_bytes()).is_err());
}

#[test]
fn response_to_request_copies_the_right_headers() {
    let Message::Request(r) = Message::parse(INVITE.as_bytes()).unwrap() else {
        panic!("not a request")
    };
    let resp = Response::to_request(&r, 486);
    assert_eq!(resp.reason, "Busy Here");
    assert_eq!(resp.headers.vias().unwrap().len(), 2);
    assert_eq!(
        resp.headers.call_id().unwrap(),
        r.headers.call_id().unwrap()
    );
    assert!(resp.headers.get(&HeaderName::Contact).is_none());
}

#[test]
fn garbage_never_panics() {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let base = INVITE.as_bytes();
    for _ in 0..20_000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut bytes = base.to_vec();
        let flips = (seed % 8) as usize + 1;
        for k in 0..flips {
            let pos = ((seed >> (k * 7)) as usize) % bytes.len();
            bytes[pos] = (seed >> (k * 5 + 3)) as u8;
        }
        let cut = (seed >> 40) as usize % (bytes.len() + 1);
        let _ = Message::parse(&bytes[..cut]);
        let mut framer = StreamFramer::new();
        framer.push(&bytes);
        while let Some(_item) = framer.next_item() {}
    }
}

#[test]
fn bare_lf_headers_with_a_crlf_body() {
    let text = "OPTIONS sip:a@b SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\nFrom: <sip:a@b>;tag=1\n\
To: <sip:a@b>\nCall-ID: x\nCSeq: 1 OPTIONS\nContent-Length: 8\n\nab\r\n\r\ncd";
    let m = Message::parse(text.as_bytes()).unwrap();
    assert_eq!(m.body(), b"ab\r\n\r\ncd");
}
