//! A retry budget for the Management API calls of one process, as the AWS
//! SDKs' standard retry mode keeps one (its retry quota): each retry takes
//! tokens ([`RETRY_COST`], more after a timeout or a broken connection),
//! each call that succeeds gives one back, and once the budget is spent a
//! throttled or failed call is final at once. Without it every fan-out of a
//! warm function would answer API Gateway's throttling with two more tries
//! per post, and throttle it further.

use std::sync::atomic::{AtomicU32, Ordering};

use crate::limits::{RETRY_BUDGET_TOKENS, RETRY_COST, RETRY_REFUND, RETRY_TIMEOUT_COST};

#[derive(Debug)]
pub struct RetryBudget {
    tokens: AtomicU32,
    capacity: u32,
}

impl Default for RetryBudget {
    fn default() -> Self {
        Self::new(RETRY_BUDGET_TOKENS)
    }
}

/// Why a call is to be tried again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryReason {
    /// Throttled (429) or a server error (5xx): an answer came.
    Answered,
    /// No answer: a timeout or a broken connection, which costs more.
    Unanswered,
}

impl RetryBudget {
    pub fn new(capacity: u32) -> Self {
        Self {
            tokens: AtomicU32::new(capacity),
            capacity,
        }
    }

    /// Takes what one retry for `reason` costs; false when the budget
    /// cannot pay it (then the call is not tried again).
    pub fn try_retry(&self, reason: RetryReason) -> bool {
        let cost = match reason {
            RetryReason::Answered => RETRY_COST,
            RetryReason::Unanswered => RETRY_TIMEOUT_COST,
        };
        self.tokens
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |tokens| {
                tokens.checked_sub(cost)
            })
            .is_ok()
    }

    /// A call succeeded: a token back, up to the capacity.
    pub fn succeeded(&self) {
        let _ = self
            .tokens
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |tokens| {
                Some(tokens.saturating_add(RETRY_REFUND).min(self.capacity))
            });
    }

    /// Tokens left.
    pub fn available(&self) -> u32 {
        self.tokens.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_stop_when_the_budget_is_spent_and_successes_refill_it() {
        let budget = RetryBudget::new(20);
        // Four retries of 5 after answers, then none.
        assert_eq!(
            (0..10)
                .filter(|_| budget.try_retry(RetryReason::Answered))
                .count(),
            4
        );
        assert_eq!(budget.available(), 0);
        // Ten successes pay for two more retries after an answer, or one
        // after a timeout.
        (0..10).for_each(|_| budget.succeeded());
        assert_eq!(budget.available(), 10);
        assert!(budget.try_retry(RetryReason::Unanswered));
        assert!(!budget.try_retry(RetryReason::Answered));
        // Never more than its capacity.
        (0..100).for_each(|_| budget.succeeded());
        assert_eq!(budget.available(), 20);
    }
}
