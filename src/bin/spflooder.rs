//! `spflooder`: floods a group with messages to measure throughput.
//!
//! Same flags, behaviour and progress lines as the original `spflooder`; at the end it also
//! reports the elapsed time and the rate in messages and megabytes (10^6 bytes) per second.

use std::io::{self, Write};
use std::process::exit;
use std::time::Instant;

use spread::client::{connect, Error, Mailbox};
use spread::tools::inbox::{Delivery, Inbox};
use spread::tools::report::{kind, write_data, write_other, write_regular_membership, Kind};
use spread::tools::scan::leading_int;
use spread::wire::name::name_text;
use spread::wire::{FIFO_MESS, RELIABLE_MESS};

const MAX_MESSLEN: usize = 100_000;
/// Most members the multi-sender flow control tracks (and names a message may carry back).
const MAX_MEMBERS: usize = 100;
const GROUP: &[u8] = b"flooder";
/// How far (in messages) a sender may run ahead of what it has received.
const WINDOW: i64 = 200;
const PROGRESS_EVERY: i64 = 1000;

const HELP: &str = "Usage: spflooder
\t[-u <user name>]     : unique (in this machine) user name
\t[-m <num messages>]  : number of messages
\t[-n <num members>]   : number of group members to wait for (also turn on multi-sender FC)
\t[-b <num bytes>]     : number of bytes per message 1-100,000
\t[-s <spread name>]   : either port or port@machine
\t[-ro]   \t\t: read  only (no multicast)
\t[-wo]   \t\t: write only (no receive)
";

struct Options {
    user: String,
    spread_name: String,
    num_bytes: i64,
    num_messages: i64,
    num_members: i64,
    read_only: bool,
    write_only: bool,
}

fn print_help() -> ! {
    print!("{HELP}");
    exit(1)
}

/// Flags are recognised by their first characters, as the original does; a number that does
/// not parse leaves the default.
fn parse_options() -> Options {
    let mut options = Options {
        user: "flooder".to_owned(),
        spread_name: "4803".to_owned(),
        num_bytes: 1000,
        num_messages: 10_000,
        num_members: 0,
        read_only: false,
        write_only: false,
    };
    let mut words = std::env::args().skip(1);
    while let Some(word) = words.next() {
        let mut value = || words.next().unwrap_or_else(|| print_help());
        let number = |text: String, default: i64| leading_int(&text).unwrap_or(default);
        if word.starts_with("-u") {
            options.user = value();
        } else if word.starts_with("-b") {
            options.num_bytes = number(value(), options.num_bytes);
        } else if word.starts_with("-m") {
            options.num_messages = number(value(), options.num_messages);
        } else if word.starts_with("-n") {
            options.num_members = number(value(), options.num_members);
        } else if word.starts_with("-s") {
            options.spread_name = value();
        } else if word.starts_with("-ro") {
            (options.read_only, options.write_only) = (true, false);
        } else if word.starts_with("-wo") {
            (options.read_only, options.write_only) = (false, true);
        } else {
            print_help();
        }
    }
    if options.num_members > MAX_MEMBERS as i64 {
        println!("Too many members. The max is {MAX_MEMBERS}");
        print_help();
    }
    // The original would read past its buffer; refuse instead.
    if !(0..=MAX_MESSLEN as i64).contains(&options.num_bytes) {
        print_help();
    }
    options
}

fn fail(e: Error) -> ! {
    println!("SP_error: {e}");
    exit(1)
}

/// Output errors (a closed pipe) end the run.
fn or_exit<T>(result: io::Result<T>) -> T {
    result.unwrap_or_else(|_| exit(1))
}

/// Receives until `num_members` members are in the group; returns the receiver's index in
/// the last membership.
fn wait_for_members(mbox: Mailbox, inbox: &mut Inbox, num_members: i64, out: &mut impl Write) -> i16 {
    let mut joined = 0;
    let mut my_index = 0;
    while joined < num_members {
        let d = inbox.receive(mbox, false).unwrap_or_else(|e| fail(e));
        if d.received.code() < 0 {
            or_exit(out.write_all(
                b"\n========Buffers or Groups too Short=======\n\
                  Should NOT happen in wait for members! Program quitting\n",
            ));
            exit(1);
        }
        my_index = d.received.mess_type;
        match kind(d.received.service) {
            Kind::Data => or_exit(write_data(out, &d, "during wait for members, ")),
            Kind::RegularMembership => {
                or_exit(write_regular_membership(out, &d));
                joined = i64::from(d.received.num_groups);
            }
            Kind::OtherMembership | Kind::Rejected | Kind::Unknown => or_exit(write_other(out, &d)),
        }
    }
    my_index
}

/// Per-sender counts of messages received, for the multi-sender flow control: a sender waits
/// while some active member lags more than [`WINDOW`] behind its own count.
struct FlowControl {
    received: [i64; MAX_MEMBERS],
    lowest: i64,
    num_members: usize,
}

impl FlowControl {
    fn new(num_members: usize) -> FlowControl {
        FlowControl {
            received: [0; MAX_MEMBERS],
            lowest: 0,
            num_members,
        }
    }

    /// Counts a message whose body starts with the sender's member index.
    fn count(&mut self, body: &[u8]) {
        let Some(index) = body
            .first_chunk::<4>()
            .map(|bytes| i32::from_ne_bytes(*bytes))
            .and_then(|index| usize::try_from(index).ok())
            .filter(|&index| index < MAX_MEMBERS)
        else {
            // Not one of the flooders' messages (e.g. a membership notice).
            return;
        };
        self.received[index] += 1;
        if self.received[index] == self.lowest + 1 {
            self.lowest = self.received[..self.num_members]
                .iter()
                .copied()
                .filter(|&n| n != 0)
                .min()
                .unwrap_or(0);
        }
    }

    fn lags(&self, sent: i64) -> bool {
        self.lowest < sent - WINDOW
    }
}

fn main() {
    let options = parse_options();
    let mut out = io::stdout().lock();
    let membership = options.num_members != 0;
    or_exit(write!(out, "flooder: connecting to {}", options.spread_name));
    or_exit(if membership {
        out.write_all(b" with group membership\n")
    } else {
        out.write_all(b"\n")
    });
    let connection = connect(
        Some(options.spread_name.as_bytes()),
        options.user.as_bytes(),
        0,
        membership,
        None,
    )
    .unwrap_or_else(|e| fail(e));
    let mbox = connection.mailbox;
    let (num_messages, num_bytes) = (options.num_messages, options.num_bytes);
    if options.read_only {
        or_exit(writeln!(out, "flooder: Only receiving messages"));
        mbox.join(GROUP).unwrap_or_else(|e| fail(e));
    } else if options.write_only {
        or_exit(writeln!(
            out,
            "flooder: starting  multicast of {num_messages} messages, {num_bytes} bytes each (self discarding)."
        ));
    } else {
        mbox.join(GROUP).unwrap_or_else(|e| fail(e));
        or_exit(writeln!(
            out,
            "flooder: starting  multicast of {num_messages} messages, {num_bytes} bytes each."
        ));
    }

    let mut inbox = Inbox::new(MAX_MEMBERS, MAX_MESSLEN);
    let mut message = vec![0u8; num_bytes as usize];
    let my_index = wait_for_members(mbox, &mut inbox, options.num_members, &mut out);
    if membership {
        let tag = i32::from(my_index).to_ne_bytes();
        let len = tag.len().min(message.len());
        message[..len].copy_from_slice(&tag[..len]);
    }
    // Multi-sender runs need FIFO order for the counts; a lone sender only waits for itself.
    let service = if membership { FIFO_MESS } else { RELIABLE_MESS };
    let mut flow = FlowControl::new(options.num_members.max(0) as usize);
    let mut sent = 0i64;
    let mut moved_bytes = 0u64;
    let mut last_result = 0;
    let start = Instant::now();
    for i in 1..=num_messages {
        if !options.read_only {
            let len = mbox
                .multicast(service, GROUP, 0, &[&message])
                .unwrap_or_else(|e| fail(e));
            sent += 1;
            moved_bytes += len as u64;
            last_result = len as i32;
        }
        if options.read_only || (i > WINDOW && !options.write_only) {
            loop {
                let d = inbox.receive_or_cut(mbox, &mut out).unwrap_or_else(|e| fail(e));
                let result = d.received.code();
                if result < 0 {
                    fail(Error::from_code(result));
                }
                last_result = result;
                if options.read_only {
                    moved_bytes += d.body.len() as u64;
                }
                let more = if membership {
                    flow.count(d.body);
                    flow.lags(sent)
                } else {
                    !is_own(&d, &connection.private_group)
                };
                if options.read_only || !more {
                    break;
                }
            }
        }
        if i % PROGRESS_EVERY == 0 {
            or_exit(writeln!(
                out,
                "flooder: completed {i:6} messages of {last_result} bytes"
            ));
        }
    }
    let elapsed = start.elapsed().as_secs_f64().max(1e-9);
    or_exit(writeln!(
        out,
        "flooder: completed multicast of {num_messages} messages, {num_bytes} bytes each."
    ));
    let count = num_messages.max(0) as f64;
    or_exit(writeln!(
        out,
        "flooder: {num_messages} messages in {elapsed:.3} s: {:.1} msg/s, {:.3} MB/s",
        count / elapsed,
        moved_bytes as f64 / 1e6 / elapsed
    ));
    // The process ends here; the daemon closes the session when the socket closes.
    let _ = mbox.disconnect();
}

/// The message came from this session.
fn is_own(d: &Delivery<'_>, private_group: &[u8]) -> bool {
    name_text(&d.received.sender) == name_text(private_group)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tagged(index: i32) -> Vec<u8> {
        let mut body = index.to_ne_bytes().to_vec();
        body.extend_from_slice(b"payload");
        body
    }

    #[test]
    fn waits_for_the_slowest_active_sender() {
        let mut flow = FlowControl::new(2);
        for _ in 0..300 {
            flow.count(&tagged(0));
        }
        // Only sender 0 has been heard from: it is the lowest active one.
        assert_eq!(flow.lowest, 300);
        assert!(!flow.lags(500));
        assert!(flow.lags(501));
        // As in the original, the minimum is recomputed when the sender at the minimum
        // advances, so a newly heard sender counts from then on.
        flow.count(&tagged(1));
        assert_eq!(flow.lowest, 300);
        flow.count(&tagged(0));
        assert_eq!(flow.lowest, 1);
        assert!(flow.lags(300));
    }

    #[test]
    fn ignores_foreign_messages() {
        let mut flow = FlowControl::new(2);
        flow.count(&tagged(-1));
        flow.count(&tagged(MAX_MEMBERS as i32));
        flow.count(b"ab");
        assert_eq!(flow.received, [0; MAX_MEMBERS]);
        assert_eq!(flow.lowest, 0);
    }
}
