//! The registrar's transaction user (RFC 3261 §10.3) and digest authentication of requests:
//! a REGISTER is authenticated (401, then 403 on a wrong password or another user's
//! credentials), applied to the location service, answered with every binding and its
//! remaining lifetime, and a fresh binding releases the INVITEs held for its user.

use std::time::Instant;

use handset_sip::message::{HeaderName, Request};
use handset_sip::transaction::TransactionId;
use handset_sip::transport::Flow;

use super::PbxMachine;
use super::registrar::RegisterOutcome;
use crate::PbxEvent;
use crate::auth::Verdict;

impl PbxMachine {
    pub(super) fn on_register(
        &mut self,
        now: Instant,
        tx: TransactionId,
        request: Request,
        from: Flow,
    ) {
        let Some(user) = request
            .headers
            .to()
            .ok()
            .and_then(|t| t.uri.as_sip().and_then(|u| u.user.clone()))
        else {
            self.reply(now, tx, &request, 400);
            return;
        };
        let Some(authenticated) = self.authenticate(now, tx, &request, HeaderName::Authorization)
        else {
            return;
        };
        if authenticated != user {
            self.emit(PbxEvent::AuthFailed {
                user: authenticated,
                method: "REGISTER".into(),
            });
            self.reply(now, tx, &request, 403);
            return;
        }
        match self.registrar.register(&user, &request, from, now) {
            RegisterOutcome::Ok {
                bindings,
                added,
                removed,
            } => {
                let tag = self.random_tag();
                let mut response = self.local_response(&request, 200, Some(&tag));
                for binding in &bindings {
                    let mut contact = binding.contact.clone();
                    let left = binding.expires_at.saturating_duration_since(now).as_secs();
                    contact.set_param("expires", Some(left.to_string()));
                    response
                        .headers
                        .push(HeaderName::Contact, contact.to_string());
                }
                self.send_response(now, tx, response);
                for binding in &removed {
                    self.emit(PbxEvent::Unregistered {
                        user: user.clone(),
                        contact: binding.contact.uri.to_string(),
                    });
                }
                for binding in &added {
                    let expires = binding
                        .expires_at
                        .saturating_duration_since(now)
                        .as_secs()
                        .try_into()
                        .unwrap_or(u32::MAX);
                    self.emit(PbxEvent::Registered {
                        user: user.clone(),
                        contact: binding.contact.uri.to_string(),
                        expires,
                        push: binding.push.is_some(),
                    });
                }
                if let Some(fresh) = added.last() {
                    self.wake_held(now, &user, fresh.contact.uri.clone(), fresh.flow);
                }
            }
            RegisterOutcome::TooBrief(min) => {
                let tag = self.random_tag();
                let mut response = self.local_response(&request, 423, Some(&tag));
                response
                    .headers
                    .push(HeaderName::MinExpires, min.to_string());
                self.send_response(now, tx, response);
            }
            RegisterOutcome::Bad(why) => {
                tracing::debug!(why, "REGISTER refused");
                self.reply(now, tx, &request, 400);
            }
        }
    }

    /// Checks the `header` credentials of a request. Returns the authenticated user, or
    /// `None` after answering the request itself (401/407 challenge, or 403).
    pub(super) fn authenticate(
        &mut self,
        now: Instant,
        tx: TransactionId,
        request: &Request,
        header: HeaderName,
    ) -> Option<String> {
        let registrar = &self.registrar;
        let verdict = self.nonces.check(
            now,
            request.headers.get_all(&header),
            &self.config.realm,
            request.method.as_str(),
            &request.body,
            |u| registrar.password(u),
        );
        let stale = match verdict {
            Verdict::Ok(user) => return Some(user),
            Verdict::Missing => false,
            Verdict::Stale => true,
            Verdict::Forbidden(user) => {
                self.emit(PbxEvent::AuthFailed {
                    user,
                    method: request.method.to_string(),
                });
                self.reply(now, tx, request, 403);
                return None;
            }
        };
        let (status, challenge_header) = if header == HeaderName::Authorization {
            (401, HeaderName::WwwAuthenticate)
        } else {
            (407, HeaderName::ProxyAuthenticate)
        };
        let value = self
            .nonces
            .challenge(now, &self.config.realm, stale, self.rng.as_mut());
        let tag = self.random_tag();
        let mut response = self.local_response(request, status, Some(&tag));
        response.headers.push(challenge_header, value);
        self.send_response(now, tx, response);
        None
    }
}
