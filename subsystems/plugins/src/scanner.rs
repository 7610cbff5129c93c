//! The security scanner: checks real properties of a package (signature by a trusted key,
//! a valid module, imports limited to the declared host capabilities, bounded memories and
//! tables, no start function, the exports its capabilities promise) and rates it.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};
use wasmtime::wasmparser::types::EntityType;
use wasmtime::wasmparser::{FuncType, Parser, Payload, ValType, Validator};

use crate::manifest::{Capability, PluginManifest};
use crate::package::PluginPackage;

/// The wasm import module of the host interface.
pub const HOST_MODULE: &str = "ide";

/// Bytes in a wasm page.
pub(crate) const WASM_PAGE: u64 = 65_536;

/// A host function: name, the capability that grants it, its wasm signature.
pub(crate) struct HostFunction {
    pub(crate) name: &'static str,
    pub(crate) capability: Capability,
    params: &'static [ValType],
    results: &'static [ValType],
}

/// The whole host interface a plugin may import from [`HOST_MODULE`].
pub(crate) const HOST_FUNCTIONS: [HostFunction; 2] = [
    HostFunction {
        name: "log",
        capability: Capability::Log,
        params: &[ValType::I32, ValType::I32, ValType::I32],
        results: &[],
    },
    HostFunction {
        name: "config_get",
        capability: Capability::Config,
        params: &[ValType::I32, ValType::I32, ValType::I32, ValType::I32],
        results: &[ValType::I32],
    },
];

/// Exports a `text_transform` plugin must have: `(name, params, results)`.
const TRANSFORM_EXPORTS: [(&str, &[ValType], &[ValType]); 2] = [
    ("alloc", &[ValType::I32], &[ValType::I32]),
    ("transform", &[ValType::I32, ValType::I32], &[ValType::I64]),
];

/// Upper bounds on what any plugin may ask for, shared by the scanner and the sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SandboxLimits {
    /// Most linear memory per instance, in bytes.
    pub max_memory_bytes: u64,
    /// Most elements per table.
    pub max_table_elements: u64,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        Self {
            max_memory_bytes: 64 << 20,
            max_table_elements: 10_000,
        }
    }
}

/// What the scanner accepts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecurityPolicy {
    /// ed25519 public keys whose signatures are trusted.
    pub trusted_keys: Vec<[u8; 32]>,
    /// Resource ceilings.
    pub limits: SandboxLimits,
}

/// Which property a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecurityCheck {
    /// Signed by a trusted key, and the signature matches.
    Signature,
    /// The module validates.
    Validity,
    /// Imports come from the host interface and the declared capabilities only.
    Imports,
    /// Declared capabilities are used (least privilege).
    Capabilities,
    /// Memories are bounded and within policy.
    Memory,
    /// Tables are bounded and within policy.
    Tables,
    /// No start function.
    StartFunction,
    /// The exports the capabilities promise exist with the right types.
    Exports,
}

impl fmt::Display for SecurityCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Signature => "signature",
            Self::Validity => "validity",
            Self::Imports => "imports",
            Self::Capabilities => "capabilities",
            Self::Memory => "memory",
            Self::Tables => "tables",
            Self::StartFunction => "start function",
            Self::Exports => "exports",
        })
    }
}

/// How a finding weighs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// The check passed.
    Pass,
    /// Acceptable, but worth telling the user.
    Warning,
    /// The package must not be installed.
    Fail,
}

/// One reason behind a rating.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityFinding {
    /// The property checked.
    pub check: SecurityCheck,
    /// Its weight.
    pub severity: Severity,
    /// What was found, as a sentence fragment.
    pub message: String,
}

/// The overall verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecurityLevel {
    /// Every check passed.
    Trusted,
    /// No check failed, some warned.
    Warning,
    /// At least one check failed.
    Rejected,
}

/// A package's rating with every finding behind it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityRating {
    /// The verdict: the worst severity among the findings.
    pub level: SecurityLevel,
    /// Every finding, passes included, in check order.
    pub findings: Vec<SecurityFinding>,
}

impl SecurityRating {
    fn from_findings(findings: Vec<SecurityFinding>) -> Self {
        let worst = findings.iter().map(|f| f.severity).max();
        let level = match worst {
            Some(Severity::Fail) => SecurityLevel::Rejected,
            Some(Severity::Warning) => SecurityLevel::Warning,
            _ => SecurityLevel::Trusted,
        };
        Self { level, findings }
    }

    /// Whether the package may be installed.
    pub fn is_acceptable(&self) -> bool {
        self.level != SecurityLevel::Rejected
    }

    /// The findings of the worst severity, as `check: message` joined by `; `.
    pub fn reasons_text(&self) -> String {
        let worst = self.findings.iter().map(|f| f.severity).max();
        self.findings
            .iter()
            .filter(|f| Some(f.severity) == worst)
            .map(|f| format!("{}: {}", f.check, f.message))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// The findings of one severity.
    pub fn with_severity(&self, severity: Severity) -> impl Iterator<Item = &SecurityFinding> {
        self.findings.iter().filter(move |f| f.severity == severity)
    }
}

/// Scans packages against a [`SecurityPolicy`].
#[derive(Debug, Clone)]
pub struct SecurityScanner {
    policy: SecurityPolicy,
}

impl SecurityScanner {
    /// A scanner for `policy`.
    pub fn new(policy: SecurityPolicy) -> Self {
        Self { policy }
    }

    /// The policy.
    pub fn policy(&self) -> &SecurityPolicy {
        &self.policy
    }

    /// Rates `package`. Every check runs (so the user sees every problem at once), except
    /// the module checks when the module does not validate.
    pub fn scan(&self, package: &PluginPackage) -> SecurityRating {
        let mut out = Findings::default();
        self.check_signature(package, &mut out);
        self.check_manifest_limits(package.manifest(), &mut out);
        check_module(package.manifest(), package.module(), &self.policy, &mut out);
        SecurityRating::from_findings(out.0)
    }

    fn check_signature(&self, package: &PluginPackage, out: &mut Findings) {
        let sig = package.signature();
        let key = hex::encode(&sig.public_key[..8]);
        if !self.policy.trusted_keys.contains(&sig.public_key) {
            out.fail(
                SecurityCheck::Signature,
                format!("signed by untrusted key {key}…"),
            );
        } else if !sig.verifies(&package.signed_message()) {
            out.fail(
                SecurityCheck::Signature,
                "signature does not match the manifest and module (tampered or corrupted package)"
                    .into(),
            );
        } else {
            out.pass(
                SecurityCheck::Signature,
                format!("signed by trusted key {key}…"),
            );
        }
    }

    fn check_manifest_limits(&self, m: &PluginManifest, out: &mut Findings) {
        let p = self.policy.limits;
        if m.limits.memory_bytes > p.max_memory_bytes {
            out.fail(
                SecurityCheck::Memory,
                format!(
                    "manifest asks for {} bytes of memory, policy allows {}",
                    m.limits.memory_bytes, p.max_memory_bytes
                ),
            );
        }
        if m.limits.table_elements > p.max_table_elements {
            out.fail(
                SecurityCheck::Tables,
                format!(
                    "manifest asks for {} table elements, policy allows {}",
                    m.limits.table_elements, p.max_table_elements
                ),
            );
        }
    }
}

#[derive(Default)]
struct Findings(Vec<SecurityFinding>);

impl Findings {
    fn push(&mut self, check: SecurityCheck, severity: Severity, message: String) {
        self.0.push(SecurityFinding {
            check,
            severity,
            message,
        });
    }
    fn pass(&mut self, check: SecurityCheck, message: String) {
        self.push(check, Severity::Pass, message);
    }
    fn warn(&mut self, check: SecurityCheck, message: String) {
        self.push(check, Severity::Warning, message);
    }
    fn fail(&mut self, check: SecurityCheck, message: String) {
        self.push(check, Severity::Fail, message);
    }
}

fn check_module(m: &PluginManifest, wasm: &[u8], policy: &SecurityPolicy, out: &mut Findings) {
    let types = match Validator::new().validate_all(wasm) {
        Ok(t) => t,
        Err(e) => {
            out.fail(
                SecurityCheck::Validity,
                format!("not a valid wasm module: {e}"),
            );
            return;
        }
    };
    out.pass(SecurityCheck::Validity, "valid wasm module".into());
    let t = types.as_ref();
    let declared = &m.compatibility.capabilities;
    let func_type = |e: EntityType| match e {
        EntityType::Func(id) | EntityType::FuncExact(id) => Some(t[id].unwrap_func().clone()),
        _ => None,
    };

    // Imports: only functions of the host interface, only of declared capabilities.
    let mut used = BTreeSet::new();
    let mut bad_imports = 0;
    for (module, name, ty) in t.core_imports().into_iter().flatten() {
        let failure = if module != HOST_MODULE {
            Some(format!(
                "imports {module}.{name}, which is outside the host interface (module `{HOST_MODULE}`)"
            ))
        } else if let Some(f) = HOST_FUNCTIONS.iter().find(|f| f.name == name) {
            match func_type(ty) {
                None => Some(format!("imports ide.{name} as a non-function")),
                Some(ft) if !signature_is(&ft, f.params, f.results) => Some(format!(
                    "imports ide.{name} with type {}, the host defines {}",
                    show(ft.params(), ft.results()),
                    show(f.params, f.results)
                )),
                Some(_) if !declared.contains(&f.capability) => Some(format!(
                    "imports ide.{name} but the manifest does not declare capability `{}`",
                    f.capability
                )),
                Some(_) => {
                    used.insert(f.capability);
                    None
                }
            }
        } else {
            let known: Vec<&str> = HOST_FUNCTIONS.iter().map(|f| f.name).collect();
            Some(format!(
                "imports ide.{name}, which the host does not provide (host functions: {})",
                known.join(", ")
            ))
        };
        if let Some(msg) = failure {
            bad_imports += 1;
            out.fail(SecurityCheck::Imports, msg);
        }
    }
    if bad_imports == 0 {
        let names: Vec<String> = used.iter().map(|c| c.to_string()).collect();
        out.pass(
            SecurityCheck::Imports,
            format!(
                "imports only declared host capabilities [{}]",
                names.join(", ")
            ),
        );
    }
    for cap in declared {
        if *cap != Capability::TextTransform && !used.contains(cap) {
            out.warn(
                SecurityCheck::Capabilities,
                format!("declares capability `{cap}` that the module never imports"),
            );
        }
    }

    check_memories(m, policy, t.memory_count(), |i| t.memory_at(i), out);
    check_tables(m, policy, t.table_count(), |i| t.table_at(i), out);

    let start = Parser::new(0).parse_all(wasm).find_map(|p| match p {
        Ok(Payload::StartSection { func, .. }) => Some(func),
        _ => None,
    });
    match start {
        Some(func) => out.fail(
            SecurityCheck::StartFunction,
            format!(
                "has a start function (function {func}), which would run during instantiation, outside any plugin call"
            ),
        ),
        None => out.pass(SecurityCheck::StartFunction, "no start function".into()),
    }

    if declared.contains(&Capability::TextTransform) {
        let exports: Vec<(&str, EntityType)> = t.core_exports().into_iter().flatten().collect();
        let find = |n: &str| exports.iter().find(|(name, _)| *name == n).map(|(_, e)| *e);
        let mut missing = Vec::new();
        if !matches!(find("memory"), Some(EntityType::Memory(_))) {
            missing.push("memory".to_owned());
        }
        for (name, params, results) in TRANSFORM_EXPORTS {
            let ok = find(name)
                .and_then(func_type)
                .is_some_and(|ft| signature_is(&ft, params, results));
            if !ok {
                missing.push(format!("{name} {}", show(params, results)));
            }
        }
        if missing.is_empty() {
            out.pass(
                SecurityCheck::Exports,
                "exports the text_transform interface".into(),
            );
        } else {
            out.fail(
                SecurityCheck::Exports,
                format!(
                    "declares capability `text_transform` but does not export {}",
                    missing.join(", ")
                ),
            );
        }
    }
}

fn check_memories(
    m: &PluginManifest,
    policy: &SecurityPolicy,
    count: u32,
    memory_at: impl Fn(u32) -> wasmtime::wasmparser::MemoryType,
    out: &mut Findings,
) {
    let before = out.0.len();
    if count > 1 {
        out.fail(
            SecurityCheck::Memory,
            format!("defines {count} memories; the sandbox allows one"),
        );
    }
    for i in 0..count {
        let mem = memory_at(i);
        if mem.shared || mem.memory64 {
            out.fail(
                SecurityCheck::Memory,
                format!("memory {i} is shared or 64-bit, which the sandbox does not allow"),
            );
            continue;
        }
        let Some(max) = mem.maximum else {
            out.fail(
                SecurityCheck::Memory,
                format!("memory {i} declares no maximum size"),
            );
            continue;
        };
        let max_bytes = max.saturating_mul(WASM_PAGE);
        if max_bytes > policy.limits.max_memory_bytes {
            out.fail(
                SecurityCheck::Memory,
                format!(
                    "memory {i} may grow to {max_bytes} bytes, policy allows {}",
                    policy.limits.max_memory_bytes
                ),
            );
        }
        let initial = mem.initial.saturating_mul(WASM_PAGE);
        if initial > m.limits.memory_bytes {
            out.fail(
                SecurityCheck::Memory,
                format!(
                    "memory {i} starts at {initial} bytes, over the manifest limit of {}",
                    m.limits.memory_bytes
                ),
            );
        }
    }
    if out.0.len() == before {
        out.pass(
            SecurityCheck::Memory,
            format!(
                "memory bounded; runtime limit {} bytes",
                m.limits.memory_bytes
            ),
        );
    }
}

fn check_tables(
    m: &PluginManifest,
    policy: &SecurityPolicy,
    count: u32,
    table_at: impl Fn(u32) -> wasmtime::wasmparser::TableType,
    out: &mut Findings,
) {
    let before = out.0.len();
    if count > 1 {
        out.fail(
            SecurityCheck::Tables,
            format!("defines {count} tables; the sandbox allows one"),
        );
    }
    for i in 0..count {
        let table = table_at(i);
        let Some(max) = table.maximum else {
            out.fail(
                SecurityCheck::Tables,
                format!("table {i} declares no maximum size"),
            );
            continue;
        };
        if max > policy.limits.max_table_elements {
            out.fail(
                SecurityCheck::Tables,
                format!(
                    "table {i} may grow to {max} elements, policy allows {}",
                    policy.limits.max_table_elements
                ),
            );
        }
        if table.initial > m.limits.table_elements {
            out.fail(
                SecurityCheck::Tables,
                format!(
                    "table {i} starts with {} elements, over the manifest limit of {}",
                    table.initial, m.limits.table_elements
                ),
            );
        }
    }
    if out.0.len() == before {
        out.pass(SecurityCheck::Tables, format!("{count} bounded tables"));
    }
}

fn signature_is(ft: &FuncType, params: &[ValType], results: &[ValType]) -> bool {
    ft.params() == params && ft.results() == results
}

fn show(params: &[ValType], results: &[ValType]) -> String {
    let list = |v: &[ValType]| {
        v.iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!("({}) -> ({})", list(params), list(results))
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::SigningKey;

    use super::*;
    use crate::samples;

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[3; 32])
    }

    fn scanner() -> SecurityScanner {
        SecurityScanner::new(SecurityPolicy {
            trusted_keys: vec![key().verifying_key().to_bytes()],
            limits: SandboxLimits::default(),
        })
    }

    fn scan(manifest: &PluginManifest, wat: &str) -> SecurityRating {
        scanner().scan(&PluginPackage::build(manifest, wat, &key()).expect("builds"))
    }

    fn failures(r: &SecurityRating) -> Vec<(SecurityCheck, String)> {
        r.with_severity(Severity::Fail)
            .map(|f| (f.check, f.message.clone()))
            .collect()
    }

    #[test]
    fn the_sample_transformer_is_trusted() {
        let r = scan(&samples::uppercase_manifest(), samples::UPPERCASE_WAT);
        assert_eq!(r.level, SecurityLevel::Trusted, "{r:?}");
        assert!(
            r.findings
                .iter()
                .any(|f| f.check == SecurityCheck::Signature)
        );
    }

    #[test]
    fn untrusted_key_is_rejected() {
        let other = SigningKey::from_bytes(&[9; 32]);
        let pkg = PluginPackage::build(
            &samples::uppercase_manifest(),
            samples::UPPERCASE_WAT,
            &other,
        )
        .expect("builds");
        let r = scanner().scan(&pkg);
        assert_eq!(r.level, SecurityLevel::Rejected);
        assert!(
            r.reasons_text().contains("untrusted key"),
            "{}",
            r.reasons_text()
        );
    }

    #[test]
    fn each_module_property_is_checked() {
        let mut m = samples::uppercase_manifest();
        m.compatibility.capabilities = [Capability::Log].into();
        let cases: [(&str, SecurityCheck, &str); 7] = [
            (
                r#"(module (import "env" "system" (func (param i32))))"#,
                SecurityCheck::Imports,
                "env.system, which is outside the host interface",
            ),
            (
                r#"(module (import "ide" "fs_write" (func)))"#,
                SecurityCheck::Imports,
                "ide.fs_write, which the host does not provide",
            ),
            (
                r#"(module (import "ide" "config_get" (func (param i32 i32 i32 i32) (result i32))))"#,
                SecurityCheck::Imports,
                "does not declare capability `config`",
            ),
            (
                r#"(module (import "ide" "log" (func (param i32))))"#,
                SecurityCheck::Imports,
                "with type (i32) -> ()",
            ),
            (
                r#"(module (memory 1))"#,
                SecurityCheck::Memory,
                "no maximum",
            ),
            (
                r#"(module (table 1 funcref))"#,
                SecurityCheck::Tables,
                "no maximum",
            ),
            (
                r#"(module (func $s) (start $s))"#,
                SecurityCheck::StartFunction,
                "start function",
            ),
        ];
        for (wat, check, text) in cases {
            let r = scan(&m, wat);
            let f = failures(&r);
            assert!(
                f.iter().any(|(c, msg)| *c == check && msg.contains(text)),
                "{wat}: {f:?}"
            );
        }
        let r = scan(&m, "(module (memory 1 2000))");
        assert!(
            failures(&r)
                .iter()
                .any(|(c, msg)| *c == SecurityCheck::Memory && msg.contains("policy allows"))
        );
    }

    #[test]
    fn transform_capability_requires_its_exports_and_unused_capabilities_warn() {
        let r = scan(
            &samples::uppercase_manifest(),
            "(module (memory (export \"memory\") 1 1))",
        );
        let f = failures(&r);
        assert!(
            f.iter()
                .any(|(c, m)| *c == SecurityCheck::Exports && m.contains("alloc")),
            "{f:?}"
        );
        let mut m = samples::uppercase_manifest();
        m.compatibility.capabilities = [Capability::Log].into();
        let r = scan(&m, "(module)");
        assert_eq!(r.level, SecurityLevel::Warning, "{r:?}");
    }

    #[test]
    fn invalid_module_is_rejected() {
        let pkg = PluginPackage::build(
            &samples::uppercase_manifest(),
            b"\0asm\x01\0\0\0\x05",
            &key(),
        );
        let pkg = pkg.expect("binary passes through");
        let r = scanner().scan(&pkg);
        assert!(
            failures(&r)
                .iter()
                .any(|(c, _)| *c == SecurityCheck::Validity)
        );
    }
}
