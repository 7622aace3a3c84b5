//! The messages the auth role sends, in plain text and HTML (every interpolated value
//! HTML-escaped), naming the configured product.

use super::Email;

#[derive(Debug, Clone)]
pub struct Templates {
    product: String,
}

/// What every message has: a greeting, one paragraph, a button with its link, a footer line.
struct Parts<'a> {
    kind: &'static str,
    to: &'a str,
    subject: String,
    name: &'a str,
    lead: String,
    action: &'a str,
    link: &'a str,
    footer: String,
}

impl Templates {
    pub fn new(product: &str) -> Self {
        Self {
            product: product.to_owned(),
        }
    }

    pub fn verification(&self, to: &str, name: &str, link: &str, expires_in_secs: i64) -> Email {
        let product = &self.product;
        render(Parts {
            kind: "verification",
            to,
            subject: format!("Verify your email address for {product}"),
            name,
            lead: format!("Please confirm that {to} is your email address for {product}."),
            action: "Verify email address",
            link,
            footer: format!(
                "The link expires in {}. If you did not sign up for {product}, ignore this email.",
                lifetime(expires_in_secs)
            ),
        })
    }

    pub fn reset_password(&self, to: &str, name: &str, link: &str, expires_in_secs: i64) -> Email {
        let product = &self.product;
        render(Parts {
            kind: "reset-password",
            to,
            subject: format!("Reset your {product} password"),
            name,
            lead: format!("Someone asked to reset the password of your {product} account."),
            action: "Choose a new password",
            link,
            footer: format!(
                "The link works once and expires in {}. If you did not ask for this, ignore this \
                 email: your password stays as it is.",
                lifetime(expires_in_secs)
            ),
        })
    }

    /// Sent to the new address; confirming it moves the account there.
    pub fn change_email(
        &self,
        new_email: &str,
        name: &str,
        link: &str,
        expires_in_secs: i64,
    ) -> Email {
        let product = &self.product;
        render(Parts {
            kind: "change-email",
            to: new_email,
            subject: format!("Confirm your new email address for {product}"),
            name,
            lead: format!(
                "Please confirm that you want to use {new_email} for your {product} account."
            ),
            action: "Confirm new email address",
            link,
            footer: format!(
                "The link expires in {}. If you did not ask for this, ignore this email.",
                lifetime(expires_in_secs)
            ),
        })
    }

    /// Sent to the OLD address once a change of email has happened, so someone who took over
    /// the account (or changed it by mistake) cannot move it away unnoticed. `link` is where
    /// the owner can act: the app.
    pub fn email_changed(&self, old_email: &str, name: &str, new_email: &str, link: &str) -> Email {
        let product = &self.product;
        render(Parts {
            kind: "email-changed",
            to: old_email,
            subject: format!("The email address of your {product} account changed"),
            name,
            lead: format!(
                "The email address of your {product} account was changed from {old_email} to \
                 {new_email}. This address no longer signs in to it."
            ),
            action: "Open",
            link,
            footer: "If you did not make this change, reset your password and contact support \
                     at once."
                .to_owned(),
        })
    }
}

fn render(p: Parts<'_>) -> Email {
    let greeting = if p.name.trim().is_empty() {
        "Hello,".to_owned()
    } else {
        format!("Hello {},", p.name)
    };
    // The text part escapes too: a client that renders it (or turns it into HTML) must not see
    // markup from a user's name, and a newline in a name must not forge lines of the message.
    let text = format!(
        "{}\n\n{}\n\n{}:\n{}\n\n{}\n",
        escape_text(&greeting),
        escape_text(&p.lead),
        p.action,
        // The link is ours, built with `encodeURIComponent`: escaping its `&` would break it.
        strip_controls(p.link),
        escape_text(&p.footer)
    );
    let html = format!(
        "<!doctype html><html><body style=\"font-family:sans-serif;line-height:1.5\">\
         <p>{}</p><p>{}</p>\
         <p><a href=\"{}\" style=\"display:inline-block;padding:10px 16px;background:#111;color:#fff;text-decoration:none;border-radius:6px\">{}</a></p>\
         <p style=\"font-size:13px;color:#555\">Or paste this link into your browser:<br>{}</p>\
         <p style=\"font-size:13px;color:#555\">{}</p></body></html>",
        escape_html(&greeting),
        escape_html(&p.lead),
        escape_html(p.link),
        escape_html(p.action),
        escape_html(p.link),
        escape_html(&p.footer),
    );
    Email {
        kind: p.kind.to_owned(),
        to: p.to.to_owned(),
        subject: p.subject,
        text,
        html,
        link: p.link.to_owned(),
    }
}

pub fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// The plain-text counterpart of [`escape_html`]: control characters (newlines included) become
/// spaces and `<`, `>` are written as entities, so markup in a name reads as text everywhere.
/// `&` is escaped with them, so an entity in a name cannot turn back into markup.
pub fn escape_text(s: &str) -> String {
    strip_controls(s)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn strip_controls(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// `3600` → `1 hour`, `5400` → `90 minutes`.
fn lifetime(secs: i64) -> String {
    let (n, unit) = if secs % 86_400 == 0 {
        (secs / 86_400, "day")
    } else if secs % 3600 == 0 {
        (secs / 3600, "hour")
    } else if secs % 60 == 0 {
        (secs / 60, "minute")
    } else {
        (secs, "second")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escapes_everything_interpolated() {
        let t = Templates::new("Acme <Beta>");
        let mail = t.verification(
            "a@x.com",
            "<script>alert(1)</script>",
            "http://h/verify-email?token=a&callbackURL=%2F\"",
            3600,
        );
        assert!(!mail.html.contains("<script>"));
        assert!(mail.html.contains("&lt;script&gt;"));
        assert!(mail.html.contains("Acme &lt;Beta&gt;"));
        assert!(mail.html.contains("token=a&amp;callbackURL=%2F&quot;"));
        assert_eq!(mail.subject, "Verify your email address for Acme <Beta>");
        assert!(
            mail.text
                .contains("http://h/verify-email?token=a&callbackURL=%2F\"\n")
        );
        assert!(mail.text.contains("expires in 1 hour"));
    }

    #[test]
    fn the_text_part_escapes_names_too() {
        let t = Templates::new("Acme");
        let mail = t.reset_password(
            "a@x.com",
            "<a href=\"https://evil.example\">Bob</a>\r\nClick https://evil.example",
            "http://h/reset-password/t?callbackURL=%2Freset",
            3600,
        );
        assert!(!mail.text.contains("<a href"), "{}", mail.text);
        assert!(mail.text.starts_with(
            "Hello &lt;a href=\"https://evil.example\"&gt;Bob&lt;/a&gt;  Click https://evil.example,\n\n"
        ));
        assert!(!mail.html.contains("<a href=\"https://evil.example"));
        // The link itself stays usable.
        assert!(
            mail.text
                .contains("\nhttp://h/reset-password/t?callbackURL=%2Freset\n")
        );
    }

    #[test]
    fn lifetimes_read_naturally() {
        assert_eq!(lifetime(3600), "1 hour");
        assert_eq!(lifetime(7200), "2 hours");
        assert_eq!(lifetime(5400), "90 minutes");
        assert_eq!(lifetime(86_400), "1 day");
        assert_eq!(lifetime(61), "61 seconds");
    }
}
