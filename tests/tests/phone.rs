//! What makes Handset a mobile phone, end to end through the runtime and the embedded PBX on
//! loopback, with real SQLite files: every call in the history (answered, missed, declined),
//! blocked callers refused with 603 and logged, caller names from the contacts, VoIP push
//! wake-up bound to the INVITE (or ending as missed), no keep-alive pings in the background
//! with push, and removing an account.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use handset::{
    AccountConfig, AccountId, CallOptions, CallUpdate, EndReason, Events, Handset, HandsetEvent,
    RegistrationState, RuntimeConfig, Store, Transport,
};
use handset_pbx::{Pbx, PbxConfig, PushInbox};
use handset_store::contacts::{SourceContact, apply_local_contacts};
use handset_store::history::{CallEntry, Direction, HistoryQuery};
use handset_store::{blocklist, history};
use handset_tests::{heard, tone_device, wait_event, wait_for, wait_update};
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(15);
const ALICE: &str = "2001";
const BOB: &str = "2002";
const PUSH_PARAMS: [(&str, &str); 3] = [
    ("pn-provider", "fcm"),
    ("pn-prid", "test-device-token"),
    ("pn-param", "handset-tests"),
];

/// A fresh database file under the system temp directory.
fn database(name: &str) -> Arc<Store> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let path: PathBuf = std::env::temp_dir().join(format!(
        "handset-phone-test-{}-{name}-{}.sqlite",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    Arc::new(Store::open(&path).unwrap())
}

async fn pbx(push: Option<&PushInbox>) -> Pbx {
    let mut config = PbxConfig::default()
        .with_user(ALICE, "alice-pw")
        .with_user(BOB, "bob-pw");
    if let Some(inbox) = push {
        config = config
            .with_push_endpoint(inbox.url())
            .with_push_wait(Duration::from_secs(10));
    }
    Pbx::start(config).await.unwrap()
}

struct Phone {
    handset: Handset,
    events: Events,
    account: Option<AccountId>,
    store: Arc<Store>,
}

/// Starts a runtime with its own database (the app launching).
async fn launch(store: Arc<Store>, push_wait: Duration) -> Phone {
    let (handset, events) = Handset::start(RuntimeConfig {
        bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        store: Some(store.clone()),
        default_country: "DE".into(),
        push_wait_for_invite: push_wait,
        keepalive: Duration::from_millis(300),
        ..RuntimeConfig::default()
    })
    .await
    .unwrap();
    Phone {
        handset,
        events,
        account: None,
        store,
    }
}

fn account_config(pbx_uri: &str, user: &str, password: &str, push: bool) -> AccountConfig {
    let mut config = AccountConfig::new(pbx_uri, user, password);
    config.transport = Some(Transport::Tcp);
    if push {
        config.contact_params = PUSH_PARAMS
            .iter()
            .map(|(k, v)| (k.to_string(), Some(v.to_string())))
            .collect();
    }
    config
}

/// Adds and registers `user` on `phone`.
async fn register(phone: &mut Phone, pbx: &Pbx, user: &str, password: &str, push: bool) {
    let account = phone
        .handset
        .add_account(account_config(&pbx.server_uri_tcp(), user, password, push))
        .await
        .unwrap();
    wait_for(&mut phone.events, LIMIT, |e| {
        matches!(e, RegistrationState::Registered { .. })
    })
    .await;
    phone.account = Some(account);
}

async fn registered(pbx: &Pbx, user: &str, password: &str, push: bool) -> Phone {
    let mut phone = launch(database(user), Duration::from_secs(10)).await;
    register(&mut phone, pbx, user, password, push).await;
    phone
}

/// Puts "Alice Example" with alice's extension in the address book of `store`.
fn add_alice_to_contacts(store: &Store) {
    store
        .write(|tx| {
            apply_local_contacts(
                tx,
                &[SourceContact {
                    source_id: "c1".into(),
                    display_name: "Alice Example".into(),
                    numbers: vec![("work".into(), ALICE.into())],
                    ..SourceContact::default()
                }],
            )
        })
        .unwrap();
}

fn history_of(store: &Store) -> Vec<CallEntry> {
    store
        .read(|c| history::list(c, &HistoryQuery::default()))
        .unwrap()
        .entries
}

async fn place_call(from: &Phone, to: &str, freq: f64) -> handset::CallId {
    let (device, _) = tone_device(freq);
    from.handset
        .call(
            from.account.unwrap(),
            to,
            CallOptions {
                device,
                media: None,
                report_id: None,
            },
        )
        .await
        .unwrap()
}

async fn answer(phone: &Phone, call: handset::CallId, freq: f64) -> handset::audio::Recorder {
    let (device, recorder) = tone_device(freq);
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
    recorder
}

async fn ended(events: &mut Events) -> (EndReason, bool) {
    match wait_update(events, |u| matches!(u, CallUpdate::Ended { .. })).await {
        (_, CallUpdate::Ended { reason, .. }) => (reason, reason == EndReason::AnsweredElsewhere),
        _ => unreachable!(),
    }
}

/// Bob's app registers with push and then sleeps (killed, no unregister); alice calls him and
/// the PBX pushes. Returns alice's call, the push payload and bob's database.
async fn sleep_and_get_called(
    pbx: &Pbx,
    inbox: &mut PushInbox,
    alice: &Phone,
) -> (handset::CallId, Vec<u8>, Arc<Store>) {
    let sleeping = registered(pbx, BOB, "bob-pw", true).await;
    let bob_store = sleeping.store.clone();
    sleeping.handset.shutdown().await;
    drop(sleeping);
    let call = place_call(alice, BOB, 440.0).await;
    let payload = tokio::time::timeout(LIMIT, inbox.next())
        .await
        .unwrap()
        .unwrap();
    (call, payload, bob_store)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_lands_in_the_history_with_the_callers_contact_name() {
    let pbx = pbx(None).await;
    let mut alice = registered(&pbx, ALICE, "alice-pw", false).await;
    let mut bob = registered(&pbx, BOB, "bob-pw", false).await;
    add_alice_to_contacts(&bob.store);

    // 1. Answered: talk, then alice hangs up.
    let call = place_call(&alice, BOB, 440.0).await;
    let (incoming, update) = wait_update(&mut bob.events, |u| {
        matches!(u, CallUpdate::Incoming { .. })
    })
    .await;
    let CallUpdate::Incoming { contact_name, .. } = update else {
        unreachable!()
    };
    assert_eq!(contact_name.as_deref(), Some("Alice Example"));
    let bob_heard = answer(&bob, incoming, 1000.0).await;
    wait_update(&mut alice.events, |u| {
        matches!(u, CallUpdate::Answered { .. })
    })
    .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    alice.handset.hangup(call).await.unwrap();
    assert!(ended(&mut alice.events).await.0.is_normal());
    assert_eq!(ended(&mut bob.events).await.0, EndReason::RemoteHangup);
    assert!(heard(&bob_heard, 440.0) > 1.0, "bob heard alice");

    // 2. Missed: alice gives up while bob's phone rings.
    let call = place_call(&alice, BOB, 440.0).await;
    wait_update(&mut bob.events, |u| {
        matches!(u, CallUpdate::Incoming { .. })
    })
    .await;
    wait_update(&mut alice.events, |u| matches!(u, CallUpdate::Ringing)).await;
    alice.handset.hangup(call).await.unwrap();
    assert_eq!(ended(&mut bob.events).await.0, EndReason::Cancelled);
    ended(&mut alice.events).await;

    // 3. Declined: bob refuses.
    place_call(&alice, BOB, 440.0).await;
    let (incoming, _) = wait_update(&mut bob.events, |u| {
        matches!(u, CallUpdate::Incoming { .. })
    })
    .await;
    bob.handset.reject(incoming, 603).await.unwrap();
    assert_eq!(ended(&mut bob.events).await.0, EndReason::Declined);
    assert!(matches!(
        ended(&mut alice.events).await.0,
        EndReason::Declined
    ));

    let bobs = history_of(&bob.store);
    assert_eq!(bobs.len(), 3, "{bobs:#?}");
    let (declined, missed, answered) = (&bobs[0], &bobs[1], &bobs[2]);
    assert!(bobs.iter().all(|e| e.direction == Direction::Incoming));
    assert!(bobs.iter().all(|e| e.remote_number == ALICE));
    assert!(
        answered.answered_at.is_some() && answered.duration_ms >= 2000,
        "{answered:?}"
    );
    assert!(!answered.missed);
    assert_eq!(
        answered.remote_display_name.as_deref(),
        Some("Alice Example")
    );
    assert!(
        missed.missed && !missed.seen && missed.answered_at.is_none(),
        "{missed:?}"
    );
    assert!(
        !declined.missed && declined.answered_at.is_none(),
        "{declined:?}"
    );
    assert_eq!(declined.end_reason, "declined", "{declined:?}");
    assert_eq!(bob.store.read(history::missed_count).unwrap(), 1);

    let alices = history_of(&alice.store);
    assert_eq!(alices.len(), 3, "{alices:#?}");
    assert!(
        alices
            .iter()
            .all(|e| e.direction == Direction::Outgoing && !e.missed)
    );
    assert!(alices.iter().all(|e| e.remote_number == BOB));
    assert!(alices[2].answered_at.is_some());
    assert!(alices[0].answered_at.is_none() && alices[1].answered_at.is_none());
    pbx.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_caller_is_refused_with_603_and_logged() {
    let pbx = pbx(None).await;
    let mut alice = registered(&pbx, ALICE, "alice-pw", false).await;
    let mut bob = registered(&pbx, BOB, "bob-pw", false).await;
    bob.store.write(|tx| blocklist::block(tx, ALICE)).unwrap();

    place_call(&alice, BOB, 440.0).await;
    assert!(matches!(
        ended(&mut alice.events).await.0,
        EndReason::Declined
    ));
    let event = wait_event(&mut bob.events, LIMIT, |e| {
        matches!(
            e,
            HandsetEvent::CallBlocked { .. } | HandsetEvent::Call { .. }
        )
    })
    .await;
    assert!(
        matches!(&event, HandsetEvent::CallBlocked { from, .. } if from.contains(ALICE)),
        "{event:?}"
    );
    let attempts = bob.store.read(blocklist::blocked_attempts).unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].number, ALICE);
    assert!(
        history_of(&bob.store).is_empty(),
        "a blocked call rings nobody"
    );
    pbx.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_is_reported_at_once_and_the_invite_binds_to_the_report() {
    let mut inbox = PushInbox::start().await.unwrap();
    let pbx = pbx(Some(&inbox)).await;
    let mut alice = registered(&pbx, ALICE, "alice-pw", false).await;
    let (_, payload, bob_store) = sleep_and_get_called(&pbx, &mut inbox, &alice).await;
    // The OS launches the app; its push handler reports the call before anything else.
    let mut bob = launch(bob_store, Duration::from_secs(10)).await;
    let pushed = bob.handset.handle_push(&payload).unwrap();
    assert_eq!(pushed.report.caller_number, ALICE);
    assert_eq!(pushed.report.already_ended, None);
    // A duplicate delivery gives the same report.
    assert_eq!(bob.handset.handle_push(&payload).unwrap(), pushed);
    register(&mut bob, &pbx, BOB, "bob-pw", true).await;
    let (incoming, update) = wait_update(&mut bob.events, |u| {
        matches!(u, CallUpdate::Incoming { .. })
    })
    .await;
    let CallUpdate::Incoming {
        report_id,
        pushed: announced_by_push,
        sip_call_id,
        ..
    } = update
    else {
        unreachable!()
    };
    assert!(announced_by_push);
    assert_eq!(report_id, pushed.report.report_id);
    assert_eq!(sip_call_id, pushed.report.call_id);
    let bob_heard = answer(&bob, incoming, 1000.0).await;
    wait_update(&mut alice.events, |u| {
        matches!(u, CallUpdate::Answered { .. })
    })
    .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    bob.handset.hangup(incoming).await.unwrap();
    ended(&mut bob.events).await;
    ended(&mut alice.events).await;
    assert!(heard(&bob_heard, 440.0) > 1.0);
    let entries = history_of(&bob.store);
    assert_eq!(entries.len(), 1, "{entries:#?}");
    assert!(entries[0].answered_at.is_some() && !entries[0].missed);
    pbx.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_push_before_the_invite_ends_the_report_as_missed() {
    let mut inbox = PushInbox::start().await.unwrap();
    let pbx = pbx(Some(&inbox)).await;
    let mut alice = registered(&pbx, ALICE, "alice-pw", false).await;
    let (call, incoming_push, bob_store) = sleep_and_get_called(&pbx, &mut inbox, &alice).await;
    let mut bob = launch(bob_store, Duration::from_secs(10)).await;
    let report = bob.handset.handle_push(&incoming_push).unwrap().report;
    // Alice gives up before bob's app is back on the network: the PBX pushes a cancel.
    wait_update(&mut alice.events, |u| matches!(u, CallUpdate::Ringing)).await;
    alice.handset.hangup(call).await.unwrap();
    let cancel_push = tokio::time::timeout(LIMIT, inbox.next())
        .await
        .unwrap()
        .unwrap();
    let cancel = bob.handset.handle_push(&cancel_push).unwrap().report;
    assert_eq!(cancel.report_id, report.report_id);
    let event = wait_event(&mut bob.events, LIMIT, |e| {
        matches!(e, HandsetEvent::PushReportEnded { .. })
    })
    .await;
    assert_eq!(
        event,
        HandsetEvent::PushReportEnded {
            report_id: report.report_id,
            reason: EndReason::Cancelled
        }
    );
    let entries = history_of(&bob.store);
    assert_eq!(entries.len(), 1, "{entries:#?}");
    assert!(entries[0].missed && entries[0].remote_number == ALICE);
    assert_eq!(bob.store.read(history::missed_count).unwrap(), 1);
    pbx.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_whose_invite_never_comes_times_out_as_missed_and_bad_payloads_change_nothing() {
    let mut phone = launch(database("timeout"), Duration::from_millis(800)).await;
    for bad in [
        &b""[..],
        b"not json",
        b"{\"type\":\"incoming_call\"}",
        b"{\"type\":\"incoming_call\",\"call_id\":\"x y\",\"from\":\"sip:1@h\"}",
        b"[1,2,3]",
    ] {
        assert!(phone.handset.handle_push(bad).is_err(), "{bad:?}");
    }
    let payload = json!({
        "type": "incoming_call", "call_id": "never-sent@pbx", "from": "sip:+4930123456@pbx",
        "from_name": "Carol", "unknown_field": {"ignored": true}
    })
    .to_string();
    let report = phone
        .handset
        .handle_push(payload.as_bytes())
        .unwrap()
        .report;
    assert_eq!(report.caller_number, "+4930123456");
    let event = wait_event(&mut phone.events, LIMIT, |e| {
        matches!(e, HandsetEvent::PushReportEnded { .. })
    })
    .await;
    assert_eq!(
        event,
        HandsetEvent::PushReportEnded {
            report_id: report.report_id,
            reason: EndReason::Unanswered
        }
    );
    let entries = history_of(&phone.store);
    assert_eq!(
        entries.len(),
        1,
        "only the real push is recorded: {entries:#?}"
    );
    assert!(entries[0].missed);
    assert_eq!(entries[0].remote_display_name.as_deref(), Some("Carol"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_declined_on_the_ringing_screen_refuses_the_invite_with_603() {
    let mut inbox = PushInbox::start().await.unwrap();
    let pbx = pbx(Some(&inbox)).await;
    let mut alice = registered(&pbx, ALICE, "alice-pw", false).await;
    let (_, payload, bob_store) = sleep_and_get_called(&pbx, &mut inbox, &alice).await;
    let mut bob = launch(bob_store, Duration::from_secs(10)).await;
    let report = bob.handset.handle_push(&payload).unwrap().report;
    assert!(bob.handset.decline_push_report(report.report_id));
    let event = wait_event(&mut bob.events, LIMIT, |e| {
        matches!(e, HandsetEvent::PushReportEnded { .. })
    })
    .await;
    assert_eq!(
        event,
        HandsetEvent::PushReportEnded {
            report_id: report.report_id,
            reason: EndReason::Declined
        }
    );
    register(&mut bob, &pbx, BOB, "bob-pw", true).await;
    assert!(matches!(
        ended(&mut alice.events).await.0,
        EndReason::Declined
    ));
    let entries = history_of(&bob.store);
    assert_eq!(entries.len(), 1, "{entries:#?}");
    assert!(!entries[0].missed, "declined by the user is not missed");
    pbx.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_an_account_unregisters_it_and_forgets_it() {
    let pbx = pbx(None).await;
    let mut alice = registered(&pbx, ALICE, "alice-pw", false).await;
    let account = alice.account.unwrap();
    assert_eq!(pbx.bindings(ALICE).await.len(), 1);
    alice.handset.remove_account(account).await.unwrap();
    wait_event(
        &mut alice.events,
        LIMIT,
        |e| matches!(e, HandsetEvent::AccountRemoved { account: a } if *a == account),
    )
    .await;
    assert!(pbx.bindings(ALICE).await.is_empty());
    assert_eq!(
        alice.handset.register(account).await,
        Err(handset::HandsetError::Phone(
            handset::PhoneError::UnknownAccount(account)
        ))
    );
    pbx.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_muted_microphone_sends_silence_until_unmuted() {
    let pbx = pbx(None).await;
    let mut alice = registered(&pbx, ALICE, "alice-pw", false).await;
    let mut bob = registered(&pbx, BOB, "bob-pw", false).await;
    let call = place_call(&alice, BOB, 440.0).await;
    // Muted before media starts: the call starts muted.
    alice.handset.mute(call, true).await.unwrap();
    let (incoming, _) = wait_update(&mut bob.events, |u| {
        matches!(u, CallUpdate::Incoming { .. })
    })
    .await;
    let bob_heard = answer(&bob, incoming, 1000.0).await;
    wait_update(&mut alice.events, |u| {
        matches!(u, CallUpdate::Answered { .. })
    })
    .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let while_muted = heard(&bob_heard, 440.0);
    assert!(
        while_muted < 0.3,
        "bob heard {while_muted} s of a muted microphone"
    );
    alice.handset.mute(call, false).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let after = heard(&bob_heard, 440.0);
    assert!(after > 1.5, "bob heard only {after} s after unmuting");
    alice.handset.hangup(call).await.unwrap();
    ended(&mut alice.events).await;
    ended(&mut bob.events).await;
    pbx.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_push_token_registers_again_with_it() {
    let inbox = PushInbox::start().await.unwrap();
    let pbx = pbx(Some(&inbox)).await;
    let mut bob = registered(&pbx, BOB, "bob-pw", true).await;
    let before = pbx.push_binding(BOB).await.expect("a push binding");
    assert_eq!(before.prid.as_deref(), Some("test-device-token"));
    bob.handset
        .set_contact_params(
            bob.account.unwrap(),
            vec![
                ("pn-provider".into(), Some("fcm".into())),
                ("pn-prid".into(), Some("rotated-token".into())),
                ("pn-param".into(), Some("handset-tests".into())),
            ],
        )
        .await
        .unwrap();
    wait_for(&mut bob.events, LIMIT, |e| {
        matches!(e, RegistrationState::Registered { .. })
    })
    .await;
    let after = pbx.push_binding(BOB).await.expect("a push binding");
    assert_eq!(after.prid.as_deref(), Some("rotated-token"));
    pbx.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instant_messages_are_delivered_named_refused_and_blocked() {
    let pbx = pbx(None).await;
    let alice = registered(&pbx, ALICE, "alice-pw", false).await;
    let mut bob = registered(&pbx, BOB, "bob-pw", false).await;
    add_alice_to_contacts(&bob.store);
    let account = alice.account.unwrap();

    // Through the PBX, which challenges the MESSAGE with 407 first.
    alice
        .handset
        .send_message(account, BOB, "Grüße aus dem Büro")
        .await
        .unwrap();
    let event = wait_event(&mut bob.events, LIMIT, |e| {
        matches!(e, HandsetEvent::MessageReceived { .. })
    })
    .await;
    let HandsetEvent::MessageReceived {
        from,
        contact_name,
        text,
        ..
    } = event
    else {
        unreachable!()
    };
    assert!(from.contains(ALICE), "{from}");
    assert_eq!(contact_name.as_deref(), Some("Alice Example"));
    assert_eq!(text, "Grüße aus dem Büro");

    // Nobody there: the PBX answers 404.
    let refused = alice.handset.send_message(account, "2999", "hello?").await;
    assert!(
        matches!(&refused, Err(handset::HandsetError::MessageFailed(m)) if m.contains("404")),
        "{refused:?}"
    );
    // Empty and oversized texts never leave.
    assert!(matches!(
        alice.handset.send_message(account, BOB, "").await,
        Err(handset::HandsetError::Phone(
            handset::PhoneError::InvalidMessage(_)
        ))
    ));
    assert!(matches!(
        alice
            .handset
            .send_message(account, BOB, &"x".repeat(1301))
            .await,
        Err(handset::HandsetError::Phone(
            handset::PhoneError::InvalidMessage(_)
        ))
    ));

    // A blocked sender is refused with 603 and nothing reaches the app.
    bob.store.write(|tx| blocklist::block(tx, ALICE)).unwrap();
    let blocked = alice.handset.send_message(account, BOB, "let me in").await;
    assert!(
        matches!(&blocked, Err(handset::HandsetError::MessageFailed(m)) if m.contains("603")),
        "{blocked:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    while let Ok(event) = bob.events.try_recv() {
        assert!(
            !matches!(event, HandsetEvent::MessageReceived { .. }),
            "{event:?}"
        );
    }
    pbx.shutdown().await;
}
