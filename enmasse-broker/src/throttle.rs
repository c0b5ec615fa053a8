//! Slows down a peer that keeps failing to authenticate: after a few failures, each new connection
//! from its address waits before its SASL exchange begins, longer with every failure, so guessing
//! passwords is slow while an honest client that mistyped once is not held up.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

/// Failures forgiven before any delay.
pub const FREE_FAILURES: u32 = 3;
/// The first delay, doubled with every further failure.
pub const FIRST_DELAY: Duration = Duration::from_millis(250);
/// The longest delay.
pub const MAX_DELAY: Duration = Duration::from_secs(8);
/// Failures older than this are forgotten.
pub const MEMORY: Duration = Duration::from_secs(300);
/// Peers remembered at most; beyond it the oldest are forgotten.
const MAX_PEERS: usize = 10_000;

#[derive(Clone, Copy, Debug)]
struct Failures {
    count: u32,
    last: Instant,
}

/// Authentication failures by peer address.
#[derive(Debug, Default)]
pub struct Throttle {
    peers: Mutex<HashMap<IpAddr, Failures>>,
}

impl Throttle {
    /// How long a new connection from `peer` waits before authenticating.
    pub fn delay(&self, peer: IpAddr, now: Instant) -> Duration {
        let peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        match peers.get(&peer) {
            Some(f) if now.duration_since(f.last) < MEMORY && f.count >= FREE_FAILURES => {
                let doublings = (f.count - FREE_FAILURES).min(16);
                FIRST_DELAY.saturating_mul(1 << doublings).min(MAX_DELAY)
            }
            _ => Duration::ZERO,
        }
    }

    /// Records a failed authentication from `peer`.
    pub fn failed(&self, peer: IpAddr, now: Instant) {
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        if peers.len() >= MAX_PEERS {
            peers.retain(|_, f| now.duration_since(f.last) < MEMORY);
            if peers.len() >= MAX_PEERS {
                peers.clear();
            }
        }
        let failures = peers.entry(peer).or_insert(Failures { count: 0, last: now });
        if now.duration_since(failures.last) >= MEMORY {
            failures.count = 0;
        }
        failures.count = failures.count.saturating_add(1);
        failures.last = now;
    }

    /// Forgets `peer`'s failures after it authenticated.
    pub fn succeeded(&self, peer: IpAddr) {
        self.peers.lock().unwrap_or_else(|p| p.into_inner()).remove(&peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn a_few_failures_cost_nothing_and_more_cost_more_each_time() {
        let throttle = Throttle::default();
        let now = Instant::now();
        for _ in 0..FREE_FAILURES {
            assert_eq!(throttle.delay(PEER, now), Duration::ZERO);
            throttle.failed(PEER, now);
        }
        assert_eq!(throttle.delay(PEER, now), FIRST_DELAY);
        throttle.failed(PEER, now);
        assert_eq!(throttle.delay(PEER, now), FIRST_DELAY * 2);
        for _ in 0..20 {
            throttle.failed(PEER, now);
        }
        assert_eq!(throttle.delay(PEER, now), MAX_DELAY);
    }

    #[test]
    fn failures_are_forgotten_after_a_success_or_a_while() {
        let throttle = Throttle::default();
        let now = Instant::now();
        for _ in 0..10 {
            throttle.failed(PEER, now);
        }
        assert_eq!(throttle.delay(PEER, now + MEMORY), Duration::ZERO);
        throttle.succeeded(PEER);
        assert_eq!(throttle.delay(PEER, now), Duration::ZERO);
    }

    #[test]
    fn other_peers_are_not_slowed_down() {
        let throttle = Throttle::default();
        let now = Instant::now();
        for _ in 0..10 {
            throttle.failed(PEER, now);
        }
        assert_eq!(
            throttle.delay(IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2)), now),
            Duration::ZERO
        );
    }
}
