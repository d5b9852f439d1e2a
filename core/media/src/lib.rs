//! Sans-IO media core of Handset: nothing here performs I/O, reads the clock, sleeps or spawns
//! threads; time comes in as an argument.
pub mod sdp;
