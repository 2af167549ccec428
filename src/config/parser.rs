//! Recursive-descent parser of spread.conf tokens into a [`Config`], with the original's checks.
//!
//! Keywords are matched case-insensitively (the original wants their exact case; accepting more
//! breaks no existing file). Words are read by context: inside a segment any word is a daemon
//! name or address, so a daemon may be called `INFO` or `D`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use super::lexer::{tokenize, Token, TokenKind};
use super::options::{
    debug_flag, EventPriority, IpVersion, MultipathMode, Options, PortReuse, LAN_TIMEOUTS, TIMEOUT_NAMES,
    WAN_TIMEOUTS,
};
use super::{
    truncate_name, Config, DaemonEntry, Network, NetworkMember, Segment, DEFAULT_PORT, MAX_DAEMONS,
    MAX_DAEMONS_PER_SEGMENT, MAX_DAEMON_NAME, MAX_INTERFACES_PER_DAEMON, MAX_NETWORKS, MAX_SEGMENTS,
    MAX_SEGMENT_ADDRESSES,
};

/// A located message: line (0 for the whole file) and text.
pub(super) type Located = (usize, String);

type Resolver<'a> = &'a dyn Fn(&str) -> Result<Vec<IpAddr>, String>;

/// Parses `text`; returns the configuration and its warnings.
pub(super) fn parse(text: &str, resolve: Resolver<'_>) -> Result<(Config, Vec<Located>), Located> {
    let tokens = tokenize(text)?;
    let mut parser = Parser {
        tokens,
        pos: 0,
        resolve,
        options: Options::new(),
        segments: Vec::new(),
        networks: Vec::new(),
        member_lines: Vec::new(),
        daemon_lines: Vec::new(),
        family: None,
        timeouts_written: [false; TIMEOUT_NAMES.len()],
        wide_area_network: None,
        auth_configured: false,
        warnings: Vec::new(),
    };
    parser.file()?;
    parser.finish()
}

struct Parser<'a> {
    tokens: Vec<Token>,
    pos: usize,
    resolve: Resolver<'a>,
    options: Options,
    segments: Vec<Segment>,
    networks: Vec<Network>,
    /// Lines of the members of every network, checked against the daemons at the end.
    member_lines: Vec<Vec<usize>>,
    /// Line of every daemon entry, in ring order, for errors found after its segment closed.
    daemon_lines: Vec<usize>,
    /// Address family every address must have (ActiveIPVersion, else the first daemon's).
    family: Option<IpVersion>,
    timeouts_written: [bool; TIMEOUT_NAMES.len()],
    /// `WideAreaNetwork` as written; the default depends on the number of segments.
    wide_area_network: Option<bool>,
    /// An auth methods line was seen (the first one disables the default NULL method).
    auth_configured: bool,
    warnings: Vec<Located>,
}

fn family_of(address: &IpAddr) -> IpVersion {
    match address {
        IpAddr::V4(_) => IpVersion::V4,
        IpAddr::V6(_) => IpVersion::V6,
    }
}

/// An address written without a port: IPv4 dotted quad or IPv6, the latter possibly with a
/// `%interface` suffix (dropped: it only matters to the host it names).
fn bare_address(word: &str) -> Option<IpAddr> {
    if let Ok(v4) = word.parse::<Ipv4Addr>() {
        return Some(IpAddr::V4(v4));
    }
    let without_scope = word.split_once('%').map_or(word, |(addr, _)| addr);
    without_scope.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
}

/// True for words shaped like an IPv4 address, valid or not: they are never daemon names.
fn looks_like_ipv4(word: &str) -> bool {
    let parts: Vec<&str> = word.split('.').collect();
    parts.len() == 4
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
}

/// A segment or network address: `v4`, `v4:port`, `v6`, `[v6]` or `[v6]:port`; port `None`
/// when absent.
fn segment_address(word: &str) -> Result<(IpAddr, Option<u16>), String> {
    let invalid = || format!("invalid address \"{word}\"");
    let parse_port = |p: &str| {
        if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("invalid port in address \"{word}\""));
        }
        p.parse::<u16>()
            .map_err(|_| format!("port out of range in address \"{word}\""))
    };
    if let Some(rest) = word.strip_prefix('[') {
        let (inside, after) = rest.split_once(']').ok_or_else(invalid)?;
        let address = bare_address(inside).filter(IpAddr::is_ipv6).ok_or_else(invalid)?;
        return match after {
            "" => Ok((address, None)),
            _ => Ok((
                address,
                Some(parse_port(after.strip_prefix(':').ok_or_else(invalid)?)?),
            )),
        };
    }
    if let Some(address) = bare_address(word) {
        return Ok((address, None));
    }
    match word.split_once(':') {
        Some((host, port)) => {
            let v4 = host.parse::<Ipv4Addr>().map_err(|_| invalid())?;
            Ok((IpAddr::V4(v4), Some(parse_port(port)?)))
        }
        None => Err(invalid()),
    }
}

fn parse_bool(word: &str) -> Option<bool> {
    const TRUE: [&str; 3] = ["yes", "true", "on"];
    const FALSE: [&str; 3] = ["no", "false", "off"];
    if TRUE.iter().any(|t| t.eq_ignore_ascii_case(word)) {
        Some(true)
    } else if FALSE.iter().any(|f| f.eq_ignore_ascii_case(word)) {
        Some(false)
    } else {
        None
    }
}

/// How an option's value is written.
#[derive(Clone, Copy)]
enum Setting {
    DebugFlags,
    EventPriority,
    EventLogFile,
    DangerousMonitor,
    SocketPortReuse,
    RuntimeDir,
    DaemonUser,
    DaemonGroup,
    AllowedAuthMethods,
    RequiredAuthMethods,
    AccessControlPolicy,
    MaxSessionMessages,
    ActiveIpVersion,
    Window,
    PersonalWindow,
    AcceleratedRing,
    AcceleratedWindow,
    /// One of the nine membership timeouts, by index into [`TIMEOUT_NAMES`].
    Timeout(usize),
    WideAreaNetwork,
    ExcludeSegAddrsFromHash,
    IgnoreMulticastJoinErrors,
    Multipath,
}

fn setting_by_name(word: &str) -> Option<Setting> {
    const NAMES: [(&str, Setting); 21] = [
        ("DebugFlags", Setting::DebugFlags),
        ("EventPriority", Setting::EventPriority),
        ("EventLogFile", Setting::EventLogFile),
        ("DangerousMonitor", Setting::DangerousMonitor),
        ("SocketPortReuse", Setting::SocketPortReuse),
        ("RuntimeDir", Setting::RuntimeDir),
        ("DaemonUser", Setting::DaemonUser),
        ("DaemonGroup", Setting::DaemonGroup),
        ("AllowedAuthMethods", Setting::AllowedAuthMethods),
        ("RequiredAuthMethods", Setting::RequiredAuthMethods),
        ("AccessControlPolicy", Setting::AccessControlPolicy),
        ("MaxSessionMessages", Setting::MaxSessionMessages),
        ("ActiveIPVersion", Setting::ActiveIpVersion),
        ("Window", Setting::Window),
        ("PersonalWindow", Setting::PersonalWindow),
        ("AcceleratedRing", Setting::AcceleratedRing),
        ("AcceleratedWindow", Setting::AcceleratedWindow),
        ("WideAreaNetwork", Setting::WideAreaNetwork),
        ("ExcludeSegAddrsFromHash", Setting::ExcludeSegAddrsFromHash),
        ("IgnoreMulticastJoinErrors", Setting::IgnoreMulticastJoinErrors),
        ("Multipath", Setting::Multipath),
    ];
    if let Some(index) = TIMEOUT_NAMES.iter().position(|t| t.eq_ignore_ascii_case(word)) {
        return Some(Setting::Timeout(index));
    }
    NAMES
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(word))
        .map(|&(_, o)| o)
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        &self.tokens[self.pos]
    }

    fn next(&mut self) -> Token {
        let token = self.tokens[self.pos].clone();
        if token.kind != TokenKind::End {
            self.pos += 1;
        }
        token
    }

    fn line(&self) -> usize {
        self.peek().line
    }

    fn error<T>(&self, reason: String) -> Result<T, Located> {
        Err((self.line(), reason))
    }

    /// Consumes the next token if it is `kind`.
    fn accept(&mut self, kind: &TokenKind) -> bool {
        let found = &self.peek().kind == kind;
        if found {
            self.next();
        }
        found
    }

    fn expect(&mut self, kind: TokenKind, context: &str) -> Result<(), Located> {
        if self.accept(&kind) {
            Ok(())
        } else {
            self.error(format!("expected {kind} {context}, found {}", self.peek().kind))
        }
    }

    /// The `ADDRESS[:PORT]` word that opens a segment or network block; `expected` names it in
    /// the error when something else stands there.
    fn cast_address(&mut self, expected: &str) -> Result<(IpAddr, Option<u16>), Located> {
        let token = self.next();
        match token.kind {
            TokenKind::Word(word) => segment_address(&word).map_err(|reason| (token.line, reason)),
            other => Err((token.line, format!("expected {expected}, found {other}"))),
        }
    }

    fn file(&mut self) -> Result<(), Located> {
        loop {
            let token = self.next();
            match token.kind {
                TokenKind::End => return Ok(()),
                TokenKind::Word(word) if word.eq_ignore_ascii_case("Spread_Segment") => {
                    self.segment(token.line)?
                }
                TokenKind::Word(word) if word.eq_ignore_ascii_case("Spread_Network") => {
                    self.network(token.line)?
                }
                TokenKind::Word(word) if self.timestamp_option(&word)? => {}
                TokenKind::Word(word) => match setting_by_name(&word) {
                    Some(option) => self.option(option, &word)?,
                    None => return Err((token.line, format!("unknown option \"{word}\""))),
                },
                other => {
                    return Err((
                        token.line,
                        format!("expected an option or Spread_Segment, found {other}"),
                    ))
                }
            }
        }
    }

    // ----- options -----

    /// A word or quoted string value.
    fn string_value(&mut self, name: &str) -> Result<String, Located> {
        match self.peek().kind.clone() {
            TokenKind::Word(s) | TokenKind::Quoted(s) => {
                self.next();
                Ok(s)
            }
            other => self.error(format!("expected a value after \"{name} =\", found {other}")),
        }
    }

    /// A non-empty string value, as the original ignores empty ones for names and paths.
    fn non_empty_value(&mut self, name: &str) -> Result<String, Located> {
        let line = self.line();
        let value = self.string_value(name)?;
        if value.is_empty() {
            return Err((line, format!("empty value for {name}")));
        }
        Ok(value)
    }

    fn word_value(&mut self, name: &str, what: &str) -> Result<String, Located> {
        match self.peek().kind.clone() {
            TokenKind::Word(word) => {
                self.next();
                Ok(word)
            }
            other => self.error(format!("expected {what} after \"{name} =\", found {other}")),
        }
    }

    fn number_value(&mut self, name: &str) -> Result<u32, Located> {
        let line = self.line();
        let word = self.word_value(name, "a number")?;
        if !word.bytes().all(|b| b.is_ascii_digit()) {
            return Err((
                line,
                format!("expected a number after \"{name} =\", found \"{word}\""),
            ));
        }
        word.parse::<u32>()
            .map_err(|_| (line, format!("number too large for {name}: {word}")))
    }

    fn positive_value(&mut self, name: &str) -> Result<u32, Located> {
        let line = self.line();
        match self.number_value(name)? {
            0 => Err((line, format!("{name} must be greater than zero"))),
            n => Ok(n),
        }
    }

    fn bool_value(&mut self, name: &str) -> Result<bool, Located> {
        let line = self.line();
        let word = self.word_value(name, "yes or no")?;
        parse_bool(&word).ok_or_else(|| {
            (
                line,
                format!("expected yes or no after \"{name} =\", found \"{word}\""),
            )
        })
    }

    /// The two timestamp options stand alone; only EventTimeStamp may take `= format`.
    fn timestamp_option(&mut self, word: &str) -> Result<bool, Located> {
        if word.eq_ignore_ascii_case("EventTimeStamp") {
            self.options.event_timestamp = true;
            if self.accept(&TokenKind::Equals) {
                let format = self.string_value(word)?;
                self.options.event_timestamp_format = Some(format);
            }
            Ok(true)
        } else if word.eq_ignore_ascii_case("EventPreciseTimeStamp") {
            self.options.event_precise_timestamp = true;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    /// A `Name = value` option.
    fn option(&mut self, option: Setting, name: &str) -> Result<(), Located> {
        self.expect(TokenKind::Equals, &format!("after {name}"))?;
        let line = self.line();
        match option {
            Setting::DebugFlags => self.options.debug_flags = self.debug_flags()?,
            Setting::EventPriority => {
                let word = self.word_value(name, "a priority")?;
                self.options.event_priority = EventPriority::by_name(&word)
                    .ok_or_else(|| (line, format!("unknown event priority \"{word}\"")))?;
            }
            Setting::EventLogFile => self.options.event_log_file = Some(self.non_empty_value(name)?),
            Setting::DangerousMonitor => self.options.dangerous_monitor = self.bool_value(name)?,
            Setting::SocketPortReuse => {
                let word = self.word_value(name, "on, off or auto")?;
                self.options.socket_port_reuse = if word.eq_ignore_ascii_case("auto") {
                    PortReuse::Auto
                } else {
                    match parse_bool(&word) {
                        Some(true) => PortReuse::On,
                        Some(false) => PortReuse::Off,
                        None => {
                            return Err((
                                line,
                                format!("expected on, off or auto after \"{name} =\", found \"{word}\""),
                            ))
                        }
                    }
                };
            }
            Setting::RuntimeDir => self.options.runtime_dir = self.non_empty_value(name)?,
            Setting::DaemonUser => self.options.daemon_user = self.non_empty_value(name)?,
            Setting::DaemonGroup => self.options.daemon_group = self.non_empty_value(name)?,
            Setting::AllowedAuthMethods | Setting::RequiredAuthMethods => {
                let list = self.string_value(name)?;
                if !self.auth_configured {
                    // Writing any auth line replaces the default NULL method.
                    self.options.allowed_auth_methods.clear();
                    self.auth_configured = true;
                }
                let target = match option {
                    Setting::AllowedAuthMethods => &mut self.options.allowed_auth_methods,
                    _ => &mut self.options.required_auth_methods,
                };
                target.extend(list.split_whitespace().map(str::to_string));
            }
            Setting::AccessControlPolicy => {
                self.options.access_control_policy = self.non_empty_value(name)?
            }
            Setting::MaxSessionMessages => {
                self.options.max_session_messages = self.number_value(name)? as usize
            }
            Setting::ActiveIpVersion => {
                let word = self.string_value(name)?;
                let version = if word.eq_ignore_ascii_case("IPv4") {
                    IpVersion::V4
                } else if word.eq_ignore_ascii_case("IPv6") {
                    IpVersion::V6
                } else {
                    return Err((
                        line,
                        format!("ActiveIPVersion must be IPv4 or IPv6, not \"{word}\""),
                    ));
                };
                if self.family.is_some_and(|f| f != version) {
                    return Err((
                        line,
                        "ActiveIPVersion disagrees with the addresses configured before it".to_string(),
                    ));
                }
                self.family = Some(version);
                self.options.active_ip_version = Some(version);
            }
            Setting::Window => self.options.window = self.positive_value(name)?,
            Setting::PersonalWindow => self.options.personal_window = self.positive_value(name)?,
            Setting::AcceleratedRing => {
                self.options.accelerated_ring_configured = Some(self.bool_value(name)?)
            }
            Setting::AcceleratedWindow => self.options.accelerated_window = self.number_value(name)?,
            Setting::Timeout(index) => {
                let ms = self.positive_value(name)?;
                *self.options.timeout_mut(index) = Duration::from_millis(u64::from(ms));
                self.timeouts_written[index] = true;
            }
            Setting::WideAreaNetwork => self.wide_area_network = Some(self.bool_value(name)?),
            Setting::ExcludeSegAddrsFromHash => {
                self.options.exclude_seg_addrs_from_hash = self.bool_value(name)?
            }
            Setting::IgnoreMulticastJoinErrors => {
                self.options.ignore_multicast_join_errors = self.bool_value(name)?
            }
            Setting::Multipath => {
                let word = self.word_value(name, "active, passive or hybrid")?;
                self.options.multipath = MultipathMode::by_name(&word).ok_or_else(|| {
                    (
                        line,
                        format!("Multipath must be active, passive or hybrid, not \"{word}\""),
                    )
                })?;
            }
        }
        Ok(())
    }

    /// `{ FLAG ... !FLAG ... }`: flags are or-ed in, `!FLAG` clears them, left to right.
    fn debug_flags(&mut self) -> Result<u32, Located> {
        self.expect(TokenKind::OpenBrace, "after \"DebugFlags =\"")?;
        let mut mask = debug_flag::NONE;
        loop {
            let token = self.next();
            let (negate, token) = match token.kind {
                TokenKind::Bang => (true, self.next()),
                _ => (false, token),
            };
            match token.kind {
                TokenKind::CloseBrace if !negate => return Ok(mask),
                TokenKind::Word(word) => match debug_flag::by_name(&word) {
                    Some(bit) if negate => mask &= !bit,
                    Some(bit) => mask |= bit,
                    None => return Err((token.line, format!("unknown debug flag \"{word}\""))),
                },
                other => {
                    return Err((
                        token.line,
                        format!("expected a debug flag or '}}', found {other}"),
                    ))
                }
            }
        }
    }
}

/// Bits of an interface's uses, as written before its address.
const USE_MONITOR: u8 = 1;
const USE_CLIENT: u8 = 2;
const USE_DAEMON: u8 = 4;
const USE_ALL: u8 = USE_MONITOR | USE_CLIENT | USE_DAEMON;

impl Parser<'_> {
    // ----- segments and daemons -----

    fn segment(&mut self, line: usize) -> Result<(), Located> {
        if self.segments.len() >= MAX_SEGMENTS {
            return Err((line, format!("too many segments (at most {MAX_SEGMENTS})")));
        }
        let (address, port) = self.cast_address("a segment address after Spread_Segment")?;
        let mut extra_addresses = Vec::new();
        while let Some(extra) = self.peek_bare_address() {
            if 1 + extra_addresses.len() >= MAX_SEGMENT_ADDRESSES {
                return self.error(format!(
                    "too many segment addresses (at most {MAX_SEGMENT_ADDRESSES})"
                ));
            }
            extra_addresses.push(extra);
            self.next();
        }
        self.expect(TokenKind::OpenBrace, "after segment address")?;
        let mut daemons = Vec::new();
        loop {
            match self.peek().kind {
                TokenKind::CloseBrace => {
                    self.next();
                    break;
                }
                TokenKind::End => {
                    return self.error(format!("missing '}}' closing the segment opened on line {line}"));
                }
                _ => {
                    let daemon = self.daemon(&daemons)?;
                    daemons.push(daemon);
                }
            }
        }
        for &seg_address in std::iter::once(&address).chain(&extra_addresses) {
            self.check_group_address(line, "segment", seg_address)?;
        }
        let port = match port {
            None | Some(0) => DEFAULT_PORT,
            Some(port) => port,
        };
        // Addresses must differ among daemons sharing a port.
        let first_line = self.daemon_lines.len() - daemons.len();
        for (k, daemon) in daemons.iter().enumerate() {
            let mut earlier = self
                .segments
                .iter()
                .filter(|s| s.port == port)
                .flat_map(|s| s.daemons.iter())
                .chain(&daemons[..k]);
            if let Some(other) = earlier.find(|d| d.address == daemon.address) {
                return Err((
                    self.daemon_lines[first_line + k],
                    format!(
                        "address {} of daemon \"{}\" is already used by daemon \"{}\"",
                        daemon.address, daemon.name, other.name
                    ),
                ));
            }
        }
        self.segments.push(Segment {
            address,
            extra_addresses,
            port,
            daemons,
        });
        Ok(())
    }

    /// The next token as an address without port, if it is one.
    fn peek_bare_address(&self) -> Option<IpAddr> {
        match &self.peek().kind {
            TokenKind::Word(word) => bare_address(word),
            _ => None,
        }
    }

    /// Checks a segment or network address; `what` names it in messages.
    fn check_group_address(&mut self, line: usize, what: &str, address: IpAddr) -> Result<(), Located> {
        if address.is_unspecified() {
            return Err((
                line,
                format!("{what} address {address} is the unspecified address"),
            ));
        }
        let family = family_of(&address);
        match self.family {
            Some(f) if f != family => {
                return Err((
                    line,
                    format!("{what} address {address} is not of the daemons' IP version"),
                ));
            }
            Some(_) => {}
            None => self.family = Some(family),
        }
        if address.is_ipv6() && !address.is_multicast() {
            self.warnings.push((
                line,
                format!("IPv6 {what} address {address} is not a multicast address"),
            ));
        }
        if address.is_loopback() {
            self.warnings
                .push((line, format!("{what} address {address} is a loopback address")));
        }
        Ok(())
    }

    /// Rejects address-like words that are not plain addresses (bad IPv4, address with port).
    fn check_not_malformed_address(&self, line: usize, word: &str, what: &str) -> Result<(), Located> {
        if looks_like_ipv4(word) {
            return Err((line, format!("invalid IPv4 address \"{word}\"")));
        }
        if matches!(segment_address(word), Ok((_, Some(_)))) {
            return Err((line, format!("{what} must not specify a port: \"{word}\"")));
        }
        Ok(())
    }

    /// One daemon: `name`, `address` or `name address`, then optionally `VirtualID = N`, an
    /// interface list in braces and a `;` (which separates `name` from a following `address`).
    fn daemon(&mut self, same_segment: &[DaemonEntry]) -> Result<DaemonEntry, Located> {
        let line = self.line();
        if self.daemon_lines.len() >= MAX_DAEMONS {
            return Err((line, format!("too many daemons (at most {MAX_DAEMONS})")));
        }
        if same_segment.len() >= MAX_DAEMONS_PER_SEGMENT {
            return Err((
                line,
                format!("too many daemons in one segment (at most {MAX_DAEMONS_PER_SEGMENT})"),
            ));
        }
        let token = self.next();
        let (written_name, address) = match token.kind {
            TokenKind::Word(word) => match bare_address(&word) {
                // An address alone also names the daemon, without any interface suffix.
                Some(address) => (
                    word.split('%').next().unwrap_or_default().to_string(),
                    Some(address),
                ),
                None => {
                    self.check_not_malformed_address(line, &word, "a daemon's address")?;
                    (word, None)
                }
            },
            TokenKind::Quoted(name) => (name, None),
            other => return Err((line, format!("expected a daemon name or address, found {other}"))),
        };
        let name = self.daemon_name(line, &written_name, same_segment)?;
        let address = match address {
            Some(address) => address,
            None => match self.peek_bare_address() {
                Some(address) => {
                    self.next();
                    address
                }
                None => {
                    if let TokenKind::Word(word) = &self.peek().kind {
                        self.check_not_malformed_address(self.line(), word, "a daemon's address")?;
                    }
                    self.resolve_name(line, &written_name)?
                }
            },
        };
        self.check_daemon_address(line, &name, address)?;
        let virtual_id = self.virtual_id()?;
        let (interfaces, listen_on_any) = if self.peek().kind == TokenKind::OpenBrace {
            (self.interfaces(&name)?, false)
        } else {
            (vec![(address, USE_ALL)], true)
        };
        self.accept(&TokenKind::Semicolon);
        let serves_daemons = |&(a, uses): &(IpAddr, u8)| {
            uses & USE_DAEMON != 0
                && (a == address || (a.is_unspecified() && a.is_ipv4() == address.is_ipv4()))
        };
        if !interfaces.iter().any(serves_daemons) {
            return Err((line, format!("the interfaces of daemon \"{name}\" do not include its address {address} for daemon traffic (D)")));
        }
        let with_use = |bit: u8| {
            interfaces
                .iter()
                .filter(|(_, uses)| uses & bit != 0)
                .map(|&(a, _)| a)
                .collect()
        };
        let entry = DaemonEntry {
            name,
            address,
            daemon_interfaces: with_use(USE_DAEMON),
            client_interfaces: with_use(USE_CLIENT),
            monitor_interfaces: with_use(USE_MONITOR),
            listen_on_any,
            virtual_id,
        };
        let id = entry.id();
        let mut earlier = self
            .segments
            .iter()
            .flat_map(|s| s.daemons.iter())
            .chain(same_segment);
        if let Some(other) = earlier.find(|d| d.id() == id) {
            return Err((
                line,
                format!(
                    "virtual ID {id} of daemon \"{}\" is already used by daemon \"{}\"",
                    entry.name, other.name
                ),
            ));
        }
        self.daemon_lines.push(line);
        Ok(entry)
    }

    /// The name as kept (cut to the maximum length), checked to be non-empty and unique.
    fn daemon_name(
        &mut self,
        line: usize,
        written: &str,
        same_segment: &[DaemonEntry],
    ) -> Result<String, Located> {
        if written.is_empty() {
            return Err((line, "empty daemon name".to_string()));
        }
        let name = truncate_name(written).to_string();
        if name.len() < written.len() {
            self.warnings.push((
                line,
                format!("daemon name \"{written}\" cut to {MAX_DAEMON_NAME} bytes: \"{name}\""),
            ));
        }
        let mut earlier = self
            .segments
            .iter()
            .flat_map(|s| s.daemons.iter())
            .chain(same_segment);
        if earlier.any(|d| d.name == name) {
            return Err((line, format!("daemon name \"{name}\" is used twice")));
        }
        Ok(name)
    }

    /// Looks up a daemon given by name only; takes its first address of the configured family.
    fn resolve_name(&self, line: usize, name: &str) -> Result<IpAddr, Located> {
        let addresses = (self.resolve)(name).map_err(|reason| (line, reason))?;
        addresses
            .into_iter()
            .find(|a| self.family.map_or(true, |f| f == family_of(a)))
            .ok_or_else(|| {
                (
                    line,
                    format!("daemon name \"{name}\" has no address of the configured IP version"),
                )
            })
    }

    fn check_daemon_address(&mut self, line: usize, name: &str, address: IpAddr) -> Result<(), Located> {
        if address.is_unspecified() {
            return Err((
                line,
                format!("daemon \"{name}\" has the unspecified address {address}"),
            ));
        }
        if address.is_multicast() {
            return Err((
                line,
                format!("daemon \"{name}\" has the multicast address {address}"),
            ));
        }
        let family = family_of(&address);
        match self.family {
            Some(f) if f != family => Err((
                line,
                format!("address {address} of daemon \"{name}\" is not of the configured IP version"),
            )),
            Some(_) => Ok(()),
            None => {
                self.family = Some(family);
                Ok(())
            }
        }
    }

    fn virtual_id(&mut self) -> Result<Option<u32>, Located> {
        let written = matches!(&self.peek().kind, TokenKind::Word(w) if w.eq_ignore_ascii_case("VirtualID"));
        if !written {
            return Ok(None);
        }
        self.next();
        self.expect(TokenKind::Equals, "after VirtualID")?;
        let line = self.line();
        match self.positive_value("VirtualID")? {
            u32::MAX => Err((line, "VirtualID 4294967295 is reserved".to_string())),
            id => Ok(Some(id)),
        }
    }

    /// `{ [D] [C] [M] address ... }`: letters before an address say what it serves (all when none).
    fn interfaces(&mut self, name: &str) -> Result<Vec<(IpAddr, u8)>, Located> {
        let open_line = self.line();
        self.next();
        let mut interfaces = Vec::new();
        let mut uses = 0u8;
        loop {
            let token = self.next();
            match token.kind {
                TokenKind::CloseBrace if uses == 0 => break,
                TokenKind::Word(word) => {
                    let bit = match word.to_ascii_uppercase().as_str() {
                        "D" => USE_DAEMON,
                        "C" => USE_CLIENT,
                        "M" => USE_MONITOR,
                        _ => 0,
                    };
                    if bit != 0 {
                        uses |= bit;
                        continue;
                    }
                    let Some(address) = bare_address(&word) else {
                        self.check_not_malformed_address(token.line, &word, "an interface address")?;
                        return Err((token.line, format!("expected D, C, M or an address in the interfaces of \"{name}\", found \"{word}\"")));
                    };
                    if interfaces.len() >= MAX_INTERFACES_PER_DAEMON {
                        return Err((token.line, format!("too many interfaces for daemon \"{name}\" (at most {MAX_INTERFACES_PER_DAEMON})")));
                    }
                    interfaces.push((address, if uses == 0 { USE_ALL } else { uses }));
                    uses = 0;
                }
                other => {
                    return Err((
                        token.line,
                        format!("expected an address in the interfaces of \"{name}\", found {other}"),
                    ));
                }
            }
        }
        if interfaces.is_empty() {
            return Err((open_line, format!("empty interface list for daemon \"{name}\"")));
        }
        Ok(interfaces)
    }

    // ----- multipath networks -----

    /// `Spread_Network NAME ADDRESS[:PORT] { DAEMON ADDRESS [;] ... }`.
    fn network(&mut self, line: usize) -> Result<(), Located> {
        if self.networks.len() + 1 >= MAX_NETWORKS {
            return Err((
                line,
                format!("too many networks (at most {MAX_NETWORKS}, the segments' one included)"),
            ));
        }
        let token = self.next();
        let name = match token.kind {
            TokenKind::Word(name) | TokenKind::Quoted(name) if !name.is_empty() => name,
            other => {
                return Err((
                    token.line,
                    format!("expected a network name after Spread_Network, found {other}"),
                ))
            }
        };
        if self.networks.iter().any(|n| n.name == name) {
            return Err((token.line, format!("network name \"{name}\" is used twice")));
        }
        let (address, port) = self.cast_address(&format!("the address of network \"{name}\""))?;
        self.expect(TokenKind::OpenBrace, "after network address")?;
        let mut members: Vec<NetworkMember> = Vec::new();
        let mut lines = Vec::new();
        loop {
            let token = self.next();
            let written = match token.kind {
                TokenKind::CloseBrace => break,
                TokenKind::End => {
                    return Err((
                        token.line,
                        format!("missing '}}' closing the network opened on line {line}"),
                    ));
                }
                TokenKind::Word(daemon) | TokenKind::Quoted(daemon) => daemon,
                other => return Err((token.line, format!("expected a daemon name, found {other}"))),
            };
            let daemon = truncate_name(&written).to_string();
            let Some(member_address) = self.peek_bare_address() else {
                if let TokenKind::Word(word) = &self.peek().kind {
                    self.check_not_malformed_address(self.line(), word, "a daemon's address")?;
                }
                return self.error(format!(
                    "expected the address of \"{daemon}\" on network \"{name}\", found {}",
                    self.peek().kind
                ));
            };
            self.next();
            self.accept(&TokenKind::Semicolon);
            self.check_daemon_address(token.line, &daemon, member_address)?;
            if let Some(other) = members
                .iter()
                .find(|m| m.daemon == daemon || m.address == member_address)
            {
                return Err((token.line, format!("daemon \"{daemon}\" or its address {member_address} is already on network \"{name}\" (as \"{}\")", other.daemon)));
            }
            members.push(NetworkMember {
                daemon,
                address: member_address,
            });
            lines.push(token.line);
        }
        if members.is_empty() {
            return Err((line, format!("network \"{name}\" has no daemons")));
        }
        self.check_group_address(line, &format!("network \"{name}\""), address)?;
        let port = match port {
            None | Some(0) => DEFAULT_PORT,
            Some(port) => port,
        };
        self.networks.push(Network {
            name,
            address,
            port,
            members,
        });
        self.member_lines.push(lines);
        Ok(())
    }

    // ----- whole file -----

    fn finish(mut self) -> Result<(Config, Vec<Located>), Located> {
        if self.segments.is_empty() {
            return Err((0, "no Spread_Segment in the configuration".to_string()));
        }
        if self.daemon_lines.is_empty() {
            return Err((0, "no daemons in the configuration".to_string()));
        }
        let o = &mut self.options;
        o.wide_area_network = self.wide_area_network.unwrap_or(self.segments.len() > 1);
        o.accelerated_ring = o.accelerated_ring_configured.unwrap_or(!o.wide_area_network);
        let written = self.timeouts_written.iter().filter(|&&w| w).count();
        if written == 0 {
            o.set_timeouts(if o.wide_area_network {
                &WAN_TIMEOUTS
            } else {
                &LAN_TIMEOUTS
            });
        } else if written < TIMEOUT_NAMES.len() {
            let missing: Vec<&str> = TIMEOUT_NAMES
                .iter()
                .zip(self.timeouts_written)
                .filter(|&(_, w)| !w)
                .map(|(&name, _)| name)
                .collect();
            return Err((
                0,
                format!(
                    "membership timeouts must be set all or none; missing {}",
                    missing.join(", ")
                ),
            ));
        }
        o.timeouts_configured = written > 0;
        if o.personal_window > o.window {
            return Err((
                0,
                format!(
                    "PersonalWindow ({}) is larger than Window ({})",
                    o.personal_window, o.window
                ),
            ));
        }
        if o.accelerated_ring_configured == Some(true) && o.accelerated_window > o.personal_window {
            return Err((
                0,
                format!(
                    "AcceleratedWindow ({}) is larger than PersonalWindow ({})",
                    o.accelerated_window, o.personal_window
                ),
            ));
        }
        for (network, lines) in self.networks.iter().zip(&self.member_lines) {
            for (member, &line) in network.members.iter().zip(lines) {
                if !self
                    .segments
                    .iter()
                    .flat_map(|s| &s.daemons)
                    .any(|d| d.name == member.daemon)
                {
                    return Err((
                        line,
                        format!(
                            "network \"{}\": no daemon \"{}\" in the segments",
                            network.name, member.daemon
                        ),
                    ));
                }
            }
        }
        let config = Config {
            segments: self.segments,
            networks: self.networks,
            options: self.options,
            warnings: Vec::new(),
        };
        Ok((config, self.warnings))
    }
}
