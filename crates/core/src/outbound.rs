//! The outbound-address rule (API.md): URLs and hosts tenants give the
//! server may not reach loopback, private, link-local, unspecified or
//! otherwise internal addresses, unless the operator allows it for
//! development. This module says which addresses are public and parses
//! what tenants give once, with the parser the HTTP client itself uses
//! (the `url` crate, WHATWG rules), so the host that is judged is the host
//! that is connected to. It does no I/O: the delivery crate resolves names
//! and checks every address it is about to connect to.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

use crate::field_error::FieldError;

/// SECURITY: whether `ip` is an address on the public internet. Anything
/// internal, reserved, special-purpose or translated (IPv4 inside IPv6:
/// mapped, compatible, NAT64, 6to4, Teredo) answers `false`.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
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
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast, RFC 7526
        || (a == 198 && (b == 18 || b == 19)) // benchmarking, RFC 2544
        || a >= 240) // reserved
}

/// Only global unicast (`2000::/3`) is public, minus the blocks inside it
/// that are special-purpose or carry an IPv4 address to be translated.
/// Everything outside `2000::/3` (loopback, unspecified, mapped and
/// compatible IPv4, NAT64 `64:ff9b::/96` and `64:ff9b:1::/48`, unique
/// local, link-local, site-local, multicast, discard) is not.
fn is_public_v6(ip: Ipv6Addr) -> bool {
    let [s0, s1, ..] = ip.segments();
    let global_unicast = (s0 & 0xe000) == 0x2000;
    global_unicast
        && !(s0 == 0x2001 && s1 < 0x0200) // 2001::/23 IETF protocol assignments (Teredo, benchmarking, ORCHID)
        && !(s0 == 0x2001 && s1 == 0x0db8) // documentation, RFC 3849
        && s0 != 0x2002 // 6to4, RFC 3056
        && (s0 & 0xfff0) != 0x3ff0 // 3fff::/20 documentation, RFC 9637
}

/// Host names that always mean this machine, whatever DNS says.
pub fn is_local_name(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost"
        || name.ends_with(".localhost")
        || name == "localhost.localdomain"
        || name.ends_with(".local")
        || name.ends_with(".internal")
        || name == "ip6-localhost"
        || name == "ip6-loopback"
}

/// Where a URL or host points, as the HTTP client will see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target<'a> {
    /// An IP literal: connected to as it is, no DNS.
    Ip(IpAddr),
    /// A name, resolved at connect time (every address checked then).
    Name(&'a str),
}

impl Target<'_> {
    /// SECURITY: the part of the rule that needs no DNS: an IP literal
    /// must be public and a name must not be one of this machine's.
    pub fn is_allowed_without_dns(&self) -> bool {
        match self {
            Self::Ip(ip) => is_public(*ip),
            Self::Name(name) => !is_local_name(name),
        }
    }
}

fn target_of(host: Host<&str>) -> Target<'_> {
    match host {
        Host::Ipv4(ip) => Target::Ip(IpAddr::V4(ip)),
        Host::Ipv6(ip) => Target::Ip(IpAddr::V6(ip)),
        Host::Domain(name) => Target::Name(name),
    }
}

/// A URL the server may call: http or https, with a host and no
/// credentials in it, parsed once. [`OutboundUrl::url`] is what is handed
/// to the HTTP client, so nothing parses the text a second way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundUrl(Url);

const MAX_URL_LEN: usize = 2_000;

impl OutboundUrl {
    pub fn parse(field: &str, text: &str) -> Result<Self, FieldError> {
        let bad = |why: &str| FieldError::new(field, why);
        if text.len() > MAX_URL_LEN {
            return Err(bad("must be at most 2000 characters"));
        }
        // WHATWG parsers read `\` as `/` and drop tabs and newlines; other
        // parsers do not. Such a URL has two meanings, so it has none here.
        if text.chars().any(|c| c == '\\' || c.is_whitespace() || c.is_control()) {
            return Err(bad("must not contain backslashes, spaces or control characters"));
        }
        // WHATWG also reads `http:host`, `http:/host` and `https:///host` as
        // URLs with that host; here the authority follows `//` exactly.
        let lower = text.get(..8).unwrap_or(text).to_ascii_lowercase();
        let authority = lower.strip_prefix("https://").or_else(|| lower.strip_prefix("http://"));
        if authority.is_none() || text[text.find("//").map_or(0, |i| i + 2)..].starts_with('/') {
            return Err(bad("must be an http:// or https:// URL with a host"));
        }
        let url = Url::parse(text).map_err(|_| bad("must be an http:// or https:// URL with a host"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad("must be an http:// or https:// URL"));
        }
        if !url.username().is_empty() || url.password().is_some() || has_userinfo_marker(text) {
            return Err(bad("must not carry a user name or password; use a credential"));
        }
        match url.host() {
            Some(Host::Domain("")) => Err(bad("must have a host")),
            Some(_) => Ok(Self(url)),
            None => Err(bad("must have a host")),
        }
    }

    /// The URL as the client will send it (WHATWG serialization).
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    pub fn url(&self) -> &Url {
        &self.0
    }

    pub fn into_url(self) -> Url {
        self.0
    }

    /// Where the URL points.
    pub fn target(&self) -> Target<'_> {
        // `parse` refused URLs without a host.
        self.0.host().map_or(Target::Name(""), target_of)
    }

    /// The port the client will connect to.
    pub fn port(&self) -> u16 {
        self.0.port_or_known_default().unwrap_or(443)
    }
}

/// Whether the authority of `text` (before the first `/`, `?` or `#`
/// after the scheme) contains an `@`: `http://@host/` has an empty user
/// name, which the parser drops silently.
fn has_userinfo_marker(text: &str) -> bool {
    let rest = text.split_once("://").map_or(text, |(_, rest)| rest);
    rest.split(['/', '?', '#']).next().is_some_and(|authority| authority.contains('@'))
}

/// Where a message is judged at connect time: the same rule for a URL
/// reqwest is about to use, whoever built it.
pub fn target_of_url(url: &Url) -> Option<Target<'_>> {
    url.host().map(target_of)
}

/// An SMTP server's host: a host name or an IP address, written the one
/// way it is read (`127.1`, `0x7f.0.0.1` or `[::1]` spelled otherwise are
/// refused rather than interpreted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpHost(Host<String>);

impl SmtpHost {
    pub fn parse(field: &str, text: &str) -> Result<Self, FieldError> {
        let bad = || FieldError::new(field, "must be a host name or an IP address (IPv6 in brackets)");
        if text.is_empty() || text.len() > 253 {
            return Err(bad());
        }
        let host = Host::parse(text).map_err(|_| bad())?;
        let canonical = host.to_string();
        let as_written = match &host {
            Host::Domain(_) => {
                let ldh = text.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'));
                ldh && canonical.eq_ignore_ascii_case(text)
            }
            Host::Ipv4(_) | Host::Ipv6(_) => canonical == text.to_ascii_lowercase(),
        };
        if as_written { Ok(Self(host)) } else { Err(bad()) }
    }

    pub fn target(&self) -> Target<'_> {
        match &self.0 {
            Host::Ipv4(ip) => Target::Ip(IpAddr::V4(*ip)),
            Host::Ipv6(ip) => Target::Ip(IpAddr::V6(*ip)),
            Host::Domain(name) => Target::Name(name),
        }
    }

    /// The name for TLS certificate checks (the host as written).
    pub fn as_string(&self) -> String {
        match &self.0 {
            Host::Ipv6(ip) => ip.to_string(),
            other => other.to_string(),
        }
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
            "100.127.255.254",
            "255.255.255.255",
            "224.0.0.1",
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
            "192.88.99.1",
            "::1",
            "::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:8.8.8.8",
            "::8.8.8.8",
            "::127.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b::808:808",
            "64:ff9b:1::1",
            "2002:7f00:1::1",
            "2002:808:808::1",
            "2001::1",
            "2001:db8::1",
            "3fff::1",
            "100::1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "8.8.8.8", "100.128.0.1", "2606:4700::1111", "2a00:1450::1"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    /// The edges of each blocked range: its first and last addresses are
    /// not public, the neighbours just outside it are.
    #[test]
    fn blocked_ranges_end_where_they_should() {
        for ip in [
            "0.1.2.3",
            "100.64.0.0",
            "100.127.255.255",
            "192.0.0.8",
            "192.88.99.255",
            "198.18.0.0",
            "198.19.255.255",
            "240.0.0.1",
            "2001:1ff:ffff::1",
            "2001:db8:ffff::1",
            "2002::",
            "3ff0::1",
            "1fff:ffff::1",
            "4000::1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip} is blocked");
        }
        for ip in [
            "1.0.0.1",
            "100.63.255.255",
            "100.128.0.0",
            "192.0.1.1",
            "192.88.98.255",
            "192.88.100.0",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.254",
            "2000::1",
            "2001:200::1",
            "2001:db9::1",
            "2003::1",
            "3fef:ffff::1",
        ] {
            assert!(is_public(ip.parse().unwrap()), "{ip} is public");
        }
    }

    #[test]
    fn names_of_this_machine_and_its_networks_are_local() {
        for name in [
            "localhost",
            "LocalHost.",
            "api.localhost",
            "localhost.localdomain",
            "printer.local",
            "db.internal",
            "ip6-localhost",
            "ip6-loopback",
        ] {
            assert!(is_local_name(name), "{name}");
            assert!(!Target::Name(name).is_allowed_without_dns(), "{name}");
        }
        for name in ["notlocalhost", "localhost.example.com", "local", "internal.example.com", "example.com"] {
            assert!(!is_local_name(name), "{name}");
            assert!(Target::Name(name).is_allowed_without_dns(), "{name}");
        }
        assert!(!Target::Ip("10.0.0.1".parse().unwrap()).is_allowed_without_dns());
        assert!(Target::Ip("8.8.4.4".parse().unwrap()).is_allowed_without_dns());
    }

    /// At most 2000 characters, and none that WHATWG parsers drop or read
    /// as something else: a backslash, whitespace, a control character.
    #[test]
    fn urls_have_a_length_limit_and_no_ambiguous_characters() {
        let at_most = format!("https://crm.example.com/{}", "a".repeat(2_000 - 24));
        assert_eq!(at_most.len(), 2_000);
        assert_eq!(OutboundUrl::parse("url", &at_most).unwrap().as_str(), at_most);
        assert!(OutboundUrl::parse("url", &format!("{at_most}a")).is_err(), "2001 characters");
        for bad in ["https://crm.example.com\\hooks", "https://crm.example.com/a b", "https://crm.example.com/\u{1}"] {
            assert!(OutboundUrl::parse("url", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn only_http_urls_with_a_host_and_no_credentials() {
        assert_eq!(
            OutboundUrl::parse("url", "https://crm.example.com/hooks?x=1").unwrap().as_str(),
            "https://crm.example.com/hooks?x=1"
        );
        assert!(OutboundUrl::parse("url", "http://10.0.0.1:8080/").is_ok(), "addresses are judged by the caller");
        for bad in [
            "ftp://x",
            "https://",
            "https:///path",
            "javascript:alert(1)",
            "https://a b",
            "file:///etc/passwd",
            "http://user:pw@example.com/",
            "http://@example.com/",
            "http://127.0.0.1:80\\@8.8.8.8/a",
            "http://example.com\t/",
            "/relative",
        ] {
            assert_eq!(OutboundUrl::parse("url", bad).unwrap_err().field, "url", "{bad}");
        }
    }

    #[test]
    fn hosts_are_judged_as_the_client_reads_them() {
        for (text, ip) in [
            ("http://2130706433/", "127.0.0.1"),
            ("http://0x7f.1/", "127.0.0.1"),
            ("http://0177.0.0.1/", "127.0.0.1"),
            ("http://127.1/", "127.0.0.1"),
            ("http://127.0.0.1./", "127.0.0.1"),
            ("http://%31%32%37.0.0.1/", "127.0.0.1"),
            ("http://[::ffff:7f00:1]/", "::ffff:127.0.0.1"),
        ] {
            let url = OutboundUrl::parse("url", text).unwrap();
            assert_eq!(url.target(), Target::Ip(ip.parse().unwrap()), "{text}");
            assert!(!url.target().is_allowed_without_dns(), "{text}");
        }
        for local in ["http://localhost/", "http://LOCALHOST./", "http://a.localhost/", "http://ⓛocalhost/"] {
            assert!(!OutboundUrl::parse("url", local).unwrap().target().is_allowed_without_dns(), "{local}");
        }
        assert!(OutboundUrl::parse("url", "https://hooks.example.com/").unwrap().target().is_allowed_without_dns());
    }

    /// The port the client connects to, and the target a parsed URL names.
    #[test]
    fn urls_answer_their_port_and_target() {
        let port = |text| OutboundUrl::parse("url", text).unwrap().port();
        assert_eq!(
            (port("https://a.example/"), port("http://a.example/"), port("https://a.example:8443/")),
            (443, 80, 8443)
        );
        let url = Url::parse("https://hooks.example.com/x").unwrap();
        assert_eq!(target_of_url(&url), Some(Target::Name("hooks.example.com")));
        let ip = Url::parse("http://10.0.0.1/").unwrap();
        assert_eq!(target_of_url(&ip), Some(Target::Ip("10.0.0.1".parse().unwrap())));
    }

    /// Host names are at most 253 characters, as DNS allows.
    #[test]
    fn smtp_host_names_have_dns_length() {
        let label = "a".repeat(62);
        let name = |len: usize| {
            let mut n = [label.as_str(); 5].join(".");
            n.truncate(len);
            n
        };
        assert!(SmtpHost::parse("host", &name(253)).is_ok(), "253 characters");
        let host = |text| SmtpHost::parse("host", text).unwrap();
        assert_eq!(host("smtp.example.com").as_string(), "smtp.example.com");
        assert_eq!(host("[2001:db8::1]").as_string(), "2001:db8::1", "TLS checks the address without brackets");
        assert_eq!(host("203.0.113.5").target(), Target::Ip("203.0.113.5".parse().unwrap()));
        assert!(SmtpHost::parse("host", &(name(253) + "a")).is_err(), "254 characters");
    }

    #[test]
    fn smtp_hosts_are_names_or_addresses_written_plainly() {
        for good in ["smtp.example.com", "SMTP.Example.com", "203.0.113.5", "[2001:db8::1]"] {
            assert!(SmtpHost::parse("host", good).is_ok(), "{good}");
        }
        for bad in ["127.1", "0x7f.0.0.1", "2130706433", "a b", "mail.example.com:25", "", "[::1", "smtp.exa_mple.com"]
        {
            assert!(SmtpHost::parse("host", bad).is_err(), "{bad}");
        }
    }
}
