// A closure cannot travel to a worker process: `run` on a process pool,
// or on a pool whose runtime is chosen at run time, must not compile.
use knitting::{AnyRuntime, Pool};

fn main() {
    let pool = Pool::builder().processes(1).build().unwrap();
    let x = 6;
    let _ = pool.run(move || x * 7);

    let any: Pool<AnyRuntime> = Pool::builder().threads(1).build().unwrap().into();
    let _ = any.run_with_signal(|signal| signal.aborted());
}
