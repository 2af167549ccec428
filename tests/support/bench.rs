//! Pieces shared by the benchmarks that run daemons: environment settings, bounded phases,
//! percentiles, and the flooding throughput workload.

use std::sync::mpsc::{channel, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use spread::client::Mailbox;
use spread::wire::name::name_text;
use spread::wire::{Name, AGREED_MESS, MEMBERSHIP_MESS, NAME_LEN, REG_MEMB_MESS};

/// Bound of every phase (ring formation, a throughput run, a merge, ...).
pub const PHASE_LIMIT: Duration = Duration::from_secs(120);
/// Messages the throughput sender keeps in flight at most.
pub const IN_FLIGHT: usize = 200;
/// Body of a throughput message.
pub const PAYLOAD: usize = 1024;

pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs `f` on a thread and waits for it at most [`PHASE_LIMIT`]. On timeout this panics, and
/// the unwinding kills the daemons, which ends whatever receive the thread blocks in.
pub fn within<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(PHASE_LIMIT)
        .unwrap_or_else(|e| panic!("{what}: not done within {PHASE_LIMIT:?} ({e})"))
}

/// Receives one message into the buffers: (service, sender or group, groups or members, data
/// length); `None` once the session is gone.
pub fn receive(mbox: Mailbox, names: &mut [Name], body: &mut [u8]) -> Option<(u32, Name, usize, usize)> {
    let r = mbox.receive(true, names, &mut [body]).ok()?;
    Some((
        r.service,
        r.sender,
        r.num_groups.max(0) as usize,
        r.data_len.max(0) as usize,
    ))
}

/// The value at percentile `p` of `sorted` (not empty).
pub fn percentile<T: Copy>(sorted: &[T], p: usize) -> T {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

/// Messages per second at each receiver, from its first message to its last: `sender` sends
/// `count` [`PAYLOAD`]-byte AGREED messages to `group`, keeping at most [`IN_FLIGHT`] in
/// flight by receiving its own (as the original's flooder does), once `members` sessions
/// (itself and `receivers`, read-only) have joined.
pub fn throughput(sender: Mailbox, receivers: Vec<Mailbox>, group: &'static [u8], count: usize) -> Vec<f64> {
    let members = receivers.len() + 1;
    sender.join(group).expect("join");
    let receivers: Vec<Receiver<Duration>> = receivers
        .into_iter()
        .map(|mbox| {
            mbox.join(group).expect("join");
            let (tx, rx) = channel();
            thread::spawn(move || {
                let mut names = [[0u8; NAME_LEN]; 16];
                let mut body = vec![0u8; PAYLOAD];
                let mut first = None;
                let mut received = 0;
                while received < count {
                    let Some((service, ..)) = receive(mbox, &mut names, &mut body) else {
                        return;
                    };
                    if service & MEMBERSHIP_MESS == 0 {
                        first.get_or_insert_with(Instant::now);
                        received += 1;
                    }
                }
                let _ = tx.send(first.expect("a message").elapsed());
            });
            rx
        })
        .collect();
    within("throughput sender", move || {
        let mut names = [[0u8; NAME_LEN]; 16];
        let mut body = vec![0u8; PAYLOAD];
        let mut next = |done: &dyn Fn(u32, &[u8], usize) -> bool| loop {
            let (service, group, members, _) =
                receive(sender, &mut names, &mut body).expect("sender's session");
            if done(service, name_text(&group), members) {
                return;
            }
        };
        let is_data = |service: u32, _: &[u8], _: usize| service & MEMBERSHIP_MESS == 0;
        // Sends once everyone has joined.
        next(&|service, g, n| service & REG_MEMB_MESS != 0 && g == group && n == members);
        let payload = vec![0x5au8; PAYLOAD];
        for sent in 1..=count {
            sender
                .multicast(AGREED_MESS, group, 0, &[&payload])
                .expect("multicast");
            if sent > IN_FLIGHT {
                next(&is_data);
            }
        }
        for _ in 0..count.min(IN_FLIGHT) {
            next(&is_data);
        }
    });
    receivers
        .iter()
        .map(|rx| {
            let span = rx
                .recv_timeout(PHASE_LIMIT)
                .expect("a receiver got every message");
            (count - 1) as f64 / span.as_secs_f64()
        })
        .collect()
}
