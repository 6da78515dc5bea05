use std::{error::Error as StdError, fmt::Display};

use crate::Error;

/// Wraps a reference to a task's error value.
#[derive(Debug)]
pub struct Failure<'a, E>(pub &'a E);

/// `E: std::error::Error`: keep the message and the whole source chain.
pub trait ViaStdError {
    /// Converts the task error.
    fn knitting_error(&self) -> Error;
}
impl<E: StdError> ViaStdError for &Failure<'_, E> {
    fn knitting_error(&self) -> Error {
        Error::from_task_error(self.0)
    }
}

/// `Box<dyn Error ...>`: the boxed error and its chain.
pub trait ViaBoxedError {
    /// Converts the task error.
    fn knitting_error(&self) -> Error;
}
impl ViaBoxedError for &&Failure<'_, Box<dyn StdError + Send + Sync>> {
    fn knitting_error(&self) -> Error {
        Error::from_task_error(&**self.0)
    }
}
impl ViaBoxedError for &&Failure<'_, Box<dyn StdError + Send>> {
    fn knitting_error(&self) -> Error {
        Error::from_task_error(&**self.0)
    }
}
impl ViaBoxedError for &&Failure<'_, Box<dyn StdError>> {
    fn knitting_error(&self) -> Error {
        Error::from_task_error(&**self.0)
    }
}

/// Anything else that can be displayed (`String`, `&str`, ...).
pub trait ViaDisplay {
    /// Converts the task error.
    fn knitting_error(&self) -> Error;
}
impl<E: Display> ViaDisplay for Failure<'_, E> {
    fn knitting_error(&self) -> Error {
        Error::from_task_message(self.0.to_string())
    }
}
