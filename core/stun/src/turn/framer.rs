//! Cutting a TCP/TLS byte stream from a TURN server into whole STUN messages and ChannelData
//! frames (RFC 8656 §12.4): a STUN message is its 20-byte header plus the header's length, a
//! ChannelData frame its 4-byte header plus the length padded to four bytes.

use crate::channel_data::{CHANNEL_HEADER_LEN, CHANNELS, padded};
use crate::message::{HEADER_LEN, MAGIC_COOKIE};

/// Bytes held before the stream counts as flooding: room for several frames of the largest
/// size (64 KiB each).
const MAX_BUFFERED: usize = 256 * 1024;

/// Why a TURN stream cannot be framed; the connection must be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    /// Bytes that start neither a STUN message nor a ChannelData frame.
    #[error("the TURN stream carries bytes that are neither STUN nor ChannelData")]
    Garbage,
    /// More bytes buffered than allowed: frames were not taken out, or the peer floods.
    #[error("the TURN stream buffered more than {MAX_BUFFERED} bytes")]
    Overflow,
}

/// Splits a TCP/TLS byte stream from a TURN server into whole STUN messages and ChannelData
/// frames; bounded buffer, a framing error for garbage.
///
/// After an error the framer stays broken: every later push fails the same way and no more
/// frames come out.
#[derive(Debug, Default)]
pub struct StreamFramer {
    buffer: Vec<u8>,
    /// How many bytes at the start of the buffer are whole, checked frames.
    checked: usize,
    broken: Option<FramingError>,
}

impl StreamFramer {
    /// An empty framer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes read from the stream, checking each frame header as it becomes whole.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), FramingError> {
        if let Some(error) = &self.broken {
            return Err(error.clone());
        }
        if self.buffer.len() + bytes.len() > MAX_BUFFERED {
            return Err(self.fail(FramingError::Overflow));
        }
        self.buffer.extend_from_slice(bytes);
        loop {
            let rest = self.buffer.get(self.checked..).unwrap_or_default();
            match frame_len(rest) {
                Err(error) => return Err(self.fail(error)),
                Ok(Some(len)) if len <= rest.len() => self.checked += len,
                Ok(_) => return Ok(()),
            }
        }
    }

    /// The next whole frame (a STUN message or a ChannelData frame with its padding), `None`
    /// when more bytes are needed or the framer is broken.
    pub fn next_frame(&mut self) -> Option<Vec<u8>> {
        if self.broken.is_some() {
            return None;
        }
        let len = frame_len(&self.buffer).ok().flatten()?;
        if len > self.checked {
            return None;
        }
        self.checked -= len;
        Some(self.buffer.drain(..len).collect())
    }

    /// Whether framing was lost.
    pub fn is_broken(&self) -> bool {
        self.broken.is_some()
    }

    fn fail(&mut self, error: FramingError) -> FramingError {
        self.buffer = Vec::new();
        self.checked = 0;
        self.broken = Some(error.clone());
        error
    }
}

/// The length of the frame `bytes` starts with, `None` until its header is complete.
fn frame_len(bytes: &[u8]) -> Result<Option<usize>, FramingError> {
    let Some(first) = bytes.first() else {
        return Ok(None);
    };
    match first >> 6 {
        0b00 => {
            // The cookie is checked as far as it has arrived, so garbage is caught early.
            let cookie = MAGIC_COOKIE.to_be_bytes();
            let arrived = bytes.iter().skip(4).take(4);
            if arrived
                .zip(cookie)
                .any(|(byte, expected)| *byte != expected)
            {
                return Err(FramingError::Garbage);
            }
            let Some([_, _, l0, l1, _, _, _, _]) = bytes.first_chunk::<8>() else {
                return Ok(None);
            };
            let len = usize::from(u16::from_be_bytes([*l0, *l1]));
            if !len.is_multiple_of(4) {
                return Err(FramingError::Garbage);
            }
            Ok(Some(HEADER_LEN + len))
        }
        0b01 => {
            let Some([c0, c1, l0, l1]) = bytes.first_chunk::<CHANNEL_HEADER_LEN>() else {
                return Ok(None);
            };
            if !CHANNELS.contains(&u16::from_be_bytes([*c0, *c1])) {
                return Err(FramingError::Garbage);
            }
            let len = usize::from(u16::from_be_bytes([*l0, *l1]));
            Ok(Some(CHANNEL_HEADER_LEN + padded(len)))
        }
        _ => Err(FramingError::Garbage),
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::channel_data::ChannelData;
    use crate::message::{Attribute, Class, Message, Method, StunTransactionId};

    fn frames() -> Vec<Vec<u8>> {
        let id = StunTransactionId([7; 12]);
        vec![
            Message::new(Class::SuccessResponse, Method::ALLOCATE, id)
                .with(Attribute::Lifetime(600))
                .with(Attribute::Software("coturn"))
                .encode(None)
                .unwrap(),
            ChannelData {
                channel: 0x4000,
                data: b"odd",
            }
            .encode(true)
            .unwrap(),
            ChannelData {
                channel: 0x4001,
                data: b"",
            }
            .encode(true)
            .unwrap(),
            Message::new(Class::Indication, Method::DATA, id)
                .with(Attribute::Data(&[9; 300]))
                .encode(None)
                .unwrap(),
        ]
    }

    fn drain(framer: &mut StreamFramer) -> Vec<Vec<u8>> {
        std::iter::from_fn(|| framer.next_frame()).collect()
    }

    #[test]
    fn coalesced_frames_come_out_one_by_one() {
        let frames = frames();
        let mut framer = StreamFramer::new();
        framer.push(&frames.concat()).unwrap();
        assert_eq!(drain(&mut framer), frames);
        assert_eq!(framer.next_frame(), None);
    }

    #[test]
    fn frames_split_at_every_byte_come_out_whole() {
        let frames = frames();
        let stream = frames.concat();
        for chunk in [1, 2, 3, 5, 7, 19, 20, 21, 64] {
            let mut framer = StreamFramer::new();
            let mut out = Vec::new();
            for piece in stream.chunks(chunk) {
                framer.push(piece).unwrap();
                out.extend(drain(&mut framer));
            }
            assert_eq!(out, frames, "chunks of {chunk}");
        }
    }

    #[test]
    fn garbage_breaks_the_stream_for_good() {
        let garbage: [&[u8]; 5] = [
            // SIP text: 'S' 'I' would be channel 0x5349, outside the range.
            b"SIP/2.0 200 OK\r\n",
            &[0x80, 0, 0, 0],
            &[0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x43],
            &[0x00, 0x01, 0x00, 0x05, 0x21, 0x12, 0xA4, 0x42],
            &[0x50, 0x00, 0x00, 0x01],
        ];
        for bytes in garbage {
            let mut framer = StreamFramer::new();
            framer.push(&frames()[0]).unwrap();
            assert_eq!(framer.push(bytes), Err(FramingError::Garbage), "{bytes:?}");
            assert!(framer.is_broken());
            assert_eq!(framer.next_frame(), None);
            assert_eq!(framer.push(&frames()[0]), Err(FramingError::Garbage));
        }
        // A wrong cookie is caught from its first wrong byte.
        let mut framer = StreamFramer::new();
        assert_eq!(
            framer.push(&[0x01, 0x01, 0x00, 0x00, 0x99]),
            Err(FramingError::Garbage)
        );
    }

    #[test]
    fn the_buffer_is_bounded() {
        let frame = &frames()[3];
        let mut framer = StreamFramer::new();
        let mut pushed = 0;
        let error = loop {
            match framer.push(frame) {
                Ok(()) => pushed += frame.len(),
                Err(error) => break error,
            }
        };
        assert_eq!(error, FramingError::Overflow);
        assert!(pushed <= MAX_BUFFERED);
        assert!(framer.is_broken());
    }
}
