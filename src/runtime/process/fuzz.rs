//! The host's reading of worker-written state, as fuzz targets: each entry
//! takes arbitrary bytes as what a hostile worker wrote, runs the host's
//! own code over them in this process (the response ring on heap storage,
//! the stream area in a buffer), and checks what the host accepted with an
//! oracle written apart from that code. A panic is a finding: the host
//! read out of bounds, accepted what it must refuse, or looped.
//!
//! `cargo test` runs them under `proptest` (below); `fuzz/` holds the
//! `cargo fuzz` targets, built with the `fuzzing` feature, which makes
//! this module public as `knitting::__fuzz`.

use std::sync::atomic::Ordering;

use super::{
    channel::{Consumer, HeapResponses, Response, Slot as _, Storage as _},
    stream::{check_head, parse, Frame, FRAME},
};
use crate::payload::Window;

/// Reads a little-endian `u64` from `data` at word `i` (zero past the end).
fn word(data: &[u8], i: usize) -> u64 {
    let mut bytes = [0u8; 8];
    for (k, b) in bytes.iter_mut().enumerate() {
        *b = data.get(i * 8 + k).copied().unwrap_or(0);
    }
    u64::from_le_bytes(bytes)
}

/// A response ring of 4 slots that a worker wrote as `data` says, after
/// the host sent some requests and took some responses: every answer the
/// host's check lets through names a request in flight, in order, with a
/// known status and a payload inside the arena and under the limit, and
/// no two payloads overlap.
pub fn responses(data: &[u8]) {
    const SLOTS: usize = 4;
    const ARENA: usize = 4096;
    const MAX: usize = 1024;
    let ring = HeapResponses::new(SLOTS);
    let taken = word(data, 0) % 64;
    let sent = taken + word(data, 1) % (SLOTS as u64 + 1);
    let mut host = Consumer::new();
    for _ in 0..taken {
        host.advance();
    }
    for i in 0..SLOTS {
        let slot = ring.slot(i);
        let at = 3 + i * 4;
        slot.store(&Response {
            status: word(data, at + 1) % 4,
            offset: word(data, at + 2) % (2 * ARENA as u64),
            len: word(data, at + 3) % (2 * MAX as u64),
        });
        // Mostly the seq word the host expects in this slot (the message
        // in flight that lives there), sometimes anything.
        let message = taken + (i as u64 + SLOTS as u64 - taken % SLOTS as u64) % SLOTS as u64;
        let seq = word(data, at);
        slot.seq().store(
            if seq.is_multiple_of(4) {
                seq
            } else {
                message + 1
            },
            Ordering::Release,
        );
    }
    let head = word(data, 2);
    ring.head().store(
        if head.is_multiple_of(4) { head } else { sent },
        Ordering::Release,
    );
    let mut answers = Vec::new();
    let Ok(n) = host.take_checked(&ring, sent, MAX, ARENA, &mut answers) else {
        return;
    };
    assert_eq!(n, answers.len());
    let mut spans: Vec<(u64, u64)> = Vec::new();
    for (i, a) in answers.iter().enumerate() {
        assert_eq!(
            a.seq,
            taken + i as u64,
            "answers in order from the first in flight"
        );
        assert!(a.seq < sent, "an answer for a request never sent");
        assert!(matches!(a.status, 1 | 2), "an unknown status");
        assert!(a.len <= MAX as u64, "a payload over the limit");
        let end = a.offset.checked_add(a.len).expect("no overflow");
        assert!(end <= ARENA as u64, "a payload outside the arena");
        spans.push((a.offset, end));
    }
    for (i, x) in spans.iter().enumerate() {
        for y in &spans[i + 1..] {
            let overlap = x.0 < y.1 && y.0 < x.1 && x.1 > x.0 && y.1 > y.0;
            assert!(!overlap, "two payloads overlap: {x:?} and {y:?}");
        }
    }
}

/// A stream area of 512 bytes that a worker wrote as `data` says, with a
/// head it published: the host reads frames from its own position until
/// the head or a refusal; each item it accepts lies inside the area,
/// inside what was published, under the limit, and after the one before;
/// and it always gets to the end.
pub fn stream_frames(data: &[u8]) {
    const SIZE: usize = 512;
    const MAX: usize = 200;
    // Frames as a worker might write them, honest or not: an item header
    // (a length that mostly fits), a wrap, or a stray word.
    let mut area = vec![0u8; SIZE];
    let mut pos = 0;
    for chunk in data.get(16..).unwrap_or_default().chunks(3) {
        let [kind, a, b] = [0, 1, 2].map(|k| chunk.get(k).copied().unwrap_or(0));
        if pos + FRAME as usize > SIZE {
            break;
        }
        let (seq, len) = match kind {
            0..=199 => (u64::from(b), u64::from(a % 48)),
            200..=229 => (u64::MAX, 0),
            _ => (
                u64::from(a) << 56 | u64::from(b),
                u64::from(a) << 40 | u64::from(b),
            ),
        };
        area[pos..pos + 8].copy_from_slice(&seq.to_le_bytes());
        area[pos + 8..pos + 16].copy_from_slice(&len.to_le_bytes());
        pos += FRAME as usize + (len.min(64) as usize).div_ceil(8) * 8;
    }
    // The host starts at a frame boundary of some lap.
    let tail = (word(data, 0) % 4096) / 8 * 8;
    let head = tail.wrapping_add(word(data, 1) % (2 * SIZE as u64));
    let window = Window::of(&mut area);
    if check_head(tail, head, SIZE as u64).is_err() {
        assert!(
            head < tail || head - tail > SIZE as u64,
            "a good head refused"
        );
        return;
    }
    let mut at = tail;
    let mut steps = 0;
    while at < head {
        steps += 1;
        assert!(steps <= SIZE, "the host does not get to the head");
        match parse(&window, at, head, MAX) {
            Err(_) => return,
            Ok(Frame::Skip(n)) => {
                assert!(n > 0, "a skip of nothing");
                assert_eq!((at + n) % SIZE as u64, 0, "a skip that ends mid-lap");
                at += n;
            }
            Ok(Frame::Item {
                offset, len, need, ..
            }) => {
                assert_eq!(
                    offset,
                    at % SIZE as u64 + FRAME,
                    "the item right after its header"
                );
                assert!(offset + len <= SIZE as u64, "an item outside the area");
                assert!(at + need <= head, "an item past the head");
                assert!(
                    need >= FRAME + len && need.is_multiple_of(8),
                    "a frame of the wrong size"
                );
                assert!(len <= MAX as u64, "an item over the limit");
                at += need;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

        #[test]
        fn fuzz_responses(data in proptest::collection::vec(any::<u8>(), 0..160)) {
            super::responses(&data);
        }

        #[test]
        fn fuzz_stream_frames(data in proptest::collection::vec(any::<u8>(), 0..600)) {
            super::stream_frames(&data);
        }
    }

    /// Honest frames read back as they were written: two items, then a
    /// skip to the next lap.
    #[test]
    fn honest_frames_read_back() {
        use super::{parse, Frame, Window};
        let mut area = vec![0u8; 512];
        for (i, (seq, len)) in [(3u64, 8u64), (4, 5)].into_iter().enumerate() {
            let at = i * 24;
            area[at..at + 8].copy_from_slice(&seq.to_le_bytes());
            area[at + 8..at + 16].copy_from_slice(&len.to_le_bytes());
        }
        area[48..56].copy_from_slice(&u64::MAX.to_le_bytes());
        let window = Window::of(&mut area);
        let first = parse(&window, 512, 512 + 512, 64).unwrap();
        assert_eq!(
            first,
            Frame::Item {
                seq: 3,
                offset: 16,
                len: 8,
                need: 24
            }
        );
        let second = parse(&window, 512 + 24, 512 + 512, 64).unwrap();
        assert_eq!(
            second,
            Frame::Item {
                seq: 4,
                offset: 40,
                len: 5,
                need: 24
            }
        );
        assert_eq!(
            parse(&window, 512 + 48, 512 + 512, 64).unwrap(),
            Frame::Skip(512 - 48)
        );
        // An item longer than what was published is refused.
        assert!(parse(&window, 512, 512 + 20, 64).is_err());
    }
}
