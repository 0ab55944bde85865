//! Without `CANDLE_GRAD_DO_NOT_DETACH` an exact HVP is refused instead of silently zero
//! (its own test binary: the variable is process-wide).

use bilevel_nn::lm::mean_loss;
use bilevel_nn::{hvp, LanguageModel, NnError, TokenBatch, Transformer, TransformerConfig};
use candle_core::{DType, Device};

#[test]
fn exact_hvp_without_the_switch_is_an_error() {
    std::env::remove_var(bilevel_nn::DO_NOT_DETACH_VAR);
    let cfg = TransformerConfig {
        vocab: 5,
        layers: 1,
        width: 4,
        heads: 1,
        context: 4,
        mlp_ratio: 1,
    };
    let model = Transformer::new(cfg, 1, DType::F64, &Device::Cpu).unwrap();
    let w: Vec<u32> = vec![1, 2, 3, 4];
    let b = TokenBatch::from_windows(&[&w], &Device::Cpu).unwrap();
    let loss = || mean_loss(&model, &b);
    let p = model.params();
    let all = p.all();
    let v = p.values(&all).unwrap();
    match hvp(&loss, p, &all, &v) {
        Err(NnError::DoubleBackwardDisabled) => {}
        other => panic!("expected DoubleBackwardDisabled, got {other:?}"),
    }
}
