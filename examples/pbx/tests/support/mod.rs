//! A scriptable raw-SIP user agent over UDP or TCP (messages built with `handset-sip`), and a
//! tiny HTTP server standing in for a push service. Everything stays on 127.0.0.1.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::Duration;

use handset_sip::auth::{Challenge, Credentials, DigestResponse};
use handset_sip::message::{
    HeaderName, Message, Method, NameAddr, Request, Response, StreamFramer, StreamItem, Uri,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;

/// Default wait for one expected message.
pub const WAIT: Duration = Duration::from_secs(5);

enum Link {
    Udp(UdpSocket),
    Tcp {
        reader: OwnedReadHalf,
        writer: OwnedWriteHalf,
        framer: StreamFramer,
    },
}

/// One scripted user agent.
pub struct Ua {
    pub user: String,
    pub password: String,
    pub pbx: SocketAddr,
    pub local: SocketAddr,
    link: Link,
    counter: u64,
    reg_call_id: String,
    reg_cseq: u32,
    /// Appended to the Contact URI of REGISTERs (e.g. `;pn-provider=apns;pn-prid=x`).
    pub contact_params: String,
}

fn parse_uri(text: &str) -> Uri {
    Uri::parse(text).unwrap()
}

impl Ua {
    pub async fn udp(user: &str, password: &str, pbx: SocketAddr) -> Ua {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let local = sock.local_addr().unwrap();
        Ua::new(user, password, pbx, local, Link::Udp(sock))
    }

    pub async fn tcp(user: &str, password: &str, pbx: SocketAddr) -> Ua {
        let stream = TcpStream::connect(pbx).await.unwrap();
        let local = stream.local_addr().unwrap();
        let (reader, writer) = stream.into_split();
        Ua::new(
            user,
            password,
            pbx,
            local,
            Link::Tcp {
                reader,
                writer,
                framer: StreamFramer::new(),
            },
        )
    }

    fn new(user: &str, password: &str, pbx: SocketAddr, local: SocketAddr, link: Link) -> Ua {
        Ua {
            user: user.into(),
            password: password.into(),
            pbx,
            local,
            link,
            counter: 0,
            reg_call_id: format!("reg-{user}-{}", local.port()),
            reg_cseq: 0,
            contact_params: String::new(),
        }
    }

    fn transport(&self) -> &'static str {
        match self.link {
            Link::Udp(_) => "UDP",
            Link::Tcp { .. } => "TCP",
        }
    }

    pub fn unique(&mut self, what: &str) -> String {
        self.counter += 1;
        format!(
            "{what}{}x{}x{}",
            self.local.port(),
            self.counter,
            rand::random::<u32>()
        )
    }

    pub fn branch(&mut self) -> String {
        format!("z9hG4bK{}", self.unique("b"))
    }

    pub fn contact_uri(&self) -> String {
        let transport = match self.link {
            Link::Udp(_) => "",
            Link::Tcp { .. } => ";transport=tcp",
        };
        format!("sip:{}@{}{transport}", self.user, self.local)
    }

    pub fn aor(&self) -> String {
        format!("sip:{}@{}", self.user, self.pbx.ip())
    }

    pub fn via(&mut self) -> String {
        let branch = self.branch();
        format!(
            "SIP/2.0/{} {};branch={branch}",
            self.transport(),
            self.local
        )
    }

    pub async fn send(&mut self, message: impl Into<Message>) {
        let bytes = message.into().to_bytes();
        match &mut self.link {
            Link::Udp(sock) => {
                sock.send_to(&bytes, self.pbx).await.unwrap();
            }
            Link::Tcp { writer, .. } => writer.write_all(&bytes).await.unwrap(),
        }
    }

    /// The next message, or `None` after `within`.
    pub async fn recv(&mut self, within: Duration) -> Option<Message> {
        let deadline = tokio::time::Instant::now() + within;
        match &mut self.link {
            Link::Udp(sock) => {
                let mut buf = vec![0u8; 65536];
                loop {
                    let (n, _) = tokio::time::timeout_at(deadline, sock.recv_from(&mut buf))
                        .await
                        .ok()?
                        .ok()?;
                    if let Ok(m) = Message::parse(&buf[..n]) {
                        return Some(m);
                    }
                }
            }
            Link::Tcp { reader, framer, .. } => loop {
                while let Some(item) = framer.next_item() {
                    if let Ok(StreamItem::Message(m)) = item {
                        return Some(m);
                    }
                }
                let mut buf = vec![0u8; 65536];
                let n = tokio::time::timeout_at(deadline, reader.read(&mut buf))
                    .await
                    .ok()?
                    .ok()?;
                if n == 0 {
                    return None;
                }
                framer.push(&buf[..n]);
            },
        }
    }

    /// Receives until `pred` holds (other messages are skipped).
    pub async fn expect(&mut self, what: &str, pred: impl Fn(&Message) -> bool) -> Message {
        self.expect_within(WAIT, what, pred).await
    }

    pub async fn expect_within(
        &mut self,
        within: Duration,
        what: &str,
        pred: impl Fn(&Message) -> bool,
    ) -> Message {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.recv(left).await {
                Some(m) if pred(&m) => return m,
                Some(_) => {}
                None => panic!("{}: timed out waiting for {what}", self.user),
            }
        }
    }

    pub async fn expect_response(&mut self, method: Method, status: u16) -> Response {
        let what = format!("{status} to {method}");
        match self
            .expect(&what, |m| {
                matches!(m, Message::Response(r) if r.status == status
                    && r.headers.cseq().is_ok_and(|c| c.method == method))
            })
            .await
        {
            Message::Response(r) => r,
            Message::Request(_) => unreachable!(),
        }
    }

    /// The next final (or `min`..) response to `method`.
    pub async fn expect_status_at_least(&mut self, method: Method, min: u16) -> Response {
        let what = format!(">= {min} to {method}");
        match self
            .expect(&what, |m| {
                matches!(m, Message::Response(r) if r.status >= min
                    && r.headers.cseq().is_ok_and(|c| c.method == method))
            })
            .await
        {
            Message::Response(r) => r,
            Message::Request(_) => unreachable!(),
        }
    }

    pub async fn expect_request(&mut self, method: Method) -> Request {
        let what = format!("a {method}");
        match self
            .expect(
                &what,
                |m| matches!(m, Message::Request(r) if r.method == method),
            )
            .await
        {
            Message::Request(r) => r,
            Message::Response(_) => unreachable!(),
        }
    }

    /// Nothing matching `pred` arrives within `within`.
    pub async fn expect_none(&mut self, within: Duration, pred: impl Fn(&Message) -> bool) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.recv(left).await {
                Some(m) if pred(&m) => panic!("{}: unexpected {m:?}", self.user),
                Some(_) => {}
                None => return,
            }
        }
    }

    /// A request with Via, Max-Forwards, From (our AOR), To, Call-ID, CSeq and Contact.
    pub fn request(
        &mut self,
        method: Method,
        uri: &str,
        to: &str,
        call_id: &str,
        from_tag: &str,
        cseq: u32,
    ) -> Request {
        let mut r = Request::new(method.clone(), parse_uri(uri));
        let via = self.via();
        let h = &mut r.headers;
        h.push(HeaderName::Via, via);
        h.push(HeaderName::MaxForwards, "70");
        h.push(
            HeaderName::From,
            format!(
                "\"{}\" <{}>;tag={from_tag}",
                capitalised(&self.user),
                self.aor()
            ),
        );
        h.push(HeaderName::To, to);
        h.push(HeaderName::CallId, call_id);
        h.push(HeaderName::CSeq, format!("{cseq} {method}"));
        h.push(HeaderName::Contact, format!("<{}>", self.contact_uri()));
        r
    }

    /// Adds credentials answering the challenge in `challenged` (401 or 407).
    pub fn authorize(&mut self, request: &mut Request, challenged: &Response, password: &str) {
        let (from, to) = if challenged.status == 401 {
            (HeaderName::WwwAuthenticate, HeaderName::Authorization)
        } else {
            (
                HeaderName::ProxyAuthenticate,
                HeaderName::ProxyAuthorization,
            )
        };
        let challenge = Challenge::parse(challenged.headers.get(&from).unwrap()).unwrap();
        let cnonce = self.unique("cn");
        let answer = DigestResponse::compute(
            &challenge,
            &Credentials::with_password(self.user.clone(), password),
            request.method.as_str(),
            &request.uri.to_string(),
            &request.body,
            1,
            &cnonce,
        )
        .unwrap();
        request.headers.push(to, answer.to_header_value());
    }

    pub fn register_request(&mut self, expires: Option<u32>) -> Request {
        self.reg_cseq += 1;
        let aor = format!("<{}>", self.aor());
        let call_id = self.reg_call_id.clone();
        let tag = self.unique("t");
        let mut r = self.request(
            Method::Register,
            &format!("sip:{}", self.pbx.ip()),
            &aor,
            &call_id,
            &tag,
            self.reg_cseq,
        );
        let contact = format!("<{}{}>", self.contact_uri(), self.contact_params);
        r.headers.set(HeaderName::Contact, contact);
        if let Some(e) = expires {
            r.headers.push(HeaderName::Expires, e.to_string());
        }
        r
    }

    /// REGISTER, answering one 401 with `password`; returns the final response.
    pub async fn register_with(&mut self, expires: Option<u32>, password: &str) -> Response {
        let first = self.register_request(expires);
        self.send(first).await;
        let r = self.expect_status_at_least(Method::Register, 200).await;
        if r.status != 401 {
            return r;
        }
        let mut second = self.register_request(expires);
        self.authorize(&mut second, &r, password);
        self.send(second).await;
        self.expect_status_at_least(Method::Register, 200).await
    }

    pub async fn register(&mut self, expires: u32) -> Response {
        let password = self.password.clone();
        let r = self.register_with(Some(expires), &password).await;
        assert_eq!(r.status, 200, "{} could not register", self.user);
        r
    }

    /// Sends an INVITE to `target`, answers the 407 (ACKing it) and resends it with
    /// credentials. Returns the authenticated INVITE as sent.
    pub async fn invite(&mut self, target: &str, sdp: Option<&[u8]>) -> Request {
        let call_id = self.unique("call");
        let tag = self.unique("ft");
        let uri = format!("sip:{target}@{}", self.pbx.ip());
        let build = |ua: &mut Ua, cseq: u32| {
            let mut r = ua.request(
                Method::Invite,
                &uri,
                &format!("<{uri}>"),
                &call_id,
                &tag,
                cseq,
            );
            if let Some(sdp) = sdp {
                r.headers.push(HeaderName::ContentType, "application/sdp");
                r.body = sdp.to_vec();
            }
            r
        };
        let first = build(self, 1);
        self.send(first.clone()).await;
        let challenge = self.expect_response(Method::Invite, 407).await;
        let ack = ack_for_failure(&first, &challenge);
        self.send(ack).await;
        let mut second = build(self, 2);
        let password = self.password.clone();
        self.authorize(&mut second, &challenge, &password);
        self.send(second.clone()).await;
        second
    }

    /// Sends a response to `request`; `to_tag` is added to To when it has none.
    pub async fn respond(
        &mut self,
        request: &Request,
        status: u16,
        to_tag: &str,
        body: Option<&[u8]>,
    ) -> Response {
        let mut r = Response::to_request(request, status);
        if let Ok(mut to) = r.headers.to()
            && to.tag().is_none()
            && status > 100
        {
            to.set_param("tag", Some(to_tag.to_string()));
            r.headers.set(HeaderName::To, to.to_string());
        }
        if (101..300).contains(&status) {
            r.headers
                .push(HeaderName::Contact, format!("<{}>", self.contact_uri()));
        }
        if let Some(body) = body {
            r.headers.push(HeaderName::ContentType, "application/sdp");
            r.body = body.to_vec();
        }
        self.send(r.clone()).await;
        r
    }

    /// The ACK for a 2xx to `invite`, or any request inside the dialog it set up, from the
    /// caller's side: Request-URI from the 2xx's Contact, Route from its Record-Route reversed.
    pub fn caller_in_dialog(
        &mut self,
        invite: &Request,
        ok: &Response,
        method: Method,
        cseq: u32,
    ) -> Request {
        let target = ok.headers.contacts().unwrap()[0].clone().unwrap().uri;
        let mut r = Request::new(method.clone(), target);
        let via = self.via();
        let h = &mut r.headers;
        h.push(HeaderName::Via, via);
        h.push(HeaderName::MaxForwards, "70");
        let mut routes = ok.headers.record_routes().unwrap();
        routes.reverse();
        for route in routes {
            h.push(HeaderName::Route, route.to_string());
        }
        h.push(
            HeaderName::From,
            invite.headers.get(&HeaderName::From).unwrap(),
        );
        h.push(HeaderName::To, ok.headers.get(&HeaderName::To).unwrap());
        h.push(HeaderName::CallId, invite.headers.call_id().unwrap());
        h.push(HeaderName::CSeq, format!("{cseq} {method}"));
        r
    }

    /// A request inside the dialog from the callee's side (`to_tag` is the callee's tag).
    pub fn callee_in_dialog(
        &mut self,
        invite: &Request,
        to_tag: &str,
        method: Method,
        cseq: u32,
    ) -> Request {
        let target = invite.headers.contacts().unwrap()[0].clone().unwrap().uri;
        let mut r = Request::new(method.clone(), target);
        let via = self.via();
        let h = &mut r.headers;
        h.push(HeaderName::Via, via);
        h.push(HeaderName::MaxForwards, "70");
        for route in invite.headers.record_routes().unwrap() {
            h.push(HeaderName::Route, route.to_string());
        }
        let mut from = invite.headers.to().unwrap();
        from.set_param("tag", Some(to_tag.to_string()));
        h.push(HeaderName::From, from.to_string());
        h.push(
            HeaderName::To,
            invite.headers.get(&HeaderName::From).unwrap(),
        );
        h.push(HeaderName::CallId, invite.headers.call_id().unwrap());
        h.push(HeaderName::CSeq, format!("{cseq} {method}"));
        r
    }

    /// CANCEL for `invite` (same branch, RFC 3261 §9.1).
    pub fn cancel_for(&self, invite: &Request) -> Request {
        handset_sip::transaction::cancel_request(invite).unwrap()
    }
}

/// The ACK for a non-2xx final response: same branch as the INVITE, the response's To.
pub fn ack_for_failure(invite: &Request, response: &Response) -> Request {
    let mut ack = Request::new(Method::Ack, invite.uri.clone());
    let h = &mut ack.headers;
    h.push(
        HeaderName::Via,
        invite.headers.values(&HeaderName::Via)[0].to_string(),
    );
    h.push(HeaderName::MaxForwards, "70");
    h.push(
        HeaderName::From,
        invite.headers.get(&HeaderName::From).unwrap(),
    );
    h.push(
        HeaderName::To,
        response.headers.get(&HeaderName::To).unwrap(),
    );
    h.push(HeaderName::CallId, invite.headers.call_id().unwrap());
    let seq = invite.headers.cseq().unwrap().seq;
    h.push(HeaderName::CSeq, format!("{seq} ACK"));
    ack
}

pub fn to_tag(response: &Response) -> String {
    response.headers.to().unwrap().tag().unwrap().to_string()
}

pub fn name_addrs(values: Vec<NameAddr>) -> Vec<String> {
    values.into_iter().map(|v| v.to_string()).collect()
}

fn capitalised(user: &str) -> String {
    let mut c = user.chars();
    match c.next() {
        Some(first) => first.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// A push service stand-in: every POSTed JSON body comes out of the channel.
pub async fn push_service() -> (String, mpsc::UnboundedReceiver<serde_json::Value>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/push", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut data = Vec::new();
                let mut buf = [0u8; 4096];
                let body = loop {
                    let Ok(n) = stream.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    data.extend_from_slice(&buf[..n]);
                    let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&data[..end]).to_string();
                    assert!(head.starts_with("POST /push HTTP/1.1\r\n"), "{head}");
                    assert!(
                        head.to_ascii_lowercase()
                            .contains("content-type: application/json")
                    );
                    let length: usize = head
                        .lines()
                        .find_map(|l| {
                            let (name, value) = l.split_once(':')?;
                            name.eq_ignore_ascii_case("content-length")
                                .then(|| value.trim().parse().ok())?
                        })
                        .unwrap();
                    if data.len() >= end + 4 + length {
                        break data[end + 4..end + 4 + length].to_vec();
                    }
                };
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .await;
                let _ = tx.send(serde_json::from_slice(&body).unwrap());
            });
        }
    });
    (url, rx)
}

/// The next push, or a panic after `within`.
pub async fn next_push(
    rx: &mut mpsc::UnboundedReceiver<serde_json::Value>,
    within: Duration,
) -> serde_json::Value {
    tokio::time::timeout(within, rx.recv())
        .await
        .expect("no push notification arrived")
        .expect("push service stopped")
}
