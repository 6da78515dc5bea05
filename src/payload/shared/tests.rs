//! The arithmetic of `SharedBuffer`: ranges, slices that compose, views
//! and their alignment, and the word-wise copies at every misalignment.

use std::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, AtomicU8, Ordering};

use super::*;
use crate::ErrorKind;

#[test]
fn ranges_are_checked_without_overflow() {
    assert_eq!(check_range(10, 16, 0, 16, "a read"), Ok(10));
    assert_eq!(check_range(10, 16, 16, 0, "a read"), Ok(26));
    assert_eq!(check_range(10, 16, 3, 5, "a read"), Ok(13));
    let err = check_range(10, 16, 9, 8, "a write").unwrap_err();
    assert_eq!(
        err,
        "a write of 8 bytes at offset 9 does not fit a shared buffer of 16 bytes"
    );
    assert!(check_range(0, 16, 17, 0, "a slice").is_err());
    assert!(check_range(0, 16, usize::MAX, 1, "a slice").is_err());
    assert!(check_range(0, 16, 1, usize::MAX, "a slice").is_err());
}

#[test]
fn views_need_an_aligned_start_and_a_whole_number_of_atomics() {
    assert_eq!(check_view(0, 64, 8, 8), Ok(()));
    assert_eq!(check_view(8, 0, 8, 8), Ok(()));
    assert_eq!(check_view(3, 5, 1, 1), Ok(()));
    let err = check_view(4, 8, 8, 8).unwrap_err();
    assert!(
        err.contains("offset 4") && err.contains("multiple of 8"),
        "{err}"
    );
    let err = check_view(8, 12, 8, 8).unwrap_err();
    assert!(
        err.contains("12 bytes") && err.contains("not a multiple of 8"),
        "{err}"
    );
}

#[test]
#[cfg_attr(miri, ignore = "memfd and mmap")]
fn slices_compose_and_share_the_memory() {
    let whole = SharedBuffer::new(64).unwrap();
    let middle = whole.slice(16, 32).unwrap();
    let inner = middle.slice(8, 8).unwrap();
    assert_eq!((inner.offset, inner.len()), (24, 8));
    inner.write(0, &[1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
    assert_eq!(&whole.to_vec()[24..32], &[1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(
        middle.view::<AtomicU64>().unwrap()[1].load(Ordering::Relaxed),
        u64::from_ne_bytes([1, 2, 3, 4, 5, 6, 7, 8])
    );
    let err = middle.slice(8, 25).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OutOfBounds);
    assert!(err.message().contains("at offset 8"), "{}", err.message());
    assert!(err.message().contains("of 32 bytes"), "{}", err.message());
    let empty = whole.slice(64, 0).unwrap();
    assert!(empty.is_empty());
    assert!(empty.view::<AtomicU64>().unwrap().is_empty());
}

#[test]
#[cfg_attr(miri, ignore = "memfd and mmap")]
fn views_check_alignment_against_the_offset_in_the_memory() {
    let whole = SharedBuffer::new(64).unwrap();
    let odd = whole.slice(2, 12).unwrap();
    assert_eq!(odd.view::<AtomicU16>().unwrap().len(), 6);
    let err = odd.view::<AtomicU32>().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OutOfBounds);
    assert!(err.message().contains("offset 2"), "{}", err.message());
    let err = whole.slice(8, 12).unwrap().view::<AtomicU64>().unwrap_err();
    assert!(err.message().contains("12 bytes"), "{}", err.message());
    assert_eq!(whole.view::<AtomicU8>().unwrap().len(), 64);
}

#[test]
#[cfg_attr(miri, ignore = "memfd and mmap")]
fn copies_round_trip_at_every_offset_and_length() {
    let whole = SharedBuffer::new(80).unwrap();
    for offset in 0..17 {
        for len in 0..40 {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 7 + offset + 1) as u8).collect();
            whole.write(0, &[0; 80]).unwrap();
            whole.write(offset, &bytes).unwrap();
            let mut back = vec![0; len];
            whole.read(offset, &mut back).unwrap();
            assert_eq!(back, bytes, "offset {offset}, len {len}");
            let all = whole.to_vec();
            assert!(all[..offset].iter().all(|&b| b == 0));
            assert!(all[offset + len..].iter().all(|&b| b == 0));
            assert_eq!(whole.slice(offset, len).unwrap().to_vec(), bytes);
        }
    }
    let err = whole.write(79, &[1, 2]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OutOfBounds);
    let mut out = [9u8; 2];
    assert!(whole.read(79, &mut out).is_err());
    assert_eq!(out, [9, 9], "left alone");
}

#[test]
#[cfg_attr(miri, ignore = "memfd and mmap")]
fn a_new_buffer_is_zeroed_and_an_empty_one_works() {
    let shared = SharedBuffer::new(10_000).unwrap();
    assert!(shared.to_vec().iter().all(|&b| b == 0));
    let empty = SharedBuffer::new(0).unwrap();
    assert!(empty.is_empty());
    assert!(empty.to_vec().is_empty());
    assert!(empty.view::<AtomicU32>().unwrap().is_empty());
    assert!(empty.write(0, &[]).is_ok());
    assert!(empty.write(0, &[1]).is_err());
}

#[test]
#[cfg_attr(miri, ignore = "memfd and mmap")]
fn outside_a_process_call_serializing_a_buffer_is_an_error() {
    let shared = SharedBuffer::new(8).unwrap();
    assert!(postcard::to_stdvec(&shared).is_err());
    let bytes = postcard::to_stdvec(&(1u64, 0u64, 8u64, 8u64)).unwrap();
    assert!(postcard::from_bytes::<SharedBuffer>(&bytes).is_err());
}

#[test]
fn word_copies_round_trip_over_atomics_at_every_alignment() {
    // Plain heap atomics, so that Miri checks the word splitting too.
    let atoms: Vec<AtomicU8> = (0..48).map(|_| AtomicU8::new(0)).collect();
    for start in 0..9 {
        for len in 0..32 {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 13 + start + 1) as u8).collect();
            let range = &atoms[start..start + len];
            copy::write(range, &bytes);
            let mut back = vec![0; len];
            copy::read(range, &mut back);
            assert_eq!(back, bytes, "start {start}, len {len}");
        }
    }
}
