//! Property tests of every scheduler through the public API (`new_scheduler`):
//!
//! * over many picks each real's share is within 2 percentage points of its weight share
//!   (of an equal share for the unweighted rr and lc), with a realistic connection lifecycle for
//!   the connection-counting schedulers and many random clients / destinations for the hashing
//!   ones;
//! * a weight-0 or overloaded real is never picked, also across rebuilds that flip flags;
//! * dh, sh and mh are deterministic: two instances give the same picks for the same input;
//! * the indexed least-connection family picks exactly what the kernel's linear scan picks
//!   (up to 48 reals: both the small-set scan and the tree);
//! * a caller that skips `rebuild` cannot make a scheduler panic or return a bad index.

use proptest::prelude::*;
use rvs_core::model::{Protocol, SchedFlags, SchedulerKind};
use rvs_core::scheduler::{PickRequest, RealState, SchedulerParams, new_scheduler};
use rvs_core::time::Timestamp;
use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};

/// Connections stay open for this many later picks (least-connection lifecycle).
const LIFETIME: usize = 1000;
/// Picks per share measurement.
const PICKS: usize = 20_000;

fn reals(weights: &[u32]) -> Vec<RealState> {
    (0..weights.len())
        .map(|i| {
            RealState::new(
                SocketAddr::from(([10, 1, 0, i as u8 + 1], 8080)),
                weights[i],
            )
        })
        .collect()
}

/// A small deterministic generator for client and destination addresses.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 16
    }

    fn request(&mut self, now_ms: u64) -> PickRequest {
        let (c, d) = (self.next(), self.next());
        PickRequest {
            protocol: Protocol::Tcp,
            client: SocketAddr::from((Ipv4Addr::from(c as u32), (c >> 32) as u16)),
            dest: SocketAddr::from((Ipv4Addr::from(d as u32), 80)),
            now: Timestamp::from_millis(now_ms),
        }
    }
}

fn params(flags: SchedFlags, seed: u64) -> SchedulerParams {
    SchedulerParams {
        flags,
        maglev_table_size: 65537,
        seed,
    }
}

/// Run picks with the connection lifecycle until `picks` connections were placed; return the
/// picks per real. Only the hashing schedulers without fallback (dh, sh, mh) may answer `None`
/// (the client hashes to an overloaded real); those attempts are not counted.
fn simulate(kind: SchedulerKind, r: &mut [RealState], picks: usize, seed: u64) -> Vec<usize> {
    let mut s = new_scheduler(kind, params(SchedFlags::default(), seed));
    s.rebuild(r);
    let mut rng = Lcg(seed);
    let mut open: VecDeque<usize> = VecDeque::new();
    let mut counts = vec![0; r.len()];
    let mut placed = 0;
    for n in 0.. {
        if placed == picks {
            break;
        }
        if open.len() == LIFETIME {
            let done = open.pop_front().expect("an open connection");
            r[done].active -= 1;
            s.counts_changed(r, done);
        }
        let Some(i) = s.pick(r, &rng.request(n as u64)) else {
            let hashing = matches!(
                kind,
                SchedulerKind::Dh | SchedulerKind::Sh | SchedulerKind::Mh
            );
            assert!(hashing && n < 100 * picks, "{kind} found no real");
            continue;
        };
        assert!(r[i].available(), "{kind} picked unavailable real {i}");
        counts[i] += 1;
        placed += 1;
        r[i].active += 1;
        s.counts_changed(r, i);
        open.push_back(i);
    }
    counts
}

/// Schedulers whose share follows weights (rr and lc: equal shares among available reals).
const SHARE_KINDS: [SchedulerKind; 12] = [
    SchedulerKind::Rr,
    SchedulerKind::Wrr,
    SchedulerKind::Lc,
    SchedulerKind::Wlc,
    SchedulerKind::Sed,
    SchedulerKind::Nq,
    SchedulerKind::Lblc,
    SchedulerKind::Lblcr,
    SchedulerKind::Dh,
    SchedulerKind::Sh,
    SchedulerKind::Mh,
    SchedulerKind::Twos,
];

fn check_shares(kind: SchedulerKind, weights: &[u32], unavailable: &[bool], seed: u64) {
    let mut r = reals(weights);
    for (x, &u) in r.iter_mut().zip(unavailable) {
        x.overloaded = u;
    }
    if !r.iter().any(RealState::available) {
        return;
    }
    let counts = simulate(kind, &mut r, PICKS, seed);
    let unweighted = matches!(kind, SchedulerKind::Rr | SchedulerKind::Lc);
    let share_of = |x: &RealState| match (x.available(), unweighted) {
        (false, _) => 0.0,
        (true, true) => 1.0,
        (true, false) => x.weight as f64,
    };
    let total: f64 = r.iter().map(share_of).sum();
    for (i, x) in r.iter().enumerate() {
        let want = share_of(x) / total;
        let got = counts[i] as f64 / PICKS as f64;
        assert!(
            (got - want).abs() <= 0.02,
            "{kind}: real {i} (weight {}, available {}) got {got:.4}, want {want:.4}; weights {weights:?}",
            x.weight,
            x.available()
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn shares_follow_weights(
        weights in prop::collection::vec(0u32..=10, 1..=8),
        unavailable in prop::collection::vec(prop::bool::weighted(0.15), 8),
        seed in any::<u64>(),
    ) {
        for kind in SHARE_KINDS {
            check_shares(kind, &weights, &unavailable, seed);
        }
    }

    #[test]
    fn never_picks_weight_zero_or_overloaded(
        weights in prop::collection::vec(0u32..=4, 0..=12),
        flips in prop::collection::vec((any::<u8>(), any::<bool>()), 0..20),
        seed in any::<u64>(),
    ) {
        let flags = SchedFlags { sh_fallback: seed & 1 == 0, sh_port: seed & 2 == 0, mh_fallback: seed & 4 == 0, mh_port: seed & 8 == 0 };
        for kind in SchedulerKind::ALL {
            let mut r = reals(&weights);
            let mut s = new_scheduler(kind, params(flags, seed));
            s.rebuild(&r);
            let mut rng = Lcg(seed);
            for (step, &(which, overloaded)) in flips.iter().enumerate() {
                if !r.is_empty() {
                    let k = which as usize % r.len();
                    r[k].overloaded = overloaded;
                    s.rebuild(&r);
                }
                for n in 0..50 {
                    let req = rng.request((step * 50 + n) as u64 * 1000);
                    match s.pick(&r, &req) {
                        Some(i) => {
                            prop_assert!(r[i].available(), "{} picked unavailable real {}", kind, i);
                            r[i].active += 1;
                            s.counts_changed(&r, i);
                        }
                        None => prop_assert!(
                            kind == SchedulerKind::Ovf || is_hashing(kind, flags) || !r.iter().any(RealState::available),
                            "{} gave None with an available real", kind
                        ),
                    }
                }
            }
        }
    }

    #[test]
    fn hashing_is_deterministic(
        weights in prop::collection::vec(0u32..=6, 1..=10),
        overloaded in prop::collection::vec(any::<bool>(), 10),
        flag_bits in 0u8..16,
        seed in any::<u64>(),
    ) {
        let flags = SchedFlags { sh_fallback: flag_bits & 1 != 0, sh_port: flag_bits & 2 != 0, mh_fallback: flag_bits & 4 != 0, mh_port: flag_bits & 8 != 0 };
        let mut r = reals(&weights);
        for (x, &o) in r.iter_mut().zip(&overloaded) {
            x.overloaded = o;
        }
        for kind in [SchedulerKind::Dh, SchedulerKind::Sh, SchedulerKind::Mh] {
            // Different seeds: hashing must not depend on the randomness seed.
            let mut a = new_scheduler(kind, params(flags, seed));
            let mut b = new_scheduler(kind, params(flags, !seed));
            a.rebuild(&r);
            b.rebuild(&r);
            let mut rng = Lcg(seed);
            let reqs: Vec<PickRequest> = (0..300).map(|n| rng.request(n)).collect();
            let pa: Vec<_> = reqs.iter().map(|q| a.pick(&r, q)).collect();
            let pb: Vec<_> = reqs.iter().map(|q| b.pick(&r, q)).collect();
            prop_assert_eq!(&pa, &pb);
            // And repeating a request gives the same answer.
            let again: Vec<_> = reqs.iter().map(|q| a.pick(&r, q)).collect();
            prop_assert_eq!(pa, again);
        }
    }

    #[test]
    fn least_connection_family_matches_the_kernel_scan(
        weights in prop::collection::vec(0u32..=5, 1..=48),
        ops in prop::collection::vec((any::<u8>(), 0u32..3, 0u32..600), 1..200),
    ) {
        for kind in [SchedulerKind::Lc, SchedulerKind::Wlc, SchedulerKind::Sed, SchedulerKind::Nq, SchedulerKind::Ovf] {
            let mut r = reals(&weights);
            let mut s = new_scheduler(kind, SchedulerParams::default());
            s.rebuild(&r);
            let mut rng = Lcg(1);
            for &(which, active, inactive) in &ops {
                let k = which as usize % r.len();
                r[k].active = active;
                r[k].inactive = inactive;
                s.counts_changed(&r, k);
                prop_assert_eq!(s.pick(&r, &rng.request(0)), kernel_scan(kind, &r), "{}", kind);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// A caller that skips `rebuild` (passes another slice than the one rebuilt) must not make
    /// any scheduler panic or return an index that is out of range or unavailable.
    #[test]
    fn stale_slices_never_panic(
        rebuilt in prop::collection::vec(0u32..=3, 0..=20),
        passed in prop::collection::vec(0u32..=3, 0..=20),
        seed in any::<u64>(),
    ) {
        for kind in SchedulerKind::ALL {
            let mut s = new_scheduler(kind, params(SchedFlags::default(), seed));
            s.rebuild(&reals(&rebuilt));
            let mut r = reals(&passed);
            let mut rng = Lcg(seed);
            for n in 0..40 {
                if let Some(i) = s.pick(&r, &rng.request(n * 1000)) {
                    prop_assert!(i < r.len() && r[i].available(), "{} gave {}", kind, i);
                    r[i].active += 1;
                    s.counts_changed(&r, i);
                }
                s.counts_changed(&r, n as usize);
            }
        }
    }
}

fn is_hashing(kind: SchedulerKind, flags: SchedFlags) -> bool {
    match kind {
        SchedulerKind::Dh => true,
        SchedulerKind::Sh => !flags.sh_fallback,
        SchedulerKind::Mh => !flags.mh_fallback,
        _ => false,
    }
}

/// The kernel's definitions as a linear scan (first real wins ties).
fn kernel_scan(kind: SchedulerKind, r: &[RealState]) -> Option<usize> {
    let avail = (0..r.len()).filter(|&i| r[i].available());
    // Compare a/b < c/d as a*d < c*b.
    let less = |(a, b): (u64, u64), (c, d): (u64, u64)| {
        (a as u128) * (d as u128) < (c as u128) * (b as u128)
    };
    let min_by = |cost: &dyn Fn(&RealState) -> (u64, u64)| {
        let mut best: Option<usize> = None;
        for i in (0..r.len()).filter(|&i| r[i].available()) {
            if best.is_none_or(|b| less(cost(&r[i]), cost(&r[b]))) {
                best = Some(i);
            }
        }
        best
    };
    match kind {
        SchedulerKind::Lc => min_by(&|x| (x.overhead(), 1)),
        SchedulerKind::Wlc => min_by(&|x| (x.overhead(), x.weight as u64)),
        SchedulerKind::Sed => min_by(&|x| (x.active as u64 + 1, x.weight as u64)),
        SchedulerKind::Nq => {
            let mut avail = avail;
            avail
                .find(|&i| r[i].active == 0)
                .or_else(|| min_by(&|x| (x.active as u64 + 1, x.weight as u64)))
        }
        SchedulerKind::Ovf => {
            let mut best: Option<usize> = None;
            for i in avail.filter(|&i| r[i].active < r[i].weight) {
                if best.is_none_or(|b| r[i].weight > r[b].weight) {
                    best = Some(i);
                }
            }
            best
        }
        _ => unreachable!("not a least-connection scheduler"),
    }
}

#[test]
fn fo_always_takes_the_heaviest_available() {
    let mut r = reals(&[3, 7, 7, 5]);
    let counts = simulate(SchedulerKind::Fo, &mut r, 500, 1);
    assert_eq!(counts, vec![0, 500, 0, 0]);
}
