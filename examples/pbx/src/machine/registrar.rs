//! The location service (RFC 3261 §10.3): users with their passwords, their bindings with
//! expiry, and their RFC 8599 push bindings.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use handset_sip::message::{NameAddr, Request, Uri};

use crate::{BindingInfo, PushInfo};
use handset_sip::transport::Flow;

/// One contact bound to a user.
#[derive(Debug, Clone)]
pub(crate) struct Binding {
    /// The Contact as registered (URI and header parameters).
    pub(crate) contact: NameAddr,
    /// Where the REGISTER came from: requests for the user go there.
    pub(crate) flow: Flow,
    pub(crate) expires_at: Instant,
    pub(crate) registered_at: Instant,
    /// What identifies the binding across refreshes: `+sip.instance`, else the URI.
    key: String,
    pub(crate) push: Option<PushInfo>,
}

impl Binding {
    pub(crate) fn info(&self, now: Instant) -> BindingInfo {
        BindingInfo {
            contact: self.contact.uri.to_string(),
            transport: self.flow.transport,
            source: self.flow.remote,
            expires_in: self.expires_at.saturating_duration_since(now),
            push: self.push.clone(),
        }
    }
}

#[derive(Debug)]
pub(crate) struct User {
    pub(crate) password: String,
    bindings: Vec<Binding>,
    /// The latest push binding (RFC 8599): kept when the binding itself expires, since a
    /// sleeping device stops refreshing but can still be woken.
    pub(crate) push: Option<PushInfo>,
}

/// The outcome of applying a REGISTER.
#[derive(Debug)]
pub(crate) enum RegisterOutcome {
    /// 200: the bindings now in force, and what changed.
    Ok {
        bindings: Vec<Binding>,
        added: Vec<Binding>,
        removed: Vec<Binding>,
    },
    /// 423 Interval Too Brief, with our Min-Expires.
    TooBrief(u32),
    /// 400 Bad Request (wildcard misuse, unusable Contact).
    Bad(&'static str),
}

/// Expiry limits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ExpiryPolicy {
    pub(crate) default: u32,
    pub(crate) min: u32,
    pub(crate) max: u32,
}

pub(crate) struct Registrar {
    users: BTreeMap<String, User>,
    policy: ExpiryPolicy,
}

/// The RFC 8599 parameters of a Contact: URI parameters (as RFC 8599 §4.1.1 puts them) or
/// header parameters (where `RegistrationConfig::contact_params` puts them).
pub(crate) fn push_params(contact: &NameAddr) -> Option<PushInfo> {
    let uri_param = |name: &str| {
        contact
            .uri
            .as_sip()
            .and_then(|u| u.param(name))
            .flatten()
            .map(str::to_string)
    };
    let get = |name: &str| {
        uri_param(name).or_else(|| {
            contact
                .param(name)
                .flatten()
                .map(|v| v.trim_matches('"').to_string())
        })
    };
    let info = PushInfo {
        provider: get("pn-provider"),
        prid: get("pn-prid"),
        param: get("pn-param"),
    };
    (info.provider.is_some() || info.prid.is_some()).then_some(info)
}

fn binding_key(contact: &NameAddr) -> String {
    match contact.param("+sip.instance").flatten() {
        Some(instance) => format!("instance:{}", instance.trim_matches('"')),
        None => match &contact.uri {
            Uri::Sip(uri) => format!(
                "uri:{}@{}:{}",
                uri.user.as_deref().unwrap_or(""),
                uri.host,
                uri.port.unwrap_or(5060)
            ),
            other => format!("uri:{other}"),
        },
    }
}

impl Registrar {
    pub(crate) fn new(users: &[(String, String)], policy: ExpiryPolicy) -> Self {
        let users = users
            .iter()
            .map(|(name, password)| {
                (
                    name.clone(),
                    User {
                        password: password.clone(),
                        bindings: Vec::new(),
                        push: None,
                    },
                )
            })
            .collect();
        Registrar { users, policy }
    }

    pub(crate) fn password(&self, user: &str) -> Option<String> {
        self.users.get(user).map(|u| u.password.clone())
    }

    pub(crate) fn exists(&self, user: &str) -> bool {
        self.users.contains_key(user)
    }

    pub(crate) fn user(&self, user: &str) -> Option<&User> {
        self.users.get(user)
    }

    /// Bindings of `user` alive at `now`, newest first. Expired ones are left for the next
    /// REGISTER of the user to remove, so that looking does not change anything.
    pub(crate) fn live(&self, user: &str, now: Instant) -> Vec<Binding> {
        let Some(u) = self.users.get(user) else {
            return Vec::new();
        };
        let mut live: Vec<Binding> = u
            .bindings
            .iter()
            .filter(|b| b.expires_at > now)
            .cloned()
            .collect();
        live.sort_by_key(|b| std::cmp::Reverse(b.registered_at));
        live
    }

    /// Drops every binding reached over `flow` (its TCP connection closed, RFC 5626 §5.3).
    pub(crate) fn flow_closed(&mut self, flow: &Flow) -> Vec<(String, Binding)> {
        let mut removed = Vec::new();
        for (name, user) in &mut self.users {
            user.bindings.retain(|b| {
                let keep = b.flow != *flow;
                if !keep {
                    removed.push((name.clone(), b.clone()));
                }
                keep
            });
        }
        removed
    }

    /// Applies an authenticated REGISTER of `user` that came over `flow`.
    pub(crate) fn register(
        &mut self,
        user: &str,
        request: &Request,
        flow: Flow,
        now: Instant,
    ) -> RegisterOutcome {
        let policy = self.policy;
        let Some(record) = self.users.get_mut(user) else {
            return RegisterOutcome::Bad("unknown user");
        };
        record.bindings.retain(|b| b.expires_at > now);
        let Ok(contacts) = request.headers.contacts() else {
            return RegisterOutcome::Bad("malformed Contact");
        };
        let header_expires = match request.headers.expires() {
            Ok(e) => e,
            Err(_) => return RegisterOutcome::Bad("malformed Expires"),
        };
        let mut removed = Vec::new();
        let mut added = Vec::new();
        if contacts.iter().any(Option::is_none) {
            // RFC 3261 §10.3 step 6: `*` only alone and with Expires: 0.
            if contacts.len() != 1 || header_expires != Some(0) {
                return RegisterOutcome::Bad("wildcard Contact needs Expires: 0 and no other");
            }
            removed.append(&mut record.bindings);
            record.push = None;
            return RegisterOutcome::Ok {
                bindings: Vec::new(),
                added,
                removed,
            };
        }
        let contacts: Vec<NameAddr> = contacts.into_iter().flatten().collect();
        // Check every lifetime before changing anything.
        let mut wanted = Vec::with_capacity(contacts.len());
        for contact in contacts {
            let expires = contact
                .expires()
                .or(header_expires)
                .unwrap_or(policy.default);
            if expires != 0 && expires < policy.min {
                return RegisterOutcome::TooBrief(policy.min);
            }
            wanted.push((contact, expires.min(policy.max)));
        }
        for (contact, expires) in wanted {
            let key = binding_key(&contact);
            let push = push_params(&contact);
            let before = record.bindings.len();
            record.bindings.retain(|b| {
                let keep = b.key != key;
                if !keep {
                    removed.push(b.clone());
                }
                keep
            });
            let refreshed = record.bindings.len() != before;
            if expires == 0 {
                // Removing the binding that carried the push binding removes that too.
                if let (Some(p), Some(current)) = (&push, &record.push)
                    && p.prid == current.prid
                {
                    record.push = None;
                }
                continue;
            }
            if refreshed {
                removed.pop();
            }
            let mut stored = contact.clone();
            stored
                .params
                .retain(|p| !p.name.eq_ignore_ascii_case("expires"));
            let binding = Binding {
                contact: stored,
                flow,
                expires_at: now + Duration::from_secs(u64::from(expires)),
                registered_at: now,
                key,
                push: push.clone(),
            };
            if push.is_some() {
                record.push = push;
            }
            record.bindings.push(binding.clone());
            added.push(binding);
        }
        RegisterOutcome::Ok {
            bindings: record.bindings.clone(),
            added,
            removed,
        }
    }
}

#[cfg(test)]
// Tests need some instant to start from; the machine itself never reads the clock.
#[allow(clippy::unwrap_used, clippy::disallowed_methods)]
mod tests {
    use super::*;
    use handset_sip::message::Message;
    use handset_sip::transport::Transport;

    fn register(contact: &str, expires: Option<u32>) -> Request {
        let mut text = format!(
            "REGISTER sip:handset.demo SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n\
             From: <sip:bob@handset.demo>;tag=1\r\nTo: <sip:bob@handset.demo>\r\nCall-ID: r1\r\n\
             CSeq: 1 REGISTER\r\nContact: {contact}\r\n"
        );
        if let Some(e) = expires {
            text.push_str(&format!("Expires: {e}\r\n"));
        }
        text.push_str("Content-Length: 0\r\n\r\n");
        match Message::parse(text.as_bytes()).unwrap() {
            Message::Request(r) => r,
            Message::Response(_) => unreachable!(),
        }
    }

    fn registrar() -> Registrar {
        Registrar::new(
            &[("bob".into(), "pw".into())],
            ExpiryPolicy {
                default: 3600,
                min: 10,
                max: 7200,
            },
        )
    }

    const FLOW: Flow = Flow {
        transport: Transport::Udp,
        remote: std::net::SocketAddr::V4(std::net::SocketAddrV4::new(
            std::net::Ipv4Addr::LOCALHOST,
            5070,
        )),
    };

    #[test]
    fn bind_refresh_expire_and_remove() {
        let mut r = registrar();
        let t0 = Instant::now();
        let req = register("<sip:bob@127.0.0.1:5070>", Some(60));
        let RegisterOutcome::Ok { bindings, .. } = r.register("bob", &req, FLOW, t0) else {
            panic!()
        };
        assert_eq!(bindings.len(), 1);
        // A refresh replaces, it does not add.
        let RegisterOutcome::Ok { bindings, .. } =
            r.register("bob", &req, FLOW, t0 + Duration::from_secs(1))
        else {
            panic!()
        };
        assert_eq!(bindings.len(), 1);
        assert_eq!(r.live("bob", t0 + Duration::from_secs(60)).len(), 1);
        assert!(r.live("bob", t0 + Duration::from_secs(62)).is_empty());
        assert!(matches!(
            r.register(
                "bob",
                &register("<sip:bob@127.0.0.1:5070>", Some(5)),
                FLOW,
                t0
            ),
            RegisterOutcome::TooBrief(10)
        ));
        r.register("bob", &req, FLOW, t0);
        let RegisterOutcome::Ok {
            bindings, removed, ..
        } = r.register("bob", &register("*", Some(0)), FLOW, t0)
        else {
            panic!()
        };
        assert!(bindings.is_empty());
        assert_eq!(removed.len(), 1);
        assert!(matches!(
            r.register("bob", &register("*", None), FLOW, t0),
            RegisterOutcome::Bad(_)
        ));
    }

    #[test]
    fn push_binding_outlives_the_binding_until_unregistered() {
        let mut r = registrar();
        let t0 = Instant::now();
        let contact = "<sip:bob@127.0.0.1:5070;pn-provider=apns;pn-prid=tok;pn-param=app>";
        r.register("bob", &register(contact, Some(10)), FLOW, t0);
        let push = r.user("bob").unwrap().push.clone().unwrap();
        assert_eq!(push.provider.as_deref(), Some("apns"));
        assert_eq!(push.prid.as_deref(), Some("tok"));
        assert_eq!(push.param.as_deref(), Some("app"));
        assert!(r.live("bob", t0 + Duration::from_secs(11)).is_empty());
        assert!(r.user("bob").unwrap().push.is_some());
        r.register("bob", &register(contact, Some(0)), FLOW, t0);
        assert!(r.user("bob").unwrap().push.is_none());
        // Header-parameter form.
        let contact = "<sip:bob@127.0.0.1:5070>;pn-provider=fcm;pn-prid=\"x:y\"";
        r.register("bob", &register(contact, Some(10)), FLOW, t0);
        let push = r.user("bob").unwrap().push.clone().unwrap();
        assert_eq!(push.provider.as_deref(), Some("fcm"));
        assert_eq!(push.prid.as_deref(), Some("x:y"));
    }
}
