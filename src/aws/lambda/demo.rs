//! The page `GET /` (a function URL's or an API stage's root) and `GET /demo` serve: one
//! self-contained HTML document (`demo/page.html`, embedded in the binary; no external script, style,
//! font or image) to try the function in a browser: a photo picked, dropped or pasted (or a URL) goes
//! to `/detect`, and the boxes come back drawn over it in the annotated pictures' class colours.
//!
//! Its Content-Security-Policy lets nothing run but its own inline script and style (by their SHA-256)
//! and lets it call nothing but this origin, so the page cannot be made to load or send anything
//! elsewhere; it may not be framed.

use base64::Engine as _;

use super::reply::{Body, Reply};
use crate::core::annotate::PALETTE;

const PAGE: &str = include_str!("demo/page.html");

/// The page, with the palette filled in, and its policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoPage {
    html: String,
    policy: String,
}

impl DemoPage {
    pub fn new() -> DemoPage {
        let palette = serde_json::to_string(&PALETTE).expect("the palette serializes");
        let html = PAGE.replace("/*PALETTE*/", &palette);
        let policy = format!(
            "default-src 'none'; script-src '{}'; style-src '{}'; img-src blob: data:; \
             connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            source_hash(inline(&html, "script")),
            source_hash(inline(&html, "style")),
        );
        DemoPage { html, policy }
    }

    pub fn reply(&self) -> Reply {
        Reply {
            status: 200,
            body: Body::Text {
                text: self.html.clone(),
                content_type: "text/html; charset=utf-8",
            },
            allow: None,
            headers: vec![
                ("content-security-policy", self.policy.clone()),
                ("x-content-type-options", "nosniff".into()),
                ("referrer-policy", "no-referrer".into()),
                ("cache-control", "no-cache".into()),
            ],
            error: None,
        }
    }
}

impl Default for DemoPage {
    fn default() -> DemoPage {
        DemoPage::new()
    }
}

/// The text of the page's one inline `<tag>` element.
fn inline<'a>(html: &'a str, tag: &str) -> &'a str {
    let open = format!("<{tag}>");
    let start = html.find(&open).expect("the page has its element") + open.len();
    let end = start + html[start..].find(&format!("</{tag}>")).expect("closed");
    &html[start..end]
}

/// A CSP source expression for an inline element's exact text.
fn source_hash(text: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    format!(
        "sha256-{}",
        base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_allows_exactly_the_pages_own_script_and_style() {
        let page = DemoPage::new();
        assert_eq!(
            page.html.matches("<script").count(),
            1,
            "one inline script, no src"
        );
        assert_eq!(page.html.matches("<style").count(), 1);
        assert!(!page.html.contains("/*PALETTE*/"));
        assert!(page.html.contains("[[255,56,56],[44,153,168]"));
        for needle in ["http://", "https://", "src=", "@import", "url("] {
            let outside_comments: Vec<&str> = page
                .html
                .lines()
                .filter(|l| l.contains(needle) && !l.contains("placeholder="))
                .collect();
            assert!(
                outside_comments.is_empty(),
                "{needle}: {outside_comments:?}"
            );
        }
        let script = inline(&page.html, "script");
        assert!(page
            .policy
            .contains(&format!("script-src '{}'", source_hash(script))));
        assert!(page.policy.starts_with("default-src 'none';"));
        assert!(page.policy.contains("connect-src 'self'"));
        assert!(page.policy.contains("frame-ancestors 'none'"));
        // The hash is of the exact text: one more space and the browser refuses it.
        assert_ne!(source_hash(script), source_hash(&format!("{script} ")));
    }
}
