//! Calls that must not compile, with the messages they give
//! (`tests/compile_fail/*.rs` and their `.stderr` files).
//!
//! The messages are the compiler's: after a toolchain update that changes
//! their wording, review the new ones and rewrite the files with
//! `TRYBUILD=overwrite cargo test --test compile_fail`.

// The cases use process pools, which exist on Linux only.
#![cfg(target_os = "linux")]

#[test]
fn what_cannot_run_does_not_compile() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/compile_fail/*.rs");
}
