//! The kernel command line (`/proc/cmdline`): which state to boot.
//!
//! `dbos.branch=NAME` boots that branch; `dbos.asof=REF` boots the state as
//! of REF read-only; `dbos.asof=REF dbos.fork=NAME` forks a new branch NAME
//! at REF and boots it writable. `dbos.asof=last-good` is the state of the
//! newest boot that reached the shell prompt. `dbos.fallback=1` boots that
//! state (read-only) on its own when the previous boot of the branch never
//! reached the prompt. Other words are kept for whoever wants them.

/// What the command line asks of dbos-init.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BootArgs {
    /// `dbos.branch=`.
    pub branch: Option<String>,
    /// `dbos.asof=`.
    pub asof: Option<String>,
    /// `dbos.fork=`.
    pub fork: Option<String>,
    /// `dbos.fallback=1` (also `yes`, `on`, `true`).
    pub fallback: bool,
    /// Every other word, unchanged.
    pub other: Vec<String>,
}

/// Split a command line into words; double quotes group spaces (as the
/// kernel does: `a="b c"` is one word `a=b c`).
pub fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(cur);
    }
    out
}

/// Parse the command line. The last of repeated options wins; an empty
/// value counts as absent.
pub fn parse(line: &str) -> BootArgs {
    let mut a = BootArgs::default();
    for w in words(line) {
        if let Some(v) = w.strip_prefix("dbos.fallback=") {
            a.fallback = matches!(v, "1" | "yes" | "on" | "true");
            continue;
        }
        let slot = match w.split_once('=') {
            Some(("dbos.branch", v)) => Some((&mut a.branch, v)),
            Some(("dbos.asof", v)) => Some((&mut a.asof, v)),
            Some(("dbos.fork", v)) => Some((&mut a.fork, v)),
            _ => None,
        };
        match slot {
            Some((s, v)) => *s = (!v.is_empty()).then(|| v.to_string()),
            None => a.other.push(w),
        }
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options() {
        let a = parse("console=ttyS0 root=/dev/vda dbos.branch=dev quiet\n");
        assert_eq!(a.branch.as_deref(), Some("dev"));
        assert_eq!(a.asof, None);
        assert_eq!(a.other, ["console=ttyS0", "root=/dev/vda", "quiet"]);
        let a = parse("dbos.asof=\"2024-01-01 12:00\" dbos.fork=rescue dbos.branch=");
        assert_eq!(a.asof.as_deref(), Some("2024-01-01 12:00"));
        assert_eq!(a.fork.as_deref(), Some("rescue"));
        assert_eq!(a.branch, None);
        let a = parse("dbos.branch=a dbos.branch=b dbos.asof=T12");
        assert_eq!(a.branch.as_deref(), Some("b"));
        assert_eq!(a.asof.as_deref(), Some("T12"));
        assert!(!a.fallback);
        assert!(parse("quiet dbos.fallback=1").fallback);
        assert!(!parse("dbos.fallback=1 dbos.fallback=0").fallback);
        assert!(parse("dbos.fallback=1").other.is_empty());
    }

    #[test]
    fn words_edge_cases() {
        assert_eq!(words(""), Vec::<String>::new());
        assert_eq!(words("  a   b "), ["a", "b"]);
        assert_eq!(words("x=\"\" y"), ["x=", "y"]);
        assert_eq!(words("\"unterminated a b"), ["unterminated a b"]);
        assert_eq!(
            parse("dbos.asof dbos.branch").other,
            ["dbos.asof", "dbos.branch"]
        );
    }
}
