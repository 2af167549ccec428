//! The C ABI: the only place with `extern "C"` functions. Each is a thin shell over a safe
//! core that checks its pointers and turns a panic into an error code.

pub mod events;
pub mod header;
pub mod sp;
pub mod types;

use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs the body of an exported function; a panic becomes `on_panic` instead of unwinding
/// into C (which would be undefined behaviour).
pub(crate) fn guard<R>(on_panic: R, body: impl FnOnce() -> R) -> R {
    // The core's state is behind locks that stay consistent on panic (parking_lot does not
    // poison), so asserting unwind safety only risks reporting an error for a half-done call.
    catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|_| {
        log::error!("panic caught at the C API boundary");
        on_panic
    })
}
