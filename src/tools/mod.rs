//! Helpers shared by the everyday command-line tools (`spuser`, `spflooder`, `spmonitor`):
//! receiving into the fixed buffers the original examples use, printing what arrives in their
//! wording, reading numbers the way their C `sscanf` calls do, and asking daemons for their
//! status. Also the installer's work ([`install`]).

pub mod inbox;
pub mod install;
pub mod report;
pub mod scan;
pub mod survey;
