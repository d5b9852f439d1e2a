//! The bindings driven from Rust the way Kotlin/Swift drive them: platform services and
//! listeners implemented by the "foreign" side, async methods polled by another executor.

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;

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
        dns_servers: vec![],
        database_path: None,
        default_country: None,
        push_wait_secs: 20,
    }
}

fn phone() -> (Arc<HandsetPhone>, Arc<Platform>) {
    let platform = Arc::new(Platform::default());
    let phone = HandsetPhone::new(
        config("127.0.0.1:0"),
        platform.clone(),
        platform.clone(),
        platform.clone(),
        platform.clone(),
        None,
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
        expires_secs: 3600,
        register: false,
        retry_base_secs: 30,
        retry_max_secs: 1800,
        media: None,
        push: false,
        voicemail: false,
    }
}

struct Reg(Sender<RegistrationState>);
impl RegistrationListener for Reg {
    fn on_registration(&self, account_id: String, state: RegistrationState) {
        assert_eq!(account_id, "work");
        let _ = self.0.send(state);
    }
}

struct Calls(Sender<(u64, CallState, Option<CallUpdate>)>);
impl CallListener for Calls {
    fn on_call(&self, call: Arc<Call>, state: CallState, update: Option<CallUpdate>) {
        let _ = self.0.send((call.id(), state, update));
    }
}

fn next<T>(rx: &Receiver<T>) -> T {
    rx.recv_timeout(Duration::from_secs(10))
        .expect("a listener call within 10 s")
}

#[test]
fn accounts_need_a_stored_secret_and_report_their_state_first() {
    let (phone, platform) = phone();
    let missing = block_on(phone.add_account(account("sip:127.0.0.1:9")));
    assert!(matches!(missing, Err(HandsetError::MissingSecret(ref id)) if id == "work"));

    phone
        .store_secret(
            "work".into(),
            StoredSecret::Password {
                password: "pw".into(),
            },
        )
        .unwrap();
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
    phone
        .store_secret(
            "work".into(),
            StoredSecret::Password {
                password: "pw".into(),
            },
        )
        .unwrap();
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
    phone
        .store_secret(
            "work".into(),
            StoredSecret::Password {
                password: "pw".into(),
            },
        )
        .unwrap();
    let account = block_on(phone.add_account(account("sip:127.0.0.1:9"))).unwrap();
    let wav = AudioConfig::Wav {
        play: Some("/nonexistent.wav".into()),
        record: None,
    };
    let r = block_on(account.call("bob".into(), wav, None));
    assert!(matches!(r, Err(HandsetError::Audio(_))), "{:?}", r.err());
}

/// A one-call SIP UAS on loopback: answers the first INVITE with 180 then `status`.
fn refusing_uas(status: &'static str) -> (u16, std::thread::JoinHandle<()>) {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let port = socket.local_addr().unwrap().port();
    let uas = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            let (n, from) = socket.recv_from(&mut buf).expect("an INVITE");
            let text = String::from_utf8_lossy(&buf[..n]).to_string();
            if !text.starts_with("INVITE ") {
                continue;
            }
            let header = |name: &str| -> Vec<String> {
                text.lines()
                    .filter(|l| {
                        l.len() > name.len()
                            && l[..name.len()].eq_ignore_ascii_case(name)
                            && l[name.len()..].starts_with(':')
                    })
                    .map(str::to_string)
                    .collect()
            };
            let respond = |status_line: &str| {
                let mut r = format!("SIP/2.0 {status_line}\r\n");
                for h in header("Via") {
                    r += &format!("{h}\r\n");
                }
                for name in ["From", "Call-ID", "CSeq"] {
                    r += &format!("{}\r\n", header(name)[0]);
                }
                r += &format!("{};tag=uas1\r\nContent-Length: 0\r\n\r\n", header("To")[0]);
                socket.send_to(r.as_bytes(), from).unwrap();
            };
            respond("180 Ringing");
            std::thread::sleep(Duration::from_millis(200));
            respond(status);
            return;
        }
    });
    (port, uas)
}

/// A refused call reaches every subscriber (phone-wide and per call, current state first),
/// drives the call screen, and starts/stops the platform audio once.
#[test]
fn a_refused_call_is_reported_to_subscribers_and_the_call_screen() {
    let (phone, platform) = phone();
    phone
        .store_secret(
            "work".into(),
            StoredSecret::Password {
                password: "pw".into(),
            },
        )
        .unwrap();
    let (port, uas) = refusing_uas("486 Busy Here");
    let server = format!("sip:127.0.0.1:{port}");
    let account = block_on(phone.add_account(account(&server))).unwrap();
    let (tx, rx) = channel();
    let _calls = phone.subscribe_calls(Box::new(Calls(tx)));
    let (screen_tx, screen_rx) = channel();
    struct Screen(Sender<CallScreenDecision>);
    impl CallScreenListener for Screen {
        fn on_call_screen(&self, decision: CallScreenDecision) {
            let _ = self.0.send(decision);
        }
    }
    let _screen = phone.subscribe_call_screen(Box::new(Screen(screen_tx)));
    // Idle: only rotation is allowed.
    let idle = next(&screen_rx);
    assert!(idle.rotation_allowed && !idle.show_in_call_ui);

    let target = format!("sip:bob@127.0.0.1:{port}");
    let call = block_on(account.call(target.clone(), AudioConfig::Foreign, None)).unwrap();
    assert_eq!(
        (call.remote(), call.account_id()),
        (target, "work".to_string())
    );
    assert_eq!(call.direction(), CallDirection::Outgoing);
    let (call_tx, call_rx) = channel();
    let _one = call.subscribe(Box::new(Calls(call_tx))).unwrap();
    let (_, first, update) = next(&call_rx);
    assert!(update.is_none(), "the current state comes first");
    assert!(
        matches!(first, CallState::Calling | CallState::Ringing),
        "{first:?}"
    );

    let mut updates = Vec::new();
    loop {
        let (id, state, update) = next(&rx);
        assert_eq!(id, call.id());
        updates.push(update.clone().unwrap());
        if let CallState::Ended { reason, quality } = state {
            assert_eq!(
                reason,
                EndReason::Rejected {
                    status: 486,
                    reason: "Busy Here".into()
                }
            );
            assert!(quality.is_none());
            break;
        }
    }
    assert_eq!(updates.first(), Some(&CallUpdate::Ringing), "{updates:?}");
    assert!(matches!(
        updates.last(),
        Some(CallUpdate::Ended {
            status: Some(486),
            ..
        })
    ));
    uas.join().unwrap();
    assert!(matches!(call.state(), CallState::Ended { .. }));
    assert!(phone.calls().is_empty());

    // The in-call screen while it rang, then the call-ended screen, then idle again.
    let mut decisions = Vec::new();
    while let Ok(d) = screen_rx.recv_timeout(Duration::from_millis(2500)) {
        decisions.push(d);
    }
    assert!(decisions.iter().any(|d| d.show_in_call_ui), "{decisions:?}");
    assert_eq!(decisions.last(), Some(&idle), "{decisions:?}");
    assert_eq!(
        *platform.audio.lock().unwrap(),
        vec![
            format!("start {}", call.id()),
            format!("stop {}", call.id())
        ]
    );
}

/// A call whose INVITE cannot be delivered (TCP to a closed port) fails at once.
#[test]
fn a_call_to_a_closed_port_is_a_network_error() {
    let (phone, _) = phone();
    phone
        .store_secret(
            "work".into(),
            StoredSecret::Password {
                password: "pw".into(),
            },
        )
        .unwrap();
    let account = block_on(phone.add_account(account("sip:127.0.0.1:1;transport=tcp"))).unwrap();
    let r = block_on(account.call("bob".into(), AudioConfig::Silence, None));
    assert!(matches!(r, Err(HandsetError::Network(_))), "{:?}", r.err());
    assert!(phone.calls().is_empty());
}

/// `push: true` puts the platform's push token in the REGISTER Contact (RFC 8599).
#[test]
fn push_accounts_register_with_the_platform_token() {
    let (phone, _) = phone();
    phone
        .store_secret(
            "work".into(),
            StoredSecret::Password {
                password: "pw".into(),
            },
        )
        .unwrap();
    let registrar = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    registrar
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let server = format!("sip:{}", registrar.local_addr().unwrap());
    let config = AccountConfig {
        register: true,
        push: true,
        ..account(&server)
    };
    let _account = block_on(phone.add_account(config)).unwrap();
    let mut buf = [0u8; 4096];
    let (n, _) = registrar.recv_from(&mut buf).expect("a REGISTER");
    let register = String::from_utf8_lossy(&buf[..n]).to_string();
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

struct Events(Sender<PhoneEvent>);
impl PhoneEventListener for Events {
    fn on_event(&self, event: PhoneEvent) {
        let _ = self.0.send(event);
    }
}

/// The phone with a database and audio routes: the route rules pick the call's route and the
/// platform is told; calls and push reports land in the history read through `store()`; push
/// reports, declines and malformed payloads behave as documented.
#[test]
fn routes_history_and_push_reports_through_the_phone() {
    let platform = Arc::new(Platform::default());
    let routes = Arc::new(Routes::default());
    let db = std::env::temp_dir().join(format!("handset-ffi-phone-{}.sqlite", std::process::id()));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let phone = HandsetPhone::new(
        PhoneConfig {
            database_path: Some(db.display().to_string()),
            push_wait_secs: 30,
            ..config("127.0.0.1:0")
        },
        platform.clone(),
        platform.clone(),
        platform.clone(),
        platform.clone(),
        Some(routes.clone()),
    )
    .unwrap();
    let store = phone.store().expect("a database was configured");
    let (events_tx, events) = channel();
    let _events = phone.subscribe_events(Box::new(Events(events_tx)));

    // Routes: read from the platform; an unavailable choice is refused.
    struct RouteStates(Sender<AudioRouteState>);
    impl AudioRouteListener for RouteStates {
        fn on_audio_routes(&self, state: AudioRouteState) {
            let _ = self.0.send(state);
        }
    }
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

    // A call: the earpiece is selected when it starts; the refusal lands in the history.
    phone
        .store_secret(
            "work".into(),
            StoredSecret::Password {
                password: "pw".into(),
            },
        )
        .unwrap();
    let (port, uas) = refusing_uas("486 Busy Here");
    let account = block_on(phone.add_account(account(&format!("sip:127.0.0.1:{port}")))).unwrap();
    let (tx, rx) = channel();
    let call = block_on(account.call(
        format!("sip:2002@127.0.0.1:{port}"),
        AudioConfig::Foreign,
        None,
    ))
    .unwrap();
    let _call = call.subscribe(Box::new(Calls(tx))).unwrap();
    while !matches!(next(&rx).1, CallState::Ended { .. }) {}
    uas.join().unwrap();
    assert_eq!(*routes.selected.lock().unwrap(), vec![AudioRoute::Earpiece]);
    assert_eq!(next(&route_states).selected, Some(AudioRoute::Earpiece));
    assert_eq!(next(&route_states).selected, None, "the call ended");
    assert_eq!(phone.selected_audio_route(), None, "the call is over");
    let page = store.history(10, None, false).unwrap();
    assert_eq!(page.entries.len(), 1, "{page:?}");
    assert_eq!(page.entries[0].direction, CallDirection::Outgoing);
    assert_eq!(page.entries[0].remote_number, "2002");
    assert!(page.entries[0].end_reason.contains("486"), "{page:?}");

    // Push: reported at once; declined by the user; recorded, not missed.
    let payload = r#"{"type":"incoming_call","call_id":"ffi-1@pbx","from":"sip:+4930123456@pbx","from_name":"Carol","aps":{"alert":"x"}}"#;
    let report = phone.handle_push(payload.into()).unwrap();
    assert_eq!(report.caller_number, "+4930123456");
    assert_eq!(report.caller_name.as_deref(), Some("Carol"));
    assert_eq!(report.report_id.len(), 36);
    assert!(
        !format!("{report:?}").contains("4930123456"),
        "Debug hides the caller"
    );
    assert_eq!(
        phone.handle_push(payload.into()).unwrap(),
        report,
        "duplicate push"
    );
    assert!(
        phone
            .decline_push_report(report.report_id.to_uppercase())
            .unwrap()
    );
    assert_eq!(
        next(&events),
        PhoneEvent::PushReportEnded {
            report_id: report.report_id.clone(),
            reason: PushEndReason::DeclinedByUser
        }
    );
    let page = store.history(10, None, false).unwrap();
    assert_eq!(page.entries.len(), 2, "{page:?}");
    assert_eq!(page.entries[0].remote_number, "+4930123456");
    assert!(!page.entries[0].missed);
    assert_eq!(store.missed_count().unwrap(), 0);

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
    assert_eq!(store.history(10, None, false).unwrap().entries.len(), 2);
}
