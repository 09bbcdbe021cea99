//! Inode numbers and the paths they stand for.
//!
//! The engine names entries by path; the kernel names them by inode number.
//! This table gives each path a number the first time the kernel sees it and
//! keeps it for the life of the mount, so `st_ino` is stable. A rename moves
//! the numbers of a whole subtree to the new paths; an unlink or a replaced
//! rename target leaves its number without a path (an orphan) until the
//! kernel forgets it.

use dbos_engine::VPath;
use std::collections::{BTreeMap, HashMap};

/// The root directory's inode number (fixed by FUSE).
pub const ROOT_INO: u64 = 1;

#[derive(Debug)]
struct Node {
    /// The path, or None once unlinked or replaced.
    path: Option<VPath>,
    /// How many lookups the kernel holds (FUSE `nlookup`).
    lookups: u64,
}

/// Inode number <-> path, with the kernel's lookup counts.
#[derive(Debug)]
pub struct InodeTable {
    nodes: HashMap<u64, Node>,
    /// By path text: a subtree is a contiguous range.
    by_path: BTreeMap<String, u64>,
    next: u64,
}

impl Default for InodeTable {
    fn default() -> Self {
        Self::new()
    }
}

impl InodeTable {
    /// A table holding only the root directory.
    pub fn new() -> InodeTable {
        let mut t = InodeTable {
            nodes: HashMap::new(),
            by_path: BTreeMap::new(),
            next: ROOT_INO + 1,
        };
        t.nodes.insert(
            ROOT_INO,
            Node {
                path: Some(VPath::root()),
                lookups: 1,
            },
        );
        t.by_path.insert("/".to_string(), ROOT_INO);
        t
    }

    /// The number of `path`, assigning a new one on first sight (no
    /// lookup is counted: for directory listings).
    pub fn ino_of(&mut self, path: &VPath) -> u64 {
        if let Some(&ino) = self.by_path.get(path.as_str()) {
            return ino;
        }
        let ino = self.next;
        self.next += 1;
        self.nodes.insert(
            ino,
            Node {
                path: Some(path.clone()),
                lookups: 0,
            },
        );
        self.by_path.insert(path.as_str().to_string(), ino);
        ino
    }

    /// The number of `path`, counting one kernel lookup of it.
    pub fn lookup(&mut self, path: &VPath) -> u64 {
        let ino = self.ino_of(path);
        if let Some(n) = self.nodes.get_mut(&ino) {
            n.lookups += 1;
        }
        ino
    }

    /// The kernel dropped `n` lookups of `ino`. An orphan whose count
    /// reaches zero is removed; a live path keeps its number.
    pub fn forget(&mut self, ino: u64, n: u64) {
        if ino == ROOT_INO {
            return;
        }
        let drop_it = match self.nodes.get_mut(&ino) {
            Some(node) => {
                node.lookups = node.lookups.saturating_sub(n);
                node.lookups == 0 && node.path.is_none()
            }
            None => false,
        };
        if drop_it {
            self.nodes.remove(&ino);
        }
    }

    /// The path of `ino` (None: unknown, or unlinked).
    pub fn path(&self, ino: u64) -> Option<&VPath> {
        self.nodes.get(&ino).and_then(|n| n.path.as_ref())
    }

    /// True when `ino` is known (even if unlinked).
    pub fn contains(&self, ino: u64) -> bool {
        self.nodes.contains_key(&ino)
    }

    /// The known paths at and below `path`.
    fn subtree(&self, path: &VPath) -> Vec<String> {
        let mut out = Vec::new();
        if self.by_path.contains_key(path.as_str()) {
            out.push(path.as_str().to_string());
        }
        let prefix = if path.is_root() {
            "/".to_string()
        } else {
            format!("{path}/")
        };
        out.extend(
            self.by_path
                .range(prefix.clone()..)
                .map(|(k, _)| k)
                .take_while(|k| k.starts_with(&prefix))
                .filter(|k| k.len() > 1)
                .cloned(),
        );
        out
    }

    /// `path` and everything below it no longer exist: their numbers
    /// become orphans.
    pub fn remove_tree(&mut self, path: &VPath) {
        for p in self.subtree(path) {
            if let Some(ino) = self.by_path.remove(&p) {
                if let Some(n) = self.nodes.get_mut(&ino) {
                    n.path = None;
                }
            }
        }
    }

    /// `from` (and its subtree) was renamed to `to`, replacing whatever
    /// was there: numbers move with their entries.
    pub fn rename(&mut self, from: &VPath, to: &VPath) {
        if from == to {
            return;
        }
        self.remove_tree(to);
        let mut re = Vec::new();
        for p in self.subtree(from) {
            let Some(ino) = self.by_path.remove(&p) else {
                continue;
            };
            match VPath::parse(&p).and_then(|v| v.rebase(from, to)) {
                Ok(dest) => re.push((ino, dest)),
                Err(_) => {
                    if let Some(n) = self.nodes.get_mut(&ino) {
                        n.path = None;
                    }
                }
            }
        }
        for (ino, dest) in re {
            self.by_path.insert(dest.as_str().to_string(), ino);
            if let Some(n) = self.nodes.get_mut(&ino) {
                n.path = Some(dest);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> VPath {
        VPath::parse(s).unwrap()
    }

    #[test]
    fn numbers_are_stable_and_distinct() {
        let mut t = InodeTable::new();
        assert_eq!(t.ino_of(&VPath::root()), ROOT_INO);
        let a = t.lookup(&p("/a"));
        let b = t.lookup(&p("/b"));
        assert_ne!(a, b);
        assert_eq!(t.lookup(&p("/a")), a);
        t.forget(a, 2);
        // A live path keeps its number after the kernel forgets it.
        assert_eq!(t.ino_of(&p("/a")), a);
        assert_eq!(t.path(b), Some(&p("/b")));
    }

    #[test]
    fn rename_moves_a_subtree_and_orphans_the_target() {
        let mut t = InodeTable::new();
        let d = t.lookup(&p("/d"));
        let f = t.lookup(&p("/d/f"));
        let other = t.lookup(&p("/e"));
        t.rename(&p("/d"), &p("/e"));
        assert_eq!(t.path(d), Some(&p("/e")));
        assert_eq!(t.path(f), Some(&p("/e/f")));
        assert_eq!(t.path(other), None);
        assert!(t.contains(other));
        t.forget(other, 1);
        assert!(!t.contains(other));
        assert_eq!(t.ino_of(&p("/e/f")), f);
    }

    #[test]
    fn unlink_orphans_until_forgotten() {
        let mut t = InodeTable::new();
        let f = t.lookup(&p("/f"));
        t.remove_tree(&p("/f"));
        assert_eq!(t.path(f), None);
        let again = t.lookup(&p("/f"));
        assert_ne!(again, f);
        t.forget(f, 1);
        assert!(!t.contains(f));
    }
}
