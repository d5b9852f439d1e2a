#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

use super::*;
use crate::auth::Credentials;
use crate::message::Host;
use rand::SeedableRng;
use rand::rngs::StdRng;

fn config() -> RegistrationConfig {
    let domain = Host::Domain("example.test".into());
    let mut contact = SipUri::new(Some("alice"), Host::V4([127, 0, 0, 1].into()));
    contact.port = Some(5070);
    RegistrationConfig {
        aor: SipUri::new(Some("alice"), domain.clone()),
        registrar: SipUri::new(None, domain),
        contact,
        display_name: Some("Alice".into()),
        expires: 600,
        instance_id: Some("urn:uuid:00000000-0000-4000-8000-000000000001".into()),
        reg_id: Some(1),
        contact_params: vec![("pn-provider".into(), Some("apns".into()))],
        rewrite_contact: true,
        retry: RetryPolicy::default(),
        user_agent: "Handset-test".into(),
    }
}

fn registration() -> Registration {
    Registration::new(
        config(),
        CredentialStore::with_default(Credentials::with_password("alice", "alice-secret")),
        Box::new(StdRng::seed_from_u64(7)),
    )
}

fn drain(reg: &mut Registration) -> (Vec<Request>, Vec<RegistrationEvent>) {
    let mut sent = Vec::new();
    let mut events = Vec::new();
    while let Some(out) = reg.poll_output() {
        match out {
            RegistrationOutput::Send(mut r) => {
                r.headers.push_front(
                    HeaderName::Via,
                    "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKt;rport",
                );
                sent.push(r)
            }
            RegistrationOutput::Event(e) => events.push(e),
        }
    }
    (sent, events)
}

fn answer(request: &Request, status: u16, extra: &[(&str, &str)]) -> Response {
    let mut response = Response::to_request(request, status);
    for (name, value) in extra {
        response.headers.push(*name, *value);
    }
    response
}

const CHALLENGE: &str = r#"Digest realm="example.test", nonce="abc123", qop="auth", algorithm=MD5"#;

#[test]
fn registers_with_digest_and_refreshes_before_expiry() {
    let t0 = Instant::now();
    let mut reg = registration();
    reg.start(t0);
    let (sent, events) = drain(&mut reg);
    assert_eq!(events, vec![RegistrationEvent::Registering]);
    let first = &sent[0];
    assert_eq!(first.uri.to_string(), "sip:example.test");
    assert_eq!(first.headers.cseq().unwrap().seq, 1);
    assert_eq!(first.headers.expires().unwrap(), Some(600));
    let contact = first.headers.contacts().unwrap()[0].clone().unwrap();
    assert_eq!(
        contact.param("+sip.instance"),
        Some(Some("\"<urn:uuid:00000000-0000-4000-8000-000000000001>\""))
    );
    assert_eq!(contact.param("reg-id"), Some(Some("1")));
    assert_eq!(
        contact.uri.as_sip().and_then(|u| u.param("pn-provider")),
        Some(Some("apns")),
        "RFC 8599 parameters go in the Contact URI"
    );
    assert!(first.headers.get(&HeaderName::Authorization).is_none());

    reg.handle_response(t0, &answer(first, 401, &[("WWW-Authenticate", CHALLENGE)]));
    let (sent, _) = drain(&mut reg);
    let second = &sent[0];
    assert_eq!(second.headers.cseq().unwrap().seq, 2);
    assert_eq!(
        second.headers.call_id().unwrap(),
        first.headers.call_id().unwrap()
    );
    let auth = second.headers.get(&HeaderName::Authorization).unwrap();
    assert!(auth.contains("nc=00000001"), "{auth}");

    let granted = "<sip:alice@127.0.0.1:5070>;expires=60";
    reg.handle_response(t0, &answer(second, 200, &[("Contact", granted)]));
    let (sent, events) = drain(&mut reg);
    assert!(sent.is_empty());
    assert_eq!(events, vec![RegistrationEvent::Registered { expires: 60 }]);
    assert_eq!(reg.poll_timeout(), Some(t0 + Duration::from_secs(51)));

    reg.handle_timeout(t0 + Duration::from_secs(50));
    assert!(reg.poll_output().is_none(), "refresh fired early");
    reg.handle_timeout(t0 + Duration::from_secs(51));
    let (sent, events) = drain(&mut reg);
    assert_eq!(events, vec![RegistrationEvent::Registering]);
    let refresh = &sent[0];
    assert_eq!(refresh.headers.cseq().unwrap().seq, 3);
    let auth = refresh.headers.get(&HeaderName::Authorization).unwrap();
    assert!(auth.contains("nc=00000002"), "{auth}");
}

#[test]
fn wrong_password_fails_without_retry_loop() {
    let t0 = Instant::now();
    let mut reg = registration();
    reg.start(t0);
    let (sent, _) = drain(&mut reg);
    reg.handle_response(
        t0,
        &answer(&sent[0], 401, &[("WWW-Authenticate", CHALLENGE)]),
    );
    let (sent, _) = drain(&mut reg);
    let again = CHALLENGE.replace("abc123", "def456");
    reg.handle_response(t0, &answer(&sent[0], 401, &[("WWW-Authenticate", &again)]));
    let (sent, events) = drain(&mut reg);
    assert!(sent.is_empty());
    assert_eq!(
        events,
        vec![RegistrationEvent::Failed {
            reason: RegistrationFailure::AuthenticationFailed {
                realm: "example.test".into()
            },
            retry_in: None
        }]
    );
    assert_eq!(reg.poll_timeout(), None);
}

#[test]
fn interval_too_brief_retries_with_min_expires() {
    let t0 = Instant::now();
    let mut reg = registration();
    reg.start(t0);
    let (sent, _) = drain(&mut reg);
    reg.handle_response(t0, &answer(&sent[0], 423, &[("Min-Expires", "1200")]));
    let (sent, _) = drain(&mut reg);
    assert_eq!(sent[0].headers.expires().unwrap(), Some(1200));
    // A 423 that does not raise the interval would loop: it is a failure instead.
    reg.handle_response(t0, &answer(&sent[0], 423, &[("Min-Expires", "1200")]));
    let (sent, events) = drain(&mut reg);
    assert!(sent.is_empty());
    assert!(matches!(
        events[0],
        RegistrationEvent::Failed {
            reason: RegistrationFailure::BadResponse(_),
            ..
        }
    ));
}

#[test]
fn failures_back_off_exponentially_with_jitter() {
    let t0 = Instant::now();
    let mut reg = registration();
    reg.start(t0);
    let mut now = t0;
    let mut waits = Vec::new();
    for _ in 0..8 {
        drain(&mut reg);
        reg.handle_transaction_failure(now, TransactionFailure::Timeout);
        let (_, events) = drain(&mut reg);
        let RegistrationEvent::Failed {
            reason: RegistrationFailure::Timeout,
            retry_in: Some(wait),
        } = events[0]
        else {
            panic!("{events:?}")
        };
        waits.push(wait);
        assert_eq!(reg.poll_timeout(), Some(now + wait));
        now += wait;
        reg.handle_timeout(now);
        assert_eq!(reg.state(), RegistrationState::Registering);
    }
    for (i, wait) in waits.iter().enumerate() {
        let full = Duration::from_secs(30 * (1 << i)).min(Duration::from_secs(1800));
        assert!(*wait >= full / 2 && *wait <= full, "wait {i}: {wait:?}");
    }
}

#[test]
fn retry_after_is_honoured() {
    let t0 = Instant::now();
    let mut reg = registration();
    reg.start(t0);
    let (sent, _) = drain(&mut reg);
    reg.handle_response(
        t0,
        &answer(&sent[0], 503, &[("Retry-After", "300 (maintenance)")]),
    );
    let (_, events) = drain(&mut reg);
    let RegistrationEvent::Failed {
        retry_in: Some(wait),
        ..
    } = events[0]
    else {
        panic!("{events:?}")
    };
    assert!(wait >= Duration::from_secs(300));
}

#[test]
fn unregister_after_and_during_registration() {
    let t0 = Instant::now();
    let mut reg = registration();
    reg.start(t0);
    let (sent, _) = drain(&mut reg);
    reg.unregister(t0);
    assert!(
        reg.poll_output().is_none(),
        "must wait for the REGISTER in flight"
    );
    reg.handle_response(t0, &answer(&sent[0], 200, &[]));
    let (sent, events) = drain(&mut reg);
    assert!(events.is_empty());
    assert_eq!(sent[0].headers.expires().unwrap(), Some(0));
    reg.handle_response(t0, &answer(&sent[0], 200, &[]));
    let (_, events) = drain(&mut reg);
    assert_eq!(events, vec![RegistrationEvent::Unregistered]);
    assert_eq!(reg.poll_timeout(), None);
}

#[test]
fn contact_follows_received_and_rport() {
    let t0 = Instant::now();
    let mut reg = registration();
    reg.start(t0);
    let (sent, _) = drain(&mut reg);
    let mut ok = answer(&sent[0], 200, &[]);
    ok.headers.set(
        HeaderName::Via,
        "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKt;received=127.0.0.9;rport=40000",
    );
    reg.handle_response(t0, &ok);
    let (sent, events) = drain(&mut reg);
    assert!(events.is_empty(), "the same attempt goes on: {events:?}");
    let contact = sent[0].headers.contacts().unwrap()[0].clone().unwrap();
    assert_eq!(
        contact.uri.to_string(),
        "sip:alice@127.0.0.9:40000;pn-provider=apns"
    );
}

#[test]
fn refresh_delay_bounds() {
    assert_eq!(refresh_delay(3600), Duration::from_secs(3060));
    assert_eq!(refresh_delay(20), Duration::from_secs(15));
    assert_eq!(refresh_delay(4), Duration::from_millis(3400));
}

#[test]
fn reads_outbound_support_and_the_flow_timer_from_each_2xx() {
    let t0 = Instant::now();
    let mut reg = registration();
    reg.start(t0);
    let (sent, _) = drain(&mut reg);
    assert_eq!(reg.outbound(), OutboundSupport::default());
    let contact = "<sip:alice@127.0.0.1:5070>;expires=600";
    reg.handle_response(
        t0,
        &answer(
            &sent[0],
            200,
            &[
                ("Contact", contact),
                ("Require", "gruu, Outbound"),
                ("Flow-Timer", " 25"),
            ],
        ),
    );
    assert_eq!(
        reg.outbound(),
        OutboundSupport {
            outbound: true,
            flow_timer: Some(25)
        }
    );
    // A refresh answered by a registrar that stopped applying outbound: plain again.
    reg.handle_timeout(t0 + Duration::from_secs(600));
    let (sent, _) = drain(&mut reg);
    reg.handle_response(
        t0 + Duration::from_secs(600),
        &answer(
            &sent[0],
            200,
            &[("Contact", contact), ("Flow-Timer", "soon")],
        ),
    );
    assert_eq!(reg.outbound(), OutboundSupport::default());
}
