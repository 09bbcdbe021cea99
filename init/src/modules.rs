//! Kernel modules PID 1 loads before it looks for the state disk.
//!
//! Debian's kernel builds virtio, virtio_blk and ext4 as modules, so the
//! image's initramfs carries them and a list, `/etc/modules`: one path of an
//! uncompressed `.ko` file per line, dependencies first (the image build
//! orders them); blank lines and `#` comments are skipped. Each is loaded
//! with finit_module(2); one already loaded (EEXIST) is not a failure.

use std::os::fd::AsRawFd;
use std::path::Path;

/// The list PID 1 reads.
pub const MODULE_LIST: &str = "/etc/modules";

/// The module paths named by a list's text, in order.
pub fn parse_list(text: &str) -> Vec<&str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

/// Load one module file.
pub fn load(path: &Path) -> std::io::Result<()> {
    let f = std::fs::File::open(path)?;
    let params = c"";
    // SAFETY: a valid open descriptor and a NUL-terminated parameter string.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_finit_module,
            f.as_raw_fd(),
            params.as_ptr(),
            0 as libc::c_int,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EEXIST) {
        Ok(())
    } else {
        Err(e)
    }
}

/// Load every module of the list at `list` (absent: nothing to do).
/// Returns one line per failure.
pub fn load_list(list: &Path) -> Vec<String> {
    let text = match std::fs::read_to_string(list) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => return vec![format!("reading {}: {e}", list.display())],
    };
    parse_list(&text)
        .into_iter()
        .filter_map(|m| {
            load(Path::new(m))
                .err()
                .map(|e| format!("loading module {m}: {e}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_skips_blanks_and_comments() {
        let l = parse_list("# deps first\n/lib/modules/virtio.ko\n\n  /lib/modules/ext4.ko  \n");
        assert_eq!(l, ["/lib/modules/virtio.ko", "/lib/modules/ext4.ko"]);
        assert!(load_list(Path::new("/nonexistent/modules")).is_empty());
    }
}
