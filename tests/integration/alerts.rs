//! Alerts on a real broker: a consumer-lag rule fires while a partition is
//! paused by an admin request and records arrive, and resolves once it is
//! resumed and the records are handled. The webhook gets both transitions
//! (the first delivery is refused and retried), `/api/v1/alerts` lists the
//! firing alert, and the active-alerts gauge counts it.

use std::io::{BufRead, BufReader, Read, Write};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use kafka_actors::producer::{OutRecord, Producer};
use kafka_actors::testkit::{self, TestBroker};
use serde_json::{Value, json};

use crate::pipeline::{read_all, topics};
use crate::support::{bounded, http_get, http_post, run_cli};

/// A webhook receiver on a free port: refuses the first request with 503,
/// then answers 200 and passes each JSON body on.
fn webhook() -> (String, mpsc::Receiver<Value>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut refused_one = false;
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let line = line.trim_end();
                if line.is_empty() {
                    break;
                }
                if let Some((k, v)) = line.split_once(':')
                    && k.eq_ignore_ascii_case("content-length")
                {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_err() {
                continue;
            }
            let status = if refused_one {
                "200 OK"
            } else {
                refused_one = true;
                "503 Service Unavailable"
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            if status.starts_with("200")
                && let Ok(v) = serde_json::from_slice(&body)
                && tx.send(v).is_err()
            {
                return;
            }
        }
    });
    (addr, rx)
}

/// The next webhook payload with `status` for rule `lag`, within `within`
/// (else a panic showing the service's alerts and lag metrics).
async fn next_payload(
    rx: &mpsc::Receiver<Value>,
    status: &str,
    within: Duration,
    http: &str,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        match rx.try_recv() {
            Ok(v) if v["status"] == status && v["alert"]["name"] == "lag" => return v,
            Ok(other) => panic!("unexpected webhook payload before {status}: {other}"),
            Err(mpsc::TryRecvError::Empty) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => {
                let http = http.to_owned();
                let seen = tokio::task::spawn_blocking(move || {
                    let alerts = http_get(&http, "/api/v1/alerts");
                    let lag = http_get(&http, "/metrics").map(|(_, m)| {
                        m.lines()
                            .filter(|l| l.contains("lag_records") || l.contains("alert"))
                            .collect::<Vec<_>>()
                            .join("\n")
                    });
                    format!("alerts: {alerts:?}\nmetrics:\n{lag:?}")
                })
                .await
                .unwrap();
                panic!("no {status} payload within {within:?}: {e}\n{seen}")
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lag_alert_fires_while_a_partition_is_paused_and_resolves_after_it_resumes() {
    bounded(async {
        let broker = TestBroker::start().await.unwrap();
        let bootstrap = broker.bootstrap().to_owned();
        let client = testkit::client(&bootstrap, Duration::from_secs(20))
            .await
            .unwrap();
        let t = topics(&client, 1).await;
        let (hook, payloads) = webhook();
        let dir = tempfile::tempdir().unwrap();
        let path = crate::pipeline::write_config(
            &dir,
            &t,
            &format!(
                "handler = \"echo\"\n\
                 [http]\nadmin_token = \"t0ken\"\n\
                 [alerts]\ninterval_ms = 200\ndefault_rules = false\n\
                 webhook_url = \"http://{hook}/hook\"\n\
                 [alerts.rules.lag]\nmetric = \"consumer_lag_records\"\nabove = 5\n\
                 for_ms = 1000\nseverity = \"critical\"\n"
            ),
        );
        let (b, p) = (bootstrap.clone(), path.clone());
        let service = tokio::task::spawn_blocking(move || crate::pipeline::start(&b, &p))
            .await
            .unwrap();
        let http = service.http.clone();
        let post = |what: &'static str| {
            let (http, path) = (
                http.clone(),
                format!("/api/v1/partitions/{}/0/{what}", t.requests),
            );
            tokio::task::spawn_blocking(move || http_post(&http, &path, Some("t0ken")).unwrap())
        };
        let (status, body) = post("pause").await.unwrap();
        assert_eq!(status, 200, "{body}");

        const N: usize = 20;
        let producer = Producer::connect(
            &testkit::kafka_config(&bootstrap),
            kafka_actors::config::Compression::None,
        )
        .await
        .unwrap();
        let records = (0..N)
            .map(|i| OutRecord {
                topic: t.requests.clone(),
                value: Some(
                    json!({"correlation_id": format!("c{i}"), "payload": {"seq": i}})
                        .to_string()
                        .into_bytes(),
                ),
                ..OutRecord::default()
            })
            .collect();
        for r in producer.send(records).await {
            r.unwrap();
        }

        // Lag 20 > 5 for a second: fired (delivered on the second attempt).
        let fired = next_payload(&payloads, "firing", Duration::from_secs(30), &http).await;
        assert_eq!(fired["alert"]["severity"], "critical");
        assert_eq!(fired["alert"]["value"], json!(N as f64));
        assert!(
            fired["alert"]["message"]
                .as_str()
                .unwrap()
                .contains(&format!("{}/0", t.requests)),
            "{fired}"
        );
        let (status, listed) = {
            let http = http.clone();
            tokio::task::spawn_blocking(move || http_get(&http, "/api/v1/alerts").unwrap())
                .await
                .unwrap()
        };
        assert_eq!(status, 200);
        let listed: Value = serde_json::from_str(&listed).unwrap();
        assert_eq!(listed["alerts"][0]["name"], "lag", "{listed}");
        assert_eq!(listed["alerts"][0]["state"], "firing", "{listed}");
        let (_, metrics) = {
            let http = http.clone();
            tokio::task::spawn_blocking(move || http_get(&http, "/metrics").unwrap())
                .await
                .unwrap()
        };
        assert!(
            metrics.contains("kafka_actors_alerts_active_count{severity=\"critical\"} 1"),
            "{metrics}"
        );

        // Resumed: every record answered, the lag drops, resolved.
        let (status, body) = post("resume").await.unwrap();
        assert_eq!(status, 200, "{body}");
        let answered = read_all(&client, &t.responses, 1, N, Duration::from_secs(60)).await;
        assert_eq!(answered.len(), N);
        let resolved = next_payload(&payloads, "resolved", Duration::from_secs(30), &http).await;
        assert_eq!(resolved["alert"]["name"], "lag");
        assert!(
            resolved["alert"]["value"].as_f64().unwrap() <= 5.0,
            "{resolved}"
        );
        let (_, listed) =
            tokio::task::spawn_blocking(move || http_get(&http, "/api/v1/alerts").unwrap())
                .await
                .unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&listed).unwrap()["alerts"],
            json!([])
        );

        // The same rule as a Prometheus rule.
        let (status, out, err) = run_cli(
            &["alerts", "rules"],
            &[("KAFKA_ACTORS_CONFIG", path.to_str().unwrap())],
        );
        assert!(status.success(), "{err}");
        let rules: Value = serde_json::from_str(&out).unwrap();
        let rule = &rules["groups"][0]["rules"][0];
        assert_eq!(rule["alert"], "lag");
        assert_eq!(
            rule["expr"],
            "(max by (instance) (kafka_actors_consumer_lag_records)) > 5"
        );
        assert_eq!(rule["for"], "1s");
        assert_eq!(rule["labels"]["severity"], "critical");
        drop(service);
    })
    .await;
}
