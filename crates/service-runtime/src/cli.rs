//! A service's command line: its settings, the telemetry group every service
//! shares, and its subcommands, each option also set by its environment
//! variable. `<service>` runs the service; a subcommand (`healthcheck`,
//! `migrate`, …) carries the options it needs itself, so it runs without the
//! service's required variables.

use std::ffi::OsString;

use clap::error::ErrorKind;
use clap::{Args, FromArgMatches, Subcommand};
use telemetry::TelemetryConfig;
use telemetry::config::{ignore_empty_variables, name_values_by_variable, parse_vars};

use crate::config::ServiceConfig;

/// What the command line asked for.
#[derive(Debug)]
pub enum Invocation<C, S> {
    /// No subcommand: run the service with these settings, checked.
    Run(C),
    /// A subcommand, with the options it declares.
    Command(S),
}

/// A parsed command line.
#[derive(Debug)]
pub struct Cli<C, S> {
    /// The telemetry group, for [`crate::main`].
    pub telemetry: TelemetryConfig,
    /// What to do.
    pub invocation: Invocation<C, S>,
}

/// The command line of `service`: its settings `C`, the telemetry group and
/// its subcommands `S`, as `--help` shows them and the docs test reads them.
pub fn command<C: Args, S: Subcommand>(
    service: telemetry::Service,
    about: &'static str,
) -> clap::Command {
    let cmd = C::augment_args(clap::Command::new(service.name));
    let cmd = S::augment_subcommands(TelemetryConfig::augment_args(cmd))
        // After the subcommands, whose derive sets the about of their enum.
        .version(service.version)
        .about(about)
        .long_about(None::<&str>)
        .after_help(
            "Each option can be set by the environment variable it names instead \
             ([env: …]); a variable set to nothing counts as unset. \
             See RUNTIME_CONFIG.md.",
        )
        // A subcommand declares what it needs: `healthcheck` runs in a
        // container that knows only the listen address.
        .subcommand_negates_reqs(true);
    name_values_by_variable(cmd)
}

/// Parses the process's command line and environment; on an error (a
/// missing or invalid variable, named) or `--help`, prints and exits with
/// clap's code (2 for bad configuration).
pub fn parse<C: ServiceConfig, S: Subcommand>(
    service: telemetry::Service,
    about: &'static str,
) -> Cli<C, S> {
    try_parse_from(service, about, std::env::args_os()).unwrap_or_else(|err| err.exit())
}

/// [`parse`] from `args` (the first being the binary's name), for
/// multi-call binaries and tests; `Err` instead of exiting.
pub fn try_parse_from<C: ServiceConfig, S: Subcommand>(
    service: telemetry::Service,
    about: &'static str,
    args: impl IntoIterator<Item = impl Into<OsString> + Clone>,
) -> Result<Cli<C, S>, clap::Error> {
    let mut cmd = ignore_empty_variables(command::<C, S>(service, about));
    let mut matches = cmd.try_get_matches_from_mut(args)?;
    let format = |err: clap::Error| err.format(&mut cmd.clone());
    let telemetry = TelemetryConfig::from_arg_matches_mut(&mut matches).map_err(format)?;
    let invocation = if matches.subcommand_name().is_some() {
        Invocation::Command(S::from_arg_matches_mut(&mut matches).map_err(format)?)
    } else {
        let config = C::from_arg_matches_mut(&mut matches).map_err(format)?;
        config
            .check()
            .map_err(|err| cmd.error(ErrorKind::ValueValidation, err))?;
        Invocation::Run(config)
    };
    Ok(Cli {
        telemetry,
        invocation,
    })
}

/// The settings `C` as if the environment held exactly `vars` (empty ones
/// unset), checked: for tests, which must not change the process
/// environment. Errors are those the service would print.
pub fn from_vars<'a, C: ServiceConfig>(
    vars: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<C, clap::Error> {
    let cmd = clap::Command::new("test");
    let config: C = parse_vars(cmd.clone(), vars)?;
    config
        .check()
        .map_err(|err| cmd.clone().error(ErrorKind::ValueValidation, err))?;
    Ok(config)
}

/// Every environment variable `cmd` declares, its subcommands' included,
/// each once, in declaration order: what `--help` shows and the docs must
/// list.
pub fn variables(cmd: &clap::Command) -> Vec<String> {
    let mut variables = Vec::new();
    let mut commands = vec![cmd];
    while let Some(cmd) = commands.pop() {
        for var in cmd.get_arguments().filter_map(clap::Arg::get_env) {
            let var = var.to_string_lossy().into_owned();
            if !variables.contains(&var) {
                variables.push(var);
            }
        }
        commands.extend(cmd.get_subcommands().collect::<Vec<_>>().into_iter().rev());
    }
    variables
}
