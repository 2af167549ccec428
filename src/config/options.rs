//! The option settings of spread.conf (everything but segments), with the original's defaults.

use std::time::Duration;

/// Bits of `DebugFlags`, with the original's values (the daemon maps them onto log targets).
pub mod debug_flag {
    pub const NONE: u32 = 0;
    pub const EXIT: u32 = 0x0000_0001;
    pub const DATA_LINK: u32 = 0x0000_0002;
    pub const MEMORY: u32 = 0x0000_0004;
    pub const EVENTS: u32 = 0x0000_0008;
    pub const PRINT: u32 = 0x0000_0010;
    pub const NETWORK: u32 = 0x0000_0020;
    pub const PROTOCOL: u32 = 0x0000_0040;
    pub const SESSION: u32 = 0x0000_0080;
    pub const CONFIGURATION: u32 = 0x0000_0100;
    pub const MEMBERSHIP: u32 = 0x0000_0200;
    pub const FLOW_CONTROL: u32 = 0x0000_0400;
    pub const STATUS: u32 = 0x0000_0800;
    pub const DEBUG: u32 = 0x0000_1000;
    pub const GROUPS: u32 = 0x0000_2000;
    pub const SKIPLIST: u32 = 0x0020_0000;
    pub const ACM: u32 = 0x0040_0000;
    pub const SECURITY: u32 = 0x0080_0000;
    pub const ALL: u32 = 0xffff_ffff;

    /// The flag spelled `word` in a DebugFlags list (case-insensitive).
    pub fn by_name(word: &str) -> Option<u32> {
        const NAMES: [(&str, u32); 19] = [
            ("NONE", NONE),
            ("EXIT", EXIT),
            ("DATA_LINK", DATA_LINK),
            ("MEMORY", MEMORY),
            ("EVENTS", EVENTS),
            ("PRINT", PRINT),
            ("NETWORK", NETWORK),
            ("PROTOCOL", PROTOCOL),
            ("SESSION", SESSION),
            ("CONFIGURATION", CONFIGURATION),
            ("MEMBERSHIP", MEMBERSHIP),
            ("FLOW_CONTROL", FLOW_CONTROL),
            ("STATUS", STATUS),
            ("DEBUG", DEBUG),
            ("GROUPS", GROUPS),
            ("SKIPLIST", SKIPLIST),
            ("ACM", ACM),
            ("SECURITY", SECURITY),
            ("ALL", ALL),
        ];
        NAMES
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(word))
            .map(|&(_, bit)| bit)
    }
}

/// `EventPriority`: the least severe event that is logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum EventPriority {
    Debug,
    Info,
    Warning,
    Error,
    Critical,
    Fatal,
}

impl EventPriority {
    /// The priority spelled `word` (case-insensitive; the original spells debug `pDEBUG`).
    pub fn by_name(word: &str) -> Option<EventPriority> {
        const NAMES: [(&str, EventPriority); 7] = [
            ("pDEBUG", EventPriority::Debug),
            ("DEBUG", EventPriority::Debug),
            ("INFO", EventPriority::Info),
            ("WARNING", EventPriority::Warning),
            ("ERROR", EventPriority::Error),
            ("CRITICAL", EventPriority::Critical),
            ("FATAL", EventPriority::Fatal),
        ];
        NAMES
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(word))
            .map(|&(_, p)| p)
    }

    /// The `log` filter that lets through this priority and the more severe ones.
    pub fn level_filter(self) -> log::LevelFilter {
        match self {
            EventPriority::Debug => log::LevelFilter::Debug,
            EventPriority::Info => log::LevelFilter::Info,
            EventPriority::Warning => log::LevelFilter::Warn,
            EventPriority::Error | EventPriority::Critical | EventPriority::Fatal => log::LevelFilter::Error,
        }
    }
}

/// `SocketPortReuse`: whether the daemon sets SO_REUSEADDR on its sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortReuse {
    /// The daemon decides (the original: on when binding the wildcard address).
    Auto,
    On,
    Off,
}

/// `Multipath`: how a ring with extra networks uses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MultipathMode {
    /// Every packet and the token on every healthy network, first copy wins.
    Active,
    /// One network carries the traffic, the next takes over on failure.
    Passive,
    /// The token on every healthy network, data spread across them.
    Hybrid,
}

impl MultipathMode {
    const NAMES: [(&'static str, MultipathMode); 3] = [
        ("active", MultipathMode::Active),
        ("passive", MultipathMode::Passive),
        ("hybrid", MultipathMode::Hybrid),
    ];

    /// The mode spelled `word` (case-insensitive).
    pub fn by_name(word: &str) -> Option<MultipathMode> {
        Self::NAMES
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(word))
            .map(|&(_, m)| m)
    }

    /// The mode's name as the configuration spells it, in lower case.
    pub fn name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|&&(_, m)| m == self)
            .map(|&(name, _)| name)
            .expect("every mode is named")
    }
}

/// `ActiveIPVersion`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpVersion {
    V4,
    V6,
}

/// The options of a configuration. Timeouts, `accelerated_ring` and `wide_area_network` hold the
/// values in force: the written ones, else the original's defaults for the kind of network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub max_session_messages: usize,
    /// `Window`: packets a whole ring may send per token rotation.
    pub window: u32,
    /// `PersonalWindow`: packets one daemon may send per token visit.
    pub personal_window: u32,
    /// `AcceleratedRing` in force: written, else on for a LAN and off for a WAN.
    pub accelerated_ring: bool,
    /// `AcceleratedRing` as written, if it was (it enters the configuration hash).
    pub accelerated_ring_configured: Option<bool>,
    /// `AcceleratedWindow`: packets sent after passing the token on.
    pub accelerated_window: u32,
    /// `WideAreaNetwork` in force: written, else true when there is more than one segment.
    pub wide_area_network: bool,
    /// True when the timeouts below were written (then all of them were).
    pub timeouts_configured: bool,
    pub token_timeout: Duration,
    pub hurry_timeout: Duration,
    pub alive_timeout: Duration,
    pub join_timeout: Duration,
    pub rep_timeout: Duration,
    pub seg_timeout: Duration,
    pub gather_timeout: Duration,
    pub form_timeout: Duration,
    pub lookup_timeout: Duration,
    /// `DebugFlags` mask, see [`debug_flag`].
    pub debug_flags: u32,
    pub event_priority: EventPriority,
    /// `EventLogFile`, as written (`%h` stands for the host name, see [`Options::event_log_path`]).
    pub event_log_file: Option<String>,
    /// `EventTimeStamp` was written.
    pub event_timestamp: bool,
    /// `EventTimeStamp = "strftime format"`.
    pub event_timestamp_format: Option<String>,
    /// `EventPreciseTimeStamp` was written.
    pub event_precise_timestamp: bool,
    /// `DangerousMonitor`: obey monitor commands that partition or throttle the ring.
    pub dangerous_monitor: bool,
    pub socket_port_reuse: PortReuse,
    pub runtime_dir: String,
    pub daemon_user: String,
    pub daemon_group: String,
    /// Authentication methods clients may choose (`NULL` unless auth lines are written).
    pub allowed_auth_methods: Vec<String>,
    /// Authentication methods every client must pass.
    pub required_auth_methods: Vec<String>,
    pub access_control_policy: String,
    /// `ActiveIPVersion` as written; otherwise the family of the daemons' addresses.
    pub active_ip_version: Option<IpVersion>,
    pub exclude_seg_addrs_from_hash: bool,
    pub ignore_multicast_join_errors: bool,
    pub multipath: MultipathMode,
}

/// Membership timeouts of one kind of network, in ms, in the order of [`TIMEOUT_NAMES`].
pub(super) type TimeoutSet = [u64; 9];

pub(super) const TIMEOUT_NAMES: [&str; 9] = [
    "TokenTimeout",
    "HurryTimeout",
    "AliveTimeout",
    "JoinTimeout",
    "RepTimeout",
    "SegTimeout",
    "GatherTimeout",
    "FormTimeout",
    "LookupTimeout",
];

pub(super) const LAN_TIMEOUTS: TimeoutSet = [1250, 500, 250, 250, 625, 500, 1250, 1250, 30000];
pub(super) const WAN_TIMEOUTS: TimeoutSet = [5000, 1500, 250, 250, 1250, 500, 2500, 2500, 45000];

impl Options {
    /// The original's defaults for a single-segment (LAN) configuration.
    pub fn new() -> Options {
        let mut options = Options {
            max_session_messages: 1000,
            window: 160,
            personal_window: 20,
            accelerated_ring: true,
            accelerated_ring_configured: None,
            accelerated_window: 15,
            wide_area_network: false,
            timeouts_configured: false,
            token_timeout: Duration::ZERO,
            hurry_timeout: Duration::ZERO,
            alive_timeout: Duration::ZERO,
            join_timeout: Duration::ZERO,
            rep_timeout: Duration::ZERO,
            seg_timeout: Duration::ZERO,
            gather_timeout: Duration::ZERO,
            form_timeout: Duration::ZERO,
            lookup_timeout: Duration::ZERO,
            debug_flags: debug_flag::CONFIGURATION,
            event_priority: EventPriority::Info,
            event_log_file: None,
            event_timestamp: false,
            event_timestamp_format: None,
            event_precise_timestamp: false,
            dangerous_monitor: false,
            socket_port_reuse: PortReuse::Auto,
            runtime_dir: "/var/run/spread".to_string(),
            daemon_user: "spread".to_string(),
            daemon_group: "spread".to_string(),
            allowed_auth_methods: vec!["NULL".to_string()],
            required_auth_methods: Vec::new(),
            access_control_policy: "PERMIT".to_string(),
            active_ip_version: None,
            exclude_seg_addrs_from_hash: false,
            ignore_multicast_join_errors: false,
            multipath: MultipathMode::Hybrid,
        };
        options.set_timeouts(&LAN_TIMEOUTS);
        options
    }

    /// The log filter `EventPriority` asks for.
    pub fn log_level(&self) -> log::LevelFilter {
        self.event_priority.level_filter()
    }

    /// `EventLogFile` with `%h`/`%H` replaced by `host_name`, as the original expands it.
    pub fn event_log_path(&self, host_name: &str) -> Option<String> {
        self.event_log_file
            .as_ref()
            .map(|f| f.replace("%h", host_name).replace("%H", host_name))
    }

    pub(super) fn timeout_mut(&mut self, index: usize) -> &mut Duration {
        match index {
            0 => &mut self.token_timeout,
            1 => &mut self.hurry_timeout,
            2 => &mut self.alive_timeout,
            3 => &mut self.join_timeout,
            4 => &mut self.rep_timeout,
            5 => &mut self.seg_timeout,
            6 => &mut self.gather_timeout,
            7 => &mut self.form_timeout,
            _ => &mut self.lookup_timeout,
        }
    }

    pub(super) fn set_timeouts(&mut self, set: &TimeoutSet) {
        for (index, &ms) in set.iter().enumerate() {
            *self.timeout_mut(index) = Duration::from_millis(ms);
        }
    }
}

impl Default for Options {
    fn default() -> Options {
        Options::new()
    }
}
