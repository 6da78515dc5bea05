// A `threads_only` task has no process entry: calling it on a process pool
// must not compile.
#[knitting::task(threads_only)]
fn local_only(v: u32) -> u32 {
    v + 1
}

fn main() {
    let pool = knitting::Pool::builder().processes(1).build().unwrap();
    let _ = pool.call(local_only, 1);
}
