#![no_main]
//! Fuzz target `uri`: see `handset_sip_fuzz::check_uri` for the properties checked.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| handset_sip_fuzz::check_uri(data));
