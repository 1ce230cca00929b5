//! What a message says: the tenant's templates or the built-in ones, in
//! the recipient's language, with `{code}`, `{service}` and `{minutes}`
//! filled in. Voice scripts read the code digit by digit; email gets a
//! subject and a plain-text body plus the same body as HTML.
//!
//! A locale is looked up most specific first: the tenant's own text for
//! `pt-BR`, then for `pt`, then the built-in `pt`, and finally the tenant's
//! default templates (English unless the tenant changed them).

use vouchsafe_core::channel::Channel;
use vouchsafe_core::settings::{LocaleTemplates, Templates};

/// Built-in texts per language: sms, voice, email subject, email body, and
/// the caller-verification message.
const BUILT_IN: &[(&str, [&str; 5])] = &[
    (
        "es",
        [
            "Tu código de verificación de {service} es: {code}",
            "Su código de verificación de {service} es {code}. Repito, su código es {code}.",
            "Tu código de verificación de {service}",
            "Tu código de verificación de {service} es: {code}\n\nCaduca en {minutes} minutos. Si no lo has solicitado, ignora este mensaje.",
            "{service}: ¿está en una llamada con nosotros? {link} — o lea {code} al agente.",
        ],
    ),
    (
        "fr",
        [
            "Votre code de vérification {service} est : {code}",
            "Votre code de vérification {service} est {code}. Je répète, votre code est {code}.",
            "Votre code de vérification {service}",
            "Votre code de vérification {service} est : {code}\n\nIl expire dans {minutes} minutes. Si vous ne l'avez pas demandé, ignorez ce message.",
            "{service} : êtes-vous en ligne avec nous ? {link} — ou lisez {code} à l'agent.",
        ],
    ),
    (
        "de",
        [
            "Ihr {service}-Bestätigungscode lautet: {code}",
            "Ihr {service}-Bestätigungscode lautet {code}. Noch einmal, Ihr Code lautet {code}.",
            "Ihr {service}-Bestätigungscode",
            "Ihr {service}-Bestätigungscode lautet: {code}\n\nEr läuft in {minutes} Minuten ab. Wenn Sie ihn nicht angefordert haben, ignorieren Sie diese Nachricht.",
            "{service}: Telefonieren Sie gerade mit uns? {link} — oder nennen Sie dem Mitarbeiter {code}.",
        ],
    ),
    (
        "pt",
        [
            "Seu código de verificação {service} é: {code}",
            "O seu código de verificação {service} é {code}. Repetindo, o seu código é {code}.",
            "Seu código de verificação {service}",
            "Seu código de verificação {service} é: {code}\n\nEle expira em {minutes} minutos. Se você não o solicitou, ignore esta mensagem.",
            "{service}: você está em uma ligação conosco? {link} — ou leia {code} para o atendente.",
        ],
    ),
];

/// The languages with built-in texts besides English.
pub fn built_in_locales() -> impl Iterator<Item = &'static str> {
    BUILT_IN.iter().map(|(l, _)| *l)
}

#[derive(Clone, Copy)]
enum Part {
    Sms = 0,
    Voice = 1,
    EmailSubject = 2,
    EmailBody = 3,
    Caller = 4,
}

impl Part {
    fn of(overrides: &LocaleTemplates, part: Part) -> Option<&String> {
        match part {
            Part::Sms => overrides.sms.as_ref(),
            Part::Voice => overrides.voice.as_ref(),
            Part::EmailSubject => overrides.email_subject.as_ref(),
            Part::EmailBody => overrides.email_body.as_ref(),
            Part::Caller => overrides.caller.as_ref(),
        }
    }

    fn default_of(templates: &Templates, part: Part) -> &str {
        match part {
            Part::Sms => &templates.sms,
            Part::Voice => &templates.voice,
            Part::EmailSubject => &templates.email_subject,
            Part::EmailBody => &templates.email_body,
            Part::Caller => &templates.caller,
        }
    }
}

fn template<'a>(templates: &'a Templates, locale: Option<&str>, part: Part) -> &'a str {
    if let Some(locale) = locale {
        let language = locale.split(['-', '_']).next().unwrap_or(locale).to_ascii_lowercase();
        for key in [locale, language.as_str()] {
            if let Some(text) = templates.locales.get(key).and_then(|o| Part::of(o, part)) {
                return text;
            }
        }
        if let Some((_, texts)) = BUILT_IN.iter().find(|(l, _)| *l == language) {
            return texts[part as usize];
        }
    }
    Part::default_of(templates, part)
}

/// A rendered message, ready for a provider. `Debug` hides the text,
/// which holds the code.
#[derive(Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The SMS text, the voice script, or the plain-text email body.
    pub text: String,
    pub subject: Option<String>,
    pub html: Option<String>,
}

impl std::fmt::Debug for Rendered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rendered(..)")
    }
}

/// Values the placeholders stand for.
pub struct Values<'a> {
    pub code: &'a str,
    pub service: &'a str,
    pub minutes: u64,
}

/// The message of `channel` in `locale` from the tenant's templates.
pub fn render(channel: Channel, templates: &Templates, locale: Option<&str>, values: &Values<'_>) -> Rendered {
    match channel {
        Channel::Sms => {
            Rendered { text: fill(template(templates, locale, Part::Sms), values, false), subject: None, html: None }
        }
        Channel::Voice => {
            Rendered { text: fill(template(templates, locale, Part::Voice), values, true), subject: None, html: None }
        }
        Channel::Email => {
            let body = template(templates, locale, Part::EmailBody);
            Rendered {
                text: fill(body, values, false),
                subject: Some(fill(template(templates, locale, Part::EmailSubject), values, false)),
                html: Some(html_body(body, values)),
            }
        }
    }
}

/// A message the CRM wrote itself (`message` of a delivery), with `{code}`
/// filled in; voice reads the code digit by digit.
pub fn render_custom(channel: Channel, message: &str, code: &str) -> Rendered {
    let values = Values { code, service: "", minutes: 0 };
    let text = fill(message, &values, channel == Channel::Voice);
    let (subject, html) = if channel == Channel::Email {
        // The subject never carries the code: it shows on lock screens.
        (Some("Your verification code".to_owned()), Some(html_body(message, &values)))
    } else {
        (None, None)
    };
    Rendered { text, subject, html }
}

/// The caller-verification text in `locale`, looked up like every other
/// text (the tenant's own for the locale, then for its language, the
/// built-in language, then the tenant's default).
pub fn caller_template<'a>(templates: &'a Templates, locale: Option<&str>) -> &'a str {
    template(templates, locale, Part::Caller)
}

/// The caller-verification message: `{service}`, `{link}` (the customer's
/// page) and `{code}` (to read to the agent; digit by digit for voice).
pub fn render_caller(channel: Channel, template: &str, service: &str, link: &str, code: &str) -> Rendered {
    let spoken = channel == Channel::Voice;
    let text = substitute(
        template,
        |name| match name {
            "code" if spoken => Some(spoken_digits(code)),
            "code" => Some(code.to_owned()),
            "service" => Some(service.to_owned()),
            "link" => Some(link.to_owned()),
            _ => None,
        },
        str::to_owned,
    );
    let (subject, html) = if channel == Channel::Email {
        let body = substitute(
            template,
            |name| match name {
                "code" => Some(format!("<strong>{}</strong>", escape_html(code))),
                "service" => Some(escape_html(service)),
                "link" => Some(format!("<a href=\"{0}\">{0}</a>", escape_html(link))),
                _ => None,
            },
            escape_html,
        );
        (
            Some(format!("{service}: are you on a call with us?")),
            Some(format!(
                "<!doctype html>\n<html><body style=\"font-family:system-ui,sans-serif\"><p>{body}</p></body></html>\n"
            )),
        )
    } else {
        (None, None)
    };
    Rendered { text, subject, html }
}

/// `123456` as a voice reads it: one digit at a time, with pauses.
pub fn spoken_digits(code: &str) -> String {
    code.chars().map(String::from).collect::<Vec<_>>().join(", ")
}

/// Replaces each placeholder once, left to right: a value that itself
/// looks like a placeholder is never expanded again.
fn substitute(
    template: &str,
    mut value_of: impl FnMut(&str) -> Option<String>,
    mut literal: impl FnMut(&str) -> String,
) -> String {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&literal(&rest[..start]));
        let after = &rest[start..];
        match after.find('}').and_then(|end| value_of(&after[1..end]).map(|v| (v, end))) {
            Some((value, end)) => {
                out.push_str(&value);
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&literal("{"));
                rest = &after[1..];
            }
        }
    }
    out.push_str(&literal(rest));
    out
}

fn fill(template: &str, values: &Values<'_>, spoken: bool) -> String {
    substitute(
        template,
        |name| match name {
            "code" if spoken => Some(spoken_digits(values.code)),
            "code" => Some(values.code.to_owned()),
            "service" => Some(values.service.to_owned()),
            "minutes" => Some(values.minutes.to_string()),
            _ => None,
        },
        str::to_owned,
    )
}

/// Escapes text for HTML element content and quoted attribute values
/// (the email bodies here, the server's pages too).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes text for an email's HTML body, where a line break shows as one.
fn escape_html(text: &str) -> String {
    escape(text).replace('\n', "<br>\n")
}

/// The email body as HTML: the template's text escaped, the code set large.
fn html_body(template: &str, values: &Values<'_>) -> String {
    let body = substitute(
        template,
        |name| match name {
            "code" => Some(format!(
                "<strong style=\"font-size:1.6em;letter-spacing:0.15em;font-family:monospace\">{}</strong>",
                escape_html(values.code)
            )),
            "service" => Some(escape_html(values.service)),
            "minutes" => Some(values.minutes.to_string()),
            _ => None,
        },
        escape_html,
    );
    format!(
        "<!doctype html>\n<html><body style=\"font-family:system-ui,sans-serif;font-size:16px;line-height:1.5\">\n<p>{body}</p>\n</body></html>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use vouchsafe_core::settings::Settings;

    fn values() -> Values<'static> {
        Values { code: "042917", service: "Acme", minutes: 10 }
    }

    #[test]
    fn english_is_the_default_and_fills_every_placeholder() {
        let t = Settings::default().templates;
        let sms = render(Channel::Sms, &t, None, &values());
        assert_eq!(sms.text, "Your Acme verification code is: 042917");
        let email = render(Channel::Email, &t, Some("en-GB"), &values());
        assert_eq!(email.subject.as_deref(), Some("Your Acme verification code"));
        assert!(email.text.contains("expires in 10 minutes"), "{}", email.text);
        assert!(email.html.unwrap().contains(">042917</strong>"));
    }

    #[test]
    fn built_in_languages_are_used_for_their_locales() {
        let t = Settings::default().templates;
        for (locale, expected) in [
            ("es", "Tu código de verificación de Acme es: 042917"),
            ("fr", "Votre code de vérification Acme est : 042917"),
            ("de", "Ihr Acme-Bestätigungscode lautet: 042917"),
            ("pt-BR", "Seu código de verificação Acme é: 042917"),
        ] {
            assert_eq!(render(Channel::Sms, &t, Some(locale), &values()).text, expected);
        }
        assert_eq!(built_in_locales().count(), 4);
        // An unknown language falls back to the tenant's default.
        assert_eq!(render(Channel::Sms, &t, Some("ja"), &values()).text, "Your Acme verification code is: 042917");
    }

    #[test]
    fn the_tenant_overrides_per_locale_most_specific_first() {
        let mut t = Settings::default().templates;
        t.sms = "Acme says {code}".into();
        t.locales.insert("pt".into(), LocaleTemplates { sms: Some("PT {code}".into()), ..Default::default() });
        t.locales.insert("pt-BR".into(), LocaleTemplates { sms: Some("BR {code}".into()), ..Default::default() });
        assert_eq!(render(Channel::Sms, &t, Some("pt-BR"), &values()).text, "BR 042917");
        assert_eq!(render(Channel::Sms, &t, Some("pt-PT"), &values()).text, "PT 042917");
        assert_eq!(render(Channel::Sms, &t, None, &values()).text, "Acme says 042917");
        // Members the override leaves out come from the built-in language.
        assert_eq!(
            render(Channel::Voice, &t, Some("pt-BR"), &values()).text,
            "O seu código de verificação Acme é 0, 4, 2, 9, 1, 7. Repetindo, o seu código é 0, 4, 2, 9, 1, 7."
        );
    }

    #[test]
    fn voice_reads_the_code_digit_by_digit() {
        let t = Settings::default().templates;
        let voice = render(Channel::Voice, &t, None, &values());
        assert_eq!(
            voice.text,
            "Your Acme verification code is 0, 4, 2, 9, 1, 7. Again, your code is 0, 4, 2, 9, 1, 7."
        );
    }

    #[test]
    fn values_are_not_expanded_twice_and_html_is_escaped() {
        let t = Settings::default().templates;
        let tricky = Values { code: "123456", service: "<b>{code}</b>", minutes: 5 };
        assert_eq!(render(Channel::Sms, &t, None, &tricky).text, "Your <b>{code}</b> verification code is: 123456");
        let html = render(Channel::Email, &t, None, &tricky).html.unwrap();
        assert!(html.contains("&lt;b&gt;{code}&lt;/b&gt;"), "{html}");
        assert!(!html.contains("<b>"));
        assert_eq!(fill("{unknown} {code", &tricky, false), "{unknown} {code");
    }

    #[test]
    fn a_crm_message_gets_its_code_filled_in() {
        let r = render_custom(Channel::Voice, "Code {code}", "9876");
        assert_eq!(r.text, "Code 9, 8, 7, 6");
        let e = render_custom(Channel::Email, "Your code: {code}\nThanks", "9876");
        assert_eq!(e.subject.as_deref(), Some("Your verification code"));
        assert_eq!(e.text, "Your code: 9876\nThanks");
        assert!(!format!("{e:?}").contains("9876"));
    }

    proptest::proptest! {
        #[test]
        fn any_template_renders_and_escapes_html(template in "\\PC{0,80}", service in "\\PC{0,20}") {
            let mut t = Settings::default().templates;
            t.email_body = template;
            let values = Values { code: "123456", service: &service, minutes: 10 };
            let email = render(Channel::Email, &t, None, &values);
            let html = email.html.unwrap();
            proptest::prop_assert!(!html.contains("<script"), "{}", html);
        }
    }
}
