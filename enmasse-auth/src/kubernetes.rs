//! Service-account tokens reviewed by the Kubernetes API server, as a broker in a cluster does.
//!
//! The reviewer posts a `TokenReview` (`authentication.k8s.io/v1`) and reads back whether the
//! token is valid and whose it is. The broker's service account needs the right to create token
//! reviews: the `system:auth-delegator` cluster role grants it.

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::{Api, Client, api::PostParams};

use crate::tokens::{Review, ReviewError, TokenReviewer};

/// Asks the Kubernetes API server whose a token is.
#[derive(Clone)]
pub struct KubernetesReviewer {
    reviews: Api<TokenReview>,
}

impl std::fmt::Debug for KubernetesReviewer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubernetesReviewer").finish_non_exhaustive()
    }
}

impl KubernetesReviewer {
    /// Reviews tokens through `client`.
    pub fn new(client: Client) -> Self {
        Self {
            reviews: Api::all(client),
        }
    }

    /// Reviews tokens through the API server the environment names: the pod's service account in
    /// a cluster, else the kubeconfig.
    pub async fn from_environment() -> Result<Self, ReviewError> {
        let client = Client::try_default()
            .await
            .map_err(|e| ReviewError(format!("failed to reach the Kubernetes API server: {e}")))?;
        Ok(Self::new(client))
    }
}

impl TokenReviewer for KubernetesReviewer {
    fn review<'a>(&'a self, token: &'a str) -> Review<'a> {
        Box::pin(async move {
            let review = TokenReview {
                spec: TokenReviewSpec {
                    token: token.to_owned(),
                    audiences: None,
                },
                ..TokenReview::default()
            };
            let reviewed = self
                .reviews
                .create(&PostParams::default(), &review)
                .await
                .map_err(|e| match &e {
                    kube::Error::Api(status) if status.code == 403 => ReviewError(format!(
                        "the API server does not let this broker review tokens ({}); grant its \
                         service account the system:auth-delegator cluster role",
                        status.message
                    )),
                    _ => ReviewError(format!("the TokenReview request failed: {e}")),
                })?;
            let Some(status) = reviewed.status else {
                return Err(ReviewError(
                    "the API server answered the TokenReview without a status".into(),
                ));
            };
            // A token the API server does not accept, for whatever reason, is simply not valid.
            if status.authenticated != Some(true) {
                return Ok(None);
            }
            Ok(status.user.and_then(|user| user.username))
        })
    }
}

#[cfg(test)]
mod tests {
    use http::{Method, Request, Response};
    use kube::client::Body;
    use tower_test::mock;

    use super::*;

    /// A reviewer whose API server answers one request with `status` and `answer`, and the request
    /// it got (as JSON).
    async fn review_once(
        status: u16,
        answer: serde_json::Value,
    ) -> (Result<Option<String>, ReviewError>, serde_json::Value) {
        let (service, mut handle) = mock::pair::<Request<Body>, Response<Body>>();
        let server = tokio::spawn(async move {
            let (request, respond) = handle
                .next_request()
                .await
                .expect("the reviewer calls the API server");
            assert_eq!(request.method(), Method::POST);
            assert_eq!(
                request.uri().path(),
                "/apis/authentication.k8s.io/v1/tokenreviews"
            );
            let body = request.into_body().collect_bytes().await.expect("a request body");
            let response = Response::builder()
                .status(status)
                .body(Body::from(serde_json::to_vec(&answer).expect("JSON")))
                .expect("a response");
            respond.send_response(response);
            serde_json::from_slice::<serde_json::Value>(&body).expect("a JSON request")
        });
        let reviewer = KubernetesReviewer::new(Client::new(service, "default"));
        let result = reviewer.review("the-token").await;
        (result, server.await.expect("the mock API server"))
    }

    fn reviewed(status: serde_json::Value) -> serde_json::Value {
        serde_json::json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "metadata": {},
            "spec": {"token": "the-token"},
            "status": status,
        })
    }

    #[tokio::test]
    async fn a_valid_token_names_its_service_account() {
        let (result, request) = review_once(
            201,
            reviewed(serde_json::json!({
                "authenticated": true,
                "user": {"username": "system:serviceaccount:team1:app", "uid": "1"},
            })),
        )
        .await;
        assert_eq!(result, Ok(Some("system:serviceaccount:team1:app".to_owned())));
        assert_eq!(request["kind"], "TokenReview");
        assert_eq!(request["spec"]["token"], "the-token");
    }

    #[tokio::test]
    async fn a_token_the_api_server_does_not_accept_is_not_valid() {
        let (result, _) = review_once(
            201,
            reviewed(serde_json::json!({"authenticated": false, "error": "invalid bearer token"})),
        )
        .await;
        assert_eq!(result, Ok(None));
    }

    #[tokio::test]
    async fn a_broker_without_the_right_to_review_is_told_which_role_it_lacks() {
        let forbidden = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Status",
            "status": "Failure",
            "message": "tokenreviews.authentication.k8s.io is forbidden",
            "reason": "Forbidden",
            "code": 403,
        });
        let (result, _) = review_once(403, forbidden).await;
        let err = result.expect_err("a review the API server refused is an error, not a refusal");
        assert!(err.0.contains("system:auth-delegator"), "{err}");
    }

    #[tokio::test]
    async fn an_answer_without_a_status_is_an_error() {
        let answer = serde_json::json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "metadata": {},
            "spec": {"token": "the-token"},
        });
        let (result, _) = review_once(201, answer).await;
        assert!(result.is_err(), "{result:?}");
    }
}
