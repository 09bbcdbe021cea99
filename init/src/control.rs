//! The control socket: how `poweroff`, `reboot` and `reload` reach
//! dbos-init. A Unix datagram socket (`--control-socket`, default
//! `/run/dbos-init.ctl` as PID 1) created with mode 0600, so only its owner
//! (root on a dbos machine) may send. One datagram is one request word;
//! the words and the client (`send`) are `dbos_procs::control`, which the
//! shell's `poweroff` and `reboot` use too.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

pub use dbos_procs::control::{send, Request, SendError};

/// The bound, non-blocking control socket.
pub struct Control {
    sock: UnixDatagram,
    path: PathBuf,
}

impl Control {
    /// Bind at `path` (replacing a stale socket), mode 0600.
    pub fn bind(path: &Path) -> std::io::Result<Control> {
        remove_stale_socket(path);
        let sock = UnixDatagram::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        sock.set_nonblocking(true)?;
        Ok(Control {
            sock,
            path: path.to_path_buf(),
        })
    }

    /// The next pending request, if any. Unknown words are returned as Err.
    pub fn poll(&self) -> Option<Result<Request, String>> {
        let mut buf = [0u8; 256];
        let n = self.sock.recv(&mut buf).ok()?;
        let b = &buf[..n];
        Some(Request::parse(b).ok_or_else(|| String::from_utf8_lossy(b).into_owned()))
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Remove `path` if it is a socket (left by an earlier run); nothing else.
pub fn remove_stale_socket(path: &Path) {
    use std::os::unix::fs::FileTypeExt;
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
        let _ = std::fs::remove_file(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("ctl");
        let c = Control::bind(&p).unwrap();
        assert!(c.poll().is_none());
        send(&p, Request::Reboot).unwrap();
        assert_eq!(c.poll(), Some(Ok(Request::Reboot)));
        send(&p, Request::Poweroff).unwrap();
        assert_eq!(c.poll(), Some(Ok(Request::Poweroff)));
        assert_eq!(Request::parse(b"reload\n"), Some(Request::Reload));
        assert_eq!(Request::parse(b"\xff"), None);
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
