//! What the application sees of accounts and calls: one registration state, one call state,
//! one end reason. The FFI mirrors these types and the platform shells map them to Telecom /
//! CallKit, so every decision about what a SIP status *means* is made here, once.

use std::fmt;
use std::time::Duration;

use handset_media::stats::CallQuality;
use handset_sip::usage::registration::RegistrationFailure;

use crate::push::ReportId;

/// Where an account's registration stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrationState {
    /// Not started (accounts that do not register stay here).
    Idle,
    /// A REGISTER is on its way (first registration, refresh or retry).
    Registering,
    /// The binding is in place.
    Registered {
        /// Lifetime granted by the registrar, in seconds.
        expires: u32,
    },
    /// The registration failed.
    Failed {
        /// Why.
        reason: RegistrationFailure,
        /// What the network said, when it said something (the TLS certificate problem, the
        /// DNS error); never message content.
        detail: Option<String>,
        /// When it is retried on its own; `None` when it is not (bad credentials).
        retry_in: Option<Duration>,
    },
    /// The binding was removed; no refresh will happen.
    Unregistered,
}

/// Who started a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallDirection {
    /// We called.
    Outgoing,
    /// They called.
    Incoming,
}

/// Why a call (or a push report that never became a call) ended: the one classification
/// every layer uses. The platform shells map it to Telecom's `DisconnectCause` and CallKit's
/// `CXCallEndedReason` with a table over this enum and the call's direction; none of them
/// looks at a SIP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndReason {
    /// The user hung up an answered call here.
    LocalHangup,
    /// The other party hung up an answered call.
    RemoteHangup,
    /// The callee was busy (486 Busy Here, 600 Busy Everywhere); an incoming call refused
    /// because the phone had as many calls as it takes.
    Busy,
    /// Declined: the callee refused our call (603), or the user refused an incoming call here.
    Declined,
    /// Nobody answered: the callee's side gave up (408, 480), an incoming call rang out here,
    /// or a pushed call's INVITE never came.
    Unanswered,
    /// Cancelled before it was answered: by us (outgoing), or by the caller (incoming: a
    /// missed call).
    Cancelled,
    /// Another device of the user answered the incoming call.
    AnsweredElsewhere,
    /// Another device of the user declined the incoming call.
    DeclinedElsewhere,
    /// The call failed: refused with another status, authentication failed, the peer broke
    /// the protocol, media could not start.
    Failed {
        /// The SIP status that failed it, when one did.
        status: Option<u16>,
    },
    /// The network lost the call: no answer at all from the server, the connection broke,
    /// the session expired, our answer was never acknowledged.
    NetworkLost,
}

impl EndReason {
    /// The classification of a refusal status from the other side (or a proxy).
    pub fn from_remote_status(status: u16) -> EndReason {
        match status {
            486 | 600 => EndReason::Busy,
            603 | 607 | 608 => EndReason::Declined,
            408 | 480 => EndReason::Unanswered,
            487 => EndReason::Cancelled,
            status => EndReason::Failed {
                status: Some(status),
            },
        }
    }

    /// Whether the call ended the way calls normally end (hung up by either side, or
    /// cancelled), as opposed to a refusal or a failure.
    pub fn is_normal(self) -> bool {
        matches!(
            self,
            EndReason::LocalHangup | EndReason::RemoteHangup | EndReason::Cancelled
        )
    }

    /// The SIP status behind a failure, if one was given.
    pub fn status(self) -> Option<u16> {
        match self {
            EndReason::Failed { status } => status,
            _ => None,
        }
    }

    /// Whether an incoming call that ended so, never answered here, is a missed call in the
    /// history: nobody took it and nobody declined it (here or on another device).
    pub fn is_missed_call(self) -> bool {
        !matches!(
            self,
            EndReason::AnsweredElsewhere | EndReason::DeclinedElsewhere | EndReason::Declined
        )
    }

    /// Whether the user (here or on another device) declined the call.
    pub fn is_declined(self) -> bool {
        matches!(self, EndReason::Declined | EndReason::DeclinedElsewhere)
    }
}

impl fmt::Display for EndReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndReason::LocalHangup => f.write_str("hung up"),
            EndReason::RemoteHangup => f.write_str("the other party hung up"),
            EndReason::Busy => f.write_str("busy"),
            EndReason::Declined => f.write_str("declined"),
            EndReason::Unanswered => f.write_str("not answered"),
            EndReason::Cancelled => f.write_str("cancelled"),
            EndReason::AnsweredElsewhere => f.write_str("answered elsewhere"),
            EndReason::DeclinedElsewhere => f.write_str("declined elsewhere"),
            EndReason::Failed { status: Some(s) } => write!(f, "failed with status {s}"),
            EndReason::Failed { status: None } => f.write_str("failed"),
            EndReason::NetworkLost => f.write_str("network lost"),
        }
    }
}

/// A call as the user sees it.
///
/// ```text
///  outgoing:  Calling ──18x──► Ringing ──18x+SDP──► EarlyMedia
///                │                │                    │
///                └────────────────┴──2xx (media up)────┴──► Active ◄──hold/resume──┐
///                                                            │    └─────────────────┘
///  incoming:  Incoming ──answer (media up)───────────────────┘
///
///  any ──hangup, refusal, cancel, failure──► Ended (nothing follows)
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum CallState {
    /// Ringing here: answer or reject it.
    Incoming,
    /// Our INVITE is on its way (or about to be).
    Calling,
    /// The callee is being alerted.
    Ringing,
    /// Early media flows.
    EarlyMedia,
    /// Answered; media flows unless the call is held.
    Active {
        /// Negotiated codec.
        codec: String,
        /// Whether SRTP protects the media.
        srtp: bool,
        /// Whether either side holds the call.
        on_hold: bool,
    },
    /// Over.
    Ended {
        /// Why.
        reason: EndReason,
        /// Media statistics, when media flowed.
        quality: Option<CallQuality>,
    },
}

impl CallState {
    /// Whether the call is over.
    pub fn is_ended(&self) -> bool {
        matches!(self, CallState::Ended { .. })
    }

    /// The call screen's view of this state; `None` once ended.
    pub fn screen_state(&self) -> Option<crate::screen::CallState> {
        use crate::screen::CallState as S;
        Some(match self {
            CallState::Incoming => S::IncomingRinging,
            CallState::Calling => S::OutgoingDialing,
            CallState::Ringing | CallState::EarlyMedia => S::OutgoingRinging,
            CallState::Active { on_hold: false, .. } => S::Active,
            CallState::Active { on_hold: true, .. } => S::OnHold,
            CallState::Ended { .. } => return None,
        })
    }
}

/// What just happened to a call; every update comes with the [`CallState`] it leads to.
#[derive(Debug, Clone, PartialEq)]
pub enum CallUpdate {
    /// A call came in: answer or reject it.
    Incoming {
        /// The account it came in on.
        account: super::AccountId,
        /// The caller's address.
        from: String,
        /// The caller's display name, if sent.
        display_name: Option<String>,
        /// The caller's name from the contacts, if known.
        contact_name: Option<String>,
        /// The call's id on CallKit / Telecom: the id of the push report that announced it
        /// (already shown under it), else one derived from its Call-ID the same way, so a push
        /// that comes after the INVITE names the same id.
        report_id: ReportId,
        /// A VoIP push announced the call (its report is already on screen).
        pushed: bool,
        /// The INVITE's Call-ID.
        sip_call_id: String,
    },
    /// We are calling: the call exists (its INVITE goes out once the network is ready).
    Dialing {
        /// The account it goes out on.
        account: super::AccountId,
        /// The address called.
        to: String,
        /// The call's id on CallKit / Telecom.
        report_id: ReportId,
    },
    /// The callee is being alerted.
    Ringing,
    /// Early media flows.
    EarlyMedia,
    /// Answered; media flows.
    Answered {
        /// Negotiated codec.
        codec: String,
        /// Whether SRTP protects the media.
        srtp: bool,
    },
    /// A DTMF digit arrived (RFC 4733 or SIP INFO).
    Dtmf {
        /// The digit.
        digit: char,
    },
    /// Put on hold or resumed, by either side.
    Hold {
        /// Whether the call is now held.
        on_hold: bool,
    },
    /// ICE chose the path the call's media takes (calls with ICE; again when it changes).
    MediaPath {
        /// Through the TURN relay, rather than straight between the two ends.
        relayed: bool,
    },
    /// The call ended.
    Ended {
        /// Why.
        reason: EndReason,
        /// Media statistics, when media flowed.
        quality: Option<CallQuality>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_statuses_are_classified_once() {
        assert_eq!(EndReason::from_remote_status(486), EndReason::Busy);
        assert_eq!(EndReason::from_remote_status(600), EndReason::Busy);
        assert_eq!(EndReason::from_remote_status(603), EndReason::Declined);
        assert_eq!(EndReason::from_remote_status(480), EndReason::Unanswered);
        assert_eq!(EndReason::from_remote_status(408), EndReason::Unanswered);
        assert_eq!(EndReason::from_remote_status(487), EndReason::Cancelled);
        assert_eq!(
            EndReason::from_remote_status(404),
            EndReason::Failed { status: Some(404) }
        );
        assert_eq!(EndReason::from_remote_status(404).status(), Some(404));
        assert!(EndReason::Cancelled.is_normal());
        assert!(!EndReason::Busy.is_normal());
    }

    #[test]
    fn missed_calls_are_the_ones_nobody_took() {
        for reason in [
            EndReason::Cancelled,
            EndReason::Unanswered,
            EndReason::Busy,
            EndReason::NetworkLost,
            EndReason::Failed { status: None },
        ] {
            assert!(reason.is_missed_call(), "{reason}");
        }
        for reason in [
            EndReason::AnsweredElsewhere,
            EndReason::DeclinedElsewhere,
            EndReason::Declined,
        ] {
            assert!(!reason.is_missed_call(), "{reason}");
        }
    }
}
