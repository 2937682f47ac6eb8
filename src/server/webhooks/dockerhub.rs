//! Docker Hub: one kind of event, a push, naming `repository.repo_name` (`namespace/name`).
//! Docker Hub signs nothing, so the receiver's secret is part of the URL.

use serde::Deserialize;

use super::{Event, WebhookError, image_in, json, scan};

#[derive(Deserialize)]
struct Payload {
    repository: Repository,
}

#[derive(Deserialize)]
struct Repository {
    repo_name: String,
}

pub(super) fn parse(body: &[u8]) -> Result<Event, WebhookError> {
    let payload: Payload = json(body)?;
    let image = image_in(crate::model::DOCKER_HUB, &payload.repository.repo_name)?;
    Ok(scan(vec![image], "no repository"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_names_the_repository() {
        let body = include_str!("../../../tests/fixtures/webhooks/dockerhub-push.json");
        let event = parse(body.as_bytes()).unwrap();
        let Event::Scan(images) = event else {
            panic!("{event:?}")
        };
        assert_eq!(images.len(), 1);
        assert_eq!(images[0].canonical(), "docker.io/acme/web");
    }

    #[test]
    fn missing_repository_is_malformed() {
        let err = parse(br#"{"push_data":{"tag":"1"}}"#).unwrap_err();
        assert!(err.to_string().contains("repository"), "{err}");
        let err = parse(br#"{"repository":{"repo_name":""}}"#).unwrap_err();
        assert!(err.to_string().contains("empty"), "{err}");
    }
}
