//! Process pool smoke test.

knitting::init_before_main!();

#[knitting::task]
fn add(a: i64, b: i64) -> i64 {
    a + b
}

#[knitting::task]
fn pid() -> u32 {
    std::process::id()
}

#[test]
fn smoke() {
    let t = std::time::Instant::now();
    let pool = knitting::Pool::builder().processes(2).build().unwrap();
    eprintln!("built in {:?}", t.elapsed());
    assert_eq!(pool.call(add, (2, 3)).wait().unwrap(), 5);
    eprintln!("first call {:?}", t.elapsed());
    let p = pool.call(pid, ()).wait().unwrap();
    assert_ne!(p, std::process::id());
    let t = std::time::Instant::now();
    let calls: Vec<_> = (0..1000).map(|i| pool.call(add, (i, 1))).collect();
    for (i, c) in calls.into_iter().enumerate() {
        assert_eq!(c.wait().unwrap(), i as i64 + 1);
    }
    eprintln!("1000 calls {:?}", t.elapsed());
    pool.shutdown();
    eprintln!("{:?}", pool.stats());
}
