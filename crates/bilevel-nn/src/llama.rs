//! SmolLM2 / Llama models loaded from GGUF (being written).
