//! The host's take of a worker's response slots (see
//! `src/runtime/process/fuzz.rs`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| knitting::__fuzz::responses(data));
