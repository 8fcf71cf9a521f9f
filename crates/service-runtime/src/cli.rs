//! A service's command line: its settings, the telemetry group every service
//! shares, and its subcommands, each option also set by its environment
//! variable. `<service>` runs the service; a subcommand (`healthcheck`,
//! `migrate`, …) carries the options it needs itself, so it runs without the
//! service's required variables.

use std::ffi::OsString;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{Args, FromArgMatches, Subcommand};
use telemetry::TelemetryConfig;
use telemetry::config::{ignore_empty_variables, name_values_by_variable, parse_vars};

use crate::CancellationToken;
use crate::config::ServiceConfig;

/// What a subcommand does.
#[expect(missing_debug_implementations, reason = "a boxed future has no Debug")]
pub enum Task {
    /// Work run as the service runs (see [`crate::main`]), but not stopped
    /// by SIGINT/SIGTERM.
    Work(Pin<Box<dyn Future<Output = anyhow::Result<()>>>>),
    /// Probe the service running at this listen address
    /// ([`crate::healthcheck`]), without telemetry.
    Healthcheck(SocketAddr),
}

/// What the command line asked for.
enum Invocation<C, S> {
    /// No subcommand: run the service with these settings, checked.
    Run(C),
    /// A subcommand, with the options it declares.
    Command(S),
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

/// The body of a service's `main`: parses `args` (the binary's name first)
/// and the environment, then runs the service with `run` under
/// [`crate::main`], or what `task` makes of the subcommand. On an error (a
/// missing or invalid variable, named) or `--help`, prints and exits with
/// clap's code (2 for bad configuration).
pub async fn main<C: ServiceConfig, S: Subcommand, Fut>(
    service: telemetry::Service,
    about: &'static str,
    args: impl IntoIterator<Item = impl Into<OsString> + Clone>,
    run: impl FnOnce(C, CancellationToken) -> Fut,
    task: impl FnOnce(S) -> Task,
) -> ExitCode
where
    Fut: Future<Output = anyhow::Result<()>>,
{
    let mut cmd = ignore_empty_variables(command::<C, S>(service, about));
    let mut matches = cmd
        .try_get_matches_from_mut(args)
        .unwrap_or_else(|err| err.exit());
    let parsed = TelemetryConfig::from_arg_matches_mut(&mut matches).and_then(|telemetry| {
        if matches.subcommand_name().is_some() {
            let command = S::from_arg_matches_mut(&mut matches)?;
            return Ok((telemetry, Invocation::Command(command)));
        }
        let config = C::from_arg_matches_mut(&mut matches)?;
        config
            .check()
            .map_err(|err| clap::Error::raw(ErrorKind::ValueValidation, err))?;
        Ok((telemetry, Invocation::Run(config)))
    });
    let (telemetry, invocation) = parsed.unwrap_or_else(|err| err.format(&mut cmd).exit());
    match invocation {
        Invocation::Run(config) => {
            crate::main(service, &telemetry, |shutdown| run(config, shutdown)).await
        }
        Invocation::Command(command) => match task(command) {
            Task::Work(work) => crate::main(service, &telemetry, |_| work).await,
            Task::Healthcheck(addr) => crate::healthcheck(addr).await,
        },
    }
}

/// The settings `C` as if the environment held exactly `vars` (empty ones
/// unset), checked: for tests, which must not change the process
/// environment. Errors are those the service would print.
pub fn from_vars<'a, C: ServiceConfig>(
    vars: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<C, clap::Error> {
    let config: C = parse_vars(clap::Command::new("test"), vars)?;
    config
        .check()
        .map_err(|err| clap::Error::raw(ErrorKind::ValueValidation, err))?;
    Ok(config)
}

/// Every environment variable `cmd` declares, its subcommands' included,
/// each once, in declaration order: what `--help` shows and the docs must
/// list.
pub fn variables(cmd: &clap::Command) -> Vec<String> {
    let own = cmd.get_arguments().filter_map(clap::Arg::get_env);
    let own = own.map(|var| var.to_string_lossy().into_owned());
    let mut all = Vec::new();
    for var in own.chain(cmd.get_subcommands().flat_map(variables)) {
        if !all.contains(&var) {
            all.push(var);
        }
    }
    all
}
