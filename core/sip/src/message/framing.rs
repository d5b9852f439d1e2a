//! Cutting SIP messages out of a TCP/TLS byte stream (RFC 3261 §18.3) and recognising the
//! RFC 5626 §3.5.1 CRLF keep-alives that share the stream.

use super::{HeaderName, Headers, Message, ParseError, find};

/// Largest header section accepted before the framer gives up on a stream.
const MAX_HEAD: usize = 64 * 1024;
/// Largest body accepted.
const MAX_BODY: usize = 1024 * 1024;

/// What the stream yielded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamItem {
    /// A complete message.
    Message(Message),
    /// A double-CRLF keep-alive ping; the receiver answers with a single CRLF pong.
    Ping,
    /// A single-CRLF keep-alive pong.
    Pong,
}

/// Accumulates stream bytes and yields whole messages and keep-alives in order.
///
/// A message that is malformed but correctly delimited yields an error and is skipped; a stream
/// whose framing is lost (unreadable Content-Length, oversized headers) yields an error and is
/// marked broken: the connection must then be closed.
#[derive(Debug, Default)]
pub struct StreamFramer {
    buf: Vec<u8>,
    broken: bool,
    awaiting_pong: bool,
    /// How far the buffer is known to hold no end of headers, so a slow sender does not make
    /// every read rescan everything (quadratic work).
    scanned: usize,
}

impl StreamFramer {
    /// An empty framer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes read from the stream.
    pub fn push(&mut self, data: &[u8]) {
        if !self.broken {
            self.buf.extend_from_slice(data);
        }
    }

    /// Tells the framer a ping was sent, so a lone CRLF arriving next is the pong rather than
    /// the first half of a ping split across reads.
    pub fn expect_pong(&mut self) {
        self.awaiting_pong = true;
    }

    /// Whether framing was lost and the connection must be closed.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Bytes buffered but not yet yielded.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next complete item, `None` when more bytes are needed.
    pub fn next_item(&mut self) -> Option<Result<StreamItem, ParseError>> {
        if self.broken {
            return None;
        }
        if self.buf.starts_with(b"\r\n") && self.awaiting_pong {
            self.awaiting_pong = false;
            self.buf.drain(..2);
            self.scanned = 0;
            return Some(Ok(StreamItem::Pong));
        }
        while self.buf.starts_with(b"\r\n") {
            if self.buf.starts_with(b"\r\n\r\n") {
                self.buf.drain(..4);
                self.scanned = 0;
                return Some(Ok(StreamItem::Ping));
            }
            match self.buf.get(2) {
                // Too few bytes yet to tell a ping from a stray CRLF.
                None => return None,
                Some(b'\r') if self.buf.len() < 4 => return None,
                // A stray CRLF before a start line is ignored (RFC 3261 §7.5).
                Some(_) => {
                    self.buf.drain(..2);
                    self.scanned = 0;
                }
            }
        }
        let from = self.scanned.saturating_sub(3);
        let Some(head_end) = find(&self.buf[from..], b"\r\n\r\n").map(|i| i + from) else {
            self.scanned = self.buf.len();
            if self.buf.len() > MAX_HEAD {
                return Some(Err(self.fail("header section too large")));
            }
            return None;
        };
        let body_start = head_end + 4;
        let length = match content_length_of(&self.buf[..head_end]) {
            Ok(n) => n,
            Err(e) => return Some(Err(self.fail_with(e))),
        };
        if length > MAX_BODY {
            return Some(Err(self.fail("body too large")));
        }
        let end = body_start + length;
        if self.buf.len() < end {
            return None;
        }
        let bytes: Vec<u8> = self.buf.drain(..end).collect();
        self.scanned = 0;
        Some(Message::parse_framed(&bytes).map(StreamItem::Message))
    }

    fn fail(&mut self, reason: &'static str) -> ParseError {
        self.fail_with(ParseError::new(reason))
    }

    fn fail_with(&mut self, error: ParseError) -> ParseError {
        self.broken = true;
        self.buf.clear();
        self.scanned = 0;
        error
    }
}

/// Reads Content-Length from a raw header section; absent means 0 on a stream.
fn content_length_of(head: &[u8]) -> Result<usize, ParseError> {
    let text = std::str::from_utf8(head).map_err(|_| ParseError::new("headers are not UTF-8"))?;
    let mut headers = Headers::new();
    for line in text.split("\r\n").skip(1) {
        if let Some((name, value)) = line.split_once(':') {
            let name = HeaderName::parse(name.trim_end());
            if name == HeaderName::ContentLength {
                headers.push(name, value.trim());
            }
        }
    }
    Ok(headers.content_length()?.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] = b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\n\
From: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n\
Content-Length: 4\r\n\r\nbody";

    #[test]
    fn frames_byte_by_byte_with_keepalives() {
        let mut stream = b"\r\n\r\n".to_vec();
        stream.extend_from_slice(MSG);
        stream.extend_from_slice(MSG);
        stream.extend_from_slice(b"\r\n");
        let mut framer = StreamFramer::new();
        let mut items = Vec::new();
        for (i, b) in stream.iter().enumerate() {
            if i == stream.len() - 2 {
                framer.expect_pong();
            }
            framer.push(&[*b]);
            while let Some(item) = framer.next_item() {
                items.push(item.unwrap());
            }
        }
        assert_eq!(items.len(), 4);
        assert_eq!(items[0], StreamItem::Ping);
        assert!(matches!(&items[1], StreamItem::Message(m) if m.body() == b"body"));
        assert!(matches!(&items[2], StreamItem::Message(_)));
        assert_eq!(items[3], StreamItem::Pong);
        assert_eq!(framer.buffered(), 0);
    }

    #[test]
    fn slow_sender_is_scanned_once_and_still_framed() {
        let mut framer = StreamFramer::new();
        for b in MSG {
            framer.push(&[*b]);
            if let Some(item) = framer.next_item() {
                assert!(matches!(item, Ok(StreamItem::Message(_))));
                return;
            }
        }
        panic!("message not framed");
    }

    #[test]
    fn bad_content_length_breaks_the_stream() {
        let mut framer = StreamFramer::new();
        framer.push(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: -1\r\n\r\n");
        assert!(framer.next_item().unwrap().is_err());
        assert!(framer.is_broken());
        assert!(framer.next_item().is_none());
    }

    #[test]
    fn malformed_but_delimited_message_is_skipped() {
        let mut framer = StreamFramer::new();
        framer.push(b"GARBAGE\r\nContent-Length: 0\r\n\r\n");
        framer.push(MSG);
        assert!(framer.next_item().unwrap().is_err());
        assert!(matches!(
            framer.next_item(),
            Some(Ok(StreamItem::Message(_)))
        ));
    }
}
