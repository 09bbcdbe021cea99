//! Paths of the versioned tree: always absolute, normalised, validated.

use crate::error::{Error, Result};
use std::fmt;

/// Longest name of one path component, in bytes (as in Linux).
pub const MAX_NAME: usize = 255;
/// Longest whole path, in bytes (as in Linux).
pub const MAX_PATH: usize = 4096;

/// A normalised absolute path in the versioned tree (`/`, `/etc/hosts`).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VPath(String);

impl VPath {
    /// The root directory.
    pub fn root() -> VPath {
        VPath("/".to_string())
    }

    /// Parse and normalise an absolute path. `.` is dropped, `..` goes up one
    /// level; going above the root, empty or over-long names and NUL bytes are
    /// errors.
    pub fn parse(input: &str) -> Result<VPath> {
        Self::resolve(&VPath::root(), input)
    }

    /// Resolve `input` against the directory `base` when it is relative.
    pub fn resolve(base: &VPath, input: &str) -> Result<VPath> {
        let bad = |reason: &str| Error::InvalidPath {
            path: input.to_string(),
            reason: reason.to_string(),
        };
        if input.is_empty() {
            return Err(bad("empty path"));
        }
        if input.contains('\0') {
            return Err(bad("contains a NUL byte"));
        }
        if input.len() > MAX_PATH {
            return Err(bad(&format!("longer than {MAX_PATH} bytes")));
        }
        let mut parts: Vec<&str> = if input.starts_with('/') {
            Vec::new()
        } else {
            base.components().collect()
        };
        for part in input.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    if parts.pop().is_none() {
                        return Err(bad("'..' escapes the root directory"));
                    }
                }
                name => {
                    if name.len() > MAX_NAME {
                        return Err(bad(&format!("a name is longer than {MAX_NAME} bytes")));
                    }
                    parts.push(name);
                }
            }
        }
        let joined = format!("/{}", parts.join("/"));
        if joined.len() > MAX_PATH {
            return Err(bad(&format!("longer than {MAX_PATH} bytes")));
        }
        Ok(VPath(joined))
    }

    /// The path as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True for `/`.
    pub fn is_root(&self) -> bool {
        self.0 == "/"
    }

    /// The names from the root down (empty for `/`).
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/').filter(|c| !c.is_empty())
    }

    /// The last name (`""` for the root).
    pub fn name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or("")
    }

    /// The parent directory (`None` for the root).
    pub fn parent(&self) -> Option<VPath> {
        if self.is_root() {
            return None;
        }
        match self.0.rfind('/') {
            Some(0) => Some(VPath::root()),
            Some(i) => Some(VPath(self.0[..i].to_string())),
            None => None,
        }
    }

    /// This path with one more name below it.
    pub fn join(&self, name: &str) -> Result<VPath> {
        if name.is_empty() || name == "." || name == ".." || name.contains('/') {
            return Err(Error::InvalidPath {
                path: name.to_string(),
                reason: "not a single file name".to_string(),
            });
        }
        Self::resolve(self, name)
    }

    /// True when `self` is `other` or lies below it.
    pub fn starts_with(&self, other: &VPath) -> bool {
        other.is_root()
            || self.0 == other.0
            || (self.0.starts_with(&other.0) && self.0.as_bytes().get(other.0.len()) == Some(&b'/'))
    }

    /// Replace the prefix `from` of this path by `to` (for renames).
    pub fn rebase(&self, from: &VPath, to: &VPath) -> Result<VPath> {
        let rest = if from.is_root() {
            &self.0[1..]
        } else {
            self.0[from.0.len()..].trim_start_matches('/')
        };
        if rest.is_empty() {
            Ok(to.clone())
        } else {
            VPath::resolve(to, rest)
        }
    }
}

impl fmt::Display for VPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for VPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises() {
        assert_eq!(VPath::parse("/a//b/./c/").unwrap().as_str(), "/a/b/c");
        assert_eq!(VPath::parse("/a/b/../c").unwrap().as_str(), "/a/c");
        assert_eq!(VPath::parse("/").unwrap().as_str(), "/");
        let base = VPath::parse("/etc").unwrap();
        assert_eq!(VPath::resolve(&base, "x/y").unwrap().as_str(), "/etc/x/y");
        assert_eq!(VPath::resolve(&base, "..").unwrap().as_str(), "/");
    }

    #[test]
    fn rejects_bad_input() {
        assert!(VPath::parse("").is_err());
        assert!(VPath::parse("/..").is_err());
        assert!(VPath::parse("/a/../../b").is_err());
        assert!(VPath::parse("/a\0b").is_err());
        assert!(VPath::parse(&format!("/{}", "x".repeat(256))).is_err());
        assert!(VPath::parse(&format!("/{}", "x".repeat(255))).is_ok());
        assert!(VPath::parse(&"/abcdefg".repeat(600)).is_err());
    }

    #[test]
    fn parents_and_prefixes() {
        let p = VPath::parse("/a/b").unwrap();
        assert_eq!(p.parent().unwrap().as_str(), "/a");
        assert_eq!(p.parent().unwrap().parent().unwrap().as_str(), "/");
        assert_eq!(p.name(), "b");
        assert!(p.starts_with(&VPath::parse("/a").unwrap()));
        assert!(!VPath::parse("/ab")
            .unwrap()
            .starts_with(&VPath::parse("/a").unwrap()));
        let r = p
            .rebase(&VPath::parse("/a").unwrap(), &VPath::parse("/z").unwrap())
            .unwrap();
        assert_eq!(r.as_str(), "/z/b");
    }
}
