//! Interop with real SIP peers on loopback, through the real Kamailio: Handset calls baresip
//! (PCMU, PCMA, Opus, plain RTP, SDES-SRTP mandatory with a capture that shows no plain RTP),
//! baresip and linphone call Handset, and SIPp plays the 486, early media and 401-challenging
//! UAS. Audio is checked in both directions by finding the other side's tone for ≥ 2 s.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use handset::audio::wav_tone_seconds;
use handset::{
    AccountConfig, AccountId, CallOptions, CallUpdate, EndReason, Events, Handset, HandsetEvent,
    RegistrationState, RuntimeConfig, Transport,
};
use handset_media::sdp::{CodecPref, MediaConfig, SrtpPolicy};
use handset_tests::{
    Peer, heard, kamailio, pcap_udp_payloads, peer_script, tone_device, wait_for, wait_update,
};

const LIMIT: Duration = Duration::from_secs(20);

struct Phone {
    handset: Handset,
    events: Events,
    account: AccountId,
}

async fn phone(
    user: &str,
    password: &str,
    server: String,
    media: MediaConfig,
    register: bool,
) -> Phone {
    handset_tests::init_logs();
    let (handset, mut events) = Handset::start(RuntimeConfig {
        bind: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
        ..RuntimeConfig::default()
    })
    .await
    .unwrap();
    let mut config = AccountConfig::new(server, user, password);
    config.transport = Some(Transport::Udp);
    config.media = media;
    config.register = register;
    let account = handset.add_account(config).await.unwrap();
    if register {
        wait_for(&mut events, LIMIT, |e| {
            matches!(e, RegistrationState::Registered { .. })
        })
        .await;
    }
    Phone {
        handset,
        events,
        account,
    }
}

async fn registered_phone(user: &str, media: MediaConfig) -> Phone {
    phone(
        user,
        &format!("{user}-secret"),
        kamailio().uri(),
        media,
        true,
    )
    .await
}

fn media(codec: CodecPref, srtp: SrtpPolicy) -> MediaConfig {
    MediaConfig {
        codecs: vec![codec],
        srtp,
        ..MediaConfig::default()
    }
}

/// Handset (tone 440 Hz) calls a baresip peer (its own tone) that answers by itself; both
/// recordings must hold the other side's tone. Returns the `Answered` update.
async fn handset_calls_baresip(
    user: &str,
    peer: &str,
    peer_tone: u32,
    codec: CodecPref,
    srtp: SrtpPolicy,
    enc: &str,
) -> CallUpdate {
    kamailio();
    let tone = peer_tone.to_string();
    let codec_name = match codec {
        CodecPref::Pcmu => "pcmu",
        CodecPref::Pcma => "pcma",
        CodecPref::Opus { .. } => "opus",
    };
    let baresip = Peer::baresip(
        peer,
        peer,
        &[
            "--tone",
            &tone,
            "--codec",
            codec_name,
            "--enc",
            enc,
            "--auto-answer",
        ],
    );
    let mut phone = registered_phone(user, media(codec, srtp)).await;
    let (device, recorder) = tone_device(440.0);
    let call = phone
        .handset
        .call(
            phone.account,
            peer,
            CallOptions {
                device,
                media: None,
                report_id: None,
            },
        )
        .await
        .unwrap();
    let (_, answered) = wait_update(&mut phone.events, |u| {
        matches!(u, CallUpdate::Answered { .. })
    })
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    phone.handset.hangup(call).await.unwrap();
    let (_, ended) =
        wait_update(&mut phone.events, |u| matches!(u, CallUpdate::Ended { .. })).await;
    assert!(
        matches!(&ended, CallUpdate::Ended { reason, .. } if reason.is_normal()),
        "{ended:?}"
    );
    baresip.wait("closed", 10);
    let ours = heard(&recorder, f64::from(peer_tone));
    assert!(
        ours >= 2.0,
        "Handset heard {ours} s of baresip's {peer_tone} Hz"
    );
    let theirs = wav_tone_seconds(baresip.recording(), 440.0, 10.0).unwrap();
    assert!(
        theirs >= 2.0,
        "baresip heard {theirs} s of Handset's 440 Hz"
    );
    phone.handset.unregister(phone.account).await.unwrap();
    phone.handset.shutdown().await;
    answered
}

#[tokio::test]
async fn handset_calls_baresip_with_pcmu() {
    let answered = handset_calls_baresip(
        "ic1",
        "peer1",
        600,
        CodecPref::Pcmu,
        SrtpPolicy::Off,
        "none",
    )
    .await;
    assert_eq!(
        answered,
        CallUpdate::Answered {
            codec: "PCMU".into(),
            srtp: false
        }
    );
}

#[tokio::test]
async fn handset_calls_baresip_with_pcma() {
    let answered = handset_calls_baresip(
        "ic2",
        "peer2",
        700,
        CodecPref::Pcma,
        SrtpPolicy::Off,
        "none",
    )
    .await;
    assert_eq!(
        answered,
        CallUpdate::Answered {
            codec: "PCMA".into(),
            srtp: false
        }
    );
}

#[tokio::test]
async fn handset_calls_baresip_with_opus() {
    let opus = CodecPref::Opus {
        useinbandfec: true,
        usedtx: false,
    };
    let answered = handset_calls_baresip("ic3", "peer3", 800, opus, SrtpPolicy::Off, "none").await;
    assert_eq!(
        answered,
        CallUpdate::Answered {
            codec: "opus".into(),
            srtp: false
        }
    );
}

/// tcpdump on loopback for baresip peer4's RTP ports (26410-26449).
fn capture(path: &std::path::Path) -> Child {
    let child = Command::new("tcpdump")
        .args(["-i", "lo", "-n", "-U", "-w"])
        .arg(path)
        .args(["udp portrange 26410-26449"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("tcpdump runs (tests/peers/install.sh installs it)");
    std::thread::sleep(Duration::from_millis(700));
    child
}

#[tokio::test]
async fn handset_calls_baresip_with_mandatory_sdes_srtp_and_no_plain_rtp_on_the_wire() {
    let pcap = std::env::temp_dir().join("handset-srtp-capture.pcap");
    let mut tcpdump = capture(&pcap);
    let answered = handset_calls_baresip(
        "ic4",
        "peer4",
        900,
        CodecPref::Pcmu,
        SrtpPolicy::Mandatory,
        "srtp-mand",
    )
    .await;
    assert_eq!(
        answered,
        CallUpdate::Answered {
            codec: "PCMU".into(),
            srtp: true
        }
    );
    std::thread::sleep(Duration::from_millis(500));
    let _ = Command::new("kill")
        .arg("-INT")
        .arg(tcpdump.id().to_string())
        .status();
    let _ = tcpdump.wait();
    let packets = pcap_udp_payloads(&pcap);
    // RTP (not RTCP) packets of 20 ms PCMU: 12 header + 160 payload; SRTP adds the 10-byte
    // HMAC-SHA1-80 tag. A plain packet would be 172 bytes.
    let rtp: Vec<_> = packets
        .iter()
        .filter(|(_, _, p)| p.len() >= 12 && p[0] >> 6 == 2 && !(192..=223).contains(&p[1]))
        .collect();
    assert!(
        rtp.len() > 150,
        "too few RTP packets captured: {}",
        rtp.len()
    );
    let plain = rtp.iter().filter(|(_, _, p)| p.len() == 172).count();
    let protected = rtp.iter().filter(|(_, _, p)| p.len() == 182).count();
    assert_eq!(plain, 0, "plain RTP on the wire");
    assert_eq!(protected, rtp.len(), "every RTP packet carries an SRTP tag");
}

#[tokio::test]
async fn baresip_calls_handset() {
    kamailio();
    let baresip = Peer::baresip("peer5", "peer5", &["--tone", "650", "--codec", "pcmu"]);
    let mut phone = registered_phone("ic5", MediaConfig::default()).await;
    baresip.command("/dial sip:ic5@127.0.0.1");
    let (call, incoming) = wait_update(&mut phone.events, |u| {
        matches!(u, CallUpdate::Incoming { .. })
    })
    .await;
    assert!(
        matches!(incoming, CallUpdate::Incoming { ref from, .. } if from.contains("peer5")),
        "{incoming:?}"
    );
    let (device, recorder) = tone_device(440.0);
    phone
        .handset
        .answer(
            call,
            CallOptions {
                device,
                media: None,
                report_id: None,
            },
        )
        .await
        .unwrap();
    wait_update(&mut phone.events, |u| {
        matches!(u, CallUpdate::Answered { .. })
    })
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    baresip.command("/hangup");
    let (_, ended) =
        wait_update(&mut phone.events, |u| matches!(u, CallUpdate::Ended { .. })).await;
    assert!(
        matches!(&ended, CallUpdate::Ended { reason, .. } if reason.is_normal()),
        "{ended:?}"
    );
    baresip.wait("closed", 10);
    assert!(
        heard(&recorder, 650.0) >= 2.0,
        "Handset heard {} s",
        heard(&recorder, 650.0)
    );
    let theirs = wav_tone_seconds(baresip.recording(), 440.0, 10.0).unwrap();
    assert!(theirs >= 2.0, "baresip heard {theirs} s of Handset's tone");
    phone.handset.shutdown().await;
}

#[tokio::test]
async fn linphone_calls_handset() {
    kamailio();
    let linphone = Peer::linphone("lin6", "peer6", &["--tone", "750", "--codec", "pcmu"]);
    let mut phone = registered_phone("ic6", MediaConfig::default()).await;
    linphone.command("call sip:ic6@127.0.0.1");
    let (call, _) = wait_update(&mut phone.events, |u| {
        matches!(u, CallUpdate::Incoming { .. })
    })
    .await;
    let (device, recorder) = tone_device(440.0);
    phone
        .handset
        .answer(
            call,
            CallOptions {
                device,
                media: None,
                report_id: None,
            },
        )
        .await
        .unwrap();
    wait_update(&mut phone.events, |u| {
        matches!(u, CallUpdate::Answered { .. })
    })
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    phone.handset.hangup(call).await.unwrap();
    wait_update(&mut phone.events, |u| matches!(u, CallUpdate::Ended { .. })).await;
    linphone.wait("closed", 10);
    assert!(
        heard(&recorder, 750.0) >= 2.0,
        "Handset heard {} s",
        heard(&recorder, 750.0)
    );
    let theirs = wav_tone_seconds(linphone.recording(), 440.0, 10.0).unwrap();
    assert!(theirs >= 2.0, "linphone heard {theirs} s of Handset's tone");
    phone.handset.shutdown().await;
}

/// A phone whose account talks straight to a SIPp UAS on `port` (no registration).
async fn sipp_phone(scenario: &str, port: u16, user: &str, password: &str) -> Phone {
    peer_script("sipp.sh", &[scenario, &port.to_string()]);
    phone(
        user,
        password,
        format!("sip:127.0.0.1:{port}"),
        media(CodecPref::Pcmu, SrtpPolicy::Off),
        false,
    )
    .await
}

#[tokio::test]
async fn sipp_busy_callee_gives_486() {
    let mut phone = sipp_phone("uas_486", 30900, "ic7", "x").await;
    let (device, _) = tone_device(440.0);
    phone
        .handset
        .call(
            phone.account,
            "sip:busy@127.0.0.1:30900",
            CallOptions {
                device,
                media: None,
                report_id: None,
            },
        )
        .await
        .unwrap();
    let (_, ended) =
        wait_update(&mut phone.events, |u| matches!(u, CallUpdate::Ended { .. })).await;
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
    peer_script("sipp.sh", &["wait", "30900", "30"]);
    phone.handset.shutdown().await;
}

#[tokio::test]
async fn sipp_early_media_is_heard_before_the_answer() {
    // SIPp sends 180, then 183 with SDP, waits 3 s, answers; it echoes our RTP all along.
    let mut phone = sipp_phone("uas_early_media", 30920, "ic8", "x").await;
    let (device, recorder) = tone_device(440.0);
    let call = phone
        .handset
        .call(
            phone.account,
            "sip:early@127.0.0.1:30920",
            CallOptions {
                device,
                media: None,
                report_id: None,
            },
        )
        .await
        .unwrap();
    wait_update(&mut phone.events, |u| matches!(u, CallUpdate::Ringing)).await;
    wait_update(&mut phone.events, |u| matches!(u, CallUpdate::EarlyMedia)).await;
    wait_update(&mut phone.events, |u| {
        matches!(u, CallUpdate::Answered { .. })
    })
    .await;
    let early = heard(&recorder, 440.0);
    assert!(
        early >= 2.0,
        "heard {early} s of echoed early media before the answer"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    phone.handset.hangup(call).await.unwrap();
    wait_update(&mut phone.events, |u| matches!(u, CallUpdate::Ended { .. })).await;
    peer_script("sipp.sh", &["wait", "30920", "30"]);
    phone.handset.shutdown().await;
}

#[tokio::test]
async fn sipp_uas_challenge_401_is_answered_with_digest() {
    let mut phone = sipp_phone("uas_401", 30940, "handset", "handset-secret").await;
    let (device, _) = tone_device(440.0);
    let call = phone
        .handset
        .call(
            phone.account,
            "sip:auth@127.0.0.1:30940",
            CallOptions {
                device,
                media: None,
                report_id: None,
            },
        )
        .await
        .unwrap();
    wait_update(&mut phone.events, |u| {
        matches!(u, CallUpdate::Answered { .. })
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    phone.handset.hangup(call).await.unwrap();
    wait_update(&mut phone.events, |u| matches!(u, CallUpdate::Ended { .. })).await;
    // SIPp exits 0 only when `verifyauth` accepted our digest and the call went as scripted.
    peer_script("sipp.sh", &["wait", "30940", "30"]);
    phone.handset.shutdown().await;
}

#[tokio::test]
async fn malformed_sdp_in_an_incoming_invite_is_refused_with_488() {
    use handset_sip::message::{HeaderName, Message, Method, Request, SipUri, Uri};
    kamailio();
    let mut phone = registered_phone("ic9", MediaConfig::default()).await;
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let local = socket.local_addr().unwrap();
    let target = SipUri::new(
        Some("ic9"),
        handset_sip::message::Host::V4(Ipv4Addr::LOCALHOST),
    );
    let mut invite = Request::new(Method::Invite, Uri::Sip(target));
    let h = &mut invite.headers;
    h.push(
        HeaderName::Via,
        format!("SIP/2.0/UDP {local};branch=z9hG4bKbadsdp1;rport"),
    );
    h.push(HeaderName::MaxForwards, "70");
    h.push(HeaderName::From, "<sip:fuzzer@127.0.0.1>;tag=bad1");
    h.push(HeaderName::To, "<sip:ic9@127.0.0.1>");
    h.push(HeaderName::CallId, "malformed-sdp-1@127.0.0.1");
    h.push(HeaderName::CSeq, "1 INVITE");
    h.push(HeaderName::Contact, format!("<sip:fuzzer@{local}>"));
    h.push(HeaderName::ContentType, "application/sdp");
    invite.body = b"v=0\r\no=garbage\r\nm=audio notaport RTP/AVP 0\r\n".to_vec();
    socket
        .send_to(&invite.to_bytes(), kamailio().udp)
        .await
        .unwrap();
    let mut buf = vec![0u8; 65535];
    let final_status = loop {
        let (n, _) = tokio::time::timeout(LIMIT, socket.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        if let Ok(Message::Response(r)) = Message::parse(&buf[..n])
            && r.status >= 200
        {
            break r.status;
        }
    };
    assert_eq!(final_status, 488);
    // The phone was never alerted.
    assert!(
        !matches!(
            phone.events.try_recv(),
            Ok(HandsetEvent::Call {
                update: CallUpdate::Incoming { .. },
                ..
            })
        ),
        "a call with unreadable SDP must not ring"
    );
    phone.handset.shutdown().await;
}

/// Voicemail message-waiting indication from a SIPp notifier (tests/peers/sipp/mwi_uas.xml):
/// SUBSCRIBE message-summary → 200 → NOTIFY "Voice-Message: 2/8 (0/2)" → counts in an event
/// and in the store; removing the account unsubscribes (Expires: 0) and the final NOTIFY is
/// answered, so SIPp's scripted exchange completes.
#[tokio::test]
async fn voicemail_counts_arrive_from_a_sipp_mwi_server() {
    use handset::Store;
    use handset_sip::usage::message_summary::MessageCounts;

    peer_script("sipp.sh", &["mwi_uas", "30960"]);
    let db = std::env::temp_dir().join(format!("handset-mwi-{}.sqlite", std::process::id()));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let store = std::sync::Arc::new(Store::open(&db).unwrap());
    let (handset, mut events) = Handset::start(RuntimeConfig {
        bind: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
        store: Some(store.clone()),
        ..RuntimeConfig::default()
    })
    .await
    .unwrap();
    let mut config = AccountConfig::new("sip:127.0.0.1:30960", "ic9", "x");
    config.transport = Some(Transport::Udp);
    config.register = false;
    config.voicemail = true;
    let account = handset.add_account(config).await.unwrap();
    let event = handset_tests::wait_event(&mut events, LIMIT, |e| {
        matches!(e, HandsetEvent::Voicemail { .. })
    })
    .await;
    let HandsetEvent::Voicemail {
        account: a,
        summary,
    } = event
    else {
        unreachable!()
    };
    assert_eq!(a, account);
    assert!(summary.messages_waiting);
    assert_eq!(
        summary.voice,
        Some(MessageCounts {
            new: 2,
            old: 8,
            urgent_new: 0,
            urgent_old: 2
        })
    );
    let stored = store
        .read(|c| handset_store::voicemail::mwi(c, "sip:ic9@127.0.0.1"))
        .unwrap()
        .unwrap();
    assert_eq!((stored.new, stored.old), (2, 8));

    handset.remove_account(account).await.unwrap();
    handset_tests::wait_event(&mut events, Duration::from_secs(40), |e| {
        matches!(e, HandsetEvent::AccountRemoved { .. })
    })
    .await;
    peer_script("sipp.sh", &["wait", "30960", "30"]);
    handset.shutdown().await;
}
