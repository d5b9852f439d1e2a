//! The INVITE client transaction (ICT): RFC 3261 §17.1.1 as amended by RFC 6026 §8.4.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::{Action, Deadline, Timers, TransactionError, earliest, first_interval, top_via_text};
use crate::message::{HeaderName, Method, Request, Response};

/// State of an INVITE client transaction (RFC 6026 Figure 5).
///
/// ```text
///                     INVITE from TU / send INVITE, start A (unreliable only), B
///                                       |
///   Timer A / resend INVITE,            v           Timer B / Timeout to TU,
///   double A                    +---------------+   Transport error / tell TU
///                     +-------->|               |---------------------------------+
///                     +---------|    Calling    |                                 |
///               +---------------|               |---------------+                 |
///               |               +---------------+               |                 |
///               | 300-699 / to TU,      |                       | 2xx / to TU,    |
///               | send ACK,             | 1xx / to TU           | start M         |
///               | start D               |                       |                 |
///               |                       v                       |                 |
///               |               +---------------+               |                 |
///               |               |               |<--+ 1xx /     |                 |
///               |               |  Proceeding   |---+ to TU     |                 |
///               |     +---------|               |---------+     |                 |
///               |     |         +---------------+         |     |                 |
///               |     | 300-699 / to TU,|     2xx / to TU,|     |                 |
///               |     | send ACK,       |     start M     |     |                 |
///               |     | start D         |                 |     |                 |
///               |     |                 | Transport       |     |                 |
///               v     v                 | error /         v     v   2xx / to TU   |
///         +---------------+             | tell TU     +---------------+           |
///   +---->|               |             |             |               |<--+       |
///   |     |   Completed   |             |             |   Accepted    |---+       |
///   +-----|               |             |             |               |           |
///         +---------------+             |             +---------------+           |
/// 300-699 /       |                     |                     |                   |
/// resend ACK      | Timer D             |                     |                   |
///                 | (0 if reliable),    |                     | Timer M           |
///                 | Transport error     |                     |                   |
///                 | / tell TU           |                     |                   |
///                 |                     |                     |                   |
///                 v                     v                     v                   v
///       +-----------------------------------------------------------------------------+
///       |                                 Terminated                                  |
///       +-----------------------------------------------------------------------------+
/// ```
///
/// Provisional responses after a final one, 2xx in Completed and non-2xx in Accepted are
/// discarded. Timer B only runs in Calling: once a provisional arrived the TU ends a long
/// INVITE with a CANCEL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IctState {
    /// The INVITE was sent; no response yet.
    Calling,
    /// A provisional response arrived.
    Proceeding,
    /// A 300–699 final arrived and was ACKed; absorbing its retransmissions (Timer D).
    Completed,
    /// A 2xx arrived (RFC 6026); passing 2xx retransmissions up (Timer M).
    Accepted,
    /// Finished; the owner forgets the transaction.
    Terminated,
}

/// The ICT's timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IctTimer {
    /// INVITE retransmission (unreliable transports only), T1 doubling.
    A,
    /// Transaction timeout in Calling, 64·T1.
    B,
    /// Wait for final-response retransmissions in Completed.
    D,
    /// Wait for 2xx retransmissions in Accepted (RFC 6026), 64·T1.
    M,
}

/// Inputs to the ICT, by source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IctInput {
    // From the transport layer.
    /// A response matched to this transaction (§17.1.3).
    Response(Response),
    /// The transport failed to send the INVITE or the ACK.
    TransportError,
    // From the clock.
    /// A timer fired.
    Timer(IctTimer),
}

/// An INVITE client transaction. Create it with the INVITE to send; feed it responses,
/// transport errors and time; drain [`Action`]s. See [`IctState`] for the diagram.
#[derive(Debug, Clone)]
pub struct ClientInvite {
    state: IctState,
    reliable: bool,
    timers: Timers,
    invite: Request,
    seq: u32,
    ack: Option<Request>,
    timer_a: Deadline,
    interval_a: Duration,
    timer_b: Deadline,
    timer_d: Deadline,
    timer_m: Deadline,
    actions: VecDeque<Action>,
}

impl ClientInvite {
    /// Starts the transaction: queues the INVITE for transmission and starts Timer A
    /// (unreliable transports only) and Timer B. The INVITE needs a top Via and a CSeq.
    pub fn new(
        now: Instant,
        invite: Request,
        reliable: bool,
        timers: Timers,
    ) -> Result<Self, TransactionError> {
        if invite.method != Method::Invite {
            return Err(TransactionError::WrongMethod);
        }
        let seq = invite.headers.cseq()?.seq;
        invite.headers.top_via()?;
        let mut ict = ClientInvite {
            state: IctState::Calling,
            reliable,
            timers,
            invite,
            seq,
            ack: None,
            timer_a: Deadline::default(),
            interval_a: first_interval(timers.a()),
            timer_b: Deadline::default(),
            timer_d: Deadline::default(),
            timer_m: Deadline::default(),
            actions: VecDeque::new(),
        };
        ict.transmit_invite();
        if !reliable {
            ict.timer_a.start(now, ict.interval_a);
        }
        ict.timer_b.start(now, timers.b());
        Ok(ict)
    }

    /// The current state.
    pub fn state(&self) -> IctState {
        self.state
    }

    /// The INVITE.
    pub fn request(&self) -> &Request {
        &self.invite
    }

    /// The ACK sent for a non-2xx final response, once there is one.
    pub fn ack(&self) -> Option<&Request> {
        self.ack.as_ref()
    }

    /// Handles one input, then fires any timer already due at `now`.
    pub fn handle_input(&mut self, now: Instant, input: IctInput) {
        self.dispatch(now, input);
        self.handle_timeout(now);
    }

    /// Fires every timer due at `now`, earliest first.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(timer) = self.due_timer(now) {
            self.deadline_mut(timer).stop();
            self.dispatch(now, IctInput::Timer(timer));
        }
    }

    /// The next action for the owner.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        earliest(&[self.timer_a, self.timer_b, self.timer_d, self.timer_m])
    }

    fn due_timer(&self, now: Instant) -> Option<IctTimer> {
        [
            (IctTimer::A, self.timer_a),
            (IctTimer::B, self.timer_b),
            (IctTimer::D, self.timer_d),
            (IctTimer::M, self.timer_m),
        ]
        .into_iter()
        .filter(|(_, d)| d.is_due(now))
        .min_by_key(|(_, d)| d.at())
        .map(|(t, _)| t)
    }

    fn deadline_mut(&mut self, timer: IctTimer) -> &mut Deadline {
        match timer {
            IctTimer::A => &mut self.timer_a,
            IctTimer::B => &mut self.timer_b,
            IctTimer::D => &mut self.timer_d,
            IctTimer::M => &mut self.timer_m,
        }
    }

    fn dispatch(&mut self, now: Instant, input: IctInput) {
        if self.state == IctState::Terminated {
            return;
        }
        match input {
            IctInput::Response(response) => self.handle_response(now, response),
            IctInput::TransportError => self.handle_transport_error(),
            IctInput::Timer(IctTimer::A) => self.handle_timer_a(now),
            IctInput::Timer(IctTimer::B) => self.handle_timer_b(),
            IctInput::Timer(IctTimer::D) => self.handle_timer_d(),
            IctInput::Timer(IctTimer::M) => self.handle_timer_m(),
        }
    }

    fn handle_response(&mut self, now: Instant, response: Response) {
        use IctState::*;
        match (self.state, response.status) {
            (Calling | Proceeding, 100..=199) => {
                self.state = Proceeding;
                self.timer_a.stop();
                self.timer_b.stop();
                self.actions.push_back(Action::PassResponse(response));
            }
            (Calling | Proceeding, 200..=299) => {
                self.state = Accepted;
                self.timer_a.stop();
                self.timer_b.stop();
                self.timer_m.start(now, self.timers.m());
                self.actions.push_back(Action::PassResponse(response));
            }
            (Calling | Proceeding, 300..=699) => {
                self.state = Completed;
                self.timer_a.stop();
                self.timer_b.stop();
                let ack = self.build_ack(&response);
                self.actions.push_back(Action::PassResponse(response));
                self.actions.push_back(Action::Transmit(ack.clone().into()));
                self.ack = Some(ack);
                self.timer_d.start(now, self.timers.d(self.reliable));
            }
            (Completed, 300..=699) => {
                if let Some(ack) = &self.ack {
                    self.actions.push_back(Action::Transmit(ack.clone().into()));
                }
            }
            (Accepted, 200..=299) => self.actions.push_back(Action::PassResponse(response)),
            // A provisional after a final (reordering), a 2xx after a non-2xx or the reverse.
            _ => {}
        }
    }

    fn handle_transport_error(&mut self) {
        match self.state {
            IctState::Calling | IctState::Proceeding | IctState::Completed => {
                self.actions.push_back(Action::TransportError);
                self.terminate();
            }
            // Nothing is sent in Accepted: the ACK for a 2xx belongs to the TU.
            IctState::Accepted | IctState::Terminated => {}
        }
    }

    fn handle_timer_a(&mut self, now: Instant) {
        if self.state != IctState::Calling {
            return;
        }
        self.transmit_invite();
        self.interval_a = super::double(self.interval_a, Duration::MAX);
        self.timer_a.start(now, self.interval_a);
    }

    fn handle_timer_b(&mut self) {
        if self.state == IctState::Calling {
            self.actions.push_back(Action::Timeout);
            self.terminate();
        }
    }

    fn handle_timer_d(&mut self) {
        if self.state == IctState::Completed {
            self.terminate();
        }
    }

    fn handle_timer_m(&mut self) {
        if self.state == IctState::Accepted {
            self.terminate();
        }
    }

    fn transmit_invite(&mut self) {
        self.actions
            .push_back(Action::Transmit(self.invite.clone().into()));
    }

    fn terminate(&mut self) {
        self.state = IctState::Terminated;
        for d in [
            &mut self.timer_a,
            &mut self.timer_b,
            &mut self.timer_d,
            &mut self.timer_m,
        ] {
            d.stop();
        }
        self.actions.push_back(Action::Terminated);
    }

    /// The ACK for a non-2xx final response (§17.1.1.3): the INVITE's Request-URI, top Via
    /// (so the same branch), Route, Call-ID and From; the response's To (with its tag); CSeq
    /// with the INVITE's number and method ACK.
    fn build_ack(&self, response: &Response) -> Request {
        let invite = &self.invite.headers;
        let mut ack = Request::new(Method::Ack, self.invite.uri.clone());
        let h = &mut ack.headers;
        if let Some(via) = top_via_text(invite) {
            h.push(HeaderName::Via, via);
        }
        for route in invite.get_all(&HeaderName::Route) {
            h.push(HeaderName::Route, route);
        }
        h.push(
            HeaderName::MaxForwards,
            invite.get(&HeaderName::MaxForwards).unwrap_or("70"),
        );
        for name in [HeaderName::From, HeaderName::To, HeaderName::CallId] {
            let source = if name == HeaderName::To && response.headers.contains(&name) {
                &response.headers
            } else {
                invite
            };
            if let Some(value) = source.get(&name) {
                h.push(name, value);
            }
        }
        h.push(HeaderName::CSeq, format!("{} ACK", self.seq));
        h.push(HeaderName::ContentLength, "0");
        ack
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;
    use crate::transaction::testutil::*;

    fn ict(reliable: bool) -> (Instant, ClientInvite) {
        let t0 = base();
        let tx = ClientInvite::new(t0, invite("z9hG4bKict"), reliable, Timers::default()).unwrap();
        (t0, tx)
    }

    #[test]
    fn sends_invite_and_arms_a_and_b_on_udp() {
        let (t0, mut tx) = ict(false);
        assert_eq!(tx.state(), IctState::Calling);
        assert!(matches!(
            drain(&mut tx)[..],
            [Action::Transmit(Message::Request(ref r))] if r.method == Method::Invite
        ));
        assert_eq!(tx.poll_timeout(), Some(t0 + ms(500)));
    }

    #[test]
    fn timer_a_doubles_without_cap_until_timer_b_times_out() {
        let (t0, mut tx) = ict(false);
        drain(&mut tx);
        let mut sends = Vec::new();
        while let Some(at) = tx.poll_timeout() {
            tx.handle_timeout(at);
            for a in drain(&mut tx) {
                match a {
                    Action::Transmit(_) => sends.push(at - t0),
                    Action::Timeout => assert_eq!(at - t0, ms(32_000)),
                    Action::Terminated => {}
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
        let expected: Vec<Duration> = [500, 1500, 3500, 7500, 15_500, 31_500]
            .into_iter()
            .map(ms)
            .collect();
        assert_eq!(sends, expected);
        assert_eq!(tx.state(), IctState::Terminated);
    }

    #[test]
    fn reliable_has_no_timer_a_but_timer_b() {
        let (t0, mut tx) = ict(true);
        drain(&mut tx);
        assert_eq!(tx.poll_timeout(), Some(t0 + ms(32_000)));
        tx.handle_timeout(t0 + ms(32_000));
        assert_eq!(drain(&mut tx), vec![Action::Timeout, Action::Terminated]);
    }

    #[test]
    fn provisional_moves_to_proceeding_and_stops_retransmissions() {
        let (t0, mut tx) = ict(false);
        drain(&mut tx);
        tx.handle_input(
            t0 + ms(100),
            IctInput::Response(response(tx.request(), 180, None)),
        );
        assert_eq!(tx.state(), IctState::Proceeding);
        assert!(matches!(drain(&mut tx)[..], [Action::PassResponse(ref r)] if r.status == 180));
        assert_eq!(tx.poll_timeout(), None);
        tx.handle_input(
            t0 + ms(200),
            IctInput::Response(response(tx.request(), 183, None)),
        );
        assert!(matches!(drain(&mut tx)[..], [Action::PassResponse(ref r)] if r.status == 183));
    }

    #[test]
    fn non_2xx_builds_ack_and_absorbs_retransmissions_until_timer_d() {
        let (t0, mut tx) = ict(false);
        drain(&mut tx);
        tx.handle_input(
            t0 + ms(10),
            IctInput::Response(response(tx.request(), 180, None)),
        );
        drain(&mut tx);
        let busy = response(tx.request(), 486, Some("callee"));
        tx.handle_input(t0 + ms(20), IctInput::Response(busy.clone()));
        assert_eq!(tx.state(), IctState::Completed);
        let actions = drain(&mut tx);
        assert!(matches!(&actions[0], Action::PassResponse(r) if r.status == 486));
        let Action::Transmit(Message::Request(ack)) = &actions[1] else {
            panic!("no ACK: {actions:?}")
        };
        let invite = tx.request();
        assert_eq!(ack.method, Method::Ack);
        assert_eq!(ack.uri, invite.uri);
        assert_eq!(ack.headers.vias().unwrap().len(), 1);
        assert_eq!(
            ack.headers.top_via().unwrap(),
            invite.headers.top_via().unwrap()
        );
        assert_eq!(
            ack.headers.routes().unwrap(),
            invite.headers.routes().unwrap()
        );
        assert_eq!(ack.headers.to().unwrap().tag(), Some("callee"));
        assert_eq!(ack.headers.from().unwrap(), invite.headers.from().unwrap());
        assert_eq!(
            ack.headers.call_id().unwrap(),
            invite.headers.call_id().unwrap()
        );
        let cseq = ack.headers.cseq().unwrap();
        assert_eq!((cseq.seq, cseq.method), (1, Method::Ack));
        // It parses back: a valid message.
        Message::parse(&Message::Request(ack.clone()).to_bytes()).unwrap();

        // A retransmitted final is absorbed: ACK again, not passed up.
        tx.handle_input(t0 + ms(600), IctInput::Response(busy));
        assert_eq!(drain(&mut tx), vec![Action::Transmit(ack.clone().into())]);
        // Late provisional and 2xx are ignored.
        tx.handle_input(
            t0 + ms(700),
            IctInput::Response(response(tx.request(), 180, None)),
        );
        assert!(drain(&mut tx).is_empty());

        assert_eq!(tx.poll_timeout(), Some(t0 + ms(20) + ms(32_000)));
        tx.handle_timeout(t0 + ms(20) + ms(32_000));
        assert_eq!(drain(&mut tx), vec![Action::Terminated]);
    }

    #[test]
    fn timer_d_is_zero_on_reliable() {
        let (t0, mut tx) = ict(true);
        drain(&mut tx);
        tx.handle_input(
            t0 + ms(5),
            IctInput::Response(response(tx.request(), 603, Some("x"))),
        );
        let actions = drain(&mut tx);
        assert!(matches!(
            actions[..],
            [
                Action::PassResponse(_),
                Action::Transmit(_),
                Action::Terminated
            ]
        ));
        assert_eq!(tx.state(), IctState::Terminated);
    }

    #[test]
    fn two_hundred_accepts_and_passes_every_2xx_until_timer_m() {
        let (t0, mut tx) = ict(false);
        drain(&mut tx);
        let ok = response(tx.request(), 200, Some("callee"));
        tx.handle_input(t0 + ms(50), IctInput::Response(ok.clone()));
        assert_eq!(tx.state(), IctState::Accepted);
        assert_eq!(drain(&mut tx), vec![Action::PassResponse(ok.clone())]);
        // No ACK from the transaction, and no more INVITE retransmissions.
        assert_eq!(tx.poll_timeout(), Some(t0 + ms(50) + ms(32_000)));
        tx.handle_input(t0 + ms(550), IctInput::Response(ok.clone()));
        assert_eq!(drain(&mut tx), vec![Action::PassResponse(ok)]);
        // Non-2xx and provisional are dropped in Accepted; so are transport errors.
        tx.handle_input(
            t0 + ms(560),
            IctInput::Response(response(tx.request(), 486, None)),
        );
        tx.handle_input(t0 + ms(560), IctInput::TransportError);
        assert!(drain(&mut tx).is_empty());
        tx.handle_timeout(t0 + ms(50) + ms(32_000));
        assert_eq!(drain(&mut tx), vec![Action::Terminated]);
    }

    #[test]
    fn transport_error_terminates() {
        let (t0, mut tx) = ict(false);
        drain(&mut tx);
        tx.handle_input(t0, IctInput::TransportError);
        assert_eq!(
            drain(&mut tx),
            vec![Action::TransportError, Action::Terminated]
        );
        assert_eq!(tx.poll_timeout(), None);
        // Terminated absorbs everything.
        tx.handle_input(t0, IctInput::Response(response(tx.request(), 200, None)));
        assert!(drain(&mut tx).is_empty());
    }

    #[test]
    fn rejects_non_invite_and_missing_cseq() {
        let t0 = base();
        let mut req = invite("z9hG4bKx");
        req.method = Method::Options;
        assert_eq!(
            ClientInvite::new(t0, req, false, Timers::default()).err(),
            Some(TransactionError::WrongMethod)
        );
        let mut req = invite("z9hG4bKx");
        req.headers.remove(&HeaderName::CSeq);
        assert!(matches!(
            ClientInvite::new(t0, req, false, Timers::default()),
            Err(TransactionError::Malformed(_))
        ));
    }

    #[test]
    fn zero_t1_does_not_loop_forever() {
        let t0 = base();
        let timers = Timers {
            t1: Duration::ZERO,
            ..Timers::default()
        };
        let mut tx = ClientInvite::new(t0, invite("z9hG4bKz"), false, timers).unwrap();
        tx.handle_timeout(t0 + ms(10));
        // B is 0 and fired; the transaction timed out instead of spinning on Timer A.
        assert_eq!(tx.state(), IctState::Terminated);
    }
}
