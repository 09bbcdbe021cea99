//! `dbos mount MOUNTPOINT [--branch B] [--as-of REF] [--allow-other]`:
//! serve a branch as a FUSE filesystem until Ctrl-C, SIGTERM or an
//! external unmount (see the `dbos-mount` crate for the commit rule).

use std::path::PathBuf;

/// Arguments of `dbos mount`.
#[derive(clap::Args)]
#[command(
    long_about = "Mount the tree of a branch at MOUNTPOINT (an empty directory) so any program \
can read and write it. Metadata changes (create, mkdir, rename, unlink, chmod, chown, symlink, \
utimens) are committed at once, one transaction each; a file's data is committed when it is \
closed or fsynced. Each transaction's command names the writer: \
`mount: write /etc/hosts by pid 1234 (vim /etc/hosts)`. With --as-of the mount is read-only \
(writes fail with EROFS). Runs in the foreground; Ctrl-C or SIGTERM commits pending writes \
and unmounts."
)]
pub struct MountArgs {
    /// Where to mount: an existing, empty directory.
    #[arg(value_name = "MOUNTPOINT")]
    mountpoint: PathBuf,
    /// Mount the branch as it was at REF (T12, HEAD~3, a time), read-only.
    #[arg(long = "as-of", value_name = "REF")]
    as_of: Option<String>,
    /// Let other users use the mount (needs root or user_allow_other in
    /// /etc/fuse.conf).
    #[arg(long = "allow-other")]
    allow_other: bool,
}

/// Run `dbos mount`; the exit status (0 once cleanly unmounted).
pub fn run(args: &MountArgs, db: Option<String>, branch: &str, author: String) -> i32 {
    let location = match db.map(Ok).unwrap_or_else(dbos_engine::default_location) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("dbos: {e}");
            return 2;
        }
    };
    let cfg = dbos_mount::MountConfig {
        location,
        branch: branch.to_string(),
        as_of: args.as_of.clone(),
        author,
        allow_other: args.allow_other,
        mountpoint: args.mountpoint.clone(),
    };
    match dbos_mount::run(&cfg, |msg| eprintln!("{msg}")) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("dbos mount: {e}");
            1
        }
    }
}
