//! The host share: `image/run --share HOSTDIR` gives the guest a virtio 9p
//! device tagged `host`; PID 1 mounts it on `/host` so that the shell can
//! `import /host/DIR PATH` (and `export` back) without a network.

use crate::pid1::{self, Mount};
use std::path::Path;
use std::time::{Duration, Instant};

/// The 9p mount tag `image/run --share` gives the device.
pub const SHARE_TAG: &str = "host";
/// Where the share is mounted in the guest.
pub const SHARE_DIR: &str = "/host";
/// Virtio device id of a 9p transport (virtio spec, "Device Types").
const VIRTIO_ID_9P: &str = "0x0009";

/// Whether any virtio device of the 9p type is present.
fn has_9p_device(devices: &Path) -> bool {
    std::fs::read_dir(devices)
        .map(|it| {
            it.flatten().any(|d| {
                std::fs::read_to_string(d.path().join("device"))
                    .is_ok_and(|id| id.trim() == VIRTIO_ID_9P)
            })
        })
        .unwrap_or(false)
}

/// Whether a 9p device with `tag` has been bound by its driver.
fn tag_bound(devices: &Path, tag: &str) -> bool {
    std::fs::read_dir(devices)
        .map(|it| {
            it.flatten().any(|d| {
                std::fs::read_to_string(d.path().join("mount_tag"))
                    .is_ok_and(|t| t.trim_end_matches(['\0', '\n']) == tag)
            })
        })
        .unwrap_or(false)
}

/// Mount the host share on [`SHARE_DIR`] if the machine has one. `Ok(false)`
/// when there is no 9p device (the common case: costs a directory read).
pub fn mount_host_share() -> Result<bool, String> {
    let devices = Path::new("/sys/bus/virtio/devices");
    if !has_9p_device(devices) {
        return Ok(false);
    }
    // The 9p driver is a module loaded just before: let it bind.
    let deadline = Instant::now() + Duration::from_secs(3);
    while !tag_bound(devices, SHARE_TAG) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let m = Mount {
        source: SHARE_TAG,
        target: SHARE_DIR,
        fstype: "9p",
        flags: libc::MS_NOSUID | libc::MS_NODEV,
        data: "trans=virtio,version=9p2000.L,msize=262144",
    };
    pid1::mount(&m)
        .map(|()| true)
        .map_err(|e| format!("mount the host share (9p tag {SHARE_TAG}) on {SHARE_DIR}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(root: &Path, name: &str, id: &str, tag: Option<&str>) {
        let d = root.join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("device"), format!("{id}\n")).unwrap();
        if let Some(t) = tag {
            std::fs::write(d.join("mount_tag"), format!("{t}\0")).unwrap();
        }
    }

    #[test]
    fn finds_a_9p_device_among_others() {
        let dir = tempfile::tempdir().unwrap();
        device(dir.path(), "virtio0", "0x0002", None);
        assert!(!has_9p_device(dir.path()));
        assert!(!tag_bound(dir.path(), SHARE_TAG));
        device(dir.path(), "virtio1", "0x0009", Some("host"));
        assert!(has_9p_device(dir.path()));
        assert!(tag_bound(dir.path(), "host"));
        assert!(!tag_bound(dir.path(), "other"));
    }

    #[test]
    fn no_devices_folder_means_no_share() {
        assert!(!has_9p_device(Path::new("/nonexistent/virtio")));
    }
}
