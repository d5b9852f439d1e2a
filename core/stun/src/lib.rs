//! Sans-IO STUN and TURN of Handset.
//!
//! Nothing in this crate performs I/O, reads the clock, sleeps or spawns threads: time comes
//! in as an argument and bytes go out as values the runtime sends. Bytes from the network are
//! never indexed or sliced unchecked: malformed input is an error value, never a panic.
//!
//! - [`message`]: the STUN message codec (RFC 8489): header, attributes, the long-term
//!   credential's MESSAGE-INTEGRITY and FINGERPRINT.
//! - [`binding`]: the Binding request/answer that SIP outbound keep-alives use (RFC 5626).
//! - [`channel_data`]: TURN's ChannelData framing (RFC 8656 §12.4).
//! - [`turn`]: the TURN client (RFC 8656) and the framer for TURN over TCP/TLS.

#![deny(clippy::indexing_slicing, clippy::string_slice)]

pub mod binding;
pub mod channel_data;
pub mod message;
pub mod turn;
