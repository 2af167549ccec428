//! Application callbacks: C function pointers with the `code` and `data` they are called with.

use std::os::raw::{c_int, c_void};

/// Timer callback of `E_queue`: `void (*)(int code, void *data)`.
pub type TimerFn = extern "C" fn(code: c_int, data: *mut c_void);
/// Descriptor callback of `E_attach_fd`: `void (*)(int fd, int code, void *data)`.
pub type FdFn = extern "C" fn(fd: c_int, code: c_int, data: *mut c_void);

/// A timer callback; two are the same timer when function, code and data all match.
#[derive(Clone, Copy, Debug)]
pub struct TimerCallback {
    pub func: TimerFn,
    pub code: c_int,
    pub data: *mut c_void,
}

/// A descriptor callback.
#[derive(Clone, Copy, Debug)]
pub struct FdCallback {
    pub func: FdFn,
    pub code: c_int,
    pub data: *mut c_void,
}

// SAFETY: the loop never dereferences `data`; it only hands it back to the application's own
// callback, which is what the C API promises (the pointer is the application's business).
unsafe impl Send for TimerCallback {}
// SAFETY: as for TimerCallback.
unsafe impl Send for FdCallback {}

impl TimerCallback {
    pub fn same_as(&self, other: &TimerCallback) -> bool {
        // Identity of a timer is the address of its function, as in C.
        self.func as usize == other.func as usize && self.code == other.code && self.data == other.data
    }

    pub fn call(&self) {
        (self.func)(self.code, self.data)
    }
}

impl FdCallback {
    pub fn call(&self, fd: c_int) {
        (self.func)(fd, self.code, self.data)
    }
}
