//! The `[static_assets]` table: a private S3 bucket kept in sync with a local folder, served through CloudFront.
//!
//! The folder is read when the spec is loaded: every file's key, size, MD5 (what S3 reports as the ETag of a
//! single-part upload, so the plan compares without downloading anything), content type and cache header. A file
//! that cannot be read is reported like any other problem of the spec, with the line of `folder`.

use std::path::{Path, PathBuf};

use md5::{Digest, Md5};
use serde::Deserialize;
use toml::Spanned;

use super::validate::{Checker, Shape};

/// CloudFront's price classes: which edge locations serve the distribution.
pub const PRICE_CLASSES: [&str; 3] = ["PriceClass_100", "PriceClass_200", "PriceClass_All"];

/// Keys under this prefix are webscale's own (the record of the header rules uploads were made with): never a
/// file of the folder.
pub const RESERVED_PREFIX: &str = ".webscale/";

#[derive(Debug, Clone)]
pub struct StaticAssets {
    /// The bucket's name as the spec gives it; `None`: derived from the stack and the account ([`bucket_name`]).
    pub bucket: Option<String>,
    /// The folder as written in the spec (relative to the stack file), for messages.
    pub folder_written: String,
    /// The folder, resolved against the stack file's folder.
    pub folder: PathBuf,
    /// Every file under the folder, sorted by key.
    pub files: Vec<AssetFile>,
    pub versioning: bool,
    /// CloudFront in front of the bucket; `false`: the bucket alone (still private).
    pub cdn: bool,
    pub price_class: String,
    pub default_root_object: String,
    /// The Cache-Control header of every file but HTML pages.
    pub cache_control: String,
    /// The Cache-Control header of HTML pages: short, so a new deploy shows at once.
    pub html_cache_control: String,
    /// `apply` waits until CloudFront has deployed the distribution (5-20 minutes on AWS) instead of reporting it
    /// as still deploying.
    pub wait: bool,
    /// Domain names the distribution answers to besides its own (`static.example.com`), lowercase, in the spec's
    /// order: each gets alias records in the stack's hosted zone, and an issued ACM certificate covering all of them
    /// (in us-east-1, where CloudFront takes certificates from) is looked up at plan time.
    pub aliases: Vec<String>,
}

impl StaticAssets {
    /// The alias records' logical names: the alias without the zone (`static`), `apex` for the zone itself.
    pub fn alias_label(alias: &str, zone: &str) -> String {
        let label = alias.strip_suffix(zone).map(|l| l.trim_end_matches('.')).unwrap_or(alias);
        if label.is_empty() { "apex".to_string() } else { label.replace(['.', '-', '*'], "_") }
    }
}

/// One file of the folder, as it is uploaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetFile {
    /// The object key: the path under the folder, `/`-separated.
    pub key: String,
    pub path: PathBuf,
    pub size: u64,
    /// Lowercase hex MD5 of the content: S3's ETag of a single-part upload.
    pub md5: String,
    pub content_type: String,
    pub cache_control: String,
}

impl StaticAssets {
    /// The bucket's name: the spec's, else `STACK-assets-ACCOUNT` (unique, because the account is; stable, because
    /// neither changes). `account` is `None` only where no AWS account is known (offline checks).
    pub fn bucket_name(&self, stack: &str, account: Option<&str>) -> String {
        match &self.bucket {
            Some(b) => b.clone(),
            None => format!("{stack}-assets-{}", account.unwrap_or("ACCOUNT")),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStaticAssets {
    folder: Spanned<String>,
    bucket: Option<Spanned<String>>,
    #[serde(default)]
    versioning: bool,
    cdn: Option<bool>,
    price_class: Option<Spanned<String>>,
    default_root_object: Option<Spanned<String>>,
    cache_control: Option<Spanned<String>>,
    html_cache_control: Option<Spanned<String>>,
    #[serde(default)]
    wait: bool,
    #[serde(default)]
    aliases: Vec<Spanned<String>>,
}

pub(super) fn shape() -> Shape {
    Shape::table::<RawStaticAssets>(vec![])
}

/// Checks `[static_assets]`; `file` is the stack file (the folder is relative to it); `zone` is `[dns] zone`, if
/// the file has one (aliases get their records there).
pub(super) fn check(cx: &mut Checker, raw: Spanned<RawStaticAssets>, file: &Path, zone: Option<&str>) -> StaticAssets {
    let raw = raw.into_inner();
    let aliases = aliases(cx, &raw.aliases, raw.cdn.unwrap_or(true), zone);
    if let Some(b) = &raw.bucket {
        bucket(cx, b);
    }
    let price_class = match &raw.price_class {
        Some(p) if !PRICE_CLASSES.contains(&p.get_ref().as_str()) => {
            cx.err(
                p.span(),
                "static_assets.price_class",
                format!("{:?} is not a CloudFront price class: use one of {}", p.get_ref(), PRICE_CLASSES.join(", ")),
            );
            p.get_ref().clone()
        }
        Some(p) => p.get_ref().clone(),
        None => PRICE_CLASSES[0].to_string(),
    };
    let default_root_object = match &raw.default_root_object {
        Some(o) if o.get_ref().is_empty() || o.get_ref().starts_with('/') => {
            cx.err(
                o.span(),
                "static_assets.default_root_object",
                format!("{:?} is not an object key: name a file of the folder, such as \"index.html\"", o.get_ref()),
            );
            o.get_ref().clone()
        }
        Some(o) => o.get_ref().clone(),
        None => "index.html".to_string(),
    };
    let header = |cx: &mut Checker, v: &Option<Spanned<String>>, field: &str, default: &str| match v {
        Some(h) if h.get_ref().trim().is_empty() || h.get_ref().chars().any(|c| c.is_control()) => {
            cx.err(
                h.span(),
                format!("static_assets.{field}"),
                "a Cache-Control header value such as \"public, max-age=86400\" (one line, not empty)",
            );
            h.get_ref().clone()
        }
        Some(h) => h.get_ref().clone(),
        None => default.to_string(),
    };
    let cache_control = header(cx, &raw.cache_control, "cache_control", "public, max-age=86400");
    let html_cache_control =
        header(cx, &raw.html_cache_control, "html_cache_control", "public, max-age=0, must-revalidate");
    let written = raw.folder.get_ref().clone();
    let folder = file.parent().unwrap_or(Path::new("")).join(&written);
    let files = match scan(&folder, &cache_control, &html_cache_control) {
        Ok(files) => files,
        Err(e) => {
            cx.err(
                raw.folder.span(),
                "static_assets.folder",
                format!("cannot read {}: {e}; the folder is relative to the stack file's folder", folder.display()),
            );
            Vec::new()
        }
    };
    let cdn = raw.cdn.unwrap_or(true);
    if cdn && !files.is_empty() && !files.iter().any(|f| f.key == default_root_object) {
        let span = raw.default_root_object.as_ref().map_or(raw.folder.span(), |o| o.span());
        cx.err(
            span,
            "static_assets.default_root_object",
            format!(
                "{} has no file {default_root_object:?} to serve at the site's root: add it, or name another file",
                written
            ),
        );
    }
    StaticAssets {
        bucket: raw.bucket.map(|b| b.into_inner()),
        folder_written: written,
        folder,
        files,
        versioning: raw.versioning,
        cdn,
        price_class,
        default_root_object,
        cache_control,
        html_cache_control,
        wait: raw.wait,
        aliases,
    }
}

/// Each alias: a domain name in the stack's hosted zone (which gets its alias records), once, and only with
/// CloudFront in front.
fn aliases(cx: &mut Checker, raw: &[Spanned<String>], cdn: bool, zone: Option<&str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (i, a) in raw.iter().enumerate() {
        let field = format!("static_assets.aliases[{i}]");
        let name = a.get_ref().trim_end_matches('.').to_ascii_lowercase();
        let labels_ok = !name.is_empty()
            && name.len() <= 253
            && name.split('.').all(|l| {
                (1..=63).contains(&l.len())
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            });
        if !cdn {
            cx.err(
                a.span(),
                field,
                "aliases are names CloudFront answers to, but cdn = false: remove them, or turn cdn on",
            );
        } else if !labels_ok {
            cx.err(a.span(), field, format!("{:?} is not a domain name such as \"static.example.com\"", a.get_ref()));
        } else if let Some(zone) = zone.filter(|z| name != *z && !name.ends_with(&format!(".{z}"))) {
            cx.err(
                a.span(),
                field,
                format!("{name} is not in the stack's hosted zone {zone}: use {zone} or a name ending in .{zone}"),
            );
        } else if zone.is_none() {
            cx.err(
                a.span(),
                field,
                "an alias gets its records in the stack's hosted zone, but the file has no [dns]: add one",
            );
        } else if out.contains(&name) {
            cx.err(a.span(), field, format!("{name} is listed twice"));
        } else {
            out.push(name);
        }
    }
    out
}

/// S3's rules for a bucket name (general purpose buckets).
fn bucket(cx: &mut Checker, b: &Spanned<String>) {
    let n = b.get_ref();
    let chars_ok = n.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-');
    let ends_ok =
        n.starts_with(|c: char| c.is_ascii_alphanumeric()) && n.ends_with(|c: char| c.is_ascii_alphanumeric());
    let ip_like = n.split('.').count() == 4 && n.split('.').all(|p| p.parse::<u8>().is_ok());
    let ok = (3..=63).contains(&n.len())
        && chars_ok
        && ends_ok
        && !n.contains("..")
        && !ip_like
        && !n.starts_with("xn--")
        && !n.ends_with("-s3alias");
    if !ok {
        cx.err(
            b.span(),
            "static_assets.bucket",
            format!(
                "{n:?} is not a valid S3 bucket name: 3 to 63 lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit, not shaped like an IP address (or leave it out: webscale then names the bucket STACK-assets-ACCOUNT)"
            ),
        );
    }
}

/// Every regular file under `folder` (symbolic links followed), sorted by key.
fn scan(folder: &Path, cache_control: &str, html_cache_control: &str) -> std::io::Result<Vec<AssetFile>> {
    let mut files = Vec::new();
    let mut pending = vec![folder.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            let meta = std::fs::metadata(&path)?;
            if meta.is_dir() {
                pending.push(path);
                continue;
            }
            let rel = path.strip_prefix(folder).unwrap_or(&path);
            let key = rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/");
            if key.starts_with(RESERVED_PREFIX) {
                continue;
            }
            let body = std::fs::read(&path)?;
            let md5: String = Md5::digest(&body).iter().map(|b| format!("{b:02x}")).collect();
            let content_type = content_type(&key);
            let cache = if content_type.starts_with("text/html") { html_cache_control } else { cache_control };
            files.push(AssetFile { key, path, size: meta.len(), md5, content_type, cache_control: cache.to_string() });
        }
    }
    files.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(files)
}

/// The Content-Type a file is served with, from its extension; text types say UTF-8 so browsers need not guess.
pub fn content_type(key: &str) -> String {
    let mime = mime_guess::from_path(key).first_or_octet_stream();
    let text = mime.type_() == mime_guess::mime::TEXT
        || matches!(mime.essence_str(), "application/javascript" | "application/json" | "image/svg+xml");
    if text && mime.get_param("charset").is_none() {
        format!("{}; charset=utf-8", mime.essence_str())
    } else {
        mime.essence_str().to_string()
    }
}
