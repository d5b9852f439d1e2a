//! VoIP push wake-up in the run loop: the `handset_phone::push::PushWake` machine, shared with
//! [`super::Handset::handle_push`] so a push is answered synchronously, and the run loop's side
//! of it (re-register, end reports, record missed calls).

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use handset_phone::push::{
    EndReason, IncomingCallReport, PushAction, PushError, PushWake, ReportId,
};
use handset_store::history::Direction;

use super::records::{CallSummary, unix_ms};
use super::{HandsetEvent, RunLoop};

/// What [`super::Handset::handle_push`] returns: the report for CallKit / Telecom and the
/// caller's name from the contacts, when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushReport {
    /// The report (its `Debug` never shows the caller).
    pub report: IncomingCallReport,
    /// The caller's name from the store's contacts, if known.
    pub contact_name: Option<String>,
}

/// The push machine and what the run loop needs to log a report that never became a call.
pub(super) struct PushState {
    pub(super) wake: PushWake,
    /// Reports seen, with when the push arrived (Unix ms); removed when bound or ended.
    reports: HashMap<ReportId, (IncomingCallReport, i64)>,
    /// Call-ID and caller of the latest INVITEs that came with no report: a push that
    /// arrives after its INVITE (the app was already awake) binds to the call at once.
    unannounced: VecDeque<(String, String)>,
}

/// Most INVITEs remembered for a late push.
const MAX_UNANNOUNCED: usize = 32;

/// Most reports kept for logging; `PushWake` itself caps pending reports lower.
const MAX_REPORTS: usize = 64;

pub(super) fn lock(state: &Mutex<PushState>) -> MutexGuard<'_, PushState> {
    // Nothing that can panic runs under this lock.
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl PushState {
    pub(super) fn new(wake: PushWake) -> Self {
        PushState {
            wake,
            reports: HashMap::new(),
            unannounced: VecDeque::new(),
        }
    }

    pub(super) fn handle_push(
        &mut self,
        now: Instant,
        payload: &[u8],
    ) -> Result<IncomingCallReport, PushError> {
        let report = self.wake.handle_push(now, payload)?;
        if let Some(i) = self
            .unannounced
            .iter()
            .position(|(call_id, _)| *call_id == report.call_id)
            && let Some((call_id, caller)) = self.unannounced.remove(i)
        {
            // The INVITE came first: the call is already ringing; nothing to wait for.
            self.wake.bind_invite(now, &call_id, &caller);
            return Ok(report);
        }
        if self.reports.len() >= MAX_REPORTS {
            let oldest = self
                .reports
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(id, _)| *id);
            if let Some(oldest) = oldest {
                self.reports.remove(&oldest);
            }
        }
        self.reports
            .entry(report.report_id)
            .or_insert_with(|| (report.clone(), unix_ms()));
        Ok(report)
    }

    /// The INVITE with this Call-ID from this caller arrived: the report it belongs to, if
    /// any (the call layer owns it from now on).
    pub(super) fn bind_invite(
        &mut self,
        now: Instant,
        call_id: &str,
        caller: &str,
    ) -> Option<ReportId> {
        let Some(id) = self.wake.bind_invite(now, call_id, caller) else {
            if self.unannounced.len() >= MAX_UNANNOUNCED {
                self.unannounced.pop_front();
            }
            self.unannounced
                .push_back((call_id.to_string(), caller.to_string()));
            return None;
        };
        self.reports.remove(&id);
        Some(id)
    }

    /// The user declined this call's report before the INVITE came.
    pub(super) fn declined(&self, call_id: &str) -> bool {
        self.wake.status_of_call(call_id)
            == Some(handset_phone::push::ReportStatus::Ended(
                EndReason::DeclinedByUser,
            ))
    }
}

impl RunLoop {
    /// Carries out what the push machine asks: register again so the PBX can deliver the
    /// INVITE; tell the app a report ended and log it in the history.
    pub(super) fn handle_push_actions(&mut self, now: Instant) {
        loop {
            let Some(action) = lock(&self.push).wake.poll_action() else {
                return;
            };
            match action {
                PushAction::Reregister => {
                    for account in self.accounts.values_mut().filter(|a| a.wants_push()) {
                        account.register_now(now);
                    }
                }
                PushAction::EndReport { report_id, reason } => {
                    self.end_push_report(report_id, reason);
                }
            }
        }
    }

    /// A report ended before its INVITE came: log it in the history (missed when the reason
    /// says so) and tell the app.
    pub(super) fn end_push_report(&mut self, report_id: ReportId, reason: EndReason) {
        let ended = lock(&self.push).reports.remove(&report_id);
        if let Some((report, received_at)) = ended {
            let account = self
                .accounts
                .values()
                .next()
                .map(|a| a.aor.to_string())
                .unwrap_or_default();
            self.record_call(&CallSummary {
                direction: Direction::Incoming,
                remote_number: report.caller_number.clone(),
                remote_name: report.caller_name.clone(),
                account,
                started_at: received_at,
                answered_at: None,
                end_reason: push_end_text(reason).to_string(),
                answered_elsewhere: reason == EndReason::AnsweredElsewhere,
                declined: reason == EndReason::DeclinedByUser,
            });
        }
        self.emit(HandsetEvent::PushReportEnded { report_id, reason });
    }
}

/// The history's words for a report that never became a call.
fn push_end_text(reason: EndReason) -> &'static str {
    use EndReason as R;
    match reason {
        R::Missed => "cancelled before the call reached this device",
        R::TimedOut => "the call never reached this device",
        R::AnsweredElsewhere => "answered elsewhere",
        R::DeclinedElsewhere => "declined elsewhere",
        R::DeclinedByUser => "declined",
    }
}
