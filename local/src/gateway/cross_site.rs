//! What keeps another web site from using a chat that runs on this machine
//! through its visitors' browsers:
//!
//! - **`Host`**: every request must name this stack (a loopback name or
//!   address, the `--listen` address, or an `--allowed-host`), so a page
//!   whose host name an attacker resolves to 127.0.0.1 (DNS rebinding)
//!   reaches nothing;
//! - **`Origin`** on a WebSocket upgrade: none (wscat, SDKs), the stack's
//!   own page, or an `--allowed-origin`; any other site's page is refused;
//! - the **Management API** refuses every request a browser made (it carries
//!   `Origin` or `Sec-Fetch-Site`): a cross-site `POST` with `text/plain`
//!   needs no preflight, and the page never calls it; the AWS SDKs, boto3
//!   and curl send neither;
//! - the page's **headers**: `Content-Security-Policy` (with
//!   `frame-ancestors 'none'`, which a `<meta>` cannot set),
//!   `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`.

use std::net::{IpAddr, SocketAddr};

use axum::http::{HeaderMap, HeaderValue, header};

/// The page's and the dashboard's policy: their own scripts and styles
/// only, WebSockets anywhere (the page connects where its user says), no
/// framing by anyone.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    connect-src 'self' ws: wss:; img-src 'self' data:; object-src 'none'; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

/// Who may reach this stack from a browser.
#[derive(Clone, Debug, Default)]
pub struct CrossSite {
    /// The `--listen` address.
    pub listen: Option<SocketAddr>,
    /// `--allowed-host`: more host names requests may carry.
    pub allowed_hosts: Vec<String>,
    /// `--allowed-origin`: more page origins that may open WebSockets
    /// (`http://host:port`; `null` for `file://` pages; `*` for any).
    pub allowed_origins: Vec<String>,
}

impl CrossSite {
    /// Whether the request's `Host` names this stack; `Err` says why not.
    pub fn check_host(&self, headers: &HeaderMap) -> Result<(), String> {
        let Some(host) = headers.get(header::HOST) else {
            // No browser sends a request without one.
            return Ok(());
        };
        let host = host.to_str().unwrap_or_default();
        let name = host_name(host);
        let ip = name.trim_matches(['[', ']']).parse::<IpAddr>().ok();
        let listen_ip = self.listen.map(|listen| listen.ip());
        let allowed = name.eq_ignore_ascii_case("localhost")
            || name.to_ascii_lowercase().ends_with(".localhost")
            || ip.is_some_and(|ip| ip.to_canonical().is_loopback())
            || ip.is_some_and(|ip| Some(ip) == listen_ip)
            // Listening on every address: any address literal names it (a
            // rebinding attack needs a host name).
            || (ip.is_some() && listen_ip.is_some_and(|listen| listen.is_unspecified()))
            || self
                .allowed_hosts
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(name));
        if allowed {
            Ok(())
        } else {
            Err(format!(
                "this chat answers for loopback names and addresses and its --listen address, not for {name:?}: \
                 a page whose host name resolves to this machine is not this chat (DNS rebinding). \
                 Allow a name with --allowed-host"
            ))
        }
    }

    /// Whether a WebSocket upgrade's `Origin` may connect; `Err` says why not.
    pub fn check_origin(&self, headers: &HeaderMap) -> Result<(), String> {
        let Some(origin) = headers.get(header::ORIGIN) else {
            // Not a browser: wscat, the SDKs, the bench.
            return Ok(());
        };
        let origin = origin.to_str().unwrap_or_default();
        let own = headers
            .get(header::HOST)
            .and_then(|host| host.to_str().ok())
            .is_some_and(|host| {
                origin.eq_ignore_ascii_case(&format!("http://{host}"))
                    || origin.eq_ignore_ascii_case(&format!("https://{host}"))
            });
        let listed = self
            .allowed_origins
            .iter()
            .any(|allowed| allowed == "*" || allowed.eq_ignore_ascii_case(origin));
        if own || listed {
            Ok(())
        } else {
            Err(format!(
                "a page from {origin} may not connect to this chat: only its own page may \
                 (allow another origin with --allowed-origin)"
            ))
        }
    }
}

/// Whether a request came from a browser (which the Management API never
/// serves): it carries `Origin` or a `Sec-Fetch-Site` other than `none` (a
/// user typing the URL).
pub fn from_a_browser(headers: &HeaderMap) -> bool {
    headers.contains_key(header::ORIGIN)
        || headers
            .get("sec-fetch-site")
            .is_some_and(|site| site.as_bytes() != b"none")
}

/// The page's security headers, on a response.
pub fn add_page_headers(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

/// `127.0.0.1` of `127.0.0.1:8080`, `[::1]` of `[::1]:8080`.
fn host_name(host: &str) -> &str {
    if host.starts_with('[') {
        return host
            .split_once(']')
            .map_or(host, |(name, _)| &host[..=name.len()]);
    }
    host.rsplit_once(':').map_or(host, |(name, _)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).expect("a header value"));
        }
        map
    }

    fn stack(listen: &str) -> CrossSite {
        CrossSite {
            listen: Some(listen.parse().expect("an address")),
            ..CrossSite::default()
        }
    }

    #[test]
    fn only_names_of_this_stack_are_served() {
        let local = stack("127.0.0.1:8080");
        for (host, served) in [
            ("127.0.0.1:8080", true),
            ("localhost:8080", true),
            ("LOCALHOST", true),
            ("chat.localhost:8080", true),
            ("[::1]:8080", true),
            ("127.0.0.2", true),
            ("evil.example:8080", false),
            ("evil.example", false),
            ("192.168.1.5:8080", false),
            ("[2001:db8::1]:8080", false),
        ] {
            assert_eq!(
                local.check_host(&headers(&[("host", host)])).is_ok(),
                served,
                "{host}"
            );
        }
        let everywhere = stack("0.0.0.0:8080");
        assert!(
            everywhere
                .check_host(&headers(&[("host", "192.168.1.5:8080")]))
                .is_ok()
        );
        assert!(
            everywhere
                .check_host(&headers(&[("host", "evil.example:8080")]))
                .is_err()
        );
        let named = CrossSite {
            allowed_hosts: vec!["chat.internal".into()],
            ..stack("0.0.0.0:8080")
        };
        assert!(
            named
                .check_host(&headers(&[("host", "chat.internal:8080")]))
                .is_ok()
        );
    }

    #[test]
    fn only_the_stacks_own_page_may_open_websockets_unless_allowed() {
        let local = stack("127.0.0.1:8080");
        let host = ("host", "127.0.0.1:8080");
        assert!(
            local.check_origin(&headers(&[host])).is_ok(),
            "no Origin: wscat"
        );
        assert!(
            local
                .check_origin(&headers(&[host, ("origin", "http://127.0.0.1:8080")]))
                .is_ok()
        );
        for origin in ["https://evil.example", "null", "http://127.0.0.1:9999"] {
            let refused = local.check_origin(&headers(&[host, ("origin", origin)]));
            assert!(refused.is_err(), "{origin}");
        }
        let allowed = CrossSite {
            allowed_origins: vec!["http://127.0.0.1:9999".into(), "null".into()],
            ..local
        };
        assert!(
            allowed
                .check_origin(&headers(&[host, ("origin", "http://127.0.0.1:9999")]))
                .is_ok()
        );
        assert!(
            allowed
                .check_origin(&headers(&[host, ("origin", "null")]))
                .is_ok()
        );
        assert!(
            allowed
                .check_origin(&headers(&[host, ("origin", "https://evil.example")]))
                .is_err()
        );
    }

    #[test]
    fn browsers_are_told_from_sdks_and_curl() {
        assert!(!from_a_browser(&headers(&[("user-agent", "curl/8.5.0")])));
        assert!(!from_a_browser(&headers(&[("sec-fetch-site", "none")])));
        assert!(from_a_browser(&headers(&[(
            "origin",
            "https://evil.example"
        )])));
        assert!(from_a_browser(&headers(&[(
            "sec-fetch-site",
            "cross-site"
        )])));
    }
}
