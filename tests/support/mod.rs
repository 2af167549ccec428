//! Shared by integration tests and benchmarks that run real daemons: temporary directories,
//! free loopback ports, a daemon process that is killed when dropped, even if the test panics,
//! several daemons sharing one configuration ([`cluster`]), network namespaces on a bridge
//! ([`netns`]), and what the benchmarks share ([`bench`]).

// Each test binary uses its own part of this module.
#![allow(dead_code)]

pub mod bench;
pub mod cluster;
pub mod netns;

use std::ffi::OsString;
use std::fs;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpListener, UdpSocket};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

use spread::wire::consts::AGREED_MESS;
use spread::wire::handshake::{encode_auth_choice, encode_connect_request, ACCEPT_BYTE};
use spread::wire::header::{hint_for_mess_type, Header, HEADER_LEN};
use spread::wire::name::{name_field, NAME_LEN};

static UNIQUE: AtomicU32 = AtomicU32::new(0);

/// A directory under the system temp dir, removed with its contents on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let n = UNIQUE.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("spread-{tag}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("create temp dir");
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

fn is_free(port: u16, addresses: &[IpAddr]) -> bool {
    let tcp = |a: IpAddr, p: u16| TcpListener::bind((a, p)).is_ok();
    let udp = |a: IpAddr, p: u16| UdpSocket::bind((a, p)).is_ok();
    // An original daemon killed without clean-up leaves /tmp/P behind and cannot reuse it.
    !Path::new("/tmp").join(port.to_string()).exists()
        && addresses
            .iter()
            .all(|&a| tcp(a, port) && udp(a, port) && udp(a, port + 1))
}

/// The ports tests may use: `SPREAD_TEST_PORTS=LOW-HIGH` if set, else 20000-39999.
fn port_range() -> (u16, u16) {
    let parsed = std::env::var("SPREAD_TEST_PORTS").ok().and_then(|v| {
        let (low, high) = v.split_once('-')?;
        Some((low.trim().parse().ok()?, high.trim().parse().ok()?))
    });
    match parsed {
        Some((low, high)) if low < high && high < u16::MAX => (low, high),
        _ => (20000, 39999),
    }
}

/// A port P with TCP P and UDP P and P+1 free on 127.0.0.1 (a daemon binds all three; the
/// original uses P+1 for its token).
pub fn free_port() -> u16 {
    free_port_on(&[IpAddr::V4(Ipv4Addr::LOCALHOST)])
}

/// A port P with TCP P and UDP P and P+1 free on every address given. Candidates step by 2
/// from a start derived from the process id, so parallel tests and processes rarely collide.
pub fn free_port_on(addresses: &[IpAddr]) -> u16 {
    let (low, high) = port_range();
    let pairs = u32::from(high - low) / 2;
    let start = std::process::id().wrapping_mul(7919);
    for _ in 0..pairs.min(5000) {
        let n = UNIQUE.fetch_add(1, Ordering::Relaxed);
        let port = low + (start.wrapping_add(n) % pairs) as u16 * 2;
        if is_free(port, addresses) {
            return port;
        }
    }
    panic!("no free port pair in {low}-{high}");
}

/// How to run a daemon: our `spread`, or the original 5.0.1 for interoperability runs.
#[derive(Clone, Debug)]
pub struct DaemonKind {
    pub program: PathBuf,
    /// The original needs extra configuration lines and always uses /tmp for its socket.
    pub original: bool,
    /// Socket directory to use instead of a fresh temporary one (e.g. /tmp, for a client
    /// library that does not honour SPREAD_SOCKET_DIR).
    pub socket_dir: Option<PathBuf>,
}

impl DaemonKind {
    /// Our `spread` binary, as cargo built it for this test or benchmark.
    pub fn ours() -> DaemonKind {
        DaemonKind {
            program: PathBuf::from(env!("CARGO_BIN_EXE_spread")),
            original: false,
            socket_dir: None,
        }
    }

    /// Lines the original needs in its configuration (ours accepts them), with its runtime
    /// directory under `dir`; nothing for ours.
    pub fn config_lines(&self, dir: &Path) -> String {
        if !self.original {
            return String::new();
        }
        let runtime = dir.join("runtime");
        fs::create_dir_all(&runtime).expect("runtime dir");
        format!(
            "RuntimeDir = {}\nDaemonUser = root\nDaemonGroup = root\n",
            runtime.display()
        )
    }

    /// The socket directory every daemon of this kind must use, if not a fresh one.
    pub fn fixed_socket_dir(&self) -> Option<PathBuf> {
        self.socket_dir
            .clone()
            .or_else(|| self.original.then(|| PathBuf::from("/tmp")))
    }
}

/// How to start one daemon of a configuration.
pub struct Launch<'a> {
    pub kind: &'a DaemonKind,
    /// Its name in the configuration (`-n`).
    pub name: &'a str,
    pub config: &'a Path,
    /// Port of its segment (its Unix socket's name).
    pub port: u16,
    /// Words run before the program, e.g. `ip netns exec NS`.
    pub prefix: Vec<OsString>,
    /// Extra environment, e.g. `SPREAD_TEST_FAULTS`.
    pub env: Vec<(OsString, OsString)>,
}

/// A running daemon with its own directory (log, and socket unless the kind fixes it).
pub struct Daemon {
    child: Child,
    pub name: String,
    pub port: u16,
    pub socket_dir: PathBuf,
    log: PathBuf,
    dir: TempDir,
    /// The configuration's directory when the daemon has it to itself.
    config_dir: Option<TempDir>,
}

impl Daemon {
    /// Starts a daemon named `localhost` on a fresh port and waits until it echoes a message
    /// back to a fresh session.
    pub fn start(kind: &DaemonKind) -> Daemon {
        Self::start_with(kind, "")
    }

    /// Like [`Daemon::start`] with `extra` appended to the configuration (options).
    pub fn start_with(kind: &DaemonKind, extra: &str) -> Daemon {
        let dir = TempDir::new("conf");
        let port = free_port();
        let conf = dir.path().join("spread.conf");
        let segment = if kind.original {
            format!("Spread_Segment 127.255.255.255:{port} {{ localhost 127.0.0.1 {{ 127.0.0.1 }} }}\n")
        } else {
            format!("Spread_Segment 127.255.255.255:{port} {{ localhost 127.0.0.1 }}\n")
        };
        let text = format!("{segment}{}{extra}\n", kind.config_lines(dir.path()));
        fs::write(&conf, text).expect("write config");
        let mut daemon = Self::launch(Launch {
            kind,
            name: "localhost",
            config: &conf,
            port,
            prefix: Vec::new(),
            env: Vec::new(),
        });
        daemon.config_dir = Some(dir);
        daemon
    }

    /// Starts one daemon as `launch` says and waits until it serves clients.
    pub fn launch(launch: Launch<'_>) -> Daemon {
        let dir = TempDir::new("daemon");
        let socket_dir = launch
            .kind
            .fixed_socket_dir()
            .unwrap_or_else(|| dir.path().to_path_buf());
        let log = dir.path().join("daemon.log");
        let out = fs::File::create(&log).expect("daemon log");
        let mut words = launch.prefix.clone();
        words.push(launch.kind.program.clone().into());
        let child = Command::new(&words[0])
            .args(&words[1..])
            .arg("-n")
            .arg(launch.name)
            .arg("-c")
            .arg(launch.config)
            .env("SPREAD_SOCKET_DIR", &socket_dir)
            .envs(launch.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log handle"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {words:?}: {e}"));
        let mut daemon = Daemon {
            child,
            name: launch.name.to_string(),
            port: launch.port,
            socket_dir,
            log,
            dir,
            config_dir: None,
        };
        daemon.wait_ready(Duration::from_secs(30));
        daemon
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits up to `limit` for the daemon to exit.
    pub fn terminate(&mut self, limit: Duration) -> ExitStatus {
        // SAFETY: kill(2) on the child we started and have not reaped.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) }, 0);
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the daemon") {
                return status;
            }
            assert!(Instant::now() < deadline, "daemon did not exit within {limit:?}");
            sleep(Duration::from_millis(20));
        }
    }

    pub fn socket_path(&self) -> PathBuf {
        self.socket_dir.join(self.port.to_string())
    }

    /// What the daemon printed so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn wait_ready(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        let mut last_error = String::from("never tried");
        while Instant::now() < deadline {
            if !self.is_running() {
                panic!(
                    "daemon {} exited during start-up; log:\n{}",
                    self.name,
                    self.log()
                );
            }
            match self.echo_probe() {
                Ok(()) => return,
                Err(e) => last_error = e,
            }
            sleep(Duration::from_millis(100));
        }
        panic!(
            "daemon not ready after {limit:?} ({last_error}); log:\n{}",
            self.log()
        );
    }

    /// One session: handshake, a message to its own private group, the echo, close.
    fn echo_probe(&self) -> Result<(), String> {
        let err = |what: &str, e: std::io::Error| format!("{what}: {e}");
        let mut s = UnixStream::connect(self.socket_path()).map_err(|e| err("connect", e))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| err("timeout", e))?;
        s.write_all(&encode_connect_request(b"", false, 0))
            .map_err(|e| err("request", e))?;
        let mut len = [0u8; 1];
        s.read_exact(&mut len).map_err(|e| err("auth list", e))?;
        if len[0] as i8 <= 0 {
            return Err(format!("refused with byte {:#x}", len[0]));
        }
        let mut list = vec![0u8; len[0] as usize];
        s.read_exact(&mut list).map_err(|e| err("auth list", e))?;
        s.write_all(&encode_auth_choice(&[b"NULL".as_slice()]))
            .map_err(|e| err("auth choice", e))?;
        let mut accept = [0u8; 5];
        s.read_exact(&mut accept).map_err(|e| err("accept", e))?;
        if accept[0] != ACCEPT_BYTE || accept[4] as usize >= NAME_LEN {
            return Err(format!("bad accept {accept:?}"));
        }
        let mut group = vec![0u8; accept[4] as usize];
        s.read_exact(&mut group).map_err(|e| err("private group", e))?;

        let payload = b"ready?";
        let header = Header {
            msg_type: AGREED_MESS,
            sender: name_field(&group),
            num_groups: 1,
            hint: hint_for_mess_type(0),
            data_len: payload.len() as i32,
        };
        let mut frame = header.encode().to_vec();
        frame.extend_from_slice(&name_field(&group));
        frame.extend_from_slice(payload);
        s.write_all(&frame).map_err(|e| err("send", e))?;
        let mut echo = vec![0u8; frame.len()];
        s.read_exact(&mut echo).map_err(|e| err("echo", e))?;
        let mut head = [0u8; HEADER_LEN];
        head.copy_from_slice(&echo[..HEADER_LEN]);
        let (got, _) = Header::decode(&head);
        if got.data_len != payload.len() as i32 || &echo[HEADER_LEN + NAME_LEN..] != payload {
            return Err("echo differs".into());
        }
        Ok(())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if self.socket_path().parent() != Some(self.dir.path()) {
            // Killed without its own clean-up, a daemon leaves its socket behind.
            let _ = fs::remove_file(self.socket_path());
        }
    }
}

/// A finished program's status and both outputs, for assertion messages.
pub fn show(output: &Output) -> String {
    format!(
        "status: {}\n--- stdout ---\n{}--- stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The cdylib cargo built with this test: `cargo test` leaves it in deps/ beside the test
/// binary (only `cargo build` copies it up to target/<profile>/, where it may be stale).
pub fn built_library() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let deps = exe.parent().expect("deps directory");
    [deps, deps.parent().expect("profile directory")]
        .iter()
        .map(|dir| dir.join("libspread.so"))
        .find(|lib| lib.exists())
        .expect("libspread.so built beside the test binary")
}
