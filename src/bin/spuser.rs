//! `spuser`: the interactive test client of Spread, driven by one-letter commands on stdin.
//!
//! Same flags, commands, prompts and output as the original `spuser` (its single-threaded
//! build): received messages are printed as they arrive unless asynchronous reading is off.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::process::exit;
use std::time::Instant;

use spread::client::membership::{memb_info, vs_set_members, vs_sets_info};
use spread::client::{connect, deadline_after, Error, Mailbox};
use spread::tools::inbox::{Delivery, Inbox};
use spread::tools::report::{kind, write_data, write_other, write_regular_membership, Kind};
use spread::tools::scan::leading_int;
use spread::wire::name::{name_field, name_text};
use spread::wire::{
    Name, CAUSED_BY_DISCONNECT, CAUSED_BY_JOIN, CAUSED_BY_LEAVE, CAUSED_BY_NETWORK, FIFO_MESS, NAME_LEN,
    SAFE_MESS, SPREAD_MAJOR, SPREAD_MINOR, SPREAD_PATCH,
};

/// Largest message the tool sends or receives whole.
const MAX_MESSLEN: usize = 102_400;
const MAX_VSSETS: usize = 10;
const MAX_MEMBERS: usize = 100;
/// Most groups named by one `s` or `m` command.
const MAX_SEND_GROUPS: usize = 10;
/// Line lengths (with the terminating NUL) the original reads commands and message lines with.
const COMMAND_LINE: usize = 130;
const MESSAGE_LINE: usize = 200;
const CONNECT_TIMEOUT_SEC: i64 = 5;

const HELP: &str = "Usage: spuser
\t[-u <user name>]  : unique (in this machine) user name
\t[-s <address>]    : either port or port@machine
\t[-n <username>]    : username for authentication
\t[-p <password>]    : users password
\t[-r ]    : use random user name
";

const MENU: &str = "
==========
User Menu:
----------

\tj <group> -- join a group
\tl <group> -- leave a group

\ts <group> -- send a message
\tm <group> -- send a multiline message to group. Terminate with empty line
\tb <group> -- send a burst of messages

\tr -- receive a message (stuck) 
\tp -- poll for a message 
\te -- enable asynchonous read (default)
\td -- disable asynchronous read 

\tq -- quit
";

struct Options {
    user: String,
    spread_name: String,
}

fn print_help() -> ! {
    print!("{HELP}");
    exit(0)
}

/// Flags are recognised by their first two characters, as the original does.
fn parse_options() -> Options {
    let mut options = Options {
        user: "user".to_owned(),
        spread_name: "4803".to_owned(),
    };
    let mut words = std::env::args().skip(1);
    let mut password_auth = false;
    while let Some(word) = words.next() {
        let flag = word.get(..2).unwrap_or("");
        match flag {
            "-u" => options.user = words.next().unwrap_or_else(|| print_help()),
            "-r" => options.user.clear(),
            "-s" => options.spread_name = words.next().unwrap_or_else(|| print_help()),
            "-n" | "-p" => {
                words.next().unwrap_or_else(|| print_help());
                password_auth = true;
            }
            _ => print_help(),
        }
    }
    if password_auth {
        // The original accepts these only to pass them to an optional password module.
        eprintln!("spuser: password authentication is not available; -n and -p are ignored");
    }
    options
}

/// The session and the terminal, as the command and receive handlers share them.
struct User {
    mbox: Mailbox,
    input: BufReader<File>,
    out: io::Stdout,
    inbox: Inbox,
    num_sent: u32,
    previous_len: usize,
    async_read: bool,
}

/// Reads one line like C `fgets` with a buffer of `size`: through the newline, at most
/// `size - 1` bytes (the rest of a longer line is the next read). `None` at end of input.
fn read_line(input: &mut impl BufRead, size: usize) -> Option<Vec<u8>> {
    let mut line = Vec::new();
    while line.len() + 1 < size {
        let available = match input.fill_buf() {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        if available.is_empty() {
            break;
        }
        let room = size - 1 - line.len();
        let take = match available.iter().take(room).position(|&b| b == b'\n') {
            Some(newline) => newline + 1,
            None => available.len().min(room),
        };
        line.extend_from_slice(&available[..take]);
        input.consume(take);
        if line.last() == Some(&b'\n') {
            break;
        }
    }
    (!line.is_empty()).then_some(line)
}

/// Output errors (a closed pipe) end the tool like a quit would.
fn or_bye<T>(result: io::Result<T>) -> T {
    result.unwrap_or_else(|_| exit(0))
}

impl User {
    /// The next input line, read as the original reads it (see [`read_line`]).
    fn read_line(&mut self, size: usize) -> Option<Vec<u8>> {
        read_line(&mut self.input, size)
    }

    fn prompt(&mut self) {
        or_bye(self.out.write_all(b"\nUser> ").and_then(|()| self.out.flush()));
    }

    fn bye(&mut self) -> ! {
        or_bye(self.out.write_all(b"\nBye.\n").and_then(|()| self.out.flush()));
        // Ending anyway: a session the daemon already closed needs no goodbye.
        let _ = self.mbox.disconnect();
        exit(0)
    }

    fn sp_error(&mut self, e: Error) {
        or_bye(writeln!(self.out, "SP_error: {e}"));
    }

    /// Reads and runs one command line.
    fn command(&mut self) {
        let Some(line) = self.read_line(COMMAND_LINE) else {
            self.bye()
        };
        // The argument text starts after the command letter and one separator.
        let args = String::from_utf8_lossy(line.get(2..).unwrap_or_default()).into_owned();
        let mut words = args.split_ascii_whitespace();
        match line[0] {
            b'j' | b'l' => match words.next() {
                None => or_bye(self.out.write_all(b" invalid group \n")),
                Some(group) => {
                    let result = if line[0] == b'j' {
                        self.mbox.join(group.as_bytes())
                    } else {
                        self.mbox.leave(group.as_bytes())
                    };
                    if let Err(e) = result {
                        self.sp_error(e);
                    }
                }
            },
            b's' | b'm' => {
                let groups: Vec<Name> = words
                    .take(MAX_SEND_GROUPS)
                    .map(|g| name_field(g.as_bytes()))
                    .collect();
                if groups.is_empty() {
                    or_bye(self.out.write_all(b" invalid group \n"));
                } else {
                    or_bye(
                        self.out
                            .write_all(b"enter message: ")
                            .and_then(|()| self.out.flush()),
                    );
                    let message = if line[0] == b's' {
                        self.read_line(MESSAGE_LINE).unwrap_or_else(|| self.bye())
                    } else {
                        self.read_multiline()
                    };
                    match self.mbox.multigroup_multicast(SAFE_MESS, &groups, 1, &[&message]) {
                        Ok(_) => self.num_sent += 1,
                        Err(e) => {
                            self.sp_error(e);
                            self.bye()
                        }
                    }
                }
            }
            b'b' => self.burst(words.next().unwrap_or("dummy_group_name").to_owned()),
            b'r' => self.read_message(),
            b'p' => {
                let pending = self.mbox.poll().map_or_else(|e| e.code() as i64, |n| n as i64);
                or_bye(writeln!(self.out, "Polling sais: {pending}"));
            }
            b'e' => self.async_read = true,
            b'd' => self.async_read = false,
            b'q' => self.bye(),
            _ => or_bye(
                self.out
                    .write_all(b"\nUnknown commnad\n")
                    .and_then(|()| self.out.write_all(MENU.as_bytes())),
            ),
        }
        self.prompt();
    }

    /// Message lines up to an empty one (not part of the message).
    fn read_multiline(&mut self) -> Vec<u8> {
        let mut message = Vec::new();
        while message.len() < MAX_MESSLEN {
            let line = self.read_line(MESSAGE_LINE).unwrap_or_else(|| self.bye());
            if line[0] == b'\n' {
                break;
            }
            message.extend_from_slice(&line);
        }
        message.truncate(MAX_MESSLEN);
        message
    }

    fn burst(&mut self, group: String) {
        or_bye(
            self.out
                .write_all(b"enter size of each message: ")
                .and_then(|()| self.out.flush()),
        );
        let answer = self.read_line(MESSAGE_LINE).unwrap_or_else(|| self.bye());
        let len = match leading_int(&String::from_utf8_lossy(&answer)) {
            // Read as C's unsigned conversion does: negative numbers wrap to huge ones.
            Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
            None => self.previous_len,
        }
        .min(MAX_MESSLEN);
        self.previous_len = len;
        or_bye(writeln!(self.out, "sending 10 messages of {len} bytes"));
        let mut message = vec![0u8; len];
        for i in 1..=10 {
            self.num_sent += 1;
            let label = format!("mess num {} \0", self.num_sent);
            let shown = label.len().min(len);
            message[..shown].copy_from_slice(&label.as_bytes()[..shown]);
            if let Err(e) = self.mbox.multicast(FIFO_MESS, group.as_bytes(), 2, &[&message]) {
                self.sp_error(e);
                self.bye();
            }
            or_bye(writeln!(self.out, "sent message {i} (total {})", self.num_sent));
        }
    }

    /// Receives one message (blocking) and prints it.
    fn read_message(&mut self) {
        let mut out = self.out.lock();
        or_bye(out.write_all(b"\n============================\n"));
        let delivery = match self.inbox.receive_or_cut(self.mbox, &mut out) {
            Ok(d) if d.received.code() >= 0 => d,
            Ok(d) => fail(&mut out, Error::from_code(d.received.code())),
            Err(e) => fail(&mut out, e),
        };
        or_bye(describe(&mut out, &delivery));
        or_bye(out.write_all(b"\nUser> ").and_then(|()| out.flush()));
    }
}

/// The session is lost: say so and end.
fn fail(out: &mut impl Write, e: Error) -> ! {
    or_bye(write!(
        out,
        "SP_error: {e}\n\n============================\n\nBye.\n"
    ));
    or_bye(out.flush());
    exit(0)
}

/// Leaves with the original's complaint when a membership body cannot be read.
fn bad_body(out: &mut impl Write, complaint: &str, e: Error) -> ! {
    or_bye(write!(out, "{complaint}\nSP_error: {e}\n").and_then(|()| out.flush()));
    exit(1)
}

fn describe(out: &mut impl Write, d: &Delivery<'_>) -> io::Result<()> {
    let service = d.received.service;
    match kind(service) {
        Kind::Data => write_data(out, d, ""),
        Kind::RegularMembership => {
            let info = memb_info(d.body, service)
                .unwrap_or_else(|e| bad_body(out, "BUG: membership message does not have valid body", e));
            write_regular_membership(out, d)?;
            let [a, b, c] = [info.gid.proc_id, info.gid.time, info.gid.index];
            writeln!(out, "grp id is {a} {b} {c}")?;
            let changed = info.changed_member.unwrap_or([0; NAME_LEN]);
            let cause = if service & CAUSED_BY_JOIN != 0 {
                "JOIN"
            } else if service & CAUSED_BY_LEAVE != 0 {
                "LEAVE"
            } else if service & CAUSED_BY_DISCONNECT != 0 {
                "DISCONNECT"
            } else if service & CAUSED_BY_NETWORK != 0 {
                return describe_network(out, d, info.num_vs_sets);
            } else {
                return Ok(());
            };
            write!(out, "Due to the {cause} of ")?;
            out.write_all(name_text(&changed))?;
            out.write_all(b"\n")
        }
        Kind::OtherMembership | Kind::Rejected | Kind::Unknown => write_other(out, d),
    }
}

/// The vs sets of a network-caused membership, the receiver's marked LOCAL.
fn describe_network(out: &mut impl Write, d: &Delivery<'_>, num_vs_sets: u32) -> io::Result<()> {
    writeln!(out, "Due to NETWORK change with {num_vs_sets} VS sets")?;
    let (sets, mine) = vs_sets_info(d.body, MAX_VSSETS).unwrap_or_else(|e| {
        let complaint = format!(
            "BUG: membership message has more then {MAX_VSSETS} vs sets. Recompile with larger MAX_VSSETS"
        );
        bad_body(out, &complaint, e)
    });
    let mut members = [[0u8; NAME_LEN]; MAX_MEMBERS];
    for (index, set) in sets.iter().enumerate() {
        let place = if mine == Some(index as u32) {
            "LOCAL"
        } else {
            "OTHER"
        };
        writeln!(out, "{place} VS set {index} has {} members:", set.num_members)?;
        let count = vs_set_members(d.body, *set, &mut members).unwrap_or_else(|e| {
            let complaint =
                format!("VS Set has more then {MAX_MEMBERS} members. Recompile with larger MAX_MEMBERS");
            bad_body(out, &complaint, e)
        });
        for member in &members[..count as usize] {
            out.write_all(b"\t")?;
            out.write_all(name_text(member))?;
            out.write_all(b"\n")?;
        }
    }
    Ok(())
}

/// Which of the two inputs to serve next: the session first when both are ready, as the
/// original's event loop gives it the higher priority.
enum Ready {
    Session,
    Terminal,
}

fn wait_ready(session: Option<RawFd>, terminal: RawFd, terminal_buffered: bool) -> Ready {
    let mut fds = [
        libc::pollfd {
            fd: terminal,
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: session.unwrap_or(-1),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    // Lines already read ahead are ready input: only look whether the session is too.
    let timeout = if terminal_buffered { 0 } else { -1 };
    loop {
        // SAFETY: `fds` is a valid array of two pollfd for the length passed; a negative fd
        // is ignored by poll.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        if n >= 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            break;
        }
    }
    if fds[1].revents != 0 {
        Ready::Session
    } else {
        // Also when poll failed: reading the terminal then reports the problem as end of input.
        Ready::Terminal
    }
}

fn main() {
    let options = parse_options();
    println!("Spread library version is {SPREAD_MAJOR}.{SPREAD_MINOR}.{SPREAD_PATCH}");
    let deadline = deadline_after(CONNECT_TIMEOUT_SEC, 0, Instant::now()).unwrap_or(None);
    let connection = match connect(
        Some(options.spread_name.as_bytes()),
        options.user.as_bytes(),
        0,
        true,
        deadline,
    ) {
        Ok(c) => c,
        Err(e) => {
            print!("SP_error: {e}\n\nBye.\n");
            exit(0)
        }
    };
    let input = io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .map(File::from)
        .unwrap_or_else(|e| {
            eprintln!("spuser: cannot read standard input: {e}");
            exit(1)
        });
    let mut user = User {
        mbox: connection.mailbox,
        input: BufReader::new(input),
        out: io::stdout(),
        inbox: Inbox::new(MAX_MEMBERS, MAX_MESSLEN),
        num_sent: 0,
        previous_len: 0,
        async_read: true,
    };
    or_bye(user.out.write_all(b"User: connected to "));
    or_bye(user.out.write_all(options.spread_name.as_bytes()));
    or_bye(user.out.write_all(b" with private group "));
    or_bye(user.out.write_all(name_text(&connection.private_group)));
    or_bye(user.out.write_all(b"\n"));
    or_bye(user.out.write_all(MENU.as_bytes()));
    user.prompt();
    let terminal = user.input.get_ref().as_raw_fd();
    loop {
        let session = user.async_read.then_some(user.mbox.fd());
        match wait_ready(session, terminal, !user.input.buffer().is_empty()) {
            Ready::Session => user.read_message(),
            Ready::Terminal => user.command(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_read_like_fgets() {
        let mut input = io::Cursor::new(b"j g1\nabcdefgh\n\nlast".to_vec());
        assert_eq!(read_line(&mut input, 130).as_deref(), Some(&b"j g1\n"[..]));
        // A buffer of 5 takes 4 bytes; the rest of the line is the next read.
        assert_eq!(read_line(&mut input, 5).as_deref(), Some(&b"abcd"[..]));
        assert_eq!(read_line(&mut input, 130).as_deref(), Some(&b"efgh\n"[..]));
        assert_eq!(read_line(&mut input, 130).as_deref(), Some(&b"\n"[..]));
        assert_eq!(read_line(&mut input, 130).as_deref(), Some(&b"last"[..]));
        assert_eq!(read_line(&mut input, 130), None);
    }

    #[test]
    fn lines_across_small_reads() {
        // A reader that hands out 3 bytes at a time still yields whole lines.
        let bytes: &[u8] = b"hello world\nx\n";
        let mut input = BufReader::with_capacity(3, bytes);
        assert_eq!(read_line(&mut input, 200).as_deref(), Some(&b"hello world\n"[..]));
        assert_eq!(read_line(&mut input, 200).as_deref(), Some(&b"x\n"[..]));
        assert_eq!(read_line(&mut input, 200), None);
    }
}
