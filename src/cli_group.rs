//! `kafka-actors group list` and `group describe`: the consumer groups of
//! the cluster ([`crate::kafka::groups`]) from the command line.

use crate::cli::{ReplayArgs, ResetTarget, emit, emit_err};
use crate::config::Config;
use crate::exit::Exit;
use crate::group::reset::{self, ResetError, ResetPlan, ResetRequest, ResetTo, Via};
use crate::kafka::groups::{self, GroupDescription, GroupListing};

fn or_dash(s: Option<&str>) -> &str {
    match s {
        Some(s) if !s.is_empty() => s,
        _ => "-",
    }
}

fn number(n: Option<i64>) -> String {
    n.map_or_else(|| "-".to_owned(), |n| n.to_string())
}

/// Left-aligned columns, each as wide as its widest cell, two spaces apart.
fn table(header: &[&str], rows: &[Vec<String>], indent: &str) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let mut out = indent.to_owned();
        for (i, (cell, &w)) in cells.iter().zip(&widths).enumerate() {
            if i == last {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.trim_end().to_owned()
    };
    emit(&line(header.to_vec()));
    for row in rows {
        emit(&line(row.iter().map(String::as_str).collect()));
    }
}

fn print_list(groups: &[GroupListing]) {
    let rows: Vec<Vec<String>> = groups
        .iter()
        .map(|g| {
            vec![
                g.group_id.clone(),
                or_dash(g.group_type.as_deref()).to_owned(),
                or_dash(Some(&g.protocol_type)).to_owned(),
                or_dash(g.state.as_deref()).to_owned(),
                g.coordinator.clone(),
            ]
        })
        .collect();
    table(
        &["GROUP", "TYPE", "PROTOCOL", "STATE", "COORDINATOR"],
        &rows,
        "",
    );
}

/// `group list`: every group on every broker.
pub(crate) async fn list(config: Config, json: bool) -> Exit {
    match groups::list_groups(&config.kafka).await {
        Ok(groups) => {
            if json {
                emit(&serde_json::to_string_pretty(&groups).unwrap_or_default());
            } else {
                print_list(&groups);
            }
            Exit::Ok
        }
        Err(e) => {
            emit_err(&format!("kafka-actors: {e}"));
            Exit::Unavailable
        }
    }
}

/// `orders[0,1] audit[3]`.
fn partitions_text(assignment: &[crate::kafka::TopicPartition]) -> String {
    let mut by_topic: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
    for (topic, partition) in assignment {
        by_topic
            .entry(topic)
            .or_default()
            .push(partition.to_string());
    }
    if by_topic.is_empty() {
        return "-".to_owned();
    }
    by_topic
        .iter()
        .map(|(t, ps)| format!("{t}[{}]", ps.join(",")))
        .collect::<Vec<_>>()
        .join(" ")
}

fn print_description(d: &GroupDescription) {
    emit(&format!(
        "group {} (coordinator {})",
        d.group_id, d.coordinator
    ));
    emit(&format!(
        "  state: {}   protocol type: {}   assignor: {}",
        d.state,
        or_dash(Some(&d.protocol_type)),
        or_dash(Some(&d.protocol))
    ));
    if d.members.is_empty() {
        emit("  members: none");
    } else {
        emit(&format!("  members ({}):", d.members.len()));
        let rows: Vec<Vec<String>> = d
            .members
            .iter()
            .map(|m| {
                vec![
                    m.member_id.clone(),
                    or_dash(m.group_instance_id.as_deref()).to_owned(),
                    or_dash(Some(&m.client_id)).to_owned(),
                    or_dash(Some(&m.client_host)).to_owned(),
                    match &m.assignment_error {
                        Some(e) => format!("(undecodable: {e})"),
                        None => partitions_text(&m.assignment),
                    },
                ]
            })
            .collect();
        table(
            &["MEMBER", "INSTANCE", "CLIENT ID", "HOST", "PARTITIONS"],
            &rows,
            "    ",
        );
    }
    if d.partitions.is_empty() {
        emit("  offsets: none committed");
        return;
    }
    emit(&format!(
        "  offsets ({} partitions, total lag {}):",
        d.partitions.len(),
        d.total_lag()
    ));
    let rows: Vec<Vec<String>> = d
        .partitions
        .iter()
        .map(|p| {
            vec![
                p.topic.clone(),
                p.partition.to_string(),
                number(p.committed_offset),
                number(p.log_end_offset),
                number(p.lag),
                match (&p.owner, &p.error) {
                    (owner, None) => or_dash(owner.as_deref()).to_owned(),
                    (owner, Some(e)) => {
                        format!("{}  (log end unknown: {e})", or_dash(owner.as_deref()))
                    }
                },
            ]
        })
        .collect();
    table(
        &["TOPIC", "PARTITION", "COMMITTED", "LOG END", "LAG", "OWNER"],
        &rows,
        "    ",
    );
}

/// `group describe [GROUP]`: state, members and their partitions, and per
/// partition the committed offset, log end and lag. GROUP defaults to
/// `consumer.group_id`. A group that does not exist is an error (exit 1,
/// like a missing topic in `topics describe`).
pub(crate) async fn describe(config: Config, group: Option<String>, json: bool) -> Exit {
    let group = group.unwrap_or_else(|| config.consumer.group_id.clone());
    let description = match groups::describe_group(&config.kafka, &group).await {
        Ok(d) => d,
        Err(e) => {
            emit_err(&format!("kafka-actors: group {group}: {e}"));
            return Exit::Unavailable;
        }
    };
    if !description.exists() {
        // Kafka 4 says why (a KIP-848 group is "not a classic group").
        let why = description
            .broker_message
            .as_deref()
            .filter(|m| !m.is_empty())
            .map(|m| format!(" (coordinator: {m})"))
            .unwrap_or_default();
        emit_err(&format!("kafka-actors: group {group} does not exist{why}"));
        return Exit::Failure;
    }
    if json {
        emit(&serde_json::to_string_pretty(&description).unwrap_or_default());
    } else {
        print_description(&description);
    }
    Exit::Ok
}

/// The exit code of a refused reset: a wrong argument is a usage error;
/// a missing group or topic, or a group that cannot be coordinated now,
/// a failure; a broker that cannot be asked, unavailable.
fn refused(e: &ResetError) -> Exit {
    match e {
        ResetError::Field { .. } => Exit::Usage,
        ResetError::NotFound(_) | ResetError::Conflict(_) => Exit::Failure,
        ResetError::Kafka(_) | ResetError::Broker(_) => Exit::Unavailable,
    }
}

fn print_plan(plan: &ResetPlan) {
    emit(&format!(
        "group {} ({}), topic {}:",
        plan.group, plan.state, plan.topic
    ));
    let rows: Vec<Vec<String>> = plan
        .partitions
        .iter()
        .map(|p| {
            vec![
                p.partition.to_string(),
                number(p.committed),
                p.log_end.to_string(),
                p.offset.to_string(),
                match (&p.via, &p.admin_url) {
                    (Via::Seek, Some(url)) => {
                        format!("seek by {} at {url}", or_dash(p.owner_client_id.as_deref()))
                    }
                    _ => "commit (no members)".to_owned(),
                },
            ]
        })
        .collect();
    table(
        &["PARTITION", "COMMITTED", "LOG END", "NEW OFFSET", "HOW"],
        &rows,
        "  ",
    );
}

/// Plans a reset and prints the plan; `None` (with its exit code) when it
/// is refused.
async fn planned(config: &Config, request: &ResetRequest) -> Result<ResetPlan, Exit> {
    reset::plan(&config.kafka, request).await.map_err(|e| {
        emit_err(&format!(
            "kafka-actors: cannot reset group {} in {}: {e}",
            request.group, request.topic
        ));
        refused(&e)
    })
}

/// Carries out `plan` and prints each partition's outcome; `Exit::Failure`
/// when one was not reset.
async fn carried_out(config: &Config, plan: &ResetPlan, replay: Option<&str>, json: bool) -> Exit {
    let results = reset::execute(
        &config.kafka,
        config.http.admin_token.as_ref(),
        plan,
        replay,
    )
    .await;
    let failed = results.iter().filter(|r| r.error.is_some()).count();
    if json {
        emit(
            &serde_json::to_string_pretty(
                &serde_json::json!({"dry_run": false, "plan": plan, "partitions": results}),
            )
            .unwrap_or_default(),
        );
    } else {
        for r in &results {
            match (&r.offset, &r.error) {
                (Some(o), _) => emit(&format!("  {}/{}: reset to {o}", plan.topic, r.partition)),
                (None, Some(e)) => {
                    emit(&format!("  {}/{}: NOT reset: {e}", plan.topic, r.partition))
                }
                (None, None) => {}
            }
        }
    }
    if failed > 0 {
        emit_err(&format!(
            "kafka-actors: {failed} of {} partition(s) were not reset",
            results.len()
        ));
        return Exit::Failure;
    }
    Exit::Ok
}

/// `group reset-offsets [GROUP] --topic T [--partition P]... TARGET
/// [--dry-run]`: see [`crate::group::reset`].
pub(crate) async fn reset_offsets(
    config: Config,
    group: Option<String>,
    topic: String,
    partitions: Vec<i32>,
    target: ResetTarget,
    dry_run: bool,
    json: bool,
) -> Exit {
    let to = match (
        target.to_earliest,
        target.to_latest,
        target.to_offset,
        target.to_datetime,
        target.shift_by,
    ) {
        (true, ..) => ResetTo::Earliest,
        (_, true, ..) => ResetTo::Latest,
        (_, _, Some(o), ..) => ResetTo::Offset(o),
        (_, _, _, Some(t), _) => match chrono::DateTime::parse_from_rfc3339(&t) {
            Ok(t) => ResetTo::Timestamp(t.with_timezone(&chrono::Utc)),
            Err(e) => {
                emit_err(&format!(
                    "kafka-actors: --to-datetime `{t}`: {e} (expected RFC 3339)"
                ));
                return Exit::Usage;
            }
        },
        (_, _, _, _, Some(n)) => ResetTo::ShiftBy(n),
        _ => {
            emit_err(
                "kafka-actors: give one of --to-earliest, --to-latest, --to-offset, --to-datetime, --shift-by",
            );
            return Exit::Usage;
        }
    };
    let request = ResetRequest {
        group: group.unwrap_or_else(|| config.consumer.group_id.clone()),
        topic,
        partitions: (!partitions.is_empty()).then_some(partitions),
        to,
    };
    let plan = match planned(&config, &request).await {
        Ok(plan) => plan,
        Err(exit) => return exit,
    };
    if dry_run {
        if json {
            emit(
                &serde_json::to_string_pretty(&serde_json::json!({"dry_run": true, "plan": plan}))
                    .unwrap_or_default(),
            );
        } else {
            print_plan(&plan);
            emit("dry run: nothing changed");
        }
        return Exit::Ok;
    }
    if !json {
        print_plan(&plan);
    }
    carried_out(&config, &plan, None, json).await
}

/// How long `replay` waits without the group making progress before it
/// stops watching (the replay itself goes on in the group).
const REPLAY_STALL: std::time::Duration = std::time::Duration::from_secs(120);

/// `replay --topic T [--partition P]... --from-offset N | --from-timestamp
/// T`: the running group starts over from there (a coordinated reset), and
/// the progress of its partitions back to where the logs ended is shown.
pub(crate) async fn replay(config: Config, args: ReplayArgs) -> Exit {
    let to = match replay_from(&args) {
        Ok(to) => to,
        Err(exit) => return exit,
    };
    let request = ResetRequest {
        group: config.consumer.group_id.clone(),
        topic: args.topic,
        partitions: (!args.partitions.is_empty()).then_some(args.partitions),
        to,
    };
    let plan = match planned(&config, &request).await {
        Ok(plan) => plan,
        Err(exit) => return exit,
    };
    print_plan(&plan);
    let total: i64 = plan.partitions.iter().map(|p| p.log_end - p.offset).sum();
    emit(&format!("replay: {total} record(s) to handle again"));
    if args.dry_run {
        emit("dry run: nothing changed");
        return Exit::Ok;
    }
    // Its outputs say which replay they belong to.
    let id = format!(
        "{}@{}",
        plan.group,
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    emit(&format!("replay id (header kafka-actors.replay): {id}"));
    let exit = carried_out(&config, &plan, Some(&id), false).await;
    if exit != Exit::Ok || args.no_wait || total == 0 {
        return exit;
    }
    // Progress: each partition's committed offset back at its log end.
    let ranges: Vec<Range> = plan
        .partitions
        .iter()
        .map(|p| Range {
            partition: p.partition,
            start: p.offset,
            end: p.log_end,
        })
        .collect();
    if watch_replay(&config.kafka, &plan.group, &plan.topic, &ranges, total).await {
        emit("replay: done");
        Exit::Ok
    } else {
        emit_err("kafka-actors: stopped watching (the replay goes on in the group)");
        Exit::Failure
    }
}

/// The start of a replay: `--from-offset` or `--from-timestamp`.
fn replay_from(args: &ReplayArgs) -> Result<ResetTo, Exit> {
    match (args.from_offset, args.from_timestamp.as_deref()) {
        (Some(o), None) => Ok(ResetTo::Offset(o)),
        (None, Some(t)) => timestamp("--from-timestamp", t).map(ResetTo::Timestamp),
        _ => {
            emit_err("kafka-actors: give one of --from-offset and --from-timestamp");
            Err(Exit::Usage)
        }
    }
}

fn timestamp(option: &str, t: &str) -> Result<chrono::DateTime<chrono::Utc>, Exit> {
    chrono::DateTime::parse_from_rfc3339(t)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| {
            emit_err(&format!(
                "kafka-actors: {option} `{t}`: {e} (expected RFC 3339)"
            ));
            Exit::Usage
        })
}

/// One partition of a one-off replay: from `start`, stopping before `end`.
#[derive(Debug, Clone, Copy)]
struct Range {
    partition: i32,
    start: i64,
    end: i64,
}

/// Resolves the replay's range in each selected partition of the topic.
async fn replay_ranges(
    config: &Config,
    args: &ReplayArgs,
    group: &str,
) -> Result<Vec<Range>, Exit> {
    let from = replay_from(args)?;
    let to = match (args.to_offset, args.to_timestamp.as_deref()) {
        (Some(o), _) => Some(ResetTo::Offset(o)),
        (None, Some(t)) => Some(ResetTo::Timestamp(timestamp("--to-timestamp", t)?)),
        (None, None) => None,
    };
    let unavailable = |e: String| {
        emit_err(&format!("kafka-actors: {e}"));
        Exit::Unavailable
    };
    let client = crate::producer::client::rskafka_client(&config.kafka)
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    let topics = client
        .list_topics()
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    let Some(topic) = topics.iter().find(|t| t.name == args.topic) else {
        emit_err(&format!(
            "kafka-actors: topic {} does not exist",
            args.topic
        ));
        return Err(Exit::Failure);
    };
    let all: Vec<i32> = topic.partitions.iter().copied().collect();
    let selected = if args.partitions.is_empty() {
        all.clone()
    } else {
        args.partitions.clone()
    };
    let mut ranges = Vec::with_capacity(selected.len());
    for p in selected {
        let at = format!("{}/{p}", args.topic);
        if !all.contains(&p) {
            emit_err(&format!(
                "kafka-actors: --partition {p}: {at} does not exist ({} has {} partitions)",
                args.topic,
                all.len()
            ));
            return Err(Exit::Usage);
        }
        let pc = client
            .partition_client(
                args.topic.as_str(),
                p,
                rskafka::client::partition::UnknownTopicHandling::Error,
            )
            .await
            .map_err(|e| unavailable(format!("{at}: {e}")))?;
        let refused = |e: ResetError, option: &str| {
            emit_err(&format!("kafka-actors: {option}: {e}"));
            refused(&e)
        };
        let start = reset::resolve(&pc, from, None, group, &at)
            .await
            .map_err(|e| refused(e, "--from-*"))?;
        let end = match to {
            None => start.log_end,
            Some(to) => {
                reset::resolve(&pc, to, None, group, &at)
                    .await
                    .map_err(|e| refused(e, "--to-*"))?
                    .offset
            }
        };
        if end < start.offset {
            emit_err(&format!(
                "kafka-actors: in {at} the replay would stop (offset {end}) before it starts (offset {})",
                start.offset
            ));
            return Err(Exit::Usage);
        }
        ranges.push(Range {
            partition: p,
            start: start.offset,
            end,
        });
    }
    Ok(ranges)
}

/// `replay --group G --topic T [--partition P]... --from-* [--to-*]
/// [--rate R]`: this process handles the records of the range with the
/// configured routes, under group `G` (its committed offsets are the
/// replay's progress), outside the running group, at most `R` per second,
/// its outputs carrying the [`crate::handler::router::REPLAY_HEADER`].
pub(crate) async fn one_off_replay(
    config: Config,
    registry: crate::handler::HandlerRegistry,
    args: ReplayArgs,
) -> Exit {
    let Some(group) = args.group.clone() else {
        return Exit::Usage;
    };
    if !(args.rate.is_finite() && args.rate > 0.0) {
        emit_err(&format!(
            "kafka-actors: --rate must be above 0, got {}",
            args.rate
        ));
        return Exit::Usage;
    }
    if group == config.consumer.group_id {
        emit_err(&format!(
            "kafka-actors: --group {group} is the running group (consumer.group_id): leave --group out \
             to replay through it, or name a group of the replay's own"
        ));
        return Exit::Usage;
    }
    if !config
        .routes
        .values()
        .any(|r| config.topic_name(&r.topic) == args.topic)
    {
        emit_err(&format!(
            "kafka-actors: no route reads topic {}: a replay runs the routes of the configuration",
            args.topic
        ));
        return Exit::Usage;
    }
    match groups::describe_group(&config.kafka, &group).await {
        Ok(d) if !d.members.is_empty() => {
            emit_err(&format!(
                "kafka-actors: group {group} has {} member(s): a one-off replay needs a group of its own",
                d.members.len()
            ));
            return Exit::Failure;
        }
        Ok(_) => {}
        Err(e) => {
            emit_err(&format!("kafka-actors: group {group}: {e}"));
            return Exit::Unavailable;
        }
    }
    let ranges = match replay_ranges(&config, &args, &group).await {
        Ok(r) => r,
        Err(exit) => return exit,
    };
    let total: i64 = ranges.iter().map(|r| r.end - r.start).sum();
    emit(&format!(
        "one-off replay {group} of {} at most {} records/s:",
        args.topic, args.rate
    ));
    table(
        &["PARTITION", "FROM", "TO (BEFORE)", "RECORDS"],
        &ranges
            .iter()
            .map(|r| {
                vec![
                    r.partition.to_string(),
                    r.start.to_string(),
                    r.end.to_string(),
                    (r.end - r.start).to_string(),
                ]
            })
            .collect::<Vec<_>>(),
        "  ",
    );
    emit(&format!("replay: {total} record(s) to handle again"));
    if args.dry_run {
        emit("dry run: nothing changed");
        return Exit::Ok;
    }
    let ranges: Vec<Range> = ranges.into_iter().filter(|r| r.end > r.start).collect();
    if ranges.is_empty() {
        emit("replay: done (nothing to replay)");
        return Exit::Ok;
    }
    // The replay group starts where the replay does.
    let starts: std::collections::BTreeMap<(String, i32), i64> = ranges
        .iter()
        .map(|r| ((args.topic.clone(), r.partition), r.start))
        .collect();
    let committed = match crate::kafka::GroupCoordinator::connect(&config.kafka, &group).await {
        Ok(mut c) => {
            c.commit(&crate::kafka::Committer::standalone(), &starts)
                .await
        }
        Err(e) => Err(e),
    };
    if let Err(e) = committed {
        emit_err(&format!(
            "kafka-actors: group {group}: committing the start offsets: {e}"
        ));
        return Exit::Unavailable;
    }
    let ends: std::collections::BTreeMap<(String, i32), i64> = ranges
        .iter()
        .map(|r| ((args.topic.clone(), r.partition), r.end))
        .collect();
    let mut run = config.clone();
    run.consumer.group_id = group.clone();
    run.consumer.group_protocol = crate::config::GroupProtocol::None;
    // The running service has the listener.
    run.http.enabled = false;
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<bool>();
    let watched = ranges.clone();
    let kafka = config.kafka.clone();
    let watch_group = group.clone();
    let topic = args.topic.clone();
    actix_rt::spawn(async move {
        let ok = watch_replay(&kafka, &watch_group, &topic, &watched, total).await;
        let _ = done_tx.send(ok);
    });
    let (finished_tx, finished_rx) = tokio::sync::oneshot::channel::<bool>();
    let shutdown = async move {
        tokio::select! {
            done = done_rx => { let _ = finished_tx.send(done.unwrap_or(false)); }
            () = crate::cli::shutdown_signal() => { let _ = finished_tx.send(false); }
        }
    };
    let replay = crate::runtime::Replay {
        id: group.clone(),
        ends,
        rate: Some(args.rate),
    };
    match crate::runtime::replay(run, registry, replay, shutdown).await {
        Ok(()) if finished_rx.await.unwrap_or(false) => {
            emit("replay: done");
            Exit::Ok
        }
        Ok(()) => {
            emit_err(&format!(
                "kafka-actors: replay {group} stopped before it was done; group {group}'s committed \
                 offsets show where it got to"
            ));
            Exit::Failure
        }
        Err(e) => {
            emit_err(&format!("kafka-actors: replay {group}: {e}"));
            crate::cli::exit_of(&e)
        }
    }
}

/// Prints the progress of a one-off replay (its group's committed offsets)
/// until every range is done (`true`), or nothing moved for
/// [`REPLAY_STALL`] (`false`).
async fn watch_replay(
    kafka: &crate::config::KafkaConfig,
    group: &str,
    topic: &str,
    ranges: &[Range],
    total: i64,
) -> bool {
    let mut last = -1;
    let mut moved = std::time::Instant::now();
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        let committed = match crate::kafka::GroupCoordinator::connect(kafka, group).await {
            Ok(mut c) => c.fetch_all().await,
            Err(e) => Err(e),
        };
        let committed = match committed {
            Ok(c) => c,
            Err(e) => {
                emit_err(&format!("kafka-actors: group {group}: {e}"));
                continue;
            }
        };
        let done: i64 = ranges
            .iter()
            .map(|r| {
                committed
                    .get(&(topic.to_owned(), r.partition))
                    .copied()
                    .unwrap_or(r.start)
                    .clamp(r.start, r.end)
                    - r.start
            })
            .sum();
        if done != last {
            emit(&format!(
                "replay: {done}/{total} record(s) handled again ({}%)",
                done * 100 / total.max(1)
            ));
            last = done;
            moved = std::time::Instant::now();
        }
        if done >= total {
            return true;
        }
        if moved.elapsed() > REPLAY_STALL {
            emit_err(&format!(
                "kafka-actors: group {group} made no progress for {}s",
                REPLAY_STALL.as_secs()
            ));
            return false;
        }
    }
}
