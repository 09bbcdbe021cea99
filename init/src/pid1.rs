//! What only PID 1 does (mounts, the state volume, the host name, power
//! off), plus recovery checks that any start runs. System calls go through
//! `libc`; each piece is a small function so it can be tested (or at least
//! compiled) off PID 1.

use dbos_engine::{Actor, Engine, VPath};
use std::ffi::CString;
use std::path::Path;

/// Directories recreated in the state's file tree when missing.
pub const CORE_DIRS: &[&str] = &["/etc", "/var", "/var/log", "/home", "/tmp"];

/// The first virtio disk: the state volume itself (direct boot), or a
/// partitioned disk holding it (the disk image: partition 2).
pub const STATE_DEVICE: &str = "/dev/vda";
/// The ext4 label of the state volume (`mkfs.ext4 -L`).
pub const STATE_LABEL: &str = "dbos-state";
/// Where the state volume is mounted.
pub const STATE_DIR: &str = "/state";
/// The database on it.
pub const STATE_DB: &str = "/state/dbos.db";

/// True when this process is PID 1.
pub fn is_pid1() -> bool {
    std::process::id() == 1
}

/// One mount: source, target, filesystem type, flags, options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mount {
    /// Source (device or pseudo name).
    pub source: &'static str,
    /// Mount point.
    pub target: &'static str,
    /// Filesystem type.
    pub fstype: &'static str,
    /// MS_* flags.
    pub flags: libc::c_ulong,
    /// Filesystem options.
    pub data: &'static str,
}

/// The pseudo filesystems PID 1 mounts first, in order.
pub const BASIC_MOUNTS: &[Mount] = &[
    Mount {
        source: "proc",
        target: "/proc",
        fstype: "proc",
        flags: libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        data: "",
    },
    Mount {
        source: "sysfs",
        target: "/sys",
        fstype: "sysfs",
        flags: libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        data: "",
    },
    Mount {
        source: "devtmpfs",
        target: "/dev",
        fstype: "devtmpfs",
        flags: libc::MS_NOSUID,
        data: "mode=0755",
    },
    Mount {
        source: "tmpfs",
        target: "/run",
        fstype: "tmpfs",
        flags: libc::MS_NOSUID | libc::MS_NODEV,
        data: "mode=0755",
    },
];

fn cstr(s: &str) -> std::io::Result<CString> {
    CString::new(s).map_err(|_| std::io::Error::other(format!("NUL in {s:?}")))
}

/// mount(2), creating the mount point first.
pub fn mount(m: &Mount) -> std::io::Result<()> {
    std::fs::create_dir_all(m.target)?;
    let (src, tgt, fs, data) = (
        cstr(m.source)?,
        cstr(m.target)?,
        cstr(m.fstype)?,
        cstr(m.data)?,
    );
    // SAFETY: every pointer is a valid NUL-terminated string for the call.
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            tgt.as_ptr(),
            fs.as_ptr(),
            m.flags,
            data.as_ptr().cast(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Mount /proc, /sys, /dev and /run; returns one line per failure (an
/// already-mounted filesystem, EBUSY, is not one).
pub fn mount_basics() -> Vec<String> {
    BASIC_MOUNTS
        .iter()
        .filter_map(|m| match mount(m) {
            Ok(()) => None,
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => None,
            Err(e) => Some(format!("mount {} on {}: {e}", m.fstype, m.target)),
        })
        .collect()
}

/// Where the state lives this boot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StateVolume {
    /// The disk, mounted.
    Disk,
    /// A tmpfs: nothing survives power off. Carries why the disk failed.
    Ramdisk(String),
}

/// Mount the state volume (ext4 on `STATE_DEVICE` at `STATE_DIR`); on
/// failure mount a tmpfs there instead and shout about it on the console.
pub fn mount_state() -> StateVolume {
    // A disk driver loaded as a module may register the device a moment
    // after finit_module returns: give it a few seconds to appear.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !exists(STATE_DEVICE) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let device = state_device(Path::new("/sys/block/vda"), Path::new("/dev"))
        .unwrap_or_else(|| STATE_DEVICE.to_string());
    let device: &'static str = Box::leak(device.into_boxed_str());
    let disk = Mount {
        source: device,
        target: STATE_DIR,
        fstype: "ext4",
        flags: libc::MS_NOATIME,
        data: "",
    };
    let err = match mount(&disk) {
        Ok(()) => return StateVolume::Disk,
        Err(e) => format!("mount {device} (ext4) on {STATE_DIR}: {e}"),
    };
    let ram = Mount {
        source: "tmpfs",
        target: STATE_DIR,
        fstype: "tmpfs",
        flags: libc::MS_NOSUID | libc::MS_NODEV,
        data: "mode=0700",
    };
    let err = match mount(&ram) {
        Ok(()) => err,
        Err(e) => format!("{err}; tmpfs fallback also failed: {e}"),
    };
    let bar = "!".repeat(72);
    eprintln!(
        "\n{bar}\n!!! dbos-init: NO STATE DISK: {err}\n!!! Running on a RAM disk: \
         EVERYTHING IS LOST AT POWER OFF.\n{bar}\n"
    );
    StateVolume::Ramdisk(err)
}

/// The ext4 label of the filesystem on `dev`, None when it is not ext4.
pub fn ext4_label(dev: &Path) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(dev).ok()?;
    let mut sb = [0u8; 256];
    f.seek(SeekFrom::Start(1024)).ok()?;
    f.read_exact(&mut sb).ok()?;
    // s_magic at 0x38 (0xEF53, little-endian); s_volume_name at 0x78.
    if sb[0x38..0x3a] != [0x53, 0xef] {
        return None;
    }
    let name = &sb[0x78..0x88];
    let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    Some(String::from_utf8_lossy(&name[..end]).into_owned())
}

/// Which device holds the state volume, given the disk's sysfs directory
/// (`/sys/block/vda`) and the device directory: on a partitioned disk the
/// partition labelled `STATE_LABEL` (else the first ext4 partition); on a
/// whole-disk ext4 (direct boot) the disk itself. None when nothing fits.
pub fn state_device(sys_disk: &Path, dev_dir: &Path) -> Option<String> {
    let disk = sys_disk.file_name()?.to_str()?.to_string();
    let mut parts: Vec<(u32, String)> = std::fs::read_dir(sys_disk)
        .ok()?
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            let n = name
                .strip_prefix(&disk)?
                .trim_start_matches('p')
                .parse()
                .ok()?;
            Some((n, name))
        })
        .collect();
    parts.sort();
    let mut first_ext4 = None;
    for (_, name) in &parts {
        let dev = dev_dir.join(name);
        // Partition nodes appear in devtmpfs a moment after the disk's.
        for _ in 0..100 {
            if dev.exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        match ext4_label(&dev) {
            Some(l) if l == STATE_LABEL => return Some(dev.display().to_string()),
            Some(_) if first_ext4.is_none() => first_ext4 = Some(dev.display().to_string()),
            _ => {}
        }
    }
    first_ext4.or_else(|| {
        let whole = dev_dir.join(&disk);
        ext4_label(&whole).map(|_| whole.display().to_string())
    })
}

/// Set the kernel's host name.
pub fn set_hostname(name: &str) -> std::io::Result<()> {
    // SAFETY: pointer and length describe `name`'s bytes.
    let rc = unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Become the reaper of orphaned descendants (what PID 1 is by nature).
pub fn become_subreaper() -> std::io::Result<()> {
    // SAFETY: prctl with integer arguments.
    let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Flush filesystems.
pub fn sync() {
    // SAFETY: no arguments.
    unsafe { libc::sync() };
}

/// How the machine goes down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Power {
    /// Power off.
    Off,
    /// Restart.
    Reboot,
}

/// sync, then reboot(2). Only returns on failure.
pub fn power(p: Power) -> std::io::Error {
    sync();
    let cmd = match p {
        Power::Off => libc::RB_POWER_OFF,
        Power::Reboot => libc::RB_AUTOBOOT,
    };
    // SAFETY: reboot with a valid command; as PID 1 it does not return.
    unsafe { libc::reboot(cmd) };
    std::io::Error::last_os_error()
}

/// Check the database on start and repair what can be: verify the hash
/// chain of the newest transactions (no content re-read: quick), and on a
/// writable branch recreate missing core directories. Returns what was found
/// or done, one line each, for log rows.
pub fn recover(engine: &mut Engine, branch: Option<&str>) -> Vec<String> {
    let mut notes = Vec::new();
    match engine.head() {
        Ok(head) => {
            let from = head.saturating_sub(1000).max(1);
            match engine.verify_with(from, false, &mut |_, _| {}) {
                Ok(r) => {
                    if let Some(b) = r.broken {
                        notes.push(format!(
                            "verify: the hash chain is broken at T{}: {}",
                            b.tx, b.reason
                        ));
                    }
                }
                Err(e) => notes.push(format!("verify T{from}..T{head}: {e}")),
            }
        }
        Err(e) => notes.push(format!("reading the head transaction: {e}")),
    }
    let Some(branch) = branch else {
        return notes;
    };
    let actor = Actor {
        author: "dbos-init".to_string(),
        uid: 0,
        gid: 0,
    };
    let made = engine.autocommit(
        branch,
        &actor,
        "dbos-init: recreate core directories",
        |tx| {
            let mut made = Vec::new();
            for d in CORE_DIRS {
                let p = VPath::parse(d)?;
                if tx.stat(&p)?.is_none() {
                    tx.mkdir(&p, true, if *d == "/tmp" { 0o1777 } else { 0o755 })?;
                    made.push(*d);
                }
            }
            Ok(made)
        },
    );
    match made {
        Ok((made, _)) if !made.is_empty() => {
            notes.push(format!("recreated missing directories: {}", made.join(" ")))
        }
        Ok(_) => {}
        Err(e) => notes.push(format!("recreating core directories: {e}")),
    }
    notes
}

/// Whether `path` exists (for the console device).
pub fn exists(path: &str) -> bool {
    Path::new(path).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_table_is_ordered_proc_first() {
        let t: Vec<&str> = BASIC_MOUNTS.iter().map(|m| m.target).collect();
        assert_eq!(t, ["/proc", "/sys", "/dev", "/run"]);
        assert!(!is_pid1());
    }

    /// A fake ext4 superblock (magic and label only) of `len` bytes.
    fn fake_ext4(label: &str) -> Vec<u8> {
        let mut b = vec![0u8; 4096];
        b[1024 + 0x38] = 0x53;
        b[1024 + 0x39] = 0xef;
        b[1024 + 0x78..1024 + 0x78 + label.len()].copy_from_slice(label.as_bytes());
        b
    }

    #[test]
    fn state_device_prefers_the_labelled_partition() {
        let d = tempfile::tempdir().unwrap();
        let (sys, dev) = (d.path().join("sys/vda"), d.path().join("dev"));
        std::fs::create_dir_all(&sys).unwrap();
        std::fs::create_dir_all(&dev).unwrap();
        // Whole-disk ext4 (direct boot): the disk itself.
        std::fs::write(dev.join("vda"), fake_ext4("dbos-state")).unwrap();
        assert_eq!(
            state_device(&sys, &dev),
            Some(dev.join("vda").display().to_string())
        );
        // Partitioned: a FAT ESP, an unlabelled ext4, the labelled one.
        std::fs::write(dev.join("vda"), vec![0u8; 4096]).unwrap();
        for (p, data) in [
            ("vda1", vec![0u8; 4096]),
            ("vda2", fake_ext4("other")),
            ("vda3", fake_ext4("dbos-state")),
        ] {
            std::fs::create_dir(sys.join(p)).unwrap();
            std::fs::write(dev.join(p), data).unwrap();
        }
        std::fs::create_dir(sys.join("queue")).unwrap();
        assert_eq!(
            state_device(&sys, &dev),
            Some(dev.join("vda3").display().to_string())
        );
        assert_eq!(ext4_label(&dev.join("vda2")).as_deref(), Some("other"));
        assert_eq!(ext4_label(&dev.join("vda1")), None);
        // No label: the first ext4 partition.
        std::fs::write(dev.join("vda3"), vec![0u8; 4096]).unwrap();
        assert_eq!(
            state_device(&sys, &dev),
            Some(dev.join("vda2").display().to_string())
        );
    }

    #[test]
    fn recover_recreates_core_dirs_once() {
        let d = tempfile::tempdir().unwrap();
        let mut e = Engine::open(&d.path().join("s.db").display().to_string()).unwrap();
        let notes = recover(&mut e, Some("main"));
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].contains("/var/log"));
        assert!(recover(&mut e, Some("main")).is_empty());
        let mut tx = e.begin("main", &Actor::default()).unwrap();
        assert!(tx.stat(&VPath::parse("/home").unwrap()).unwrap().is_some());
    }
}
