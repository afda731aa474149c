//! The `[logging]` table: the logging pipeline. An event published to an SNS topic reaches a Node.js Lambda
//! function, which writes it to its CloudWatch log group; the web tier gets an application log group beside it.
//!
//! The handler folder is packaged when the spec is loaded, into a zip that is the same byte for byte whenever the
//! folder's files are (entries sorted by path, one fixed timestamp, one file mode): its SHA-256 is what Lambda
//! reports as the live function's CodeSha256, so an unchanged handler plans nothing and an edited one plans a code
//! update alone. A folder that cannot be read is reported like any other problem of the spec, at `handler`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};
use toml::Spanned;

use super::Secret;
use super::validate::{Checker, Shape};

/// The Node.js runtimes Lambda supports for new functions (Lambda DG, "Supported runtimes", 2026).
pub const RUNTIMES: [&str; 2] = ["nodejs22.x", "nodejs20.x"];

/// The retention periods CloudWatch Logs accepts (PutRetentionPolicy).
pub const RETENTION_DAYS: [u32; 22] =
    [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653];

/// The pipeline's one logical name: `topic.events`, `function.events`, `log_group.events`, ...
pub const PIPELINE: &str = "events";

/// The application log group's logical name: `log_group.app`.
pub const APP: &str = "app";

#[derive(Debug, Clone)]
pub struct Logging {
    /// The handler folder as written in the spec (relative to the stack file), for messages.
    pub handler_written: String,
    pub handler_folder: PathBuf,
    /// The handler entry point, `FILE.EXPORT` without the extension: `index.handler`.
    pub handler: String,
    /// The zip of the handler folder, reproducible; empty when the folder could not be read (then the spec has a
    /// problem reported, and nothing runs).
    pub package: Vec<u8>,
    /// base64(SHA-256(package)): how Lambda reports the live code (CodeSha256).
    pub code_sha256: String,
    pub runtime: String,
    pub memory_mb: u32,
    pub timeout_seconds: u32,
    /// The function's log group, `/aws/lambda/FUNCTION`.
    pub retention_days: u32,
    /// The web tier's application log group, `/webscale/STACK/app`.
    pub app_retention_days: u32,
    /// Plain environment variables, shown in plans.
    pub environment: BTreeMap<String, String>,
    /// Environment variables whose values come from webscale's own environment: never shown, never in the file.
    pub secret_environment: Vec<SecretVar>,
}

/// One secret environment variable of the function: its name there, and where webscale reads its value.
#[derive(Debug, Clone)]
pub struct SecretVar {
    pub name: String,
    /// The variable of webscale's own environment that holds the value.
    pub env: String,
    /// The value, or why there is none, located in the file (required only by commands that send it to AWS).
    pub value: Result<Secret, super::Diagnostic>,
}

impl Logging {
    /// The function's name (and the topic's, and the role's): `STACK-events`.
    pub fn function_name(stack: &str) -> String {
        format!("{stack}-{PIPELINE}")
    }

    /// The function's log group: where Lambda writes, named by Lambda's own convention.
    pub fn function_log_group(stack: &str) -> String {
        format!("/aws/lambda/{}", Self::function_name(stack))
    }

    /// The web tier's application log group.
    pub fn app_log_group(stack: &str) -> String {
        format!("/webscale/{stack}/{APP}")
    }

    /// The IAM path of the stack's roles: a ListRoles with this prefix finds them all, and nothing else.
    pub fn role_path(stack: &str) -> String {
        format!("/webscale/{stack}/")
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLogging {
    handler: Option<Spanned<String>>,
    entry_point: Option<Spanned<String>>,
    runtime: Option<Spanned<String>>,
    memory_mb: Option<Spanned<i64>>,
    timeout_seconds: Option<Spanned<i64>>,
    retention_days: Option<Spanned<i64>>,
    app_retention_days: Option<Spanned<i64>>,
    #[serde(default)]
    environment: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    secret_environment: BTreeMap<Spanned<String>, Spanned<String>>,
}

pub(super) fn shape() -> Shape {
    Shape::table::<RawLogging>(vec![])
}

/// Checks `[logging]`; `file` is the stack file (the handler folder is relative to it).
pub(super) fn check(cx: &mut Checker, raw: Spanned<RawLogging>, file: &Path) -> Logging {
    let span = raw.span();
    let raw = raw.into_inner();
    let f = |field: &str| format!("logging.{field}");
    let runtime = match &raw.runtime {
        Some(r) if !RUNTIMES.contains(&r.get_ref().as_str()) => {
            cx.err(
                r.span(),
                f("runtime"),
                format!("{:?} is not a Node.js runtime Lambda supports: use {}", r.get_ref(), RUNTIMES.join(" or ")),
            );
            r.get_ref().clone()
        }
        Some(r) => r.get_ref().clone(),
        None => RUNTIMES[0].to_string(),
    };
    let mut number = |v: &Option<Spanned<i64>>, field: &str, range: std::ops::RangeInclusive<i64>, default: u32| match v
    {
        Some(n) if !range.contains(n.get_ref()) => {
            cx.err(
                n.span(),
                f(field),
                format!("{} is out of range: use {} to {}", n.get_ref(), range.start(), range.end()),
            );
            default
        }
        Some(n) => *n.get_ref() as u32,
        None => default,
    };
    let memory_mb = number(&raw.memory_mb, "memory_mb", 128..=10240, 128);
    let timeout_seconds = number(&raw.timeout_seconds, "timeout_seconds", 1..=900, 10);
    let mut retention = |v: &Option<Spanned<i64>>, field: &str, default: u32| match v {
        Some(n) if !RETENTION_DAYS.iter().any(|d| i64::from(*d) == *n.get_ref()) => {
            let days: Vec<String> = RETENTION_DAYS.iter().map(u32::to_string).collect();
            cx.err(
                n.span(),
                f(field),
                format!("CloudWatch Logs keeps events for one of {} days, not {}", days.join(", "), n.get_ref()),
            );
            default
        }
        Some(n) => *n.get_ref() as u32,
        None => default,
    };
    let retention_days = retention(&raw.retention_days, "retention_days", 14);
    let app_retention_days = retention(&raw.app_retention_days, "app_retention_days", 30);
    let handler = match &raw.entry_point {
        Some(e) if !valid_entry_point(e.get_ref()) => {
            cx.err(
                e.span(),
                f("entry_point"),
                format!("{:?} is not an entry point: FILE.EXPORT, such as \"index.handler\"", e.get_ref()),
            );
            e.get_ref().clone()
        }
        Some(e) => e.get_ref().clone(),
        None => "index.handler".to_string(),
    };
    let mut names: Vec<String> = Vec::new();
    let mut var_name = |cx: &mut Checker, k: &Spanned<String>, field: String| {
        let n = k.get_ref();
        let ok = n.starts_with(|c: char| c.is_ascii_alphabetic())
            && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !n.starts_with("AWS_")
            && !RESERVED.contains(&n.as_str());
        if !ok {
            cx.err(
                k.span(),
                field,
                format!(
                    "{n:?} is not a name Lambda accepts for an environment variable: letters, digits and underscores, starting with a letter, and not one Lambda sets itself (AWS_*, {})",
                    RESERVED.join(", ")
                ),
            );
        } else if names.contains(n) {
            cx.err(k.span(), field, format!("{n} is set in both environment and secret_environment: keep one"));
        }
        names.push(n.clone());
    };
    let mut environment = BTreeMap::new();
    for (k, v) in super::validate::in_file_order(raw.environment) {
        var_name(cx, &k, format!("logging.environment.{}", k.get_ref()));
        environment.insert(k.into_inner(), v.into_inner());
    }
    let mut secret_environment = Vec::new();
    for (k, v) in super::validate::in_file_order(raw.secret_environment) {
        let field = format!("logging.secret_environment.{}", k.get_ref());
        var_name(cx, &k, field.clone());
        let env = v.get_ref().clone();
        if env.is_empty() || !env.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            cx.err(
                v.span(),
                field,
                format!("{env:?} names the variable of webscale's environment holding the value: letters, digits, underscores (the value itself never goes in the file)"),
            );
            continue;
        }
        let value = match std::env::var(&env) {
            Ok(s) => Ok(Secret::new(s)),
            Err(_) => Err(cx.diagnostic(
                v.span(),
                field,
                format!("the environment variable {env} is not set: set it to the value of {} (webscale shows only a digest of it)", k.get_ref()),
            )),
        };
        secret_environment.push(SecretVar { name: k.into_inner(), env, value });
    }
    let written = raw.handler.as_ref().map_or_else(|| "handler".to_string(), |h| h.get_ref().clone());
    let handler_span = raw.handler.as_ref().map_or(span, |h| h.span());
    let folder = file.parent().unwrap_or(Path::new("")).join(&written);
    let module = handler.rsplit_once('.').map_or(handler.as_str(), |(m, _)| m).to_string();
    let package = match package(&folder) {
        Ok((zip, files)) => {
            let found = ["js", "mjs", "cjs"].iter().any(|ext| files.contains(&format!("{module}.{ext}")));
            if !found {
                cx.err(
                    handler_span.clone(),
                    f("handler"),
                    format!(
                        "{written} has no {module}.mjs, {module}.js or {module}.cjs for the entry point {handler:?}: add it, or set entry_point"
                    ),
                );
            }
            zip
        }
        Err(e) => {
            cx.err(
                handler_span,
                f("handler"),
                format!(
                    "cannot read the handler folder {}: {e}; it is relative to the stack file's folder",
                    folder.display()
                ),
            );
            Vec::new()
        }
    };
    Logging {
        handler_written: written,
        handler_folder: folder,
        handler,
        code_sha256: code_sha256(&package),
        package,
        runtime,
        memory_mb,
        timeout_seconds,
        retention_days,
        app_retention_days,
        environment,
        secret_environment,
    }
}

/// Variables Lambda sets in every function's environment and refuses in its configuration (Lambda DG, "Defined
/// runtime environment variables"), besides every `AWS_*`.
const RESERVED: [&str; 4] = ["_HANDLER", "_X_AMZN_TRACE_ID", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR"];

fn valid_entry_point(e: &str) -> bool {
    e.rsplit_once('.').is_some_and(|(module, export)| {
        !module.is_empty()
            && !export.is_empty()
            && !module.starts_with('/')
            && export.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
    })
}

/// base64(SHA-256(bytes)), as Lambda reports CodeSha256.
pub fn code_sha256(bytes: &[u8]) -> String {
    base64(&Sha256::digest(bytes))
}

/// The zip of every file under `folder` (symbolic links followed) and the files' paths: entries in path order, each
/// with the zip format's earliest timestamp and mode 0644, so the same files always make the same bytes.
pub fn package(folder: &Path) -> std::io::Result<(Vec<u8>, Vec<String>)> {
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    let mut pending = vec![folder.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if std::fs::metadata(&path)?.is_dir() {
                pending.push(path);
                continue;
            }
            let rel = path.strip_prefix(folder).unwrap_or(&path);
            let key = rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/");
            files.push((key, path));
        }
    }
    files.sort();
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .last_modified_time(zip::DateTime::default())
        .unix_permissions(0o644);
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (key, path) in &files {
        zip.start_file(key.as_str(), options).map_err(std::io::Error::other)?;
        zip.write_all(&std::fs::read(path)?)?;
    }
    let bytes = zip.finish().map_err(std::io::Error::other)?.into_inner();
    Ok((bytes, files.into_iter().map(|(k, _)| k).collect()))
}

/// Standard base64 with padding (RFC 4648): four characters per three bytes.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_test_vectors() {
        for (input, expected) in
            [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("foobar", "Zm9vYmFy")]
        {
            assert_eq!(base64(input.as_bytes()), expected, "{input:?}");
        }
    }

    /// The same files make the same zip whatever their timestamps and modes on disk and the order the folder lists
    /// them in; an edited file makes another zip.
    #[test]
    fn the_package_is_the_same_bytes_for_the_same_files_and_changes_with_a_file() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(a.path().join("lib")).unwrap();
        std::fs::create_dir_all(b.path().join("lib")).unwrap();
        std::fs::write(a.path().join("index.mjs"), "export const handler = async () => 1;\n").unwrap();
        std::fs::write(a.path().join("lib/util.mjs"), "export const x = 1;\n").unwrap();
        // b: written in the other order, a second later, with another mode.
        std::fs::write(b.path().join("lib/util.mjs"), "export const x = 1;\n").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1100));
        std::fs::write(b.path().join("index.mjs"), "export const handler = async () => 1;\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(b.path().join("index.mjs"), std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let (za, files) = package(a.path()).unwrap();
        let (zb, _) = package(b.path()).unwrap();
        assert_eq!(files, ["index.mjs", "lib/util.mjs"]);
        assert_eq!(za, zb, "same files, same bytes");
        assert_eq!(code_sha256(&za), code_sha256(&zb));
        std::fs::write(b.path().join("index.mjs"), "export const handler = async () => 2;\n").unwrap();
        let (zc, _) = package(b.path()).unwrap();
        assert_ne!(code_sha256(&za), code_sha256(&zc), "an edit changes the code's digest");
    }
}
