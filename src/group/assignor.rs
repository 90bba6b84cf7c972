//! Partition assignors, compatible with the Java client's.
//!
//! In the classic consumer-group protocol the group leader (whichever member
//! the coordinator picks, in whatever language it is written) decides who
//! consumes what: it decodes every member's JoinGroup metadata into a
//! [`Member`], runs the assignor all members agreed on, and sends the result
//! back in SyncGroup. Members only ever apply the leader's answer, so a mixed
//! group of Java, librdkafka and kafka-actors members works as long as each
//! assignor here follows the same rules as its Java namesake in
//! `org.apache.kafka.clients.consumer` (kafka-clients 3.x/4.x):
//!
//! | name                   | Java class                  | protocol    |
//! |------------------------|-----------------------------|-------------|
//! | `range`                | `RangeAssignor`             | eager       |
//! | `roundrobin`           | `RoundRobinAssignor`        | eager       |
//! | `cooperative-sticky`   | `CooperativeStickyAssignor` | cooperative |
//!
//! # Member order
//!
//! [`Range`] and [`RoundRobin`] order members like Java's
//! `AbstractPartitionAssignor.MemberInfo.compareTo`: two static members (with
//! a `group.instance.id`) by instance id, a static member before a dynamic
//! one, two dynamic members by member id. Strings compare like Java's
//! `String.compareTo`, by UTF-16 code unit (which differs from Rust's byte
//! order only between U+E000..U+FFFF and the supplementary planes). Static
//! membership therefore keeps the assignment stable across restarts, which
//! hand out new member ids.
//!
//! # Cooperative sticky
//!
//! [`CooperativeSticky`] is sticky (members keep what they own unless the
//! balance needs it elsewhere) and cooperative: a partition is never handed
//! to a new member in the same round in which another member still holds it.
//!
//! ```text
//!   owned (from each member's subscription)
//!     │  conflict: the claim with the highest generation wins; a tie at the
//!     │  highest generation voids every claim; partitions that no longer
//!     │  exist and topics the member no longer subscribes to are dropped
//!     ▼
//!   target assignment: keep owned, place the rest, rebalance
//!     │  same subscriptions everywhere: Java's constrained algorithm
//!     │  (quotas ⌊P/N⌋ / ⌈P/N⌉, owned kept up to quota, then round robin)
//!     │  otherwise: the general algorithm below
//!     ▼
//!   cooperative adjustment: a partition claimed by another member is
//!   withheld from its new member this round; the claimant revokes it,
//!   rejoins, and the next round (which sees it unowned) hands it over
//! ```
//!
//! Fed back (each round's result as the members' `owned`), the rounds
//! converge in two: the second round only adds the withheld partitions and
//! moves nothing.
//!
//! # Differences from Java
//!
//! - Rack-aware assignment (KIP-881) is not done: it needs the racks of the
//!   partitions' replicas, which the [`Assignor`] interface does not carry.
//!   Java also assigns without racks when it lacks them, so with no rack
//!   information the results are the same; [`Member::rack`] is carried for
//!   the day the interface grows partition racks.
//! - `cooperative-sticky` gives *a* valid sticky, balanced assignment, but
//!   not necessarily the one a Java leader would: Java iterates members in
//!   `HashMap` order (which depends on hash codes and table sizes) where this
//!   module uses member-id order, and when subscriptions differ Java runs a
//!   heuristic move-by-move balancer where this module balances exactly
//!   (see below). Nothing depends on two leaders agreeing: only the leader
//!   assigns.
//! - With differing subscriptions the result is as balanced as the
//!   subscriptions allow: no chain of moves, each to a member subscribed to
//!   the moved partition's topic, can take a partition from one member to
//!   another that has at least two fewer. Java only checks single moves, so
//!   it can stop at, say, 1/2/3 partitions where 2/2/2 is possible.
//! - A partition claimed by its new member *and* by another member is
//!   withheld unless the new member's claim is the valid one; Java hands it
//!   over at once in that case when subscriptions differ (the other claimant
//!   may still be consuming it). Conversely, Java sometimes withholds a
//!   partition from its own valid owner (revoked for quota, then given back
//!   by its round robin); here the owner keeps it.
//! - Claims on partitions that no longer exist (a topic deleted and
//!   re-created with fewer partitions) are dropped; Java only checks the
//!   topic.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

pub use crate::kafka::TopicPartition;

/// The protocol names of the assignors [`by_name`] knows, as the Java client
/// spells them in `partition.assignment.strategy` metadata.
pub const NAMES: [&str; 3] = ["range", "roundrobin", "cooperative-sticky"];

/// One group member as the leader sees it (decoded from its JoinGroup
/// metadata).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The member id the coordinator gave it; unique in the group.
    pub member_id: String,
    /// Its `group.instance.id` (static membership), which orders it before
    /// every dynamic member in [`Range`] and [`RoundRobin`].
    pub instance_id: Option<String>,
    /// The topics it subscribes to.
    pub topics: Vec<String>,
    /// The partitions it owns now (subscription v1+; empty for eager
    /// members, which revoke everything before joining).
    pub owned: Vec<TopicPartition>,
    /// The generation `owned` is from (subscription v2+, or the
    /// cooperative-sticky user data), -1 when unknown. Decides conflicting
    /// claims on one partition.
    pub generation: i32,
    /// Its `client.rack`; not used yet (see the module documentation).
    pub rack: Option<String>,
}

impl Member {
    /// Whether it subscribes to `topic`.
    fn subscribes(&self, topic: &str) -> bool {
        self.topics.iter().any(|t| t == topic)
    }
}

/// A partition assignment strategy, named as in the Java client.
pub trait Assignor: Send + Sync {
    /// The protocol name: `range`, `roundrobin` or `cooperative-sticky`.
    fn name(&self) -> &'static str;

    /// Whether it supports the cooperative rebalance protocol (members keep
    /// their partitions during a rebalance and only revoke what the result
    /// takes away). Only `cooperative-sticky` does.
    fn cooperative(&self) -> bool;

    /// Assigns `partitions` (topic -> partition count, only topics someone
    /// subscribes to) to `members`.
    ///
    /// Returns member id -> sorted partitions, with an entry (possibly empty)
    /// for every member. A partition only goes to a member that subscribes
    /// to its topic, and never to two members. Topics with a count below 1
    /// are ignored, as are topics nobody subscribes to. Member ids are
    /// expected to be unique; a repeated one is ignored.
    fn assign(
        &self,
        members: &[Member],
        partitions: &BTreeMap<String, i32>,
    ) -> BTreeMap<String, Vec<TopicPartition>>;
}

/// The assignor with protocol name `name`, if it is one of [`NAMES`].
#[must_use]
pub fn by_name(name: &str) -> Option<&'static dyn Assignor> {
    match name {
        "range" => Some(&Range),
        "roundrobin" => Some(&RoundRobin),
        "cooperative-sticky" => Some(&CooperativeSticky),
        _ => None,
    }
}

/// Java's `RangeAssignor` (without rack awareness): per topic, the
/// subscribed members in member order each get a consecutive range of
/// `partitions / members` partitions, and the first `partitions % members`
/// of them one more.
///
/// Balanced per topic, not overall: with two members and two topics of three
/// partitions, the first member gets four.
#[derive(Debug, Clone, Copy, Default)]
pub struct Range;

/// Java's `RoundRobinAssignor`: all partitions of all subscribed topics,
/// sorted by topic then partition, dealt to the members in member order,
/// skipping a member that does not subscribe to the partition's topic.
///
/// Balanced within one partition when all members subscribe to the same
/// topics; with differing subscriptions it can be badly skewed.
#[derive(Debug, Clone, Copy, Default)]
pub struct RoundRobin;

/// Java's `CooperativeStickyAssignor`: balanced, sticky, and cooperative
/// (see the [module documentation](self)).
#[derive(Debug, Clone, Copy, Default)]
pub struct CooperativeSticky;

impl Assignor for Range {
    fn name(&self) -> &'static str {
        "range"
    }

    fn cooperative(&self) -> bool {
        false
    }

    fn assign(
        &self,
        members: &[Member],
        partitions: &BTreeMap<String, i32>,
    ) -> BTreeMap<String, Vec<TopicPartition>> {
        let mut ordered = distinct(members);
        ordered.sort_by(|a, b| member_info_cmp(a, b));
        let mut assignment = empty_assignment(&ordered);
        for (topic, &count) in partitions {
            if count < 1 {
                continue;
            }
            let consumers: Vec<&Member> = ordered
                .iter()
                .copied()
                .filter(|m| m.subscribes(topic))
                .collect();
            if consumers.is_empty() {
                continue;
            }
            // Counts are `i32` on the wire; a group has far fewer members.
            let n = i32::try_from(consumers.len()).unwrap_or(i32::MAX);
            let (per_member, with_extra) = (count / n, count % n);
            let mut start = 0;
            for (i, member) in (0..).zip(&consumers) {
                let len = per_member + i32::from(i < with_extra);
                if let Some(list) = assignment.get_mut(&member.member_id) {
                    list.extend((start..start + len).map(|p| (topic.clone(), p)));
                }
                start += len;
            }
        }
        finish(assignment)
    }
}

impl Assignor for RoundRobin {
    fn name(&self) -> &'static str {
        "roundrobin"
    }

    fn cooperative(&self) -> bool {
        false
    }

    fn assign(
        &self,
        members: &[Member],
        partitions: &BTreeMap<String, i32>,
    ) -> BTreeMap<String, Vec<TopicPartition>> {
        let mut ordered = distinct(members);
        ordered.sort_by(|a, b| member_info_cmp(a, b));
        let mut assignment = empty_assignment(&ordered);
        // Java: a `TreeSet` of the subscribed topics, partitions in order.
        let mut topics: Vec<(&str, i32)> = partitions
            .iter()
            .filter(|&(topic, &count)| count > 0 && ordered.iter().any(|m| m.subscribes(topic)))
            .map(|(topic, &count)| (topic.as_str(), count))
            .collect();
        topics.sort_by(|a, b| java_cmp(a.0, b.0));
        // One cursor over the members for all topics, like Java's
        // `CircularIterator`. Every topic here has a subscriber, so the
        // skipping always stops.
        let mut next = 0;
        for (topic, count) in topics {
            for partition in 0..count {
                while !ordered[next].subscribes(topic) {
                    next = (next + 1) % ordered.len();
                }
                if let Some(list) = assignment.get_mut(&ordered[next].member_id) {
                    list.push((topic.to_owned(), partition));
                }
                next = (next + 1) % ordered.len();
            }
        }
        finish(assignment)
    }
}

impl Assignor for CooperativeSticky {
    fn name(&self) -> &'static str {
        "cooperative-sticky"
    }

    fn cooperative(&self) -> bool {
        true
    }

    fn assign(
        &self,
        members: &[Member],
        partitions: &BTreeMap<String, i32>,
    ) -> BTreeMap<String, Vec<TopicPartition>> {
        let sticky = Sticky::new(members, partitions);
        let mut held = if sticky.members.is_empty() {
            Vec::new()
        } else if sticky.eligible.windows(2).all(|w| w[0] == w[1]) {
            sticky.constrained()
        } else {
            sticky.general()
        };
        sticky.withhold(&mut held);
        let assignment = sticky
            .members
            .iter()
            .zip(held)
            .map(|(member, partitions)| {
                let partitions = partitions
                    .into_iter()
                    .map(|(t, p)| (sticky.topics[t].0.to_owned(), p))
                    .collect();
                (member.member_id.clone(), partitions)
            })
            .collect();
        finish(assignment)
    }
}

/// Java's `String.compareTo`: lexicographic by UTF-16 code unit.
fn java_cmp(a: &str, b: &str) -> Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

/// Java's `MemberInfo.compareTo`, with the member id as a final tie-break
/// (two members with one instance id, which the coordinator does not allow,
/// would otherwise be in input order).
fn member_info_cmp(a: &Member, b: &Member) -> Ordering {
    let by_instance = match (&a.instance_id, &b.instance_id) {
        (Some(x), Some(y)) => java_cmp(x, y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    };
    by_instance.then_with(|| java_cmp(&a.member_id, &b.member_id))
}

/// The members with the first occurrence of each member id.
fn distinct(members: &[Member]) -> Vec<&Member> {
    let mut seen = BTreeSet::new();
    members
        .iter()
        .filter(|m| seen.insert(m.member_id.as_str()))
        .collect()
}

/// An empty partition list for every member.
fn empty_assignment(members: &[&Member]) -> BTreeMap<String, Vec<TopicPartition>> {
    members
        .iter()
        .map(|m| (m.member_id.clone(), Vec::new()))
        .collect()
}

/// Sorts every member's partitions.
fn finish(
    mut assignment: BTreeMap<String, Vec<TopicPartition>>,
) -> BTreeMap<String, Vec<TopicPartition>> {
    for partitions in assignment.values_mut() {
        partitions.sort_unstable();
    }
    assignment
}

/// A partition inside [`Sticky`]: (index into `Sticky::topics`, partition).
type Tp = (usize, i32);

/// The input of the sticky assignor, validated and indexed. Members and
/// topics are referred to by index; members are sorted by member id (Java
/// sorts its unfilled-member lists that way) and topics by name.
struct Sticky<'a> {
    /// Distinct members, by member id.
    members: Vec<&'a Member>,
    /// Topics with at least one partition and one subscriber: (name, count).
    topics: Vec<(&'a str, i32)>,
    /// Per member, the indices of the topics it subscribes to.
    eligible: Vec<BTreeSet<usize>>,
    /// Per topic, the members subscribing to it.
    subscribers: Vec<Vec<usize>>,
    /// The valid owner of each claimed partition: the only claimant with the
    /// highest generation. Absent when no claim survived.
    owner: BTreeMap<Tp, usize>,
    /// Every member claiming each partition, valid or not: all of them still
    /// hold it until they see an assignment without it.
    claimants: BTreeMap<Tp, Vec<usize>>,
    /// Per member, the partitions it validly owns and may keep (it still
    /// subscribes to the topic).
    owned: Vec<Vec<Tp>>,
}

impl<'a> Sticky<'a> {
    /// Indexes the input and settles conflicting claims.
    fn new(members: &'a [Member], partitions: &'a BTreeMap<String, i32>) -> Self {
        let mut members = distinct(members);
        members.sort_by(|a, b| java_cmp(&a.member_id, &b.member_id));

        let mut topics: Vec<(&str, i32)> = partitions
            .iter()
            .filter(|&(topic, &count)| count > 0 && members.iter().any(|m| m.subscribes(topic)))
            .map(|(topic, &count)| (topic.as_str(), count))
            .collect();
        topics.sort_by(|a, b| java_cmp(a.0, b.0));
        let index: BTreeMap<&str, usize> = topics
            .iter()
            .enumerate()
            .map(|(i, &(topic, _))| (topic, i))
            .collect();

        let eligible: Vec<BTreeSet<usize>> = members
            .iter()
            .map(|m| {
                m.topics
                    .iter()
                    .filter_map(|t| index.get(t.as_str()).copied())
                    .collect()
            })
            .collect();
        let mut subscribers = vec![Vec::new(); topics.len()];
        for (member, topics) in eligible.iter().enumerate() {
            for &topic in topics {
                subscribers[topic].push(member);
            }
        }

        // Java (3.x+) settles conflicts per partition, among the claims on
        // subscribed topics, before looking at who still subscribes: the
        // highest generation wins, and a tie at the highest voids them all.
        let mut best: BTreeMap<Tp, (i32, Option<usize>)> = BTreeMap::new();
        let mut claimants: BTreeMap<Tp, Vec<usize>> = BTreeMap::new();
        for (i, member) in members.iter().enumerate() {
            let claims: BTreeSet<Tp> = member
                .owned
                .iter()
                .filter_map(|(topic, partition)| {
                    let t = *index.get(topic.as_str())?;
                    (0..topics[t].1)
                        .contains(partition)
                        .then_some((t, *partition))
                })
                .collect();
            for tp in claims {
                claimants.entry(tp).or_default().push(i);
                let generation = member.generation;
                best.entry(tp)
                    .and_modify(|(highest, winner)| match generation.cmp(highest) {
                        Ordering::Greater => (*highest, *winner) = (generation, Some(i)),
                        Ordering::Equal => *winner = None,
                        Ordering::Less => {}
                    })
                    .or_insert((generation, Some(i)));
            }
        }
        let owner: BTreeMap<Tp, usize> = best
            .into_iter()
            .filter_map(|(tp, (_, winner))| Some((tp, winner?)))
            .collect();
        let mut owned = vec![Vec::new(); members.len()];
        for (&tp, &member) in &owner {
            if eligible[member].contains(&tp.0) {
                owned[member].push(tp);
            }
        }

        Self {
            members,
            topics,
            eligible,
            subscribers,
            owner,
            claimants,
            owned,
        }
    }

    /// Every partition, by topic then partition.
    fn all_partitions(&self) -> impl Iterator<Item = Tp> + '_ {
        self.topics
            .iter()
            .enumerate()
            .flat_map(|(t, &(_, count))| (0..count).map(move |p| (t, p)))
    }

    /// Java's constrained assignment, for members that all subscribe to the
    /// same topics. With `P` partitions and `N` members everybody ends with
    /// `⌊P/N⌋` or `⌈P/N⌉`, exactly `P % N` of them with the larger:
    ///
    /// 1. each member keeps its owned partitions (lowest partition numbers
    ///    first) up to the quota: all of them below `⌊P/N⌋`; `⌈P/N⌉` while
    ///    members with the larger quota are still needed; else `⌊P/N⌋`;
    /// 2. the remaining partitions go round robin to the members below
    ///    `⌊P/N⌋`, then one each to members at `⌊P/N⌋` that may still take
    ///    one more.
    fn constrained(&self) -> Vec<BTreeSet<Tp>> {
        let n = self.members.len();
        let total: usize = self
            .topics
            .iter()
            .map(|&(_, count)| usize::try_from(count).unwrap_or(0))
            .sum();
        let (min_quota, max_quota) = (total / n, total.div_ceil(n));
        let expected_over_min = total % n;
        let mut over_min = 0;

        let mut assignment: Vec<BTreeSet<Tp>> = vec![BTreeSet::new(); n];
        let mut under_min: Vec<usize> = Vec::new();
        let mut exactly_min: VecDeque<usize> = VecDeque::new();
        for (member, owned) in self.owned.iter().enumerate() {
            let mut owned = owned.clone();
            // Java keeps the first ones by (partition, topic).
            owned.sort_by_key(|&(t, p)| (p, t));
            let keep = if owned.len() < min_quota {
                under_min.push(member);
                owned.len()
            } else if owned.len() >= max_quota && over_min < expected_over_min {
                over_min += 1;
                if over_min == expected_over_min {
                    exactly_min.clear();
                }
                max_quota
            } else {
                if over_min < expected_over_min {
                    exactly_min.push_back(member);
                }
                min_quota
            };
            assignment[member].extend(&owned[..keep]);
        }

        let assigned: BTreeSet<Tp> = assignment.iter().flatten().copied().collect();
        // Java's iterator over `under_min`: `next` is the position of the
        // member it returns next; it starts over at the end.
        let mut next = 0;
        for tp in self.all_partitions().filter(|tp| !assigned.contains(tp)) {
            let (member, from_under_min) = if !under_min.is_empty() {
                if next == under_min.len() {
                    next = 0;
                }
                next += 1;
                (under_min[next - 1], true)
            } else if let Some(member) = exactly_min.pop_front() {
                (member, false)
            } else {
                // Java throws here; the quotas add up so this is unreachable,
                // but stay complete rather than drop a partition.
                let least = (0..n).min_by_key(|&m| (assignment[m].len(), m));
                match least {
                    Some(member) => (member, false),
                    None => break,
                }
            };
            assignment[member].insert(tp);
            if from_under_min && assignment[member].len() == min_quota {
                next -= 1;
                under_min.remove(next);
                exactly_min.push_back(member);
            }
        }
        assignment
    }

    /// The general assignment, for differing subscriptions:
    ///
    /// 1. every member keeps all partitions it validly owns;
    /// 2. each other partition goes to the least loaded subscriber of its
    ///    topic, topics with the fewest subscribers first (as in Java);
    /// 3. [`balance`](Self::balance) evens the loads out.
    fn general(&self) -> Vec<BTreeSet<Tp>> {
        let mut held: Vec<BTreeSet<Tp>> = self
            .owned
            .iter()
            .map(|owned| owned.iter().copied().collect())
            .collect();
        let taken: BTreeSet<Tp> = held.iter().flatten().copied().collect();
        let mut topics: Vec<usize> = (0..self.topics.len()).collect();
        topics.sort_by_key(|&t| (self.subscribers[t].len(), t));
        for t in topics {
            for p in 0..self.topics[t].1 {
                if taken.contains(&(t, p)) {
                    continue;
                }
                let least = self.subscribers[t]
                    .iter()
                    .copied()
                    .min_by_key(|&m| (held[m].len(), m));
                if let Some(member) = least {
                    held[member].insert((t, p));
                }
            }
        }
        self.balance(&mut held);
        held
    }

    /// Moves partitions until no member can pass one, directly or through a
    /// chain of members, to a member with at least two fewer.
    ///
    /// Each step moves one partition along every edge of a path
    /// `s -> ... -> v` (each edge: a partition of a topic the next member
    /// subscribes to) with `load(s) >= load(v) + 2`, so only `s` and `v`
    /// change load and the sum of squared loads drops: it terminates, and
    /// when no such path is left the loads are optimal (this is the
    /// optimality condition of a convex-cost flow). Paths that revoke
    /// nothing (they only move partitions their holder does not own) are
    /// tried first, and among the others the one that revokes least, so
    /// owners keep what they own whenever the balance allows it.
    fn balance(&self, held: &mut [BTreeSet<Tp>]) {
        while let Some(path) = self
            .improving_path(held, true)
            .or_else(|| self.improving_path(held, false))
        {
            // Along a simple path each member gains a partition before it
            // gives one away, so every edge still has one to move.
            for (from, to, topic) in path {
                if let Some(tp) = self.pick(&held[from], from, to, topic) {
                    held[from].remove(&tp);
                    held[to].insert(tp);
                }
            }
        }
    }

    /// An improving path as `(from, to, topic)` moves, from the most loaded
    /// member that has one, to the reachable member needing the fewest
    /// revocations, then with the lowest load. With `free_only`, only moves
    /// that revoke nothing.
    fn improving_path(
        &self,
        held: &[BTreeSet<Tp>],
        free_only: bool,
    ) -> Option<Vec<(usize, usize, usize)>> {
        let n = held.len();
        let loads: Vec<usize> = held.iter().map(BTreeSet::len).collect();
        let min_load = *loads.iter().min()?;
        let mut sources: Vec<usize> = (0..n).filter(|&s| loads[s] >= min_load + 2).collect();
        sources.sort_by_key(|&s| (Reverse(loads[s]), s));
        for source in sources {
            // 0-1 BFS: an edge costs 1 when it revokes an owned partition.
            let mut cost = vec![usize::MAX; n];
            let mut via: Vec<Option<(usize, usize)>> = vec![None; n];
            let mut queue = VecDeque::from([(source, 0)]);
            cost[source] = 0;
            while let Some((u, c)) = queue.pop_front() {
                if c > cost[u] {
                    continue;
                }
                for (topic, revokes) in self.movable_topics(&held[u], u) {
                    if free_only && revokes {
                        continue;
                    }
                    let next = c + usize::from(revokes);
                    for &v in &self.subscribers[topic] {
                        if v != u && next < cost[v] {
                            cost[v] = next;
                            via[v] = Some((u, topic));
                            if revokes {
                                queue.push_back((v, next));
                            } else {
                                queue.push_front((v, next));
                            }
                        }
                    }
                }
            }
            let target = (0..n)
                .filter(|&v| v != source && cost[v] != usize::MAX && loads[v] + 2 <= loads[source])
                .min_by_key(|&v| (cost[v], loads[v], v));
            if let Some(target) = target {
                let mut path = Vec::new();
                let mut at = target;
                while let Some((from, topic)) = via[at] {
                    path.push((from, at, topic));
                    at = from;
                }
                path.reverse();
                return Some(path);
            }
        }
        None
    }

    /// The topics `member` holds partitions of, each with whether moving
    /// one away necessarily revokes a partition `member` owns.
    fn movable_topics(&self, held: &BTreeSet<Tp>, member: usize) -> Vec<(usize, bool)> {
        let mut topics: Vec<(usize, bool)> = Vec::new();
        for tp in held {
            let revokes = self.owner.get(tp) == Some(&member);
            match topics.last_mut() {
                Some((topic, all_revoke)) if *topic == tp.0 => *all_revoke &= revokes,
                _ => topics.push((tp.0, revokes)),
            }
        }
        topics
    }

    /// The partition of `topic` to move from `from` to `to`: one that `to`
    /// owns, else one `from` does not own, else the one `from` owns with the
    /// highest number (Java revokes from the end too).
    fn pick(&self, held: &BTreeSet<Tp>, from: usize, to: usize, topic: usize) -> Option<Tp> {
        held.range((topic, i32::MIN)..=(topic, i32::MAX))
            .copied()
            .min_by_key(|tp| {
                let rank = match self.owner.get(tp) {
                    Some(&owner) if owner == to => 0,
                    Some(&owner) if owner == from => 2,
                    _ => 1,
                };
                (rank, Reverse(tp.1))
            })
    }

    /// The cooperative adjustment: removes each partition whose new member
    /// is not its valid owner while another member still claims it. That
    /// member revokes it on seeing its assignment and rejoins; the next
    /// round assigns it.
    fn withhold(&self, held: &mut [BTreeSet<Tp>]) {
        for (member, partitions) in held.iter_mut().enumerate() {
            partitions.retain(|tp| {
                self.owner.get(tp) == Some(&member)
                    || self
                        .claimants
                        .get(tp)
                        .is_none_or(|claimants| claimants.iter().all(|&c| c == member))
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn member(id: &str, topics: &[&str]) -> Member {
        Member {
            member_id: id.to_owned(),
            instance_id: None,
            topics: topics.iter().map(|t| (*t).to_owned()).collect(),
            owned: Vec::new(),
            generation: -1,
            rack: None,
        }
    }

    fn static_member(id: &str, instance: &str, topics: &[&str]) -> Member {
        Member {
            instance_id: Some(instance.to_owned()),
            ..member(id, topics)
        }
    }

    fn owning(mut m: Member, generation: i32, owned: &[(&str, i32)]) -> Member {
        m.generation = generation;
        m.owned = tps(owned);
        m
    }

    fn tps(list: &[(&str, i32)]) -> Vec<TopicPartition> {
        list.iter().map(|&(t, p)| (t.to_owned(), p)).collect()
    }

    fn counts(list: &[(&str, i32)]) -> BTreeMap<String, i32> {
        list.iter().map(|&(t, n)| (t.to_owned(), n)).collect()
    }

    fn expect(list: &[(&str, &[(&str, i32)])]) -> BTreeMap<String, Vec<TopicPartition>> {
        list.iter()
            .map(|&(m, parts)| (m.to_owned(), tps(parts)))
            .collect()
    }

    /// Feeds a cooperative result back: each member now owns exactly what
    /// it was given, one generation later.
    fn next_round(
        members: &[Member],
        result: &BTreeMap<String, Vec<TopicPartition>>,
        generation: i32,
    ) -> Vec<Member> {
        members
            .iter()
            .map(|m| Member {
                owned: result[&m.member_id].clone(),
                generation,
                ..m.clone()
            })
            .collect()
    }

    #[test]
    fn names_and_lookup() {
        for name in NAMES {
            let assignor = by_name(name).unwrap();
            assert_eq!(assignor.name(), name);
            assert_eq!(assignor.cooperative(), name == "cooperative-sticky");
        }
        assert!(by_name("sticky").is_none());
        assert!(by_name("Range").is_none());
    }

    #[test]
    fn range_javadoc_example() {
        let members = [member("C0", &["t0", "t1"]), member("C1", &["t0", "t1"])];
        let got = Range.assign(&members, &counts(&[("t0", 3), ("t1", 3)]));
        let want = expect(&[
            ("C0", &[("t0", 0), ("t0", 1), ("t1", 0), ("t1", 1)]),
            ("C1", &[("t0", 2), ("t1", 2)]),
        ]);
        assert_eq!(got, want);
    }

    #[test]
    fn range_static_members_ignore_member_ids() {
        // Javadoc: after a rolling bounce C0 -> C3 and C1 -> C2; instance
        // ids keep the assignment where it was.
        let members = [
            static_member("C3", "I0", &["t0", "t1"]),
            static_member("C2", "I1", &["t0", "t1"]),
        ];
        let got = Range.assign(&members, &counts(&[("t0", 3), ("t1", 3)]));
        let want = expect(&[
            ("C3", &[("t0", 0), ("t0", 1), ("t1", 0), ("t1", 1)]),
            ("C2", &[("t0", 2), ("t1", 2)]),
        ]);
        assert_eq!(got, want);
    }

    #[test]
    fn range_uneven_subscriptions() {
        let members = [
            member("C0", &["t0"]),
            member("C1", &["t0", "t1"]),
            member("C2", &["t1"]),
        ];
        let got = Range.assign(&members, &counts(&[("t0", 3), ("t1", 5)]));
        let want = expect(&[
            ("C0", &[("t0", 0), ("t0", 1)]),
            ("C1", &[("t0", 2), ("t1", 0), ("t1", 1), ("t1", 2)]),
            ("C2", &[("t1", 3), ("t1", 4)]),
        ]);
        assert_eq!(got, want);
    }

    #[test]
    fn member_order_follows_java_member_info() {
        // Static before dynamic; static by instance id; dynamic by member id.
        let members = [
            member("a", &["t"]),
            static_member("z", "i2", &["t"]),
            member("b", &["t"]),
            static_member("y", "i1", &["t"]),
        ];
        let got = Range.assign(&members, &counts(&[("t", 4)]));
        let want = expect(&[
            ("y", &[("t", 0)]),
            ("z", &[("t", 1)]),
            ("a", &[("t", 2)]),
            ("b", &[("t", 3)]),
        ]);
        assert_eq!(got, want);
    }

    #[test]
    fn strings_compare_by_utf16_code_unit() {
        // U+10000 is a surrogate pair (D800 DC00), below U+E000 in Java but
        // above it in UTF-8.
        assert_eq!(java_cmp("\u{10000}", "\u{E000}"), Ordering::Less);
        assert_eq!(java_cmp("a", "b"), Ordering::Less);
        assert_eq!(java_cmp("ab", "a"), Ordering::Greater);
        let members = [member("\u{E000}", &["t"]), member("\u{10000}", &["t"])];
        let got = Range.assign(&members, &counts(&[("t", 2)]));
        assert_eq!(got["\u{10000}"], tps(&[("t", 0)]));
        assert_eq!(got["\u{E000}"], tps(&[("t", 1)]));
    }

    #[test]
    fn roundrobin_javadoc_examples() {
        let members = [member("C0", &["t0", "t1"]), member("C1", &["t0", "t1"])];
        let got = RoundRobin.assign(&members, &counts(&[("t0", 3), ("t1", 3)]));
        let want = expect(&[
            ("C0", &[("t0", 0), ("t0", 2), ("t1", 1)]),
            ("C1", &[("t0", 1), ("t1", 0), ("t1", 2)]),
        ]);
        assert_eq!(got, want);

        let members = [
            member("C0", &["t0"]),
            member("C1", &["t0", "t1"]),
            member("C2", &["t0", "t1", "t2"]),
        ];
        let got = RoundRobin.assign(&members, &counts(&[("t0", 1), ("t1", 2), ("t2", 3)]));
        let want = expect(&[
            ("C0", &[("t0", 0)]),
            ("C1", &[("t1", 0)]),
            ("C2", &[("t1", 1), ("t2", 0), ("t2", 1), ("t2", 2)]),
        ]);
        assert_eq!(got, want);
    }

    #[test]
    fn roundrobin_static_membership_javadoc_example() {
        let partitions = counts(&[("t0", 3), ("t1", 3)]);
        // Dynamic members: new member ids after a bounce reshuffle it.
        let members = [
            member("C5", &["t0", "t1"]),
            member("C3", &["t0", "t1"]),
            member("C4", &["t0", "t1"]),
        ];
        let got = RoundRobin.assign(&members, &partitions);
        let want = expect(&[
            ("C3", &[("t0", 0), ("t1", 0)]),
            ("C4", &[("t0", 1), ("t1", 1)]),
            ("C5", &[("t0", 2), ("t1", 2)]),
        ]);
        assert_eq!(got, want);
        // Static members keep their partitions whatever their member ids.
        let members = [
            static_member("C5", "I0", &["t0", "t1"]),
            static_member("C3", "I1", &["t0", "t1"]),
            static_member("C4", "I2", &["t0", "t1"]),
        ];
        let got = RoundRobin.assign(&members, &partitions);
        let want = expect(&[
            ("C5", &[("t0", 0), ("t1", 0)]),
            ("C3", &[("t0", 1), ("t1", 1)]),
            ("C4", &[("t0", 2), ("t1", 2)]),
        ]);
        assert_eq!(got, want);
    }

    #[test]
    fn members_without_partitions_get_empty_lists() {
        let members = [
            member("a", &["t"]),
            member("b", &[]),
            member("c", &["missing"]),
            member("d", &["t"]),
        ];
        let partitions = counts(&[("t", 1), ("empty", 0)]);
        for name in NAMES {
            let got = by_name(name).unwrap().assign(&members, &partitions);
            assert_eq!(got.len(), 4, "{name}");
            assert_eq!(got["a"], tps(&[("t", 0)]), "{name}");
            for id in ["b", "c", "d"] {
                assert!(got[id].is_empty(), "{name}: {id}");
            }
            assert!(by_name(name).unwrap().assign(&[], &partitions).is_empty());
        }
    }

    #[test]
    fn sticky_fresh_group_is_balanced() {
        let members = [
            member("a", &["t0", "t1"]),
            member("b", &["t0", "t1"]),
            member("c", &["t0", "t1"]),
        ];
        let got = CooperativeSticky.assign(&members, &counts(&[("t0", 4), ("t1", 3)]));
        let want = expect(&[
            ("a", &[("t0", 0), ("t0", 3), ("t1", 2)]),
            ("b", &[("t0", 1), ("t1", 0)]),
            ("c", &[("t0", 2), ("t1", 1)]),
        ]);
        assert_eq!(got, want);
    }

    #[test]
    fn sticky_join_moves_only_what_it_must_in_two_rounds() {
        let partitions = counts(&[("t", 6)]);
        let members = [
            owning(member("a", &["t"]), 4, &[("t", 0), ("t", 1), ("t", 2)]),
            owning(member("b", &["t"]), 4, &[("t", 3), ("t", 4), ("t", 5)]),
            member("c", &["t"]),
        ];
        // Round 1: a and b give up their highest partition; c does not get
        // them yet because a and b still hold them.
        let round1 = CooperativeSticky.assign(&members, &partitions);
        let want1 = expect(&[
            ("a", &[("t", 0), ("t", 1)]),
            ("b", &[("t", 3), ("t", 4)]),
            ("c", &[]),
        ]);
        assert_eq!(round1, want1);
        // Round 2: a and b revoked them, c gets them, nothing else moves.
        let round2 = CooperativeSticky.assign(&next_round(&members, &round1, 5), &partitions);
        let want2 = expect(&[
            ("a", &[("t", 0), ("t", 1)]),
            ("b", &[("t", 3), ("t", 4)]),
            ("c", &[("t", 2), ("t", 5)]),
        ]);
        assert_eq!(round2, want2);
    }

    #[test]
    fn sticky_leave_spreads_its_partitions_and_nobody_loses() {
        let partitions = counts(&[("t0", 4), ("t1", 3)]);
        // c was in the group with t0-2, t1-1 and has left.
        let members = [
            owning(
                member("a", &["t0", "t1"]),
                7,
                &[("t0", 0), ("t0", 3), ("t1", 2)],
            ),
            owning(member("b", &["t0", "t1"]), 7, &[("t0", 1), ("t1", 0)]),
        ];
        let got = CooperativeSticky.assign(&members, &partitions);
        for m in &members {
            for tp in &m.owned {
                assert!(
                    got[&m.member_id].contains(tp),
                    "{} lost {tp:?}",
                    m.member_id
                );
            }
        }
        let total: usize = got.values().map(Vec::len).sum();
        assert_eq!(
            total, 7,
            "nothing withheld: nobody else holds c's partitions"
        );
        assert!(got["a"].len().abs_diff(got["b"].len()) <= 1);
    }

    #[test]
    fn sticky_conflicting_claims_by_generation() {
        let partitions = counts(&[("t", 4)]);
        let members = [
            // a is newest: its claim on t-1 beats b's.
            owning(member("a", &["t"]), 5, &[("t", 0), ("t", 1)]),
            owning(member("b", &["t"]), 4, &[("t", 1), ("t", 2)]),
            // c and d claim t-3 in the same generation: neither keeps it.
            owning(member("c", &["t"]), 5, &[("t", 3)]),
            owning(member("d", &["t"]), 5, &[("t", 3)]),
        ];
        let round1 = CooperativeSticky.assign(&members, &partitions);
        // Quota 1 each: a keeps t-0 (its lowest), revoking t-1; b keeps
        // t-2. t-1 and t-3 are still held by someone else, so c and d wait.
        let want1 = expect(&[
            ("a", &[("t", 0)]),
            ("b", &[("t", 2)]),
            ("c", &[]),
            ("d", &[]),
        ]);
        assert_eq!(round1, want1);
        let round2 = CooperativeSticky.assign(&next_round(&members, &round1, 6), &partitions);
        let want2 = expect(&[
            ("a", &[("t", 0)]),
            ("b", &[("t", 2)]),
            ("c", &[("t", 1)]),
            ("d", &[("t", 3)]),
        ]);
        assert_eq!(round2, want2);
    }

    #[test]
    fn sticky_higher_generation_claim_is_kept() {
        let partitions = counts(&[("t", 2)]);
        let members = [
            owning(member("a", &["t"]), 3, &[("t", 0)]),
            owning(member("b", &["t"]), 2, &[("t", 0), ("t", 1)]),
        ];
        let got = CooperativeSticky.assign(&members, &partitions);
        assert_eq!(
            got,
            expect(&[("a", &[("t", 0)]), ("b", &[("t", 1)])]),
            "a's newer claim wins, b keeps the other"
        );
    }

    #[test]
    fn sticky_drops_stale_claims() {
        let partitions = counts(&[("t", 2), ("u", 2)]);
        let members = [
            // a no longer subscribes to u; t-7 no longer exists; x is gone.
            owning(
                member("a", &["t"]),
                1,
                &[("t", 0), ("t", 7), ("u", 0), ("x", 0)],
            ),
            owning(member("b", &["t", "u"]), 1, &[("u", 1)]),
        ];
        let got = CooperativeSticky.assign(&members, &partitions);
        // a keeps t-0 and gets t-1 (nobody holds it); u-0 is b's next
        // round, once a has revoked it.
        let want = expect(&[("a", &[("t", 0), ("t", 1)]), ("b", &[("u", 1)])]);
        assert_eq!(got, want);
        let round2 = CooperativeSticky.assign(&next_round(&members, &got, 2), &partitions);
        let want2 = expect(&[("a", &[("t", 0), ("t", 1)]), ("b", &[("u", 0), ("u", 1)])]);
        assert_eq!(round2, want2);
    }

    #[test]
    fn sticky_differing_subscriptions_javadoc_example() {
        // StickyAssignor javadoc: C0 {t0}, C1 {t0, t1}, C2 {t0, t1, t2}
        // with 1, 2 and 3 partitions; round robin gives C2 four.
        let members = [
            member("C0", &["t0"]),
            member("C1", &["t0", "t1"]),
            member("C2", &["t0", "t1", "t2"]),
        ];
        let partitions = counts(&[("t0", 1), ("t1", 2), ("t2", 3)]);
        let got = CooperativeSticky.assign(&members, &partitions);
        let want = expect(&[
            ("C0", &[("t0", 0)]),
            ("C1", &[("t1", 0), ("t1", 1)]),
            ("C2", &[("t2", 0), ("t2", 1), ("t2", 2)]),
        ]);
        assert_eq!(got, want);
    }

    #[test]
    fn sticky_balances_through_chains() {
        // a {t0}, b {t0, t1}, c {t1}, all of t0 at b and all of t1 at c:
        // c can only give to b, and b to a, yet 2/2/2 is reachable.
        let partitions = counts(&[("t0", 3), ("t1", 3)]);
        let members = [
            member("a", &["t0"]),
            owning(
                member("b", &["t0", "t1"]),
                1,
                &[("t0", 0), ("t0", 1), ("t0", 2)],
            ),
            owning(member("c", &["t1"]), 1, &[("t1", 0), ("t1", 1), ("t1", 2)]),
        ];
        // The fewest moves: two of b's t0 partitions to a, one of c's t1
        // partitions to b. All three are held, so round 1 only revokes.
        let round1 = CooperativeSticky.assign(&members, &partitions);
        assert_eq!(
            round1,
            expect(&[
                ("a", &[]),
                ("b", &[("t0", 0)]),
                ("c", &[("t1", 0), ("t1", 1)]),
            ])
        );
        let round2 = CooperativeSticky.assign(&next_round(&members, &round1, 2), &partitions);
        assert_eq!(
            round2,
            expect(&[
                ("a", &[("t0", 1), ("t0", 2)]),
                ("b", &[("t0", 0), ("t1", 2)]),
                ("c", &[("t1", 0), ("t1", 1)]),
            ])
        );
    }

    #[test]
    fn sticky_copes_with_a_large_uneven_group() {
        // 60 members over 12 topics of 50 partitions, each member on a
        // different window of topics; then 10 members leave and 10 join.
        let topics: Vec<String> = (0..12).map(|t| format!("topic-{t:02}")).collect();
        let partitions: BTreeMap<String, i32> = topics.iter().map(|t| (t.clone(), 50)).collect();
        let window = |i: usize| -> Vec<&str> {
            (0..1 + i % 5)
                .map(|k| topics[(i + k) % 12].as_str())
                .collect()
        };
        let members: Vec<Member> = (0..60)
            .map(|i| member(&format!("m{i:03}"), &window(i)))
            .collect();
        let round1 = CooperativeSticky.assign(&members, &partitions);
        let settled = next_round(&members, &round1, 1);
        let mut changed: Vec<Member> = settled[10..].to_vec();
        changed.extend((60..70).map(|i| member(&format!("m{i:03}"), &window(i))));
        let round2 = CooperativeSticky.assign(&changed, &partitions);
        let round3 = CooperativeSticky.assign(&next_round(&changed, &round2, 2), &partitions);
        let total: usize = round3.values().map(Vec::len).sum();
        assert_eq!(total, 600);
    }

    // ---- properties ----

    const TOPICS: [&str; 4] = ["t0", "t1", "t2", "gone"];

    /// A group: members with random subscriptions (from `t0`..`t2` and a
    /// topic without metadata), some static, with random claims and
    /// generations; and partition counts for `t0`..`t2` (0 = no metadata).
    fn group() -> impl Strategy<Value = (Vec<Member>, BTreeMap<String, i32>)> {
        let counts = prop::collection::vec(0i32..7, 3);
        let member = (
            0u32..1000,
            prop::option::of(0u32..6),
            prop::collection::btree_set(0usize..4, 0..4),
            prop::collection::vec((0usize..4, 0i32..8), 0..6),
            prop_oneof![Just(-1), 1i32..4],
        );
        (counts, prop::collection::vec(member, 1..7)).prop_map(|(counts, raw)| {
            let partitions: BTreeMap<String, i32> = TOPICS
                .iter()
                .zip(counts)
                .filter(|&(_, n)| n > 0)
                .map(|(t, n)| ((*t).to_owned(), n))
                .collect();
            let mut instances = BTreeSet::new();
            let members = raw
                .into_iter()
                .enumerate()
                .map(|(i, (salt, instance, topics, owned, generation))| Member {
                    member_id: format!("m{salt}-{i}"),
                    instance_id: instance
                        .filter(|k| instances.insert(*k))
                        .map(|k| format!("i{k}")),
                    topics: topics.iter().map(|&t| TOPICS[t].to_owned()).collect(),
                    owned: owned
                        .into_iter()
                        .map(|(t, p)| (TOPICS[t].to_owned(), p))
                        .collect(),
                    generation,
                    rack: None,
                })
                .collect();
            (members, partitions)
        })
    }

    /// Every member has an entry with sorted partitions, no partition is
    /// given twice, and each goes to a subscriber of its topic.
    fn check_valid(
        members: &[Member],
        partitions: &BTreeMap<String, i32>,
        got: &BTreeMap<String, Vec<TopicPartition>>,
    ) -> Result<BTreeSet<TopicPartition>, TestCaseError> {
        prop_assert_eq!(got.len(), members.len());
        let mut seen = BTreeSet::new();
        for m in members {
            let list = &got[&m.member_id];
            prop_assert!(list.is_sorted(), "{} unsorted: {:?}", m.member_id, list);
            for tp in list {
                prop_assert!(seen.insert(tp.clone()), "{:?} assigned twice", tp);
                prop_assert!(m.subscribes(&tp.0), "{:?} to {}", tp, m.member_id);
                prop_assert!((0..partitions[&tp.0]).contains(&tp.1), "{:?}", tp);
            }
        }
        Ok(seen)
    }

    /// Every partition of a subscribed topic is assigned.
    fn check_complete(
        members: &[Member],
        partitions: &BTreeMap<String, i32>,
        assigned: &BTreeSet<TopicPartition>,
    ) -> Result<(), TestCaseError> {
        for (topic, &n) in partitions {
            if members.iter().any(|m| m.subscribes(topic)) {
                for p in 0..n {
                    prop_assert!(
                        assigned.contains(&(topic.clone(), p)),
                        "{}-{} unassigned",
                        topic,
                        p
                    );
                }
            }
        }
        Ok(())
    }

    /// The topics with metadata each member subscribes to.
    fn eligible(members: &[Member], partitions: &BTreeMap<String, i32>) -> Vec<BTreeSet<String>> {
        members
            .iter()
            .map(|m| {
                m.topics
                    .iter()
                    .filter(|t| partitions.contains_key(*t))
                    .cloned()
                    .collect()
            })
            .collect()
    }

    /// Within one partition when subscriptions are equal; otherwise no
    /// partition could move straight to a subscriber with two fewer (Java's
    /// `isBalanced`), nor through a chain of moves.
    fn check_balanced(
        members: &[Member],
        partitions: &BTreeMap<String, i32>,
        got: &BTreeMap<String, Vec<TopicPartition>>,
    ) -> Result<(), TestCaseError> {
        let load = |m: &Member| got[&m.member_id].len();
        let eligible = eligible(members, partitions);
        if eligible.windows(2).all(|w| w[0] == w[1]) {
            let max = members.iter().map(load).max().unwrap_or(0);
            let min = members.iter().map(load).min().unwrap_or(0);
            prop_assert!(max - min <= 1, "{:?}", got);
        }
        // reach[u][v]: u can pass a partition to v, directly or through
        // other members (transitive closure).
        let n = members.len();
        let mut reach = vec![vec![false; n]; n];
        for (u, holder) in members.iter().enumerate() {
            for tp in &got[&holder.member_id] {
                for (v, other) in members.iter().enumerate() {
                    if other.subscribes(&tp.0) {
                        prop_assert!(
                            load(other) + 2 > load(holder),
                            "{:?} could move: {:?}",
                            tp,
                            got
                        );
                        reach[u][v] = true;
                    }
                }
            }
        }
        for k in 0..n {
            for u in 0..n {
                for v in 0..n {
                    reach[u][v] = reach[u][v] || (reach[u][k] && reach[k][v]);
                }
            }
        }
        for u in 0..n {
            for v in 0..n {
                prop_assert!(
                    !reach[u][v] || load(&members[v]) + 2 > load(&members[u]),
                    "{} could pass to {}: {:?}",
                    members[u].member_id,
                    members[v].member_id,
                    got
                );
            }
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn range_is_complete_and_balanced_per_topic((members, partitions) in group()) {
            let got = Range.assign(&members, &partitions);
            let assigned = check_valid(&members, &partitions, &got)?;
            check_complete(&members, &partitions, &assigned)?;
            for topic in partitions.keys() {
                let per_member: Vec<usize> = members
                    .iter()
                    .filter(|m| m.subscribes(topic))
                    .map(|m| got[&m.member_id].iter().filter(|tp| &tp.0 == topic).count())
                    .collect();
                let max = per_member.iter().max().copied().unwrap_or(0);
                let min = per_member.iter().min().copied().unwrap_or(0);
                prop_assert!(max - min <= 1, "{} unbalanced: {:?}", topic, got);
            }
            let reversed: Vec<Member> = members.iter().rev().cloned().collect();
            prop_assert_eq!(Range.assign(&reversed, &partitions), got);
        }

        #[test]
        fn roundrobin_is_complete_and_balanced((members, partitions) in group()) {
            let got = RoundRobin.assign(&members, &partitions);
            let assigned = check_valid(&members, &partitions, &got)?;
            check_complete(&members, &partitions, &assigned)?;
            let eligible = eligible(&members, &partitions);
            if eligible.windows(2).all(|w| w[0] == w[1]) {
                let max = got.values().map(Vec::len).max().unwrap_or(0);
                let min = got.values().map(Vec::len).min().unwrap_or(0);
                prop_assert!(max - min <= 1, "{:?}", got);
            }
            let reversed: Vec<Member> = members.iter().rev().cloned().collect();
            prop_assert_eq!(RoundRobin.assign(&reversed, &partitions), got);
        }

        /// Round 1 from arbitrary claims is valid but may withhold; round 2
        /// (everyone owning what round 1 gave it) keeps all of round 1 and
        /// completes it, balanced; round 3 changes nothing.
        #[test]
        fn sticky_converges_in_two_rounds((members, partitions) in group()) {
            let round1 = CooperativeSticky.assign(&members, &partitions);
            check_valid(&members, &partitions, &round1)?;
            let reversed: Vec<Member> = members.iter().rev().cloned().collect();
            prop_assert_eq!(&CooperativeSticky.assign(&reversed, &partitions), &round1);

            let members2 = next_round(&members, &round1, 10);
            let round2 = CooperativeSticky.assign(&members2, &partitions);
            let assigned = check_valid(&members, &partitions, &round2)?;
            check_complete(&members, &partitions, &assigned)?;
            check_balanced(&members, &partitions, &round2)?;
            for m in &members {
                for tp in &round1[&m.member_id] {
                    prop_assert!(round2[&m.member_id].contains(tp), "round 2 moved {:?}", tp);
                }
            }

            let round3 = CooperativeSticky.assign(&next_round(&members, &round2, 11), &partitions);
            prop_assert_eq!(round3, round2);
        }

        /// When a member joins a settled group, the round only revokes:
        /// nobody gets a partition someone else holds, the newcomer only
        /// what nobody held. The next round completes it.
        #[test]
        fn sticky_join_only_moves_from_the_overloaded((members, partitions) in group()) {
            // Settle the group first, then add a newcomer subscribing to all.
            let round1 = CooperativeSticky.assign(&members, &partitions);
            let settled = CooperativeSticky.assign(&next_round(&members, &round1, 10), &partitions);
            let mut joined = next_round(&members, &settled, 11);
            joined.push(member("zz-new", &["t0", "t1", "t2"]));
            let got = CooperativeSticky.assign(&joined, &partitions);
            check_valid(&joined, &partitions, &got)?;
            for tp in &got["zz-new"] {
                prop_assert!(!settled.values().flatten().any(|held| held == tp), "{:?} still held", tp);
            }
            for m in &members {
                let before = &settled[&m.member_id];
                let after = &got[&m.member_id];
                prop_assert!(after.iter().all(|tp| before.contains(tp)), "{} gained while others revoke", m.member_id);
            }
            let round2 = CooperativeSticky.assign(&next_round(&joined, &got, 12), &partitions);
            let assigned = check_valid(&joined, &partitions, &round2)?;
            check_complete(&joined, &partitions, &assigned)?;
            check_balanced(&joined, &partitions, &round2)?;
        }
    }
}
