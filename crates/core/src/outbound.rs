//! The outbound-address rule (API.md): URLs tenants give the server may not
//! reach loopback, private, link-local, unspecified or otherwise internal
//! addresses, unless the operator allows it for development. This module
//! says which addresses are public; the server applies it when a URL is
//! saved and again to every address DNS returns at connect time.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::field_error::FieldError;

/// SECURITY: whether `ip` is an address on the public internet. Anything
/// internal, reserved or special-purpose answers `false`.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT), RFC 6598
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking, RFC 2544
        || a >= 240) // reserved
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local
        || (first & 0xffc0) == 0xfe80 // link-local
        || (first == 0x2001 && ip.segments()[1] == 0x0db8) // documentation
        || ip.to_ipv4().is_some_and(|v4| !is_public_v4(v4)))
}

/// A URL the server may call: http or https, with a host. Whether the
/// host resolves to public addresses is checked by the caller with DNS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundUrl(String);

impl OutboundUrl {
    pub fn parse(field: &str, text: &str) -> Result<Self, FieldError> {
        let text = text.trim();
        let rest = text
            .strip_prefix("https://")
            .or_else(|| text.strip_prefix("http://"))
            .ok_or_else(|| FieldError::new(field, "must be an http:// or https:// URL"))?;
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let host = authority.rsplit('@').next().unwrap_or_default();
        if host.is_empty() || host.starts_with(':') || text.len() > 2_000 || text.chars().any(char::is_whitespace) {
            return Err(FieldError::new(field, "must be an http(s) URL with a host, at most 2000 characters"));
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn only_http_urls_with_a_host() {
        assert!(OutboundUrl::parse("url", "https://crm.example.com/hooks?x=1").is_ok());
        assert!(OutboundUrl::parse("url", "http://10.0.0.1:8080/").is_ok(), "addresses are judged by the caller");
        for bad in ["ftp://x", "https://", "https:///path", "javascript:alert(1)", "https://a b"] {
            assert_eq!(OutboundUrl::parse("url", bad).unwrap_err().field, "url", "{bad}");
        }
    }
}
