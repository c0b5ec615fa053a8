//! `expose` on one machine: an endpoint exposed as a `route` also listens on the address its
//! `routeHost` names, at the port number of its TLS listener (`amqps` for `messaging`, `https`
//! for `messaging-wss`), so that other machines reach it there while the listeners the command
//! line gives stay where they are (loopback by default).
//!
//! One machine has no router: the broker's own TLS is served whatever `routeTlsTermination` says,
//! and the certificate names `routeHost`. There is no load balancer either, and nothing here can
//! listen on every interface while a listener holds the same port on loopback; an endpoint
//! exposed as a `loadbalancer` is reported as not exposed, with what to use instead.

use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddr, ToSocketAddrs},
    sync::Arc,
};

use enmasse_types::{
    error::one_line,
    exports::External,
    resources::address_space::{AddressSpace, EndpointSpec, ExposeSpec, ExposeType, RouteTlsTermination},
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::{info, warn};

use crate::{broker::Broker, exports, server};

/// One listener an exposure asks for.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Wanted {
    /// Where it listens.
    addr: SocketAddr,
    /// AMQP over WebSocket, rather than AMQP in TLS.
    websocket: bool,
}

/// What the exposures of a space come to: where clients outside reach each endpoint, and what
/// could not be done.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// Where clients outside reach each exposed endpoint, by endpoint name.
    pub(crate) external: BTreeMap<String, External>,
    /// Fields of `expose` set and not acted on.
    pub(crate) unsupported: Vec<String>,
    /// Why an exposure is not served.
    pub(crate) problems: Vec<String>,
}

/// The hosts the broker's certificate must name for the space's exposures: each route's
/// `routeHost`.
pub(crate) fn certificate_hosts(space: &AddressSpace) -> Vec<String> {
    routes(space)
        .filter_map(|(_, expose)| expose.route_host.clone())
        .collect()
}

fn routes(space: &AddressSpace) -> impl Iterator<Item = (&EndpointSpec, &ExposeSpec)> {
    space
        .spec
        .exposed_endpoints()
        .filter(|(_, expose)| expose.type_ == ExposeType::Route)
}

/// The listeners exposures run, started and stopped as the manifests change.
pub(crate) struct Exposures {
    running: BTreeMap<Wanted, CancellationToken>,
    /// Cancelled at shutdown: every listener stops.
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl Exposures {
    /// No listeners yet; each started later stops at `shutdown`.
    pub(crate) fn new(shutdown: CancellationToken) -> Self {
        Self {
            running: BTreeMap::new(),
            shutdown,
            tasks: TaskTracker::new(),
        }
    }

    /// What stops every listener, and what waits for their connections to close.
    pub(crate) fn handles(&self) -> (CancellationToken, TaskTracker) {
        (self.shutdown.clone(), self.tasks.clone())
    }

    /// Listens where the exposures of `space` ask and nowhere else; `endpoint` says where the
    /// broker's own listeners are, and `tls` is the certificate they serve.
    pub(crate) fn apply(
        &mut self,
        space: &AddressSpace,
        endpoint: &exports::Endpoint,
        tls: Option<&Arc<server::Tls>>,
        broker: &Arc<Broker>,
    ) -> Outcome {
        let mut outcome = Outcome::default();
        let mut wanted: Vec<(String, Wanted)> = Vec::new();
        for (served, expose) in space.spec.exposed_endpoints() {
            let at = format!("endpoints[{}].expose", served.name);
            if expose.type_ == ExposeType::LoadBalancer {
                outcome.unsupported.push(format!(
                    "{at} (type loadbalancer: one machine has no load balancer; use type route with routeHost, the address to listen on)"
                ));
                continue;
            }
            if !expose.annotations.is_empty() {
                outcome.unsupported.push(format!("{at}.annotations"));
            }
            if expose.route_tls_termination == Some(RouteTlsTermination::Reencrypt) {
                outcome.unsupported.push(format!(
                    "{at}.routeTlsTermination (reencrypt: one machine has no router; the broker's own TLS is served)"
                ));
            }
            match route(served, expose, endpoint) {
                Ok((listen, external)) => {
                    if let Some(listen) = listen {
                        wanted.push((served.name.clone(), listen));
                    }
                    outcome.external.insert(served.name.clone(), external);
                }
                Err(why) => outcome.problems.push(format!("{at}: {why}")),
            }
        }
        self.running.retain(|listener, stop| {
            let keep = wanted.iter().any(|(_, w)| w == listener);
            if !keep {
                info!(address = %listener.addr, "an exposure stops listening");
                stop.cancel();
            }
            keep
        });
        for (name, listener) in wanted {
            if self.running.contains_key(&listener) {
                continue;
            }
            match self.start(&listener, tls, broker) {
                Ok(stop) => {
                    info!(address = %listener.addr, websocket = listener.websocket, "an exposure listens");
                    self.running.insert(listener, stop);
                }
                Err(why) => {
                    warn!("{why}");
                    outcome.problems.push(why);
                    outcome.external.remove(&name);
                }
            }
        }
        outcome
    }

    fn start(
        &self,
        listener: &Wanted,
        tls: Option<&Arc<server::Tls>>,
        broker: &Arc<Broker>,
    ) -> Result<CancellationToken, String> {
        let fail = |why: String| format!("failed to listen on {} for an exposure: {why}", listener.addr);
        let tls = tls
            .ok_or_else(|| fail("the broker serves no TLS".to_owned()))?
            .clone();
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(fail("no runtime to run it on".to_owned()));
        }
        let socket = server::bind(listener.addr).map_err(|e| fail(e.to_string()))?;
        let stop = self.shutdown.child_token();
        let broker = broker.clone();
        match listener.websocket {
            true => self
                .tasks
                .spawn(server::run_websocket(socket, broker, tls, stop.clone())),
            false => self
                .tasks
                .spawn(server::run_tls(socket, broker, tls, stop.clone())),
        };
        Ok(stop)
    }
}

/// Where a route exposure listens (none when the broker's own listener already covers that
/// address) and where clients outside reach it.
fn route(
    served: &EndpointSpec,
    expose: &ExposeSpec,
    endpoint: &exports::Endpoint,
) -> Result<(Option<Wanted>, External), String> {
    let tls_port = served.tls_port_name().unwrap_or("amqps");
    if let Some(port) = expose.route_service_port.as_deref().filter(|p| *p != tls_port) {
        return Err(format!(
            "routeServicePort {port:?}; a route carries TLS, which service {} serves on {tls_port}",
            served.service
        ));
    }
    let host = expose
        .route_host
        .as_deref()
        .ok_or("a route on one machine needs routeHost, the address to listen on")?;
    let own = match tls_port {
        "https" => endpoint.wss,
        _ => endpoint.amqps,
    }
    .ok_or_else(|| format!("the {tls_port} listener is off"))?;
    let ip = resolve(host)?;
    let external = External {
        host: Some(host.to_owned()),
        ports: BTreeMap::from([(tls_port.to_owned(), own.port())]),
    };
    // The broker's own listener already takes connections there.
    if own.ip() == ip || own.ip().is_unspecified() {
        return Ok((None, external));
    }
    let listen = Wanted {
        addr: SocketAddr::new(ip, own.port()),
        websocket: tls_port == "https",
    };
    Ok((Some(listen), external))
}

/// The address `host` names: itself if it is one, else the first the system resolves it to.
fn resolve(host: &str) -> Result<IpAddr, String> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(ip);
    }
    (host, 0)
        .to_socket_addrs()
        .map_err(|e| format!("failed to resolve routeHost {host}: {}", one_line(&e)))?
        .next()
        .map(|a| a.ip())
        .ok_or_else(|| format!("routeHost {host} resolves to no address"))
}
