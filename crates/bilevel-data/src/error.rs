//! The error type of every loader: it always names the source, and the line (1-based) or byte
//! offset, the field and the offending text where parsing failed.

use std::io;
use std::path::PathBuf;

/// Result of a loader.
pub type Result<T> = std::result::Result<T, DataError>;

/// What went wrong while loading a data set.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// Reading or decompressing the source failed.
    #[error("{source_name}: {source}")]
    Io {
        /// File (or source) name.
        source_name: String,
        /// The underlying I/O error.
        #[source]
        source: io::Error,
    },
    /// The source holds no data rows.
    #[error("{source_name}: no data rows")]
    Empty {
        /// File (or source) name.
        source_name: String,
    },
    /// A row has a different number of fields than the first row (or the header).
    #[error("{source_name}:{line}: expected {expected} fields, found {found}")]
    Ragged {
        /// File (or source) name.
        source_name: String,
        /// 1-based line.
        line: usize,
        /// Fields in the first row or header.
        expected: usize,
        /// Fields in this row.
        found: usize,
    },
    /// A field could not be parsed.
    #[error("{source_name}:{line}{}: field `{field}`: {reason} (got `{text}`)", col(.column))]
    Invalid {
        /// File (or source) name.
        source_name: String,
        /// 1-based line.
        line: usize,
        /// 1-based column (field position, or byte column for JSON syntax errors), if known.
        column: Option<usize>,
        /// Field, column or attribute name.
        field: String,
        /// The offending text (truncated to 60 characters).
        text: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A numeric field is NaN or infinite.
    #[error("{source_name}:{line}:{column}: field `{field}`: non-finite value `{text}`")]
    NonFinite {
        /// File (or source) name.
        source_name: String,
        /// 1-based line.
        line: usize,
        /// 1-based column (field position).
        column: usize,
        /// Field, column or attribute name.
        field: String,
        /// The offending text.
        text: String,
    },
    /// A LIBSVM feature index is 0, not increasing, or beyond the given dimension.
    #[error("{source_name}:{line}:{column}: feature index `{text}`: {reason}")]
    BadIndex {
        /// File (or source) name.
        source_name: String,
        /// 1-based line.
        line: usize,
        /// 1-based token position on the line.
        column: usize,
        /// The offending `idx:val` pair.
        text: String,
        /// Why it was rejected.
        reason: String,
    },
    /// An ARFF value is missing (`?`).
    #[error("{source_name}:{line}: missing value `?` for attribute `{attribute}`")]
    Missing {
        /// File (or source) name.
        source_name: String,
        /// 1-based line.
        line: usize,
        /// Attribute name.
        attribute: String,
    },
    /// A construct the loader does not support (ARFF string/date attributes, sparse rows).
    #[error("{source_name}:{line}: {what} (got `{text}`)")]
    Unsupported {
        /// File (or source) name.
        source_name: String,
        /// 1-based line.
        line: usize,
        /// What is not supported.
        what: String,
        /// The offending text.
        text: String,
    },
    /// The requested label column or class attribute does not exist.
    #[error("{source_name}: label column `{column}` not found ({reason})")]
    NoSuchColumn {
        /// File (or source) name.
        source_name: String,
        /// The requested column (index or name).
        column: String,
        /// Why it was not found.
        reason: String,
    },
    /// An IDX file has the wrong magic number.
    #[error("{source_name}: byte 0: bad magic number {found} (expected {expected})")]
    BadMagic {
        /// File (or source) name.
        source_name: String,
        /// The magic number the format requires.
        expected: u32,
        /// The value found.
        found: u32,
    },
    /// A binary file ends before the size its header announces.
    #[error("{source_name}: truncated at byte offset {offset}: expected {expected} bytes")]
    Truncated {
        /// File (or source) name.
        source_name: String,
        /// Byte offset where the data ends.
        offset: u64,
        /// Size in bytes the header requires.
        expected: u64,
    },
    /// The images and labels files hold different numbers of items.
    #[error("{images_name} has {images} images but {labels_name} has {labels} labels")]
    CountMismatch {
        /// Images file name.
        images_name: String,
        /// Number of images.
        images: u64,
        /// Labels file name.
        labels_name: String,
        /// Number of labels.
        labels: u64,
    },
    /// An IDX label is not below the given class count.
    #[error(
        "{source_name}: byte offset {offset}: label {label} is not below the class count {classes}"
    )]
    LabelOutOfRange {
        /// File (or source) name.
        source_name: String,
        /// Byte offset of the label.
        offset: u64,
        /// The label.
        label: u32,
        /// The class count.
        classes: usize,
    },
    /// The data set would exceed [`MAX_ELEMENTS`](crate::MAX_ELEMENTS) feature values.
    #[error("{source_name}:{line}: data set of {elements} values exceeds the limit of {limit}")]
    TooLarge {
        /// File (or source) name.
        source_name: String,
        /// 1-based line where the size became known.
        line: usize,
        /// Requested number of values (saturating).
        elements: u128,
        /// The limit.
        limit: usize,
    },
    /// A named data set that is not in the catalogue ([`known_sets`](crate::known_sets)).
    #[error("unknown data set '{name}'; known data sets: {known}")]
    UnknownSet {
        /// The requested name.
        name: String,
        /// The known names, comma-separated.
        known: String,
    },
    /// A named data set that has to be fetched first and is not in the cache.
    #[error("data set '{name}' is not in the cache {}; run `bilevel data fetch {name}`", dir.display())]
    NotFetched {
        /// The data set's name.
        name: String,
        /// The cache directory that was searched.
        dir: PathBuf,
    },
    /// Fetching a data set failed: an external command was missing or failed, or the fetched
    /// files did not load with the documented shape.
    #[error("fetching '{name}': {message}")]
    Fetch {
        /// The data set's name.
        name: String,
        /// What failed (the command line and its stderr tail, or the mismatch).
        message: String,
    },
    /// A file source is inconsistent: an option that does not apply to its format, a missing
    /// labels file, train and test files of different widths or classes.
    #[error("{source_name}: {message}")]
    BadSource {
        /// The file (or data source) name.
        source_name: String,
        /// What is wrong.
        message: String,
    },
    /// A text source's directory does not exist (a [`CorpusSpec::Dir`](crate::CorpusSpec::Dir)
    /// or the GSM8K folder).
    #[error("{source_name}: no such directory {}{hint}", path.display())]
    NoSuchDir {
        /// The text source's name.
        source_name: String,
        /// The directory that was looked for.
        path: PathBuf,
        /// What to do about it (empty, or starting with `; `).
        hint: String,
    },
    /// A document file holds no text (it is empty or white space only).
    #[error("{}: empty document (the file holds no text)", path.display())]
    EmptyDocument {
        /// The file.
        path: PathBuf,
    },
    /// Text that is not valid UTF-8.
    #[error("{source_name}: byte offset {offset}: not valid UTF-8")]
    NotUtf8 {
        /// The file (or source) name.
        source_name: String,
        /// Offset of the first byte that is not part of valid UTF-8 (in the decompressed data
        /// for gzipped files).
        offset: usize,
    },
    /// A text source that holds no document.
    #[error("{source_name}: no documents ({detail})")]
    NoDocuments {
        /// The text source (or file) name.
        source_name: String,
        /// Where no document was found.
        detail: String,
    },
}

impl DataError {
    /// Whether this is [`DataError::NotFetched`]: a named set absent from the cache. Tests that
    /// need a fetched set skip (with a message) on this instead of failing.
    pub fn is_not_fetched(&self) -> bool {
        matches!(self, DataError::NotFetched { .. })
    }

    /// Whether this is [`DataError::UnknownSet`]: a name not in the catalogue.
    pub fn is_unknown_set(&self) -> bool {
        matches!(self, DataError::UnknownSet { .. })
    }
}

fn col(column: &Option<usize>) -> String {
    column.map(|c| format!(":{c}")).unwrap_or_default()
}

/// The offending text, cut to 60 characters for messages.
pub(crate) fn clip(text: &str) -> String {
    let mut out: String = text.chars().take(60).collect();
    if text.chars().nth(60).is_some() {
        out.push('…');
    }
    out
}
