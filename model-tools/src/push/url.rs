//! Where a push goes: the agent's base URL as the user gives it, and the API paths under it.

use reqwest::Url;

use super::Upload;

/// The agent's base URL: `http://` is assumed when no scheme is given.
pub(super) fn base_url(agent: &str) -> Result<Url, String> {
    let agent = agent.trim();
    let text = if agent.contains("://") {
        agent.to_owned()
    } else {
        format!("http://{agent}")
    };
    let url = Url::parse(&text).map_err(|e| format!("{e} (expected e.g. http://10.0.0.7:8080)"))?;
    match url.scheme() {
        "http" => {}
        "https" => {
            return Err(
                "https is not supported: this build has no TLS; reach the agent over \
                        http on a trusted network or through an SSH tunnel"
                    .to_owned(),
            )
        }
        other => return Err(format!("the scheme `{other}` is not http")),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("no host".to_owned());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("give the agent's base URL, without a query or fragment".to_owned());
    }
    Ok(url)
}

/// `base` with path segments appended (each escaped).
pub(super) fn endpoint(base: &Url, segments: &[&str]) -> Result<Url, String> {
    let mut url = base.clone();
    url.path_segments_mut()
        .map_err(|()| "not a base URL".to_owned())?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

/// `PUT /v1/models/{name}/versions/{version}?activate=...`.
pub(super) fn push_url(base: &Url, upload: &Upload) -> Result<Url, String> {
    let version = upload.version.to_string();
    let mut url = endpoint(
        base,
        &[
            "v1",
            "models",
            upload.name.as_str(),
            "versions",
            version.as_str(),
        ],
    )?;
    url.set_query(Some(if upload.activate {
        "activate=true"
    } else {
        "activate=false"
    }));
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_urls_are_read_and_push_urls_escaped() {
        let upload = Upload::from_bytes(
            inference::test_support::model_bytes("digits_mlp.onnx"),
            "digits mlp",
            3,
        )
        .unwrap()
        .with_activate(false);
        for (agent, want) in [
            (
                "127.0.0.1:8080",
                "http://127.0.0.1:8080/v1/models/digits%20mlp/versions/3?activate=false",
            ),
            (
                "http://edge-7/agent/",
                "http://edge-7/agent/v1/models/digits%20mlp/versions/3?activate=false",
            ),
        ] {
            let url = push_url(&base_url(agent).unwrap(), &upload).unwrap();
            assert_eq!(url.as_str(), want);
        }
        for (bad, why) in [
            ("https://edge-7", "no TLS"),
            ("ftp://edge-7", "`ftp`"),
            ("http://edge-7/?x=1", "without a query"),
            ("http://", "empty host"),
        ] {
            let err = base_url(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}
