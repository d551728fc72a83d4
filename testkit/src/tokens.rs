//! Tokens for sign-in tests: good ones signed with the test keys in
//! `testkit/fixtures/keys` (or a shared secret), and every kind of bad one.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

/// The shared secret of the HS256 tests.
/// 32 bytes: the shortest HS256 secret the chat accepts.
pub const SECRET: &str = "a test secret, for tests only!!!";

/// The path of a test key file.
pub fn key_path(name: &str) -> String {
    format!("{}/fixtures/keys/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(key_path(name)).expect("a test key")
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs() as i64)
        .unwrap_or_default()
}

/// Claims valid for an hour, for `sub`, with `name` if given.
pub fn claims(sub: &str, name: Option<&str>) -> Value {
    let mut claims = json!({ "sub": sub, "iat": now(), "exp": now() + 3600 });
    if let Some(name) = name {
        claims["name"] = json!(name);
    }
    claims
}

pub fn hs256(claims: &Value, secret: &str) -> String {
    sign(
        Algorithm::HS256,
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
        None,
    )
}

pub fn rs256(claims: &Value, kid: Option<&str>) -> String {
    let key = EncodingKey::from_rsa_pem(&read("rsa-private.pem")).expect("the RSA test key");
    sign(Algorithm::RS256, claims, &key, kid)
}

pub fn es256(claims: &Value, kid: Option<&str>) -> String {
    let key = EncodingKey::from_ec_pem(&read("ec-private.pem")).expect("the EC test key");
    sign(Algorithm::ES256, claims, &key, kid)
}

/// Signed with the right secret, under another HMAC algorithm.
pub fn hs384(claims: &Value, secret: &str) -> String {
    sign(
        Algorithm::HS384,
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
        None,
    )
}

/// `{"alg":"none"}`, no signature: the classic forgery.
pub fn unsigned(claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{header}.{payload}.")
}

/// A good token whose payload was changed after signing.
pub fn tampered(token: &str, claims: &Value) -> String {
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[1] = URL_SAFE_NO_PAD.encode(claims.to_string());
    parts.join(".")
}

/// A JWKS document with the RSA test key under `kid`.
pub fn jwks(kid: &str) -> String {
    let key = EncodingKey::from_rsa_pem(&read("rsa-private.pem")).expect("the RSA test key");
    jwks_of(&key, Algorithm::RS256, kid)
}

/// A JWKS document with the EC (P-256) test key under `kid`: the key an
/// identity provider rotates to, in the tests.
pub fn ec_jwks(kid: &str) -> String {
    let key = EncodingKey::from_ec_pem(&read("ec-private.pem")).expect("the EC test key");
    jwks_of(&key, Algorithm::ES256, kid)
}

fn jwks_of(key: &EncodingKey, algorithm: Algorithm, kid: &str) -> String {
    let mut jwk = Jwk::from_encoding_key(key, algorithm).expect("a JWK");
    jwk.common.key_id = Some(kid.to_owned());
    serde_json::to_string(&JwkSet { keys: vec![jwk] }).expect("JSON")
}

fn sign(algorithm: Algorithm, claims: &Value, key: &EncodingKey, kid: Option<&str>) -> String {
    let mut header = Header::new(algorithm);
    header.kid = kid.map(str::to_owned);
    encode(&header, claims, key).expect("signs")
}
