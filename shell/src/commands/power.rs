//! poweroff, reboot: ask dbos-init, over its control socket, to stop its
//! services, flush what it holds, and power off or reboot (off PID 1: exit).

use super::{parse, Ctx, Spec};
use crate::session::{CmdResult, Failure};
use crate::spec;
use clap::Parser;
use dbos_procs::control::{self, Request};

pub fn specs() -> Vec<Spec> {
    vec![
        spec!(Poweroff, |ctx, argv| {
            match parse::<Poweroff>(ctx, argv)? {
                Some(_) => ask(ctx, Request::Poweroff),
                None => Ok(0),
            }
        }),
        spec!(Reboot, |ctx, argv| {
            match parse::<Reboot>(ctx, argv)? {
                Some(_) => ask(ctx, Request::Reboot),
                None => Ok(0),
            }
        }),
    ]
}

/// Power the machine off.
#[derive(Parser)]
#[command(
    name = "poweroff",
    about = "Ask dbos-init to stop services, flush and power off",
    long_about = "Ask dbos-init to stop its services (reverse dependency order), commit what \
                  it holds, record how the boot ended and power off (off PID 1: exit). It is \
                  reached over its control socket: /run/dbos-init.ctl, or $DBOS_INIT_CONTROL.",
    disable_version_flag = true
)]
struct Poweroff {}

/// Reboot the machine.
#[derive(Parser)]
#[command(
    name = "reboot",
    about = "Ask dbos-init to stop services, flush and reboot",
    long_about = "Ask dbos-init to stop its services (reverse dependency order), commit what \
                  it holds, record how the boot ended and reboot (off PID 1: exit). It is \
                  reached over its control socket: /run/dbos-init.ctl, or $DBOS_INIT_CONTROL.",
    disable_version_flag = true
)]
struct Reboot {}

fn ask(ctx: &mut Ctx<'_>, req: Request) -> CmdResult {
    let word = req.word();
    if ctx.sess.explicit.is_some() {
        return Err(Failure::Failed(
            "a transaction is open (commit or rollback first)".to_string(),
        ));
    }
    control::send(&control::socket_path(), req).map_err(|e| Failure::Failed(e.to_string()))?;
    ctx.println(&format!("{word}: asked dbos-init"));
    Ok(0)
}
