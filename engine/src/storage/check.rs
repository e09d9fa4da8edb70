//! One line of a storage check (`holdfast storage check`): what each backend's own
//! diagnosis and the repository's location check report.

use serde::Serialize;

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckItem {
    /// What was checked.
    pub check: String,
    /// Whether it passed.
    pub ok: bool,
    /// What was found, or what to do.
    pub detail: String,
    /// For a failure that came from an error: its category, which says whether only a
    /// user can fix it (a missing bucket) or it may pass by itself (a timeout).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<crate::error_category::ErrorCategory>,
}

impl CheckItem {
    pub(crate) fn ok(check: &str, detail: impl Into<String>) -> Self {
        CheckItem {
            check: check.to_owned(),
            ok: true,
            detail: detail.into(),
            category: None,
        }
    }

    pub(crate) fn failed(check: &str, detail: impl Into<String>) -> Self {
        CheckItem {
            check: check.to_owned(),
            ok: false,
            detail: detail.into(),
            category: None,
        }
    }

    /// A failure with its error's category.
    pub(crate) fn error(
        check: &str,
        category: crate::error_category::ErrorCategory,
        detail: impl Into<String>,
    ) -> Self {
        CheckItem {
            category: Some(category),
            ..Self::failed(check, detail)
        }
    }

    /// A failure caused by a storage error.
    pub(crate) fn storage_error(check: &str, e: &super::StorageError) -> Self {
        Self::error(check, e.category(), e.to_string())
    }
}
