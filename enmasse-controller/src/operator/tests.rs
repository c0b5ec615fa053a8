//! The running operator against an in-memory API server that serves watches, with a stand-in
//! broker: the Lease decides who acts, the watches bring every change to the space it concerns,
//! and a change to a plan or infra config reaches the spaces without waiting for the resync.

use std::sync::atomic::Ordering;

use serde_json::{Value, json};
use tokio::{task::JoinHandle, time::Instant};

use super::*;
use crate::{
    context::DeletePolicy,
    names::InfraNames,
    testing::{FakeApi, FakeBroker, settings},
};

const INFRA: &str = "enmasse-infra";
const SPACE: &str = "/apis/enmasse.io/v1beta1/namespaces/team1/addressspaces/app";
const LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/enmasse-infra/leases/enmasse-operator";

/// The example's operations and team manifests in a fake cluster, and an operator to run on it.
struct Cluster {
    api: FakeApi,
    broker: Arc<FakeBroker>,
    names: InfraNames,
}

impl Cluster {
    fn new() -> Self {
        let api = FakeApi::default();
        for file in [
            "infra/standard-plans.yaml",
            "infra/brokered-plans.yaml",
            "infra/infra-configs.yaml",
            "infra/authentication-services.yaml",
        ] {
            api.put_example(INFRA, file);
        }
        for file in [
            "team1/address-space.yaml",
            "team1/addresses.yaml",
            "team1/messaging-users.yaml",
        ] {
            api.put_example("team1", file);
        }
        Self {
            api,
            broker: Arc::new(FakeBroker::default()),
            names: InfraNames::new("team1", "app"),
        }
    }

    /// Starts replica `identity`; it stops when `shutdown` is cancelled.
    fn start(&self, identity: &str, shutdown: &CancellationToken) -> JoinHandle<Result<(), OperatorError>> {
        let options = Options {
            // A resync longer than any test: whatever happens, a watch made it happen.
            settings: settings(DeletePolicy::Delete, Duration::from_secs(3600)),
            identity: identity.into(),
            lease_name: "enmasse-operator".into(),
            lease_duration: Duration::from_secs(2),
        };
        tokio::spawn(run(
            self.api.client(),
            options,
            self.broker.clone(),
            Arc::new(Metrics::default()),
            shutdown.clone(),
        ))
    }

    fn statefulset(&self) -> String {
        format!(
            "/apis/apps/v1/namespaces/{INFRA}/statefulsets/{}",
            self.names.broker()
        )
    }

    /// What a kubelet would do: the pod gets an IP, then the StatefulSet counts it ready.
    fn run_the_pod(&self) {
        self.api.put(
            &format!("/api/v1/namespaces/{INFRA}/pods/{}", self.names.pod()),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": self.names.pod(), "namespace": INFRA},
                   "status": {"podIP": "10.1.2.3"}}),
        );
        self.api.edit(&self.statefulset(), |set| {
            set["status"] = json!({"replicas": 1, "readyReplicas": 1});
        });
    }

    fn phase(&self) -> Value {
        self.api.get(SPACE).unwrap()["status"]["phase"].clone()
    }
}

/// Waits until `check` holds, for at most 20 seconds.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_leader_brings_a_committed_space_to_active_and_follows_its_members_and_infra_config() {
    let cluster = Cluster::new();
    let orphan = "/apis/enmasse.io/v1beta1/namespaces/team1/addresses/billing.invoices";
    let unnamed = "/apis/enmasse.io/v1beta1/namespaces/team1/addresses/invoices";
    for (path, name) in [(orphan, "billing.invoices"), (unnamed, "invoices")] {
        cluster.api.put(
            path,
            json!({"apiVersion": "enmasse.io/v1beta1", "kind": "Address",
                   "metadata": {"name": name, "namespace": "team1"},
                   "spec": {"address": "invoices", "type": "queue", "plan": "standard-small-queue"}}),
        );
    }
    let shutdown = CancellationToken::new();
    let operator = cluster.start("operator-0", &shutdown);

    eventually("the broker's StatefulSet exists", || {
        cluster.api.get(&cluster.statefulset()).is_some()
    })
    .await;
    // The status follows the StatefulSet in the same pass.
    eventually("the space is Configuring", || cluster.phase() == "Configuring").await;
    cluster.run_the_pod();
    eventually("the space is Active", || cluster.phase() == "Active").await;
    assert_eq!(cluster.broker.served(), ["confirmations", "orders"]);
    assert_eq!(
        cluster.api.get(LEASE).unwrap()["spec"]["holderIdentity"],
        "operator-0"
    );
    // The broker's management API has a certificate from the space's CA, and a NetworkPolicy
    // admits the operator alone to it.
    let id = InfraNames::new("team1", "app").id;
    let management_tls = cluster
        .api
        .get(&format!(
            "/api/v1/namespaces/{INFRA}/secrets/broker-{id}-management-tls"
        ))
        .expect("the management certificate's Secret");
    assert_eq!(management_tls["type"], "kubernetes.io/tls");
    let policy = cluster
        .api
        .get(&format!(
            "/apis/networking.k8s.io/v1/namespaces/{INFRA}/networkpolicies/broker-{id}"
        ))
        .expect("the broker's NetworkPolicy");
    assert_eq!(policy["spec"]["ingress"][0]["ports"][0]["port"], 8080);

    // The operations team's objects get a status: what uses them, and what nothing acts on.
    let admin = format!("/apis/admin.enmasse.io/v1beta2/namespaces/{INFRA}");
    let plan = format!("{admin}/addressspaceplans/standard-small");
    eventually("the plan's status names the space that uses it", || {
        cluster.api.get(&plan).unwrap()["status"]["usedBy"] == json!(["team1/app"])
    })
    .await;
    assert_eq!(cluster.api.get(&plan).unwrap()["status"]["phase"], "Active");
    let config = format!("/apis/admin.enmasse.io/v1beta1/namespaces/{INFRA}/standardinfraconfigs/default");
    eventually(
        "the infra config's status names the fields nothing acts on",
        || {
            cluster.api.get(&config).unwrap()["status"]["unsupportedFields"]
                == json!([
                    "admin",
                    "router.linkCapacity",
                    "router.minReplicas",
                    "router.resources"
                ])
        },
    )
    .await;
    let service = format!(
        "/apis/admin.enmasse.io/v1beta1/namespaces/{INFRA}/authenticationservices/standard-authservice"
    );
    eventually("the authentication service's status names the space", || {
        cluster.api.get(&service).unwrap()["status"]["usedBy"] == json!(["team1/app"])
    })
    .await;

    // Addresses of no space get the status evaluate gives them, from their own controller.
    eventually("the address of a missing space is pending", || {
        cluster.api.get(orphan).unwrap()["status"]["messages"] == json!(["address space billing not found"])
    })
    .await;
    assert_eq!(cluster.api.get(orphan).unwrap()["status"]["phase"], "Pending");
    eventually("the address without a space in its name failed", || {
        cluster.api.get(unnamed).unwrap()["status"]["phase"] == "Failed"
    })
    .await;

    // A settled space is left alone until the resync: its own writes start no new reconcile.
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.api.take_requests();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let requests = cluster.api.take_requests();
    assert!(
        requests.iter().all(|r| r.contains("/leases/")),
        "nothing but Lease renewals once settled: {requests:?}"
    );

    // An Address committed later reaches the broker through the Address watch.
    cluster.api.put(
        "/apis/enmasse.io/v1beta1/namespaces/team1/addresses/app.invoices",
        json!({"apiVersion": "enmasse.io/v1beta1", "kind": "Address",
               "metadata": {"name": "app.invoices", "namespace": "team1"},
               "spec": {"address": "invoices", "type": "queue", "plan": "standard-small-queue"}}),
    );
    eventually("the new address is pushed to the broker", || {
        cluster.broker.served().contains(&"invoices".to_owned())
    })
    .await;

    // A changed infra config reaches the broker's StatefulSet through the infra watches, also
    // after the operator wrote its status (a status write alone reconciles no space).
    let minimal =
        format!("/apis/admin.enmasse.io/v1beta1/namespaces/{INFRA}/standardinfraconfigs/default-minimal");
    eventually("the infra config's status is written", || {
        cluster.api.get(&minimal).unwrap()["status"]["usedBy"] == json!(["team1/app"])
    })
    .await;
    cluster.api.edit(
        &format!("/apis/admin.enmasse.io/v1beta1/namespaces/{INFRA}/standardinfraconfigs/default-minimal"),
        |config| config["spec"]["broker"]["resources"]["memory"] = json!("1Gi"),
    );
    eventually("the StatefulSet asks for the new memory", || {
        let set = cluster.api.get(&cluster.statefulset()).unwrap();
        set["spec"]["template"]["spec"]["containers"][0]["resources"]
            .to_string()
            .contains("1Gi")
    })
    .await;

    // A load balancer that gets its address reaches the status through the Service watch: the
    // resync is an hour away.
    cluster.api.edit(SPACE, |space| {
        space["spec"]["endpoints"][0]["expose"] = json!({"type": "loadbalancer"});
    });
    let load_balancer = format!(
        "/api/v1/namespaces/{INFRA}/services/{}-messaging",
        cluster.names.broker()
    );
    eventually("the load balancer exists", || {
        cluster.api.get(&load_balancer).is_some()
    })
    .await;
    cluster.api.edit(&load_balancer, |service| {
        service["status"] = json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.7"}]}});
    });
    eventually("the load balancer's address is in the status", || {
        cluster.api.get(SPACE).unwrap()["status"]["endpointStatuses"][0]["externalHost"] == "203.0.113.7"
    })
    .await;

    shutdown.cancel();
    let stopped = tokio::time::timeout(Duration::from_secs(10), operator).await;
    assert!(
        matches!(stopped, Ok(Ok(Ok(())))),
        "a shutdown stops the operator cleanly: {stopped:?}"
    );

    let rules = operator_rules();
    for request in cluster.api.all_requests() {
        assert!(
            granted(&rules, &request),
            "{request}: not granted by deploy/install nor by the team's Role"
        );
    }
}

/// The rules that bind the operator's service account, each with the namespace it holds in (none:
/// cluster-wide): the install's ClusterRole and Role, and the Role the post's team commits.
fn operator_rules() -> Vec<(Option<String>, Value)> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let mut rules = Vec::new();
    for file in [
        "deploy/install/10-operator-rbac.yaml",
        "examples/gitops/team1/rbac.yaml",
    ] {
        let text = std::fs::read_to_string(format!("{root}/{file}")).unwrap();
        let documents: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
        for document in documents {
            let namespace = match document["kind"].as_str() {
                Some("ClusterRole") => None,
                Some("Role") => Some(document["metadata"]["namespace"].as_str().unwrap().to_owned()),
                _ => continue,
            };
            for rule in document["rules"].as_array().unwrap() {
                rules.push((namespace.clone(), rule.clone()));
            }
        }
    }
    rules
}

/// Whether `request` (`METHOD path`, as the fake server records it) is allowed by one of `rules`,
/// read as Kubernetes' RBAC reads them.
fn granted(rules: &[(Option<String>, Value)], request: &str) -> bool {
    let (method, path) = request.split_once(' ').unwrap();
    let (path, watch) = match path.strip_suffix("?watch") {
        Some(path) => (path, true),
        None => (path, false),
    };
    let target = crate::testing::Collection::parse(path);
    let verb = match (method, watch, &target.name) {
        ("GET", true, _) => "watch",
        ("GET", false, Some(_)) => "get",
        ("GET", false, None) => "list",
        ("POST", ..) => "create",
        ("PUT", ..) => "update",
        ("PATCH", ..) => "patch",
        ("DELETE", ..) => "delete",
        _ => return false,
    };
    let resource = match &target.subresource {
        Some(sub) => format!("{}/{sub}", target.plural),
        None => target.plural.clone(),
    };
    let has = |rule: &Value, key: &str, value: &str| {
        rule[key]
            .as_array()
            .is_some_and(|values| values.iter().any(|v| v == value || v == "*"))
    };
    rules.iter().any(|(namespace, rule)| {
        (namespace.is_none() || *namespace == target.namespace)
            && has(rule, "apiGroups", target.group())
            && has(rule, "resources", &resource)
            && has(rule, "verbs", verb)
            && (rule["resourceNames"].is_null()
                || target
                    .name
                    .as_deref()
                    .is_some_and(|name| has(rule, "resourceNames", name)))
    })
}

#[tokio::test]
async fn a_replica_waits_while_another_holds_the_lease_and_takes_over_once_it_expires() {
    let cluster = Cluster::new();
    let renewed = k8s_openapi::jiff::Timestamp::now().to_string();
    cluster.api.put(
        LEASE,
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
               "metadata": {"name": "enmasse-operator", "namespace": INFRA},
               "spec": {"holderIdentity": "operator-1", "leaseDurationSeconds": 2,
                        "renewTime": renewed}}),
    );
    let shutdown = CancellationToken::new();
    let operator = cluster.start("operator-0", &shutdown);

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let requests = cluster.api.take_requests();
    assert!(
        requests.iter().all(|r| r.contains("/leases/")),
        "a replica that does not lead touches nothing but the Lease: {requests:?}"
    );
    assert!(cluster.api.get(&cluster.statefulset()).is_none());

    // operator-1 never renews: once operator-0 has seen its record unchanged for the Lease's
    // duration, it takes over and acts.
    eventually("the waiting replica creates the broker", || {
        cluster.api.get(&cluster.statefulset()).is_some()
    })
    .await;
    assert_eq!(
        cluster.api.get(LEASE).unwrap()["spec"]["holderIdentity"],
        "operator-0"
    );
    shutdown.cancel();
    let _ = operator.await;
}

#[tokio::test]
async fn a_leader_whose_lease_is_taken_over_stops_acting() {
    let cluster = Cluster::new();
    let shutdown = CancellationToken::new();
    let operator = cluster.start("operator-0", &shutdown);
    eventually("the leader creates the broker", || {
        cluster.api.get(&cluster.statefulset()).is_some()
    })
    .await;

    cluster.api.edit(LEASE, |lease| {
        lease["spec"]["holderIdentity"] = json!("operator-1");
    });
    let stopped = tokio::time::timeout(Duration::from_secs(10), operator).await;
    assert!(
        matches!(stopped, Ok(Ok(Err(OperatorError::LostLease(_))))),
        "the replica stops on its own, without a shutdown: {stopped:?}"
    );

    // Nothing acts for operator-0 any more: a new Address is not pushed.
    let pushes = cluster.broker.pushes.load(Ordering::Relaxed);
    cluster.api.take_requests();
    cluster.api.put(
        "/apis/enmasse.io/v1beta1/namespaces/team1/addresses/app.invoices",
        json!({"apiVersion": "enmasse.io/v1beta1", "kind": "Address",
               "metadata": {"name": "app.invoices", "namespace": "team1"},
               "spec": {"address": "invoices", "type": "queue", "plan": "standard-small-queue"}}),
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(cluster.broker.pushes.load(Ordering::Relaxed), pushes);
    assert_eq!(cluster.api.take_requests(), Vec::<String>::new());
}

#[test]
fn an_address_or_user_maps_to_the_space_its_name_begins_with() {
    let metadata = ObjectMeta {
        name: Some("myspace.orders".into()),
        namespace: Some("team1".into()),
        ..ObjectMeta::default()
    };
    assert_eq!(
        space_of_member(&metadata),
        Some(ObjectRef::new("myspace").within("team1"))
    );
    let unnamed = ObjectMeta {
        name: Some("orders".into()),
        ..metadata
    };
    assert_eq!(space_of_member(&unnamed), None);
}

#[test]
fn a_broker_statefulset_maps_to_its_space_by_its_labels() {
    let names = InfraNames::new("team1", "myspace");
    let metadata = ObjectMeta {
        labels: Some(names.labels()),
        ..ObjectMeta::default()
    };
    assert_eq!(
        space_of_infra(&metadata),
        Some(ObjectRef::new("myspace").within("team1"))
    );
}
