//! Payload kinds, on both runtimes: byte vectors, the crate's `Bytes` and
//! `Buffer<T>`, slice parameters lent in place, byte fields nested in
//! structs and enums; sizes from empty through unaligned lengths to either
//! side of `max_payload_bytes`.

knitting::init_before_main!();

use knitting::{AnyRuntime, Buffer, Bytes, ErrorKind, Pool};
use serde::{Deserialize, Serialize};

/// A byte pattern that is not all one value.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

#[knitting::task]
fn reverse_vec(mut bytes: Vec<u8>) -> Vec<u8> {
    bytes.reverse();
    bytes
}

#[knitting::task]
fn reverse_boxed(bytes: Box<[u8]>, tag: u8) -> (u8, Box<[u8]>) {
    let mut bytes = bytes.into_vec();
    bytes.reverse();
    (tag, bytes.into_boxed_slice())
}

#[knitting::task]
fn reverse_bytes(mut bytes: Bytes) -> Result<Bytes, std::io::Error> {
    bytes.reverse();
    Ok(bytes)
}

/// Reads its input in place: the sum of the bytes, and whether they lay in
/// the worker's shared mapping (see `mapping_of`).
#[knitting::task]
fn sum_lent(bytes: &[u8], tag: u32) -> (u32, u64, String) {
    let sum = bytes.iter().map(|&b| u64::from(b)).sum();
    (tag, sum, mapping_of(bytes.as_ptr() as usize))
}

#[knitting::task]
fn scale(values: &[f64], by: f64) -> Buffer<f64> {
    values.iter().map(|v| v * by).collect()
}

#[knitting::task]
fn widen(values: Buffer<u16>) -> Buffer<u64> {
    values.iter().map(|&v| u64::from(v) << 20).collect()
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Packet {
    id: u32,
    body: Bytes,
    #[serde(with = "serde_bytes")]
    trailer: Vec<u8>,
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
enum Frame {
    Empty,
    Data(Bytes),
    Both { packet: Packet, extra: Buffer<f32> },
}

#[knitting::task]
fn echo_frame(frame: Frame) -> Frame {
    frame
}

/// The name of the mapping that holds `address` in this process, from
/// `/proc/self/maps` ("" when none names it).
fn mapping_of(address: usize) -> String {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let range = fields.next().unwrap_or("");
        let Some((start, end)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (
            usize::from_str_radix(start, 16),
            usize::from_str_radix(end, 16),
        ) else {
            continue;
        };
        if (start..end).contains(&address) {
            return fields.nth(4).unwrap_or("").to_owned();
        }
    }
    String::new()
}

/// One pool of each runtime (processes only on Linux).
fn pools(max_payload: usize) -> Vec<Pool<AnyRuntime>> {
    let mut pools: Vec<Pool<AnyRuntime>> = vec![Pool::builder()
        .threads(1)
        .build()
        .expect("thread pool")
        .into()];
    if cfg!(target_os = "linux") {
        pools.push(
            Pool::builder()
                .processes(1)
                .max_payload_bytes(max_payload)
                .build()
                .expect("process pool")
                .into(),
        );
    }
    pools
}

const SIZES: &[usize] = &[0, 1, 3, 7, 127, 128, 4095, 4097, 65_537, 1 << 20];

#[test]
fn byte_vectors_and_buffers_round_trip_at_every_size() {
    for pool in pools(2 << 20) {
        let runtime = pool.runtime();
        for &len in SIZES {
            let bytes = pattern(len);
            let mut reversed = bytes.clone();
            reversed.reverse();
            let got = pool.call(reverse_vec, bytes.clone()).wait().unwrap();
            assert_eq!(got, reversed, "Vec<u8> of {len} on {runtime:?}");
            let (tag, got) = pool
                .call(reverse_boxed, (bytes.clone().into_boxed_slice(), 9))
                .wait()
                .unwrap();
            assert_eq!((tag, &got[..]), (9, &reversed[..]), "Box<[u8]> of {len}");
            let got = pool
                .call(reverse_bytes, Bytes::from_slice(&bytes))
                .wait()
                .unwrap();
            assert_eq!(got, reversed, "Bytes of {len} on {runtime:?}");
            let (tag, sum, _) = pool
                .call(sum_lent, (Bytes::from(bytes.clone()), 5))
                .wait()
                .unwrap();
            let expected: u64 = bytes.iter().map(|&b| u64::from(b)).sum();
            assert_eq!((tag, sum), (5, expected), "&[u8] of {len} on {runtime:?}");
        }
    }
}

#[test]
fn numeric_buffers_cross_as_numbers_whatever_their_alignment() {
    for pool in pools(2 << 20) {
        for len in [0usize, 1, 3, 1000, 70_001] {
            let values: Vec<f64> = (0..len).map(|i| i as f64 * 0.5 - 3.0).collect();
            let expected: Vec<f64> = values.iter().map(|v| v * -2.0).collect();
            let got = pool
                .call(scale, (Buffer::from(values.clone()), -2.0))
                .wait()
                .unwrap();
            assert_eq!(got, expected, "&[f64] of {len} on {:?}", pool.runtime());
            let narrow: Vec<u16> = (0..len).map(|i| (i * 7) as u16).collect();
            let got = pool
                .call(widen, Buffer::from(narrow.clone()))
                .wait()
                .unwrap();
            let expected: Vec<u64> = narrow.iter().map(|&v| u64::from(v) << 20).collect();
            assert_eq!(got, expected, "Buffer<u16> of {len}");
        }
    }
}

#[test]
fn byte_fields_nested_in_structs_and_enums_round_trip() {
    let packet = Packet {
        id: 7,
        body: Bytes::from(pattern(5000)),
        trailer: pattern(3),
    };
    let frames = [
        Frame::Empty,
        Frame::Data(Bytes::new()),
        Frame::Data(Bytes::from(pattern(70_000))),
        Frame::Both {
            packet,
            extra: Buffer::from(vec![1.5f32, -0.25, 3.0]),
        },
    ];
    for pool in pools(1 << 20) {
        for frame in &frames {
            let got = pool.call(echo_frame, frame.clone()).wait().unwrap();
            assert_eq!(&got, frame, "on {:?}", pool.runtime());
        }
    }
}

#[cfg(target_os = "linux")]
#[test]
fn a_process_worker_reads_a_slice_parameter_where_it_lies_in_the_shared_mapping() {
    let pool = Pool::builder().processes(1).build().unwrap();
    for len in [1usize, 4096, 1 << 20] {
        let (_, _, mapping) = pool
            .call(sum_lent, (Bytes::from(pattern(len)), 1))
            .wait()
            .unwrap();
        // The lane's mapping is a memfd named for the crate.
        assert!(
            mapping.starts_with("/memfd:knitting"),
            "a {len}-byte slice was read from {mapping:?}, not the shared mapping"
        );
    }
    // An owned parameter is a copy in the worker's own memory.
    #[knitting::task]
    fn where_owned(bytes: Bytes) -> String {
        mapping_of(bytes.as_ptr() as usize)
    }
    let mapping = pool
        .call(where_owned, Bytes::from(pattern(4096)))
        .wait()
        .unwrap();
    assert!(!mapping.starts_with("/memfd:knitting"), "{mapping:?}");
}

#[cfg(target_os = "linux")]
#[test]
fn byte_payloads_either_side_of_the_limit() {
    let limit = 64 << 10;
    let pool = Pool::builder()
        .processes(1)
        .max_payload_bytes(limit)
        .build()
        .unwrap();
    // A byte string of n bytes is n plus a length prefix of 3 bytes here.
    let fits = limit - 3;
    let got = pool
        .call(reverse_bytes, Bytes::zeroed(fits))
        .wait()
        .unwrap();
    assert_eq!(got.len(), fits);
    let err = pool
        .call(reverse_bytes, Bytes::zeroed(fits + 1))
        .wait()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooLarge, "{err}");
    assert!(
        err.message().contains(&format!("{} bytes", limit + 1))
            && err.message().contains(&limit.to_string()),
        "{err}"
    );
    let err = pool
        .call(sum_lent, (Bytes::zeroed(limit), 0))
        .wait()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooLarge, "{err}");
    // The lane goes on.
    assert_eq!(
        pool.call(reverse_vec, vec![1, 2]).wait().unwrap(),
        vec![2, 1]
    );
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Upload {
    name: String,
    parts: u8,
}

/// Reads an envelope in place: its header, the body's sum, and where the
/// body lay.
#[knitting::task]
fn open_envelope(upload: &knitting::Envelope<Upload>) -> (String, u64, String) {
    let sum = upload.body.iter().map(|&b| u64::from(b)).sum();
    let at = mapping_of(upload.body.as_ptr() as usize);
    (upload.header.name.clone(), sum, at)
}

/// Takes an envelope by value and hands it back.
#[knitting::task]
fn echo_envelope(upload: knitting::Envelope<Upload, f32>) -> knitting::Envelope<Upload, f32> {
    upload
}

/// Reads a struct in place: where its byte field lay.
#[knitting::task]
fn where_packet(packet: &Packet, tag: u8) -> (u8, u32, String) {
    (tag, packet.id, mapping_of(packet.body.as_ptr() as usize))
}

#[test]
fn envelopes_round_trip_on_both_runtimes() {
    for pool in pools(2 << 20) {
        for len in [0usize, 1, 5000, 300_001] {
            let upload = knitting::Envelope::new(
                Upload {
                    name: format!("part-{len}"),
                    parts: 3,
                },
                pattern(len),
            );
            let expected: u64 = upload.body.iter().map(|&b| u64::from(b)).sum();
            let (name, sum, _) = pool.call(open_envelope, upload).wait().unwrap();
            assert_eq!(
                (name.as_str(), sum),
                (format!("part-{len}").as_str(), expected)
            );
            let floats = knitting::Envelope::new(
                Upload {
                    name: "f".into(),
                    parts: 1,
                },
                (0..len).map(|i| i as f32).collect::<Vec<_>>(),
            );
            let got = pool.call(echo_envelope, floats.clone()).wait().unwrap();
            assert_eq!(got, floats, "on {:?}", pool.runtime());
        }
    }
}

#[cfg(target_os = "linux")]
#[test]
fn a_parameter_taken_by_reference_has_its_buffers_read_in_place() {
    let pool = Pool::builder().processes(1).build().unwrap();
    let upload = knitting::Envelope::new(
        Upload {
            name: "x".into(),
            parts: 1,
        },
        pattern(64 << 10),
    );
    let (_, _, at) = pool.call(open_envelope, upload).wait().unwrap();
    assert!(
        at.starts_with("/memfd:knitting"),
        "the body was read from {at:?}"
    );
    let packet = Packet {
        id: 3,
        body: Bytes::from(pattern(10_000)),
        trailer: vec![1],
    };
    let (tag, id, at) = pool.call(where_packet, (packet, 8)).wait().unwrap();
    assert_eq!((tag, id), (8, 3));
    assert!(
        at.starts_with("/memfd:knitting"),
        "the field was read from {at:?}"
    );
}

/// Keeps a copy of the last `Sneaky` decoded, buffer and all.
static KEPT: std::sync::Mutex<Option<Bytes>> = std::sync::Mutex::new(None);

/// A type whose `Deserialize` keeps the buffer it read: in a worker that
/// lent it from the request, it would outlive the call.
#[derive(Serialize, Debug)]
struct Sneaky(Bytes);

impl<'de> Deserialize<'de> for Sneaky {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let bytes = Bytes::deserialize(deserializer)?;
        let len = bytes.len();
        *KEPT.lock().unwrap() = Some(bytes);
        Ok(Sneaky(Bytes::zeroed(len)))
    }
}

#[knitting::task]
fn sneaky_len(value: &Sneaky) -> usize {
    value.0.len()
}

#[cfg(target_os = "linux")]
#[test]
fn a_lent_buffer_kept_past_its_call_stops_the_worker_before_it_answers() {
    let pool = Pool::builder().processes(1).build().unwrap();
    let pid = pool.worker_pids()[0].expect("a running worker");
    let err = pool
        .call(sneaky_len, Sneaky(Bytes::from(pattern(100))))
        .wait()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WorkerDied, "{err}");
    assert!(err.message().contains(&pid.to_string()), "{err}");
    // The lane goes on with a new worker, and an honest call works.
    assert_eq!(
        pool.call(reverse_vec, vec![1, 2]).wait().unwrap(),
        vec![2, 1]
    );
    // On a thread pool nothing is lent: the same call works.
    let threads = Pool::builder().threads(1).build().unwrap();
    assert_eq!(
        threads
            .call(sneaky_len, Sneaky(Bytes::from(pattern(100))))
            .wait()
            .unwrap(),
        100
    );
}
