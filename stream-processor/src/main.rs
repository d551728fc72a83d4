//! The stream processor's Lambda function.
use std::convert::Infallible;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let chat = handlers::lambda::start().await?;
    handlers::lambda::run(|event| async {
        // Failed records come back in the response, never as a failed batch.
        Ok::<_, Infallible>(stream_processor::handle(&chat, event).await)
    })
    .await
}
