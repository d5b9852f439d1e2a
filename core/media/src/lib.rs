//! Sans-IO media core of Handset: nothing here performs I/O, reads the clock, sleeps or spawns
//! threads; time comes in as an argument.
pub mod codec;
pub mod dtls_session;
pub mod ice;
pub mod jitter;
pub(crate) mod pipeline;
pub mod rtcp;
pub mod rtp;
pub mod sdp;
pub mod session;
pub mod srtp;
pub mod stats;
