//! Diagnostics across the process boundary: a process worker's `tracing`
//! events, forwarded to its host: the worker
//! sends each event as one message on its descriptor socket (the one that
//! brings it shared buffers; see `runtime/process/courier.rs`), and the
//! host's reactor emits it again, as its own event with the worker's lane
//! and pid.
//!
//! # Messages
//!
//! `MAGIC`, the level (0 = trace … 4 = error), the event's target's
//! length (`u16`, little-endian) and bytes, then its text (the message and
//! its fields, `key=value`), at most `MESSAGE_BYTES` in all. The host
//! trusts nothing in it: it reads at most `PER_ROUND` messages a round,
//! ignores anything that does not parse, and reads text lossily.

use std::{
    fmt::Write as _,
    os::fd::{AsFd, OwnedFd},
    sync::atomic::{AtomicU64, Ordering},
};

use tracing::{
    field::{Field, Visit},
    span, Event, Level, Metadata, Subscriber,
};

const MAGIC: &[u8] = b"knitting-diag\0";
/// The largest message; longer text is cut.
const MESSAGE_BYTES: usize = 4096;
/// At most this many messages are read per reactor round.
const PER_ROUND: usize = 64;

/// The subscriber a process worker installs while diagnostics are on.
struct Forwarder {
    socket: OwnedFd,
    next_span: AtomicU64,
}

/// Installs the forwarder on `socket` (a duplicate of the worker's
/// descriptor socket), unless this process already has a subscriber (a
/// bootstrap installed one).
pub(crate) fn install(socket: &impl AsFd) {
    if tracing::dispatcher::has_been_set() {
        return;
    }
    let Ok(socket) = socket.as_fd().try_clone_to_owned() else {
        return;
    };
    let _ = tracing::subscriber::set_global_default(Forwarder {
        socket,
        next_span: AtomicU64::new(1),
    });
}

fn level_byte(level: &Level) -> u8 {
    match *level {
        Level::TRACE => 0,
        Level::DEBUG => 1,
        Level::INFO => 2,
        Level::WARN => 3,
        Level::ERROR => 4,
    }
}

/// An event's message and fields as one line of text.
struct Text(String);

impl Visit for Text {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if !self.0.is_empty() {
            self.0.push(' ');
        }
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, "{}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            if !self.0.is_empty() {
                self.0.push(' ');
            }
            self.0.push_str(value);
        } else {
            self.record_debug(field, &value);
        }
    }
}

impl Subscriber for Forwarder {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        // Relaxed: only unique ids are needed; spans are not forwarded.
        span::Id::from_u64(self.next_span.fetch_add(1, Ordering::Relaxed))
    }

    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}

    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}

    fn event(&self, event: &Event<'_>) {
        let meta = event.metadata();
        let mut text = Text(String::new());
        event.record(&mut text);
        let target = meta.target().as_bytes();
        let target = &target[..target.len().min(256)];
        let mut message = Vec::with_capacity(MAGIC.len() + 3 + target.len() + text.0.len());
        message.extend_from_slice(MAGIC);
        message.push(level_byte(meta.level()));
        message.extend_from_slice(&(target.len() as u16).to_le_bytes());
        message.extend_from_slice(target);
        message.extend_from_slice(text.0.as_bytes());
        message.truncate(MESSAGE_BYTES);
        // Never waits: an event that does not fit in the socket is lost.
        let _ = rustix::net::send(
            &self.socket,
            &message,
            rustix::net::SendFlags::DONTWAIT | rustix::net::SendFlags::NOSIGNAL,
        );
    }

    fn enter(&self, _: &span::Id) {}

    fn exit(&self, _: &span::Id) {}
}

/// One forwarded event, as the host read it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Forwarded {
    pub(crate) level: u8,
    pub(crate) target: String,
    pub(crate) text: String,
}

/// Reads one message; `None` for anything that is not one of ours.
pub(crate) fn parse(message: &[u8]) -> Option<Forwarded> {
    let rest = message.strip_prefix(MAGIC)?;
    let (&level, rest) = rest.split_first()?;
    let (len, rest) = rest.split_first_chunk::<2>()?;
    let len = usize::from(u16::from_le_bytes(*len));
    let target = rest.get(..len)?;
    let text = rest.get(len..)?;
    Some(Forwarded {
        level: level.min(4),
        target: String::from_utf8_lossy(target).into_owned(),
        text: String::from_utf8_lossy(text).into_owned(),
    })
}

/// Emits the events worker `pid` of lane `lane` sent on `socket` since
/// the last round (at most [`PER_ROUND`]), without waiting.
pub(crate) fn drain(socket: &impl AsFd, lane: usize, pid: u32) {
    let mut buf = [0u8; MESSAGE_BYTES];
    for _ in 0..PER_ROUND {
        let Ok((n, _)) = rustix::net::recv(socket, &mut buf, rustix::net::RecvFlags::DONTWAIT)
        else {
            return;
        };
        if n == 0 {
            return;
        }
        let Some(event) = parse(&buf[..n.min(buf.len())]) else {
            continue;
        };
        let (target, text) = (&event.target, &event.text);
        match event.level {
            0 => {
                tracing::trace!(target: "knitting::worker", lane, pid, event_target = %target, "{text}")
            }
            1 => {
                tracing::debug!(target: "knitting::worker", lane, pid, event_target = %target, "{text}")
            }
            2 => {
                tracing::info!(target: "knitting::worker", lane, pid, event_target = %target, "{text}")
            }
            3 => {
                tracing::warn!(target: "knitting::worker", lane, pid, event_target = %target, "{text}")
            }
            _ => {
                tracing::error!(target: "knitting::worker", lane, pid, event_target = %target, "{text}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_reads_back_and_garbage_does_not() {
        let mut m = MAGIC.to_vec();
        m.push(3);
        m.extend_from_slice(&4u16.to_le_bytes());
        m.extend_from_slice(b"taskhello x=1");
        assert_eq!(
            parse(&m),
            Some(Forwarded {
                level: 3,
                target: "task".into(),
                text: "hello x=1".into()
            })
        );
        // A target length past the end, a short message, another sender.
        let mut long = MAGIC.to_vec();
        long.extend_from_slice(&[2, 0xff, 0xff, b'a']);
        assert_eq!(parse(&long), None);
        assert_eq!(parse(&MAGIC[..5]), None);
        assert_eq!(parse(b"hello"), None);
        let mut high = m.clone();
        high[MAGIC.len()] = 200;
        assert_eq!(parse(&high).unwrap().level, 4);
    }
}
