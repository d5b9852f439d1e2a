//! The non-INVITE server transaction (NIST): RFC 3261 §17.2.2.

use std::collections::VecDeque;
use std::time::Instant;

use super::{Action, Deadline, Timers, TransactionError};
use crate::message::{Request, Response};

/// State of a non-INVITE server transaction (RFC 3261 Figure 8).
///
/// ```text
///                         request from transport / pass to TU
///                                       |
///                                       v
///                               +---------------+
///   request / absorb  +-------->|               |
///                     +---------|    Trying     |
///                               |               |-------------------+
///                               +---------------+                   |
///                                       |                           | 200-699 from
///                                       | 1xx from TU / send        | TU / send,
///                                       |                           | start J
///                                       v                           |
///  request / resend             +---------------+                   |
///  last provisional;  +-------->|               |                   |
///  1xx from TU / send +---------|  Proceeding   |                   |
///                               |               |-------------+     |
///                               +---------------+             |     |
///                                       |       200-699 from  |     |
///                                       |       TU / send,    |     |
///                                       |       start J       |     |
///                     Transport error / |                     |     |
///                     tell TU           |                     v     v
///                                       |                 +---------------+
///                                       | request / +---->|               |
///                                       | resend    |     |   Completed   |
///                                       | final     +-----|               |
///                                       |                 +---------------+
///                                       |                         |
///                                       |                         | Timer J (0 if
///                                       |                         | reliable),
///                                       |                         | Transport error /
///                                       v                         v tell TU
///           +-------------------------------------------------------------------------+
///           |                               Terminated                                |
///           +-------------------------------------------------------------------------+
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NistState {
    /// The request was passed to the TU; no response yet.
    Trying,
    /// A provisional response was sent.
    Proceeding,
    /// A final response was sent; answering request retransmissions with it (Timer J).
    Completed,
    /// Finished; the owner forgets the transaction.
    Terminated,
}

/// The NIST's timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NistTimer {
    /// Absorb request retransmissions in Completed (64·T1, zero if reliable).
    J,
}

/// Inputs to the NIST, by source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NistInput {
    // From the transport layer.
    /// A retransmission of the request (§17.2.3).
    Request(Request),
    /// The transport failed to send a response.
    TransportError,
    // From the TU.
    /// A response to send.
    Response(Response),
    // From the clock.
    /// A timer fired.
    Timer(NistTimer),
}

/// A non-INVITE server transaction. See [`NistState`] for the diagram.
#[derive(Debug, Clone)]
pub struct ServerNonInvite {
    state: NistState,
    reliable: bool,
    timers: Timers,
    request: Request,
    last_response: Option<Response>,
    timer_j: Deadline,
    actions: VecDeque<Action>,
}

impl ServerNonInvite {
    /// Starts the transaction for a received request: queues it for the TU.
    pub fn new(_now: Instant, request: Request, reliable: bool, timers: Timers) -> Self {
        let mut nist = ServerNonInvite {
            state: NistState::Trying,
            reliable,
            timers,
            request: request.clone(),
            last_response: None,
            timer_j: Deadline::default(),
            actions: VecDeque::new(),
        };
        nist.actions.push_back(Action::PassRequest(request));
        nist
    }

    /// The current state.
    pub fn state(&self) -> NistState {
        self.state
    }

    /// The request.
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// Handles one input, then fires any timer already due at `now`. Only a TU response can
    /// be refused: with [`TransactionError::InvalidStatus`] or, after the final response,
    /// [`TransactionError::InvalidState`].
    pub fn handle_input(&mut self, now: Instant, input: NistInput) -> Result<(), TransactionError> {
        let result = self.dispatch(now, input);
        self.handle_timeout(now);
        result
    }

    /// Fires Timer J if it is due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.timer_j.is_due(now) {
            self.timer_j.stop();
            // Timers are never refused.
            self.dispatch(now, NistInput::Timer(NistTimer::J))
                .unwrap_or(());
        }
    }

    /// The next action for the owner.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timer_j.at()
    }

    fn dispatch(&mut self, now: Instant, input: NistInput) -> Result<(), TransactionError> {
        if self.state == NistState::Terminated {
            return match input {
                NistInput::Response(_) => Err(TransactionError::InvalidState),
                _ => Ok(()),
            };
        }
        match input {
            NistInput::Request(_) => self.handle_request(),
            NistInput::TransportError => self.handle_transport_error(),
            NistInput::Response(response) => return self.handle_tu_response(now, response),
            NistInput::Timer(NistTimer::J) => self.handle_timer_j(),
        }
        Ok(())
    }

    fn handle_request(&mut self) {
        match self.state {
            NistState::Proceeding | NistState::Completed => {
                if let Some(response) = &self.last_response {
                    self.actions
                        .push_back(Action::Transmit(response.clone().into()));
                }
            }
            NistState::Trying | NistState::Terminated => {}
        }
    }

    fn handle_transport_error(&mut self) {
        self.actions.push_back(Action::TransportError);
        self.terminate();
    }

    fn handle_tu_response(
        &mut self,
        now: Instant,
        response: Response,
    ) -> Result<(), TransactionError> {
        use NistState::*;
        match (self.state, response.status) {
            (Trying | Proceeding, 100..=199) => {
                self.state = Proceeding;
            }
            (Trying | Proceeding, 200..=699) => {
                self.state = Completed;
                self.timer_j.start(now, self.timers.j(self.reliable));
            }
            (_, 100..=699) => return Err(TransactionError::InvalidState),
            (_, status) => return Err(TransactionError::InvalidStatus(status)),
        }
        self.actions
            .push_back(Action::Transmit(response.clone().into()));
        self.last_response = Some(response);
        Ok(())
    }

    fn handle_timer_j(&mut self) {
        if self.state == NistState::Completed {
            self.terminate();
        }
    }

    fn terminate(&mut self) {
        self.state = NistState::Terminated;
        self.timer_j.stop();
        self.actions.push_back(Action::Terminated);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transaction::testutil::*;

    fn nist(reliable: bool) -> (Instant, ServerNonInvite) {
        let t0 = base();
        let mut tx = ServerNonInvite::new(t0, register("z9hG4bKnist"), reliable, Timers::default());
        assert!(matches!(drain(&mut tx)[..], [Action::PassRequest(_)]));
        assert_eq!(tx.state(), NistState::Trying);
        (t0, tx)
    }

    fn retransmit(tx: &mut ServerNonInvite, at: Instant) -> Vec<u16> {
        let request = tx.request().clone();
        tx.handle_input(at, NistInput::Request(request)).unwrap();
        sent_statuses(&drain(tx))
    }

    #[test]
    fn trying_absorbs_retransmissions_and_sends_no_100_by_itself() {
        let (t0, mut tx) = nist(false);
        assert!(retransmit(&mut tx, t0 + ms(500)).is_empty());
        assert_eq!(tx.poll_timeout(), None);
    }

    #[test]
    fn proceeding_resends_last_provisional() {
        let (t0, mut tx) = nist(false);
        tx.handle_input(t0, NistInput::Response(response(tx.request(), 100, None)))
            .unwrap();
        assert_eq!(tx.state(), NistState::Proceeding);
        assert_eq!(sent_statuses(&drain(&mut tx)), vec![100]);
        assert_eq!(retransmit(&mut tx, t0 + ms(500)), vec![100]);
        tx.handle_input(t0, NistInput::Response(response(tx.request(), 183, None)))
            .unwrap();
        assert_eq!(sent_statuses(&drain(&mut tx)), vec![183]);
        assert_eq!(retransmit(&mut tx, t0 + ms(600)), vec![183]);
    }

    #[test]
    fn completed_resends_final_until_timer_j() {
        let (t0, mut tx) = nist(false);
        tx.handle_input(
            t0 + ms(1),
            NistInput::Response(response(tx.request(), 200, Some("r"))),
        )
        .unwrap();
        assert_eq!(tx.state(), NistState::Completed);
        assert_eq!(sent_statuses(&drain(&mut tx)), vec![200]);
        assert_eq!(retransmit(&mut tx, t0 + ms(500)), vec![200]);
        assert_eq!(
            tx.handle_input(
                t0 + ms(2),
                NistInput::Response(response(tx.request(), 500, None))
            ),
            Err(TransactionError::InvalidState)
        );
        assert_eq!(tx.poll_timeout(), Some(t0 + ms(1) + ms(32_000)));
        tx.handle_timeout(t0 + ms(32_000));
        assert!(drain(&mut tx).is_empty());
        tx.handle_timeout(t0 + ms(32_001));
        assert_eq!(drain(&mut tx), vec![Action::Terminated]);
    }

    #[test]
    fn timer_j_is_zero_on_reliable() {
        let (t0, mut tx) = nist(true);
        tx.handle_input(
            t0,
            NistInput::Response(response(tx.request(), 403, Some("r"))),
        )
        .unwrap();
        let actions = drain(&mut tx);
        assert_eq!(sent_statuses(&actions), vec![403]);
        assert_eq!(actions.last(), Some(&Action::Terminated));
        assert_eq!(tx.state(), NistState::Terminated);
    }

    #[test]
    fn transport_error_terminates() {
        let (t0, mut tx) = nist(false);
        tx.handle_input(t0, NistInput::Response(response(tx.request(), 180, None)))
            .unwrap();
        drain(&mut tx);
        tx.handle_input(t0, NistInput::TransportError).unwrap();
        assert_eq!(
            drain(&mut tx),
            vec![Action::TransportError, Action::Terminated]
        );
    }

    #[test]
    fn invalid_status_is_refused() {
        let (t0, mut tx) = nist(false);
        let mut r = response(tx.request(), 200, None);
        r.status = 700;
        assert_eq!(
            tx.handle_input(t0, NistInput::Response(r)),
            Err(TransactionError::InvalidStatus(700))
        );
    }
}
