//! doctor: check a database for damage and say what can still be read.

use super::{parse, Ctx};
use crate::session::{CmdResult, Failure};
use crate::spec;
use clap::Parser;
use dbos_engine::doctor::{DoctorReport, Failures};

pub(super) fn specs() -> Vec<super::Spec> {
    vec![spec!(Doctor, doctor)]
}

/// Check the database for damage.
#[derive(Parser)]
#[command(
    name = "doctor",
    about = "Check the database for damage and report what can still be read",
    long_about = "Check the database for damage: the storage layer's own check (SQLite's \
integrity check of every page and index; on PostgreSQL amcheck when installed, else a scan of \
every table), the hash chain (as `verify` does), and a read of everything reachable: every \
transaction's row, versions and log rows, and the whole state at the head of every branch \
(every directory listed, every file read back and checked against its digest).\n\n\
Prints OK, or what is damaged and what can still be read: which transactions, branches and \
paths read back and which do not. Nothing is written. Exit status 0 when the database is \
healthy, 1 when anything is damaged or it cannot be opened.",
    disable_version_flag = true
)]
struct Doctor {
    /// Print only the verdict line.
    #[arg(short, long)]
    quiet: bool,
}

fn doctor(ctx: &mut Ctx<'_>, argv: &[String]) -> CmdResult {
    let Some(a) = parse::<Doctor>(ctx, argv)? else {
        return Ok(0);
    };
    let report = ctx.sess.engine.doctor();
    let text = render(&report, a.quiet);
    ctx.print(&text);
    if report.healthy() {
        Ok(0)
    } else {
        Err(Failure::Failed(verdict_damaged(&report.location)))
    }
}

/// `dbos doctor ARGS` from the command line, on the database at
/// `location`: works on a database the engine refuses to open (the
/// failure to open is the damage reported, with SQLite's own check of the
/// file), and never creates one. Gives the exit status.
pub fn run_cli(location: &str, args: &[String]) -> i32 {
    let argv: Vec<String> = std::iter::once("doctor".to_string())
        .chain(args.iter().cloned())
        .collect();
    let a = match Doctor::try_parse_from(&argv) {
        Ok(a) => a,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    let file = std::path::Path::new(location);
    if !dbos_engine::is_postgres(location) && !file.exists() {
        eprintln!("dbos: doctor: database {location} does not exist");
        return 1;
    }
    // Opening creates a database where there is none: a file wiped to
    // nothing (or another program's SQLite file) must be reported, not
    // turned into a fresh, healthy-looking database.
    if !dbos_engine::is_postgres(location) {
        // An unreadable file is reported by the open below, with SQLite's
        // own check of it.
        if let Ok(false) = dbos_engine::backend::sqlite::holds_database(file) {
            println!("database {location}: DAMAGED");
            println!("open: the file holds no dbos database (empty, or another program's file)");
            eprintln!(
                "dbos: doctor: database {location} holds no dbos database; nothing was changed"
            );
            return 1;
        }
    }
    match dbos_engine::Engine::open(location) {
        Ok(mut engine) => {
            let report = engine.doctor();
            print!("{}", render(&report, a.quiet));
            if report.healthy() {
                0
            } else {
                eprintln!("dbos: doctor: {}", verdict_damaged(location));
                1
            }
        }
        Err(e) => {
            println!("database {location}: DAMAGED");
            if !a.quiet {
                println!("open: {}", one_line(&e.to_string()));
                if !dbos_engine::is_postgres(location) {
                    match dbos_engine::backend::sqlite::check_file(file) {
                        Ok(p) if p.is_empty() => println!("storage: ok"),
                        Ok(p) => {
                            println!("storage: {} problem(s):", p.len());
                            for line in p {
                                println!("  {}", one_line(&line));
                            }
                        }
                        Err(e) => {
                            println!("storage: cannot be checked: {}", one_line(&e.to_string()))
                        }
                    }
                }
                println!("nothing can be read through dbos until it opens");
            }
            eprintln!("dbos: doctor: {}", one_line(&e.to_string()));
            1
        }
    }
}

/// The failure line of a damaged database.
pub fn verdict_damaged(location: &str) -> String {
    format!("database {location} is damaged (see the report above)")
}

/// The report as text: a verdict line, then one section per check.
pub fn render(r: &DoctorReport, quiet: bool) -> String {
    let mut s = String::new();
    let verdict = if r.healthy() { "OK" } else { "DAMAGED" };
    s.push_str(&format!("database {}: {verdict}\n", r.location));
    if quiet {
        return s;
    }
    if r.storage.is_empty() {
        s.push_str("storage: ok\n");
    } else {
        s.push_str(&format!("storage: {} problem(s):\n", r.storage.len()));
        for p in &r.storage {
            s.push_str(&format!("  {}\n", one_line(p)));
        }
    }
    match &r.chain {
        None => s.push_str("hash chain: intact\n"),
        Some(why) => s.push_str(&format!("hash chain: broken: {}\n", one_line(why))),
    }
    match r.head {
        Some(head) => s.push_str(&format!(
            "transactions: {} of {head} readable\n",
            r.readable_transactions
        )),
        None => s.push_str("transactions: the newest transaction id cannot be read\n"),
    }
    failures(&mut s, &r.transaction_failures);
    if let Some(e) = &r.branch_list_error {
        s.push_str(&format!(
            "branches: the branch list cannot be read: {}\n",
            one_line(e)
        ));
    }
    for b in r.branches.iter().flatten() {
        let head = b
            .tip
            .map(|t| format!("head T{t}"))
            .unwrap_or("head unreadable".into());
        let state = if b.failures.count == 0 {
            "readable".to_string()
        } else {
            format!("{} unreadable", b.failures.count)
        };
        s.push_str(&format!(
            "branch {} ({head}): {} entries read back, {state}\n",
            b.name, b.readable
        ));
        failures(&mut s, &b.failures);
    }
    s
}

fn failures(s: &mut String, f: &Failures) {
    for what in &f.first {
        s.push_str(&format!("  unreadable: {}\n", one_line(what)));
    }
    if f.count > f.first.len() as u64 {
        s.push_str(&format!(
            "  ... and {} more\n",
            f.count - f.first.len() as u64
        ));
    }
}

/// Messages from the storage layer may span lines; a report line must not.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use dbos_engine::doctor::BranchHealth;

    fn report() -> DoctorReport {
        DoctorReport {
            location: "/x.db".into(),
            storage: vec![],
            chain: None,
            head: Some(3),
            readable_transactions: 3,
            transaction_failures: Failures::default(),
            branches: Some(vec![BranchHealth {
                name: "main".into(),
                tip: Some(3),
                readable: 4,
                failures: Failures::default(),
            }]),
            branch_list_error: None,
        }
    }

    #[test]
    fn healthy_report_says_ok() {
        let text = render(&report(), false);
        assert!(text.starts_with("database /x.db: OK\n"), "{text}");
        assert!(text.contains("branch main (head T3): 4 entries read back, readable"));
    }

    #[test]
    fn damage_is_listed_one_line_each() {
        let mut r = report();
        r.storage = vec!["*** in database main ***\nPage 5: bad".into()];
        let text = render(&r, false);
        assert!(text.starts_with("database /x.db: DAMAGED\n"), "{text}");
        assert!(
            text.contains("  *** in database main *** Page 5: bad\n"),
            "{text}"
        );
    }
}
