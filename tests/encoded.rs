//! Calls in encoded form (`knitting::encoded`, `Pool::call_encoded`), as a
//! crate that carries calls to other hosts uses them: the caller encodes,
//! the serving side runs the bytes on a pool of either runtime, the caller
//! decodes the output or the error.

knitting::init_before_main!();

use std::{error::Error as _, time::Duration};

use knitting::{
    encoded::{self, Request},
    AnyRuntime, Error, ErrorKind, ImportedTask, Pool, ProcessTask, Signal,
};

#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Point {
    x: i32,
    y: i32,
}

#[knitting::task]
fn norm(p: Point, scale: u32) -> u64 {
    u64::from(p.x.unsigned_abs() + p.y.unsigned_abs()) * u64::from(scale)
}

#[knitting::task]
fn reverse(bytes: Vec<u8>) -> Vec<u8> {
    bytes.into_iter().rev().collect()
}

#[derive(Debug)]
struct Outer(std::num::ParseIntError);

impl std::fmt::Display for Outer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the text is no number")
    }
}

impl std::error::Error for Outer {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

#[knitting::task]
fn parse(text: String) -> Result<i64, Outer> {
    text.parse().map_err(Outer)
}

#[knitting::task]
async fn later(ms: u64) -> u64 {
    knitting::sleep(Duration::from_millis(ms)).await;
    ms
}

#[knitting::task]
fn spin(signal: &Signal) -> bool {
    while !signal.aborted() {
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}

/// Writes its file when dropped.
struct Guard(std::path::PathBuf);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.0, b"dropped");
    }
}

#[knitting::task]
async fn guarded(path: String) -> u64 {
    let _guard = Guard(path.into());
    knitting::sleep(Duration::from_secs(30)).await;
    30
}

fn pools() -> Vec<Pool<AnyRuntime>> {
    vec![
        Pool::builder().threads(1).build().unwrap().into(),
        Pool::builder()
            .processes(1)
            .max_payload_bytes(1 << 20)
            // The guards write their marker files.
            .permissions(knitting::Permissions::unrestricted().allow_write(std::env::temp_dir()))
            .build()
            .unwrap()
            .into(),
    ]
}

/// Encodes a call of `task`, runs it on `pool` as the serving side would,
/// decodes what came back.
fn relay<T: ProcessTask>(
    pool: &Pool<AnyRuntime>,
    task: T,
    args: T::Args,
) -> Result<T::Output, Error> {
    let bytes = encoded::encode_args(task, &args)?;
    let request = Request::new(encoded::id_of(task), encoded::shape_of(task), bytes)?;
    match pool.call_encoded(request).wait() {
        Ok(output) => encoded::decode_output(task, &output),
        Err(err) => Err(encoded::decode_error(task, &encoded::encode_error(&err))),
    }
}

#[test]
fn calls_of_several_types_cross_in_encoded_form() {
    for pool in pools() {
        let runtime = pool.runtime();
        assert_eq!(
            relay(&pool, norm, (Point { x: 3, y: -4 }, 2)).unwrap(),
            14,
            "{runtime:?}"
        );
        let big: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        let back = relay(&pool, reverse, big.clone()).unwrap();
        assert_eq!(back.len(), big.len());
        assert!(back.iter().eq(big.iter().rev()), "{runtime:?}");
        assert_eq!(relay(&pool, later, 20).unwrap(), 20, "{runtime:?}");
    }
}

#[test]
fn a_task_error_keeps_its_kind_message_and_source_chain() {
    for pool in pools() {
        let err = relay(&pool, parse, "ten".into()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Task, "{:?}", pool.runtime());
        assert_eq!(err.message(), "the text is no number");
        assert!(err.task().unwrap().ends_with("::parse"));
        let outer = err.source().expect("the task's error");
        assert_eq!(outer.to_string(), "the text is no number");
        let inner = outer.source().expect("its source");
        assert_eq!(inner.to_string(), "invalid digit found in string");
    }
}

#[test]
fn an_unknown_task_is_refused_before_any_pool_sees_it() {
    const ELSEWHERE: ImportedTask<u32, u32> = ImportedTask::new("not::in::this::program");
    let err = Request::new(
        encoded::id_of(ELSEWHERE),
        encoded::shape_of(ELSEWHERE),
        vec![1],
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnknownTask);
    assert!(err.message().contains("no task of id"), "{err}");
}

#[test]
fn a_mismatched_type_fingerprint_fails_the_call_naming_both_types() {
    // The caller's idea of `reverse`: the same name, other types.
    const REVERSE: ImportedTask<String, String> =
        ImportedTask::new(concat!(module_path!(), "::reverse"));
    assert_eq!(encoded::id_of(REVERSE), encoded::id_of(reverse));
    for pool in pools() {
        let err = relay(&pool, REVERSE, "abc".into()).unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::TypeMismatch,
            "{:?}: {err}",
            pool.runtime()
        );
        let message = err.message();
        assert!(
            message.contains("`String`") && message.contains("`Vec<u8>`"),
            "{message}"
        );
    }
}

#[test]
fn arguments_over_a_process_pools_limit_are_refused() {
    let pool: Pool<AnyRuntime> = Pool::builder()
        .processes(1)
        .max_payload_bytes(1024)
        .build()
        .unwrap()
        .into();
    let err = relay(&pool, reverse, vec![7; 4096]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooLarge, "{err}");
    assert_eq!(relay(&pool, reverse, vec![1, 2]).unwrap(), vec![2, 1]);
}

#[test]
fn an_encoded_call_times_out_and_aborts_like_any_call() {
    for pool in pools() {
        let runtime = pool.runtime();
        let request = || {
            let args = encoded::encode_args(spin, &()).unwrap();
            Request::new(encoded::id_of(spin), encoded::shape_of(spin), args).unwrap()
        };
        let err = pool
            .call_encoded(request())
            .timeout(Duration::from_millis(50))
            .wait()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Timeout, "{runtime:?}");
        let call = pool.call_encoded(request());
        std::thread::sleep(Duration::from_millis(20));
        call.abort();
        let output = call.wait().unwrap();
        assert!(
            encoded::decode_output(spin, &output).unwrap(),
            "{runtime:?}"
        );
    }
}

#[test]
fn a_deadline_drops_the_future_of_an_encoded_async_call() {
    for pool in pools() {
        let runtime = pool.runtime();
        let path = std::env::temp_dir().join(format!(
            "knitting-encoded-{}-{runtime:?}",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&path);
        let args = encoded::encode_args(guarded, &path.display().to_string()).unwrap();
        let request = Request::new(encoded::id_of(guarded), encoded::shape_of(guarded), args);
        let err = pool
            .call_encoded(request.unwrap())
            .timeout(Duration::from_millis(100))
            .wait()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Timeout, "{runtime:?}");
        let until = std::time::Instant::now() + Duration::from_secs(5);
        while !path.exists() {
            assert!(
                std::time::Instant::now() < until,
                "{runtime:?}: the future was not dropped"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = std::fs::remove_file(&path);
    }
}
