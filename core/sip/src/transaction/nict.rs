//! The non-INVITE client transaction (NICT): RFC 3261 §17.1.2.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::{Action, Deadline, Timers, double, earliest, first_interval};
use crate::message::{Request, Response};

/// State of a non-INVITE client transaction (RFC 3261 Figure 6).
///
/// ```text
///                       request from TU / send it, start E (unreliable only), F
///                                       |
///   Timer E / resend,                   v           Timer F / Timeout to TU,
///   E = min(2E, T2)             +---------------+   Transport error / tell TU
///                     +-------->|               |---------------------------------+
///                     +---------|    Trying     |                                 |
///                               |               |-------------------+             |
///                               +---------------+                   |             |
///                                       |                           | 200-699 /   |
///                                       | 1xx / to TU               | to TU,      |
///                                       |                           | start K     |
///   Timer E / resend,                   v                           |             |
///   E = T2                      +---------------+                   |             |
///                     +-------->|               |<--+ 1xx / to TU   |             |
///                     +---------|  Proceeding   |---+               |             |
///                               |               |-------------+     |             |
///                               +---------------+             |     |             |
///                                       |       200-699 /     |     |             |
///                                       |       to TU,        |     |             |
///                                       |       start K       |     |             |
///             Timer F / Timeout to TU,  |                     |     |             |
///             Transport error / tell TU |                     v     v             |
///                                       |                 +---------------+       |
///                                       | response  +---->|               |       |
///                                       | / absorb  |     |   Completed   |       |
///                                       |           +-----|               |       |
///                                       |                 +---------------+       |
///                                       |                         |               |
///                                       |                         | Timer K       |
///                                       |                         | (0 if         |
///                                       |                         | reliable)     |
///                                       v                         v               v
///           +-------------------------------------------------------------------------+
///           |                               Terminated                                |
///           +-------------------------------------------------------------------------+
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NictState {
    /// The request was sent; no response yet.
    Trying,
    /// A provisional response arrived.
    Proceeding,
    /// A final response arrived; absorbing its retransmissions (Timer K).
    Completed,
    /// Finished; the owner forgets the transaction.
    Terminated,
}

/// The NICT's timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NictTimer {
    /// Request retransmission (unreliable transports only), T1 doubling up to T2.
    E,
    /// Transaction timeout, 64·T1.
    F,
    /// Wait for response retransmissions in Completed (T4, zero if reliable).
    K,
}

/// Inputs to the NICT, by source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NictInput {
    // From the transport layer.
    /// A response matched to this transaction (§17.1.3).
    Response(Response),
    /// The transport failed to send the request.
    TransportError,
    // From the clock.
    /// A timer fired.
    Timer(NictTimer),
}

/// A non-INVITE client transaction. See [`NictState`] for the diagram.
#[derive(Debug, Clone)]
pub struct ClientNonInvite {
    state: NictState,
    reliable: bool,
    timers: Timers,
    request: Request,
    timer_e: Deadline,
    interval_e: Duration,
    timer_f: Deadline,
    timer_k: Deadline,
    actions: VecDeque<Action>,
}

impl ClientNonInvite {
    /// Starts the transaction: queues the request for transmission and starts Timer E
    /// (unreliable transports only) and Timer F.
    pub fn new(now: Instant, request: Request, reliable: bool, timers: Timers) -> Self {
        let mut nict = ClientNonInvite {
            state: NictState::Trying,
            reliable,
            timers,
            request,
            timer_e: Deadline::default(),
            interval_e: first_interval(timers.e()),
            timer_f: Deadline::default(),
            timer_k: Deadline::default(),
            actions: VecDeque::new(),
        };
        nict.transmit_request();
        if !reliable {
            nict.timer_e.start(now, nict.interval_e);
        }
        nict.timer_f.start(now, timers.f());
        nict
    }

    /// The current state.
    pub fn state(&self) -> NictState {
        self.state
    }

    /// The request.
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// Handles one input, then fires any timer already due at `now`.
    pub fn handle_input(&mut self, now: Instant, input: NictInput) {
        self.dispatch(now, input);
        self.handle_timeout(now);
    }

    /// Fires every timer due at `now`, earliest first.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(timer) = self.due_timer(now) {
            self.deadline_mut(timer).stop();
            self.dispatch(now, NictInput::Timer(timer));
        }
    }

    /// The next action for the owner.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        earliest(&[self.timer_e, self.timer_f, self.timer_k])
    }

    fn due_timer(&self, now: Instant) -> Option<NictTimer> {
        [
            (NictTimer::E, self.timer_e),
            (NictTimer::F, self.timer_f),
            (NictTimer::K, self.timer_k),
        ]
        .into_iter()
        .filter(|(_, d)| d.is_due(now))
        .min_by_key(|(_, d)| d.at())
        .map(|(t, _)| t)
    }

    fn deadline_mut(&mut self, timer: NictTimer) -> &mut Deadline {
        match timer {
            NictTimer::E => &mut self.timer_e,
            NictTimer::F => &mut self.timer_f,
            NictTimer::K => &mut self.timer_k,
        }
    }

    fn dispatch(&mut self, now: Instant, input: NictInput) {
        if self.state == NictState::Terminated {
            return;
        }
        match input {
            NictInput::Response(response) => self.handle_response(now, response),
            NictInput::TransportError => self.handle_transport_error(),
            NictInput::Timer(NictTimer::E) => self.handle_timer_e(now),
            NictInput::Timer(NictTimer::F) => self.handle_timer_f(),
            NictInput::Timer(NictTimer::K) => self.handle_timer_k(),
        }
    }

    fn handle_response(&mut self, now: Instant, response: Response) {
        use NictState::*;
        match (self.state, response.status) {
            (Trying | Proceeding, 100..=199) => {
                self.state = Proceeding;
                self.actions.push_back(Action::PassResponse(response));
            }
            (Trying | Proceeding, 200..=699) => {
                self.state = Completed;
                self.timer_e.stop();
                self.timer_f.stop();
                self.actions.push_back(Action::PassResponse(response));
                self.timer_k.start(now, self.timers.k(self.reliable));
            }
            // Retransmitted finals in Completed, and provisionals overtaken by the final.
            _ => {}
        }
    }

    fn handle_transport_error(&mut self) {
        if matches!(self.state, NictState::Trying | NictState::Proceeding) {
            self.actions.push_back(Action::TransportError);
            self.terminate();
        }
    }

    fn handle_timer_e(&mut self, now: Instant) {
        let next = match self.state {
            NictState::Trying => double(self.interval_e, self.timers.t2),
            NictState::Proceeding => first_interval(self.timers.t2),
            NictState::Completed | NictState::Terminated => return,
        };
        self.transmit_request();
        self.interval_e = next;
        self.timer_e.start(now, next);
    }

    fn handle_timer_f(&mut self) {
        if matches!(self.state, NictState::Trying | NictState::Proceeding) {
            self.actions.push_back(Action::Timeout);
            self.terminate();
        }
    }

    fn handle_timer_k(&mut self) {
        if self.state == NictState::Completed {
            self.terminate();
        }
    }

    fn transmit_request(&mut self) {
        self.actions
            .push_back(Action::Transmit(self.request.clone().into()));
    }

    fn terminate(&mut self) {
        self.state = NictState::Terminated;
        self.timer_e.stop();
        self.timer_f.stop();
        self.timer_k.stop();
        self.actions.push_back(Action::Terminated);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transaction::testutil::*;

    fn nict(reliable: bool) -> (Instant, ClientNonInvite) {
        let t0 = base();
        let mut tx = ClientNonInvite::new(t0, register("z9hG4bKnict"), reliable, Timers::default());
        assert!(matches!(drain(&mut tx)[..], [Action::Transmit(_)]));
        (t0, tx)
    }

    /// Runs the clock until the machine is idle; returns the offsets of the transmissions.
    fn run(t0: Instant, tx: &mut ClientNonInvite, until: Duration) -> (Vec<Duration>, Vec<Action>) {
        let mut sends = Vec::new();
        let mut others = Vec::new();
        while let Some(at) = tx.poll_timeout().filter(|at| *at <= t0 + until) {
            tx.handle_timeout(at);
            for a in drain(tx) {
                match a {
                    Action::Transmit(_) => sends.push(at - t0),
                    other => others.push(other),
                }
            }
        }
        (sends, others)
    }

    #[test]
    fn timer_e_doubles_to_t2_and_timer_f_times_out_at_64_t1() {
        let (t0, mut tx) = nict(false);
        let (sends, others) = run(t0, &mut tx, Duration::from_secs(3600));
        let expected: Vec<Duration> = [
            500, 1500, 3500, 7500, 11_500, 15_500, 19_500, 23_500, 27_500, 31_500,
        ]
        .into_iter()
        .map(ms)
        .collect();
        assert_eq!(sends, expected);
        assert_eq!(others, vec![Action::Timeout, Action::Terminated]);
        assert_eq!(tx.state(), NictState::Terminated);
    }

    #[test]
    fn reliable_sends_once_and_times_out() {
        let (t0, mut tx) = nict(true);
        assert_eq!(tx.poll_timeout(), Some(t0 + ms(32_000)));
        let (sends, others) = run(t0, &mut tx, Duration::from_secs(3600));
        assert!(sends.is_empty());
        assert_eq!(others, vec![Action::Timeout, Action::Terminated]);
    }

    #[test]
    fn proceeding_retransmits_every_t2() {
        let (t0, mut tx) = nict(false);
        tx.handle_input(
            t0 + ms(100),
            NictInput::Response(response(tx.request(), 100, None)),
        );
        assert_eq!(tx.state(), NictState::Proceeding);
        assert!(matches!(drain(&mut tx)[..], [Action::PassResponse(ref r)] if r.status == 100));
        let (sends, _) = run(t0, &mut tx, ms(13_000));
        // E still fires at 500 ms (armed in Trying), then every T2.
        assert_eq!(sends, vec![ms(500), ms(4500), ms(8500), ms(12_500)]);
    }

    #[test]
    fn final_completes_and_absorbs_until_timer_k() {
        let (t0, mut tx) = nict(false);
        let ok = response(tx.request(), 200, Some("reg"));
        tx.handle_input(t0 + ms(700), NictInput::Response(ok.clone()));
        assert_eq!(tx.state(), NictState::Completed);
        assert_eq!(drain(&mut tx), vec![Action::PassResponse(ok.clone())]);
        tx.handle_input(t0 + ms(800), NictInput::Response(ok));
        tx.handle_input(
            t0 + ms(900),
            NictInput::Response(response(tx.request(), 100, None)),
        );
        assert!(drain(&mut tx).is_empty());
        assert_eq!(tx.poll_timeout(), Some(t0 + ms(700) + ms(5000)));
        tx.handle_timeout(t0 + ms(5700));
        assert_eq!(drain(&mut tx), vec![Action::Terminated]);
    }

    #[test]
    fn timer_k_is_zero_on_reliable() {
        let (t0, mut tx) = nict(true);
        tx.handle_input(
            t0 + ms(1),
            NictInput::Response(response(tx.request(), 404, Some("x"))),
        );
        assert!(matches!(
            drain(&mut tx)[..],
            [Action::PassResponse(_), Action::Terminated]
        ));
    }

    #[test]
    fn timer_f_fires_in_proceeding() {
        let (t0, mut tx) = nict(true);
        tx.handle_input(
            t0 + ms(1),
            NictInput::Response(response(tx.request(), 100, None)),
        );
        drain(&mut tx);
        tx.handle_timeout(t0 + ms(32_000));
        assert_eq!(drain(&mut tx), vec![Action::Timeout, Action::Terminated]);
    }

    #[test]
    fn transport_error_terminates() {
        let (t0, mut tx) = nict(false);
        tx.handle_input(t0, NictInput::TransportError);
        assert_eq!(
            drain(&mut tx),
            vec![Action::TransportError, Action::Terminated]
        );
        assert_eq!(tx.poll_timeout(), None);
    }
}
