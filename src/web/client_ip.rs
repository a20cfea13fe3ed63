//! The client's address behind a reverse proxy. When the TCP peer is one of the configured
//! trusted proxies, the client is the right-most address in `X-Forwarded-For` that is not a
//! trusted proxy itself (addresses further left could have been written by the client). Every
//! handler then sees that address as the connection's peer, so throttles, the audit log and the
//! sign-in lists use it. Without trusted proxies the header is ignored: anyone could forge it.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use ipnet::IpNet;

pub type TrustedProxies = Arc<Vec<IpNet>>;

pub async fn resolve(
    State(trusted): State<TrustedProxies>,
    mut request: Request,
    next: Next,
) -> Response {
    if let Some(ConnectInfo(peer)) = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .copied()
    {
        let client = client_ip(peer.ip(), request.headers(), &trusted);
        if client != peer.ip() {
            request
                .extensions_mut()
                .insert(ConnectInfo(SocketAddr::new(client, peer.port())));
        }
    }
    next.run(request).await
}

fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    trusted.iter().any(|net| net.contains(&ip))
}

fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    if !is_trusted(peer, trusted) {
        return peer;
    }
    // Several headers are read as one list, in order.
    let hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|hop| hop.trim().parse::<IpAddr>().ok())
        .collect();
    hops.into_iter()
        .rev()
        .find(|hop| !is_trusted(*hop, trusted))
        .unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append("x-forwarded-for", value.parse().expect("header value"));
        }
        headers
    }

    #[test]
    fn the_right_most_untrusted_hop_is_the_client() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().expect("net")];
        let proxy: IpAddr = "10.0.0.5".parse().expect("ip");
        let forged_then_real = headers(&["1.2.3.4, 203.0.113.9", "10.0.0.7"]);
        assert_eq!(
            client_ip(proxy, &forged_then_real, &trusted),
            "203.0.113.9".parse::<IpAddr>().expect("ip")
        );
    }

    #[test]
    fn the_header_counts_only_from_a_trusted_proxy() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().expect("net")];
        let stranger: IpAddr = "198.51.100.1".parse().expect("ip");
        assert_eq!(
            client_ip(stranger, &headers(&["1.2.3.4"]), &trusted),
            stranger
        );
        let proxy: IpAddr = "10.1.1.1".parse().expect("ip");
        assert_eq!(client_ip(proxy, &headers(&["junk"]), &trusted), proxy);
    }
}
