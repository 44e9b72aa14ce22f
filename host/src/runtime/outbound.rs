//! The outbound HTTP policy (docs/architecture.md#sandbox-and-outbound-http): which
//! requests a function may make. Pure rules and DNS checks; the `wasi:http` hook in
//! `runtime/http.rs` applies them to every request a function sends.
//!
//! A function's `allowedHosts` entries are either
//! - an origin, `https://api.github.com` or `http://127.0.0.1:8099`: scheme, host and
//!   port (default 443 for https, 80 for http) must all match; or
//! - a wildcard, `*.example.com`: any subdomain of `example.com` (not the apex
//!   itself), over https on port 443 only.
//!
//! Private, loopback, link-local, unique-local, unspecified and metadata addresses
//! are refused unless an origin entry names that address literally. A host *name*
//! that resolves to such an address (`localhost` included) is refused even when the
//! name is listed: a listed name must not become a way into the host's network. The
//! caller connects to the addresses [`resolve`] checked, never resolving again, so a
//! DNS answer cannot change between the check and the connection.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// A host as written: a name (lowercased) or an IP address literal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Name(String),
    Ip(IpAddr),
}

impl Host {
    fn parse(text: &str) -> Option<Host> {
        let bracketed = text.strip_prefix('[').and_then(|t| t.strip_suffix(']'));
        if let Some(v6) = bracketed {
            return v6.parse::<Ipv6Addr>().ok().map(|ip| Host::Ip(IpAddr::V6(ip)));
        }
        if let Ok(v4) = text.parse::<Ipv4Addr>() {
            return Some(Host::Ip(IpAddr::V4(v4)));
        }
        let name = text.to_ascii_lowercase();
        // `127.1`, `2130706433` or `0x7f.1` would reach a resolver that reads them as
        // IPv4 addresses: write addresses in dotted-quad form instead.
        let numeric = name
            .rsplit('.')
            .next()
            .is_some_and(|last| last.bytes().all(|b| b.is_ascii_digit()) || last.starts_with("0x"));
        let valid = !numeric
            && !name.is_empty()
            && name.len() <= 253
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            });
        valid.then_some(Host::Name(name))
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(name) => f.write_str(name),
            Host::Ip(IpAddr::V4(ip)) => write!(f, "{ip}"),
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
        }
    }
}

/// Where a request goes: scheme, host and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub scheme: Scheme,
    pub host: Host,
    pub port: u16,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme.as_str(), self.host)?;
        if self.port != self.scheme.default_port() {
            write!(f, ":{}", self.port)?;
        }
        Ok(())
    }
}

impl FromStr for Origin {
    type Err = String;

    /// `scheme://host[:port]`, nothing after it (no path, no userinfo).
    fn from_str(text: &str) -> Result<Origin, String> {
        let invalid =
            || format!("`{text}` is not an origin like `https://api.github.com` or `http://127.0.0.1:8099`");
        let (scheme, rest) = text.split_once("://").ok_or_else(invalid)?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            _ => return Err(invalid()),
        };
        if rest.is_empty() || rest.contains(['/', '@', '?', '#']) {
            return Err(invalid());
        }
        // A port follows the last `:` outside brackets.
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, port)) if !port.contains(']') && (!host.starts_with('[') || host.ends_with(']')) => (
                host,
                Some(port.parse::<u16>().ok().filter(|&p| p != 0).ok_or_else(invalid)?),
            ),
            _ => (rest, None),
        };
        let host = Host::parse(host).ok_or_else(invalid)?;
        Ok(Origin {
            scheme,
            port: port.unwrap_or(scheme.default_port()),
            host,
        })
    }
}

/// One `allowedHosts` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowEntry {
    Origin(Origin),
    /// `*.example.com`: the suffix `example.com`, lowercased.
    Subdomains(String),
}

impl FromStr for AllowEntry {
    type Err = String;

    fn from_str(text: &str) -> Result<AllowEntry, String> {
        if let Some(suffix) = text.strip_prefix("*.") {
            return match Host::parse(suffix) {
                Some(Host::Name(name)) if name.contains('.') => Ok(AllowEntry::Subdomains(name)),
                _ => Err(format!(
                    "`{text}` is not a wildcard like `*.example.com` (a domain with at least two labels)"
                )),
            };
        }
        Origin::from_str(text).map(AllowEntry::Origin)
    }
}

impl AllowEntry {
    /// Whether a request to `origin` is allowed by this entry (addresses aside).
    pub fn matches(&self, origin: &Origin) -> bool {
        match (self, &origin.host) {
            (AllowEntry::Origin(allowed), _) => allowed == origin,
            (AllowEntry::Subdomains(suffix), Host::Name(name)) => {
                origin.scheme == Scheme::Https
                    && origin.port == 443
                    && name.len() > suffix.len() + 1
                    && name.ends_with(suffix.as_str())
                    && name.as_bytes()[name.len() - suffix.len() - 1] == b'.'
            }
            (AllowEntry::Subdomains(_), Host::Ip(_)) => false,
        }
    }

    /// Whether this entry names `ip` literally, which alone lets a request reach an
    /// internal address.
    fn names_literally(&self, ip: IpAddr) -> bool {
        matches!(self, AllowEntry::Origin(Origin { host: Host::Ip(allowed), .. }) if *allowed == ip)
    }
}

/// Why a request was refused. The message names what was refused and the setting
/// that would allow it; it goes to the function's own logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "outbound request to {origin} refused: it is not in the function's allowedHosts; \
         add \"{origin}\" to allowedHosts (PATCH /v1/functions/{{id}}) to allow it"
    )]
    NotAllowed { origin: String },
    #[error(
        "outbound request to {origin} refused: {address} is a private, loopback or link-local \
         address; only an allowedHosts entry naming that address literally (\"{literal}\") allows it"
    )]
    InternalAddress {
        origin: String,
        address: IpAddr,
        literal: String,
    },
    #[error(
        "outbound request to {origin} refused: the name resolves to {address}, a private, loopback \
         or link-local address, which a host name may never reach"
    )]
    ResolvesInternal { origin: String, address: IpAddr },
    #[error("outbound request to {origin} failed: the name does not resolve ({reason})")]
    Unresolvable { origin: String, reason: String },
}

/// The entry of `allowed` that lets a request reach `origin`, if any.
pub fn allowing<'a>(allowed: &'a [AllowEntry], origin: &Origin) -> Result<&'a AllowEntry, Refusal> {
    allowed
        .iter()
        .find(|entry| entry.matches(origin))
        .ok_or_else(|| Refusal::NotAllowed {
            origin: origin.to_string(),
        })
}

/// The addresses to connect to for `origin`, allowed by `entry`: the literal address
/// itself, or every address the name resolves to, all of them public.
pub async fn resolve(origin: &Origin, entry: &AllowEntry) -> Result<Vec<SocketAddr>, Refusal> {
    match &origin.host {
        Host::Ip(ip) => {
            if is_internal(*ip) && !entry.names_literally(*ip) {
                return Err(Refusal::InternalAddress {
                    origin: origin.to_string(),
                    address: *ip,
                    literal: origin.to_string(),
                });
            }
            Ok(vec![SocketAddr::new(*ip, origin.port)])
        }
        Host::Name(name) => {
            let addresses: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), origin.port))
                .await
                .map_err(|error| Refusal::Unresolvable {
                    origin: origin.to_string(),
                    reason: error.to_string(),
                })?
                .collect();
            if addresses.is_empty() {
                return Err(Refusal::Unresolvable {
                    origin: origin.to_string(),
                    reason: "no addresses".into(),
                });
            }
            if let Some(internal) = addresses.iter().find(|a| is_internal(a.ip())) {
                return Err(Refusal::ResolvesInternal {
                    origin: origin.to_string(),
                    address: internal.ip(),
                });
            }
            Ok(addresses)
        }
    }
}

/// Anything but global unicast: loopback, private, link-local (metadata services
/// live at 169.254.169.254), shared (CGNAT, where some clouds put theirs),
/// unspecified, broadcast, multicast, reserved, benchmarking and documentation
/// ranges; for IPv6 also unique-local, site-local and Teredo, and the IPv4 address
/// inside IPv4-mapped, IPv4-compatible, NAT64 and 6to4 addresses is checked as such.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0 // 0.0.0.0/8
                || (a == 100 && (b & 0xc0) == 64) // 100.64.0.0/10, shared address space
                || (a == 192 && b == 0 && c == 0) // 192.0.0.0/24, protocol assignments
                || (a == 198 && (b & 0xfe) == 18) // 198.18.0.0/15, benchmarking
                || a >= 240 // 240.0.0.0/4, reserved
        }
        IpAddr::V6(v6) => {
            let segments = v6.segments();
            let embedded = |high: u16, low: u16| Ipv4Addr::from((u32::from(high) << 16) | u32::from(low));
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            match segments {
                // IPv4-compatible ::a.b.c.d (and :: and ::1 themselves).
                [0, 0, 0, 0, 0, 0, high, low] => {
                    v6.is_loopback() || v6.is_unspecified() || is_internal(IpAddr::V4(embedded(high, low)))
                }
                // NAT64 64:ff9b::a.b.c.d reaches the IPv4 address through a translator.
                [0x64, 0xff9b, 0, 0, 0, 0, high, low] => is_internal(IpAddr::V4(embedded(high, low))),
                [0x64, 0xff9b, 1, ..] => true, // 64:ff9b:1::/48, local-use NAT64
                // 6to4 2002:a.b.c.d::/48.
                [0x2002, high, low, ..] => is_internal(IpAddr::V4(embedded(high, low))),
                [0x2001, 0, ..] => true,     // Teredo
                [0x2001, 0xdb8, ..] => true, // documentation
                [first, ..] => {
                    (first & 0xfe00) == 0xfc00 // fc00::/7, unique local
                        || (first & 0xffc0) == 0xfe80 // fe80::/10, link local
                        || (first & 0xffc0) == 0xfec0 // fec0::/10, site local
                        || (first & 0xff00) == 0xff00 // multicast
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(text: &str) -> Origin {
        text.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    fn entries(texts: &[&str]) -> Vec<AllowEntry> {
        texts
            .iter()
            .map(|t| t.parse().unwrap_or_else(|e| panic!("{e}")))
            .collect()
    }

    #[test]
    fn entries_parse_or_say_what_is_expected() {
        for ok in [
            "https://api.github.com",
            "http://127.0.0.1:8099",
            "*.example.com",
            "https://[::1]:8443",
        ] {
            assert!(ok.parse::<AllowEntry>().is_ok(), "{ok}");
        }
        for bad in [
            "api.github.com",
            "ftp://x",
            "https://x/path",
            "*.",
            "*.com",
            "https://",
            "https://u@x",
            "http://x:99999",
        ] {
            let error = bad.parse::<AllowEntry>().unwrap_err();
            assert!(error.contains(bad), "{error}");
        }
    }

    #[test]
    fn scheme_host_and_port_all_matter() {
        let allowed = entries(&["https://api.github.com", "http://127.0.0.1:8099", "*.example.com"]);
        for ok in [
            "https://api.github.com",
            "https://API.github.com:443",
            "http://127.0.0.1:8099",
            "https://a.example.com",
            "https://a.b.example.com",
        ] {
            assert!(allowing(&allowed, &origin(ok)).is_ok(), "{ok}");
        }
        for refused in [
            "http://api.github.com",
            "https://api.github.com:8443",
            "https://github.com",
            "http://127.0.0.1:8098",
            "https://127.0.0.1:8099",
            "https://example.com",
            "http://a.example.com",
            "https://a.example.com:8443",
            "https://aexample.com",
        ] {
            let refusal = allowing(&allowed, &origin(refused)).unwrap_err();
            assert!(refusal.to_string().contains("add \""), "{refusal}");
        }
    }

    #[test]
    fn internal_addresses_are_recognised() {
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "::1",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_internal(internal.parse().unwrap()), "{internal}");
        }
        for public in [
            "1.1.1.1",
            "140.82.112.6",
            "172.32.0.1",
            "2606:4700::1111",
            "::ffff:1.1.1.1",
        ] {
            assert!(!is_internal(public.parse().unwrap()), "{public}");
        }
    }

    /// Special-purpose addresses, each with what it is: none is global unicast.
    const SPECIAL_PURPOSE: [(&str, &str); 29] = [
        ("100.64.0.1", "shared address space (CGNAT) 100.64.0.0/10"),
        ("100.127.255.254", "shared address space (CGNAT) 100.64.0.0/10"),
        ("224.0.0.1", "IPv4 multicast 224.0.0.0/4"),
        ("239.255.255.250", "IPv4 multicast 224.0.0.0/4"),
        ("ff02::1", "IPv6 multicast ff00::/8"),
        ("ff0e::fb", "IPv6 multicast ff00::/8"),
        ("255.255.255.255", "limited broadcast"),
        ("192.0.2.1", "documentation 192.0.2.0/24"),
        ("198.51.100.7", "documentation 198.51.100.0/24"),
        ("203.0.113.200", "documentation 203.0.113.0/24"),
        ("2001:db8::1", "documentation 2001:db8::/32"),
        ("2001:db8:ffff:ffff::1", "documentation 2001:db8::/32"),
        ("198.18.0.1", "benchmarking 198.18.0.0/15"),
        ("198.19.255.254", "benchmarking 198.18.0.0/15"),
        ("fec0::1", "site-local fec0::/10"),
        ("feff::1", "site-local fec0::/10"),
        ("64:ff9b::10.0.0.1", "NAT64 of a private address"),
        ("64:ff9b::127.0.0.1", "NAT64 of loopback"),
        ("64:ff9b::169.254.169.254", "NAT64 of the metadata address"),
        ("2002:a00:1::1", "6to4 of 10.0.0.1"),
        ("2002:7f00:1::", "6to4 of 127.0.0.1"),
        ("2002:a9fe:a9fe::1", "6to4 of 169.254.169.254"),
        ("::127.0.0.1", "IPv4-compatible loopback"),
        ("::192.168.0.1", "IPv4-compatible private address"),
        ("2001::1", "Teredo 2001::/32"),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo 2001::/32"),
        ("::ffff:100.64.0.1", "IPv4-mapped CGNAT"),
        ("::ffff:224.0.0.1", "IPv4-mapped multicast"),
        ("::ffff:198.18.0.1", "IPv4-mapped benchmarking"),
    ];

    /// Their neighbours, and the same encodings of public addresses, which stay
    /// reachable: the ranges are no wider than they should be.
    const GLOBAL: [(&str, &str); 10] = [
        ("100.63.255.255", "just below 100.64.0.0/10"),
        ("100.128.0.0", "just above 100.64.0.0/10"),
        ("223.255.255.255", "just below multicast"),
        ("192.0.3.1", "just above 192.0.2.0/24"),
        ("198.17.255.255", "just below 198.18.0.0/15"),
        ("198.20.0.0", "just above 198.18.0.0/15"),
        ("64:ff9b::1.1.1.1", "NAT64 of a public address"),
        ("2002:101:101::1", "6to4 of 1.1.1.1"),
        ("2001:4860:4860::8888", "global unicast next to Teredo"),
        ("fbff::1", "just below unique local fc00::/7"),
    ];

    #[tokio::test]
    async fn special_purpose_addresses_are_refused_unless_an_entry_names_them() {
        // An entry that names no address: what every host name's request goes
        // through once its name resolves.
        let elsewhere: AllowEntry = "*.example.com".parse().unwrap();
        for (text, what) in SPECIAL_PURPOSE {
            let ip: IpAddr = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert!(is_internal(ip), "{text} ({what}) is internal");
            let target = Origin {
                scheme: Scheme::Http,
                host: Host::Ip(ip),
                port: 8099,
            };
            assert_eq!(
                resolve(&target, &elsewhere).await,
                Err(Refusal::InternalAddress {
                    origin: target.to_string(),
                    address: ip,
                    literal: target.to_string(),
                }),
                "{text} ({what}) is refused"
            );
            // Only an entry naming it literally reaches it, as the refusal says.
            let literal: AllowEntry = target.to_string().parse().unwrap();
            assert_eq!(
                resolve(&target, &literal).await,
                Ok(vec![SocketAddr::new(ip, 8099)]),
                "{text} ({what}) named literally"
            );
        }
        for (text, what) in GLOBAL {
            let ip: IpAddr = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert!(!is_internal(ip), "{text} ({what}) is global");
            let target = Origin {
                scheme: Scheme::Https,
                host: Host::Ip(ip),
                port: 443,
            };
            assert_eq!(
                resolve(&target, &elsewhere).await,
                Ok(vec![SocketAddr::new(ip, 443)]),
                "{text} ({what})"
            );
        }
    }

    #[test]
    fn numeric_shorthand_user_info_and_port_zero_are_not_origins() {
        // Each would reach 127.0.0.1 (or a port chosen by the system) through a
        // resolver or a URL parser more lenient than the check.
        for refused in [
            "http://127.1",
            "http://127.1:8099",
            "http://2130706433",
            "http://2130706433:8099",
            "http://0x7f.1",
            "http://0x7f000001",
            "http://0X7F.0.0.1",
            "http://0177.0.0.1",
            "http://127.0.0.1.",
            "http://127.0.0.1:0",
            "https://api.github.com:0",
            "http://127.0.0.1:",
            "http://user:pass@127.0.0.1:8099",
            "http://user@api.github.com",
            "http://:@api.github.com",
        ] {
            assert!(refused.parse::<Origin>().is_err(), "{refused} is not an origin");
        }
    }

    #[tokio::test]
    async fn an_internal_address_needs_a_literal_entry_and_a_name_never_reaches_one() {
        let literal = entries(&["http://127.0.0.1:8099"]);
        let target = origin("http://127.0.0.1:8099");
        let entry = allowing(&literal, &target).unwrap();
        assert_eq!(
            resolve(&target, entry).await.unwrap(),
            ["127.0.0.1:8099".parse().unwrap()]
        );

        // `localhost` resolves to loopback: refused even though it is listed.
        let named = entries(&["http://localhost:8099"]);
        let target = origin("http://localhost:8099");
        let entry = allowing(&named, &target).unwrap();
        let refusal = resolve(&target, entry).await.unwrap_err();
        assert!(matches!(refusal, Refusal::ResolvesInternal { .. }), "{refusal}");
    }

    #[tokio::test]
    async fn a_listed_name_that_the_system_resolver_points_at_loopback_is_refused() {
        // `localhost` is the one name every system resolves to loopback (through
        // /etc/hosts, not DNS); nothing in the check knows the name itself, so any
        // other name answered with an internal address goes the same way.
        for (listed, requested) in [
            ("http://localhost:8099", "http://localhost:8099"),
            ("https://localhost", "https://LocalHost:443"),
        ] {
            let named = entries(&[listed]);
            let target = origin(requested);
            let entry = allowing(&named, &target).unwrap();
            match resolve(&target, entry).await {
                Err(Refusal::ResolvesInternal { origin, address }) => {
                    assert!(address.is_loopback(), "{address}");
                    assert_eq!(origin, listed);
                }
                other => panic!("{requested}: {other:?}"),
            }
        }
    }
}
