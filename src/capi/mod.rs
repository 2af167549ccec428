//! The C ABI: the only place with `extern "C"` functions. Each is a thin shell over a safe
//! core that checks its pointers and turns a panic into an error code.

pub mod types;
