//! How a group of settings is declared, once: [`settings!`] writes the struct (with its `///`
//! docs), its defaults, the table of its keys (default and meaning, from which the README's
//! table is generated), and a setter from text that the file, the environment and `--set` all
//! go through. Each module that is configured declares its own section; the app composes them.

/// One setting of a section, as documented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    /// The key (also the TOML key, and `MIDNIT_` + upper case, the environment variable).
    pub name: &'static str,
    /// The TOML section it belongs in.
    pub section: &'static str,
    /// The default, as the README shows it.
    pub default: &'static str,
    /// What it means, as the README shows it.
    pub meaning: &'static str,
}

impl Key {
    /// Its environment variable.
    pub fn env(&self) -> String {
        format!("MIDNIT_{}", self.name.to_ascii_uppercase())
    }
}

/// A group of settings declared with [`settings!`].
pub trait Section: Default {
    /// The TOML table it reads from (`[broker]`, …).
    const NAME: &'static str;
    /// Its keys, in declaration order.
    const KEYS: &'static [Key];
    /// Sets `key` from its text form: `None` if the key is not this section's.
    fn set(&mut self, key: &str, value: &str) -> Option<Result<(), String>>;
}

/// A value a setting can hold, read from its text form (a file, the environment, a flag).
pub trait Setting: Sized {
    /// Parses the text form.
    fn parse_setting(text: &str) -> Result<Self, String>;
}

macro_rules! from_str_settings {
    ($($t:ty),*) => {$(
        impl Setting for $t {
            fn parse_setting(text: &str) -> Result<Self, String> {
                text.trim().parse().map_err(|e: <$t as std::str::FromStr>::Err| e.to_string())
            }
        }
    )*};
}

from_str_settings!(u16, u32, u64, usize, bool, String, std::path::PathBuf);

impl<T: Setting> Setting for Option<T> {
    fn parse_setting(text: &str) -> Result<Self, String> {
        T::parse_setting(text).map(Some)
    }
}

/// Declares a section of settings: the struct, its `Default`, and its [`Section`] table.
///
/// ```ignore
/// settings! {
///     /// The health listener.
///     #[derive(Eq)]
///     pub struct HttpSettings in "http" {
///         /// Listener address.
///         http_addr: String = "127.0.0.1:9464".into(), "`127.0.0.1:9464`", "health and metrics";
///     }
/// }
/// ```
#[macro_export]
macro_rules! settings {
    (
        $(#[$smeta:meta])*
        pub struct $name:ident in $section:literal {
            $(
                $(#[$fmeta:meta])*
                $field:ident : $ty:ty = $default:expr, $shown:literal, $meaning:literal;
            )*
        }
    ) => {
        $(#[$smeta])*
        #[derive(Debug, Clone, PartialEq)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )*
        }

        impl Default for $name {
            fn default() -> Self {
                Self { $( $field: $default, )* }
            }
        }

        impl $crate::settings::Section for $name {
            const NAME: &'static str = $section;
            const KEYS: &'static [$crate::settings::Key] = &[
                $( $crate::settings::Key {
                    name: stringify!($field),
                    section: $section,
                    default: $shown,
                    meaning: $meaning,
                }, )*
            ];

            fn set(&mut self, key: &str, value: &str) -> Option<Result<(), String>> {
                match key {
                    $( stringify!($field) => Some(
                        <$ty as $crate::settings::Setting>::parse_setting(value)
                            .map(|v| self.$field = v),
                    ), )*
                    _ => None,
                }
            }
        }
    };
}

pub use crate::settings;

#[cfg(test)]
mod tests {
    use super::*;

    settings! {
        /// A test section.
        pub struct Sample in "sample" {
            /// A number.
            count: u32 = 3, "3", "how many";
            /// A path.
            place: Option<std::path::PathBuf> = None, "none", "where";
        }
    }

    #[test]
    fn a_section_knows_its_keys_defaults_and_setter() {
        let mut s = Sample::default();
        assert_eq!(s.count, 3);
        assert_eq!(Sample::KEYS.len(), 2);
        assert_eq!(Sample::KEYS[0].env(), "MIDNIT_COUNT");
        assert_eq!(s.set("count", " 7 "), Some(Ok(())));
        assert_eq!(s.count, 7);
        assert!(matches!(s.set("count", "many"), Some(Err(_))));
        assert_eq!(s.set("place", "/x"), Some(Ok(())));
        assert_eq!(s.place.as_deref(), Some(std::path::Path::new("/x")));
        assert_eq!(s.set("other", "1"), None);
    }
}
