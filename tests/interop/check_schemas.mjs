// Checks Kubernetes objects (JSON files given as arguments) against schemas nobody here wrote:
// core and apps kinds with kubernetes-models' validators (compiled from the Kubernetes OpenAPI
// schema), PodMonitor and PrometheusRule with @kubernetes-models/prometheus-operator's (from the
// operator's CRDs), and an OpenShift Route against the JSON field names and TLS terminations of
// route/v1/types.go in Debian's golang-github-openshift-api-dev.
// Prints "ok N" and exits 0 when every object passes; prints each failure and exits 1 otherwise.
'use strict';

import fs from 'node:fs';
import { Service } from 'kubernetes-models/v1';
import { StatefulSet } from 'kubernetes-models/apps/v1';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { PodMonitor, PrometheusRule } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';

const ROUTE_TYPES = '/usr/share/gocode/src/github.com/openshift/api/route/v1/types.go';

const MODELS = {
  'v1/Service': Service,
  'apps/v1/StatefulSet': StatefulSet,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy,
  'monitoring.coreos.com/v1/PodMonitor': PodMonitor,
  'monitoring.coreos.com/v1/PrometheusRule': PrometheusRule,
};

/// The JSON names of each struct's fields in a Go file, and the string constants of each type.
function goTypes(path) {
  const source = fs.readFileSync(path, 'utf8');
  const fields = {};
  for (const [, name, body] of source.matchAll(/^type (\w+) struct \{\n([\s\S]*?)^\}/gm)) {
    fields[name] = [...body.matchAll(/json:"(\w+)/g)].map((m) => m[1]);
  }
  const constants = {};
  for (const [, type, value] of source.matchAll(/^\s*\w+\s+(\w+)\s*=\s*"([^"]*)"/gm)) {
    (constants[type] ||= []).push(value);
  }
  return { fields, constants };
}

/// The problems of a Route: a field its Go type does not have, or a termination it does not know.
function checkRoute(route) {
  const { fields, constants } = goTypes(ROUTE_TYPES);
  const problems = [];
  const known = (value, struct, at) => {
    const names = struct === 'Route' ? ['apiVersion', 'kind', ...fields.Route] : fields[struct];
    if (!names) return problems.push(`${ROUTE_TYPES} has no struct ${struct}`);
    for (const key of Object.keys(value || {})) {
      if (!names.includes(key)) problems.push(`${at}.${key}: not a field of ${struct} (${names.join(', ')})`);
    }
  };
  known(route, 'Route', 'route');
  known(route.spec, 'RouteSpec', 'spec');
  known(route.spec?.to, 'RouteTargetReference', 'spec.to');
  known(route.spec?.port, 'RoutePort', 'spec.port');
  known(route.spec?.tls, 'TLSConfig', 'spec.tls');
  const termination = route.spec?.tls?.termination;
  if (termination !== undefined && !constants.TLSTerminationType.includes(termination)) {
    problems.push(`spec.tls.termination ${termination}: not one of ${constants.TLSTerminationType.join(', ')}`);
  }
  if (typeof route.spec?.to?.name !== 'string') problems.push('spec.to.name: required');
  return problems;
}

let failed = 0;
const files = process.argv.slice(2);
for (const file of files) {
  const object = JSON.parse(fs.readFileSync(file, 'utf8'));
  const kind = `${object.apiVersion}/${object.kind}`;
  let problems = [];
  if (kind === 'route.openshift.io/v1/Route') {
    problems = checkRoute(object);
  } else if (MODELS[kind]) {
    try {
      new MODELS[kind](object).validate();
    } catch (error) {
      problems = [error.message];
    }
  } else {
    problems = [`no schema for ${kind}`];
  }
  for (const problem of problems) {
    console.error(`${file} (${kind}): ${problem}`);
    failed += 1;
  }
}
if (failed > 0) process.exit(1);
console.log(`ok ${files.length}`);
