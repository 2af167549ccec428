//! The library's error: one of the negative result codes of the C API.

use std::fmt;

use crate::wire::error_text;

/// A result code of the SP API other than success (e.g. `CONNECTION_CLOSED`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Error(i32);

impl Error {
    /// Wraps a result code from `wire::consts`.
    pub const fn from_code(code: i32) -> Error {
        Error(code)
    }

    /// The code as the C API returns it.
    pub const fn code(self) -> i32 {
        self.0
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({}) {}", self.0, error_text(self.0))
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::CONNECTION_CLOSED;

    #[test]
    fn shows_code_and_text() {
        let e = Error::from_code(CONNECTION_CLOSED);
        assert_eq!(e.code(), -8);
        assert_eq!(e.to_string(), "(-8) Connection closed by Spread.");
    }
}
