//! Reading request bodies: a JSON object whose fields are checked by name (missing → IDE-0001,
//! unknown → IDE-0002) and then by type (IDE-0003, naming the field), so that every error says
//! which field is wrong.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, header};
use serde_json::{Map, Value};

use super::IdentityError;

/// A JSON object body.
#[derive(Debug)]
pub struct Body {
    fields: Map<String, Value>,
}

impl Body {
    /// Reads the body as a JSON object that has every field of `required` and no field outside
    /// `required` and `optional`.
    pub fn read(
        headers: &HeaderMap,
        body: Result<Bytes, BytesRejection>,
        required: &[&str],
        optional: &[&str],
    ) -> Result<Body, IdentityError> {
        let body = body.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                IdentityError::BodyTooLarge
            } else {
                IdentityError::InvalidBody("the body could not be read".into())
            }
        })?;
        let is_json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| {
                let v = v.trim();
                v.eq_ignore_ascii_case("application/json")
            });
        if !is_json {
            return Err(IdentityError::InvalidBody(
                "the Content-Type must be application/json".into(),
            ));
        }
        let fields = match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(_)) => match serde_json::from_slice::<UniqueKeys>(&body) {
                Ok(UniqueKeys(fields)) => fields,
                Err(_) => {
                    return Err(IdentityError::InvalidBody(
                        "a field appears more than once".into(),
                    ));
                }
            },
            Ok(_) => {
                return Err(IdentityError::InvalidBody(
                    "it must be a JSON object".into(),
                ));
            }
            Err(_) => return Err(IdentityError::InvalidBody("it is not valid JSON".into())),
        };
        let missing: Vec<&str> = required
            .iter()
            .copied()
            .filter(|name| !fields.contains_key(*name))
            .collect();
        if !missing.is_empty() {
            return Err(IdentityError::MissingFields(missing.join(", ")));
        }
        let mut unknown: Vec<&str> = fields
            .keys()
            .map(String::as_str)
            .filter(|name| !required.contains(name) && !optional.contains(name))
            .collect();
        if !unknown.is_empty() {
            unknown.sort_unstable();
            let shown: Vec<String> = unknown.iter().take(5).map(|n| short(n)).collect();
            return Err(IdentityError::UnknownFields(shown.join(", ")));
        }
        Ok(Body { fields })
    }

    /// Whether the body has the field `name`.
    pub fn has(&self, name: &str) -> bool {
        self.fields.contains_key(name)
    }

    /// The string field `name`, if present; any other type is IDE-0003.
    pub fn string(&self, name: &'static str) -> Result<Option<String>, IdentityError> {
        match self.fields.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(wrong_type(name, "a string")),
        }
    }

    /// The string field `name`, which [`read`](Body::read) was told is required.
    pub fn required_string(&self, name: &'static str) -> Result<String, IdentityError> {
        self.string(name)?
            .ok_or_else(|| IdentityError::MissingFields(name.to_owned()))
    }

    /// The field `name` as a list of strings, if present.
    pub fn strings(&self, name: &'static str) -> Result<Option<Vec<String>>, IdentityError> {
        match self.fields.get(name) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| match item {
                    Value::String(s) => Ok(s.clone()),
                    _ => Err(wrong_type(name, "a list of strings")),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(wrong_type(name, "a list of strings")),
        }
    }
}

/// A JSON object whose keys are all different. A repeated key would otherwise keep its last
/// value, while a proxy or a firewall in front may have checked the first one.
struct UniqueKeys(Map<String, Value>);

impl<'de> serde::Deserialize<'de> for UniqueKeys {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = UniqueKeys;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object without repeated keys")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<UniqueKeys, A::Error> {
                let mut fields = Map::new();
                while let Some((key, value)) = map.next_entry::<String, Value>()? {
                    if fields.insert(key, value).is_some() {
                        return Err(serde::de::Error::custom("repeated key"));
                    }
                }
                Ok(UniqueKeys(fields))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

fn wrong_type(name: &str, expected: &str) -> IdentityError {
    IdentityError::InvalidBody(format!("the field {name} must be {expected}"))
}

/// A caller-given name, cut short for an error message.
fn short(name: &str) -> String {
    let cut: String = name.chars().filter(|c| !c.is_control()).take(40).collect();
    format!("{cut:?}")
}
