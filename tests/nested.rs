//! A task that calls its own pool and waits: the waiting worker runs the
//! queued call itself, so a tree of calls finishes on any number of
//! threads, one included.

mod common;

use std::sync::OnceLock;

use common::LONG;
use knitting::Pool;

/// One pool per thread count, reachable from inside its own tasks.
fn pool(threads: usize) -> &'static Pool {
    static POOLS: [OnceLock<Pool>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    POOLS[threads].get_or_init(|| common::pool(threads))
}

/// Counts the nodes of a tree `depth` deep with `fanout` children per node,
/// each child a call on the same pool, waited for by its parent.
#[knitting::task]
fn tree(depth: u32, fanout: u32, threads: usize) -> Result<u64, knitting::Error> {
    if depth == 0 {
        return Ok(1);
    }
    let pool = pool(threads);
    let children: Vec<_> = (0..fanout)
        .map(|_| pool.call(tree, (depth - 1, fanout, threads)))
        .collect();
    let mut nodes = 1;
    for mut child in children {
        nodes += child
            .wait_timeout(LONG)
            .expect("a nested call ended in time")?;
    }
    Ok(nodes)
}

/// As `tree`, waiting with the unbounded `wait` (the test bounds the root).
#[knitting::task]
fn tree_unbounded(depth: u32, fanout: u32, threads: usize) -> Result<u64, knitting::Error> {
    if depth == 0 {
        return Ok(1);
    }
    let pool = pool(threads);
    let children: Vec<_> = (0..fanout)
        .map(|_| pool.call(tree_unbounded, (depth - 1, fanout, threads)))
        .collect();
    let mut nodes = 1;
    for child in children {
        nodes += child.wait()?;
    }
    Ok(nodes)
}

fn nodes(depth: u32, fanout: u32) -> u64 {
    (0..=depth).map(|d| u64::from(fanout).pow(d)).sum()
}

fn run_tree(threads: usize, depth: u32, fanout: u32) {
    let mut root = pool(threads).call(tree, (depth, fanout, threads));
    let counted = root
        .wait_timeout(LONG)
        .expect("the tree of calls finished in time (no deadlock)")
        .expect("every call succeeded");
    assert_eq!(counted, nodes(depth, fanout));
}

#[test]
fn a_chain_three_deep_finishes_on_one_thread() {
    run_tree(1, 3, 1);
}

#[test]
fn a_chain_three_deep_finishes_on_two_threads() {
    run_tree(2, 3, 1);
}

#[test]
fn a_wide_tree_finishes_on_one_thread() {
    run_tree(1, 3, 4);
}

#[test]
fn a_wide_tree_finishes_on_two_threads() {
    run_tree(2, 3, 4);
}

#[test]
fn unbounded_waits_in_a_tree_finish_too() {
    let mut root = pool(2).call(tree_unbounded, (3, 3, 2));
    let counted = root
        .wait_timeout(LONG)
        .expect("the tree of calls finished in time (no deadlock)")
        .expect("every call succeeded");
    assert_eq!(counted, nodes(3, 3));
}

/// As `tree`, blocking on the calls as futures.
#[knitting::task]
fn tree_async(depth: u32, fanout: u32, threads: usize) -> Result<u64, knitting::Error> {
    if depth == 0 {
        return Ok(1);
    }
    let pool = pool(threads);
    let children: Vec<_> = (0..fanout)
        .map(|_| pool.call(tree_async, (depth - 1, fanout, threads)))
        .collect();
    let mut nodes = 1;
    for child in children {
        nodes += pollster::block_on(child)?;
    }
    Ok(nodes)
}

#[test]
fn blocking_on_nested_calls_as_futures_finishes_on_one_thread() {
    let mut root = pool(1).call(tree_async, (3, 2, 1));
    let counted = root
        .wait_timeout(LONG)
        .expect("the tree of calls finished in time (no deadlock)")
        .expect("every call succeeded");
    assert_eq!(counted, nodes(3, 2));
}

/// A panic in a nested call run by its waiter is that call's error, and
/// the waiting task's own later panic is still caught with its location.
#[knitting::task]
fn panics_after_a_nested_panic(threads: usize) -> u32 {
    let inner = pool(threads).call(nested_panic, ());
    let err = inner.wait().unwrap_err();
    assert!(err.is_panic() && err.location().is_some(), "{err:?}");
    panic!("outer");
}

#[knitting::task]
fn nested_panic() {
    panic!("inner");
}

#[test]
fn panics_in_nested_calls_stay_with_their_call() {
    let mut call = pool(1).call(panics_after_a_nested_panic, 1);
    let err = call.wait_timeout(LONG).expect("ended in time").unwrap_err();
    assert!(err.is_panic(), "{err:?}");
    assert_eq!(err.message(), "outer");
    assert!(
        err.location().is_some(),
        "the outer panic's location was caught"
    );
}
