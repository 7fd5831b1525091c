//! JSON as the token stage reads it: objects whose member names are unique, for token
//! headers, payloads and key set documents alike.

use serde::Deserialize;

/// A JSON object whose keys are unique. Parsers disagree on duplicates (first wins, last
/// wins, error), so `{"iss":"a","iss":"b"}` could mean different issuers to different
/// readers of the same token: refuse it. Nested objects are plain JSON values.
pub(crate) struct UniqueKeys(pub(crate) serde_json::Map<String, serde_json::Value>);

impl<'de> Deserialize<'de> for UniqueKeys {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = UniqueKeys;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<UniqueKeys, A::Error> {
                let mut out = serde_json::Map::new();
                while let Some((key, value)) = map.next_entry::<String, serde_json::Value>()? {
                    if out.contains_key(&key) {
                        let shown: String = key.chars().take(64).collect();
                        return Err(serde::de::Error::custom(format!(
                            "duplicate claim `{shown}`"
                        )));
                    }
                    out.insert(key, value);
                }
                Ok(UniqueKeys(out))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}
