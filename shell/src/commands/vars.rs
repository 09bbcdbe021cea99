//! Shell variables: export, unset. (`export` shares its name with the
//! host directory export: `hostdir.rs` owns the command and hands the
//! variable form, `export [NAME[=VALUE]]...`, to `export_vars` here.)

use super::{parse, Ctx, Spec};
use crate::session::{CmdResult, Failure};
use crate::spec;
use clap::Parser;

pub fn specs() -> Vec<Spec> {
    vec![spec!(Unset, unset)]
}

/// True when every argument is NAME or NAME=VALUE: the variable form of
/// `export` (also with no argument at all).
pub(super) fn is_variable_export(args: &[String]) -> bool {
    args.iter()
        .all(|a| valid_name(a.split_once('=').map_or(a.as_str(), |(n, _)| n)))
}

fn valid_name(n: &str) -> bool {
    let mut c = n.chars();
    matches!(c.next(), Some(ch) if ch == '_' || ch.is_ascii_alphabetic())
        && c.all(|ch| ch == '_' || ch.is_ascii_alphanumeric())
}

/// Export variables.
#[derive(Parser)]
#[command(
    name = "export",
    about = "Set and export shell variables (NAME[=VALUE])",
    disable_version_flag = true
)]
struct Export {
    /// NAME or NAME=VALUE.
    items: Vec<String>,
}

/// `export [NAME[=VALUE]]...`: set and export shell variables, or list them.
pub(super) fn export_vars(ctx: &mut Ctx<'_>, argv: &[String]) -> CmdResult {
    let Some(a) = parse::<Export>(ctx, argv)? else {
        return Ok(0);
    };
    if a.items.is_empty() {
        let names: Vec<String> = ctx.sess.exported.iter().cloned().collect();
        for n in names {
            let v = ctx.sess.vars.get(&n).cloned().unwrap_or_default();
            ctx.println(&format!("export {n}={v}"));
        }
        return Ok(0);
    }
    for item in &a.items {
        let (name, value) = match item.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (item.as_str(), None),
        };
        if !valid_name(name) {
            return Err(Failure::Usage(format!(
                "{name:?}: not a valid variable name"
            )));
        }
        if let Some(v) = value {
            ctx.sess.vars.insert(name.to_string(), v.to_string());
        }
        ctx.sess.exported.insert(name.to_string());
    }
    Ok(0)
}

/// Remove variables.
#[derive(Parser)]
#[command(
    name = "unset",
    about = "Remove shell variables",
    disable_version_flag = true
)]
struct Unset {
    /// Variable names.
    #[arg(required = true)]
    names: Vec<String>,
}

fn unset(ctx: &mut Ctx<'_>, argv: &[String]) -> CmdResult {
    let Some(a) = parse::<Unset>(ctx, argv)? else {
        return Ok(0);
    };
    for n in &a.names {
        if !valid_name(n) {
            return Err(Failure::Usage(format!("{n:?}: not a valid variable name")));
        }
        ctx.sess.vars.remove(n);
        ctx.sess.exported.remove(n);
    }
    Ok(0)
}
