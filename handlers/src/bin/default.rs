//! The `$default` route's Lambda function: it answers from the event alone,
//! so it builds no AWS clients.
#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    handlers::lambda::init_logging();
    handlers::lambda::run(handlers::default).await
}
