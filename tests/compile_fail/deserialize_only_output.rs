// An output that can be decoded but not encoded: the worker could not send
// it, so the call must not compile on a process pool.
#[derive(serde::Deserialize)]
struct Summary {
    total: u64,
}

#[knitting::task]
fn summarize(n: u64) -> Summary {
    Summary { total: n }
}

fn main() {
    let pool = knitting::Pool::builder().processes(1).build().unwrap();
    let _ = pool.call(summarize, 3).wait().map(|s| s.total);
}
