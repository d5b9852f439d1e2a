#![no_main]
//! Fuzz target `stream_framer`: see `handset_sip_fuzz::check_stream_framer` for the properties checked.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| handset_sip_fuzz::check_stream_framer(data));
