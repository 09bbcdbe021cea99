//! The boot row: one `boot` key per boot (a random UUID), written at start,
//! rewritten when the console shell reaches its prompt (the boot is then
//! `good`, with the transaction it had reached) and at stop with the end
//! time and how the boot ended. A boot still `started` when the next one
//! begins never reached the prompt: the next boot marks it `failed`.
//!
//! `last-good` is resolved here: the state of the newest good boot of a
//! branch, i.e. the transaction its shell prompt was first shown at.

use dbos_engine::{Actor, Engine, Entry, Space, TxId};
use serde::{Deserialize, Serialize};

/// The REF word naming the state of the newest good boot of a branch.
pub const LAST_GOOD: &str = "last-good";

/// Outcome of a boot that has not (yet) reached the shell prompt.
pub const STARTED: &str = "started";
/// Outcome of a boot whose console shell reached its prompt.
pub const GOOD: &str = "good";
/// Outcome given by the next boot to one that stayed `started`.
pub const FAILED: &str = "failed";

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
    /// `started`, `good` (the shell prompt was reached) or `failed` (set by
    /// the next boot). Rows from before outcomes existed read as absent.
    #[serde(default)]
    pub outcome: Option<String>,
    /// The newest transaction when the boot became good: the state that
    /// `last-good` boots.
    #[serde(default)]
    pub good_tx: Option<TxId>,
}

impl BootRecord {
    /// Whether the boot reached the shell prompt.
    pub fn is_good(&self) -> bool {
        self.outcome.as_deref() == Some(GOOD)
    }
}

/// Failure to read the boot rows of a branch.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    /// The engine refused the read.
    #[error("reading boot rows of {branch}: {source}")]
    Engine {
        /// Branch read.
        branch: String,
        /// What failed.
        source: dbos_engine::Error,
    },
}

/// Every boot row of `branch` (at its tip) that parses, oldest start first.
pub fn boots(engine: &mut Engine, branch: &str) -> Result<Vec<BootRecord>, BootError> {
    let err = |source| BootError::Engine {
        branch: branch.to_string(),
        source,
    };
    let mut tx = engine.begin(branch, &Actor::default()).map_err(err)?;
    let rows = tx.list_space(Space::Boot).map_err(err)?;
    tx.rollback();
    let mut out: Vec<BootRecord> = rows
        .into_iter()
        .filter_map(|(_, e)| match e {
            Entry::Value(v) => serde_json::from_str(&v).ok(),
            _ => None,
        })
        .collect();
    out.sort_by_key(|r| (r.start_us, r.id.clone()));
    Ok(out)
}

/// The newest boot of `branch` (by start time), if any.
pub fn previous(boots: &[BootRecord]) -> Option<&BootRecord> {
    boots.last()
}

/// The transaction of the newest good boot, if any boot was good.
pub fn last_good(boots: &[BootRecord]) -> Option<(&BootRecord, TxId)> {
    boots
        .iter()
        .rev()
        .find_map(|b| Some((b, b.good_tx.filter(|_| b.is_good())?)))
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

    fn rec(id: &str, start_us: i64, outcome: Option<&str>, good_tx: Option<TxId>) -> BootRecord {
        BootRecord {
            id: id.into(),
            kernel: "k".into(),
            branch: "main".into(),
            as_of: None,
            start_us,
            pid1: true,
            hostname: "h".into(),
            end_us: None,
            ended: None,
            outcome: outcome.map(String::from),
            good_tx,
        }
    }

    #[test]
    fn last_good_is_the_newest_good_boot() {
        let b = vec![
            rec("a", 1, Some(GOOD), Some(5)),
            rec("b", 2, Some(GOOD), Some(9)),
            rec("c", 3, Some(FAILED), None),
            rec("d", 4, Some(STARTED), None),
        ];
        assert_eq!(
            last_good(&b).map(|(r, t)| (r.id.as_str(), t)),
            Some(("b", 9))
        );
        assert_eq!(previous(&b).map(|r| r.id.as_str()), Some("d"));
        assert!(!previous(&b).is_some_and(BootRecord::is_good));
        assert_eq!(last_good(&b[2..]), None);
        // Rows written before outcomes existed still parse, as not good.
        let old = r#"{"id":"x","kernel":"k","branch":"main","as_of":null,"start_us":1,
            "pid1":true,"hostname":"h","end_us":null,"ended":null}"#;
        let r: BootRecord = serde_json::from_str(old).unwrap();
        assert!(!r.is_good());
    }

    #[test]
    fn boot_rows_round_trip_through_the_engine() {
        let d = tempfile::tempdir().unwrap();
        let mut e = Engine::open(&d.path().join("s.db").display().to_string()).unwrap();
        assert!(boots(&mut e, "main").unwrap().is_empty());
        let mut tx = e.begin("main", &Actor::default()).unwrap();
        for r in [
            rec("late", 7, Some(STARTED), None),
            rec("early", 3, Some(GOOD), Some(1)),
        ] {
            let json = serde_json::to_string(&r).unwrap();
            tx.put(Space::Boot, &r.id, Some(Entry::Value(json)))
                .unwrap();
        }
        tx.commit("boots", None).unwrap();
        let got = boots(&mut e, "main").unwrap();
        let ids: Vec<&str> = got.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["early", "late"]);
        assert_eq!(last_good(&got).map(|(_, t)| t), Some(1));
    }

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
