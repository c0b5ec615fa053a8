//! What an address does with a message over time: when it expires (its TTL within the address's
//! `messageTtl` bounds) and how often, and how soon, it is delivered again after a failed delivery
//! (`messageRedelivery`). Pure functions of the message's fields, the settings in force and the
//! clock, so that the rules are tested without a queue.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use enmasse_types::resources::address::{MessageRedelivery, MessageTtl};

/// Milliseconds since the Unix epoch, the clock expiry times are on (the AMQP timestamp's).
pub fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
}

/// When a message arriving `now` expires, in milliseconds since the Unix epoch, or never.
///
/// Its TTL is the header's `ttl`, or else what is left until its `absolute-expiry-time` (the
/// properties'; zero or absent means none). Within `bounds`, a TTL below the minimum is raised
/// to it and one above the maximum lowered to it; a message without a TTL gets the maximum if
/// there is one, and never expires otherwise.
pub fn expiry(
    header_ttl: Option<u32>,
    absolute_expiry: Option<i64>,
    bounds: Option<&MessageTtl>,
    now: u64,
) -> Option<u64> {
    let own = match (header_ttl, absolute_expiry) {
        (Some(ttl), _) => Some(u64::from(ttl)),
        (None, Some(at)) if at > 0 => Some(u64::try_from(at).unwrap_or(0).saturating_sub(now)),
        _ => None,
    };
    let (minimum, maximum) = bounds.map_or((None, None), |b| (b.minimum, b.maximum));
    let ttl = match (own, maximum) {
        (Some(ttl), _) => {
            let raised = minimum.map_or(ttl, |min| ttl.max(min));
            maximum.map_or(raised, |max| raised.min(max))
        }
        (None, Some(max)) => max,
        (None, None) => return None,
    };
    Some(now.saturating_add(ttl))
}

/// The redelivery rules in force on a queue.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Redelivery {
    /// Failed deliveries after which a message is given up (to the dead-letter address); `None`
    /// for no limit.
    pub max_attempts: Option<u32>,
    /// How long a message waits before its first redelivery.
    pub delay: Duration,
    /// What each further redelivery multiplies the wait by (at least 1).
    pub multiplier: f64,
    /// The longest wait; `None` for no cap.
    pub max_delay: Option<Duration>,
}

impl Redelivery {
    /// The rules of an address's `messageRedelivery`: `maximumDeliveryAttempts` of `-1` (or
    /// absent) means no limit, 0 the same as 1.
    pub fn from_settings(settings: Option<&MessageRedelivery>) -> Self {
        let Some(settings) = settings else {
            return Self::default();
        };
        Self {
            max_attempts: settings
                .maximum_delivery_attempts
                .and_then(|attempts| u32::try_from(attempts).ok())
                .map(|attempts| attempts.max(1)),
            delay: Duration::from_millis(settings.redelivery_delay.unwrap_or(0)),
            multiplier: settings
                .redelivery_delay_multiplier
                .filter(|m| m.is_finite() && *m >= 1.0)
                .unwrap_or(1.0),
            max_delay: settings.maximum_delivery_delay.map(Duration::from_millis),
        }
    }

    /// Whether a message that has failed `failures` deliveries is given up.
    pub fn exhausted(&self, failures: u32) -> bool {
        self.max_attempts.is_some_and(|max| failures >= max)
    }

    /// How long a message waits before it is delivered again after its `failures`-th failed
    /// delivery: the delay, multiplied for each failure after the first, within the cap.
    pub fn delay_after(&self, failures: u32) -> Duration {
        if self.delay.is_zero() || failures == 0 {
            return Duration::ZERO;
        }
        let exponent = i32::try_from(failures - 1).unwrap_or(i32::MAX);
        let millis = self.delay.as_millis() as f64 * self.multiplier.powi(exponent);
        // A huge or infinite product saturates: the cap, or a day, bounds it.
        let delay = Duration::from_millis(millis.min(86_400_000.0) as u64);
        self.max_delay.map_or(delay, |max| delay.min(max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_000_000;

    fn bounds(minimum: Option<u64>, maximum: Option<u64>) -> MessageTtl {
        MessageTtl { minimum, maximum }
    }

    #[test]
    fn a_message_without_a_ttl_never_expires_unless_a_maximum_applies() {
        assert_eq!(expiry(None, None, None, NOW), None);
        assert_eq!(expiry(None, Some(0), Some(&bounds(Some(10), None)), NOW), None);
        assert_eq!(
            expiry(None, None, Some(&bounds(None, Some(500))), NOW),
            Some(NOW + 500)
        );
    }

    #[test]
    fn a_ttl_is_clamped_to_the_bounds_in_force() {
        let b = bounds(Some(1_000), Some(5_000));
        assert_eq!(expiry(Some(10), None, Some(&b), NOW), Some(NOW + 1_000));
        assert_eq!(expiry(Some(3_000), None, Some(&b), NOW), Some(NOW + 3_000));
        assert_eq!(expiry(Some(60_000), None, Some(&b), NOW), Some(NOW + 5_000));
    }

    #[test]
    fn an_absolute_expiry_time_counts_from_now_and_the_header_ttl_wins() {
        let at = i64::try_from(NOW + 2_000).unwrap();
        assert_eq!(expiry(None, Some(at), None, NOW), Some(NOW + 2_000));
        assert_eq!(expiry(Some(100), Some(at), None, NOW), Some(NOW + 100));
        // Already past: it expires now.
        assert_eq!(expiry(None, Some(5), None, NOW), Some(NOW));
    }

    #[test]
    fn no_redelivery_settings_mean_no_limit_and_no_delay() {
        let rules = Redelivery::from_settings(None);
        assert!(!rules.exhausted(u32::MAX));
        assert_eq!(rules.delay_after(3), Duration::ZERO);
    }

    #[test]
    fn the_delay_grows_by_the_multiplier_up_to_the_cap() {
        let rules = Redelivery::from_settings(Some(&MessageRedelivery {
            maximum_delivery_attempts: Some(5),
            redelivery_delay: Some(100),
            redelivery_delay_multiplier: Some(2.0),
            maximum_delivery_delay: Some(500),
        }));
        let delays: Vec<u128> = (1..=5).map(|n| rules.delay_after(n).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 500, 500]);
        assert!(!rules.exhausted(4));
        assert!(rules.exhausted(5));
    }

    #[test]
    fn minus_one_attempts_means_no_limit() {
        let rules = Redelivery::from_settings(Some(&MessageRedelivery {
            maximum_delivery_attempts: Some(-1),
            ..MessageRedelivery::default()
        }));
        assert_eq!(rules.max_attempts, None);
    }
}
