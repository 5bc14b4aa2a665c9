//! Who a request really came from when the gateway sits behind balancers: the peer's
//! address, unless the peer is a trusted proxy, in which case the right-most address in
//! `X-Forwarded-For` that is not itself a trusted proxy (addresses further left were
//! written by the client and cannot be believed).

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

/// The balancers whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
}

impl TrustedProxies {
    /// Parses addresses (`10.0.0.7`) and ranges (`10.0.0.0/8`); the error names the
    /// entry that is neither.
    pub fn parse(entries: &[String]) -> Result<TrustedProxies, String> {
        let nets = entries
            .iter()
            .map(|entry| {
                let entry = entry.trim();
                entry
                    .parse::<IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        format!("`{entry}` is neither an IP address nor a CIDR range (e.g. `10.0.0.0/8`)")
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TrustedProxies { nets })
    }

    /// True when none is configured.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.nets.iter().any(|net| net.contains(&ip))
    }

    /// The client behind `peer`, given the values of its `X-Forwarded-For` headers in
    /// order. Forwarded addresses carry port 0.
    pub fn client<'a>(
        &self,
        peer: SocketAddr,
        forwarded_for: impl IntoIterator<Item = &'a str>,
    ) -> SocketAddr {
        if self.is_empty() || !self.trusts(peer.ip()) {
            return peer;
        }
        let hops: Vec<&str> = forwarded_for
            .into_iter()
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .filter(|hop| !hop.is_empty())
            .collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            let Ok(ip) = hop.parse::<IpAddr>() else {
                // Not an address (a name, garbage): what is further left is the client's
                // own claim; stop at the last hop a trusted proxy vouched for.
                break;
            };
            client = SocketAddr::new(ip, 0);
            if !self.trusts(ip) {
                break;
            }
        }
        client
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(ip: &str) -> SocketAddr {
        SocketAddr::new(ip.parse().unwrap_or(IpAddr::from([0, 0, 0, 0])), 4242)
    }

    fn trusted(entries: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(&entries.iter().map(|e| e.to_string()).collect::<Vec<_>>())
            .unwrap_or_default()
    }

    #[test]
    fn only_a_trusted_peer_is_believed() {
        let proxies = trusted(&["10.0.0.0/8", "127.0.0.1"]);
        assert_eq!(
            proxies.client(peer("10.1.2.3"), ["203.0.113.9"]),
            "203.0.113.9:0"
                .parse::<SocketAddr>()
                .unwrap_or(peer("0.0.0.0"))
        );
        // An untrusted peer's header is its own claim.
        assert_eq!(
            proxies.client(peer("198.51.100.4"), ["203.0.113.9"]),
            peer("198.51.100.4")
        );
        // No header: the peer.
        assert_eq!(proxies.client(peer("127.0.0.1"), []), peer("127.0.0.1"));
        // None configured: the peer, whatever the header says.
        assert_eq!(
            TrustedProxies::default().client(peer("10.1.2.3"), ["203.0.113.9"]),
            peer("10.1.2.3")
        );
    }

    #[test]
    fn the_right_most_untrusted_hop_is_the_client() {
        let proxies = trusted(&["10.0.0.0/8"]);
        // The client forged a first hop; two trusted proxies appended theirs.
        let client = proxies.client(peer("10.0.0.2"), ["6.6.6.6, 203.0.113.9", "10.0.0.1"]);
        assert_eq!(
            client.ip(),
            "203.0.113.9".parse::<IpAddr>().unwrap_or(client.ip())
        );
        // Garbage stops the walk at the last vouched-for hop.
        let client = proxies.client(peer("10.0.0.2"), ["203.0.113.9, evil, 10.0.0.1"]);
        assert_eq!(
            client.ip(),
            "10.0.0.1".parse::<IpAddr>().unwrap_or(client.ip())
        );
        // IPv4-mapped IPv6 peers match IPv4 ranges.
        assert_eq!(
            proxies
                .client(peer("::ffff:10.0.0.2"), ["203.0.113.9"])
                .port(),
            0
        );
    }

    #[test]
    fn bad_entries_are_named() {
        let error = TrustedProxies::parse(&["10.0.0.0/8".into(), "balancer".into()])
            .err()
            .unwrap_or_default();
        assert!(error.contains("`balancer`"), "{error}");
    }
}
