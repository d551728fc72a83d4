//! The `$connect` REQUEST authorizer's Lambda function (deployed only when
//! sign-in is turned on). It verifies tokens; with a JWKS URL it fetches
//! the identity provider's keys at cold start and when a token names one it
//! does not have.
#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    handlers::lambda::init_logging();
    let settings = handlers::auth::AuthSettings::from_env()?;
    let verifier =
        handlers::auth::Verifier::new(settings)?.with_http(handlers::lambda::https_connector());
    // A failed fetch keeps the deployed document's keys (and says so).
    let _ = verifier.refresh().await;
    handlers::lambda::run(|event| handlers::authorize(&verifier, event)).await
}
