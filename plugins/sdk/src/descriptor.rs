//! What a plugin says about itself (name, version, API formats), stated once.

use crate::{ApiFormat, PluginError, PluginInfo, PluginResult};

/// A plugin's name, version and the API formats it reads, fixed at compile time. A
/// [`Provider`](crate::Provider) states it as `DESCRIPTOR` with [`descriptor!`](crate::descriptor),
/// which fills in the plugin crate's version; `describe` answers it, and the provider
/// refuses other formats with [`Descriptor::check_format`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Descriptor {
    /// The plugin's name.
    pub name: &'static str,
    /// The plugin crate's version.
    pub version: &'static str,
    /// The API formats the plugin reads.
    pub formats: &'static [ApiFormat],
}

impl Descriptor {
    /// As the `describe` export answers.
    pub fn info(&self) -> PluginInfo {
        PluginInfo { name: self.name.into(), version: self.version.into(), formats: self.formats.to_vec() }
    }

    /// `Ok(())` for a format the plugin reads, the unsupported-format error for any other.
    pub fn check_format(&self, format: ApiFormat) -> PluginResult<()> {
        check_format(format, self.formats)
    }
}

/// `Ok(())` when `formats` holds `format`, else [`PluginError::UnsupportedFormat`].
pub fn check_format(format: ApiFormat, formats: &[ApiFormat]) -> PluginResult<()> {
    if formats.contains(&format) { Ok(()) } else { Err(PluginError::UnsupportedFormat(format)) }
}

/// A [`Descriptor`] with the version of the crate that invokes the macro (its
/// `CARGO_PKG_VERSION`, read where the macro expands):
///
/// ```ignore
/// const DESCRIPTOR: Descriptor = xjp_plugin_sdk::descriptor!("anthropic", &[ApiFormat::AnthropicMessages]);
/// ```
#[macro_export]
macro_rules! descriptor {
    ($name:expr, $formats:expr $(,)?) => {
        $crate::Descriptor { name: $name, version: env!("CARGO_PKG_VERSION"), formats: $formats }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_the_plugin_and_refuses_other_formats() {
        const D: Descriptor = crate::descriptor!("p", &[ApiFormat::OpenaiChat, ApiFormat::GeminiGenerate]);
        let info = D.info();
        assert_eq!((info.name.as_str(), info.version.as_str()), ("p", env!("CARGO_PKG_VERSION")));
        assert_eq!(info.formats, vec![ApiFormat::OpenaiChat, ApiFormat::GeminiGenerate]);
        assert_eq!(D.check_format(ApiFormat::GeminiGenerate), Ok(()));
        let other = ApiFormat::AnthropicMessages;
        assert_eq!(D.check_format(other), Err(PluginError::UnsupportedFormat(other)));
    }
}
