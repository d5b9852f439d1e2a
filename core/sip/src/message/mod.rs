//! The SIP message layer (RFC 3261 §7, §25): parse and print requests and responses, lazy typed
//! access to headers, and stream framing for TCP/TLS.
//!
//! Handset owns this layer instead of using rsip 0.4; the README's dependency table says why.
//! Parsing keeps every header line in order (unknown ones too) with folding removed and compact
//! names expanded; typed views (`Via`, `NameAddr`, `CSeq`) are parsed when asked for, except for
//! the headers every message must carry correctly, which `parse` checks up front so that a
//! malformed message is an error value before any layer above sees it.

mod framing;
mod headers;
mod typed;
mod uri;

use std::fmt;

pub use framing::{StreamFramer, StreamItem};
pub use headers::{Header, HeaderName, Headers, split_list};
pub use typed::{CSeq, NameAddr, Via, is_token_char, parse_delta_seconds, parse_quoted, quote};
pub use uri::{Host, Param, SipUri, Uri, find_param, split_hostport};

/// Why a message, header or URI could not be parsed. It names what was wrong and where, never
/// the offending text, so it can be logged without leaking personal data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// What was wrong.
    pub reason: &'static str,
    /// The header it was found in, if any.
    pub header: Option<String>,
}

impl ParseError {
    /// An error with a reason and no header context.
    pub fn new(reason: &'static str) -> Self {
        ParseError {
            reason,
            header: None,
        }
    }

    fn in_header(mut self, name: &HeaderName) -> Self {
        self.header = Some(name.as_str().to_string());
        self
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.header {
            Some(h) => write!(f, "malformed SIP message: {h}: {}", self.reason),
            None => write!(f, "malformed SIP message: {}", self.reason),
        }
    }
}

impl std::error::Error for ParseError {}

/// A SIP method. Methods are case-sensitive; unknown ones are kept as they were spelled.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    /// INVITE
    Invite,
    /// ACK
    Ack,
    /// BYE
    Bye,
    /// CANCEL
    Cancel,
    /// REGISTER
    Register,
    /// OPTIONS
    Options,
    /// INFO
    Info,
    /// UPDATE
    Update,
    /// PRACK
    Prack,
    /// SUBSCRIBE
    Subscribe,
    /// NOTIFY
    Notify,
    /// REFER
    Refer,
    /// MESSAGE
    Message,
    /// PUBLISH
    Publish,
    /// Any other token.
    Other(String),
}

const METHODS: &[(&str, Method)] = &[
    ("INVITE", Method::Invite),
    ("ACK", Method::Ack),
    ("BYE", Method::Bye),
    ("CANCEL", Method::Cancel),
    ("REGISTER", Method::Register),
    ("OPTIONS", Method::Options),
    ("INFO", Method::Info),
    ("UPDATE", Method::Update),
    ("PRACK", Method::Prack),
    ("SUBSCRIBE", Method::Subscribe),
    ("NOTIFY", Method::Notify),
    ("REFER", Method::Refer),
    ("MESSAGE", Method::Message),
    ("PUBLISH", Method::Publish),
];

impl Method {
    /// Parses a method token.
    pub fn parse(token: &str) -> Result<Method, ParseError> {
        if token.is_empty() || !token.bytes().all(is_token_char) {
            return Err(ParseError::new("method is not a token"));
        }
        Ok(METHODS
            .iter()
            .find(|(name, _)| *name == token)
            .map(|(_, m)| m.clone())
            .unwrap_or_else(|| Method::Other(token.to_string())))
    }

    /// The method's name.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Other(name) => name,
            known => METHODS
                .iter()
                .find(|(_, m)| m == known)
                .map(|(name, _)| *name)
                .unwrap_or(""),
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A SIP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Method.
    pub method: Method,
    /// Request-URI.
    pub uri: Uri,
    /// Header lines in order.
    pub headers: Headers,
    /// Body bytes, exactly Content-Length long.
    pub body: Vec<u8>,
}

impl Request {
    /// A request with no headers and no body.
    pub fn new(method: Method, uri: Uri) -> Self {
        Request {
            method,
            uri,
            headers: Headers::new(),
            body: Vec::new(),
        }
    }
}

/// A SIP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code, 100..=699.
    pub status: u16,
    /// Reason phrase (may be empty).
    pub reason: String,
    /// Header lines in order.
    pub headers: Headers,
    /// Body bytes, exactly Content-Length long.
    pub body: Vec<u8>,
}

impl Response {
    /// A response to `request` with the headers RFC 3261 §8.2.6.2 copies: Via, From, To (a tag
    /// is added by the caller where needed), Call-ID, CSeq; Record-Route too for 18x/2xx.
    pub fn to_request(request: &Request, status: u16) -> Self {
        let mut headers = Headers::new();
        let mut copy = |name: HeaderName| {
            for v in request.headers.get_all(&name) {
                headers.push(name.clone(), v);
            }
        };
        copy(HeaderName::Via);
        if (180..300).contains(&status) {
            copy(HeaderName::RecordRoute);
        }
        copy(HeaderName::From);
        copy(HeaderName::To);
        copy(HeaderName::CallId);
        copy(HeaderName::CSeq);
        Response {
            status,
            reason: reason_phrase(status).to_string(),
            headers,
            body: Vec::new(),
        }
    }
}

/// The RFC 3261 reason phrase for a status code ("" for unknown codes).
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        415 => "Unsupported Media Type",
        420 => "Bad Extension",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        491 => "Request Pending",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        603 => "Decline",
        _ => "",
    }
}

/// A SIP request or response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A request.
    Request(Request),
    /// A response.
    Response(Response),
}

/// How the message's end is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// A UDP datagram: bytes past Content-Length are ignored, a missing Content-Length means the
    /// rest of the datagram (RFC 3261 §18.3).
    Datagram,
    /// A message already cut out of a stream by `StreamFramer`.
    Framed,
}

impl Message {
    /// Parses a message received as one UDP datagram.
    pub fn parse(bytes: &[u8]) -> Result<Message, ParseError> {
        parse_message(bytes, Framing::Datagram)
    }

    /// Parses a message already framed out of a byte stream.
    fn parse_framed(bytes: &[u8]) -> Result<Message, ParseError> {
        parse_message(bytes, Framing::Framed)
    }

    /// The header lines.
    pub fn headers(&self) -> &Headers {
        match self {
            Message::Request(r) => &r.headers,
            Message::Response(r) => &r.headers,
        }
    }

    /// The header lines, mutable.
    pub fn headers_mut(&mut self) -> &mut Headers {
        match self {
            Message::Request(r) => &mut r.headers,
            Message::Response(r) => &mut r.headers,
        }
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        match self {
            Message::Request(r) => &r.body,
            Message::Response(r) => &r.body,
        }
    }

    /// Prints the message for the wire. Content-Length always states the body's real length.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512);
        let (headers, body) = match self {
            Message::Request(r) => {
                out.extend_from_slice(format!("{} {} SIP/2.0\r\n", r.method, r.uri).as_bytes());
                (&r.headers, &r.body)
            }
            Message::Response(r) => {
                out.extend_from_slice(format!("SIP/2.0 {} {}\r\n", r.status, r.reason).as_bytes());
                (&r.headers, &r.body)
            }
        };
        let mut wrote_length = false;
        for h in headers.iter() {
            if h.name == HeaderName::ContentLength {
                if wrote_length {
                    continue;
                }
                wrote_length = true;
                out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
                continue;
            }
            out.extend_from_slice(h.name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(h.value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        if !wrote_length {
            out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body);
        out
    }
}

impl From<Request> for Message {
    fn from(r: Request) -> Self {
        Message::Request(r)
    }
}

impl From<Response> for Message {
    fn from(r: Response) -> Self {
        Message::Response(r)
    }
}

impl Request {
    /// Prints the request for the wire.
    pub fn to_bytes(&self) -> Vec<u8> {
        Message::Request(self.clone()).to_bytes()
    }
}

impl Response {
    /// Prints the response for the wire.
    pub fn to_bytes(&self) -> Vec<u8> {
        Message::Response(self.clone()).to_bytes()
    }
}

/// Typed, on-demand views of the headers a user agent needs.
impl Headers {
    /// All Via values, top first (several on one line count separately).
    pub fn vias(&self) -> Result<Vec<Via>, ParseError> {
        self.values(&HeaderName::Via)
            .into_iter()
            .map(|v| Via::parse(v).map_err(|e| e.in_header(&HeaderName::Via)))
            .collect()
    }

    /// The top Via.
    pub fn top_via(&self) -> Result<Via, ParseError> {
        let first = self
            .values(&HeaderName::Via)
            .into_iter()
            .next()
            .ok_or_else(|| ParseError::new("missing").in_header(&HeaderName::Via))?;
        Via::parse(first).map_err(|e| e.in_header(&HeaderName::Via))
    }

    fn name_addr(&self, name: HeaderName) -> Result<NameAddr, ParseError> {
        let value = self
            .get(&name)
            .ok_or_else(|| ParseError::new("missing").in_header(&name))?;
        NameAddr::parse(value).map_err(|e| e.in_header(&name))
    }

    /// The From header.
    pub fn from(&self) -> Result<NameAddr, ParseError> {
        self.name_addr(HeaderName::From)
    }

    /// The To header.
    pub fn to(&self) -> Result<NameAddr, ParseError> {
        self.name_addr(HeaderName::To)
    }

    /// The Call-ID.
    pub fn call_id(&self) -> Result<&str, ParseError> {
        let value = self
            .get(&HeaderName::CallId)
            .ok_or_else(|| ParseError::new("missing").in_header(&HeaderName::CallId))?;
        if value.is_empty() || !value.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ParseError::new("not a single word").in_header(&HeaderName::CallId));
        }
        Ok(value)
    }

    /// The CSeq.
    pub fn cseq(&self) -> Result<CSeq, ParseError> {
        let value = self
            .get(&HeaderName::CSeq)
            .ok_or_else(|| ParseError::new("missing").in_header(&HeaderName::CSeq))?;
        CSeq::parse(value).map_err(|e| e.in_header(&HeaderName::CSeq))
    }

    /// All Contact values; `Ok(None)` inside means the `*` wildcard.
    pub fn contacts(&self) -> Result<Vec<Option<NameAddr>>, ParseError> {
        self.list_of_addrs(HeaderName::Contact, true)
    }

    /// All Route values in order.
    pub fn routes(&self) -> Result<Vec<NameAddr>, ParseError> {
        Ok(self
            .list_of_addrs(HeaderName::Route, false)?
            .into_iter()
            .flatten()
            .collect())
    }

    /// All Record-Route values in order.
    pub fn record_routes(&self) -> Result<Vec<NameAddr>, ParseError> {
        Ok(self
            .list_of_addrs(HeaderName::RecordRoute, false)?
            .into_iter()
            .flatten()
            .collect())
    }

    fn list_of_addrs(
        &self,
        name: HeaderName,
        allow_star: bool,
    ) -> Result<Vec<Option<NameAddr>>, ParseError> {
        self.values(&name)
            .into_iter()
            .map(|v| {
                if allow_star && v == "*" {
                    Ok(None)
                } else {
                    NameAddr::parse(v).map(Some).map_err(|e| e.in_header(&name))
                }
            })
            .collect()
    }

    /// Content-Length, if present.
    pub fn content_length(&self) -> Result<Option<usize>, ParseError> {
        self.get(&HeaderName::ContentLength)
            .map(|v| {
                let v = v.trim();
                if v.is_empty() || v.len() > 9 || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(ParseError::new("not a non-negative number")
                        .in_header(&HeaderName::ContentLength));
                }
                v.parse::<usize>()
                    .map_err(|_| ParseError::new("too large").in_header(&HeaderName::ContentLength))
            })
            .transpose()
    }

    /// Max-Forwards, if present (0..=255).
    pub fn max_forwards(&self) -> Result<Option<u8>, ParseError> {
        self.get(&HeaderName::MaxForwards)
            .map(|v| {
                let v = v.trim();
                if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(ParseError::new("not a number").in_header(&HeaderName::MaxForwards));
                }
                v.trim_start_matches('0')
                    .parse::<u8>()
                    .or_else(|e| {
                        if v.bytes().all(|b| b == b'0') {
                            Ok(0)
                        } else {
                            Err(e)
                        }
                    })
                    .map_err(|_| ParseError::new("exceeds 255").in_header(&HeaderName::MaxForwards))
            })
            .transpose()
    }

    /// The Expires header in seconds (saturating), if present.
    pub fn expires(&self) -> Result<Option<u32>, ParseError> {
        self.delta_seconds(HeaderName::Expires)
    }

    /// The Min-Expires header in seconds, if present.
    pub fn min_expires(&self) -> Result<Option<u32>, ParseError> {
        self.delta_seconds(HeaderName::MinExpires)
    }

    fn delta_seconds(&self, name: HeaderName) -> Result<Option<u32>, ParseError> {
        self.get(&name)
            .map(|v| {
                parse_delta_seconds(v)
                    .ok_or_else(|| ParseError::new("not delta-seconds").in_header(&name))
            })
            .transpose()
    }
}

/// Splits at the first empty line, CRLF or bare-LF style, whichever comes first (a body may
/// itself contain the other style).
fn split_head(bytes: &[u8]) -> Result<(&[u8], &[u8]), ParseError> {
    let crlf = find(bytes, b"\r\n\r\n").map(|i| (i, 4));
    let lf = find(bytes, b"\n\n").map(|i| (i, 2));
    let first = match (crlf, lf) {
        (Some(a), Some(b)) => Some(if b.0 < a.0 { b } else { a }),
        (a, b) => a.or(b),
    };
    match first {
        Some((i, len)) => Ok((&bytes[..i], &bytes[i + len..])),
        None => Err(ParseError::new("no empty line after the headers")),
    }
}

pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Splits the header section into unfolded `(name, value)` lines; the first line is the start
/// line. Folding (CRLF followed by SP/HTAB) joins lines with one space.
/// Unfolded `(name, value)` header lines.
type HeaderLines = Vec<(String, String)>;

fn unfold(head: &str) -> Result<(&str, HeaderLines), ParseError> {
    let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let start = lines.next().unwrap_or("");
    let mut headers: HeaderLines = Vec::new();
    for line in lines {
        if line.starts_with([' ', '\t']) {
            let (_, value) = headers
                .last_mut()
                .ok_or_else(|| ParseError::new("continuation line before any header"))?;
            // A continuation holding only white space is trailing LWS: nothing to join.
            let more = line.trim();
            if more.is_empty() {
                continue;
            }
            if !value.is_empty() {
                value.push(' ');
            }
            value.push_str(more);
            continue;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| ParseError::new("header line without ':'"))?;
        let name = name.trim_end_matches([' ', '\t']);
        if name.is_empty() || !name.bytes().all(is_token_char) {
            return Err(ParseError::new("header name is not a token"));
        }
        headers.push((name.to_string(), value.trim().to_string()));
    }
    Ok((start, headers))
}

fn parse_message(bytes: &[u8], framing: Framing) -> Result<Message, ParseError> {
    let start = bytes
        .iter()
        .position(|b| *b != b'\r' && *b != b'\n')
        .ok_or_else(|| ParseError::new("empty message"))?;
    let (head, rest) = split_head(&bytes[start..])?;
    let head = std::str::from_utf8(head).map_err(|_| ParseError::new("headers are not UTF-8"))?;
    let (start_line, lines) = unfold(head)?;
    let mut headers = Headers::new();
    for (name, value) in lines {
        headers.push(HeaderName::parse(&name), value);
    }
    let body = match (headers.content_length()?, framing) {
        (Some(len), _) if len > rest.len() => {
            return Err(ParseError::new("Content-Length larger than the message")
                .in_header(&HeaderName::ContentLength));
        }
        (Some(len), _) => rest[..len].to_vec(),
        (None, _) => rest.to_vec(),
    };
    let message = if let Some(status_line) = start_line.strip_prefix("SIP/") {
        parse_status_line(status_line, headers, body)?
    } else {
        parse_request_line(start_line, headers, body)?
    };
    validate(&message)?;
    Ok(message)
}

fn parse_status_line(rest: &str, headers: Headers, body: Vec<u8>) -> Result<Message, ParseError> {
    let mut parts = rest.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    if version != "2.0" {
        return Err(ParseError::new("unsupported SIP version"));
    }
    let code = parts.next().unwrap_or("");
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::new("status code is not three digits"));
    }
    let status: u16 = code
        .parse()
        .map_err(|_| ParseError::new("status code is not three digits"))?;
    if !(100..=699).contains(&status) {
        return Err(ParseError::new("status code out of range"));
    }
    Ok(Message::Response(Response {
        status,
        reason: parts.next().unwrap_or("").to_string(),
        headers,
        body,
    }))
}

fn parse_request_line(line: &str, headers: Headers, body: Vec<u8>) -> Result<Message, ParseError> {
    let parts: Vec<&str> = line.split(' ').collect();
    let [method, uri, version] = parts[..] else {
        return Err(ParseError::new(
            "request line is not 'method SP uri SP SIP/2.0'",
        ));
    };
    if !version.eq_ignore_ascii_case("SIP/2.0") {
        return Err(ParseError::new("unsupported SIP version"));
    }
    let method = Method::parse(method)?;
    let uri = Uri::parse(uri)?;
    if uri.as_sip().is_some_and(|u| !u.headers.is_empty()) {
        return Err(ParseError::new("Request-URI must not carry headers"));
    }
    Ok(Message::Request(Request {
        method,
        uri,
        headers,
        body,
    }))
}

/// Checks the headers every message must carry, and those whose values bound what layers above
/// may trust (RFC 4475 §3.1.2 lists the failures this catches).
fn validate(message: &Message) -> Result<(), ParseError> {
    let headers = message.headers();
    // Single-valued headers must appear once (RFC 4475 §3.3.10, §3.3.13 multi01, mcl01).
    for name in [
        HeaderName::CallId,
        HeaderName::CSeq,
        HeaderName::From,
        HeaderName::To,
        HeaderName::MaxForwards,
        HeaderName::ContentLength,
    ] {
        if headers.get_all(&name).count() > 1 {
            return Err(ParseError::new("appears more than once").in_header(&name));
        }
    }
    headers.call_id()?;
    let cseq = headers.cseq()?;
    headers.from()?;
    headers.to()?;
    if headers.vias()?.is_empty() {
        return Err(ParseError::new("missing").in_header(&HeaderName::Via));
    }
    headers.max_forwards()?;
    headers.contacts()?;
    headers.routes()?;
    headers.record_routes()?;
    if let Some(date) = headers.get(&HeaderName::Date)
        && !date.trim_end().ends_with(" GMT")
    {
        return Err(ParseError::new("time zone is not GMT").in_header(&HeaderName::Date));
    }
    if let Message::Request(r) = message
        && cseq.method != r.method
    {
        return Err(
            ParseError::new("method differs from the request line").in_header(&HeaderName::CSeq)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests;
