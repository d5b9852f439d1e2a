//! The flow of a UDP registration in virtual time. Keep-alives: STUN with an outbound registrar
//! (its answers, its silence, a moved NAT mapping), CRLF datagrams without one, the
//! registrar's Flow-Timer, and none in the background while push wakes the app, or when turned
//! off. A network change: the server looked up again and the account registered again from its
//! new address.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use handset_sip::message::{HeaderName, Message, Method, Request, Response};
use handset_sip::transport::{Flow, Target, Transport};
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::super::*;

const SERVER: &str = "127.0.0.9:5060";
const LOCAL: &str = "127.0.0.1:40123";
const MAPPED: &str = "203.0.113.10:61000";

/// A phone with one account registered over UDP, driven by hand.
struct Bench {
    phone: Phone,
    now: Instant,
    flow: Flow,
    account: AccountId,
    /// The last `Output::Timeout`.
    deadline: Option<Instant>,
    /// The last registration state the phone reported.
    state: Option<RegistrationState>,
    /// Our address the runtime reports when the flow is opened.
    local: SocketAddr,
    /// Lookups the phone asked for.
    lookups: usize,
}

/// What the phone sent on the flow, and when.
#[derive(Debug)]
enum Sent {
    Stun(Instant, [u8; 12]),
    Crlf(Instant),
    Register(Instant, Box<Request>),
}

impl Bench {
    /// Registers; the registrar's 200 OK carries `extra` headers.
    fn registered(config: PhoneConfig, extra: &[(&str, &str)]) -> Bench {
        #[allow(clippy::disallowed_methods)]
        let now = Instant::now();
        let mut phone = Phone::new(
            config,
            Box::new(NoDirectory),
            Box::new(StdRng::seed_from_u64(5)),
        );
        let settings = AccountConfig::new(format!("sip:{SERVER}"), "1001", "secret");
        let Ok(Reply::Account(account)) =
            phone.handle_input(now, Input::Command(Command::AddAccount(Box::new(settings))))
        else {
            panic!("the account is added");
        };
        let flow = Flow::new(Transport::Udp, SERVER.parse().unwrap());
        let mut bench = Bench {
            phone,
            now,
            flow,
            account,
            deadline: None,
            state: None,
            local: LOCAL.parse().unwrap(),
            lookups: 0,
        };
        bench.resolved();
        bench.connect();
        let register = registers(bench.sent())
            .into_iter()
            .next()
            .expect("a REGISTER");
        bench.answer_register(&register, extra);
        bench
    }

    /// An application command, decided at once.
    fn command(&mut self, command: Command) -> Reply {
        self.phone
            .handle_input(self.now, Input::Command(command))
            .expect("the command is taken")
    }

    /// The runtime's answer to the phone's lookup of the server.
    fn resolved(&mut self) {
        self.phone
            .handle_input(
                self.now,
                Input::Resolved {
                    account: self.account,
                    result: Ok(vec![Target {
                        transport: Transport::Udp,
                        addr: self.flow.remote,
                        host: "127.0.0.9".into(),
                    }]),
                },
            )
            .unwrap();
    }

    fn connect(&mut self) {
        let local = self.local;
        self.phone
            .handle_input(
                self.now,
                Input::Connected {
                    flow: self.flow,
                    local,
                },
            )
            .unwrap();
    }

    fn answer_register(&mut self, register: &Request, extra: &[(&str, &str)]) {
        let mut ok = Response::to_request(register, 200);
        let contact = register.headers.get(&HeaderName::Contact).unwrap();
        ok.headers
            .push("Contact", format!("{contact};expires=3600"));
        for (name, value) in extra {
            ok.headers.push(*name, *value);
        }
        self.receive(&ok.to_bytes());
        let sent = self.sent();
        assert!(
            matches!(self.state, Some(RegistrationState::Registered { .. })),
            "registered: {sent:?}"
        );
    }

    fn receive(&mut self, bytes: &[u8]) {
        self.phone
            .handle_input(
                self.now,
                Input::Received {
                    flow: self.flow,
                    bytes: bytes.to_vec(),
                },
            )
            .unwrap();
    }

    /// Drains the outputs: what went out on the flow (opening it again when asked).
    fn sent(&mut self) -> Vec<Sent> {
        let mut sent = Vec::new();
        let mut reconnect = false;
        let mut resolve = false;
        while let Some(output) = self.phone.poll_output() {
            match output {
                Output::Transmit { flow, bytes } if flow == self.flow => {
                    if handset_stun::binding::is_stun(&bytes) {
                        sent.push(Sent::Stun(self.now, bytes[8..20].try_into().unwrap()));
                    } else if bytes == b"\r\n\r\n" {
                        sent.push(Sent::Crlf(self.now));
                    } else if let Ok(Message::Request(r)) = Message::parse(&bytes)
                        && r.method == Method::Register
                    {
                        sent.push(Sent::Register(self.now, Box::new(r)));
                    }
                }
                Output::Connect { flow, .. } if flow == self.flow => reconnect = true,
                Output::Resolve { account, .. } if account == self.account => resolve = true,
                Output::Timeout(at) => self.deadline = Some(at),
                Output::Event(PhoneEvent::Registration { account, state })
                    if account == self.account =>
                {
                    self.state = Some(state);
                }
                _ => {}
            }
        }
        if resolve {
            self.lookups += 1;
            self.resolved();
            sent.extend(self.sent());
        }
        if reconnect {
            self.connect();
            sent.extend(self.sent());
        }
        sent
    }

    /// Runs the phone's timers for `span`, answering nothing; returns what went out.
    fn run_for(&mut self, span: Duration) -> Vec<Sent> {
        let end = self.now + span;
        let mut sent = self.sent();
        while let Some(at) = self.deadline.filter(|at| *at <= end) {
            self.now = at.max(self.now);
            self.phone.handle_input(self.now, Input::Timeout).unwrap();
            sent.extend(self.sent());
        }
        self.now = end;
        sent
    }

    /// Runs until the next STUN request and returns its transaction id.
    fn next_stun(&mut self, within: Duration) -> [u8; 12] {
        let end = self.now + within;
        if let Some(Sent::Stun(_, id)) = self
            .sent()
            .into_iter()
            .find(|s| matches!(s, Sent::Stun(..)))
        {
            return id;
        }
        loop {
            let Some(at) = self.deadline.filter(|at| *at <= end) else {
                panic!("no STUN request within {within:?}");
            };
            self.now = at.max(self.now);
            self.phone.handle_input(self.now, Input::Timeout).unwrap();
            if let Some(Sent::Stun(_, id)) = self
                .sent()
                .into_iter()
                .find(|s| matches!(s, Sent::Stun(..)))
            {
                return id;
            }
        }
    }

    /// The registrar's STUN success answer to `id`, seeing us at `mapped`.
    fn stun_answer(id: [u8; 12], mapped: &str) -> Vec<u8> {
        let mapped: SocketAddr = mapped.parse().unwrap();
        let SocketAddr::V4(mapped) = mapped else {
            panic!("IPv4 here")
        };
        let mut bytes = vec![0x01, 0x01, 0, 12, 0x21, 0x12, 0xA4, 0x42];
        bytes.extend_from_slice(&id);
        bytes.extend_from_slice(&[0, 0x20, 0, 8, 0, 1]);
        bytes.extend_from_slice(&(mapped.port() ^ 0x2112).to_be_bytes());
        let cookie = [0x21, 0x12, 0xA4, 0x42];
        bytes.extend(mapped.ip().octets().iter().zip(cookie).map(|(a, b)| a ^ b));
        bytes
    }
}

fn times(sent: &[Sent], kind: fn(&Sent) -> bool) -> Vec<Instant> {
    sent.iter()
        .filter(|s| kind(s))
        .map(|s| match s {
            Sent::Stun(at, _) | Sent::Crlf(at) | Sent::Register(at, _) => *at,
        })
        .collect()
}

fn is_register(s: &Sent) -> bool {
    matches!(s, Sent::Register(..))
}

/// The REGISTERs among what was sent, in order.
fn registers(sent: Vec<Sent>) -> Vec<Request> {
    sent.into_iter()
        .filter_map(|s| match s {
            Sent::Register(_, r) => Some(*r),
            _ => None,
        })
        .collect()
}

/// The gaps between keep-alives lie within 80–100 % of `interval`, starting from `from`.
fn assert_spaced(from: Instant, at: &[Instant], interval: Duration) {
    let mut last = from;
    for at in at {
        let gap = *at - last;
        assert!(
            gap >= interval.mul_f64(0.8) && gap <= interval,
            "a keep-alive {gap:?} after the last (interval {interval:?})"
        );
        last = *at;
    }
}

#[test]
fn an_outbound_registration_over_udp_is_kept_alive_by_answered_stun_requests() {
    let mut bench = Bench::registered(PhoneConfig::default(), &[("Require", "outbound")]);
    let registered_at = bench.now;
    let mut at = Vec::new();
    for _ in 0..8 {
        let id = bench.next_stun(Duration::from_secs(26));
        at.push(bench.now);
        bench.receive(&Bench::stun_answer(id, MAPPED));
    }
    assert_spaced(registered_at, &at, DEFAULT_UDP_KEEPALIVE);
    let quiet = bench.run_for(Duration::from_secs(19));
    assert!(
        !quiet.iter().any(is_register),
        "answered keep-alives keep the binding: {quiet:?}"
    );
}

#[test]
fn unanswered_stun_is_resent_then_the_flow_counts_as_dead_and_the_account_registers_again() {
    let mut bench = Bench::registered(PhoneConfig::default(), &[("Require", "outbound")]);
    let id = bench.next_stun(Duration::from_secs(26));
    let first = bench.now;
    let sent = bench.run_for(Duration::from_secs(11));
    // RFC 8489 back-off: the same request again at +0.5, +1.5, +3.5 and +7.5 s.
    let resent: Vec<Duration> = sent
        .iter()
        .filter_map(|s| match s {
            Sent::Stun(at, again) if *again == id => Some(*at - first),
            _ => None,
        })
        .collect();
    let expected: Vec<Duration> = [500, 1500, 3500, 7500]
        .into_iter()
        .map(Duration::from_millis)
        .collect();
    assert_eq!(resent, expected);
    // No answer in the pong timeout (10 s): the account registers again at once.
    let registers = times(&sent, is_register);
    assert_eq!(
        registers.first().map(|at| *at - first),
        Some(Duration::from_secs(10)),
        "{sent:?}"
    );
}

#[test]
fn an_answer_to_another_request_does_not_count() {
    let mut bench = Bench::registered(PhoneConfig::default(), &[("Require", "outbound")]);
    let mut id = bench.next_stun(Duration::from_secs(26));
    let first = bench.now;
    id[0] ^= 0xff;
    bench.receive(&Bench::stun_answer(id, MAPPED));
    let sent = bench.run_for(Duration::from_secs(11));
    let registers = times(&sent, is_register);
    assert_eq!(
        registers.first().map(|at| *at - first),
        Some(Duration::from_secs(10))
    );
}

#[test]
fn a_moved_nat_mapping_makes_the_account_register_again() {
    let mut bench = Bench::registered(PhoneConfig::default(), &[("Require", "outbound")]);
    let id = bench.next_stun(Duration::from_secs(26));
    bench.receive(&Bench::stun_answer(id, MAPPED));
    assert!(!bench.sent().iter().any(is_register));
    let id = bench.next_stun(Duration::from_secs(26));
    bench.receive(&Bench::stun_answer(id, "203.0.113.10:61001"));
    assert!(
        bench.sent().iter().any(is_register),
        "the binding points at the old mapping: register again"
    );
}

#[test]
fn without_outbound_crlf_datagrams_keep_the_nat_open_and_silence_is_fine() {
    let mut bench = Bench::registered(PhoneConfig::default(), &[]);
    let registered_at = bench.now;
    let sent = bench.run_for(Duration::from_secs(180));
    assert!(
        !sent.iter().any(|s| matches!(s, Sent::Stun(..))),
        "{sent:?}"
    );
    assert!(!sent.iter().any(is_register), "{sent:?}");
    let crlf = times(&sent, |s| matches!(s, Sent::Crlf(_)));
    assert!(crlf.len() >= 7, "{} in 3 minutes", crlf.len());
    assert_spaced(registered_at, &crlf, DEFAULT_UDP_KEEPALIVE);
}

#[test]
fn the_registrars_flow_timer_shortens_the_interval() {
    let mut bench = Bench::registered(
        PhoneConfig::default(),
        &[("Require", "outbound"), ("Flow-Timer", "10")],
    );
    let registered_at = bench.now;
    let mut at = Vec::new();
    for _ in 0..5 {
        let id = bench.next_stun(Duration::from_secs(11));
        at.push(bench.now);
        bench.receive(&Bench::stun_answer(id, MAPPED));
    }
    assert_spaced(registered_at, &at, Duration::from_secs(10));
}

#[test]
fn no_keepalives_in_the_background_with_push_and_none_when_turned_off() {
    let mut bench = Bench::registered(PhoneConfig::default(), &[("Require", "outbound")]);
    let account = bench.account;
    let params = vec![("pn-provider".to_string(), Some("fcm".to_string()))];
    bench.command(Command::SetContactParams(account, params));
    bench.command(Command::SetForeground(false));
    let register = registers(bench.sent())
        .into_iter()
        .next()
        .expect("the push parameters go to the registrar");
    bench.answer_register(&register, &[("Require", "outbound")]);
    let background = bench.run_for(Duration::from_secs(300));
    assert!(
        !background
            .iter()
            .any(|s| matches!(s, Sent::Stun(..) | Sent::Crlf(_))),
        "{background:?}"
    );
    // Back in the foreground they start again.
    bench.command(Command::SetForeground(true));
    bench.next_stun(Duration::from_secs(26));

    let off = PhoneConfig {
        udp_keepalive: None,
        ..PhoneConfig::default()
    };
    let mut bench = Bench::registered(off, &[("Require", "outbound")]);
    let sent = bench.run_for(Duration::from_secs(300));
    assert!(
        !sent
            .iter()
            .any(|s| matches!(s, Sent::Stun(..) | Sent::Crlf(_))),
        "{sent:?}"
    );
}

#[test]
fn a_network_change_looks_the_server_up_again_and_registers_from_the_new_address() {
    let mut bench = Bench::registered(PhoneConfig::default(), &[("Require", "outbound")]);
    let id = bench.next_stun(Duration::from_secs(26));
    bench.receive(&Bench::stun_answer(id, MAPPED));
    let lookups = bench.lookups;
    // Wi-Fi to cellular: the runtime now reports another address toward the server.
    bench.local = "10.64.0.2:40123".parse().unwrap();
    assert_eq!(bench.command(Command::NetworkChanged), Reply::Done);
    let sent = bench.sent();
    assert_eq!(bench.lookups, lookups + 1, "the server is looked up again");
    let shown = format!("{sent:?}");
    let mut registers = registers(sent);
    assert_eq!(
        registers.len(),
        1,
        "one REGISTER from the new address: {shown}"
    );
    let register = registers.remove(0);
    let contact = register.headers.get(&HeaderName::Contact).unwrap();
    assert!(contact.contains("@10.64.0.2:40123"), "{contact}");
    assert!(
        contact.contains("+sip.instance") && contact.contains("reg-id=1"),
        "the same instance and reg-id replace the old binding: {contact}"
    );
    let via = register.headers.top_via().unwrap().to_string();
    assert!(via.contains("10.64.0.2:40123"), "{via}");
    bench.answer_register(&register, &[("Require", "outbound")]);
    // The keep-alives go on from the new flow, and the new mapping is no "move".
    let id = bench.next_stun(Duration::from_secs(26));
    bench.receive(&Bench::stun_answer(id, "203.0.113.20:7000"));
    let quiet = bench.run_for(Duration::from_secs(20));
    assert!(!quiet.iter().any(is_register), "{quiet:?}");
}

#[test]
fn a_network_change_retries_a_failed_registration_at_once_but_not_a_refused_one() {
    // Failed for want of an answer: retried now, not after its back-off.
    let mut bench = Bench::registered(PhoneConfig::default(), &[]);
    bench.local = "10.64.0.2:40123".parse().unwrap();
    bench.command(Command::NetworkChanged);
    bench.run_for(Duration::from_secs(40));
    assert!(
        matches!(
            bench.state,
            Some(RegistrationState::Failed {
                retry_in: Some(_),
                ..
            })
        ),
        "no answer: {:?}",
        bench.state
    );
    bench.command(Command::NetworkChanged);
    let register = registers(bench.sent()).into_iter().next().unwrap();
    let mut refused = Response::to_request(&register, 403);
    refused.reason = "Forbidden".into();
    bench.receive(&refused.to_bytes());
    bench.sent();
    assert!(
        matches!(
            bench.state,
            Some(RegistrationState::Failed { retry_in: None, .. })
        ),
        "{:?}",
        bench.state
    );
    bench.command(Command::NetworkChanged);
    let sent = bench.sent();
    assert!(
        !sent.iter().any(is_register),
        "refused for good stays refused: {sent:?}"
    );
}
