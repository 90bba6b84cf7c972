//! kafka-actors as a library: start an in-process broker, run the service
//! against it until Ctrl-C, with health and metrics on a free port.
//!
//! ```sh
//! cargo run --example embedded_service --features embedded-broker
//! ```

use kafka_actors::config::Config;
use kafka_actors::embedded::EmbeddedBroker;
use kafka_actors::{runtime, telemetry};

fn main() -> anyhow::Result<()> {
    let mut config = Config::default();
    config.http.bind = "127.0.0.1:0".to_owned();
    telemetry::init_logging(&config.log);

    actix::System::new().block_on(async move {
        let broker = EmbeddedBroker::start().await?;
        config.kafka.bootstrap_servers = vec![broker.bootstrap().to_owned()];

        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let service = runtime::run(
            config,
            kafka_actors::handler::HandlerRegistry::with_builtins(),
            async {
                let _ = tokio::signal::ctrl_c().await;
            },
            Some(started_tx),
        );
        let report = async {
            if let Ok(runtime::Started {
                http_addr: Some(addr),
            }) = started_rx.await
            {
                tracing::info!("try: curl http://{addr}/health ; Ctrl-C stops");
            }
        };
        let (result, ()) = tokio::join!(service, report);
        result?;
        drop(broker);
        Ok(())
    })
}
