//! Host users: who a program runs as. Looking a user up reads the user
//! database (`getpwnam_r`, `getgrouplist`), so it happens before the fork;
//! the child then only makes the system calls that switch to it.

use crate::error::{Error, Result};
use std::ffi::{CStr, CString};

/// A host user resolved for starting a program as it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// Its name.
    pub name: String,
    /// Its user id.
    pub uid: u32,
    /// Its primary group.
    pub gid: u32,
    /// Every group it belongs to (the primary one included).
    pub groups: Vec<u32>,
}

/// Size of the buffer `getpw*_r` fill.
const PW_BUF: usize = 16 * 1024;

/// Name and primary group of the passwd entry `lookup` finds.
fn passwd(
    lookup: impl FnOnce(&mut libc::passwd, &mut [libc::c_char], &mut *mut libc::passwd) -> i32,
) -> Option<(String, u32, u32)> {
    // SAFETY: a zeroed passwd is a valid value of a plain C struct.
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; PW_BUF];
    let mut out: *mut libc::passwd = std::ptr::null_mut();
    if lookup(&mut pw, &mut buf, &mut out) != 0 || out.is_null() || pw.pw_name.is_null() {
        return None;
    }
    // SAFETY: pw_name points into buf, NUL-terminated, checked non-null.
    let name = unsafe { CStr::from_ptr(pw.pw_name) };
    Some((name.to_string_lossy().into_owned(), pw.pw_uid, pw.pw_gid))
}

/// The user named `name` (a name from the user database, or a number
/// that names one). Err(`Error::User`) when there is none.
pub fn lookup(name: &str) -> Result<User> {
    let bad = |reason: &str| Error::User {
        user: name.to_string(),
        reason: reason.to_string(),
    };
    let c = CString::new(name).map_err(|_| bad("not a valid user name"))?;
    let found = passwd(|pw, buf, out| {
        // SAFETY: every pointer is to memory owned above, buf's length given.
        unsafe { libc::getpwnam_r(c.as_ptr(), pw, buf.as_mut_ptr(), buf.len(), out) }
    })
    .or_else(|| {
        let uid: u32 = name.parse().ok()?;
        passwd(|pw, buf, out| {
            // SAFETY: as above.
            unsafe { libc::getpwuid_r(uid, pw, buf.as_mut_ptr(), buf.len(), out) }
        })
    });
    let (pw_name, uid, gid) = found.ok_or_else(|| bad("no such user"))?;
    Ok(User {
        groups: groups_of(&pw_name, gid),
        name: pw_name,
        uid,
        gid,
    })
}

/// The groups `name` belongs to, `gid` among them.
fn groups_of(name: &str, gid: u32) -> Vec<u32> {
    let Ok(c) = CString::new(name) else {
        return vec![gid];
    };
    let mut n: libc::c_int = 64;
    for _ in 0..4 {
        let mut groups = vec![0 as libc::gid_t; n.max(1) as usize];
        let mut count = n;
        // SAFETY: groups holds `count` entries; getgrouplist writes at most
        // that many and sets count to the number it needs.
        let rc = unsafe { libc::getgrouplist(c.as_ptr(), gid, groups.as_mut_ptr(), &mut count) };
        if rc >= 0 {
            groups.truncate(count.max(0) as usize);
            return groups;
        }
        n = count.max(n * 2);
    }
    vec![gid]
}

/// The name of the user this process runs as (its number when the user
/// database has no entry).
pub fn current_name() -> String {
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    passwd(|pw, buf, out| {
        // SAFETY: every pointer is to memory owned by `passwd`.
        unsafe { libc::getpwuid_r(uid, pw, buf.as_mut_ptr(), buf.len(), out) }
    })
    .map(|(name, _, _)| name)
    .unwrap_or_else(|| uid.to_string())
}

/// Whether this process may switch to another user (its effective user is
/// root).
pub fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Switch the calling process to `user`: supplementary groups, group, then
/// user. Only system calls: safe between fork and exec.
pub(crate) fn become_user(user: &User) -> std::io::Result<()> {
    let check = |rc: libc::c_int| {
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    };
    // SAFETY: plain system calls; `groups` outlives the call.
    unsafe {
        check(libc::setgroups(user.groups.len(), user.groups.as_ptr()))?;
        check(libc::setgid(user.gid))?;
        check(libc::setuid(user.uid))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_strangers() {
        let root = lookup("root").expect("root exists");
        assert_eq!((root.uid, root.gid), (0, 0));
        assert!(root.groups.contains(&0));
        assert_eq!(lookup("0").expect("uid 0").name, "root");
        assert!(matches!(
            lookup("no-such-user-dbos"),
            Err(Error::User { .. })
        ));
        assert!(matches!(lookup("a\0b"), Err(Error::User { .. })));
        assert!(!current_name().is_empty());
    }
}
