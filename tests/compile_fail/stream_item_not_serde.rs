// On a process pool, a stream's items cross as serde values.
struct Opaque;

#[knitting::task]
fn opaque(n: u32, out: knitting::Sender<Opaque>) {
    for _ in 0..n {
        let _ = out.send(Opaque);
    }
}

fn main() {
    let pool = knitting::Pool::builder().processes(1).build().unwrap();
    let _ = pool.stream(opaque, 3);
}
