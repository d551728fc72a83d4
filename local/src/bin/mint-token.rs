//! `mint-token`: signs a test token for the local stack's sign-in, so a
//! developer can try `chat-local --auth-jwt-secret …` without an identity
//! provider. Prints the token; pass it as `?token=` or `Authorization`.
//!
//!   cargo run -p chat-local --bin mint-token -- --secret s3cret --sub alice --name Alice

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::Parser;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::json;

/// Signs a JWT for the local stack's sign-in (test use only).
#[derive(Debug, Parser)]
#[command(name = "mint-token", version, about)]
struct Args {
    /// HS256 with this secret (the one given to chat-local's --auth-jwt-secret).
    #[arg(
        long,
        env = "AUTH_JWT_SECRET",
        hide_env_values = true,
        required_unless_present = "private_key"
    )]
    secret: Option<String>,
    /// RS256 or ES256 with the PEM (PKCS#8) private key in this file.
    #[arg(long, conflicts_with = "secret")]
    private_key: Option<PathBuf>,
    /// The user id (`sub`).
    #[arg(long)]
    sub: String,
    /// The display name claim.
    #[arg(long)]
    name: Option<String>,
    /// Seconds until the token expires.
    #[arg(long, default_value_t = 3600)]
    ttl_secs: u64,
    /// `iss`, if chat-local checks one.
    #[arg(long)]
    issuer: Option<String>,
    /// `aud`, if chat-local checks one.
    #[arg(long)]
    audience: Option<String>,
    /// `kid`, to pick a key out of a JWKS.
    #[arg(long)]
    kid: Option<String>,
    /// A room its holder may join (the `rooms` claim): a name, or a prefix
    /// such as `team-*`; repeatable.
    #[arg(long = "room")]
    rooms: Vec<String>,
    /// A role (the `roles` claim), e.g. `moderator`; repeatable.
    #[arg(long = "role")]
    roles: Vec<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match mint(&args) {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(problem) => {
            eprintln!("mint-token: {problem}");
            ExitCode::FAILURE
        }
    }
}

fn mint(args: &Args) -> Result<String, String> {
    let (algorithm, key) = match (&args.secret, &args.private_key) {
        (Some(secret), _) => (
            Algorithm::HS256,
            EncodingKey::from_secret(secret.as_bytes()),
        ),
        (None, Some(path)) => {
            let pem =
                std::fs::read(path).map_err(|error| format!("{}: {error}", path.display()))?;
            match EncodingKey::from_rsa_pem(&pem) {
                Ok(key) => (Algorithm::RS256, key),
                Err(_) => (
                    Algorithm::ES256,
                    EncodingKey::from_ec_pem(&pem).map_err(|_| {
                        format!("{}: not an RSA or EC private key in PEM", path.display())
                    })?,
                ),
            }
        }
        (None, None) => return Err("give --secret or --private-key".to_owned()),
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|error| error.to_string())?
        .as_secs();
    let mut claims = json!({ "sub": args.sub, "iat": now, "exp": now + args.ttl_secs });
    if let Some(name) = &args.name {
        claims["name"] = json!(name);
    }
    if let Some(issuer) = &args.issuer {
        claims["iss"] = json!(issuer);
    }
    if let Some(audience) = &args.audience {
        claims["aud"] = json!(audience);
    }
    if !args.rooms.is_empty() {
        claims["rooms"] = json!(args.rooms);
    }
    if !args.roles.is_empty() {
        claims["roles"] = json!(args.roles);
    }
    let mut header = Header::new(algorithm);
    header.kid = args.kid.clone();
    encode(&header, &claims, &key).map_err(|error| error.to_string())
}
