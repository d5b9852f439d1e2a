//! The INVITE server transaction (IST): RFC 3261 §17.2.1 as amended by RFC 6026 §8.5–8.7.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::{Action, Deadline, Timers, TransactionError, double, earliest, first_interval};
use crate::message::{Method, Request, Response};

/// How long the IST waits for the TU's first response before sending 100 Trying itself
/// (RFC 3261 §17.2.1: "unless it knows that the TU will generate a provisional or final
/// response within 200 ms"). reSIProcate calls this Timer TRYING.
pub const TRYING_DELAY: Duration = Duration::from_millis(200);

/// State of an INVITE server transaction (RFC 6026 Figure 7).
///
/// ```text
///                     INVITE from transport / pass to TU, start Trying (200 ms)
/// INVITE / resend last                    |
/// provisional;                            v
/// 1xx from TU / send;             +---------------+
/// 200 ms, none sent /  +--------->|               |
/// send 100 Trying      +----------|  Proceeding   |
///                         +-------|               |---------------+
///                         |       +---------------+               |
///                         | 300-699 from  |                       | 2xx from TU /
///                         | TU / send,    |                       | send, start L
///                         | start G       |                       |
///                         | (unreliable), |                       |
///                         | H             |                       |
///                         |               |                       |
///                         |               | Transport             |
///                         v               | error /               v             INVITE / absorb;
///         +-------------------+           | tell TU       +---------------+     2xx from TU /
///    +--->|                   |           |               |               |<--+ send;
///    |    |     Completed     |           |               |   Accepted    |---+ ACK / to TU;
///    +----|                   |           |               |   (RFC 6026)  |     Transport error
///         +-------------------+           |               +---------------+     / tell TU
/// INVITE /      |         |               |                       |
/// resend final; | ACK /   |               |                       |
/// Timer G /     | start I |               |                       |
/// resend, G =   |         |               |                       | Timer L
/// min(2G, T2)   v         |               |                       |
///       +---------------+ | Timer H /     |                       |
/// +---->|               | | Timeout to TU;|                       |
/// |     |   Confirmed   | | Transport     |                       |
/// +-----|               | | error /       |                       |
///       +---------------+ | tell TU       |                       |
/// ACK, INVITE / |         |               |                       |
/// absorb        |         |               |                       |
///               |         |               |                       |
/// Timer I       |         |               |                       |
/// (0 if         |         |               |                       |
/// reliable)     |         |               |                       |
///               v         v               v                       v
///   +------------------------------------------------------------------------------+
///   |                                  Terminated                                  |
///   +------------------------------------------------------------------------------+
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IstState {
    /// The INVITE was passed to the TU; no final response yet.
    Proceeding,
    /// A 300–699 final was sent; retransmitting it (Timer G) until the ACK (Timer H).
    Completed,
    /// The ACK arrived; absorbing ACK retransmissions (Timer I).
    Confirmed,
    /// A 2xx was sent (RFC 6026); absorbing INVITE retransmissions (Timer L). The TU
    /// retransmits the 2xx itself.
    Accepted,
    /// Finished; the owner forgets the transaction.
    Terminated,
}

/// The IST's timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IstTimer {
    /// Send 100 Trying if the TU has not responded within [`TRYING_DELAY`].
    Trying,
    /// Final-response retransmission (unreliable transports only), T1 doubling up to T2.
    G,
    /// Wait for the ACK, 64·T1.
    H,
    /// Absorb ACK retransmissions in Confirmed (T4, zero if reliable).
    I,
    /// Absorb INVITE retransmissions in Accepted (RFC 6026), 64·T1.
    L,
}

/// Inputs to the IST, by source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IstInput {
    // From the transport layer.
    /// A request matched to this transaction (§17.2.3): a retransmitted INVITE or an ACK.
    Request(Request),
    /// The transport failed to send a response.
    TransportError,
    // From the TU.
    /// A response to send.
    Response(Response),
    // From the clock.
    /// A timer fired.
    Timer(IstTimer),
}

/// An INVITE server transaction. See [`IstState`] for the diagram.
#[derive(Debug, Clone)]
pub struct ServerInvite {
    state: IstState,
    reliable: bool,
    timers: Timers,
    invite: Request,
    last_provisional: Option<Response>,
    last_final: Option<Response>,
    timer_trying: Deadline,
    timer_g: Deadline,
    interval_g: Duration,
    timer_h: Deadline,
    timer_i: Deadline,
    timer_l: Deadline,
    actions: VecDeque<Action>,
}

impl ServerInvite {
    /// Starts the transaction for a received INVITE: queues it for the TU and starts the
    /// 100 Trying timer.
    pub fn new(now: Instant, invite: Request, reliable: bool, timers: Timers) -> Self {
        let mut ist = ServerInvite {
            state: IstState::Proceeding,
            reliable,
            timers,
            invite: invite.clone(),
            last_provisional: None,
            last_final: None,
            timer_trying: Deadline::default(),
            timer_g: Deadline::default(),
            interval_g: first_interval(timers.g()),
            timer_h: Deadline::default(),
            timer_i: Deadline::default(),
            timer_l: Deadline::default(),
            actions: VecDeque::new(),
        };
        ist.actions.push_back(Action::PassRequest(invite));
        ist.timer_trying.start(now, TRYING_DELAY);
        ist
    }

    /// The current state.
    pub fn state(&self) -> IstState {
        self.state
    }

    /// The INVITE.
    pub fn request(&self) -> &Request {
        &self.invite
    }

    /// The last final response sent, if any (used for RFC 2543 ACK matching).
    pub fn last_response(&self) -> Option<&Response> {
        self.last_final.as_ref()
    }

    /// Handles one input, then fires any timer already due at `now`. Only a TU response can
    /// be refused: with [`TransactionError::InvalidStatus`] or, when the state does not allow
    /// it (e.g. a second final response), [`TransactionError::InvalidState`].
    pub fn handle_input(&mut self, now: Instant, input: IstInput) -> Result<(), TransactionError> {
        let result = self.dispatch(now, input);
        self.handle_timeout(now);
        result
    }

    /// Fires every timer due at `now`, earliest first.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(timer) = self.due_timer(now) {
            self.deadline_mut(timer).stop();
            // Timers are never refused.
            self.dispatch(now, IstInput::Timer(timer)).unwrap_or(());
        }
    }

    /// The next action for the owner.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        earliest(&[
            self.timer_trying,
            self.timer_g,
            self.timer_h,
            self.timer_i,
            self.timer_l,
        ])
    }

    fn due_timer(&self, now: Instant) -> Option<IstTimer> {
        [
            (IstTimer::Trying, self.timer_trying),
            (IstTimer::G, self.timer_g),
            (IstTimer::H, self.timer_h),
            (IstTimer::I, self.timer_i),
            (IstTimer::L, self.timer_l),
        ]
        .into_iter()
        .filter(|(_, d)| d.is_due(now))
        .min_by_key(|(_, d)| d.at())
        .map(|(t, _)| t)
    }

    fn deadline_mut(&mut self, timer: IstTimer) -> &mut Deadline {
        match timer {
            IstTimer::Trying => &mut self.timer_trying,
            IstTimer::G => &mut self.timer_g,
            IstTimer::H => &mut self.timer_h,
            IstTimer::I => &mut self.timer_i,
            IstTimer::L => &mut self.timer_l,
        }
    }

    fn dispatch(&mut self, now: Instant, input: IstInput) -> Result<(), TransactionError> {
        if self.state == IstState::Terminated {
            return match input {
                IstInput::Response(_) => Err(TransactionError::InvalidState),
                _ => Ok(()),
            };
        }
        match input {
            IstInput::Request(request) => self.handle_request(now, request),
            IstInput::TransportError => self.handle_transport_error(),
            IstInput::Response(response) => return self.handle_tu_response(now, response),
            IstInput::Timer(IstTimer::Trying) => self.handle_timer_trying(),
            IstInput::Timer(IstTimer::G) => self.handle_timer_g(now),
            IstInput::Timer(IstTimer::H) => self.handle_timer_h(),
            IstInput::Timer(IstTimer::I) => self.handle_timer_i(),
            IstInput::Timer(IstTimer::L) => self.handle_timer_l(),
        }
        Ok(())
    }

    fn handle_request(&mut self, now: Instant, request: Request) {
        use IstState::*;
        match (&request.method, self.state) {
            (Method::Invite, Proceeding) => {
                if let Some(provisional) = &self.last_provisional {
                    self.actions
                        .push_back(Action::Transmit(provisional.clone().into()));
                }
            }
            (Method::Invite, Completed) => self.transmit_final(),
            (Method::Ack, Completed) => {
                self.state = Confirmed;
                self.timer_g.stop();
                self.timer_h.stop();
                self.timer_i.start(now, self.timers.i(self.reliable));
            }
            (Method::Ack, Accepted) => self.actions.push_back(Action::PassAck(request)),
            // INVITE retransmissions in Confirmed/Accepted, ACK retransmissions in Confirmed,
            // and an ACK before any final response are absorbed.
            _ => {}
        }
    }

    fn handle_transport_error(&mut self) {
        match self.state {
            IstState::Proceeding | IstState::Completed => {
                self.actions.push_back(Action::TransportError);
                self.terminate();
            }
            // RFC 6026: the TU owns the 2xx; tell it and stay until Timer L.
            IstState::Accepted => self.actions.push_back(Action::TransportError),
            IstState::Confirmed | IstState::Terminated => {}
        }
    }

    fn handle_tu_response(
        &mut self,
        now: Instant,
        response: Response,
    ) -> Result<(), TransactionError> {
        use IstState::*;
        match (self.state, response.status) {
            (Proceeding, 100..=199) => {
                self.timer_trying.stop();
                self.actions
                    .push_back(Action::Transmit(response.clone().into()));
                self.last_provisional = Some(response);
            }
            (Proceeding, 200..=299) => {
                self.state = Accepted;
                self.timer_trying.stop();
                self.actions
                    .push_back(Action::Transmit(response.clone().into()));
                self.last_final = Some(response);
                self.timer_l.start(now, self.timers.l());
            }
            (Proceeding, 300..=699) => {
                self.state = Completed;
                self.timer_trying.stop();
                self.last_final = Some(response);
                self.transmit_final();
                if !self.reliable {
                    self.timer_g.start(now, self.interval_g);
                }
                self.timer_h.start(now, self.timers.h());
            }
            // RFC 6026 §8.7: the TU's 2xx retransmissions go out through the transaction.
            (Accepted, 200..=299) => {
                self.actions.push_back(Action::Transmit(response.into()));
            }
            (_, 100..=699) => return Err(TransactionError::InvalidState),
            (_, status) => return Err(TransactionError::InvalidStatus(status)),
        }
        Ok(())
    }

    fn handle_timer_trying(&mut self) {
        if self.state == IstState::Proceeding && self.last_provisional.is_none() {
            let trying = Response::to_request(&self.invite, 100);
            self.actions
                .push_back(Action::Transmit(trying.clone().into()));
            self.last_provisional = Some(trying);
        }
    }

    fn handle_timer_g(&mut self, now: Instant) {
        if self.state == IstState::Completed {
            self.transmit_final();
            self.interval_g = double(self.interval_g, self.timers.t2);
            self.timer_g.start(now, self.interval_g);
        }
    }

    fn handle_timer_h(&mut self) {
        if self.state == IstState::Completed {
            self.actions.push_back(Action::Timeout);
            self.terminate();
        }
    }

    fn handle_timer_i(&mut self) {
        if self.state == IstState::Confirmed {
            self.terminate();
        }
    }

    fn handle_timer_l(&mut self) {
        if self.state == IstState::Accepted {
            self.terminate();
        }
    }

    fn transmit_final(&mut self) {
        if let Some(response) = &self.last_final {
            self.actions
                .push_back(Action::Transmit(response.clone().into()));
        }
    }

    fn terminate(&mut self) {
        self.state = IstState::Terminated;
        for d in [
            &mut self.timer_trying,
            &mut self.timer_g,
            &mut self.timer_h,
            &mut self.timer_i,
            &mut self.timer_l,
        ] {
            d.stop();
        }
        self.actions.push_back(Action::Terminated);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transaction::testutil::*;

    fn ist(reliable: bool) -> (Instant, ServerInvite) {
        let t0 = base();
        let mut tx = ServerInvite::new(t0, invite("z9hG4bKist"), reliable, Timers::default());
        assert!(
            matches!(drain(&mut tx)[..], [Action::PassRequest(ref r)] if r.method == Method::Invite)
        );
        assert_eq!(tx.state(), IstState::Proceeding);
        (t0, tx)
    }

    fn retransmit(tx: &mut ServerInvite, at: Instant) -> Vec<Action> {
        let invite = tx.request().clone();
        tx.handle_input(at, IstInput::Request(invite)).unwrap();
        drain(tx)
    }

    #[test]
    fn sends_100_trying_after_200ms_without_tu_answer() {
        let (t0, mut tx) = ist(false);
        assert_eq!(tx.poll_timeout(), Some(t0 + ms(200)));
        tx.handle_timeout(t0 + ms(200));
        assert_eq!(sent_statuses(&drain(&mut tx)), vec![100]);
        assert_eq!(tx.poll_timeout(), None);
        // A retransmitted INVITE gets the last provisional again.
        assert_eq!(sent_statuses(&retransmit(&mut tx, t0 + ms(500))), vec![100]);
    }

    #[test]
    fn tu_provisional_cancels_trying_and_is_resent_on_retransmission() {
        let (t0, mut tx) = ist(false);
        let ringing = response(tx.request(), 180, Some("b"));
        tx.handle_input(t0 + ms(50), IstInput::Response(ringing.clone()))
            .unwrap();
        assert_eq!(
            drain(&mut tx),
            vec![Action::Transmit(ringing.clone().into())]
        );
        assert_eq!(tx.poll_timeout(), None);
        assert_eq!(
            retransmit(&mut tx, t0 + ms(500)),
            vec![Action::Transmit(ringing.into())]
        );
    }

    #[test]
    fn retransmission_before_any_response_is_absorbed() {
        let (t0, mut tx) = ist(false);
        assert!(retransmit(&mut tx, t0 + ms(100)).is_empty());
    }

    #[test]
    fn non_2xx_retransmits_with_timer_g_until_ack_then_timer_i() {
        let (t0, mut tx) = ist(false);
        let busy = response(tx.request(), 486, Some("b"));
        tx.handle_input(t0 + ms(10), IstInput::Response(busy.clone()))
            .unwrap();
        assert_eq!(tx.state(), IstState::Completed);
        assert_eq!(sent_statuses(&drain(&mut tx)), vec![486]);
        // G: 500 ms, 1 s, 2 s, 4 s, 4 s.
        let mut at = t0 + ms(10);
        for gap in [500, 1000, 2000, 4000, 4000] {
            at += ms(gap);
            assert_eq!(tx.poll_timeout(), Some(at));
            tx.handle_timeout(at);
            assert_eq!(sent_statuses(&drain(&mut tx)), vec![486]);
        }
        // A retransmitted INVITE gets the final again.
        assert_eq!(sent_statuses(&retransmit(&mut tx, at + ms(1))), vec![486]);
        // A second final from the TU is refused.
        assert_eq!(
            tx.handle_input(at, IstInput::Response(busy)),
            Err(TransactionError::InvalidState)
        );
        let ack = ack_for(tx.request(), "z9hG4bKist", "b");
        tx.handle_input(at + ms(2), IstInput::Request(ack.clone()))
            .unwrap();
        assert_eq!(tx.state(), IstState::Confirmed);
        assert!(drain(&mut tx).is_empty());
        // ACK and INVITE retransmissions are absorbed in Confirmed.
        tx.handle_input(at + ms(3), IstInput::Request(ack)).unwrap();
        assert!(retransmit(&mut tx, at + ms(4)).is_empty());
        assert_eq!(tx.poll_timeout(), Some(at + ms(2) + ms(5000)));
        tx.handle_timeout(at + ms(2) + ms(5000));
        assert_eq!(drain(&mut tx), vec![Action::Terminated]);
    }

    #[test]
    fn timer_h_times_out_without_ack() {
        let (t0, mut tx) = ist(false);
        tx.handle_input(
            t0,
            IstInput::Response(response(tx.request(), 500, Some("b"))),
        )
        .unwrap();
        drain(&mut tx);
        let mut retransmissions = 0;
        while let Some(at) = tx.poll_timeout() {
            tx.handle_timeout(at);
            for a in drain(&mut tx) {
                match a {
                    Action::Transmit(_) => retransmissions += 1,
                    Action::Timeout => assert_eq!(at - t0, ms(32_000)),
                    Action::Terminated => {}
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
        // G at 0.5, 1.5, 3.5, 7.5, 11.5, ..., 31.5 s.
        assert_eq!(retransmissions, 10);
        assert_eq!(tx.state(), IstState::Terminated);
    }

    #[test]
    fn reliable_has_no_timer_g_and_zero_timer_i() {
        let (t0, mut tx) = ist(true);
        tx.handle_input(
            t0,
            IstInput::Response(response(tx.request(), 404, Some("b"))),
        )
        .unwrap();
        drain(&mut tx);
        assert_eq!(tx.poll_timeout(), Some(t0 + ms(32_000)));
        let ack = ack_for(tx.request(), "z9hG4bKist", "b");
        tx.handle_input(t0 + ms(5), IstInput::Request(ack)).unwrap();
        assert_eq!(drain(&mut tx), vec![Action::Terminated]);
    }

    #[test]
    fn two_hundred_accepts_absorbs_invites_passes_acks_until_timer_l() {
        let (t0, mut tx) = ist(false);
        let ok = response(tx.request(), 200, Some("b"));
        tx.handle_input(t0 + ms(10), IstInput::Response(ok.clone()))
            .unwrap();
        assert_eq!(tx.state(), IstState::Accepted);
        assert_eq!(drain(&mut tx), vec![Action::Transmit(ok.clone().into())]);
        // No retransmission of its own; only Timer L.
        assert_eq!(tx.poll_timeout(), Some(t0 + ms(10) + ms(32_000)));
        assert!(retransmit(&mut tx, t0 + ms(500)).is_empty());
        // The TU's 2xx retransmissions go out.
        tx.handle_input(t0 + ms(510), IstInput::Response(ok.clone()))
            .unwrap();
        assert_eq!(drain(&mut tx), vec![Action::Transmit(ok.into())]);
        // Non-2xx are refused in Accepted.
        assert_eq!(
            tx.handle_input(
                t0 + ms(520),
                IstInput::Response(response(tx.request(), 486, None))
            ),
            Err(TransactionError::InvalidState)
        );
        // An ACK matching the transaction is passed up.
        let ack = ack_for(tx.request(), "z9hG4bKist", "b");
        tx.handle_input(t0 + ms(600), IstInput::Request(ack.clone()))
            .unwrap();
        assert_eq!(drain(&mut tx), vec![Action::PassAck(ack)]);
        // Transport error: told, still Accepted.
        tx.handle_input(t0 + ms(700), IstInput::TransportError)
            .unwrap();
        assert_eq!(drain(&mut tx), vec![Action::TransportError]);
        assert_eq!(tx.state(), IstState::Accepted);
        tx.handle_timeout(t0 + ms(10) + ms(32_000));
        assert_eq!(drain(&mut tx), vec![Action::Terminated]);
    }

    #[test]
    fn transport_error_in_proceeding_and_completed_terminates() {
        let (t0, mut tx) = ist(false);
        tx.handle_input(t0, IstInput::TransportError).unwrap();
        assert_eq!(
            drain(&mut tx),
            vec![Action::TransportError, Action::Terminated]
        );
        assert_eq!(
            tx.handle_input(t0, IstInput::Response(response(tx.request(), 200, None))),
            Err(TransactionError::InvalidState)
        );

        let (t0, mut tx) = ist(false);
        tx.handle_input(t0, IstInput::Response(response(tx.request(), 486, None)))
            .unwrap();
        drain(&mut tx);
        tx.handle_input(t0, IstInput::TransportError).unwrap();
        assert_eq!(
            drain(&mut tx),
            vec![Action::TransportError, Action::Terminated]
        );
    }

    #[test]
    fn invalid_status_is_an_error() {
        let (t0, mut tx) = ist(false);
        let mut r = response(tx.request(), 200, None);
        r.status = 99;
        assert_eq!(
            tx.handle_input(t0, IstInput::Response(r)),
            Err(TransactionError::InvalidStatus(99))
        );
        assert_eq!(tx.state(), IstState::Proceeding);
    }
}
