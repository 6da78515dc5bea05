//! Two tasks sharing one name make every pool build of the program fail (its own binary for that reason).

use knitting::{ErrorKind, Pool, Task as _, TaskId};

mod first {
    pub(crate) const LINE: u32 = line!();
    #[knitting::task(name = "same")]
    pub(crate) fn work() -> u32 {
        1
    }
}

mod second {
    pub(crate) const LINE: u32 = line!();
    #[knitting::task(name = "same")]
    pub(crate) fn work() -> u32 {
        2
    }
}

/// The definition site of a task declared just below a `line!()` marker:
/// the line of its attribute or of its `fn`.
fn assert_site_near(info: &knitting::TaskInfo, marker: u32) {
    assert_eq!(info.file(), file!());
    assert!(
        info.line() == marker + 1 || info.line() == marker + 2,
        "{} is defined at line {}, not right after line {marker}",
        info.name(),
        info.line()
    );
}

#[test]
fn building_a_pool_fails_with_duplicate_task() {
    let (a, b) = (first::work.info(), second::work.info());
    assert_eq!(a.name(), "same");
    assert_eq!(b.name(), "same");
    assert_eq!(a.id(), b.id());
    assert_eq!(a.id(), TaskId::of("same"));
    assert_site_near(a, first::LINE);
    assert_site_near(b, second::LINE);
    assert_ne!(a.line(), b.line());
    // Both are registered.
    assert_eq!(
        knitting::tasks()
            .iter()
            .filter(|t| t.id() == TaskId::of("same"))
            .count(),
        2
    );

    let err = Pool::builder().threads(1).build().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DuplicateTask, "{err:?}");
    assert!(!err.is_closed() && !err.is_panic() && !err.is_task_error());
    let message = err.to_string();
    for info in [a, b] {
        let site = format!("{}:{}", info.file(), info.line());
        assert!(message.contains(&site), "{message:?} does not name {site}");
    }
    assert!(message.contains("same"), "{message}");

    // Every build fails, whatever the options.
    let err = Pool::builder().build().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DuplicateTask);
    let err = knitting::PoolBuilder::new().threads(2).build().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DuplicateTask);

    // The functions themselves are still fine locally.
    assert_eq!(first::work() + second::work(), 3);
}
