//! Which destinations a sandbox may reach through the gateway's egress proxy: pure
//! decisions, no I/O.
//!
//! A rule is `host[:port]`: an exact name (`api.github.com`), a name and its subdomains
//! (`*.pypi.org` matches `files.pypi.org`, not `pypi.org`), or an IP address
//! (`203.0.113.7`, `[2001:db8::1]:443`); without a port it allows 443 only. A name is
//! resolved by the gateway, and every address it resolves to must be public: a name that
//! points at loopback, a private network, link-local (cloud metadata at 169.254.169.254)
//! and the like is refused, so a rule for a name can never be turned into a way into the
//! gateway's own network. An address that is not public is reachable only through a rule
//! that names that very address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

/// The port a rule without one allows.
pub const DEFAULT_PORT: u16 = 443;

/// What a rule matches by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostPattern {
    /// This name exactly (lowercase, no trailing dot).
    Name(String),
    /// Any name ending in `.<suffix>`.
    Subdomains(String),
    /// This address.
    Ip(IpAddr),
}

/// One allowed destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EgressRule {
    /// The host.
    pub host: HostPattern,
    /// The port.
    pub port: u16,
}

impl EgressRule {
    /// Parses `host[:port]`, `*.suffix[:port]` or `[v6]:port`.
    pub fn parse(text: &str) -> Result<EgressRule, String> {
        let text = text.trim();
        let bad = |why: &str| {
            format!(
                "`{text}` is not an egress rule ({why}); write host[:port], *.domain[:port] or an IP address"
            )
        };
        if text.is_empty() {
            return Err(bad("it is empty"));
        }
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (ip, after) = rest.split_once(']').ok_or_else(|| bad("no closing `]`"))?;
            let port = match after.strip_prefix(':') {
                Some(port) => Some(port),
                None if after.is_empty() => None,
                None => return Err(bad("text after `]`")),
            };
            (ip, port)
        } else if text.parse::<Ipv6Addr>().is_ok() {
            (text, None)
        } else {
            match text.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (text, None),
            }
        };
        let port = match port {
            None => DEFAULT_PORT,
            Some(port) => match port.parse::<u16>() {
                Ok(port) if port > 0 => port,
                _ => return Err(bad("the port is not a number from 1 to 65535")),
            },
        };
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(EgressRule {
                host: HostPattern::Ip(ip),
                port,
            });
        }
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let (pattern, name) = match host.strip_prefix("*.") {
            Some(suffix) => (HostPattern::Subdomains(suffix.to_string()), suffix),
            None => (HostPattern::Name(host.clone()), host.as_str()),
        };
        if name.contains('*') {
            return Err(bad("`*` is allowed only as a leading `*.`"));
        }
        if !valid_name(name) {
            return Err(bad("not a host name"));
        }
        if matches!(pattern, HostPattern::Subdomains(_)) && !name.contains('.') {
            return Err(bad(
                "`*.` needs a domain with at least two labels, not a top-level domain",
            ));
        }
        Ok(EgressRule {
            host: pattern,
            port,
        })
    }
}

impl std::fmt::Display for EgressRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.host {
            HostPattern::Name(name) => write!(f, "{name}:{}", self.port),
            HostPattern::Subdomains(suffix) => write!(f, "*.{suffix}:{}", self.port),
            HostPattern::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]:{}", self.port),
            HostPattern::Ip(ip) => write!(f, "{ip}:{}", self.port),
        }
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// What the program asked to reach, as the proxy read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A host name.
    Name(String),
    /// An address.
    Ip(IpAddr),
}

impl Target {
    /// Parses the host of a `CONNECT host:port` request.
    pub fn parse(host: &str) -> Option<Target> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Some(Target::Ip(ip));
        }
        let name = host.trim_end_matches('.').to_ascii_lowercase();
        valid_name(&name).then_some(Target::Name(name))
    }
}

/// The allowed destinations of one sandbox.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EgressPolicy {
    /// The rules; nothing else is reachable.
    pub rules: Vec<EgressRule>,
}

impl EgressPolicy {
    /// Parses every rule, naming each bad one.
    pub fn parse<S: AsRef<str>>(rules: &[S]) -> Result<EgressPolicy, Vec<String>> {
        let (good, bad): (Vec<_>, Vec<_>) = rules
            .iter()
            .map(|rule| EgressRule::parse(rule.as_ref()))
            .partition(Result::is_ok);
        if bad.is_empty() {
            Ok(EgressPolicy {
                rules: good.into_iter().filter_map(Result::ok).collect(),
            })
        } else {
            Err(bad.into_iter().filter_map(Result::err).collect())
        }
    }

    /// The rule that lets `target:port` through, before resolution; `Err` says why not.
    pub fn rule_for(&self, target: &Target, port: u16) -> Result<&EgressRule, String> {
        self.rules
            .iter()
            .find(|rule| {
                rule.port == port
                    && match (&rule.host, target) {
                        (HostPattern::Name(name), Target::Name(asked)) => name == asked,
                        (HostPattern::Subdomains(suffix), Target::Name(asked)) => asked
                            .strip_suffix(suffix.as_str())
                            .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
                        (HostPattern::Ip(ip), Target::Ip(asked)) => ip == asked,
                        _ => false,
                    }
            })
            .ok_or_else(|| "no egress rule allows it".to_string())
    }

    /// Whether the addresses a name resolved to may be used: all must be public (a name
    /// must not lead into the gateway's own networks).
    pub fn check_resolved(addresses: &[IpAddr]) -> Result<(), String> {
        if addresses.is_empty() {
            return Err("the name does not resolve".into());
        }
        match addresses.iter().find(|ip| !is_public(**ip)) {
            Some(ip) => Err(format!(
                "the name resolves to {ip}, which is not a public address (name the address itself in a rule to allow it)"
            )),
            None => Ok(()),
        }
    }
}

/// Whether `ip` is a public unicast address (not loopback, private, link-local, shared,
/// documentation, benchmarking, multicast, reserved or unspecified).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => is_public_v4(ip),
        IpAddr::V6(ip) => {
            if let Some(v4) = ip.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let first = ip.segments()[0];
            !(ip.is_unspecified()
                || ip.is_loopback()
                || ip.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (first & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (first == 0x2001 && ip.segments()[1] == 0x0db8) // documentation
                || (first == 0x0064 && ip.segments()[1] == 0xff9b) // NAT64 64:ff9b::/96
                || first == 0x0100) // discard 100::/64
        }
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
        || (a == 100 && (64..128).contains(&b)) // shared address space 100.64.0.0/10
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240) // reserved
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(rules: &[&str]) -> EgressPolicy {
        EgressPolicy::parse(rules).unwrap()
    }

    #[test]
    fn rules_parse_with_their_ports() {
        let p = policy(&[
            "API.GitHub.com",
            "*.pypi.org:8443",
            "203.0.113.7:80",
            "[2001:db8::1]:22",
            "2001:db8::2",
        ]);
        let shown: Vec<String> = p.rules.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "api.github.com:443",
                "*.pypi.org:8443",
                "203.0.113.7:80",
                "[2001:db8::1]:22",
                "[2001:db8::2]:443"
            ]
        );
        let errors = EgressPolicy::parse(&["", "a:0", "*.com", "a*.b.c", "x:99999", "bad host"])
            .unwrap_err();
        assert_eq!(errors.len(), 6, "{errors:?}");
        assert!(errors[2].contains("top-level"), "{errors:?}");
    }

    #[test]
    fn names_match_exactly_or_as_subdomains_on_the_same_port() {
        let p = policy(&["api.github.com", "*.pypi.org", "10.0.0.5:8080"]);
        let name = |n: &str| Target::parse(n).unwrap();
        assert!(p.rule_for(&name("api.github.com"), 443).is_ok());
        assert!(p.rule_for(&name("API.GITHUB.COM."), 443).is_ok());
        assert!(p.rule_for(&name("api.github.com"), 80).is_err());
        assert!(p.rule_for(&name("github.com"), 443).is_err());
        assert!(p.rule_for(&name("evilapi.github.com"), 443).is_err());
        assert!(p.rule_for(&name("files.pypi.org"), 443).is_ok());
        assert!(p.rule_for(&name("a.b.pypi.org"), 443).is_ok());
        assert!(p.rule_for(&name("pypi.org"), 443).is_err());
        assert!(p.rule_for(&name("notpypi.org"), 443).is_err());
        assert!(p.rule_for(&name("10.0.0.5"), 8080).is_ok());
        assert!(p.rule_for(&name("10.0.0.6"), 8080).is_err());
        assert!(Target::parse("not a host").is_none());
    }

    #[test]
    fn names_must_resolve_to_public_addresses() {
        let ok = |ips: &[&str]| {
            let ips: Vec<IpAddr> = ips.iter().map(|i| i.parse().unwrap()).collect();
            EgressPolicy::check_resolved(&ips).is_ok()
        };
        assert!(ok(&["140.82.112.5", "2606:4700::6810:85e5"]));
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!ok(&["140.82.112.5", private]), "{private} passed");
        }
        assert!(!ok(&[]));
    }
}
