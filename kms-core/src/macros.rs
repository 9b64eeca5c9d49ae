//! Macros shared by the crate's modules.

/// Defines a closed enum whose values travel as fixed wire strings.
macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident, $param:literal, { $($(#[$vmeta:meta])* $variant:ident => $wire:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            #[allow(dead_code)]
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The wire name.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $wire),+ }
            }

            /// Parses the wire name; the error names the usual parameter and the allowed
            /// values.
            pub fn parse(s: &str) -> Result<Self, $crate::error::KmsError> {
                Self::parse_as($param, s)
            }

            /// Parses the wire name of the parameter `param`: `MissingParameter` when empty,
            /// `InvalidParameter` naming `param` and the allowed values when unknown.
            pub fn parse_as(param: &'static str, s: &str) -> Result<Self, $crate::error::KmsError> {
                match s {
                    $($wire => Ok($name::$variant),)+
                    "" => Err($crate::error::KmsError::missing(param)),
                    _ => Err($crate::error::KmsError::invalid(
                        param,
                        format!("{:?} is not one of {}", s, [$($wire),+].join(", ")),
                    )),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
                $name::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

/// Defines a request struct: PascalCase wire names, every field defaulted.
macro_rules! request {
    ($(#[$meta:meta])* $name:ident { $($body:tt)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
        #[serde(rename_all = "PascalCase", default)]
        pub struct $name { $($body)* }
    };
}

/// Defines a response struct: PascalCase wire names with a RequestId.
macro_rules! response {
    ($(#[$meta:meta])* $name:ident { $($body:tt)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(rename_all = "PascalCase")]
        pub struct $name {
            /// The id of this call.
            pub request_id: String,
            $($body)*
        }
    };
}
