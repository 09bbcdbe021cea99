//! The boot row: one `boot` key per boot (a random UUID), written at start
//! and rewritten at stop with the end time and how the boot ended.

use serde::{Deserialize, Serialize};

/// One boot, as stored (JSON).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootRecord {
    /// Random UUID (version 4) of this boot.
    pub id: String,
    /// Kernel release (`uname -r`).
    pub kernel: String,
    /// Branch booted.
    pub branch: String,
    /// The REF booted read-only, if any.
    pub as_of: Option<String>,
    /// Start, microseconds since the epoch.
    pub start_us: i64,
    /// Whether dbos-init ran as PID 1.
    pub pid1: bool,
    /// Host name at start.
    pub hostname: String,
    /// End, microseconds since the epoch (None while running, or after a crash).
    pub end_us: Option<i64>,
    /// How it ended: `poweroff`, `reboot`, `signal SIGTERM`, `shell exited`.
    pub ended: Option<String>,
}

/// Format 16 random bytes as a version 4 UUID.
pub fn uuid_from(mut b: [u8; 16]) -> String {
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = dbos_engine::hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// A new boot id from the kernel's random source (falling back to time and
/// pid when there is none, e.g. very early in a boot without /dev).
pub fn new_boot_id() -> String {
    let mut b = [0u8; 16];
    // SAFETY: getrandom writes at most b.len() bytes into b.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), libc::GRND_NONBLOCK) };
    if n != b.len() as isize {
        let t = crate::writer::now_us() as u128 ^ (u128::from(std::process::id()) << 64);
        b = t.to_le_bytes();
    }
    uuid_from(b)
}

/// The kernel release.
pub fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".to_string())
}

/// The host name.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_shape() {
        let u = uuid_from([0xff; 16]);
        assert_eq!(u, "ffffffff-ffff-4fff-bfff-ffffffffffff");
        let a = new_boot_id();
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert_ne!(a, new_boot_id());
    }
}
