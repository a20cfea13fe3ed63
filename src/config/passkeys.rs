//! Where passkeys (WebAuthn) can work: a relying-party id (a domain) and the public URL's
//! origin, which browsers only accept over https or on `localhost` (WebAuthn §5.1.3, §13.4.9).

use url::Url;

use super::ConfigError;
use super::raw::RawConfig;

/// Whether passkeys are offered, and for which relying-party id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PasskeySettings {
    On {
        /// The public URL's host, or a parent domain of it (`PORTCULLIS_PASSKEY_RP_ID`).
        rp_id: String,
    },
    /// Turned off, or (with `auto`) not possible at this public URL: why, for the start-up log.
    Off { why: Option<String> },
}

pub fn settings(raw: &RawConfig, public_url: &Url) -> Result<PasskeySettings, ConfigError> {
    let mode = raw.passkeys.trim().to_ascii_lowercase();
    let required = match mode.as_str() {
        "off" => return Ok(PasskeySettings::Off { why: None }),
        "on" => true,
        "auto" => false,
        _ => {
            return Err(ConfigError(format!(
                "PORTCULLIS_PASSKEYS (passkeys) must be auto, on or off, got {:?}",
                raw.passkeys
            )));
        }
    };
    let rp_id = raw
        .passkey_rp_id
        .as_deref()
        .map(|id| id.trim().trim_end_matches('.').to_ascii_lowercase())
        .filter(|id| !id.is_empty());
    let explicit = rp_id.is_some();
    match relying_party(public_url, rp_id) {
        Ok(rp_id) => Ok(PasskeySettings::On { rp_id }),
        Err(why) if required || explicit => Err(ConfigError(format!(
            "passkeys cannot work here: {why} (set PORTCULLIS_PASSKEYS=off to run without them)"
        ))),
        Err(why) => Ok(PasskeySettings::Off { why: Some(why) }),
    }
}

fn relying_party(public_url: &Url, rp_id: Option<String>) -> Result<String, String> {
    let Some(host) = public_url.domain().map(str::to_ascii_lowercase) else {
        return Err(format!(
            "the host of PORTCULLIS_PUBLIC_URL ({}) is an IP address, and WebAuthn needs a \
             domain name (localhost counts)",
            public_url.host_str().unwrap_or_default()
        ));
    };
    if public_url.scheme() != "https" && host != "localhost" {
        return Err(format!(
            "browsers offer WebAuthn only on https:// pages (or http://localhost), and \
             PORTCULLIS_PUBLIC_URL is {}",
            public_url.origin().ascii_serialization()
        ));
    }
    let rp_id = rp_id.unwrap_or_else(|| host.clone());
    let suffix = host == rp_id || host.ends_with(&format!(".{rp_id}"));
    if !suffix || !rp_id.contains('.') && rp_id != "localhost" {
        return Err(format!(
            "PORTCULLIS_PASSKEY_RP_ID ({rp_id}) must be {host} or a parent domain of it \
             (never a top-level domain)"
        ));
    }
    Ok(rp_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(url: &str, mode: &str, rp_id: Option<&str>) -> Result<PasskeySettings, ConfigError> {
        let raw = RawConfig {
            passkeys: mode.into(),
            passkey_rp_id: rp_id.map(str::to_string),
            ..RawConfig::default()
        };
        settings(&raw, &Url::parse(url).expect("url"))
    }

    fn on(rp_id: &str) -> PasskeySettings {
        PasskeySettings::On {
            rp_id: rp_id.into(),
        }
    }

    #[test]
    fn the_public_host_or_a_parent_domain_is_the_relying_party() {
        assert_eq!(
            at("https://login.example.com", "auto", None).ok(),
            Some(on("login.example.com"))
        );
        assert_eq!(
            at("https://login.example.com", "on", Some("example.com")).ok(),
            Some(on("example.com"))
        );
        assert_eq!(
            at("http://localhost:8080", "auto", None).ok(),
            Some(on("localhost"))
        );
        let err =
            at("https://login.example.com", "auto", Some("other.com")).expect_err("not a parent");
        assert!(err.0.contains("parent domain"), "{}", err.0);
        assert!(at("https://login.example.com", "auto", Some("com")).is_err());
    }

    #[test]
    fn an_ip_address_or_plain_http_turns_auto_off_and_refuses_on() {
        for url in ["http://127.0.0.1:8080", "http://login.example.com"] {
            match at(url, "auto", None) {
                Ok(PasskeySettings::Off { why: Some(why) }) => {
                    assert!(why.contains("IP address") || why.contains("https"), "{why}")
                }
                other => panic!("{url}: {other:?}"),
            }
            let err = at(url, "on", None).expect_err("refused");
            assert!(err.0.contains("PORTCULLIS_PASSKEYS=off"), "{}", err.0);
        }
        assert_eq!(
            at("http://127.0.0.1:8080", "off", None).ok(),
            Some(PasskeySettings::Off { why: None })
        );
        assert!(at("https://login.example.com", "sometimes", None).is_err());
    }
}
