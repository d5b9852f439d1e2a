//! Page-mode instant messages (RFC 3428 MESSAGE): one [`OutgoingMessage`] per message sent,
//! and [`read_incoming`] for a MESSAGE received outside a dialog.
//!
//! ```text
//!          start                 2xx
//!   Idle ─────────► Sending ──────────────► Delivered
//!                    │  ▲ 401/407 answerable:
//!                    │  └─ MESSAGE again with credentials (CSeq + 1)
//!                    │ other final status, challenge not answerable,
//!                    └─ timeout, transport error ──► Failed
//! ```
//!
//! Inputs by source: the runtime feeds final responses ([`OutgoingMessage::handle_response`])
//! and transaction failures ([`OutgoingMessage::handle_transaction_failure`]); the machine
//! asks for sends and reports the outcome through [`OutgoingMessage::poll_output`]. No clock:
//! Timer F of the transaction layer bounds the wait.

use std::collections::VecDeque;
use std::fmt;

use rand::RngCore;

use super::random_hex;
use super::registration::TransactionFailure;
use crate::auth::{AuthError, AuthHeader, CredentialStore, DigestSession};
use crate::message::{HeaderName, Method, NameAddr, Request, Response, SipUri, Uri};

/// Largest text accepted or sent, bytes: RFC 3428 §8 keeps page-mode messages under 1300
/// bytes so they fit a UDP datagram with the headers.
pub const MAX_TEXT_BYTES: usize = 1300;

/// The body type Handset sends and reads.
pub const TEXT_PLAIN: &str = "text/plain;charset=UTF-8";

/// Why a message was not delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageFailure {
    /// A final error response (404 unknown user, 480 offline, 488 type not accepted...).
    Rejected {
        /// Status code.
        status: u16,
        /// Reason phrase.
        reason: String,
    },
    /// A challenge could not be answered, or the credentials were refused.
    Authentication(AuthError),
    /// No final response in time (Timer F).
    Timeout,
    /// The transport could not deliver the request.
    Transport,
}

impl fmt::Display for MessageFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rejected { status, reason } => write!(f, "rejected: {status} {reason}"),
            Self::Authentication(e) => write!(f, "authentication failed: {e}"),
            Self::Timeout => f.write_str("no answer (timeout)"),
            Self::Transport => f.write_str("transport error"),
        }
    }
}

/// What the machine asks the runtime to do.
#[derive(Debug, Clone, PartialEq)]
pub enum MessageOutput {
    /// Send this MESSAGE in a new client transaction (the runtime adds the Via).
    Send(Request),
    /// The recipient (or its proxy) accepted it: 2xx.
    Delivered,
    /// It was not delivered.
    Failed(MessageFailure),
}

/// Why a text cannot be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    /// Empty text.
    #[error("the message is empty")]
    Empty,
    /// Longer than [`MAX_TEXT_BYTES`].
    #[error("the message is longer than {MAX_TEXT_BYTES} bytes")]
    TooLong,
}

/// Where an [`OutgoingMessage`] stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageState {
    /// Created, not started.
    Idle,
    /// A MESSAGE is on its way.
    Sending,
    /// Accepted with a 2xx.
    Delivered,
    /// Not delivered.
    Failed,
}

/// One outgoing page-mode message.
pub struct OutgoingMessage {
    request: Request,
    digest: DigestSession,
    rng: Box<dyn RngCore + Send>,
    cseq: u32,
    state: MessageState,
    outputs: VecDeque<MessageOutput>,
}

impl fmt::Debug for OutgoingMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutgoingMessage")
            .field("state", &self.state)
            .field("cseq", &self.cseq)
            .finish_non_exhaustive()
    }
}

impl OutgoingMessage {
    /// A message from `from` (our address-of-record) to `to`, carrying `text` as
    /// `text/plain`. `credentials` answer a proxy's or the recipient's challenge.
    pub fn new(
        from: NameAddr,
        to: SipUri,
        text: &str,
        user_agent: &str,
        credentials: CredentialStore,
        mut rng: Box<dyn RngCore + Send>,
    ) -> Result<Self, TextError> {
        if text.is_empty() {
            return Err(TextError::Empty);
        }
        if text.len() > MAX_TEXT_BYTES {
            return Err(TextError::TooLong);
        }
        let mut request = Request::new(Method::Message, Uri::Sip(to.clone()));
        let mut from = from;
        from.set_param("tag", Some(random_hex(rng.as_mut(), 8)));
        let h = &mut request.headers;
        h.push(HeaderName::MaxForwards, "70");
        h.push(HeaderName::From, from.to_string());
        h.push(HeaderName::To, NameAddr::new(to).to_string());
        h.push(HeaderName::CallId, random_hex(rng.as_mut(), 16));
        h.push(HeaderName::ContentType, TEXT_PLAIN);
        h.push(HeaderName::UserAgent, user_agent);
        request.body = text.as_bytes().to_vec();
        Ok(OutgoingMessage {
            request,
            digest: DigestSession::new(credentials),
            rng,
            cseq: 0,
            state: MessageState::Idle,
            outputs: VecDeque::new(),
        })
    }

    /// Where it stands.
    pub fn state(&self) -> MessageState {
        self.state
    }

    /// The Call-ID of the message (a MESSAGE outside a dialog has its own).
    pub fn call_id(&self) -> &str {
        self.request.headers.get(&HeaderName::CallId).unwrap_or("")
    }

    /// Sends it.
    pub fn start(&mut self) {
        if self.state == MessageState::Idle {
            self.send();
        }
    }

    /// Replaces the credentials that answer challenges (the TU learned or dropped a realm).
    pub fn set_credentials(&mut self, credentials: CredentialStore) {
        self.digest.set_credentials(credentials);
    }

    /// The next thing to do or report.
    pub fn poll_output(&mut self) -> Option<MessageOutput> {
        self.outputs.pop_front()
    }

    /// A final response to the MESSAGE in flight (provisional ones change nothing).
    pub fn handle_response(&mut self, response: &Response) {
        if self.state != MessageState::Sending || response.status < 200 {
            return;
        }
        let ours = response.headers.cseq().is_ok_and(|c| c.seq == self.cseq)
            && response.headers.get(&HeaderName::CallId) == Some(self.call_id());
        if !ours {
            return;
        }
        match response.status {
            200..=299 => self.finish(MessageOutput::Delivered),
            401 | 407 => self.handle_challenge(response),
            status => self.finish(MessageOutput::Failed(MessageFailure::Rejected {
                status,
                reason: response.reason.clone(),
            })),
        }
    }

    /// The transaction of the MESSAGE in flight failed.
    pub fn handle_transaction_failure(&mut self, failure: TransactionFailure) {
        if self.state != MessageState::Sending {
            return;
        }
        self.finish(MessageOutput::Failed(match failure {
            TransactionFailure::Timeout => MessageFailure::Timeout,
            TransactionFailure::Transport => MessageFailure::Transport,
        }));
    }

    fn handle_challenge(&mut self, response: &Response) {
        let name = if response.status == 401 {
            HeaderName::WwwAuthenticate
        } else {
            HeaderName::ProxyAuthenticate
        };
        let challenges: Vec<&str> = response.headers.get_all(&name).collect();
        match self.digest.on_challenge(response.status, &challenges) {
            Ok(()) => self.send(),
            Err(e) => self.finish(MessageOutput::Failed(MessageFailure::Authentication(e))),
        }
    }

    fn send(&mut self) {
        self.cseq += 1;
        self.state = MessageState::Sending;
        let mut request = self.request.clone();
        request
            .headers
            .set(HeaderName::CSeq, format!("{} MESSAGE", self.cseq));
        let uri = request.uri.to_string();
        for (header, value) in
            self.digest
                .authorization_headers("MESSAGE", &uri, &request.body, self.rng.as_mut())
        {
            let name = match header {
                AuthHeader::Authorization => HeaderName::Authorization,
                AuthHeader::ProxyAuthorization => HeaderName::ProxyAuthorization,
            };
            request.headers.push(name, value);
        }
        self.outputs.push_back(MessageOutput::Send(request));
    }

    fn finish(&mut self, output: MessageOutput) {
        self.state = if output == MessageOutput::Delivered {
            MessageState::Delivered
        } else {
            MessageState::Failed
        };
        self.outputs.push_back(output);
    }
}

/// A received page-mode message. `Debug` does not show the sender or the text.
#[derive(Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    /// The sender's address (From URI).
    pub from: String,
    /// The sender's display name, if sent.
    pub display_name: Option<String>,
    /// The text.
    pub text: String,
}

impl fmt::Debug for ReceivedMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReceivedMessage")
            .field("text_len", &self.text.len())
            .finish_non_exhaustive()
    }
}

/// Reads a MESSAGE received outside a dialog. `Ok` is answered 200; `Err` is the status to
/// answer with: 415 for a body that is not `text/plain` (RFC 3428 §7: the recipient says what
/// it takes with Accept), 400 for a missing From or text that is not UTF-8, 413 for a text
/// over [`MAX_TEXT_BYTES`].
pub fn read_incoming(request: &Request) -> Result<ReceivedMessage, u16> {
    let from = request.headers.from().map_err(|_| 400u16)?;
    let content_type = request
        .headers
        .get(&HeaderName::ContentType)
        .unwrap_or("text/plain");
    let media = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if media != "text/plain" {
        return Err(415);
    }
    if request.body.len() > MAX_TEXT_BYTES {
        return Err(413);
    }
    let text = String::from_utf8(request.body.clone()).map_err(|_| 400u16)?;
    Ok(ReceivedMessage {
        from: from.uri.to_string(),
        display_name: from.display.clone(),
        text,
    })
}

/// The response to an incoming MESSAGE: `status`, with `Accept: text/plain` on a 415.
pub fn incoming_response(request: &Request, status: u16) -> Response {
    let mut response = Response::to_request(request, status);
    if status == 415 {
        response.headers.push(HeaderName::Accept, "text/plain");
    }
    response
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::auth::Credentials;
    use crate::message::Host;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn message(text: &str) -> OutgoingMessage {
        let from = NameAddr::new(SipUri::new(Some("alice"), Host::Domain("pbx.test".into())));
        let to = SipUri::new(Some("bob"), Host::Domain("pbx.test".into()));
        OutgoingMessage::new(
            from,
            to,
            text,
            "Handset/test",
            CredentialStore::with_default(Credentials::with_password("alice", "pw")),
            Box::new(StdRng::seed_from_u64(7)),
        )
        .unwrap()
    }

    fn sent(m: &mut OutgoingMessage) -> Request {
        match m.poll_output() {
            Some(MessageOutput::Send(r)) => r,
            other => panic!("expected a send, got {other:?}"),
        }
    }

    fn response_to(request: &Request, status: u16) -> Response {
        Response::to_request(request, status)
    }

    #[test]
    fn a_message_is_sent_and_delivered() {
        let mut m = message("Hello Bob");
        m.start();
        let r = sent(&mut m);
        assert_eq!(r.method, Method::Message);
        assert_eq!(r.body, b"Hello Bob");
        assert_eq!(r.headers.get(&HeaderName::ContentType), Some(TEXT_PLAIN));
        assert!(r.headers.from().unwrap().tag().is_some());
        m.handle_response(&response_to(&r, 100));
        assert_eq!(m.poll_output(), None);
        m.handle_response(&response_to(&r, 202));
        assert_eq!(m.poll_output(), Some(MessageOutput::Delivered));
        assert_eq!(m.state(), MessageState::Delivered);
        // A late retransmitted answer changes nothing.
        m.handle_response(&response_to(&r, 200));
        assert_eq!(m.poll_output(), None);
    }

    #[test]
    fn a_proxy_challenge_is_answered_once_and_wrong_credentials_fail() {
        let mut m = message("hi");
        m.start();
        let first = sent(&mut m);
        let mut challenge = response_to(&first, 407);
        challenge.headers.push(
            HeaderName::ProxyAuthenticate,
            r#"Digest realm="pbx.test", nonce="n1", qop="auth", algorithm=MD5"#,
        );
        m.handle_response(&challenge);
        let second = sent(&mut m);
        assert_eq!(second.headers.cseq().unwrap().seq, 2);
        assert_eq!(
            second.headers.get(&HeaderName::CallId),
            first.headers.get(&HeaderName::CallId)
        );
        assert!(
            second
                .headers
                .get(&HeaderName::ProxyAuthorization)
                .is_some()
        );
        // The same challenge again, right after answering it: the password is wrong.
        let mut again = response_to(&second, 407);
        again.headers.push(
            HeaderName::ProxyAuthenticate,
            r#"Digest realm="pbx.test", nonce="n2", qop="auth", algorithm=MD5"#,
        );
        m.handle_response(&again);
        assert!(matches!(
            m.poll_output(),
            Some(MessageOutput::Failed(MessageFailure::Authentication(_)))
        ));
        assert_eq!(m.state(), MessageState::Failed);
    }

    #[test]
    fn rejections_and_failures_end_it() {
        let mut m = message("hi");
        m.start();
        let r = sent(&mut m);
        // An answer to another CSeq is not ours.
        let mut stray = response_to(&r, 486);
        stray.headers.set(HeaderName::CSeq, "9 MESSAGE");
        m.handle_response(&stray);
        assert_eq!(m.poll_output(), None);
        m.handle_response(&response_to(&r, 404));
        assert_eq!(
            m.poll_output(),
            Some(MessageOutput::Failed(MessageFailure::Rejected {
                status: 404,
                reason: Response::to_request(&r, 404).reason
            }))
        );
        let mut t = message("hi");
        t.start();
        let _ = sent(&mut t);
        t.handle_transaction_failure(TransactionFailure::Timeout);
        assert_eq!(
            t.poll_output(),
            Some(MessageOutput::Failed(MessageFailure::Timeout))
        );
    }

    #[test]
    fn texts_must_fit_a_page() {
        let from = NameAddr::new(SipUri::new(Some("a"), Host::Domain("h".into())));
        let to = SipUri::new(Some("b"), Host::Domain("h".into()));
        let make = |text: &str| {
            OutgoingMessage::new(
                from.clone(),
                to.clone(),
                text,
                "ua",
                CredentialStore::new(),
                Box::new(StdRng::seed_from_u64(1)),
            )
            .map(|_| ())
        };
        assert_eq!(make(""), Err(TextError::Empty));
        assert_eq!(
            make(&"x".repeat(MAX_TEXT_BYTES + 1)),
            Err(TextError::TooLong)
        );
        assert_eq!(make(&"x".repeat(MAX_TEXT_BYTES)), Ok(()));
    }

    #[test]
    fn incoming_messages_are_read_or_refused_with_the_right_status() {
        let mut m = message("Grüße");
        m.start();
        let mut r = sent(&mut m);
        let read = read_incoming(&r).unwrap();
        assert_eq!(read.text, "Grüße");
        assert_eq!(read.from, "sip:alice@pbx.test");
        assert!(!format!("{read:?}").contains("alice"));

        r.headers
            .set(HeaderName::ContentType, "application/im-iscomposing+xml");
        assert_eq!(read_incoming(&r), Err(415));
        let refusal = incoming_response(&r, 415);
        assert_eq!(refusal.headers.get(&HeaderName::Accept), Some("text/plain"));

        r.headers
            .set(HeaderName::ContentType, "TEXT/PLAIN; charset=utf-8");
        r.body = vec![0xff, 0xfe];
        assert_eq!(read_incoming(&r), Err(400));
        r.body = vec![b'x'; MAX_TEXT_BYTES + 1];
        assert_eq!(read_incoming(&r), Err(413));
    }
}
