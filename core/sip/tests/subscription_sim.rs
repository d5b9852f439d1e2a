//! Message-waiting subscriptions (RFC 6665 + RFC 3842) between a [`Subscription`] (node A,
//! the phone) and a scripted voicemail notifier (node B), each over its own transaction layer,
//! across the virtual-time network of `common/sim.rs`. The harness plays the runtime: it adds
//! Vias, starts transactions, routes responses, failures and NOTIFYs to the subscription, and
//! fires its timers; two hours of refreshes run in milliseconds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/sim.rs"]
mod sim;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use handset_sip::auth::{Challenge, CredentialStore, Credentials, DigestResponse};
use handset_sip::dialog::Dialog;
use handset_sip::message::{HeaderName, Host, Method, Request, Response, SipUri, Uri};
use handset_sip::transaction::{TransactionEvent, TransactionId, TransactionLayer, new_branch};
use handset_sip::usage::message_summary::{
    MessageClass, MessageCounts, MessageSummary, MessageSummaryError, SIMPLE_MESSAGE_SUMMARY,
};
use handset_sip::usage::subscription::{
    RetryPolicy, Subscription, SubscriptionConfig, SubscriptionEvent, SubscriptionFailure,
    SubscriptionOutput, SubscriptionState, TerminationReason, TransactionFailure,
    stray_notify_response,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sim::{Link, Node, Sim};

const CHALLENGE: &str =
    r#"Digest realm="vm.example.test", nonce="n0nce42", qop="auth", algorithm=MD5"#;
const PASSWORD: &str = "alice-secret";
const MWI: &str = "Messages-Waiting: yes\r\nMessage-Account: sip:alice@example.test\r\n\
                   Voice-Message: 2/8 (0/2)\r\n";

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

// ---------------------------------------------------------------------------------------------
// Node A: the subscription and the runtime duties around it.

struct Subscriber {
    start: Instant,
    sub: Subscription,
    /// The client transaction of the latest SUBSCRIBE (failures of others are not reported).
    current_tx: Option<TransactionId>,
    events: Vec<(Duration, SubscriptionEvent)>,
    /// Every SUBSCRIBE the machine asked to send (first transmissions only).
    sent: Vec<(Duration, Request)>,
    /// Status of every response A gave to a NOTIFY.
    notify_answers: Vec<(Duration, u16)>,
    rng: StdRng,
}

impl Subscriber {
    fn pump(&mut self, now: Instant, layer: &mut TransactionLayer<Node>) {
        while let Some(out) = self.sub.poll_output() {
            match out {
                SubscriptionOutput::Send(mut request) => {
                    let via = format!(
                        "SIP/2.0/UDP 192.0.2.1:5060;branch={};rport",
                        new_branch(&mut self.rng)
                    );
                    request.headers.push_front(HeaderName::Via, via);
                    self.sent.push((now - self.start, request.clone()));
                    self.current_tx =
                        Some(layer.send_request(now, request, Node::B, false).unwrap());
                }
                SubscriptionOutput::Event(event) => self.events.push((now - self.start, event)),
            }
        }
    }

    fn on_event(
        &mut self,
        now: Instant,
        event: &TransactionEvent<Node>,
        layer: &mut TransactionLayer<Node>,
    ) {
        match event {
            TransactionEvent::Response { response, .. } => self.sub.handle_response(now, response),
            TransactionEvent::Timeout { id } if self.current_tx == Some(*id) => self
                .sub
                .handle_transaction_failure(now, TransactionFailure::Timeout),
            TransactionEvent::TransportError { id } if self.current_tx == Some(*id) => self
                .sub
                .handle_transaction_failure(now, TransactionFailure::Transport),
            TransactionEvent::NewRequest { id, request, .. } => {
                let response = if self.sub.matches_request(request) {
                    self.sub.handle_notify(now, request)
                } else {
                    stray_notify_response(request)
                };
                self.notify_answers
                    .push((now - self.start, response.status));
                layer.send_response(now, *id, response).unwrap();
            }
            _ => {}
        }
        self.pump(now, layer);
    }
}

// ---------------------------------------------------------------------------------------------
// Node B: a voicemail server's notifier, scripted by its fields.

struct Subscribed {
    dialog: Dialog,
    expires_at: Instant,
}

#[derive(Default)]
struct NotifierPolicy {
    /// Challenge every new subscription once (401), then check the digest.
    challenge: bool,
    /// Answer 423 below this duration.
    min_expires: Option<u32>,
    /// The longest duration granted.
    max_expires: Option<u32>,
    /// Answer every SUBSCRIBE with this status.
    reject: Option<u16>,
    /// Send the NOTIFY before the 2xx.
    notify_first: bool,
}

struct Notifier {
    start: Instant,
    policy: NotifierPolicy,
    body: String,
    subs: Vec<Subscribed>,
    /// Every SUBSCRIBE received (new server transactions only).
    subscribes: Vec<(Duration, Request)>,
    /// Status of every answer to B's NOTIFYs.
    notify_answers: Vec<(Duration, u16)>,
    /// Digest checks of authorized SUBSCRIBEs.
    auth_ok: Vec<bool>,
    /// Subscriptions that ran out without a refresh.
    expired: Vec<Duration>,
    /// In-dialog SUBSCRIBEs for a subscription that had already run out.
    late: usize,
    rng: StdRng,
    tags: u32,
}

fn digest_field(auth: &str, name: &str) -> String {
    let start = auth.find(&format!("{name}=")).unwrap() + name.len() + 1;
    auth[start..]
        .trim_start_matches('"')
        .split(['"', ','])
        .next()
        .unwrap()
        .to_string()
}

impl Notifier {
    fn new(start: Instant, policy: NotifierPolicy) -> Notifier {
        Notifier {
            start,
            policy,
            body: MWI.to_string(),
            subs: Vec::new(),
            subscribes: Vec::new(),
            notify_answers: Vec::new(),
            auth_ok: Vec::new(),
            expired: Vec::new(),
            late: 0,
            rng: StdRng::seed_from_u64(99),
            tags: 0,
        }
    }

    fn next_timeout(&self) -> Option<Instant> {
        self.subs.iter().map(|s| s.expires_at).min()
    }

    fn handle_timeout(&mut self, now: Instant, layer: &mut TransactionLayer<Node>) {
        while let Some(i) = self.subs.iter().position(|s| s.expires_at <= now) {
            self.expired.push(now - self.start);
            let mut sub = self.subs.remove(i);
            let notify = self.notify(&mut sub.dialog, "terminated;reason=timeout", None);
            layer.send_request(now, notify, Node::A, false).unwrap();
        }
    }

    fn notify(&mut self, dialog: &mut Dialog, state: &str, body: Option<&[u8]>) -> Request {
        let mut r = dialog.new_request(Method::Notify);
        let via = format!(
            "SIP/2.0/UDP 192.0.2.9:5060;branch={}",
            new_branch(&mut self.rng)
        );
        r.headers.push_front(HeaderName::Via, via);
        r.headers
            .push(HeaderName::Contact, "<sip:vm@192.0.2.9:5060>");
        r.headers.push(HeaderName::Event, "message-summary");
        r.headers.push("Subscription-State", state);
        if let Some(body) = body {
            r.headers
                .push(HeaderName::ContentType, SIMPLE_MESSAGE_SUMMARY);
            r.body = body.to_vec();
        }
        r
    }

    /// Sends a NOTIFY in every live subscription; `terminated` states end them.
    fn notify_all(
        &mut self,
        now: Instant,
        layer: &mut TransactionLayer<Node>,
        state: &str,
        body: Option<&[u8]>,
    ) {
        let mut subs = std::mem::take(&mut self.subs);
        for sub in &mut subs {
            let notify = self.notify(&mut sub.dialog, state, body);
            layer.send_request(now, notify, Node::A, false).unwrap();
        }
        if !state.starts_with("terminated") {
            self.subs = subs;
        }
    }

    fn respond(
        &self,
        now: Instant,
        layer: &mut TransactionLayer<Node>,
        id: TransactionId,
        r: Response,
    ) {
        layer.send_response(now, id, r).unwrap();
    }

    fn on_event(
        &mut self,
        now: Instant,
        event: &TransactionEvent<Node>,
        layer: &mut TransactionLayer<Node>,
    ) {
        match event {
            TransactionEvent::NewRequest { id, request, .. }
                if request.method == Method::Subscribe =>
            {
                self.on_subscribe(now, *id, request, layer)
            }
            TransactionEvent::NewRequest { id, request, .. } => {
                self.respond(now, layer, *id, Response::to_request(request, 501))
            }
            TransactionEvent::Response { response, .. }
                if response.headers.cseq().unwrap().method == Method::Notify =>
            {
                self.notify_answers
                    .push((now - self.start, response.status));
            }
            _ => {}
        }
    }

    fn with_tag(request: &Request, status: u16, tag: &str) -> Response {
        let mut r = Response::to_request(request, status);
        if request.headers.to().unwrap().tag().is_none() {
            let to = format!(
                "{};tag={tag}",
                request.headers.get(&HeaderName::To).unwrap()
            );
            r.headers.set(HeaderName::To, to);
        }
        r
    }

    fn on_subscribe(
        &mut self,
        now: Instant,
        id: TransactionId,
        request: &Request,
        layer: &mut TransactionLayer<Node>,
    ) {
        self.subscribes.push((now - self.start, request.clone()));
        assert_eq!(
            request.headers.get(&HeaderName::Event),
            Some("message-summary")
        );
        assert_eq!(
            request.headers.get(&HeaderName::Accept),
            Some(SIMPLE_MESSAGE_SUMMARY)
        );
        if let Some(status) = self.policy.reject {
            let r = Notifier::with_tag(request, status, "reject");
            return self.respond(now, layer, id, r);
        }
        let requested = request.headers.expires().unwrap().unwrap_or(3600);
        let to_tag = request.headers.to().unwrap().tag().map(str::to_string);
        if self.policy.challenge && to_tag.is_none() {
            let Some(auth) = request.headers.get(&HeaderName::Authorization) else {
                let mut r = Notifier::with_tag(request, 401, "auth");
                r.headers.push(HeaderName::WwwAuthenticate, CHALLENGE);
                return self.respond(now, layer, id, r);
            };
            let expected = DigestResponse::compute(
                &Challenge::parse(CHALLENGE).unwrap(),
                &Credentials::with_password("alice", PASSWORD),
                "SUBSCRIBE",
                &request.uri.to_string(),
                &request.body,
                u32::from_str_radix(&digest_field(auth, "nc"), 16).unwrap(),
                &digest_field(auth, "cnonce"),
            )
            .unwrap();
            let good = digest_field(auth, "response") == expected.response
                && digest_field(auth, "username") == "alice";
            self.auth_ok.push(good);
            if !good {
                let r = Notifier::with_tag(request, 403, "auth");
                return self.respond(now, layer, id, r);
            }
        }
        if let Some(min) = self.policy.min_expires
            && requested != 0
            && requested < min
        {
            let mut r = Notifier::with_tag(request, 423, "brief");
            r.headers.push(HeaderName::MinExpires, min.to_string());
            return self.respond(now, layer, id, r);
        }
        let granted = requested.min(self.policy.max_expires.unwrap_or(u32::MAX));
        let index = match &to_tag {
            None => {
                self.tags += 1;
                let tag = format!("vm{}", self.tags);
                let dialog = Dialog::uas(request, tag, 100).unwrap();
                self.subs.push(Subscribed {
                    dialog,
                    expires_at: now,
                });
                self.subs.len() - 1
            }
            Some(_) => {
                let Some(i) = self.subs.iter().position(|s| s.dialog.matches(request)) else {
                    let r = Response::to_request(request, 481);
                    return self.respond(now, layer, id, r);
                };
                if now > self.subs[i].expires_at {
                    self.late += 1;
                }
                self.subs[i].dialog.check_remote_cseq(request).unwrap();
                i
            }
        };
        let tag = self.subs[index].dialog.local_tag.clone();
        let mut ok = Notifier::with_tag(request, 200, &tag);
        ok.headers
            .push(HeaderName::Contact, "<sip:vm@192.0.2.9:5060>");
        ok.headers.push(HeaderName::Expires, granted.to_string());
        let state = if granted == 0 {
            "terminated;reason=timeout".to_string()
        } else {
            format!("active;expires={granted}")
        };
        let body = self.body.clone().into_bytes();
        let mut sub = self.subs.remove(index);
        let notify = self.notify(&mut sub.dialog, &state, Some(&body));
        if self.policy.notify_first {
            layer.send_request(now, notify, Node::A, false).unwrap();
            self.respond(now, layer, id, ok);
        } else {
            self.respond(now, layer, id, ok);
            layer.send_request(now, notify, Node::A, false).unwrap();
        }
        if granted > 0 {
            sub.expires_at = now + secs(granted.into());
            self.subs.insert(index, sub);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The harness.

struct Harness {
    sim: Sim,
    a: Rc<RefCell<Subscriber>>,
    b: Rc<RefCell<Notifier>>,
}

fn config() -> SubscriptionConfig {
    let aor = SipUri::new(Some("alice"), Host::Domain("example.test".into()));
    let mut contact = SipUri::new(Some("alice"), Host::V4([192, 0, 2, 1].into()));
    contact.port = Some(5060);
    let mut c = SubscriptionConfig::message_summary(aor, contact);
    c.user_agent = "Handset-sim".into();
    c.retry = RetryPolicy {
        base: secs(10),
        max: secs(60),
    };
    c
}

impl Harness {
    fn new(seed: u64, link: Link, policy: NotifierPolicy) -> Harness {
        Harness::with_config(seed, link, policy, config())
    }

    fn with_config(
        seed: u64,
        link: Link,
        policy: NotifierPolicy,
        config: SubscriptionConfig,
    ) -> Harness {
        let mut sim = Sim::new(seed, link);
        let sub = Subscription::new(
            config,
            CredentialStore::with_default(Credentials::with_password("alice", PASSWORD)),
            Box::new(StdRng::seed_from_u64(seed)),
        );
        let a = Rc::new(RefCell::new(Subscriber {
            start: sim.start,
            sub,
            current_tx: None,
            events: Vec::new(),
            sent: Vec::new(),
            notify_answers: Vec::new(),
            rng: StdRng::seed_from_u64(seed + 1000),
        }));
        let b = Rc::new(RefCell::new(Notifier::new(sim.start, policy)));
        let tu_a = a.clone();
        sim.set_tu(Node::A, move |now, event, layer| {
            tu_a.borrow_mut().on_event(now, event, layer)
        });
        let tu_b = b.clone();
        sim.set_tu(Node::B, move |now, event, layer| {
            tu_b.borrow_mut().on_event(now, event, layer)
        });
        Harness { sim, a, b }
    }

    /// Acts on the subscription at the current virtual time, then sends what it asks.
    fn with_sub(&mut self, f: impl FnOnce(Instant, &mut Subscription)) {
        let now = self.sim.now;
        let mut a = self.a.borrow_mut();
        f(now, &mut a.sub);
        a.pump(now, &mut self.sim.node_mut(Node::A).layer);
    }

    /// Acts on the notifier at the current virtual time.
    fn with_notifier(
        &mut self,
        f: impl FnOnce(Instant, &mut Notifier, &mut TransactionLayer<Node>),
    ) {
        let now = self.sim.now;
        let mut b = self.b.borrow_mut();
        f(now, &mut b, &mut self.sim.node_mut(Node::B).layer);
    }

    fn start(&mut self) {
        self.with_sub(|now, sub| sub.start(now));
    }

    /// Runs the network and both machines' timers for `d` of virtual time.
    fn run_for(&mut self, d: Duration) {
        let deadline = self.sim.now + d;
        loop {
            self.sim.flush();
            let next = [
                self.sim.next_event(),
                self.a.borrow().sub.poll_timeout(),
                self.b.borrow().next_timeout(),
            ]
            .into_iter()
            .flatten()
            .min();
            let Some(t) = next.filter(|t| *t <= deadline) else {
                break;
            };
            self.sim.run_until(t);
            let now = self.sim.now;
            if self.a.borrow().sub.poll_timeout().is_some_and(|x| x <= now) {
                self.with_sub(|now, sub| sub.handle_timeout(now));
            }
            if self.b.borrow().next_timeout().is_some_and(|x| x <= now) {
                self.with_notifier(|now, n, layer| n.handle_timeout(now, layer));
            }
        }
        self.sim.run_until(deadline);
    }

    fn events(&self) -> Vec<SubscriptionEvent> {
        self.a
            .borrow()
            .events
            .iter()
            .map(|(_, e)| e.clone())
            .collect()
    }

    fn state(&self) -> SubscriptionState {
        self.a.borrow().sub.state()
    }

    fn summaries(&self) -> Vec<Result<MessageSummary, MessageSummaryError>> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                SubscriptionEvent::Notification(n) => Some(n.message_summary()),
                _ => None,
            })
            .collect()
    }

    fn sent_subscribes(&self) -> Vec<(Duration, Request)> {
        self.a.borrow().sent.clone()
    }
}

fn expected_summary() -> MessageSummary {
    let mut s = MessageSummary::new(true);
    s.account = Some("sip:alice@example.test".into());
    s.set_counts(
        MessageClass::Voice,
        Some(MessageCounts {
            new: 2,
            old: 8,
            urgent_new: 0,
            urgent_old: 2,
        }),
    );
    s
}

// ---------------------------------------------------------------------------------------------

/// SUBSCRIBE → 401 → SUBSCRIBE with a correct digest → 200 → NOTIFY with the counts → event,
/// on a clean link and on lossy, jittery ones (where the NOTIFY may overtake the 200).
#[test]
fn subscribe_challenge_ok_and_notify_reports_counts() {
    for (seed, link) in [(1, Link::udp(ms(20)))]
        .into_iter()
        .chain((2..12).map(|s| (s, Link::lossy(0.2, ms(20), ms(40)))))
    {
        let mut h = Harness::new(
            seed,
            link,
            NotifierPolicy {
                challenge: true,
                ..NotifierPolicy::default()
            },
        );
        h.start();
        h.run_for(secs(60));
        let b = h.b.borrow();
        assert_eq!(b.subscribes.len(), 2, "seed {seed}");
        assert_eq!(b.auth_ok, vec![true], "seed {seed}");
        assert!(
            b.notify_answers.iter().all(|(_, s)| *s == 200),
            "seed {seed}"
        );
        assert!(!b.notify_answers.is_empty(), "seed {seed}");
        drop(b);
        let sent = h.sent_subscribes();
        assert_eq!(sent.len(), 2, "seed {seed}");
        assert_eq!(
            sent[0].1.headers.call_id().unwrap(),
            sent[1].1.headers.call_id().unwrap()
        );
        assert!(sent[1].1.headers.get(&HeaderName::Authorization).is_some());
        let events = h.events();
        assert_eq!(events[0], SubscriptionEvent::Subscribing, "seed {seed}");
        assert!(events.contains(&SubscriptionEvent::Accepted { expires: 3600 }));
        assert!(events.contains(&SubscriptionEvent::Active {
            expires: Some(3600)
        }));
        assert!(
            !events
                .iter()
                .any(|e| matches!(e, SubscriptionEvent::Failed { .. })),
            "seed {seed}: {events:?}"
        );
        assert_eq!(h.summaries(), vec![Ok(expected_summary())], "seed {seed}");
        assert_eq!(h.state(), SubscriptionState::Active);
    }
}

/// RFC 6665 §4.1.2.4: the NOTIFY may arrive before the 2xx; it is accepted (200) and creates
/// the dialog, and the refresh goes into that dialog.
#[test]
fn notify_before_2xx_is_accepted() {
    let mut h = Harness::new(
        3,
        Link::udp(ms(20)),
        NotifierPolicy {
            notify_first: true,
            max_expires: Some(300),
            ..NotifierPolicy::default()
        },
    );
    h.start();
    h.run_for(secs(1));
    let a = h.a.borrow();
    assert_eq!(a.notify_answers, vec![(ms(40), 200)]);
    let events: Vec<&SubscriptionEvent> = a.events.iter().map(|(_, e)| e).collect();
    assert!(matches!(events[1], SubscriptionEvent::Notification(_)));
    assert_eq!(events[2], &SubscriptionEvent::Active { expires: Some(300) });
    assert_eq!(events[3], &SubscriptionEvent::Accepted { expires: 300 });
    drop(a);
    h.run_for(secs(300));
    let sent = h.sent_subscribes();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1].0, secs(255) + ms(40), "refresh at 85 % of 300 s");
    assert_eq!(sent[1].1.headers.to().unwrap().tag(), Some("vm1"));
    let b = h.b.borrow();
    assert_eq!(b.expired, vec![]);
    assert_eq!(b.subs.len(), 1);
}

/// Two hours with a notifier that grants 600 s: the subscription is refreshed in its dialog
/// before it runs out, every time, on clean and lossy links, in milliseconds of wall time.
#[test]
#[allow(clippy::disallowed_methods)]
fn refreshes_before_expiry_for_two_hours() {
    let wall = Instant::now();
    for (seed, link) in [(5, Link::udp(ms(30)))]
        .into_iter()
        .chain((6..10).map(|s| (s, Link::lossy(0.1, ms(30), ms(30)))))
    {
        let mut h = Harness::new(
            seed,
            link,
            NotifierPolicy {
                max_expires: Some(600),
                ..NotifierPolicy::default()
            },
        );
        h.start();
        h.run_for(secs(2 * 3600));
        let b = h.b.borrow();
        assert_eq!(b.expired, vec![], "seed {seed}: a subscription ran out");
        assert_eq!(b.late, 0, "seed {seed}");
        assert_eq!(b.subs.len(), 1, "seed {seed}");
        // 7200 s / 510 s: 14 refreshes after the initial SUBSCRIBE.
        assert_eq!(b.subscribes.len(), 15, "seed {seed}");
        let call_ids: std::collections::HashSet<_> = b
            .subscribes
            .iter()
            .map(|(_, r)| r.headers.call_id().unwrap().to_string())
            .collect();
        assert_eq!(
            call_ids.len(),
            1,
            "seed {seed}: refreshes stay in the dialog"
        );
        for pair in b.subscribes.windows(2) {
            let gap = pair[1].0 - pair[0].0;
            assert!(gap < secs(600), "seed {seed}: {gap:?}");
            assert!(pair[1].1.headers.cseq().unwrap().seq > pair[0].1.headers.cseq().unwrap().seq);
        }
        drop(b);
        let events = h.events();
        assert!(
            !events.iter().any(|e| matches!(
                e,
                SubscriptionEvent::Failed { .. } | SubscriptionEvent::Terminated { .. }
            )),
            "seed {seed}: {events:?}"
        );
        assert_eq!(h.state(), SubscriptionState::Active);
        // Every refresh brings a NOTIFY (RFC 6665 §4.2.1.4) with the same counts.
        assert_eq!(h.summaries().len(), 15, "seed {seed}");
    }
    assert!(
        wall.elapsed() < secs(5),
        "ten hours of virtual time took {:?}",
        wall.elapsed()
    );
}

/// 423 Interval Too Brief: the SUBSCRIBE is sent again with the notifier's Min-Expires.
#[test]
fn interval_too_brief_retries_with_min_expires() {
    let mut config = config();
    config.expires = 600;
    let mut h = Harness::with_config(
        4,
        Link::udp(ms(20)),
        NotifierPolicy {
            min_expires: Some(1800),
            ..NotifierPolicy::default()
        },
        config,
    );
    h.start();
    h.run_for(secs(10));
    let sent = h.sent_subscribes();
    let expires: Vec<Option<u32>> = sent
        .iter()
        .map(|(_, r)| r.headers.expires().unwrap())
        .collect();
    assert_eq!(expires, vec![Some(600), Some(1800)]);
    assert_eq!(sent[1].1.headers.cseq().unwrap().seq, 2);
    assert!(
        h.events()
            .contains(&SubscriptionEvent::Accepted { expires: 1800 })
    );
    assert_eq!(h.state(), SubscriptionState::Active);
}

/// 489 Bad Event: the server does not do message-summary. The subscription ends and is never
/// tried again.
#[test]
fn bad_event_terminates_without_retry() {
    let mut h = Harness::new(
        5,
        Link::udp(ms(20)),
        NotifierPolicy {
            reject: Some(489),
            ..NotifierPolicy::default()
        },
    );
    h.start();
    h.run_for(secs(2 * 3600));
    assert_eq!(h.sent_subscribes().len(), 1);
    assert_eq!(
        h.events(),
        vec![
            SubscriptionEvent::Subscribing,
            SubscriptionEvent::Terminated {
                reason: TerminationReason::Rejected {
                    status: 489,
                    reason: String::new()
                }
            }
        ]
    );
    assert_eq!(h.state(), SubscriptionState::Terminated);
}

/// A server that never answers: each SUBSCRIBE times out after Timer F (32 s) and the next
/// new subscription follows after 10, 20, 40, 60, 60... s (RetryPolicy base 10 s, max 60 s),
/// each jittered to 50–100 %.
#[test]
fn timeouts_retry_with_backoff_and_jitter() {
    let mut h = Harness::new(6, Link::black_hole(), NotifierPolicy::default());
    h.start();
    h.run_for(secs(900));
    let sent = h.sent_subscribes();
    assert!(sent.len() >= 8, "{}", sent.len());
    let call_ids: std::collections::HashSet<_> = sent
        .iter()
        .map(|(_, r)| r.headers.call_id().unwrap().to_string())
        .collect();
    assert_eq!(
        call_ids.len(),
        sent.len(),
        "every retry is a new subscription"
    );
    let events = h.events();
    let waits: Vec<Duration> = events
        .iter()
        .filter_map(|e| match e {
            SubscriptionEvent::Failed {
                reason: SubscriptionFailure::Timeout,
                retry_in,
            } => Some(*retry_in),
            SubscriptionEvent::Failed { .. } => panic!("{e:?}"),
            _ => None,
        })
        .collect();
    assert!(waits.len() >= sent.len() - 1);
    let mut distinct = std::collections::HashSet::new();
    for (k, pair) in sent.windows(2).enumerate() {
        let full = secs(10 * (1 << k.min(3))).min(secs(60));
        let wait = waits[k];
        assert!(
            wait >= full / 2 && wait <= full,
            "retry {k}: {wait:?} outside [{:?}, {full:?}]",
            full / 2
        );
        assert_eq!(pair[1].0 - pair[0].0, secs(32) + wait, "retry {k}");
        distinct.insert(wait);
    }
    assert!(distinct.len() > 3, "no jitter: {waits:?}");
}

/// `Subscription-State: terminated;reason=deactivated` (the voicemail server moved the
/// account): a new subscription starts at once, in a new dialog, and becomes active.
#[test]
fn deactivated_resubscribes_at_once() {
    let mut h = Harness::new(7, Link::udp(ms(20)), NotifierPolicy::default());
    h.start();
    h.run_for(secs(100));
    assert_eq!(h.state(), SubscriptionState::Active);
    h.with_notifier(|now, n, layer| {
        n.notify_all(now, layer, "terminated;reason=deactivated", None)
    });
    h.run_for(secs(10));
    let sent = h.sent_subscribes();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1].0, secs(100) + ms(20), "at once, on the NOTIFY");
    assert_ne!(
        sent[0].1.headers.call_id().unwrap(),
        sent[1].1.headers.call_id().unwrap()
    );
    assert!(sent[1].1.headers.to().unwrap().tag().is_none());
    let events = h.events();
    let after: Vec<&SubscriptionEvent> = events
        .iter()
        .skip_while(|e| !matches!(e, SubscriptionEvent::Failed { .. }))
        .collect();
    assert_eq!(
        after[0],
        &SubscriptionEvent::Failed {
            reason: SubscriptionFailure::NotifierTerminated {
                reason: Some("deactivated".into())
            },
            retry_in: Duration::ZERO
        }
    );
    assert_eq!(after[1], &SubscriptionEvent::Subscribing);
    assert!(after.contains(&&SubscriptionEvent::Active {
        expires: Some(3600)
    }));
    assert_eq!(h.state(), SubscriptionState::Active);
    assert_eq!(h.b.borrow().subs.len(), 1);
}

/// Unsubscribing sends SUBSCRIBE with Expires: 0 in the dialog; the final NOTIFY
/// (terminated) is answered 200 and ends the subscription; nothing more goes out.
#[test]
fn unsubscribe_sends_expires_zero() {
    let mut h = Harness::new(8, Link::udp(ms(20)), NotifierPolicy::default());
    h.start();
    h.run_for(secs(30));
    h.with_sub(|now, sub| sub.unsubscribe(now));
    h.run_for(secs(2 * 3600));
    let sent = h.sent_subscribes();
    assert_eq!(sent.len(), 2);
    let unsub = &sent[1].1;
    assert_eq!(unsub.headers.expires().unwrap(), Some(0));
    assert_eq!(unsub.headers.to().unwrap().tag(), Some("vm1"));
    assert_eq!(
        unsub.headers.call_id().unwrap(),
        sent[0].1.headers.call_id().unwrap()
    );
    let b = h.b.borrow();
    assert_eq!(b.subs.len(), 0);
    assert_eq!(
        b.notify_answers.iter().map(|(_, s)| *s).collect::<Vec<_>>(),
        vec![200, 200]
    );
    drop(b);
    assert_eq!(
        h.events().last(),
        Some(&SubscriptionEvent::Terminated {
            reason: TerminationReason::Unsubscribed
        })
    );
    assert_eq!(h.state(), SubscriptionState::Terminated);
    assert_eq!(h.a.borrow().sub.poll_timeout(), None);
}

/// A NOTIFY for no subscription of ours (another Call-ID, or the right Call-ID with a tag
/// that is not ours) is answered 481 and changes nothing.
#[test]
fn stray_notify_gets_481() {
    let mut h = Harness::new(9, Link::udp(ms(20)), NotifierPolicy::default());
    h.start();
    h.run_for(secs(5));
    let call_id = h.sent_subscribes()[0]
        .1
        .headers
        .call_id()
        .unwrap()
        .to_string();
    h.with_notifier(|now, n, layer| {
        for (cid, to_tag) in [("stray-call-id", "x1"), (call_id.as_str(), "not-ours")] {
            let mut r = Request::new(
                Method::Notify,
                Uri::Sip(SipUri::new(Some("alice"), Host::V4([192, 0, 2, 1].into()))),
            );
            let h = &mut r.headers;
            h.push(
                HeaderName::Via,
                format!("SIP/2.0/UDP 192.0.2.9;branch={}", new_branch(&mut n.rng)),
            );
            h.push(HeaderName::MaxForwards, "70");
            h.push(HeaderName::From, "<sip:alice@example.test>;tag=vm1");
            h.push(
                HeaderName::To,
                format!("<sip:alice@example.test>;tag={to_tag}"),
            );
            h.push(HeaderName::CallId, cid);
            h.push(HeaderName::CSeq, "500 NOTIFY");
            h.push(HeaderName::Contact, "<sip:vm@192.0.2.9:5060>");
            h.push(HeaderName::Event, "message-summary");
            h.push("Subscription-State", "terminated;reason=noresource");
            layer.send_request(now, r, Node::A, false).unwrap();
        }
    });
    h.run_for(secs(5));
    let answers: Vec<u16> =
        h.b.borrow()
            .notify_answers
            .iter()
            .map(|(_, s)| *s)
            .collect();
    assert_eq!(answers, vec![200, 481, 481]);
    assert_eq!(h.state(), SubscriptionState::Active);
    assert_eq!(h.events().len(), 4, "{:?}", h.events());
}

/// Malformed message-summary bodies from the server: truncated lines, numbers beyond u32,
/// garbage bytes. Every NOTIFY is answered 200 (the body is the application's business), the
/// body is reported, and reading it gives a value or an error, never a panic.
#[test]
fn malformed_bodies_never_panic() {
    let mut h = Harness::new(10, Link::udp(ms(20)), NotifierPolicy::default());
    h.start();
    h.run_for(secs(5));
    let bodies: Vec<Vec<u8>> = vec![
        b"Messages-Waiting: yes\r\nVoice-Message: 99999999999999/1\r\n".to_vec(),
        b"Messages-Waiting: yes\r\nVoice-Mess".to_vec(),
        b"Messages-Waiting: yes\r\nVoice-Message: 3/".to_vec(),
        b"Messages-Wai".to_vec(),
        b"\x00\xff\xfe garbage \x80\x81 :: // (( ))".to_vec(),
        b"messages-waiting :  NO \nvoice-message:0/0\n".to_vec(),
    ];
    for body in &bodies {
        h.with_notifier(|now, n, layer| n.notify_all(now, layer, "active", Some(body.as_slice())));
        h.run_for(secs(1));
    }
    let answers: Vec<u16> =
        h.b.borrow()
            .notify_answers
            .iter()
            .map(|(_, s)| *s)
            .collect();
    assert_eq!(answers, vec![200; 7]);
    let summaries = h.summaries();
    assert_eq!(summaries.len(), 7);
    assert_eq!(summaries[0], Ok(expected_summary()));
    let huge = summaries[1].as_ref().unwrap().voice.unwrap();
    assert_eq!((huge.new, huge.old), (u32::MAX, 1));
    // A truncated unknown line is ignored; truncated counts and status are errors.
    assert_eq!(summaries[2].as_ref().unwrap().voice, None);
    assert_eq!(
        summaries[3],
        Err(MessageSummaryError::BadCounts {
            class: MessageClass::Voice,
            line: 2
        })
    );
    assert_eq!(summaries[4], Err(MessageSummaryError::MissingStatus));
    assert_eq!(summaries[5], Err(MessageSummaryError::MissingStatus));
    let last = summaries[6].as_ref().unwrap();
    assert!(!last.messages_waiting);
    assert_eq!(last.voice, Some(MessageCounts::new(0, 0)));

    // And straight through the parser: every prefix and a seeded walk of byte edits.
    let valid = MWI.as_bytes();
    for end in 0..=valid.len() {
        let _ = MessageSummary::parse(&valid[..end]);
    }
    let mut rng = StdRng::seed_from_u64(42);
    for _ in 0..5000 {
        let mut body = valid.to_vec();
        for _ in 0..rng.random_range(1..8) {
            let at = rng.random_range(0..body.len());
            match rng.random_range(0..3) {
                0 => body[at] = rng.random(),
                1 => {
                    body.remove(at);
                }
                _ => body.insert(at, b"0123456789/():\r\n "[at % 17]),
            }
            if body.is_empty() {
                body.push(b'\n');
            }
        }
        if let Ok(summary) = MessageSummary::parse(&body) {
            // Whatever parses prints to something that parses to the same.
            assert_eq!(
                MessageSummary::parse(summary.to_body().as_bytes()),
                Ok(summary)
            );
        }
    }
}
