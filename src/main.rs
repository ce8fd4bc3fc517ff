//! `ballast`: parses the command line and hands off to the library.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    ballast::cli::run(ballast::cli::Cli::parse())
}
