//! Whether a connection may have what it asks for now: who it is (its
//! ActiveConnections row) and whether its [`Allowance`] has room
//! ([`crate::rate`]), in one conditional write for a request on schedule.
//! `sendmessage` and `history` both go through here.

use crate::Chat;
use crate::error::StoreError;
use crate::protocol::ServerFrame;
use crate::rate::{Allowance, Decision, Rate};
use crate::store::{Claim, Sender, WriteOutcome};
use crate::time::Timestamp;

/// Whether a request may go, and who sent it.
#[derive(Debug)]
pub enum Admission {
    Allowed(Sender),
    /// Over the allowance: the frame that says so.
    Refused(ServerFrame),
    /// The connection has no row (closed, or pruned).
    NoRow,
}

/// Tries to move the mark this often when other requests of the same
/// connection move it at the same time (concurrent invocations).
const RATE_MARK_ATTEMPTS: usize = 2;

/// Reads the sender and applies `rate` to its `allowance` (`None`: no limit,
/// one consistent read): one conditional write for a request on schedule,
/// which also returns the row.
pub async fn admit(
    chat: &Chat,
    id: &str,
    allowance: Allowance,
    rate: Option<Rate>,
    now: Timestamp,
) -> Result<Admission, StoreError> {
    let Some(rate) = rate else {
        return Ok(match chat.store.sender(id).await? {
            Some(sender) => Admission::Allowed(sender),
            None => Admission::NoRow,
        });
    };
    let now_ms = now.epoch_millis();
    let sender = match chat
        .store
        .claim_on_schedule(id, allowance, now, now_ms + rate.interval_ms())
        .await?
    {
        Claim::Moved(sender) => return Ok(Admission::Allowed(sender)),
        Claim::Ahead(None) => return Ok(Admission::NoRow),
        Claim::Ahead(Some(sender)) => sender,
    };
    refuse_or_advance(chat, id, allowance, rate, sender, now).await
}

/// For a sender whose mark is ahead of now: the refusal, or, within its
/// burst, the mark moved (one conditional write) and the sender allowed.
async fn refuse_or_advance(
    chat: &Chat,
    id: &str,
    allowance: Allowance,
    rate: Rate,
    sender: Sender,
    now: Timestamp,
) -> Result<Admission, StoreError> {
    let now_ms = now.epoch_millis();
    let mut seen = sender.mark(allowance);
    for attempt in 1..=RATE_MARK_ATTEMPTS {
        let next = match rate.decide(seen, now_ms) {
            Decision::Allow { next } => next,
            Decision::Refuse { retry_after_ms } => {
                return Ok(Admission::Refused(ServerFrame::rate_limited(
                    allowance,
                    &rate,
                    retry_after_ms.unsigned_abs(),
                )));
            }
        };
        match chat
            .store
            .advance_rate_mark(id, allowance, seen, next, now)
            .await?
        {
            WriteOutcome::Written => return Ok(Admission::Allowed(sender)),
            WriteOutcome::ConditionFailed if attempt == RATE_MARK_ATTEMPTS => break,
            // Another request moved the mark, or the connection closed.
            WriteOutcome::ConditionFailed => match chat.store.sender(id).await? {
                Some(fresh) => seen = fresh.mark(allowance),
                None => return Ok(Admission::NoRow),
            },
        }
    }
    // Requests of one connection racing each other are a burst.
    Ok(Admission::Refused(ServerFrame::rate_limited(
        allowance,
        &rate,
        rate.interval_ms().unsigned_abs(),
    )))
}
