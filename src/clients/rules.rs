//! What a client registration may contain: redirect URIs, resources, scope names.

use url::Url;

/// Schemes that run code or read local data in the browser instead of reaching an app
/// (RFC 9700 §4.1.3, RFC 8252 §8.4): never a place to send a code.
const DANGEROUS_SCHEMES: [&str; 7] = [
    "javascript",
    "data",
    "vbscript",
    "file",
    "blob",
    "about",
    "filesystem",
];

/// Exact-match redirect URIs (RFC 9700 §4.1.3): absolute, no fragment; plain http only to this
/// machine (RFC 8252 §7.3), custom schemes allowed for native apps (RFC 8252 §7.1) unless they
/// are among the dangerous ones.
pub fn check_redirect_uri(uri: &str) -> Result<(), String> {
    let url = Url::parse(uri).map_err(|_| format!("{uri:?} is not an absolute URL"))?;
    if url.fragment().is_some() {
        return Err(format!("{uri:?} must not contain a fragment (#…)"));
    }
    let local = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    match url.scheme() {
        "https" if url.host_str().is_some() => Ok(()),
        "http" if local => Ok(()),
        "http" | "https" => Err(format!(
            "{uri:?} must use https with a host (plain http is allowed only for localhost)"
        )),
        scheme if DANGEROUS_SCHEMES.contains(&scheme) => Err(format!(
            "{uri:?} uses the {scheme}: scheme, which cannot be a return address"
        )),
        _ => Ok(()),
    }
}

/// RFC 8707 §2: a resource is an absolute URI without a fragment; https, or http to this
/// machine.
pub fn check_resource_uri(uri: &str) -> Result<(), String> {
    let url =
        Url::parse(uri).map_err(|_| format!("the resource {uri:?} is not an absolute URI"))?;
    if url.fragment().is_some() {
        return Err(format!("the resource {uri:?} must not contain a fragment"));
    }
    let local = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    match url.scheme() {
        "https" if url.host_str().is_some() => Ok(()),
        "http" if local => Ok(()),
        _ => Err(format!(
            "the resource {uri:?} must be an https URL (plain http only for localhost)"
        )),
    }
}

/// RFC 6749 §3.3: scope tokens are printable ASCII without spaces, quotes or backslashes.
pub fn valid_scope_token(scope: &str) -> bool {
    !scope.is_empty()
        && scope
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_must_be_exact_https_or_local() {
        assert!(check_redirect_uri("https://app.example.com/callback").is_ok());
        assert!(check_redirect_uri("http://127.0.0.1:3000/cb").is_ok());
        assert!(check_redirect_uri("com.example.app:/oauth").is_ok());
        assert!(check_redirect_uri("http://app.example.com/cb").is_err());
        assert!(check_redirect_uri("https://app.example.com/cb#x").is_err());
        assert!(check_redirect_uri("/relative").is_err());
        for dangerous in [
            "javascript:alert(1)",
            "JavaScript://example.com/%0Aalert(1)",
            "data:text/html,<script>alert(1)</script>",
            "vbscript:msgbox(1)",
            "file:///etc/passwd",
            "blob:https://example.com/x",
        ] {
            assert!(check_redirect_uri(dangerous).is_err(), "{dangerous}");
        }
    }

    #[test]
    fn scope_tokens() {
        assert!(valid_scope_token("read:orders"));
        assert!(!valid_scope_token("a b") && !valid_scope_token("a\"b") && !valid_scope_token(""));
    }
}
