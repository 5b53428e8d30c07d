//! Measures Maglev disruption: share of the table that moves between the remaining reals when
//! one of N equal-weight reals is removed, over random sets (`cargo run --release -p rvs-core
//! --example maglev_churn -- N MULT SETS`, MULT 0 = the
//! default size 65537).
use rvs_core::maglev::{is_prime, survivors_moved};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().unwrap())
        .collect();
    let (n, mult, sets) = (args[0] as usize, args[1] as u32, args[2]);
    // MULT = 0: the default table size 65537.
    let size = if mult == 0 {
        65537
    } else {
        (mult * n as u32..).find(|&p| is_prime(p)).unwrap()
    };
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut churn = Vec::new();
    for _ in 0..sets {
        let all: Vec<SocketAddr> = (0..n)
            .map(|_| {
                let x = next();
                SocketAddr::new(
                    IpAddr::V4(Ipv4Addr::from(x as u32)),
                    1 + (x >> 40) as u16 % 60000,
                )
            })
            .collect();
        let gone = next() as usize % n;
        let moved = survivors_moved(&all, gone, size).unwrap();
        churn.push(moved as f64 / f64::from(size));
    }
    churn.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let q = |p: f64| churn[((churn.len() - 1) as f64 * p) as usize] * 100.0;
    println!(
        "n {n} size {size}: moved between survivors % median {:.2} p90 {:.2} max {:.2} (limit {:.2})",
        q(0.5),
        q(0.9),
        q(1.0),
        100.0 / n as f64 + 1.0
    );
}
