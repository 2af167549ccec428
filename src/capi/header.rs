//! Numbers only the C headers have.

use std::os::raw::c_int;

/// `sp.h`'s version number: major in bits 24-31, minor in 16-23, so this is 5.0 (Spread 5.0.1's
/// header never encoded the patch), the value programs compiled against it see.
pub const SPREAD_VERSION: c_int = 5 << 24;
