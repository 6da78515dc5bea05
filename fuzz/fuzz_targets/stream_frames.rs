//! The host's reading of a worker's stream area (see
//! `src/runtime/process/fuzz.rs`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| knitting::__fuzz::stream_frames(data));
