//! Rooms that belong to someone, through the local stack with sign-in on:
//! members-only rooms from the token's rooms claim, and moderators (the
//! roles claim) who remove, ban and delete, each refusal answered.

#![allow(clippy::expect_used)] // a failed step fails the test

use serde_json::{Value, json};
use testkit::item::{connection_row, scan, string};
use testkit::stack::{Client, TestStack};
use testkit::tokens::{SECRET, claims, hs256};

async fn stack_with(flags: &[&str]) -> TestStack {
    let mut all = vec!["--auth-jwt-secret", SECRET];
    all.extend_from_slice(flags);
    TestStack::start(&all).await
}

/// A token for `sub`, named `name`, with extra claims.
fn token(sub: &str, name: &str, extra: Value) -> String {
    let mut claims = claims(sub, Some(name));
    if let (Some(claims), Value::Object(extra)) = (claims.as_object_mut(), extra) {
        claims.extend(extra);
    }
    hs256(&claims, SECRET)
}

fn url(stack: &TestStack, room: &str, token: &str) -> String {
    format!("{}?room={room}&token={token}", stack.stack.websocket_url())
}

/// The status and body of a refused upgrade; `None` when it was accepted.
async fn refused(url: &str) -> Option<(u16, Value)> {
    match tokio_tungstenite::connect_async(url).await {
        Ok(_) => None,
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let body = response.body().clone().unwrap_or_default();
            let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
            Some((response.status().as_u16(), body))
        }
        Err(error) => panic!("{url}: {error}"),
    }
}

/// Sends a moderation frame and returns the answer (`moderated` or `error`).
async fn ask(client: &mut Client, frame: Value) -> Value {
    client.send_text(&frame.to_string()).await;
    // Other frames (presence, messages) may come first; `next_frame` gives
    // up after the tests' patience.
    loop {
        let answer = client.next_frame().await;
        if answer["type"] == "moderated" || answer["type"] == "error" {
            return answer;
        }
    }
}

/// The id of the next chat message `client` receives.
async fn message_id(client: &mut Client) -> String {
    client.next_of_type("message").await["message_id"]
        .as_str()
        .expect("an id")
        .to_owned()
}

fn code(answer: &Value) -> &str {
    assert_eq!(answer["type"], "error", "{answer}");
    answer["code"].as_str().expect("a code")
}

#[tokio::test]
async fn members_only_rooms_admit_their_members_and_refuse_everyone_else() {
    let t = stack_with(&["--members-only-rooms", "team-*,staff"]).await;
    let member = token("u-member", "Mia", json!({"rooms": ["team-*"]}));
    let outsider = token("u-outsider", "Otto", json!({}));
    let elsewhere = token("u-other", "Ola", json!({"rooms": "staff"}));

    let mut mia = Client::connect(&url(&t, "team-a", &member)).await;
    assert_eq!(mia.welcome["room"], "team-a");
    for (who, room) in [
        (&outsider, "team-a"),
        (&elsewhere, "team-b"),
        (&member, "staff"),
    ] {
        let (status, body) = refused(&url(&t, room, who))
            .await
            .unwrap_or_else(|| panic!("{room}: let in"));
        assert_eq!(status, 403, "{room}");
        assert_eq!(body["code"], "room_forbidden", "{room}: {body}");
        assert!(body["message"].as_str().expect("a message").contains(room));
    }
    // Rooms no pattern guards stay open to every signed-in user.
    let otto = Client::connect(&url(&t, "lobby", &outsider)).await;
    Client::connect(&url(&t, "staff", &elsewhere)).await;
    // Refused handshakes wrote nothing: only the three admitted sessions.
    assert_eq!(
        scan(&t.dynamodb, &t.stack.tables.session_history)
            .await
            .len(),
        3
    );
    // A refused person reads nothing either: history is the own room's.
    mia.say("team secret").await;
    mia.next_of_type("message").await;
    let mut otto = otto;
    otto.send_text(r#"{"action":"history"}"#).await;
    let page = otto.next_of_type("history").await;
    assert_eq!(page["room"], "lobby");
    assert_eq!(page["messages"], json!([]));

    // A claim that cannot be read refuses the token: neither more nor less
    // than the identity provider meant.
    for bad in [
        json!({"rooms": 7}),
        json!({"rooms": ["no spaces"]}),
        json!({"roles": {"moderator": true}}),
    ] {
        let (status, _) = refused(&url(&t, "lobby", &token("u-bad", "Bad", bad.clone())))
            .await
            .expect("refused");
        assert_eq!(status, 403, "{bad}");
    }
    t.stack.shutdown().await;
}

/// With the default `open` access and no list, a room becomes
/// members-only once a signed-in member's claim has named it: the rooms no
/// claim names stay open to every signed-in user.
#[tokio::test]
async fn a_room_a_claim_names_is_members_only_from_its_first_member_on() {
    let t = stack_with(&[]).await;
    let member = token("u-member", "Mia", json!({"rooms": ["secret", "team-*"]}));
    let outsider = token("u-outsider", "Otto", json!({}));
    let elsewhere = token("u-other", "Ola", json!({"rooms": ["other"]}));
    // Before any claim named it, `secret` is like any room.
    Client::connect(&url(&t, "lobby", &outsider)).await;
    let mut mia = Client::connect(&url(&t, "secret", &member)).await;
    assert_eq!(mia.welcome["room"], "secret");
    for who in [&outsider, &elsewhere] {
        let (status, body) = refused(&url(&t, "secret", who)).await.expect("refused");
        assert_eq!(
            (status, body["code"].as_str()),
            (403, Some("room_forbidden"))
        );
    }
    // A prefix names no room in particular: `team-x` stays open.
    Client::connect(&url(&t, "team-x", &outsider)).await;
    // Only admitted members mark rooms (Ola was refused before hers).
    let marks = scan(&t.dynamodb, &t.stack.tables.moderation).await;
    let marked: Vec<String> = marks.iter().map(|row| string(row, "room")).collect();
    assert_eq!(marked, ["secret"]);
    mia.say("only for members").await;
    mia.next_of_type("message").await;
    t.stack.shutdown().await;
}

#[tokio::test]
async fn closed_access_admits_only_the_rooms_a_token_names() {
    let t = stack_with(&["--room-access", "closed"]).await;
    let member = token("u-1", "Ann", json!({"rooms": ["lobby", "team-*"]}));
    let none = token("u-2", "Ben", json!({}));
    Client::connect(&url(&t, "team-x", &member)).await;
    Client::connect(&url(&t, "lobby", &member)).await;
    for (who, room) in [(&member, "random"), (&none, "lobby")] {
        let (status, body) = refused(&url(&t, room, who)).await.expect("refused");
        assert_eq!(
            (status, body["code"].as_str()),
            (403, Some("room_forbidden")),
            "{room}"
        );
    }
    t.stack.shutdown().await;
}

#[tokio::test]
async fn a_moderator_removes_bans_and_deletes_and_every_refusal_is_answered() {
    let t = stack_with(&[]).await;
    let tables = &t.stack.tables;
    let moderator_token = token("u-mod", "Mod", json!({"roles": ["moderator"]}));
    let alice_token = token("u-alice", "Alice", json!({}));
    let mut moderator = Client::connect(&url(&t, "team", &moderator_token)).await;
    assert_eq!(
        moderator.welcome["moderator"], true,
        "the page learns it may moderate"
    );
    let mut alice = Client::connect(&url(&t, "team", &alice_token)).await;
    assert!(alice.welcome.get("moderator").is_none());
    let mut bob = Client::connect(&url(&t, "team", &token("u-bob", "Bob", json!({})))).await;
    let mut carol = Client::connect(&url(&t, "lobby", &token("u-carol", "Carol", json!({})))).await;

    alice.say("buy cheap watches").await;
    let spam_id = message_id(&mut bob).await;
    carol.say("hello lobby").await;
    let lobby_id = message_id(&mut carol).await;

    // Not a moderator, not the author: refused, nothing changes.
    let answer = ask(&mut bob, json!({"action":"delete","message_id": spam_id})).await;
    assert_eq!(code(&answer), "forbidden");
    let answer = ask(
        &mut bob,
        json!({"action":"remove","connection_id": alice.id}),
    )
    .await;
    assert_eq!(code(&answer), "forbidden");
    let answer = ask(
        &mut bob,
        json!({"action":"ban","user_id":"u-alice","minutes":5}),
    )
    .await;
    assert_eq!(code(&answer), "forbidden");
    // Bad input, each with its reason.
    for (frame, expected) in [
        (
            json!({"action":"delete","message_id":"no-such-message"}),
            "not_found",
        ),
        (
            json!({"action":"delete","message_id": lobby_id}),
            "other_room",
        ),
        (json!({"action":"delete"}), "invalid_request"),
        (
            json!({"action":"remove","connection_id":"no-such-connection"}),
            "not_found",
        ),
        (
            json!({"action":"remove","connection_id": carol.id}),
            "other_room",
        ),
        (
            json!({"action":"remove","connection_id": moderator.id}),
            "self_target",
        ),
        (
            json!({"action":"remove","connection_id": alice.id, "reason": "x".repeat(201)}),
            "invalid_request",
        ),
        (
            json!({"action":"remove","connection_id": 7}),
            "invalid_request",
        ),
        (
            json!({"action":"ban","user_id":"u-mod","minutes":5}),
            "self_target",
        ),
        (
            json!({"action":"ban","user_id":"u-alice","minutes":-5}),
            "invalid_request",
        ),
        (
            json!({"action":"ban","user_id":"u-alice","minutes":0}),
            "invalid_request",
        ),
        (
            json!({"action":"ban","user_id":"u-alice","minutes":1_000_000_000}),
            "invalid_request",
        ),
        (
            json!({"action":"ban","user_id":"u-alice","minutes":"10"}),
            "invalid_request",
        ),
        (
            json!({"action":"ban","user_id":"u-alice","connection_id": alice.id,"minutes":5}),
            "invalid_request",
        ),
        (
            json!({"action":"ban","connection_id": carol.id,"minutes":5}),
            "other_room",
        ),
    ] {
        let answer = ask(&mut moderator, frame.clone()).await;
        assert_eq!(code(&answer), expected, "{frame}");
    }
    assert!(
        scan(&t.dynamodb, &tables.moderation).await.is_empty(),
        "refusals write nothing"
    );

    // Delete: a tombstone, told to the room, and in history without text.
    let answer = ask(
        &mut moderator,
        json!({"action":"delete","message_id": spam_id}),
    )
    .await;
    assert_eq!(
        (answer["type"].as_str(), answer["message_id"].as_str()),
        (Some("moderated"), Some(spam_id.as_str()))
    );
    let deleted = bob.next_of_type("deleted").await;
    assert_eq!(
        (deleted["message_id"].as_str(), deleted["by"].as_str()),
        (Some(spam_id.as_str()), Some("moderator"))
    );
    let answer = ask(
        &mut moderator,
        json!({"action":"delete","message_id": spam_id}),
    )
    .await;
    assert_eq!(code(&answer), "already_deleted");
    bob.send_text(r#"{"action":"history"}"#).await;
    let page = bob.next_of_type("history").await;
    let tombstone = &page["messages"][0];
    assert_eq!(tombstone["message_id"], spam_id.as_str());
    assert_eq!(tombstone["text"], "");
    assert_eq!(tombstone["deleted"]["by"], "moderator");
    assert!(!page.to_string().contains("watches"), "{page}");
    let stored = testkit::item::get(&t.dynamodb, &tables.message_history, "message_id", &spam_id)
        .await
        .expect("the tombstone");
    assert_eq!(string(&stored, "message"), "");

    // A member deletes their own message.
    bob.say("typo").await;
    let typo = message_id(&mut bob).await;
    let answer = ask(&mut bob, json!({"action":"delete","message_id": typo})).await;
    assert_eq!(answer["type"], "moderated", "{answer}");
    // Alice heard of both deletions, in order.
    assert_eq!(alice.next_of_type("deleted").await["by"], "moderator");
    assert_eq!(alice.next_of_type("deleted").await["by"], "author");

    // Remove: the room hears who and why, the person learns why, then is
    // closed; their session closes as a removal.
    let answer = ask(
        &mut moderator,
        json!({"action":"remove","connection_id": bob.id,"reason":"flooding"}),
    )
    .await;
    assert_eq!(answer["type"], "moderated", "{answer}");
    let removed = bob.next_of_type("removed").await;
    assert_eq!(removed["reason"], "flooding");
    assert!(removed.get("banned_until").is_none());
    bob.closed_by_server().await;
    let presence = loop {
        let frame = alice.next_of_type("presence").await;
        if frame["left"]
            .as_array()
            .is_some_and(|left| !left.is_empty())
        {
            break frame;
        }
    };
    assert_eq!(presence["left"][0]["connection_id"], bob.id.as_str());
    assert_eq!(presence["left"][0]["removed"]["reason"], "flooding");
    assert!(
        presence["message"]
            .as_str()
            .expect("text")
            .contains("removed by a moderator")
    );
    let session = t.closed_session(&bob.id).await;
    assert_eq!(
        string(&session, "disconnect_reason"),
        "Removed by a moderator"
    );
    assert!(
        connection_row(&t.dynamodb, &tables.active_connections, &bob.id)
            .await
            .is_none()
    );

    // Ban by connection: removed with the end of the ban, refused at the
    // handshake until then, other rooms unaffected.
    let answer = ask(
        &mut moderator,
        json!({"action":"ban","connection_id": alice.id,"minutes":10,"reason":"spam"}),
    )
    .await;
    assert_eq!(
        (answer["type"].as_str(), answer["user_id"].as_str()),
        (Some("moderated"), Some("u-alice"))
    );
    let removed = alice.next_of_type("removed").await;
    assert_eq!(removed["banned_until"], answer["banned_until"]);
    alice.closed_by_server().await;
    let (status, body) = refused(&url(&t, "team", &alice_token))
        .await
        .expect("refused while banned");
    assert_eq!((status, body["code"].as_str()), (403, Some("banned")));
    assert!(body["message"].as_str().expect("text").contains("spam"));
    Client::connect(&url(&t, "lobby", &alice_token)).await;

    // Every action is in the audit log, with who, what and when.
    let log = scan(&t.dynamodb, &tables.moderation).await;
    let mut actions: Vec<String> = log
        .iter()
        .filter(|row| string(row, "entry").starts_with("audit#"))
        .map(|row| string(row, "action"))
        .collect();
    actions.sort();
    assert_eq!(actions, ["ban", "delete", "delete", "remove"]);
    let ban = log
        .iter()
        .find(|row| string(row, "entry") == "ban#u-alice")
        .expect("the ban");
    assert_eq!(
        (string(ban, "banned_by"), string(ban, "room")),
        ("u-mod".to_owned(), "team".to_owned())
    );
    let removal = log
        .iter()
        .find(|row| string(row, "action") == "remove")
        .expect("the removal's record");
    assert_eq!(string(removal, "actor_user_id"), "u-mod");
    assert_eq!(string(removal, "target_connection_id"), bob.id);
    t.stack.shutdown().await;
}
