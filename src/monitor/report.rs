//! What `spmonitor` makes of the daemons' answers: a verdict per daemon and overall (its exit
//! code), a table for people and one JSON object for programs.

use std::fmt::Write;
use std::net::SocketAddr;
use std::time::Duration;

use super::document::health_name;
use super::json::{self, quote, Value};
use super::Target;
use crate::link::Health;

/// What the query of one daemon came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The status document, and the address that answered.
    Answered { from: SocketAddr, document: String },
    /// None of these addresses answered within `timeout` each.
    Silent {
        tried: Vec<SocketAddr>,
        timeout: Duration,
    },
}

/// How a daemon is doing, worst last: the overall verdict is the worst of the daemons'.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    /// The daemon's own verdict.
    Reported(Health),
    /// No (usable) answer.
    Unreachable,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Reported(health) => health_name(health),
            Verdict::Unreachable => "unreachable",
        }
    }

    /// 0 all up, 1 degraded, 2 a daemon down to its last network (or to none) or unreachable.
    pub fn exit_code(self) -> i32 {
        match self {
            Verdict::Reported(health) => health.exit_code(),
            Verdict::Unreachable => 2,
        }
    }
}

/// One daemon as `spmonitor` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct DaemonReport {
    pub name: String,
    /// The address that answered.
    pub from: Option<SocketAddr>,
    /// The daemon's document: its text and its parsed form.
    status: Option<(String, Value)>,
    /// Why there is no status.
    pub error: Option<String>,
    pub verdict: Verdict,
}

fn health_by_name(name: &str) -> Option<Health> {
    [Health::AllUp, Health::Degraded, Health::LastNetwork]
        .into_iter()
        .find(|&h| health_name(h) == name)
}

impl DaemonReport {
    pub fn new(target: &Target, outcome: Outcome) -> DaemonReport {
        let unreachable = |from: Option<SocketAddr>, error: String| DaemonReport {
            name: target.name.clone(),
            from,
            status: None,
            error: Some(error),
            verdict: Verdict::Unreachable,
        };
        let (from, document) = match outcome {
            Outcome::Answered { from, document } => (from, document),
            Outcome::Silent { tried, timeout } => {
                let tried: Vec<String> = tried.iter().map(SocketAddr::to_string).collect();
                let error = format!(
                    "no answer within {} ms from {}",
                    timeout.as_millis(),
                    tried.join(", ")
                );
                return unreachable(None, error);
            }
        };
        let value = match json::parse(&document) {
            Ok(value) => value,
            Err(e) => return unreachable(Some(from), format!("invalid status from {from}: {e}")),
        };
        let name = value.at(&["daemon", "name"]).and_then(Value::as_str);
        if name != Some(target.name.as_str()) {
            return unreachable(
                Some(from),
                format!("{from} answered as daemon {name:?}, not {}", target.name),
            );
        }
        let Some(health) = value
            .get("health")
            .and_then(Value::as_str)
            .and_then(health_by_name)
        else {
            return unreachable(Some(from), format!("status from {from} has no valid health"));
        };
        DaemonReport {
            name: target.name.clone(),
            from: Some(from),
            status: Some((document, value)),
            error: None,
            verdict: Verdict::Reported(health),
        }
    }

    /// The daemon's status document, when it answered.
    pub fn status(&self) -> Option<&Value> {
        self.status.as_ref().map(|(_, v)| v)
    }
}

/// The worst of the daemons' verdicts (all up when there are none).
pub fn overall(reports: &[DaemonReport]) -> Verdict {
    reports
        .iter()
        .map(|r| r.verdict)
        .max()
        .unwrap_or(Verdict::Reported(Health::AllUp))
}

/// `{"daemons":[...],"health":...,"exit_code":...}`: each daemon with `name`, `reachable`,
/// `address` (that answered, or null), `error` (or null), `health`, `exit_code` and `status`
/// (its document as it sent it, or null).
pub fn to_json(reports: &[DaemonReport]) -> String {
    let mut j = String::from("{\"daemons\":[");
    for (i, r) in reports.iter().enumerate() {
        if i > 0 {
            j.push(',');
        }
        j.push_str("{\"name\":");
        quote(&mut j, &r.name);
        let _ = write!(j, ",\"reachable\":{},\"address\":", r.status.is_some());
        match r.from {
            Some(from) => quote(&mut j, &from.to_string()),
            None => j.push_str("null"),
        }
        j.push_str(",\"error\":");
        match &r.error {
            Some(e) => quote(&mut j, e),
            None => j.push_str("null"),
        }
        let _ = write!(
            j,
            ",\"health\":\"{}\",\"exit_code\":{},\"status\":",
            r.verdict.name(),
            r.verdict.exit_code()
        );
        match &r.status {
            // Parsed above: valid JSON, embedded as the daemon wrote it.
            Some((text, _)) => j.push_str(text.trim()),
            None => j.push_str("null"),
        }
        j.push('}');
    }
    let verdict = overall(reports);
    let _ = write!(
        j,
        "],\"health\":\"{}\",\"exit_code\":{}}}",
        verdict.name(),
        verdict.exit_code()
    );
    j
}

/// Rows as columns padded to their widest cell, each line after `indent`.
fn columns(out: &mut String, indent: &str, rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = Vec::new();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            let width = cell.chars().count();
            match widths.get_mut(i) {
                Some(w) => *w = (*w).max(width),
                None => widths.push(width),
            }
        }
    }
    for row in rows {
        let mut line = String::from(indent);
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}  ", w = widths[i]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

fn number(v: Option<&Value>) -> String {
    v.and_then(Value::as_u64)
        .map_or_else(|| "-".to_string(), |n| n.to_string())
}

fn permille(v: Option<&Value>) -> String {
    v.and_then(Value::as_f64)
        .map_or_else(|| "-".to_string(), |p| format!("{:.1}%", p / 10.0))
}

/// A fault or transition reason: its kind, and for crossed cables where packets arrive.
fn reason(v: &Value) -> String {
    let kind = v.get("kind").and_then(Value::as_str).unwrap_or("?");
    match v.get("arrives_on").and_then(Value::as_u64) {
        Some(n) => format!("{kind}(arrives on {n})"),
        None => kind.to_string(),
    }
}

/// The link lines of one daemon's document.
fn write_links(out: &mut String, name: &str, status: &Value) {
    let mode = status
        .at(&["multipath", "mode"])
        .and_then(Value::as_str)
        .unwrap_or("?");
    let links = status
        .at(&["multipath", "links", "links"])
        .and_then(Value::as_array);
    let Some(links) = links else {
        let why = if mode == "single" {
            "one network, no link layer"
        } else {
            "links left out of the answer"
        };
        let _ = writeln!(out, "{name}: {why}");
        return;
    };
    let _ = writeln!(out, "{name}: {mode}");
    let names: Vec<(u64, &str)> = status
        .at(&["membership", "configured"])
        .and_then(Value::as_array)
        .unwrap_or_default()
        .iter()
        .filter_map(|d| Some((d.get("id")?.as_u64()?, d.get("name")?.as_str()?)))
        .collect();
    let now_us = status
        .at(&["daemon", "uptime_ms"])
        .and_then(Value::as_u64)
        .map(|ms| ms * 1000);
    let mut rows = vec![[
        "PEER",
        "NET",
        "STATE",
        "FAULT",
        "RTT_MS",
        "LOSS",
        "PEER_LOSS",
        "UPS",
        "DOWNS",
        "LAST TRANSITION",
    ]
    .map(String::from)
    .to_vec()];
    for l in links {
        let peer = l.get("peer").and_then(Value::as_u64);
        let peer = match names.iter().find(|(id, _)| Some(*id) == peer) {
            Some((_, name)) => name.to_string(),
            None => number(l.get("peer")),
        };
        let flag = |key: &str| l.get(key).and_then(Value::as_bool) == Some(true);
        let unheard = l.get("state").and_then(Value::as_str) == Some("unheard");
        let state = match (flag("usable"), flag("up"), unheard) {
            (true, _, _) => "up",
            // Up here, but the peer does not use it.
            (false, true, _) => "up_here",
            // Not heard both ways since start: nothing failed yet.
            (false, false, true) => "unheard",
            (false, false, false) => "down",
        };
        let mut fault = l
            .get("fault")
            .filter(|f| !f.is_null())
            .map_or_else(|| "-".to_string(), reason);
        if flag("damped") {
            fault.push_str(",damped");
        }
        let rtt = l
            .get("rtt_us")
            .and_then(Value::as_f64)
            .map_or_else(|| "-".to_string(), |us| format!("{:.2}", us / 1000.0));
        let last = l
            .get("transitions")
            .and_then(Value::as_array)
            .and_then(<[Value]>::last)
            .map_or_else(
                || "-".to_string(),
                |t| {
                    let up = if t.get("up").and_then(Value::as_bool) == Some(true) {
                        "up"
                    } else {
                        "down"
                    };
                    let why = t.get("reason").map_or_else(|| "?".to_string(), reason);
                    let at = t.get("at_us").and_then(Value::as_u64);
                    match (now_us, at) {
                        (Some(now), Some(at)) if now >= at => {
                            format!("{up} ({why}) {:.1} s ago", (now - at) as f64 / 1e6)
                        }
                        _ => format!("{up} ({why})"),
                    }
                },
            );
        rows.push(vec![
            peer,
            number(l.get("network")),
            state.to_string(),
            fault,
            rtt,
            permille(l.get("loss_permille")),
            permille(l.get("peer_loss_permille")),
            number(l.get("ups")),
            number(l.get("downs")),
            last,
        ]);
    }
    columns(out, "  ", &rows);
}

/// The table: a line per daemon, then each daemon's links (peer x network), then the overall
/// verdict.
pub fn table(reports: &[DaemonReport]) -> String {
    let mut out = String::new();
    let mut rows = vec![[
        "DAEMON",
        "REACHABLE",
        "STATE",
        "MEMBERS",
        "SESSIONS",
        "GROUPS",
        "HEALTH",
    ]
    .map(String::from)
    .to_vec()];
    for r in reports {
        let status = r.status();
        let field = |path: &[&str]| status.and_then(|s| s.at(path));
        rows.push(vec![
            r.name.clone(),
            if status.is_some() { "yes" } else { "no" }.to_string(),
            field(&["membership", "state"])
                .and_then(Value::as_str)
                .unwrap_or("-")
                .to_string(),
            field(&["membership", "members"])
                .and_then(Value::as_array)
                .map_or_else(|| "-".to_string(), |m| m.len().to_string()),
            number(field(&["sessions", "sessions"])),
            number(field(&["sessions", "groups"])),
            r.verdict.name().to_string(),
        ]);
    }
    columns(&mut out, "", &rows);
    for r in reports {
        out.push('\n');
        match (r.status(), &r.error) {
            (Some(status), _) => write_links(&mut out, &r.name, status),
            (None, Some(error)) => {
                let _ = writeln!(out, "{}: {error}", r.name);
            }
            (None, None) => {}
        }
    }
    let verdict = overall(reports);
    let _ = writeln!(
        out,
        "\noverall: {} (exit code {})",
        verdict.name(),
        verdict.exit_code()
    );
    out
}
