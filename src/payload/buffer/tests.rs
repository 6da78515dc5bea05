//! Buffers: recycling, conversions, serde, and lending a request's bytes.

use std::marker::PhantomData;

use super::{recycle, Buffer, Bytes};
use crate::payload::{
    codec,
    wire::{self, ByteVec, Lent, Plain},
};

#[test]
#[cfg_attr(miri, ignore = "touches 80 MiB: too slow for Miri")]
fn a_dropped_large_buffer_is_reused_by_the_next_of_its_size() {
    // A size class no other test uses, so the store's state is ours.
    let len = (3 << 20) + 17;
    let first = Buffer::<u32>::zeroed(len);
    let at = first.as_ptr();
    let capacity = first.capacity();
    assert_eq!(capacity, 4 << 20, "rounded up to the class (16 MiB)");
    drop(first);
    let second = Buffer::<u32>::with_capacity(len);
    assert_eq!(second.as_ptr(), at, "the same memory came back");
    assert_eq!(second.capacity(), capacity);
    assert!(second.is_empty());
    // Small buffers are not kept.
    let kept = recycle::kept();
    drop(Bytes::from_slice(&[1, 2, 3]));
    assert_eq!(recycle::kept(), kept);
    // (In the same test: filling the store would free the block above.)
    let buffers: Vec<Bytes> = (0..3).map(|_| Bytes::zeroed(recycle::KEPT / 2)).collect();
    drop(buffers);
    assert!(recycle::kept() <= recycle::KEPT);
}

#[test]
fn a_buffer_behaves_like_a_vector() {
    let mut values: Buffer<f64> = (0..5).map(f64::from).collect();
    values.push(5.0);
    values.extend_from_slice(&[6.0, 7.0]);
    values[0] = -1.0;
    assert_eq!(values.len(), 8);
    assert_eq!(values, vec![-1.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]);
    values.truncate(2);
    assert_eq!(values.clone().into_vec(), vec![-1.0, 1.0]);
    values.clear();
    assert!(values.is_empty());
    let grown: Bytes = (0..10_000u32).map(|i| i as u8).collect();
    assert_eq!(grown.len(), 10_000);
    assert_eq!(grown[9_999], (9_999 % 256) as u8);
    assert_eq!(format!("{:?}", Bytes::from([1, 2])), "[1, 2]");
    assert!(format!("{:?}", Bytes::zeroed(40)).ends_with("… 8 more]"));
}

#[test]
fn bytes_read_as_elements_need_no_alignment_but_a_whole_number() {
    let raw: Vec<u8> = (0..17).collect();
    let values = Buffer::<u32>::from_bytes(&raw[1..]).unwrap();
    assert_eq!(values[0], u32::from_ne_bytes([1, 2, 3, 4]));
    assert_eq!(values.as_ptr() as usize % 4, 0);
    assert!(Buffer::<u32>::from_bytes(&raw[..3]).is_none());
    assert_eq!(Buffer::<u32>::from_bytes(&[]).unwrap().len(), 0);
}

#[test]
fn a_buffer_is_one_byte_string_in_postcard() {
    let values = Buffer::from_slice(&[1.5f64, -2.0]);
    let bytes = codec::encode_vec(&values).unwrap();
    let mut expected = vec![16u8];
    expected.extend_from_slice(values.as_bytes());
    assert_eq!(bytes, expected);
    let back: Buffer<f64> = codec::decode(&bytes).unwrap();
    assert_eq!(back, values);
    let ragged = codec::decode::<Buffer<f64>>(&[3, 1, 2, 3]).unwrap_err();
    assert!(
        matches!(ragged, postcard::Error::SerdeDeCustom),
        "{ragged:?}"
    );
}

#[test]
fn byte_vectors_through_their_adapter_are_plain_postcard_bytes() {
    for len in [0usize, 1, 127, 128, if cfg!(miri) { 300 } else { 70_000 }] {
        let vec: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
        let fast = codec::encode_wire_vec::<ByteVec, Vec<u8>>(&vec).unwrap();
        assert_eq!(fast, codec::encode_vec(&vec).unwrap(), "len {len}");
        assert_eq!(codec::decode_wire::<ByteVec, Vec<u8>>(&fast).unwrap(), vec);
        let boxed = vec.clone().into_boxed_slice();
        let fast = codec::encode_wire_vec::<ByteVec, Box<[u8]>>(&boxed).unwrap();
        assert_eq!(fast, codec::encode_vec(&boxed).unwrap());
    }
    // A tuple of adapters writes what the plain tuple writes.
    let args = (7u32, vec![1u8, 2, 3], String::from("knit"));
    let fast =
        codec::encode_wire_vec::<(Plain, ByteVec, Plain), (u32, Vec<u8>, String)>(&args).unwrap();
    assert_eq!(fast, codec::encode_vec(&args).unwrap());
    let back =
        codec::decode_wire::<(Plain, ByteVec, Plain), (u32, Vec<u8>, String)>(&fast).unwrap();
    assert_eq!(back, args);
    // Trailing bytes are refused, as by the plain decoder.
    let mut long = fast.clone();
    long.push(0);
    assert!(codec::decode_wire::<(Plain, ByteVec, Plain), (u32, Vec<u8>, String)>(&long).is_err());
}

/// Decodes a `(u8, Buffer<T>)` through `Lent`, lending `input` or not.
fn decode_lent<T: bytemuck::Pod>(input: &[u8], lend: bool) -> (u8, Buffer<T>) {
    let decode = || codec::decode_wire::<(Plain, Lent), (u8, Buffer<T>)>(input).unwrap();
    if lend {
        // SAFETY: the result is dropped by the caller before `input` goes
        // (both live in the caller's frame, the result declared later).
        unsafe { wire::lending(input, decode) }.0
    } else {
        decode()
    }
}

#[test]
fn a_slice_parameter_is_lent_from_the_request_only_while_it_is_decoded() {
    let values = Buffer::from_slice(&[1u8, 2, 3, 4]);
    let input = codec::encode_vec(&(9u8, values.clone())).unwrap();
    let (tag, lent) = decode_lent::<u8>(&input, true);
    assert_eq!(tag, 9);
    assert!(lent.is_lent());
    assert_eq!(lent, values);
    let range = input.as_ptr_range();
    assert!(
        range.contains(&lent.as_ptr()),
        "it views the request itself"
    );
    // A write copies it out first.
    let mut written = lent.clone();
    written.push(5);
    assert!(!written.is_lent());
    let mut lent = lent;
    lent[0] = 0;
    assert!(!lent.is_lent());
    assert_eq!(&input[2..6], &[1, 2, 3, 4], "the request is untouched");
    // Outside `lending`, the same bytes are copied.
    let (_, copied) = decode_lent::<u8>(&input, false);
    assert!(!copied.is_lent());
    assert_eq!(copied, values);
}

#[test]
fn a_slice_that_is_not_aligned_for_its_elements_is_copied() {
    let values = Buffer::from_slice(&[1.0f64, 2.0]);
    // (u8, bytes): the elements start 2 bytes in; make the request start at
    // an offset that leaves them unaligned for f64, then at one that aligns
    // them.
    let encoded = codec::encode_vec(&(1u8, values.clone())).unwrap();
    let mut room = vec![0u64; 8];
    let raw = bytemuck::cast_slice_mut::<u64, u8>(&mut room);
    for shift in [0usize, 6] {
        raw[shift..shift + encoded.len()].copy_from_slice(&encoded);
        let input = &raw[shift..shift + encoded.len()];
        let (_, got) = decode_lent::<f64>(input, true);
        assert_eq!(got, values);
        assert_eq!(got.as_ptr() as usize % 8, 0, "never an unaligned slice");
        assert_eq!(got.is_lent(), shift == 6, "shift {shift}");
    }
    let _ = PhantomData::<()>;
}

#[test]
fn a_small_recycled_buffer_comes_back_whole() {
    // 4 KiB of `u128`: the smallest class kept, in an alignment no other
    // test uses.
    let first = Buffer::<u128>::from_slice(&[7; 256]);
    let at = first.as_ptr();
    drop(first);
    let mut second = Buffer::<u128>::with_capacity(256);
    assert_eq!(second.as_ptr(), at);
    assert_eq!(second.capacity(), 256);
    second.extend_from_slice(&[1; 256]);
    second.push(2);
    assert_eq!(second.len(), 257);
    assert_eq!(second[256], 2);
}
