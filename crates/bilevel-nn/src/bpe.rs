//! GPT-2-style byte-level BPE tokenizer read from GGUF metadata (being written).
