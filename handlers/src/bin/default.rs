//! The `$default` route's Lambda function: it answers from the event alone,
//! so it builds no AWS clients.
#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    handlers::lambda::run(handlers::default).await
}
