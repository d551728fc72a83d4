//! A room's fan-out across the shards of the room index, with and without
//! fan-out workers: every member gets a frame once, whatever shard it sits
//! in and whichever page of it, with stale members and failing posts among
//! them, and the sender hears of what was missed.

#![allow(clippy::expect_used)] // a failed step fails the test

use handlers::limits::ROOM_SHARDS;
use handlers::records::shard_of;
use testkit::Harness;

/// The name the local stack's Lambda API runs the workers under.
const FANOUT: &str = chat_local::lambda_api::FANOUT_FUNCTION;

/// Seats `count` members in the lobby, some gone (410) and some whose
/// posts fail (403); the sender is the first.
async fn crowd(h: &Harness, count: usize) -> Crowd {
    let members: Vec<String> = (0..count).map(|i| format!("Member{i:04}AAA=")).collect();
    for id in &members {
        h.connected(id).await;
    }
    let gone: Vec<String> = members[10..16].to_vec();
    let failing: Vec<String> = members[40..43].to_vec();
    for id in &gone {
        h.api.mark_gone(id);
    }
    for id in &failing {
        h.api.mark_failing(id);
    }
    Crowd {
        members,
        gone,
        failing,
    }
}

struct Crowd {
    members: Vec<String>,
    gone: Vec<String>,
    failing: Vec<String>,
}

impl Crowd {
    fn sender(&self) -> &str {
        &self.members[0]
    }

    /// Sends a message from the first member and checks that every member
    /// was posted it exactly once, the live ones delivered, the gone ones
    /// pruned; returns how many failures the sender was told of.
    async fn message_reaches_everyone_once(&self, h: &Harness) -> usize {
        h.send_at(
            self.sender(),
            r#"{"action":"sendmessage","message":"hello, crowd"}"#,
            0,
        )
        .await;
        h.workers_idle().await;
        for id in &self.members {
            let notices = h
                .api
                .frames_for(id)
                .into_iter()
                .filter(|frame| frame["code"] == "partial_delivery")
                .count();
            assert_eq!(
                h.api.attempts(id) - notices,
                1,
                "{id}: posted the message exactly once"
            );
            let got = h
                .api
                .frames_for(id)
                .into_iter()
                .filter(|frame| frame["text"] == "hello, crowd")
                .count();
            let live = !self.gone.contains(id) && !self.failing.contains(id);
            assert_eq!(got, usize::from(live), "{id}");
        }
        for id in &self.gone {
            assert_eq!(
                h.chat.store.sender(id).await.expect("read"),
                None,
                "{id}: a stale member is pruned"
            );
        }
        told_failures(h, self.sender())
    }
}

/// A frame to the lobby, leaving out `except`.
async fn to_lobby(h: &Harness, except: &[String]) -> handlers::fanout::FanoutReport {
    let lobby = handlers::Room::lobby();
    handlers::fanout::broadcast(
        &h.chat,
        r#"{"type":"presence","message":"x"}"#,
        handlers::fanout::Audience::room_except(&lobby, except),
        handlers::metric::FanoutKind::Presence,
    )
    .await
}

/// The failures the sender's `partial_delivery` frames count.
fn told_failures(h: &Harness, sender: &str) -> usize {
    h.api
        .frames_for(sender)
        .iter()
        .filter(|frame| frame["code"] == "partial_delivery")
        .map(|frame| {
            let text = frame["message"].as_str().expect("a message");
            let count = text
                .split("could not be delivered to ")
                .nth(1)
                .and_then(|rest| rest.split(' ').next())
                .expect("a count");
            count.parse::<usize>().expect("a number")
        })
        .sum()
}

#[test]
fn members_spread_over_every_shard() {
    let mut seen = vec![0; ROOM_SHARDS as usize];
    for i in 0..400 {
        seen[shard_of(&format!("Member{i:04}AAA="), ROOM_SHARDS) as usize] += 1;
    }
    assert!(seen.iter().all(|&count| count > 25), "{seen:?}");
}

#[tokio::test]
async fn without_workers_the_sender_posts_every_shard_page_by_page() {
    let h = Harness::start().await;
    let crowd = crowd(&h, 120).await;
    let failures = crowd.message_reaches_everyone_once(&h).await;
    assert_eq!(failures, crowd.failing.len());
}

#[tokio::test]
async fn workers_take_each_shards_rest_and_every_member_gets_the_message_once() {
    let h = Harness::with_workers(FANOUT).await;
    let crowd = crowd(&h, 120).await;
    let failures = crowd.message_reaches_everyone_once(&h).await;
    assert_eq!(
        failures,
        crowd.failing.len(),
        "the workers tell the sender of the posts that failed in their parts"
    );
    let workers = h.workers.as_ref().expect("workers");
    assert!(
        workers.invocations() >= ROOM_SHARDS as usize,
        "{}",
        workers.invocations()
    );
}

#[tokio::test]
async fn a_failed_hand_off_is_posted_by_the_caller_itself() {
    // A function the Lambda API does not have: every hand-off fails.
    let h = Harness::with_workers("no-such-function").await;
    let crowd = crowd(&h, 60).await;
    let failures = crowd.message_reaches_everyone_once(&h).await;
    assert_eq!(failures, crowd.failing.len());
    assert_eq!(h.workers.as_ref().expect("workers").invocations(), 0);
}

#[tokio::test]
async fn presence_and_deletions_reach_a_sharded_room_through_the_workers_too() {
    let h = Harness::with_workers(FANOUT).await;
    let crowd = crowd(&h, 60).await;
    let except = vec![crowd.members[1].clone()];
    let report = to_lobby(&h, &except).await;
    h.workers_idle().await;
    assert!(report.handed_off > 0, "{report:?}");
    for id in &crowd.members {
        let expected = usize::from(id != &crowd.members[1]);
        assert_eq!(
            h.api.attempts(id),
            expected,
            "{id}: the excepted is left out"
        );
    }
}

#[tokio::test]
async fn when_the_account_is_throttled_posts_wait_their_turn_instead_of_failing() {
    let h = Harness::start().await;
    let members: Vec<String> = (0..40).map(|i| format!("Member{i:04}AAA=")).collect();
    for id in &members {
        h.connected(id).await;
        // More 429s than the client's own tries: the account is throttled.
        h.api.fail_next(id, 429, 5);
    }
    let report = to_lobby(&h, &[]).await;
    assert_eq!(report.delivered, members.len(), "{report:?}");
    assert_eq!(report.failed, 0);
    for id in &members {
        assert_eq!(
            h.api.attempts(id),
            6,
            "{id}: five throttled, then delivered"
        );
    }
}

#[tokio::test]
async fn a_client_whose_buffer_is_full_is_given_up_on_after_a_second() {
    let h = Harness::start().await;
    let members: Vec<String> = (0..10).map(|i| format!("Member{i:04}AAA=")).collect();
    for id in &members {
        h.connected(id).await;
    }
    // API Gateway answers a client that stopped reading with 429 too.
    h.api.fail_next(&members[3], 429, 1000);
    let report = to_lobby(&h, &[]).await;
    assert_eq!((report.delivered, report.throttled), (9, 1), "{report:?}");
    let attempts = h.api.attempts(&members[3]);
    let tries = handlers::limits::POST_ATTEMPTS as usize;
    // The client's own tries, then the fan-out's for about a second.
    assert!((2 * tries..=10 * tries).contains(&attempts), "{attempts}");
}
