//! The command line: argument definitions and one function per command.
//! Command output goes to stdout; logs go to stderr.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use serde_json::Value;

use crate::config::{self, Config, ConfigError, LoadOptions, Loaded};
use crate::exit::{self, Exit};
use crate::kafka::{ClusterInfo, cluster};
use crate::{runtime, telemetry};

/// kafka-actors: a Kafka event-processing service built on supervised actors.
#[derive(Debug, Parser)]
#[command(name = "kafka-actors", version, about, after_help = exit::HELP)]
pub struct Cli {
    /// Configuration file (TOML). Without it, config/default.toml is read
    /// when present. Environment variables override the file.
    #[arg(
        long,
        short,
        global = true,
        env = "KAFKA_ACTORS_CONFIG",
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,

    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service until SIGINT or SIGTERM.
    Run(RunArgs),
    /// Check or show the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Check connectivity: bootstrap reachable, API versions, brokers.
    Check(CheckArgs),
    /// Inspect topics.
    #[command(subcommand)]
    Topics(TopicsCommand),
    /// Inspect consumer groups: members, committed offsets, lag.
    #[command(subcommand)]
    Group(GroupCommand),
    /// Inspect dead-letter topics.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Produce records to a topic, from a file or stdin.
    Produce(ProduceArgs),
    /// Print records of a topic from an offset or a time.
    Consume(ConsumeArgs),
    /// Send one request and wait for its reply (matched by correlation id).
    Request(RequestArgs),
    /// Alert rules.
    #[command(subcommand)]
    Alerts(AlertsCommand),
    /// Handle a topic's records again from an offset or a time: the
    /// running group (`consumer.group_id`) starts over from there, each
    /// partition's owner seeking (as `group reset-offsets`); or, with
    /// `--group`, a one-off replay by this process under that group id, up
    /// to `--to-*`, rate-limited, its outputs carrying a replay header.
    /// Progress is shown until done.
    Replay(ReplayArgs),
}

/// Where `group reset-offsets` moves the offsets: exactly one.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct ResetTarget {
    /// The earliest offset in each log.
    #[arg(long)]
    pub to_earliest: bool,
    /// Each log's end: skip what is not handled yet.
    #[arg(long)]
    pub to_latest: bool,
    /// This offset in every selected partition.
    #[arg(long, value_name = "OFFSET")]
    pub to_offset: Option<i64>,
    /// The first record at or after this time (RFC 3339).
    #[arg(long, value_name = "RFC3339")]
    pub to_datetime: Option<String>,
    /// The committed offset plus N (negative: back), kept inside the log.
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub shift_by: Option<i64>,
}

/// `replay` arguments.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The topic.
    #[arg(long)]
    pub topic: String,
    /// A partition (repeatable; default: all).
    #[arg(long = "partition", value_name = "P")]
    pub partitions: Vec<i32>,
    /// Where to start over: an offset...
    #[arg(
        long,
        value_name = "OFFSET",
        conflicts_with = "from_timestamp",
        required_unless_present = "from_timestamp"
    )]
    pub from_offset: Option<i64>,
    /// ... or a time (RFC 3339): the first record at or after it.
    #[arg(long, value_name = "RFC3339")]
    pub from_timestamp: Option<String>,
    /// A one-off replay by this process under this group id (new or
    /// empty), outside the running group, instead of seeking the running
    /// group.
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,
    /// One-off replay: stop before this offset (default: the log end when
    /// the replay starts).
    #[arg(
        long,
        value_name = "OFFSET",
        requires = "group",
        conflicts_with = "to_timestamp"
    )]
    pub to_offset: Option<i64>,
    /// One-off replay: stop at the first record at or after this time
    /// (RFC 3339).
    #[arg(long, value_name = "RFC3339", requires = "group")]
    pub to_timestamp: Option<String>,
    /// One-off replay: at most this many records per second.
    #[arg(long, default_value_t = 500.0, requires = "group")]
    pub rate: f64,
    /// Print the plan; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not wait for the group to catch up (running group only).
    #[arg(long, conflicts_with = "group")]
    pub no_wait: bool,
}

/// `alerts` subcommands.
#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// Write the alert rules in effect as a Prometheus alerting-rules file
    /// (JSON, which Prometheus reads as YAML), over the service's metrics.
    Rules {
        /// Write it here instead of to stdout.
        #[arg(long, short)]
        output: Option<std::path::PathBuf>,
    },
}

/// `request` options.
#[derive(Debug, Args)]
pub struct RequestArgs {
    /// Request topic.
    #[arg(long, short)]
    pub topic: String,
    /// Topic the reply is expected on; sent as the `reply_to` header.
    #[arg(long, short)]
    pub reply_topic: String,
    /// Event type of the request (envelope field and header).
    #[arg(long)]
    pub event_type: Option<String>,
    /// Record key.
    #[arg(long, short)]
    pub key: Option<String>,
    /// A header, `NAME=VALUE`; repeatable.
    #[arg(long = "header", short = 'H', value_name = "NAME=VALUE", value_parser = parse_header)]
    pub headers: Vec<(String, String)>,
    /// The JSON payload, from this file (`-`: stdin, the default).
    #[arg(long, short, default_value = "-")]
    pub file: PathBuf,
    /// How long to wait for the reply (`5s`, `1m`).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

/// `produce` options.
#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// Target topic.
    #[arg(long, short)]
    pub topic: String,
    /// Record key (placement follows the Java client's partitioner).
    #[arg(long, short)]
    pub key: Option<String>,
    /// A header, `NAME=VALUE`; repeatable.
    #[arg(long = "header", short = 'H', value_name = "NAME=VALUE", value_parser = parse_header)]
    pub headers: Vec<(String, String)>,
    /// An explicit partition.
    #[arg(long, short)]
    pub partition: Option<i32>,
    /// Read the value from this file (`-`: stdin, the default).
    #[arg(long, short, default_value = "-")]
    pub file: PathBuf,
    /// One record per input line instead of one record for the whole input.
    #[arg(long)]
    pub lines: bool,
    /// JSON output.
    #[arg(long)]
    pub json: bool,
}

/// `consume` options.
#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// Topic to read.
    #[arg(long, short)]
    pub topic: String,
    /// Partitions to read; repeatable. Default: all.
    #[arg(long = "partition", short)]
    pub partitions: Vec<i32>,
    /// Start: `earliest`, `latest`, or an offset.
    #[arg(long, default_value = "earliest", conflicts_with = "from_time")]
    pub from: String,
    /// Start at the first record at or after this time (RFC 3339, such as
    /// 2026-11-22T10:00:00Z).
    #[arg(long, value_parser = parse_time)]
    pub from_time: Option<std::time::SystemTime>,
    /// Stop after this many records.
    #[arg(long)]
    pub max: Option<usize>,
    /// Stop after this long (`10s`, `2m`). Without it and without --max,
    /// tail until Ctrl-C.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub timeout: Option<Duration>,
    /// One JSON object per record.
    #[arg(long)]
    pub json: bool,
}

fn parse_header(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("`{s}` is not NAME=VALUE"))
}

pub(crate) fn parse_time(s: &str) -> Result<std::time::SystemTime, String> {
    humantime::parse_rfc3339_weak(s).map_err(|e| format!("`{s}`: {e} (expected RFC 3339)"))
}

/// `run` options.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Start an in-process broker (Tansu, memory storage) on a free
    /// 127.0.0.1 port and connect to it instead of kafka.bootstrap_servers.
    /// Needs a build with `--features embedded-broker`.
    #[arg(long)]
    pub embedded_broker: bool,
    /// Send this many demo requests per second to the first route that has
    /// a reply topic, and log what comes back every 5 s (the quickstart's
    /// traffic; see config/quickstart.toml).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub demo_rate: Option<u32>,
}

/// `config` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Load and validate; print every problem, or "configuration OK".
    Check,
    /// Print the effective configuration (secrets redacted), each value with
    /// its source.
    Show {
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// `check` options.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Retry with backoff (2 s, then 1.5 times longer each time) until the
    /// brokers answer or --timeout passes.
    #[arg(long)]
    pub wait: bool,
    /// Deadline for --wait, in seconds.
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    pub timeout: u64,
    /// JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `topics` subcommands.
#[derive(Debug, Subcommand)]
pub enum TopicsCommand {
    /// List topics with their partition counts.
    List {
        /// Include internal topics (__consumer_offsets, ...).
        #[arg(long)]
        internal: bool,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// One topic: partitions with leaders and replicas, and its configs.
    Describe {
        /// The topic.
        name: String,
        /// Every config, not only those set on the topic.
        #[arg(long)]
        all: bool,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Create the declared topics that are missing ([topics.*]), or the one
    /// named here; validates first, retries, then verifies.
    Create {
        /// A topic to create instead of the declared ones.
        name: Option<String>,
        /// Partitions of the named topic.
        #[arg(long, default_value_t = 1, requires = "name")]
        partitions: i32,
        /// Replication factor of the named topic.
        #[arg(long, default_value_t = 1, requires = "name")]
        replication_factor: i16,
        /// A topic config of the named topic, `retention.ms=86400000`
        /// (repeatable).
        #[arg(long = "topic-config", value_name = "KEY=VALUE", value_parser = parse_header, requires = "name")]
        configs: Vec<(String, String)>,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Delete topics (their records are gone for good: needs --yes).
    Delete {
        /// The topics.
        #[arg(required = true)]
        names: Vec<String>,
        /// Confirm.
        #[arg(long)]
        yes: bool,
    },
    /// Check the declared topics against the cluster: exit 0 when every one
    /// exists as declared, 1 when one is missing or differs.
    Verify {
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Make the cluster match the declared topics where that is safe:
    /// create missing ones, add partitions, set differing configs.
    Align {
        /// Show the plan; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// `group` subcommands.
#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// List the groups of every broker, with protocol type and state.
    List {
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// One group: state, assignor, members and their partitions, and per
    /// partition the committed offset, log end and lag. Exit 1 if the group
    /// does not exist.
    Describe {
        /// The group (default: consumer.group_id of the configuration).
        group: Option<String>,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Move a group's offsets in a topic, also while it runs: each
    /// partition's owner (a kafka-actors instance) is asked to seek; the
    /// offsets of a group with no members are committed directly.
    ResetOffsets {
        /// The group (default: consumer.group_id of the configuration).
        group: Option<String>,
        /// The topic.
        #[arg(long)]
        topic: String,
        /// A partition (repeatable; default: all).
        #[arg(long = "partition", value_name = "P")]
        partitions: Vec<i32>,
        /// Where to.
        #[command(flatten)]
        target: ResetTarget,
        /// Print the plan; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// `dlq` subcommands.
#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Count the dead letters by original topic, route, failure class and error code,
    /// with the oldest and newest record time.
    Stats {
        /// Dead-letter topics (default: every route's `dlq_topic`, else
        /// `<topic>.dlq`).
        topics: Vec<String>,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Page through one dead-letter topic: each record with its origin,
    /// failure and headers. The last line says how to read the next page.
    List {
        /// The dead-letter topic.
        topic: String,
        /// Which dead letters.
        #[command(flatten)]
        select: DlqSelect,
        /// Records to print at most.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// One JSON object per record instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Republish selected dead letters to the topic they failed on (or
    /// `--to`), without the failure headers and with `dlq.replay.*` headers,
    /// at a limited rate. Each one is acknowledged by the broker before the
    /// next batch.
    Replay {
        /// The dead-letter topic.
        topic: String,
        /// Which dead letters.
        #[command(flatten)]
        select: DlqSelect,
        /// Republish to this topic instead of each record's original topic.
        #[arg(long)]
        to: Option<String>,
        /// Records per second at most.
        #[arg(long, default_value_t = 500)]
        rate: u32,
        /// Show what would be replayed where; publish nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Delete dead letters for good (DeleteRecords): every record before
    /// `--before` (or all of them) in the selected partitions. Needs --yes.
    Purge {
        /// The dead-letter topic.
        topic: String,
        /// Partitions (default: all); repeatable.
        #[arg(long = "partition", short)]
        partitions: Vec<i32>,
        /// Delete the records before this offset.
        #[arg(long, required_unless_present = "all", conflicts_with = "all")]
        before: Option<i64>,
        /// Delete every record up to the end of each partition.
        #[arg(long)]
        all: bool,
        /// Confirm.
        #[arg(long)]
        yes: bool,
    },
}

/// Which dead letters `dlq list` and `dlq replay` take: all filters apply
/// together.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct DlqSelect {
    /// Partitions of the dead-letter topic (default: all); repeatable.
    #[arg(long = "partition", short)]
    pub partitions: Vec<i32>,
    /// First dead-letter offset to take (default: the earliest).
    #[arg(long)]
    pub from_offset: Option<i64>,
    /// Last dead-letter offset to take, inclusive (default: the end).
    #[arg(long)]
    pub to_offset: Option<i64>,
    /// Only this failure class (`processing`, `validation`, ...; for
    /// Spring dead letters, the exception class); repeatable.
    #[arg(long = "class")]
    pub classes: Vec<String>,
    /// Only records dead-lettered at or after this time (RFC 3339).
    #[arg(long, value_parser = parse_time)]
    pub since: Option<std::time::SystemTime>,
    /// Only records dead-lettered before this time (RFC 3339).
    #[arg(long, value_parser = parse_time)]
    pub until: Option<std::time::SystemTime>,
}

pub(crate) fn emit(text: &str) {
    let mut out = std::io::stdout().lock();
    // A closed pipe (`| head`) is not an error worth reporting.
    let _ = writeln!(out, "{text}");
}

pub(crate) fn emit_err(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

/// Runs the parsed command line and returns the exit code.
pub fn run(cli: Cli) -> Exit {
    run_with(cli, crate::handler::HandlerRegistry::with_builtins())
}

/// Runs a parsed command line with `registry`'s handlers: what a program
/// built on the library calls from its `main` to get the whole command line
/// (`run`, `topics`, `config`, `request`...) with handlers of its own
/// registered next to the built-in ones (see `examples/intelligence`).
pub fn run_with(cli: Cli, registry: crate::handler::HandlerRegistry) -> Exit {
    let options = LoadOptions {
        config_file: cli.config.clone(),
        ..LoadOptions::default()
    };
    let loaded = match config::load(&options) {
        Ok(loaded) => loaded,
        Err(e) => return config_failed(&e),
    };
    telemetry::init_logging(&loaded.config.log);
    match cli.command {
        Command::Config(ConfigCommand::Check) => {
            emit(&match &loaded.file {
                Some(f) => format!("configuration OK ({})", f.display()),
                None => "configuration OK (defaults and environment only)".to_owned(),
            });
            Exit::Ok
        }
        Command::Config(ConfigCommand::Show { json }) => {
            show_config(&loaded, json);
            Exit::Ok
        }
        Command::Check(args) => block_on(check(loaded.config, args)),
        Command::Topics(TopicsCommand::List { internal, json }) => {
            block_on(list_topics(loaded.config, internal, json))
        }
        Command::Topics(TopicsCommand::Describe { name, all, json }) => {
            block_on(crate::cli_topics::describe(loaded.config, name, all, json))
        }
        Command::Topics(TopicsCommand::Create {
            name,
            partitions,
            replication_factor,
            configs,
            json,
        }) => block_on(crate::cli_topics::create(
            loaded.config,
            name,
            partitions,
            replication_factor,
            configs,
            json,
        )),
        Command::Topics(TopicsCommand::Delete { names, yes }) => {
            block_on(crate::cli_topics::delete(loaded.config, names, yes))
        }
        Command::Topics(TopicsCommand::Verify { json }) => {
            block_on(crate::cli_topics::verify(loaded.config, json))
        }
        Command::Topics(TopicsCommand::Align { dry_run, json }) => {
            block_on(crate::cli_topics::align(loaded.config, dry_run, json))
        }
        Command::Group(GroupCommand::List { json }) => {
            block_on(crate::cli_group::list(loaded.config, json))
        }
        Command::Dlq(DlqCommand::Stats { topics, json }) => {
            block_on(crate::cli_dlq::stats(loaded.config, topics, json))
        }
        Command::Dlq(DlqCommand::List {
            topic,
            select,
            limit,
            json,
        }) => block_on(crate::cli_dlq::list(
            loaded.config,
            topic,
            select,
            limit,
            json,
        )),
        Command::Dlq(DlqCommand::Replay {
            topic,
            select,
            to,
            rate,
            dry_run,
        }) => block_on(crate::cli_dlq::replay(
            loaded.config,
            topic,
            select,
            crate::cli_dlq::ReplayOptions { to, rate, dry_run },
        )),
        Command::Dlq(DlqCommand::Purge {
            topic,
            partitions,
            before,
            all: _,
            yes,
        }) => block_on(crate::cli_dlq::purge(
            loaded.config,
            topic,
            partitions,
            before,
            yes,
        )),
        Command::Group(GroupCommand::Describe { group, json }) => {
            block_on(crate::cli_group::describe(loaded.config, group, json))
        }
        Command::Group(GroupCommand::ResetOffsets {
            group,
            topic,
            partitions,
            target,
            dry_run,
            json,
        }) => block_on(crate::cli_group::reset_offsets(
            loaded.config,
            group,
            topic,
            partitions,
            target,
            dry_run,
            json,
        )),
        Command::Replay(args) if args.group.is_some() => block_on(
            crate::cli_group::one_off_replay(loaded.config, registry, args),
        ),
        Command::Replay(args) => block_on(crate::cli_group::replay(loaded.config, args)),
        Command::Run(args) => block_on(run_service(loaded.config, registry, args)),
        Command::Produce(args) => block_on(crate::cli_records::produce(loaded.config, args)),
        Command::Consume(args) => block_on(crate::cli_records::consume(loaded.config, args)),
        Command::Request(args) => block_on(crate::cli_records::request(loaded.config, args)),
        Command::Alerts(AlertsCommand::Rules { output }) => {
            let rules = crate::health::alerts::prometheus_rules(&loaded.config.alerts);
            let text = serde_json::to_string_pretty(&rules).unwrap_or_default();
            match output {
                None => {
                    emit(&text);
                    Exit::Ok
                }
                Some(path) => match std::fs::write(&path, text + "\n") {
                    Ok(()) => Exit::Ok,
                    Err(e) => {
                        emit_err(&format!("kafka-actors: writing {}: {e}", path.display()));
                        Exit::Failure
                    }
                },
            }
        }
    }
}

fn config_failed(e: &ConfigError) -> Exit {
    emit_err(&format!("kafka-actors: {e}"));
    Exit::Config
}

fn block_on(fut: impl std::future::Future<Output = Exit>) -> Exit {
    actix::System::new().block_on(fut)
}

/// Flattens a JSON value into `(dotted.key, leaf)` pairs.
fn leaves(prefix: &str, value: &Value, out: &mut Vec<(String, Value)>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaves(&key, v, out);
            }
        }
        _ => out.push((prefix.to_owned(), value.clone())),
    }
}

fn show_config(loaded: &Loaded, json: bool) {
    let value = serde_json::to_value(&loaded.config).unwrap_or(Value::Null);
    let mut flat = Vec::new();
    leaves("", &value, &mut flat);
    if json {
        let map: serde_json::Map<String, Value> = flat
            .into_iter()
            .map(|(k, v)| {
                let source = loaded.provenance.source_of(&k);
                (k, serde_json::json!({"value": v, "source": source}))
            })
            .collect();
        emit(&serde_json::to_string_pretty(&map).unwrap_or_default());
        return;
    }
    let width = flat
        .iter()
        .map(|(k, v)| k.len() + v.to_string().len())
        .max()
        .unwrap_or(0);
    for (k, v) in &flat {
        let shown = if v.is_null() {
            "(unset)".to_owned()
        } else {
            v.to_string()
        };
        let pad = width.saturating_sub(k.len() + v.to_string().len());
        emit(&format!(
            "{k} = {shown}{}  # {}",
            " ".repeat(pad),
            loaded.provenance.source_of(k)
        ));
    }
}

fn print_cluster(info: &ClusterInfo) {
    emit(&format!("bootstrap {}: reachable", info.bootstrap));
    emit(&format!("security: {}", info.security));
    emit(&format!(
        "cluster id: {}   controller: {}",
        info.cluster_id.as_deref().unwrap_or("(none)"),
        info.controller_id
    ));
    emit(&format!("brokers ({}):", info.brokers.len()));
    for b in &info.brokers {
        emit(&format!(
            "  {:>5}  {}:{}{}",
            b.node_id,
            b.host,
            b.port,
            b.rack
                .as_deref()
                .map(|r| format!("  rack {r}"))
                .unwrap_or_default()
        ));
    }
    emit(&format!("API versions ({}):", info.api_versions.len()));
    for (name, (min, max)) in &info.api_versions {
        emit(&format!("  {name:<32} {min}-{max}"));
    }
}

async fn check(config: Config, args: CheckArgs) -> Exit {
    let result = if args.wait {
        let deadline = Instant::now() + Duration::from_secs(args.timeout);
        cluster::wait_until_reachable(&config.kafka, deadline, Duration::from_secs(2), 1.5).await
    } else {
        cluster::describe(&config.kafka).await
    };
    match result {
        Ok(info) => {
            if args.json {
                emit(&serde_json::to_string_pretty(&info).unwrap_or_default());
            } else {
                print_cluster(&info);
            }
            Exit::Ok
        }
        Err(e @ crate::kafka::KafkaError::Authentication { .. }) => {
            emit_err(&format!("kafka-actors: {e}"));
            Exit::Authentication
        }
        Err(e @ crate::kafka::KafkaError::Tls { .. }) => {
            emit_err(&format!("kafka-actors: {e}"));
            Exit::Tls
        }
        Err(e) => {
            emit_err(&format!("kafka-actors: {e}"));
            Exit::Unavailable
        }
    }
}

async fn list_topics(config: Config, internal: bool, json: bool) -> Exit {
    match cluster::list_topics(&config.kafka).await {
        Ok(topics) => {
            let topics: Vec<_> = topics
                .into_iter()
                .filter(|t| internal || !t.internal)
                .collect();
            if json {
                emit(&serde_json::to_string_pretty(&topics).unwrap_or_default());
            } else {
                let width = topics
                    .iter()
                    .map(|t| t.name.len())
                    .max()
                    .unwrap_or(5)
                    .max(5);
                emit(&format!("{:<width$}  PARTITIONS", "TOPIC"));
                for t in &topics {
                    emit(&format!(
                        "{:<width$}  {:>10}{}{}",
                        t.name,
                        t.partitions,
                        if t.internal { "  (internal)" } else { "" },
                        t.error
                            .as_deref()
                            .map(|e| format!("  error: {e}"))
                            .unwrap_or_default()
                    ));
                }
            }
            Exit::Ok
        }
        Err(e) => {
            emit_err(&format!("kafka-actors: {e}"));
            Exit::Unavailable
        }
    }
}

pub(crate) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
                    _ = term.recv() => tracing::info!("SIGTERM received"),
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only SIGINT stops the service");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn run_service(
    config: Config,
    registry: crate::handler::HandlerRegistry,
    args: RunArgs,
) -> Exit {
    #[cfg(feature = "embedded-broker")]
    let mut config = config;
    #[cfg(feature = "embedded-broker")]
    let _broker = if args.embedded_broker {
        match crate::embedded::EmbeddedBroker::start().await {
            Ok(broker) => {
                tracing::info!(
                    bootstrap = broker.bootstrap(),
                    "embedded broker (Tansu, memory storage) started; kafka.bootstrap_servers is ignored"
                );
                config.kafka.bootstrap_servers = vec![broker.bootstrap().to_owned()];
                Some(broker)
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot start the embedded broker");
                return Exit::Failure;
            }
        }
    } else {
        None
    };
    #[cfg(not(feature = "embedded-broker"))]
    if args.embedded_broker {
        emit_err(
            "kafka-actors: --embedded-broker needs a build with the embedded-broker feature \
             (cargo run --features embedded-broker -- run --embedded-broker)",
        );
        return Exit::Usage;
    }

    if args.demo_rate.is_some()
        && let Err(e) = crate::demo::target(&config)
    {
        emit_err(&format!("kafka-actors: {e}"));
        return Exit::Usage;
    }
    let stop_demo = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    if let Some(rate) = args.demo_rate {
        let (config, stop) = (config.clone(), std::sync::Arc::clone(&stop_demo));
        actix_rt::spawn(async move {
            // Once the service is up (topics created, consuming).
            if started_rx.await.is_ok()
                && let Err(e) = crate::demo::run(&config, rate, stop).await
            {
                tracing::error!(error = %e, "demo load stopped");
            }
        });
    }
    let shutdown = {
        let stop = std::sync::Arc::clone(&stop_demo);
        async move {
            shutdown_signal().await;
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    };
    match runtime::run(config, registry, shutdown, Some(started_tx)).await {
        Ok(()) => Exit::Ok,
        Err(e) => {
            tracing::error!(error = %e, "service failed");
            exit_of(&e)
        }
    }
}

/// The exit code of a service that failed with `e`.
pub(crate) fn exit_of(e: &runtime::RuntimeError) -> Exit {
    match e {
        runtime::RuntimeError::Router(_) | runtime::RuntimeError::Unsupported(_) => Exit::Config,
        runtime::RuntimeError::Topics(e) if e.kind() == crate::kafka::ErrorKind::Permanent => {
            Exit::Config
        }
        runtime::RuntimeError::Topics(_) => Exit::Unavailable,
        runtime::RuntimeError::Kafka(_) => Exit::Unavailable,
        runtime::RuntimeError::Authentication(_) | runtime::RuntimeError::CredentialsRefused(_) => {
            Exit::Authentication
        }
        runtime::RuntimeError::Tls(_) | runtime::RuntimeError::TlsFailed(_) => Exit::Tls,
        _ => Exit::Failure,
    }
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    /// clap's own consistency checks (unique flags, valid `requires`...),
    /// which it otherwise runs only when a subcommand is parsed.
    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
