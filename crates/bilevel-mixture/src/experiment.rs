//! placeholder
pub struct ExperimentConfig;
pub struct ExperimentResult;
pub trait Progress {}
