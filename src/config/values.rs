//! Serde adaptors for the forms operators write values in, used through `serde_with::As`
//! (`#[serde(with = "As::<OrOff<Span<Positive>>>")]`). Each carries its accepted range, so a
//! value is checked where it is read and no separate pass re-lists the settings. Durations use
//! `humantime`'s parser directly: `humantime-serde` takes neither bare seconds nor `off`.

use std::marker::PhantomData;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::de::{self, IntoDeserializer as _, Unexpected};
use serde::{Deserialize, Deserializer, Serializer};
use serde_with::{DeserializeAs, SerializeAs};
use time::Duration;

/// Longer settings are surely mistakes, and would overflow date arithmetic.
const MAX_DURATION: Duration = Duration::days(3650);

/// Marks a value of the right form that its setting does not allow, so that the error is worded
/// "FINHUB_X must …" rather than as a value that could not be read.
pub(super) const OUT_OF_RANGE: &str = "a value out of range";

/// The error for a value its setting does not allow; `rule` reads "must …".
pub(super) fn out_of_range<E: de::Error>(rule: &'static str) -> E {
    E::invalid_value(Unexpected::Other(OUT_OF_RANGE), &rule)
}

/// Parses `90s`, `10m`, `1h`, `1h30m`, or a whole number of seconds.
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    if let Ok(secs) = raw.parse::<i64>() {
        return Ok(Duration::seconds(secs));
    }
    let std = humantime::parse_duration(raw)
        .map_err(|_| format!("`{raw}` is not a duration such as 90s, 10m or 1h"))?;
    Duration::try_from(std).map_err(|_| format!("`{raw}` is too long"))
}

/// The least a duration setting allows, and how a shorter one is refused.
pub trait Floor {
    const LEAST: Duration;
    const BELOW: &'static str;
}

/// Longer than zero.
pub enum Positive {}

impl Floor for Positive {
    const LEAST: Duration = Duration::NANOSECOND;
    const BELOW: &'static str = "must be longer than zero";
}

/// Zero or longer.
pub enum NonNegative {}

impl Floor for NonNegative {
    const LEAST: Duration = Duration::ZERO;
    const BELOW: &'static str = "must not be negative";
}

/// Longer than zero, for a setting that `off` disables (the refusal says so).
pub enum PositiveOrOff {}

impl Floor for PositiveOrOff {
    const LEAST: Duration = Positive::LEAST;
    const BELOW: &'static str = "must be longer than zero, or off";
}

/// A duration as [`parse_duration`] reads it, at least `F::LEAST` and at most [`MAX_DURATION`].
/// Written as whole seconds.
pub struct Span<F>(PhantomData<F>);

impl<'de, F: Floor> DeserializeAs<'de, Duration> for Span<F> {
    fn deserialize_as<D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let value = match Raw::deserialize(d)? {
            Raw::Number(secs) => Duration::seconds(secs),
            Raw::Text(text) => parse_duration(&text).map_err(de::Error::custom)?,
        };
        if value < F::LEAST {
            Err(out_of_range(F::BELOW))
        } else if value > MAX_DURATION {
            Err(out_of_range("must be at most 3650 days"))
        } else {
            Ok(value)
        }
    }
}

impl<F> SerializeAs<Duration> for Span<F> {
    fn serialize_as<S: Serializer>(value: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{}s", value.whole_seconds()))
    }
}

/// `off` (any case) for `None`; anything else as `T` reads it.
pub struct OrOff<T>(PhantomData<T>);

impl<'de, T: DeserializeAs<'de, U>, U> DeserializeAs<'de, Option<U>> for OrOff<T> {
    fn deserialize_as<D: Deserializer<'de>>(d: D) -> Result<Option<U>, D::Error> {
        match Raw::deserialize(d)? {
            Raw::Text(text) if text.trim().eq_ignore_ascii_case("off") => Ok(None),
            Raw::Text(text) => T::deserialize_as(text.into_deserializer()).map(Some),
            Raw::Number(n) => T::deserialize_as(n.into_deserializer()).map(Some),
        }
    }
}

impl<T: SerializeAs<U>, U> SerializeAs<Option<U>> for OrOff<T> {
    fn serialize_as<S: Serializer>(value: &Option<U>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(value) => T::serialize_as(value, s),
            None => s.serialize_str("off"),
        }
    }
}

/// A comma-separated list of CIDRs; a bare address means just that host.
pub struct Networks;

impl<'de> DeserializeAs<'de, Vec<IpNet>> for Networks {
    fn deserialize_as<D: Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
        String::deserialize(d)?
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        de::Error::custom(format!("`{s}` is not a CIDR such as 10.0.0.0/8"))
                    })
            })
            .collect()
    }
}

impl SerializeAs<Vec<IpNet>> for Networks {
    fn serialize_as<S: Serializer>(nets: &Vec<IpNet>, s: S) -> Result<S::Ok, S::Error> {
        let nets: Vec<String> = nets.iter().map(ToString::to_string).collect();
        s.serialize_str(&nets.join(","))
    }
}

/// A value as written: text, or a whole number (a TOML integer, or what figment makes of
/// `FINHUB_X=45`). Read before deciding how to take it, then handed on unchanged.
#[derive(Deserialize)]
#[serde(untagged, expecting = "expected text or a whole number")]
enum Raw {
    Text(String),
    Number(i64),
}
