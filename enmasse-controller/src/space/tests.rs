//! Reconcile scenarios against an in-memory API server and a stand-in broker: the seed's manifests
//! from creation to `Active`, an update, a plan change over quota, a missing export grant, a
//! broker restart, deletion with and without a broker, and the retain policy.

use std::sync::atomic::Ordering;

use enmasse_auth::scram::ScramCredential;
use enmasse_types::{
    broker_config::{BrokerConfig, Credential},
    manifests::Manifest,
    resources::messaging_user::MessagingUser,
};
use http::Method;
use kube::runtime::{events::Reporter, watcher};
use serde_json::{Value, json};

use super::*;
use crate::{
    context::{InfraStores, InfraWriters},
    members::{MemberStores, MemberWriters},
    metrics::Metrics,
    testing::{FakeApi, FakeBroker, example, settings},
};

const INFRA: &str = "enmasse-infra";
const SPACE: &str = "/apis/enmasse.io/v1beta1/namespaces/team1/addressspaces/app";
const ADDRESSES: &str = "/apis/enmasse.io/v1beta1/namespaces/team1/addresses";
const USERS: &str = "/apis/user.enmasse.io/v1beta1/namespaces/team1/messagingusers";
const EXPORT: &str = "/api/v1/namespaces/team1/configmaps/messaging-config";

struct Scenario {
    api: FakeApi,
    broker: Arc<FakeBroker>,
    ctx: Arc<Context>,
    names: InfraNames,
    _writers: InfraWriters,
    members: std::sync::Mutex<MemberWriters>,
}

fn scenario(policy: DeletePolicy) -> Scenario {
    let api = FakeApi::default();
    let client = api.client();
    let (stores, mut writers) = InfraStores::new();
    for file in [
        "infra/standard-plans.yaml",
        "infra/brokered-plans.yaml",
        "infra/infra-configs.yaml",
        "infra/authentication-services.yaml",
    ] {
        for manifest in example(file) {
            match manifest {
                Manifest::AddressSpacePlan(p) => writers
                    .space_plans
                    .apply_watcher_event(&watcher::Event::Apply(*p)),
                Manifest::AddressPlan(p) => writers
                    .address_plans
                    .apply_watcher_event(&watcher::Event::Apply(*p)),
                Manifest::StandardInfraConfig(c) => writers
                    .standard_infra_configs
                    .apply_watcher_event(&watcher::Event::Apply(*c)),
                Manifest::BrokeredInfraConfig(c) => writers
                    .brokered_infra_configs
                    .apply_watcher_event(&watcher::Event::Apply(*c)),
                Manifest::AuthenticationService(s) => writers
                    .authentication_services
                    .apply_watcher_event(&watcher::Event::Apply(*s)),
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    for file in [
        "team1/address-space.yaml",
        "team1/addresses.yaml",
        "team1/messaging-users.yaml",
    ] {
        for manifest in example(file) {
            let (path, value) = match manifest {
                Manifest::AddressSpace(s) => (SPACE.to_owned(), serde_json::to_value(s).unwrap()),
                Manifest::Address(a) => (
                    format!("{ADDRESSES}/{}", a.name_any()),
                    serde_json::to_value(a).unwrap(),
                ),
                Manifest::MessagingUser(u) => (
                    format!("{USERS}/{}", u.name_any()),
                    serde_json::to_value(u).unwrap(),
                ),
                other => panic!("unexpected {other:?}"),
            };
            api.put(&path, value);
        }
    }
    let broker = Arc::new(FakeBroker::default());
    let reporter = Reporter {
        controller: "enmasse-operator".into(),
        instance: None,
    };
    let (members, member_writers) = MemberStores::new();
    let ctx = Arc::new(Context {
        client: client.clone(),
        settings: settings(policy, Duration::from_secs(60)),
        brokers: broker.clone(),
        infra: stores,
        recorder: kube::runtime::events::Recorder::new(client, reporter),
        metrics: Arc::new(Metrics::default()),
        credentials: Default::default(),
        members,
        spaces: Default::default(),
    });
    Scenario {
        api,
        broker,
        ctx,
        names: InfraNames::new("team1", "app"),
        _writers: writers,
        members: std::sync::Mutex::new(member_writers),
    }
}

impl Scenario {
    /// One pass, once the watches have brought every Address and MessagingUser.
    async fn reconcile(&self) -> Result<Action, ReconcileError> {
        self.sync_members().await;
        self.pass().await
    }

    /// One pass, with the members as the watches last brought them.
    async fn pass(&self) -> Result<Action, ReconcileError> {
        let space: AddressSpace = serde_json::from_value(self.api.get(SPACE).unwrap()).unwrap();
        reconcile(Arc::new(space), self.ctx.clone()).await
    }

    /// What the operator's watches do: the member stores hold what the API server holds, brought
    /// by a list the first time and by one event per change after.
    async fn sync_members(&self) {
        let client = self.api.client();
        let addresses = Api::<Address>::all(client.clone())
            .list(&Default::default())
            .await
            .unwrap();
        let users = Api::<MessagingUser>::all(client)
            .list(&Default::default())
            .await
            .unwrap();
        let mut writers = self.members.lock().unwrap();
        writers.addresses.watch(addresses.items);
        writers.users.watch(users.items);
    }

    fn infra_path(&self, kind: &str) -> String {
        let broker = self.names.broker();
        match kind {
            "statefulset" => format!("/apis/apps/v1/namespaces/{INFRA}/statefulsets/{broker}"),
            "service" => format!("/api/v1/namespaces/{INFRA}/services/{broker}"),
            "pod" => format!("/api/v1/namespaces/{INFRA}/pods/{}", self.names.pod()),
            secret => format!("/api/v1/namespaces/{INFRA}/secrets/{secret}"),
        }
    }

    /// The broker pod is scheduled and has an IP; it becomes ready once configured.
    fn start_pod(&self) {
        self.api.put(
            &self.infra_path("pod"),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": self.names.pod(), "namespace": INFRA},
                   "status": {"podIP": "10.1.2.3"}}),
        );
    }

    fn set_ready(&self, ready: i32) {
        self.api.edit(&self.infra_path("statefulset"), |set| {
            set["status"] = json!({"replicas": 1, "readyReplicas": ready});
        });
    }

    fn status(&self, path: &str) -> Value {
        self.api.get(path).unwrap()["status"].clone()
    }

    /// From a new space to `Active`: the finalizer, the workload, the push, the ready pod.
    async fn bring_up(&self) {
        self.reconcile().await.unwrap();
        self.reconcile().await.unwrap();
        self.start_pod();
        self.reconcile().await.unwrap();
        self.set_ready(1);
        self.reconcile().await.unwrap();
        assert_eq!(self.status(SPACE)["phase"], "Active", "{}", self.status(SPACE));
    }

    /// The writes in the team's namespace since the requests were last taken.
    fn team_writes(&self) -> Vec<String> {
        self.api
            .take_requests()
            .into_iter()
            .filter(|r| r.contains("/namespaces/team1/") && !r.starts_with("GET "))
            .collect()
    }

    fn use_selfsigned_certificate(&self) {
        self.api.edit(SPACE, |space| {
            space["spec"]["endpoints"][0]["cert"] = json!({"provider": "selfsigned"});
        });
    }
}

mod bench;

/// The SCRAM credential `config` gives the user `developer`.
fn developer_keys(config: &BrokerConfig) -> ScramCredential {
    let developer = config.users.iter().find(|u| u.username == "developer").unwrap();
    let Credential::Password { keys: Some(keys), .. } = &developer.credential else {
        panic!("keys expected: {developer:?}");
    };
    ScramCredential::from_keys(keys).unwrap()
}

fn messages(status: &Value) -> String {
    status["messages"].to_string()
}

#[tokio::test]
async fn a_new_space_gets_its_finalizer_then_its_broker_then_becomes_active_once_the_broker_serves_it() {
    let s = scenario(DeletePolicy::Delete);
    s.reconcile().await.unwrap();
    assert_eq!(
        s.api.get(SPACE).unwrap()["metadata"]["finalizers"],
        json!([FINALIZER])
    );

    s.reconcile().await.unwrap();
    let set = s
        .api
        .get(&s.infra_path("statefulset"))
        .expect("the broker's StatefulSet");
    assert_eq!(
        set["spec"]["template"]["spec"]["containers"][0]["image"],
        "enmasse-broker:test"
    );
    let service = s.api.get(&s.infra_path("service")).expect("the broker's Service");
    assert_eq!(
        service["metadata"]["annotations"][workload::OPENSHIFT_SERVING_CERT],
        s.names.tls_secret(),
        "the seed's space asks OpenShift for its certificate"
    );
    assert!(s.api.get(&s.infra_path(&s.names.management_secret())).is_some());
    let export = s.api.get(EXPORT).expect("the export the seed's Role allows");
    assert_eq!(export["data"]["service.host"], s.names.host(INFRA));
    assert_eq!(export["data"]["service.port.amqps"], "5671");
    let status = s.status(SPACE);
    assert_eq!(status["phase"], "Configuring");
    assert!(
        messages(&status).contains("StatefulSets are not ready"),
        "{status}"
    );
    assert_eq!(
        s.broker.pushes.load(Ordering::Relaxed),
        0,
        "no pod yet: nothing to push to"
    );

    s.start_pod();
    s.reconcile().await.unwrap();
    assert_eq!(s.broker.pushes.load(Ordering::Relaxed), 1);
    assert_eq!(s.broker.served(), ["confirmations", "orders"]);
    assert_eq!(
        s.status(SPACE)["phase"],
        "Configuring",
        "the push is not the proof"
    );

    s.set_ready(1);
    let action = s.reconcile().await.unwrap();
    let status = s.status(SPACE);
    assert_eq!(status["phase"], "Active", "{status}");
    assert_eq!(status["isReady"], true);
    assert_eq!(status["endpointStatuses"][0]["serviceHost"], s.names.host(INFRA));
    assert_eq!(
        action,
        Action::requeue(Duration::from_secs(60)),
        "a settled space waits for the resync"
    );
    let orders = s.status(&format!("{ADDRESSES}/app.orders"));
    assert_eq!(orders["phase"], "Active", "{orders}");
    assert_eq!(orders["depth"], 0);
    assert_eq!(s.status(&format!("{USERS}/app.developer"))["phase"], "Active");
    assert_eq!(
        s.broker.pushes.load(Ordering::Relaxed),
        1,
        "a broker that serves the latest is left alone"
    );
}

#[tokio::test]
async fn a_settled_space_writes_nothing_in_the_teams_namespace_and_pushes_nothing() {
    let s = scenario(DeletePolicy::Delete);
    s.bring_up().await;
    let _ = s.api.take_requests();
    s.reconcile().await.unwrap();
    let writes = s.team_writes();
    assert!(writes.is_empty(), "{writes:?}");
    assert_eq!(s.broker.pushes.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn a_new_operator_finds_a_settled_space_with_password_users_settled_and_writes_nothing() {
    let s = scenario(DeletePolicy::Delete);
    s.bring_up().await;
    s.reconcile().await.unwrap();
    // What the passes kept is gone, as in a new operator after a restart or a failover.
    s.ctx.spaces.lock().unwrap().clear();
    s.api.take_requests();
    s.reconcile().await.unwrap();
    assert_eq!(s.status(SPACE)["phase"], "Active", "{}", s.status(SPACE));
    let writes = s.team_writes();
    assert!(writes.is_empty(), "{writes:?}");
    assert_eq!(s.broker.pushes.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn a_password_user_reaches_the_broker_as_scram_keys_and_never_as_a_password() {
    let s = scenario(DeletePolicy::Delete);
    s.bring_up().await;
    let config = s.broker.config.lock().unwrap().clone().unwrap();
    assert!(developer_keys(&config).verify_password(b"developer"));
    let pushed = serde_json::to_string(&config).unwrap();
    assert!(
        !pushed.contains("ZGV2ZWxvcGVy"),
        "the password itself is never pushed"
    );
}

#[tokio::test]
async fn a_password_not_derived_yet_is_derived_and_kept_before_its_keys_are_asked_for() {
    let s = scenario(DeletePolicy::Delete);
    let known = || {
        let credentials = s.ctx.credentials.lock().unwrap();
        credentials
            .known("team1", "app.developer", "ZGV2ZWxvcGVy")
            .cloned()
    };
    assert!(known().is_none());

    memory::derive_passwords(&[("team1", "app.developer", "ZGV2ZWxvcGVy")], &s.ctx).await;
    let derived = known().expect("derived and kept");
    assert!(derived.verify_password(b"developer"));
}

#[tokio::test]
async fn a_changed_password_is_pushed_as_new_keys_and_the_space_is_configuring_until_the_broker_serves_them()
{
    let s = scenario(DeletePolicy::Delete);
    s.bring_up().await;
    let pushes = s.broker.pushes.load(Ordering::Relaxed);
    // "changed", base64.
    s.api.edit(&format!("{USERS}/app.developer"), |user| {
        user["spec"]["authentication"]["password"] = json!("Y2hhbmdlZA==");
    });

    s.reconcile().await.unwrap();
    assert_eq!(s.broker.pushes.load(Ordering::Relaxed), pushes + 1);
    let config = s.broker.config.lock().unwrap().clone().unwrap();
    assert!(developer_keys(&config).verify_password(b"changed"));
    // The broker reported the old keys when the pass began: the space waits for the new ones.
    assert_eq!(s.status(SPACE)["phase"], "Configuring", "{}", s.status(SPACE));

    s.reconcile().await.unwrap();
    assert_eq!(s.status(SPACE)["phase"], "Active", "{}", s.status(SPACE));
    assert_eq!(s.broker.pushes.load(Ordering::Relaxed), pushes + 1);
}

#[tokio::test]
async fn a_selfsigned_space_gets_its_own_ca_in_the_status_and_the_export() {
    let s = scenario(DeletePolicy::Delete);
    s.use_selfsigned_certificate();
    s.bring_up().await;
    let ca = s.status(SPACE)["caCert"].as_str().unwrap().to_owned();
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"), "{ca}");
    assert_eq!(s.api.get(EXPORT).unwrap()["data"]["ca.crt"], ca.as_str());
    assert!(s.api.get(&s.infra_path(&s.names.ca_secret())).is_some());
    assert!(s.api.get(&s.infra_path(&s.names.tls_secret())).is_some());

    s.reconcile().await.unwrap();
    assert_eq!(
        s.status(SPACE)["caCert"],
        ca.as_str(),
        "the CA is kept, not generated again"
    );
}

#[tokio::test]
async fn an_added_address_is_pushed_and_active_once_the_broker_reports_it() {
    let s = scenario(DeletePolicy::Delete);
    s.bring_up().await;
    s.api.put(
        &format!("{ADDRESSES}/app.audit"),
        json!({"apiVersion": "enmasse.io/v1beta1", "kind": "Address",
               "metadata": {"name": "app.audit", "namespace": "team1"},
               "spec": {"address": "audit", "type": "queue", "plan": "standard-small-queue"}}),
    );
    s.reconcile().await.unwrap();
    assert_eq!(s.broker.pushes.load(Ordering::Relaxed), 2);
    assert_eq!(s.broker.served(), ["audit", "confirmations", "orders"]);
    assert_eq!(
        s.status(&format!("{ADDRESSES}/app.audit"))["phase"],
        "Configuring"
    );
    s.reconcile().await.unwrap();
    assert_eq!(s.status(&format!("{ADDRESSES}/app.audit"))["phase"], "Active");
    assert_eq!(
        s.status(SPACE)["phase"],
        "Active",
        "it serves the config as evaluated"
    );
}

/// A settled space of the example's addresses and twenty queues more: large enough that one
/// added address is evaluated alone.
async fn settled_with_queues() -> Scenario {
    let s = scenario(DeletePolicy::Delete);
    for n in 0..20 {
        s.api.put(
            &format!("{ADDRESSES}/app.q{n}"),
            json!({"apiVersion": "enmasse.io/v1beta1", "kind": "Address",
                   "metadata": {"name": format!("app.q{n}"), "namespace": "team1"},
                   "spec": {"address": format!("q{n}"), "type": "queue", "plan": "standard-small-queue"}}),
        );
    }
    s.bring_up().await;
    s.reconcile().await.unwrap();
    s
}

fn add_audit(s: &Scenario) {
    s.api.put(
        &format!("{ADDRESSES}/app.audit"),
        json!({"apiVersion": "enmasse.io/v1beta1", "kind": "Address",
               "metadata": {"name": "app.audit", "namespace": "team1"},
               "spec": {"address": "audit", "type": "queue", "plan": "standard-small-queue"}}),
    );
}

#[tokio::test]
async fn an_address_added_to_a_broker_serving_the_last_config_is_sent_as_a_patch() {
    let s = settled_with_queues().await;
    let pushes = s.broker.pushes.load(Ordering::Relaxed);
    add_audit(&s);
    s.reconcile().await.unwrap();
    assert_eq!(s.broker.pushes.load(Ordering::Relaxed), pushes + 1);
    assert_eq!(
        s.broker.patches.load(Ordering::Relaxed),
        1,
        "only the change is sent"
    );
    assert!(s.broker.served().contains(&"audit".to_owned()));
    s.reconcile().await.unwrap();
    assert_eq!(s.status(&format!("{ADDRESSES}/app.audit"))["phase"], "Active");
    assert_eq!(
        s.status(SPACE)["phase"],
        "Active",
        "the patched config is the one evaluated, to its revision"
    );
}

#[tokio::test]
async fn an_address_added_is_the_only_one_the_evaluation_looks_at_told_by_the_watch_and_the_broker() {
    let s = settled_with_queues().await;
    let looked_at = |s: &Scenario| {
        let spaces = s.ctx.spaces.lock().unwrap();
        let memory = &spaces[&("team1".to_owned(), "app".to_owned())];
        (memory.evaluator.looked_at(), memory.evaluator.evaluated())
    };
    add_audit(&s);
    s.reconcile().await.unwrap();
    assert_eq!(looked_at(&s), (1, 1), "only the added address");
    // The next pass hears from the broker that it serves the address: that one is looked at again.
    s.reconcile().await.unwrap();
    assert_eq!(s.status(&format!("{ADDRESSES}/app.audit"))["phase"], "Active");
    let (looked, evaluated) = looked_at(&s);
    assert!(
        looked <= 2 && evaluated <= 2,
        "looked at {looked}, evaluated {evaluated}"
    );
    // A pass that fails after the watch's word loses none of it: the next is told.
    s.api.edit(&format!("{ADDRESSES}/app.q3"), |a| {
        a["metadata"]["deletionTimestamp"] = json!("2026-11-25T00:00:00Z")
    });
    s.api.refuse(Method::GET, &s.infra_path("pod"), 500);
    assert!(s.reconcile().await.is_err());
    s.api.accept_all();
    s.reconcile().await.unwrap();
    assert!(!s.broker.served().contains(&"q3".to_owned()));
    // Told of the deleted address, and of the one whose status the pass before wrote.
    assert_eq!(looked_at(&s).0, 2);
}

#[tokio::test]
async fn a_patch_the_broker_refuses_is_followed_by_the_whole_config() {
    let s = settled_with_queues().await;
    let pushes = s.broker.pushes.load(Ordering::Relaxed);
    s.broker.refuse_patches.store(true, Ordering::Relaxed);
    add_audit(&s);
    s.reconcile().await.unwrap();
    assert_eq!(s.broker.patches.load(Ordering::Relaxed), 0);
    assert_eq!(
        s.broker.pushes.load(Ordering::Relaxed),
        pushes + 1,
        "pushed whole"
    );
    assert!(s.broker.served().contains(&"audit".to_owned()));
    let text = messages(&s.status(SPACE));
    assert!(!text.contains("refused"), "a refused patch is no problem: {text}");
    s.reconcile().await.unwrap();
    assert_eq!(s.status(SPACE)["phase"], "Active");
}

#[tokio::test]
async fn a_plan_change_over_quota_leaves_the_addresses_that_no_longer_fit_pending_with_the_reason() {
    let s = scenario(DeletePolicy::Delete);
    s.api
        .edit(SPACE, |space| space["spec"]["plan"] = json!("standard-medium"));
    s.api.put(
        &format!("{ADDRESSES}/app.big"),
        json!({"apiVersion": "enmasse.io/v1beta1", "kind": "Address",
               "metadata": {"name": "app.big", "namespace": "team1"},
               "spec": {"address": "big", "type": "queue", "plan": "standard-large-queue"}}),
    );
    s.bring_up().await;
    assert_eq!(s.status(&format!("{ADDRESSES}/app.big"))["phase"], "Active");

    s.api
        .edit(SPACE, |space| space["spec"]["plan"] = json!("standard-small"));
    s.reconcile().await.unwrap();
    s.reconcile().await.unwrap();
    let status = s.status(SPACE);
    assert!(
        messages(&status).contains("Unable to apply plan standard-small to address space team1:app"),
        "{status}"
    );
    assert_eq!(
        status["appliedPlan"], "standard-medium",
        "the old plan stays: {status}"
    );
    assert_eq!(
        s.status(&format!("{ADDRESSES}/app.big"))["phase"],
        "Active",
        "nothing is dropped"
    );
    assert!(s.broker.served().contains(&"big".to_owned()));
}

#[tokio::test]
async fn a_missing_export_grant_keeps_the_space_from_active_and_names_the_role_to_add() {
    let s = scenario(DeletePolicy::Delete);
    s.api
        .refuse(Method::POST, "/api/v1/namespaces/team1/configmaps", 403);
    s.reconcile().await.unwrap();
    s.reconcile().await.unwrap();
    s.start_pod();
    s.reconcile().await.unwrap();
    s.set_ready(1);
    s.reconcile().await.unwrap();
    let status = s.status(SPACE);
    assert_eq!(status["phase"], "Configuring", "{status}");
    let text = messages(&status);
    assert!(
        text.contains("may not write ConfigMap messaging-config in namespace team1"),
        "{text}"
    );
    assert!(text.contains("Role"), "{text}");
}

#[tokio::test]
async fn a_broker_that_restarted_without_its_config_is_pushed_again_and_the_space_recovers() {
    let s = scenario(DeletePolicy::Delete);
    s.bring_up().await;
    s.broker.lose_config();
    s.reconcile().await.unwrap();
    assert_eq!(s.broker.pushes.load(Ordering::Relaxed), 2, "re-pushed");
    let status = s.status(SPACE);
    assert_eq!(status["phase"], "Configuring", "{status}");
    assert!(
        messages(&status).contains("the broker has no configuration yet"),
        "{status}"
    );
    s.reconcile().await.unwrap();
    assert_eq!(s.status(SPACE)["phase"], "Active");
}

#[tokio::test]
async fn a_pass_is_sent_only_the_addresses_whose_report_changed_and_all_again_after_a_failure() {
    let s = scenario(DeletePolicy::Delete);
    s.bring_up().await;
    let last = |s: &Scenario| *s.broker.answered.lock().unwrap().last().unwrap();
    s.reconcile().await.unwrap();
    assert_eq!(last(&s), (0, false), "nothing changed since the last pass");
    s.broker.depths.lock().unwrap().insert("orders".into(), 3);
    s.reconcile().await.unwrap();
    assert_eq!(last(&s), (1, false), "the address whose depth moved");
    s.broker.down.store(true, Ordering::Relaxed);
    s.reconcile().await.unwrap();
    s.broker.down.store(false, Ordering::Relaxed);
    s.reconcile().await.unwrap();
    let served = s.broker.served().len();
    assert_eq!(
        last(&s),
        (served, true),
        "what was held is not trusted after a failure"
    );
    assert_eq!(s.status(SPACE)["phase"], "Active");
}

#[tokio::test]
async fn an_unreachable_broker_is_a_status_message_not_a_reconcile_error() {
    let s = scenario(DeletePolicy::Delete);
    s.bring_up().await;
    s.broker.down.store(true, Ordering::Relaxed);
    s.set_ready(0);
    s.reconcile().await.unwrap();
    let status = s.status(SPACE);
    assert_eq!(status["phase"], "Failed", "{status}");
    assert!(
        messages(&status).contains("failed to reach the broker"),
        "{status}"
    );
    let action = s.reconcile().await.unwrap();
    assert_eq!(
        s.status(SPACE)["phase"],
        "Failed",
        "it stays Failed while the broker is away"
    );
    assert_eq!(action, Action::requeue(AFTER_FAILURE));
    let text = messages(&s.status(SPACE));
    assert_eq!(
        text.matches("failed to reach the broker").count(),
        1,
        "no push is tried on a broker that cannot report: {text}"
    );
}

#[tokio::test]
async fn a_new_management_token_restarts_the_broker_through_its_pod_template() {
    let s = scenario(DeletePolicy::Delete);
    s.bring_up().await;
    let digest = |s: &Scenario| {
        let set = s.api.get(&s.infra_path("statefulset")).unwrap();
        set["spec"]["template"]["metadata"]["annotations"][TOKEN_ANNOTATION]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let before = digest(&s);
    assert_eq!(before.len(), 16);
    // The token is lost: a new one is written, and the pod template changes with it.
    let path = s.infra_path(&s.names.management_secret());
    s.api.edit(&path, |secret| secret["data"] = json!({}));
    s.reconcile().await.unwrap();
    let after = digest(&s);
    assert_ne!(after, before);
    let secret = s.api.get(&path).unwrap();
    let written = secret["data"]["token"]
        .as_str()
        .expect("a new token in the Secret");
    let token = String::from_utf8(enmasse_types::base64::decode(written).unwrap()).unwrap();
    assert_eq!(
        token_digest(&token),
        after,
        "the pod mounts the token its template names"
    );
}

#[tokio::test]
async fn deleting_a_space_removes_its_infrastructure_lets_go_with_or_without_a_broker_and_leaves_its_members_pending()
 {
    for broker_down in [false, true] {
        let s = scenario(DeletePolicy::Delete);
        s.use_selfsigned_certificate();
        s.bring_up().await;
        s.broker.down.store(broker_down, Ordering::Relaxed);
        s.api.edit(SPACE, |space| {
            space["metadata"]["deletionTimestamp"] = json!("2026-11-25T00:00:00Z");
        });
        s.reconcile().await.unwrap();
        for object in [
            s.infra_path("statefulset"),
            s.infra_path("service"),
            s.infra_path(&s.names.tls_secret()),
            s.infra_path(&s.names.ca_secret()),
            s.infra_path(&s.names.management_secret()),
        ] {
            assert!(
                s.api.get(&object).is_none(),
                "{object} deleted (broker down: {broker_down})"
            );
        }
        let finalizers = &s.api.get(SPACE).unwrap()["metadata"]["finalizers"];
        assert_eq!(
            finalizers,
            &json!([]),
            "the finalizer lets go (broker down: {broker_down})"
        );
        let orders = s.status(&format!("{ADDRESSES}/app.orders"));
        assert_eq!(orders["phase"], "Pending", "{orders}");
        assert_eq!(orders["messages"], json!(["address space app not found"]));
        let user = s.status(&format!("{USERS}/app.developer"));
        assert_eq!(
            user["phase"], "Pending",
            "the members no longer claim to be served: {user}"
        );
    }
}

#[tokio::test]
async fn under_retain_a_deleted_address_with_messages_stays_until_drained() {
    let s = scenario(DeletePolicy::Retain);
    s.bring_up().await;
    let orders = format!("{ADDRESSES}/app.orders");
    assert_eq!(
        s.api.get(&orders).unwrap()["metadata"]["finalizers"],
        json!([retention::FINALIZER])
    );
    assert_eq!(
        s.api.get(&s.infra_path("statefulset")).unwrap()["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"],
        "Retain"
    );
    s.broker.depths.lock().unwrap().insert("orders".into(), 3);
    s.api.edit(&orders, |a| {
        a["metadata"]["deletionTimestamp"] = json!("2026-11-25T00:00:00Z")
    });
    s.reconcile().await.unwrap();
    assert!(
        s.broker.served().contains(&"orders".to_owned()),
        "kept on the broker"
    );
    let status = s.status(&orders);
    assert_eq!(status["phase"], "Terminating", "{status}");
    assert!(messages(&status).contains("holds 3 messages"), "{status}");

    s.broker.depths.lock().unwrap().insert("orders".into(), 0);
    s.reconcile().await.unwrap();
    assert_eq!(s.api.get(&orders).unwrap()["metadata"]["finalizers"], json!([]));
}

#[tokio::test]
async fn under_retain_a_broker_that_does_not_answer_keeps_the_deleted_address() {
    let s = scenario(DeletePolicy::Retain);
    s.bring_up().await;
    let orders = format!("{ADDRESSES}/app.orders");
    s.broker.depths.lock().unwrap().insert("orders".into(), 3);
    s.broker.down.store(true, Ordering::Relaxed);
    s.api.edit(&orders, |a| {
        a["metadata"]["deletionTimestamp"] = json!("2026-11-25T00:00:00Z")
    });
    s.reconcile().await.unwrap();
    assert_eq!(
        s.api.get(&orders).unwrap()["metadata"]["finalizers"],
        json!([retention::FINALIZER]),
        "a restarting broker may still hold the messages"
    );
    assert_eq!(s.status(&orders)["phase"], "Terminating");
}

#[tokio::test]
async fn under_retain_an_address_holding_messages_again_before_its_release_is_seen_is_kept() {
    let s = scenario(DeletePolicy::Retain);
    s.bring_up().await;
    let orders = format!("{ADDRESSES}/app.orders");
    s.broker.depths.lock().unwrap().insert("orders".into(), 3);
    s.reconcile().await.unwrap();
    s.api.edit(&orders, |a| {
        a["metadata"]["deletionTimestamp"] = json!("2026-11-25T00:00:00Z")
    });
    s.reconcile().await.unwrap();
    assert!(s.broker.served().contains(&"orders".to_owned()), "retained");
    // Drained: the finalizer is let go, and the config without the address cannot be pushed.
    s.broker.fail_pushes.store(true, Ordering::Relaxed);
    s.broker.depths.lock().unwrap().insert("orders".into(), 0);
    s.reconcile().await.unwrap();
    // Messages again, before the watch brings the release: the address is kept, as a pass that
    // evaluated everything would keep it, though no member changed.
    s.broker.fail_pushes.store(false, Ordering::Relaxed);
    s.broker.depths.lock().unwrap().insert("orders".into(), 2);
    s.pass().await.unwrap();
    assert!(
        s.broker.served().contains(&"orders".to_owned()),
        "{:?}",
        s.broker.served()
    );
}

#[tokio::test]
async fn under_delete_a_deleted_address_leaves_the_broker_with_its_messages() {
    let s = scenario(DeletePolicy::Delete);
    s.bring_up().await;
    let orders = format!("{ADDRESSES}/app.orders");
    assert!(s.api.get(&orders).unwrap()["metadata"]["finalizers"].is_null());
    s.broker.depths.lock().unwrap().insert("orders".into(), 3);
    s.api.edit(&orders, |a| {
        a["metadata"]["deletionTimestamp"] = json!("2026-11-25T00:00:00Z")
    });
    s.reconcile().await.unwrap();
    assert_eq!(s.broker.served(), ["confirmations"]);
}

#[tokio::test]
async fn an_exposed_endpoint_gets_a_load_balancer_whose_address_reaches_the_status_and_the_export() {
    let s = scenario(DeletePolicy::Delete);
    s.api.edit(SPACE, |space| {
        space["spec"]["endpoints"][0]["expose"] =
            json!({"type": "loadbalancer", "loadBalancerSourceRanges": ["10.0.0.0/8"]});
    });
    s.bring_up().await;
    let external = format!(
        "/api/v1/namespaces/{INFRA}/services/{}-messaging",
        s.names.broker()
    );
    let service = s.api.get(&external).expect("the load balancer's Service");
    assert_eq!(service["spec"]["type"], "LoadBalancer");
    assert_eq!(service["spec"]["loadBalancerSourceRanges"], json!(["10.0.0.0/8"]));
    assert!(
        s.status(SPACE)["endpointStatuses"][0]
            .get("externalHost")
            .is_none(),
        "no external host before the cloud gives one"
    );

    // The cloud provider gives the load balancer an address.
    s.api.edit(&external, |service| {
        service["status"] = json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.7"}]}});
    });
    s.reconcile().await.unwrap();
    let endpoint = &s.status(SPACE)["endpointStatuses"][0];
    assert_eq!(endpoint["externalHost"], "203.0.113.7");
    assert_eq!(
        endpoint["externalPorts"],
        json!([{"name": "amqp", "port": 5672}, {"name": "amqps", "port": 5671}])
    );
    let export = &s.api.get(EXPORT).unwrap()["data"];
    assert_eq!(export["external.host"], "203.0.113.7");
    assert_eq!(export["external.port.amqps"], "5671");

    // No longer exposed: the load balancer goes.
    s.api.edit(SPACE, |space| {
        space["spec"]["endpoints"][0]
            .as_object_mut()
            .unwrap()
            .remove("expose");
    });
    s.reconcile().await.unwrap();
    assert!(s.api.get(&external).is_none(), "the load balancer is removed");
    assert!(
        s.status(SPACE)["endpointStatuses"][0]
            .get("externalHost")
            .is_none()
    );
}

#[tokio::test]
async fn a_renamed_endpoint_loses_its_old_load_balancer_and_the_broker_service_stays() {
    let s = scenario(DeletePolicy::Delete);
    s.api.edit(SPACE, |space| {
        space["spec"]["endpoints"][0]["expose"] = json!({"type": "loadbalancer"});
    });
    s.bring_up().await;
    let service = |endpoint: &str| {
        format!(
            "/api/v1/namespaces/{INFRA}/services/{}-{endpoint}",
            s.names.broker()
        )
    };
    assert!(s.api.get(&service("messaging")).is_some());

    s.api.edit(SPACE, |space| {
        space["spec"]["endpoints"][0]["name"] = json!("amqp");
    });
    s.reconcile().await.unwrap();
    assert!(
        s.api.get(&service("amqp")).is_some(),
        "the renamed endpoint is exposed"
    );
    assert!(
        s.api.get(&service("messaging")).is_none(),
        "the old name's load balancer is removed"
    );
    let broker = format!("/api/v1/namespaces/{INFRA}/services/{}", s.names.broker());
    assert!(
        s.api.get(&broker).is_some(),
        "the broker's own Service is not an exposure"
    );

    // Settled: the next pass lists what exposes the space and deletes nothing.
    s.api.take_requests();
    s.reconcile().await.unwrap();
    let deletes: Vec<String> = s
        .api
        .take_requests()
        .into_iter()
        .filter(|r| r.starts_with("DELETE"))
        .collect();
    assert!(deletes.is_empty(), "{deletes:?}");
}

#[tokio::test(start_paused = true)]
async fn a_pass_before_the_members_are_listed_fails_naming_the_watches_and_is_retried() {
    let s = scenario(DeletePolicy::Delete);
    // The first pass only adds the finalizer; the second would judge the space.
    s.pass().await.unwrap();
    let err = s.pass().await.unwrap_err();
    let chain = format!(
        "{err}: {}",
        std::error::Error::source(&err)
            .map(ToString::to_string)
            .unwrap_or_default()
    );
    assert!(chain.contains("not listed yet"), "{chain}");
    assert!(
        s.broker.served().is_empty(),
        "nothing is pushed from a partial view"
    );
    // Once listed, the pass goes on.
    s.reconcile().await.unwrap();
}

#[test]
fn only_the_addresses_evaluated_again_and_the_retained_ones_are_looked_at_for_a_status_to_write() {
    let named = |name: &str| -> Address {
        serde_json::from_value(json!({
            "apiVersion": "enmasse.io/v1beta1", "kind": "Address",
            "metadata": {"name": name, "namespace": "team1"},
            "spec": {"address": name, "type": "queue", "plan": "standard-small-queue"}
        }))
        .unwrap()
    };
    let members: Vec<Address> = ["app.a", "app.b", "app.c", "app.d"].map(named).into();
    let retention = Retention {
        served: std::borrow::Cow::Borrowed(&members),
        retained: vec![("app.a".into(), Some(3))],
        ..Retention::default()
    };
    let names =
        |addresses: Vec<&Address>| -> Vec<String> { addresses.iter().map(|a| a.name_any()).collect() };
    let evaluated = ["app.d".to_owned(), "app.b".to_owned(), "app.gone".to_owned()];
    let served = |name: &str| members.iter().find(|a| a.name_any() == name);
    assert_eq!(
        names(to_write_back(&retention, Some(&evaluated), served)),
        ["app.a", "app.b", "app.d"]
    );
    assert_eq!(
        names(to_write_back(&retention, None, served)),
        ["app.a", "app.b", "app.c", "app.d"],
        "a space evaluated whole: every address"
    );
}
