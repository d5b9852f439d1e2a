//! Helpers for the transaction unit tests.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use super::{Action, ClientInvite, ClientNonInvite, ServerInvite, ServerNonInvite};
use crate::message::{HeaderName, Message, Request, Response};

/// The one place tests read the clock; everything else adds Durations to it.
#[allow(clippy::disallowed_methods)]
pub fn base() -> Instant {
    Instant::now()
}

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn request(method: &str, branch: &str, seq: u32) -> Request {
    let text = format!(
        "{method} sip:bob@biloxi.example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch={branch}\r\n\
         Route: <sip:proxy1.example.com;lr>\r\n\
         Route: <sip:proxy2.example.com;lr>\r\n\
         Max-Forwards: 70\r\n\
         To: Bob <sip:bob@biloxi.example.com>\r\n\
         From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
         Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
         CSeq: {seq} {method}\r\n\
         Contact: <sip:alice@pc33.atlanta.example.com>\r\n\
         Content-Length: 0\r\n\r\n"
    );
    match Message::parse(text.as_bytes()).unwrap() {
        Message::Request(r) => r,
        Message::Response(_) => unreachable!(),
    }
}

pub fn invite(branch: &str) -> Request {
    request("INVITE", branch, 1)
}

pub fn register(branch: &str) -> Request {
    request("REGISTER", branch, 7)
}

pub fn ack_for(invite: &Request, branch: &str, to_tag: &str) -> Request {
    let mut ack = request("ACK", branch, invite.headers.cseq().unwrap().seq);
    let to = format!(
        "{};tag={to_tag}",
        invite.headers.get(&HeaderName::To).unwrap()
    );
    ack.headers.set(HeaderName::To, to);
    ack
}

/// A response to `request`, with a To tag when given.
pub fn response(request: &Request, status: u16, to_tag: Option<&str>) -> Response {
    let mut r = Response::to_request(request, status);
    if let Some(tag) = to_tag {
        let to = format!(
            "{};tag={tag}",
            request.headers.get(&HeaderName::To).unwrap()
        );
        r.headers.set(HeaderName::To, to);
    }
    r
}

/// Anything that hands out actions.
pub trait Actions {
    fn next_action(&mut self) -> Option<Action>;
}

macro_rules! impl_actions {
    ($($t:ty),*) => {$(
        impl Actions for $t {
            fn next_action(&mut self) -> Option<Action> {
                self.poll_action()
            }
        }
    )*};
}
impl_actions!(ClientInvite, ClientNonInvite, ServerInvite, ServerNonInvite);

/// Every queued action.
pub fn drain(m: &mut impl Actions) -> Vec<Action> {
    std::iter::from_fn(|| m.next_action()).collect()
}

/// The statuses of the responses transmitted among `actions`.
pub fn sent_statuses(actions: &[Action]) -> Vec<u16> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Transmit(Message::Response(r)) => Some(r.status),
            _ => None,
        })
        .collect()
}
