//! An [`Error`] as it crosses from a worker process to the host: its kind
//! as a stable code, its message, location, backtrace text and source
//! chain as text.

use super::{Error, ErrorKind, RemoteError, Trace};

impl Error {
    /// The error as it crosses from a worker process to the host.
    pub(crate) fn to_wire(&self) -> WireError {
        let mut chain = Vec::new();
        let mut next = self.inner.source.as_ref();
        while let Some(link) = next {
            chain.push(link.message.clone());
            next = link.source.as_deref();
        }
        WireError {
            kind: self.inner.kind.wire_code(),
            message: self.inner.message.clone(),
            location: self.inner.location.clone(),
            backtrace: self.backtrace().map(str::to_owned),
            chain,
        }
    }

    /// Rebuilds an error a worker process sent. Unknown kinds (a newer
    /// worker) arrive as [`ErrorKind::Protocol`].
    pub(crate) fn from_wire(wire: WireError) -> Self {
        let kind = ErrorKind::from_wire_code(wire.kind).unwrap_or(ErrorKind::Protocol);
        let mut err = Self::new(kind, wire.message);
        err.inner.location = wire.location;
        err.inner.backtrace = wire.backtrace.map(Trace::from_text);
        let mut source: Option<Box<RemoteError>> = None;
        for message in wire.chain.into_iter().rev() {
            source = Some(Box::new(RemoteError { message, source }));
        }
        err.inner.source = source.map(|b| *b);
        err
    }
}

impl ErrorKind {
    /// Wire codes: the index in this list. Append only.
    const WIRE: [ErrorKind; 19] = [
        ErrorKind::Task,
        ErrorKind::Panic,
        ErrorKind::Closed,
        ErrorKind::Cancelled,
        ErrorKind::Timeout,
        ErrorKind::DuplicateTask,
        ErrorKind::Build,
        ErrorKind::TooLarge,
        ErrorKind::Codec,
        ErrorKind::UnknownTask,
        ErrorKind::WorkerDied,
        ErrorKind::Protocol,
        ErrorKind::Startup,
        ErrorKind::Unsupported,
        ErrorKind::HardTimeout,
        ErrorKind::TypeMismatch,
        ErrorKind::OutOfBounds,
        ErrorKind::Unavailable,
        ErrorKind::Disconnected,
    ];

    fn wire_code(self) -> u8 {
        Self::WIRE.iter().position(|k| *k == self).unwrap_or(0) as u8
    }

    fn from_wire_code(code: u8) -> Option<Self> {
        Self::WIRE.get(usize::from(code)).copied()
    }
}

/// An [`Error`] as a worker process encodes it for the host.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct WireError {
    kind: u8,
    message: String,
    location: Option<String>,
    backtrace: Option<String>,
    /// The source chain's messages, outermost first.
    chain: Vec<String>,
}
