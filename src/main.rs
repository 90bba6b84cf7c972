//! The `kafka-actors` binary: parse arguments, hand over to the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = kafka_actors::cli::Cli::parse();
    kafka_actors::cli::run(cli).into()
}
