//! Source lines through DWARF (placeholder; being written).
