//! Optional sign-in: verifying the JSON Web Token a client presents on
//! `$connect`, in the Lambda REQUEST authorizer on AWS and in-process in the
//! local stack, with the same code and the same settings.
//!
//! The token comes from the `Authorization` header (`Bearer ` optional) or
//! the `token` query parameter, the only thing a browser's WebSocket can
//! send. Signatures are checked by the `jsonwebtoken` crate; this module
//! only chooses the key and the rules: HS256 with a shared secret, RS256 or
//! ES256 with a public key or a JWKS document; `exp` and `sub` required,
//! `nbf` honoured, a small clock skew allowed, issuer and audience when
//! configured. Reasons for a denial are logged, never sent, and the token
//! itself is never logged or stored.

use std::fmt;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use aws_smithy_runtime_api::client::http::SharedHttpConnector;

use aws_lambda_events::http::HeaderMap;
use aws_lambda_events::query_map::QueryMap;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde_json::{Map, Value};

use crate::access::{ClaimNames, Grants};
use crate::limits::{
    AUTH_CLOCK_SKEW, JWKS_FETCH_TIMEOUT, JWKS_REFRESH_INTERVAL, MAX_JWKS_BYTES, MAX_TOKEN_BYTES,
    MIN_SECRET_BYTES,
};
use crate::name::DisplayName;

/// Where the verifying keys come from.
#[derive(Clone, PartialEq, Eq)]
pub enum KeySource {
    /// HS256 with this shared secret.
    Secret(Vec<u8>),
    /// RS256 or ES256 (P-256) with this PEM public key.
    PublicKeyPem(String),
    /// RS256 or ES256 with the keys of this JWKS document, chosen by `kid`.
    Jwks(String),
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Secret(_) => f.write_str("Secret(…)"),
            Self::PublicKeyPem(_) => f.write_str("PublicKeyPem"),
            Self::Jwks(_) => f.write_str("Jwks"),
        }
    }
}

/// How tokens are verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthSettings {
    pub keys: KeySource,
    /// With [`KeySource::Jwks`]: where the identity provider publishes its
    /// current keys (`AUTH_JWKS_URL`). Fetched at start and again when a
    /// token names a `kid` no key has (at most once a
    /// [`JWKS_REFRESH_INTERVAL`]); the document of `keys` is the fallback
    /// while it cannot be fetched.
    pub jwks_url: Option<String>,
    /// The `iss` a token must carry, when set.
    pub issuer: Option<String>,
    /// An `aud` a token must carry, when set.
    pub audience: Option<String>,
    /// The claim holding the display name (default `name`).
    pub name_claim: String,
    /// The longest lifetime a token may have (`exp` after `iat`, or after
    /// now without `iat`), when set: a token valid for years is refused.
    pub max_lifetime: Option<std::time::Duration>,
    /// The claims holding the rooms its holder may join and their roles.
    pub claims: ClaimNames,
}

/// The claim of the display name, unless configured.
pub const DEFAULT_NAME_CLAIM: &str = "name";

impl AuthSettings {
    /// Verifying with `keys`, everything else as by default: no JWKS URL,
    /// issuer, audience or lifetime limit; the default claims.
    pub fn new(keys: KeySource) -> Self {
        Self {
            keys,
            jwks_url: None,
            issuer: None,
            audience: None,
            name_claim: DEFAULT_NAME_CLAIM.to_owned(),
            max_lifetime: None,
            claims: ClaimNames::default(),
        }
    }
}

/// Why the settings cannot verify anything.
#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    #[error("the HS256 secret is empty")]
    EmptySecret,
    #[error(
        "the HS256 secret is {bytes} bytes; it must be at least {MIN_SECRET_BYTES} (a short secret is guessed offline from a single token): make one with `openssl rand -base64 32`"
    )]
    WeakSecret { bytes: usize },
    #[error("the public key is neither an RSA nor a P-256 EC public key in PEM")]
    PublicKey,
    #[error("the JWKS document does not parse: {0}")]
    Jwks(String),
    #[error("the JWKS document has no RS256 or ES256 (P-256) key")]
    NoUsableKey,
    #[error("a JWKS URL needs a JWKS document to fall back on (AUTH_JWKS)")]
    JwksUrlWithoutDocument,
    #[error("the JWKS URL is not an http:// or https:// URL: {0}")]
    JwksUrl(String),
}

/// Who a verified token says the client is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The token's `sub`.
    pub user_id: String,
    /// The name claim, when it is a valid display name.
    pub name: Option<DisplayName>,
    /// The rooms it may join, and whether it moderates them.
    pub grants: Grants,
}

/// Why a connection was refused. Logged, and counted by reason
/// (`tokens_refused`); the client learns nothing but the refusal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Denial {
    #[error("no token: neither an Authorization header nor a token query parameter")]
    Missing,
    #[error("the token is not a well-formed JWT")]
    Malformed,
    #[error("the token's algorithm is not the one its key is for")]
    WrongAlgorithm,
    #[error("no configured key has the token's kid")]
    UnknownKey,
    #[error("the signature does not verify")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet (nbf)")]
    NotYetValid,
    #[error("the token's issuer is not the configured one")]
    WrongIssuer,
    #[error("the token's audience is not the configured one")]
    WrongAudience,
    #[error("the token lacks a required claim (exp, sub)")]
    MissingClaim,
    #[error("the token is valid for longer than the configured maximum lifetime")]
    TooLongLived,
    #[error("the token's rooms or roles claim is malformed")]
    MalformedClaim,
}

impl Denial {
    pub const ALL: [Self; 12] = [
        Self::Missing,
        Self::Malformed,
        Self::WrongAlgorithm,
        Self::UnknownKey,
        Self::BadSignature,
        Self::Expired,
        Self::NotYetValid,
        Self::WrongIssuer,
        Self::WrongAudience,
        Self::MissingClaim,
        Self::TooLongLived,
        Self::MalformedClaim,
    ];

    /// The value of the `reason` dimension of `tokens_refused`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Malformed => "malformed",
            Self::WrongAlgorithm => "wrong_algorithm",
            Self::UnknownKey => "unknown_key",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::WrongIssuer => "wrong_issuer",
            Self::WrongAudience => "wrong_audience",
            Self::MissingClaim => "missing_claim",
            Self::TooLongLived => "too_long_lived",
            Self::MalformedClaim => "malformed_claim",
        }
    }

    /// Logs and counts the refusal of a handshake for this reason.
    pub fn record(self) {
        tracing::info!(reason = %self, "refused a connection");
        metrics::counter!(crate::metric::TOKENS_REFUSED, crate::metric::REASON => self.as_str())
            .increment(1);
    }
}

/// One verifying key and the one algorithm it accepts.
struct Key {
    kid: Option<String>,
    algorithm: Algorithm,
    key: DecodingKey,
}

/// Verifies tokens; built once, at cold start.
pub struct Verifier {
    /// Replaced whole when the JWKS URL gives newer keys.
    keys: RwLock<Arc<Vec<Key>>>,
    by_kid: bool,
    /// Where newer keys come from, if anywhere.
    jwks: Option<JwksSource>,
    issuer: Option<String>,
    audience: Option<String>,
    name_claim: String,
    max_lifetime: Option<std::time::Duration>,
    claims: ClaimNames,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("keys", &self.current_keys().len())
            .field("jwks_url", &self.jwks.as_ref().map(|jwks| &jwks.url))
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    pub fn new(settings: AuthSettings) -> Result<Self, AuthConfigError> {
        let (keys, by_kid) = match &settings.keys {
            KeySource::Secret(secret) if secret.is_empty() => {
                return Err(AuthConfigError::EmptySecret);
            }
            KeySource::Secret(secret) if secret.len() < MIN_SECRET_BYTES => {
                return Err(AuthConfigError::WeakSecret {
                    bytes: secret.len(),
                });
            }
            KeySource::Secret(secret) => (
                vec![Key {
                    kid: None,
                    algorithm: Algorithm::HS256,
                    key: DecodingKey::from_secret(secret),
                }],
                false,
            ),
            KeySource::PublicKeyPem(pem) => (vec![public_key(pem.as_bytes())?], false),
            KeySource::Jwks(document) => (jwks_keys(document)?, true),
        };
        let jwks = match (&settings.jwks_url, &settings.keys) {
            (None, _) => None,
            (Some(url), KeySource::Jwks(_)) => Some(JwksSource::new(url)?),
            (Some(_), _) => return Err(AuthConfigError::JwksUrlWithoutDocument),
        };
        Ok(Self {
            keys: RwLock::new(Arc::new(keys)),
            by_kid,
            jwks,
            issuer: settings.issuer,
            audience: settings.audience,
            name_claim: settings.name_claim,
            max_lifetime: settings.max_lifetime,
            claims: settings.claims,
        })
    }

    /// The claim listing the rooms a token's holder may join.
    pub fn rooms_claim(&self) -> &str {
        &self.claims.rooms
    }

    /// Checks `token` against the keys it has now and says who it names.
    pub fn verify(&self, token: &str) -> Result<Identity, Denial> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(Denial::Malformed);
        }
        // An `alg` jsonwebtoken does not know (`none` among them) fails here.
        let header = decode_header(token).map_err(|_| Denial::Malformed)?;
        let keys = self.current_keys();
        let key = if self.by_kid {
            let kid = header.kid.as_deref().ok_or(Denial::UnknownKey)?;
            keys.iter()
                .find(|key| key.kid.as_deref() == Some(kid))
                .ok_or(Denial::UnknownKey)?
        } else {
            keys.first().ok_or(Denial::UnknownKey)?
        };
        if header.alg != key.algorithm {
            return Err(Denial::WrongAlgorithm);
        }
        let claims = decode::<Map<String, Value>>(token, &key.key, &self.validation(key.algorithm))
            .map_err(|error| denial(error.kind()))?
            .claims;
        let user_id = claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|sub| !sub.is_empty())
            .ok_or(Denial::MissingClaim)?
            .to_owned();
        if let Some(max) = self.max_lifetime {
            let expires = claims
                .get("exp")
                .and_then(Value::as_i64)
                .unwrap_or(i64::MAX);
            let from = claims
                .get("iat")
                .and_then(Value::as_i64)
                .unwrap_or_else(|| chrono::Utc::now().timestamp());
            if expires.saturating_sub(from) > i64::try_from(max.as_secs()).unwrap_or(i64::MAX) {
                return Err(Denial::TooLongLived);
            }
        }
        let grants = Grants::from_claims(&claims, &self.claims).map_err(|malformed| {
            // Which claim and why, never its value.
            tracing::info!(%malformed, "refused a token");
            Denial::MalformedClaim
        })?;
        let name = self.display_name(&claims);
        Ok(Identity {
            user_id,
            name,
            grants,
        })
    }

    /// The token's display name. A name claim that is not a valid display
    /// name (not a string, too long, control or bidi characters) signs its
    /// holder in without a name, said in a WARN naming the claim (never its
    /// value): not silently.
    fn display_name(&self, claims: &Map<String, Value>) -> Option<DisplayName> {
        let claim = claims.get(&self.name_claim)?;
        let parsed = match claim.as_str() {
            Some(name) => DisplayName::parse(name).map_err(|error| error.to_string()),
            None => Err("it is not a string".to_owned()),
        };
        match parsed {
            Ok(name) => Some(name),
            Err(why) => {
                tracing::warn!(
                    claim = %self.name_claim,
                    %why,
                    "the token's name claim is not a valid display name; signed in without a name"
                );
                None
            }
        }
    }

    /// [`Verifier::verify`], and when the token names a key no key has and
    /// there is a JWKS URL not asked for a [`JWKS_REFRESH_INTERVAL`]: the
    /// identity provider's current keys, and the token checked again
    /// against them (the provider rotated its keys).
    pub async fn verify_fresh(&self, token: &str) -> Result<Identity, Denial> {
        match self.verify(token) {
            Err(Denial::UnknownKey) if self.jwks.as_ref().is_some_and(JwksSource::may_fetch) => {
                if self.refresh().await.is_ok() {
                    self.verify(token)
                } else {
                    Err(Denial::UnknownKey)
                }
            }
            verdict => verdict,
        }
    }

    /// Fetches the JWKS URL's keys and uses them from now on; how many
    /// there are. Without a URL, nothing. A document that cannot be fetched
    /// or used changes nothing (the keys in use stay).
    pub async fn refresh(&self) -> Result<usize, String> {
        let Some(jwks) = &self.jwks else {
            return Ok(self.current_keys().len());
        };
        let fetched = jwks
            .fetch()
            .await
            .and_then(|document| jwks_keys(&document).map_err(|error| error.to_string()));
        match fetched {
            Ok(keys) => {
                let count = keys.len();
                *self
                    .keys
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(keys);
                tracing::info!(url = %jwks.url, keys = count, "sign-in keys fetched");
                Ok(count)
            }
            Err(problem) => {
                tracing::warn!(url = %jwks.url, %problem, "cannot fetch the sign-in keys; keeping those in use");
                Err(problem)
            }
        }
    }

    /// Gives the JWKS URL the HTTP client to fetch it with (HTTPS on Lambda,
    /// plain HTTP in the local stack).
    pub fn with_http(mut self, connector: SharedHttpConnector) -> Self {
        if let Some(jwks) = &mut self.jwks {
            jwks.connector = Some(connector);
        }
        self
    }

    fn current_keys(&self) -> Arc<Vec<Key>> {
        Arc::clone(
            &self
                .keys
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        )
    }

    fn validation(&self, algorithm: Algorithm) -> Validation {
        let mut validation = Validation::new(algorithm);
        validation.leeway = AUTH_CLOCK_SKEW.as_secs();
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        match &self.audience {
            Some(audience) => validation.set_audience(&[audience]),
            None => validation.validate_aud = false,
        }
        if let Some(issuer) = &self.issuer {
            validation.set_issuer(&[issuer]);
        }
        validation
    }
}

/// An identity provider's JWKS URL, and when it was last asked.
struct JwksSource {
    url: String,
    connector: Option<SharedHttpConnector>,
    last_fetch: Mutex<Option<Instant>>,
}

impl JwksSource {
    fn new(url: &str) -> Result<Self, AuthConfigError> {
        let url = url.trim();
        let parsed: aws_lambda_events::http::Uri = url
            .parse()
            .map_err(|_| AuthConfigError::JwksUrl(url.to_owned()))?;
        if !matches!(parsed.scheme_str(), Some("http" | "https")) || parsed.host().is_none() {
            return Err(AuthConfigError::JwksUrl(url.to_owned()));
        }
        Ok(Self {
            url: url.to_owned(),
            connector: None,
            last_fetch: Mutex::new(None),
        })
    }

    /// Whether a fetch for an unknown `kid` may start now: not within
    /// [`JWKS_REFRESH_INTERVAL`] of the last one, so tokens with made-up
    /// `kid`s cannot make every handshake ask the identity provider. (The
    /// fetch at start does not count: a rotation just after it is caught at
    /// once.)
    fn may_fetch(&self) -> bool {
        let mut last = self
            .last_fetch
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = Instant::now();
        if last.is_some_and(|at| now.duration_since(at) < JWKS_REFRESH_INTERVAL) {
            return false;
        }
        *last = Some(now);
        true
    }

    /// The document at the URL.
    async fn fetch(&self) -> Result<String, String> {
        use aws_smithy_runtime_api::client::http::HttpConnector;
        use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
        use aws_smithy_types::body::SdkBody;
        use http_body_util::{BodyExt, Limited};
        let connector = self
            .connector
            .as_ref()
            .ok_or("no HTTP client to fetch it with")?;
        let mut request = HttpRequest::new(SdkBody::empty());
        request
            .set_uri(self.url.as_str())
            .map_err(|error| error.to_string())?;
        request.headers_mut().insert("accept", "application/json");
        let response = tokio::time::timeout(JWKS_FETCH_TIMEOUT, connector.call(request))
            .await
            .map_err(|_| format!("no answer within {JWKS_FETCH_TIMEOUT:?}"))?
            .map_err(|error| crate::error::causes(&error))?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(format!("HTTP {status}"));
        }
        let body = Limited::new(response.into_body(), MAX_JWKS_BYTES)
            .collect()
            .await
            .map_err(|error| {
                format!("the document could not be read (over {MAX_JWKS_BYTES} bytes?): {error}")
            })?
            .to_bytes();
        String::from_utf8(body.to_vec()).map_err(|_| "the document is not UTF-8".to_owned())
    }
}

fn denial(kind: &ErrorKind) -> Denial {
    match kind {
        ErrorKind::InvalidSignature => Denial::BadSignature,
        ErrorKind::ExpiredSignature => Denial::Expired,
        ErrorKind::ImmatureSignature => Denial::NotYetValid,
        ErrorKind::InvalidIssuer => Denial::WrongIssuer,
        ErrorKind::InvalidAudience => Denial::WrongAudience,
        ErrorKind::InvalidAlgorithm => Denial::WrongAlgorithm,
        ErrorKind::MissingRequiredClaim(_) => Denial::MissingClaim,
        _ => Denial::Malformed,
    }
}

/// An RSA key means RS256, a P-256 key ES256.
fn public_key(pem: &[u8]) -> Result<Key, AuthConfigError> {
    let (algorithm, key) = if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
        (Algorithm::RS256, key)
    } else if let Ok(key) = DecodingKey::from_ec_pem(pem) {
        (Algorithm::ES256, key)
    } else {
        return Err(AuthConfigError::PublicKey);
    };
    Ok(Key {
        kid: None,
        algorithm,
        key,
    })
}

fn jwks_keys(document: &str) -> Result<Vec<Key>, AuthConfigError> {
    let set: JwkSet =
        serde_json::from_str(document).map_err(|error| AuthConfigError::Jwks(error.to_string()))?;
    let keys: Vec<Key> = set
        .keys
        .iter()
        .filter_map(|jwk| {
            let algorithm = match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => Algorithm::RS256,
                AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
                    Algorithm::ES256
                }
                _ => return None,
            };
            // A key that names another algorithm is not used for this one.
            let named = jwk.common.key_algorithm.map(Algorithm::try_from);
            if named.is_some_and(|named| named.ok() != Some(algorithm)) {
                return None;
            }
            Some(Key {
                kid: jwk.common.key_id.clone(),
                algorithm,
                key: DecodingKey::from_jwk(jwk).ok()?,
            })
        })
        .collect();
    if keys.is_empty() {
        return Err(AuthConfigError::NoUsableKey);
    }
    Ok(keys)
}

/// The token of a `$connect` request: the `Authorization` header (with or
/// without `Bearer `), else the `token` query parameter.
pub fn token_of<'a>(headers: &'a HeaderMap, query: &'a QueryMap) -> Option<&'a str> {
    let header = headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .map(|value| {
            let value = value.trim();
            match (value.get(..6), value.get(6..)) {
                (Some(scheme), Some(rest))
                    if scheme.eq_ignore_ascii_case("bearer")
                        && (rest.is_empty() || rest.starts_with(char::is_whitespace)) =>
                {
                    rest.trim()
                }
                _ => value,
            }
        })
        .filter(|token| !token.is_empty());
    header.or_else(|| query.first("token").filter(|token| !token.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::http::HeaderValue;

    #[test]
    fn the_token_comes_from_the_header_with_or_without_bearer_else_the_query() {
        let query: QueryMap =
            std::collections::HashMap::from([("token".to_owned(), "from-query".to_owned())]).into();
        let mut headers = HeaderMap::new();
        assert_eq!(token_of(&headers, &query), Some("from-query"));
        for (value, expected) in [
            ("Bearer abc", "abc"),
            ("bearer abc", "abc"),
            ("abc", "abc"),
            ("  BEARER   abc  ", "abc"),
        ] {
            headers.insert("authorization", HeaderValue::from_static(value));
            assert_eq!(token_of(&headers, &query), Some(expected), "{value}");
        }
        headers.insert("authorization", HeaderValue::from_static("Bearer "));
        assert_eq!(token_of(&headers, &QueryMap::default()), None);
    }

    #[test]
    fn every_denial_has_a_reason_of_its_own() {
        let mut reasons: Vec<&str> = Denial::ALL.iter().map(|denial| denial.as_str()).collect();
        reasons.sort_unstable();
        reasons.dedup();
        assert_eq!(reasons.len(), Denial::ALL.len());
    }

    #[test]
    fn settings_that_cannot_verify_are_refused_at_start() {
        let settings = AuthSettings::new;
        assert!(matches!(
            Verifier::new(settings(KeySource::Secret(vec![]))),
            Err(AuthConfigError::EmptySecret)
        ));
        assert!(matches!(
            Verifier::new(settings(KeySource::Secret(b"a".to_vec()))),
            Err(AuthConfigError::WeakSecret { bytes: 1 })
        ));
        assert!(matches!(
            Verifier::new(settings(KeySource::Secret([7; 31].to_vec()))),
            Err(AuthConfigError::WeakSecret { bytes: 31 })
        ));
        assert!(Verifier::new(settings(KeySource::Secret([7; 32].to_vec()))).is_ok());
        assert!(matches!(
            Verifier::new(settings(KeySource::PublicKeyPem("not a key".into()))),
            Err(AuthConfigError::PublicKey)
        ));
        assert!(matches!(
            Verifier::new(settings(KeySource::Jwks(r#"{"keys":[]}"#.into()))),
            Err(AuthConfigError::NoUsableKey)
        ));
        assert!(matches!(
            Verifier::new(settings(KeySource::Jwks("[".into()))),
            Err(AuthConfigError::Jwks(_))
        ));
        let secret = format!(
            "{:?}",
            settings(KeySource::Secret(
                b"hunter2hunter2hunter2hunter2hunter2".to_vec()
            ))
        );
        assert!(!secret.contains("hunter2"), "{secret}");
        let with_url = |keys, url: &str| AuthSettings {
            jwks_url: Some(url.to_owned()),
            ..settings(keys)
        };
        assert!(matches!(
            Verifier::new(with_url(
                KeySource::Secret([7; 32].to_vec()),
                "https://id.example.com/jwks"
            )),
            Err(AuthConfigError::JwksUrlWithoutDocument)
        ));
        let document = || {
            KeySource::Jwks(r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"a","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#.into())
        };
        for bad in ["ftp://id.example.com/jwks", "jwks.json", "https://"] {
            assert!(
                matches!(
                    Verifier::new(with_url(document(), bad)),
                    Err(AuthConfigError::JwksUrl(_))
                ),
                "{bad}"
            );
        }
        assert!(Verifier::new(with_url(document(), "https://id.example.com/jwks")).is_ok());
    }
}
