//! The stream processor's Lambda function.
#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    handlers::lambda::init_logging();
    let chat = handlers::lambda::chat_from_env().await?;
    // Stream events name no API: the Management API endpoint must be set.
    chat.management.configured()?;
    handlers::lambda::run(|event| stream_processor::handle(chat, event)).await
}
