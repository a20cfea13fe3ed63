//! Input parsed at the edge into types, so handlers never see raw, unchecked strings.

use std::fmt;

/// A syntactically valid email address, trimmed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Accepts `local@domain.tld` addresses the way a person types them; refuses what no mail
    /// server would accept. Deliverability is checked later by sending mail.
    pub fn parse(input: &str) -> Result<Self, &'static str> {
        let email = input.trim();
        if email.is_empty() {
            return Err("Enter your email address.");
        }
        let invalid = "Enter an email address like name@example.com.";
        if email.len() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid);
        }
        let Some((local, domain)) = email.rsplit_once('@') else {
            return Err(invalid);
        };
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.contains('@')
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && !local.contains(['"', '(', ')', ',', ':', ';', '<', '>', '[', '\\', ']']);
        let domain_ok = domain.contains('.')
            && domain.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_alphanumeric() || c == '-')
            });
        if !(local_ok && domain_ok) {
            return Err(invalid);
        }
        normalise_email(email).map(Self).ok_or(invalid)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The one form of an address that is stored, looked up and mailed: the local part in Unicode
/// NFKC and lower case, the domain mapped by IDNA (UTS 46) and shown in Unicode. So look-alike
/// spellings of one address (the Kelvin sign U+212A for `K`, full-width letters, upper case)
/// are one address, which mail for it reaches, instead of a second account beside it. `None`
/// when the domain is no valid IDNA name.
pub fn normalise_email(email: &str) -> Option<String> {
    use unicode_normalization::UnicodeNormalization;
    let (local, domain) = email.trim().rsplit_once('@')?;
    let local: String = local.nfkc().collect::<String>().to_lowercase();
    let ascii = idna::domain_to_ascii(domain).ok()?;
    let (unicode, mapped) = idna::domain_to_unicode(&ascii);
    mapped.ok()?;
    if local.is_empty() || unicode.is_empty() {
        return None;
    }
    Some(format!("{local}@{unicode}"))
}

/// The key two spellings of one address share: the normal form with the domain in ASCII
/// (punycode), for the unique `email_lower` column and for throttles.
pub fn email_lookup_key(email: &str) -> String {
    match normalise_email(email) {
        Some(normal) => match normal.rsplit_once('@') {
            Some((local, domain)) => {
                let ascii = idna::domain_to_ascii(domain).unwrap_or_else(|_| domain.to_string());
                format!("{local}@{ascii}")
            }
            None => normal,
        },
        // Not an address we would accept: still a stable key for look-ups that find nothing.
        None => email.trim().to_lowercase(),
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `a•••@example.com`: enough for a person to recognise their address in a message, without
/// spelling it out on a page that others may see.
pub fn mask_email(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}\u{2022}\u{2022}\u{2022}@{domain}")
        }
        None => "\u{2022}\u{2022}\u{2022}".into(),
    }
}

/// Where to send the browser after sign-in: only a path on this server, never another site.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NextUrl(String);

impl NextUrl {
    /// Accepts `/path?query` and nothing else: no scheme, no `//host`, no backslashes (browsers
    /// read `/\host` as `//host`), no control characters.
    pub fn parse(input: &str) -> Option<Self> {
        let ok = input.starts_with('/')
            && !input.starts_with("//")
            && !input.contains('\\')
            && input.len() <= 2048
            && !input.chars().any(|c| c.is_control() || c.is_whitespace());
        ok.then(|| Self(input.to_string()))
    }

    /// `next` from a form or query string, falling back to `/account`.
    pub fn parse_or_default(input: Option<&str>) -> Self {
        input
            .and_then(Self::parse)
            .unwrap_or_else(|| Self("/account".into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Percent-encodes a value for a query string, keeping `/` readable (`?next=/account`).
pub fn encode_query_value(value: &str) -> String {
    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
    const KEEP: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'/')
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    utf8_percent_encode(value, KEEP).to_string()
}

/// A space-separated list (scopes, resources, sign-in methods) as owned strings, empty items
/// dropped.
pub fn space_list(text: &str) -> Vec<String> {
    text.split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// RFC 7636 §4.1: a code verifier is 43 to 128 characters of `[A-Za-z0-9-._~]`.
pub fn valid_code_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// RFC 7636 §4.2: an S256 challenge is BASE64URL of 32 bytes, 43 characters of
/// `[A-Za-z0-9-_]` with no padding.
pub fn valid_s256_challenge(challenge: &str) -> bool {
    challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_values_are_checked_character_by_character() {
        let good = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(valid_s256_challenge(good));
        assert!(!valid_s256_challenge(&good.replace('E', "+")));
        assert!(!valid_s256_challenge(&good.replace('E', "=")));
        assert!(!valid_s256_challenge(&good[..42]));
        assert!(valid_code_verifier(&"a.b~c-d_".repeat(6)));
        assert!(!valid_code_verifier(&"a".repeat(42)));
        assert!(!valid_code_verifier(&"a+".repeat(30)));
    }

    #[test]
    fn look_alike_spellings_of_an_address_are_one_address() {
        let kelvin = Email::parse("\u{212A}im@Example.COM").expect("valid");
        assert_eq!(kelvin.as_str(), "kim@example.com");
        assert_eq!(
            email_lookup_key("\u{212A}im@example.com"),
            email_lookup_key("kim@example.com")
        );
        assert_eq!(
            Email::parse("ＡＤＡ@example.com")
                .expect("full width")
                .as_str(),
            "ada@example.com"
        );
        assert_eq!(
            Email::parse("Jo@Bücher.Example").expect("IDN").as_str(),
            "jo@bücher.example"
        );
        assert_eq!(
            email_lookup_key("jo@bücher.example"),
            "jo@xn--bcher-kva.example"
        );
    }

    #[test]
    fn emails() {
        // Trimmed, and in the one normal form (lower case: see `normalise_email`).
        assert!(Email::parse(" Ann@Example.com ").is_ok_and(|e| e.as_str() == "ann@example.com"));
        for bad in [
            "",
            "ann",
            "ann@",
            "@example.com",
            "ann@example",
            "a b@example.com",
            "ann@@example.com",
            "ann@exa_mple.com",
            "ann@-x.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn next_urls_stay_on_this_site() {
        assert_eq!(
            NextUrl::parse("/account?tab=1").map(|n| n.0),
            Some("/account?tab=1".into())
        );
        for bad in [
            "https://evil.example",
            "//evil.example",
            "/\\evil.example",
            "account",
            "/a\nb",
            "",
        ] {
            assert!(NextUrl::parse(bad).is_none(), "{bad:?}");
        }
        assert_eq!(
            NextUrl::parse_or_default(Some("//evil")).as_str(),
            "/account"
        );
    }
}
