//! The stream processor's Lambda function.
#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let chat = handlers::lambda::start().await?;
    handlers::lambda::run(|event| stream_processor::handle(&chat, event)).await
}
