//! A JSON value read into a Rust type through serde's own error kinds: which field is missing,
//! unknown, of the wrong type or out of range, without reading, or keeping, any message or value.
//! `serde_json`'s errors carry only a formatted message (which may quote the value).

use std::fmt;

use serde::de::value::{MapAccessDeserializer, MapDeserializer, SeqDeserializer};
use serde::de::{self, Expected, IntoDeserializer, Unexpected, Visitor};
use serde::forward_to_deserialize_any;
use serde_json::Value;

/// Why a value does not fit its type: serde's kind of error, with field names but no values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShapeError {
    /// A required field is absent.
    MissingField(&'static str),
    /// A field appears twice.
    DuplicateField(&'static str),
    /// A field the type does not know (its name as sent).
    UnknownField(String),
    /// A value of the wrong JSON type.
    InvalidType,
    /// A string that names no variant of an enum.
    UnknownVariant,
    /// A list or object with the wrong number of elements.
    InvalidLength,
    /// A value of the right type that the type refuses (out of range, failed a check).
    InvalidValue,
}

impl fmt::Display for ShapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingField(name) => write!(f, "missing field `{name}`"),
            Self::DuplicateField(name) => write!(f, "duplicate field `{name}`"),
            Self::UnknownField(name) => write!(f, "unknown field `{name}`"),
            Self::InvalidType => f.write_str("invalid type"),
            Self::UnknownVariant => f.write_str("unknown variant"),
            Self::InvalidLength => f.write_str("invalid length"),
            Self::InvalidValue => f.write_str("invalid value"),
        }
    }
}

impl std::error::Error for ShapeError {}

impl de::Error for ShapeError {
    // A type's own check fails with a message of its choosing: not kept, it may hold the value.
    fn custom<T: fmt::Display>(_message: T) -> Self {
        Self::InvalidValue
    }
    fn invalid_type(_: Unexpected<'_>, _: &dyn Expected) -> Self {
        Self::InvalidType
    }
    fn invalid_value(_: Unexpected<'_>, _: &dyn Expected) -> Self {
        Self::InvalidValue
    }
    fn invalid_length(_: usize, _: &dyn Expected) -> Self {
        Self::InvalidLength
    }
    fn unknown_variant(_: &str, _: &'static [&'static str]) -> Self {
        Self::UnknownVariant
    }
    fn unknown_field(field: &str, _: &'static [&'static str]) -> Self {
        Self::UnknownField(field.to_owned())
    }
    fn missing_field(field: &'static str) -> Self {
        Self::MissingField(field)
    }
    fn duplicate_field(field: &'static str) -> Self {
        Self::DuplicateField(field)
    }
}

/// A parsed JSON value as a deserializer whose errors are [`ShapeError`]s.
#[derive(Debug)]
pub struct Shape(pub Value);

impl<'de> IntoDeserializer<'de, ShapeError> for Shape {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

impl<'de> de::Deserializer<'de> for Shape {
    type Error = ShapeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ShapeError> {
        match self.0 {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(b),
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    visitor.visit_u64(u)
                } else if let Some(i) = n.as_i64() {
                    visitor.visit_i64(i)
                } else {
                    // Every other JSON number is an f64 (no arbitrary precision).
                    visitor.visit_f64(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            Value::String(s) => visitor.visit_string(s),
            Value::Array(items) => {
                SeqDeserializer::new(items.into_iter().map(Shape)).deserialize_any(visitor)
            }
            Value::Object(fields) => {
                MapDeserializer::new(fields.into_iter().map(|(k, v)| (k, Shape(v))))
                    .deserialize_any(visitor)
            }
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ShapeError> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ShapeError> {
        match self.0 {
            // A unit variant by name, or `{"Variant": content}`.
            Value::String(s) => visitor.visit_enum(s.into_deserializer()),
            Value::Object(fields) => visitor.visit_enum(MapAccessDeserializer::new(
                MapDeserializer::new(fields.into_iter().map(|(k, v)| (k, Shape(v)))),
            )),
            other => Shape(other).deserialize_any(visitor),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ShapeError> {
        visitor.visit_newtype_struct(self)
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct identifier
        ignored_any
    }
}
