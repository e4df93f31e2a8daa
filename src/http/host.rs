//! The `Host` check that keeps DNS rebinding out: a browser page on
//! `evil.example` whose name is made to resolve to 127.0.0.1 still sends
//! `Host: evil.example`, which no server of ours answers to.

use std::net::IpAddr;
use std::str::FromStr;

use axum::http::uri::Authority;

/// A host part of an authority, normalised: lowercase, without the brackets of
/// an IPv6 literal and without a trailing dot.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Host {
    Name(String),
    Ip(IpAddr),
}

/// The host names a server answers to. Ports are not compared: a port
/// forwarded elsewhere (`-p 8080:9898`) must keep working, and a rebinding
/// page cannot choose its host name, only its port.
#[derive(Debug, Clone)]
pub(super) struct AllowedHosts {
    names: Vec<String>,
    ips: Vec<IpAddr>,
    /// The server listens on every address (`0.0.0.0`, `::`): any IP literal
    /// names one of ours, and an IP literal never comes from a DNS answer.
    any_ip: bool,
}

impl AllowedHosts {
    /// `localhost` and the loopback addresses.
    pub(super) fn loopback() -> Self {
        AllowedHosts { names: vec!["localhost".to_owned()], ips: Vec::new(), any_ip: false }
    }

    /// `localhost`, the loopback addresses and `extra` (validated host names or
    /// IP literals, without a port).
    pub(super) fn new(extra: &[String]) -> Result<Self, String> {
        let mut hosts = AllowedHosts::loopback();
        for entry in extra {
            match parse_entry(entry)? {
                Host::Name(n) => hosts.names.push(n),
                Host::Ip(ip) => hosts.ips.push(ip),
            }
        }
        Ok(hosts)
    }

    /// Also the address the server is bound to (every IP literal for an
    /// unspecified address).
    pub(super) fn with_bind_ip(mut self, ip: IpAddr) -> Self {
        if ip.is_unspecified() {
            self.any_ip = true;
        } else {
            self.ips.push(ip);
        }
        self
    }

    /// `Ok` when the authority (a `Host` header value or the authority of an
    /// absolute request URI) names this server; else the reason.
    pub(super) fn check(&self, authority: &str) -> Result<(), String> {
        let shown = shorten(authority);
        let host = split(authority)
            .and_then(|(host, _port)| parse_host(host))
            .ok_or_else(|| format!("invalid Host {shown:?}"))?;
        let allowed = match &host {
            Host::Ip(ip) => self.any_ip || ip.to_canonical().is_loopback() || self.ips.contains(ip),
            Host::Name(name) => self.names.iter().any(|n| n == name),
        };
        if allowed {
            Ok(())
        } else {
            Err(format!(
                "host {shown:?} is not served here: the server answers to localhost, loopback \
                 addresses, its own address and the names given to HttpServerBuilder::allow_host"
            ))
        }
    }
}

/// At most 100 characters of a value for an error message.
fn shorten(text: &str) -> String {
    text.chars().take(100).collect()
}

/// An `allow_host` entry: a host name or an IP literal, without a port.
fn parse_entry(entry: &str) -> Result<Host, String> {
    let bad = |why: &str| format!("invalid host {:?}: {why}", shorten(entry));
    let expected = "expected a host name or an IP address";
    let (host, port) = split(entry).ok_or_else(|| bad(expected))?;
    if port.is_some() {
        return Err(bad("give it without a port (ports are not compared)"));
    }
    parse_host(host).ok_or_else(|| bad(expected))
}

/// `host[:port]` split into the host (IPv6 literals in brackets) and the
/// port; `None` unless it is a valid authority without user info, with a
/// numeric port if any.
fn split(authority: &str) -> Option<(&str, Option<u16>)> {
    let parsed = Authority::from_str(authority).ok()?;
    let rest = authority.strip_prefix(parsed.host())?; // also refuses user info
    let host = &authority[..authority.len() - rest.len()];
    match rest {
        "" => Some((host, None)),
        _ => rest.strip_prefix(':')?.parse().ok().map(|port| (host, Some(port))),
    }
}

/// The host part of an authority, normalised; `None` when it is neither an IP
/// literal nor a DNS name (letters, digits, `-`, `_` and dots).
fn parse_host(host: &str) -> Option<Host> {
    let host = host.strip_suffix('.').unwrap_or(host);
    let unbracketed = host.strip_prefix('[').and_then(|h| h.strip_suffix(']'));
    if let Some(v6) = unbracketed {
        return v6.parse().ok().map(Host::Ip);
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Some(Host::Ip(ip));
    }
    let valid = !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    valid.then(|| Host::Name(host.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_names_with_and_without_ports() {
        let hosts = AllowedHosts::new(&[]).unwrap().with_bind_ip([127, 0, 0, 1].into());
        for ok in [
            "localhost",
            "localhost:9898",
            "LocalHost.",
            "127.0.0.1",
            "127.0.0.1:9898",
            "127.1.2.3:80",
            "[::1]",
            "[::1]:9898",
            "[::ffff:127.0.0.1]:1",
        ] {
            assert_eq!(hosts.check(ok), Ok(()), "{ok}");
        }
        for bad in
            ["evil.example", "evil.example:9898", "localhost.evil.example", "10.0.0.1", "[::2]"]
        {
            let e = hosts.check(bad).unwrap_err();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
        for invalid in [
            "",
            "a b",
            "user@localhost",
            "localhost:port",
            "localhost:",
            "[::1",
            "a..b",
            "é.example",
        ] {
            assert!(hosts.check(invalid).is_err(), "{invalid}");
        }
    }

    #[test]
    fn configured_names_and_bind_addresses() {
        let hosts = AllowedHosts::new(&[
            "Metrics.Example.com".into(),
            "10.1.2.3".into(),
            "[fd00::1]".into(),
        ])
        .unwrap()
        .with_bind_ip([192, 168, 1, 5].into());
        for ok in ["metrics.example.com:443", "10.1.2.3", "[fd00::1]:9", "192.168.1.5:9898"] {
            assert_eq!(hosts.check(ok), Ok(()), "{ok}");
        }
        assert!(hosts.check("192.168.1.6").is_err());
        let everywhere = AllowedHosts::new(&[]).unwrap().with_bind_ip([0, 0, 0, 0].into());
        assert_eq!(everywhere.check("192.168.1.6:9898"), Ok(()));
        assert!(everywhere.check("evil.example").is_err());

        for (entry, needle) in [
            ("example.com:80", "without a port"),
            ("", "expected a host name"),
            ("a/b", "expected a host name"),
            ("u@example.com", "expected a host name"),
        ] {
            let e = AllowedHosts::new(&[entry.into()]).unwrap_err();
            assert!(e.contains(needle) && e.contains(&format!("{entry:?}")), "{entry}: {e}");
        }
    }
}
