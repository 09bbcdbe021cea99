//! Shell control: help, exit, true, false, poweroff, reboot.

use super::{parse, Ctx, Spec};
use crate::session::{CmdResult, Failure};
use crate::spec;
use clap::Parser;

pub fn specs() -> Vec<Spec> {
    vec![
        spec!(Help, help),
        spec!(Exit, exit),
        spec!(Poweroff, |ctx, argv| {
            parse::<Poweroff>(ctx, argv)?.map_or(Ok(0), |_| ask_init(ctx, "poweroff"))
        }),
        spec!(Reboot, |ctx, argv| {
            parse::<Reboot>(ctx, argv)?.map_or(Ok(0), |_| ask_init(ctx, "reboot"))
        }),
        spec!(True, |ctx, argv| {
            parse::<True>(ctx, argv)?;
            Ok(0)
        }),
        spec!(False, |ctx, argv| Ok(
            if parse::<False>(ctx, argv)?.is_some() {
                1
            } else {
                0
            }
        )),
    ]
}

/// Show help.
#[derive(Parser)]
#[command(
    name = "help",
    about = "List the commands, or show one command's help",
    disable_version_flag = true
)]
struct Help {
    /// A command.
    command: Option<String>,
}

fn help(ctx: &mut Ctx<'_>, argv: &[String]) -> CmdResult {
    let Some(a) = parse::<Help>(ctx, argv)? else {
        return Ok(0);
    };
    match a.command {
        Some(name) => {
            let spec = super::find(&name)
                .ok_or_else(|| Failure::Usage(format!("{name}: no such command")))?;
            let mut cmd = (spec.command)();
            ctx.print(&cmd.render_help().to_string());
            Ok(0)
        }
        None => {
            ctx.println("dbos commands (CMD --help for details):");
            for s in super::all() {
                let line = format!("  {:<10} {}", s.name, s.about);
                ctx.println(&line);
            }
            Ok(0)
        }
    }
}

/// Leave the shell.
#[derive(Parser)]
#[command(
    name = "exit",
    about = "Leave the shell (an open transaction is rolled back, background processes stopped)",
    disable_version_flag = true
)]
struct Exit {
    /// Exit status (default: that of the last command).
    status: Option<i32>,
}

fn exit(ctx: &mut Ctx<'_>, argv: &[String]) -> CmdResult {
    let Some(a) = parse::<Exit>(ctx, argv)? else {
        return Ok(0);
    };
    let running = ctx.sess.jobs.running().len();
    if running > 0 && ctx.sess.interactive && !ctx.sess.exit_warned {
        ctx.sess.exit_warned = true;
        ctx.warn(&format!(
            "dbos: exit: {running} background process{} still running (see ps); \
             exit again to stop {} (SIGTERM, then SIGKILL after 5 s)",
            if running == 1 { "" } else { "es" },
            if running == 1 { "it" } else { "them" }
        ));
        // Like bash: the warning leaves `$?` as it was.
        return Ok(ctx.sess.last_status);
    }
    if let Some(st) = ctx.sess.explicit.take() {
        ctx.warn(&format!(
            "dbos: exit: open transaction rolled back ({} pending changes discarded)",
            st.pending().len()
        ));
    }
    let status = a.status.unwrap_or(ctx.sess.last_status);
    ctx.sess.exit_requested = Some(status);
    Ok(status)
}

/// Succeed.
#[derive(Parser)]
#[command(
    name = "true",
    about = "Do nothing, successfully",
    disable_version_flag = true
)]
struct True {}

/// Fail.
#[derive(Parser)]
#[command(
    name = "false",
    about = "Do nothing, unsuccessfully",
    disable_version_flag = true
)]
struct False {}

/// Where dbos-init listens for poweroff/reboot (`$DBOS_INIT_CTL`, else PID 1's default).
fn control_socket() -> std::path::PathBuf {
    std::env::var_os("DBOS_INIT_CTL")
        .map(Into::into)
        .unwrap_or_else(|| "/run/dbos-init.ctl".into())
}

/// Send one request word to dbos-init's control socket.
fn ask_init(ctx: &mut Ctx<'_>, word: &str) -> CmdResult {
    if ctx.sess.explicit.is_some() {
        return Err(Failure::Failed(format!(
            "a transaction is open: commit or rollback it before {word}"
        )));
    }
    let path = control_socket();
    let sock = std::os::unix::net::UnixDatagram::unbound()
        .map_err(|e| Failure::Failed(format!("{word}: socket: {e}")))?;
    sock.send_to(word.as_bytes(), &path).map_err(|e| {
        Failure::Failed(format!(
            "{word}: cannot reach dbos-init at {}: {e} (is this a dbos machine?)",
            path.display()
        ))
    })?;
    ctx.println(&format!("{word}: asked dbos-init"));
    Ok(0)
}

/// Power the machine off.
#[derive(Parser)]
#[command(
    name = "poweroff",
    about = "Ask dbos-init to stop services, commit and power off",
    long_about = "Ask dbos-init (PID 1 of a dbos machine) to stop services, flush its log rows, \
commit and power off: one datagram to its control socket ($DBOS_INIT_CTL, default \
/run/dbos-init.ctl).",
    disable_version_flag = true
)]
struct Poweroff {}

/// Restart the machine.
#[derive(Parser)]
#[command(
    name = "reboot",
    about = "Ask dbos-init to stop services, commit and reboot",
    long_about = "Ask dbos-init (PID 1 of a dbos machine) to stop services, flush its log rows, \
commit and reboot: one datagram to its control socket ($DBOS_INIT_CTL, default \
/run/dbos-init.ctl).",
    disable_version_flag = true
)]
struct Reboot {}
