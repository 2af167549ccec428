//! Shared by integration tests that run real daemons: temporary directories, free loopback
//! ports, and a daemon process that is killed when dropped, even if the test panics.

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
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

fn is_free(port: u16) -> bool {
    let tcp = |p: u16| TcpListener::bind(("127.0.0.1", p)).is_ok();
    let udp = |p: u16| UdpSocket::bind(("127.0.0.1", p)).is_ok();
    tcp(port) && udp(port) && udp(port + 1)
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

/// A port P with TCP P and UDP P and P+1 free on 127.0.0.1 (a daemon binds all three).
/// Candidates step by 2 from a start derived from the process id, so parallel tests and
/// processes rarely collide.
pub fn free_port() -> u16 {
    let (low, high) = port_range();
    let pairs = u32::from(high - low) / 2;
    let start = std::process::id().wrapping_mul(7919);
    for _ in 0..pairs.min(5000) {
        let n = UNIQUE.fetch_add(1, Ordering::Relaxed);
        let port = low + (start.wrapping_add(n) % pairs) as u16 * 2;
        if is_free(port) {
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
    /// The socket directory every daemon of this kind must use, if not a fresh one.
    pub fn fixed_socket_dir(&self) -> Option<PathBuf> {
        self.socket_dir
            .clone()
            .or_else(|| self.original.then(|| PathBuf::from("/tmp")))
    }
}

/// A running daemon named `localhost` on a fresh port, with its own socket directory.
pub struct Daemon {
    child: Child,
    pub port: u16,
    pub socket_dir: PathBuf,
    log: PathBuf,
    dir: TempDir,
}

impl Daemon {
    /// Starts the daemon and waits until it echoes a message back to a fresh session.
    pub fn start(kind: &DaemonKind) -> Daemon {
        let dir = TempDir::new("daemon");
        let port = free_port();
        let conf = dir.path().join("spread.conf");
        let socket_dir = kind
            .fixed_socket_dir()
            .unwrap_or_else(|| dir.path().to_path_buf());
        let text = if kind.original {
            let runtime = dir.path().join("runtime");
            fs::create_dir_all(&runtime).expect("runtime dir");
            format!(
                "Spread_Segment 127.255.255.255:{port} {{ localhost 127.0.0.1 {{ 127.0.0.1 }} }}\n\
                 RuntimeDir = {}\nDaemonUser = root\nDaemonGroup = root\n",
                runtime.display()
            )
        } else {
            format!("Spread_Segment 127.255.255.255:{port} {{ localhost 127.0.0.1 }}\n")
        };
        fs::write(&conf, text).expect("write config");
        let log = dir.path().join("daemon.log");
        let out = fs::File::create(&log).expect("daemon log");
        let child = Command::new(&kind.program)
            .arg("-n")
            .arg("localhost")
            .arg("-c")
            .arg(&conf)
            .env("SPREAD_SOCKET_DIR", &socket_dir)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log handle"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", kind.program.display()));
        let mut daemon = Daemon {
            child,
            port,
            socket_dir,
            log,
            dir,
        };
        daemon.wait_ready(Duration::from_secs(30));
        daemon
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
                panic!("daemon exited during start-up; log:\n{}", self.log());
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
