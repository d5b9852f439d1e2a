//! The Handset runtime: the only layer that performs I/O.
