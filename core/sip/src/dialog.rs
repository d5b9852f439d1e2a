//! Dialogs (RFC 3261 §12): the peer-to-peer relationship an INVITE sets up, and the state
//! needed to send requests inside it.
//!
//! A [`Dialog`] is created by the UAC from a 1xx with a To tag (early) or a 2xx (confirmed) with
//! [`Dialog::uac`], and by the UAS from the INVITE it answers with [`Dialog::uas`]. It then
//! builds in-dialog requests ([`Dialog::new_request`], [`Dialog::ack_for_2xx`]) with the
//! Request-URI and Route headers required by loose and strict routing (§12.2.1.1), checks
//! incoming requests ([`Dialog::matches`], [`Dialog::check_remote_cseq`]) and follows target
//! refreshes ([`Dialog::refresh_target`]).
//!
//! Plain data, no timers and no I/O: the usage owning the dialog (e.g. an INVITE session)
//! decides when to send what.

use std::fmt;

use crate::message::{HeaderName, Headers, Method, NameAddr, ParseError, Request, Response, Uri};

/// The dialog identifier (§12): Call-ID, local tag and remote tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialogId {
    /// Call-ID.
    pub call_id: String,
    /// Our tag.
    pub local_tag: String,
    /// The peer's tag (empty for an RFC 2543 peer that sent none).
    pub remote_tag: String,
}

/// Whether the dialog was created by a provisional or a final response.
///
/// ```text
///   1xx with To tag            2xx (UAC) / 2xx sent (UAS)
///  ───────────────► Early ────────────────────────────────► Confirmed
///                          2xx (UAC) / INVITE answered (UAS)
///  ──────────────────────────────────────────────────────► Confirmed
/// ```
///
/// Termination is the owner's business (BYE, non-2xx final for an early dialog): it drops the
/// dialog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialogState {
    /// Created by a provisional response (or by the UAS before its 2xx).
    Early,
    /// Created or confirmed by a 2xx.
    Confirmed,
}

/// Why a dialog could not be created or a request not accepted in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DialogError {
    /// A header the dialog needs is missing or malformed.
    #[error("dialog: {0}")]
    Malformed(#[from] ParseError),
    /// The response has no To tag, so it cannot create a dialog.
    #[error("the response has no To tag")]
    MissingRemoteTag,
    /// The message has no usable Contact (absent, `*`, or not a URI a request can be sent to).
    #[error("no usable Contact")]
    MissingContact,
    /// The response cannot create a dialog (100 Trying, or a status of 300 and above).
    #[error("status {0} does not create a dialog")]
    NotDialogCreating(u16),
    /// The request's CSeq is lower than the last one the peer used (§12.2.2: answer 500).
    #[error("CSeq {received} is lower than the remote sequence number {remote}")]
    OutOfOrder {
        /// The request's CSeq number.
        received: u32,
        /// The dialog's remote sequence number.
        remote: u32,
    },
    /// The message does not belong to this dialog.
    #[error("the message does not belong to this dialog")]
    Mismatch,
}

/// One dialog (RFC 3261 §12): identifiers, sequence numbers, URIs, remote target and route
/// set. Fields are public so that the owning usage can inspect them; prefer the methods to
/// change them.
#[derive(Clone, PartialEq, Eq)]
pub struct Dialog {
    /// Early or confirmed.
    pub state: DialogState,
    /// Call-ID.
    pub call_id: String,
    /// Our tag (From tag of our requests).
    pub local_tag: String,
    /// The peer's tag (To tag of our requests); empty for an RFC 2543 peer without tags.
    pub remote_tag: String,
    /// The CSeq number of the last request we sent in the dialog; the next one uses one more.
    pub local_seq: u32,
    /// The CSeq number of the last request the peer sent; `None` until it sends one.
    pub remote_seq: Option<u32>,
    /// Our URI (From of our requests), without tag.
    pub local_uri: NameAddr,
    /// The peer's URI (To of our requests), without tag.
    pub remote_uri: NameAddr,
    /// Where our requests go: the peer's Contact, updated by target refreshes.
    pub remote_target: Uri,
    /// The Route set, in the order our requests must carry it.
    pub route_set: Vec<NameAddr>,
    /// Whether the dialog was set up with a `sips` Request-URI.
    pub secure: bool,
}

impl fmt::Debug for Dialog {
    /// URIs are personal data: only the state and sequence numbers are shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dialog")
            .field("state", &self.state)
            .field("local_seq", &self.local_seq)
            .field("remote_seq", &self.remote_seq)
            .field("routes", &self.route_set.len())
            .field("secure", &self.secure)
            .finish_non_exhaustive()
    }
}

/// The first usable Contact URI of a message.
fn contact_uri(headers: &Headers) -> Result<Uri, DialogError> {
    match headers.contacts()?.into_iter().next() {
        Some(Some(contact)) => Ok(contact.uri),
        _ => Err(DialogError::MissingContact),
    }
}

/// `addr` without its `tag` parameter.
fn without_tag(mut addr: NameAddr) -> NameAddr {
    addr.params.retain(|p| !p.name.eq_ignore_ascii_case("tag"));
    addr
}

/// A URI made fit for a Request-URI (§12.2.1.1, §19.1.1): URI headers and the `method`
/// parameter are not allowed there.
pub fn request_uri(uri: &Uri) -> Uri {
    match uri {
        Uri::Sip(sip) => {
            let mut sip = sip.clone();
            sip.headers.clear();
            sip.params
                .retain(|p| !p.name.eq_ignore_ascii_case("method"));
            Uri::Sip(sip)
        }
        other => other.clone(),
    }
}

/// Whether `uri` is a loose router (`;lr`).
fn is_loose(uri: &Uri) -> bool {
    uri.as_sip().is_some_and(|sip| sip.param("lr").is_some())
}

impl Dialog {
    /// The UAC side of a dialog (§12.1.2), from the `request` we sent (the INVITE, without
    /// Via needed) and a 101–299 `response` to it that carries a To tag. The route set is the
    /// response's Record-Route in reverse order; the remote target is its Contact. A 1xx makes
    /// an [`DialogState::Early`] dialog, a 2xx a confirmed one.
    pub fn uac(request: &Request, response: &Response) -> Result<Dialog, DialogError> {
        if !(101..=299).contains(&response.status) {
            return Err(DialogError::NotDialogCreating(response.status));
        }
        let to = response.headers.to()?;
        let remote_tag = to
            .tag()
            .map(str::to_string)
            .ok_or(DialogError::MissingRemoteTag)?;
        let from = request.headers.from()?;
        let local_tag = from.tag().unwrap_or_default().to_string();
        let mut route_set = response.headers.record_routes()?;
        route_set.reverse();
        Ok(Dialog {
            state: if response.status >= 200 {
                DialogState::Confirmed
            } else {
                DialogState::Early
            },
            call_id: request.headers.call_id()?.to_string(),
            local_tag,
            remote_tag,
            local_seq: request.headers.cseq()?.seq,
            remote_seq: None,
            local_uri: without_tag(from),
            remote_uri: without_tag(to),
            remote_target: contact_uri(&response.headers)?,
            route_set,
            secure: request.uri.as_sip().is_some_and(|u| u.secure),
        })
    }

    /// The UAS side of a dialog (§12.1.1), from the received `request` (an INVITE) and the tag
    /// we put in our responses. The route set is the request's Record-Route in order; the
    /// remote target is its Contact; the remote sequence number is its CSeq. `local_seq` is the
    /// number our first request will exceed (choose it like an out-of-dialog CSeq). The dialog
    /// starts [`DialogState::Early`]; call [`confirm_uas`](Self::confirm_uas) once the 2xx is
    /// sent. A request without From tag (RFC 2543) gives an empty remote tag.
    pub fn uas(
        request: &Request,
        local_tag: impl Into<String>,
        local_seq: u32,
    ) -> Result<Dialog, DialogError> {
        let from = request.headers.from()?;
        let to = request.headers.to()?;
        Ok(Dialog {
            state: DialogState::Early,
            call_id: request.headers.call_id()?.to_string(),
            local_tag: local_tag.into(),
            remote_tag: from.tag().unwrap_or_default().to_string(),
            local_seq,
            remote_seq: Some(request.headers.cseq()?.seq),
            local_uri: without_tag(to),
            remote_uri: without_tag(from),
            remote_target: contact_uri(&request.headers)?,
            route_set: request.headers.record_routes()?,
            secure: request.uri.as_sip().is_some_and(|u| u.secure),
        })
    }

    /// The dialog identifier.
    pub fn id(&self) -> DialogId {
        DialogId {
            call_id: self.call_id.clone(),
            local_tag: self.local_tag.clone(),
            remote_tag: self.remote_tag.clone(),
        }
    }

    /// UAC: a 2xx confirms the early dialog with the same tag; the route set is recomputed
    /// from the 2xx (§13.2.2.4) and the remote target taken from its Contact.
    pub fn confirm(&mut self, response: &Response) -> Result<(), DialogError> {
        if !(200..=299).contains(&response.status) {
            return Err(DialogError::NotDialogCreating(response.status));
        }
        if !self.matches_response(response) {
            return Err(DialogError::Mismatch);
        }
        let target = contact_uri(&response.headers)?;
        let mut route_set = response.headers.record_routes()?;
        route_set.reverse();
        self.route_set = route_set;
        self.remote_target = target;
        self.state = DialogState::Confirmed;
        Ok(())
    }

    /// UAS: our 2xx confirms the dialog.
    pub fn confirm_uas(&mut self) {
        self.state = DialogState::Confirmed;
    }

    /// Builds a request inside the dialog (§12.2.1.1): CSeq is the local sequence number plus
    /// one (ACK and CANCEL reuse the current number instead), From and To carry the tags,
    /// Request-URI and Route follow the route set (loose routing when its first entry has
    /// `lr`, strict routing otherwise), Max-Forwards is 70. Via, Contact and the body are the
    /// caller's to add.
    pub fn new_request(&mut self, method: Method) -> Request {
        if !matches!(method, Method::Ack | Method::Cancel) {
            self.local_seq = self.local_seq.saturating_add(1);
        }
        let seq = self.local_seq;
        self.build(method, seq)
    }

    /// The ACK for a 2xx to the INVITE with CSeq number `invite_cseq` (§13.2.2.4): built like
    /// any in-dialog request but with the INVITE's CSeq number and method ACK. The local
    /// sequence number is not changed. Credentials (copied from the INVITE) and a body carrying
    /// the answer are the caller's to add.
    pub fn ack_for_2xx(&self, invite_cseq: u32) -> Request {
        self.build(Method::Ack, invite_cseq)
    }

    fn build(&self, method: Method, seq: u32) -> Request {
        let (uri, routes) = self.routing();
        let mut request = Request::new(method.clone(), uri);
        let h = &mut request.headers;
        for route in routes {
            h.push(HeaderName::Route, route.to_string());
        }
        h.push(HeaderName::MaxForwards, "70");
        let mut from = self.local_uri.clone();
        from.set_param("tag", Some(self.local_tag.clone()));
        h.push(HeaderName::From, from.to_string());
        let mut to = self.remote_uri.clone();
        if !self.remote_tag.is_empty() {
            to.set_param("tag", Some(self.remote_tag.clone()));
        }
        h.push(HeaderName::To, to.to_string());
        h.push(HeaderName::CallId, self.call_id.clone());
        h.push(HeaderName::CSeq, format!("{seq} {method}"));
        request
    }

    /// The Request-URI and Route values of the next request (§12.2.1.1).
    pub fn routing(&self) -> (Uri, Vec<NameAddr>) {
        match self.route_set.first() {
            None => (request_uri(&self.remote_target), Vec::new()),
            Some(first) if is_loose(&first.uri) => {
                (request_uri(&self.remote_target), self.route_set.clone())
            }
            Some(first) => {
                // Strict routing: the first route becomes the Request-URI, the remote target
                // goes last in the Route header.
                let mut routes: Vec<NameAddr> = self.route_set[1..].to_vec();
                routes.push(NameAddr::new(self.remote_target.clone()));
                (request_uri(&first.uri), routes)
            }
        }
    }

    /// Whether `request` belongs to this dialog: same Call-ID, its To tag is our tag and its
    /// From tag the peer's (§12.2.2).
    pub fn matches(&self, request: &Request) -> bool {
        let h = &request.headers;
        let (Ok(call_id), Ok(from), Ok(to)) = (h.call_id(), h.from(), h.to()) else {
            return false;
        };
        call_id == self.call_id
            && to.tag() == Some(self.local_tag.as_str())
            && from.tag().unwrap_or_default() == self.remote_tag
    }

    /// Whether `response` answers a request of this dialog: same Call-ID, its From tag is our
    /// tag and its To tag the peer's.
    pub fn matches_response(&self, response: &Response) -> bool {
        let h = &response.headers;
        let (Ok(call_id), Ok(from), Ok(to)) = (h.call_id(), h.from(), h.to()) else {
            return false;
        };
        call_id == self.call_id
            && from.tag() == Some(self.local_tag.as_str())
            && to.tag().unwrap_or_default() == self.remote_tag
    }

    /// Checks and records the CSeq of a request received in the dialog (§12.2.2): a number
    /// lower than the remote sequence number is out of order (answer it with 500); otherwise
    /// it becomes the remote sequence number. ACK and CANCEL carry the CSeq of the request they
    /// refer to and are not checked.
    pub fn check_remote_cseq(&mut self, request: &Request) -> Result<(), DialogError> {
        if !self.matches(request) {
            return Err(DialogError::Mismatch);
        }
        if matches!(request.method, Method::Ack | Method::Cancel) {
            return Ok(());
        }
        let seq = request.headers.cseq()?.seq;
        match self.remote_seq {
            Some(remote) if seq < remote => Err(DialogError::OutOfOrder {
                received: seq,
                remote,
            }),
            _ => {
                self.remote_seq = Some(seq);
                Ok(())
            }
        }
    }

    /// A target refresh (§12.2): a re-INVITE or UPDATE received, or a 2xx to ours, replaces the
    /// remote target with its Contact when it has one. Returns whether there was a Contact; a
    /// malformed one is an error and leaves the target unchanged.
    pub fn refresh_target(&mut self, headers: &Headers) -> Result<bool, DialogError> {
        if !headers.contains(&HeaderName::Contact) {
            return Ok(false);
        }
        self.remote_target = contact_uri(headers)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::message::Message;

    fn parse(text: &str) -> Message {
        Message::parse(text.replace('\n', "\r\n").as_bytes()).unwrap()
    }

    fn request(text: &str) -> Request {
        match parse(text) {
            Message::Request(r) => r,
            Message::Response(_) => unreachable!(),
        }
    }

    fn response(text: &str) -> Response {
        match parse(text) {
            Message::Response(r) => r,
            Message::Request(_) => unreachable!(),
        }
    }

    fn invite() -> Request {
        request(
            "INVITE sip:bob@biloxi.example.com SIP/2.0
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds
Max-Forwards: 70
To: Bob <sip:bob@biloxi.example.com>
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774
Call-ID: a84b4c76e66710
CSeq: 314159 INVITE
Contact: <sip:alice@pc33.atlanta.example.com>
Record-Route: <sip:p2.example.com;lr>, <sip:p1.example.com;lr>
Content-Length: 0

",
        )
    }

    fn ok(record_route: &str, contact: &str) -> Response {
        response(&format!(
            "SIP/2.0 200 OK
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds
To: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774
Call-ID: a84b4c76e66710
CSeq: 314159 INVITE
{record_route}Contact: {contact}
Content-Length: 0

"
        ))
    }

    #[test]
    fn uac_route_set_is_reversed_record_route_and_target_is_contact() {
        let resp = ok(
            "Record-Route: <sip:p1.example.com;lr>\nRecord-Route: <sip:p2.example.com;lr>\n",
            "<sip:bob@192.0.2.4>",
        );
        let mut d = Dialog::uac(&invite(), &resp).unwrap();
        assert_eq!(d.state, DialogState::Confirmed);
        assert_eq!(d.local_tag, "1928301774");
        assert_eq!(d.remote_tag, "a6c85cf");
        assert_eq!(d.local_seq, 314159);
        assert_eq!(d.remote_seq, None);
        let routes: Vec<String> = d.route_set.iter().map(|r| r.uri.to_string()).collect();
        assert_eq!(routes, ["sip:p2.example.com;lr", "sip:p1.example.com;lr"]);

        let bye = d.new_request(Method::Bye);
        assert_eq!(bye.uri.to_string(), "sip:bob@192.0.2.4");
        let routes: Vec<&str> = bye.headers.get_all(&HeaderName::Route).collect();
        assert_eq!(
            routes,
            ["<sip:p2.example.com;lr>", "<sip:p1.example.com;lr>"]
        );
        assert_eq!(bye.headers.cseq().unwrap().seq, 314160);
        assert_eq!(bye.headers.from().unwrap().tag(), Some("1928301774"));
        assert_eq!(bye.headers.to().unwrap().tag(), Some("a6c85cf"));
        assert_eq!(bye.headers.call_id().unwrap(), "a84b4c76e66710");
        assert_eq!(bye.headers.max_forwards().unwrap(), Some(70));
        // The request prints and parses back.
        let mut wire = bye.clone();
        wire.headers
            .push_front(HeaderName::Via, "SIP/2.0/UDP h;branch=z9hG4bKx");
        assert!(Message::parse(&Message::Request(wire).to_bytes()).is_ok());
    }

    #[test]
    fn uas_route_set_keeps_record_route_order() {
        let d = Dialog::uas(&invite(), "uas1", 7).unwrap();
        assert_eq!(d.state, DialogState::Early);
        assert_eq!(d.remote_tag, "1928301774");
        assert_eq!(d.local_tag, "uas1");
        assert_eq!(d.remote_seq, Some(314159));
        assert_eq!(
            d.remote_target.to_string(),
            "sip:alice@pc33.atlanta.example.com"
        );
        let routes: Vec<String> = d.route_set.iter().map(|r| r.uri.to_string()).collect();
        assert_eq!(routes, ["sip:p2.example.com;lr", "sip:p1.example.com;lr"]);
        assert_eq!(d.local_uri.tag(), None);
        assert_eq!(d.remote_uri.tag(), None);
    }

    #[test]
    fn strict_router_becomes_request_uri_and_target_goes_last() {
        let resp = ok(
            "Record-Route: <sip:p1.example.com;lr>\nRecord-Route: <sip:strict.example.com;method=INVITE>\n",
            "<sip:bob@192.0.2.4;transport=tcp>",
        );
        let mut d = Dialog::uac(&invite(), &resp).unwrap();
        let bye = d.new_request(Method::Bye);
        // The `method` parameter is not allowed in a Request-URI.
        assert_eq!(bye.uri.to_string(), "sip:strict.example.com");
        let routes: Vec<&str> = bye.headers.get_all(&HeaderName::Route).collect();
        assert_eq!(
            routes,
            [
                "<sip:p1.example.com;lr>",
                "<sip:bob@192.0.2.4;transport=tcp>"
            ]
        );
    }

    #[test]
    fn without_route_set_the_target_is_the_request_uri() {
        let resp = ok("", "<sip:bob@192.0.2.4?Subject=x>");
        let mut d = Dialog::uac(&invite(), &resp).unwrap();
        let info = d.new_request(Method::Info);
        assert_eq!(info.uri.to_string(), "sip:bob@192.0.2.4");
        assert!(!info.headers.contains(&HeaderName::Route));
    }

    #[test]
    fn ack_for_2xx_keeps_the_invite_cseq() {
        let mut d = Dialog::uac(&invite(), &ok("", "<sip:bob@192.0.2.4>")).unwrap();
        let _prack = d.new_request(Method::Prack);
        let ack = d.ack_for_2xx(314159);
        assert_eq!(ack.method, Method::Ack);
        assert_eq!(ack.headers.cseq().unwrap().to_string(), "314159 ACK");
        assert_eq!(d.local_seq, 314160);
        assert_eq!(ack.uri.to_string(), "sip:bob@192.0.2.4");
    }

    #[test]
    fn responses_that_cannot_create_dialogs() {
        let mut trying = ok("", "<sip:bob@192.0.2.4>");
        trying.status = 100;
        assert_eq!(
            Dialog::uac(&invite(), &trying),
            Err(DialogError::NotDialogCreating(100))
        );
        let mut no_tag = ok("", "<sip:bob@192.0.2.4>");
        no_tag
            .headers
            .set(HeaderName::To, "Bob <sip:bob@biloxi.example.com>");
        assert_eq!(
            Dialog::uac(&invite(), &no_tag),
            Err(DialogError::MissingRemoteTag)
        );
        let mut no_contact = ok("", "<sip:bob@192.0.2.4>");
        no_contact.headers.remove(&HeaderName::Contact);
        assert_eq!(
            Dialog::uac(&invite(), &no_contact),
            Err(DialogError::MissingContact)
        );
        let mut star = invite();
        star.headers.set(HeaderName::Contact, "*");
        assert_eq!(Dialog::uas(&star, "t", 1), Err(DialogError::MissingContact));
    }

    fn in_dialog(method: &str, seq: u32) -> Request {
        request(&format!(
            "{method} sip:alice@pc33.atlanta.example.com SIP/2.0
Via: SIP/2.0/UDP biloxi.example.com;branch=z9hG4bKnashds10
Max-Forwards: 70
From: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf
To: Alice <sip:alice@atlanta.example.com>;tag=1928301774
Call-ID: a84b4c76e66710
CSeq: {seq} {method}
Content-Length: 0

"
        ))
    }

    #[test]
    fn remote_cseq_rules() {
        let mut d = Dialog::uac(&invite(), &ok("", "<sip:bob@192.0.2.4>")).unwrap();
        assert!(d.matches(&in_dialog("BYE", 5)));
        // The first request sets the remote sequence number, whatever its value.
        d.check_remote_cseq(&in_dialog("INFO", 100)).unwrap();
        assert_eq!(d.remote_seq, Some(100));
        d.check_remote_cseq(&in_dialog("INFO", 101)).unwrap();
        assert_eq!(
            d.check_remote_cseq(&in_dialog("INFO", 99)),
            Err(DialogError::OutOfOrder {
                received: 99,
                remote: 101
            })
        );
        assert_eq!(d.remote_seq, Some(101));
        // Gaps are fine (§12.2.2 only requires increasing numbers).
        d.check_remote_cseq(&in_dialog("BYE", 200)).unwrap();
        // Another dialog's request is refused.
        let mut other = in_dialog("BYE", 300);
        other
            .headers
            .set(HeaderName::From, "<sip:bob@biloxi.example.com>;tag=zzz");
        assert!(!d.matches(&other));
        assert_eq!(d.check_remote_cseq(&other), Err(DialogError::Mismatch));
    }

    #[test]
    fn target_refresh_and_confirm_recompute() {
        let mut early_resp = ok(
            "Record-Route: <sip:p1.example.com;lr>\n",
            "<sip:bob@192.0.2.4>",
        );
        early_resp.status = 180;
        let mut d = Dialog::uac(&invite(), &early_resp).unwrap();
        assert_eq!(d.state, DialogState::Early);
        let final_resp = ok(
            "Record-Route: <sip:p1.example.com;lr>, <sip:p9.example.com;lr>\n",
            "<sip:bob@192.0.2.5>",
        );
        d.confirm(&final_resp).unwrap();
        assert_eq!(d.state, DialogState::Confirmed);
        assert_eq!(d.route_set.len(), 2);
        assert_eq!(d.route_set[0].uri.to_string(), "sip:p9.example.com;lr");
        assert_eq!(d.remote_target.to_string(), "sip:bob@192.0.2.5");

        let mut reinvite = in_dialog("INVITE", 10);
        assert!(!d.refresh_target(&reinvite.headers).unwrap());
        reinvite
            .headers
            .push(HeaderName::Contact, "<sip:bob@198.51.100.7:5080>");
        assert!(d.refresh_target(&reinvite.headers).unwrap());
        assert_eq!(d.remote_target.to_string(), "sip:bob@198.51.100.7:5080");
        reinvite.headers.set(HeaderName::Contact, "<bad uri>");
        assert!(d.refresh_target(&reinvite.headers).is_err());
        assert_eq!(d.remote_target.to_string(), "sip:bob@198.51.100.7:5080");
    }

    #[test]
    fn rfc2543_peer_without_from_tag() {
        let mut old = invite();
        old.headers
            .set(HeaderName::From, "<sip:alice@atlanta.example.com>");
        let mut d = Dialog::uas(&old, "mine", 1).unwrap();
        assert_eq!(d.remote_tag, "");
        let bye = d.new_request(Method::Bye);
        assert_eq!(bye.headers.to().unwrap().tag(), None);
        assert_eq!(bye.headers.from().unwrap().tag(), Some("mine"));
        assert_eq!(bye.headers.cseq().unwrap().seq, 2);
    }
}
