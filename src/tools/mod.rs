//! Helpers shared by the everyday command-line tools (`spuser`, `spflooder`): receiving into
//! the fixed buffers the original examples use, printing what arrives in their wording, and
//! reading numbers the way their C `sscanf` calls do. Also the installer's work ([`install`]).

pub mod inbox;
pub mod install;
pub mod report;
pub mod scan;
