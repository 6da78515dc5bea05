// An argument that can be encoded but not decoded: the worker could not
// read it, so the call must not compile on a process pool.
#[derive(serde::Serialize)]
struct Point {
    x: i32,
}

#[knitting::task]
fn norm(p: Point) -> i32 {
    p.x.abs()
}

fn main() {
    let pool = knitting::Pool::builder().processes(1).build().unwrap();
    let _ = pool.call(norm, Point { x: -3 });
}
