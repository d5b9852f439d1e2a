//! Phone machines calling each other in virtual time over a simulated network that loses 30 %
//! of the UDP packets (`handset_tests::sim`): the behaviour of calls — answers, refusals,
//! cancels and their races, glare, hold, DTMF, session timers, redirects, reliable
//! provisional responses, history rows and end reasons — checked over many seeds, each run
//! taking milliseconds for minutes of phone life.
//!
//! The phones talk directly: each one's account has the other phone as its server (without
//! registration), so each one's requests arrive on the other's account flow.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use handset_media::ice::{IceConfig, IcePolicy, StunUrl, TurnUrl};
use handset_media::sdp::{Direction, MediaConfig, SrtpMode, SrtpPolicy};
use handset_phone::phone::{
    AccountConfig, AccountId, CallDirection, CallId, CallRecord, CallState, CallUpdate, Command,
    EndReason, PhoneConfig, PhoneEvent, Record, Reply,
};
use handset_tests::sim::{FixedDirectory, Link, PhoneRef, Sim};

/// Lossy enough that every exchange needs retransmissions.
const LOSS: f64 = 0.3;
/// Seeds per scenario.
const SEEDS: u64 = 20;
/// Generous for 30 % loss: Timer A doubles from 500 ms.
const LIMIT: Duration = Duration::from_secs(40);

fn addr(host: u8) -> SocketAddr {
    SocketAddr::from(([127, 0, 7, host], 5060))
}

/// Two phones, each the other's server: alice (127.0.7.1, user 1001) and bob (127.0.7.2,
/// user 1002).
struct Pair {
    sim: Sim,
    alice: PhoneRef,
    bob: PhoneRef,
    alice_account: AccountId,
}

fn pair(seed: u64, config: PhoneConfig, bob_directory: FixedDirectory) -> Pair {
    pair_with_ice(
        seed,
        config,
        bob_directory,
        IceConfig::default(),
        IceConfig::default(),
    )
}

/// [`pair`] with ICE settings for each side's account.
fn pair_with_ice(
    seed: u64,
    config: PhoneConfig,
    bob_directory: FixedDirectory,
    alice_ice: IceConfig,
    bob_ice: IceConfig,
) -> Pair {
    pair_with_media(
        seed,
        config,
        bob_directory,
        (alice_ice, bob_ice),
        MediaConfig::default(),
    )
}

/// [`pair_with_ice`] with both accounts' media settings.
fn pair_with_media(
    seed: u64,
    config: PhoneConfig,
    bob_directory: FixedDirectory,
    (alice_ice, bob_ice): (IceConfig, IceConfig),
    media: MediaConfig,
) -> Pair {
    handset_tests::init_logs();
    let mut sim = Sim::new(seed, Link::lossy(LOSS));
    let alice = sim.add_phone("alice", addr(1), config.clone(), FixedDirectory::default());
    let bob = sim.add_phone("bob", addr(2), config, bob_directory);
    let account = |server: SocketAddr, user: &str, ice: IceConfig| {
        let mut config = AccountConfig::new(format!("sip:{server}"), user, "secret");
        config.register = false;
        config.ice = ice;
        config.media = media.clone();
        Box::new(config)
    };
    let alice_account = match sim.command(
        alice,
        Command::AddAccount(account(addr(2), "1001", alice_ice)),
    ) {
        Ok(Reply::Account(id)) => id,
        other => panic!("{other:?}"),
    };
    sim.command(bob, Command::AddAccount(account(addr(1), "1002", bob_ice)))
        .unwrap();
    Pair {
        sim,
        alice,
        bob,
        alice_account,
    }
}

impl Pair {
    fn dial(&mut self) -> CallId {
        match self.sim.command(
            self.alice,
            Command::Dial {
                account: self.alice_account,
                target: "1002".into(),
                media: None,
                report_id: None,
            },
        ) {
            Ok(Reply::Call(id)) => id,
            other => panic!("{other:?}"),
        }
    }

    /// Waits until bob's phone rings; returns bob's call.
    fn ringing_at_bob(&mut self) -> CallId {
        let event = self
            .sim
            .wait_event(self.bob, LIMIT, |e| {
                matches!(
                    e,
                    PhoneEvent::Call {
                        update: CallUpdate::Incoming { .. },
                        ..
                    }
                )
            })
            .expect("bob's phone rings");
        let PhoneEvent::Call { call, .. } = event else {
            unreachable!()
        };
        call
    }

    /// Waits for an update of `call` matching `wanted`, among all the call's updates so far
    /// and to come (a command's consequences may already be there when it returns).
    fn wait_update(
        &mut self,
        phone: PhoneRef,
        call: CallId,
        wanted: impl Fn(&CallUpdate) -> bool,
    ) -> Option<CallUpdate> {
        self.wait_update_since(phone, 0, call, wanted)
    }

    /// The same, among the updates after the first `seen` events of `phone`.
    fn wait_update_since(
        &mut self,
        phone: PhoneRef,
        seen: usize,
        call: CallId,
        wanted: impl Fn(&CallUpdate) -> bool,
    ) -> Option<CallUpdate> {
        match self.sim.wait_event_since(phone, seen, LIMIT, |e| {
            matches!(e, PhoneEvent::Call { call: c, update, .. } if *c == call && wanted(update))
        }) {
            Some(PhoneEvent::Call { update, .. }) => Some(update),
            _ => None,
        }
    }

    fn ended(&mut self, phone: PhoneRef, call: CallId) -> EndReason {
        match self.wait_update(phone, call, |u| matches!(u, CallUpdate::Ended { .. })) {
            Some(CallUpdate::Ended { reason, .. }) => reason,
            other => panic!(
                "{}: call {call} did not end: {other:?}",
                self.sim.phone(phone).name
            ),
        }
    }

    fn answer(&mut self, call: CallId) {
        self.sim
            .command(self.bob, Command::Answer { call, media: None })
            .unwrap();
    }

    /// Dials, answers, and waits until both sides are Active.
    fn connected_call(&mut self) -> (CallId, CallId) {
        let a = self.dial();
        let b = self.ringing_at_bob();
        self.answer(b);
        assert!(
            self.wait_update(self.alice, a, |u| matches!(u, CallUpdate::Answered { .. }))
                .is_some(),
            "alice's call is answered"
        );
        assert!(
            self.wait_update(self.bob, b, |u| matches!(u, CallUpdate::Answered { .. }))
                .is_some()
                || matches!(
                    self.sim.phone(self.bob).phone.call_state(b),
                    Some(CallState::Active { .. })
                ),
            "bob's call is answered"
        );
        (a, b)
    }

    fn records(&self, phone: PhoneRef) -> Vec<CallRecord> {
        self.sim
            .phone(phone)
            .records
            .iter()
            .filter_map(|r| match r {
                Record::Call(call) => Some(call.clone()),
                _ => None,
            })
            .collect()
    }

    /// Both sides' media point at each other.
    fn assert_media_meets(&self, a: CallId, b: CallId) {
        let alice = &self.sim.phone(self.alice).media[&a];
        let bob = &self.sim.phone(self.bob).media[&b];
        let (alice_local, bob_local) = (alice.local.expect("alice's socket"), bob.local.unwrap());
        let alice_sends_to = alice.negotiations.last().unwrap().remote_rtp;
        let bob_sends_to = bob.negotiations.last().unwrap().remote_rtp;
        assert_eq!(alice_sends_to, bob_local, "alice sends to bob's socket");
        assert_eq!(bob_sends_to, alice_local, "bob sends to alice's socket");
    }
}

#[test]
fn answered_calls_carry_media_both_ways_and_end_normally_in_the_history() {
    for seed in 0..SEEDS {
        let mut p = pair(seed, PhoneConfig::default(), FixedDirectory::default());
        let (a, b) = p.connected_call();
        p.assert_media_meets(a, b);
        // Ten minutes of conversation in virtual time.
        p.sim.run_for(Duration::from_secs(600));
        assert!(p.sim.phone(p.alice).media[&a].running, "seed {seed}");
        p.sim.command(p.alice, Command::Hangup(a)).unwrap();
        assert_eq!(p.ended(p.alice, a), EndReason::LocalHangup, "seed {seed}");
        assert_eq!(p.ended(p.bob, b), EndReason::RemoteHangup, "seed {seed}");
        for phone in [p.alice, p.bob] {
            let node = p.sim.phone(phone);
            assert_eq!(node.sockets_open, 0, "{}: sockets released", node.name);
        }
        let (alice, bob) = (p.records(p.alice), p.records(p.bob));
        assert_eq!((alice.len(), bob.len()), (1, 1), "seed {seed}");
        assert_eq!(alice[0].direction, CallDirection::Outgoing);
        assert_eq!(bob[0].direction, CallDirection::Incoming);
        assert_eq!(bob[0].remote_number, "1001");
        assert!(
            bob[0].answered.is_some() && !bob[0].missed(),
            "{:?}",
            bob[0]
        );
        assert!(
            alice[0].ended - alice[0].answered.unwrap() >= Duration::from_secs(600),
            "seed {seed}: the talk time is in the history"
        );
    }
}

fn stun_only() -> IceConfig {
    IceConfig {
        stun: vec!["127.0.7.9:3478".parse::<StunUrl>().unwrap()],
        ..IceConfig::default()
    }
}

fn relay_only() -> IceConfig {
    IceConfig {
        turn: vec![TurnUrl::parse("turn:127.0.7.9", "user", "pass").unwrap()],
        policy: IcePolicy::Relay,
        ..IceConfig::default()
    }
}

/// The a=candidate types in a description.
fn candidate_types(sdp: &handset_media::sdp::SessionDescription) -> Vec<String> {
    sdp.print()
        .lines()
        .filter(|l| l.starts_with("a=candidate:"))
        .filter_map(|l| l.split(" typ ").nth(1))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn ice_calls_announce_their_candidates_with_the_default_in_c_and_the_offerer_controls() {
    for seed in 0..SEEDS / 4 {
        let mut p = pair_with_ice(
            seed,
            PhoneConfig::default(),
            FixedDirectory::default(),
            stun_only(),
            relay_only(),
        );
        let (a, b) = p.connected_call();
        let alice = &p.sim.phone(p.alice).media[&a];
        let bob = &p.sim.phone(p.bob).media[&b];
        let (alice_ice, bob_ice) = (alice.ice.as_ref().unwrap(), bob.ice.as_ref().unwrap());
        assert!(alice_ice.controlling && !bob_ice.controlling, "seed {seed}");
        assert_eq!(bob_ice.policy, IcePolicy::Relay);
        // Each side's plan has the other's description: bob offers only the relay, alice
        // her host and server-reflexive addresses.
        let bob_sdp = alice_ice.remote_description.as_ref().unwrap();
        let alice_sdp = bob_ice.remote_description.as_ref().unwrap();
        assert_eq!(candidate_types(bob_sdp), ["relay"], "seed {seed}");
        assert_eq!(candidate_types(alice_sdp), ["host", "srflx"], "seed {seed}");
        assert!(
            !bob_sdp.print().contains("127.0.7.2"),
            "bob's address stays private"
        );
        // c= and m= carry each side's default candidate; both negotiated ICE.
        let at_alice = alice.negotiations.last().unwrap();
        let at_bob = bob.negotiations.last().unwrap();
        assert_eq!(at_alice.remote_rtp.ip().to_string(), "198.51.100.200");
        assert_eq!(at_bob.remote_rtp.ip().to_string(), "203.0.113.1");
        assert!(at_alice.ice.is_some() && at_bob.ice.is_some());
        p.sim.command(p.alice, Command::Hangup(a)).unwrap();
        assert_eq!(p.ended(p.bob, b), EndReason::RemoteHangup, "seed {seed}");
    }
}

#[test]
fn an_ice_call_to_a_phone_without_ice_falls_back_to_the_addresses_in_c() {
    for seed in 0..SEEDS / 4 {
        let mut p = pair_with_ice(
            seed,
            PhoneConfig::default(),
            FixedDirectory::default(),
            stun_only(),
            IceConfig::default(),
        );
        let (a, b) = p.connected_call();
        let alice = &p.sim.phone(p.alice).media[&a];
        let bob = &p.sim.phone(p.bob).media[&b];
        assert!(bob.ice.is_none(), "bob runs no ICE");
        let at_alice = alice.negotiations.last().unwrap();
        let at_bob = bob.negotiations.last().unwrap();
        assert!(at_alice.ice.is_none(), "bob's answer has no ICE");
        assert_eq!(at_alice.remote_rtp, bob.local.unwrap());
        assert_eq!(at_bob.remote_rtp.ip().to_string(), "203.0.113.1");
        let alice_ice = alice.ice.as_ref().unwrap();
        assert!(candidate_types(alice_ice.remote_description.as_ref().unwrap()).is_empty());
    }
}

#[test]
fn refusals_are_busy_or_declined_on_both_sides() {
    for seed in 0..SEEDS {
        for (status, alice_sees) in [(486, EndReason::Busy), (603, EndReason::Declined)] {
            let mut p = pair(seed, PhoneConfig::default(), FixedDirectory::default());
            let a = p.dial();
            let b = p.ringing_at_bob();
            p.sim
                .command(p.bob, Command::Reject { call: b, status })
                .unwrap();
            assert_eq!(p.ended(p.bob, b), EndReason::Declined, "seed {seed}");
            assert_eq!(
                p.ended(p.alice, a),
                alice_sees,
                "seed {seed} status {status}"
            );
            let bob = p.records(p.bob);
            assert!(!bob[0].missed(), "a declined call is not missed");
            // No RTP socket was ever bound for the call that only rang at bob's.
            assert_eq!(p.sim.phone(p.bob).sockets_bound, 0);
        }
    }
}

#[test]
fn a_cancelled_call_is_missed_at_the_callee_and_cancelled_at_the_caller() {
    for seed in 0..SEEDS {
        let mut p = pair(seed, PhoneConfig::default(), FixedDirectory::default());
        let a = p.dial();
        let b = p.ringing_at_bob();
        p.wait_update(p.alice, a, |u| matches!(u, CallUpdate::Ringing))
            .expect("alice hears ringing");
        p.sim.command(p.alice, Command::Hangup(a)).unwrap();
        assert_eq!(p.ended(p.alice, a), EndReason::Cancelled, "seed {seed}");
        assert_eq!(p.ended(p.bob, b), EndReason::Cancelled, "seed {seed}");
        let bob = p.records(p.bob);
        assert!(bob[0].missed(), "seed {seed}: {:?}", bob[0]);
        assert_eq!(p.sim.phone(p.alice).sockets_open, 0);
    }
}

#[test]
fn a_cancel_crossing_the_answer_ends_both_sides_and_leaks_nothing() {
    for seed in 0..SEEDS {
        let mut p = pair(seed, PhoneConfig::default(), FixedDirectory::default());
        let a = p.dial();
        let b = p.ringing_at_bob();
        // Both at the same instant: the 200 and the CANCEL cross on the network.
        p.answer(b);
        p.sim.command(p.alice, Command::Hangup(a)).unwrap();
        let alice = p.ended(p.alice, a);
        assert!(
            matches!(alice, EndReason::Cancelled | EndReason::LocalHangup),
            "seed {seed}: {alice}"
        );
        let bob = p.ended(p.bob, b);
        assert!(
            matches!(bob, EndReason::Cancelled | EndReason::RemoteHangup),
            "seed {seed}: {bob}"
        );
        p.sim.run_for(Duration::from_secs(60));
        for phone in [p.alice, p.bob] {
            let node = p.sim.phone(phone);
            assert_eq!(
                node.phone.call_count(),
                0,
                "seed {seed}: {} forgot the call",
                node.name
            );
            assert_eq!(node.sockets_open, 0, "seed {seed}: {}", node.name);
        }
    }
}

fn is_hold(u: &CallUpdate, on: bool) -> bool {
    matches!(u, CallUpdate::Hold { on_hold } if *on_hold == on)
}

#[test]
fn hold_and_resume_reach_both_sides_and_the_media() {
    for seed in 0..SEEDS {
        let mut p = pair(seed, PhoneConfig::default(), FixedDirectory::default());
        let (a, b) = p.connected_call();
        let (alice_mark, bob_mark) = (p.sim.mark(p.alice), p.sim.mark(p.bob));
        p.sim
            .command(
                p.alice,
                Command::Hold {
                    call: a,
                    on_hold: true,
                },
            )
            .unwrap();
        let held_at_alice = p.wait_update_since(p.alice, alice_mark, a, |u| is_hold(u, true));
        assert!(held_at_alice.is_some(), "seed {seed}");
        let held_at_bob = p.wait_update_since(p.bob, bob_mark, b, |u| is_hold(u, true));
        assert!(held_at_bob.is_some(), "seed {seed}");
        let held = p.sim.phone(p.bob).media[&b]
            .negotiations
            .last()
            .unwrap()
            .clone();
        assert_eq!(held.direction, Direction::Inactive, "seed {seed}");
        let (alice_mark, bob_mark) = (p.sim.mark(p.alice), p.sim.mark(p.bob));
        p.sim
            .command(
                p.alice,
                Command::Hold {
                    call: a,
                    on_hold: false,
                },
            )
            .unwrap();
        let resumed_at_alice = p.wait_update_since(p.alice, alice_mark, a, |u| is_hold(u, false));
        assert!(resumed_at_alice.is_some(), "seed {seed}");
        let resumed_at_bob = p.wait_update_since(p.bob, bob_mark, b, |u| is_hold(u, false));
        assert!(resumed_at_bob.is_some(), "seed {seed}");
        assert_eq!(
            p.sim.phone(p.bob).media[&b]
                .negotiations
                .last()
                .unwrap()
                .direction,
            Direction::SendRecv
        );
        p.assert_media_meets(a, b);
    }
}

#[test]
fn glare_both_sides_holding_at_once_settles_on_held() {
    for seed in 0..SEEDS {
        let mut p = pair(seed, PhoneConfig::default(), FixedDirectory::default());
        let (a, b) = p.connected_call();
        // Both re-INVITE at the same instant: 491, then each retries after its random wait.
        p.sim
            .command(
                p.alice,
                Command::Hold {
                    call: a,
                    on_hold: true,
                },
            )
            .unwrap();
        p.sim
            .command(
                p.bob,
                Command::Hold {
                    call: b,
                    on_hold: true,
                },
            )
            .unwrap();
        p.sim.run_for(Duration::from_secs(60));
        for (phone, call) in [(p.alice, a), (p.bob, b)] {
            match p.sim.phone(phone).phone.call_state(call) {
                Some(CallState::Active { on_hold: true, .. }) => {}
                other => panic!("seed {seed}: {}: {other:?}", p.sim.phone(phone).name),
            }
        }
        assert!(
            p.sim.count("491 INVITE", None) >= 1,
            "seed {seed}: the re-INVITEs crossed"
        );
    }
}

#[test]
fn dtmf_pressed_before_the_answer_waits_for_the_media() {
    let mut p = pair(7, PhoneConfig::default(), FixedDirectory::default());
    let a = p.dial();
    p.sim
        .command(
            p.alice,
            Command::Dtmf {
                call: a,
                digits: "12#".into(),
            },
        )
        .unwrap();
    let b = p.ringing_at_bob();
    p.answer(b);
    p.wait_update(p.alice, a, |u| matches!(u, CallUpdate::Answered { .. }))
        .unwrap();
    assert_eq!(p.sim.phone(p.alice).media[&a].dtmf, "12#");
    p.sim
        .command(
            p.alice,
            Command::Dtmf {
                call: a,
                digits: "9".into(),
            },
        )
        .unwrap();
    assert_eq!(p.sim.phone(p.alice).media[&a].dtmf, "12#9");
    assert!(
        p.sim
            .command(
                p.alice,
                Command::Dtmf {
                    call: a,
                    digits: "x".into()
                }
            )
            .is_err()
    );
}

#[test]
fn reliable_ringing_is_acknowledged_with_prack() {
    for seed in 0..SEEDS {
        let mut p = pair(seed, PhoneConfig::default(), FixedDirectory::default());
        let a = p.dial();
        p.ringing_at_bob();
        assert!(
            p.wait_update(p.alice, a, |u| matches!(u, CallUpdate::Ringing))
                .is_some(),
            "seed {seed}"
        );
        p.sim.run_for(Duration::from_secs(5));
        assert!(p.sim.count("PRACK", Some(addr(1))) >= 1, "seed {seed}");
        assert!(p.sim.count("200 PRACK", Some(addr(2))) >= 1, "seed {seed}");
    }
}

#[test]
fn an_unanswered_call_rings_out_as_missed() {
    let config = PhoneConfig {
        ring_timeout: Duration::from_secs(30),
        ..PhoneConfig::default()
    };
    for seed in 0..SEEDS {
        let mut p = pair(seed, config.clone(), FixedDirectory::default());
        let a = p.dial();
        let b = p.ringing_at_bob();
        assert_eq!(p.ended(p.bob, b), EndReason::Unanswered, "seed {seed}");
        assert_eq!(p.ended(p.alice, a), EndReason::Unanswered, "seed {seed}");
        assert!(p.records(p.bob)[0].missed());
        assert!(p.sim.count("480 INVITE", Some(addr(2))) >= 1);
        assert_eq!(
            p.sim.phone(p.bob).sockets_bound,
            0,
            "a ringing call binds no socket"
        );
    }
}

#[test]
fn a_blocked_caller_is_refused_logged_and_never_rings() {
    let mut directory = FixedDirectory::default();
    directory.blocked.insert("1001".into());
    for seed in 0..SEEDS {
        let mut p = pair(seed, PhoneConfig::default(), directory.clone());
        let a = p.dial();
        assert_eq!(p.ended(p.alice, a), EndReason::Declined, "seed {seed}");
        let bob = p.sim.phone(p.bob);
        assert!(
            bob.event_list()
                .iter()
                .any(|e| matches!(e, PhoneEvent::CallBlocked { .. }))
        );
        assert!(!bob.event_list().iter().any(|e| matches!(
            e,
            PhoneEvent::Call {
                update: CallUpdate::Incoming { .. },
                ..
            }
        )));
        assert!(
            bob.records
                .iter()
                .any(|r| matches!(r, Record::BlockedAttempt { number, .. } if number == "1001"))
        );
        assert!(
            p.records(p.bob).is_empty(),
            "no history row for a blocked call"
        );
    }
}

#[test]
fn the_callers_contact_name_reaches_the_ringing_screen_and_the_history() {
    let mut directory = FixedDirectory::default();
    directory
        .contacts
        .insert("1001".into(), "Alice Example".into());
    let mut p = pair(3, PhoneConfig::default(), directory);
    let a = p.dial();
    let event = p
        .sim
        .wait_event(p.bob, LIMIT, |e| {
            matches!(
                e,
                PhoneEvent::Call {
                    update: CallUpdate::Incoming { .. },
                    ..
                }
            )
        })
        .unwrap();
    let PhoneEvent::Call {
        call: b,
        update: CallUpdate::Incoming { contact_name, .. },
        ..
    } = event
    else {
        unreachable!()
    };
    assert_eq!(contact_name.as_deref(), Some("Alice Example"));
    p.sim.command(p.alice, Command::Hangup(a)).unwrap();
    p.ended(p.bob, b);
    assert_eq!(
        p.records(p.bob)[0].remote_name.as_deref(),
        Some("Alice Example")
    );
}

#[test]
fn session_timers_keep_a_call_alive_through_loss_and_end_it_when_the_network_goes() {
    // 300 s: the refresher refreshes at 150 s and the other side waits until 268 s (RFC 4028
    // §10), two minutes of retransmissions for a refresh to get through 30 % loss. (With the
    // 90 s minimum only 15 s are left, and at this loss one refresh in a few hundred fails.)
    let config = PhoneConfig {
        session_expires: Some(300),
        ..PhoneConfig::default()
    };
    for seed in 0..SEEDS {
        let mut p = pair(seed, config.clone(), FixedDirectory::default());
        let (a, b) = p.connected_call();
        p.sim.run_for(Duration::from_secs(3600));
        for (phone, call) in [(p.alice, a), (p.bob, b)] {
            assert!(
                matches!(
                    p.sim.phone(phone).phone.call_state(call),
                    Some(CallState::Active { .. })
                ),
                "seed {seed}: the call survives an hour of refreshes"
            );
        }
        let refreshes = p.sim.count("UPDATE", None) + p.sim.count("INVITE", None);
        assert!(
            refreshes >= 10,
            "seed {seed}: {refreshes} refreshes in ten minutes"
        );
        // The network goes away for good: the session expires on both sides (within one
        // session interval plus a refresh's transaction timeout).
        p.sim.link.loss = 1.0;
        p.sim.run_for(Duration::from_secs(400));
        assert_eq!(p.ended(p.alice, a), EndReason::NetworkLost, "seed {seed}");
        assert_eq!(p.ended(p.bob, b), EndReason::NetworkLost, "seed {seed}");
    }
}

#[test]
fn a_call_into_silence_ends_as_network_lost_after_timer_b() {
    let mut sim = Sim::new(1, Link::lossy(LOSS));
    let alice = sim.add_phone(
        "alice",
        addr(1),
        PhoneConfig::default(),
        FixedDirectory::default(),
    );
    let mut config = AccountConfig::new(format!("sip:{}", addr(9)), "1001", "secret");
    config.register = false;
    let Ok(Reply::Account(account)) = sim.command(alice, Command::AddAccount(Box::new(config)))
    else {
        panic!("account")
    };
    let Ok(Reply::Call(call)) = sim.command(
        alice,
        Command::Dial {
            account,
            target: "1002".into(),
            media: None,
            report_id: None,
        },
    ) else {
        panic!("dial")
    };
    let started = sim.now;
    let ended = sim
        .wait_event(alice, Duration::from_secs(120), |e| {
            matches!(e, PhoneEvent::Call { call: c, update: CallUpdate::Ended { .. }, .. } if *c == call)
        })
        .expect("the call ends");
    let PhoneEvent::Call {
        update: CallUpdate::Ended { reason, .. },
        ..
    } = ended
    else {
        unreachable!()
    };
    assert_eq!(reason, EndReason::NetworkLost);
    let waited = sim.now - started;
    assert!(
        (Duration::from_secs(32)..Duration::from_secs(40)).contains(&waited),
        "Timer B is 64·T1: {waited:?}"
    );
    assert_eq!(sim.phone(alice).sockets_open, 0);
}

/// A server that redirects calls for `old` to `new` (302) and answers calls for `new` itself,
/// with a real SDP answer, so the redirected call gets media.
fn redirecting_server(me: SocketAddr) -> handset_tests::sim::Script {
    use handset_media::sdp::{MediaConfig, OfferKeys, SessionDescription, SessionIdentity};
    use handset_sip::message::{HeaderName, Message, Method, Response};
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(99);
    let mut identity = SessionIdentity::new(&mut rng);
    let mut keys = OfferKeys::generate(&mut rng);
    Box::new(move |_now, from, message| {
        let Message::Request(request) = message else {
            return Vec::new();
        };
        let user = request.uri.as_sip().and_then(|u| u.user.clone());
        let mut response = match (&request.method, user.as_deref()) {
            (Method::Invite, Some("old")) => {
                let mut r = Response::to_request(&request, 302);
                r.headers
                    .push(HeaderName::Contact, format!("<sip:new@{me}>"));
                r
            }
            (Method::Invite, Some("new")) => {
                let offer = SessionDescription::parse_bytes(&request.body).unwrap();
                let local = SocketAddr::new(me.ip(), 30_000);
                let (sdp, _) = handset_media::sdp::answer(
                    &offer,
                    &MediaConfig::default(),
                    local,
                    &mut identity,
                    &mut keys,
                    &mut rng,
                )
                .unwrap();
                let mut r = Response::to_request(&request, 200);
                r.headers
                    .push(HeaderName::Contact, format!("<sip:new@{me}>"));
                r.headers.push(HeaderName::ContentType, "application/sdp");
                r.body = sdp.print().into_bytes();
                r
            }
            (Method::Ack, _) => return Vec::new(),
            _ => Response::to_request(&request, 200),
        };
        if response.headers.to().is_ok_and(|to| to.tag().is_none())
            && let Some(to) = response.headers.get(&HeaderName::To).map(str::to_string)
        {
            response
                .headers
                .set(HeaderName::To, format!("{to};tag=srv"));
        }
        vec![(from, Message::Response(response))]
    })
}

#[test]
fn a_redirected_call_follows_the_3xx_to_its_new_target() {
    for seed in 0..SEEDS {
        let mut sim = Sim::new(seed, Link::lossy(LOSS));
        let alice = sim.add_phone(
            "alice",
            addr(1),
            PhoneConfig::default(),
            FixedDirectory::default(),
        );
        sim.add_script(addr(3), redirecting_server(addr(3)));
        let mut config = AccountConfig::new(format!("sip:{}", addr(3)), "1001", "secret");
        config.register = false;
        let Ok(Reply::Account(account)) = sim.command(alice, Command::AddAccount(Box::new(config)))
        else {
            panic!("account")
        };
        let Ok(Reply::Call(call)) = sim.command(
            alice,
            Command::Dial {
                account,
                target: "old".into(),
                media: None,
                report_id: None,
            },
        ) else {
            panic!("dial")
        };
        let answered = sim.wait_event(alice, LIMIT, |e| {
            matches!(e, PhoneEvent::Call { call: c, update: CallUpdate::Answered { .. }, .. } if *c == call)
        });
        assert!(
            answered.is_some(),
            "seed {seed}: the redirected call is answered"
        );
        let to_new = sim
            .packets
            .iter()
            .filter_map(|p| match p.message() {
                Some(handset_sip::message::Message::Request(r))
                    if r.method == handset_sip::message::Method::Invite =>
                {
                    r.uri.as_sip().and_then(|u| u.user.clone())
                }
                _ => None,
            })
            .any(|user| user == "new");
        assert!(to_new, "seed {seed}: the INVITE went to the new target");
        let media = &sim.phone(alice).media[&call];
        assert_eq!(
            media.negotiations.last().unwrap().remote_rtp,
            SocketAddr::new(addr(3).ip(), 30_000)
        );
    }
}

#[test]
fn instant_messages_are_delivered_through_loss_and_blocked_senders_are_refused() {
    for seed in 0..SEEDS {
        let mut p = pair(seed, PhoneConfig::default(), FixedDirectory::default());
        let Ok(Reply::Message(id)) = p.sim.command(
            p.alice,
            Command::SendMessage {
                account: p.alice_account,
                target: "1002".into(),
                text: "see you at noon".into(),
            },
        ) else {
            panic!("message")
        };
        let received = p
            .sim
            .wait_event(p.bob, LIMIT, |e| {
                matches!(e, PhoneEvent::MessageReceived { .. })
            })
            .expect("bob gets the message");
        assert!(matches!(
            received,
            PhoneEvent::MessageReceived { ref text, ref from, .. }
                if text == "see you at noon" && from.contains("1001")
        ));
        let delivered = p.sim.wait_event_since(
            p.alice,
            0,
            LIMIT,
            |e| matches!(e, PhoneEvent::MessageDelivered { message } if *message == id),
        );
        assert!(delivered.is_some(), "seed {seed}");
        // Exactly one copy reached bob's application, whatever the retransmissions.
        let copies = p
            .sim
            .phone(p.bob)
            .event_list()
            .iter()
            .filter(|e| matches!(e, PhoneEvent::MessageReceived { .. }))
            .count();
        assert_eq!(copies, 1, "seed {seed}");
    }
    let mut blocking = FixedDirectory::default();
    blocking.blocked.insert("1001".into());
    let mut p = pair(1, PhoneConfig::default(), blocking);
    p.sim
        .command(
            p.alice,
            Command::SendMessage {
                account: p.alice_account,
                target: "1002".into(),
                text: "hello?".into(),
            },
        )
        .unwrap();
    let failed = p
        .sim
        .wait_event(p.alice, LIMIT, |e| {
            matches!(e, PhoneEvent::MessageFailed { .. })
        })
        .expect("the message fails");
    assert!(
        matches!(failed, PhoneEvent::MessageFailed { ref reason, .. } if reason.contains("603"))
    );
    assert!(
        !p.sim
            .phone(p.bob)
            .event_list()
            .iter()
            .any(|e| matches!(e, PhoneEvent::MessageReceived { .. }))
    );
}

#[test]
fn a_call_muted_before_its_media_starts_muted() {
    let mut p = pair(4, PhoneConfig::default(), FixedDirectory::default());
    let a = p.dial();
    p.sim
        .command(
            p.alice,
            Command::Mute {
                call: a,
                muted: true,
            },
        )
        .unwrap();
    let b = p.ringing_at_bob();
    p.answer(b);
    p.wait_update(p.alice, a, |u| matches!(u, CallUpdate::Answered { .. }))
        .unwrap();
    assert!(
        p.sim.phone(p.alice).media[&a].muted,
        "the media started muted"
    );
    p.sim
        .command(
            p.alice,
            Command::Mute {
                call: a,
                muted: false,
            },
        )
        .unwrap();
    assert!(!p.sim.phone(p.alice).media[&a].muted);
}

/// Regression: a call the user answered, whose caller hung up before the ACK of our 200 came
/// through, was written to the history as missed (the answer time was only taken from the
/// ACK). Answering is what the user did; the ACK is the network's business.
#[test]
fn a_call_answered_here_is_not_missed_even_if_its_ack_never_came() {
    use handset_media::sdp::{MediaConfig, OfferKeys, SessionIdentity, create_offer};
    use handset_sip::message::{HeaderName, Message, Method, Request, Uri};
    use handset_sip::transport::Transport;
    use rand::SeedableRng;

    let mut sim = Sim::new(5, Link::clean());
    let bob = sim.add_phone(
        "bob",
        addr(2),
        PhoneConfig::default(),
        FixedDirectory::default(),
    );
    let mut config = AccountConfig::new(format!("sip:{}", addr(1)), "1002", "secret");
    config.register = false;
    sim.command(bob, Command::AddAccount(Box::new(config)))
        .unwrap();
    sim.run_for(Duration::from_secs(1));

    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let offer = create_offer(
        &MediaConfig::default(),
        SocketAddr::from(([127, 0, 7, 1], 30_000)),
        &mut SessionIdentity::new(&mut rng),
        &OfferKeys::generate(&mut rng),
    );
    let request = |method: Method, cseq: u32, to_tag: Option<&str>| {
        let mut r = Request::new(
            method.clone(),
            Uri::parse(&format!("sip:1002@{}", addr(2))).unwrap(),
        );
        let h = &mut r.headers;
        h.push(
            HeaderName::Via,
            format!("SIP/2.0/UDP {};branch=z9hG4bKack{cseq}", addr(1)),
        );
        h.push(HeaderName::From, "<sip:1001@127.0.7.1>;tag=caller");
        h.push(
            HeaderName::To,
            match to_tag {
                Some(tag) => format!("<sip:1002@127.0.7.2>;tag={tag}"),
                None => "<sip:1002@127.0.7.2>".to_string(),
            },
        );
        h.push(HeaderName::CallId, "no-ack@127.0.7.1");
        h.push(HeaderName::CSeq, format!("{cseq} {method}"));
        h.push(HeaderName::Contact, format!("<sip:1001@{}>", addr(1)));
        h.push(HeaderName::MaxForwards, "70");
        r
    };
    let mut invite = request(Method::Invite, 1, None);
    invite
        .headers
        .push(HeaderName::ContentType, "application/sdp");
    invite.body = offer.print().into_bytes();
    sim.inject(addr(1), addr(2), Transport::Udp, invite.to_bytes());
    let ringing = sim
        .wait_event(bob, LIMIT, |e| {
            matches!(
                e,
                PhoneEvent::Call {
                    update: CallUpdate::Incoming { .. },
                    ..
                }
            )
        })
        .expect("bob rings");
    let PhoneEvent::Call { call, .. } = ringing else {
        unreachable!()
    };
    sim.command(bob, Command::Answer { call, media: None })
        .unwrap();
    sim.run_for(Duration::from_millis(100));
    let to_tag = sim
        .packets
        .iter()
        .filter_map(|p| match p.message() {
            Some(Message::Response(r)) if r.status == 200 => r
                .headers
                .to()
                .ok()
                .and_then(|to| to.tag().map(str::to_string)),
            _ => None,
        })
        .next()
        .expect("bob answered 200");
    // The caller hangs up at once; its ACK is never sent.
    sim.inject(
        addr(1),
        addr(2),
        Transport::Udp,
        request(Method::Bye, 2, Some(&to_tag)).to_bytes(),
    );
    let ended = sim
        .wait_event(bob, LIMIT, |e| {
            matches!(
                e,
                PhoneEvent::Call {
                    update: CallUpdate::Ended { .. },
                    ..
                }
            )
        })
        .expect("the call ends");
    assert!(matches!(
        ended,
        PhoneEvent::Call {
            update: CallUpdate::Ended {
                reason: EndReason::RemoteHangup,
                ..
            },
            ..
        }
    ));
    let record = sim
        .phone(bob)
        .records
        .iter()
        .find_map(|r| match r {
            Record::Call(c) => Some(c.clone()),
            _ => None,
        })
        .unwrap();
    assert!(record.answered.is_some(), "{record:?}");
    assert!(!record.missed(), "{record:?}");
}

#[test]
fn a_network_change_moves_an_answered_call_to_a_new_socket_with_a_reinvite() {
    for seed in 0..SEEDS {
        let mut p = pair(seed, PhoneConfig::default(), FixedDirectory::default());
        let (a, b) = p.connected_call();
        let before = p.sim.phone(p.alice).media[&a].local;
        let bob_updates = p.sim.phone(p.bob).media[&b].negotiations.len();
        p.sim.command(p.alice, Command::NetworkChanged).unwrap();
        p.sim.run_for(Duration::from_secs(10));
        let alice = &p.sim.phone(p.alice).media[&a];
        assert_eq!(alice.switches, 1, "seed {seed}: the media moved once");
        assert!(alice.running, "seed {seed}");
        assert_ne!(alice.local, before, "seed {seed}: a new RTP socket");
        assert_eq!(
            p.sim.phone(p.alice).sockets_open,
            1,
            "seed {seed}: the old socket is closed"
        );
        // Bob heard of the new address through the re-INVITE and sends there now.
        assert!(
            p.sim.phone(p.bob).media[&b].negotiations.len() > bob_updates,
            "seed {seed}: bob's media was updated"
        );
        p.assert_media_meets(a, b);
        for (phone, call) in [(p.alice, a), (p.bob, b)] {
            assert!(
                matches!(
                    p.sim.phone(phone).phone.call_state(call),
                    Some(CallState::Active { on_hold: false, .. })
                ),
                "seed {seed}: the call goes on"
            );
        }
        // Bob's BYE finds alice at her new Contact.
        p.sim.command(p.bob, Command::Hangup(b)).unwrap();
        assert_eq!(p.ended(p.alice, a), EndReason::RemoteHangup, "seed {seed}");
        assert_eq!(p.ended(p.bob, b), EndReason::LocalHangup, "seed {seed}");
    }
}

/// An ICE call moves by restarting ICE: the re-INVITE carries new credentials and the
/// candidates gathered on the new network; bob's answer restarts too (new credentials of his
/// own); each side's media restarts ICE rather than updating (alice's on her new socket),
/// and nothing switches sockets without ICE.
#[test]
fn a_network_change_restarts_ice_on_a_call_that_uses_it() {
    for seed in 0..SEEDS / 2 {
        let mut p = pair_with_ice(
            seed,
            PhoneConfig::default(),
            FixedDirectory::default(),
            stun_only(),
            stun_only(),
        );
        let (a, b) = p.connected_call();
        let ufrag = |plan: &handset_phone::phone::IcePlan| plan.local_ice.ufrag.clone();
        let alice_before = ufrag(p.sim.phone(p.alice).media[&a].ice.as_ref().unwrap());
        let bob_before = ufrag(p.sim.phone(p.bob).media[&b].ice.as_ref().unwrap());
        let old_socket = p.sim.phone(p.alice).media[&a].local;
        p.sim.command(p.alice, Command::NetworkChanged).unwrap();
        p.sim.run_for(Duration::from_secs(10));
        let alice = &p.sim.phone(p.alice).media[&a];
        let bob = &p.sim.phone(p.bob).media[&b];
        assert_eq!(
            (alice.ice_restarts, bob.ice_restarts),
            (1, 1),
            "seed {seed}: both restarted once"
        );
        assert_eq!((alice.switches, bob.switches), (0, 0), "seed {seed}");
        assert_ne!(alice.local, old_socket, "seed {seed}: a new RTP socket");
        assert_eq!(
            p.sim.phone(p.alice).sockets_open,
            1,
            "seed {seed}: the old one closed"
        );
        let (alice_ice, bob_ice) = (alice.ice.as_ref().unwrap(), bob.ice.as_ref().unwrap());
        assert_ne!(
            ufrag(alice_ice),
            alice_before,
            "seed {seed}: alice's new credentials"
        );
        assert_ne!(
            ufrag(bob_ice),
            bob_before,
            "seed {seed}: bob's new credentials"
        );
        // Each side's restart knows the other's new description: alice's new candidates are
        // on her new socket.
        let alice_sdp = bob_ice.remote_description.as_ref().unwrap().print();
        let new_port = alice.local.unwrap().port().to_string();
        assert!(
            alice_sdp.contains(&format!("{} typ host", new_port)),
            "seed {seed}: {alice_sdp}"
        );
        assert!(alice_sdp.contains(&format!("a=ice-ufrag:{}", ufrag(alice_ice))));
        let bob_sdp = alice_ice.remote_description.as_ref().unwrap().print();
        assert!(bob_sdp.contains(&format!("a=ice-ufrag:{}", ufrag(bob_ice))));
        for (phone, call) in [(p.alice, a), (p.bob, b)] {
            assert!(
                matches!(
                    p.sim.phone(phone).phone.call_state(call),
                    Some(CallState::Active { on_hold: false, .. })
                ),
                "seed {seed}: the call goes on"
            );
        }
        // A later renegotiation (hold) is no restart.
        p.sim
            .command(
                p.bob,
                Command::Hold {
                    call: b,
                    on_hold: true,
                },
            )
            .unwrap();
        p.sim.run_for(Duration::from_secs(10));
        let alice = &p.sim.phone(p.alice).media[&a];
        assert_eq!(alice.ice_restarts, 1, "seed {seed}: holding is no restart");
        p.sim.command(p.bob, Command::Hangup(b)).unwrap();
        assert_eq!(p.ended(p.alice, a), EndReason::RemoteHangup, "seed {seed}");
    }
}

/// A DTLS-SRTP call moves by restarting ICE too: no gathering (its one candidate is the new
/// socket), new credentials both ways, the DTLS association kept (the media restarts ICE
/// rather than starting again).
#[test]
fn a_network_change_restarts_ice_on_a_dtls_call() {
    let cert = std::sync::Arc::new(handset_media::dtls_session::DtlsCert::generate().unwrap());
    for seed in 0..SEEDS / 4 {
        let config = PhoneConfig {
            dtls_cert: Some(cert.clone()),
            ..PhoneConfig::default()
        };
        let media = MediaConfig {
            srtp: SrtpPolicy::Mandatory,
            srtp_mode: SrtpMode::Dtls,
            ..MediaConfig::default()
        };
        let no_ice = (IceConfig::default(), IceConfig::default());
        let mut p = pair_with_media(seed, config, FixedDirectory::default(), no_ice, media);
        let (a, b) = p.connected_call();
        assert!(
            p.sim.phone(p.alice).media[&a].negotiations[0]
                .dtls
                .is_some()
        );
        let old_socket = p.sim.phone(p.alice).media[&a].local;
        p.sim.command(p.alice, Command::NetworkChanged).unwrap();
        p.sim.run_for(Duration::from_secs(10));
        let alice = &p.sim.phone(p.alice).media[&a];
        let bob = &p.sim.phone(p.bob).media[&b];
        assert_eq!(
            (alice.ice_restarts, bob.ice_restarts),
            (1, 1),
            "seed {seed}"
        );
        assert_eq!((alice.switches, bob.switches), (0, 0), "seed {seed}");
        assert_ne!(alice.local, old_socket, "seed {seed}: a new RTP socket");
        let alice_ice = alice.ice.as_ref().unwrap();
        assert_eq!(
            alice_ice.candidates.len(),
            1,
            "seed {seed}: the socket's host candidate"
        );
        assert_eq!(Some(alice_ice.candidates[0].address), alice.local);
        let alice_sdp = bob
            .ice
            .as_ref()
            .unwrap()
            .remote_description
            .as_ref()
            .unwrap();
        assert!(
            alice_sdp.print().contains("a=fingerprint"),
            "seed {seed}: still DTLS"
        );
        p.sim.command(p.bob, Command::Hangup(b)).unwrap();
        assert_eq!(p.ended(p.alice, a), EndReason::RemoteHangup, "seed {seed}");
    }
}

#[test]
fn a_network_change_cancels_an_unanswered_outgoing_call_as_network_lost() {
    for seed in 0..SEEDS {
        let mut p = pair(seed, PhoneConfig::default(), FixedDirectory::default());
        let a = p.dial();
        let b = p.ringing_at_bob();
        p.sim.command(p.alice, Command::NetworkChanged).unwrap();
        assert_eq!(p.ended(p.alice, a), EndReason::NetworkLost, "seed {seed}");
        assert_eq!(p.ended(p.bob, b), EndReason::Cancelled, "seed {seed}");
        assert_eq!(p.sim.phone(p.alice).sockets_open, 0, "seed {seed}");
    }
}

#[test]
fn a_call_ringing_through_a_network_change_can_still_be_answered() {
    for seed in 0..SEEDS {
        let mut p = pair(seed, PhoneConfig::default(), FixedDirectory::default());
        let a = p.dial();
        let b = p.ringing_at_bob();
        p.sim.command(p.bob, Command::NetworkChanged).unwrap();
        p.sim.run_for(Duration::from_secs(2));
        assert_eq!(
            p.sim.phone(p.bob).phone.call_state(b),
            Some(&CallState::Incoming),
            "seed {seed}: still ringing"
        );
        p.answer(b);
        assert!(
            p.wait_update(p.alice, a, |u| matches!(u, CallUpdate::Answered { .. }))
                .is_some(),
            "seed {seed}: answered after the change"
        );
        p.sim.run_for(Duration::from_secs(5));
        p.assert_media_meets(a, b);
        p.sim.command(p.alice, Command::Hangup(a)).unwrap();
        assert_eq!(p.ended(p.bob, b), EndReason::RemoteHangup, "seed {seed}");
    }
}
