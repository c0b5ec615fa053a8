//! Reading manifests: multi-document YAML as a team commits it, into typed EnMasse resources.
//!
//! Each document is read on its own, so a broken one never hides the others. Kinds that are not
//! EnMasse's (a `Deployment`, a `Role`) are recognised and passed over. A field the kind does not
//! have is reported by its path, as `kubectl apply` with strict field validation would.

use std::fmt::Write as _;

pub use files::{ManifestFile, list_files, read_file, read_files};

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::resources::{
    address::Address,
    address_space::AddressSpace,
    authentication_service::AuthenticationService,
    infra_config::{BrokeredInfraConfig, StandardInfraConfig},
    messaging_user::MessagingUser,
    plans::{AddressPlan, AddressSpacePlan},
};

/// One resource read from a manifest.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Manifest {
    /// An `AddressSpace`.
    AddressSpace(Box<AddressSpace>),
    /// An `Address`.
    Address(Box<Address>),
    /// A `MessagingUser`.
    MessagingUser(Box<MessagingUser>),
    /// An `AddressSpacePlan`.
    AddressSpacePlan(Box<AddressSpacePlan>),
    /// An `AddressPlan`.
    AddressPlan(Box<AddressPlan>),
    /// A `StandardInfraConfig`.
    StandardInfraConfig(Box<StandardInfraConfig>),
    /// A `BrokeredInfraConfig`.
    BrokeredInfraConfig(Box<BrokeredInfraConfig>),
    /// An `AuthenticationService`.
    AuthenticationService(Box<AuthenticationService>),
    /// A kind that is not EnMasse's, passed over.
    Other {
        /// Its `apiVersion`.
        api_version: String,
        /// Its `kind`.
        kind: String,
    },
}

impl Manifest {
    /// The kind, as written in the manifest.
    pub fn kind(&self) -> &str {
        match self {
            Self::AddressSpace(_) => "AddressSpace",
            Self::Address(_) => "Address",
            Self::MessagingUser(_) => "MessagingUser",
            Self::AddressSpacePlan(_) => "AddressSpacePlan",
            Self::AddressPlan(_) => "AddressPlan",
            Self::StandardInfraConfig(_) => "StandardInfraConfig",
            Self::BrokeredInfraConfig(_) => "BrokeredInfraConfig",
            Self::AuthenticationService(_) => "AuthenticationService",
            Self::Other { kind, .. } => kind,
        }
    }
}

/// One document of a manifest file, read.
#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    /// The line of the file where the document starts (1-based).
    pub line: usize,
    /// The resource.
    pub manifest: Manifest,
}

/// Why a document could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("document at line {line}{}", describe(kind, name))]
pub struct DocumentError {
    /// The line of the file where the document starts (1-based).
    pub line: usize,
    /// The document's kind, when it got that far.
    pub kind: Option<String>,
    /// The document's `metadata.name`, when it got that far.
    pub name: Option<String>,
    /// What is wrong.
    #[source]
    pub problem: DocumentProblem,
}

fn describe(kind: &Option<String>, name: &Option<String>) -> String {
    match (kind, name) {
        (Some(kind), Some(name)) => format!(" ({kind} {name})"),
        (Some(kind), None) => format!(" ({kind})"),
        _ => String::new(),
    }
}

/// What is wrong with a document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DocumentProblem {
    /// The text is not YAML.
    #[error("is not valid YAML: {0}")]
    Syntax(String),
    /// The document is not a mapping with `apiVersion` and `kind`.
    #[error("has no {0}")]
    MissingField(&'static str),
    /// An EnMasse kind in an API version this implementation does not serve.
    #[error("uses {api_version}, but {kind} is served as {served}")]
    UnsupportedVersion {
        /// The `apiVersion` found.
        api_version: String,
        /// The kind.
        kind: String,
        /// The `apiVersion` to use instead.
        served: &'static str,
    },
    /// A field has a value of the wrong shape.
    #[error("field {path}: {message}")]
    InvalidField {
        /// Where, as a dotted path (`spec.endpoints[0].cert.provider`).
        path: String,
        /// What the reader expected.
        message: String,
    },
    /// Fields the kind does not have.
    #[error("unknown field{} {}", if .0.len() == 1 { "" } else { "s" }, .0.join(", "))]
    UnknownFields(Vec<String>),
}

/// Every EnMasse kind with the `apiVersion` it is served as.
pub const SERVED_KINDS: &[(&str, &str)] = &[
    ("AddressSpace", "enmasse.io/v1beta1"),
    ("Address", "enmasse.io/v1beta1"),
    ("MessagingUser", "user.enmasse.io/v1beta1"),
    ("AddressSpacePlan", "admin.enmasse.io/v1beta2"),
    ("AddressPlan", "admin.enmasse.io/v1beta2"),
    ("StandardInfraConfig", "admin.enmasse.io/v1beta1"),
    ("BrokeredInfraConfig", "admin.enmasse.io/v1beta1"),
    ("AuthenticationService", "admin.enmasse.io/v1beta1"),
];

/// Fewer documents than this are read on the calling thread: a thread costs more than they do.
const DOCUMENTS_PER_THREAD: usize = 256;

/// Reads every document of a multi-document YAML text. Empty documents are skipped; each other
/// document yields a resource or the reason it is not one, in the order of the text. A text of
/// thousands of documents (a space's addresses in one file) is read on every core.
pub fn parse(text: &str) -> Vec<Result<Document, DocumentError>> {
    let documents = split_documents(text);
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(documents.len() / DOCUMENTS_PER_THREAD)
        .max(1);
    if threads == 1 {
        return parse_all(&documents);
    }
    let size = documents.len().div_ceil(threads);
    let (first, rest) = documents.split_at(size);
    std::thread::scope(|scope| {
        let spawned: Vec<_> = rest
            .chunks(size)
            .map(|chunk| {
                let thread = std::thread::Builder::new()
                    .name("manifests".into())
                    .spawn_scoped(scope, move || parse_all(chunk));
                (chunk, thread.ok())
            })
            .collect();
        let mut parsed = parse_all(first);
        for (chunk, thread) in spawned {
            // A chunk whose thread could not be started is read here.
            let more = match thread {
                Some(thread) => thread
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                None => parse_all(chunk),
            };
            parsed.extend(more);
        }
        parsed
    })
}

fn parse_all(documents: &[(usize, String)]) -> Vec<Result<Document, DocumentError>> {
    documents
        .iter()
        .filter_map(|(line, body)| parse_document(*line, body).transpose())
        .collect()
}

/// Writes a value as YAML.
pub fn to_yaml(value: &impl serde::Serialize) -> Result<String, serde_saphyr::ser::Error> {
    serde_saphyr::to_string(value)
}

/// Splits a YAML stream at its document markers, remembering where each document starts.
fn split_documents(text: &str) -> Vec<(usize, String)> {
    let mut documents = Vec::new();
    let mut start = 1;
    let mut body = String::new();
    for (index, line) in text.lines().enumerate() {
        let is_marker = line == "---" || line.starts_with("--- ") || line == "...";
        if is_marker {
            documents.push((start, std::mem::take(&mut body)));
            start = index + 2;
            if let Some(rest) = line.strip_prefix("--- ") {
                // `--- value` starts a document on the marker line itself.
                start = index + 1;
                body.push_str(rest);
                body.push('\n');
            }
        } else {
            body.push_str(line);
            body.push('\n');
        }
    }
    documents.push((start, body));
    documents
}

fn parse_document(line: usize, body: &str) -> Result<Option<Document>, DocumentError> {
    let error = |kind: Option<&str>, name: Option<&str>, problem| DocumentError {
        line,
        kind: kind.map(str::to_owned),
        name: name.map(str::to_owned),
        problem,
    };
    if body
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        return Ok(None);
    }
    let value: Value = serde_saphyr::from_str(body)
        .map_err(|e| error(None, None, DocumentProblem::Syntax(e.to_string())))?;
    if value.is_null() {
        return Ok(None);
    }
    let field = |name: &str| value.get(name).and_then(Value::as_str).map(str::to_owned);
    let name = value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let Some(kind) = field("kind") else {
        return Err(error(
            None,
            name.as_deref(),
            DocumentProblem::MissingField("kind"),
        ));
    };
    let Some(api_version) = field("apiVersion") else {
        return Err(error(
            Some(&kind),
            name.as_deref(),
            DocumentProblem::MissingField("apiVersion"),
        ));
    };
    let group = api_version.split_once('/').map_or("", |(group, _)| group);
    let served = SERVED_KINDS
        .iter()
        .find(|(k, served)| *k == kind && served.starts_with(group) && !group.is_empty());
    let manifest = match served {
        None => Manifest::Other { api_version, kind },
        Some((_, served)) if *served != api_version => {
            let problem = DocumentProblem::UnsupportedVersion {
                api_version,
                kind: kind.clone(),
                served,
            };
            return Err(error(Some(&kind), name.as_deref(), problem));
        }
        Some(_) => typed(&kind, value).map_err(|problem| error(Some(&kind), name.as_deref(), problem))?,
    };
    Ok(Some(Document { line, manifest }))
}

pub(crate) fn typed(kind: &str, value: Value) -> Result<Manifest, DocumentProblem> {
    Ok(match kind {
        "AddressSpace" => Manifest::AddressSpace(strict(value)?),
        "Address" => Manifest::Address(strict(value)?),
        "MessagingUser" => Manifest::MessagingUser(strict(value)?),
        "AddressSpacePlan" => Manifest::AddressSpacePlan(strict(value)?),
        "AddressPlan" => Manifest::AddressPlan(strict(value)?),
        "StandardInfraConfig" => Manifest::StandardInfraConfig(strict(value)?),
        "BrokeredInfraConfig" => Manifest::BrokeredInfraConfig(strict(value)?),
        "AuthenticationService" => Manifest::AuthenticationService(strict(value)?),
        other => Manifest::Other {
            api_version: String::new(),
            kind: other.to_owned(),
        },
    })
}

/// Deserializes a resource, naming the path of a bad field and collecting the unknown ones.
fn strict<T: DeserializeOwned>(value: Value) -> Result<Box<T>, DocumentProblem> {
    let mut unknown = Vec::new();
    let mut collect = |path: serde_ignored::Path<'_>| {
        let path = render_path(&path);
        // The generated kinds take `apiVersion` and `kind` from their type, not from the document
        // (both were checked before).
        if path != "apiVersion" && path != "kind" {
            unknown.push(path);
        }
    };
    let ignoring = serde_ignored::Deserializer::new(value, &mut collect);
    let typed: T =
        serde_path_to_error::deserialize(ignoring).map_err(|err| DocumentProblem::InvalidField {
            path: err.path().to_string(),
            message: err.inner().to_string(),
        })?;
    if unknown.is_empty() {
        Ok(Box::new(typed))
    } else {
        Err(DocumentProblem::UnknownFields(unknown))
    }
}

/// Renders a path the way `kubectl` names fields: `spec.endpoints[0].cert`.
fn render_path(path: &serde_ignored::Path<'_>) -> String {
    fn walk(path: &serde_ignored::Path<'_>, out: &mut String) {
        use serde_ignored::Path;
        match path {
            Path::Root => {}
            Path::Seq { parent, index } => {
                walk(parent, out);
                let _ = write!(out, "[{index}]");
            }
            Path::Map { parent, key } => {
                walk(parent, out);
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Path::Some { parent } | Path::NewtypeStruct { parent } | Path::NewtypeVariant { parent } => {
                walk(parent, out)
            }
        }
    }
    let mut out = String::new();
    walk(path, &mut out);
    out
}

mod files;

#[cfg(test)]
mod tests;
