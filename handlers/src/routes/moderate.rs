use aws_lambda_events::apigw::ApiGatewayProxyResponse;
use tracing::{error, info, instrument, warn};

use super::{
    RouteResult, SignedIn, WebSocketEvent, connection_id, log_failure, reply, signed_in, span_id,
};
use crate::Chat;
use crate::error::{Error, StoreError};
use crate::fanout::{Audience, broadcast};
use crate::management::Delivery;
use crate::metric::{self, FanoutKind};
use crate::protocol::{
    Action, BanTarget, ErrorCode, Moderation, ModerationTarget, ServerFrame, parse_moderation,
};
use crate::records::{AuditEntry, Ban, DeletedBy, Deletion, Removal, Retention, SessionClose};
use crate::room::Room;
use crate::store::WriteOutcome;
use crate::time::Timestamp;

/// `remove`, `ban` and `delete`, in the caller's own room. Removing and
/// banning take a moderator (their token's roles claim); deleting a message
/// takes a moderator or its author. Every action is answered (`moderated`,
/// or an `error` saying why nothing was done), written to the room's audit
/// log and counted. A two-way route: it always answers with a body.
#[instrument(name = "moderate", skip_all, fields(connection_id = span_id(&event)))]
pub(super) async fn moderate(chat: &Chat, event: WebSocketEvent) -> RouteResult {
    let id = connection_id(&event)?;
    let action = event
        .request_context
        .route_key
        .as_deref()
        .and_then(Action::from_name)
        .ok_or(Error::MissingField("requestContext.routeKey"))?;
    let now = Timestamp::from_epoch_millis(event.request_context.request_time_epoch)?;
    let request = match parse_moderation(action, event.body.as_deref()) {
        Ok(request) => request,
        Err(frame) => return Ok(reply(200, Some(&frame))),
    };
    let caller = Caller {
        connection_id: id,
        user: signed_in(&event),
    };
    let room = match chat.store.sender(id).await {
        Ok(Some(sender)) => sender.room,
        Ok(None) => {
            return Ok(reply(
                200,
                Some(&refusal(
                    ErrorCode::NotFound,
                    "This connection is no longer known to the server; reconnect first.",
                )),
            ));
        }
        Err(failure) => return Ok(failed(&failure, "could not read the caller's room")),
    };
    let outcome = match request {
        Moderation::Remove {
            connection_id,
            reason,
        } => remove(chat, &caller, &room, &connection_id, reason, now).await,
        Moderation::Ban {
            target,
            minutes,
            reason,
        } => ban(chat, &caller, &room, target, minutes, reason, now).await,
        Moderation::Delete { message_id } => delete(chat, &caller, &room, &message_id, now).await,
    };
    Ok(match outcome {
        Ok((frame, target)) => {
            metrics::counter!(metric::MODERATION_ACTIONS, metric::ACTION => action.name())
                .increment(1);
            let entry = AuditEntry {
                room: room.clone(),
                entry: format!("audit#{now}#{}", uuid::Uuid::now_v7()),
                action: action.name().to_owned(),
                actor_user_id: caller.user.as_ref().map(|user| user.user_id.clone()),
                actor_connection_id: id.to_owned(),
                at: now,
                target_connection_id: target.connection_id,
                target_user_id: target.user_id,
                message_id: target.message_id,
                reason: target.reason,
                minutes: target.minutes,
                ttl: Retention::expiry(chat.retention.session_days, now),
            };
            if let Err(failure) = chat.store.put_audit(&entry).await {
                // Done, but unrecorded: loud, for the alarm on ERROR lines.
                log_failure(
                    &failure,
                    &format!(
                        "could not write the audit record of a {} action",
                        action.name()
                    ),
                );
            }
            info!(action = action.name(), %room, "moderation action carried out");
            reply(200, Some(&frame))
        }
        Err(Refused::Told(frame)) => {
            info!(action = action.name(), "refused a moderation action");
            reply(200, Some(&frame))
        }
        Err(Refused::Failed(failure, what)) => failed(&failure, what),
    })
}

/// Who asked.
struct Caller<'a> {
    connection_id: &'a str,
    user: Option<SignedIn>,
}

impl Caller<'_> {
    fn is_moderator(&self) -> bool {
        self.user.as_ref().is_some_and(|user| user.grants.moderator)
    }

    fn user_id(&self) -> Option<&str> {
        self.user.as_ref().map(|user| user.user_id.as_str())
    }

    /// In what capacity the caller may delete `message`: its author (same
    /// connection, or same signed-in user), else a moderator; else refused.
    fn may_delete(&self, message: &crate::records::Message) -> Result<DeletedBy, Refused> {
        let own = message.connection_id == self.connection_id
            || (message.user_id.is_some() && message.user_id.as_deref() == self.user_id());
        if own {
            Ok(DeletedBy::Author)
        } else if self.is_moderator() {
            Ok(DeletedBy::Moderator)
        } else {
            Err(Refused::answer(refusal(
                ErrorCode::Forbidden,
                "Only its author or a moderator may delete a message; nothing was deleted.",
            )))
        }
    }

    /// Refused unless a moderator.
    fn must_moderate(&self, what: &str) -> Result<(), Refused> {
        if self.is_moderator() {
            Ok(())
        } else {
            Err(Refused::answer(refusal(
                ErrorCode::Forbidden,
                &format!("Only moderators may {what}; nothing was done."),
            )))
        }
    }
}

/// Why an action was not carried out.
enum Refused {
    /// The client's mistake (or a target that is not there): its answer
    /// (boxed: frames are large, refusals rare).
    Told(Box<ServerFrame>),
    /// A table could not be read or written.
    Failed(Box<StoreError>, &'static str),
}

impl Refused {
    fn answer(frame: ServerFrame) -> Self {
        Self::Told(Box::new(frame))
    }

    /// What a failed table call becomes, for `map_err`.
    fn failed(what: &'static str) -> impl FnOnce(StoreError) -> Self {
        move |failure| Self::Failed(Box::new(failure), what)
    }
}

/// What an action's audit record says it acted on (the record's who,
/// where and when are the caller's).
#[derive(Default)]
struct Audited {
    connection_id: Option<String>,
    user_id: Option<String>,
    message_id: Option<String>,
    reason: Option<String>,
    minutes: Option<u64>,
}

/// The answer to a carried-out action, and what its audit record adds.
type Done = (ServerFrame, Audited);

fn refusal(code: ErrorCode, message: &str) -> ServerFrame {
    ServerFrame::error(code, message)
}

fn failed(failure: &StoreError, what: &'static str) -> ApiGatewayProxyResponse {
    log_failure(failure, what);
    reply(
        500,
        Some(&refusal(
            ErrorCode::Internal,
            "The server could not carry out the action; please try again.",
        )),
    )
}

async fn remove(
    chat: &Chat,
    caller: &Caller<'_>,
    room: &Room,
    target: &str,
    reason: Option<String>,
    now: Timestamp,
) -> Result<Done, Refused> {
    caller.must_moderate("remove people")?;
    if target == caller.connection_id {
        return Err(Refused::answer(refusal(
            ErrorCode::SelfTarget,
            "You cannot remove yourself; close the page instead.",
        )));
    }
    let sender = chat
        .store
        .sender(target)
        .await
        .map_err(Refused::failed("could not read the connection to remove"))?
        .ok_or_else(|| Refused::answer(no_connection(target)))?;
    if &sender.room != room {
        return Err(Refused::answer(other_room("That connection")));
    }
    let removal = Removal {
        reason: reason.clone(),
        banned_until: None,
    };
    take_out(chat, target, room, removal, now).await?;
    let shown = sender.name.as_ref().map_or(target, |name| name.as_str());
    let frame = ServerFrame::moderated(
        Action::Remove,
        format!("Removed {shown} from {room}."),
        ModerationTarget {
            connection_id: Some(target.to_owned()),
            ..ModerationTarget::default()
        },
    );
    Ok((
        frame,
        Audited {
            connection_id: Some(target.to_owned()),
            user_id: sender.user_id,
            reason,
            ..Audited::default()
        },
    ))
}

async fn ban(
    chat: &Chat,
    caller: &Caller<'_>,
    room: &Room,
    target: BanTarget,
    minutes: u64,
    reason: Option<String>,
    now: Timestamp,
) -> Result<Done, Refused> {
    caller.must_moderate("ban people")?;
    let user_id = banned_user(chat, room, target).await?;
    if Some(user_id.as_str()) == caller.user_id() {
        return Err(Refused::answer(refusal(
            ErrorCode::SelfTarget,
            "You cannot ban yourself.",
        )));
    }
    let until = now.plus(std::time::Duration::from_secs(minutes * 60));
    let record = Ban {
        room: room.clone(),
        entry: Ban::entry_of(&user_id),
        user_id: user_id.clone(),
        until,
        reason: reason.clone(),
        banned_by: caller.user_id().unwrap_or_default().to_owned(),
        banned_at: now,
        ttl: until
            .plus(crate::limits::BAN_TTL_MARGIN)
            .epoch_millis()
            .div_euclid(1000),
    };
    chat.store
        .put_ban(&record)
        .await
        .map_err(Refused::failed("could not store the ban"))?;
    // The ban holds from here on (`$connect` reads it); now out with
    // whoever of theirs is in the room.
    let connections = chat
        .store
        .user_connections(&user_id)
        .await
        .map_err(Refused::failed(
            "could not find the banned user's connections",
        ))?;
    let mut removed = 0;
    for (connection_id, _) in connections.iter().filter(|(_, at)| at == room) {
        let removal = Removal {
            reason: reason.clone(),
            banned_until: Some(until),
        };
        take_out(chat, connection_id, room, removal, now).await?;
        removed += 1;
    }
    let frame = ServerFrame::moderated(
        Action::Ban,
        format!(
            "Banned {user_id} from {room} until {until}; {removed} of their connections removed."
        ),
        ModerationTarget {
            user_id: Some(user_id.clone()),
            banned_until: Some(until),
            ..ModerationTarget::default()
        },
    );
    Ok((
        frame,
        Audited {
            user_id: Some(user_id),
            reason,
            minutes: Some(minutes),
            ..Audited::default()
        },
    ))
}

/// The user a ban names: given, or a connection's in this room.
async fn banned_user(chat: &Chat, room: &Room, target: BanTarget) -> Result<String, Refused> {
    let connection_id = match target {
        BanTarget::User(user_id) => return Ok(user_id),
        BanTarget::Connection(connection_id) => connection_id,
    };
    let sender = chat
        .store
        .sender(&connection_id)
        .await
        .map_err(Refused::failed("could not read the connection to ban"))?
        .ok_or_else(|| Refused::answer(no_connection(&connection_id)))?;
    if &sender.room != room {
        return Err(Refused::answer(other_room("That connection")));
    }
    sender.user_id.ok_or_else(|| {
        Refused::answer(refusal(
            ErrorCode::InvalidRequest,
            "That connection is not signed in, so there is no user to ban; remove it instead.",
        ))
    })
}

async fn delete(
    chat: &Chat,
    caller: &Caller<'_>,
    room: &Room,
    message_id: &str,
    now: Timestamp,
) -> Result<Done, Refused> {
    let message = chat
        .store
        .message(message_id)
        .await
        .map_err(Refused::failed("could not read the message to delete"))?
        .ok_or_else(|| {
            Refused::answer(refusal(
                ErrorCode::NotFound,
                "No message has that id (or it has expired); nothing was deleted.",
            ))
        })?;
    if &message.room != room {
        return Err(Refused::answer(other_room("That message")));
    }
    if message.deleted.is_some() {
        return Err(Refused::answer(already_deleted()));
    }
    let by = caller.may_delete(&message)?;
    let deletion = Deletion {
        at: now,
        by,
        connection_id: caller.connection_id.to_owned(),
        user_id: caller.user_id().map(str::to_owned),
    };
    let written = chat
        .store
        .tombstone(message_id, &deletion)
        .await
        .map_err(Refused::failed("could not delete the message"))?;
    if written == WriteOutcome::ConditionFailed {
        return Err(Refused::answer(already_deleted()));
    }
    let frame = ServerFrame::deleted(room, message_id, by, now).to_json();
    let report = broadcast(chat, &frame, Audience::room(room), FanoutKind::Message).await;
    if report.missed_anyone() {
        warn!(
            failed = report.failed,
            "the deletion did not reach everyone"
        );
    }
    let answer = ServerFrame::moderated(
        Action::Delete,
        "Deleted the message.".to_owned(),
        ModerationTarget {
            message_id: Some(message_id.to_owned()),
            ..ModerationTarget::default()
        },
    );
    Ok((
        answer,
        Audited {
            connection_id: Some(message.connection_id),
            user_id: message.user_id,
            message_id: Some(message_id.to_owned()),
            ..Audited::default()
        },
    ))
}

/// Takes a connection out of its room: its session closed as a removal
/// (the stream processor tells the room who was removed), the reason posted
/// to it, then the connection closed (`DeleteConnection`) and its row
/// deleted. The session first: once closed, the repair and `$disconnect`
/// leave it as it is.
async fn take_out(
    chat: &Chat,
    connection_id: &str,
    room: &Room,
    removal: Removal,
    now: Timestamp,
) -> Result<(), Refused> {
    let frame = ServerFrame::removed(room, &removal).to_json();
    chat.store
        .close_session(connection_id, &SessionClose::removed(now, removal))
        .await
        .map_err(Refused::failed(
            "could not close the removed connection's session",
        ))?;
    match chat.management.post(connection_id, frame.into()).await {
        Delivery::Delivered | Delivery::Gone => {}
        Delivery::Failed(failure) => {
            warn!(error = %failure, %connection_id, "could not tell a removed connection why")
        }
    }
    match chat.management.close(connection_id).await {
        Delivery::Delivered | Delivery::Gone => {}
        Delivery::Failed(failure) => {
            error!(error.code = failure.code.as_deref(), error.request_id = failure.request_id.as_deref(), error = %failure, %connection_id, "could not close a removed connection");
            return Err(Refused::answer(refusal(
                ErrorCode::Internal,
                "The server could not close that connection; please try again.",
            )));
        }
    }
    if let Err(failure) = chat.store.delete_connection(connection_id).await {
        // Its `$disconnect` deletes it too.
        warn!(error = %failure, %connection_id, "could not delete a removed connection's row");
    }
    Ok(())
}

fn no_connection(connection_id: &str) -> ServerFrame {
    refusal(
        ErrorCode::NotFound,
        &format!("No connection {connection_id} is open; nothing was done."),
    )
}

fn other_room(what: &str) -> ServerFrame {
    refusal(
        ErrorCode::OtherRoom,
        &format!("{what} is in another room; you can act only in your own. Nothing was done."),
    )
}

fn already_deleted() -> ServerFrame {
    refusal(
        ErrorCode::AlreadyDeleted,
        "That message is already deleted.",
    )
}
