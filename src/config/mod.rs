//! The daemon's configuration: the spread.conf file (Spread 4/5 syntax, plus the multipath
//! `Spread_Network` blocks and `Multipath` mode) and what it means.
//!
//! `parser` turns text into a [`Config`] (name lookups go through a resolver the caller passes,
//! so parsing itself touches nothing outside); `hash` computes the configuration hash daemons
//! compare; `options` holds the option values with the original's defaults.

mod hash;
mod lexer;
mod options;
mod parser;

use std::fmt;
use std::net::{IpAddr, ToSocketAddrs};
use std::path::Path;

pub use hash::virtual_id_from_name;
pub use options::{debug_flag, EventPriority, IpVersion, MultipathMode, Options, PortReuse};

/// Port of a segment written without one.
pub const DEFAULT_PORT: u16 = 4803;
/// Longest daemon name in bytes (the original's MAX_PROC_NAME less its terminator); longer
/// names are cut.
pub const MAX_DAEMON_NAME: usize = 19;
pub const MAX_SEGMENTS: usize = 20;
pub const MAX_DAEMONS_PER_SEGMENT: usize = 128;
pub const MAX_DAEMONS: usize = 128;
/// Addresses of one segment, the primary one included.
pub const MAX_SEGMENT_ADDRESSES: usize = 5;
pub const MAX_INTERFACES_PER_DAEMON: usize = 10;
/// Networks of a multipath ring, the segments' one included.
pub const MAX_NETWORKS: usize = 8;

/// The configuration used when the daemon is started without a file: one daemon on loopback.
pub const EMBEDDED_DEFAULT_TEXT: &str =
    "Spread_Segment 127.255.255.255:4803 {\n\tlocalhost 127.0.0.1 { 127.0.0.1 }\n}\n";

/// A problem in a configuration, located by file and line (0 when it concerns no single line).
/// Warnings (accepted but suspicious input) use the same shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.reason)
        } else {
            write!(f, "{}:{}: {}", self.file, self.line, self.reason)
        }
    }
}

impl std::error::Error for ConfigError {}

/// One `Spread_Segment`: a broadcast or multicast domain and the daemons in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// The primary broadcast or multicast address.
    pub address: IpAddr,
    /// Further segment addresses written after the primary one (same port).
    pub extra_addresses: Vec<IpAddr>,
    pub port: u16,
    pub daemons: Vec<DaemonEntry>,
}

/// One daemon of a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonEntry {
    /// At most [`MAX_DAEMON_NAME`] bytes; the address text when only an address was written.
    pub name: String,
    pub address: IpAddr,
    /// Addresses for daemon-to-daemon traffic (`D`).
    pub daemon_interfaces: Vec<IpAddr>,
    /// Addresses clients connect to (`C`).
    pub client_interfaces: Vec<IpAddr>,
    /// Addresses the monitor talks to (`M`).
    pub monitor_interfaces: Vec<IpAddr>,
    /// True when no interface stanza was written: the three lists then hold just `address`, and
    /// the original listens on the wildcard address instead of on specific interfaces.
    pub listen_on_any: bool,
    /// `VirtualID = N` when written; see [`DaemonEntry::id`].
    pub virtual_id: Option<u32>,
}

impl DaemonEntry {
    /// The daemon's 32-bit id: its VirtualID, else derived from its name like the original does.
    pub fn id(&self) -> u32 {
        self.virtual_id
            .unwrap_or_else(|| virtual_id_from_name(&self.name))
    }
}

/// An extra network of a multipath ring (`Spread_Network`): the daemons reachable on it, by
/// name, with their address there. Network 0 is the one the segments describe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    pub name: String,
    /// Broadcast or multicast address of the network.
    pub address: IpAddr,
    pub port: u16,
    pub members: Vec<NetworkMember>,
}

/// A daemon's presence on an extra network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkMember {
    /// Name of a daemon of the segments.
    pub daemon: String,
    pub address: IpAddr,
}

/// A whole configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub segments: Vec<Segment>,
    /// Extra networks (multipath); empty for a classic Spread configuration.
    pub networks: Vec<Network>,
    pub options: Options,
    /// Accepted but suspicious input (loopback segment address, truncated name, ...), for logging.
    pub warnings: Vec<ConfigError>,
}

/// Looks a daemon name up in the system's resolver (`/etc/hosts`, DNS).
fn resolve_with_system(name: &str) -> Result<Vec<IpAddr>, String> {
    (name, 0)
        .to_socket_addrs()
        .map(|addrs| addrs.map(|a| a.ip()).collect())
        .map_err(|e| format!("cannot resolve daemon name \"{name}\": {e}"))
}

impl Config {
    /// Parses spread.conf text; `file_name` only labels errors. Daemons written by name alone are
    /// looked up with the system resolver.
    pub fn parse(text: &str, file_name: &str) -> Result<Config, ConfigError> {
        Self::parse_with_resolver(text, file_name, &resolve_with_system)
    }

    /// Like [`Config::parse`] with the name lookup supplied by the caller.
    pub fn parse_with_resolver(
        text: &str,
        file_name: &str,
        resolve: &dyn Fn(&str) -> Result<Vec<IpAddr>, String>,
    ) -> Result<Config, ConfigError> {
        parser::parse(text, resolve)
            .map_err(|(line, reason)| ConfigError {
                file: file_name.to_string(),
                line,
                reason,
            })
            .map(|(config, warnings)| Config {
                warnings: warnings
                    .into_iter()
                    .map(|(line, reason)| ConfigError {
                        file: file_name.to_string(),
                        line,
                        reason,
                    })
                    .collect(),
                ..config
            })
    }

    /// Reads and parses a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file_name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file_name.clone(),
            line: 0,
            reason: format!("cannot read configuration: {e}"),
        })?;
        Self::parse(&text, &file_name)
    }

    /// The configuration a daemon or tool uses: the file `path` if given, else `./spread.conf`
    /// if there is one, else [`Config::embedded_default`] (as the original daemon does).
    pub fn load_or_default(path: Option<&Path>) -> Result<Config, ConfigError> {
        let local = Path::new("spread.conf");
        match path {
            Some(p) => Config::load(p),
            None if local.exists() => Config::load(local),
            None => Ok(Config::embedded_default()),
        }
    }

    /// The configuration of a daemon started without a file: [`EMBEDDED_DEFAULT_TEXT`].
    pub fn embedded_default() -> Config {
        let no_lookup = |name: &str| Err(format!("no lookup for \"{name}\""));
        Self::parse_with_resolver(EMBEDDED_DEFAULT_TEXT, "<embedded default>", &no_lookup)
            .expect("the embedded default configuration parses")
    }

    /// All daemons in ring order, with their segment index and index in that segment.
    pub fn daemons(&self) -> impl Iterator<Item = (usize, usize, &DaemonEntry)> {
        self.segments.iter().enumerate().flat_map(|(s, seg)| {
            seg.daemons
                .iter()
                .enumerate()
                .map(move |(d, daemon)| (s, d, daemon))
        })
    }

    /// Which entry is this daemon: the one called `name` (cut to [`MAX_DAEMON_NAME`] like the
    /// original) if given, else the first entry whose address is one of `local_addrs`.
    pub fn find_daemon(
        &self,
        name: Option<&str>,
        local_addrs: &[IpAddr],
    ) -> Result<(usize, usize), ConfigError> {
        let error = |reason: String| ConfigError {
            file: "configuration".to_string(),
            line: 0,
            reason,
        };
        match name {
            Some(name) => {
                let wanted = truncate_name(name);
                self.daemons()
                    .find(|(_, _, d)| d.name == wanted)
                    .map(|(s, i, _)| (s, i))
                    .ok_or_else(|| error(format!("daemon \"{wanted}\" is not in the configuration")))
            }
            None => self
                .daemons()
                .find(|(_, _, d)| local_addrs.contains(&d.address))
                .map(|(s, i, _)| (s, i))
                .ok_or_else(|| {
                    error(
                        "none of this machine's addresses matches a daemon in the configuration".to_string(),
                    )
                }),
        }
    }

    /// The text the configuration hash is computed over (for logging on mismatch).
    pub fn hash_text(&self) -> String {
        hash::canonical_text(self)
    }

    /// The configuration hash daemons compare: equal for files that describe the same segments,
    /// networks, daemons, ports and ring protocol, whatever their layout and comments. Without
    /// extra networks it is the original's value.
    pub fn hash(&self) -> u32 {
        hash::one_at_a_time(&hash::canonical_text(self))
    }
}

/// A daemon name as the original keeps it: at most [`MAX_DAEMON_NAME`] bytes.
fn truncate_name(name: &str) -> &str {
    let mut cut = name.len().min(MAX_DAEMON_NAME);
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    &name[..cut]
}

#[cfg(test)]
mod tests;
