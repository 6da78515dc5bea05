//! What travels on NATS: the subjects, the headers and what each message
//! means. Both sides read them from here.
//!
//! - A call of task `id` is published to `<prefix>.call.<id>` (the id in
//!   16 hex digits), where every node that serves the task listens in one
//!   queue group, so each call reaches one node. Its payload is the encoded
//!   arguments; its headers carry the protocol version, the type
//!   fingerprint, a call id the client chose and, when the call has one,
//!   the time left before its deadline. Its reply subject is an inbox of
//!   the client's, for this call alone.
//! - The node that takes it answers on that inbox: `accepted` (with the
//!   node's id) before it runs the call, `alive` while it runs, then one
//!   `ok` (the encoded output) or `error` (the encoded error).
//! - The client tells that node about the call on `<prefix>.control.<node>`:
//!   `abort` (raise the task's signal), `cancel` (end the call), or a new
//!   deadline.

use std::time::Duration;

use async_nats::HeaderMap;

/// The protocol version both sides speak.
pub(crate) const VERSION: &str = "1";

pub(crate) const H_VERSION: &str = "Knitting-Version";
/// The call's type fingerprint, 16 hex digits.
pub(crate) const H_SHAPE: &str = "Knitting-Shape";
/// The client's id for the call (unique per client).
pub(crate) const H_CALL: &str = "Knitting-Call";
/// Milliseconds left before the call's deadline.
pub(crate) const H_DEADLINE: &str = "Knitting-Deadline-Ms";
/// What a message from the node says: one of the `S_` values.
pub(crate) const H_STATUS: &str = "Knitting-Status";
/// The id of the node that took the call.
pub(crate) const H_NODE: &str = "Knitting-Node";
/// What a control message asks: one of the `C_` values.
pub(crate) const H_CONTROL: &str = "Knitting-Control";

pub(crate) const S_ACCEPTED: &str = "accepted";
pub(crate) const S_ALIVE: &str = "alive";
pub(crate) const S_OK: &str = "ok";
pub(crate) const S_ERROR: &str = "error";

pub(crate) const C_ABORT: &str = "abort";
pub(crate) const C_CANCEL: &str = "cancel";
pub(crate) const C_DEADLINE: &str = "deadline";

/// The subject of calls of task `id`.
pub(crate) fn call_subject(prefix: &str, id: knitting::TaskId) -> String {
    format!("{prefix}.call.{:016x}", id.as_u64())
}

/// The subject of control messages for node `node`.
pub(crate) fn control_subject(prefix: &str, node: &str) -> String {
    format!("{prefix}.control.{node}")
}

/// The task id in a call subject.
pub(crate) fn task_of(subject: &str) -> Option<knitting::TaskId> {
    let hex = subject.rsplit('.').next()?;
    let id = u64::from_str_radix(hex, 16).ok()?;
    Some(knitting::TaskId::from_u64(id))
}

/// A header's value.
pub(crate) fn header<'h>(headers: Option<&'h HeaderMap>, name: &str) -> Option<&'h str> {
    headers?.get(name).map(|value| value.as_str())
}

/// A hex header's value.
pub(crate) fn hex_header(headers: Option<&HeaderMap>, name: &str) -> Option<u64> {
    u64::from_str_radix(header(headers, name)?, 16).ok()
}

/// A deadline as the header carries it: milliseconds left, rounded up.
pub(crate) fn deadline_value(left: Duration) -> String {
    left.as_nanos().div_ceil(1_000_000).to_string()
}

/// A deadline header's value as the time left.
pub(crate) fn deadline_of(headers: Option<&HeaderMap>) -> Option<Duration> {
    header(headers, H_DEADLINE)?
        .parse()
        .ok()
        .map(Duration::from_millis)
}

/// Checks that a prefix is one or more NATS subject tokens.
pub(crate) fn valid_prefix(prefix: &str) -> bool {
    !prefix.is_empty()
        && prefix.split('.').all(|token| {
            !token.is_empty()
                && token
                    .chars()
                    .all(|c| !c.is_whitespace() && c != '*' && c != '>')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_subject_names_its_task() {
        let id = knitting::TaskId::of("app::resize");
        let subject = call_subject("app", id);
        assert_eq!(subject, format!("app.call.{:016x}", id.as_u64()));
        assert_eq!(task_of(&subject), Some(id));
        assert_eq!(task_of("app.call.zz"), None);
    }

    #[test]
    fn a_deadline_rounds_up_to_whole_milliseconds() {
        assert_eq!(deadline_value(Duration::from_micros(1_001)), "2");
        assert_eq!(deadline_value(Duration::ZERO), "0");
        let mut headers = HeaderMap::new();
        headers.insert(H_DEADLINE, "250");
        assert_eq!(
            deadline_of(Some(&headers)),
            Some(Duration::from_millis(250))
        );
        headers.insert(H_DEADLINE, "soon");
        assert_eq!(deadline_of(Some(&headers)), None);
    }

    #[test]
    fn a_prefix_is_subject_tokens_without_wildcards() {
        assert!(valid_prefix("knitting"));
        assert!(valid_prefix("billing.prod"));
        for bad in ["", "a..b", "a.*", "a.>", "has space", ".a"] {
            assert!(!valid_prefix(bad), "{bad:?}");
        }
    }
}
