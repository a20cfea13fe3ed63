//! Form parameters of the protocol endpoints (RFC 6749 §3.2): each at most once, except
//! RFC 8707 `resource`, which may repeat.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use url::Url;

use super::OAuthError;

pub struct Params {
    values: HashMap<String, String>,
    resources: Vec<String>,
}

impl Params {
    pub fn parse(
        headers: &HeaderMap,
        body: Result<Bytes, BytesRejection>,
    ) -> Result<Self, OAuthError> {
        let body = body.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                OAuthError::too_large()
            } else {
                OAuthError::invalid_request("the request body could not be read")
            }
        })?;
        let form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if !form {
            return Err(OAuthError::invalid_request(
                "send the parameters as application/x-www-form-urlencoded",
            ));
        }
        let mut values = HashMap::new();
        let mut resources = Vec::new();
        for (name, value) in url::form_urlencoded::parse(&body) {
            if name == "resource" {
                resources.push(value.into_owned());
            } else if values.insert(name.to_string(), value.to_string()).is_some() {
                return Err(OAuthError::invalid_request(format!(
                    "the parameter {name} is repeated"
                )));
            }
        }
        let resources = check_resources(resources).map_err(OAuthError::invalid_target)?;
        Ok(Self { values, resources })
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub fn require(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name)
            .ok_or_else(|| OAuthError::invalid_request(format!("the parameter {name} is missing")))
    }

    /// RFC 8707 resource indicators, checked to be absolute URIs without a fragment.
    pub fn resources(&self) -> &[String] {
        &self.resources
    }
}

/// RFC 8707 §2: each `resource` is an absolute URI without a fragment; repeats collapse.
pub fn check_resources(values: Vec<String>) -> Result<Vec<String>, String> {
    let mut resources: Vec<String> = Vec::new();
    for value in values {
        let valid = Url::parse(&value).is_ok_and(|url| url.fragment().is_none());
        if !valid {
            return Err(format!(
                "the resource {value:?} is not an absolute URI without a fragment"
            ));
        }
        if !resources.contains(&value) {
            resources.push(value);
        }
    }
    Ok(resources)
}
