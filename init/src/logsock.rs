//! The syslog listener: a Unix datagram socket (default `/run/log.sock`)
//! whose datagrams become log rows through the writer, which batches them.
//!
//! The socket is mode 0666 so any local program can log, like `/dev/log`.
//! Exposure: any local user can add log rows (with any source name and
//! severity they claim) and fill the log table; nobody can read or change
//! rows through it. Its directory should be owned by the supervisor
//! (`/run` as PID 1) so the socket cannot be replaced by someone else.

use crate::control::remove_stale_socket;
use crate::syslog;
use crate::writer::{now_us, Handle};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Largest datagram read; longer ones are truncated by the kernel.
pub const MAX_DATAGRAM: usize = 64 * 1024;

/// A bound listener, not yet running.
pub struct Listener {
    sock: UnixDatagram,
    path: PathBuf,
}

impl Listener {
    /// Bind at `path` (replacing a stale socket, creating its directory),
    /// mode 0666.
    pub fn bind(path: &Path) -> std::io::Result<Listener> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        remove_stale_socket(path);
        let sock = UnixDatagram::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
        sock.set_read_timeout(Some(Duration::from_millis(100)))?;
        Ok(Listener {
            sock,
            path: path.to_path_buf(),
        })
    }

    /// Receive until `stop` is set, then drain what is already queued (so
    /// nothing a client finished sending is lost), remove the socket file
    /// and return.
    pub fn spawn(self, writer: Handle, stop: Arc<AtomicBool>) -> std::io::Result<JoinHandle<()>> {
        std::thread::Builder::new()
            .name("logsock".into())
            .spawn(move || {
                let mut buf = vec![0u8; MAX_DATAGRAM];
                let store = |b: &[u8]| writer.log(syslog::parse(b, now_us()).to_entry(now_us()));
                while !stop.load(Ordering::Relaxed) {
                    match self.sock.recv(&mut buf) {
                        Ok(n) => store(&buf[..n]),
                        Err(e)
                            if matches!(
                                e.kind(),
                                std::io::ErrorKind::WouldBlock
                                    | std::io::ErrorKind::TimedOut
                                    | std::io::ErrorKind::Interrupted
                            ) => {}
                        Err(e) => {
                            eprintln!("dbos-init: log socket: {e}");
                            std::thread::sleep(Duration::from_millis(100));
                        }
                    }
                }
                let _ = std::fs::remove_file(&self.path);
                if self.sock.set_nonblocking(true).is_ok() {
                    while let Ok(n) = self.sock.recv(&mut buf) {
                        store(&buf[..n]);
                    }
                }
            })
    }
}
