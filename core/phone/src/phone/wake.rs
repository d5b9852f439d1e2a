//! VoIP push wake-up in the phone: the `PushWake` machine, the binding of an arriving INVITE
//! to its report (also when the push comes after the INVITE), and the history and event of a
//! report that never became a call.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::push::{IncomingCallReport, PushAction, PushError, PushWake, ReportId, ReportStatus};

use super::{
    CallDirection, CallRecord, EndReason, Output, Phone, PhoneError, PhoneEvent, Record, Reply,
};

/// Most INVITEs remembered for a push that comes after them.
const MAX_UNANNOUNCED: usize = 32;

/// Most reports kept for their history record; `PushWake` itself caps pending reports lower.
const MAX_REPORTS: usize = 64;

/// The push machine and what the phone needs to log a report that never became a call.
#[derive(Debug)]
pub(super) struct PushBinding {
    wake: PushWake,
    /// Reports seen, with when the push arrived; removed when bound or ended.
    reports: HashMap<ReportId, (IncomingCallReport, Instant)>,
    /// Call-ID and caller of the latest INVITEs that came with no report: a push that
    /// arrives after its INVITE (the app was already awake) binds to the call at once.
    unannounced: VecDeque<(String, String)>,
}

impl PushBinding {
    pub(super) fn new(wait_for_invite: Duration) -> Self {
        PushBinding {
            wake: PushWake::new(wait_for_invite),
            reports: HashMap::new(),
            unannounced: VecDeque::new(),
        }
    }

    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        self.wake.poll_timeout()
    }

    fn handle_push(
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
            .or_insert_with(|| (report.clone(), now));
        Ok(report)
    }

    /// The INVITE with this Call-ID from this caller arrived: the report it belongs to, if
    /// any (the call owns it from now on).
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
        self.wake.status_of_call(call_id) == Some(ReportStatus::Ended(EndReason::Declined))
    }
}

impl Phone {
    /// A push payload: what to report at once (and the caller's contact name); the accounts
    /// woken by push register again so the PBX can deliver the INVITE.
    pub(super) fn handle_push(
        &mut self,
        now: Instant,
        payload: &[u8],
    ) -> Result<Reply, PhoneError> {
        let report = self.push.handle_push(now, payload)?;
        let contact_name = if report.caller_number.is_empty() {
            None
        } else {
            self.directory.caller(&report.caller_number).contact_name
        };
        Ok(Reply::PushReport {
            report,
            contact_name,
        })
    }

    /// The user declined a report on the ringing screen before its INVITE came.
    pub(super) fn decline_push_report(&mut self, now: Instant, report: ReportId) -> bool {
        let ended = self.push.wake.end_report(now, report, EndReason::Declined);
        if ended {
            self.end_push_report(now, report, EndReason::Declined);
        }
        ended
    }

    pub(super) fn push_timeouts(&mut self, now: Instant) {
        self.push.wake.handle_timeout(now);
    }

    /// Carries out what the push machine asks. Returns whether it asked anything.
    pub(super) fn pump_push(&mut self, now: Instant) -> bool {
        let mut progressed = false;
        while let Some(action) = self.push.wake.poll_action() {
            progressed = true;
            match action {
                PushAction::Reregister => {
                    let woken: Vec<_> = self
                        .accounts
                        .iter()
                        .filter(|(_, a)| a.wants_push())
                        .map(|(id, _)| *id)
                        .collect();
                    for id in woken {
                        if let Some(account) = self.accounts.get_mut(&id) {
                            account.register_now(now);
                        }
                    }
                }
                PushAction::EndReport { report_id, reason } => {
                    self.end_push_report(now, report_id, reason);
                }
            }
        }
        progressed
    }

    /// A report ended before its INVITE came: log it in the history and tell the app.
    fn end_push_report(&mut self, now: Instant, report_id: ReportId, reason: EndReason) {
        if let Some((report, received)) = self.push.reports.remove(&report_id) {
            let account = self
                .accounts
                .values()
                .find(|a| a.wants_push())
                .or_else(|| self.accounts.values().next())
                .map(|a| a.aor.to_string())
                .unwrap_or_default();
            self.outputs
                .push_back(Output::Store(Record::Call(CallRecord {
                    direction: CallDirection::Incoming,
                    remote_number: report.caller_number.clone(),
                    remote_name: report.caller_name.clone(),
                    account,
                    started: received,
                    answered: None,
                    ended: now,
                    reason,
                })));
        }
        self.emit(PhoneEvent::PushReportEnded { report_id, reason });
    }
}
