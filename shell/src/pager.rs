//! Long output of history commands goes through a pager on a terminal, as
//! git does: `$DBOS_PAGER`, else `$PAGER`, else `less -FRX`.

use std::io::Write;
use std::process::{Command, Stdio};

/// Commands whose long output is paged.
pub const PAGED: &[&str] = &["log", "history", "diff", "show"];

fn terminal_rows() -> usize {
    // SAFETY: TIOCGWINSZ fills a winsize struct; on failure we fall back.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) == 0 && ws.ws_row > 0 {
            return ws.ws_row as usize;
        }
    }
    24
}

/// Show `text` through the pager when it is longer than the terminal.
/// Returns false when it was not paged (the caller prints it).
pub fn page(text: &[u8]) -> bool {
    let lines = text.iter().filter(|b| **b == b'\n').count();
    if lines < terminal_rows() {
        return false;
    }
    let pager = std::env::var("DBOS_PAGER")
        .or_else(|_| std::env::var("PAGER"))
        .unwrap_or_else(|_| "less -FRX".to_string());
    if pager.is_empty() || pager == "cat" {
        return false;
    }
    let mut parts = pager.split_whitespace();
    let Some(prog) = parts.next() else {
        return false;
    };
    let child = Command::new(prog)
        .args(parts)
        .env(
            "LESS",
            std::env::var("LESS").unwrap_or_else(|_| "FRX".into()),
        )
        .stdin(Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        return false;
    };
    if let Some(mut stdin) = child.stdin.take() {
        // A pager quit early closes its input: that is not an error.
        let _ = stdin.write_all(text);
    }
    let _ = child.wait();
    true
}
