//! AWS Signature Version 4 for the Management API adapter, its only user:
//! one `PostToConnection` per recipient of every message.
//!
//! The SDK's signer derives the signing key (four HMACs) and builds the
//! canonical request through maps and formatted strings for every request:
//! 41% of a post's instructions on Lambda (docs/performance.md). This signer
//! derives the key once per credentials and UTC day (RustCrypto's
//! `Hmac<Sha256>`), keeps the keyed HMAC to clone for each signature, and
//! writes the canonical request straight into one buffer. Its output is
//! checked against the SDK's own signer (`aws-sigv4`) in the tests below.
//!
//! It signs what the adapter sends and nothing more general: a request
//! without a query string, with `host`, `x-amz-date` and, for temporary
//! credentials, `x-amz-security-token` as its signed headers.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};
use hmac::{Hmac, KeyInit, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// Credentials this close to their expiry are fetched again before signing,
/// so a request never goes out with credentials that lapse in flight.
const CREDENTIALS_REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// Characters SigV4 leaves as they are in a URI: RFC 3986's unreserved set.
pub const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The same, and `/`: a canonical URI keeps its path separators.
const UNRESERVED_AND_SLASH: &AsciiSet = &UNRESERVED.remove(b'/');

/// Why a request could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("no AWS credentials are configured")]
    NoCredentialsProvider,
    #[error("no AWS region is configured")]
    NoRegion,
    #[error("loading AWS credentials failed: {0}")]
    Credentials(String),
    #[error("the signing key could not be made")]
    Key,
}

/// The headers that sign one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// `x-amz-date`.
    pub amz_date: String,
    /// `authorization`.
    pub authorization: String,
    /// `x-amz-security-token`, for temporary credentials.
    pub security_token: Option<String>,
}

/// Signs requests to one service in one region, with credentials from a
/// provider.
#[derive(Debug)]
pub struct Signer {
    service: &'static str,
    region: Option<String>,
    credentials: Option<SharedCredentialsProvider>,
    key: RwLock<Option<Arc<DayKey>>>,
}

/// What signing needs that only changes with the credentials or the day.
#[derive(Debug)]
struct DayKey {
    credentials: Credentials,
    /// The UTC day the key is for.
    day: NaiveDate,
    /// `AWS4-HMAC-SHA256 Credential=<key id>/<scope>, SignedHeaders=`.
    authorization_prefix: String,
    /// `<day>/<region>/<service>/aws4_request`.
    scope: String,
    /// The signing key, keyed into an HMAC once; cloned for each signature.
    mac: HmacSha256,
}

impl Signer {
    pub fn new(
        service: &'static str,
        region: Option<String>,
        credentials: Option<SharedCredentialsProvider>,
    ) -> Self {
        Self {
            service,
            region,
            credentials,
            key: RwLock::new(None),
        }
    }

    /// Signs `method` (`POST`, `GET`) of `body` to `path` (already
    /// percent-encoded as it will be sent, without a query) on `host`, at
    /// `now`, with credentials from the signer's provider.
    pub async fn sign(
        &self,
        method: &str,
        host: &str,
        path: &str,
        body: &[u8],
        now: SystemTime,
    ) -> Result<Signature, SignError> {
        let time = DateTime::<Utc>::from(now);
        let key = self.key_for(&time, now).await?;
        Ok(Self::signature(&key, &time, method, host, path, body))
    }

    /// [`Signer::sign`] with `credentials` given (the SDK client's identity,
    /// which its identity cache keeps): no call to the provider.
    pub fn sign_with(
        &self,
        credentials: &Credentials,
        request: Request<'_>,
        now: SystemTime,
    ) -> Result<Signature, SignError> {
        let time = DateTime::<Utc>::from(now);
        let day = time.date_naive();
        let cached = self
            .key
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .filter(|key| key.day == day && same(&key.credentials, credentials));
        let key = match cached {
            Some(key) => key,
            None => {
                let region = self.region.as_deref().ok_or(SignError::NoRegion)?;
                let key = Arc::new(DayKey::derive(
                    credentials.clone(),
                    day,
                    region,
                    self.service,
                )?);
                *self.key.write().unwrap_or_else(PoisonError::into_inner) = Some(key.clone());
                key
            }
        };
        let Request {
            method,
            host,
            path,
            body,
        } = request;
        Ok(Self::signature(&key, &time, method, host, path, body))
    }

    fn signature(
        key: &DayKey,
        time: &DateTime<Utc>,
        method: &str,
        host: &str,
        path: &str,
        body: &[u8],
    ) -> Signature {
        let amz_date = amz_date(time);
        let token = key.credentials.session_token();
        let signed_headers = if token.is_some() {
            "host;x-amz-date;x-amz-security-token"
        } else {
            "host;x-amz-date"
        };

        let mut canonical = String::with_capacity(256 + path.len());
        canonical.push_str(method);
        canonical.push('\n');
        canonical.extend(utf8_percent_encode(path, UNRESERVED_AND_SLASH));
        canonical.push_str("\n\nhost:");
        canonical.push_str(host.trim());
        canonical.push_str("\nx-amz-date:");
        canonical.push_str(&amz_date);
        if let Some(token) = token {
            canonical.push_str("\nx-amz-security-token:");
            canonical.push_str(token.trim());
        }
        canonical.push_str("\n\n");
        canonical.push_str(signed_headers);
        canonical.push('\n');
        push_hex(&mut canonical, &Sha256::digest(body));

        let mut string_to_sign = String::with_capacity(160);
        string_to_sign.push_str(ALGORITHM);
        string_to_sign.push('\n');
        string_to_sign.push_str(&amz_date);
        string_to_sign.push('\n');
        string_to_sign.push_str(&key.scope);
        string_to_sign.push('\n');
        push_hex(&mut string_to_sign, &Sha256::digest(canonical.as_bytes()));

        let mut authorization = String::with_capacity(key.authorization_prefix.len() + 120);
        authorization.push_str(&key.authorization_prefix);
        authorization.push_str(signed_headers);
        authorization.push_str(", Signature=");
        let mut mac = key.mac.clone();
        mac.update(string_to_sign.as_bytes());
        push_hex(&mut authorization, &mac.finalize().into_bytes());

        Signature {
            amz_date,
            authorization,
            security_token: token.map(str::to_owned),
        }
    }

    /// The day's key, derived again when the day or the credentials change.
    async fn key_for(
        &self,
        time: &DateTime<Utc>,
        now: SystemTime,
    ) -> Result<Arc<DayKey>, SignError> {
        let day = time.date_naive();
        let cached = self
            .key
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(key) = cached.filter(|key| key.day == day && !expiring(&key.credentials, now)) {
            return Ok(key);
        }
        let region = self.region.as_deref().ok_or(SignError::NoRegion)?;
        let provider = self
            .credentials
            .as_ref()
            .ok_or(SignError::NoCredentialsProvider)?;
        let credentials = provider
            .provide_credentials()
            .await
            .map_err(|error| SignError::Credentials(crate::error::causes(&error)))?;
        let key = Arc::new(DayKey::derive(credentials, day, region, self.service)?);
        *self.key.write().unwrap_or_else(PoisonError::into_inner) = Some(key.clone());
        Ok(key)
    }
}

/// What one request signs: its method, `host`, percent-encoded path (no
/// query) and body.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    pub method: &'a str,
    pub host: &'a str,
    pub path: &'a str,
    pub body: &'a [u8],
}

/// Whether two credentials are the same key (a day key derived for one
/// serves the other).
fn same(a: &Credentials, b: &Credentials) -> bool {
    a.access_key_id() == b.access_key_id()
        && a.secret_access_key() == b.secret_access_key()
        && a.session_token() == b.session_token()
}

fn expiring(credentials: &Credentials, now: SystemTime) -> bool {
    credentials
        .expiry()
        .is_some_and(|expiry| expiry <= now + CREDENTIALS_REFRESH_MARGIN)
}

impl DayKey {
    /// SigV4's signing key: the secret HMACs the day, the region, the
    /// service and `aws4_request` in turn.
    fn derive(
        credentials: Credentials,
        day: NaiveDate,
        region: &str,
        service: &str,
    ) -> Result<Self, SignError> {
        let yyyymmdd = day.format("%Y%m%d").to_string();
        let secret = format!("AWS4{}", credentials.secret_access_key());
        let signing_key = [
            yyyymmdd.as_bytes(),
            region.as_bytes(),
            service.as_bytes(),
            b"aws4_request",
        ]
        .into_iter()
        .try_fold(secret.into_bytes(), |key, part| {
            keyed(&key).map(|mut mac| {
                mac.update(part);
                mac.finalize().into_bytes().to_vec()
            })
        })?;
        let scope = format!("{yyyymmdd}/{region}/{service}/aws4_request");
        let authorization_prefix = format!(
            "{ALGORITHM} Credential={}/{scope}, SignedHeaders=",
            credentials.access_key_id()
        );
        Ok(Self {
            credentials,
            day,
            authorization_prefix,
            scope,
            mac: keyed(&signing_key)?,
        })
    }
}

/// An HMAC-SHA256 keyed with `key` (any length is a valid HMAC key; the
/// error cannot happen, and is reported rather than assumed).
fn keyed(key: &[u8]) -> Result<HmacSha256, SignError> {
    HmacSha256::new_from_slice(key).map_err(|_| SignError::Key)
}

/// `YYYYMMDD'T'HHMMSS'Z'`, written digit by digit: `format!` costs more
/// than the rest of the string handling of a signature.
fn amz_date(time: &DateTime<Utc>) -> String {
    let mut out = String::with_capacity(16);
    push_digits(&mut out, time.year().unsigned_abs(), 4);
    push_digits(&mut out, time.month(), 2);
    push_digits(&mut out, time.day(), 2);
    out.push('T');
    push_digits(&mut out, time.hour(), 2);
    push_digits(&mut out, time.minute(), 2);
    push_digits(&mut out, time.second(), 2);
    out.push('Z');
    out
}

fn push_digits(out: &mut String, value: u32, width: u32) {
    for place in (0..width).rev() {
        let digit = value / 10u32.pow(place) % 10;
        out.push(char::from(b'0' + digit as u8));
    }
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    use aws_sigv4::sign::v4::SigningParams;
    use aws_smithy_runtime_api::client::identity::Identity;

    const REGION: &str = "eu-west-1";
    const SERVICE: &str = "execute-api";

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn credentials(token: Option<&str>) -> Credentials {
        Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            token.map(str::to_owned),
            None,
            "test",
        )
    }

    fn signer(credentials: Credentials) -> Signer {
        Signer::new(
            SERVICE,
            Some(REGION.to_owned()),
            Some(SharedCredentialsProvider::new(credentials)),
        )
    }

    /// What the SDK's signer puts in `authorization` for the same request.
    fn reference(
        method: &str,
        credentials: &Credentials,
        host: &str,
        path: &str,
        body: &[u8],
        now: SystemTime,
    ) -> String {
        let identity = Identity::from(credentials.clone());
        let params = SigningParams::builder()
            .identity(&identity)
            .region(REGION)
            .name(SERVICE)
            .time(now)
            .settings(SigningSettings::default())
            .build()
            .expect("complete signing params");
        let uri = format!("https://{host}{path}");
        let request = SignableRequest::new(
            method,
            &uri,
            [("host", host)].into_iter(),
            SignableBody::Bytes(body),
        )
        .expect("a signable request");
        let (instructions, _) = sign(request, &params.into()).expect("signed").into_parts();
        instructions
            .headers()
            .find(|(name, _)| *name == "authorization")
            .map(|(_, value)| value.to_owned())
            .expect("an authorization header")
    }

    #[tokio::test]
    async fn signatures_match_the_sdks_signer() {
        let host = "abc123.execute-api.eu-west-1.amazonaws.com";
        // Connection ids end in `=`, which the path carries as `%3D`; the
        // canonical URI encodes it again (and `@`), as the SDK does for
        // every service but S3.
        let path = format!(
            "/production/@connections/{}",
            utf8_percent_encode("L0SM9cOFvHcCIhw=", UNRESERVED)
        );
        let cases: [(Option<&str>, &[u8], u64); 4] = [
            (None, br#"{"type":"message"}"#, 1_764_288_000),
            (
                Some("FwoGZXIvYXdzEJr//////////wEaDOEXAMPLE"),
                b"",
                1_764_374_399,
            ),
            (Some("token"), "héllo ✓".as_bytes(), 1_700_000_000),
            (None, &[0u8; 1000], 1_800_000_123),
        ];
        for (token, body, secs) in cases {
            let credentials = credentials(token);
            let ours = signer(credentials.clone())
                .sign("POST", host, &path, body, at(secs))
                .await
                .expect("signed");
            assert_eq!(
                ours.authorization,
                reference("POST", &credentials, host, &path, body, at(secs))
            );
            assert_eq!(ours.security_token.as_deref(), token);
        }
    }

    #[tokio::test]
    async fn a_local_endpoint_signs_its_port_and_stage() {
        let credentials = credentials(None);
        let host = "127.0.0.1:8080";
        let path = "/dev/@connections/abc_DEF-1";
        let now = at(1_764_288_000);
        // PostToConnection, and GetConnection: a GET without a body.
        for (method, body) in [("POST", &b"{}"[..]), ("GET", &b""[..])] {
            let ours = signer(credentials.clone())
                .sign(method, host, path, body, now)
                .await
                .expect("signed");
            assert_eq!(
                ours.authorization,
                reference(method, &credentials, host, path, body, now),
                "{method}"
            );
            assert_eq!(ours.amz_date, "20251128T000000Z");
        }
    }

    #[tokio::test]
    async fn the_key_follows_the_day() {
        let credentials = credentials(None);
        let signer = signer(credentials.clone());
        let path = "/dev/@connections/a";
        let before_midnight = at(1_764_374_399);
        let after_midnight = at(1_764_374_400);
        for now in [before_midnight, after_midnight, before_midnight] {
            let ours = signer
                .sign("POST", "h", path, b"x", now)
                .await
                .expect("signed");
            assert_eq!(
                ours.authorization,
                reference("POST", &credentials, "h", path, b"x", now)
            );
        }
    }

    #[tokio::test]
    async fn expiring_credentials_are_fetched_again() {
        #[derive(Debug)]
        struct Rotating(std::sync::atomic::AtomicUsize);
        impl ProvideCredentials for Rotating {
            fn provide_credentials<'a>(
                &'a self,
            ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
            where
                Self: 'a,
            {
                let n = self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                aws_credential_types::provider::future::ProvideCredentials::ready(Ok(
                    Credentials::new(
                        format!("KEY{n}"),
                        "secret",
                        None,
                        Some(at(1_764_288_000 + 3600)),
                        "rotating",
                    ),
                ))
            }
        }
        let signer = Signer::new(
            SERVICE,
            Some(REGION.to_owned()),
            Some(SharedCredentialsProvider::new(Rotating(0.into()))),
        );
        let key_id = |signature: Signature| {
            signature
                .authorization
                .split_once("Credential=")
                .and_then(|(_, rest)| rest.split_once('/'))
                .map(|(id, _)| id.to_owned())
                .expect("a credential")
        };
        let early = signer
            .sign("POST", "h", "/p", b"", at(1_764_288_000))
            .await
            .expect("signed");
        let still = signer
            .sign("POST", "h", "/p", b"", at(1_764_288_000 + 60))
            .await
            .expect("signed");
        let near_expiry = signer
            .sign("POST", "h", "/p", b"", at(1_764_288_000 + 3600 - 60))
            .await
            .expect("signed");
        assert_eq!(key_id(early), "KEY0");
        assert_eq!(key_id(still), "KEY0", "cached while valid");
        assert_eq!(key_id(near_expiry), "KEY1", "fetched again near expiry");
    }

    #[tokio::test]
    async fn missing_configuration_is_named() {
        let no_region = Signer::new(
            SERVICE,
            None,
            Some(SharedCredentialsProvider::new(credentials(None))),
        );
        assert!(matches!(
            no_region.sign("POST", "h", "/p", b"", at(0)).await,
            Err(SignError::NoRegion)
        ));
        let no_credentials = Signer::new(SERVICE, Some(REGION.to_owned()), None);
        assert!(matches!(
            no_credentials.sign("POST", "h", "/p", b"", at(0)).await,
            Err(SignError::NoCredentialsProvider)
        ));
    }
}
