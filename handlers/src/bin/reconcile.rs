//! The scheduled repair's Lambda function (EventBridge, every 15 minutes):
//! closes the sessions left open by a lost `$disconnect` or a failed close
//! (handlers/src/reconcile.rs). Its event is the schedule's, and unused; it
//! answers what it did.
#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let chat = handlers::lambda::start().await?;
    handlers::lambda::run_until_deadline(|_: serde_json::Value, deadline| {
        handlers::reconcile::scheduled(&chat, deadline)
    })
    .await
}
