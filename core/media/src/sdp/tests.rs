//! SDP tests: real-world descriptions from the peers we must talk to, offer/answer in both
//! roles, malformed input and a no-panic loop over random and mutated input.

use std::net::{IpAddr, SocketAddr};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;

// ---------------------------------------------------------------------------------------------
// Fixtures. Keys are fixed byte patterns so that tests can check which key went where:
// K1 = bytes 1..=30, K2 = 101..=130, K3 = 201..=230; K256A/B are 46-byte AES-256 keys.
// ---------------------------------------------------------------------------------------------

const K1: &str = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0e";
const K2: &str = "ZWZnaGlqa2xtbm9wcXJzdHV2d3h5ent8fX5/gIGC";
const K3: &str = "ycrLzM3Oz9DR0tPU1dbX2Nna29zd3t/g4eLj5OXm";

fn key_bytes(start: u8) -> SdesKey {
    let bytes: Vec<u8> = (0..30).map(|i| start + i).collect();
    SdesKey::from_bytes(&bytes).expect("30 bytes")
}

/// Asterisk 20 (chan_pjsip) initial INVITE: G.711, GSM, DTMF, ptime/maxptime.
const ASTERISK_OFFER: &str = "v=0
o=- 1718296034 1718296034 IN IP4 192.168.1.10
s=Asterisk
c=IN IP4 192.168.1.10
t=0 0
m=audio 17832 RTP/AVP 0 8 3 101
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:3 GSM/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
a=maxptime:150
a=sendrecv
";

/// Asterisk putting us on hold (re-INVITE, version bumped, sendonly).
const ASTERISK_HOLD: &str = "v=0
o=- 1718296034 1718296035 IN IP4 192.168.1.10
s=Asterisk
c=IN IP4 192.168.1.10
t=0 0
m=audio 17832 RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
a=maxptime:150
a=sendonly
";

/// FreeSWITCH 1.10 with Opus and SDES-SRTP (RTP/SAVP), AES-256 suites first.
fn freeswitch_offer() -> String {
    format!(
        "v=0
o=FreeSWITCH 1718270000 1718270001 IN IP4 203.0.113.5
s=FreeSWITCH
c=IN IP4 203.0.113.5
t=0 0
m=audio 24530 RTP/SAVP 102 9 0 8 100 101 13
a=rtpmap:102 opus/48000/2
a=fmtp:102 useinbandfec=1; maxaveragebitrate=30000; maxplaybackrate=48000; ptime=20; minptime=10; maxptime=40
a=rtpmap:9 G722/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:100 telephone-event/48000
a=fmtp:100 0-16
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=rtpmap:13 CN/8000
a=ptime:20
a=crypto:1 AES_CM_256_HMAC_SHA1_80 inline:HyAhIiMkJSYnKCkqKywtLi8wMTIzNDU2Nzg5Ojs8PT4/QEFCQ0RFRkdISUpLTA==
a=crypto:2 AES_CM_256_HMAC_SHA1_32 inline:g4SFhoeIiYqLjI2Oj5CRkpOUlZaXmJmam5ydnp+goaKjpKWmp6ipqqusra6vsA==
a=crypto:3 AES_CM_128_HMAC_SHA1_80 inline:{K1}
a=crypto:4 AES_CM_128_HMAC_SHA1_32 inline:{K2}
a=sendrecv
"
    )
    .replace('\n', "\r\n")
}

/// baresip 3.x, LF-only as some proxies leave it: Opus with stereo fmtp, G.711, DTMF,
/// rtcp-mux plus a=rtcp, ssrc/label lines.
const BARESIP_OFFER: &str = "v=0
o=- 1839547371 3282372512 IN IP4 10.0.0.23
s=-
c=IN IP4 10.0.0.23
t=0 0
m=audio 10934 RTP/AVP 111 0 8 101
b=AS:128
a=rtpmap:111 opus/48000/2
a=fmtp:111 stereo=1;sprop-stereo=1
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=rtcp:10935 IN IP4 10.0.0.23
a=rtcp-mux
a=rtcp-rsize
a=sendrecv
a=label:1
a=ssrc:1512453001 cname:2b3b8c4e-7a8e-4f51-9d1e-5f2b9f3e6a10
a=ptime:20
";

/// baresip with `mediaenc srtp`: best-effort SDES inside RTP/AVP, _32 first.
fn baresip_srtp_offer() -> String {
    format!(
        "v=0
o=- 1839547371 3282372513 IN IP4 10.0.0.23
s=-
c=IN IP4 10.0.0.23
t=0 0
m=audio 10934 RTP/AVP 0 8 101
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=crypto:1 AES_CM_128_HMAC_SHA1_32 inline:{K2}
a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:{K1}
a=sendrecv
a=ptime:20
"
    )
}

/// linphone 5: Opus, Speex, static PCMU/PCMA/G729 without rtpmap, three telephone-events,
/// rtcp-fb and rtcp-xr, a=rtcp with port only.
const LINPHONE_OFFER: &str = "v=0
o=alice 3346 1851 IN IP4 192.168.0.42
s=Talk
c=IN IP4 192.168.0.42
t=0 0
a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics
a=record:off
m=audio 7078 RTP/AVP 96 97 98 0 8 18 101 99 100
a=rtpmap:96 opus/48000/2
a=fmtp:96 useinbandfec=1
a=rtpmap:97 speex/16000
a=fmtp:97 vbr=on
a=rtpmap:98 speex/8000
a=fmtp:98 vbr=on
a=fmtp:18 annexb=yes
a=rtpmap:101 telephone-event/48000
a=rtpmap:99 telephone-event/16000
a=rtpmap:100 telephone-event/8000
a=rtcp:7079
a=rtcp-fb:* trr-int 1000
a=rtcp-fb:* ccm tmmbr
";

const FP_HEX: &str = "A0:A1:A2:A3:A4:A5:A6:A7:A8:A9:AA:AB:AC:AD:AE:AF:B0:B1:B2:B3:B4:B5:B6:B7:B8:B9:BA:BB:BC:BD:BE:BF";

/// A browser (Chrome-style) offer: BUNDLE, ICE with trickle (c=0.0.0.0, port 9), DTLS
/// fingerprint, setup:actpass, rtcp-mux, mid, msid and ssrc lines, plus a video section.
fn webrtc_offer() -> String {
    format!(
        "v=0
o=- 4611731400430051336 2 IN IP4 127.0.0.1
s=-
t=0 0
a=group:BUNDLE 0 1
a=extmap-allow-mixed
a=msid-semantic: WMS stream
m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126
c=IN IP4 0.0.0.0
a=rtcp:9 IN IP4 0.0.0.0
a=candidate:1467250027 1 udp 2122260223 192.168.0.196 46243 typ host generation 0 network-id 1
a=candidate:435653019 1 udp 1686052607 198.51.100.7 46243 typ srflx raddr 192.168.0.196 rport 46243 generation 0
a=ice-ufrag:ZAKr
a=ice-pwd:L6I5AX1DfScn3Ctjr+MD2yvO
a=ice-options:trickle
a=fingerprint:sha-256 {FP_HEX}
a=setup:actpass
a=mid:0
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level
a=sendrecv
a=msid:stream track
a=rtcp-mux
a=rtpmap:111 opus/48000/2
a=rtcp-fb:111 transport-cc
a=fmtp:111 minptime=10;useinbandfec=1
a=rtpmap:63 red/48000/2
a=fmtp:63 111/111
a=rtpmap:9 G722/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:13 CN/8000
a=rtpmap:110 telephone-event/48000
a=rtpmap:126 telephone-event/8000
a=ssrc:3570614608 cname:4TOk42mSjXCkVIa6
a=ssrc:3570614608 msid:stream track
m=video 9 UDP/TLS/RTP/SAVPF 96 97
c=IN IP4 0.0.0.0
a=rtcp:9 IN IP4 0.0.0.0
a=ice-ufrag:ZAKr
a=ice-pwd:L6I5AX1DfScn3Ctjr+MD2yvO
a=fingerprint:sha-256 {FP_HEX}
a=setup:actpass
a=mid:1
a=sendrecv
a=rtcp-mux
a=rtcp-rsize
a=rtpmap:96 VP8/90000
a=rtcp-fb:96 nack
a=rtpmap:97 rtx/90000
a=fmtp:97 apt=96
a=ssrc-group:FID 1111 2222
a=ssrc:1111 cname:4TOk42mSjXCkVIa6
a=ssrc:2222 cname:4TOk42mSjXCkVIa6
"
    )
    .replace('\n', "\r\n")
}

/// An old-style (RFC 2543) hold from a Yeastar-era PBX: c=0.0.0.0, no direction attribute.
const ZERO_ADDRESS_HOLD: &str = "v=0
o=Yeastar 2000 2001 IN IP4 192.168.5.1
s=Talk
c=IN IP4 0.0.0.0
t=0 0
m=audio 10000 RTP/AVP 8 101
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
";

/// Both on hold: inactive.
const INACTIVE_OFFER: &str = "v=0
o=- 1718296034 1718296036 IN IP4 192.168.1.10
s=Asterisk
c=IN IP4 192.168.1.10
t=0 0
m=audio 17832 RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=inactive
";

/// IPv6, rtcp elsewhere, session-level c= overridden at media level, static PTs only.
const IPV6_OFFER: &str = "v=0
o=- 7000 7000 IN IP6 2001:db8::10
s=-
c=IN IP6 2001:db8::10
t=0 0
m=audio 40000 RTP/AVP 8 0 101
c=IN IP6 2001:db8::20
a=rtpmap:101 telephone-event/8000
a=rtcp:40001 IN IP6 2001:db8::21
";

/// Kamailio + rtpengine rewriting a WebRTC call to plain SDES for a SIP phone.
fn rtpengine_offer() -> String {
    format!(
        "v=0
o=- 1545997027 3 IN IP4 198.51.100.20
s=tester
t=0 0
m=audio 30000 RTP/SAVP 111 0 8 126
c=IN IP4 198.51.100.20
a=rtpmap:111 opus/48000/2
a=fmtp:111 minptime=10;useinbandfec=1
a=rtpmap:126 telephone-event/8000
a=sendrecv
a=rtcp:30001
a=crypto:1 AEAD_AES_256_GCM inline:HyAhIiMkJSYnKCkqKywtLi8wMTIzNDU2Nzg5Ojs8PT4/QEFCQ0RFRkdISUpLTA==
a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:{K3}
a=crypto:3 AES_CM_128_HMAC_SHA1_32 inline:{K2}
a=ptime:20
"
    )
}

fn all_fixtures() -> Vec<String> {
    vec![
        ASTERISK_OFFER.to_owned(),
        ASTERISK_HOLD.to_owned(),
        freeswitch_offer(),
        BARESIP_OFFER.to_owned(),
        baresip_srtp_offer(),
        LINPHONE_OFFER.to_owned(),
        webrtc_offer(),
        ZERO_ADDRESS_HOLD.to_owned(),
        INACTIVE_OFFER.to_owned(),
        IPV6_OFFER.to_owned(),
        rtpengine_offer(),
    ]
}

fn sdp(text: &str) -> SessionDescription {
    SessionDescription::parse(text).expect("fixture parses")
}

fn local() -> SocketAddr {
    "192.0.2.50:30000".parse().expect("addr")
}

fn identity() -> SessionIdentity {
    SessionIdentity::from_parts("-", 42, 1)
}

/// A random number generator for the keys that offer/answer puts in use.
fn rng() -> StdRng {
    StdRng::seed_from_u64(11)
}

fn keys() -> OfferKeys {
    OfferKeys::generate(&mut StdRng::seed_from_u64(7))
}

fn dtls_local() -> DtlsLocal {
    DtlsLocal {
        fingerprint: Fingerprint {
            hash: "sha-256".into(),
            value: (0..32).collect(),
        },
        ice: IceLocal {
            credentials: IceCredentials {
                ufrag: "hSet".into(),
                pwd: "ourIcePasswordIsLongEnough".into(),
            },
            candidates: vec!["1 1 udp 2130706431 192.0.2.50 30000 typ host".into()],
        },
    }
}

fn dtls_keys() -> OfferKeys {
    keys().with_dtls(dtls_local())
}

fn cfg() -> MediaConfig {
    MediaConfig::default()
}

fn answer_ok(offer: &str, config: &MediaConfig) -> (SessionDescription, Negotiated) {
    answer(
        &sdp(offer),
        config,
        local(),
        &mut identity(),
        &mut keys(),
        &mut rng(),
    )
    .expect("answer")
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("addr")
}

fn attr_values<'a>(m: &'a MediaDescription, name: &str) -> Vec<&'a str> {
    m.attributes
        .iter()
        .filter(|a| a.is(name))
        .map(|a| a.value.as_deref().unwrap_or(""))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Parse / print
// ---------------------------------------------------------------------------------------------

#[test]
fn parses_asterisk_offer_fields() {
    let s = sdp(&ASTERISK_OFFER.replace('\n', "\r\n"));
    assert_eq!(s.origin.username, "-");
    assert_eq!(s.origin.session_id, "1718296034");
    assert_eq!(s.origin.session_version, 1718296034);
    assert_eq!(s.origin.addr_type, AddrType::Ip4);
    assert_eq!(s.session_name, "Asterisk");
    assert_eq!(
        s.connection.as_ref().and_then(Connection::ip),
        Some("192.168.1.10".parse().expect("ip"))
    );
    assert_eq!(
        s.timings,
        vec![Timing {
            start: 0,
            stop: 0,
            repeats: vec![]
        }]
    );
    assert_eq!(s.media.len(), 1);
    let m = &s.media[0];
    assert_eq!(m.kind, MediaKind::Audio);
    assert_eq!(m.port, 17832);
    assert_eq!(m.proto, "RTP/AVP");
    assert_eq!(m.payload_types(), vec![0, 8, 3, 101]);
    assert_eq!(m.ptime().expect("ptime"), Some(20));
    assert_eq!(m.maxptime().expect("maxptime"), Some(150));
    assert_eq!(m.direction(), Some(Direction::SendRecv));
    let gsm = m.rtpmap(3).expect("rtpmap").expect("gsm");
    assert_eq!(
        (gsm.encoding.as_str(), gsm.clock_rate, gsm.channels),
        ("GSM", 8000, None)
    );
    let dtmf = m.fmtp(101).expect("fmtp").expect("dtmf fmtp");
    assert_eq!(dtmf.params, "0-16");
    assert_eq!(m.attributes.len(), 8);
}

#[test]
fn every_fixture_round_trips_and_prints_crlf() {
    for text in all_fixtures() {
        let parsed = sdp(&text);
        let printed = parsed.print();
        assert!(printed.ends_with("\r\n"));
        assert!(
            !printed.replace("\r\n", "").contains(['\r', '\n']),
            "bare CR/LF in {printed}"
        );
        let reparsed = sdp(&printed);
        assert_eq!(reparsed, parsed, "round trip of\n{text}");
        assert_eq!(reparsed.print(), printed);
    }
}

#[test]
fn crlf_and_lf_parse_the_same() {
    let lf = sdp(ASTERISK_OFFER);
    let crlf = sdp(&ASTERISK_OFFER.replace('\n', "\r\n"));
    assert_eq!(lf, crlf);
}

#[test]
fn tolerates_trailing_whitespace_and_blank_lines() {
    let messy = ASTERISK_OFFER
        .lines()
        .map(|l| format!("{l} \t  \r\n"))
        .collect::<String>()
        + "\r\n\r\n";
    assert_eq!(sdp(&messy), sdp(ASTERISK_OFFER));
}

#[test]
fn unknown_attributes_are_kept_verbatim_in_order() {
    let s = sdp(LINPHONE_OFFER);
    let session_attrs: Vec<String> = s.attributes.iter().map(|a| a.to_string()).collect();
    assert_eq!(
        session_attrs,
        vec![
            "rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics",
            "record:off"
        ]
    );
    let m = &s.media[0];
    assert_eq!(
        attr_values(m, "rtcp-fb"),
        vec!["* trr-int 1000", "* ccm tmmbr"]
    );
    let names: Vec<&str> = m.attributes.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names[..3], ["rtpmap", "fmtp", "rtpmap"]);
    // A value with a leading space survives.
    let w = sdp(&webrtc_offer());
    assert_eq!(w.attribute("msid-semantic"), Some(" WMS stream"));
    assert!(w.print().contains("a=msid-semantic: WMS stream\r\n"));
}

#[test]
fn empty_session_name_prints_a_space_and_round_trips() {
    let s = sdp("v=0\no=- 1 1 IN IP4 10.0.0.1\ns= \nt=0 0\n");
    assert_eq!(s.session_name, "");
    assert!(s.print().contains("s= \r\n"));
    assert_eq!(sdp(&s.print()), s);
}

#[test]
fn all_line_types_round_trip() {
    let text = "v=0\r\no=jdoe 2890844526 2890842807 IN IP4 10.47.16.5\r\ns=SDP Seminar\r\n\
        i=A Seminar on the session description protocol\r\nu=http://www.example.com/seminars/sdp.pdf\r\n\
        e=j.doe@example.com (Jane Doe)\r\np=+1 617 555-6011\r\nc=IN IP4 224.2.17.12/127\r\n\
        b=CT:1000\r\nt=2873397496 2873404696\r\nr=7d 1h 0 25h\r\nz=2882844526 -1h 2898848070 0\r\n\
        k=prompt\r\na=recvonly\r\nm=audio 49170 RTP/AVP 0\r\ni=voice\r\nb=AS:64\r\nk=prompt\r\n\
        m=video 51372/2 RTP/AVP 99\r\na=rtpmap:99 h263-1998/90000\r\n\
        m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nm=message 9 TCP/MSRP *\r\n";
    let s = sdp(text);
    assert_eq!(s.print(), text);
    assert_eq!(s.media[1].port_count, Some(2));
    assert_eq!(s.timings[0].repeats, vec!["7d 1h 0 25h"]);
    assert_eq!(
        s.connection.as_ref().map(|c| c.address.as_str()),
        Some("224.2.17.12/127")
    );
    assert_eq!(s.media[2].kind, MediaKind::Application);
    assert_eq!(s.direction_for(&s.media[0]), Direction::RecvOnly);
}

#[test]
fn ipv6_connection_lines() {
    let s = sdp(IPV6_OFFER);
    assert_eq!(s.origin.addr_type, AddrType::Ip6);
    let m = &s.media[0];
    let c = s.connection_for(m).expect("c=");
    assert_eq!(c.addr_type, AddrType::Ip6);
    assert_eq!(c.ip(), Some("2001:db8::20".parse().expect("ip")));
    let rtcp = m.rtcp().expect("rtcp").expect("a=rtcp");
    assert_eq!(rtcp.port, 40001);
    assert_eq!(
        rtcp.address,
        Some((AddrType::Ip6, "2001:db8::21".to_owned()))
    );
}

// ---------------------------------------------------------------------------------------------
// Typed attributes
// ---------------------------------------------------------------------------------------------

#[test]
fn crypto_lines_parse_with_lifetime_mki_and_session_params() {
    let c = Crypto::parse(&format!(
        "7 AES_CM_128_HMAC_SHA1_32 inline:{K1}|2^20|1:4 KDR=1 UNENCRYPTED_SRTCP"
    ))
    .expect("crypto");
    assert_eq!(c.tag, 7);
    assert_eq!(c.srtp_suite(), Some(SrtpSuite::AesCm128HmacSha1_32));
    let CryptoSuite::Supported { keys, .. } = &c.suite else {
        panic!("supported")
    };
    assert_eq!(keys[0].key, key_bytes(1));
    assert_eq!(keys[0].lifetime, Some(1 << 20));
    assert_eq!(
        keys[0].mki,
        Some(Mki {
            value: 1,
            length: 4
        })
    );
    assert_eq!(c.session_params, vec!["KDR=1", "UNENCRYPTED_SRTCP"]);
    // MKI means we cannot use it.
    assert!(c.usable_key().is_none());
    // Typed → text → typed.
    assert_eq!(
        Crypto::parse(c.to_attribute().value.as_deref().expect("v")),
        Ok(c)
    );

    let plain =
        Crypto::parse(&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{K1}|2147484")).expect("c");
    let (suite, key) = plain.usable_key().expect("usable");
    assert_eq!(suite, SrtpSuite::AesCm128HmacSha1_80);
    assert_eq!(
        key.master_key,
        core::array::from_fn::<u8, 16, _>(|i| i as u8 + 1)
    );
    assert_eq!(
        key.master_salt,
        core::array::from_fn::<u8, 14, _>(|i| i as u8 + 17)
    );

    let other = Crypto::parse("1 AES_256_CM_HMAC_SHA1_80 inline:abc").expect("unknown suite kept");
    assert_eq!(other.srtp_suite(), None);
    assert!(other.usable_key().is_none());
}

#[test]
fn fingerprint_setup_ice_mid_ssrc_candidates() {
    let s = sdp(&webrtc_offer());
    let m = &s.media[0];
    let fp = s.fingerprints_for(m).expect("fp");
    assert_eq!(fp.len(), 1);
    assert_eq!(fp[0].hash, "sha-256");
    assert_eq!(fp[0].value, (0xA0..=0xBF).collect::<Vec<u8>>());
    assert_eq!(fp[0].hex(), FP_HEX);
    assert_eq!(s.setup_for(m).expect("setup"), Some(Setup::ActPass));
    let ice = s.ice_credentials_for(m).expect("ice");
    assert_eq!(ice.ufrag, "ZAKr");
    assert_eq!(ice.pwd, "L6I5AX1DfScn3Ctjr+MD2yvO");
    assert_eq!(m.mid(), Some("0"));
    assert!(m.rtcp_mux());
    assert_eq!(m.candidates().len(), 2);
    assert!(m.candidates()[1].contains("typ srflx raddr 192.168.0.196"));
    let ssrcs = m.ssrcs().expect("ssrc");
    assert_eq!(
        ssrcs[0],
        Ssrc {
            id: 3570614608,
            attribute: "cname".into(),
            value: Some("4TOk42mSjXCkVIa6".into())
        }
    );
    assert_eq!(ssrcs[1].value.as_deref(), Some("stream track"));
    let typed = m
        .attributes
        .iter()
        .map(|a| a.typed().expect("typed"))
        .collect::<Vec<_>>();
    assert!(typed.contains(&TypedAttribute::Setup(Setup::ActPass)));
    assert!(typed.contains(&TypedAttribute::RtcpMux));
    assert!(typed.contains(&TypedAttribute::Mid("0".into())));
    assert!(
        typed
            .iter()
            .any(|t| matches!(t, TypedAttribute::Candidate(c) if c.starts_with("1467250027")))
    );
}

#[test]
fn media_direction_overrides_session_direction() {
    let text = "v=0\no=- 1 1 IN IP4 10.0.0.1\ns=-\nc=IN IP4 10.0.0.1\nt=0 0\na=inactive\n\
        m=audio 4000 RTP/AVP 0\na=sendrecv\nm=audio 4002 RTP/AVP 0\n";
    let s = sdp(text);
    assert_eq!(s.direction(), Some(Direction::Inactive));
    assert_eq!(s.direction_for(&s.media[0]), Direction::SendRecv);
    assert_eq!(s.direction_for(&s.media[1]), Direction::Inactive);
    let none = sdp(ASTERISK_OFFER.replace("a=sendrecv\n", "").as_str());
    assert_eq!(none.direction_for(&none.media[0]), Direction::SendRecv);
}

#[test]
fn direction_algebra() {
    use Direction::*;
    assert_eq!(SendOnly.reversed(), RecvOnly);
    assert_eq!(RecvOnly.reversed(), SendOnly);
    assert_eq!(Inactive.reversed(), Inactive);
    assert_eq!(SendRecv.reversed(), SendRecv);
    assert_eq!(SendRecv.intersect(SendOnly), SendOnly);
    assert_eq!(RecvOnly.intersect(SendOnly), Inactive);
}

#[test]
fn ptime_tolerates_fraction_and_rtpmap_static_fallback() {
    assert_eq!(attributes::parse_ms("20.0"), Ok(20));
    assert_eq!(attributes::parse_ms("30"), Ok(30));
    assert!(attributes::parse_ms("0").is_err());
    assert!(attributes::parse_ms("x").is_err());
    let s = sdp(LINPHONE_OFFER);
    let pcma = s.media[0].payload_format(8).expect("ok").expect("static");
    assert_eq!((pcma.encoding.as_str(), pcma.clock_rate), ("PCMA", 8000));
    assert_eq!(
        s.media[0].rtcp().expect("rtcp"),
        Some(Rtcp {
            port: 7079,
            address: None
        })
    );
}

// ---------------------------------------------------------------------------------------------
// create_offer
// ---------------------------------------------------------------------------------------------

#[test]
fn offer_with_optional_srtp_is_avp_with_both_crypto_suites() {
    let k = keys();
    let offer = create_offer(&cfg(), local(), &mut identity(), &k);
    let text = offer.print();
    assert!(
        text.starts_with(
            "v=0\r\no=- 42 1 IN IP4 192.0.2.50\r\ns=-\r\nc=IN IP4 192.0.2.50\r\nt=0 0\r\n"
        ),
        "{text}"
    );
    let m = &offer.media[0];
    assert_eq!(m.proto, "RTP/AVP");
    assert_eq!(m.port, 30000);
    assert_eq!(m.formats, vec!["111", "0", "8", "101", "110"]);
    assert_eq!(
        attr_values(m, "rtpmap"),
        vec![
            "111 opus/48000/2",
            "0 PCMU/8000",
            "8 PCMA/8000",
            "101 telephone-event/8000",
            "110 telephone-event/48000"
        ]
    );
    assert_eq!(
        attr_values(m, "fmtp"),
        vec!["111 useinbandfec=1", "101 0-16", "110 0-16"]
    );
    assert_eq!(m.ptime().expect("ptime"), Some(20));
    assert!(m.rtcp_mux());
    assert_eq!(m.direction(), Some(Direction::SendRecv));
    let cryptos = m.cryptos().expect("crypto");
    assert_eq!(cryptos.len(), 2);
    assert_eq!(
        (cryptos[0].tag, cryptos[0].srtp_suite()),
        (1, Some(SrtpSuite::AesCm128HmacSha1_80))
    );
    assert_eq!(
        (cryptos[1].tag, cryptos[1].srtp_suite()),
        (2, Some(SrtpSuite::AesCm128HmacSha1_32))
    );
    assert_eq!(
        cryptos[0].usable_key().map(|(_, k)| k.clone()),
        Some(k.key_for(SrtpSuite::AesCm128HmacSha1_80).clone().clone())
    );
    assert_eq!(
        cryptos[1].usable_key().map(|(_, k)| k.clone()),
        Some(k.key_for(SrtpSuite::AesCm128HmacSha1_32).clone().clone())
    );
    assert_ne!(
        k.key_for(SrtpSuite::AesCm128HmacSha1_80).clone(),
        k.key_for(SrtpSuite::AesCm128HmacSha1_32).clone()
    );
    // Our own output parses back to the same thing.
    assert_eq!(sdp(&text), offer);
}

#[test]
fn offer_policies_and_modes() {
    let off = MediaConfig {
        srtp: SrtpPolicy::Off,
        ..cfg()
    };
    let o = create_offer(&off, local(), &mut identity(), &dtls_keys());
    assert_eq!(o.media[0].proto, "RTP/AVP");
    assert!(o.media[0].cryptos().expect("c").is_empty());
    assert!(o.media[0].fingerprints().expect("fp").is_empty());

    let mandatory = MediaConfig {
        srtp: SrtpPolicy::Mandatory,
        ..cfg()
    };
    let o = create_offer(&mandatory, local(), &mut identity(), &keys());
    assert_eq!(o.media[0].proto, "RTP/SAVP");
    assert_eq!(o.media[0].cryptos().expect("c").len(), 2);

    let dtls = MediaConfig {
        srtp: SrtpPolicy::Mandatory,
        srtp_mode: SrtpMode::Dtls,
        ..cfg()
    };
    let o = create_offer(&dtls, local(), &mut identity(), &dtls_keys());
    let m = &o.media[0];
    assert_eq!(m.proto, "UDP/TLS/RTP/SAVP");
    assert!(m.cryptos().expect("c").is_empty());
    assert_eq!(m.setup().expect("setup"), Some(Setup::ActPass));
    assert_eq!(
        m.fingerprints().expect("fp"),
        vec![dtls_local().fingerprint]
    );
    assert_eq!(m.ice_ufrag(), Some("hSet"));
    assert_eq!(m.ice_pwd(), Some("ourIcePasswordIsLongEnough"));
    assert_eq!(m.candidates().len(), 1);
    assert!(m.rtcp_mux());

    // DTLS mode without DTLS parameters falls back to SDES.
    let o = create_offer(&dtls, local(), &mut identity(), &keys());
    assert_eq!(o.media[0].proto, "RTP/SAVP");

    // G.711 only, no DTMF, 30 ms, no mux, on hold.
    let small = MediaConfig {
        codecs: vec![CodecPref::Pcma, CodecPref::Pcmu, CodecPref::Pcma],
        telephone_event: false,
        ptime_ms: 30,
        rtcp_mux: false,
        ..cfg()
    }
    .with_direction(Direction::SendOnly);
    let o = create_offer(&small, local(), &mut identity(), &keys());
    let m = &o.media[0];
    assert_eq!(m.formats, vec!["8", "0"]);
    assert_eq!(m.ptime().expect("p"), Some(30));
    assert!(!m.rtcp_mux());
    assert_eq!(m.direction(), Some(Direction::SendOnly));

    // Opus with FEC and DTX.
    let opus = MediaConfig {
        codecs: vec![CodecPref::Opus {
            useinbandfec: true,
            usedtx: true,
        }],
        ..cfg()
    };
    let o = create_offer(&opus, local(), &mut identity(), &keys());
    assert_eq!(
        o.media[0].fmtp(111).expect("f").map(|f| f.params),
        Some("useinbandfec=1;usedtx=1".into())
    );
}

#[test]
fn offer_from_ipv6_address() {
    let local6: SocketAddr = "[2001:db8::50]:30000".parse().expect("addr");
    let o = create_offer(&cfg(), local6, &mut identity(), &keys());
    let text = o.print();
    assert!(text.contains("o=- 42 1 IN IP6 2001:db8::50\r\n"));
    assert!(text.contains("c=IN IP6 2001:db8::50\r\n"));
    assert_eq!(sdp(&text), o);
}

#[test]
fn session_version_increments_only_when_the_description_changes() {
    let mut id = identity();
    let k = keys();
    let first = create_offer(&cfg(), local(), &mut id, &k);
    assert_eq!(first.origin.session_version, 1);
    let refresh = create_offer(&cfg(), local(), &mut id, &k);
    assert_eq!(
        refresh.origin.session_version, 1,
        "session refresh keeps the version"
    );
    let hold = create_offer(
        &cfg().with_direction(Direction::SendOnly),
        local(),
        &mut id,
        &k,
    );
    assert_eq!(hold.origin.session_version, 2);
    let resume = create_offer(&cfg(), local(), &mut id, &k);
    assert_eq!(resume.origin.session_version, 3);
    assert_eq!(resume.origin.session_id, "42");
    // An answer in the same dialog continues the sequence.
    let (ans, _) = answer(
        &sdp(ASTERISK_HOLD),
        &cfg(),
        local(),
        &mut id,
        &mut k.clone(),
        &mut rng(),
    )
    .expect("answer");
    assert_eq!(ans.origin.session_version, 4);
    let mut rng = StdRng::seed_from_u64(1);
    let fresh = SessionIdentity::new(&mut rng);
    assert!(fresh.session_id() > 0 && fresh.session_id() < (1 << 62));
    assert_eq!(fresh.version(), fresh.session_id());
}

// ---------------------------------------------------------------------------------------------
// answer
// ---------------------------------------------------------------------------------------------

#[test]
fn answers_asterisk_with_pcmu_keeping_payload_types() {
    let (ans, n) = answer_ok(ASTERISK_OFFER, &cfg());
    assert_eq!(
        n.codec,
        PayloadFormat {
            pt: 0,
            name: "PCMU".into(),
            clock_rate: 8000,
            channels: 1,
            fmtp: None
        }
    );
    let te = n.telephone_event.clone().expect("te");
    assert_eq!(
        (te.pt, te.clock_rate, te.fmtp.as_deref()),
        (101, 8000, Some("0-16"))
    );
    assert_eq!(n.remote_rtp, addr("192.168.1.10:17832"));
    assert_eq!(n.remote_rtcp, addr("192.168.1.10:17833"));
    assert!(!n.rtcp_mux);
    assert_eq!(n.ptime_ms, 20);
    assert_eq!(n.direction, Direction::SendRecv);
    assert!(n.srtp.is_none() && n.dtls.is_none() && n.ice.is_none());
    assert!(!n.hold);
    let m = &ans.media[0];
    assert_eq!((m.port, m.proto.as_str()), (30000, "RTP/AVP"));
    assert_eq!(m.formats, vec!["0", "101"]);
    assert_eq!(
        attr_values(m, "rtpmap"),
        vec!["0 PCMU/8000", "101 telephone-event/8000"]
    );
    assert!(m.cryptos().expect("c").is_empty());
    assert!(!m.rtcp_mux());
    assert_eq!(m.direction(), Some(Direction::SendRecv));
    assert!(ans.print().starts_with("v=0\r\no=- 42 1 IN IP4 192.0.2.50\r\ns=-\r\nc=IN IP4 192.0.2.50\r\nt=0 0\r\nm=audio 30000 RTP/AVP 0 101\r\n"));

    let alaw = MediaConfig {
        codecs: vec![CodecPref::Pcma, CodecPref::Pcmu],
        ..cfg()
    };
    let (_, n) = answer_ok(ASTERISK_OFFER, &alaw);
    assert_eq!(n.codec.pt, 8);
    let no_dtmf = MediaConfig {
        telephone_event: false,
        ..cfg()
    };
    let (ans, n) = answer_ok(ASTERISK_OFFER, &no_dtmf);
    assert!(n.telephone_event.is_none());
    assert_eq!(ans.media[0].formats, vec!["0"]);
}

#[test]
fn answers_freeswitch_opus_with_sdes_on_savp() {
    let k = keys();
    let offer = sdp(&freeswitch_offer());
    let (ans, n) = answer(
        &offer,
        &cfg(),
        local(),
        &mut identity(),
        &mut k.clone(),
        &mut rng(),
    )
    .expect("answer");
    assert_eq!(n.codec.pt, 102, "offerer's dynamic payload type is kept");
    assert_eq!(
        (n.codec.name.as_str(), n.codec.clock_rate, n.codec.channels),
        ("opus", 48000, 2)
    );
    assert!(
        n.codec
            .fmtp
            .as_deref()
            .expect("fmtp")
            .starts_with("useinbandfec=1; maxaveragebitrate=30000")
    );
    assert_eq!(
        n.telephone_event.as_ref().map(|t| (t.pt, t.clock_rate)),
        Some((100, 48000))
    );
    let srtp = n.srtp.clone().expect("srtp");
    assert_eq!(
        srtp.tag, 3,
        "first usable suite in the offerer's order; AES-256 skipped"
    );
    assert_eq!(srtp.suite, SrtpSuite::AesCm128HmacSha1_80);
    assert_eq!(srtp.remote, key_bytes(1));
    assert_eq!(
        srtp.local,
        k.key_for(SrtpSuite::AesCm128HmacSha1_80).clone()
    );
    let m = &ans.media[0];
    assert_eq!(m.proto, "RTP/SAVP");
    assert_eq!(m.formats, vec!["102", "100"]);
    let cryptos = m.cryptos().expect("c");
    assert_eq!(cryptos.len(), 1, "exactly one crypto line in the answer");
    assert_eq!(cryptos[0].tag, 3);
    assert_eq!(
        cryptos[0].usable_key().map(|(s, k)| (s, k.clone())),
        Some((
            SrtpSuite::AesCm128HmacSha1_80,
            k.key_for(SrtpSuite::AesCm128HmacSha1_80).clone().clone()
        ))
    );
    assert_eq!(
        attr_values(m, "fmtp"),
        vec!["102 useinbandfec=1", "100 0-16"]
    );

    // G.711 preferred: PCMU at 0, telephone-event at 8 kHz now matches the clock.
    let g711 = MediaConfig {
        codecs: vec![CodecPref::Pcmu],
        ..cfg()
    };
    let (_, n) = answer(
        &offer,
        &g711,
        local(),
        &mut identity(),
        &mut k.clone(),
        &mut rng(),
    )
    .expect("answer");
    assert_eq!(n.codec.pt, 0);
    assert_eq!(n.telephone_event.map(|t| t.pt), Some(101));

    // SRTP off cannot accept RTP/SAVP.
    let off = MediaConfig {
        srtp: SrtpPolicy::Off,
        ..cfg()
    };
    let err = answer(
        &offer,
        &off,
        local(),
        &mut identity(),
        &mut k.clone(),
        &mut rng(),
    )
    .expect_err("must refuse");
    assert_eq!(
        err,
        OfferAnswerError::UnsupportedTransport("RTP/SAVP".into())
    );
    assert_eq!(err.sip_status(), 488);
}

#[test]
fn answers_baresip_opus_with_rtcp_mux() {
    let (ans, n) = answer_ok(BARESIP_OFFER, &cfg());
    assert_eq!(n.codec.pt, 111);
    assert_eq!(n.codec.fmtp.as_deref(), Some("stereo=1;sprop-stereo=1"));
    // Only an 8 kHz telephone-event is offered: used although Opus runs at 48 kHz.
    let te = n.telephone_event.expect("te");
    assert_eq!(
        (te.pt, te.clock_rate, te.fmtp.as_deref()),
        (101, 8000, Some("0-15"))
    );
    assert!(n.rtcp_mux);
    assert_eq!(n.remote_rtp, addr("10.0.0.23:10934"));
    assert_eq!(n.remote_rtcp, n.remote_rtp);
    assert!(ans.media[0].rtcp_mux());

    let no_mux = MediaConfig {
        rtcp_mux: false,
        ..cfg()
    };
    let (ans, n) = answer_ok(BARESIP_OFFER, &no_mux);
    assert!(!n.rtcp_mux);
    assert!(
        !ans.media[0].rtcp_mux(),
        "rtcp-mux only answered when enabled"
    );
    assert_eq!(n.remote_rtcp, addr("10.0.0.23:10935"));
}

#[test]
fn answers_best_effort_srtp_per_policy() {
    let offer = baresip_srtp_offer();
    let k = keys();
    // Optional: accept the first usable line (tag 1, _32) and stay in RTP/AVP.
    let (ans, n) = answer(
        &sdp(&offer),
        &cfg(),
        local(),
        &mut identity(),
        &mut k.clone(),
        &mut rng(),
    )
    .expect("answer");
    let srtp = n.srtp.expect("srtp");
    assert_eq!((srtp.tag, srtp.suite), (1, SrtpSuite::AesCm128HmacSha1_32));
    assert_eq!(srtp.remote, key_bytes(101));
    assert_eq!(
        srtp.local,
        k.key_for(SrtpSuite::AesCm128HmacSha1_32).clone()
    );
    assert_eq!(ans.media[0].proto, "RTP/AVP");
    assert_eq!(ans.media[0].cryptos().expect("c").len(), 1);
    // Mandatory: same.
    let mandatory = MediaConfig {
        srtp: SrtpPolicy::Mandatory,
        ..cfg()
    };
    let (_, n) = answer_ok(&offer, &mandatory);
    assert!(n.srtp.is_some());
    // Off: plain, and no crypto line in the answer.
    let off = MediaConfig {
        srtp: SrtpPolicy::Off,
        ..cfg()
    };
    let (ans, n) = answer_ok(&offer, &off);
    assert!(n.srtp.is_none());
    assert!(ans.media[0].cryptos().expect("c").is_empty());
}

#[test]
fn answers_linphone_with_static_payload_types_and_rtcp_port() {
    let (ans, n) = answer_ok(LINPHONE_OFFER, &cfg());
    assert_eq!(n.codec.pt, 96);
    assert_eq!(n.codec.fmtp.as_deref(), Some("useinbandfec=1"));
    assert_eq!(
        n.telephone_event.as_ref().map(|t| (t.pt, t.clock_rate)),
        Some((101, 48000))
    );
    assert_eq!(n.remote_rtcp, addr("192.168.0.42:7079"));
    assert!(!n.rtcp_mux);
    assert_eq!(ans.media[0].formats, vec!["96", "101"]);

    let g711 = MediaConfig {
        codecs: vec![CodecPref::Pcma, CodecPref::Pcmu],
        ..cfg()
    };
    let (ans, n) = answer_ok(LINPHONE_OFFER, &g711);
    assert_eq!(
        n.codec,
        PayloadFormat {
            pt: 8,
            name: "PCMA".into(),
            clock_rate: 8000,
            channels: 1,
            fmtp: None
        }
    );
    assert_eq!(
        n.telephone_event.map(|t| (t.pt, t.clock_rate)),
        Some((100, 8000))
    );
    assert_eq!(
        attr_values(&ans.media[0], "rtpmap"),
        vec!["8 PCMA/8000", "100 telephone-event/8000"]
    );
}

#[test]
fn answers_webrtc_offer_with_dtls_and_rejects_video() {
    let offer = sdp(&webrtc_offer());
    let (ans, n) = answer(
        &offer,
        &cfg(),
        local(),
        &mut identity(),
        &mut dtls_keys(),
        &mut rng(),
    )
    .expect("answer");
    assert_eq!(n.codec.pt, 111);
    assert_eq!(n.telephone_event.as_ref().map(|t| t.pt), Some(110));
    let dtls = n.dtls.clone().expect("dtls");
    assert_eq!(dtls.remote_setup, Setup::ActPass);
    assert_eq!(dtls.local_setup, Setup::Active);
    assert_eq!(
        dtls.remote_fingerprint.value,
        (0xA0..=0xBF).collect::<Vec<u8>>()
    );
    assert!(n.srtp.is_none());
    assert_eq!(n.ice.as_ref().map(|i| i.ufrag.as_str()), Some("ZAKr"));
    assert!(n.rtcp_mux);
    assert!(!n.hold, "0.0.0.0 with ICE is not hold");
    assert_eq!(n.direction, Direction::SendRecv);
    assert_eq!(ans.media.len(), 2);
    let a = &ans.media[0];
    assert_eq!(a.proto, "UDP/TLS/RTP/SAVPF");
    assert_eq!(a.mid(), Some("0"));
    assert_eq!(a.setup().expect("s"), Some(Setup::Active));
    assert_eq!(
        a.fingerprints().expect("fp"),
        vec![dtls_local().fingerprint]
    );
    assert_eq!(a.ice_ufrag(), Some("hSet"));
    assert!(a.rtcp_mux());
    let v = &ans.media[1];
    assert_eq!(
        (v.kind.clone(), v.port, v.proto.as_str()),
        (MediaKind::Video, 0, "UDP/TLS/RTP/SAVPF")
    );
    assert_eq!(v.formats, vec!["96", "97"]);
    assert_eq!(v.mid(), Some("1"));

    // Without DTLS parameters, or with SRTP off, the offer cannot be accepted.
    let err = answer(
        &offer,
        &cfg(),
        local(),
        &mut identity(),
        &mut keys(),
        &mut rng(),
    )
    .expect_err("no dtls");
    assert_eq!(
        err,
        OfferAnswerError::UnsupportedTransport("UDP/TLS/RTP/SAVPF".into())
    );
    let off = MediaConfig {
        srtp: SrtpPolicy::Off,
        ..cfg()
    };
    assert!(matches!(
        answer(
            &offer,
            &off,
            local(),
            &mut identity(),
            &mut dtls_keys(),
            &mut rng()
        ),
        Err(OfferAnswerError::UnsupportedTransport(_))
    ));
}

#[test]
fn answers_rtpengine_sdes_skipping_unknown_suites() {
    let (ans, n) = answer_ok(&rtpengine_offer(), &cfg());
    let srtp = n.srtp.expect("srtp");
    assert_eq!((srtp.tag, srtp.remote), (2, key_bytes(201)));
    assert_eq!(n.remote_rtp, addr("198.51.100.20:30000"));
    assert_eq!(n.remote_rtcp, addr("198.51.100.20:30001"));
    assert_eq!(
        n.telephone_event.map(|t| (t.pt, t.clock_rate)),
        Some((126, 8000))
    );
    assert_eq!(ans.media[0].proto, "RTP/SAVP");
}

#[test]
fn hold_reoffers() {
    // sendonly → we answer recvonly, may only receive, and we are held.
    let (ans, n) = answer_ok(ASTERISK_HOLD, &cfg());
    assert_eq!(ans.media[0].direction(), Some(Direction::RecvOnly));
    assert_eq!(n.direction, Direction::RecvOnly);
    assert!(n.hold);

    // inactive → inactive.
    let (ans, n) = answer_ok(INACTIVE_OFFER, &cfg());
    assert_eq!(ans.media[0].direction(), Some(Direction::Inactive));
    assert_eq!(n.direction, Direction::Inactive);
    assert!(n.hold);

    // c=0.0.0.0 (RFC 2543): hold, and nothing can be sent to 0.0.0.0.
    let (ans, n) = answer_ok(ZERO_ADDRESS_HOLD, &cfg());
    assert!(n.hold);
    assert_eq!(n.direction, Direction::RecvOnly);
    assert_eq!(n.remote_rtp, addr("0.0.0.0:10000"));
    assert_eq!(ans.media[0].direction(), Some(Direction::SendRecv));

    // Session-level sendonly.
    let text = ASTERISK_OFFER
        .replace("a=sendrecv\n", "")
        .replace("t=0 0\n", "t=0 0\na=sendonly\n");
    let (_, n) = answer_ok(&text, &cfg());
    assert!(n.hold);
    assert_eq!(n.direction, Direction::RecvOnly);

    // recvonly: the peer held *itself* from our point of view: we send only, not held.
    let text = ASTERISK_OFFER.replace("a=sendrecv", "a=recvonly");
    let (ans, n) = answer_ok(&text, &cfg());
    assert_eq!(ans.media[0].direction(), Some(Direction::SendOnly));
    assert_eq!(n.direction, Direction::SendOnly);
    assert!(!n.hold);

    // We are holding (config sendonly) and the peer re-offers sendrecv: answer sendonly.
    let (ans, n) = answer_ok(ASTERISK_OFFER, &cfg().with_direction(Direction::SendOnly));
    assert_eq!(ans.media[0].direction(), Some(Direction::SendOnly));
    assert_eq!(n.direction, Direction::SendOnly);
    assert!(!n.hold);
}

#[test]
fn answers_ipv6_offer() {
    let local6: SocketAddr = "[2001:db8::50]:30000".parse().expect("addr");
    let (ans, n) = answer(
        &sdp(IPV6_OFFER),
        &cfg(),
        local6,
        &mut identity(),
        &mut keys(),
        &mut rng(),
    )
    .expect("answer");
    assert_eq!(n.remote_rtp, addr("[2001:db8::20]:40000"));
    assert_eq!(n.remote_rtcp, addr("[2001:db8::21]:40001"));
    assert_eq!(
        n.codec.pt, 0,
        "PCMU preferred over PCMA although offered second"
    );
    assert!(ans.print().contains("c=IN IP6 2001:db8::50\r\n"));
}

#[test]
fn rejects_extra_and_disabled_media_lines() {
    let text = "v=0\no=- 1 1 IN IP4 10.0.0.1\ns=-\nc=IN IP4 10.0.0.1\nt=0 0\n\
        m=audio 0 RTP/AVP 0\nm=video 5000 RTP/AVP 96\na=rtpmap:96 H264/90000\n\
        m=audio 4000 RTP/AVP 8\nm=audio 4002 RTP/AVP 0\nm=image 6000 udptl t38\n";
    let (ans, n) = answer_ok(text, &cfg());
    assert_eq!(n.media_index, 2);
    assert_eq!(n.codec.pt, 8);
    let ports: Vec<u16> = ans.media.iter().map(|m| m.port).collect();
    assert_eq!(ports, vec![0, 0, 30000, 0, 0]);
    assert_eq!(ans.media[4].proto, "udptl");
    assert_eq!(ans.media[4].formats, vec!["t38"]);
}

#[test]
fn no_common_codec_is_488() {
    let text = "v=0\no=- 1 1 IN IP4 10.0.0.1\ns=-\nc=IN IP4 10.0.0.1\nt=0 0\n\
        m=audio 4000 RTP/AVP 18 3 101\na=rtpmap:101 telephone-event/8000\n";
    let err = answer(
        &sdp(text),
        &cfg(),
        local(),
        &mut identity(),
        &mut keys(),
        &mut rng(),
    )
    .expect_err("488");
    assert_eq!(err, OfferAnswerError::NoCommonCodec);
    assert_eq!(err.sip_status(), 488);
    // A dynamic payload type without rtpmap is unknown, even if numbered like ours.
    let text =
        "v=0\no=- 1 1 IN IP4 10.0.0.1\ns=-\nc=IN IP4 10.0.0.1\nt=0 0\nm=audio 4000 RTP/AVP 111\n";
    assert_eq!(
        answer(
            &sdp(text),
            &cfg(),
            local(),
            &mut identity(),
            &mut keys(),
            &mut rng()
        )
        .map(|_| ()),
        Err(OfferAnswerError::NoCommonCodec)
    );
    // Opus at another rate is not our Opus; case does not matter.
    let text = "v=0\no=- 1 1 IN IP4 10.0.0.1\ns=-\nc=IN IP4 10.0.0.1\nt=0 0\nm=audio 4000 RTP/AVP 96 97\n\
        a=rtpmap:96 opus/16000\na=rtpmap:97 OPUS/48000/2\n";
    let (_, n) = answer_ok(text, &cfg());
    assert_eq!(n.codec.pt, 97);
    let video_only =
        "v=0\no=- 1 1 IN IP4 10.0.0.1\ns=-\nc=IN IP4 10.0.0.1\nt=0 0\nm=video 4000 RTP/AVP 96\n";
    assert_eq!(
        answer(
            &sdp(video_only),
            &cfg(),
            local(),
            &mut identity(),
            &mut keys(),
            &mut rng()
        )
        .map(|_| ()),
        Err(OfferAnswerError::NoAudio)
    );
}

#[test]
fn srtp_required_and_no_common_suite() {
    let mandatory = MediaConfig {
        srtp: SrtpPolicy::Mandatory,
        ..cfg()
    };
    let err = answer(
        &sdp(ASTERISK_OFFER),
        &mandatory,
        local(),
        &mut identity(),
        &mut keys(),
        &mut rng(),
    )
    .expect_err("no crypto");
    assert_eq!(err, OfferAnswerError::SrtpRequired);
    assert_eq!(err.sip_status(), 488);

    let aes256_only = freeswitch_offer()
        .lines()
        .filter(|l| !l.contains("AES_CM_128"))
        .map(|l| format!("{l}\n"))
        .collect::<String>();
    assert_eq!(
        answer(
            &sdp(&aes256_only),
            &mandatory,
            local(),
            &mut identity(),
            &mut keys(),
            &mut rng()
        )
        .map(|_| ()),
        Err(OfferAnswerError::SrtpRequired)
    );
    assert_eq!(
        answer(
            &sdp(&aes256_only),
            &cfg(),
            local(),
            &mut identity(),
            &mut keys(),
            &mut rng()
        )
        .map(|_| ()),
        Err(OfferAnswerError::NoCommonCryptoSuite)
    );
    // Best-effort AVP offer with only unusable crypto: plain under Optional.
    let avp = aes256_only.replace("RTP/SAVP", "RTP/AVP");
    let (_, n) = answer_ok(&avp, &cfg());
    assert!(n.srtp.is_none());
}

#[test]
fn crypto_with_mki_is_skipped() {
    let text = format!(
        "v=0\no=- 1 1 IN IP4 10.0.0.1\ns=-\nc=IN IP4 10.0.0.1\nt=0 0\nm=audio 4000 RTP/SAVP 0\n\
         a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{K1}|2^31|1:1\n\
         a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:{K2}|2^31\n"
    );
    let (_, n) = answer_ok(&text, &cfg());
    let srtp = n.srtp.expect("srtp");
    assert_eq!((srtp.tag, srtp.remote), (2, key_bytes(101)));
}

// ---------------------------------------------------------------------------------------------
// process_answer
// ---------------------------------------------------------------------------------------------

/// Offer with `offerer`, answer with `answerer` (as the remote would), process the answer.
fn exchange(
    offerer: &MediaConfig,
    answerer: &MediaConfig,
    offer_keys: &OfferKeys,
) -> (Negotiated, Negotiated) {
    let remote_keys = OfferKeys::generate(&mut StdRng::seed_from_u64(99)).with_dtls(DtlsLocal {
        fingerprint: Fingerprint {
            hash: "sha-256".into(),
            value: vec![7; 32],
        },
        ice: IceLocal {
            credentials: IceCredentials {
                ufrag: "peer".into(),
                pwd: "peerPasswordPeerPassword".into(),
            },
            candidates: vec![],
        },
    });
    let offer = create_offer(offerer, local(), &mut identity(), offer_keys);
    let offer = sdp(&offer.print());
    let remote_addr = addr("198.51.100.9:5004");
    let (ans, theirs) = answer(
        &offer,
        answerer,
        remote_addr,
        &mut SessionIdentity::from_parts("-", 9, 9),
        &mut remote_keys.clone(),
        &mut rng(),
    )
    .expect("answer");
    let ans = sdp(&ans.print());
    let ours = process_answer(&offer, &ans, offerer, &mut offer_keys.clone(), &mut rng())
        .expect("process");
    assert_eq!(ours.remote_rtp, remote_addr);
    assert_eq!(theirs.remote_rtp, local());
    (ours, theirs)
}

#[test]
fn offer_answer_round_trips_for_every_policy() {
    let k = dtls_keys();
    // Optional SDES ↔ Optional SDES: encrypted with _80 (tag 1), keys crossed.
    let (ours, theirs) = exchange(&cfg(), &cfg(), &k);
    let (o, t) = (
        ours.srtp.clone().expect("srtp"),
        theirs.srtp.clone().expect("srtp"),
    );
    assert_eq!((o.tag, o.suite), (1, SrtpSuite::AesCm128HmacSha1_80));
    assert_eq!(o.local, k.key_for(SrtpSuite::AesCm128HmacSha1_80).clone());
    assert_eq!(
        (o.local.clone(), o.remote.clone()),
        (t.remote.clone(), t.local.clone())
    );
    assert_eq!(ours.codec.pt, 111);
    assert_eq!(ours.codec.fmtp.as_deref(), Some("useinbandfec=1"));
    assert_eq!(ours.telephone_event.as_ref().map(|t| t.pt), Some(110));
    assert!(ours.rtcp_mux && theirs.rtcp_mux);
    assert_eq!(ours.direction, Direction::SendRecv);

    // Optional offer, answerer with SRTP off: plain RTP.
    let off = MediaConfig {
        srtp: SrtpPolicy::Off,
        ..cfg()
    };
    let (ours, _) = exchange(&cfg(), &off, &k);
    assert!(ours.srtp.is_none());

    // Mandatory ↔ Optional.
    let mandatory = MediaConfig {
        srtp: SrtpPolicy::Mandatory,
        ..cfg()
    };
    let (ours, _) = exchange(&mandatory, &cfg(), &k);
    assert!(ours.srtp.is_some());

    // DTLS: we offer actpass, the answerer is active, we are passive.
    let dtls = MediaConfig {
        srtp_mode: SrtpMode::Dtls,
        ..cfg()
    };
    let (ours, theirs) = exchange(&dtls, &cfg(), &k);
    let d = ours.dtls.expect("dtls");
    assert_eq!(
        (d.remote_setup, d.local_setup),
        (Setup::Active, Setup::Passive)
    );
    assert_eq!(d.remote_fingerprint.value, vec![7; 32]);
    assert_eq!(ours.ice.as_ref().map(|i| i.ufrag.as_str()), Some("peer"));
    assert_eq!(
        theirs.dtls.map(|d| d.remote_fingerprint),
        Some(dtls_local().fingerprint)
    );

    // Hold: we offer sendonly, they answer recvonly; we may only send.
    let (ours, theirs) = exchange(&cfg().with_direction(Direction::SendOnly), &cfg(), &k);
    assert_eq!(ours.direction, Direction::SendOnly);
    assert!(!ours.hold);
    assert!(theirs.hold);

    // G.711 answerer picks PCMU; the answerer mirrors the offered ptime (30 ms), both use it.
    let g711 = MediaConfig {
        codecs: vec![CodecPref::Pcmu],
        ptime_ms: 20,
        ..cfg()
    };
    let (ours, theirs) = exchange(
        &MediaConfig {
            ptime_ms: 30,
            ..cfg()
        },
        &g711,
        &k,
    );
    assert_eq!((ours.codec.pt, ours.codec.name.as_str()), (0, "PCMU"));
    assert_eq!(ours.telephone_event.map(|t| t.pt), Some(101));
    assert_eq!((ours.ptime_ms, theirs.ptime_ms), (30, 30));
}

/// Our standard offer (Optional SDES, default codecs) and a valid Asterisk-style answer.
fn offer_and_answer_text() -> (SessionDescription, String) {
    let offer = create_offer(&cfg(), local(), &mut identity(), &keys());
    let answer = format!(
        "v=0
o=- 1718296100 1718296100 IN IP4 192.168.1.10
s=Asterisk
c=IN IP4 192.168.1.10
t=0 0
m=audio 18000 RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
a=maxptime:150
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{K3}
a=sendrecv
"
    );
    (offer, answer)
}

#[test]
fn processes_an_asterisk_answer() {
    let (offer, ans) = offer_and_answer_text();
    let n =
        process_answer(&offer, &sdp(&ans), &cfg(), &mut keys(), &mut rng()).expect("valid answer");
    assert_eq!(n.codec.pt, 0);
    assert_eq!(n.telephone_event.map(|t| t.pt), Some(101));
    let srtp = n.srtp.expect("srtp");
    assert_eq!(
        (srtp.tag, srtp.remote, srtp.local),
        (
            1,
            key_bytes(201),
            keys().key_for(SrtpSuite::AesCm128HmacSha1_80).clone()
        )
    );
    assert_eq!(n.remote_rtp, addr("192.168.1.10:18000"));
    assert_eq!(n.remote_rtcp, addr("192.168.1.10:18001"));
    assert!(!n.rtcp_mux);
    // The same answer without crypto is plain RTP (we only offered best effort).
    let plain = ans
        .lines()
        .filter(|l| !l.starts_with("a=crypto"))
        .map(|l| format!("{l}\n"))
        .collect::<String>();
    assert!(
        process_answer(&offer, &sdp(&plain), &cfg(), &mut keys(), &mut rng())
            .expect("plain")
            .srtp
            .is_none()
    );
    // ...unless policy says mandatory.
    let mandatory = MediaConfig {
        srtp: SrtpPolicy::Mandatory,
        ..cfg()
    };
    assert_eq!(
        process_answer(&offer, &sdp(&plain), &mandatory, &mut keys(), &mut rng()),
        Err(OfferAnswerError::SrtpRequired)
    );
}

#[test]
fn answer_validation_errors() {
    let (offer, ans) = offer_and_answer_text();
    let check = |text: String, expected: OfferAnswerError| {
        assert_eq!(
            process_answer(&offer, &sdp(&text), &cfg(), &mut keys(), &mut rng()),
            Err(expected),
            "answer:\n{text}"
        );
    };
    check(
        ans.replace("RTP/AVP 0 101", "RTP/AVP 18 101"),
        OfferAnswerError::UnexpectedPayloadType(18),
    );
    check(
        ans.replace("a=rtpmap:0 PCMU/8000", "a=rtpmap:0 PCMA/8000"),
        OfferAnswerError::PayloadTypeMismatch(0),
    );
    check(
        ans.replace("a=crypto:1 AES", "a=crypto:7 AES"),
        OfferAnswerError::UnexpectedCryptoTag(7),
    );
    check(
        ans.replace(
            "a=crypto:1 AES_CM_128_HMAC_SHA1_80",
            "a=crypto:1 AES_CM_128_HMAC_SHA1_32",
        ),
        OfferAnswerError::CryptoSuiteMismatch(1),
    );
    check(
        ans.replace(
            "a=sendrecv",
            &format!("a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:{K2}\na=sendrecv"),
        ),
        OfferAnswerError::CryptoCount(2),
    );
    check(
        ans.replace("m=audio 18000", "m=audio 0"),
        OfferAnswerError::MediaRejected,
    );
    check(
        ans.replace("m=audio", "m=video"),
        OfferAnswerError::MediaKindMismatch,
    );
    check(
        ans.replace("RTP/AVP", "RTP/AVPF"),
        OfferAnswerError::TransportMismatch,
    );
    check(
        format!("{ans}m=video 0 RTP/AVP 96\n"),
        OfferAnswerError::MediaCountMismatch {
            offered: 1,
            answered: 2,
        },
    );
    check(
        ans.replace("c=IN IP4 192.168.1.10\n", ""),
        OfferAnswerError::MissingConnection,
    );
    check(
        ans.replace("c=IN IP4 192.168.1.10", "c=IN IP4 pbx.example.com"),
        OfferAnswerError::UnresolvedAddress,
    );

    // Direction: we put them on hold (sendonly); they must not answer sendrecv or sendonly.
    let hold_offer = create_offer(
        &cfg().with_direction(Direction::SendOnly),
        local(),
        &mut identity(),
        &keys(),
    );
    for bad in ["a=sendrecv", "a=sendonly"] {
        let text = ans.replace("a=sendrecv", bad);
        assert!(matches!(
            process_answer(&hold_offer, &sdp(&text), &cfg(), &mut keys(), &mut rng()),
            Err(OfferAnswerError::DirectionMismatch {
                offered: Direction::SendOnly,
                ..
            })
        ));
    }
    for good in ["a=recvonly", "a=inactive"] {
        let text = ans.replace("a=sendrecv", good);
        assert!(process_answer(&hold_offer, &sdp(&text), &cfg(), &mut keys(), &mut rng()).is_ok());
    }
    // An answer without direction means sendrecv, which does not fit sendonly either.
    let text = ans.replace("a=sendrecv\n", "");
    assert!(process_answer(&hold_offer, &sdp(&text), &cfg(), &mut keys(), &mut rng()).is_err());

    // The remote answering sendonly to our sendrecv is the remote holding us.
    let n = process_answer(
        &offer,
        &sdp(&ans.replace("a=sendrecv", "a=sendonly")),
        &cfg(),
        &mut keys(),
        &mut rng(),
    )
    .expect("ok");
    assert!(n.hold);
    assert_eq!(n.direction, Direction::RecvOnly);
}

#[test]
fn savp_and_dtls_answer_errors() {
    let mandatory = MediaConfig {
        srtp: SrtpPolicy::Mandatory,
        ..cfg()
    };
    let offer = create_offer(&mandatory, local(), &mut identity(), &keys());
    let (_, ans) = offer_and_answer_text();
    let savp = ans.replace("RTP/AVP", "RTP/SAVP");
    assert!(process_answer(&offer, &sdp(&savp), &mandatory, &mut keys(), &mut rng()).is_ok());
    let no_crypto = savp
        .lines()
        .filter(|l| !l.starts_with("a=crypto"))
        .map(|l| format!("{l}\n"))
        .collect::<String>();
    assert_eq!(
        process_answer(
            &offer,
            &sdp(&no_crypto),
            &mandatory,
            &mut keys(),
            &mut rng()
        ),
        Err(OfferAnswerError::SrtpRequired)
    );
    assert_eq!(
        process_answer(&offer, &sdp(&ans), &mandatory, &mut keys(), &mut rng()),
        Err(OfferAnswerError::TransportMismatch)
    );

    let dtls = MediaConfig {
        srtp_mode: SrtpMode::Dtls,
        ..cfg()
    };
    let offer = create_offer(&dtls, local(), &mut identity(), &dtls_keys());
    let dtls_answer = format!(
        "v=0\no=- 5 5 IN IP4 198.51.100.9\ns=-\nc=IN IP4 198.51.100.9\nt=0 0\n\
         m=audio 5004 UDP/TLS/RTP/SAVP 111\na=rtpmap:111 opus/48000/2\na=fingerprint:sha-256 {FP_HEX}\n\
         a=setup:active\na=ice-ufrag:abcd\na=ice-pwd:abcdefghijklmnopqrstuv\na=rtcp-mux\n"
    );
    let n = process_answer(&offer, &sdp(&dtls_answer), &dtls, &mut keys(), &mut rng())
        .expect("dtls ok");
    assert_eq!(n.dtls.map(|d| d.local_setup), Some(Setup::Passive));
    assert_eq!(
        process_answer(
            &offer,
            &sdp(&dtls_answer.replace("setup:active", "setup:actpass")),
            &dtls,
            &mut keys(),
            &mut rng()
        ),
        Err(OfferAnswerError::InvalidSetup(Setup::ActPass))
    );
    let no_fp = dtls_answer
        .lines()
        .filter(|l| !l.starts_with("a=fingerprint"))
        .map(|l| format!("{l}\n"))
        .collect::<String>();
    assert_eq!(
        process_answer(&offer, &sdp(&no_fp), &dtls, &mut keys(), &mut rng()),
        Err(OfferAnswerError::MissingFingerprint)
    );
}

// ---------------------------------------------------------------------------------------------
// Malformed input
// ---------------------------------------------------------------------------------------------

fn kind_of(text: &str) -> SdpErrorKind {
    match SessionDescription::parse(text) {
        Ok(_) => panic!("should not parse:\n{text}"),
        Err(e) => e.kind,
    }
}

const MINIMAL: &str = "v=0\no=- 1 1 IN IP4 10.0.0.1\ns=-\nc=IN IP4 10.0.0.1\nt=0 0\n";

fn with_media(m: &str) -> String {
    format!("{MINIMAL}{m}\n")
}

#[test]
fn malformed_descriptions_are_errors() {
    use SdpErrorKind as K;
    assert_eq!(kind_of(""), K::Empty);
    assert_eq!(kind_of("\r\n \n"), K::Empty);
    assert_eq!(kind_of("o=- 1 1 IN IP4 10.0.0.1\ns=-\n"), K::MissingVersion);
    assert_eq!(
        kind_of(&ASTERISK_OFFER.replace("v=0\n", "")),
        K::MissingVersion
    );
    assert_eq!(
        kind_of("v=1\no=- 1 1 IN IP4 10.0.0.1\ns=-\n"),
        K::BadVersion
    );
    assert_eq!(kind_of("v=0\ns=-\nt=0 0\n"), K::MissingOrigin);
    assert_eq!(
        kind_of("v=0\no=- 1 1 IN IP4 10.0.0.1\nt=0 0\n"),
        K::MissingSessionName
    );
    assert_eq!(kind_of(&format!("{MINIMAL}v=0\n")), K::OutOfPlace);
    assert_eq!(
        kind_of(&format!("{MINIMAL}x=unknown\n")),
        K::UnknownLineType
    );
    assert_eq!(kind_of(&format!("{MINIMAL}garbage\n")), K::BadLine);
    assert_eq!(kind_of(&format!("{MINIMAL}A=foo\n")), K::BadLine);
    assert_eq!(kind_of(&format!("{MINIMAL} a=foo\n")), K::BadLine);
    assert_eq!(kind_of(&format!("{MINIMAL}a=fo\0o\n")), K::ControlCharacter);
    assert_eq!(kind_of(&format!("{MINIMAL}a=fo\ro\n")), K::ControlCharacter);
    assert_eq!(
        kind_of(&format!("{MINIMAL}c=IN IP4 10.0.0.2\n")),
        K::Duplicate
    );
    assert_eq!(
        kind_of(&with_media("m=audio 4000 RTP/AVP 0\ns=late")),
        K::OutOfPlace
    );
    assert_eq!(
        kind_of("v=0\no=- 1 1 IN IP4 10.0.0.1\ns=-\nr=7d 1h 0 25h\n"),
        K::OutOfPlace
    );
    assert_eq!(kind_of("v=0\no=- 1 x IN IP4 10.0.0.1\ns=-\n"), K::BadOrigin);
    assert_eq!(kind_of("v=0\no=- 1 1 IN IP4\ns=-\n"), K::BadOrigin);
    assert_eq!(kind_of(&format!("{MINIMAL}t=now later\n")), K::BadTiming);
    assert_eq!(kind_of(&format!("{MINIMAL}b=AS\n")), K::BadBandwidth);
    assert_eq!(kind_of(&format!("{MINIMAL}a=\n")), K::BadAttribute);
    assert_eq!(
        kind_of(&format!("{MINIMAL}a=sendrecv:yes\n")),
        K::BadAttribute
    );
    assert!(
        SessionDescription::parse_bytes(b"v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=\xff\r\n")
            .is_err_and(|e| e.kind == K::NotUtf8)
    );
}

#[test]
fn bad_m_lines() {
    use SdpErrorKind as K;
    for port in ["70000", "abc", "-1", "+5", "4000/0", "4000/", ""] {
        let m = format!("m=audio {port} RTP/AVP 0");
        assert_eq!(kind_of(&with_media(&m)), K::BadPort, "{m}");
    }
    assert_eq!(kind_of(&with_media("m=audio 4000")), K::BadMedia);
    assert_eq!(
        kind_of(&with_media("m=audio 4000 RTP/AVP 200")),
        K::BadMedia
    );
    assert_eq!(
        kind_of(&with_media("m=audio 4000 RTP/AVP PCMU")),
        K::BadMedia
    );
    assert_eq!(kind_of(&with_media("m=audio 4000 RTP//AVP 0")), K::BadMedia);
}

#[test]
fn bad_c_lines() {
    for c in [
        "c=IN IP7 10.0.0.1",
        "c=XX IP4 10.0.0.1",
        "c=IN IP4",
        "c=IN IP4 10.0.0.1 extra",
        "c=IN IP4 1.2.3.4.5",
        "c=IN IP4 300.1.1.1",
        "c=IN IP4 ::1",
        "c=IN IP6 1.2.3.4",
        "c=IN IP6 2001:db8::zz",
        "c=IN IP4 10.0.0.1/ttl",
        "c=IN IP4 bad_host!",
    ] {
        let text = format!("v=0\no=- 1 1 IN IP4 10.0.0.1\ns=-\n{c}\nt=0 0\n");
        let err = SessionDescription::parse(&text).expect_err(c);
        assert_eq!(
            (err.kind, err.line),
            (SdpErrorKind::BadConnection, 4),
            "{c}"
        );
    }
    // Host names are allowed (resolving them is the runtime's job).
    let s = sdp("v=0\no=- 1 1 IN IP4 pbx.example.com\ns=-\nc=IN IP4 pbx.example.com\nt=0 0\n");
    assert_eq!(s.connection.as_ref().and_then(Connection::ip), None);
}

#[test]
fn bad_crypto_lines() {
    use SdpErrorKind as K;
    let line = |v: &str| {
        kind_of(&with_media(&format!(
            "m=audio 4000 RTP/SAVP 0\na=crypto:{v}"
        )))
    };
    assert_eq!(
        line("1 AES_CM_128_HMAC_SHA1_80 inline:!!!!notbase64!!!!"),
        K::BadCryptoKey
    );
    assert_eq!(
        line("1 AES_CM_128_HMAC_SHA1_80 inline:AQIDBAUGBwgJCgsMDQ4PEBESExQ="),
        K::BadCryptoKey
    );
    assert_eq!(
        line("1 AES_CM_128_HMAC_SHA1_80 inline:AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHw=="),
        K::BadCryptoKey
    );
    assert_eq!(
        line(&format!("x AES_CM_128_HMAC_SHA1_80 inline:{K1}")),
        K::BadCrypto
    );
    assert_eq!(
        line(&format!("1234567890 AES_CM_128_HMAC_SHA1_80 inline:{K1}")),
        K::BadCrypto
    );
    assert_eq!(line("1 AES_CM_128_HMAC_SHA1_80"), K::BadCrypto);
    assert_eq!(
        line(&format!("1 AES_CM_128_HMAC_SHA1_80 uri:{K1}")),
        K::BadCrypto
    );
    assert_eq!(
        line(&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{K1}|2^99")),
        K::BadCrypto
    );
    assert_eq!(
        line(&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{K1}|1:0")),
        K::BadCrypto
    );
    assert_eq!(
        line(&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{K1}|1:4|2^20")),
        K::BadCrypto
    );
    assert_eq!(line("1 AES_256_CM_HMAC_SHA1_80 nokeymethod"), K::BadCrypto);
    assert_eq!(line(""), K::BadCrypto);
}

#[test]
fn bad_rtpmap_and_other_typed_attributes() {
    use SdpErrorKind as K;
    let attr = |a: &str| kind_of(&with_media(&format!("m=audio 4000 RTP/AVP 0\na={a}")));
    for bad in [
        "rtpmap:abc PCMU/8000",
        "rtpmap:0 PCMU",
        "rtpmap:0 PCMU/abc",
        "rtpmap:0 PCMU/0",
        "rtpmap:200 X/8000",
        "rtpmap:0 PCMU/8000/0",
        "rtpmap:0 PCMU/8000/1/2",
        "rtpmap:0",
        "rtpmap",
        "rtpmap:0 PCMU/8000 extra",
    ] {
        assert_eq!(attr(bad), K::BadRtpmap, "{bad}");
    }
    assert_eq!(attr("ptime:fast"), K::BadPtime);
    assert_eq!(attr("maxptime:-1"), K::BadPtime);
    assert_eq!(attr("rtcp:99999"), K::BadRtcp);
    assert_eq!(attr("rtcp:5000 IN IP4"), K::BadRtcp);
    assert_eq!(attr("fingerprint:sha-256 ZZ:00"), K::BadFingerprint);
    assert_eq!(attr("fingerprint:sha-256 A:B"), K::BadFingerprint);
    assert_eq!(attr("fingerprint:sha-256"), K::BadFingerprint);
    assert_eq!(attr("setup:sometimes"), K::BadSetup);
    assert_eq!(attr("ice-ufrag:"), K::BadIce);
    assert_eq!(attr("ice-pwd:two words"), K::BadIce);
    assert_eq!(attr("mid:"), K::BadIce);
    assert_eq!(attr("ssrc:notanumber cname:x"), K::BadSsrc);
    assert_eq!(attr("fmtp: 0-16"), K::BadFmtp);
    assert_eq!(attr("rtcp-mux:yes"), K::BadAttribute);
}

#[test]
fn error_reports_line_number_without_quoting_input() {
    let text = format!(
        "{MINIMAL}m=audio 4000 RTP/SAVP 0\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{K1}x\n"
    );
    let err = SessionDescription::parse(&text).expect_err("bad key");
    assert_eq!(err.line, 7);
    let shown = err.to_string();
    assert_eq!(shown, "SDP line 7: bad a=crypto key (base64 or length)");
    assert!(!shown.contains(K1));
}

// ---------------------------------------------------------------------------------------------
// Secrets
// ---------------------------------------------------------------------------------------------

#[test]
fn debug_output_never_shows_keys_or_ice_passwords() {
    let key = key_bytes(1);
    assert_eq!(format!("{key:?}"), "SdesKey(<redacted>)");
    let k = keys();
    let offer = create_offer(&cfg(), local(), &mut identity(), &k);
    let (_, n) = exchange(&cfg(), &cfg(), &dtls_keys());
    let fs = sdp(&freeswitch_offer());
    let web = sdp(&webrtc_offer());
    let dumps = [
        format!("{k:?}"),
        format!("{offer:?}"),
        format!("{offer:#?}"),
        format!("{n:?}"),
        format!("{fs:?}"),
        format!("{web:?}"),
        format!(
            "{:?}",
            web.media[0]
                .attributes
                .iter()
                .map(|a| a.typed())
                .collect::<Vec<_>>()
        ),
        format!("{:?}", fs.media[0].cryptos()),
        format!("{:?}", dtls_local()),
        format!("{:?}", identity()),
    ];
    let secrets = [
        k.key_for(SrtpSuite::AesCm128HmacSha1_80)
            .clone()
            .to_base64(),
        k.key_for(SrtpSuite::AesCm128HmacSha1_32)
            .clone()
            .to_base64(),
        K1.to_owned(),
        K2.to_owned(),
        "HyAhIiMkJSYnKCkqKywtLi8w".to_owned(),
        "L6I5AX1DfScn3Ctjr+MD2yvO".to_owned(),
        "ourIcePasswordIsLongEnough".to_owned(),
        n.srtp
            .as_ref()
            .map(|s| s.remote.to_base64())
            .unwrap_or_default(),
    ];
    for dump in &dumps {
        assert!(
            dump.contains("redacted") || dump.starts_with("SessionIdentity"),
            "{dump}"
        );
        for secret in &secrets {
            assert!(!dump.contains(secret.as_str()), "secret in {dump}");
        }
        // No raw key bytes either (as a Debug byte array would print them).
        assert!(!dump.contains("[1, 2, 3, 4, 5"), "{dump}");
    }
    // The wire form does carry the key, of course.
    assert!(
        offer.print().contains(
            &k.key_for(SrtpSuite::AesCm128HmacSha1_80)
                .clone()
                .to_base64()
        )
    );
}

#[test]
fn generated_keys_are_random_and_base64_is_40_chars() {
    let mut rng = StdRng::seed_from_u64(3);
    let a = new_sdes_key(&mut rng);
    let b = new_sdes_key(&mut rng);
    assert_ne!(a, b);
    assert_eq!(a.to_base64().len(), 40);
    assert_eq!(SdesKey::from_base64(&a.to_base64()), Some(a));
    assert_eq!(SdesKey::from_base64(K1), Some(key_bytes(1)));
}

// ---------------------------------------------------------------------------------------------
// No panics on garbage
// ---------------------------------------------------------------------------------------------

/// Everything a caller might do with a parsed description; must never panic.
fn exercise(text: &str, rng: &mut StdRng) {
    let Ok(parsed) = SessionDescription::parse(text) else {
        return;
    };
    let printed = parsed.print();
    let reparsed = SessionDescription::parse(&printed).expect("printed output parses");
    assert_eq!(reparsed, parsed, "round trip of\n{text}");
    for m in &parsed.media {
        let _ = m.rtpmaps();
        let _ = m.fmtps();
        let _ = m.cryptos();
        let _ = m.ssrcs();
        let _ = parsed.fingerprints_for(m);
        let _ = parsed.ice_credentials_for(m);
        for a in &m.attributes {
            let _ = format!("{:?}", a.typed());
        }
    }
    let configs = [
        cfg(),
        MediaConfig {
            srtp: SrtpPolicy::Mandatory,
            ..cfg()
        },
        MediaConfig {
            srtp: SrtpPolicy::Off,
            rtcp_mux: false,
            ..cfg()
        },
    ];
    let config = &configs[rng.random_range(0..configs.len())];
    let k = dtls_keys();
    if let Ok((ans, n)) = answer(
        &parsed,
        config,
        local(),
        &mut identity(),
        &mut k.clone(),
        rng,
    ) {
        assert_eq!(ans.media.len(), parsed.media.len());
        assert_eq!(sdp(&ans.print()), ans);
        assert!(
            parsed.media[n.media_index]
                .payload_types()
                .contains(&n.codec.pt)
        );
    }
    let ours = create_offer(config, local(), &mut identity(), &k);
    let _ = process_answer(&ours, &parsed, config, &mut keys(), rng);
    let _ = process_answer(&parsed, &parsed, config, &mut keys(), rng);
}

#[test]
fn random_and_mutated_input_never_panics() {
    let mut rng = StdRng::seed_from_u64(0x5d9);
    const ALPHABET: &[u8] = b"vosicbtmaz=: /\r\n0123456789.-INP46RTAVSUDLpcmuopus^|+*;,";
    for _ in 0..3000 {
        let len = rng.random_range(0..300);
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                if rng.random_bool(0.9) {
                    ALPHABET[rng.random_range(0..ALPHABET.len())]
                } else {
                    rng.random()
                }
            })
            .collect();
        if let Ok(text) = std::str::from_utf8(&bytes) {
            exercise(text, &mut rng);
        }
        let _ = SessionDescription::parse_bytes(&bytes);
    }
    // Structured mutations of the fixtures: these reach deep into offer/answer.
    let fixtures = all_fixtures();
    let tokens = [
        "0",
        "65535",
        "65536",
        "-",
        "IP6",
        "0.0.0.0",
        "::",
        "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:",
        "a=rtpmap:",
        "a=sendonly",
        "a=rtcp:",
        "m=audio ",
        "c=IN IP4 ",
        "/",
        ":",
        " ",
        "a=setup:",
        "a=fingerprint:sha-256 ",
        "|2^",
        "a=ptime:",
        "RTP/SAVP",
        "\n",
        "\r\n",
    ];
    for _ in 0..3000 {
        let base = &fixtures[rng.random_range(0..fixtures.len())];
        let mut lines: Vec<String> = base.lines().map(str::to_owned).collect();
        for _ in 0..rng.random_range(1..4) {
            if lines.is_empty() {
                break;
            }
            let i = rng.random_range(0..lines.len());
            match rng.random_range(0..6) {
                0 => {
                    lines.remove(i);
                }
                1 => {
                    let l = lines[i].clone();
                    lines.insert(rng.random_range(0..=lines.len()), l);
                }
                2 => {
                    let l = &mut lines[i];
                    let cut = rng.random_range(0..=l.len());
                    if l.is_char_boundary(cut) {
                        l.truncate(cut);
                    }
                }
                3 => {
                    let l = &mut lines[i];
                    let at = rng.random_range(0..=l.len());
                    if l.is_char_boundary(at) {
                        l.insert_str(at, tokens[rng.random_range(0..tokens.len())]);
                    }
                }
                4 => {
                    let j = rng.random_range(0..lines.len());
                    lines.swap(i, j);
                }
                _ => {
                    let mut b = lines[i].clone().into_bytes();
                    if !b.is_empty() {
                        let at = rng.random_range(0..b.len());
                        b[at] = ALPHABET[rng.random_range(0..ALPHABET.len())];
                    }
                    lines[i] = String::from_utf8_lossy(&b).into_owned();
                }
            }
        }
        let text = lines.join(if rng.random_bool(0.5) { "\r\n" } else { "\n" });
        exercise(&text, &mut rng);
    }
}

#[test]
fn unspecified_v6_address_is_hold_too() {
    let text = IPV6_OFFER.replace("c=IN IP6 2001:db8::20", "c=IN IP6 ::");
    let (_, n) = answer_ok(&text, &cfg());
    assert!(n.hold);
    assert_eq!(n.remote_rtp.ip(), IpAddr::from([0u16; 8]));
}

#[test]
fn empty_codec_list_offers_pcmu_and_cannot_answer() {
    let none = MediaConfig {
        codecs: vec![],
        ..cfg()
    };
    let o = create_offer(&none, local(), &mut identity(), &keys());
    assert_eq!(o.media[0].formats, vec!["0", "101"]);
    assert_eq!(
        answer(
            &sdp(ASTERISK_OFFER),
            &none,
            local(),
            &mut identity(),
            &mut keys(),
            &mut rng()
        )
        .map(|_| ()),
        Err(OfferAnswerError::NoCommonCodec)
    );
}

// ---------------------------------------------------------------------------------------------
// SDES keys across renegotiation
// ---------------------------------------------------------------------------------------------

/// Our key for `tag` in a description we made.
fn offered_key(sdp: &SessionDescription, tag: u32) -> SdesKey {
    let cryptos = sdp.media[0].cryptos().expect("crypto");
    let line = cryptos.iter().find(|c| c.tag == tag).expect("tag offered");
    line.usable_key().expect("usable").1.clone()
}

/// `offer` as a peer would see it if we had offered only crypto `tag`: its answer then picks
/// that line.
fn only_tag(offer: &SessionDescription, tag: u32) -> SessionDescription {
    let mut copy = offer.clone();
    copy.media[0].attributes.retain(|a| {
        !a.is("crypto")
            || a.value
                .as_deref()
                .is_some_and(|v| v.starts_with(&format!("{tag} ")))
    });
    copy
}

const SUITE_80: SrtpSuite = SrtpSuite::AesCm128HmacSha1_80;
const SUITE_32: SrtpSuite = SrtpSuite::AesCm128HmacSha1_32;

#[test]
fn renegotiation_keeps_the_key_in_use_and_offers_never_used_keys_elsewhere() {
    // Why: an SRTP context survives a renegotiation only if its key does (see OfferKeys).
    let mut rng = StdRng::seed_from_u64(31);
    let mandatory = MediaConfig {
        srtp: SrtpPolicy::Mandatory,
        ..cfg()
    };
    let mut ours = OfferKeys::generate(&mut rng);
    let mut theirs = OfferKeys::generate(&mut rng);
    let remote = addr("198.51.100.9:5004");
    let mut exchange = |ours: &mut OfferKeys, theirs: &mut OfferKeys, tag: Option<u32>| {
        let offer = create_offer(&mandatory, local(), &mut identity(), ours);
        let seen = tag.map_or_else(|| offer.clone(), |t| only_tag(&offer, t));
        let (ans, at_peer) =
            answer(&seen, &mandatory, remote, &mut identity(), theirs, &mut rng).expect("answer");
        let at_us = process_answer(&offer, &ans, &mandatory, ours, &mut rng).expect("process");
        (offer, at_us, at_peer)
    };

    let (first, n1, peer1) = exchange(&mut ours, &mut theirs, None);
    let key_80 = offered_key(&first, 1);
    let unused_32 = offered_key(&first, 2);
    assert_eq!(
        n1.srtp.as_ref().map(|p| (p.suite, &p.local)),
        Some((SUITE_80, &key_80))
    );
    assert_eq!(ours.in_use(), Some((SUITE_80, &key_80)));

    // A re-offer (hold, codec change...) carries the same keys: nothing to rebuild.
    let (second, n2, peer2) = exchange(&mut ours, &mut theirs, None);
    assert_eq!(offered_key(&second, 1), key_80);
    assert_eq!(
        offered_key(&second, 2),
        unused_32,
        "never used, so still good"
    );
    assert_eq!(n2.srtp, n1.srtp);
    assert_eq!(
        peer2.srtp, peer1.srtp,
        "the answerer keeps its key in use too"
    );

    // The peer switches to _32: our never-used _32 key goes into use, _80's is retired.
    let (_, n3, _) = exchange(&mut ours, &mut theirs, Some(2));
    assert_eq!(
        n3.srtp.as_ref().map(|p| (p.suite, &p.local)),
        Some((SUITE_32, &unused_32))
    );
    let (fourth, _, _) = exchange(&mut ours, &mut theirs, Some(2));
    assert_eq!(offered_key(&fourth, 2), unused_32, "in use: offered again");
    let fresh_80 = offered_key(&fourth, 1);
    assert_ne!(fresh_80, key_80, "a retired key is never offered again");
    assert_ne!(fresh_80, unused_32);

    // Back to _80: with the fresh key.
    let (_, n5, _) = exchange(&mut ours, &mut theirs, Some(1));
    assert_eq!(n5.srtp.map(|p| p.local), Some(fresh_80));
}

#[test]
fn an_answer_picking_a_retired_key_is_refused() {
    // A late answer to an old offer (one we made before the key it picks was retired) must
    // not put that key back into use: our outbound context would restart under it.
    let mut rng = StdRng::seed_from_u64(32);
    let mandatory = MediaConfig {
        srtp: SrtpPolicy::Mandatory,
        ..cfg()
    };
    let mut ours = OfferKeys::generate(&mut rng);
    let mut theirs = OfferKeys::generate(&mut rng);
    let remote = addr("198.51.100.9:5004");
    let old_offer = create_offer(&mandatory, local(), &mut identity(), &ours);
    let (old_answer, _) = answer(
        &old_offer,
        &mandatory,
        remote,
        &mut identity(),
        &mut theirs.clone(),
        &mut rng,
    )
    .expect("answer");
    process_answer(&old_offer, &old_answer, &mandatory, &mut ours, &mut rng).expect("first");
    // Renegotiated to _32: the _80 key of the old offer is retired.
    let offer = create_offer(&mandatory, local(), &mut identity(), &ours);
    let (ans, _) = answer(
        &only_tag(&offer, 2),
        &mandatory,
        remote,
        &mut identity(),
        &mut theirs,
        &mut rng,
    )
    .expect("answer");
    process_answer(&offer, &ans, &mandatory, &mut ours, &mut rng).expect("switch");
    let before = ours.clone();
    assert_eq!(
        process_answer(&old_offer, &old_answer, &mandatory, &mut ours, &mut rng),
        Err(OfferAnswerError::RetiredKey)
    );
    assert_eq!(ours, before, "a refused answer changes nothing");
}

#[test]
fn falling_back_to_plain_rtp_retires_the_key_in_use() {
    let mut rng = StdRng::seed_from_u64(33);
    let mut ours = OfferKeys::generate(&mut rng);
    let remote = addr("198.51.100.9:5004");
    let offer = create_offer(&cfg(), local(), &mut identity(), &ours);
    let (ans, _) = answer(
        &offer,
        &cfg(),
        remote,
        &mut identity(),
        &mut OfferKeys::generate(&mut rng),
        &mut rng,
    )
    .expect("answer");
    process_answer(&offer, &ans, &cfg(), &mut ours, &mut rng).expect("sdes");
    let used = offered_key(&offer, 1);
    // The peer answers a best-effort re-offer without crypto: plain RTP.
    let reoffer = create_offer(&cfg(), local(), &mut identity(), &ours);
    let off = MediaConfig {
        srtp: SrtpPolicy::Off,
        ..cfg()
    };
    let (plain, _) = answer(
        &only_tag(&reoffer, 0),
        &off,
        remote,
        &mut identity(),
        &mut OfferKeys::generate(&mut rng),
        &mut rng,
    )
    .expect("plain answer");
    let n = process_answer(&reoffer, &plain, &cfg(), &mut ours, &mut rng).expect("plain");
    assert!(n.srtp.is_none());
    assert_eq!(ours.in_use(), None);
    let next = create_offer(&cfg(), local(), &mut identity(), &ours);
    assert_ne!(
        offered_key(&next, 1),
        used,
        "SRTP again starts with a never-used key"
    );
}
