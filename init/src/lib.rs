//! dbos-init: the supervisor of a dbos machine (PID 1 in the image, an
//! ordinary unprivileged service manager elsewhere).
//!
//! It starts services from `service.*` config rows and keeps them running,
//! receives syslog datagrams, samples the machine into `metric` rows and
//! records each boot in a `boot` row. Every write goes through the engine,
//! from one writer thread (`writer.rs`) that batches them.

pub mod boot;
pub mod cmdline;
pub mod control;
pub mod logsock;
pub mod metrics;
pub mod modules;
pub mod pid1;
pub mod services;
pub mod share;
pub mod supervise;
pub mod syslog;
pub mod writer;
