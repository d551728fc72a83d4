//! The per-connection rate limits (chat messages, history pages), as GCRA
//! (the generic cell rate algorithm): one number per connection and
//! [`Allowance`], the time from which its next request is on schedule
//! (`rate_allowed_at`, `history_allowed_at` on its ActiveConnections row).
//! `sendmessage` moves it with a conditional write that also returns the
//! sender's row it needs anyway (`Store::claim_on_schedule`): a message on
//! schedule costs one call, and the limit holds across Lambda invocations
//! without a counter table.

/// What a connection's request counts against. Each has its own mark on
/// the connection's ActiveConnections row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Allowance {
    /// Chat messages (`sendmessage`): `rate_allowed_at`.
    Messages,
    /// History pages (`history`): `history_allowed_at`.
    History,
}

impl Allowance {
    /// The attribute holding the mark.
    pub fn mark(self) -> &'static str {
        match self {
            Self::Messages => "rate_allowed_at",
            Self::History => "history_allowed_at",
        }
    }

    /// The action whose requests it counts, as clients name it.
    pub fn action(self) -> &'static str {
        match self {
            Self::Messages => "sendmessage",
            Self::History => "history",
        }
    }
}

/// A sustained rate with a burst allowance: `burst` messages at once, then
/// one per `1 / per_second` seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub per_second: u32,
    pub burst: u32,
}

/// What to do with one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Send it, and store `next` as the connection's new mark.
    Allow { next: i64 },
    /// Refuse it; a message `retry_after_ms` from now would be allowed.
    Refuse { retry_after_ms: i64 },
}

impl Rate {
    /// The limit a deployment configured; `None` when `per_second` is 0.
    /// Both values come from ranges of at most 1000.
    pub fn from_setting(per_second: usize, burst: usize) -> Option<Self> {
        let per_second = u32::try_from(per_second).ok().filter(|rate| *rate > 0)?;
        let burst = u32::try_from(burst).unwrap_or(u32::MAX).max(1);
        Some(Self { per_second, burst })
    }

    /// Milliseconds between messages at the sustained rate.
    pub fn interval_ms(&self) -> i64 {
        1000 / i64::from(self.per_second.max(1))
    }

    /// Decides a message arriving at `now_ms`, given the connection's mark
    /// (`None` before its first message).
    pub fn decide(&self, allowed_at: Option<i64>, now_ms: i64) -> Decision {
        let interval = self.interval_ms();
        let tolerance = interval * i64::from(self.burst.max(1) - 1);
        let scheduled = allowed_at.map_or(now_ms, |mark| mark.max(now_ms));
        let ahead = scheduled - now_ms;
        if ahead > tolerance {
            Decision::Refuse {
                retry_after_ms: ahead - tolerance,
            }
        } else {
            Decision::Allow {
                next: scheduled + interval,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: Rate = Rate {
        per_second: 5,
        burst: 20,
    };

    /// Sends at `now` until refused; the count and the refusal.
    fn burst_at(mut mark: Option<i64>, now: i64) -> (usize, Option<i64>, i64) {
        let mut allowed = 0;
        loop {
            match RATE.decide(mark, now) {
                Decision::Allow { next } => {
                    allowed += 1;
                    mark = Some(next);
                }
                Decision::Refuse { retry_after_ms } => {
                    return (allowed, mark, retry_after_ms);
                }
            }
        }
    }

    #[test]
    fn a_burst_is_allowed_then_one_message_per_interval() {
        let (allowed, mark, retry_after) = burst_at(None, 1_000_000);
        assert_eq!(allowed, 20);
        assert_eq!(retry_after, 200);
        // 200 ms later exactly one more fits; 1 s later, five.
        assert_eq!(burst_at(mark, 1_000_200).0, 1);
        assert_eq!(burst_at(mark, 1_001_000).0, 5);
    }

    #[test]
    fn a_quiet_connection_gets_its_whole_burst_back_and_no_more() {
        let (_, mark, _) = burst_at(None, 0);
        assert_eq!(burst_at(mark, 60_000).0, 20);
    }

    #[test]
    fn steady_senders_at_the_rate_are_never_refused() {
        let mut mark = None;
        for message in 0..1000 {
            match RATE.decide(mark, message * 200) {
                Decision::Allow { next } => mark = Some(next),
                refused => panic!("message {message} refused: {refused:?}"),
            }
        }
    }

    #[test]
    fn a_mark_from_a_clock_behind_ours_is_not_held_against_the_sender() {
        // A mark in the past counts as "on schedule now".
        assert_eq!(RATE.decide(Some(-5_000), 0), Decision::Allow { next: 200 });
    }
}
