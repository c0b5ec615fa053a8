//! Slows down a peer that keeps failing to authenticate: after a few failures, each new connection
//! from its address waits before its SASL exchange begins, longer with every failure, so guessing
//! passwords is slow while an honest client that mistyped once is not held up.
//!
//! The waits of one address are in a row, not side by side: connections opened at once from a
//! failing address begin their exchanges one delay apart, so opening many in parallel buys no
//! more guesses. A connection that would wait longer than [`MAX_QUEUE`] is refused at once.
//! Other addresses are not slowed.
//!
//! The same holds per username, against guessing one user's password from many addresses: once
//! a username has failed a few times, each exchange that claims it waits its turn before its
//! password is checked. That user's own logins wait too, which is the price.

use std::{
    collections::HashMap,
    hash::Hash,
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
/// The longest a connection waits for its turn; one whose turn is further off is refused.
pub const MAX_QUEUE: Duration = Duration::from_secs(60);
/// Addresses (and usernames) remembered at most; beyond it the oldest are forgotten.
const MAX_PEERS: usize = 10_000;

#[derive(Clone, Copy, Debug)]
struct Failures {
    count: u32,
    last: Instant,
    /// When the address's next connection may begin, at the earliest.
    next: Instant,
}

/// Whether a new connection may authenticate, and when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// After this wait.
    After(Duration),
    /// Not at all: too many connections of its address wait already.
    Refused,
}

/// Authentication failures by peer address and by username.
#[derive(Debug, Default)]
pub struct Throttle {
    peers: Failing<IpAddr>,
    users: Failing<String>,
}

impl Throttle {
    /// How long one new connection from `peer` waits before authenticating, its failures as
    /// they are.
    pub fn delay(&self, peer: IpAddr, now: Instant) -> Duration {
        self.peers.delay(&peer, now)
    }

    /// Takes a turn for a new connection from `peer`.
    pub fn admit(&self, peer: IpAddr, now: Instant) -> Admission {
        self.peers.admit(&peer, now)
    }

    /// Records a failed authentication from `peer`.
    pub fn failed(&self, peer: IpAddr, now: Instant) {
        self.peers.failed(peer, now);
    }

    /// Forgets `peer`'s failures after it authenticated.
    pub fn succeeded(&self, peer: IpAddr) {
        self.peers.succeeded(&peer);
    }

    /// Takes a turn for an exchange that claims `username`, before its password is checked.
    pub fn admit_user(&self, username: &str, now: Instant) -> Admission {
        self.users.admit(username, now)
    }

    /// Records a failed authentication as `username`.
    pub fn failed_user(&self, username: &str, now: Instant) {
        self.users.failed(username.to_owned(), now);
    }

    /// Forgets `username`'s failures after it authenticated.
    pub fn succeeded_user(&self, username: &str) {
        self.users.succeeded(username);
    }
}

/// Failures by one kind of key.
#[derive(Debug)]
struct Failing<K> {
    map: Mutex<HashMap<K, Failures>>,
}

impl<K> Default for Failing<K> {
    fn default() -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Hash + Eq> Failing<K> {
    fn delay<Q>(&self, key: &Q, now: Instant) -> Duration
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.get(key).map_or(Duration::ZERO, |f| delay_of(f, now))
    }

    /// Takes a turn: the wait is the delay the key's failures call for, counted from the turn
    /// before it.
    fn admit<Q>(&self, key: &Q, now: Instant) -> Admission
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let Some(failures) = map.get_mut(key) else {
            return Admission::After(Duration::ZERO);
        };
        let delay = delay_of(failures, now);
        if delay.is_zero() {
            return Admission::After(Duration::ZERO);
        }
        let start = (now + delay).max(failures.next);
        let wait = start.duration_since(now);
        if wait > MAX_QUEUE {
            return Admission::Refused;
        }
        failures.next = start + delay;
        Admission::After(wait)
    }

    fn failed(&self, key: K, now: Instant) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_PEERS {
            map.retain(|_, f| now.duration_since(f.last) < MEMORY);
            if map.len() >= MAX_PEERS {
                map.clear();
            }
        }
        let failures = map.entry(key).or_insert(Failures {
            count: 0,
            last: now,
            next: now,
        });
        if now.duration_since(failures.last) >= MEMORY {
            failures.count = 0;
        }
        failures.count = failures.count.saturating_add(1);
        failures.last = now;
    }

    fn succeeded<Q>(&self, key: &Q)
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }
}

/// The delay `failures` call for at `now`.
fn delay_of(failures: &Failures, now: Instant) -> Duration {
    if now.duration_since(failures.last) >= MEMORY || failures.count < FREE_FAILURES {
        return Duration::ZERO;
    }
    let doublings = (failures.count - FREE_FAILURES).min(16);
    FIRST_DELAY.saturating_mul(1 << doublings).min(MAX_DELAY)
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
    fn connections_opened_at_once_from_a_failing_address_take_turns() {
        let throttle = Throttle::default();
        let now = Instant::now();
        for _ in 0..20 {
            throttle.failed(PEER, now);
        }
        let waits: Vec<Admission> = (0..9).map(|_| throttle.admit(PEER, now)).collect();
        let expected: Vec<Admission> = (1..=7).map(|n| Admission::After(MAX_DELAY * n)).collect();
        assert_eq!(&waits[..7], &expected[..], "one delay apart, not side by side");
        assert_eq!(waits[7], Admission::Refused, "beyond a minute of queue: refused");
        let other = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));
        assert_eq!(throttle.admit(other, now), Admission::After(Duration::ZERO));
    }

    #[test]
    fn a_username_failing_from_many_addresses_takes_turns_too() {
        let throttle = Throttle::default();
        let now = Instant::now();
        for _ in 0..FREE_FAILURES + 1 {
            throttle.failed_user("alice", now);
        }
        assert_eq!(
            throttle.admit_user("alice", now),
            Admission::After(FIRST_DELAY * 2)
        );
        assert_eq!(
            throttle.admit_user("alice", now),
            Admission::After(FIRST_DELAY * 4)
        );
        assert_eq!(throttle.admit_user("bob", now), Admission::After(Duration::ZERO));
        throttle.succeeded_user("alice");
        assert_eq!(
            throttle.admit_user("alice", now),
            Admission::After(Duration::ZERO)
        );
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
