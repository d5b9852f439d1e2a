//! `handset demo`: the embedded loopback PBX, two Handset accounts calling each other with
//! audio, a call to the PBX's echo bot, and the VoIP push wake-up path — all on 127.0.0.1,
//! with nothing to set up.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use handset::audio::{FakeDevice, FakeSource, Recorder, tone_seconds};
use handset::media::CallQuality;
use handset::{
    AccountConfig, AccountId, CallId, CallOptions, CallUpdate, Handset, HandsetEvent,
    RegistrationState, RuntimeConfig, Transport,
};
use handset_pbx::{BotConfig, Pbx, PbxConfig, PushInbox};
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(15);
const PUSH_PARAMS: [(&str, &str); 3] = [
    ("pn-provider", "fcm"),
    ("pn-prid", "demo-device-token"),
    ("pn-param", "handset-demo"),
];

type DemoResult<T> = Result<T, String>;

fn say(step: &str, value: serde_json::Value) {
    let mut object = serde_json::Map::new();
    object.insert("demo".into(), json!(step));
    if let serde_json::Value::Object(fields) = value {
        object.extend(fields);
    }
    super::emit(serde_json::Value::Object(object));
}

struct Phone {
    name: &'static str,
    handset: Handset,
    events: handset::Events,
    account: AccountId,
}

/// Starts a Handset runtime on loopback (what the app does when it launches).
async fn launch() -> DemoResult<(Handset, handset::Events)> {
    Handset::start(RuntimeConfig {
        bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        ..RuntimeConfig::default()
    })
    .await
    .map_err(|e| e.to_string())
}

async fn phone(name: &'static str, pbx: &Pbx, tcp: bool, push: bool) -> DemoResult<Phone> {
    let launched = launch().await?;
    add_account(launched, name, pbx, tcp, push).await
}

/// Adds `name`'s account and waits until it is registered.
async fn add_account(
    (handset, mut events): (Handset, handset::Events),
    name: &'static str,
    pbx: &Pbx,
    tcp: bool,
    push: bool,
) -> DemoResult<Phone> {
    let mut config = AccountConfig::new(pbx.server_uri(), name, format!("{name}-demo"));
    config.transport = Some(if tcp { Transport::Tcp } else { Transport::Udp });
    if push {
        config.contact_params = PUSH_PARAMS
            .iter()
            .map(|(k, v)| (k.to_string(), Some(v.to_string())))
            .collect();
    }
    let account = handset
        .add_account(config)
        .await
        .map_err(|e| e.to_string())?;
    loop {
        match tokio::time::timeout(LIMIT, events.recv()).await {
            Ok(Some(HandsetEvent::Registration { state, .. })) => match state {
                RegistrationState::Registered { expires } => {
                    say(
                        "registered",
                        json!({"user": name, "expires": expires, "transport": if tcp {"tcp"} else {"udp"}, "push": push}),
                    );
                    break;
                }
                RegistrationState::Failed { reason, detail, .. } => {
                    return Err(format!("{name} did not register: {reason} {detail:?}"));
                }
                _ => {}
            },
            Ok(Some(_)) => {}
            _ => return Err(format!("{name} did not register in time")),
        }
    }
    Ok(Phone {
        name,
        handset,
        events,
        account,
    })
}

async fn wait_update(
    phone: &mut Phone,
    wanted: fn(&CallUpdate) -> bool,
) -> DemoResult<(CallId, CallUpdate)> {
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        match tokio::time::timeout_at(deadline, phone.events.recv()).await {
            Ok(Some(HandsetEvent::Call { call, update, .. })) => {
                if wanted(&update) {
                    return Ok((call, update));
                }
                if let CallUpdate::Ended { reason, .. } = &update {
                    return Err(format!("{}: call ended early: {reason}", phone.name));
                }
            }
            Ok(Some(_)) => {}
            _ => return Err(format!("{}: no call event in time", phone.name)),
        }
    }
}

fn tone(freq_hz: f64) -> (Box<FakeDevice>, Recorder) {
    let device = FakeDevice::new(FakeSource::Tone {
        freq_hz,
        amplitude: 8000,
    });
    let recorder = device.recorder();
    (Box::new(device), recorder)
}

fn quality(q: &Option<CallQuality>) -> serde_json::Value {
    match q {
        Some(q) => json!({
            "codec": q.codec, "srtp": q.srtp, "mos": (q.mos * 100.0).round() / 100.0,
            "packetsReceived": q.stats.packets_received, "packetsLost": q.stats.packets_lost,
            "jitter": q.stats.jitter, "concealedSamples": q.stats.concealed_samples,
        }),
        None => serde_json::Value::Null,
    }
}

fn heard(recorder: &Recorder, freq: f64) -> f64 {
    tone_seconds(&recorder.samples(), 48_000, freq, 10.0).unwrap_or(0.0)
}

async fn hang_up(caller: &mut Phone, call: CallId, callee: Option<&mut Phone>) -> DemoResult<()> {
    caller
        .handset
        .hangup(call)
        .await
        .map_err(|e| e.to_string())?;
    let (_, ended) = wait_update(caller, |u| matches!(u, CallUpdate::Ended { .. })).await?;
    if let CallUpdate::Ended { quality: q, .. } = &ended {
        say(
            "call_quality",
            json!({"side": caller.name, "quality": quality(q)}),
        );
    }
    if let Some(callee) = callee {
        let (_, ended) = wait_update(callee, |u| matches!(u, CallUpdate::Ended { .. })).await?;
        if let CallUpdate::Ended { quality: q, .. } = &ended {
            say(
                "call_quality",
                json!({"side": callee.name, "quality": quality(q)}),
            );
        }
    }
    Ok(())
}

/// A call from `caller` to `callee` that `callee` answers; each plays its own tone.
async fn talk(caller: &mut Phone, callee: &mut Phone, seconds: u64) -> DemoResult<()> {
    let (device, heard_by_caller) = tone(440.0);
    let call = caller
        .handset
        .call(
            caller.account,
            callee.name,
            CallOptions {
                device,
                media: None,
                report_id: None,
            },
        )
        .await
        .map_err(|e| e.to_string())?;
    let (incoming, _) = wait_update(callee, |u| matches!(u, CallUpdate::Incoming { .. })).await?;
    say(
        "incoming_call",
        json!({"at": callee.name, "from": caller.name}),
    );
    let (device, heard_by_callee) = tone(1000.0);
    callee
        .handset
        .answer(
            incoming,
            CallOptions {
                device,
                media: None,
                report_id: None,
            },
        )
        .await
        .map_err(|e| e.to_string())?;
    let (_, answered) = wait_update(caller, |u| matches!(u, CallUpdate::Answered { .. })).await?;
    if let CallUpdate::Answered { codec, srtp } = answered {
        say("answered", json!({"codec": codec, "srtp": srtp}));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    hang_up(caller, call, Some(callee)).await?;
    say(
        "audio_check",
        json!({
            "caller_heard_1000Hz_s": heard(&heard_by_caller, 1000.0),
            "callee_heard_440Hz_s": heard(&heard_by_callee, 440.0),
        }),
    );
    Ok(())
}

/// Runs the whole demo.
pub async fn run() -> DemoResult<()> {
    let mut pushes = PushInbox::start().await.map_err(|e| e.to_string())?;
    let pbx = Pbx::start(
        PbxConfig::default()
            .with_user("alice", "alice-demo")
            .with_user("bob", "bob-demo")
            .with_bot(BotConfig::default())
            .with_push_endpoint(pushes.url())
            .with_push_wait(Duration::from_secs(10)),
    )
    .await
    .map_err(|e| e.to_string())?;
    say(
        "pbx_started",
        json!({"address": pbx.addr().to_string(), "realm": pbx.realm()}),
    );

    let mut alice = phone("alice", &pbx, false, false).await?;
    let mut bob = phone("bob", &pbx, true, false).await?;

    say(
        "step",
        json!({"what": "alice calls bob (alice sends 440 Hz, bob 1000 Hz)"}),
    );
    talk(&mut alice, &mut bob, 3).await?;

    say(
        "step",
        json!({"what": "alice calls the echo bot (tone, then her own audio back)"}),
    );
    let (device, heard_by_alice) = tone(700.0);
    let call = alice
        .handset
        .call(
            alice.account,
            "echo",
            CallOptions {
                device,
                media: None,
                report_id: None,
            },
        )
        .await
        .map_err(|e| e.to_string())?;
    wait_update(&mut alice, |u| matches!(u, CallUpdate::Answered { .. })).await?;
    tokio::time::sleep(Duration::from_secs(4)).await;
    hang_up(&mut alice, call, None).await?;
    say(
        "audio_check",
        json!({
            "bot_tone_440Hz_s": heard(&heard_by_alice, 440.0),
            "own_echo_700Hz_s": heard(&heard_by_alice, 700.0),
        }),
    );

    say(
        "step",
        json!({"what": "bob enables push and his app goes to sleep (no unregister); alice calls bob; the PBX wakes bob by push"}),
    );
    bob.handset.shutdown().await;
    drop(bob);
    let sleeping = phone("bob", &pbx, true, true).await?;
    sleeping.handset.shutdown().await;
    drop(sleeping);
    let (device, heard_by_alice) = tone(440.0);
    let call = alice
        .handset
        .call(
            alice.account,
            "bob",
            CallOptions {
                device,
                media: None,
                report_id: None,
            },
        )
        .await
        .map_err(|e| e.to_string())?;
    let payload = tokio::time::timeout(LIMIT, pushes.next())
        .await
        .map_err(|_| "no push arrived".to_string())?
        .ok_or("push endpoint stopped")?;
    // The OS launches bob's app for the push; its push handler reports the call at once.
    let launched = launch().await?;
    let received = Instant::now();
    let report = launched
        .0
        .handle_push(&payload)
        .map_err(|e| e.to_string())?
        .report;
    say(
        "push_received",
        json!({
            "call_id": report.call_id, "caller": report.caller_number,
            "report_id": report.report_id.to_string(),
            "handled_in_us": received.elapsed().as_micros(),
        }),
    );
    let mut bob = add_account(launched, "bob", &pbx, true, true).await?;
    let (incoming, update) =
        wait_update(&mut bob, |u| matches!(u, CallUpdate::Incoming { .. })).await?;
    let bound = matches!(update, CallUpdate::Incoming { report_id, pushed: true, .. } if report_id == report.report_id);
    if !bound {
        return Err("the INVITE did not arrive for the reported push call".into());
    }
    say(
        "incoming_call",
        json!({"at": "bob", "from": "alice", "woken_by_push": true, "report_id": report.report_id.to_string()}),
    );
    let (device, _) = tone(1000.0);
    bob.handset
        .answer(
            incoming,
            CallOptions {
                device,
                media: None,
                report_id: None,
            },
        )
        .await
        .map_err(|e| e.to_string())?;
    wait_update(&mut alice, |u| matches!(u, CallUpdate::Answered { .. })).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    hang_up(&mut alice, call, Some(&mut bob)).await?;
    say(
        "audio_check",
        json!({"alice_heard_1000Hz_s": heard(&heard_by_alice, 1000.0)}),
    );

    for phone in [alice, bob] {
        let _ = phone.handset.unregister(phone.account).await;
        phone.handset.shutdown().await;
    }
    pbx.shutdown().await;
    say("done", json!({}));
    Ok(())
}
