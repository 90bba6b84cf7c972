//! Seed 000's intelligence service on kafka-actors: four handlers written
//! in Rust (validate, analyze, pattern, mixin), registered next to the
//! built-ins, behind the whole `kafka-actors` command line.
//!
//! ```sh
//! # on the embedded broker
//! cargo run --example intelligence --features embedded-broker -- \
//!     --config config/intelligence.toml run --embedded-broker
//! # on Apache Kafka (scripts/kafka up)
//! KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 cargo run --example intelligence -- \
//!     --config config/intelligence.toml run
//! ```

mod codegen;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = kafka_actors::cli::Cli::parse();
    kafka_actors::cli::run_with(cli, codegen::registry()).into()
}
