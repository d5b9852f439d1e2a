//! Session timers (RFC 4028): negotiating Session-Expires, Min-SE and the refresher, the
//! refresher's re-INVITE or UPDATE at half the interval, and the BYE the other side sends when
//! no refresh came before the session expired.
//!
//! The `refresher` parameter names a role in the *transaction* that carried it (`uac` is the
//! sender of that request), so it is turned into "us or them" as soon as it is read.

use std::time::{Duration, Instant};

use super::{
    Call, CallConfig, CallEvent, CallState, EndReason, MIN_SESSION_EXPIRES, has_option, later,
};
use crate::message::{HeaderName, Headers, Method, Response, parse_delta_seconds};

/// The `refresher` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refresher {
    /// The sender of the request refreshes.
    Uac,
    /// The receiver of the request refreshes.
    Uas,
}

impl Refresher {
    fn parse(text: &str) -> Option<Refresher> {
        if text.eq_ignore_ascii_case("uac") {
            Some(Refresher::Uac)
        } else if text.eq_ignore_ascii_case("uas") {
            Some(Refresher::Uas)
        } else {
            None
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Refresher::Uac => "uac",
            Refresher::Uas => "uas",
        }
    }
}

/// A Session-Expires value (RFC 4028 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SessionExpires {
    pub(super) interval: u32,
    pub(super) refresher: Option<Refresher>,
}

/// A Session-Expires or Min-SE header that does not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Malformed;

/// Parses Session-Expires (`delta-seconds *(;param)`); an unknown `refresher` value counts
/// as absent.
pub(super) fn session_expires(headers: &Headers) -> Result<Option<SessionExpires>, Malformed> {
    let Some(value) = headers.get(&HeaderName::SessionExpires) else {
        return Ok(None);
    };
    let mut parts = value.split(';');
    let interval = parts
        .next()
        .and_then(parse_delta_seconds)
        .ok_or(Malformed)?;
    let refresher = parts
        .filter_map(|p| p.split_once('='))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("refresher"))
        .and_then(|(_, v)| Refresher::parse(v.trim()));
    Ok(Some(SessionExpires {
        interval,
        refresher,
    }))
}

/// Parses Min-SE (`delta-seconds *(;param)`).
pub(super) fn min_se(headers: &Headers) -> Result<Option<u32>, Malformed> {
    headers
        .get(&HeaderName::from("Min-SE"))
        .map(|v| {
            v.split(';')
                .next()
                .and_then(parse_delta_seconds)
                .ok_or(Malformed)
        })
        .transpose()
}

/// What the UAS of a session-refreshing request (INVITE, re-INVITE, UPDATE) decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Negotiated {
    pub(super) interval: u32,
    pub(super) refresher: Refresher,
    /// The peer supports timers: put `Require: timer` in the 2xx (§9).
    pub(super) require_timer: bool,
}

impl Negotiated {
    /// Whether we (the UAS of the request) refresh.
    pub(super) fn local_refresher(&self) -> bool {
        self.refresher == Refresher::Uas
    }

    /// Session-Expires (and Require: timer) for our 2xx.
    pub(super) fn write_response_headers(&self, headers: &mut Headers) {
        headers.push(
            HeaderName::SessionExpires,
            format!("{};refresher={}", self.interval, self.refresher.as_str()),
        );
        if self.require_timer {
            headers.push(HeaderName::Require, "timer");
        }
    }
}

/// Why a request's session timer parameters are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// 400: Session-Expires or Min-SE does not parse.
    Malformed,
    /// 422 with this Min-SE: the interval is below our minimum.
    TooSmall(u32),
}

/// RFC 4028 §9: the UAS's choice for a request. The request's interval is kept (or lowered
/// to ours when ours is smaller and still above the request's Min-SE); the refresher is the
/// request's choice, else the UAC when it supports timers, else us. Without Session-Expires in
/// the request we impose `config.session_expires` when set. `None`: no session timer.
pub(super) fn negotiate_uas(
    headers: &Headers,
    config: &CallConfig,
) -> Result<Option<Negotiated>, Refusal> {
    if !config.supports_timer {
        return Ok(None);
    }
    let peer_supports = has_option(headers, &HeaderName::Supported, "timer")
        || has_option(headers, &HeaderName::Require, "timer");
    let requested = session_expires(headers).map_err(|_| Refusal::Malformed)?;
    let peer_min = min_se(headers)
        .map_err(|_| Refusal::Malformed)?
        .unwrap_or(MIN_SESSION_EXPIRES);
    let floor = peer_min.max(config.min_se());
    let default_refresher = if peer_supports {
        Refresher::Uac
    } else {
        Refresher::Uas
    };
    match requested {
        Some(se) => {
            if se.interval < config.min_se() {
                return Err(Refusal::TooSmall(config.min_se()));
            }
            let interval = match config.session_expires {
                Some(ours) if ours < se.interval && ours >= floor => ours,
                _ => se.interval,
            };
            let refresher = if peer_supports {
                se.refresher.unwrap_or(default_refresher)
            } else {
                Refresher::Uas
            };
            Ok(Some(Negotiated {
                interval,
                refresher,
                require_timer: peer_supports,
            }))
        }
        None => Ok(config.session_expires.map(|ours| Negotiated {
            interval: ours.max(floor),
            refresher: default_refresher,
            require_timer: peer_supports,
        })),
    }
}

/// A running session timer.
#[derive(Debug, Clone)]
pub(super) struct SessionTimer {
    pub(super) interval: u32,
    pub(super) local_refresher: bool,
    /// The refresher's next refresh (half the interval); `None` while one is in flight or for
    /// the other side.
    refresh_at: Option<Instant>,
    /// When the session expires without a refresh: the interval for the refresher; for the
    /// other side the interval minus min(32 s, interval/3), so its BYE precedes the end
    /// (§10).
    expires_at: Instant,
}

impl SessionTimer {
    fn new(now: Instant, interval: u32, local_refresher: bool) -> Self {
        let full = Duration::from_secs(u64::from(interval.max(2)));
        if local_refresher {
            SessionTimer {
                interval,
                local_refresher,
                refresh_at: Some(later(now, full / 2)),
                expires_at: later(now, full),
            }
        } else {
            let margin = Duration::from_secs(32).min(full / 3);
            SessionTimer {
                interval,
                local_refresher,
                refresh_at: None,
                expires_at: later(now, full - margin),
            }
        }
    }

    pub(super) fn deadline(&self) -> Instant {
        self.refresh_at.unwrap_or(self.expires_at)
    }
}

impl Call {
    /// Arms (or re-arms after a refresh) the session timer.
    pub(super) fn start_session(&mut self, now: Instant, interval: u32, local_refresher: bool) {
        self.session = Some(SessionTimer::new(now, interval, local_refresher));
        if !self.ended {
            self.emit(CallEvent::SessionRefreshed {
                interval,
                local_refresher,
            });
        }
    }

    /// The Session-Expires to put in an in-dialog INVITE or UPDATE of ours: the running
    /// interval (raised to the peer's Min-SE) with the current refresher, or our configured
    /// interval when no timer runs. Writes the headers and returns the interval asked for.
    pub(super) fn write_session_request_headers(&self, headers: &mut Headers) -> Option<u32> {
        if !self.config.supports_timer {
            return None;
        }
        let floor = self.peer_min_se.max(self.config.min_se());
        let (interval, refresher) = match &self.session {
            Some(s) => (
                s.interval.max(floor),
                Some(if s.local_refresher { "uac" } else { "uas" }),
            ),
            None => (self.config.session_expires?.max(floor), None),
        };
        let value = match refresher {
            Some(r) => format!("{interval};refresher={r}"),
            None => interval.to_string(),
        };
        headers.push(HeaderName::SessionExpires, value);
        headers.push(HeaderName::from("Min-SE"), floor.to_string());
        Some(interval)
    }

    /// RFC 4028 §7.2: the 2xx to our INVITE, re-INVITE or UPDATE decides the session timer.
    /// Without Session-Expires in it, we keep the interval we asked for and refresh ourselves.
    pub(super) fn session_from_response(
        &mut self,
        now: Instant,
        response: &Response,
        requested: Option<u32>,
    ) {
        if !self.config.supports_timer {
            return;
        }
        match session_expires(&response.headers) {
            Ok(Some(se)) => {
                let local = se.refresher.is_none_or(|r| r == Refresher::Uac);
                self.start_session(now, se.interval, local);
            }
            Ok(None) => match requested {
                Some(interval) => self.start_session(now, interval, true),
                None => self.session = None,
            },
            Err(Malformed) => {}
        }
    }

    /// Whether an offer/answer exchange or a 2xx waiting for its ACK is under way.
    pub(super) fn offer_busy(&self) -> bool {
        self.reinvite.is_some()
            || self.awaiting.is_some()
            || self.unacked.is_some()
            || self.state != CallState::Confirmed
            || self.ended
    }

    /// The session timer fired: refresh (refresher) or hang up (the other side, or a
    /// refresher whose refresh never succeeded).
    pub(super) fn session_timeout(&mut self, now: Instant) {
        let Some(session) = self.session.as_mut() else {
            return;
        };
        if session.refresh_at.is_some_and(|at| at <= now) {
            if self.offer_busy() {
                // Something else is being negotiated; any successful re-INVITE refreshes, so
                // look again shortly.
                let next = later(now, Duration::from_secs(1));
                let session = self.session.as_mut();
                if let Some(s) = session {
                    s.refresh_at = (next < s.expires_at).then_some(next);
                }
                return;
            }
            if let Some(s) = self.session.as_mut() {
                s.refresh_at = None;
            }
            let use_update = (self.peer_allows_update && self.config.refresh_with_update)
                || self.local_sdp.is_none();
            let (method, sdp) = if use_update {
                (Method::Update, None)
            } else {
                (Method::Invite, self.local_sdp.clone())
            };
            let _ = self.start_offer(now, super::OfferKind::Refresh, method, sdp);
            return;
        }
        if session.expires_at <= now {
            self.hang_up_with(EndReason::SessionExpired);
        }
    }
}
