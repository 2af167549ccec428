//! Membership simulator runs: fixed scenarios, replay, and a sweep over seeds.

use std::time::{Duration, Instant};

use super::*;

fn calm(daemons: usize, plan: Vec<(Duration, Action)>) -> Scenario {
    let mut s = Scenario::random(1);
    s.daemons = daemons;
    s.messages_per_daemon = 20;
    s.faults = Faults::NONE;
    s.active = Duration::from_millis(800);
    s.plan = plan;
    s
}

#[test]
fn daemons_merge_and_deliver_everything() {
    for daemons in 1..=4 {
        let stats = run(3, &calm(daemons, Vec::new())).unwrap_or_else(|v| panic!("{daemons} daemons: {v}"));
        assert_eq!(stats.messages, 20 * daemons);
        // Without faults each daemon installs its singleton, gathers once and installs the
        // merged configuration, which then stays.
        let n = daemons as u64;
        let (gathers, installs) = if n == 1 { (0, 1) } else { (n, 2 * n) };
        assert_eq!(
            (stats.membership.gathers, stats.membership.installs),
            (gathers, installs)
        );
    }
}

#[test]
fn partition_crash_and_restart_then_merge() {
    let ms = Duration::from_millis;
    let plan = vec![
        (ms(100), Action::Partition(vec![0, 0, 1, 1])),
        (ms(300), Action::Crash(1)),
        (ms(400), Action::Heal),
        (ms(500), Action::Restart(1)),
        (ms(600), Action::CutOneWay(2, 3)),
    ];
    let scenario = Scenario {
        faults: Faults {
            loss: 0.02,
            duplicate: 0.02,
            reorder: 0.05,
        },
        ..calm(4, plan)
    };
    let stats = run(5, &scenario).unwrap_or_else(|v| panic!("{v}"));
    assert_eq!((stats.crashes, stats.restarts), (1, 1));
    assert!(stats.membership.gathers > 0 && stats.network.lost > 0);
}

#[test]
fn a_seed_replays_exactly() {
    let scenario = Scenario::random(21);
    assert_eq!(scenario, Scenario::random(21));
    let first = run(21, &scenario);
    assert_eq!(first, run(21, &scenario));
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn sweep(first: u64, count: u64) {
    let started = Instant::now();
    let (mut messages, mut installs, mut crashes, mut stale) = (0, 0, 0, 0);
    let (mut sim_time, mut longest_settle) = (Duration::ZERO, Duration::ZERO);
    for seed in first..first + count {
        let scenario = Scenario::random(seed);
        match run(seed, &scenario) {
            Ok(stats) => {
                messages += stats.messages;
                installs += stats.membership.installs;
                crashes += stats.crashes;
                let m = stats.membership;
                stale += m.other_ring + m.stale_joins + m.stale_forms;
                sim_time += stats.sim_time;
                longest_settle = longest_settle.max(stats.settle_time);
            }
            Err(v) => panic!(
                "seed {seed}: {v}\nreplay: SPREAD_EVS_SEED={seed} cargo test --release evs_replay -- --ignored\n{scenario:?}"
            ),
        }
    }
    eprintln!(
        "evs sweep: seeds {first}..{}, {messages} messages, {installs} installs, {crashes} crashes, \
         {stale} stale packets dropped, {sim_time:?} simulated, longest settling {longest_settle:?}, in {:?}",
        first + count,
        started.elapsed()
    );
}

/// Seeds `cargo test` runs; each picks its own scenario (see [`Scenario::random`]).
const SWEEP_SEEDS: u64 = 1000;

#[test]
fn sweep_random_scenarios() {
    sweep(0, SWEEP_SEEDS);
}

/// Long sweeps and replays: `SPREAD_EVS_FIRST_SEED=s SPREAD_EVS_SEEDS=n`, or `SPREAD_EVS_SEED=s`
/// for one seed (best in a release build).
#[test]
#[ignore]
fn evs_replay() {
    match env_u64("SPREAD_EVS_SEED") {
        Some(seed) => sweep(seed, 1),
        None => sweep(
            env_u64("SPREAD_EVS_FIRST_SEED").unwrap_or(0),
            env_u64("SPREAD_EVS_SEEDS").unwrap_or(1000),
        ),
    }
}
