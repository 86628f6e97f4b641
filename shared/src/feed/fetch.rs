//! Fetching a feed safely (issue 7): only http and https; the host is resolved here and every
//! address checked — loopback, private, link-local (the cloud metadata address), CGNAT,
//! multicast and unspecified addresses are refused unless the account explicitly allows
//! private URLs for a local test — and the connection goes to the checked address, so a DNS
//! answer cannot change between check and use. Redirects are followed by hand (at most 5) and
//! checked again; the body is read up to a byte cap within a time limit. The URL's query may
//! hold the feed's key: it is never logged (only the host is).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

/// Why a fetch failed, in words for the run's history.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("the feed URL is not valid: {0}")]
    Url(String),
    #[error("the feed URL points at {0}, a private or local address (allowed only when the account allows private feed URLs)")]
    Forbidden(IpAddr),
    #[error("the feed URL points at {0}, a link-local address where cloud metadata lives; it is never fetched")]
    Metadata(IpAddr),
    #[error("the feed host could not be resolved")]
    Resolve,
    #[error("the feed server answered {0}")]
    Status(u16),
    #[error("the feed did not answer within {0} seconds")]
    Timeout(u64),
    #[error("the feed is larger than {0} bytes")]
    TooLarge(usize),
    #[error("more than {0} redirects")]
    Redirects(u8),
    #[error("the connection failed: {0}")]
    Connection(String),
}

/// Limits of one fetch.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_bytes: usize,
    pub timeout: Duration,
    pub max_redirects: u8,
    /// The account's explicit permission to fetch from private addresses (local tests).
    pub allow_private: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bytes: 256 << 20,
            timeout: Duration::from_secs(120),
            max_redirects: 5,
            allow_private: false,
        }
    }
}

impl Limits {
    /// The default limits, with the account's permission for private addresses.
    pub fn for_account(allow_private: bool) -> Self {
        Self {
            allow_private,
            ..Self::default()
        }
    }
}

/// True for link-local addresses (169.254.0.0/16 with the cloud metadata service, fe80::/10,
/// and their IPv4-mapped forms): refused even when the account allows private URLs.
pub fn link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.is_link_local(),
            None => (v6.segments()[0] & 0xffc0) == 0xfe80,
        },
    }
}

/// True for addresses a feed may not point at.
pub fn forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1]))
                || (o[0] == 198 && (o[1] == 18 || o[1] == 19))
                || o[0] >= 240
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return forbidden(IpAddr::V4(v4));
            }
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
        }
    }
}

/// A checked URL: scheme, host, port and the request target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub https: bool,
    pub host: String,
    pub port: u16,
    pub path_and_query: String,
}

/// Accepts only absolute http(s) URLs without credentials.
pub fn target(url: &str) -> Result<Target, FetchError> {
    let uri: http::Uri = url
        .trim()
        .parse()
        .map_err(|e: http::uri::InvalidUri| FetchError::Url(e.to_string()))?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        other => {
            return Err(FetchError::Url(format!(
                "only http and https are fetched, not {}",
                other.unwrap_or("a relative URL")
            )))
        }
    };
    let authority = uri
        .authority()
        .ok_or_else(|| FetchError::Url("no host".into()))?;
    if authority.as_str().contains('@') {
        return Err(FetchError::Url(
            "credentials in the URL are refused: give the key separately".into(),
        ));
    }
    let host = authority
        .host()
        .trim_matches(|c| c == '[' || c == ']')
        .to_owned();
    Ok(Target {
        https,
        port: authority.port_u16().unwrap_or(if https { 443 } else { 80 }),
        host,
        path_and_query: uri
            .path_and_query()
            .map_or("/".to_owned(), |p| p.as_str().to_owned()),
    })
}

/// The addresses of `t`, every one checked.
async fn resolve(t: &Target, allow_private: bool) -> Result<SocketAddr, FetchError> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((t.host.as_str(), t.port))
        .await
        .map_err(|_| FetchError::Resolve)?
        .collect();
    if let Some(bad) = addrs.iter().find(|a| link_local(a.ip())) {
        return Err(FetchError::Metadata(bad.ip()));
    }
    if let Some(bad) = addrs.iter().find(|a| forbidden(a.ip())) {
        if !allow_private {
            return Err(FetchError::Forbidden(bad.ip()));
        }
    }
    addrs.first().copied().ok_or(FetchError::Resolve)
}

/// The TLS connector, built once per process (the system's root certificates are read once).
fn tls() -> Result<tokio_rustls::TlsConnector, FetchError> {
    static CONNECTOR: std::sync::OnceLock<Result<tokio_rustls::TlsConnector, String>> =
        std::sync::OnceLock::new();
    CONNECTOR
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
            let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::aws_lc_rs::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
            Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
        })
        .clone()
        .map_err(FetchError::Connection)
}

/// One request to a checked address: the status, a redirect's location, and the body.
async fn once(
    t: &Target,
    addr: SocketAddr,
    limits: &Limits,
) -> Result<(u16, Option<String>, Vec<u8>), FetchError> {
    let conn = |e: &dyn std::fmt::Display| FetchError::Connection(e.to_string());
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| conn(&e))?;
    let request = http::Request::get(&t.path_and_query)
        .header(http::header::HOST, &t.host)
        .header(http::header::USER_AGENT, "intake-feed/1")
        .header(http::header::ACCEPT, "application/xml, text/xml")
        .body(Empty::<Bytes>::new())
        .map_err(|e| conn(&e))?;
    let response = if t.https {
        let name = rustls::pki_types::ServerName::try_from(t.host.clone())
            .map_err(|e| FetchError::Url(e.to_string()))?;
        let stream = tls()?.connect(name, tcp).await.map_err(|e| conn(&e))?;
        let (mut send, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| conn(&e))?;
        tokio::spawn(connection);
        send.send_request(request).await.map_err(|e| conn(&e))?
    } else {
        let (mut send, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| conn(&e))?;
        tokio::spawn(connection);
        send.send_request(request).await.map_err(|e| conn(&e))?
    };
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get(http::header::LOCATION)
        .and_then(|l| l.to_str().ok())
        .map(str::to_owned);
    if !(200..300).contains(&status) {
        return Ok((status, location, Vec::new()));
    }
    let declared = response
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_bytes as u64) {
        return Err(FetchError::TooLarge(limits.max_bytes));
    }
    let mut body = response.into_body();
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| conn(&e))?;
        if let Some(data) = frame.data_ref() {
            if out.len() + data.len() > limits.max_bytes {
                return Err(FetchError::TooLarge(limits.max_bytes));
            }
            out.extend_from_slice(data);
        }
    }
    Ok((status, location, out))
}

/// GETs a feed with the limits above.
pub async fn get(url: &str, limits: &Limits) -> Result<Vec<u8>, FetchError> {
    let work = async {
        let mut t = target(url)?;
        for _ in 0..=limits.max_redirects {
            let addr = resolve(&t, limits.allow_private).await?;
            tracing::debug!(host = %t.host, "fetching feed");
            let (status, location, body) = once(&t, addr, limits).await?;
            match status {
                200..=299 => return Ok(body),
                301 | 302 | 303 | 307 | 308 => {
                    let next = location.ok_or(FetchError::Status(status))?;
                    t = if next.starts_with('/') {
                        Target {
                            path_and_query: next,
                            ..t
                        }
                    } else {
                        target(&next)?
                    };
                }
                other => return Err(FetchError::Status(other)),
            }
        }
        Err(FetchError::Redirects(limits.max_redirects))
    };
    tokio::time::timeout(limits.timeout, work)
        .await
        .map_err(|_| FetchError::Timeout(limits.timeout.as_secs()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetch_refuses_loopback_private_link_local_and_metadata_addresses() {
        for ip in [
            "127.0.0.1",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(forbidden(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "1.1.1.1", "2606:4700::1111"] {
            assert!(!forbidden(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn fetch_treats_metadata_addresses_as_link_local_even_when_ipv4_mapped() {
        for ip in ["169.254.169.254", "fe80::1", "::ffff:169.254.169.254"] {
            assert!(link_local(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["127.0.0.1", "10.0.0.1", "fd00:ec2::254"] {
            assert!(!link_local(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn fetch_fails_with_a_timeout_when_the_server_never_answers() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                held.push(s); // accepted, never answered
            }
        });
        let limits = Limits {
            allow_private: true,
            timeout: Duration::from_millis(300),
            ..Limits::default()
        };
        let started = std::time::Instant::now();
        let got = get(&format!("http://127.0.0.1:{port}/x.xml"), &limits).await;
        assert_eq!(got, Err(FetchError::Timeout(0)));
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(
            FetchError::Timeout(120).to_string(),
            "the feed did not answer within 120 seconds"
        );
    }

    #[test]
    fn fetch_accepts_only_http_and_https_without_credentials() {
        let t = target("https://erp.example.com/xml/customers?get=1").unwrap();
        assert_eq!(
            (t.https, t.port, t.path_and_query.as_str()),
            (true, 443, "/xml/customers?get=1")
        );
        assert!(matches!(
            target("file:///etc/passwd"),
            Err(FetchError::Url(_))
        ));
        assert!(matches!(target("gopher://x/"), Err(FetchError::Url(_))));
        assert!(matches!(
            target("http://user:pw@erp.example.com/"),
            Err(FetchError::Url(_))
        ));
        assert_eq!(target("http://[::1]:8080/x").unwrap().host, "::1");
    }

    #[tokio::test]
    async fn fetch_refuses_a_url_resolving_to_loopback_unless_private_urls_are_allowed() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let request = String::from_utf8_lossy(&buf);
                let reply: &[u8] = if request.contains("/undeclared") {
                    // No length: the body runs until the connection closes.
                    b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n<Customers/>"
                } else {
                    b"HTTP/1.1 200 OK\r\ncontent-length: 12\r\nconnection: close\r\n\r\n<Customers/>"
                };
                let _ = s.write_all(reply).await;
            }
        });
        let url = format!("http://localhost:{port}/feed.xml");
        assert!(matches!(
            get(&url, &Limits::default()).await,
            Err(FetchError::Forbidden(_))
        ));
        let allowed = Limits {
            allow_private: true,
            ..Limits::default()
        };
        assert_eq!(get(&url, &allowed).await.unwrap(), b"<Customers/>".to_vec());
        let tiny = Limits {
            allow_private: true,
            max_bytes: 5,
            ..Limits::default()
        };
        assert_eq!(get(&url, &tiny).await, Err(FetchError::TooLarge(5)));
        let undeclared = format!("http://localhost:{port}/undeclared");
        assert_eq!(
            get(&undeclared, &tiny).await,
            Err(FetchError::TooLarge(5)),
            "the cap holds while reading, too"
        );
    }
}
