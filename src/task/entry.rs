//! How a worker process runs one task for one request: decode the
//! arguments, run the task (panics caught), and hand the outcome to the
//! reply sink. Written for any sink ([`Reply`]), so the task layer knows
//! nothing of the process runtime that calls it.

use super::{panics, ProcessTask, Wired};
use crate::{
    payload::{codec, wire, Reply, Window},
    Error, ErrorKind, Signal,
};

/// The signature of a task's worker entry.
pub(crate) type EntryFn = fn(&[u8], &Signal, &mut dyn Reply);

/// Runs task `T` on the request `input`; sends its outcome to `reply`.
pub(crate) fn run<T: ProcessTask>(input: &[u8], signal: &Signal, reply: &mut dyn Reply) {
    // SAFETY: the lent arguments go to `T::run`, which drops them before
    // it returns (the `Wired` contract), while `input` is borrowed for the
    // whole of this function.
    let (args, lease) = unsafe {
        wire::lending(input, || {
            codec::decode_wire::<<T as Wired>::ArgsWire, T::Args>(input)
        })
    };
    let args = match args {
        Ok(args) => args,
        Err(e) => {
            return reply.error(&Error::of(
                ErrorKind::Codec,
                format!("the worker could not decode the arguments: {e}"),
            ))
        }
    };
    let outcome = panics::catch(|| T::run(args, signal));
    if lease.outstanding() {
        // A buffer lent from this request outlived the call (a `Deserialize`
        // impl kept one): once answered, the host would write over the bytes
        // it views. Stop the process first; the host sees a crash.
        eprintln!(
            "knitting worker: a buffer lent from a request was kept past its call \
             (by a Deserialize implementation?); the worker stops"
        );
        std::process::abort();
    }
    match outcome {
        Ok(value) => reply.value(&|w: &mut Window<'_>| {
            codec::encode_wire_into::<<T as Wired>::OutputWire, T::Output>(&value, w)
        }),
        Err(err) => reply.error(&err),
    }
}

#[cfg(all(test, not(knitting_loom)))]
mod tests {
    use super::*;
    use crate::{payload::Encode, Task};

    /// A sink that keeps what it was sent.
    #[derive(Default)]
    struct Kept {
        value: Option<Vec<u8>>,
        error: Option<Error>,
    }

    impl Reply for Kept {
        fn value(&mut self, encode: Encode<'_>) {
            // A window too small first, as a full arena gives: the sink
            // asks again with the size the encoder reported.
            let mut small = [0u8; 1];
            let n = encode(&mut Window::of(&mut small)).unwrap();
            let mut bytes = vec![0; n];
            assert_eq!(encode(&mut Window::of(&mut bytes)).unwrap(), n);
            self.value = Some(bytes);
        }

        fn error(&mut self, err: &Error) {
            self.error = Some(Error::of(err.kind(), err.message().to_owned()));
        }
    }

    #[derive(Clone, Copy)]
    struct Shout;

    static SHOUT: crate::TaskInfo = crate::TaskInfo::new("shout", file!(), line!());

    // SAFETY: plain serde adapters lend nothing.
    unsafe impl Wired for Shout {
        type ArgsWire = wire::Plain;
        type OutputWire = wire::Plain;
    }
    impl crate::task::marks::NoBorrowedTypes for Shout {}
    impl crate::task::marks::NotThreadsOnly for Shout {}

    impl Task for Shout {
        type Args = String;
        type Output = String;

        fn info(&self) -> &crate::TaskInfo {
            &SHOUT
        }

        fn run(text: String, _: &Signal) -> Result<String, Error> {
            Ok(text.to_uppercase())
        }
    }

    #[test]
    fn a_request_runs_the_task_and_its_value_is_encoded_through_the_sink() {
        let mut kept = Kept::default();
        let input = codec::encode_vec(&"knit".to_string()).unwrap();
        run::<Shout>(&input, &Signal::new(), &mut kept);
        let value: String = codec::decode(&kept.value.unwrap()).unwrap();
        assert_eq!(value, "KNIT");
        assert!(kept.error.is_none());
    }

    #[test]
    fn undecodable_arguments_are_a_codec_error_and_the_task_does_not_run() {
        let mut kept = Kept::default();
        run::<Shout>(&[0xff, 0xff, 0xff], &Signal::new(), &mut kept);
        assert!(kept.value.is_none());
        assert_eq!(kept.error.unwrap().kind(), ErrorKind::Codec);
    }
}
