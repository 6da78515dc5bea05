//! A worker program for imported tasks: it defines text tasks under stable
//! names, and another program (the `import_host` example) calls them by
//! name through `knitting::ImportedTask`, without containing their code.
//!
//! This program is not meant to be run by hand: the host starts it as a
//! process worker (with `.worker_executable(path)`), and `knitting::init()`
//! turns it into a worker that serves calls until the host shuts down.
//! Build it, then run the host:
//!
//! ```text
//! cargo build --example import_worker && cargo run --example import_host
//! ```
//!
//! The names given with `#[knitting::task(name = "...")]` are the contract
//! with hosts: they fix each task's id, whatever module the code lives in.
//! The argument and output types are the other half of the contract; a host
//! that declares different ones gets a `TypeMismatch` error that names both
//! sides' types, not a wrong value. The check compares type names without
//! their module paths, so a host may declare its own copy of `Stats` below.

use std::collections::HashMap;

/// The words of `text`: runs of letters, digits and apostrophes, lowercased.
fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
}

/// How many words `text` has.
#[knitting::task(name = "text::word_count")]
fn word_count(text: String) -> usize {
    words(&text).count()
}

/// The `n` most frequent words of `text` with their counts, most frequent
/// first; ties in alphabetical order.
#[knitting::task(name = "text::top_words")]
fn top_words(text: String, n: usize) -> Vec<(String, usize)> {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for word in words(&text) {
        *counts.entry(word).or_default() += 1;
    }
    let mut ranked: Vec<(String, usize)> = counts.into_iter().collect();
    ranked.sort_by(|(wa, ca), (wb, cb)| cb.cmp(ca).then_with(|| wa.cmp(wb)));
    ranked.truncate(n);
    ranked
}

/// The sum of the whitespace-separated integers in `text`; fails on the
/// first item that is not an integer.
#[knitting::task(name = "text::sum_numbers")]
fn sum_numbers(text: String) -> Result<i64, String> {
    text.split_whitespace().try_fold(0i64, |sum, item| {
        let value: i64 = item
            .parse()
            .map_err(|e| format!("`{item}` is not an integer: {e}"))?;
        sum.checked_add(value)
            .ok_or_else(|| format!("the sum overflows at `{item}`"))
    })
}

/// The smallest and largest byte of a buffer, and their mean.
#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    /// The smallest byte.
    pub min: u8,
    /// The largest byte.
    pub max: u8,
    /// The mean of all bytes.
    pub mean: f64,
}

/// The [`Stats`] of `bytes`; fails on an empty buffer.
#[knitting::task(name = "bytes::stats")]
fn byte_stats(bytes: Vec<u8>) -> Result<Stats, String> {
    let (&min, &max) = match (bytes.iter().min(), bytes.iter().max()) {
        (Some(min), Some(max)) => (min, max),
        _ => return Err("no bytes".to_owned()),
    };
    let sum: f64 = bytes.iter().map(|&b| f64::from(b)).sum();
    Ok(Stats {
        min,
        max,
        mean: sum / bytes.len() as f64,
    })
}

/// The pid of the worker process that runs the call.
#[knitting::task(name = "worker::pid")]
fn worker_pid() -> u32 {
    std::process::id()
}

/// The greeting of this worker, set by its bootstrap.
static GREETING: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Setup a host may ask for by name (`bootstrap_named("text::greeting",
/// ..)`): each worker runs it once, before any call.
#[knitting::bootstrap(name = "text::greeting")]
fn set_greeting(greeting: String) -> Result<(), String> {
    if greeting.is_empty() {
        return Err("the greeting is empty".into());
    }
    GREETING.set(greeting).map_err(|_| "set twice".to_owned())
}

/// `name`, greeted as the bootstrap said (or not at all without one).
#[knitting::task(name = "text::greet")]
fn greet(name: String) -> String {
    match GREETING.get() {
        Some(greeting) => format!("{greeting}, {name}"),
        None => name,
    }
}

fn main() {
    // In a worker started by a host, this never returns.
    knitting::init();
    eprintln!("this program is a knitting worker; run the import_host example instead");
    std::process::exit(2)
}
