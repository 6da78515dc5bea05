// A call whose handle is dropped unused is cancelled: the warning (an
// error here) must say what to do instead.
#![deny(unused_must_use)]

#[knitting::task]
fn square(v: i64) -> i64 {
    v * v
}

fn main() {
    let pool = knitting::Pool::builder().threads(1).build().unwrap();
    pool.call(square, 2);
}
