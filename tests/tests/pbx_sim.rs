//! Phones and the embedded PBX machine in virtual time over a network that loses 30 % of the
//! UDP packets between the phones (16.3 % on each of the two hops through the PBX, which
//! compounds to 30 %): registration through digest challenges, calls through the proxy, VoIP push
//! wake-up bound to the INVITE (and ending as missed, declined or unanswered), removing an
//! account, a rotated push token — the behaviour of `tests/tests/phone.rs`, over many seeds,
//! each run taking milliseconds for minutes of phone life.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use handset_pbx::{MachineConfig, PushContent};
use handset_phone::phone::{
    AccountConfig, AccountId, CallDirection, CallId, CallUpdate, Command, EndReason, PhoneConfig,
    PhoneEvent, Record, RegistrationState, Reply,
};
use handset_phone::push::ReportId;
use handset_tests::sim::{FixedDirectory, Link, PeerRef, PhoneRef, Sim};

/// Per hop: 1 − √0.7, so that a packet from phone to phone through the PBX is lost 30 % of
/// the time.
const LOSS: f64 = 0.163;
const SEEDS: u64 = 12;
const LIMIT: Duration = Duration::from_secs(60);
const ALICE: &str = "2001";
const BOB: &str = "2002";

fn addr(host: u8) -> SocketAddr {
    SocketAddr::from(([127, 0, 8, host], 5060))
}

fn pbx_addr() -> SocketAddr {
    addr(100)
}

struct Office {
    sim: Sim,
    pbx: PeerRef,
    alice: PhoneRef,
    bob: PhoneRef,
    alice_account: AccountId,
}

fn account(user: &str, push_token: Option<&str>) -> Box<AccountConfig> {
    let mut config = AccountConfig::new(format!("sip:{}", pbx_addr()), user, format!("{user}-pw"));
    if let Some(token) = push_token {
        config.contact_params = vec![
            ("pn-provider".into(), Some("fcm".into())),
            ("pn-prid".into(), Some(token.into())),
            ("pn-param".into(), Some("handset-tests".into())),
        ];
    }
    Box::new(config)
}

fn registered(sim: &mut Sim, phone: PhoneRef, account: AccountId) {
    let done = sim.wait_event_since(phone, 0, LIMIT, |e| {
        matches!(e, PhoneEvent::Registration { account: a, state: RegistrationState::Registered { .. } } if *a == account)
    });
    assert!(done.is_some(), "{} registers", sim.phone(phone).name);
}

fn add_account(sim: &mut Sim, phone: PhoneRef, config: Box<AccountConfig>) -> AccountId {
    match sim.command(phone, Command::AddAccount(config)) {
        Ok(Reply::Account(id)) => id,
        other => panic!("{other:?}"),
    }
}

fn office(seed: u64, bob_push: Option<&str>) -> Office {
    handset_tests::init_logs();
    let mut sim = Sim::new(seed, Link::lossy(LOSS));
    let pbx = sim.add_pbx(
        pbx_addr(),
        MachineConfig {
            users: vec![
                (ALICE.into(), format!("{ALICE}-pw")),
                (BOB.into(), format!("{BOB}-pw")),
            ],
            push_notifications: true,
            push_wait: Duration::from_secs(30),
            ..MachineConfig::default()
        },
    );
    let alice = sim.add_phone(
        "alice",
        addr(1),
        PhoneConfig::default(),
        FixedDirectory::default(),
    );
    let bob = sim.add_phone(
        "bob",
        addr(2),
        PhoneConfig::default(),
        FixedDirectory::default(),
    );
    let alice_account = add_account(&mut sim, alice, account(ALICE, None));
    let bob_account = add_account(&mut sim, bob, account(BOB, bob_push));
    registered(&mut sim, alice, alice_account);
    registered(&mut sim, bob, bob_account);
    Office {
        sim,
        pbx,
        alice,
        bob,
        alice_account,
    }
}

impl Office {
    fn dial_bob(&mut self) -> CallId {
        match self.sim.command(
            self.alice,
            Command::Dial {
                account: self.alice_account,
                target: BOB.into(),
                media: None,
                report_id: None,
            },
        ) {
            Ok(Reply::Call(id)) => id,
            other => panic!("{other:?}"),
        }
    }

    fn update(
        &mut self,
        phone: PhoneRef,
        wanted: impl Fn(&CallUpdate) -> bool,
    ) -> (CallId, CallUpdate) {
        match self.sim.wait_event_since(
            phone,
            0,
            LIMIT,
            |e| matches!(e, PhoneEvent::Call { update, .. } if wanted(update)),
        ) {
            Some(PhoneEvent::Call { call, update, .. }) => (call, update),
            other => panic!("{}: no such update: {other:?}", self.sim.phone(phone).name),
        }
    }

    fn ended(&mut self, phone: PhoneRef, call: CallId) -> EndReason {
        let (_, update) = self.update(phone, |u| matches!(u, CallUpdate::Ended { .. }));
        let _ = call;
        match update {
            CallUpdate::Ended { reason, .. } => reason,
            _ => unreachable!(),
        }
    }

    /// The app of bob is killed after registering with push, and launched again when the push
    /// comes: returns the push payload as the OS hands it to the app.
    fn bob_sleeps_and_alice_calls(&mut self) -> (CallId, Vec<u8>) {
        self.sim
            .restart_phone(self.bob, PhoneConfig::default(), FixedDirectory::default());
        let call = self.dial_bob();
        let pbx = self.pbx;
        let pushed = self.sim.run_until(LIMIT, |sim| !sim.pushes(pbx).is_empty());
        assert!(pushed, "the PBX pushes");
        let notification = self.sim.pushes(self.pbx).remove(0);
        assert!(matches!(
            notification.content,
            PushContent::IncomingCall { .. }
        ));
        (call, notification.to_json(0).into_bytes())
    }

    fn push_to_bob(&mut self, payload: &[u8]) -> ReportId {
        match self.sim.command(self.bob, Command::Push(payload.to_vec())) {
            Ok(Reply::PushReport { report, .. }) => report.report_id,
            other => panic!("{other:?}"),
        }
    }

    fn missed_records(&self, phone: PhoneRef) -> Vec<handset_phone::phone::CallRecord> {
        self.sim
            .phone(phone)
            .records
            .iter()
            .filter_map(|r| match r {
                Record::Call(c) if c.missed() => Some(c.clone()),
                _ => None,
            })
            .collect()
    }
}

/// The push token the PBX holds for `user`, if any.
fn pbx_push_token(sim: &Sim, pbx: PeerRef, user: &str) -> Option<String> {
    sim.pbx(pbx).push_binding(user).and_then(|p| p.prid)
}

/// How many live bindings the PBX holds for `user`.
fn pbx_bindings(sim: &Sim, pbx: PeerRef, user: &str) -> usize {
    sim.pbx(pbx).bindings(user, sim.now).len()
}

#[test]
fn phones_register_through_challenges_and_call_through_the_proxy() {
    for seed in 0..SEEDS {
        let mut o = office(seed, None);
        let a = o.dial_bob();
        let (b, incoming) = o.update(o.bob, |u| matches!(u, CallUpdate::Incoming { .. }));
        assert!(matches!(
            incoming,
            CallUpdate::Incoming { pushed: false, .. }
        ));
        o.sim
            .command(
                o.bob,
                Command::Answer {
                    call: b,
                    media: None,
                },
            )
            .unwrap();
        o.update(o.alice, |u| matches!(u, CallUpdate::Answered { .. }));
        o.sim.run_for(Duration::from_secs(120));
        if o.sim.command(o.alice, Command::Hangup(a)).is_err() {
            panic!(
                "seed {seed}: the call ended by itself: {:?}",
                o.sim.phone(o.alice).event_list()
            );
        }
        assert_eq!(o.ended(o.alice, a), EndReason::LocalHangup, "seed {seed}");
        assert_eq!(o.ended(o.bob, b), EndReason::RemoteHangup, "seed {seed}");
        // The INVITE's 407 was answered with the realm the registrar taught.
        assert!(o.sim.count("407 INVITE", None) >= 1, "seed {seed}");
        let bob_records: Vec<_> = o.sim.phone(o.bob).records.iter().collect();
        assert!(matches!(
            bob_records.as_slice(),
            [Record::Call(c)] if c.direction == CallDirection::Incoming && c.answered.is_some()
        ));
    }
}

#[test]
fn a_pushed_call_is_reported_at_once_and_its_invite_binds_to_the_report() {
    for seed in 0..SEEDS {
        let mut o = office(seed, Some("token-1"));
        let (a, payload) = o.bob_sleeps_and_alice_calls();
        let report = o.push_to_bob(&payload);
        let bob_account = add_account(&mut o.sim, o.bob, account(BOB, Some("token-1")));
        let (b, incoming) = o.update(o.bob, |u| matches!(u, CallUpdate::Incoming { .. }));
        assert!(
            matches!(incoming, CallUpdate::Incoming { pushed: true, report_id, .. } if report_id == report),
            "seed {seed}: {incoming:?}"
        );
        let _ = bob_account;
        o.sim
            .command(
                o.bob,
                Command::Answer {
                    call: b,
                    media: None,
                },
            )
            .unwrap();
        o.update(o.alice, |u| matches!(u, CallUpdate::Answered { .. }));
        o.sim.command(o.alice, Command::Hangup(a)).unwrap();
        assert_eq!(o.ended(o.bob, b), EndReason::RemoteHangup, "seed {seed}");
        assert!(
            o.missed_records(o.bob).is_empty(),
            "seed {seed}: {:?}",
            o.missed_records(o.bob)
        );
    }
}

#[test]
fn a_cancel_push_before_the_invite_ends_the_report_as_missed() {
    for seed in 0..SEEDS {
        let mut o = office(seed, Some("token-1"));
        let (a, payload) = o.bob_sleeps_and_alice_calls();
        let report = o.push_to_bob(&payload);
        // The caller gives up before bob's app is back on the network.
        o.sim.command(o.alice, Command::Hangup(a)).unwrap();
        let pbx = o.pbx;
        let cancelled = o.sim.run_until(LIMIT, |sim| sim.pushes(pbx).len() >= 2);
        assert!(cancelled, "seed {seed}: a cancel push follows");
        let cancel = o.sim.pushes(pbx).remove(1);
        assert!(matches!(cancel.content, PushContent::Cancel { .. }));
        o.sim
            .command(o.bob, Command::Push(cancel.to_json(0).into_bytes()))
            .unwrap();
        let ended = o.sim.wait_event_since(o.bob, 0, LIMIT, |e| {
            matches!(e, PhoneEvent::PushReportEnded { report_id, reason: EndReason::Cancelled } if *report_id == report)
        });
        assert!(ended.is_some(), "seed {seed}");
        assert_eq!(
            o.missed_records(o.bob).len(),
            1,
            "seed {seed}: one missed call"
        );
    }
}

#[test]
fn a_push_whose_invite_never_comes_ends_unanswered_and_missed() {
    let mut o = office(3, Some("token-1"));
    let (_, payload) = o.bob_sleeps_and_alice_calls();
    let report = o.push_to_bob(&payload);
    // Bob's app never gets back on the network.
    o.sim.run_for(Duration::from_secs(60));
    let ended = o.sim.wait_event_since(o.bob, 0, LIMIT, |e| {
        matches!(e, PhoneEvent::PushReportEnded { report_id, reason: EndReason::Unanswered } if *report_id == report)
    });
    assert!(ended.is_some());
    assert_eq!(o.missed_records(o.bob).len(), 1);
}

#[test]
fn a_push_declined_on_the_ringing_screen_refuses_the_invite_with_603() {
    for seed in 0..SEEDS {
        let mut o = office(seed, Some("token-1"));
        let (a, payload) = o.bob_sleeps_and_alice_calls();
        let report = o.push_to_bob(&payload);
        assert_eq!(
            o.sim.command(o.bob, Command::DeclinePushReport(report)),
            Ok(Reply::ReportEnded(true))
        );
        add_account(&mut o.sim, o.bob, account(BOB, Some("token-1")));
        assert_eq!(o.ended(o.alice, a), EndReason::Declined, "seed {seed}");
        assert!(
            !o.sim.phone(o.bob).event_list().iter().any(|e| matches!(
                e,
                PhoneEvent::Call {
                    update: CallUpdate::Incoming { .. },
                    ..
                }
            )),
            "seed {seed}: the declined call never rings"
        );
        assert!(
            o.missed_records(o.bob).is_empty(),
            "a declined call is not missed"
        );
    }
}

#[test]
fn removing_an_account_unregisters_it_and_a_new_push_token_registers_again() {
    for seed in 0..SEEDS {
        let mut o = office(seed, Some("token-1"));
        let bob_account = handset_phone::phone::AccountId(1);
        o.sim
            .command(
                o.bob,
                Command::SetContactParams(
                    bob_account,
                    vec![
                        ("pn-provider".into(), Some("fcm".into())),
                        ("pn-prid".into(), Some("token-2".into())),
                    ],
                ),
            )
            .unwrap();
        let pbx = o.pbx;
        let rotated = o.sim.run_until(LIMIT, |sim| {
            pbx_push_token(sim, pbx, BOB).as_deref() == Some("token-2")
        });
        assert!(rotated, "seed {seed}: the PBX learns the new token");
        o.sim
            .command(o.bob, Command::RemoveAccount(bob_account))
            .unwrap();
        let removed = o.sim.wait_event_since(
            o.bob,
            0,
            LIMIT,
            |e| matches!(e, PhoneEvent::AccountRemoved { account } if *account == bob_account),
        );
        assert!(removed.is_some(), "seed {seed}");
        assert!(o.sim.phone(o.bob).phone.accounts().is_empty());
        let gone = o
            .sim
            .run_until(LIMIT, |sim| pbx_bindings(sim, pbx, BOB) == 0);
        assert!(gone, "seed {seed}: the binding is removed at the PBX");
    }
}

#[test]
fn messages_go_through_the_pbx_challenge_and_unknown_users_fail() {
    for seed in 0..SEEDS {
        let mut o = office(seed, None);
        let send = |o: &mut Office, target: &str| match o.sim.command(
            o.alice,
            Command::SendMessage {
                account: o.alice_account,
                target: target.into(),
                text: "lunch?".into(),
            },
        ) {
            Ok(Reply::Message(id)) => id,
            other => panic!("{other:?}"),
        };
        let to_bob = send(&mut o, BOB);
        let delivered = o.sim.wait_event_since(
            o.alice,
            0,
            LIMIT,
            |e| matches!(e, PhoneEvent::MessageDelivered { message } if *message == to_bob),
        );
        assert!(delivered.is_some(), "seed {seed}");
        assert!(
            o.sim.count("407 MESSAGE", None) >= 1,
            "seed {seed}: challenged by the PBX"
        );
        assert!(o.sim.phone(o.bob).event_list().iter().any(|e| matches!(
            e,
            PhoneEvent::MessageReceived { text, .. } if text == "lunch?"
        )));
        let to_nobody = send(&mut o, "9999");
        let failed = o.sim.wait_event_since(o.alice, 0, LIMIT, |e| {
            matches!(e, PhoneEvent::MessageFailed { message, reason } if *message == to_nobody && reason.contains("404"))
        });
        assert!(failed.is_some(), "seed {seed}");
    }
}
