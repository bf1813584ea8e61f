//! The standard OpenID claims flags of `valet user create|update` (SPEC §2; OpenID Connect
//! Core §5.1, §5.1.1), checked here so that bad input is one line on stderr and nothing is
//! written. An empty value clears the claim.

use clap::Args;

use super::CliError;
use crate::store::{AddressPart, ClaimEdit};

/// Longest value of a one-line claim, and of a URL or a multi-line address member.
const MAX_LINE: usize = 255;
const MAX_LONG: usize = 2048;

#[derive(Debug, Default, Args)]
pub struct ClaimFlags {
    /// Email address (an empty value clears it; a new address drops --email-verified unless
    /// given again)
    #[arg(long, value_name = "EMAIL")]
    email: Option<String>,
    /// Whether the email address was verified: true or false
    #[arg(long, value_name = "true|false")]
    email_verified: Option<String>,
    /// Full name, e.g. "Alice Liddell"
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// Given (first) name
    #[arg(long, value_name = "G")]
    given_name: Option<String>,
    /// Family (last) name
    #[arg(long, value_name = "F")]
    family_name: Option<String>,
    /// URL of a picture of the user (http or https)
    #[arg(long, value_name = "URL")]
    picture: Option<String>,
    /// Language tag (BCP 47), e.g. en-US
    #[arg(long, value_name = "TAG")]
    locale: Option<String>,
    /// Phone number, preferably E.164 with its country code, e.g. "+1 425 555 1212"
    #[arg(long, value_name = "NUMBER")]
    phone: Option<String>,
    /// Address: the full mailing address for display (lines separated by newlines)
    #[arg(long, value_name = "TEXT")]
    address_formatted: Option<String>,
    /// Address: street and house number (lines separated by newlines)
    #[arg(long, value_name = "STREET")]
    address_street: Option<String>,
    /// Address: city or locality
    #[arg(long, value_name = "CITY")]
    address_locality: Option<String>,
    /// Address: state, province or region
    #[arg(long, value_name = "REGION")]
    address_region: Option<String>,
    /// Address: postal code
    #[arg(long, value_name = "CODE")]
    address_postal_code: Option<String>,
    /// Address: country
    #[arg(long, value_name = "COUNTRY")]
    address_country: Option<String>,
}

impl ClaimFlags {
    /// The changes the flags ask for, each value checked; the first bad one is the error.
    pub fn edits(self) -> Result<Vec<ClaimEdit>, CliError> {
        let mut edits = Vec::new();
        if let Some(email) = self.email {
            edits.push(ClaimEdit::Email(email_address(&email)?));
        }
        if let Some(verified) = self.email_verified {
            edits.push(ClaimEdit::EmailVerified(boolean(
                "--email-verified",
                &verified,
            )?));
        }
        let texts = [
            (self.name, "--name", ClaimEdit::Name as fn(_) -> _),
            (self.given_name, "--given-name", ClaimEdit::GivenName),
            (self.family_name, "--family-name", ClaimEdit::FamilyName),
        ];
        for (value, flag, edit) in texts {
            if let Some(value) = value {
                edits.push(edit(text(flag, &value, MAX_LINE, false)?));
            }
        }
        if let Some(picture) = self.picture {
            edits.push(ClaimEdit::Picture(picture_url(&picture)?));
        }
        if let Some(locale) = self.locale {
            edits.push(ClaimEdit::Locale(language_tag(&locale)?));
        }
        if let Some(phone) = self.phone {
            edits.push(ClaimEdit::PhoneNumber(phone_number(&phone)?));
        }
        let address = [
            (
                self.address_formatted,
                AddressPart::Formatted,
                "--address-formatted",
                true,
            ),
            (
                self.address_street,
                AddressPart::StreetAddress,
                "--address-street",
                true,
            ),
            (
                self.address_locality,
                AddressPart::Locality,
                "--address-locality",
                false,
            ),
            (
                self.address_region,
                AddressPart::Region,
                "--address-region",
                false,
            ),
            (
                self.address_postal_code,
                AddressPart::PostalCode,
                "--address-postal-code",
                false,
            ),
            (
                self.address_country,
                AddressPart::Country,
                "--address-country",
                false,
            ),
        ];
        for (value, part, flag, multiline) in address {
            if let Some(value) = value {
                let max = if multiline { MAX_LONG } else { MAX_LINE };
                edits.push(ClaimEdit::Address(
                    part,
                    text(flag, &value, max, multiline)?,
                ));
            }
        }
        Ok(edits)
    }
}

/// Free text: `None` when empty (the claim is cleared), else at most `max` characters and no
/// control characters (newlines only where the claim may have several lines).
fn text(flag: &str, value: &str, max: usize, multiline: bool) -> Result<Option<String>, CliError> {
    if value.is_empty() {
        return Ok(None);
    }
    if value.trim().is_empty() {
        return Err(CliError::invalid(format!(
            "{flag} must not be blank (an empty value clears it)"
        )));
    }
    if value.chars().count() > max {
        return Err(CliError::invalid(format!(
            "{flag} is longer than {max} characters"
        )));
    }
    if value
        .chars()
        .any(|c| c.is_control() && !(multiline && c == '\n'))
    {
        let allowed = if multiline {
            " other than newlines"
        } else {
            ""
        };
        return Err(CliError::invalid(format!(
            "{flag} must not contain control characters{allowed}"
        )));
    }
    Ok(Some(value.to_owned()))
}

fn email_address(value: &str) -> Result<Option<String>, CliError> {
    let Some(email) = text("--email", value, MAX_LINE, false)? else {
        return Ok(None);
    };
    let well_formed = email.rsplit_once('@').is_some_and(|(local, domain)| {
        !local.is_empty()
            && !domain.is_empty()
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !email.contains(char::is_whitespace)
    });
    if !well_formed {
        return Err(CliError::invalid(format!(
            "--email `{email}` is not an email address: write it as name@example.com"
        )));
    }
    Ok(Some(email))
}

fn boolean(flag: &str, value: &str) -> Result<bool, CliError> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(CliError::invalid(format!(
            "{flag} takes true or false, not `{other}`"
        ))),
    }
}

/// An absolute http(s) URL that a relying party can fetch.
fn picture_url(value: &str) -> Result<Option<String>, CliError> {
    let Some(picture) = text("--picture", value, MAX_LONG, false)? else {
        return Ok(None);
    };
    let parsed = url::Url::parse(&picture).ok();
    let fetchable = parsed.is_some_and(|url| {
        matches!(url.scheme(), "http" | "https") && url.host_str().is_some_and(|h| !h.is_empty())
    });
    if !fetchable {
        return Err(CliError::invalid(format!(
            "--picture `{picture}` is not an http or https URL, e.g. https://example.com/alice.png"
        )));
    }
    Ok(Some(picture))
}

/// A BCP 47 language tag (RFC 5646) in its common shape: a language of 2 to 8 letters, then
/// subtags of 1 to 8 letters or digits, joined by hyphens (Core §5.1: `en-US`, not `en_US`).
fn language_tag(value: &str) -> Result<Option<String>, CliError> {
    let Some(tag) = text("--locale", value, MAX_LINE, false)? else {
        return Ok(None);
    };
    let mut subtags = tag.split('-');
    let language = subtags.next().unwrap_or_default();
    let well_formed = (2..=8).contains(&language.len())
        && language.chars().all(|c| c.is_ascii_alphabetic())
        && subtags
            .all(|s| (1..=8).contains(&s.len()) && s.chars().all(|c| c.is_ascii_alphanumeric()));
    if !well_formed {
        return Err(CliError::invalid(format!(
            "--locale `{tag}` is not a BCP 47 language tag such as en-US or fr-CA"
        )));
    }
    Ok(Some(tag))
}

/// A telephone number as people write it: digits with an optional leading `+`, spaces,
/// hyphens, dots and parentheses, and an optional RFC 3966 extension (`;ext=1234`).
fn phone_number(value: &str) -> Result<Option<String>, CliError> {
    let Some(phone) = text("--phone", value, MAX_LINE, false)? else {
        return Ok(None);
    };
    let (number, extension) = match phone.split_once(";ext=") {
        Some((number, extension)) => (number, Some(extension)),
        None => (phone.as_str(), None),
    };
    let digits = number.chars().filter(char::is_ascii_digit).count();
    let number_ok = number
        .strip_prefix('+')
        .unwrap_or(number)
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '-' | '.' | '(' | ')'))
        && (3..=20).contains(&digits);
    let extension_ok =
        extension.is_none_or(|e| !e.is_empty() && e.chars().all(|c| c.is_ascii_digit()));
    if !(number_ok && extension_ok) {
        return Err(CliError::invalid(format!(
            "--phone `{phone}` is not a phone number: write it with its country code, e.g. +1 425 555 1212"
        )));
    }
    Ok(Some(phone))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(result: Result<Option<String>, CliError>) -> Option<String> {
        result.unwrap_or_else(|e| panic!("refused: {e}"))
    }

    #[test]
    fn an_empty_value_clears_the_claim() {
        assert_eq!(ok(email_address("")), None);
        assert_eq!(ok(picture_url("")), None);
        assert_eq!(ok(text("--name", "", MAX_LINE, false)), None);
    }

    #[test]
    fn email_addresses_need_a_local_part_and_a_domain() {
        assert!(ok(email_address("alice@example.com")).is_some());
        for bad in [
            "alice",
            "@example.com",
            "alice@",
            "a b@example.com",
            "alice@.com",
        ] {
            assert!(email_address(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn pictures_are_http_urls() {
        assert!(ok(picture_url("https://example.com/a.png")).is_some());
        for bad in [
            "not a url",
            "/a.png",
            "ftp://example.com/a.png",
            "javascript:alert(1)",
        ] {
            assert!(picture_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn locales_are_language_tags() {
        for good in ["en", "en-US", "zh-Hant-TW", "de-CH-1996"] {
            assert!(ok(language_tag(good)).is_some(), "{good}");
        }
        for bad in ["en_US", "e", "en-", "english language", "123"] {
            assert!(language_tag(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn phone_numbers_are_digits_with_separators() {
        for good in [
            "+1 (425) 555-1212",
            "+441865270000",
            "+1 425 555 1212;ext=5678",
        ] {
            assert!(ok(phone_number(good)).is_some(), "{good}");
        }
        for bad in ["call me", "12", "+1 425 555 1212;ext=", "++1 425"] {
            assert!(phone_number(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn booleans_are_true_or_false() {
        assert!(boolean("--email-verified", "true").unwrap());
        assert!(!boolean("--email-verified", "false").unwrap());
        assert!(boolean("--email-verified", "yes").is_err());
    }

    #[test]
    fn only_address_lines_may_hold_newlines() {
        assert!(ok(text("--address-street", "1 Main St\nApt 2", MAX_LONG, true)).is_some());
        assert!(text("--name", "Alice\nLiddell", MAX_LINE, false).is_err());
        assert!(text("--name", "   ", MAX_LINE, false).is_err());
    }
}
