//! The bindings driven from Rust the way Kotlin/Swift drive them: platform services and
//! listeners implemented by the "foreign" side, async methods polled by another executor, calls
//! between phones on the embedded loopback PBX (`handset_pbx`). Every packet stays on
//! 127.0.0.1.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use handset_pbx::{Pbx, PbxConfig, PushInbox};

use super::*;
use crate::phone::dns_servers;

#[derive(Default)]
struct Platform {
    secrets: Mutex<HashMap<String, StoredSecret>>,
    audio: Mutex<Vec<String>>,
}

impl AudioDeviceFactory for Platform {
    fn start_audio(&self, call_id: u64, _audio: Arc<ForeignAudio>) -> Result<(), PlatformError> {
        self.audio.lock().unwrap().push(format!("start {call_id}"));
        Ok(())
    }
    fn stop_audio(&self, call_id: u64) -> Result<(), PlatformError> {
        self.audio.lock().unwrap().push(format!("stop {call_id}"));
        Ok(())
    }
}

impl SecretStore for Platform {
    fn get_secret(&self, account_id: String) -> Result<Option<StoredSecret>, PlatformError> {
        Ok(self.secrets.lock().unwrap().get(&account_id).cloned())
    }
    fn set_secret(&self, account_id: String, secret: StoredSecret) -> Result<(), PlatformError> {
        self.secrets.lock().unwrap().insert(account_id, secret);
        Ok(())
    }
    fn delete_secret(&self, account_id: String) -> Result<(), PlatformError> {
        self.secrets.lock().unwrap().remove(&account_id);
        Ok(())
    }
}

impl ContactsSource for Platform {
    fn contacts(&self) -> Result<Vec<Contact>, PlatformError> {
        Err(PlatformError::Failed {
            reason: "the user denied the contacts permission".into(),
        })
    }
}

impl PushTokenProvider for Platform {
    fn push_token(&self) -> Result<Option<PushToken>, PlatformError> {
        Ok(Some(PushToken {
            service: PushService::Fcm,
            token: "t0k".into(),
            param: "project-1".into(),
        }))
    }
}

fn config(bind: &str) -> PhoneConfig {
    PhoneConfig {
        bind_address: bind.into(),
        keepalive_secs: 100,
        udp_keepalive_secs: 25,
        dns_servers: vec![],
        database_path: None,
        default_country: None,
        push_wait_secs: 20,
    }
}

fn phone() -> (Arc<HandsetPhone>, Arc<Platform>) {
    phone_with(config("127.0.0.1:0"), None)
}

fn phone_with(
    config: PhoneConfig,
    routes: Option<Arc<dyn AudioRoutePlatform>>,
) -> (Arc<HandsetPhone>, Arc<Platform>) {
    let platform = Arc::new(Platform::default());
    let phone = HandsetPhone::new(
        config,
        platform.clone(),
        platform.clone(),
        platform.clone(),
        platform.clone(),
        routes,
    )
    .unwrap();
    (phone, platform)
}

/// The foreign side's executor: polls the exported futures from outside the phone's runtime.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
        .block_on(f)
}

fn account(server: &str) -> AccountConfig {
    AccountConfig {
        account_id: "work".into(),
        server: server.into(),
        user: "alice".into(),
        domain: None,
        auth_user: None,
        display_name: None,
        transport: None,
        ca_file: None,
        pinned_sha256: None,
        expires_secs: 3600,
        register: false,
        retry_base_secs: 30,
        retry_max_secs: 1800,
        media: None,
        push: false,
        voicemail: false,
        ice: None,
    }
}

fn store_password(phone: &HandsetPhone, account_id: &str, password: &str) {
    phone
        .store_secret(
            account_id.into(),
            StoredSecret::Password {
                password: password.into(),
            },
        )
        .unwrap();
}

struct Reg(Sender<RegistrationState>);
impl RegistrationListener for Reg {
    fn on_registration(&self, _account_id: String, state: RegistrationState) {
        let _ = self.0.send(state);
    }
}

/// What a call listener saw: the call, its state, the update.
type Seen = (Arc<Call>, CallState, Option<CallUpdate>);

struct Calls(Sender<Seen>);
impl CallListener for Calls {
    fn on_call(&self, call: Arc<Call>, state: CallState, update: Option<CallUpdate>) {
        let _ = self.0.send((call, state, update));
    }
}

struct Screen(Sender<CallScreenDecision>);
impl CallScreenListener for Screen {
    fn on_call_screen(&self, decision: CallScreenDecision) {
        let _ = self.0.send(decision);
    }
}

struct Events(Sender<PhoneEvent>);
impl PhoneEventListener for Events {
    fn on_event(&self, event: PhoneEvent) {
        let _ = self.0.send(event);
    }
}

fn next<T>(rx: &Receiver<T>) -> T {
    rx.recv_timeout(Duration::from_secs(10))
        .expect("a listener call within 10 s")
}

/// Waits for the first value `pick` accepts, dropping the others.
fn next_matching<T: std::fmt::Debug>(rx: &Receiver<T>, what: &str, pick: impl Fn(&T) -> bool) -> T {
    loop {
        let value = rx
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("{what} within 10 s"));
        if pick(&value) {
            return value;
        }
    }
}

/// The states of one call until it ends, with the updates that led there.
fn until_ended(rx: &Receiver<Seen>) -> Vec<(CallState, Option<CallUpdate>)> {
    let mut seen = Vec::new();
    loop {
        let (_, state, update) = next(rx);
        let ended = matches!(state, CallState::Ended { .. });
        seen.push((state, update));
        if ended {
            return seen;
        }
    }
}

fn ended_reason(seen: &[(CallState, Option<CallUpdate>)]) -> EndReason {
    match seen.last() {
        Some((CallState::Ended { reason, .. }, _)) => *reason,
        other => panic!("not ended: {other:?}"),
    }
}

/// The embedded PBX on its own runtime (the test's "server machine"), with users alice and
/// bob; `push` also gives it a push inbox standing in for FCM.
struct TestPbx {
    pbx: Pbx,
    inbox: Option<PushInbox>,
    rt: tokio::runtime::Runtime,
}

impl TestPbx {
    fn start(push: bool) -> TestPbx {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let inbox = push.then(|| rt.block_on(PushInbox::start()).unwrap());
        let mut config = PbxConfig::default()
            .with_user("alice", "alice-secret")
            .with_user("bob", "bob-secret");
        if let Some(inbox) = &inbox {
            config = config.with_push_endpoint(inbox.url());
        }
        let pbx = rt.block_on(Pbx::start(config)).unwrap();
        TestPbx { pbx, inbox, rt }
    }

    /// A phone with `user` registered on the PBX (with push when `push`).
    fn registered(
        &self,
        user: &str,
        push: bool,
    ) -> (Arc<HandsetPhone>, Arc<Account>, Arc<Platform>) {
        let (phone, platform) = phone();
        store_password(&phone, user, &format!("{user}-secret"));
        let config = AccountConfig {
            account_id: user.into(),
            user: user.into(),
            register: true,
            expires_secs: 300,
            push,
            ..account(&self.pbx.server_uri())
        };
        let account = block_on(phone.add_account(config)).unwrap();
        let (tx, rx) = channel();
        let _registration = account.subscribe_registration(Box::new(Reg(tx)));
        next_matching(&rx, "registered", |s| {
            matches!(s, RegistrationState::Registered { .. })
        });
        (phone, account, platform)
    }

    /// The next push the PBX sent.
    fn next_push(&mut self) -> String {
        let inbox = self.inbox.as_mut().expect("a PBX with a push inbox");
        let payload = self
            .rt
            .block_on(async { tokio::time::timeout(Duration::from_secs(10), inbox.next()).await })
            .expect("a push within 10 s")
            .expect("the push inbox is open");
        String::from_utf8(payload).unwrap()
    }
}

/// The history once it has `count` entries: the runtime writes it off its loop, after the
/// events.
fn history_of(phone: &HandsetPhone, count: usize) -> Vec<HistoryEntry> {
    let store = phone.store().expect("a phone with a database");
    for _ in 0..100 {
        let page = store.history(10, None, false).unwrap();
        if page.entries.len() >= count {
            return page.entries;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the history did not get {count} entries in 5 s")
}

fn is_uuid(text: &str) -> bool {
    text.parse::<handset::ReportId>().is_ok()
}

#[test]
fn accounts_need_a_stored_secret_and_report_their_state_first() {
    let (phone, platform) = phone();
    let missing = block_on(phone.add_account(account("sip:127.0.0.1:9")));
    assert!(matches!(missing, Err(HandsetError::MissingSecret(ref id)) if id == "work"));

    store_password(&phone, "work", "pw");
    assert!(platform.secrets.lock().unwrap().contains_key("work"));
    let account = block_on(phone.add_account(account("sip:127.0.0.1:9"))).unwrap();
    assert_eq!(account.account_id(), "work");
    assert_eq!(phone.accounts().len(), 1);
    let again = block_on(phone.add_account(account_config_named("work")));
    assert!(matches!(again, Err(HandsetError::InvalidArgument(_))));

    // The current value first, then nothing until a change; a cancelled handle delivers nothing.
    let (tx, rx) = channel();
    let handle = account.subscribe_registration(Box::new(Reg(tx)));
    assert_eq!(next(&rx), RegistrationState::Idle);
    assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
    handle.cancel();
    assert!(handle.is_finished());
    drop(handle);

    // Platform services: a throwing one is an error, not a crash.
    assert!(matches!(phone.contacts(), Err(HandsetError::Platform(m)) if m.contains("denied")));
    assert_eq!(phone.push_token().unwrap().unwrap().token, "t0k");
    block_on(phone.shutdown()).unwrap();
    let stopped = block_on(account.register());
    assert_eq!(stopped, Err(HandsetError::Stopped));
}

/// Releasing the phone (Kotlin `close()`) stops its runtime; objects still held fail cleanly.
#[test]
fn objects_outliving_their_phone_report_stopped() {
    let (phone, _) = phone();
    store_password(&phone, "work", "pw");
    let account = block_on(phone.add_account(account("sip:127.0.0.1:9"))).unwrap();
    drop(phone);
    assert_eq!(block_on(account.register()), Err(HandsetError::Stopped));
    assert_eq!(account.registration_state(), RegistrationState::Idle);
    let handle = account.subscribe_registration(Box::new(Reg(channel().0)));
    handle.cancel();
}

fn account_config_named(id: &str) -> AccountConfig {
    AccountConfig {
        account_id: id.into(),
        ..account("sip:127.0.0.1:9")
    }
}

#[test]
fn bad_arguments_are_errors() {
    let platform = Arc::new(Platform::default());
    let bad = HandsetPhone::new(
        config("nowhere"),
        platform.clone(),
        platform.clone(),
        platform.clone(),
        platform,
        None,
    );
    assert!(matches!(bad, Err(HandsetError::InvalidArgument(_))));
    let (phone, _) = phone();
    store_password(&phone, "work", "pw");
    let account = block_on(phone.add_account(account("sip:127.0.0.1:9"))).unwrap();
    let wav = AudioConfig::Wav {
        play: Some("/nonexistent.wav".into()),
        record: None,
    };
    let r = block_on(account.call("bob".into(), wav, None, None));
    assert!(matches!(r, Err(HandsetError::Audio(_))), "{:?}", r.err());
    assert!(phone.calls().is_empty(), "no call was placed");
}

#[test]
fn pinned_certificate_fingerprint_is_checked_when_the_account_is_added() {
    let (phone, _) = phone();
    store_password(&phone, "work", "pw");
    let bad = block_on(phone.add_account(AccountConfig {
        pinned_sha256: Some("96:BC:00".into()),
        ..account("sip:127.0.0.1:9")
    }));
    match bad {
        Err(HandsetError::InvalidArgument(message)) => {
            assert!(message.contains("pinned_sha256"), "{message}");
            assert!(message.contains("64 hex digits"), "{message}");
        }
        other => panic!("expected InvalidArgument, got {:?}", other.err()),
    }
    assert!(phone.accounts().is_empty());
    let pin = "96BC009A15DFC5BE943E1AFBFC6F1434E67F1D8C6548711BA9E0D562FCFCB617";
    let account = block_on(phone.add_account(AccountConfig {
        pinned_sha256: Some(pin.into()),
        ..account("sip:127.0.0.1:9")
    }));
    assert!(account.is_ok(), "{:?}", account.err());
}

#[test]
fn ice_settings_are_checked_when_the_account_is_added() {
    let (phone, _) = phone();
    store_password(&phone, "work", "pw");
    let ice = |turn: Option<&str>, relay_only: bool| IceSettings {
        stun_servers: vec!["127.0.0.1:3478".into()],
        turn_server: turn.map(str::to_owned),
        turn_user: Some("user".into()),
        turn_password: Some("turn-secret-9f2".into()),
        relay_only,
    };
    for (settings, expected) in [
        (ice(Some("stun:127.0.0.1"), false), "bad TURN server"),
        (ice(None, true), "needs a TURN server"),
    ] {
        let refused = block_on(phone.add_account(AccountConfig {
            ice: Some(settings),
            ..account("sip:127.0.0.1:9")
        }));
        match refused {
            Err(HandsetError::InvalidArgument(message)) => {
                assert!(message.contains(expected), "{message}");
                assert!(!message.contains("turn-secret-9f2"), "{message}");
            }
            other => panic!("expected InvalidArgument, got {:?}", other.err()),
        }
    }
    assert!(phone.accounts().is_empty());
    let settings = ice(Some("turn:127.0.0.1:3478;transport=tcp"), true);
    assert!(!format!("{settings:?}").contains("turn-secret-9f2"));
    let added = block_on(phone.add_account(AccountConfig {
        ice: Some(settings),
        ..account("sip:127.0.0.1:9")
    }));
    assert!(added.is_ok(), "{:?}", added.err());
}

/// Alice calls Bob through the PBX; Bob answers, Alice hangs up. Every subscriber gets the
/// phone machine's states (current value first), each side's end reason is the core's, every
/// call has a UUID report id, the call screen follows (the "call ended" screen for 2 s is the
/// core's), and the platform audio starts and stops once.
#[test]
fn a_call_between_two_phones_mirrors_the_phone_machine() {
    let pbx = TestPbx::start(false);
    let (alice, alice_account, alice_platform) = pbx.registered("alice", false);
    let (bob, _bob_account, _) = pbx.registered("bob", false);
    // A late subscriber gets the current registration first.
    let (tx, rx) = channel();
    let _late = alice_account.subscribe_registration(Box::new(Reg(tx)));
    assert!(matches!(next(&rx), RegistrationState::Registered { .. }));

    let (bob_tx, bob_calls) = channel();
    let _bob_calls = bob.subscribe_calls(Box::new(Calls(bob_tx)));
    let (screen_tx, bob_screen) = channel();
    let _bob_screen = bob.subscribe_call_screen(Box::new(Screen(screen_tx)));
    let idle = next(&bob_screen);
    assert!(idle.rotation_allowed && !idle.show_in_call_ui, "{idle:?}");
    assert_eq!(bob.call_screen(), idle);

    let alice_call =
        block_on(alice_account.call("bob".into(), AudioConfig::Foreign, None, None)).unwrap();
    assert_eq!(alice.calls(), vec![alice_call.clone()]);
    assert_eq!(alice_call.direction(), CallDirection::Outgoing);
    assert_eq!(
        (alice_call.remote(), alice_call.account_id()),
        (
            format!("sip:bob@{}", pbx.pbx.addr().ip()),
            "alice".to_string()
        ),
        "the target, as the account's domain completes it"
    );
    assert!(
        is_uuid(&alice_call.report_id()),
        "{}",
        alice_call.report_id()
    );
    let (alice_tx, alice_seen) = channel();
    let _alice_call = alice_call.subscribe(Box::new(Calls(alice_tx))).unwrap();
    let (_, first, update) = next(&alice_seen);
    assert!(update.is_none(), "the current state comes first");
    assert!(
        matches!(first, CallState::Calling | CallState::Ringing),
        "{first:?}"
    );

    // Bob's phone: the call comes in with its CallKit / Telecom id, not announced by a push.
    let (bob_call, state, update) = next(&bob_calls);
    assert_eq!(state, CallState::Incoming);
    let Some(CallUpdate::Incoming {
        report_id, pushed, ..
    }) = update
    else {
        panic!("{update:?}");
    };
    assert!(!pushed);
    assert!(is_uuid(&report_id), "{report_id}");
    assert_eq!(bob_call.report_id(), report_id);
    assert_ne!(report_id, alice_call.report_id());
    assert_eq!(bob_call.direction(), CallDirection::Incoming);
    assert_eq!(bob_call.account_id(), "bob");
    assert!(bob_call.remote().contains("alice"), "{}", bob_call.remote());
    let ringing = next_matching(&bob_screen, "the incoming call screen", |d| {
        d.show_incoming_ui != IncomingUi::Hidden
    });
    assert_eq!(
        ringing.show_incoming_ui,
        IncomingUi::FullScreen,
        "app in front"
    );

    block_on(bob_call.answer(AudioConfig::Silence, None)).unwrap();
    next_matching(&bob_calls, "bob's call active", |(_, s, _)| {
        matches!(s, CallState::Active { .. })
    });
    next_matching(&alice_seen, "alice's call active", |(_, s, _)| {
        matches!(s, CallState::Active { .. })
    });
    next_matching(&bob_screen, "the in-call screen", |d| d.show_in_call_ui);

    // A new subscriber gets the live call's current state first.
    let (late_tx, late_calls) = channel();
    let late = bob.subscribe_calls(Box::new(Calls(late_tx)));
    let (call, state, update) = next(&late_calls);
    assert_eq!(*call, *bob_call);
    assert!(matches!(state, CallState::Active { .. }) && update.is_none());
    late.cancel();

    block_on(alice_call.hangup()).unwrap();
    let alice_end = until_ended(&alice_seen);
    assert_eq!(ended_reason(&alice_end), EndReason::LocalHangup);
    let bob_end = until_ended(&bob_calls);
    assert_eq!(ended_reason(&bob_end), EndReason::RemoteHangup);
    assert!(matches!(
        bob_end.last(),
        Some((_, Some(CallUpdate::Ended { .. })))
    ));
    assert!(matches!(bob_call.state(), CallState::Ended { .. }));
    assert!(bob.calls().is_empty() && alice.calls().is_empty());

    // The call-ended screen, then (the phone's own 2 s timer) idle again.
    let ending = next_matching(&bob_screen, "the call-ended screen", |d| {
        d.show_in_call_ui && !d.screen_off_by_proximity
    });
    assert!(!ending.keep_screen_on, "{ending:?}");
    let again = next_matching(&bob_screen, "idle again", |d| !d.show_in_call_ui);
    assert_eq!(again, idle);
    assert_eq!(bob.call_screen(), idle);
    assert!(
        bob_calls.recv_timeout(Duration::from_millis(300)).is_err(),
        "nothing follows Ended"
    );
    assert_eq!(
        *alice_platform.audio.lock().unwrap(),
        vec![
            format!("start {}", alice_call.id()),
            format!("stop {}", alice_call.id())
        ]
    );
}

/// A callee that refuses with 486 ends the caller's call as `Busy`: the core's classification
/// arrives unchanged, with no SIP status for anyone to interpret.
#[test]
fn a_busy_callee_ends_the_call_as_busy() {
    let pbx = TestPbx::start(false);
    let (_alice, alice_account, _) = pbx.registered("alice", false);
    let (bob, _bob_account, _) = pbx.registered("bob", false);
    let (bob_tx, bob_calls) = channel();
    let _bob_calls = bob.subscribe_calls(Box::new(Calls(bob_tx)));

    // The app chose the call's CallKit id first (CXStartCallAction): the core keeps it.
    let chosen = "4f1c2a3b-5d6e-4f70-8a9b-0c1d2e3f4a5b".to_string();
    let call = block_on(alice_account.call(
        "bob".into(),
        AudioConfig::Silence,
        None,
        Some(chosen.clone()),
    ))
    .unwrap();
    assert_eq!(call.report_id(), chosen);
    assert!(matches!(
        block_on(alice_account.call(
            "bob".into(),
            AudioConfig::Silence,
            None,
            Some("not a uuid".into())
        )),
        Err(HandsetError::InvalidArgument(_))
    ));
    let (tx, seen) = channel();
    let _call = call.subscribe(Box::new(Calls(tx))).unwrap();
    let (bob_call, _, _) = next_matching(&bob_calls, "the incoming call", |(_, s, _)| {
        *s == CallState::Incoming
    });
    block_on(bob_call.reject(486)).unwrap();
    let states = until_ended(&seen);
    assert_eq!(ended_reason(&states), EndReason::Busy, "{states:?}");
    assert!(matches!(
        states.last(),
        Some((
            _,
            Some(CallUpdate::Ended {
                reason: EndReason::Busy,
                quality: None
            })
        ))
    ));
    assert!(matches!(
        block_on(bob_call.reject(99)),
        Err(HandsetError::InvalidArgument(_))
    ));
}

/// Bob's phone sleeps behind a push binding: Alice's INVITE makes the PBX push, Bob's phone
/// reports the push (its report id is the CallKit / Telecom id), re-registers, and the INVITE
/// arrives as a call that names the same report id and says it was pushed: no shell has to
/// correlate the two.
#[test]
fn a_pushed_call_carries_the_push_reports_id() {
    let mut pbx = TestPbx::start(true);
    let (_alice, alice_account, _) = pbx.registered("alice", false);
    let (bob, _bob_account, _) = pbx.registered("bob", true);
    let (bob_tx, bob_calls) = channel();
    let _bob_calls = bob.subscribe_calls(Box::new(Calls(bob_tx)));

    let call =
        block_on(alice_account.call("bob".into(), AudioConfig::Silence, None, None)).unwrap();
    let payload = pbx.next_push();
    assert!(payload.contains("incoming_call"), "{payload}");
    let report = bob.handle_push(payload.clone()).unwrap();
    assert!(is_uuid(&report.report_id) && report.already_ended.is_none());
    assert_eq!(
        bob.handle_push(payload).unwrap(),
        report,
        "a duplicate push"
    );

    let (bob_call, state, update) = next(&bob_calls);
    assert_eq!(state, CallState::Incoming);
    assert!(
        matches!(&update, Some(CallUpdate::Incoming { report_id, pushed: true, sip_call_id, .. })
            if *report_id == report.report_id && *sip_call_id == report.call_id),
        "{update:?} vs {report:?}"
    );
    assert_eq!(bob_call.report_id(), report.report_id);

    block_on(call.hangup()).unwrap();
    let bob_end = until_ended(&bob_calls);
    assert_eq!(ended_reason(&bob_end), EndReason::Cancelled, "{bob_end:?}");
}

/// A push declined on the ringing screen before its INVITE ends with the same `EndReason` a
/// call would (`Declined`), lands in the history as not missed, and malformed payloads change
/// nothing.
#[test]
fn push_reports_end_with_the_phones_end_reason() {
    let db = std::env::temp_dir().join(format!("handset-ffi-push-{}.sqlite", std::process::id()));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let (phone, _) = phone_with(
        PhoneConfig {
            database_path: Some(db.display().to_string()),
            push_wait_secs: 30,
            ..config("127.0.0.1:0")
        },
        None,
    );
    let store = phone.store().expect("a database was configured");
    let (events_tx, events) = channel();
    let _events = phone.subscribe_events(Box::new(Events(events_tx)));

    let payload = r#"{"type":"incoming_call","call_id":"ffi-1@pbx","from":"sip:+4930123456@pbx","from_name":"Carol","aps":{"alert":"x"}}"#;
    let report = phone.handle_push(payload.into()).unwrap();
    assert_eq!(report.caller_number, "+4930123456");
    assert_eq!(report.caller_name.as_deref(), Some("Carol"));
    assert!(is_uuid(&report.report_id));
    assert!(
        !format!("{report:?}").contains("4930123456"),
        "Debug hides the caller"
    );
    // CallKit hands UUIDs back in upper case.
    assert!(
        phone
            .decline_push_report(report.report_id.to_uppercase())
            .unwrap()
    );
    assert!(!phone.decline_push_report(report.report_id.clone()).unwrap());
    assert_eq!(
        next(&events),
        PhoneEvent::PushReportEnded {
            report_id: report.report_id.clone(),
            reason: EndReason::Declined
        }
    );
    let history = history_of(&phone, 1);
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(history[0].remote_number, "+4930123456");
    assert!(!history[0].missed);
    assert_eq!(store.missed_count().unwrap(), 0);

    // A cancel push for a call never reported: reported and ended at once, as missed.
    let cancel = phone
        .handle_push(
            r#"{"type":"cancel","call_id":"ffi-2@pbx","reason":"caller_cancelled"}"#.into(),
        )
        .unwrap();
    assert_eq!(cancel.already_ended, Some(EndReason::Cancelled));

    for bad in ["", "{}", "[]", "{\"type\":\"incoming_call\"}", "\u{0}"] {
        assert!(
            matches!(
                phone.handle_push(bad.into()),
                Err(HandsetError::InvalidPush(_))
            ),
            "{bad:?}"
        );
    }
    assert!(matches!(
        phone.decline_push_report("not-a-uuid".into()),
        Err(HandsetError::InvalidArgument(_))
    ));
    phone.set_foreground(false).unwrap();
}

#[derive(Default)]
struct Routes {
    available: Mutex<Vec<AudioRoute>>,
    selected: Mutex<Vec<AudioRoute>>,
}

impl AudioRoutePlatform for Routes {
    fn available_routes(&self) -> Result<Vec<AudioRoute>, PlatformError> {
        Ok(self.available.lock().unwrap().clone())
    }
    fn select_route(&self, route: AudioRoute) -> Result<(), PlatformError> {
        self.selected.lock().unwrap().push(route);
        Ok(())
    }
}

struct RouteStates(Sender<AudioRouteState>);
impl AudioRouteListener for RouteStates {
    fn on_audio_routes(&self, state: AudioRouteState) {
        let _ = self.0.send(state);
    }
}

/// The routes the platform reports go to the phone; the phone's choices come back as
/// `select_route` calls on the platform and as route states (current value first); a call
/// that fails at once still starts and ends on a route, and lands in the history.
#[test]
fn audio_routes_follow_the_phones_decisions() {
    let pbx = TestPbx::start(false);
    let routes = Arc::new(Routes::default());
    let db = std::env::temp_dir().join(format!("handset-ffi-routes-{}.sqlite", std::process::id()));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let (phone, _) = phone_with(
        PhoneConfig {
            database_path: Some(db.display().to_string()),
            ..config("127.0.0.1:0")
        },
        Some(routes.clone()),
    );
    let (route_tx, route_states) = channel();
    let _routes = phone.subscribe_audio_routes(Box::new(RouteStates(route_tx)));
    assert_eq!(
        next(&route_states),
        AudioRouteState {
            available: vec![],
            selected: None
        },
        "the current state comes first"
    );
    *routes.available.lock().unwrap() = vec![AudioRoute::Speaker, AudioRoute::Earpiece];
    phone.audio_routes_changed().unwrap();
    assert_eq!(
        next(&route_states).available,
        vec![AudioRoute::Earpiece, AudioRoute::Speaker]
    );
    assert_eq!(
        phone.audio_routes(),
        vec![AudioRoute::Earpiece, AudioRoute::Speaker]
    );
    assert!(matches!(
        phone.select_audio_route(AudioRoute::Bluetooth),
        Err(HandsetError::InvalidArgument(_))
    ));
    assert!(
        routes.selected.lock().unwrap().is_empty(),
        "no call, no routing"
    );

    store_password(&phone, "alice", "alice-secret");
    let account = block_on(phone.add_account(AccountConfig {
        account_id: "alice".into(),
        ..account(&pbx.pbx.server_uri())
    }))
    .unwrap();
    let call = block_on(account.call("nobody".into(), AudioConfig::Silence, None, None)).unwrap();
    let (tx, seen) = channel();
    let _call = call.subscribe(Box::new(Calls(tx))).unwrap();
    let states = until_ended(&seen);
    assert!(
        matches!(ended_reason(&states), EndReason::Failed { .. }),
        "an unknown user: {states:?}"
    );
    let selected = next_matching(&route_states, "a route selected", |s| s.selected.is_some());
    assert_eq!(selected.selected, Some(AudioRoute::Earpiece));
    assert_eq!(next(&route_states).selected, None, "the call ended");
    assert_eq!(*routes.selected.lock().unwrap(), vec![AudioRoute::Earpiece]);
    assert_eq!(phone.selected_audio_route(), None);
    let history = history_of(&phone, 1);
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(history[0].direction, CallDirection::Outgoing);
    assert_eq!(history[0].remote_number, "nobody");
}

/// A call whose INVITE cannot be delivered (TCP to a closed port) exists at once and ends as
/// `NetworkLost`. Its platform audio never runs on: it is not started once the call is over,
/// and stopped when the call ends after it started.
#[test]
fn a_call_to_a_closed_port_ends_as_network_lost() {
    let (phone, platform) = phone();
    store_password(&phone, "work", "pw");
    let account = block_on(phone.add_account(account("sip:127.0.0.1:1;transport=tcp"))).unwrap();
    let call = block_on(account.call("bob".into(), AudioConfig::Foreign, None, None)).unwrap();
    let (tx, seen) = channel();
    let _call = call.subscribe(Box::new(Calls(tx))).unwrap();
    let states = until_ended(&seen);
    assert_eq!(ended_reason(&states), EndReason::NetworkLost, "{states:?}");
    assert!(phone.calls().is_empty());
    let audio = platform.audio.lock().unwrap().clone();
    assert!(
        audio.is_empty()
            || audio
                == [
                    format!("start {}", call.id()),
                    format!("stop {}", call.id())
                ],
        "{audio:?}"
    );
}

/// A phone whose account ("work", with `push` as given) registers to a UDP socket on
/// loopback that answers nothing; the socket waits up to 10 s for each datagram.
fn registering_to_a_silent_registrar(
    push: bool,
) -> (Arc<HandsetPhone>, Arc<Account>, std::net::UdpSocket) {
    let (phone, _) = phone();
    store_password(&phone, "work", "pw");
    let registrar = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    registrar
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let server = format!("sip:{}", registrar.local_addr().unwrap());
    let config = AccountConfig {
        register: true,
        push,
        ..account(&server)
    };
    let account = block_on(phone.add_account(config)).unwrap();
    (phone, account, registrar)
}

/// The next datagram `registrar` receives, as text; panics after its read timeout.
fn next_request(registrar: &std::net::UdpSocket) -> String {
    let mut buf = [0u8; 4096];
    let (n, _) = registrar.recv_from(&mut buf).expect("a request");
    String::from_utf8_lossy(&buf[..n]).to_string()
}

/// Push accounts put the platform's push token in the REGISTER Contact (RFC 8599).
#[test]
fn push_accounts_register_with_the_platform_token() {
    let (_phone, _account, registrar) = registering_to_a_silent_registrar(true);
    let register = next_request(&registrar);
    let contact = register
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("contact:"))
        .expect("a Contact");
    assert!(
        contact.contains("pn-provider=fcm") && contact.contains("pn-prid=t0k"),
        "{contact}"
    );
    assert!(contact.contains("pn-param=project-1"), "{contact}");
}

#[test]
fn dns_servers_from_the_shells_are_parsed_or_refused_by_name() {
    let parse =
        |entries: &[&str]| dns_servers(&entries.iter().map(|e| e.to_string()).collect::<Vec<_>>());
    let ok = parse(&[
        "192.0.2.53:53",
        " 192.0.2.54 ",
        "[2001:db8::53]:5353",
        "2001:db8::54",
        "[fe80::1%3]:53",
        "192.0.2.53:53",
    ])
    .unwrap();
    let expected: Vec<SocketAddr> = [
        "192.0.2.53:53",
        "192.0.2.54:53",
        "[2001:db8::53]:5353",
        "[2001:db8::54]:53",
        "[fe80::1%3]:53",
    ]
    .iter()
    .map(|s| s.parse().unwrap())
    .collect();
    assert_eq!(
        ok, expected,
        "duplicates dropped, bare addresses on port 53"
    );
    let SocketAddr::V6(scoped) = ok[4] else {
        panic!("{ok:?}");
    };
    assert_eq!(scoped.scope_id(), 3);
    assert!(parse(&[]).unwrap().is_empty());
    for bad in [
        "",
        "dns.example.com:53",
        "192.0.2.53:0",
        "192.0.2.53:99999",
        "[fe80::1%wlan0]:53",
        "2001:db8::53:53:53:53:53:53",
        "[2001:db8::53",
    ] {
        match parse(&["192.0.2.1", bad]) {
            Err(HandsetError::InvalidArgument(message)) => assert!(
                message.contains(&format!("{:?}", bad.trim())),
                "{bad}: {message}"
            ),
            other => panic!("{bad}: {other:?}"),
        }
    }
}

#[test]
fn dns_servers_replace_the_resolver_at_run_time() {
    // A phone started on an IP-literal registrar, then given DNS servers, a bad list
    // (refused, nothing changes) and the system's again: each call returns at once.
    let (phone, _platform) = phone();
    phone
        .set_dns_servers(vec!["127.0.0.1:5353".into(), "[::1]:5353".into()])
        .unwrap();
    assert!(matches!(
        phone.set_dns_servers(vec!["127.0.0.1:5353".into(), "nope".into()]),
        Err(HandsetError::InvalidArgument(_))
    ));
    phone.set_dns_servers(Vec::new()).unwrap();
    // Also from inside an async context of another runtime (a Kotlin coroutine's thread).
    block_on(async { phone.set_dns_servers(vec!["127.0.0.1".into()]) }).unwrap();
    block_on(phone.shutdown()).unwrap();
}

#[test]
fn a_network_change_from_the_shells_registers_the_account_again() {
    let (phone, _account, registrar) = registering_to_a_silent_registrar(false);
    let cseq_of = |registrar: &std::net::UdpSocket| -> u32 {
        next_request(registrar)
            .lines()
            .find_map(|l| l.strip_prefix("CSeq: "))
            .and_then(|cseq| cseq.strip_suffix(" REGISTER"))
            .and_then(|n| n.parse().ok())
            .expect("a REGISTER's CSeq")
    };
    let first = cseq_of(&registrar);
    phone.network_changed().unwrap();
    // Not a retransmission of the unanswered one: a new REGISTER, from the new address.
    let again = std::iter::repeat_with(|| cseq_of(&registrar))
        .take(8)
        .find(|cseq| *cseq != first);
    assert!(
        again.is_some_and(|cseq| cseq > first),
        "{first} then {again:?}"
    );
}
