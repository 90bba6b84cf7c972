//! Committed offsets through kafka-protocol: find the coordinator, fetch,
//! commit (standalone, no membership).

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_actors::kafka::{Committer, GroupCoordinator};
use kafka_actors::testkit::{self, TestBroker};

use crate::support::bounded;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_then_fetch_round_trips_per_partition() {
    bounded(async {
        let broker = TestBroker::start().await.unwrap();
        let client = testkit::client(broker.bootstrap(), Duration::from_secs(20))
            .await
            .unwrap();
        let topic = testkit::unique_name("offsets");
        testkit::create_topics(&client, &[topic.as_str()], 2, 1)
            .await
            .unwrap();
        let group = testkit::unique_name("group");
        let config = testkit::kafka_config(broker.bootstrap());

        let mut coordinator = GroupCoordinator::connect(&config, &group).await.unwrap();
        let partitions = vec![(topic.clone(), 0), (topic.clone(), 1)];

        let fresh = coordinator.fetch(&partitions).await.unwrap();
        assert_eq!(fresh.len(), 2, "{fresh:?}");
        assert!(fresh.values().all(Option::is_none), "{fresh:?}");

        let offsets = BTreeMap::from([((topic.clone(), 0), 5), ((topic.clone(), 1), 7)]);
        coordinator
            .commit(&Committer::standalone(), &offsets)
            .await
            .unwrap();
        let fetched = coordinator.fetch(&partitions).await.unwrap();
        assert_eq!(fetched[&(topic.clone(), 0)], Some(5));
        assert_eq!(fetched[&(topic.clone(), 1)], Some(7));

        // A later commit replaces the earlier one; another group is untouched.
        let offsets = BTreeMap::from([((topic.clone(), 0), 9)]);
        coordinator
            .commit(&Committer::standalone(), &offsets)
            .await
            .unwrap();
        let fetched = coordinator.fetch(&partitions).await.unwrap();
        assert_eq!(fetched[&(topic.clone(), 0)], Some(9));
        assert_eq!(fetched[&(topic.clone(), 1)], Some(7));

        let mut other = GroupCoordinator::connect(&config, &testkit::unique_name("group"))
            .await
            .unwrap();
        let untouched = other.fetch(&partitions).await.unwrap();
        assert!(untouched.values().all(Option::is_none), "{untouched:?}");
    })
    .await;
}
