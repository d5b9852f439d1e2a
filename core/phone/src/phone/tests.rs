//! The machine's contract, input by input: commands decided at once, the one way out ending
//! each drain with the next timeout, and an account's first steps (resolve, connect,
//! REGISTER with our Via and Contact on the flow). Whole conversations between phones run in
//! virtual time in `tests/tests/phone_sim.rs`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use handset_sip::message::{HeaderName, Message, Method};
use handset_sip::transport::{Flow, Target, Transport};
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::*;

#[allow(clippy::disallowed_methods)]
fn t0() -> Instant {
    Instant::now()
}

fn phone() -> Phone {
    Phone::new(
        PhoneConfig::default(),
        Box::new(NoDirectory),
        Box::new(StdRng::seed_from_u64(1)),
    )
}

fn drain(phone: &mut Phone) -> Vec<Output> {
    std::iter::from_fn(|| phone.poll_output()).collect()
}

const SERVER: &str = "127.0.0.9:5060";

fn add(phone: &mut Phone, now: Instant) -> AccountId {
    let config = AccountConfig::new(format!("sip:{SERVER}"), "1001", "secret");
    match phone.handle_input(now, Input::Command(Command::AddAccount(Box::new(config)))) {
        Ok(Reply::Account(id)) => id,
        other => panic!("{other:?}"),
    }
}

#[test]
fn commands_are_decided_at_once_and_refusals_change_nothing() {
    let mut phone = phone();
    let now = t0();
    let bad = AccountConfig::new("mailto:pbx@example.com", "1001", "x");
    assert!(matches!(
        phone.handle_input(now, Input::Command(Command::AddAccount(Box::new(bad)))),
        Err(PhoneError::InvalidServer(_))
    ));
    let blank = AccountConfig::new("sip:pbx.example.com", "  ", "x");
    assert!(matches!(
        phone.handle_input(now, Input::Command(Command::AddAccount(Box::new(blank)))),
        Err(PhoneError::InvalidArgument(_))
    ));
    assert!(phone.accounts().is_empty());
    assert_eq!(
        phone.handle_input(now, Input::Command(Command::Hangup(CallId(7)))),
        Err(PhoneError::UnknownCall(CallId(7)))
    );
    assert_eq!(
        phone.handle_input(now, Input::Command(Command::Register(AccountId(3)))),
        Err(PhoneError::UnknownAccount(AccountId(3)))
    );
    let id = add(&mut phone, now);
    assert!(matches!(
        phone.handle_input(
            now,
            Input::Command(Command::Dial {
                account: id,
                target: "sip:".into(),
                media: None,
                report_id: None,
            })
        ),
        Err(PhoneError::InvalidTarget(_))
    ));
    assert_eq!(phone.call_count(), 0);
    assert!(matches!(
        phone.handle_input(now, Input::Command(Command::Push(b"{not json".to_vec()))),
        Err(PhoneError::Push(_))
    ));
}

#[test]
fn each_drain_after_an_input_ends_with_the_next_timeout_and_then_nothing() {
    let mut phone = phone();
    let now = t0();
    let id = add(&mut phone, now);
    // Nothing is scheduled yet (the REGISTER waits for the server's address): no timeout.
    let outputs = drain(&mut phone);
    assert!(
        !outputs.iter().any(|o| matches!(o, Output::Timeout(_))),
        "{outputs:?}"
    );
    let server: SocketAddr = SERVER.parse().unwrap();
    phone
        .handle_input(
            now,
            Input::Resolved {
                account: id,
                result: Ok(vec![Target {
                    transport: Transport::Udp,
                    addr: server,
                    host: "127.0.0.9".into(),
                }]),
            },
        )
        .unwrap();
    drain(&mut phone);
    let flow = Flow::new(Transport::Udp, server);
    let local: SocketAddr = "127.0.0.1:40123".parse().unwrap();
    phone
        .handle_input(now, Input::Connected { flow, local })
        .unwrap();
    // The REGISTER went out in a transaction: its retransmission timer is next.
    let outputs = drain(&mut phone);
    let Some(Output::Timeout(at)) = outputs.last() else {
        panic!("the drain ends with the next timeout: {outputs:?}");
    };
    assert_eq!(*at, now + Duration::from_millis(500), "Timer E is T1");
    assert_eq!(
        outputs
            .iter()
            .filter(|o| matches!(o, Output::Timeout(_)))
            .count(),
        1
    );
    assert!(
        phone.poll_output().is_none(),
        "nothing until the next input"
    );
    // The timer fires: the REGISTER goes out again and the next timeout is twice as far.
    phone.handle_input(*at, Input::Timeout).unwrap();
    let outputs = drain(&mut phone);
    assert!(outputs.iter().any(|o| matches!(o, Output::Transmit { .. })));
    assert!(matches!(
        outputs.last(),
        Some(Output::Timeout(next)) if *next == *at + Duration::from_secs(1)
    ));
}

#[test]
fn a_new_account_resolves_connects_and_registers_with_our_address_on_the_flow() {
    let mut phone = phone();
    let now = t0();
    let id = add(&mut phone, now);
    let outputs = drain(&mut phone);
    let target = outputs
        .iter()
        .find_map(|o| match o {
            Output::Resolve { account, target } if *account == id => Some(target.clone()),
            _ => None,
        })
        .expect("the server is looked up first");
    assert_eq!(target.host, "127.0.0.9");
    let server: SocketAddr = SERVER.parse().unwrap();
    phone
        .handle_input(
            now,
            Input::Resolved {
                account: id,
                result: Ok(vec![Target {
                    transport: Transport::Udp,
                    addr: server,
                    host: "127.0.0.9".into(),
                }]),
            },
        )
        .unwrap();
    let flow = Flow::new(Transport::Udp, server);
    assert!(
        drain(&mut phone)
            .iter()
            .any(|o| matches!(o, Output::Connect { flow: f, tls: None } if *f == flow)),
        "the account's flow is opened"
    );
    let local: SocketAddr = "127.0.0.1:40123".parse().unwrap();
    phone
        .handle_input(now, Input::Connected { flow, local })
        .unwrap();
    let register = drain(&mut phone)
        .into_iter()
        .find_map(|o| match o {
            Output::Transmit { flow: f, bytes } if f == flow => match Message::parse(&bytes) {
                Ok(Message::Request(r)) if r.method == Method::Register => Some(r),
                _ => None,
            },
            _ => None,
        })
        .expect("a REGISTER on the flow");
    let via = register.headers.top_via().unwrap();
    assert_eq!(via.transport, "UDP");
    assert!(via.to_string().contains("127.0.0.1:40123"), "{via}");
    assert!(via.rport().is_some(), "rport asked for (RFC 3581)");
    let contact = register.headers.get(&HeaderName::Contact).unwrap();
    assert!(contact.contains("1001@127.0.0.1:40123"), "{contact}");
}

#[test]
fn a_push_is_reported_at_once_and_a_duplicate_gets_the_same_report() {
    let mut phone = phone();
    let now = t0();
    let payload = br#"{"type":"incoming_call","call_id":"abc@pbx","from":"sip:2001@pbx","from_name":"Alice"}"#;
    let first = phone
        .handle_input(now, Input::Command(Command::Push(payload.to_vec())))
        .unwrap();
    let again = phone
        .handle_input(
            now + Duration::from_millis(5),
            Input::Command(Command::Push(payload.to_vec())),
        )
        .unwrap();
    assert_eq!(first, again);
    let Reply::PushReport { report, .. } = first else {
        panic!("{first:?}")
    };
    assert_eq!(report.caller_number, "2001");
    assert_eq!(
        report.report_id,
        crate::push::ReportId::for_call_id("abc@pbx")
    );
    // Declining before the INVITE ends the report, once.
    assert_eq!(
        phone.handle_input(
            now,
            Input::Command(Command::DeclinePushReport(report.report_id))
        ),
        Ok(Reply::ReportEnded(true))
    );
    assert_eq!(
        phone.handle_input(
            now,
            Input::Command(Command::DeclinePushReport(report.report_id))
        ),
        Ok(Reply::ReportEnded(false))
    );
    let ended = drain(&mut phone).into_iter().any(|o| {
        matches!(
            o,
            Output::Event(PhoneEvent::PushReportEnded {
                reason: EndReason::Declined,
                ..
            })
        )
    });
    assert!(ended);
}

#[test]
fn new_dns_servers_retry_only_accounts_whose_server_was_not_found() {
    // On a phone the first lookup can fail for want of DNS servers; when the app gives them,
    // the account must not wait out its back-off. An account whose server was found is left
    // alone.
    let mut phone = phone();
    let now = t0();
    let lost = add(&mut phone, now);
    let found = add(&mut phone, now);
    drain(&mut phone);
    phone
        .handle_input(
            now,
            Input::Resolved {
                account: lost,
                result: Err("no DNS server known".into()),
            },
        )
        .unwrap();
    let server: SocketAddr = SERVER.parse().unwrap();
    phone
        .handle_input(
            now,
            Input::Resolved {
                account: found,
                result: Ok(vec![Target {
                    transport: Transport::Udp,
                    addr: server,
                    host: "127.0.0.9".into(),
                }]),
            },
        )
        .unwrap();
    let outputs = drain(&mut phone);
    let failed = outputs.iter().find_map(|o| match o {
        Output::Event(PhoneEvent::Registration { account, state }) if *account == lost => {
            Some(state.clone())
        }
        _ => None,
    });
    match failed {
        Some(RegistrationState::Failed {
            detail: Some(detail),
            retry_in: Some(_),
            ..
        }) => assert!(detail.contains("no DNS server known"), "{detail}"),
        other => panic!("the lookup failure is the account's: {other:?}"),
    }
    assert_eq!(
        phone.handle_input(now, Input::Command(Command::DnsChanged)),
        Ok(Reply::Done)
    );
    let resolves: Vec<AccountId> = drain(&mut phone)
        .iter()
        .filter_map(|o| match o {
            Output::Resolve { account, .. } => Some(*account),
            _ => None,
        })
        .collect();
    assert_eq!(resolves, vec![lost], "only the lost account looks again");
    // A second change while that lookup runs asks nothing more.
    phone
        .handle_input(now, Input::Command(Command::DnsChanged))
        .unwrap();
    assert!(
        !drain(&mut phone)
            .iter()
            .any(|o| matches!(o, Output::Resolve { .. }))
    );
}
