//! [`ConfigDuration`]: how durations are written in the configuration.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A duration written `"90s"`, `"15m"`, `"1h"`, `"30d"`, or a bare integer of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigDuration(pub Duration);

impl ConfigDuration {
    pub const fn secs(secs: u64) -> Self {
        Self(Duration::from_secs(secs))
    }

    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (digits, unit) = text.split_at(split);
        let amount: u64 = digits.parse().ok()?;
        let scale = match unit {
            "" | "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return None,
        };
        amount.checked_mul(scale).map(Self::secs)
    }
}

impl Serialize for ConfigDuration {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let secs = self.0.as_secs();
        let text = match secs {
            0 => "0s".to_owned(),
            s if s % 86_400 == 0 => format!("{}d", s / 86_400),
            s if s % 3600 == 0 => format!("{}h", s / 3600),
            s if s % 60 == 0 => format!("{}m", s / 60),
            s => format!("{s}s"),
        };
        serializer.serialize_str(&text)
    }
}

impl<'de> Deserialize<'de> for ConfigDuration {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Secs(u64),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Secs(secs) => Ok(Self::secs(secs)),
            Raw::Text(text) => Self::parse(&text).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "`{text}` is not a duration: write e.g. \"90s\", \"15m\", \"1h\", \"30d\" or a number of seconds"
                ))
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(ConfigDuration::parse("90s"), Some(ConfigDuration::secs(90)));
        assert_eq!(
            ConfigDuration::parse("15m"),
            Some(ConfigDuration::secs(900))
        );
        assert_eq!(
            ConfigDuration::parse("1h"),
            Some(ConfigDuration::secs(3600))
        );
        assert_eq!(
            ConfigDuration::parse("30d"),
            Some(ConfigDuration::secs(30 * 86_400))
        );
        assert_eq!(ConfigDuration::parse("42"), Some(ConfigDuration::secs(42)));
        assert_eq!(ConfigDuration::parse("1w"), None);
        assert_eq!(ConfigDuration::parse("h"), None);
        assert_eq!(ConfigDuration::parse("-5s"), None);
    }
}
