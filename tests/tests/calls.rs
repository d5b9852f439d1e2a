//! Calls between two Handset runtimes through the real Kamailio on loopback. Each side plays
//! its own tone from a clocked fake device and records what it hears; a call passes when each
//! recording holds at least 2 s of the other side's tone.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use handset::audio::Recorder;
use handset::{
    AccountConfig, AccountId, CallOptions, CallUpdate, EndReason, Events, Handset,
    RegistrationState, RuntimeConfig, Transport,
};
use handset_media::ice::{IceConfig, IcePolicy, StunUrl, TurnTransport, TurnUrl};
use handset_media::sdp::{CodecPref, MediaConfig, SrtpMode, SrtpPolicy};
use handset_tests::coturn::{self, Coturn};
use handset_tests::{heard, kamailio, next_call_update, tone_device, wait_for, wait_update};

const LIMIT: Duration = Duration::from_secs(15);

struct Side {
    handset: Handset,
    events: Events,
    account: AccountId,
    /// The `MediaPath` updates of the last call (relayed or not), in order.
    media_paths: Vec<bool>,
}

async fn side(user: &str, transport: Transport, media: MediaConfig) -> Side {
    side_with_ice(user, transport, media, IceConfig::default()).await
}

async fn side_with_ice(
    user: &str,
    transport: Transport,
    media: MediaConfig,
    ice: IceConfig,
) -> Side {
    let k = kamailio();
    let (handset, mut events) = Handset::start(RuntimeConfig {
        bind: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
        ..RuntimeConfig::default()
    })
    .await
    .unwrap();
    let server = if transport == Transport::Tls {
        k.tls_uri()
    } else {
        k.uri()
    };
    let mut config = AccountConfig::new(server, user, format!("{user}-secret"));
    config.transport = Some(transport);
    config.ca_file = Some(k.ca.clone());
    config.media = media;
    config.ice = ice;
    let account = handset.add_account(config).await.unwrap();
    wait_for(&mut events, LIMIT, |e| {
        matches!(e, RegistrationState::Registered { .. })
    })
    .await;
    Side {
        handset,
        events,
        account,
        media_paths: Vec::new(),
    }
}

/// A calls B, B answers, both talk for `talk`, A hangs up. With `move_a_after`, A's phone
/// is told that much into the talk that the network changed. Returns what each side heard and
/// the `Answered` updates.
async fn call_and_talk(
    a: &mut Side,
    b: &mut Side,
    b_user: &str,
    talk: Duration,
    move_a_after: Option<Duration>,
) -> (Recorder, Recorder, CallUpdate, CallUpdate) {
    let (device_a, heard_by_a) = tone_device(440.0);
    let call_a = a
        .handset
        .call(
            a.account,
            b_user,
            CallOptions {
                device: device_a,
                media: None,
                report_id: None,
            },
        )
        .await
        .unwrap();
    let (call_b, incoming) =
        wait_update(&mut b.events, |u| matches!(u, CallUpdate::Incoming { .. })).await;
    assert!(matches!(incoming, CallUpdate::Incoming { ref from, .. } if from.contains("@")));
    wait_update(&mut a.events, |u| matches!(u, CallUpdate::Ringing)).await;
    let (device_b, heard_by_b) = tone_device(1000.0);
    b.handset
        .answer(
            call_b,
            CallOptions {
                device: device_b,
                media: None,
                report_id: None,
            },
        )
        .await
        .unwrap();
    let (_, answered_a) =
        wait_update(&mut a.events, |u| matches!(u, CallUpdate::Answered { .. })).await;
    let (_, answered_b) =
        wait_update(&mut b.events, |u| matches!(u, CallUpdate::Answered { .. })).await;
    match move_a_after {
        Some(after) => {
            tokio::time::sleep(after).await;
            a.handset.network_changed().unwrap();
            tokio::time::sleep(talk.saturating_sub(after)).await;
        }
        None => tokio::time::sleep(talk).await,
    }
    a.handset.hangup(call_a).await.unwrap();
    // The caller's media path is chosen after the answer: collect it on the way to the end.
    let ended_a = loop {
        match next_call_update(&mut a.events).await {
            (_, CallUpdate::MediaPath { relayed }) => a.media_paths.push(relayed),
            (_, update @ CallUpdate::Ended { .. }) => break update,
            _ => {}
        }
    };
    let (_, ended_b) = wait_update(&mut b.events, |u| matches!(u, CallUpdate::Ended { .. })).await;
    for ended in [&ended_a, &ended_b] {
        let CallUpdate::Ended {
            reason, quality, ..
        } = ended
        else {
            unreachable!()
        };
        assert!(reason.is_normal(), "{ended:?}");
        let quality = quality.as_ref().expect("media statistics");
        assert!(quality.stats.packets_received > 100, "{quality:?}");
        assert!(quality.mos > 3.5, "{quality:?}");
    }
    (heard_by_a, heard_by_b, answered_a, answered_b)
}

/// The caller heard the callee's 1000 Hz tone, and the callee the caller's 440 Hz, for at
/// least `secs` seconds each.
fn assert_both_heard(heard_a: &Recorder, heard_b: &Recorder, secs: f64) {
    let (a_secs, b_secs) = (heard(heard_a, 1000.0), heard(heard_b, 440.0));
    assert!(
        a_secs >= secs,
        "caller heard {a_secs} s of the callee's tone"
    );
    assert!(
        b_secs >= secs,
        "callee heard {b_secs} s of the caller's tone"
    );
}

/// Unregisters both sides' accounts and stops their runtimes.
async fn unregister_and_stop(sides: [Side; 2]) {
    for side in sides {
        side.handset.unregister(side.account).await.unwrap();
        side.handset.shutdown().await;
    }
}

fn media(codec: CodecPref, srtp: SrtpPolicy) -> MediaConfig {
    MediaConfig {
        codecs: vec![codec],
        srtp,
        ..MediaConfig::default()
    }
}

async fn tone_call(
    a_user: &str,
    b_user: &str,
    transport: Transport,
    codec: CodecPref,
    srtp: SrtpPolicy,
    name: &str,
) {
    let mut a = side(a_user, transport, media(codec, srtp)).await;
    let mut b = side(b_user, transport, media(codec, srtp)).await;
    let (heard_a, heard_b, answered, _) =
        call_and_talk(&mut a, &mut b, b_user, Duration::from_secs(3), None).await;
    let CallUpdate::Answered {
        codec,
        srtp: encrypted,
    } = answered
    else {
        unreachable!()
    };
    assert_eq!(codec, name);
    assert_eq!(encrypted, srtp == SrtpPolicy::Mandatory);
    assert_both_heard(&heard_a, &heard_b, 2.0);
    unregister_and_stop([a, b]).await;
}

#[tokio::test]
async fn pcmu_call_over_udp_carries_audio_both_ways() {
    tone_call(
        "call1",
        "call2",
        Transport::Udp,
        CodecPref::Pcmu,
        SrtpPolicy::Off,
        "PCMU",
    )
    .await;
}

/// The caller's phone is told mid-call that the network changed: it registers again, binds a
/// new RTP socket, switches its media to it (closing the old one) and re-INVITEs the callee
/// with the new address. The tones must go on both ways through the move. (On loopback the
/// callee's latching to where RTP comes from would also carry a half-done move; that the
/// re-INVITE offers the new socket and the peer adopts it is pinned in `phone_sim.rs`.)
#[tokio::test]
async fn a_call_moved_by_a_network_change_carries_audio_both_ways() {
    let codec = media(CodecPref::Pcmu, SrtpPolicy::Mandatory);
    let mut a = side("move1", Transport::Udp, codec.clone()).await;
    let mut b = side("move2", Transport::Udp, codec).await;
    let (heard_a, heard_b, _, _) = call_and_talk(
        &mut a,
        &mut b,
        "move2",
        Duration::from_secs(5),
        Some(Duration::from_millis(1500)),
    )
    .await;
    // Five seconds of talk; the move may cost a moment, not the 3.5 s after it.
    assert_both_heard(&heard_a, &heard_b, 4.0);
    unregister_and_stop([a, b]).await;
}

#[tokio::test]
async fn pcma_call_over_tcp_carries_audio_both_ways() {
    tone_call(
        "call3",
        "call4",
        Transport::Tcp,
        CodecPref::Pcma,
        SrtpPolicy::Off,
        "PCMA",
    )
    .await;
}

#[tokio::test]
async fn opus_with_sdes_srtp_over_tls_carries_audio_both_ways() {
    let opus = CodecPref::Opus {
        useinbandfec: true,
        usedtx: false,
    };
    tone_call(
        "call5",
        "call6",
        Transport::Tls,
        opus,
        SrtpPolicy::Mandatory,
        "opus",
    )
    .await;
}

#[tokio::test]
async fn rejected_call_ends_declined_and_busy_and_cancelled_call_ends_on_both_sides() {
    let mut a = side("call7", Transport::Udp, MediaConfig::default()).await;
    let mut b = side("call8", Transport::Udp, MediaConfig::default()).await;
    let (device, _) = tone_device(440.0);
    a.handset
        .call(
            a.account,
            "call8",
            CallOptions {
                device,
                media: None,
                report_id: None,
            },
        )
        .await
        .unwrap();
    let (call_b, _) =
        wait_update(&mut b.events, |u| matches!(u, CallUpdate::Incoming { .. })).await;
    b.handset.reject(call_b, 486).await.unwrap();
    let (_, ended_b) = next_call_update(&mut b.events).await;
    assert!(
        matches!(
            ended_b,
            CallUpdate::Ended {
                reason: EndReason::Declined,
                ..
            }
        ),
        "{ended_b:?}"
    );
    let (_, ended) = wait_update(&mut a.events, |u| matches!(u, CallUpdate::Ended { .. })).await;
    assert!(
        matches!(
            ended,
            CallUpdate::Ended {
                reason: EndReason::Busy,
                ..
            }
        ),
        "{ended:?}"
    );

    // Caller gives up while the callee's phone rings: CANCEL, 487.
    let (device, _) = tone_device(440.0);
    let call_a = a
        .handset
        .call(
            a.account,
            "call8",
            CallOptions {
                device,
                media: None,
                report_id: None,
            },
        )
        .await
        .unwrap();
    wait_update(&mut b.events, |u| matches!(u, CallUpdate::Incoming { .. })).await;
    wait_update(&mut a.events, |u| matches!(u, CallUpdate::Ringing)).await;
    a.handset.hangup(call_a).await.unwrap();
    // The caller's media path is chosen after the answer: collect it on the way to the end.
    let ended_a = loop {
        match next_call_update(&mut a.events).await {
            (_, CallUpdate::MediaPath { relayed }) => a.media_paths.push(relayed),
            (_, update @ CallUpdate::Ended { .. }) => break update,
            _ => {}
        }
    };
    let (_, ended_b) = wait_update(&mut b.events, |u| matches!(u, CallUpdate::Ended { .. })).await;
    assert!(matches!(ended_a, CallUpdate::Ended { .. }), "{ended_a:?}");
    assert!(
        matches!(
            ended_b,
            CallUpdate::Ended {
                reason: EndReason::Cancelled,
                ..
            }
        ),
        "{ended_b:?}"
    );
}

#[tokio::test]
async fn dtmf_and_hold_resume_in_a_call() {
    let mut a = side(
        "call9",
        Transport::Udp,
        media(CodecPref::Pcmu, SrtpPolicy::Off),
    )
    .await;
    let mut b = side(
        "call10",
        Transport::Udp,
        media(CodecPref::Pcmu, SrtpPolicy::Off),
    )
    .await;
    let (device_a, _) = tone_device(440.0);
    let call_a = a
        .handset
        .call(
            a.account,
            "call10",
            CallOptions {
                device: device_a,
                media: None,
                report_id: None,
            },
        )
        .await
        .unwrap();
    let (call_b, _) =
        wait_update(&mut b.events, |u| matches!(u, CallUpdate::Incoming { .. })).await;
    let (device_b, heard_by_b) = tone_device(1000.0);
    b.handset
        .answer(
            call_b,
            CallOptions {
                device: device_b,
                media: None,
                report_id: None,
            },
        )
        .await
        .unwrap();
    wait_update(&mut a.events, |u| matches!(u, CallUpdate::Answered { .. })).await;
    a.handset.send_dtmf(call_a, "159#").await.unwrap();
    let mut digits = String::new();
    while digits.len() < 4 {
        if let (_, CallUpdate::Dtmf { digit }) =
            wait_update(&mut b.events, |u| matches!(u, CallUpdate::Dtmf { .. })).await
        {
            digits.push(digit);
        }
    }
    assert_eq!(digits, "159#");
    a.handset.hold(call_a, true).await.unwrap();
    wait_update(&mut a.events, |u| {
        matches!(u, CallUpdate::Hold { on_hold: true })
    })
    .await;
    wait_update(&mut b.events, |u| {
        matches!(u, CallUpdate::Hold { on_hold: true })
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = heard(&heard_by_b, 440.0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during_hold = heard(&heard_by_b, 440.0) - before;
    assert!(
        during_hold < 0.3,
        "the held side kept sending: {during_hold} s"
    );
    a.handset.hold(call_a, false).await.unwrap();
    wait_update(&mut a.events, |u| {
        matches!(u, CallUpdate::Hold { on_hold: false })
    })
    .await;
    wait_update(&mut b.events, |u| {
        matches!(u, CallUpdate::Hold { on_hold: false })
    })
    .await;
    let resumed_from = heard(&heard_by_b, 440.0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        heard(&heard_by_b, 440.0) - resumed_from > 1.0,
        "audio after resume"
    );
    a.handset.hangup(call_a).await.unwrap();
    wait_update(&mut b.events, |u| matches!(u, CallUpdate::Ended { .. })).await;
}

#[tokio::test]
async fn dtls_srtp_call_between_two_handsets_carries_audio_both_ways() {
    let dtls = MediaConfig {
        codecs: vec![CodecPref::Pcmu],
        srtp: SrtpPolicy::Mandatory,
        srtp_mode: SrtpMode::Dtls,
        ..MediaConfig::default()
    };
    let mut a = side("dtls1", Transport::Udp, dtls.clone()).await;
    let mut b = side("dtls2", Transport::Udp, dtls).await;
    let (heard_a, heard_b, answered, _) =
        call_and_talk(&mut a, &mut b, "dtls2", Duration::from_secs(3), None).await;
    assert!(
        matches!(answered, CallUpdate::Answered { srtp: true, .. }),
        "{answered:?}"
    );
    let (a_secs, b_secs) = (heard(&heard_a, 1000.0), heard(&heard_b, 440.0));
    assert!(a_secs >= 2.0, "caller heard {a_secs} s over DTLS-SRTP");
    assert!(b_secs >= 2.0, "callee heard {b_secs} s over DTLS-SRTP");
    unregister_and_stop([a, b]).await;
}

/// Alice uses only a TURN relay (coturn on loopback) reached over `transport`, Bob ICE with
/// coturn as his STUN server; both speak SDES-SRTP. Alice's description names the relay and
/// nothing else, so both tones cross coturn: its log must show the allocation relaying
/// packets both ways.
async fn relayed_call(names: (&str, &str), turn_transport: TurnTransport) {
    let k = kamailio();
    let coturn = match turn_transport {
        TurnTransport::Tls => Coturn::start_tls(
            &std::path::Path::new(handset_tests::RUN_DIR).join("server.pem"),
            &std::path::Path::new(handset_tests::RUN_DIR).join("server.key"),
        ),
        _ => Coturn::start(""),
    };
    let url = match turn_transport {
        TurnTransport::Udp => format!("turn:{}", coturn.address()),
        TurnTransport::Tcp => format!("turn:{};transport=tcp", coturn.address()),
        TurnTransport::Tls => format!(
            "turn:127.0.0.1:{};transport=tls",
            coturn.tls_port.expect("TLS port")
        ),
    };
    let relay_only = IceConfig {
        turn: vec![TurnUrl::parse(&url, coturn::USERNAME, coturn::PASSWORD).unwrap()],
        policy: IcePolicy::Relay,
        ..IceConfig::default()
    };
    let stun = IceConfig {
        stun: vec![coturn.address().to_string().parse::<StunUrl>().unwrap()],
        ..IceConfig::default()
    };
    let srtp = media(CodecPref::Pcmu, SrtpPolicy::Mandatory);
    let mut a = side_with_ice(names.0, Transport::Udp, srtp.clone(), relay_only).await;
    let mut b = side_with_ice(names.1, Transport::Udp, srtp, stun).await;
    let (heard_a, heard_b, _, _) =
        call_and_talk(&mut a, &mut b, names.1, Duration::from_secs(3), None).await;
    assert_both_heard(&heard_a, &heard_b, 2.0);
    unregister_and_stop([a, b]).await;
    let _ = k;
    let (to_peer, from_peer) = coturn.relayed_packets();
    assert!(
        to_peer >= 100 && from_peer >= 100,
        "coturn relayed {to_peer} packets to the peer and {from_peer} from it:\n{}",
        coturn.log()
    );
}

#[tokio::test]
async fn ice_call_through_a_turn_relay_over_udp_carries_audio_both_ways() {
    relayed_call(("relay1", "relay2"), TurnTransport::Udp).await;
}

#[tokio::test]
async fn ice_call_through_a_turn_relay_over_tcp_carries_audio_both_ways() {
    relayed_call(("relay3", "relay4"), TurnTransport::Tcp).await;
}

#[tokio::test]
async fn ice_call_through_a_turn_relay_over_tls_carries_audio_both_ways() {
    relayed_call(("relay5", "relay6"), TurnTransport::Tls).await;
}

/// Two distinct free UDP ports on `ip` (the runtimes are then started on them).
fn free_udp_ports(ip: IpAddr) -> (u16, u16) {
    let bind = || std::net::UdpSocket::bind(SocketAddr::new(ip, 0)).expect("a free port");
    let (first, second) = (bind(), bind());
    let port = |s: &std::net::UdpSocket| s.local_addr().expect("bound").port();
    (port(&first), port(&second))
}

/// A phone on `[::1]:port` whose account's server is the other phone at `[::1]:peer`
/// (no registration; requests straight from it are accepted).
async fn ipv6_side(user: &str, port: u16, peer: u16) -> Side {
    let (handset, events) = Handset::start(RuntimeConfig {
        bind: SocketAddr::new(IpAddr::V6(std::net::Ipv6Addr::LOCALHOST), port),
        ..RuntimeConfig::default()
    })
    .await
    .unwrap();
    let mut config = AccountConfig::new(format!("sip:[::1]:{peer}"), user, "unused");
    config.register = false;
    config.accept_direct_requests = true;
    config.media = media(CodecPref::Pcmu, SrtpPolicy::Mandatory);
    let account = handset.add_account(config).await.unwrap();
    Side {
        handset,
        events,
        account,
        media_paths: Vec::new(),
    }
}

/// Two phones on IPv6 loopback call each other straight (no PBX): SIP over UDP on `[::1]`,
/// SDP with `c=IN IP6 ::1` both ways (the media has no other address to go to), SDES-SRTP,
/// both tones heard.
#[tokio::test]
async fn a_call_over_ipv6_carries_audio_both_ways() {
    let loopback = IpAddr::V6(std::net::Ipv6Addr::LOCALHOST);
    let (port_a, port_b) = free_udp_ports(loopback);
    let mut a = ipv6_side("alice6", port_a, port_b).await;
    let mut b = ipv6_side("bob6", port_b, port_a).await;
    let (heard_a, heard_b, _, _) =
        call_and_talk(&mut a, &mut b, "bob6", Duration::from_secs(3), None).await;
    assert_both_heard(&heard_a, &heard_b, 2.0);
    for side in [a, b] {
        side.handset.shutdown().await;
    }
}
