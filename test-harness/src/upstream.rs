//! TODO: upstream
