//! The API calls of a space's infrastructure in the operator's namespace: reading what is there,
//! applying what should be (server-side apply, so that fields others own are left alone and
//! drift in ours is healed), and deleting it all when the space goes.

use k8s_openapi::{
    ByteString, NamespaceResourceScope,
    api::{
        apps::v1::StatefulSet,
        core::v1::{Pod, Secret, Service},
        networking::v1::NetworkPolicy,
    },
};
use kube::{
    Api, Client, Resource,
    api::{DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams},
};
use serde::{Serialize, de::DeserializeOwned};

use crate::{expose::Route, names::InfraNames, workload::MANAGEMENT_TOKEN};

/// The field manager of everything the operator applies.
pub const FIELD_MANAGER: &str = "enmasse-operator";

/// Why a space's infrastructure could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InfraError {
    /// An API call failed.
    #[error("failed to {action} {kind} {namespace}/{name}")]
    Api {
        /// What was being done (`apply`, `read`, `delete`).
        action: &'static str,
        /// The object's kind.
        kind: &'static str,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The cause.
        #[source]
        source: kube::Error,
    },
    /// The system's random source failed.
    #[error("failed to generate the management token of {0}: the system's random source failed")]
    Random(String),
}

/// The API of one space's infrastructure.
pub struct SpaceInfra<'a> {
    client: &'a Client,
    namespace: &'a str,
    names: &'a InfraNames,
}

impl<'a> SpaceInfra<'a> {
    /// The infrastructure of `names` in `namespace` (the operator's).
    pub fn new(client: &'a Client, namespace: &'a str, names: &'a InfraNames) -> Self {
        Self {
            client,
            namespace,
            names,
        }
    }

    /// Reads a Secret of the operator's namespace.
    pub async fn secret(&self, name: &str) -> Result<Option<Secret>, InfraError> {
        self.get(name).await
    }

    /// Applies `object` (it names itself) and returns it as the API server has it.
    pub async fn apply<K>(&self, object: &K) -> Result<K, InfraError>
    where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
            + k8s_openapi::Resource
            + Clone
            + Serialize
            + DeserializeOwned
            + std::fmt::Debug,
    {
        let name = object.meta().name.clone().unwrap_or_default();
        self.api::<K>()
            .patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(object),
            )
            .await
            .map_err(self.fail::<K>("apply", &name))
    }

    /// The token the broker's management API asks for: `existing`, as [`Self::existing_token`]
    /// read it, or else a new one, created once.
    pub async fn management_token(&self, existing: Option<String>) -> Result<String, InfraError> {
        let name = self.names.management_secret();
        if let Some(token) = existing {
            return Ok(token);
        }
        let token = random_token().map_err(|_| InfraError::Random(name.clone()))?;
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(self.namespace.to_owned()),
                labels: Some(self.names.labels()),
                ..ObjectMeta::default()
            },
            data: Some(
                [(
                    MANAGEMENT_TOKEN.to_owned(),
                    ByteString(token.clone().into_bytes()),
                )]
                .into(),
            ),
            ..Secret::default()
        };
        match self.api::<Secret>().create(&PostParams::default(), &secret).await {
            Ok(_) => Ok(token),
            // There already: written meanwhile (use that token), or without a usable one (replace it).
            Err(kube::Error::Api(status)) if status.code == 409 => match self.existing_token().await? {
                Some(existing) => Ok(existing),
                None => {
                    self.apply(&secret).await?;
                    Ok(token)
                }
            },
            Err(source) => Err(self.fail::<Secret>("create", &name)(source)),
        }
    }

    /// The token, if its Secret exists.
    pub async fn existing_token(&self) -> Result<Option<String>, InfraError> {
        let secret: Option<Secret> = self.get(&self.names.management_secret()).await?;
        Ok(secret
            .and_then(|s| s.data)
            .and_then(|mut data| data.remove(MANAGEMENT_TOKEN))
            .map(|token| String::from_utf8_lossy(&token.0).trim().to_owned())
            .filter(|token| !token.is_empty()))
    }

    /// The broker's pod, if it exists.
    pub async fn broker_pod(&self) -> Result<Option<Pod>, InfraError> {
        self.get(&self.names.pod()).await
    }

    /// Deletes what exposed the space's endpoints (load balancer Services and Routes, found by
    /// their label) except those named in `load_balancers` and `routes`, which the space still
    /// asks for. Listed first, so that a settled space makes no write; a cluster without the
    /// Route API has no Routes.
    pub async fn prune_exposures(
        &self,
        load_balancers: &[String],
        routes: &[String],
    ) -> Result<(), InfraError> {
        let selector = self.names.exposure_selector();
        for service in self.list::<Service>(&selector).await? {
            let name = service.metadata.name.unwrap_or_default();
            if !load_balancers.contains(&name) {
                self.delete::<Service>(&name).await?;
            }
        }
        let listed = match self.list::<Route>(&selector).await {
            Err(InfraError::Api {
                source: kube::Error::Api(status),
                ..
            }) if status.code == 404 => Vec::new(),
            listed => listed?,
        };
        for route in listed {
            let name = route.metadata.name.unwrap_or_default();
            if !routes.contains(&name) {
                self.delete::<Route>(&name).await?;
            }
        }
        Ok(())
    }

    /// Deletes everything of the space, what exposed its endpoints included; what is already
    /// gone is fine.
    pub async fn delete_all(&self) -> Result<(), InfraError> {
        let broker = self.names.broker();
        self.prune_exposures(&[], &[]).await?;
        self.delete::<StatefulSet>(&broker).await?;
        self.delete::<Service>(&broker).await?;
        self.delete::<NetworkPolicy>(&self.names.network_policy()).await?;
        for secret in [
            self.names.tls_secret(),
            self.names.ca_secret(),
            self.names.management_secret(),
            self.names.management_tls_secret(),
        ] {
            self.delete::<Secret>(&secret).await?;
        }
        Ok(())
    }

    async fn list<K>(&self, selector: &str) -> Result<Vec<K>, InfraError>
    where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
            + k8s_openapi::Resource
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
    {
        let listed = self
            .api::<K>()
            .list(&ListParams::default().labels(selector))
            .await
            .map_err(self.fail::<K>("list", selector))?;
        Ok(listed.items)
    }

    async fn get<K>(&self, name: &str) -> Result<Option<K>, InfraError>
    where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
            + k8s_openapi::Resource
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
    {
        self.api::<K>()
            .get_opt(name)
            .await
            .map_err(self.fail::<K>("read", name))
    }

    async fn delete<K>(&self, name: &str) -> Result<(), InfraError>
    where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
            + k8s_openapi::Resource
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
    {
        match self.api::<K>().delete(name, &DeleteParams::background()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(source) => Err(self.fail::<K>("delete", name)(source)),
        }
    }

    fn api<K>(&self) -> Api<K>
    where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope>,
    {
        Api::namespaced(self.client.clone(), self.namespace)
    }

    fn fail<K: k8s_openapi::Resource>(
        &self,
        action: &'static str,
        name: &str,
    ) -> impl FnOnce(kube::Error) -> InfraError {
        let namespace = self.namespace.to_owned();
        let name = name.to_owned();
        move |source| InfraError::Api {
            action,
            kind: K::KIND,
            namespace,
            name,
            source,
        }
    }
}

/// A digest of the management token that tells tokens apart without revealing them.
pub fn token_digest(token: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    digest.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// 32 random bytes, hex: the management token.
fn random_token() -> Result<String, ring::error::Unspecified> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new().fill(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
