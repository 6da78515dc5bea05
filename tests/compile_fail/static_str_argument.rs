// A borrowed argument cannot be decoded in another process: the call must
// not compile on a process pool (it is fine on a thread pool).
#[knitting::task]
fn shout(text: &'static str) -> String {
    text.to_uppercase()
}

fn main() {
    let pool = knitting::Pool::builder().processes(1).build().unwrap();
    let _ = pool.call(shout, "hi");
}
