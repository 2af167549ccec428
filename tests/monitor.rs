//! `spmonitor` against real daemons: a loopback cluster (one network), and three daemons on
//! two bridges in network namespaces with a cable pulled and plugged back.

mod support;

use std::ffi::OsString;
use std::io::Write;
use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use spread::config::virtual_id_from_name;
use spread::monitor::json::{self, Value};
use support::cluster::{daemon_name, loopback_address, Cluster};
use support::netns::Lan;
use support::{DaemonKind, TempDir};

/// What one `spmonitor` run printed and its exit code.
struct Run {
    code: i32,
    stdout: String,
}

impl Run {
    /// The `--json` output, checked by Python's parser first (an independent judge), then read.
    fn json(&self) -> Value {
        let mut python = Command::new("python3")
            .args(["-c", "import json,sys; json.load(sys.stdin)"])
            .stdin(Stdio::piped())
            .spawn()
            .expect("python3");
        python
            .stdin
            .take()
            .unwrap()
            .write_all(self.stdout.as_bytes())
            .unwrap();
        assert!(
            python.wait().unwrap().success(),
            "not JSON to Python:\n{}",
            self.stdout
        );
        json::parse(&self.stdout).unwrap_or_else(|e| panic!("{e}:\n{}", self.stdout))
    }

    fn daemon(&self, name: &str) -> Value {
        let v = self.json();
        v.get("daemons")
            .and_then(Value::as_array)
            .and_then(|d| {
                d.iter()
                    .find(|d| d.get("name").and_then(Value::as_str) == Some(name))
            })
            .cloned()
            .unwrap_or_else(|| panic!("no daemon {name} in\n{}", self.stdout))
    }
}

/// Runs `spmonitor ARGS`, after `prefix` (e.g. `ip netns exec NS`).
fn spmonitor(prefix: &[OsString], args: &[&str]) -> Run {
    let mut words: Vec<OsString> = prefix.to_vec();
    words.push(env!("CARGO_BIN_EXE_spmonitor").into());
    let output = Command::new(&words[0])
        .args(&words[1..])
        .args(args)
        .output()
        .expect("run spmonitor");
    Run {
        code: output.status.code().expect("spmonitor exited"),
        stdout: String::from_utf8(output.stdout).expect("UTF-8 output"),
    }
}

/// Runs `spmonitor` until `done` says yes, at most for `limit`; returns the last run.
fn spmonitor_until(prefix: &[OsString], args: &[&str], limit: Duration, done: impl Fn(&Run) -> bool) -> Run {
    let deadline = Instant::now() + limit;
    loop {
        let run = spmonitor(prefix, args);
        if done(&run) || Instant::now() >= deadline {
            return run;
        }
        sleep(Duration::from_millis(200));
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .unwrap_or_default()
        .iter()
        .filter_map(|s| s.as_str().map(String::from))
        .collect()
}

fn text(v: &Value, path: &[&str]) -> String {
    v.at(path)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no {path:?}"))
        .to_string()
}

#[test]
fn loopback_cluster_all_up_then_one_daemon_gone() {
    let kind = DaemonKind::ours();
    let mut cluster = Cluster::start(&kind, 3, "");
    let config = cluster.config.to_str().unwrap().to_string();
    let args = ["-c", config.as_str(), "--json", "--timeout", "300"];
    let run = spmonitor_until(&[], &args, Duration::from_secs(30), |r| r.code == 0);
    assert_eq!(run.code, 0, "not all up:\n{}", run.stdout);
    let v = run.json();
    assert_eq!(
        (text(&v, &["health"]), v.get("exit_code").and_then(Value::as_u64)),
        ("all_up".into(), Some(0))
    );
    let names: Vec<String> = (0..3).map(daemon_name).collect();
    for (i, name) in names.iter().enumerate() {
        let d = run.daemon(name);
        assert_eq!(d.get("reachable").and_then(Value::as_bool), Some(true));
        assert_eq!(
            text(&d, &["address"]),
            format!("{}:{}", loopback_address(i), cluster.port)
        );
        assert_eq!(text(&d, &["status", "daemon", "name"]), *name);
        assert_eq!(text(&d, &["status", "membership", "state"]), "operational");
        assert_eq!(strings(d.at(&["status", "membership", "members"])), names);
        assert_eq!(text(&d, &["status", "multipath", "mode"]), "single");
        assert!(d.at(&["status", "multipath", "links"]).unwrap().is_null());
    }

    // `-n` picks daemons; `--watch` repeats, one JSON object per line, until killed.
    let picked = spmonitor(&[], &["-c", &config, "--json", "-n", "d1", "d3"]);
    assert_eq!(picked.code, 0, "{}", picked.stdout);
    let picked: Vec<String> = picked
        .json()
        .get("daemons")
        .and_then(Value::as_array)
        .unwrap()
        .iter()
        .map(|d| text(d, &["name"]))
        .collect();
    assert_eq!(picked, ["d1", "d3"]);
    let mut watch = Command::new(env!("CARGO_BIN_EXE_spmonitor"))
        .args(["-c", &config, "--json", "--watch", "0.2"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("run spmonitor --watch");
    sleep(Duration::from_millis(1500));
    watch.kill().expect("stop spmonitor --watch");
    let output = watch.wait_with_output().expect("its output");
    let lines: Vec<&str> = std::str::from_utf8(&output.stdout).unwrap().lines().collect();
    assert!(lines.len() >= 2, "{lines:?}");
    for line in lines {
        assert_eq!(
            json::parse(line)
                .expect("each line JSON")
                .get("exit_code")
                .and_then(Value::as_u64),
            Some(0)
        );
    }

    // A malformed monitor datagram is dropped and counted, and the daemon answers on.
    let asker = UdpSocket::bind("127.0.0.1:0").unwrap();
    asker
        .send_to(b"SM\x01\x01short", (loopback_address(0), cluster.port))
        .unwrap();
    let run = spmonitor_until(
        &[],
        &["-c", &config, "--json", "-n", "d1"],
        Duration::from_secs(5),
        |r| {
            r.daemon("d1")
                .at(&["status", "monitor", "malformed"])
                .and_then(Value::as_u64)
                == Some(1)
        },
    );
    assert_eq!(
        run.daemon("d1")
            .at(&["status", "monitor", "malformed"])
            .and_then(Value::as_u64),
        Some(1),
        "{}",
        run.stdout
    );

    // d3 is killed: unreachable, exit code 2, and the table says so.
    drop(cluster.daemons.pop());
    let run = spmonitor(&[], &args);
    assert_eq!(run.code, 2, "{}", run.stdout);
    let v = run.json();
    assert_eq!(text(&v, &["health"]), "unreachable");
    let d3 = run.daemon("d3");
    assert_eq!(d3.get("reachable").and_then(Value::as_bool), Some(false));
    assert_eq!(text(&d3, &["health"]), "unreachable");
    assert!(d3.get("status").unwrap().is_null());
    assert!(text(&d3, &["error"]).contains("no answer within 300 ms"));
    assert_eq!(
        run.daemon("d1").get("reachable").and_then(Value::as_bool),
        Some(true)
    );

    let table = spmonitor(&[], &["-c", &config, "--timeout", "300"]);
    assert_eq!(table.code, 2);
    let d3_line = table
        .stdout
        .lines()
        .find(|l| l.starts_with("d3 "))
        .unwrap_or_else(|| panic!("no line for d3 in\n{}", table.stdout));
    assert_eq!(
        d3_line.split_whitespace().collect::<Vec<_>>(),
        ["d3", "no", "-", "-", "-", "-", "unreachable"]
    );
    assert!(
        table.stdout.ends_with("overall: unreachable (exit code 2)\n"),
        "{}",
        table.stdout
    );
}

#[test]
fn usage_errors_exit_3() {
    assert_eq!(spmonitor(&[], &["--bogus"]).code, 3);
    assert_eq!(spmonitor(&[], &["--timeout", "0"]).code, 3);
    assert_eq!(spmonitor(&[], &["-c", "/nonexistent/spread.conf"]).code, 3);
    let help = spmonitor(&[], &["--help"]);
    assert_eq!(help.code, 0);
    assert!(help.stdout.contains("Exit codes"), "{}", help.stdout);
    let dir = TempDir::new("monitor-usage");
    let conf = dir.path().join("spread.conf");
    std::fs::write(&conf, "Spread_Segment 127.0.0.255:22990 { a 127.0.0.1 }\n").unwrap();
    assert_eq!(
        spmonitor(&[], &["-c", conf.to_str().unwrap(), "-n", "zz"]).code,
        3
    );
}

/// The link entry of `status` (a daemon's document) towards `peer` on `network`.
fn link<'a>(status: &'a Value, peer: &str, network: u64) -> &'a Value {
    let id = u64::from(virtual_id_from_name(peer));
    status
        .at(&["multipath", "links", "links"])
        .and_then(Value::as_array)
        .and_then(|links| {
            links.iter().find(|l| {
                l.get("peer").and_then(Value::as_u64) == Some(id)
                    && l.get("network").and_then(Value::as_u64) == Some(network)
            })
        })
        .unwrap_or_else(|| panic!("no link to {peer} on network {network}"))
}

/// Whether no link of any daemon came back within the last damping period (30 s, and a
/// second of margin). The first contact (`heard`) does not arm the damping.
fn settled(r: &Run) -> bool {
    let v = r.json();
    let daemons = v.get("daemons").and_then(Value::as_array).unwrap_or_default();
    daemons.iter().all(|d| {
        let Some(status) = d.get("status").filter(|s| !s.is_null()) else {
            return false;
        };
        let now_us = status
            .at(&["daemon", "uptime_ms"])
            .and_then(Value::as_u64)
            .unwrap_or(0)
            * 1000;
        let links = status
            .at(&["multipath", "links", "links"])
            .and_then(Value::as_array)
            .unwrap_or_default();
        links.iter().all(|l| {
            let last_up = l
                .get("transitions")
                .and_then(Value::as_array)
                .unwrap_or_default()
                .iter()
                .filter(|t| flag(t, "up") == Some(true))
                .filter(|t| t.at(&["reason", "kind"]).and_then(Value::as_str) != Some("heard"))
                .filter_map(|t| t.get("at_us").and_then(Value::as_u64))
                .max();
            last_up.map_or(true, |at| at + 31_000_000 <= now_us)
        })
    })
}

fn flag(v: &Value, key: &str) -> Option<bool> {
    v.get(key).and_then(Value::as_bool)
}

#[test]
fn two_networks_cable_pulled_and_plugged_back() {
    let lan = Lan::with_networks(3, 2);
    let dir = TempDir::new("monitor-multipath");
    let port = 22480;
    let text_conf = lan.multipath_config(port, "Multipath = hybrid");
    let (config, _daemons) = lan.start_ours(dir.path(), port, &text_conf);
    let config = config.to_str().unwrap().to_string();
    let prefix = lan.exec_prefix(0);
    let args = ["-c", config.as_str(), "--json", "--timeout", "300"];
    let names: Vec<String> = (0..3).map(|i| lan.daemon_name(i)).collect();

    // A link that fails within the damping period (30 s) of coming back counts as flapping and
    // stays down for a whole period: links that flapped under a loaded machine's stalls are
    // left to settle first, so that the pull below is an ordinary
    // failure, back after the recovery hold.
    let run = spmonitor_until(&prefix, &args, Duration::from_secs(75), |r| {
        r.code == 0 && settled(r)
    });
    assert!(
        run.code == 0 && settled(&run),
        "not all up and settled:\n{}",
        run.stdout
    );
    for name in &names {
        let d = run.daemon(name);
        assert_eq!(strings(d.at(&["status", "membership", "members"])), names);
        assert_eq!(text(&d, &["status", "multipath", "mode"]), "hybrid");
        assert_eq!(
            d.at(&["status", "multipath", "networks"])
                .and_then(Value::as_array)
                .map(|n| n.len()),
            Some(2)
        );
    }
    let h0 = run.daemon("h0");
    for (peer, network) in [("h1", 0), ("h1", 1), ("h2", 0), ("h2", 1)] {
        let l = link(h0.get("status").unwrap(), peer, network);
        assert_eq!(flag(l, "usable"), Some(true), "h0 to {peer} on {network}");
    }

    // Host 2 loses its cable on network 1: it is down to its last network.
    lan.set_cable(2, 1, false);
    let pulled = Instant::now();
    // Seen from h0 (towards h2) and from h2 (towards both others): each side decides alone.
    let down = |r: &Run| {
        let lost = |from: &str, to: &str| {
            let d = r.daemon(from);
            let l = link(d.get("status").unwrap(), to, 1);
            flag(l, "usable") == Some(false) && l.get("fault").is_some_and(|f| !f.is_null())
        };
        r.code == 2 && lost("h0", "h2") && lost("h2", "h0") && lost("h2", "h1")
    };
    let run = spmonitor_until(&prefix, &args, Duration::from_secs(10), down);
    assert!(down(&run), "the pulled cable is not shown:\n{}", run.stdout);
    println!("cable pull shown after {:?}", pulled.elapsed());
    let h0 = run.daemon("h0");
    assert_eq!(text(&h0, &["health"]), "last_network");
    let status = h0.get("status").unwrap();
    assert_eq!(text(status, &["multipath", "health"]), "last_network");
    let lost = link(status, "h2", 1);
    let fault = text(lost, &["fault", "kind"]);
    assert!(
        ["silent", "lossy", "one_way_in", "one_way_out"].contains(&fault.as_str()),
        "{fault}"
    );
    assert_eq!(flag(link(status, "h2", 0), "usable"), Some(true));
    assert_eq!(flag(link(status, "h1", 1), "usable"), Some(true));
    // h2 itself is reachable on network 0, and sees both its links on network 1 lost.
    let h2 = run.daemon("h2");
    assert_eq!(flag(&h2, "reachable"), Some(true));
    for peer in ["h0", "h1"] {
        assert_eq!(
            flag(link(h2.get("status").unwrap(), peer, 1), "usable"),
            Some(false)
        );
    }
    // Nobody left the membership.
    for name in &names {
        assert_eq!(
            strings(run.daemon(name).at(&["status", "membership", "members"])),
            names
        );
    }
    // The table shows the lost link.
    let table = spmonitor(&prefix, &["-c", &config, "--timeout", "300"]);
    assert_eq!(table.code, 2);
    assert!(
        table
            .stdout
            .lines()
            .any(|l| l.trim_start().starts_with("h2 ") && l.split_whitespace().nth(2) == Some("down")),
        "{}",
        table.stdout
    );

    // Plugged back: all up again after the recovery hold (within a damping period should a
    // stall of the machine have made the link flap meanwhile).
    lan.set_cable(2, 1, true);
    let plugged = Instant::now();
    let run = spmonitor_until(&prefix, &args, Duration::from_secs(40), |r| r.code == 0);
    assert_eq!(run.code, 0, "not back up:\n{}", run.stdout);
    println!("replug shown after {:?}", plugged.elapsed());
    let h0 = run.daemon("h0");
    let back = link(h0.get("status").unwrap(), "h2", 1);
    assert_eq!(flag(back, "usable"), Some(true));
    assert!(back.get("downs").and_then(Value::as_u64) >= Some(1));
    assert!(back.get("ups").and_then(Value::as_u64) >= Some(1));
    let last = back
        .get("transitions")
        .and_then(Value::as_array)
        .and_then(<[Value]>::last)
        .expect("transitions recorded");
    assert_eq!(flag(last, "up"), Some(true));
    assert_eq!(text(last, &["reason", "kind"]), "recovered");
}
