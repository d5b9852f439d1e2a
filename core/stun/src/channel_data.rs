//! ChannelData messages (RFC 8656 §12.4): the 4-byte framing TURN uses for data to and from
//! a peer once a channel is bound to it.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |         Channel Number        |            Length             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! /                       Application Data                        /
//! +-------------------------------+-------------------------------+
//! ```
//!
//! Over TCP and TLS the data is padded to a multiple of four bytes (not counted in Length);
//! over UDP padding is optional, and accepted when present.

use std::ops::RangeInclusive;

use crate::message::StunError;

/// The channel numbers a client may bind (RFC 8656 §12).
pub const CHANNELS: RangeInclusive<u16> = 0x4000..=0x4FFF;
/// The ChannelData header: channel number and length.
pub const CHANNEL_HEADER_LEN: usize = 4;

/// One ChannelData message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelData<'a> {
    /// The channel, in [`CHANNELS`].
    pub channel: u16,
    /// The application data.
    pub data: &'a [u8],
}

/// Whether `bytes` start like ChannelData: the first two bits are 01, where a STUN message
/// has 00 (RFC 8656 §12).
pub fn is_channel_data(bytes: &[u8]) -> bool {
    bytes.first().is_some_and(|first| first & 0xC0 == 0x40)
}

impl<'a> ChannelData<'a> {
    /// Reads one ChannelData message: a channel in range, Length no more than the bytes, and
    /// at most the padding to four bytes after the data.
    pub fn decode(bytes: &'a [u8]) -> Result<ChannelData<'a>, StunError> {
        let Some(([c0, c1, l0, l1], rest)) = bytes.split_first_chunk::<CHANNEL_HEADER_LEN>() else {
            return Err(StunError::Length(bytes.len()));
        };
        let channel = u16::from_be_bytes([*c0, *c1]);
        if !CHANNELS.contains(&channel) {
            return Err(StunError::BadChannel(channel));
        }
        let len = usize::from(u16::from_be_bytes([*l0, *l1]));
        let Some((data, padding)) = rest.split_at_checked(len) else {
            return Err(StunError::Truncated);
        };
        if padding.len() > padded(len) - len {
            return Err(StunError::Length(bytes.len()));
        }
        Ok(ChannelData { channel, data })
    }

    /// Writes the message, padded to four bytes when `padded` (TCP and TLS).
    pub fn encode(&self, padded: bool) -> Result<Vec<u8>, StunError> {
        if !CHANNELS.contains(&self.channel) {
            return Err(StunError::BadChannel(self.channel));
        }
        let len = u16::try_from(self.data.len()).map_err(|_| StunError::Length(self.data.len()))?;
        let mut bytes = Vec::with_capacity(CHANNEL_HEADER_LEN + self::padded(self.data.len()));
        bytes.extend_from_slice(&self.channel.to_be_bytes());
        bytes.extend_from_slice(&len.to_be_bytes());
        bytes.extend_from_slice(self.data);
        if padded {
            bytes.resize(CHANNEL_HEADER_LEN + self::padded(self.data.len()), 0);
        }
        Ok(bytes)
    }
}

/// `len` rounded up to a multiple of four.
pub(crate) fn padded(len: usize) -> usize {
    len.div_ceil(4) * 4
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_padded_for_streams_and_bare_for_datagrams() {
        for len in 0..9 {
            let data: Vec<u8> = (0..len).collect();
            let message = ChannelData {
                channel: 0x4001,
                data: &data,
            };
            let bare = message.encode(false).unwrap();
            assert_eq!(bare.len(), 4 + data.len());
            assert_eq!(&bare[..4], &[0x40, 0x01, 0, len]);
            let framed = message.encode(true).unwrap();
            assert_eq!(framed.len(), 4 + padded(data.len()));
            assert!(framed[bare.len()..].iter().all(|b| *b == 0));
            for bytes in [&bare, &framed] {
                assert!(is_channel_data(bytes));
                assert_eq!(ChannelData::decode(bytes).unwrap(), message);
            }
        }
    }

    #[test]
    fn refuses_channels_out_of_range_short_frames_and_excess_bytes() {
        for channel in [0x3FFF, 0x5000, 0x7FFF] {
            let message = ChannelData { channel, data: b"" };
            assert_eq!(message.encode(false), Err(StunError::BadChannel(channel)));
            let [c0, c1] = channel.to_be_bytes();
            assert_eq!(
                ChannelData::decode(&[c0, c1, 0, 0]),
                Err(StunError::BadChannel(channel))
            );
        }
        let good = ChannelData {
            channel: 0x4FFF,
            data: b"hello",
        }
        .encode(true)
        .unwrap();
        for cut in 0..9 {
            assert!(ChannelData::decode(&good[..cut]).is_err(), "cut at {cut}");
        }
        // "hello" and its three bytes of padding are fine; a fourth extra byte is not.
        let mut long = good.clone();
        long.push(0);
        assert_eq!(ChannelData::decode(&long), Err(StunError::Length(13)));
        let huge = vec![0u8; 0x1_0000];
        let message = ChannelData {
            channel: 0x4000,
            data: &huge,
        };
        assert_eq!(message.encode(false), Err(StunError::Length(0x1_0000)));
        assert!(!is_channel_data(b""));
        assert!(!is_channel_data(&[0x00, 0x01]));
        assert!(!is_channel_data(&[0x80]));
    }
}
