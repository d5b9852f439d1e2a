//! End-to-end tests of the PBX over real loopback sockets (127.0.0.1 only), with raw SIP user
//! agents built from `handset-sip` messages.

// Real sockets run on the wall clock: these tests read it (the machine never does).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]

mod support;

use std::time::{Duration, Instant};

use handset_media::codec::g711::{G711Decoder, G711Encoder, Law};
use handset_media::codec::{Decoder, Encoder, dominant_tone_ratio, sine};
use handset_media::rtp::RtpPacket;
use handset_media::sdp::{
    CodecPref, MediaConfig, OfferKeys, SessionDescription, SessionIdentity, SrtpPolicy,
    create_offer, process_answer,
};
use handset_pbx::{BotConfig, Pbx, PbxConfig, PbxEvent, PushKind, Transport};
use handset_sip::message::{HeaderName, Message, Method};
use tokio::net::UdpSocket;
use tokio::sync::broadcast;

use support::{Ua, WAIT, ack_for_failure, next_push, push_service, to_tag};

fn config() -> PbxConfig {
    PbxConfig::default()
        .with_user("alice", "alice-pw")
        .with_user("bob", "bob-pw")
}

async fn wait_event(
    events: &mut broadcast::Receiver<PbxEvent>,
    what: &str,
    pred: impl Fn(&PbxEvent) -> bool,
) -> PbxEvent {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Ok(e)) if pred(&e) => return e,
            Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
            _ => panic!("no event: {what}"),
        }
    }
}

#[tokio::test]
async fn register_is_challenged_then_accepted() {
    let pbx = Pbx::start(config()).await.unwrap();
    let mut events = pbx.subscribe();
    let mut alice = Ua::udp("alice", "alice-pw", pbx.addr()).await;

    let first = alice.register_request(Some(60));
    alice.send(first).await;
    let challenge = alice.expect_response(Method::Register, 401).await;
    let value = challenge.headers.get(&HeaderName::WwwAuthenticate).unwrap();
    assert!(value.starts_with("Digest "), "{value}");
    assert!(value.contains("realm=\"handset.demo\""), "{value}");
    assert!(value.contains("qop=\"auth\""), "{value}");
    assert!(value.contains("algorithm=MD5"), "{value}");

    let mut second = alice.register_request(Some(60));
    alice.authorize(&mut second, &challenge, "alice-pw");
    alice.send(second).await;
    let ok = alice.expect_response(Method::Register, 200).await;
    let contacts = ok.headers.contacts().unwrap();
    assert_eq!(contacts.len(), 1);
    let contact = contacts[0].clone().unwrap();
    assert_eq!(contact.uri.to_string(), alice.contact_uri());
    let expires = contact.expires().unwrap();
    assert!((59..=60).contains(&expires), "{expires}");

    let bindings = pbx.bindings("alice").await;
    assert_eq!(bindings.len(), 1);
    assert_eq!(bindings[0].source, alice.local);
    assert_eq!(bindings[0].transport, Transport::Udp);
    wait_event(&mut events, "Registered", |e| {
        matches!(e, PbxEvent::Registered { user, expires: 60, push: false, .. } if user == "alice")
    })
    .await;

    // The 200 lists every binding: a second device of the same user.
    let mut alice2 = Ua::udp("alice", "alice-pw", pbx.addr()).await;
    let ok = alice2.register(120).await;
    assert_eq!(ok.headers.contacts().unwrap().len(), 2);
    assert_eq!(pbx.bindings("alice").await.len(), 2);
    // Newest first.
    assert_eq!(pbx.bindings("alice").await[0].source, alice2.local);
    pbx.shutdown().await;
}

#[tokio::test]
async fn wrong_password_and_unknown_user_are_refused() {
    let pbx = Pbx::start(config()).await.unwrap();
    let mut events = pbx.subscribe();
    let mut alice = Ua::udp("alice", "alice-pw", pbx.addr()).await;
    let refused = alice.register_with(Some(60), "not-the-password").await;
    assert_eq!(refused.status, 403);
    assert!(pbx.bindings("alice").await.is_empty());
    wait_event(&mut events, "AuthFailed", |e| {
        matches!(e, PbxEvent::AuthFailed { user, method } if user == "alice" && method == "REGISTER")
    })
    .await;

    let mut mallory = Ua::udp("mallory", "x", pbx.addr()).await;
    assert_eq!(mallory.register_with(Some(60), "x").await.status, 403);

    // Alice's credentials do not register Bob.
    let mut fake_bob = Ua::udp("bob", "alice-pw", pbx.addr()).await;
    let first = fake_bob.register_request(Some(60));
    fake_bob.send(first).await;
    let challenge = fake_bob.expect_response(Method::Register, 401).await;
    let mut second = fake_bob.register_request(Some(60));
    fake_bob.user = "alice".into();
    fake_bob.authorize(&mut second, &challenge, "alice-pw");
    fake_bob.send(second).await;
    fake_bob.expect_response(Method::Register, 403).await;
    assert!(pbx.bindings("bob").await.is_empty());
    pbx.shutdown().await;
}

#[tokio::test]
async fn bindings_expire_and_unregister() {
    let pbx = Pbx::start(config()).await.unwrap();
    let mut bob = Ua::udp("bob", "bob-pw", pbx.addr()).await;
    bob.register(1).await;
    assert_eq!(pbx.bindings("bob").await.len(), 1);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert!(
        pbx.bindings("bob").await.is_empty(),
        "binding did not expire"
    );

    // An expired binding means 480 for callers.
    let mut alice = Ua::udp("alice", "alice-pw", pbx.addr()).await;
    alice.invite("bob", None).await;
    let r = alice.expect_status_at_least(Method::Invite, 200).await;
    assert_eq!(r.status, 480);
    assert!(to_tag(&r).len() > 4);

    // Register, then unregister with Expires: 0.
    bob.register(60).await;
    assert_eq!(pbx.bindings("bob").await.len(), 1);
    let ok = bob.register(0).await;
    assert!(ok.headers.contacts().unwrap().is_empty());
    assert!(pbx.bindings("bob").await.is_empty());
    pbx.shutdown().await;
}

#[tokio::test]
async fn unknown_callee_gets_404_and_unauthenticated_calls_407() {
    let pbx = Pbx::start(config()).await.unwrap();
    let mut alice = Ua::udp("alice", "alice-pw", pbx.addr()).await;
    let invite = alice.invite("carol", None).await;
    let r = alice.expect_status_at_least(Method::Invite, 200).await;
    assert_eq!(r.status, 404);
    alice.send(ack_for_failure(&invite, &r)).await;

    // A wrong password on the INVITE: 407 then 403.
    let mut eve = Ua::udp("alice", "wrong", pbx.addr()).await;
    eve.invite("bob", None).await;
    let r = eve.expect_status_at_least(Method::Invite, 200).await;
    assert_eq!(r.status, 403);
    pbx.shutdown().await;
}

#[tokio::test]
async fn call_is_proxied_end_to_end() {
    let pbx = Pbx::start(config()).await.unwrap();
    let mut events = pbx.subscribe();
    let mut alice = Ua::udp("alice", "alice-pw", pbx.addr()).await;
    let mut bob = Ua::udp("bob", "bob-pw", pbx.addr()).await;
    alice.register(60).await;
    bob.register(60).await;

    let offer = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
    let invite = alice.invite("bob", Some(offer)).await;
    alice.expect_response(Method::Invite, 100).await;

    // Bob gets it at his registered contact, through the PBX.
    let incoming = bob.expect_request(Method::Invite).await;
    assert_eq!(incoming.uri.to_string(), bob.contact_uri());
    assert_eq!(incoming.headers.vias().unwrap().len(), 2);
    let rr = incoming.headers.record_routes().unwrap();
    assert_eq!(rr.len(), 1);
    assert_eq!(rr[0].uri.to_string(), format!("sip:{};lr", pbx.addr()));
    assert!(!incoming.headers.contains(&HeaderName::ProxyAuthorization));
    assert_eq!(incoming.headers.max_forwards().unwrap(), Some(69));
    assert_eq!(incoming.body, offer.to_vec());

    let bob_tag = "bobtag1";
    bob.respond(&incoming, 180, bob_tag, None).await;
    let ringing = alice.expect_response(Method::Invite, 180).await;
    assert_eq!(to_tag(&ringing), bob_tag);
    assert_eq!(ringing.headers.vias().unwrap().len(), 1);

    let answer = b"v=0\r\no=- 2 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4002 RTP/AVP 0\r\n";
    bob.respond(&incoming, 200, bob_tag, Some(answer)).await;
    let ok = alice.expect_response(Method::Invite, 200).await;
    assert_eq!(ok.body, answer.to_vec());
    assert_eq!(ok.headers.record_routes().unwrap().len(), 1);
    wait_event(&mut events, "CallAnswered", |e| {
        matches!(e, PbxEvent::CallAnswered { status: 200, .. })
    })
    .await;

    // ACK through the PBX, to Bob.
    let ack = alice.caller_in_dialog(&invite, &ok, Method::Ack, 2);
    alice.send(ack).await;
    let got = bob.expect_request(Method::Ack).await;
    assert!(
        got.headers.routes().unwrap().is_empty(),
        "our Route was not removed"
    );
    assert_eq!(
        got.headers.call_id().unwrap(),
        invite.headers.call_id().unwrap()
    );

    // INFO from Alice, answered by Bob.
    let mut info = alice.caller_in_dialog(&invite, &ok, Method::Info, 3);
    info.headers
        .push(HeaderName::ContentType, "application/dtmf-relay");
    info.body = b"Signal=5\r\nDuration=160\r\n".to_vec();
    alice.send(info).await;
    let got = bob.expect_request(Method::Info).await;
    assert_eq!(got.body, b"Signal=5\r\nDuration=160\r\n".to_vec());
    bob.respond(&got, 200, bob_tag, None).await;
    alice.expect_response(Method::Info, 200).await;

    // Bob hangs up: the BYE reaches Alice, her 200 reaches Bob.
    let bye = bob.callee_in_dialog(&incoming, bob_tag, Method::Bye, 1);
    bob.send(bye).await;
    let got = alice.expect_request(Method::Bye).await;
    assert_eq!(got.uri.to_string(), alice.contact_uri());
    alice.respond(&got, 200, "unused", None).await;
    bob.expect_response(Method::Bye, 200).await;
    wait_event(&mut events, "CallEnded", |e| {
        matches!(e, PbxEvent::CallEnded { .. })
    })
    .await;
    pbx.shutdown().await;
}

#[tokio::test]
async fn cancel_is_handled_hop_by_hop() {
    let pbx = Pbx::start(config()).await.unwrap();
    let mut alice = Ua::udp("alice", "alice-pw", pbx.addr()).await;
    let mut bob = Ua::udp("bob", "bob-pw", pbx.addr()).await;
    bob.register(60).await;
    let invite = alice.invite("bob", None).await;
    let incoming = bob.expect_request(Method::Invite).await;
    bob.respond(&incoming, 180, "b1", None).await;
    alice.expect_response(Method::Invite, 180).await;

    let cancel = alice.cancel_for(&invite);
    alice.send(cancel).await;
    alice.expect_response(Method::Cancel, 200).await;
    let got = bob.expect_request(Method::Cancel).await;
    // The PBX's own CANCEL, for the INVITE it sent (its branch).
    assert_eq!(
        got.headers.top_via().unwrap().branch(),
        incoming.headers.top_via().unwrap().branch()
    );
    bob.respond(&got, 200, "b1", None).await;
    let terminated = bob.respond(&incoming, 487, "b1", None).await;
    let r = alice.expect_response(Method::Invite, 487).await;
    alice.send(ack_for_failure(&invite, &r)).await;
    // The PBX ACKs Bob's 487 itself.
    let ack = bob.expect_request(Method::Ack).await;
    assert_eq!(
        ack.headers.top_via().unwrap().branch(),
        terminated.headers.top_via().unwrap().branch()
    );
    pbx.shutdown().await;
}

#[tokio::test]
async fn tcp_binding_gets_calls_on_its_connection() {
    let pbx = Pbx::start(config()).await.unwrap();
    let mut bob = Ua::tcp("bob", "bob-pw", pbx.addr()).await;
    bob.register(60).await;
    let bindings = pbx.bindings("bob").await;
    assert_eq!(bindings[0].transport, Transport::Tcp);
    let mut alice = Ua::udp("alice", "alice-pw", pbx.addr()).await;
    let invite = alice.invite("bob", None).await;
    let incoming = bob.expect_request(Method::Invite).await;
    let rr = incoming.headers.record_routes().unwrap();
    // Two Record-Routes, one per transport (RFC 3261 §16.6 step 4 practice).
    assert_eq!(rr.len(), 2);
    assert_eq!(
        rr[0].uri.to_string(),
        format!("sip:{};transport=tcp;lr", pbx.addr())
    );
    assert_eq!(rr[1].uri.to_string(), format!("sip:{};lr", pbx.addr()));
    bob.respond(&incoming, 486, "busy1", None).await;
    let r = alice.expect_response(Method::Invite, 486).await;
    alice.send(ack_for_failure(&invite, &r)).await;
    pbx.shutdown().await;
}

fn push_contact(token: &str) -> String {
    format!(";pn-provider=apns;pn-prid={token};pn-param=demo.handset.voip")
}

#[tokio::test]
async fn push_wakes_the_callee_and_the_held_invite_follows_its_registration() {
    let (url, mut pushes) = push_service().await;
    let pbx = Pbx::start(config().with_push_endpoint(url)).await.unwrap();
    let mut events = pbx.subscribe();
    // Bob registers with push parameters, then his app is suspended (socket gone).
    {
        let mut sleeping = Ua::udp("bob", "bob-pw", pbx.addr()).await;
        sleeping.contact_params = push_contact("tok123");
        sleeping.register(60).await;
    }
    let push = pbx.push_binding("bob").await.unwrap();
    assert_eq!(push.prid.as_deref(), Some("tok123"));

    let mut alice = Ua::udp("alice", "alice-pw", pbx.addr()).await;
    let invite = alice.invite("bob", None).await;
    alice.expect_response(Method::Invite, 100).await;
    alice.expect_response(Method::Invite, 180).await;
    let sent_before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let body = next_push(&mut pushes, WAIT).await;
    assert_eq!(body["type"], "incoming_call");
    assert_eq!(body["call_id"], invite.headers.call_id().unwrap());
    assert_eq!(body["from"], format!("sip:alice@{}", pbx.addr().ip()));
    assert_eq!(body["from_name"], "Alice");
    assert_eq!(body["to"], "bob");
    assert_eq!(body["pbx"], "HANDSET-DEMO-1");
    assert_eq!(body["pn_provider"], "apns");
    assert_eq!(body["pn_prid"], "tok123");
    assert_eq!(body["pn_param"], "demo.handset.voip");
    let sent_at = body["sent_at"].as_u64().unwrap();
    assert!(
        sent_at.abs_diff(sent_before) < 5_000,
        "{sent_at} vs {sent_before}"
    );
    wait_event(&mut events, "push delivered", |e| {
        matches!(
            e,
            PbxEvent::PushDelivered {
                kind: PushKind::IncomingCall,
                status: Some(200),
                ..
            }
        )
    })
    .await;

    // Woken, the app registers from a new socket and gets the held INVITE there.
    let mut bob = Ua::udp("bob", "bob-pw", pbx.addr()).await;
    bob.contact_params = push_contact("tok123");
    bob.register(60).await;
    let incoming = bob.expect_request(Method::Invite).await;
    assert_eq!(
        incoming.headers.call_id().unwrap(),
        invite.headers.call_id().unwrap()
    );
    assert!(incoming.uri.to_string().starts_with(&bob.contact_uri()));
    wait_event(&mut events, "Routed after push", |e| {
        matches!(
            e,
            PbxEvent::Routed {
                after_push: true,
                ..
            }
        )
    })
    .await;
    bob.respond(&incoming, 200, "bobwoke", Some(b"v=0\r\n"))
        .await;
    let ok = alice.expect_response(Method::Invite, 200).await;
    let ack = alice.caller_in_dialog(&invite, &ok, Method::Ack, 2);
    alice.send(ack).await;
    bob.expect_request(Method::Ack).await;
    let bye = alice.caller_in_dialog(&invite, &ok, Method::Bye, 3);
    alice.send(bye).await;
    let got = bob.expect_request(Method::Bye).await;
    bob.respond(&got, 200, "bobwoke", None).await;
    alice.expect_response(Method::Bye, 200).await;
    pbx.shutdown().await;
}

#[tokio::test]
async fn push_wait_runs_out_with_480() {
    let (url, mut pushes) = push_service().await;
    let pbx = Pbx::start(
        config()
            .with_push_endpoint(url)
            .with_push_wait(Duration::from_millis(800)),
    )
    .await
    .unwrap();
    let mut bob = Ua::udp("bob", "bob-pw", pbx.addr()).await;
    bob.contact_params = push_contact("tok-timeout");
    bob.register(60).await;
    let mut alice = Ua::udp("alice", "alice-pw", pbx.addr()).await;
    let started = Instant::now();
    let invite = alice.invite("bob", None).await;
    assert_eq!(next_push(&mut pushes, WAIT).await["type"], "incoming_call");
    let r = alice.expect_status_at_least(Method::Invite, 200).await;
    assert_eq!(r.status, 480);
    assert!(started.elapsed() >= Duration::from_millis(700));
    alice.send(ack_for_failure(&invite, &r)).await;
    let cancel = next_push(&mut pushes, WAIT).await;
    assert_eq!(cancel["type"], "cancel");
    assert_eq!(cancel["reason"], "timeout");
    assert_eq!(cancel["call_id"], invite.headers.call_id().unwrap());
    // RFC 8599: even with a live (stale) binding the INVITE was held, not sent there.
    bob.expect_none(
        Duration::from_millis(200),
        |m| matches!(m, Message::Request(r) if r.method == Method::Invite),
    )
    .await;
    pbx.shutdown().await;
}

#[tokio::test]
async fn cancel_while_held_gives_487_and_a_cancel_push() {
    let (url, mut pushes) = push_service().await;
    let pbx = Pbx::start(config().with_push_endpoint(url)).await.unwrap();
    let mut events = pbx.subscribe();
    let mut bob = Ua::udp("bob", "bob-pw", pbx.addr()).await;
    bob.contact_params = push_contact("tok-cancel");
    bob.register(60).await;
    let mut alice = Ua::udp("alice", "alice-pw", pbx.addr()).await;
    let invite = alice.invite("bob", None).await;
    alice.expect_response(Method::Invite, 180).await;
    assert_eq!(next_push(&mut pushes, WAIT).await["type"], "incoming_call");

    let cancel = alice.cancel_for(&invite);
    alice.send(cancel).await;
    alice.expect_response(Method::Cancel, 200).await;
    let r = alice.expect_response(Method::Invite, 487).await;
    alice.send(ack_for_failure(&invite, &r)).await;
    let body = next_push(&mut pushes, WAIT).await;
    assert_eq!(body["type"], "cancel");
    assert_eq!(body["reason"], "caller_cancelled");
    assert_eq!(body["call_id"], invite.headers.call_id().unwrap());
    assert_eq!(body["pn_prid"], "tok-cancel");
    wait_event(&mut events, "Cancelled", |e| {
        matches!(e, PbxEvent::Cancelled { .. })
    })
    .await;

    // A later registration does not resurrect the cancelled call.
    bob.register(60).await;
    bob.expect_none(
        Duration::from_millis(300),
        |m| matches!(m, Message::Request(r) if r.method == Method::Invite),
    )
    .await;
    pbx.shutdown().await;
}

/// Decoded PCMU audio from the bot, with each packet's arrival time since the 200 OK.
struct Heard {
    samples: Vec<(Duration, Vec<i16>)>,
}

impl Heard {
    fn between(&self, from: Duration, to: Duration) -> Vec<i16> {
        self.samples
            .iter()
            .filter(|(at, _)| *at >= from && *at < to)
            .flat_map(|(_, s)| s.iter().copied())
            .collect()
    }
}

#[tokio::test]
async fn echo_bot_plays_a_tone_then_echoes() {
    let pbx = Pbx::start(config().with_bot(BotConfig::default()))
        .await
        .unwrap();
    let mut events = pbx.subscribe();
    let mut alice = Ua::udp("alice", "alice-pw", pbx.addr()).await;

    let rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let media = MediaConfig {
        codecs: vec![CodecPref::Pcmu],
        telephone_event: false,
        srtp: SrtpPolicy::Off,
        ..MediaConfig::default()
    };
    let mut rng = rand::rng();
    let mut identity = SessionIdentity::new(&mut rng);
    let mut keys = OfferKeys::generate(&mut rng);
    let offer = create_offer(&media, rtp.local_addr().unwrap(), &mut identity, &keys);
    let invite = alice.invite("echo", Some(offer.print().as_bytes())).await;
    alice.expect_response(Method::Invite, 180).await;
    let ringing_at = Instant::now();
    let ok = alice.expect_response(Method::Invite, 200).await;
    let rang = ringing_at.elapsed();
    assert!(
        rang >= Duration::from_millis(700),
        "answered after {rang:?}"
    );
    let answered = Instant::now();
    let ack = alice.caller_in_dialog(&invite, &ok, Method::Ack, 2);
    alice.send(ack).await;
    let answer = SessionDescription::parse_bytes(&ok.body).unwrap();
    let negotiated = process_answer(&offer, &answer, &media, &mut keys, &mut rng).unwrap();
    assert_eq!(negotiated.codec.name, "PCMU");
    wait_event(
        &mut events,
        "BotAnswered",
        |e| matches!(e, PbxEvent::BotAnswered { codec, srtp: false, .. } if codec == "PCMU"),
    )
    .await;

    // Send a 1 kHz tone for 4.5 s, paced at 20 ms, and record what comes back.
    let remote = negotiated.remote_rtp;
    let pt = negotiated.codec.pt;
    let mut encoder = G711Encoder::new(Law::MuLaw);
    let mut decoder = G711Decoder::new(Law::MuLaw);
    let mut heard = Heard {
        samples: Vec::new(),
    };
    let mut clock = tokio::time::interval(Duration::from_millis(20));
    let mut buf = vec![0u8; 2048];
    let mut frame = 0usize;
    while answered.elapsed() < Duration::from_millis(4500) {
        tokio::select! {
            _ = clock.tick() => {
                let pcm = sine(1000.0, 8000, 8000.0, frame * 160, 160);
                let mut packet = RtpPacket::new(pt, frame as u16, (frame * 160) as u32, 0x1234_5678);
                encoder.encode(&pcm, &mut packet.payload).unwrap();
                packet.marker = frame == 0;
                rtp.send_to(&packet.to_bytes().unwrap(), remote).await.unwrap();
                frame += 1;
            }
            received = rtp.recv_from(&mut buf) => {
                let (n, _) = received.unwrap();
                let Ok(packet) = RtpPacket::parse(&buf[..n]) else { continue };
                if packet.payload_type != pt { continue }
                let mut pcm = Vec::new();
                decoder.decode(&packet.payload, &mut pcm).unwrap();
                heard.samples.push((answered.elapsed(), pcm));
            }
        }
    }
    let tone = heard.between(Duration::from_millis(200), Duration::from_millis(1800));
    assert!(tone.len() > 8000, "only {} samples of tone", tone.len());
    let ratio = dominant_tone_ratio(&tone, 8000, 440.0);
    assert!(ratio > 0.8, "440 Hz share in the greeting: {ratio}");
    let echo = heard.between(Duration::from_millis(3000), Duration::from_millis(4400));
    assert!(echo.len() > 8000, "only {} samples of echo", echo.len());
    let ratio = dominant_tone_ratio(&echo, 8000, 1000.0);
    assert!(ratio > 0.8, "1 kHz share in the echo: {ratio}");
    assert!(dominant_tone_ratio(&echo, 8000, 440.0) < 0.05);

    // Hang up: the bot answers the BYE and ends.
    let bye = alice.caller_in_dialog(&invite, &ok, Method::Bye, 3);
    alice.send(bye).await;
    alice.expect_response(Method::Bye, 200).await;
    wait_event(&mut events, "BotEnded", |e| {
        matches!(e, PbxEvent::BotEnded { .. })
    })
    .await;
    pbx.shutdown().await;
}

#[tokio::test]
async fn echo_bot_call_can_be_cancelled_while_ringing() {
    let pbx = Pbx::start(config().with_bot(BotConfig {
        answer_after: Duration::from_secs(5),
        ..BotConfig::default()
    }))
    .await
    .unwrap();
    let mut alice = Ua::udp("alice", "alice-pw", pbx.addr()).await;
    let mut rng = rand::rng();
    let offer = create_offer(
        &MediaConfig::default(),
        "127.0.0.1:4000".parse().unwrap(),
        &mut SessionIdentity::new(&mut rng),
        &OfferKeys::generate(&mut rng),
    );
    let invite = alice.invite("echo", Some(offer.print().as_bytes())).await;
    alice.expect_response(Method::Invite, 180).await;
    let cancel = alice.cancel_for(&invite);
    alice.send(cancel).await;
    alice.expect_response(Method::Cancel, 200).await;
    let r = alice.expect_response(Method::Invite, 487).await;
    alice.send(ack_for_failure(&invite, &r)).await;
    pbx.shutdown().await;
}
