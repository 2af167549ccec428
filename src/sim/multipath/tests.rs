//! Multipath simulator runs: a few seeds of each scenario kind, replay, and a long sweep.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use super::scenario::KINDS;
use super::*;

/// Runs `seed`; a broken invariant or a panic fails with the seed and how to replay it.
fn run_seed(seed: u64) -> Stats {
    let scenario = Scenario::random(seed);
    let replay =
        format!("replay: SPREAD_MPSIM_SEED={seed} cargo test --release --lib multipath_replay -- --ignored");
    match catch_unwind(AssertUnwindSafe(|| run(seed, &scenario))) {
        Ok(Ok(stats)) => stats,
        Ok(Err(failure)) => panic!("seed {seed}: {failure}\n{replay}\n{scenario:?}"),
        Err(_) => panic!("seed {seed}: panicked\n{replay}\n{scenario:?}"),
    }
}

/// The seeds `count` seeds of `kind` from `first` on (a seed's kind is `KINDS[seed % 7]`).
fn seeds_of(kind: Kind, first: u64, count: u64) -> impl Iterator<Item = u64> {
    let k = KINDS.iter().position(|&x| x == kind).expect("a kind") as u64;
    (0..count).map(move |j| (first + j) * KINDS.len() as u64 + k)
}

#[test]
fn one_network_fails_and_comes_back() {
    for seed in seeds_of(Kind::Outage, 0, 2) {
        let stats = run_seed(seed);
        assert!(stats.cut > 0 && stats.link_changes >= 2, "{stats:?}");
    }
}

#[test]
fn cables_pulled_one_after_the_other() {
    for seed in seeds_of(Kind::CablePulls, 0, 2) {
        let stats = run_seed(seed);
        assert!(stats.cut > 0 && stats.link_changes >= 4, "{stats:?}");
    }
}

#[test]
fn a_network_seconds_behind_sends_stale_tokens() {
    for seed in seeds_of(Kind::Lag, 0, 2) {
        let stats = run_seed(seed);
        assert!(stats.network.duplicated > 0, "{stats:?}");
        // The lagging network's copies of data the rings had stop at the link layers.
        assert!(
            stats.late_link > 0 && stats.ring.duplicate_packets == 0,
            "{stats:?}"
        );
        eprintln!(
            "lag seed {seed}: {} stale token copies dropped by link layers, {} by rings; \
             {} data copies the rings had dropped by link layers, {} duplicate packets reached rings",
            stats.stale_link, stats.stale_ring, stats.late_link, stats.ring.duplicate_packets
        );
    }
}

#[test]
fn one_way_loss() {
    for seed in seeds_of(Kind::OneWay, 0, 2) {
        let stats = run_seed(seed);
        assert!(stats.cut > 0 && stats.link_changes >= 2, "{stats:?}");
    }
}

#[test]
fn flapping_at_1hz() {
    for seed in seeds_of(Kind::Flapping, 0, 1) {
        let stats = run_seed(seed);
        eprintln!(
            "flapping seed {seed}: at most {} state changes of one link",
            stats.flapping_changes
        );
    }
}

#[test]
fn mixed_faults_with_a_lossy_healthy_network() {
    for seed in seeds_of(Kind::Mix, 0, 2) {
        let stats = run_seed(seed);
        assert!(stats.network.lost > 0, "{stats:?}");
    }
}

#[test]
fn control_every_cable_of_one_daemon_out() {
    for seed in seeds_of(Kind::Isolation, 0, 2) {
        let stats = run_seed(seed);
        assert!(stats.membership.gathers > 0, "{stats:?}");
    }
}

#[test]
fn a_seed_replays_exactly() {
    let scenario = Scenario::random(3);
    assert_eq!(scenario, Scenario::random(3));
    assert_eq!(run(3, &scenario), run(3, &scenario));
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// Long sweeps and replays: `SPREAD_MPSIM_FIRST_SEED=s SPREAD_MPSIM_SEEDS=n`, or
/// `SPREAD_MPSIM_SEED=s` for one seed (best in a release build).
#[test]
#[ignore]
fn multipath_replay() {
    let (first, count) = match env_u64("SPREAD_MPSIM_SEED") {
        Some(seed) => (seed, 1),
        None => (
            env_u64("SPREAD_MPSIM_FIRST_SEED").unwrap_or(0),
            env_u64("SPREAD_MPSIM_SEEDS").unwrap_or(700),
        ),
    };
    let (mut late, mut ring_duplicates) = (0, 0);
    let started = Instant::now();
    let (mut sim_time, mut messages, mut stale, mut changes) = (Duration::ZERO, 0, 0, 0);
    let (mut busy, mut idle, mut reenable, mut flapping, mut flapping_return) =
        (Duration::ZERO, Duration::ZERO, Duration::ZERO, 0, Duration::ZERO);
    for seed in first..first + count {
        let stats = run_seed(seed);
        sim_time += stats.sim_time;
        messages += stats.messages;
        stale += stats.stale_link + stats.stale_ring;
        changes += stats.link_changes;
        late += stats.late_link;
        ring_duplicates += stats.ring.duplicate_packets;
        busy = busy.max(stats.busy_detection);
        idle = idle.max(stats.idle_detection);
        reenable = reenable.max(stats.reenable);
        flapping = flapping.max(stats.flapping_changes);
        flapping_return = flapping_return.max(stats.flapping_return);
    }
    eprintln!(
        "multipath sweep: seeds {first}..{}, {sim_time:?} simulated, {messages} messages, {stale} stale \
         tokens dropped, {changes} link state changes; slowest detection busy {busy:?} idle {idle:?}, \
         slowest re-enable {reenable:?}, most changes of a flapping link {flapping}, slowest return \
         after flapping {flapping_return:?}; in {:?}",
        first + count,
        started.elapsed()
    );
    eprintln!(
        "multipath sweep: {late} copies of data the rings had dropped by link layers, \
         {ring_duplicates} duplicate packets reached rings"
    );
}

#[test]
fn a_damped_link_on_a_lossy_network_comes_back_once_the_flapping_stops() {
    // The first flapping scenario on a network losing 1 %, out 2 s of every 4: its links come
    // back between outages, fail again, and are damped.
    let seed = seeds_of(Kind::Flapping, 0, 100)
        .find(|&seed| {
            let s = Scenario::random(seed);
            let f = s.flapping[0];
            s.conditions[f.network as usize].faults.loss > 0.0 && f.off == Duration::from_secs(2)
        })
        .expect("a lossy, slowly flapping scenario");
    let stats = run_seed(seed);
    eprintln!(
        "lossy flapping seed {seed}: back {:?} after the flapping stopped, {} changes during it",
        stats.flapping_return, stats.flapping_changes
    );
    // Its last outage ended 2 s before the flapping did: the damping period counts from then.
    let s = Scenario::random(seed);
    let good_since_until = s.flapping[0].period - s.flapping[0].off;
    assert!(
        stats.flapping_return + good_since_until >= s.link_params.damping_period,
        "{stats:?}"
    );
}
