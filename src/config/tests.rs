use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use super::*;

/// Names the tests may look up; everything else fails like an unknown host.
fn fake_resolver(name: &str) -> Result<Vec<IpAddr>, String> {
    match name {
        "gamma.example" => Ok(vec!["10.1.0.9".parse().unwrap()]),
        "dual.example" => Ok(vec!["fd00::9".parse().unwrap(), "10.1.0.10".parse().unwrap()]),
        _ => Err(format!("unknown host \"{name}\"")),
    }
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse_with_resolver(text, "spread.conf", &fake_resolver)
}

fn parse_ok(text: &str) -> Config {
    parse(text).unwrap_or_else(|e| panic!("unexpected error: {e}"))
}

fn parse_err(text: &str) -> ConfigError {
    match parse(text) {
        Ok(config) => panic!("expected an error, parsed {config:?}"),
        Err(e) => e,
    }
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// The usual single-daemon file, as in the original's sample, in our own words.
const SAMPLE_LIKE: &str = "\
# test fixture: one loopback daemon
Spread_Segment 127.0.0.255
{
\tlocalhost\t\t127.0.0.1
}
";

#[test]
fn sample_like_file_with_defaults() {
    let config = parse_ok(SAMPLE_LIKE);
    assert_eq!(config.segments.len(), 1);
    let segment = &config.segments[0];
    assert_eq!(segment.address, ip("127.0.0.255"));
    assert_eq!(segment.port, DEFAULT_PORT);
    assert!(segment.extra_addresses.is_empty());
    let daemon = &segment.daemons[0];
    assert_eq!(daemon.name, "localhost");
    assert_eq!(daemon.address, ip("127.0.0.1"));
    assert!(daemon.listen_on_any);
    assert_eq!(daemon.daemon_interfaces, vec![ip("127.0.0.1")]);
    assert_eq!(daemon.client_interfaces, vec![ip("127.0.0.1")]);
    assert_eq!(daemon.monitor_interfaces, vec![ip("127.0.0.1")]);
    assert_eq!(daemon.virtual_id, None);
    assert_eq!(daemon.id(), virtual_id_from_name("localhost"));

    let o = &config.options;
    assert_eq!(o.max_session_messages, 1000);
    assert_eq!((o.window, o.personal_window, o.accelerated_window), (160, 20, 15));
    assert!(!o.wide_area_network);
    assert!(o.accelerated_ring);
    assert_eq!(o.accelerated_ring_configured, None);
    assert!(!o.timeouts_configured);
    let ms = Duration::from_millis;
    assert_eq!(
        [
            o.token_timeout,
            o.hurry_timeout,
            o.alive_timeout,
            o.join_timeout,
            o.rep_timeout,
            o.seg_timeout,
            o.gather_timeout,
            o.form_timeout,
            o.lookup_timeout
        ],
        [
            ms(1250),
            ms(500),
            ms(250),
            ms(250),
            ms(625),
            ms(500),
            ms(1250),
            ms(1250),
            ms(30000)
        ]
    );
    assert_eq!(o.debug_flags, debug_flag::CONFIGURATION);
    assert_eq!(o.event_priority, EventPriority::Info);
    assert_eq!(o.log_level(), log::LevelFilter::Info);
    assert_eq!(o.event_log_file, None);
    assert!(!o.event_timestamp && !o.event_precise_timestamp && !o.dangerous_monitor);
    assert_eq!(o.socket_port_reuse, PortReuse::Auto);
    assert_eq!(o.runtime_dir, "/var/run/spread");
    assert_eq!(
        (o.daemon_user.as_str(), o.daemon_group.as_str()),
        ("spread", "spread")
    );
    assert_eq!(o.allowed_auth_methods, vec!["NULL".to_string()]);
    assert!(o.required_auth_methods.is_empty());
    assert_eq!(o.access_control_policy, "PERMIT");
    assert_eq!(o.active_ip_version, None);
    // The loopback segment address is accepted with a warning, as the original does.
    assert_eq!(config.warnings.len(), 1);
    assert_eq!(config.warnings[0].line, 2);
    assert!(config.warnings[0].reason.contains("loopback"));
}

#[test]
fn several_segments_default_to_wide_area_settings() {
    let config = parse_ok(
        "Spread_Segment 10.0.0.255:4900 { a 10.0.0.1 b 10.0.0.2 }\n\
         Spread_Segment 10.2.0.255:4900 { c 10.2.0.1 }\n",
    );
    let o = &config.options;
    assert!(o.wide_area_network);
    assert!(!o.accelerated_ring);
    assert_eq!(o.token_timeout, Duration::from_millis(5000));
    assert_eq!(o.hurry_timeout, Duration::from_millis(1500));
    assert_eq!(o.rep_timeout, Duration::from_millis(1250));
    assert_eq!(o.gather_timeout, Duration::from_millis(2500));
    assert_eq!(o.form_timeout, Duration::from_millis(2500));
    assert_eq!(o.lookup_timeout, Duration::from_millis(45000));
    let names: Vec<(usize, usize, &str)> = config
        .daemons()
        .map(|(s, d, e)| (s, d, e.name.as_str()))
        .collect();
    assert_eq!(names, vec![(0, 0, "a"), (0, 1, "b"), (1, 0, "c")]);
}

#[test]
fn explicit_wide_area_and_ring_settings_win() {
    let config = parse_ok("Spread_Segment 10.0.0.255 { a 10.0.0.1 }\nWideAreaNetwork = yes\n");
    assert!(config.options.wide_area_network);
    assert!(!config.options.accelerated_ring);
    assert_eq!(config.options.token_timeout, Duration::from_millis(5000));
    let config = parse_ok(
        "Spread_Segment 10.0.0.255 { a 10.0.0.1 }\nSpread_Segment 10.1.0.255 { b 10.1.0.1 }\n\
         WideAreaNetwork = FALSE\nAcceleratedRing = No\n",
    );
    assert!(!config.options.wide_area_network);
    assert!(!config.options.accelerated_ring);
    assert_eq!(config.options.accelerated_ring_configured, Some(false));
    assert_eq!(config.options.token_timeout, Duration::from_millis(1250));
}

/// Every option, each written differently from its default.
const ALL_OPTIONS: &str = r#"
Spread_Segment 192.168.7.255:5100 {
    node1 192.168.7.1
}
DebugFlags = { ALL !DEBUG !data_link }
EventPriority = WARNING
EventLogFile = /var/log/spread-%h.log
EventTimeStamp = "[%a %d %b %Y %H:%M:%S]"
EventPreciseTimeStamp
DangerousMonitor = true
SocketPortReuse = ON
RuntimeDir = /tmp/spread-rt
DaemonUser = nobody
DaemonGroup = 'nogroup'
RequiredAuthMethods = "IP"
AllowedAuthMethods = "IP  PASSWORD"
AccessControlPolicy = "IP"
MaxSessionMessages = 5000
ActiveIPVersion = IPv4
Window = 300
PersonalWindow = 30
AcceleratedRing = true
AcceleratedWindow = 25
TokenTimeout = 2000
HurryTimeout = 600
AliveTimeout = 300
JoinTimeout = 310
RepTimeout = 700
SegTimeout = 550
GatherTimeout = 1400
FormTimeout = 1500
LookupTimeout = 40000
WideAreaNetwork = no
ExcludeSegAddrsFromHash = yes
IgnoreMulticastJoinErrors = on
"#;

#[test]
fn every_option_is_parsed_and_kept() {
    let config = parse_ok(ALL_OPTIONS);
    let o = &config.options;
    assert_eq!(
        o.debug_flags,
        debug_flag::ALL & !debug_flag::DEBUG & !debug_flag::DATA_LINK
    );
    assert_eq!(o.event_priority, EventPriority::Warning);
    assert_eq!(o.log_level(), log::LevelFilter::Warn);
    assert_eq!(o.event_log_file.as_deref(), Some("/var/log/spread-%h.log"));
    assert_eq!(
        o.event_log_path("box").as_deref(),
        Some("/var/log/spread-box.log")
    );
    assert!(o.event_timestamp);
    assert_eq!(
        o.event_timestamp_format.as_deref(),
        Some("[%a %d %b %Y %H:%M:%S]")
    );
    assert!(o.event_precise_timestamp);
    assert!(o.dangerous_monitor);
    assert_eq!(o.socket_port_reuse, PortReuse::On);
    assert_eq!(o.runtime_dir, "/tmp/spread-rt");
    assert_eq!(o.daemon_user, "nobody");
    assert_eq!(o.daemon_group, "nogroup");
    assert_eq!(o.required_auth_methods, vec!["IP".to_string()]);
    assert_eq!(
        o.allowed_auth_methods,
        vec!["IP".to_string(), "PASSWORD".to_string()]
    );
    assert_eq!(o.access_control_policy, "IP");
    assert_eq!(o.max_session_messages, 5000);
    assert_eq!(o.active_ip_version, Some(IpVersion::V4));
    assert_eq!((o.window, o.personal_window, o.accelerated_window), (300, 30, 25));
    assert!(o.accelerated_ring);
    assert_eq!(o.accelerated_ring_configured, Some(true));
    assert!(o.timeouts_configured);
    let ms = Duration::from_millis;
    assert_eq!(
        [
            o.token_timeout,
            o.hurry_timeout,
            o.alive_timeout,
            o.join_timeout,
            o.rep_timeout
        ],
        [ms(2000), ms(600), ms(300), ms(310), ms(700)]
    );
    assert_eq!(
        [o.seg_timeout, o.gather_timeout, o.form_timeout, o.lookup_timeout],
        [ms(550), ms(1400), ms(1500), ms(40000)]
    );
    assert!(!o.wide_area_network);
    assert!(o.exclude_seg_addrs_from_hash);
    assert!(o.ignore_multicast_join_errors);
    assert_eq!(config.segments[0].port, 5100);
    assert!(config.warnings.is_empty());
}

#[test]
fn keywords_are_case_insensitive_and_timestamp_may_stand_alone() {
    let config = parse_ok(
        "spread_segment 10.0.0.255 { a 10.0.0.1 }\nEVENTTIMESTAMP\nwindow = 10\npersonalwindow = 5\n\
         acceleratedwindow = 5\neventpriority = pDEBUG\nSocketPortReuse = off\n",
    );
    let o = &config.options;
    assert!(o.event_timestamp);
    assert_eq!(o.event_timestamp_format, None);
    assert_eq!((o.window, o.personal_window), (10, 5));
    assert_eq!(o.event_priority, EventPriority::Debug);
    assert_eq!(o.log_level(), log::LevelFilter::Debug);
    assert_eq!(o.socket_port_reuse, PortReuse::Off);
}

#[test]
fn priorities_map_to_log_levels() {
    use log::LevelFilter;
    let cases = [
        ("pDEBUG", LevelFilter::Debug),
        ("INFO", LevelFilter::Info),
        ("WARNING", LevelFilter::Warn),
        ("ERROR", LevelFilter::Error),
        ("CRITICAL", LevelFilter::Error),
        ("FATAL", LevelFilter::Error),
    ];
    for (word, level) in cases {
        let config = parse_ok(&format!(
            "Spread_Segment 10.0.0.255 {{ a 10.0.0.1 }}\nEventPriority = {word}\n"
        ));
        assert_eq!(config.options.log_level(), level, "{word}");
    }
}

#[test]
fn daemon_forms_name_address_and_lookups() {
    let config = parse_ok(
        "Spread_Segment 10.1.0.255 {\n\
         \talpha 10.1.0.1\n\
         \t10.1.0.2\n\
         \tgamma.example ;\n\
         \t10.1.0.3\n\
         \t\"quoted name\" 10.1.0.4\n\
         \tdual.example\n\
         \tINFO 10.1.0.5\n\
         }\n",
    );
    let daemons: Vec<(&str, IpAddr)> = config.segments[0]
        .daemons
        .iter()
        .map(|d| (d.name.as_str(), d.address))
        .collect();
    assert_eq!(
        daemons,
        vec![
            ("alpha", ip("10.1.0.1")),
            ("10.1.0.2", ip("10.1.0.2")),
            ("gamma.example", ip("10.1.0.9")),
            ("10.1.0.3", ip("10.1.0.3")),
            ("quoted name", ip("10.1.0.4")),
            // The first address of the daemons' family is taken.
            ("dual.example", ip("10.1.0.10")),
            ("INFO", ip("10.1.0.5")),
        ]
    );
}

#[test]
fn name_followed_by_address_on_next_line_is_one_daemon() {
    // As in the original: without ';' a name and the next address form one entry.
    let config = parse_ok("Spread_Segment 10.1.0.255 {\n gamma.example\n 10.1.0.3\n}\n");
    let daemons = &config.segments[0].daemons;
    assert_eq!(daemons.len(), 1);
    assert_eq!(
        (daemons[0].name.as_str(), daemons[0].address),
        ("gamma.example", ip("10.1.0.3"))
    );
}

#[test]
fn multihomed_stanzas_and_virtual_ids() {
    let config = parse_ok(
        "Spread_Segment 225.0.1.1 {\n\
         \tmh1 1.2.3.4 { D 1.2.3.4 C 192.168.0.4 }\n\
         \tmh2 1.2.3.5 VirtualID = 77 {\n\t\tD 1.2.3.5\n\t\tC 192.168.0.5\n\t\tC M 127.0.0.1 }\n\
         \tmh3 1.2.3.6 { 192.168.0.6 1.2.3.6 }\n\
         \tmh4 1.2.3.7 { D 1.2.3.7 C 0.0.0.0 }\n\
         \tmh5 1.2.3.8 { d c m 0.0.0.0 }\n\
         \tplain 1.2.3.9 VirtualID = 5;\n\
         }\n",
    );
    let d = &config.segments[0].daemons;
    assert_eq!(d.len(), 6);
    assert!(!d[0].listen_on_any);
    assert_eq!(d[0].daemon_interfaces, vec![ip("1.2.3.4")]);
    assert_eq!(d[0].client_interfaces, vec![ip("192.168.0.4")]);
    assert!(d[0].monitor_interfaces.is_empty());
    assert_eq!(d[1].virtual_id, Some(77));
    assert_eq!(d[1].id(), 77);
    assert_eq!(d[1].client_interfaces, vec![ip("192.168.0.5"), ip("127.0.0.1")]);
    assert_eq!(d[1].monitor_interfaces, vec![ip("127.0.0.1")]);
    assert_eq!(d[2].daemon_interfaces, vec![ip("192.168.0.6"), ip("1.2.3.6")]);
    assert_eq!(d[2].client_interfaces, d[2].daemon_interfaces);
    assert_eq!(d[2].monitor_interfaces, d[2].daemon_interfaces);
    assert_eq!(d[3].client_interfaces, vec![ip("0.0.0.0")]);
    assert_eq!(d[4].daemon_interfaces, vec![ip("0.0.0.0")]);
    assert_eq!(d[5].id(), 5);
    assert!(d[5].listen_on_any);
    assert!(config.warnings.is_empty());
}

#[test]
fn ipv6_forms() {
    let config = parse_ok(
        "Spread_Segment [ff02::1:2:3%eth0]:5000 {\n\
         \tv6a fd00::1\n\
         \tfd00::2%eth0\n\
         \tv6c fd00::3 { D fd00::3 C :: }\n\
         }\n\
         Spread_Segment ff02::4 ff02::5 { v6d fd00::4 }\n\
         Spread_Segment [ff02::6] { v6e fd00::5 }\n",
    );
    let s = &config.segments;
    assert_eq!(s[0].address, ip("ff02::1:2:3"));
    assert_eq!(s[0].port, 5000);
    assert_eq!(s[0].daemons[1].name, "fd00::2");
    assert_eq!(s[0].daemons[1].address, ip("fd00::2"));
    assert_eq!(
        s[0].daemons[2].client_interfaces,
        vec![IpAddr::V6(Ipv6Addr::UNSPECIFIED)]
    );
    assert_eq!((s[1].address, s[1].port), (ip("ff02::4"), DEFAULT_PORT));
    assert_eq!(s[1].extra_addresses, vec![ip("ff02::5")]);
    assert_eq!(s[2].address, ip("ff02::6"));
    let config = parse_ok("Spread_Segment [::1]:5000 {\n localhost ::1\n}\n");
    assert_eq!(config.segments[0].daemons[0].address, ip("::1"));
    // Loopback and non-multicast IPv6 segment addresses are both warned about.
    assert_eq!(config.warnings.len(), 2);
}

/// Line of the error `text` yields, and its reason.
fn error_of(text: &str) -> (usize, String) {
    let e = parse_err(text);
    assert_eq!(e.file, "spread.conf");
    (e.line, e.reason)
}

fn assert_error(text: &str, line: usize, reason_part: &str) {
    let (got_line, reason) = error_of(text);
    assert_eq!(got_line, line, "line of {reason:?} for:\n{text}");
    assert!(
        reason.contains(reason_part),
        "reason {reason:?} lacks {reason_part:?}"
    );
}

const SEG: &str = "Spread_Segment 10.0.0.255 { a 10.0.0.1 }\n";

#[test]
fn syntax_errors_name_their_line() {
    assert_error(&format!("{SEG}\n\n# c\nFoo = 3\n"), 5, "unknown option \"Foo\"");
    assert_error(
        "Spread_Segment 10.0.0.255\n\n a 10.0.0.1 }\n",
        3,
        "expected '{' after segment address",
    );
    assert_error("Spread_Segment {\n}\n", 1, "expected a segment address");
    assert_error(
        "Spread_Segment bogus { a 10.0.0.1 }\n",
        1,
        "invalid address \"bogus\"",
    );
    assert_error(
        "Spread_Segment 10.0.0.255:99999 { a 10.0.0.1 }\n",
        1,
        "port out of range",
    );
    assert_error(
        "Spread_Segment 10.0.0.255 {\n a 10.0.0.1\n\n",
        2,
        "missing '}' closing the segment opened on line 1",
    );
    assert_error(&format!("{SEG}Window 100\n"), 2, "expected '=' after Window");
    assert_error(&format!("{SEG}Window = lots\n"), 2, "expected a number");
    assert_error(&format!("{SEG}Window =\n"), 2, "expected a number");
    assert_error(&format!("{SEG}Window = 99999999999\n"), 2, "too large");
    assert_error(&format!("{SEG}\nTokenTimeout = 0\n"), 3, "greater than zero");
    assert_error(
        &format!("{SEG}AcceleratedRing = maybe\n"),
        2,
        "expected yes or no",
    );
    assert_error(
        &format!("{SEG}SocketPortReuse = sometimes\n"),
        2,
        "on, off or auto",
    );
    assert_error(
        &format!("{SEG}EventPriority = LOUD\n"),
        2,
        "unknown event priority",
    );
    assert_error(
        &format!("{SEG}DebugFlags = {{ ALL\n NOISE }}\n"),
        3,
        "unknown debug flag \"NOISE\"",
    );
    assert_error(&format!("{SEG}DebugFlags = ALL\n"), 2, "expected '{'");
    assert_error(&format!("{SEG}ActiveIPVersion = IPv5\n"), 2, "IPv4 or IPv6");
    assert_error(&format!("{SEG}RuntimeDir = \"\"\n"), 2, "empty value");
    assert_error(
        &format!("{SEG}\n= 3\n"),
        3,
        "expected an option or Spread_Segment",
    );
    assert_error(
        "Spread_Segment 10.0.0.255 { a 10.0.0.1 = }\n",
        1,
        "expected a daemon name or address",
    );
    assert_error(
        "EventLogFile = \"x\nSpread_Segment",
        1,
        "unterminated quoted string",
    );
}

#[test]
fn daemon_errors_name_their_line() {
    assert_error(
        "Spread_Segment 10.0.0.255 {\n a 10.0.0.1\n a 10.0.0.2\n}\n",
        3,
        "daemon name \"a\" is used twice",
    );
    assert_error(
        "Spread_Segment 10.0.0.255 {\n a 10.0.0.1\n b 10.0.0.1\n}\n",
        3,
        "already used by daemon \"a\"",
    );
    assert_error(
        "Spread_Segment 10.0.0.255 {\n\n unknown.example\n}\n",
        3,
        "unknown host",
    );
    assert_error(
        "Spread_Segment 10.0.0.255 {\n a 10.0.0.300\n}\n",
        2,
        "invalid IPv4 address",
    );
    assert_error(
        "Spread_Segment 10.0.0.255 {\n a 10.0.0.1:4803\n}\n",
        2,
        "must not specify a port",
    );
    assert_error("Spread_Segment 10.0.0.255 {\n a 0.0.0.0\n}\n", 2, "unspecified");
    assert_error("Spread_Segment 10.0.0.255 {\n a 224.0.0.1\n}\n", 2, "multicast");
    assert_error(
        "Spread_Segment 10.0.0.255 {\n a 10.0.0.1\n b fd00::1\n}\n",
        3,
        "IP version",
    );
    assert_error(
        "Spread_Segment 10.0.0.255 {\n \"\" 10.0.0.1\n}\n",
        2,
        "empty daemon name",
    );
    assert_error(
        "Spread_Segment 10.0.0.255 {\n a 10.0.0.1 VirtualID = 0\n}\n",
        2,
        "greater than zero",
    );
    assert_error(
        "Spread_Segment 10.0.0.255 {\n a 10.0.0.1 VirtualID 3\n}\n",
        2,
        "expected '=' after VirtualID",
    );
    assert_error(
        "Spread_Segment 10.0.0.255 {\n a 10.0.0.1 VirtualID = 9\n b 10.0.0.2 VirtualID = 9\n}\n",
        3,
        "virtual ID 9 of daemon \"b\" is already used by daemon \"a\"",
    );
    assert_error(
        "Spread_Segment 10.0.0.255 {\n a 10.0.0.1 {\n }\n}\n",
        2,
        "empty interface list",
    );
    assert_error(
        "Spread_Segment 10.0.0.255 {\n a 10.0.0.1 { C 10.0.0.1 }\n}\n",
        2,
        "do not include its address",
    );
    assert_error(
        "Spread_Segment 10.0.0.255 {\n a 10.0.0.1 { D 10.0.0.9 }\n}\n",
        2,
        "do not include its address",
    );
    assert_error(
        "Spread_Segment 10.0.0.255 {\n a 10.0.0.1 {\n X 10.0.0.1 }\n}\n",
        3,
        "expected D, C, M or an address",
    );
    assert_error(
        "Spread_Segment 10.0.0.255 {\n a 10.0.0.1 {\n D 10.0.0.1:80 }\n}\n",
        3,
        "must not specify a port",
    );
    assert_error(
        "Spread_Segment 10.0.0.255 {\n a 10.0.0.1 { D }\n}\n",
        2,
        "expected an address",
    );
}

#[test]
fn same_address_is_allowed_on_different_ports() {
    let config = parse_ok(
        "Spread_Segment 10.0.0.255:4803 { a 10.0.0.1 }\nSpread_Segment 10.0.0.255:4805 { b 10.0.0.1 }\n",
    );
    assert_eq!(config.segments[1].daemons[0].address, ip("10.0.0.1"));
    assert_error(
        "Spread_Segment 10.0.0.255 { a 10.0.0.1 }\nSpread_Segment 10.1.0.255 {\n\n b 10.0.0.1 }\n",
        4,
        "already used",
    );
}

#[test]
fn whole_file_errors_have_no_line() {
    let e = parse_err("# nothing\n");
    assert_eq!(
        (e.line, e.to_string()),
        (
            0,
            "spread.conf: no Spread_Segment in the configuration".to_string()
        )
    );
    assert_error("Spread_Segment 10.0.0.255 { }\n", 0, "no daemons");
    assert_error(
        &format!("{SEG}TokenTimeout = 100\nHurryTimeout = 50\n"),
        0,
        "missing AliveTimeout, JoinTimeout",
    );
    assert_error(
        &format!("{SEG}PersonalWindow = 200\n"),
        0,
        "PersonalWindow (200) is larger than Window (160)",
    );
    assert_error(
        &format!("{SEG}AcceleratedRing = yes\nAcceleratedWindow = 21\n"),
        0,
        "AcceleratedWindow (21) is larger than PersonalWindow (20)",
    );
    // Without AcceleratedRing written the original does not compare these.
    parse_ok(&format!("{SEG}AcceleratedWindow = 21\n"));
}

#[test]
fn error_display_has_file_line_and_reason() {
    let e = parse_err("Spread_Segment 10.0.0.255 { a 10.0.0.1 }\n\n\nFoo = 1\n");
    assert_eq!(e.to_string(), "spread.conf:4: unknown option \"Foo\"");
}

#[test]
fn limits() {
    let daemons = |n: usize, net: usize| -> String {
        (0..n)
            .map(|i| format!(" d{net}x{i} 10.{net}.{}.{}\n", i / 200, i % 200 + 1))
            .collect()
    };
    let full = format!("Spread_Segment 10.0.255.255 {{\n{}}}\n", daemons(MAX_DAEMONS, 0));
    assert_eq!(parse_ok(&full).segments[0].daemons.len(), MAX_DAEMONS);
    let over = format!(
        "Spread_Segment 10.0.255.255 {{\n{}}}\n",
        daemons(MAX_DAEMONS + 1, 0)
    );
    assert_error(&over, MAX_DAEMONS + 2, "too many daemons");
    let split = format!(
        "Spread_Segment 10.0.255.255 {{\n{}}}\nSpread_Segment 10.1.255.255 {{\n{}}}\n",
        daemons(100, 0),
        daemons(29, 1)
    );
    assert_error(&split, 132, "too many daemons (at most 128)");
    let segments: String = (0..=MAX_SEGMENTS)
        .map(|i| format!("Spread_Segment 10.{i}.0.255 {{ n{i} 10.{i}.0.1 }}\n"))
        .collect();
    assert_error(&segments, MAX_SEGMENTS + 1, "too many segments");
    assert_error(
        "Spread_Segment 239.0.0.1 239.0.0.2 239.0.0.3 239.0.0.4 239.0.0.5 239.0.0.6 { a 10.0.0.1 }",
        1,
        "too many segment addresses",
    );
    let interfaces: String = (1..=11).map(|i| format!("C 10.0.1.{i} ")).collect();
    assert_error(
        &format!("Spread_Segment 10.0.0.255 {{ a 10.0.0.1 {{ D 10.0.0.1 {interfaces} }} }}"),
        1,
        "too many interfaces",
    );
}

#[test]
fn long_names_are_cut_like_the_original() {
    let config = parse_ok("Spread_Segment 10.0.0.255 {\n abcdefghijklmnopqrstuvwxyz 10.0.0.1\n}\n");
    let daemon = &config.segments[0].daemons[0];
    assert_eq!(daemon.name, "abcdefghijklmnopqrs");
    assert_eq!(config.warnings.len(), 1);
    assert_eq!(config.warnings[0].line, 2);
    assert_eq!(
        config
            .find_daemon(Some("abcdefghijklmnopqrstuvwxyz"), &[])
            .unwrap(),
        (0, 0)
    );
    // Names equal after cutting collide.
    assert_error(
        "Spread_Segment 10.0.0.255 {\n abcdefghijklmnopqrsXX 10.0.0.1\n abcdefghijklmnopqrsYY 10.0.0.2\n}\n",
        3,
        "used twice",
    );
}

#[test]
fn embedded_default_is_one_loopback_daemon() {
    let config = Config::embedded_default();
    assert_eq!(config.segments.len(), 1);
    let segment = &config.segments[0];
    assert_eq!((segment.address, segment.port), (ip("127.255.255.255"), 4803));
    assert_eq!(segment.daemons.len(), 1);
    let daemon = &segment.daemons[0];
    assert_eq!(
        (daemon.name.as_str(), daemon.address),
        ("localhost", IpAddr::V4(Ipv4Addr::LOCALHOST))
    );
    assert!(!daemon.listen_on_any);
    assert_eq!(daemon.client_interfaces, vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]);
    assert_eq!(config.options, Options::new());
}

#[test]
fn find_daemon_by_name_or_local_address() {
    let config = parse_ok(
        "Spread_Segment 10.0.0.255 { a 10.0.0.1 b 10.0.0.2 }\nSpread_Segment 10.1.0.255 { c 10.1.0.1 d 10.1.0.2 }\n",
    );
    assert_eq!(config.find_daemon(Some("d"), &[]).unwrap(), (1, 1));
    assert_eq!(config.find_daemon(Some("b"), &[ip("10.1.0.1")]).unwrap(), (0, 1));
    let missing = config.find_daemon(Some("zz"), &[ip("10.0.0.1")]).unwrap_err();
    assert!(missing.reason.contains("\"zz\" is not in the configuration"));
    assert_eq!(
        config
            .find_daemon(None, &[ip("127.0.0.1"), ip("10.1.0.1"), ip("10.0.0.2")])
            .unwrap(),
        (0, 1)
    );
    assert_eq!(config.find_daemon(None, &[ip("10.1.0.2")]).unwrap(), (1, 1));
    assert!(config.find_daemon(None, &[ip("127.0.0.1")]).is_err());
    assert!(config.find_daemon(None, &[]).is_err());
}

const HASHED: &str = "Spread_Segment 10.0.0.255:4803 {\n a 10.0.0.1\n b 10.0.0.2\n}\n";

#[test]
fn hash_ignores_layout_comments_and_non_ring_options() {
    let base = parse_ok(HASHED).hash();
    let relaid = "# a comment\nSpread_Segment   10.0.0.255:4803\n{ a\t10.0.0.1 # first\n\n  b 10.0.0.2 ; }\n\
                  Window = 200\nDebugFlags = { ALL }\nTokenTimeout=1\nHurryTimeout=1\nAliveTimeout=1\n\
                  JoinTimeout=1\nRepTimeout=1\nSegTimeout=1\nGatherTimeout=1\nFormTimeout=1\nLookupTimeout=1\n";
    assert_eq!(parse_ok(relaid).hash(), base);
    // Port 4803 written or defaulted is the same.
    assert_eq!(
        parse_ok("Spread_Segment 10.0.0.255 { a 10.0.0.1 b 10.0.0.2 }").hash(),
        base
    );
    // Repeated computation is stable.
    assert_eq!(parse_ok(HASHED).hash(), base);
}

#[test]
fn hash_changes_with_daemons_ports_segments_and_ring() {
    let base = parse_ok(HASHED).hash();
    let variants = [
        "Spread_Segment 10.0.0.255:4804 { a 10.0.0.1 b 10.0.0.2 }",
        "Spread_Segment 10.0.0.254:4803 { a 10.0.0.1 b 10.0.0.2 }",
        "Spread_Segment 10.0.0.255 { a 10.0.0.1 b 10.0.0.3 }",
        "Spread_Segment 10.0.0.255 { a 10.0.0.1 c 10.0.0.2 }",
        "Spread_Segment 10.0.0.255 { b 10.0.0.2 a 10.0.0.1 }",
        "Spread_Segment 10.0.0.255 { a 10.0.0.1 }",
        "Spread_Segment 10.0.0.255 { a 10.0.0.1 b 10.0.0.2 VirtualID = 4 }",
        "Spread_Segment 10.0.0.255 { a 10.0.0.1 } Spread_Segment 10.0.0.255 { b 10.0.0.2 }",
        "Spread_Segment 10.0.0.255 239.1.1.1 { a 10.0.0.1 b 10.0.0.2 }",
        "Spread_Segment 10.0.0.255 { a 10.0.0.1 b 10.0.0.2 } AcceleratedRing = yes",
    ];
    for text in variants {
        assert_ne!(parse_ok(text).hash(), base, "{text}");
    }
}

#[test]
fn hash_text_is_the_canonical_form() {
    let config = parse_ok("Spread_Segment 10.0.0.255 239.1.1.1 { a 10.0.0.1 VirtualID = 12 }");
    assert_eq!(
        config.hash_text(),
        "Segment: port = 4803; [10.0.0.255] [239.1.1.1]\n\t'a' [10.0.0.1] [12]\n\nVersion: 5\nProtocol: Original Ring\n"
    );
    let excluded =
        parse_ok("Spread_Segment 10.0.0.255 { a 10.0.0.1 VirtualID = 12 } ExcludeSegAddrsFromHash = yes");
    assert!(excluded.hash_text().starts_with("Segment: port = 4803;\n"));
    let other_address =
        parse_ok("Spread_Segment 10.0.0.254 { a 10.0.0.1 VirtualID = 12 } ExcludeSegAddrsFromHash = yes");
    assert_eq!(excluded.hash(), other_address.hash());
}

#[test]
fn load_reads_a_file_and_reports_missing_ones() {
    let dir = std::env::temp_dir().join(format!("spread-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("spread.conf");
    std::fs::write(
        &path,
        "Spread_Segment 127.0.0.255 {\n localhost 127.0.0.1\n}\nWindow = 90\n",
    )
    .unwrap();
    let loaded = Config::load(&path);
    let missing = Config::load(&dir.join("absent.conf"));
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(loaded.unwrap().options.window, 90);
    let e = missing.unwrap_err();
    assert_eq!(e.line, 0);
    assert!(e.file.ends_with("absent.conf"));
    assert!(e.reason.contains("cannot read"));
}

/// Values printed by the original 5.0.1 daemon for the same files ("Hash value for this
/// configuration is", "Auto-generated virtual ID").
#[test]
fn hash_and_ids_match_the_original_daemon() {
    let a = parse_ok(
        "Spread_Segment 10.0.0.255 239.1.1.1 {\n  a 10.0.0.1 VirtualID = 12\n  bé 10.0.0.2\n}\n\
         Spread_Segment 239.1.2.3:4900 {\n  10.0.3.3\n}\n",
    );
    let ids: Vec<u32> = a.daemons().map(|(_, _, d)| d.id()).collect();
    assert_eq!(ids, vec![12, 3_320_347_363, 1_237_214_149]);
    assert_eq!(a.hash(), 3_602_398_142);
    let b = parse_ok(
        "Spread_Segment 127.255.255.255:4803 {\n  localhost 127.0.0.1 { 127.0.0.1 }\n}\nAcceleratedRing = yes\n",
    );
    assert_eq!(b.segments[0].daemons[0].id(), 482_711_334);
    assert_eq!(b.hash(), 297_411_207);
    let c = parse_ok(
        "Spread_Segment 10.0.0.255:4803 { a 10.0.0.1 b 10.0.0.2 }\nSpread_Segment 10.1.0.255:4805 { c 10.1.0.1 }\n",
    );
    let ids: Vec<u32> = c.daemons().map(|(_, _, d)| d.id()).collect();
    assert_eq!(ids, vec![2_489_203_003, 1_728_699_743, 2_466_198_569]);
    assert_eq!(c.hash(), 2_176_254_554);
}

const TWO_NETWORKS: &str = "\
Spread_Segment 192.168.1.255:4803 {
    foo 192.168.1.10
    bar 192.168.1.11
    baz 192.168.1.12
}
Spread_Network backup 10.9.0.255:4803 {
    foo 10.9.0.10
    bar 10.9.0.11
}
Spread_Network 'third' 239.9.9.9 { baz 10.8.0.12; foo 10.8.0.10 }
Multipath = active
";

#[test]
fn multipath_mode_names_read_back() {
    for mode in [
        MultipathMode::Active,
        MultipathMode::Passive,
        MultipathMode::Hybrid,
    ] {
        assert_eq!(MultipathMode::by_name(mode.name()), Some(mode));
    }
    assert_eq!(MultipathMode::Hybrid.name(), "hybrid");
}

#[test]
fn multipath_networks_and_mode() {
    let config = parse_ok(TWO_NETWORKS);
    assert_eq!(config.options.multipath, MultipathMode::Active);
    assert_eq!(config.networks.len(), 2);
    let backup = &config.networks[0];
    assert_eq!(
        (backup.name.as_str(), backup.address, backup.port),
        ("backup", ip("10.9.0.255"), 4803)
    );
    let members: Vec<(&str, IpAddr)> = backup
        .members
        .iter()
        .map(|m| (m.daemon.as_str(), m.address))
        .collect();
    assert_eq!(members, vec![("foo", ip("10.9.0.10")), ("bar", ip("10.9.0.11"))]);
    let third = &config.networks[1];
    assert_eq!((third.name.as_str(), third.port), ("third", DEFAULT_PORT));
    assert_eq!(third.members[0].daemon, "baz");
    // Without the networks the file describes a classic ring with the default mode.
    let classic = parse_ok(SAMPLE_LIKE);
    assert!(classic.networks.is_empty());
    assert_eq!(classic.options.multipath, MultipathMode::Hybrid);
}

#[test]
fn networks_enter_the_hash() {
    let base = parse_ok(TWO_NETWORKS).hash();
    let segments_only = &TWO_NETWORKS[..TWO_NETWORKS.find("Spread_Network").unwrap()];
    assert_ne!(parse_ok(segments_only).hash(), base);
    assert_ne!(
        parse_ok(&TWO_NETWORKS.replace("10.9.0.11", "10.9.0.21")).hash(),
        base
    );
    assert_ne!(
        parse_ok(&TWO_NETWORKS.replace("10.9.0.255:4803", "10.9.0.255:4903")).hash(),
        base
    );
    assert_ne!(parse_ok(&TWO_NETWORKS.replace("backup", "spare")).hash(), base);
    // The mode is a local choice, not part of the hash.
    assert_eq!(parse_ok(&TWO_NETWORKS.replace("active", "passive")).hash(), base);
}

#[test]
fn network_errors_name_their_line() {
    let seg = "Spread_Segment 10.0.0.255 {\n a 10.0.0.1\n b 10.0.0.2\n}\n";
    assert_error(
        &format!("{seg}Spread_Network n 10.9.0.255 {{\n a 10.9.0.1\n zz 10.9.0.2\n}}\n"),
        7,
        "no daemon \"zz\"",
    );
    assert_error(
        &format!("{seg}Spread_Network n 10.9.0.255 {{\n a 10.9.0.1\n a 10.9.0.2\n}}\n"),
        7,
        "already on network",
    );
    assert_error(
        &format!("{seg}Spread_Network n 10.9.0.255 {{\n a 10.9.0.1\n b 10.9.0.1\n}}\n"),
        7,
        "already on network",
    );
    assert_error(
        &format!("{seg}Spread_Network n 10.9.0.255 {{\n a\n}}\n"),
        7,
        "expected the address of \"a\"",
    );
    assert_error(
        &format!("{seg}Spread_Network n 10.9.0.255 {{\n}}\n"),
        5,
        "has no daemons",
    );
    assert_error(&format!("{seg}Spread_Network n 10.9.0.255 {{ a 10.9.0.1 }}\nSpread_Network n 10.8.0.255 {{ a 10.8.0.1 }}\n"), 6, "used twice");
    assert_error(
        &format!("{seg}Spread_Network {{ a 10.9.0.1 }}\n"),
        5,
        "expected a network name",
    );
    assert_error(
        &format!("{seg}Spread_Network n {{ a 10.9.0.1 }}\n"),
        5,
        "expected the address of network",
    );
    assert_error(
        &format!("{seg}Spread_Network n fd00::1 {{ a 10.9.0.1 }}\n"),
        5,
        "IP version",
    );
    assert_error(
        &format!("{seg}Spread_Network n 10.9.0.255 {{ a 224.1.1.1 }}\n"),
        5,
        "multicast",
    );
    assert_error(
        &format!("{seg}Multipath = sideways\n"),
        5,
        "active, passive or hybrid",
    );
    let networks: String = (1..MAX_NETWORKS)
        .map(|i| format!("Spread_Network n{i} 10.{i}.9.255 {{ a 10.{i}.9.1 }}\n"))
        .collect();
    parse_ok(&format!("{seg}{networks}"));
    assert_error(
        &format!("{seg}{networks}Spread_Network last 10.99.9.255 {{ a 10.99.9.1 }}\n"),
        4 + MAX_NETWORKS,
        "too many networks",
    );
}

/// Cut and spliced versions of valid files must yield a config or an error, never a panic.
#[test]
fn mangled_input_never_panics() {
    let sources = [
        ALL_OPTIONS,
        TWO_NETWORKS,
        SAMPLE_LIKE,
        HASHED,
        EMBEDDED_DEFAULT_TEXT,
    ];
    let joined: Vec<char> = sources.concat().chars().collect();
    // Deterministic pseudo-random cuts (64-bit LCG), bounded number of rounds.
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = |bound: usize| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) as usize % bound
    };
    let mut outcomes = (0, 0);
    for _ in 0..2000 {
        let mut text = String::new();
        for _ in 0..1 + next(4) {
            let start = next(joined.len());
            let len = next(120);
            text.extend(&joined[start..(start + len).min(joined.len())]);
        }
        match parse(&text) {
            Ok(_) => outcomes.0 += 1,
            Err(e) => {
                assert!(
                    e.line <= text.lines().count() + 1,
                    "line {} beyond input: {e}",
                    e.line
                );
                outcomes.1 += 1;
            }
        }
    }
    assert!(outcomes.1 > 0);
}
