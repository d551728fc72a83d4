use tracing::{info, instrument};

use super::{
    RouteResult, SignedIn, WebSocketEvent, connection_id, log_failure, reply, signed_in, span_id,
};
use crate::Chat;
use crate::metric;
use crate::protocol::{ErrorCode, ServerFrame, parse_joining};
use crate::records::{ActiveConnection, Removal, Retention, Session};
use crate::room::Room;
use crate::time::Timestamp;

/// `$connect`: records the connection and opens its session in its room
/// (`?room=`, default `lobby`) under its display name (`?name=`, optional),
/// atomically. A non-2xx answer makes API Gateway reject the handshake; a
/// bad room or name is a 400 that writes nothing; with sign-in, a room the
/// user may not join (members-only, or banned from) is a 403.
#[instrument(name = "$connect", skip_all, fields(connection_id = span_id(&event)))]
pub(super) async fn connect(chat: &Chat, event: WebSocketEvent) -> RouteResult {
    let id = connection_id(&event)?;
    let context = &event.request_context;
    let connected_at = Timestamp::from_epoch_millis(context.connected_at)?;
    let query = &event.query_string_parameters;
    let signed_in = signed_in(&event);
    // A signed-in name is the token's; `?name=` is then ignored.
    let asked_name = if signed_in.is_some() {
        None
    } else {
        query.first("name")
    };
    let joining = match parse_joining(query.first("room"), asked_name) {
        Ok(joining) => joining,
        Err(refusal) => {
            info!(
                reason = refusal.message(),
                "refused the handshake's parameters"
            );
            // Not a failure: the alarms subtract these from API Gateway's
            // IntegrationError (infra/alarms.js).
            metrics::counter!(metric::HANDSHAKES_REFUSED).increment(1);
            return Ok(reply(400, Some(&refusal)));
        }
    };
    if let Some(user) = &signed_in {
        match admitted(chat, user, &joining.room, connected_at).await {
            Ok(None) => {}
            Ok(Some(refusal)) => return Ok(reply(403, Some(&refusal))),
            Err(()) => return Ok(reply(500, None)),
        }
    }
    let (user_id, name, moderator) = match signed_in {
        Some(user) => (Some(user.user_id), user.name, user.grants.moderator),
        None => (None, joining.name, false),
    };
    let connection = ActiveConnection {
        name: name.clone(),
        user_id: user_id.clone(),
        ..ActiveConnection::new(id.to_owned(), connected_at, joining.room.clone())
    };
    let session = Session {
        ttl: Retention::expiry(chat.retention.session_days, connected_at),
        name,
        user_id,
        moderator,
        ..Session::opened(
            id.to_owned(),
            context.identity.source_ip.clone(),
            connected_at,
            joining.room,
        )
    };
    match chat.store.open_session(&connection, &session).await {
        Ok(()) => {
            info!("connected");
            Ok(reply(200, None))
        }
        Err(failure) => {
            log_failure(&failure, "could not open session; rejecting the handshake");
            Ok(reply(500, None))
        }
    }
}

/// Whether a signed-in user may join `room` now: the deployment's rule,
/// their rooms claim and whether any claim has named the room, then their
/// ban, if any (the mark and the ban in one consistent read). The refusal
/// to answer with, if not; `Err` when the room could not be read. With
/// `open` access, the rooms their claim names exactly are marked
/// members-only from now on.
async fn admitted(
    chat: &Chat,
    user: &SignedIn,
    room: &Room,
    now: Timestamp,
) -> Result<Option<ServerFrame>, ()> {
    let refuse = |reason: &'static str, frame: ServerFrame| {
        info!(user_id = %user.user_id, %room, reason, "refused a room");
        // Refusals of the client's own making, as a 400's: see above.
        metrics::counter!(metric::HANDSHAKES_REFUSED).increment(1);
        metrics::counter!(metric::ROOMS_REFUSED, metric::REASON => reason).increment(1);
        Ok(Some(frame))
    };
    let entry = match chat.store.room_entry(room, &user.user_id).await {
        Ok(entry) => entry,
        Err(failure) => {
            log_failure(
                &failure,
                "could not read the room's access; rejecting the handshake",
            );
            return Err(());
        }
    };
    if chat
        .access
        .admits(room, &user.grants, entry.claimed)
        .is_err()
    {
        return refuse(
            "not_a_member",
            ServerFrame::error(
                ErrorCode::RoomForbidden,
                format!("{room} is members-only, and your sign-in does not make you a member"),
            ),
        );
    }
    if let Some(ban) = entry.ban.filter(|ban| ban.until > now) {
        let removal = Removal {
            reason: ban.reason,
            banned_until: Some(ban.until),
        };
        return refuse("banned", ServerFrame::banned(room, &removal));
    }
    if chat.access.learns_claims() {
        let marked = chat
            .store
            .mark_members_only(user.grants.exact_rooms(), now)
            .await;
        if let Err(failure) = marked {
            // The user is let in; the mark is tried again at their next
            // connect (or another member's).
            log_failure(&failure, "could not mark the claim's rooms members-only");
        }
    }
    Ok(None)
}
