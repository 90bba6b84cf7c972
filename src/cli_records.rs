//! `kafka-actors produce` and `kafka-actors consume`.

use std::collections::BTreeMap;
use std::io::Read;
use std::time::{Duration, Instant};

use rskafka::client::partition::OffsetAt;
use serde_json::json;

use crate::cli::{ConsumeArgs, ProduceArgs, RequestArgs, emit, emit_err};
use crate::config::Config;
use crate::exit::Exit;
use crate::producer::{OutRecord, ProduceError, Producer};

/// The whole of `file`, or of stdin for `-`; a read error is reported and
/// becomes the failure exit code.
fn read_input(file: &std::path::Path) -> Result<Vec<u8>, Exit> {
    let read = if file.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf).map(|_| buf)
    } else {
        std::fs::read(file)
    };
    read.map_err(|e| {
        emit_err(&format!(
            "kafka-actors: cannot read {}: {e}",
            file.display()
        ));
        Exit::Failure
    })
}

fn failed(e: &ProduceError) -> Exit {
    emit_err(&format!("kafka-actors: {e}"));
    match e {
        ProduceError::UnknownTopic { .. } | ProduceError::Partition { .. } => Exit::Failure,
        _ => Exit::Unavailable,
    }
}

pub(crate) async fn produce(config: Config, args: ProduceArgs) -> Exit {
    let input = match read_input(&args.file) {
        Ok(input) => input,
        Err(exit) => return exit,
    };
    let values: Vec<Vec<u8>> = if args.lines {
        input
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(<[u8]>::to_vec)
            .collect()
    } else {
        vec![input]
    };
    let producer = match Producer::connect(&config.kafka, config.producer.compression_type).await {
        Ok(p) => p,
        Err(e) => return failed(&e),
    };
    let headers: BTreeMap<String, Vec<u8>> = args
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), v.as_bytes().to_vec()))
        .collect();
    let records = values
        .into_iter()
        .map(|value| OutRecord {
            topic: args.topic.clone(),
            partition: args.partition,
            key: args.key.as_ref().map(|k| k.as_bytes().to_vec()),
            value: Some(value),
            headers: headers.clone(),
        })
        .collect();
    let mut exit = Exit::Ok;
    for result in producer.send(records).await {
        match result {
            Ok(w) if args.json => emit(
                &json!({"topic": args.topic, "partition": w.partition, "offset": w.offset})
                    .to_string(),
            ),
            Ok(w) => emit(&format!("{}/{}@{}", args.topic, w.partition, w.offset)),
            Err(e) => exit = failed(&e),
        }
    }
    exit
}

fn render(
    topic: &str,
    partition: i32,
    r: &rskafka::record::RecordAndOffset,
    as_json: bool,
) -> String {
    let text = |b: &Option<Vec<u8>>| {
        b.as_deref()
            .map(|v| String::from_utf8_lossy(v).into_owned())
    };
    let headers: BTreeMap<&str, String> = r
        .record
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), String::from_utf8_lossy(v).into_owned()))
        .collect();
    if as_json {
        return json!({
            "topic": topic,
            "partition": partition,
            "offset": r.offset,
            "timestamp": r.record.timestamp.to_rfc3339(),
            "key": text(&r.record.key),
            "headers": headers,
            "value": text(&r.record.value),
        })
        .to_string();
    }
    let headers = headers
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    format!(
        "{topic}/{partition}@{} key={} headers={{{headers}}} {}",
        r.offset,
        text(&r.record.key).unwrap_or_else(|| "-".to_owned()),
        text(&r.record.value).unwrap_or_default()
    )
}

pub(crate) async fn consume(config: Config, args: ConsumeArgs) -> Exit {
    let producer = match Producer::connect(&config.kafka, crate::config::Compression::None).await {
        Ok(p) => p,
        Err(e) => return failed(&e),
    };
    let partitions = if args.partitions.is_empty() {
        match producer.partitions(&args.topic).await {
            Ok(n) => (0..n).collect(),
            Err(e) => return failed(&e),
        }
    } else {
        args.partitions.clone()
    };
    let start = match (&args.from_time, args.from.as_str()) {
        (Some(t), _) => OffsetAt::Timestamp(chrono::DateTime::<chrono::Utc>::from(*t)),
        (None, "earliest") => OffsetAt::Earliest,
        (None, "latest") => OffsetAt::Latest,
        (None, other) => match other.parse::<i64>() {
            Ok(_) => OffsetAt::Earliest,
            Err(_) => {
                emit_err(&format!(
                    "kafka-actors: --from `{other}`: expected earliest, latest or an offset"
                ));
                return Exit::Usage;
            }
        },
    };
    let explicit: Option<i64> = args.from.parse().ok().filter(|_| args.from_time.is_none());
    let mut readers = Vec::new();
    for p in partitions {
        let pc = match producer.partition_client(&args.topic, p).await {
            Ok(pc) => pc,
            Err(e) => return failed(&e),
        };
        let next = match explicit {
            Some(offset) => offset,
            None => {
                // No record at or after the time: Kafka answers -1; start at
                // the end, as the Java consumer does.
                let found = match pc.get_offset(start).await {
                    Ok(o) if o < 0 => pc.get_offset(OffsetAt::Latest).await,
                    other => other,
                };
                match found {
                    Ok(o) => o,
                    Err(e) => {
                        emit_err(&format!(
                            "kafka-actors: {}/{p}: cannot find the start offset: {e}",
                            args.topic
                        ));
                        return Exit::Unavailable;
                    }
                }
            }
        };
        readers.push((pc, next));
    }

    let deadline = args.timeout.map(|t| Instant::now() + t);
    let mut printed = 0usize;
    let max_bytes = i32::try_from(config.consumer.fetch_max_bytes).unwrap_or(i32::MAX);
    loop {
        for (pc, next) in &mut readers {
            if args.max.is_some_and(|m| printed >= m) {
                return Exit::Ok;
            }
            // A short wait per partition keeps the loop turning over all of them.
            let fetched = pc.fetch_records(*next, 1..max_bytes, 100).await;
            let (records, _high_watermark) = match fetched {
                Ok(r) => r,
                Err(e) => {
                    emit_err(&format!(
                        "kafka-actors: fetching {}/{} at offset {next}: {e}",
                        args.topic,
                        pc.partition()
                    ));
                    return Exit::Unavailable;
                }
            };
            for r in records {
                if r.offset < *next {
                    continue;
                }
                *next = r.offset + 1;
                emit(&render(&args.topic, pc.partition(), &r, args.json));
                printed += 1;
                if args.max.is_some_and(|m| printed >= m) {
                    return Exit::Ok;
                }
            }
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            emit_err(&format!(
                "kafka-actors: {printed} record(s) before the timeout"
            ));
            return Exit::Ok;
        }
        if readers.is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Sends one enveloped request with a fresh correlation id and `reply_to`,
/// then reads the reply topic (from its end before the request was sent)
/// until the reply with that correlation id arrives.
pub(crate) async fn request(config: Config, args: RequestArgs) -> Exit {
    let input = match read_input(&args.file) {
        Ok(input) => input,
        Err(exit) => return exit,
    };
    let payload: serde_json::Value = match serde_json::from_slice(&input) {
        Ok(v) => v,
        Err(e) => {
            emit_err(&format!(
                "kafka-actors: the request payload is not JSON: {e}"
            ));
            return Exit::Failure;
        }
    };
    let producer = match Producer::connect(&config.kafka, config.producer.compression_type).await {
        Ok(p) => p,
        Err(e) => return failed(&e),
    };
    // Where the reply topic ends now: the reply comes after.
    let partitions = match producer.partitions(&args.reply_topic).await {
        Ok(n) => n,
        Err(e) => return failed(&e),
    };
    let mut readers = Vec::new();
    for p in 0..partitions {
        let pc = match producer.partition_client(&args.reply_topic, p).await {
            Ok(pc) => pc,
            Err(e) => return failed(&e),
        };
        match pc.get_offset(OffsetAt::Latest).await {
            Ok(end) => readers.push((pc, end)),
            Err(e) => {
                emit_err(&format!("kafka-actors: {}/{p}: {e}", args.reply_topic));
                return Exit::Unavailable;
            }
        }
    }

    let correlation_id = uuid::Uuid::new_v4().to_string();
    let mut envelope = json!({"correlation_id": correlation_id, "payload": payload});
    let mut headers: BTreeMap<String, Vec<u8>> = args
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), v.as_bytes().to_vec()))
        .collect();
    headers.insert(
        "correlation_id".to_owned(),
        correlation_id.as_bytes().to_vec(),
    );
    headers.insert("reply_to".to_owned(), args.reply_topic.as_bytes().to_vec());
    if let Some(t) = &args.event_type {
        envelope["event_type"] = json!(t);
        headers.insert("event_type".to_owned(), t.as_bytes().to_vec());
    }
    let sent_at = Instant::now();
    let record = OutRecord {
        topic: args.topic.clone(),
        partition: None,
        key: args.key.as_ref().map(|k| k.as_bytes().to_vec()),
        value: Some(envelope.to_string().into_bytes()),
        headers,
    };
    if let Some(Err(e)) = producer.send(vec![record]).await.into_iter().next() {
        return failed(&e);
    }

    let deadline = sent_at + args.timeout;
    while Instant::now() < deadline {
        for (pc, next) in &mut readers {
            let fetched = pc.fetch_records(*next, 1..i32::MAX, 50).await;
            let (records, _) = match fetched {
                Ok(r) => r,
                Err(e) => {
                    emit_err(&format!("kafka-actors: reading {}: {e}", args.reply_topic));
                    return Exit::Unavailable;
                }
            };
            for r in records {
                if r.offset < *next {
                    continue;
                }
                *next = r.offset + 1;
                let matches = r
                    .record
                    .headers
                    .get("correlation_id")
                    .is_some_and(|v| v.as_slice() == correlation_id.as_bytes());
                if matches {
                    emit(&render(&args.reply_topic, pc.partition(), &r, true));
                    emit_err(&format!(
                        "kafka-actors: reply {correlation_id} after {} ms",
                        sent_at.elapsed().as_millis()
                    ));
                    return Exit::Ok;
                }
            }
        }
    }
    emit_err(&format!(
        "kafka-actors: no reply with correlation id {correlation_id} on {} within {:?}",
        args.reply_topic, args.timeout
    ));
    Exit::NoReply
}
