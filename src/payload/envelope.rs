//! [`Envelope`]: a small header and a large body, in one payload.

use bytemuck::Pod;
use serde::{Deserialize, Serialize};

use super::Buffer;

/// A small serde header and a body of plain numbers (bytes by default), in
/// one payload: the header is encoded with serde, the body crosses as its
/// raw bytes, right after it in the same allocation of the shared mapping.
///
/// A task that takes `&Envelope<H>` reads the body where it lies in a
/// process worker's shared mapping (no copy out), as a slice parameter
/// does; the caller passes the envelope itself.
///
/// ```
/// use knitting::{Bytes, Envelope};
///
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Upload {
///     name: String,
///     checksum: bool,
/// }
///
/// #[knitting::task]
/// fn store(upload: &Envelope<Upload>) -> String {
///     let sum: u32 = upload.body.iter().map(|&b| u32::from(b)).sum();
///     match upload.header.checksum {
///         true => format!("{}: {} bytes, sum {sum}", upload.header.name, upload.body.len()),
///         false => format!("{}: {} bytes", upload.header.name, upload.body.len()),
///     }
/// }
///
/// # fn main() -> Result<(), knitting::Error> {
/// let pool = knitting::Pool::builder().threads(1).build()?;
/// let upload = Envelope::new(
///     Upload { name: "a.bin".into(), checksum: true },
///     Bytes::from_slice(&[1, 2, 3]),
/// );
/// assert_eq!(pool.call(store, upload).wait()?, "a.bin: 3 bytes, sum 6");
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(bound(serialize = "H: Serialize", deserialize = "H: Deserialize<'de>"))]
pub struct Envelope<H, T: Pod = u8> {
    /// What the body is: a small serde value.
    pub header: H,
    /// The payload itself.
    pub body: Buffer<T>,
}

impl<H, T: Pod> Envelope<H, T> {
    /// An envelope of `header` and `body`.
    pub fn new(header: H, body: impl Into<Buffer<T>>) -> Self {
        Self {
            header,
            body: body.into(),
        }
    }

    /// The header and the body.
    ///
    /// ```
    /// let (header, body) = knitting::Envelope::new(7u8, vec![1u8]).into_parts();
    /// assert_eq!((header, &body[..]), (7, &[1u8][..]));
    /// ```
    pub fn into_parts(self) -> (H, Buffer<T>) {
        (self.header, self.body)
    }
}
