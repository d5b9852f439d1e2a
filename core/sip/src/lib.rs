//! Sans-IO SIP core of Handset.
//!
//! Nothing in this crate performs I/O, reads the clock, sleeps or spawns threads: time comes
//! in as an argument and work goes out as values the runtime executes.

pub mod auth;
pub mod dialog;
pub mod message;
pub mod transaction;
pub mod transport;
pub mod usage;
