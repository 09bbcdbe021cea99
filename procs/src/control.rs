//! The control socket of dbos-init, client side: how `poweroff`, `reboot`
//! and `reload` reach it. A Unix datagram socket; one datagram is one
//! request word. dbos-init binds it (`dbos_init::control`); anyone allowed
//! to write to it (its mode is 0600: its owner) sends.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

/// Where dbos-init listens as PID 1.
pub const DEFAULT_PATH: &str = "/run/dbos-init.ctl";

/// Environment variable naming another socket (tests, dbos-init off PID 1).
pub const ENV_VAR: &str = "DBOS_INIT_CONTROL";

/// What may be asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// Stop everything and power off (as PID 1) or exit.
    Poweroff,
    /// Stop everything and reboot (as PID 1) or exit.
    Reboot,
    /// Re-read config (as SIGHUP does).
    Reload,
    /// The console shell reached its prompt: this boot is good (sent once
    /// by a shell that dbos-init started with `READY_ENV` set).
    Ready,
}

/// Environment variable dbos-init sets on the console shells it starts:
/// the shell sends `Request::Ready` when it first shows its prompt.
pub const READY_ENV: &str = "DBOS_INIT_READY";

impl Request {
    /// Parse a request datagram.
    pub fn parse(b: &[u8]) -> Option<Request> {
        match std::str::from_utf8(b).ok()?.trim() {
            "poweroff" | "halt" => Some(Request::Poweroff),
            "reboot" => Some(Request::Reboot),
            "reload" => Some(Request::Reload),
            "ready" => Some(Request::Ready),
            _ => None,
        }
    }

    /// The word sent for it.
    pub fn word(self) -> &'static str {
        match self {
            Request::Poweroff => "poweroff",
            Request::Reboot => "reboot",
            Request::Reload => "reload",
            Request::Ready => "ready",
        }
    }
}

/// Why a request did not reach dbos-init.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Nothing listens at the path.
    #[error("no dbos-init is running (no control socket at {0})")]
    NotRunning(PathBuf),
    /// The socket exists but this user may not write to it.
    #[error("permission denied on the control socket {0} (dbos-init runs as another user)")]
    Denied(PathBuf),
    /// Anything else the system said.
    #[error("control socket {path}: {source}")]
    Io {
        /// The socket.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
}

/// The socket to use: `$DBOS_INIT_CONTROL` when set and not empty, else
/// the default.
pub fn socket_path() -> PathBuf {
    std::env::var_os(ENV_VAR)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_PATH))
}

/// Send a request to the dbos-init listening at `path`.
pub fn send(path: &Path, req: Request) -> Result<(), SendError> {
    let io = |source: std::io::Error| match source.kind() {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
            SendError::NotRunning(path.to_path_buf())
        }
        std::io::ErrorKind::PermissionDenied => SendError::Denied(path.to_path_buf()),
        _ => SendError::Io {
            path: path.to_path_buf(),
            source,
        },
    };
    let s = UnixDatagram::unbound().map_err(io)?;
    s.send_to(req.word().as_bytes(), path).map_err(io)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_and_a_missing_socket() {
        for r in [
            Request::Poweroff,
            Request::Reboot,
            Request::Reload,
            Request::Ready,
        ] {
            assert_eq!(Request::parse(r.word().as_bytes()), Some(r));
        }
        assert_eq!(Request::parse(b"halt\n"), Some(Request::Poweroff));
        assert_eq!(Request::parse(b"\xff"), None);
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("nothing");
        let e = send(&p, Request::Poweroff).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "no dbos-init is running (no control socket at {})",
                p.display()
            )
        );
        // A socket file whose owner has gone: refused, the same answer.
        drop(UnixDatagram::bind(&p).unwrap());
        assert!(matches!(
            send(&p, Request::Reboot),
            Err(SendError::NotRunning(_))
        ));
    }
}
