//! Storage backends for kms-core.
